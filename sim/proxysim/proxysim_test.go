package proxysim

import (
	"slices"
	"strings"
	"testing"

	"github.com/redisha/redisha/sim"
)

// The same seed replays the same run, and tracing does not change it.
func TestSameSeedSameTrace(t *testing.T) {
	for _, seed := range []uint64{2, 77, 1 << 33} {
		a := Run(seed, true, Options{})
		b := Run(seed, true, Options{})
		if a.TraceHash != b.TraceHash || !slices.Equal(a.Trace, b.Trace) || a.Events != b.Events {
			t.Fatalf("seed %d: traces differ (%d vs %d lines)", seed, len(a.Trace), len(b.Trace))
		}
		if c := Run(seed, false, Options{}); c.TraceHash != a.TraceHash || c.Events != a.Events {
			t.Fatalf("seed %d: keeping the trace changed the run", seed)
		}
	}
	// Map iteration order (in the cores, the models, the oracle) must never
	// leak into a run: many seeds, both models, twice each.
	for seed := uint64(100); seed < 106; seed++ {
		for _, opt := range []Options{{}, {Witness: true}} {
			a, b := Run(seed, false, opt), Run(seed, false, opt)
			if a.TraceHash != b.TraceHash || a.Events != b.Events {
				t.Fatalf("seed %d (witness %v): two runs differ", seed, opt.Witness)
			}
		}
	}
}

// The production core keeps every routing promise on a sample of schedules.
func TestProductionCoreHoldsInvariants(t *testing.T) {
	n := 100
	if testing.Short() {
		n = 40
	}
	s := sim.Explore("proxy", Runner(Options{}), 1, n, 2)
	for i, f := range s.Failed {
		if i == 5 {
			break
		}
		t.Errorf("seed %d: %v (err %v); replay: redisha sim proxy --seed %d --trace", f.Seed, f.Violations, f.Err, f.Seed)
	}
	if s.Stats["switches"] < float64(n)/10 {
		t.Fatalf("only %.0f master switches in %d schedules: the faults do not cause failovers", s.Stats["switches"], n)
	}
}

// The same with sentinel s3 being the production witness core: it takes
// part in down agreement and votes, follows failovers by hellos, answers the
// proxy, restarts from its state; routing and voter promises hold.
func TestWitnessAsThirdSentinel(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 20
	}
	s := sim.Explore("witness", Runner(Options{Witness: true}), 1, n, 2)
	for i, f := range s.Failed {
		if i == 5 {
			break
		}
		t.Errorf("seed %d: %v (err %v); replay: redisha sim witness --seed %d --trace", f.Seed, f.Violations, f.Err, f.Seed)
	}
	if s.Stats["switches"] < float64(n)/10 {
		t.Fatalf("only %.0f master switches in %d schedules", s.Stats["switches"], n)
	}
	// The witness really votes: some failover used its vote.
	voted := false
	for seed := uint64(1); seed < 50 && !voted; seed++ {
		r := Run(seed, true, Options{Witness: true})
		voted = strings.Contains(strings.Join(r.Trace, "\n"), "notice s3 +vote-for-leader")
	}
	if !voted {
		t.Fatal("the witness never voted in 50 schedules")
	}
}

// firstSeed returns the first seed in 1..limit whose run with mut breaks inv.
func firstSeed(mut Mutation, inv string, limit uint64) (uint64, bool) {
	for seed := uint64(1); seed <= limit; seed++ {
		r := Run(seed, false, Options{Mutation: mut, Witness: mut == WitnessNoPersist})
		if slices.ContainsFunc(r.Violations, func(v sim.Violation) bool { return v.Invariant == inv }) {
			return seed, true
		}
	}
	return 0, false
}

// Planted adapter bugs are caught by the invariant meant for them, and the
// seed reproduces the violation.
func TestPlantedBugsAreFound(t *testing.T) {
	cases := []struct {
		name string
		mut  Mutation
		want string
	}{
		{"cached views hide a partition", StaleViewCache, InvNoMajority},
		{"cached views hide a partition", StaleViewCache, InvCutOff},
		{"epochs ignored", IgnoreEpoch, InvNotMajority},
		{"failed checks dropped", DropFailedChecks, InvDeadRoute},
		{"route kept", StickyRoute, InvDeadRoute},
		{"route kept", StickyRoute, InvStale},
		{"witness state not persisted", WitnessNoPersist, InvWitness},
	}
	// The budget: "route kept" shows as a stale route in about 1 seed of
	// 450 (it needs a majority to name a node the proxy cannot route to for
	// the whole bound); the other cases are found within 60 seeds.
	const limit = 500
	for _, c := range cases {
		t.Run(c.name+"/"+c.want, func(t *testing.T) {
			t.Parallel()
			seed, ok := firstSeed(c.mut, c.want, limit)
			if !ok {
				t.Fatalf("%s: no %s violation in %d seeds", c.name, c.want, limit)
			}
			r := Run(seed, true, Options{Mutation: c.mut, Witness: c.mut == WitnessNoPersist})
			if !slices.ContainsFunc(r.Violations, func(v sim.Violation) bool { return v.Invariant == c.want }) {
				t.Errorf("%s: seed %d does not reproduce %s", c.name, seed, c.want)
			}
			t.Logf("%s: %s found with seed %d", c.name, c.want, seed)
		})
	}
}

// A crashed master is replaced, comes back still claiming master, is
// converted by the sentinels, and the proxy never routes to it meanwhile.
func TestOldMasterReturns(t *testing.T) {
	for seed := uint64(1); seed < 3000; seed++ {
		r := Run(seed, true, Options{MaxFaults: 1})
		if len(r.Schedule) != 2 || !strings.Contains(r.Schedule[1], "crash the master") {
			continue
		}
		tr := strings.Join(r.Trace, "\n")
		if !strings.Contains(tr, "+convert-to-slave") {
			continue // restarted before the failover
		}
		if r.Failed() {
			t.Fatalf("seed %d: %v", seed, r.Violations)
		}
		for _, want := range []string{"failover epoch 1", `route "10.0.1.1:6379" -> ""`, `-> "10.0.1.`, "REPLICAOF"} {
			if !strings.Contains(tr, want) {
				t.Fatalf("seed %d: trace lacks %q:\n%s", seed, want, tr)
			}
		}
		return
	}
	t.Fatal("no schedule with a returning old master in 3000 seeds")
}
