package check

import (
	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/result"
)

// Analyze derives what a run's report draws beyond the verdicts: the quorum's master over time,
// the split-brain writes, and each proxy's routing. The judge stores it in the result, so a
// renderer never runs a checker.
func Analyze(in Input) *result.Analysis {
	a := &result.Analysis{Masters: MasterTimeline(in), Routes: Routes(in.Events)}
	for _, o := range SplitBrainOps(in) {
		a.SplitBrainOpIDs = append(a.SplitBrainOpIDs, o.ID)
	}
	return a
}

// Routes reads each proxy's backend observations out of the events, in time order.
func Routes(events []history.Event) []result.Route {
	var out []result.Route
	for _, e := range events {
		if e.Source != history.SourceProxy {
			continue
		}
		out = append(out, result.Route{Proxy: e.Node, Time: e.Time, Unreachable: e.Detail == "unreachable",
			Up: RoutedTo(e), Detail: e.Detail})
	}
	return out
}
