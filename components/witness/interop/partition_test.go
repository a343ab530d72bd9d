package interop_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// TestNoFailoverWhenOnlyOneSentinelIsCutOff: the master (with its co-located
// sentinel) is reachable from the witness but cut off from the other
// sentinel. That sentinel sees the master down, asks its peers, and the
// witness answers "not down": no ODOWN, no failover.
func TestNoFailoverWhenOnlyOneSentinelIsCutOff(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireBinary(t, "redis-server", "redis-sentinel", "ip", "iptables")
	topo := testenv.NewTopology(t, "rhw-", netip.MustParsePrefix("10.79.0.0/24"), "m", "r", "s2", "w")
	m, r, s2h, wh := topo.Host("m"), topo.Host("r"), topo.Host("s2"), topo.Host("w")

	master := testenv.StartRedis(t, testenv.RedisOptions{Host: m.IP.String(), Port: 6379, Netns: m.Netns})
	testenv.StartRedis(t, testenv.RedisOptions{Host: r.IP.String(), Port: 6379, Netns: r.Netns, ReplicaOf: master.Addr()})
	eventually(t, 30*time.Second, "the replica to sync", func() bool { return replicaOnline(t, master.Addr()) })
	so := func(h *testenv.Host) testenv.SentinelOptions {
		return testenv.SentinelOptions{Host: h.IP.String(), Port: 26379, Netns: h.Netns, MasterAddr: master.Addr(),
			DownAfterMs: downAfterMs, FailoverTimeout: failoverTimeout}
	}
	s1 := testenv.StartSentinel(t, so(m))
	s2 := testenv.StartSentinel(t, so(s2h))
	w := startWitness(t, witnessOpts{Host: wh.IP.String(), Netns: wh.Netns, MasterAddr: master.Addr()})
	meshReady(t, s1, s2, w)

	heal := topo.Cut(m, s2h)
	defer heal()
	eventually(t, 10*time.Second, "the cut-off sentinel to see the master down", func() bool {
		return strings.Contains(readLog(s2), "+sdown master mymaster")
	})
	// 3x the loopback failover time measured by TestFailoverNeedsWitnessVote (~3.3 s).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range []*testenv.Process{s1, s2, w} {
			if a := masterAddr(t, p.Addr()); a != master.Addr() {
				t.Fatalf("%s moved the master to %s during a one-sided partition", p.Name, a)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	s2log := readLog(s2)
	for _, ev := range []string{"+odown", "+try-failover", "+switch-master"} {
		if strings.Contains(s2log, ev) {
			t.Errorf("cut-off sentinel logged %s", ev)
		}
	}
	wm, _ := do(t, w.Addr(), "SENTINEL", "MASTER", "mymaster").Pairs()
	if wm["flags"] != "master" {
		t.Errorf("witness flags %q: it reaches the master, it must not call it down", wm["flags"])
	}
	if strings.Contains(readLog(w), "+sdown master") {
		t.Error("witness logged +sdown for a master it reaches")
	}
	// The witness is what the cut-off sentinel asked: it knows the witness
	// says "not down" (no master_down flag).
	for id, flags := range sentinelsOf(t, s2.Addr()) {
		if id == myID(t, w.Addr()) && strings.Contains(flags, "master_down") {
			t.Errorf("cut-off sentinel believes the witness reported the master down: %s", flags)
		}
	}
}
