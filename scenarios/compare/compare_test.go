package compare

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/result"
)

func f(v float64) *float64 { return &v }

func TestSummarize(t *testing.T) {
	for _, c := range []struct {
		in                    []*float64
		measured              int
		median, p90, max, sum float64
	}{
		{nil, 0, 0, 0, 0, 0},
		{[]*float64{nil, nil}, 0, 0, 0, 0, 0},
		{[]*float64{f(3)}, 1, 3, 3, 3, 3},
		{[]*float64{f(4), f(1)}, 2, 2.5, 4, 4, 5},
		{[]*float64{f(5), nil, f(1), f(3)}, 3, 3, 5, 5, 9},
		// nearest rank: ceil(0.9*10) = 9th smallest
		{[]*float64{f(10), f(9), f(8), f(7), f(6), f(5), f(4), f(3), f(2), f(1)}, 10, 5.5, 9, 10, 55},
	} {
		st := Summarize(c.in)
		if st.Runs != len(c.in) || st.Measured != c.measured || st.Median != c.median || st.P90 != c.p90 || st.Max != c.max || st.Sum != c.sum {
			t.Errorf("Summarize(%d values) = %+v, want measured %d median %v p90 %v max %v sum %v", len(c.in), st, c.measured, c.median, c.p90, c.max, c.sum)
		}
	}
}

func one() *result.Failover  { v := result.Failover(1); return &v }
func none() *result.Failover { v := result.Failover(0); return &v }
func n(v int) *int           { return &v }

// judged builds a verdict; known != "" makes it an expected finding.
func judged(check string, st result.Status, known string) result.Judged {
	j := result.Judged{Verdict: result.Verdict{Check: check, Status: st}, Want: result.Pass, Match: st == result.Pass}
	if known != "" {
		j.Want, j.Known, j.Match = result.Fail, known, st == result.Fail
	}
	return j
}

func TestValuesAndClass(t *testing.T) {
	routes := &result.Analysis{Routes: []result.Route{{Proxy: "haproxy1", Up: []string{"redis1"}}}}
	unreachable := &result.Analysis{Routes: []result.Route{{Proxy: "haproxy1", Unreachable: true}}}
	sum := result.Summary{Failovers: 2, WorstUnavailabilityS: 4.5, LostWrites: n(7), SplitBrainWrites: 3, TwoMasterS: 1.5, DualRouteS: 0, DualVIPS: 0.25, VIPChanges: 1}
	for _, c := range []struct {
		name  string
		r     result.Result
		class Class
		want  map[string]*float64
	}{
		{"everything measured, a false failover", result.Result{VIP: "10.0.0.200", Expect: result.Expect{Failover: one()}, Summary: sum, Analysis: routes,
			Outcome: result.OutcomeFail, Verdicts: []result.Judged{judged("failover", result.Fail, "")}}, Fail,
			map[string]*float64{"failovers": f(2), "false_failovers": f(1), "write_unavailability_s": f(4.5), "lost_writes": f(7), "split_brain_writes": f(3),
				"two_master_s": f(1.5), "dual_route_s": f(0), "dual_vip_s": f(0.25), "vip_moves": f(1)}},
		{"a known finding; no proxy seen, no VIP, not converged", result.Result{Expect: result.Expect{Failover: none()}, Summary: result.Summary{Failovers: 0},
			Analysis: unreachable, Outcome: result.OutcomePass, Verdicts: []result.Judged{judged("failover", result.Pass, ""), judged("split-brain", result.Fail, "recipe")}}, Finding,
			map[string]*float64{"failovers": f(0), "false_failovers": f(0), "write_unavailability_s": f(0), "lost_writes": nil, "split_brain_writes": f(0),
				"two_master_s": f(0), "dual_route_s": nil, "dual_vip_s": nil, "vip_moves": nil}},
		{"failover count not expected: no false ones claimed", result.Result{Summary: result.Summary{Failovers: 3, LostWrites: n(0)}, Outcome: result.OutcomePass,
			Verdicts: []result.Judged{judged("lost-writes", result.Pass, "")}}, Pass,
			map[string]*float64{"failovers": f(3), "false_failovers": nil, "write_unavailability_s": f(0), "lost_writes": f(0), "split_brain_writes": f(0),
				"two_master_s": f(0), "dual_route_s": nil, "dual_vip_s": nil, "vip_moves": nil}},
		{"harness error before any verdict: nothing measured", result.Result{VIP: "10.0.0.200", Error: "lab up: docker", Outcome: result.OutcomeError, Summary: sum}, Error,
			map[string]*float64{"failovers": nil, "false_failovers": nil, "write_unavailability_s": nil, "lost_writes": nil, "split_brain_writes": nil,
				"two_master_s": nil, "dual_route_s": nil, "dual_vip_s": nil, "vip_moves": nil}},
	} {
		if got := ClassOf(&c.r); got != c.class {
			t.Errorf("%s: class %s, want %s", c.name, got, c.class)
		}
		if got := Values(&c.r); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: values\n got %s\nwant %s", c.name, show(got), show(c.want))
		}
	}
}

