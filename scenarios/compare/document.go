package compare

import (
	"fmt"
	"slices"
	"time"
)

// File is the name of the JSON document a comparison writes (and a shard leaves for the merge).
const File = "compare.json"

// Document is compare.json: the comparison with what produced it. A shard's document lists the
// runs it was to do (Planned), each with its run directory relative to the document, so a merge
// can tell a missing run from one that was never planned.
type Document struct {
	Generated time.Time `json:"generated"`
	Machines  []string  `json:"machines,omitempty"` // the machines the runs ran on
	Versions  []string  `json:"versions,omitempty"` // the harness builds the runs used
	// HostLoad spans the host's 1-minute load average over every run's start and end.
	HostLoad *LoadSpan    `json:"host_load,omitempty"`
	Shards   []string     `json:"shards,omitempty"` // "i/n" of every shard merged ("1/1": unsharded)
	Planned  []PlannedRun `json:"planned,omitempty"`
	// Whole is the whole comparison's plan, of which a shard ran a part: a merge that lacks a
	// shard knows what it lacks.
	Whole []Planned `json:"whole_plan,omitempty"`
	// Missing lists planned runs without a result: a shard that did not finish. A merge with
	// missing runs is incomplete, and exits as a harness error.
	Missing []Planned `json:"missing,omitempty"`
	Comparison
}

// LoadSpan is the spread of the load averages sampled at the runs' starts and ends.
type LoadSpan struct {
	Min     float64 `json:"min"`
	Median  float64 `json:"median"`
	Max     float64 `json:"max"`
	Samples int     `json:"samples"`
}

// PlannedRun is a planned run and its directory relative to the document.
type PlannedRun struct {
	Planned
	Dir string `json:"dir"`
}

// NewDocument aggregates runs into a document: stacks fixes the column order; planned (may be
// nil) lists what this output was to run and whole (may be nil) the whole comparison's plan;
// every run of either without a result in runs is Missing.
func NewDocument(now time.Time, stacks []string, shards []string, planned []PlannedRun, whole []Planned, runs []Run) Document {
	d := Document{Generated: now.UTC(), Shards: shards, Planned: planned, Whole: whole, Comparison: Aggregate(stacks, runs)}
	have := map[Planned]bool{}
	var loads []float64
	for _, r := range runs {
		res := r.Result
		have[Planned{Cell: res.Cell(), Run: res.Run}] = true
		if res.Machine != "" && !slices.Contains(d.Machines, res.Machine) {
			d.Machines = append(d.Machines, res.Machine)
		}
		if res.Version != "" && !slices.Contains(d.Versions, res.Version) {
			d.Versions = append(d.Versions, res.Version)
		}
		if res.HostLoad != nil {
			loads = append(loads, res.HostLoad.Start, res.HostLoad.End)
		}
	}
	slices.Sort(d.Machines)
	slices.Sort(d.Versions)
	if len(loads) > 0 {
		slices.Sort(loads)
		d.HostLoad = &LoadSpan{Min: loads[0], Median: loads[len(loads)/2], Max: loads[len(loads)-1], Samples: len(loads)}
	}
	want := slices.Clone(whole)
	for _, p := range planned {
		want = append(want, p.Planned)
	}
	SortPlanned(want)
	for _, p := range slices.Compact(want) {
		if !have[p] {
			d.Missing = append(d.Missing, p)
		}
	}
	SortPlanned(d.Missing)
	return d
}

// Duplicates lists runs that appear more than once (the same cell and repetition in two shards):
// merging overlapping outputs is a mistake, not more evidence.
func Duplicates(runs []Run) []string {
	seen := map[Planned]int{}
	for _, r := range runs {
		seen[Planned{Cell: r.Result.Cell(), Run: r.Result.Run}]++
	}
	var out []string
	for p, n := range seen {
		if n > 1 {
			out = append(out, fmt.Sprintf("%s run %d (%d times)", p.Cell, p.Run, n))
		}
	}
	slices.Sort(out)
	return out
}
