package spec

import (
	"math/rand/v2"
	"sort"
	"time"

	"github.com/redisha/redisha/scenarios/result"
)

// TimedFault is one concrete fault of a run: randomization resolved, repetitions unrolled.
type TimedFault struct {
	Entry    int           `json:"entry"`  // index in Scenario.Faults
	Repeat   int           `json:"repeat"` // 0-based repetition
	At       time.Duration `json:"at_ns"`
	Duration time.Duration `json:"duration_ns"` // 0: until the heal at the end of the workload
	Fault    Fault         `json:"fault"`       // Targets already picked
}

// End is when the fault is undone, given the end of the workload.
func (t TimedFault) End(workload time.Duration) time.Duration {
	if t.Duration == 0 || t.At+t.Duration > workload {
		return workload
	}
	return t.At + t.Duration
}

// Record is the entry as result.json lists it.
func (t TimedFault) Record() result.TimelineEntry {
	return result.TimelineEntry{At: t.At.String(), Duration: t.Duration.String(), Kind: t.Fault.Kind,
		Targets: t.Fault.Targets, A: t.Fault.A, B: t.Fault.B, Entry: t.Entry, Repeat: t.Repeat}
}

// Timeline resolves the fault timeline for seed: the same scenario and seed always give the same
// timeline. Faults without randomization ignore the seed.
func (s *Scenario) Timeline(seed uint64) []TimedFault {
	rng := rand.New(rand.NewPCG(seed, 0x7265646973686121)) // "redisha!"
	draw := func(max Duration) time.Duration {
		if max <= 0 {
			return 0
		}
		return time.Duration(rng.Int64N(int64(max)))
	}
	var out []TimedFault
	for i, f := range s.Faults {
		reps := f.Repeat
		if reps < 1 {
			reps = 1
		}
		for r := 0; r < reps; r++ {
			tf := TimedFault{Entry: i, Repeat: r, Fault: f}
			tf.At = f.At.D() + time.Duration(r)*f.Every.D() + draw(f.AtJitter)
			tf.Duration = f.Duration.D()
			if f.Duration > 0 {
				tf.Duration += draw(f.DurationJitter)
			}
			if f.Pick > 0 {
				idx := rng.Perm(len(f.Targets))[:f.Pick]
				sort.Ints(idx)
				picked := make([]string, 0, f.Pick)
				for _, j := range idx {
					picked = append(picked, f.Targets[j])
				}
				tf.Fault.Targets = picked
			} else {
				tf.Fault.Targets = append([]string(nil), f.Targets...)
			}
			if tf.At >= s.Workload.Duration.D() {
				continue
			}
			out = append(out, tf)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].At < out[b].At })
	return out
}

func sortStrings(s []string) []string { sort.Strings(s); return s }
