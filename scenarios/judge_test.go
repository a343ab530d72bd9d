package scenarios

import (
	"strings"
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

// The scenario's VIP expectations become verdicts in the one result model, judged once here:
// a violation fails the run, a known finding of the stack matches, and a scenario without a VIP
// expectation gets no VIP verdict (its VIP figures stay in the summary, measured only).
func TestJudgeVIPExpectations(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	vip := func(s float64, holders string) history.Event {
		return history.Event{Time: at(s), Source: history.SourceVIP, Kind: history.KindVIPHolder, Node: holders, Attrs: map[string]string{"holders": holders}}
	}
	steady := []history.Event{vip(0, "haproxy1")}
	moved := []history.Event{vip(0, "haproxy1"), vip(8.7, ""), vip(9, "haproxy2")}
	pingPong := []history.Event{vip(0, "haproxy1"), vip(8.7, "haproxy2"), vip(9.5, "haproxy1")}
	dual := []history.Event{vip(0, "haproxy1"), vip(8, "haproxy1,haproxy2"), vip(8.3, "haproxy2")}
	falseTakeover := []history.Event{vip(0, "haproxy1"), vip(8, "haproxy1,haproxy2"), vip(8.3, "haproxy1")}
	known := map[string]KnownVerdict{check.CheckVIPDualHolders: {Status: check.Fail, Why: "VRRP without a quorum"}}
	tests := []struct {
		name   string
		expect string
		events []history.Event
		known  map[string]KnownVerdict
		want   map[string]result.Status // VIP verdicts and their statuses; others absent
		out    result.Outcome
	}{
		{"unset: no verdict", "{failover: none}", pingPong, nil, map[string]result.Status{}, result.OutcomePass},
		{"none, steady", "{vip-moves: none, max-vip-dual-holders: 0s}", steady, nil,
			map[string]result.Status{check.CheckVIPMoves: check.Pass, check.CheckVIPDualHolders: check.Pass}, result.OutcomePass},
		{"none, moved", "{vip-moves: none, max-vip-dual-holders: 0s}", moved, nil,
			map[string]result.Status{check.CheckVIPMoves: check.Fail, check.CheckVIPDualHolders: check.Pass}, result.OutcomeFail},
		{"none, a false takeover on two nodes", "{vip-moves: none, max-vip-dual-holders: 0s}", falseTakeover, nil,
			map[string]result.Status{check.CheckVIPMoves: check.Fail, check.CheckVIPDualHolders: check.Fail}, result.OutcomeFail},
		{"exactly one, moved", "{vip-moves: one, max-vip-dual-holders: 0s}", moved, nil,
			map[string]result.Status{check.CheckVIPMoves: check.Pass, check.CheckVIPDualHolders: check.Pass}, result.OutcomePass},
		{"exactly one, stayed", "{vip-moves: one}", steady, nil, map[string]result.Status{check.CheckVIPMoves: check.Fail}, result.OutcomeFail},
		{"at most one, stayed", "{max-vip-moves: 1}", steady, nil, map[string]result.Status{check.CheckVIPMoves: check.Pass}, result.OutcomePass},
		{"at most one, moved", "{max-vip-moves: 1}", moved, nil, map[string]result.Status{check.CheckVIPMoves: check.Pass}, result.OutcomePass},
		{"at most one, ping-pong", "{max-vip-moves: 1}", pingPong, nil, map[string]result.Status{check.CheckVIPMoves: check.Fail}, result.OutcomeFail},
		{"dual within its bound", "{max-vip-dual-holders: 300ms}", dual, nil, map[string]result.Status{check.CheckVIPDualHolders: check.Pass}, result.OutcomePass},
		{"dual over a 0s bound", "{max-vip-dual-holders: 0s}", dual, nil, map[string]result.Status{check.CheckVIPDualHolders: check.Fail}, result.OutcomeFail},
		{"dual as a known finding", "{max-vip-dual-holders: 0s}", dual, known, map[string]result.Status{check.CheckVIPDualHolders: check.Fail}, result.OutcomePass},
		{"known finding that did not show", "{max-vip-dual-holders: 0s}", steady, known, map[string]result.Status{check.CheckVIPDualHolders: check.Pass}, result.OutcomeFail},
		{"not observed", "{vip-moves: none}", nil, nil, map[string]result.Status{check.CheckVIPMoves: check.Unknown}, result.OutcomeFail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := spec.Parse("v.yaml", []byte("name: v\nexpect: "+tc.expect+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			in := check.Input{
				Ops:           []history.Op{{ID: 1, Kind: history.KindSet, Key: "r:1", Value: "a", Invoke: at(1), Complete: at(1.001), Status: history.OK, Server: "10.0.0.11:6379"}},
				Events:        tc.events,
				Final:         history.Final{Converged: true, Master: "10.0.0.11:6379", Registers: map[string]string{"r:1": "a"}},
				InitialMaster: "10.0.0.11:6379",
				End:           at(20),
			}
			j := Judge(s, in, tc.known)
			got := map[string]result.Status{}
			for _, v := range j.Verdicts {
				if v.Check != check.CheckVIPMoves && v.Check != check.CheckVIPDualHolders {
					continue
				}
				got[v.Check] = v.Status
				if k, ok := tc.known[v.Check]; ok && (v.Want != k.Status || v.Known != k.Why) {
					t.Errorf("%s: known finding not set as the expectation: %+v", v.Check, v)
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("VIP verdicts %v, want %v", got, tc.want)
			}
			for c, st := range tc.want {
				if got[c] != st {
					t.Errorf("%s: %s, want %s", c, got[c], st)
				}
			}
			if j.Outcome != tc.out {
				t.Errorf("outcome %s, want %s (reasons %q)", j.Outcome, tc.out, j.Reasons)
			}
			if j.Outcome == result.OutcomeFail && !strings.Contains(strings.Join(j.Reasons, "\n"), "vip-") {
				t.Errorf("the reasons do not name the VIP check: %q", j.Reasons)
			}
		})
	}
}
