package reports

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/redisha/redisha/scenarios/result"
)

// Verdict renders a run's outcome with the checks behind it, e.g. "FAIL lost-writes", or
// "known finding: split-brain (12 acked writes lost)": a run that matched a known finding of its
// stack is not a regression, but it is not a pass either, and it reads with what it costs.
func Verdict(r *result.Result) string {
	var bad, known, costs []string
	for _, v := range r.Verdicts {
		switch {
		case !v.Match:
			bad = append(bad, v.Check)
		case v.Want != result.Pass:
			known = append(known, v.Check)
			// A VIP finding costs no write by itself: say what the VIP did.
			switch v.Check {
			case "vip-moves":
				costs = append(costs, fmt.Sprintf("VIP moved %gx", v.Metrics["moves"]))
			case "vip-dual-holders":
				costs = append(costs, fmt.Sprintf("VIP on two nodes %.1fs", v.Metrics["dual_seconds"]))
			}
		}
	}
	switch r.Outcome {
	case result.OutcomeError:
		if len(bad) > 0 {
			return "ERROR " + strings.Join(bad, ",")
		}
		return "ERROR"
	case result.OutcomeFail:
		return "FAIL " + strings.Join(bad, ",")
	}
	if len(known) > 0 {
		v := "known finding: " + strings.Join(known, ",")
		if l := r.Summary.LostWrites; l != nil {
			costs = append([]string{fmt.Sprintf("%d acked writes lost", *l)}, costs...)
		}
		if len(costs) > 0 {
			v += " (" + strings.Join(costs, ", ") + ")"
		}
		return v
	}
	return "pass"
}

// Row is one run in an aggregate table.
type Row struct {
	Scenario, Verdict, Failovers, Unavail, Lost, SplitBrain, TwoMaster, Notes string
}

// Headers of the aggregate table.
var Headers = Row{"scenario", "verdict", "failovers", "write unavailability", "acked writes lost", "split-brain writes", "two-master window", "notes"}

// RowOf summarizes one run.
func RowOf(r *result.Result) Row {
	s := r.Summary
	name := r.Scenario
	if r.Run > 1 {
		name = fmt.Sprintf("%s #%d", name, r.Run)
	}
	lost := "not-converged"
	if s.LostWrites != nil {
		lost = fmt.Sprintf("%d / %d", *s.LostWrites, s.AckedWrites)
	}
	if r.Error != "" && len(r.Verdicts) == 0 {
		return Row{name, Verdict(r), "-", "-", "-", "-", "-", firstLine(r.Error)}
	}
	var notes []string
	if s.DualVIPS > 0 {
		notes = append(notes, fmt.Sprintf("VIP on two nodes %.1fs", s.DualVIPS))
	}
	if s.DualRouteS > 0 {
		notes = append(notes, fmt.Sprintf("proxies route to two masters %.1fs", s.DualRouteS))
	}
	if s.VIPMoves != nil && *s.VIPMoves > 0 {
		notes = append(notes, fmt.Sprintf("VIP moved %dx", *s.VIPMoves))
	} else if s.VIPMoves == nil && s.VIPChanges > 0 {
		notes = append(notes, fmt.Sprintf("VIP holders changed %dx", s.VIPChanges))
	}
	if s.Linearizable == "fail" || s.Linearizable == "unknown" {
		notes = append(notes, "linearizable: "+s.Linearizable)
	}
	return Row{
		Scenario:   name,
		Verdict:    Verdict(r),
		Failovers:  fmt.Sprint(s.Failovers),
		Unavail:    fmt.Sprintf("%.1fs", s.WorstUnavailabilityS),
		Lost:       lost,
		SplitBrain: fmt.Sprint(s.SplitBrainWrites),
		TwoMaster:  fmt.Sprintf("%.1fs", s.TwoMasterS),
		Notes:      strings.Join(notes, "; "),
	}
}

func (r Row) cells() []string {
	return []string{r.Scenario, r.Verdict, r.Failovers, r.Unavail, r.Lost, r.SplitBrain, r.TwoMaster, r.Notes}
}

// WriteTable prints an aligned plain-text table of runs.
func WriteTable(w io.Writer, results []*result.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(Headers.cells(), "\t"))
	for _, r := range results {
		fmt.Fprintln(tw, strings.Join(RowOf(r).cells(), "\t"))
	}
	return tw.Flush()
}

// WriteMarkdown prints the same table in Markdown.
func WriteMarkdown(w io.Writer, results []*result.Result) error {
	h := Headers.cells()
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(h, " | "), strings.Repeat(" --- |", len(h)))
	for _, r := range results {
		fmt.Fprintf(w, "| %s |\n", strings.Join(RowOf(r).cells(), " | "))
	}
	return nil
}