func show(m map[string]*float64) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// sample builds a finished run.
func sample(stack, scenario string, seed uint64, run int, unavail float64, lost int, outcome result.Outcome, known string) *result.Result {
	r := &result.Result{Stack: stack, Scenario: scenario, Seed: seed, Run: run, VIP: "10.0.0.200", Machine: "m1",
		Expect:  result.Expect{Failover: one()},
		Summary: result.Summary{Failovers: 1, WorstUnavailabilityS: unavail, LostWrites: n(lost), VIPChanges: 1},
		Outcome: outcome, Verdicts: []result.Judged{judged("failover", result.Pass, "")}}
	if known != "" {
		r.Verdicts = append(r.Verdicts, judged("lost-writes", result.Fail, known))
	}
	return r
}

func TestAggregate(t *testing.T) {
	runs := []Run{
		{sample("redisha", "master-crash", 2, 2, 3, 0, result.OutcomePass, ""), "redisha/master-crash-2/index.html"},
		{sample("reference", "master-crash", 1, 1, 6, 0, result.OutcomePass, ""), "reference/master-crash-1/index.html"},
		{sample("redisha", "master-crash", 1, 1, 2, 0, result.OutcomePass, ""), "redisha/master-crash-1/index.html"},
		{sample("reference", "master-crash", 2, 2, 8, 0, result.OutcomeError, ""), "reference/master-crash-2/index.html"},
		{sample("reference", "master-minority", 1, 1, 5, 12, result.OutcomePass, "async replication"), "reference/master-minority-1/index.html"},
		{sample("mine", "master-minority", 1, 1, 5, 3, result.OutcomePass, "async replication"), "mine/master-minority-1/index.html"},
	}
	c := Aggregate([]string{"reference", "redisha"}, runs)
	if !slices.Equal(c.Stacks, []string{"reference", "redisha", "mine"}) {
		t.Fatalf("stacks %v", c.Stacks)
	}
	if len(c.Scenarios) != 2 || c.Scenarios[0].Name != "master-crash" || c.Scenarios[1].Name != "master-minority" {
		t.Fatalf("scenarios %+v", c.Scenarios)
	}
	mc := c.Scenarios[0]
	if !slices.Equal(mc.Seeds, []uint64{1, 2}) {
		t.Fatalf("seeds %v", mc.Seeds)
	}
	ref, rh, mine := mc.Stacks[0], mc.Stacks[1], mc.Stacks[2]
	if ref.Stack != "reference" || ref.Verdicts != (Counts{Pass: 1, Error: 1}) || len(ref.Runs) != 2 || ref.Runs[0].Seed != 1 || ref.Runs[1].Link != "reference/master-crash-2/index.html" {
		t.Fatalf("reference: %+v", ref)
	}
	if st := rh.Stats["write_unavailability_s"]; st.Measured != 2 || st.Median != 2.5 || st.Max != 3 || rh.Runs[0].Run != 1 {
		t.Fatalf("redisha unavailability %+v runs %+v", st, rh.Runs)
	}
	if mine.Stack != "mine" || len(mine.Runs) != 0 || mine.Stats["failovers"].Measured != 0 {
		t.Fatalf("a stack without runs of the scenario: %+v", mine)
	}
	mm := c.Scenarios[1]
	if got := mm.Stacks[0].Verdicts; got != (Counts{Finding: 1, FindingLost: 12}) {
		t.Fatalf("a known finding counts as a finding with its lost writes: %+v", got)
	}
	if mm.Stacks[0].Runs[0].Class != Finding || !slices.Equal(mm.Stacks[0].Runs[0].Findings, []string{"lost-writes"}) {
		t.Fatalf("finding run %+v", mm.Stacks[0].Runs[0])
	}
	if len(mc.Rows) != len(Metrics) || mc.Rows[2].Metric != WriteUnavailable || mc.Rows[2].Stats[1].Median != 2.5 {
		t.Fatalf("rows %+v", mc.Rows)
	}
	// JSON: every value a number per run, null for not measured, never 0 in its place.
	b, err := json.Marshal(NewDocument(time.Unix(0, 0), []string{"reference", "redisha"}, []string{"1/1"}, nil, nil, runs))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"dual_route_s":null`) || !strings.Contains(string(b), `"write_unavailability_s":6`) || !strings.Contains(string(b), `"finding_lost_writes":12`) {
		t.Fatalf("json %s", b)
	}
}

func TestNewDocumentMissingAndDuplicates(t *testing.T) {
	runs := []Run{{Result: sample("reference", "master-crash", 1, 1, 6, 0, result.OutcomePass, "")}}
	planned := []PlannedRun{
		{Planned{result.Cell{Stack: "reference", Scenario: "master-crash", Seed: 1}, 1}, "reference/master-crash-1"},
		{Planned{result.Cell{Stack: "redisha", Scenario: "master-crash", Seed: 1}, 1}, "redisha/master-crash-1"},
	}
	d := NewDocument(time.Unix(0, 0), []string{"reference", "redisha"}, nil, planned, nil, runs)
	if len(d.Missing) != 1 || d.Missing[0].Stack != "redisha" || !slices.Equal(d.Machines, []string{"m1"}) {
		t.Fatalf("missing %+v machines %v", d.Missing, d.Machines)
	}
	if dup := Duplicates(append(runs, runs[0])); len(dup) != 1 || !strings.Contains(dup[0], "reference/master-crash/1 run 1 (2 times)") {
		t.Fatalf("duplicates %v", dup)
	}
}

func TestPlanAndShards(t *testing.T) {
	stacks := []string{"reference", "redisha"}
	scen := []string{"master-minority", "master-crash", "old-master-returns"}
	plan := Plan(stacks, scen, 10, 1, map[string]int{"master-crash": 3})
	if len(plan) != 2*(3+1+1) {
		t.Fatalf("plan has %d runs: %+v", len(plan), plan)
	}
	if plan[0] != (Planned{result.Cell{Stack: "redisha", Scenario: "master-crash", Seed: 10}, 1}) ||
		plan[5] != (Planned{result.Cell{Stack: "reference", Scenario: "master-crash", Seed: 12}, 3}) {
		t.Fatalf("plan order %+v", plan)
	}
	// The order of the flags does not change the plan or the shards.
	again := Plan([]string{"redisha", "reference"}, []string{"old-master-returns", "master-crash", "master-minority"}, 10, 1, map[string]int{"master-crash": 3})
	if !slices.Equal(plan, again) {
		t.Fatalf("plan depends on the flags' order:\n%+v\n%+v", plan, again)
	}
	for _, total := range []int{1, 2, 3, 4, 7, 20} {
		var union []Planned
		for i := 1; i <= total; i++ {
			part := Shard{i, total}.Of(plan)
			if !slices.Equal(part, Shard{i, total}.Of(again)) {
				t.Fatalf("shard %d/%d depends on the order", i, total)
			}
			if len(part) < len(plan)/total || len(part) > len(plan)/total+1 {
				t.Fatalf("shard %d/%d unbalanced: %d of %d", i, total, len(part), len(plan))
			}
			union = append(union, part...)
		}
		SortPlanned(union)
		if !slices.Equal(union, plan) {
			t.Fatalf("%d shards do not hold every run exactly once", total)
		}
	}
}

func TestParseShard(t *testing.T) {
	if s, err := ParseShard("2/5"); err != nil || s != (Shard{2, 5}) || s.String() != "2/5" {
		t.Fatalf("%v %v", s, err)
	}
	for _, bad := range []string{"", "1", "0/2", "3/2", "a/b", "1/0", "-1/2"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStackDir(t *testing.T) {
	for in, want := range map[string]string{"reference": "reference", "my stack/x": "my-stack-x", "..": "stack", "a.b_c-d": "a.b_c-d"} {
		if got := StackDir(in); got != want {
			t.Errorf("StackDir(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewDocumentVersionsAndHostLoad(t *testing.T) {
	a := sample("reference", "master-crash", 1, 1, 6, 0, result.OutcomePass, "")
	a.Version, a.HostLoad = "abc", &result.HostLoad{Start: 0.5, End: 2.5}
	b := sample("redisha", "master-crash", 1, 1, 5, 0, result.OutcomePass, "")
	b.Version, b.HostLoad = "abc", &result.HostLoad{Start: 1.5, End: 4}
	c := sample("redisha", "master-crash", 1, 2, 5, 0, result.OutcomePass, "") // written before host_load existed
	d := NewDocument(time.Unix(0, 0), []string{"reference", "redisha"}, nil, nil, nil, []Run{{Result: a}, {Result: b}, {Result: c}})
	if !slices.Equal(d.Versions, []string{"abc"}) {
		t.Fatalf("versions %v", d.Versions)
	}
	if l := d.HostLoad; l == nil || *l != (LoadSpan{Min: 0.5, Median: 2.5, Max: 4, Samples: 4}) {
		t.Fatalf("host load %+v", d.HostLoad)
	}
}
