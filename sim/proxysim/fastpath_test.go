package proxysim

import (
	"strings"
	"testing"

	"github.com/redisha/redisha/sim"
)

// fastSeeds: 1,000 schedules in make test, 100 with -short;
// PROXYSIM_FAST_SEEDS overrides.
func fastSeeds(t *testing.T) int { return seedCount(t, "PROXYSIM_FAST_SEEDS", 1000, 100) }

// With the promotion fast path on, the production core keeps every routing
// promise: never a deposed master, never two masters in one epoch, and a
// route outside the majority rule only as a provisional route to a replica
// a majority-elected leader promoted, confirmed or withdrawn within the
// bound (InvProvisional). The fast path must really route.
func TestFastPathHoldsInvariants(t *testing.T) {
	n := fastSeeds(t)
	s := sim.Explore("proxy-fast", Runner(Options{FastPath: true}), 1, n, 2)
	for i, f := range s.Failed {
		if i == 5 {
			break
		}
		t.Errorf("seed %d: %v (err %v); replay: Run(%d, true, Options{FastPath: true})", f.Seed, f.Violations, f.Err, f.Seed)
	}
	if len(s.Failed) > 0 {
		t.Errorf("%d of %d schedules failed: %v", len(s.Failed), n, s.ByName)
	}
	if s.Stats["switches"] < float64(n)/10 {
		t.Fatalf("only %.0f master switches in %d schedules", s.Stats["switches"], n)
	}
	if s.Stats["fast_path_routed"] < float64(n)/20 {
		t.Fatalf("only %.0f provisional routes in %d schedules: the fast path is not exercised", s.Stats["fast_path_routed"], n)
	}
	t.Logf("%d schedules: %.0f switches, %.0f provisional routes (%.0f confirmed, %.0f withdrawn), %.0f provisional steps checked",
		n, s.Stats["switches"], s.Stats["fast_path_routed"], s.Stats["fast_path_confirmed"], s.Stats["fast_path_withdrawn"], s.Stats["provisional_steps"])
}

// The model's sentinels publish the failover's events in sentinel's order
// with its payloads, and the fast path routes before +switch-master.
func TestFastPathEventOrder(t *testing.T) {
	for seed := uint64(1); seed < 2000; seed++ {
		r := Run(seed, true, Options{FastPath: true, MaxFaults: 1})
		if len(r.Schedule) != 2 || !strings.Contains(r.Schedule[1], "crash the master") {
			continue
		}
		tr := strings.Join(r.Trace, "\n")
		if !strings.Contains(tr, "+failover-state-wait-promotion") {
			continue
		}
		if r.Failed() {
			t.Fatalf("seed %d: %v", seed, r.Violations)
		}
		// Every event of sentinel's failover reaches the proxy with its real
		// payload (the simulated network may reorder messages published in
		// one tick; sentinel's own order is in cluster.go).
		for _, want := range []string{"+new-epoch", "+try-failover", "+vote-for-leader", "+elected-leader",
			"+failover-state-select-slave", "+selected-slave", "+failover-state-send-slaveof-noone"} {
			if !strings.Contains(tr, "proxy: notice s") || !strings.Contains(tr, want+" ") {
				t.Fatalf("seed %d: no %q in the trace:\n%s", seed, want, tr)
			}
		}
		// The provisional route comes between the leader's SLAVEOF NO ONE
		// and its +promoted-slave (its next INFO, a sentinel tick later).
		at := 0
		for _, want := range []string{"+failover-state-wait-promotion slave", `proxy: route "" -> "10.0.1.`, "+promoted-slave", "+switch-master"} {
			i := strings.Index(tr[at:], want)
			if i < 0 {
				t.Fatalf("seed %d: %q not after the previous step in the trace:\n%s", seed, want, tr)
			}
			at += i
		}
		t.Logf("seed %d: provisional route before +promoted-slave", seed)
		return
	}
	t.Fatal("no schedule with a master crash and a fast-path failover in 2000 seeds")
}
