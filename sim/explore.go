package sim

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Violation is one broken invariant in one run.
type Violation struct {
	At        time.Duration // virtual time since Epoch
	Invariant string        // short stable name
	Detail    string
}

func (v Violation) String() string {
	return fmt.Sprintf("%.3fs %s: %s", v.At.Seconds(), v.Invariant, v.Detail)
}

// Result is the outcome of one seeded schedule.
type Result struct {
	Seed       uint64
	Violations []Violation
	// Notes are advisory findings: worth a look, not a broken promise.
	Notes      []Violation
	Schedule   []string // the faults drawn from the seed, readable
	Events     int      // events run
	Virtual    time.Duration
	TraceHash  uint64
	TraceLines int
	Trace      []string // kept only when asked
	Err        error    // the run itself failed (e.g. livelock)
	// Stats are model-specific measurements (e.g. seconds without a VIP holder).
	Stats map[string]float64
}

// Failed reports whether the run broke an invariant or did not finish.
func (r Result) Failed() bool { return len(r.Violations) > 0 || r.Err != nil }

// Finish fills the world-derived fields of r.
func (r *Result) Finish(w *World) {
	r.Events = w.Steps()
	r.Virtual = w.Elapsed()
	r.TraceHash = w.Trace().Hash()
	r.TraceLines = w.Trace().Len()
	r.Trace = w.Trace().Lines()
}

// Runner runs one schedule for a seed; keepTrace asks for the trace lines.
type Runner func(seed uint64, keepTrace bool) Result

// Summary aggregates an exploration.
type Summary struct {
	Model     string
	FirstSeed uint64
	Schedules int
	Wall      time.Duration
	Events    int
	Virtual   time.Duration
	Failed    []Result       // runs with violations or errors, in seed order
	ByName    map[string]int // violations per invariant (runs)
	Seeds     map[string][]uint64
	Notes     map[string][]uint64 // advisory findings per name: seeds
	Stats     map[string]float64  // summed per-run stats
}

// Explore runs n schedules with seeds first, first+1, ... on workers
// goroutines (each run is independent and single-threaded, so the results do
// not depend on the number of workers) and collects them in seed order.
func Explore(model string, run Runner, first uint64, n, workers int) Summary {
	s := Summary{Model: model, FirstSeed: first, Schedules: n, ByName: map[string]int{},
		Seeds: map[string][]uint64{}, Notes: map[string][]uint64{}, Stats: map[string]float64{}}
	start := time.Now()
	workers = max(1, min(workers, n))
	results := make([]Result, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				r := run(first+uint64(i), false)
				r.Trace = nil
				results[i] = r
			}
		}()
	}
	wg.Wait()
	for _, r := range results {
		s.Events += r.Events
		s.Virtual += r.Virtual
		for k, v := range r.Stats {
			s.Stats[k] += v
		}
		noted := map[string]bool{}
		for _, v := range r.Notes {
			if !noted[v.Invariant] {
				noted[v.Invariant] = true
				s.Notes[v.Invariant] = append(s.Notes[v.Invariant], r.Seed)
			}
		}
		if !r.Failed() {
			continue
		}
		s.Failed = append(s.Failed, r)
		seen := map[string]bool{}
		for _, v := range r.Violations {
			if !seen[v.Invariant] {
				seen[v.Invariant] = true
				s.ByName[v.Invariant]++
				s.Seeds[v.Invariant] = append(s.Seeds[v.Invariant], r.Seed)
			}
		}
		if r.Err != nil {
			s.ByName["run-error"]++
			s.Seeds["run-error"] = append(s.Seeds["run-error"], r.Seed)
		}
	}
	s.Wall = time.Since(start)
	return s
}

// Rate is schedules per wall-clock second.
func (s Summary) Rate() float64 {
	if s.Wall <= 0 {
		return 0
	}
	return float64(s.Schedules) / s.Wall.Seconds()
}

// Print writes the summary table: throughput, then one row per invariant
// broken with the first seeds that reproduce it.
func (s Summary) Print(w io.Writer, invariants []string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\tschedules\tseeds\twall\tschedules/s\tevents/s\tvirtual/wall\tfailed\n")
	speed := 0.0
	if s.Wall > 0 {
		speed = s.Virtual.Seconds() / s.Wall.Seconds()
	}
	evs := 0.0
	if s.Wall > 0 {
		evs = float64(s.Events) / s.Wall.Seconds()
	}
	fmt.Fprintf(tw, "%s\t%d\t%d..%d\t%v\t%.0f\t%.0f\t%.0fx\t%d\n", s.Model, s.Schedules, s.FirstSeed,
		s.FirstSeed+uint64(s.Schedules)-1, s.Wall.Round(time.Millisecond), s.Rate(), evs, speed, len(s.Failed))
	tw.Flush()
	fmt.Fprintln(w)
	names := append([]string(nil), invariants...)
	for k := range s.ByName {
		if !contains(names, k) {
			names = append(names, k)
		}
	}
	fmt.Fprintf(tw, "invariant\tviolating runs\tfirst seeds\n")
	for _, k := range names {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", k, s.ByName[k], firstSeeds(s.Seeds[k]))
	}
	notes := make([]string, 0, len(s.Notes))
	for k := range s.Notes {
		notes = append(notes, k)
	}
	sort.Strings(notes)
	for _, k := range notes {
		fmt.Fprintf(tw, "%s (advisory)\t%d\t%s\n", k, len(s.Notes[k]), firstSeeds(s.Notes[k]))
	}
	tw.Flush()
	if len(s.Stats) > 0 {
		fmt.Fprintln(w)
		keys := make([]string, 0, len(s.Stats))
		for k := range s.Stats {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(tw, "measure\tmean per schedule\n")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%.3f\n", k, s.Stats[k]/float64(max(s.Schedules, 1)))
		}
		tw.Flush()
	}
}

func firstSeeds(seeds []uint64) string {
	var shown []string
	for i, sd := range seeds {
		if i == 5 {
			shown = append(shown, "...")
			break
		}
		shown = append(shown, fmt.Sprint(sd))
	}
	return strings.Join(shown, " ")
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
