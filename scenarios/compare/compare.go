// Package compare aggregates scenario runs of several stacks into side-by-side figures: per
// scenario and stack, the verdict counts and every metric's value per run with its median, 90th
// percentile and maximum. It plans the runs of a comparison (every scenario on every stack with
// the same seeds) and splits them into shards. It is pure: results in, a typed table out; the
// renderers are in package reports.
package compare

import (
	"math"
	"slices"
	"strings"

	"github.com/redisha/redisha/scenarios/result"
)

// Run is one run as the aggregation sees it: its result and the link to its own report,
// relative to where the comparison is written.
type Run struct {
	Result *result.Result
	Link   string
}

// Metric is a figure compared across stacks.
type Metric struct {
	Key   string `json:"key"`
	Title string `json:"title"`
	Unit  string `json:"unit"` // "s" or "" (a count)
}

// The metrics, in the order the tables show them.
var (
	Failovers        = Metric{"failovers", "failovers", ""}
	FalseFailovers   = Metric{"false_failovers", "false failovers (more than expected)", ""}
	WriteUnavailable = Metric{"write_unavailability_s", "write unavailability (worst client)", "s"}
	LostWrites       = Metric{"lost_writes", "acknowledged writes lost", ""}
	SplitBrainWrites = Metric{"split_brain_writes", "split-brain writes", ""}
	TwoMasters       = Metric{"two_master_s", "two nodes report role:master", "s"}
	DualRoute        = Metric{"dual_route_s", "proxies route to two masters", "s"}
	DualVIP          = Metric{"dual_vip_s", "VIP on two nodes", "s"}
	VIPMoves         = Metric{"vip_moves", "VIP moves", ""}
	Metrics          = []Metric{Failovers, FalseFailovers, WriteUnavailable, LostWrites, SplitBrainWrites, TwoMasters, DualRoute, DualVIP, VIPMoves}
)

// Class is how a run's outcome reads in a comparison.
type Class string

// Classes. A run that matched a known finding of its stack is a Finding, never a pass: the
// stack does lose or split writes there, it is only not a regression.
const (
	Pass    Class = "pass"
	Finding Class = "finding"
	Fail    Class = "fail"
	Error   Class = "error"
)

// ClassOf classifies a run: error and fail by outcome; a passing run with a matched known
// finding is a Finding.
func ClassOf(r *result.Result) Class {
	switch r.Outcome {
	case result.OutcomeError:
		return Error
	case result.OutcomeFail:
		return Fail
	}
	if len(KnownFindings(r)) > 0 {
		return Finding
	}
	return Pass
}

// KnownFindings lists the checks of r that matched a known finding (an expected non-pass).
func KnownFindings(r *result.Result) []string {
	var out []string
	for _, v := range r.Verdicts {
		if v.Match && v.Want != result.Pass {
			out = append(out, v.Check)
		}
	}
	return out
}

// Values returns every metric's value for one run; a nil value was not measured in that run (a
// run the harness could not judge, a final state that could not be read, a stack without a VIP,
// proxies the observer could not see).
func Values(r *result.Result) map[string]*float64 {
	out := map[string]*float64{}
	for _, m := range Metrics {
		out[m.Key] = nil
	}
	if r.Error != "" && len(r.Verdicts) == 0 {
		return out
	}
	s := r.Summary
	num := func(v float64) *float64 { return &v }
	out[Failovers.Key] = num(float64(s.Failovers))
	if r.Expect.Failover != nil {
		out[FalseFailovers.Key] = num(math.Max(0, float64(s.Failovers-int(*r.Expect.Failover))))
	}
	out[WriteUnavailable.Key] = num(s.WorstUnavailabilityS)
	if s.LostWrites != nil {
		out[LostWrites.Key] = num(float64(*s.LostWrites))
	}
	out[SplitBrainWrites.Key] = num(float64(s.SplitBrainWrites))
	out[TwoMasters.Key] = num(s.TwoMasterS)
	if RoutesObserved(r) {
		out[DualRoute.Key] = num(s.DualRouteS)
	}
	if r.VIP != "" {
		out[DualVIP.Key] = num(s.DualVIPS)
		if s.VIPMoves != nil {
			out[VIPMoves.Key] = num(float64(*s.VIPMoves))
		} else {
			// recorded before vip_moves existed: holder-set changes, an upper bound
			out[VIPMoves.Key] = num(float64(s.VIPChanges))
		}
	}
	return out
}

