package proxysim

import (
	"testing"

	"github.com/redisha/redisha/sim"
)

// The promotion fast path with the production witness as sentinel s3: the
// witness answers the proxy's SENTINEL MYID (asked for the fast path
// alone, without the hello path), and its +vote-for-leader counts toward
// the leader's majority as a sentinel's does. Every invariant holds,
// InvProvisional included, and the fast path really routes.
func TestFastPathWithWitness(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	opt := Options{FastPath: true, Witness: true}
	s := sim.Explore("proxy-fast-witness", Runner(opt), 1, n, 2)
	for i, f := range s.Failed {
		if i == 5 {
			break
		}
		t.Errorf("seed %d: %v (err %v); replay: Run(%d, true, Options{FastPath: true, Witness: true})", f.Seed, f.Violations, f.Err, f.Seed)
	}
	if len(s.Failed) > 0 {
		t.Errorf("%d of %d schedules failed: %v", len(s.Failed), n, s.ByName)
	}
	if s.Stats["witness_votes"] < float64(n)/10 {
		t.Fatalf("the witness voted in only %.0f epochs in %d schedules", s.Stats["witness_votes"], n)
	}
	if s.Stats["fast_path_routed"] < float64(n)/20 {
		t.Fatalf("only %.0f provisional routes in %d schedules: the fast path is not exercised", s.Stats["fast_path_routed"], n)
	}
	t.Logf("%d schedules: %.0f switches, %.0f witness votes, %.0f provisional routes (%.0f confirmed, %.0f withdrawn), %.0f provisional steps checked",
		n, s.Stats["switches"], s.Stats["witness_votes"], s.Stats["fast_path_routed"], s.Stats["fast_path_confirmed"],
		s.Stats["fast_path_withdrawn"], s.Stats["provisional_steps"])
}

// The redisha stack's proxy configuration, all at once: the hello path (with
// a client forging hellos), the promotion fast path, and the production
// witness as s3. Every invariant holds (PROXYSIM_STACK_SEEDS schedules: 300
// in make test, 30 with -short).
func TestStackConfigHoldsInvariants(t *testing.T) {
	n := seedCount(t, "PROXYSIM_STACK_SEEDS", 300, 30)
	opt := Options{Hello: true, Forge: true, FastPath: true, Witness: true}
	s := sim.Explore("proxy-stack", Runner(opt), 1, n, 2)
	for i, f := range s.Failed {
		if i == 5 {
			break
		}
		t.Errorf("seed %d: %v (err %v); replay: Run(%d, true, %+v)", f.Seed, f.Violations, f.Err, f.Seed, opt)
	}
	if len(s.Failed) > 0 {
		t.Errorf("%d of %d schedules failed: %v", len(s.Failed), n, s.ByName)
	}
	if s.Stats["switches"] < float64(n)/10 || s.Stats["fast_path_routed"] < float64(n)/20 {
		t.Fatalf("%.0f switches and %.0f provisional routes in %d schedules: the stack's paths are not exercised", s.Stats["switches"], s.Stats["fast_path_routed"], n)
	}
	t.Logf("%d schedules: %.0f switches, %.0f witness votes, %.0f provisional routes (%.0f confirmed, %.0f withdrawn)",
		n, s.Stats["switches"], s.Stats["witness_votes"], s.Stats["fast_path_routed"], s.Stats["fast_path_confirmed"], s.Stats["fast_path_withdrawn"])
}
