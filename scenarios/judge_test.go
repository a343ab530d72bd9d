package scenarios

import (
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

// The judge stores every analysis the report draws, consistent with the verdicts' counts, and
// sets known findings as expectations.
func TestJudgeStoresAnalysis(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	write := func(id int64, s float64, server, value string) history.Op {
		return history.Op{ID: id, Kind: history.KindSet, Key: "r:1", Value: value, Invoke: at(s), Complete: at(s + 0.001), Status: history.OK, Server: server}
	}
	in := check.Input{
		Ops: []history.Op{write(1, 1, "10.0.0.11:6379", "a"), write(2, 12, "10.0.0.12:6379", "b"), write(3, 13, "10.0.0.11:6379", "c")},
		Events: []history.Event{
			{Time: at(10), Source: history.SourceSentinel, Kind: history.KindSwitchMaster, Detail: "mymaster 10.0.0.11 6379 10.0.0.12 6379"},
			{Time: at(11), Source: history.SourceProxy, Node: "haproxy1", Detail: "redis/redis1=UP redis/redis2=UP"},
			{Time: at(14), Source: history.SourceProxy, Node: "haproxy1", Detail: "unreachable"},
		},
		Final:         history.Final{Converged: true, Master: "10.0.0.12:6379", Registers: map[string]string{"r:1": "b"}},
		InitialMaster: "10.0.0.11:6379",
		End:           at(20),
	}
	s, err := spec.Parse("j.yaml", []byte("name: j\nexpect: {failover: one}\n"))
	if err != nil {
		t.Fatal(err)
	}
	j := Judge(s, in, map[string]KnownVerdict{check.CheckSplitBrain: {Status: check.Fail, Why: "recipe"}})
	a := j.Analysis
	if a == nil || len(a.Masters) != 2 || a.Masters[1].Master != "10.0.0.12:6379" || !a.Masters[1].From.Equal(at(10)) {
		t.Fatalf("masters: %+v", a)
	}
	if len(a.SplitBrainOpIDs) != 1 || a.SplitBrainOpIDs[0] != 3 || j.Summary.SplitBrainWrites != 1 {
		t.Fatalf("split-brain: ids %v, summary %d", a.SplitBrainOpIDs, j.Summary.SplitBrainWrites)
	}
	if len(a.Routes) != 2 || len(a.Routes[0].Up) != 2 || !a.Routes[1].Unreachable || j.Summary.DualRouteS != 3 || j.Summary.ProxiesObserved != 1 {
		t.Fatalf("routes: %+v, dual %.1fs", a.Routes, j.Summary.DualRouteS)
	}
	var r result.Result
	j.Apply(&r)
	for _, v := range r.Verdicts {
		if v.Check == check.CheckSplitBrain && (v.Want != check.Fail || !v.Match || v.Known != "recipe") {
			t.Fatalf("known finding not set as the expectation: %+v", v)
		}
	}
	if r.Analysis != a || r.Summary.AckedWrites != 3 || r.Summary.Failovers != 1 {
		t.Fatalf("apply: %+v", r)
	}
}
