package scenarios

import (
	"strings"

	"github.com/redisha/redisha/reports"
	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

// Judgement is the pure outcome of judging one run's records.
type Judgement struct {
	Verdicts  []result.Judged
	Summary   result.Summary
	LostOpIDs []int64
	Analysis  *result.Analysis
	Outcome   result.Outcome
	Reasons   []string
}

// Apply records the judgement in r.
func (j Judgement) Apply(r *result.Result) {
	r.Verdicts, r.Summary, r.LostOpIDs, r.Analysis = j.Verdicts, j.Summary, j.LostOpIDs, j.Analysis
	r.Outcome, r.Reasons = j.Outcome, j.Reasons
}

// Judge runs every checker on the records of one run of s and sets each verdict against the
// scenario's expectations and the stack's known findings.
func Judge(s *spec.Scenario, in check.Input, known map[string]KnownVerdict) Judgement {
	vs := verdicts(s.Expect, in)
	j := Judgement{Summary: summarize(in, vs), Analysis: check.Analyze(in)}
	for _, v := range vs {
		jv := result.Judged{Verdict: v, Want: check.Pass}
		if k, ok := known[v.Check]; ok {
			jv.Want, jv.Known = k.Status, k.Why
		}
		jv.Match = jv.Status == jv.Want
		j.Verdicts = append(j.Verdicts, jv)
	}
	lost, acked := check.LostOps(in)
	j.Summary.AckedWrites = acked
	if in.Final.Converged {
		for _, l := range lost {
			j.LostOpIDs = append(j.LostOpIDs, l.Op.ID)
		}
	}
	j.Outcome, j.Reasons = result.Fold(j.Verdicts, "")
	return j
}

// verdicts runs every checker with the scenario's expectations.
func verdicts(e spec.Expect, in check.Input) []check.Verdict {
	fe := check.FailoverExpectation{Any: e.Failover == nil, Within: e.FailoverWithin.D()}
	if e.Failover != nil {
		fe.Count = int(*e.Failover)
	}
	maxLost := -1
	if e.MaxLostWrites != nil {
		maxLost = *e.MaxLostWrites
	}
	lin := e.Linearizable != nil && *e.Linearizable
	vs := []check.Verdict{
		check.Convergence(in),
		check.Failover(in, fe),
		check.WriteUnavailability(in, e.MaxWriteUnavailability.D()),
		check.LostWrites(in, maxLost),
		check.SplitBrain(in, e.SplitBrainWrites == "allowed"),
		check.Linearizable(in, lin, spec.DefaultLinTimeout),
	}
	if check.HasPubSub(in.Ops) {
		maxMsgs := -1
		if e.MaxLostMessages != nil {
			maxMsgs = *e.MaxLostMessages
		}
		vs = append(vs, check.PubSub(in, maxMsgs))
	}
	// The VIP checkers judge only what a scenario expects of the VIP; without an expectation the
	// summary still reports the VIP's changes and time on two nodes.
	switch {
	case e.VIPMoves != nil:
		n := int(*e.VIPMoves)
		vs = append(vs, check.VIPMoves(in, check.VIPMoveExpectation{Min: n, Max: n}))
	case e.MaxVIPMoves != nil:
		vs = append(vs, check.VIPMoves(in, check.VIPMoveExpectation{Max: int(*e.MaxVIPMoves)}))
	}
	if e.MaxVIPDualHolders != nil {
		vs = append(vs, check.VIPDualHolders(in, e.MaxVIPDualHolders.D()))
	}
	return vs
}

// summarize gathers the headline numbers from the records and the verdicts' metrics.
func summarize(in check.Input, vs []check.Verdict) result.Summary {
	var sum result.Summary
	for _, o := range in.Ops {
		if !o.IsKV() {
			continue // dials, and the pub/sub workload's records (counted by its checker)
		}
		sum.Ops++
		switch o.Status {
		case history.OK:
			sum.OK++
		case history.Fail:
			sum.Failed++
		case history.Indeterminate:
			sum.Indeterminate++
		}
	}
	for _, v := range vs {
		switch v.Check {
		case check.CheckFailover:
			sum.Failovers = int(v.Metrics["failovers"])
			if s, ok := v.Metrics["failover_seconds"]; ok {
				sum.FailoverS = &s
			}
		case check.CheckUnavailability:
			sum.WorstUnavailabilityS = v.Metrics["worst_seconds"]
		case check.CheckLostWrites:
			if v.Status != check.NotConverged {
				n := int(v.Metrics["lost"])
				sum.LostWrites = &n
			}
		case check.CheckSplitBrain:
			sum.SplitBrainWrites = int(v.Metrics["split_brain_writes"])
			sum.TwoMasterS = v.Metrics["two_master_seconds"]
		case check.CheckPubSub:
			sum.Published = int(v.Metrics["published"])
			lost := int(v.Metrics["lost"])
			sum.MessagesLost = &lost
			sum.MessagesDuplicated = int(v.Metrics["duplicated"])
		case check.CheckLinearizable:
			sum.Linearizable = string(v.Status)
			if strings.HasPrefix(v.Observed, "not linearizable") {
				sum.Linearizable = "fail"
			} else if strings.HasPrefix(v.Observed, "unknown") {
				sum.Linearizable = "unknown"
			}
		}
	}
	changes, dual := check.VIPStats(in.Events, in.End)
	sum.VIPChanges, sum.DualVIPS = changes, dual.Seconds()
	_, moves := check.VIPTimeline(in.Events, in.End)
	sum.VIPMoves = &moves
	sum.DualRouteS = check.DualRouteWindow(in.Events, in.End).Seconds()
	read := map[string]bool{}
	for _, e := range in.Events {
		if e.Source == history.SourceProxy && e.Detail != "unreachable" {
			read[e.Node] = true
		}
	}
	sum.ProxiesObserved = len(read)
	return sum
}

// AnalyzeRecorded fills in the analysis of a run whose result predates it (result.json without
// "analysis"), from the records in its directory, so old runs render as new ones do. The result
// file itself is left as it was.
func AnalyzeRecorded(run *reports.Run) {
	if run.Result.Analysis != nil {
		return
	}
	run.Result.Analysis = check.Analyze(check.Input{Ops: run.Ops, Events: run.Events, End: run.Result.WorkEnd})
}
