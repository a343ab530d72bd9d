package main

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisha/redisha/sim"
	"github.com/redisha/redisha/sim/proxysim"
	"github.com/redisha/redisha/sim/vipsim"
)

// simModel is one simulator target as the command sees it.
type simModel struct {
	invariants []string
	mutations  map[string]int
	runner     func(mutation int, faults int, phase time.Duration) sim.Runner
}

var simModels = map[string]simModel{
	"vip": {
		invariants: vipsim.Invariants,
		mutations: map[string]int{"keep-vip": int(vipsim.KeepVIPOnRemove), "drop-priority-zero": int(vipsim.DropPriorityZero),
			"late-backup-timer": int(vipsim.LateBackupTimer)},
		runner: func(mut, faults int, phase time.Duration) sim.Runner {
			return vipsim.Runner(vipsim.Options{Mutation: vipsim.Mutation(mut), MaxFaults: faults, FaultPhase: phase})
		},
	},
	"proxy": {
		invariants: proxysim.Invariants,
		mutations: map[string]int{"stale-view-cache": int(proxysim.StaleViewCache), "ignore-epoch": int(proxysim.IgnoreEpoch),
			"drop-failed-checks": int(proxysim.DropFailedChecks), "sticky-route": int(proxysim.StickyRoute)},
		runner: func(mut, faults int, phase time.Duration) sim.Runner {
			return proxysim.Runner(proxysim.Options{Mutation: proxysim.Mutation(mut), MaxFaults: faults, FaultPhase: phase})
		},
	},
	// The proxy model with sentinel s3 replaced by the production witness core.
	"witness": {
		invariants: proxysim.Invariants,
		mutations:  map[string]int{"witness-no-persist": int(proxysim.WitnessNoPersist)},
		runner: func(mut, faults int, phase time.Duration) sim.Runner {
			return proxysim.Runner(proxysim.Options{Mutation: proxysim.Mutation(mut), MaxFaults: faults, FaultPhase: phase, Witness: true})
		},
	},
}

// newSimCmd is `redisha sim vip|proxy`: explore seeded fault schedules
// against the production cores under virtual time, or replay one seed.
func newSimCmd() *cobra.Command {
	var (
		schedules int
		seed      uint64
		workers   int
		trace     bool
		faults    int
		phase     time.Duration
		mutation  string
	)
	cmd := &cobra.Command{
		Use:   "sim vip|proxy|witness",
		Short: "Explore seeded fault schedules against the production cores in virtual time",
		Long: `Runs the production state machines (redisha-vip's driver, VRRP core and
codec, redisha-proxy's driver, routing core and reply parsers, and for "witness"
components/witness's voter as one of the three sentinels) on a simulated
network under virtual time, with faults drawn from a seed: partitions (one-way
too), loss, delay, corruption, crashes, restarts, freezes, graceful stops,
sentinel failovers. Schedule i uses seed S+i; every violation names its seed.

  redisha sim vip --schedules 5000 --seed 1     explore, print a table
  redisha sim vip --seed 1234 --trace           replay one seed event by event

The exit status is 1 when any schedule broke an invariant.`,
		// A broken invariant is a finding, not a usage mistake.
		SilenceUsage: true,
		Args:         cobra.ExactArgs(1),
		ValidArgs:    []string{"vip", "proxy"},
		RunE: func(cmd *cobra.Command, args []string) error {
			m, ok := simModels[args[0]]
			if !ok {
				return fmt.Errorf("unknown model %q: want vip, proxy or witness", args[0])
			}
			mut := 0
			if mutation != "" {
				if mut, ok = m.mutations[mutation]; !ok {
					return fmt.Errorf("unknown mutation %q for %s: want one of %s", mutation, args[0], strings.Join(keys(m.mutations), ", "))
				}
			}
			if schedules < 1 {
				return fmt.Errorf("--schedules must be at least 1")
			}
			if !cmd.Flags().Changed("seed") {
				var b [8]byte
				crand.Read(b[:])
				seed = binary.LittleEndian.Uint64(b[:]) >> 16 // short enough to type
			}
			// Runs allocate a lot of short-lived garbage over a small live
			// heap: fewer collections nearly double the throughput.
			defer debug.SetGCPercent(debug.SetGCPercent(400))
			run := m.runner(mut, faults, phase)
			out := cmd.OutOrStdout()
			if trace {
				return replay(out, args[0], run, seed)
			}
			s := sim.Explore(args[0], run, seed, schedules, workers)
			s.Print(out, m.invariants)
			if len(s.Failed) == 0 {
				return nil
			}
			fmt.Fprintln(out)
			for i, f := range s.Failed {
				if i == 10 {
					fmt.Fprintf(out, "... and %d more\n", len(s.Failed)-10)
					break
				}
				fmt.Fprintf(out, "seed %d: %s\n", f.Seed, firstProblem(f))
			}
			fmt.Fprintf(out, "\nreplay one: redisha sim %s --seed %d --trace%s\n", args[0], s.Failed[0].Seed, flagsEcho(cmd))
			return fmt.Errorf("%d of %d schedules broke an invariant", len(s.Failed), s.Schedules)
		},
	}
	f := cmd.Flags()
	f.IntVar(&schedules, "schedules", 1000, "number of schedules (seeds S, S+1, ...)")
	f.Uint64Var(&seed, "seed", 0, "first seed (default: random, printed)")
	f.IntVar(&workers, "workers", runtime.GOMAXPROCS(0), "parallel runs (results do not depend on it)")
	f.BoolVar(&trace, "trace", false, "replay --seed alone and print its schedule, trace and verdict")
	f.IntVar(&faults, "max-faults", 8, "most faults per schedule")
	f.DurationVar(&phase, "fault-phase", 60*time.Second, "virtual time during which faults start and end")
	f.StringVar(&mutation, "mutation", "", "plant a known bug in the adapter (shows the invariants catch it)")
	return cmd
}

func replay(out io.Writer, model string, run sim.Runner, seed uint64) error {
	r := run(seed, true)
	fmt.Fprintf(out, "model %s seed %d: %d events, %v virtual, trace hash %016x\n", model, seed, r.Events, r.Virtual, r.TraceHash)
	for _, l := range r.Trace {
		fmt.Fprintln(out, l)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(out, "NOTE (advisory)", n)
	}
	if !r.Failed() {
		fmt.Fprintln(out, "no invariant broken")
		return nil
	}
	for _, v := range r.Violations {
		fmt.Fprintln(out, "VIOLATION", v)
	}
	if r.Err != nil {
		return r.Err
	}
	return fmt.Errorf("seed %d broke %d invariant(s)", seed, len(r.Violations))
}

func firstProblem(r sim.Result) string {
	if r.Err != nil {
		return r.Err.Error()
	}
	return r.Violations[0].String()
}

func flagsEcho(cmd *cobra.Command) string {
	var s string
	for _, name := range []string{"max-faults", "fault-phase", "mutation"} {
		if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
			s += fmt.Sprintf(" --%s %s", name, fl.Value)
		}
	}
	return s
}

func keys(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
