package proxysim

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redisha/redisha/sim"
)

// helloSeeds is how many schedules the hello-path test explores: 1,000 in
// make test (about 90 CPU-seconds), 100 with -short; PROXYSIM_HELLO_SEEDS
// overrides (make sim-proxy-hello runs the 10,000 of issue 13) and
// PROXYSIM_HELLO_FIRST moves the first seed, for shards.
func helloSeeds(t *testing.T) int { return seedCount(t, "PROXYSIM_HELLO_SEEDS", 1000, 100) }

// seedCount is how many schedules a sweep explores: full in make test, short
// with -short, or the environment variable env when set (a positive count).
func seedCount(t *testing.T, env string, full, short int) int {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive count", env, v)
		}
		return n
	}
	if testing.Short() {
		return short
	}
	return full
}

// With the hello path on and a client forging hellos on the nodes (wrong
// run ids, right run ids naming another master, replays, higher epochs),
// the production core keeps every routing promise: never a deposed master,
// never two masters in one epoch, never a route no majority of sentinels
// stated.
func TestHelloPathHoldsInvariants(t *testing.T) {
	n := helloSeeds(t)
	first := uint64(1)
	if v := os.Getenv("PROXYSIM_HELLO_FIRST"); v != "" {
		f, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		first = f
	}
	s := sim.Explore("proxy-hello", Runner(Options{Hello: true, Forge: true}), first, n, 2)
	for i, f := range s.Failed {
		if i == 5 {
			break
		}
		t.Errorf("seed %d: %v (err %v); replay: Run(%d, true, Options{Hello: true, Forge: true})", f.Seed, f.Violations, f.Err, f.Seed)
	}
	if len(s.Failed) > 0 {
		t.Errorf("%d of %d schedules failed: %v", len(s.Failed), n, s.ByName)
	}
	if s.Stats["switches"] < float64(n)/10 {
		t.Fatalf("only %.0f master switches in %d schedules", s.Stats["switches"], n)
	}
	if s.Stats["forged_hellos"] < float64(n) {
		t.Fatalf("only %.0f forged hellos in %d schedules", s.Stats["forged_hellos"], n)
	}
	t.Logf("%d schedules, %.0f switches, %.0f forged hellos, %.0f s without a route", n, s.Stats["switches"], s.Stats["forged_hellos"], s.Stats["no_route_s"])
}

// The hello path does route where the direct path alone cannot: a run in
// which a hello completed a majority.
func TestHelloPathIsUsed(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		r := Run(seed, false, Options{Hello: true})
		if r.Stats["routed_via_hello"] > 0 {
			t.Logf("seed %d: routed on a majority completed by hellos", seed)
			return
		}
	}
	t.Fatal("no schedule in 300 routed on a majority completed by a hello")
}

// A core that takes hellos uncorroborated (here: the transport hands every
// hello to the core as a direct view) is caught.
func TestHelloPlantedBugIsFound(t *testing.T) {
	caught := []string{InvNotMajority, InvUnsaid, InvDeposed, InvTwoMasters}
	for seed := uint64(1); seed <= 500; seed++ {
		opt := Options{Hello: true, Forge: true, Mutation: HelloAsView}
		r := Run(seed, false, opt)
		if !slices.ContainsFunc(r.Violations, func(v sim.Violation) bool { return slices.Contains(caught, v.Invariant) }) {
			continue
		}
		again := Run(seed, true, opt)
		if !slices.Equal(names(again.Violations), names(r.Violations)) {
			t.Fatalf("seed %d does not reproduce %v", seed, r.Violations)
		}
		t.Logf("seed %d: %v", seed, strings.Join(names(r.Violations), ", "))
		return
	}
	t.Fatal("uncorroborated hellos not caught in 500 seeds")
}

func names(vs []sim.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Invariant)
	}
	return out
}
