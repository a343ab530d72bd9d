package daemon_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// TestTrackingAndNotify: a command check with a negative weight on the master
// drops its priority below the backup's, which takes over (preemption); notify
// hooks report each state; the check recovering gives the VIP back.
func TestTrackingAndNotify(t *testing.T) {
	needNetns(t)
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b")
	ha, hb := topo.Host("a"), topo.Host("b")
	va, vb := newView(t, ha.Netns), newView(t, hb.Netns)
	dir := t.TempDir()
	healthy := filepath.Join(dir, "healthy")
	events := filepath.Join(dir, "events")
	if err := os.WriteFile(healthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The timeout is explicit: the default (the interval, 50 ms) is shorter
	// than a fork+exec of test(1) on a loaded machine, and a timed-out check
	// is a failing one.
	extra := fmt.Sprintf(`track:
  - {name: flag, command: [test, -e, %s], interval: 50ms, timeout: 5s, rise: 2, fall: 2, weight: -150}
notify:
  any: [sh, -c, 'echo "$1 $2 $3" >> %s', notify]
`, healthy, events)
	// b first: a then starts at priority 50 under b's adverts (priority
	// 100) and can only become master once its first check result lifts it
	// to 200. Started alone, a would race its first check result against
	// its own Master_Down_Interval (380 ms) and, on a loaded machine, become
	// master at 50 before the check reported.
	startVIP(t, hb, vb, vipConfig(hb, 3, 100, "100ms"))
	waitFor(t, "b master", 5*time.Second, func() bool { return vb.has(vipIP) })
	a := startVIP(t, ha, va, vipConfig(ha, 3, 200, "100ms")+extra)
	waitFor(t, "a master", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })

	os.Remove(healthy) // a: 200 - 150 = 50 < 100
	waitFor(t, "b to preempt a after a's check failed", 5*time.Second, func() bool { return vb.has(vipIP) && !va.has(vipIP) })
	s, err := a.status()
	if err != nil {
		t.Fatal(err)
	}
	if s.Priority != 50 || s.State != "BACKUP" || len(s.Tracks) != 1 || s.Tracks[0].OK {
		t.Fatalf("a after failing check: %+v", s)
	}
	os.WriteFile(healthy, nil, 0o644)
	waitFor(t, "a to take the VIP back", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })

	waitFor(t, "notify hooks", 2*time.Second, func() bool {
		b, _ := os.ReadFile(events)
		return strings.Count(string(b), "\n") >= 4
	})
	got, _ := os.ReadFile(events)
	// Start-up: the check has not reported yet and counts as failing (50).
	want := "a BACKUP 50\na MASTER 200\na BACKUP 50\na MASTER 200\n"
	if string(got) != want {
		t.Fatalf("notify events:\n%s\nwant:\n%s", got, want)
	}
}

// TestSplitBrainHeal: while a and b cannot hear each other both are master
// and the client follows the last GARP; when the partition heals, the winner
// (a, higher priority) re-announces the VIP with gratuitous ARP, so the client
// goes back to it without waiting for its ARP entry to expire.
func TestSplitBrainHeal(t *testing.T) {
	needNetns(t)
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b", "c")
	ha, hb, hc := topo.Host("a"), topo.Host("b"), topo.Host("c")
	va, vb, vc := newView(t, ha.Netns), newView(t, hb.Netns), newView(t, hc.Netns)
	a := startVIP(t, ha, va, vipConfig(ha, 3, 200, "100ms"))
	b := startVIP(t, hb, vb, vipConfig(hb, 3, 100, "100ms"))
	waitFor(t, "a master", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	touchVIP(hc)

	heal := topo.Cut(ha, hb)
	waitFor(t, "b master too during the partition", 5*time.Second, func() bool { return vb.has(vipIP) })
	waitFor(t, "client to follow b's GARP", time.Second, func() bool { return macEqual(vc.neighMAC(vipIP), vb.mac) })
	if a.state(t) != "MASTER" || b.state(t) != "MASTER" {
		t.Fatal("expected two masters during the partition")
	}
	heal()
	waitFor(t, "b to yield", 3*time.Second, func() bool { return !vb.has(vipIP) })
	waitFor(t, "client back on a via the healing GARP", 2*time.Second, func() bool { return macEqual(vc.neighMAC(vipIP), va.mac) })
	if who, err := whoAnswers(hc); err != nil || who != "a" {
		t.Fatalf("after healing the VIP answered by %q (%v), want a", who, err)
	}
}

// TestUnicastAndChecksumForms: unicast peers instead of multicast, one side
// sending the message-only VRRPv3 checksum and the other the pseudo-header
// form; both accept each other's adverts and hand over as usual. A third
// router that is not among their peers (c, priority 250, sending to both)
// is dropped and counted (peer): it neither preempts a nor stops b's
// takeover.
func TestUnicastAndChecksumForms(t *testing.T) {
	needNetns(t)
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b", "c")
	ha, hb, hc := topo.Host("a"), topo.Host("b"), topo.Host("c")
	va, vb, vc := newView(t, ha.Netns), newView(t, hb.Netns), newView(t, hc.Netns)
	a := startVIP(t, ha, va, vipConfig(ha, 3, 200, "100ms")+
		fmt.Sprintf("unicast_peers: [%s]\nchecksum: message-only\n", hb.IP))
	b := startVIP(t, hb, vb, vipConfig(hb, 3, 100, "100ms")+fmt.Sprintf("unicast_peers: [%s]\n", ha.IP))
	waitFor(t, "a master", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	time.Sleep(500 * time.Millisecond)
	for _, n := range []*vipNode{a, b} {
		s, err := n.status()
		if err != nil {
			t.Fatal(err)
		}
		if bad := badPackets(s); len(bad) > 0 {
			t.Fatalf("%s dropped packets: %v", n.host.Name, bad)
		}
	}
	if s, _ := b.status(); s.State != "BACKUP" || s.AdvertsReceived < 3 || s.Master != ha.IP.String() {
		t.Fatalf("b: %+v", s)
	}

	c := startVIP(t, hc, vc, vipConfig(hc, 3, 250, "100ms")+fmt.Sprintf("unicast_peers: [%s, %s]\n", ha.IP, hb.IP))
	waitFor(t, "c master (it hears nobody it accepts)", 5*time.Second, func() bool { return vc.has(vipIP) })
	for _, n := range []*vipNode{a, b} {
		waitFor(t, n.host.Name+" to drop c's adverts (peer)", 5*time.Second, func() bool {
			s, err := n.status()
			return err == nil && s.BadPackets["peer"] >= 5
		})
		s, _ := n.status()
		if bad := badPackets(s); len(bad) != 1 {
			t.Fatalf("%s: drops %v, want only peer", n.host.Name, bad)
		}
	}
	if a.state(t) != "MASTER" || b.state(t) != "BACKUP" {
		t.Fatalf("a non-peer took part: a=%s b=%s", a.state(t), b.state(t))
	}
	if log := readFile(t, a.proc.LogPath()); strings.Count(log, "reason=peer") != 1 {
		t.Fatalf("a logged %d peer drops, want 1 (once a minute):\n%s", strings.Count(log, "reason=peer"), log)
	}
	c.proc.Stop()
	a.proc.Stop()
	waitFor(t, "b to take over over unicast", 2*time.Second, func() bool { return vb.has(vipIP) })
}
