package proxysim

import (
	"testing"

	"github.com/redisha/redisha/sim"
)

// TestWitnessHeldRepliesInSim: the simulator runs the production hold of
// is-master-down-by-addr replies (a model sentinel that goes SDOWN just
// before the witness gets its reply when the witness's own SDOWN fires),
// through its transport's held-reply path, and the voter invariants
// (never down within down-after of a PONG, one vote per epoch) hold.
func TestWitnessHeldRepliesInSim(t *testing.T) {
	n := 30
	if testing.Short() {
		n = 10
	}
	s := sim.Explore("witness-held", Runner(Options{Witness: true}), 1, n, 2)
	for i, f := range s.Failed {
		if i == 5 {
			break
		}
		t.Errorf("seed %d: %v (err %v); replay: redisha sim witness --seed %d --trace", f.Seed, f.Violations, f.Err, f.Seed)
	}
	t.Logf("%d schedules: %.0f replies held, %.0f released down", n, s.Stats["witness_held"], s.Stats["witness_held_released_down"])
	if s.Stats["witness_held"] == 0 || s.Stats["witness_held_released_down"] == 0 {
		t.Fatalf("no held reply released down in %d schedules: the simulator does not exercise the hold", n)
	}
}
