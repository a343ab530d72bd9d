package fault

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuPeriodUs is the CFS period of a cpu-throttle fault: the node may use
// CPU × 100 ms of CPU time in every 100 ms (the kernel's default period, so
// 5 % throttles in 5 ms slices as `docker update --cpus 0.05` would).
const cpuPeriodUs = 100000

// PIDer gives the host PID of a process inside the target's cgroup (the
// node's init). Targets without it are found through NetnsPath when that is
// /proc/PID/ns/net.
type PIDer interface {
	Pid() int
}

// applyCPUThrottle caps the CPU time of the target's whole cgroup (every
// process of the node) with a CFS quota: cgroup v2 cpu.max, or v1
// cpu.cfs_quota_us / cpu.cfs_period_us, the files `docker update
// --cpu-quota/--cpu-period` writes. The node keeps running, only slowly:
// the "alive but starved" case that freezing does not cover. Undo writes the
// values found before back.
func applyCPUThrottle(_ context.Context, _ *Injector, _ int, s Spec, pool map[string]Target) (func(context.Context) (string, error), string, error) {
	t, err := node(pool, s)
	if err != nil {
		return nil, "", err
	}
	pid := targetPid(t)
	if pid <= 0 {
		return nil, "", fmt.Errorf("%s: no host PID to find its cgroup", t.Name())
	}
	cg, err := findCPUCgroup(pid)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", t.Name(), err)
	}
	quota := max(int(s.CPU*cpuPeriodUs), 1000) // the kernel's minimum quota is 1 ms
	old, err := cg.read()
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", t.Name(), err)
	}
	if err := cg.write(cpuLimit{quota: quota, period: cpuPeriodUs}); err != nil {
		_ = cg.write(old)
		return nil, "", fmt.Errorf("%s: %w", t.Name(), err)
	}
	detail := fmt.Sprintf("throttled %s to %d/%d us of CPU (%s)", t.Name(), quota, cpuPeriodUs, cg.dir)
	return func(context.Context) (string, error) {
		return "restored " + t.Name() + " CPU to " + old.String(), cg.write(old)
	}, detail, nil
}

func targetPid(t Target) int {
	if p, ok := t.(PIDer); ok {
		return p.Pid()
	}
	rest, ok := strings.CutPrefix(t.NetnsPath(), "/proc/")
	if !ok {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSuffix(rest, "/ns/net"))
	if err != nil {
		return 0
	}
	return pid
}

// cpuLimit is a CFS quota and period in microseconds; quota < 0 is "max"
// (no limit).
type cpuLimit struct{ quota, period int }

func (l cpuLimit) String() string {
	if l.quota < 0 {
		return fmt.Sprintf("max/%d us", l.period)
	}
	return fmt.Sprintf("%d/%d us", l.quota, l.period)
}

// cpuCgroup is the directory of a process's CPU controller, v1 or v2.
type cpuCgroup struct {
	dir string
	v2  bool
}

// findCPUCgroup finds pid's CPU cgroup directory from /proc/PID/cgroup and
// this process's mounts.
func findCPUCgroup(pid int) (cpuCgroup, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return cpuCgroup{}, err
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return cpuCgroup{}, err
	}
	return cpuCgroupFrom(string(data), string(mounts))
}

// cpuCgroupFrom is findCPUCgroup on the two files' contents.
func cpuCgroupFrom(cgroups, mountinfo string) (cpuCgroup, error) {
	var v1Path, v2Path string
	haveV2 := false
	for _, line := range strings.Split(strings.TrimSpace(cgroups), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Path, haveV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "cpu" {
				v1Path = parts[2]
			}
		}
	}
	// mountinfo: id parent major:minor root mountpoint opts ... - fstype source superopts
	sc := bufio.NewScanner(strings.NewReader(mountinfo))
	var v2Mount string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 > len(f) {
			continue
		}
		root, point, fstype, super := f[3], f[4], f[sep+1], f[sep+3]
		switch fstype {
		case "cgroup":
			if v1Path == "" {
				continue
			}
			for _, o := range strings.Split(super, ",") {
				if o == "cpu" {
					rel, ok := underRoot(v1Path, root)
					if !ok {
						return cpuCgroup{}, fmt.Errorf("cgroup %s is outside the cpu mount's root %s", v1Path, root)
					}
					return cpuCgroup{dir: filepath.Join(point, rel)}, nil
				}
			}
		case "cgroup2":
			if rel, ok := underRoot(v2Path, root); ok && haveV2 && v2Mount == "" {
				v2Mount = filepath.Join(point, rel)
			}
		}
	}
	if v1Path == "" && v2Mount != "" {
		return cpuCgroup{dir: v2Mount, v2: true}, nil
	}
	return cpuCgroup{}, errors.New("no cpu cgroup controller mounted for this process")
}

func underRoot(path, root string) (string, bool) {
	if root == "/" {
		return path, true
	}
	rel, ok := strings.CutPrefix(path, root)
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		return "", false
	}
	return rel, true
}

func (c cpuCgroup) read() (cpuLimit, error) {
	if c.v2 {
		b, err := os.ReadFile(filepath.Join(c.dir, "cpu.max"))
		if err != nil {
			return cpuLimit{}, err
		}
		return parseCPUMax(string(b))
	}
	q, err := readInt(filepath.Join(c.dir, "cpu.cfs_quota_us"))
	if err != nil {
		return cpuLimit{}, err
	}
	p, err := readInt(filepath.Join(c.dir, "cpu.cfs_period_us"))
	return cpuLimit{quota: q, period: p}, err
}

func (c cpuCgroup) write(l cpuLimit) error {
	if c.v2 {
		v := "max"
		if l.quota >= 0 {
			v = strconv.Itoa(l.quota)
		}
		return os.WriteFile(filepath.Join(c.dir, "cpu.max"), []byte(fmt.Sprintf("%s %d", v, l.period)), 0)
	}
	// v1 checks quota against the period in place: lift the quota first,
	// set the period, then the quota.
	if err := os.WriteFile(filepath.Join(c.dir, "cpu.cfs_quota_us"), []byte("-1"), 0); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(l.period)), 0); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(l.quota)), 0)
}

func parseCPUMax(s string) (cpuLimit, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return cpuLimit{}, fmt.Errorf("cpu.max %q: want \"QUOTA PERIOD\"", s)
	}
	p, err := strconv.Atoi(f[1])
	if err != nil {
		return cpuLimit{}, fmt.Errorf("cpu.max %q: %w", s, err)
	}
	if f[0] == "max" {
		return cpuLimit{quota: -1, period: p}, nil
	}
	q, err := strconv.Atoi(f[0])
	if err != nil {
		return cpuLimit{}, fmt.Errorf("cpu.max %q: %w", s, err)
	}
	return cpuLimit{quota: q, period: p}, nil
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
