package daemon_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// maxGap returns the largest interval between consecutive adverts from
// src, by kernel timestamp, from src's last advert before mark on. A
// silence that another router ended by taking over counts up to that
// router's first advert: src may never advertise again (a master that
// finds it was frozen past the backup's Master_Down_Interval yields).
func (c *vrrpCapture) maxGap(mark int, src netip.Addr) time.Duration {
	var last time.Time
	var worst time.Duration
	all := c.adverts()
	for mark > 0 && (all[mark-1].Src != src || all[mark-1].Priority == 0) {
		mark--
	}
	for _, a := range all[max(mark-1, 0):] {
		if a.Priority == 0 || last.IsZero() && a.Src != src {
			continue
		}
		if !last.IsZero() {
			worst = max(worst, a.At.Sub(last))
		}
		if a.Src != src {
			break // taken over
		}
		last = a.At
	}
	return worst
}

// TestSlowMasterKeepsVIP measures what a slow master costs at the advert
// interval docs/vip.md proposes (200 ms; backup priority 100: Skew_Time
// 120 ms, Master_Down_Interval 720 ms): the master's redisha-vip frozen
// (SIGSTOP) for 0.5 s at several phases of its advert cycle, and CPU-starved
// (a cgroup with a 5% CPU quota) for 5 s. The backup must not take over
// while the gap between the master's adverts on its wire stayed below its
// Master_Down_Interval (the gap is measured, so a loaded machine that
// stretches the test's own 0.5 s sleep cannot fail the test, only a false
// takeover can); at least one round must have been a tolerated freeze of
// 0.45 s or more. A 1 s freeze must move the VIP once (the stalled-master
// rule). The numbers are logged for docs/vip.md.
func TestSlowMasterKeepsVIP(t *testing.T) {
	needNetns(t)
	const mdiB = 720 * time.Millisecond
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b")
	ha, hb := topo.Host("a"), topo.Host("b")
	va, vb := newView(t, ha.Netns), newView(t, hb.Netns)
	capB := captureVRRP(t, hb)
	b := startVIP(t, hb, vb, vipConfig(hb, 3, 100, watchInterval.String()))
	waitFor(t, "b master", 5*time.Second, func() bool { return vb.has(vipIP) })
	a := startVIP(t, ha, va, vipConfig(ha, 3, 200, watchInterval.String()))
	waitFor(t, "a master", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	time.Sleep(time.Second)
	transitions := func() int {
		s, err := b.status()
		if err != nil {
			t.Fatal(err)
		}
		return s.Transitions
	}
	// lastAdvert waits for a's next advert and returns its kernel time.
	lastAdvert := func() time.Time {
		m := capB.mark()
		return capB.firstAdvert(t, m, ha.IP)
	}
	// restoreA makes a the master again after a takeover. When a's
	// silence tripped the stalled-master rule, a yielded and holds off
	// preemption for stall_hold (60 s): b is stopped (priority 0, a takes
	// over after its Skew_Time) and started again as the backup.
	restoreA := func() {
		t.Helper()
		aBack := func() bool { return va.has(vipIP) && !vb.has(vipIP) }
		deadline := time.Now().Add(2 * time.Second)
		for !aBack() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if !aBack() {
			b.proc.Stop()
			waitFor(t, "a master once b stopped", 5*time.Second, aBack)
			b.proc.Start()
			waitFor(t, "b status endpoint", 10*time.Second, func() bool { _, err := b.status(); return err == nil })
		}
		time.Sleep(time.Second)
	}
	check := func(what string, mark, before int) {
		t.Helper()
		time.Sleep(mdiB + watchInterval) // anything the slowness caused has happened
		gap, moved := capB.maxGap(mark, ha.IP), transitions() != before
		t.Logf("%s: longest gap between a's adverts %v (b's Master_Down_Interval %v); b took over: %v", what, gap, mdiB, moved)
		if moved && gap < mdiB-10*time.Millisecond {
			t.Errorf("%s: false takeover: b became master while a's adverts were at most %v apart", what, gap)
		}
		if moved { // restore a as master for the next round
			restoreA()
		}
	}

	tolerated := 0
	for _, phase := range []float64{0, 0.25, 0.5, 0.75, 0.9} {
		at := lastAdvert().Add(time.Duration(phase * float64(watchInterval)))
		time.Sleep(time.Until(at))
		mark, before := capB.mark(), transitions()
		a.proc.Signal(syscall.SIGSTOP)
		time.Sleep(500 * time.Millisecond)
		a.proc.Signal(syscall.SIGCONT)
		what := fmt.Sprintf("SIGSTOP 0.5 s at %.0f%% of the advert cycle", phase*100)
		check(what, mark, before)
		if gap := capB.maxGap(mark, ha.IP); gap >= 450*time.Millisecond && gap < mdiB-20*time.Millisecond {
			tolerated++
		}
	}
	// The test's own 0.5 s sleep may stretch on a loaded machine (then a
	// takeover can be right); at least one round must have been a real
	// freeze of about 0.5 s that the backup tolerated.
	if tolerated == 0 {
		t.Errorf("no round froze the master for 0.45 s to %v on the wire: nothing shown", mdiB-20*time.Millisecond)
	}

	// CPU starvation: a's daemon in a cgroup (v1 cpu controller, the
	// equivalent of cgroup v2's cpu.max "5000 100000") for 5 s.
	cg := "/sys/fs/cgroup/cpu/rhv-starve"
	if err := os.Mkdir(cg, 0o755); err != nil && !os.IsExist(err) {
		t.Fatalf("cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Move every task back to the root group, then remove ours.
		if b, err := os.ReadFile(filepath.Join(cg, "tasks")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				os.WriteFile("/sys/fs/cgroup/cpu/tasks", []byte(pid), 0o644)
			}
		}
		os.Remove(cg)
	})
	for f, v := range map[string]string{"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "5000"} {
		if err := os.WriteFile(filepath.Join(cg, f), []byte(v), 0o644); err != nil {
			t.Fatalf("cgroup %s: %v", f, err)
		}
	}
	mark, before := capB.mark(), transitions()
	// Every thread of the daemon: cgroup v1 "tasks" takes thread ids.
	threads, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", a.proc.Pid()))
	for _, th := range threads {
		if err := os.WriteFile(filepath.Join(cg, "tasks"), []byte(th.Name()), 0o644); err != nil {
			t.Fatalf("cgroup tasks: %v", err)
		}
	}
	time.Sleep(5 * time.Second)
	for _, th := range threads {
		os.WriteFile("/sys/fs/cgroup/cpu/tasks", []byte(th.Name()), 0o644)
	}
	check("CPU quota 5% for 5 s", mark, before)

	// Beyond the budget: a 1 s freeze. The backup takes over (correctly:
	// no advert for longer than its Master_Down_Interval). When the master
	// wakes, RFC 5798 alone would make the higher priority win between two
	// masters and take the VIP back (measured before the stalled-master
	// rule: 2 moves, 285 ms on both). With the rule (stall_hold, on by
	// default) it hears the new master's queued adverts during its 10 ms
	// listen and yields: one move.
	time.Sleep(time.Until(lastAdvert()))
	before = transitions()
	mon := monitorOverlap(va, vb)
	a.proc.Signal(syscall.SIGSTOP)
	time.Sleep(time.Second)
	a.proc.Signal(syscall.SIGCONT)
	time.Sleep(2 * time.Second)
	s, _ := b.status()
	overlap := mon.Max()
	t.Logf("SIGSTOP 1 s: b's state changes %d (now %s, VIP on a %v, on b %v); longest double ownership %v",
		s.Transitions-before, s.State, va.has(vipIP), vb.has(vipIP), overlap)
	if s.Transitions-before != 1 || s.State != "MASTER" || va.has(vipIP) || !vb.has(vipIP) {
		t.Errorf("after a 1 s freeze of the master: b changed state %d times and is %s (VIP on a %v, on b %v); want one move to b",
			s.Transitions-before, s.State, va.has(vipIP), vb.has(vipIP))
	}
	if sa, _ := a.status(); sa.State != "BACKUP" {
		t.Errorf("the frozen master is %s after waking, want BACKUP (yielded, preemption held)", sa.State)
	}
	// Both hold the VIP from b's takeover until a, woken, yields: a frozen
	// holder cannot drop an address, so that time (about 1 s - 720 ms plus
	// a's 10 ms listen) is inherent and only logged; the test's own sleep
	// may stretch the freeze on a loaded machine.
}
