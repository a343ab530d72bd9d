package fault

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

func TestCPUCgroupFrom(t *testing.T) {
	const v1Mounts = `25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 25 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 25 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 25 0:30 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const v2Mounts = `35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate
`
	for _, c := range []struct {
		name, cgroups, mounts string
		want                  cpuCgroup
		err                   bool
	}{
		{"v1 docker", "12:cpu:/docker/abc\n11:cpuacct:/docker/abc\n0::/docker/abc\n", v1Mounts, cpuCgroup{dir: "/sys/fs/cgroup/cpu/docker/abc"}, false},
		{"v1 joined", "4:cpu,cpuacct:/docker/abc\n", "31 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n", cpuCgroup{dir: "/sys/fs/cgroup/cpu,cpuacct/docker/abc"}, false},
		{"v1 mount root", "4:cpu:/outer/docker/abc\n", "31 25 0:28 /outer /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", cpuCgroup{dir: "/sys/fs/cgroup/cpu/docker/abc"}, false},
		{"v1 outside root", "4:cpu:/elsewhere/abc\n", "31 25 0:28 /outer /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", cpuCgroup{}, true},
		{"v2", "0::/system.slice/docker-abc.scope\n", v2Mounts, cpuCgroup{dir: "/sys/fs/cgroup/system.slice/docker-abc.scope", v2: true}, false},
		{"none", "3:memory:/x\n", "31 25 0:28 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", cpuCgroup{}, true},
	} {
		got, err := cpuCgroupFrom(c.cgroups, c.mounts)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: got %+v, %v; want %+v, err=%v", c.name, got, err, c.want, c.err)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	for in, want := range map[string]cpuLimit{"max 100000\n": {-1, 100000}, "5000 100000": {5000, 100000}} {
		if got, err := parseCPUMax(in); err != nil || got != want {
			t.Errorf("parseCPUMax(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "max", "x 100000", "5000 y"} {
		if _, err := parseCPUMax(in); err == nil {
			t.Errorf("parseCPUMax(%q): want an error", in)
		}
	}
}

// pidTarget is a target known only by a host PID.
type pidTarget struct {
	name string
	pid  int
}

func (p pidTarget) Name() string      { return p.name }
func (p pidTarget) Addr() netip.Addr  { return netip.Addr{} }
func (p pidTarget) NetnsPath() string { return "/proc/" + strconv.Itoa(p.pid) + "/ns/net" }

// A busy process in a cgroup of its own, throttled to 5 %, uses about 5 %
// of a CPU while the fault lasts and is unlimited again after the undo.
func TestCPUThrottleLimitsAndRestores(t *testing.T) {
	testenv.RequireRoot(t)
	if testing.Short() {
		t.Skip("-short: creates a cgroup and burns CPU for a second")
	}
	own, err := findCPUCgroup(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(own.dir, "rhf-cpu-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	busy := exec.Command("sh", "-c", "while :; do :; done")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = busy.Process.Kill()
		_ = busy.Wait()
		// The cgroup can go once its last process is reaped.
		deadline := time.Now().Add(5 * time.Second)
		for os.Remove(dir) != nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(busy.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	cg, err := findCPUCgroup(busy.Process.Pid)
	if err != nil || cg.dir != dir {
		t.Fatalf("busy process's cgroup = %+v, %v; want %s", cg, err, dir)
	}
	before, err := cg.read()
	if err != nil {
		t.Fatal(err)
	}
	inj := NewInjector(nil)
	ctx := context.Background()
	// Found through NetnsPath, as for a target without Pid().
	h, err := inj.Apply(ctx, Spec{Kind: CPUThrottle, CPU: 0.05}, pidTarget{"busy", busy.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := cg.read(); got != (cpuLimit{quota: 5000, period: 100000}) {
		t.Fatalf("limit while throttled = %v, want 5000/100000 us", got)
	}
	// The kernel's own accounting: over a second the process gets about
	// 5 % of a CPU (allow up to 10 %: the quota is enforced per period, a
	// period's overrun is paid back in the next).
	use := cpuUsage(t, busy.Process.Pid, time.Second)
	if use > 0.10 {
		t.Errorf("throttled to 5%%, the process used %.1f%% of a CPU", 100*use)
	}
	if err := h.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := cg.read(); got != before {
		t.Fatalf("limit after undo = %v, want %v", got, before)
	}
	t.Logf("throttled: %.1f%% of a CPU", 100*use)
}

// cpuUsage is the share of one CPU the process pid used over d: its user
// and system time from /proc/PID/stat (clock ticks of 10 ms, so 5 % over a
// second is about 5 ticks).
func cpuUsage(t *testing.T, pid int, d time.Duration) float64 {
	t.Helper()
	read := func() time.Duration {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		// Fields after the command's closing parenthesis: state is the
		// first, utime and stime the 12th and 13th.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		u, _ := strconv.Atoi(f[11])
		s, _ := strconv.Atoi(f[12])
		return time.Duration(u+s) * 10 * time.Millisecond
	}
	start, t0 := read(), time.Now()
	time.Sleep(d)
	return float64(read()-start) / float64(time.Since(t0))
}