// RoutesObserved reports whether the run saw what any proxy routes to: without a readable
// proxy, "routed to two masters for 0 s" would be a claim nobody checked.
func RoutesObserved(r *result.Result) bool {
	if r.Analysis == nil {
		return false
	}
	return slices.ContainsFunc(r.Analysis.Routes, func(rt result.Route) bool { return !rt.Unreachable })
}

// Comparison is the aggregate of many runs: one entry per scenario, each with every stack.
type Comparison struct {
	Stacks    []string   `json:"stacks"`
	Scenarios []Scenario `json:"scenarios"`
}

// Scenario is one scenario across the stacks.
type Scenario struct {
	Name   string       `json:"name"`
	Seeds  []uint64     `json:"seeds"`
	Stacks []StackRuns  `json:"stacks"` // in Comparison.Stacks' order
	Rows   []MetricRows `json:"-"`      // the same figures by metric, for side-by-side tables
}

// MetricRows is one metric of a scenario, a Stats per stack.
type MetricRows struct {
	Metric Metric
	Stats  []Stats // in Comparison.Stacks' order
}

// StackRuns is one scenario on one stack.
type StackRuns struct {
	Stack    string           `json:"stack"`
	Verdicts Counts           `json:"verdicts"`
	Stats    map[string]Stats `json:"stats"` // by metric key
	Runs     []RunFigures     `json:"runs"`
}

// Counts counts runs by class; FindingLost sums the acknowledged writes lost in Finding runs,
// so a finding always reads with what it costs.
type Counts struct {
	Pass        int `json:"pass"`
	Finding     int `json:"finding"`
	Fail        int `json:"fail"`
	Error       int `json:"error"`
	FindingLost int `json:"finding_lost_writes"`
}

// RunFigures is one run's figures.
type RunFigures struct {
	Seed     uint64              `json:"seed"`
	Run      int                 `json:"run"`
	Link     string              `json:"link"`
	Outcome  result.Outcome      `json:"outcome"`
	Class    Class               `json:"class"`
	Findings []string            `json:"known_findings,omitempty"`
	Reasons  []string            `json:"reasons,omitempty"`
	Values   map[string]*float64 `json:"values"` // by metric key; null: not measured
}

// Stats summarizes one metric over a stack's runs of a scenario. Measured is how many runs
// measured it; with none, the other fields are meaningless and the metric reads "not measured".
type Stats struct {
	Runs     int       `json:"runs"`
	Measured int       `json:"measured"`
	Median   float64   `json:"median"`
	P90      float64   `json:"p90"`
	Max      float64   `json:"max"`
	Sum      float64   `json:"sum"`
	Values   []float64 `json:"-"` // the measured values, sorted
}

// Summarize computes the statistics of values (nil: not measured). The median of an even count
// is the mean of the two middle values; P90 is the nearest-rank 90th percentile (the
// ceil(0.9 n)-th smallest value).
func Summarize(values []*float64) Stats {
	st := Stats{Runs: len(values)}
	for _, v := range values {
		if v != nil {
			st.Values = append(st.Values, *v)
			st.Sum += *v
		}
	}
	slices.Sort(st.Values)
	n := len(st.Values)
	st.Measured = n
	if n == 0 {
		return st
	}
	if n%2 == 1 {
		st.Median = st.Values[n/2]
	} else {
		st.Median = (st.Values[n/2-1] + st.Values[n/2]) / 2
	}
	st.P90 = st.Values[int(math.Ceil(0.9*float64(n)))-1]
	st.Max = st.Values[n-1]
	return st
}

