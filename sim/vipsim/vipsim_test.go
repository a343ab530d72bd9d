package vipsim

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/sim"
)

// The same seed replays the same run: schedule, every event, every verdict.
func TestSameSeedSameTrace(t *testing.T) {
	for _, seed := range []uint64{1, 42, 102213, 1 << 40} {
		a := Run(seed, true, Options{})
		b := Run(seed, true, Options{})
		if a.TraceHash != b.TraceHash || !slices.Equal(a.Trace, b.Trace) || a.Events != b.Events {
			t.Fatalf("seed %d: traces differ (%d vs %d lines, hash %x vs %x)", seed, len(a.Trace), len(b.Trace), a.TraceHash, b.TraceHash)
		}
		// Keeping the trace must not change the run.
		c := Run(seed, false, Options{})
		if c.TraceHash != a.TraceHash {
			t.Fatalf("seed %d: keeping the trace changed the run", seed)
		}
		if len(a.Trace) < 50 {
			t.Fatalf("seed %d: only %d trace lines", seed, len(a.Trace))
		}
	}
	if Run(1, false, Options{}).TraceHash == Run(2, false, Options{}).TraceHash {
		t.Fatal("seeds 1 and 2 gave the same trace")
	}
}

// The production machine keeps every promise on a sample of schedules.
func TestProductionMachineHoldsInvariants(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 300
	}
	s := sim.Explore("vip", Runner(Options{}), 1, n, 2)
	for i, f := range s.Failed {
		if i == 5 {
			break
		}
		t.Errorf("seed %d: %v (err %v); replay: redisha sim vip --seed %d --schedules 1 --trace", f.Seed, f.Violations, f.Err, f.Seed)
	}
	if s.Events < n*100 {
		t.Fatalf("only %d events in %d schedules: the model is not running", s.Events, n)
	}
}

// Planted bugs in the adapter are found, each by the invariant meant for it,
// and the reported seed reproduces the violation.
func TestPlantedBugsAreFound(t *testing.T) {
	cases := []struct {
		mut  Mutation
		want string
	}{
		{KeepVIPOnRemove, InvTwoHolders},
		{KeepVIPOnRemove, InvFinalOne},
		{DropPriorityZero, InvHandover},
	}
	for _, c := range cases {
		s := sim.Explore("vip", Runner(Options{Mutation: c.mut}), 1, 300, 2)
		seeds := s.Seeds[c.want]
		if len(seeds) == 0 {
			t.Errorf("mutation %d: no %s violation in 300 schedules (found %v)", c.mut, c.want, s.ByName)
			continue
		}
		r := Run(seeds[0], true, Options{Mutation: c.mut})
		if !slices.ContainsFunc(r.Violations, func(v sim.Violation) bool { return v.Invariant == c.want }) {
			t.Errorf("mutation %d: seed %d does not reproduce %s", c.mut, seeds[0], c.want)
		}
	}
}

// A fixed schedule: the master is stopped gracefully while the network is
// clean, and the backup takes over within Skew_Time + one advert.
func TestGracefulHandoverTiming(t *testing.T) {
	for seed := uint64(1); seed < 2000; seed++ {
		r := Run(seed, true, Options{Routers: 2, MaxFaults: 1, FaultPhase: 30 * time.Second})
		if len(r.Schedule) != 2 || !strings.Contains(r.Schedule[1], "graceful stop") {
			continue
		}
		if r.Failed() {
			t.Fatalf("seed %d: %v", seed, r.Violations)
		}
		return
	}
	t.Fatal("no single-shutdown schedule among 2000 seeds")
}