// Aggregate groups runs by scenario and stack. stacks fixes the column order (stacks that only
// appear in the runs follow, sorted); scenarios are sorted by name and runs by seed and number.
func Aggregate(stacks []string, runs []Run) Comparison {
	order := slices.Clone(stacks)
	var extra []string
	byScenario := map[string]map[string][]Run{}
	for _, r := range runs {
		res := r.Result
		if !slices.Contains(order, res.Stack) && !slices.Contains(extra, res.Stack) {
			extra = append(extra, res.Stack)
		}
		if byScenario[res.Scenario] == nil {
			byScenario[res.Scenario] = map[string][]Run{}
		}
		byScenario[res.Scenario][res.Stack] = append(byScenario[res.Scenario][res.Stack], r)
	}
	slices.Sort(extra)
	order = append(order, extra...)
	names := make([]string, 0, len(byScenario))
	for n := range byScenario {
		names = append(names, n)
	}
	slices.Sort(names)

	c := Comparison{Stacks: order}
	for _, name := range names {
		sc := Scenario{Name: name}
		seeds := map[uint64]bool{}
		for _, st := range order {
			rs := byScenario[name][st]
			slices.SortFunc(rs, func(a, b Run) int {
				if a.Result.Seed != b.Result.Seed {
					if a.Result.Seed < b.Result.Seed {
						return -1
					}
					return 1
				}
				return a.Result.Run - b.Result.Run
			})
			sr := StackRuns{Stack: st, Stats: map[string]Stats{}}
			per := map[string][]*float64{}
			for _, r := range rs {
				res := r.Result
				seeds[res.Seed] = true
				f := RunFigures{Seed: res.Seed, Run: res.Run, Link: r.Link, Outcome: res.Outcome, Class: ClassOf(res),
					Findings: KnownFindings(res), Reasons: res.Reasons, Values: Values(res)}
				switch f.Class {
				case Pass:
					sr.Verdicts.Pass++
				case Finding:
					sr.Verdicts.Finding++
					if res.Summary.LostWrites != nil {
						sr.Verdicts.FindingLost += *res.Summary.LostWrites
					}
				case Fail:
					sr.Verdicts.Fail++
				case Error:
					sr.Verdicts.Error++
				}
				for _, m := range Metrics {
					per[m.Key] = append(per[m.Key], f.Values[m.Key])
				}
				sr.Runs = append(sr.Runs, f)
			}
			for _, m := range Metrics {
				sr.Stats[m.Key] = Summarize(per[m.Key])
			}
			sc.Stacks = append(sc.Stacks, sr)
		}
		for s := range seeds {
			sc.Seeds = append(sc.Seeds, s)
		}
		slices.Sort(sc.Seeds)
		for _, m := range Metrics {
			row := MetricRows{Metric: m}
			for _, sr := range sc.Stacks {
				row.Stats = append(row.Stats, sr.Stats[m.Key])
			}
			sc.Rows = append(sc.Rows, row)
		}
		c.Scenarios = append(c.Scenarios, sc)
	}
	return c
}

// Cells lists the distinct cells of the runs, sorted (stack, scenario, seed).
func Cells(runs []*result.Result) []result.Cell {
	var out []result.Cell
	for _, r := range runs {
		out = append(out, r.Cell())
	}
	slices.SortFunc(out, func(a, b result.Cell) int {
		switch {
		case a.Stack != b.Stack:
			return strings.Compare(a.Stack, b.Stack)
		case a.Scenario != b.Scenario:
			return strings.Compare(a.Scenario, b.Scenario)
		case a.Seed < b.Seed:
			return -1
		case a.Seed > b.Seed:
			return 1
		}
		return 0
	})
	return slices.Compact(out)
}

// Outcomes lists every run's outcome, for the exit status (result.ExitCode).
func Outcomes(runs []Run) []result.Outcome {
	var out []result.Outcome
	for _, r := range runs {
		out = append(out, r.Result.Outcome)
	}
	return out
}
