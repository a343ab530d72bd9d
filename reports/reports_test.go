package reports

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/result"
)

// sampleRun writes a crafted run directory: a master crash at 8 s, failover at 14 s, the old master
// back and acknowledging writes from 20 s to 21 s (split brain), and a VIP move at 10 s.
func sampleRun(t *testing.T) string {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	hw := must(history.Create(filepath.Join(dir, result.HistoryFile)))
	id := int64(0)
	var split []int64 // what the judge's analysis finds: redis1's writes after the failover
	for w := 0; w < 3; w++ {
		hw.Write(history.Op{ID: id, Worker: w, Kind: "dial", Invoke: at(0), Complete: at(0.001), Status: history.OK, Server: "10.0.0.11:6379", Node: "redis1", Dial: 1})
		for s := 0.0; s < 30; s += 0.05 {
			id++
			o := history.Op{ID: id, Worker: w, Kind: []string{"set", "get", "add"}[int(id)%3], Key: "r:1", Value: "v",
				Invoke: at(s), Complete: at(s + 0.0008), Status: history.OK, Server: "10.0.0.11:6379", Node: "redis1"}
			switch {
			case s >= 8 && s < 14.5:
				o.Status, o.Err, o.Server, o.Node, o.Complete = history.Fail, "connection refused", "", "", at(s+0.002)
				if int(s*20)%7 == 0 {
					o.Status, o.Err, o.Complete = history.Indeterminate, "i/o timeout", at(s+0.2)
				}
			case s >= 20 && s < 21 && w == 1:
				if o.Kind != "get" {
					split = append(split, o.ID)
				}
			case s >= 14.5:
				o.Server, o.Node = "10.0.0.12:6379", "redis2"
			}
			hw.Write(o)
		}
	}
	if err := hw.Close(); err != nil {
		t.Fatal(err)
	}
	ew := must(history.Create(filepath.Join(dir, result.EventsFile)))
	role := func(s float64, n, r string) history.Event {
		return history.Event{Time: at(s), Source: history.SourceRole, Kind: history.KindRole, Node: n, Attrs: map[string]string{"role": r}}
	}
	for _, e := range []history.Event{
		{Time: at(-1), Source: history.SourceRunner, Kind: history.KindInitialMaster, Attrs: map[string]string{"addr": "10.0.0.11:6379"}},
		role(-1, "redis1", "master"), role(-1, "redis2", "slave"),
		{Time: at(-1), Source: history.SourceVIP, Kind: history.KindVIPHolder, Node: "haproxy1", Attrs: map[string]string{"holders": "haproxy1", "count": "1"}},
		role(8, "redis1", "unreachable"),
		{Time: at(10), Source: history.SourceVIP, Kind: history.KindVIPHolder, Node: "haproxy2", Attrs: map[string]string{"holders": "haproxy2", "count": "1"}},
		{Time: at(13.2), Source: history.SourceSentinel, Kind: "+odown", Node: "sentinel", Detail: "master mymaster 10.0.0.11 6379 #quorum 2/2"},
		{Time: at(14), Source: history.SourceSentinel, Kind: history.KindSwitchMaster, Node: "sentinel", Detail: "mymaster 10.0.0.11 6379 10.0.0.12 6379"},
		role(14.1, "redis2", "master"), role(20, "redis1", "master"), role(21, "redis1", "slave"),
	} {
		ew.Write(e)
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	lost := 12
	r := &result.Result{Scenario: "old-master-returns", Description: "crafted", Stack: "reference", Seed: 42, Run: 1,
		Nodes: map[string]string{"redis1": "10.0.0.11", "redis2": "10.0.0.12"}, Workload: result.Workload{Clients: 3, Timeout: result.Duration(200 * time.Millisecond)},
		Started: at(-5), WorkStart: at(0), WorkEnd: at(30), Ended: at(40),
		Faults: []result.FaultWindow{{ID: 1, Kind: "crash", Spec: "crash node=redis1", Start: at(8), End: at(20)}},
		Verdicts: []result.Judged{
			{Verdict: result.Verdict{Check: "failover", Status: result.Pass, Expected: "exactly 1", Observed: "1 failover"}, Want: result.Pass, Match: true},
			{Verdict: result.Verdict{Check: "split-brain", Status: result.Fail, Expected: "none", Observed: "20 split-brain writes", Evidence: []string{"op 1 ..."}}, Want: result.Fail, Known: "recipe routes to two masters", Match: true},
			{Verdict: result.Verdict{Check: "lost-writes", Status: result.Pass, Expected: "0", Observed: "0 lost"}, Want: result.Fail, Known: "expected loss", Match: false},
			{Verdict: result.Verdict{Check: "convergence", Status: result.NotConverged, Observed: "redis2 behind"}, Want: result.Pass},
		},
		Summary:   result.Summary{Ops: 1800, OK: 1500, Failed: 250, Indeterminate: 50, Failovers: 1, WorstUnavailabilityS: 6.5, AckedWrites: 1000, LostWrites: &lost, SplitBrainWrites: 20, TwoMasterS: 1},
		LostOpIDs: []int64{5, 8},
		Analysis: &result.Analysis{Masters: []result.Epoch{{Master: "10.0.0.11:6379"}, {From: at(14), Master: "10.0.0.12:6379"}},
			SplitBrainOpIDs: split,
			Routes: []result.Route{{Proxy: "haproxy1", Time: at(-1), Up: []string{"redis1"}, Detail: "redis/redis1=UP redis/redis2=DOWN"},
				{Proxy: "haproxy1", Time: at(20), Up: []string{"redis1", "redis2"}, Detail: "redis/redis1=UP redis/redis2=UP"}}},
		Outcome: result.OutcomeFail, Reasons: []string{"lost-writes: unexpected pass"}, Error: "docker went away"}
	if err := result.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	return dir
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestRenderHTMLSelfContained(t *testing.T) {
	dir := sampleRun(t)
	run, err := LoadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := RenderHTML(run); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, result.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).FindString(html); m != "" {
		t.Fatalf("external asset reference %q", m)
	}
	for _, want := range []string{"failover → redis2", "fault crash node=redis1", "split-brain write", "lost: op 5", "VIP now held by [haproxy2]",
		"known finding", "unexpected pass", "clients=3", "timeout=200ms", "haproxy1 routes to", "redis/redis2=UP", "docker went away", "<svg", "redis1", "redis2"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if out := os.Getenv("REDISHA_SAMPLE_HTML"); out != "" {
		_ = os.WriteFile(out, b, 0o644)
	}
}

func TestJUnitFailureVersusError(t *testing.T) {
	dir := sampleRun(t)
	r, err := result.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, result.JUnitFile)
	if err := WriteJUnit(path, r); err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(must(os.ReadFile(path)), &got); err != nil {
		t.Fatal(err)
	}
	// harness error + not-converged are errors; the unexpected pass is a failure; the matching
	// known finding and the pass are neither.
	if got.Tests != 5 || got.Failures != 1 || got.Errors != 2 {
		t.Fatalf("tests %d failures %d errors %d", got.Tests, got.Failures, got.Errors)
	}
	cases := map[string]junitCase{}
	for _, c := range got.Suites[0].Cases {
		cases[c.Name] = c
	}
	if cases["lost-writes"].Failure == nil || cases["lost-writes"].Failure.Type != "unexpected-pass" {
		t.Fatalf("lost-writes: %+v", cases["lost-writes"])
	}
	if cases["split-brain"].Failure != nil || cases["convergence"].Error == nil || cases["harness"].Error == nil {
		t.Fatalf("cases: %+v", cases)
	}
}

func TestTable(t *testing.T) {
	r := must(result.Read(sampleRun(t)))
	var b strings.Builder
	if err := WriteTable(&b, []*result.Result{r}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scenario", "two-master window", "old-master-returns", "12 / 1000", "6.5s", "FAIL lost-writes"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	_ = WriteMarkdown(&b, []*result.Result{r})
	if !strings.HasPrefix(b.String(), "| scenario | verdict |") {
		t.Fatalf("markdown:\n%s", b.String())
	}
}

// A violated VIP expectation reads as a failure (red in the page), a known VIP finding as a
// finding with what the VIP did beside the lost writes, never as a pass.
func TestVIPVerdictsRender(t *testing.T) {
	dir := sampleRun(t)
	r := must(result.Read(dir))
	none := 0
	r.Error, r.Reasons = "", nil
	r.Verdicts = []result.Judged{
		{Verdict: result.Verdict{Check: "failover", Status: result.Pass}, Want: result.Pass, Match: true},
		{Verdict: result.Verdict{Check: "vip-moves", Status: result.Fail, Expected: "no VIP move", Observed: "2 VIP move(s): to haproxy2 at 12:00:10.000, haproxy1 at 12:00:12.000",
			Metrics: map[string]float64{"moves": 2}}, Want: result.Pass},
	}
	r.Summary.LostWrites = &none
	r.Outcome = result.OutcomeFail
	if got := Verdict(r); got != "FAIL vip-moves" {
		t.Errorf("violation: %q", got)
	}
	var b strings.Builder
	_ = WriteTable(&b, []*result.Result{r})
	if !strings.Contains(b.String(), "FAIL vip-moves") {
		t.Errorf("table:\n%s", b.String())
	}
	run := must(WithRecords(dir, r))
	page := filepath.Join(dir, result.HTMLFile)
	if err := RenderHTML(run); err != nil {
		t.Fatal(err)
	}
	html := string(must(os.ReadFile(page)))
	if !regexp.MustCompile(`<tr class="mismatch">\s*<td>vip-moves</td><td class="st-fail">fail`).MatchString(html) {
		t.Errorf("the violated VIP expectation is not a red mismatch row")
	}

	r.Verdicts[1] = result.Judged{Verdict: result.Verdict{Check: "vip-dual-holders", Status: result.Fail, Expected: "never on two nodes",
		Observed: "on two nodes for 12.1s", Metrics: map[string]float64{"dual_seconds": 12.1}}, Want: result.Fail, Known: "VRRP has no quorum", Match: true}
	r.Outcome = result.OutcomePass
	if got := Verdict(r); got != "known finding: vip-dual-holders (0 acked writes lost, VIP on two nodes 12.1s)" {
		t.Errorf("finding: %q", got)
	}
	if err := RenderHTML(run); err != nil {
		t.Fatal(err)
	}
	html = string(must(os.ReadFile(page)))
	if !regexp.MustCompile(`<tr class="known">\s*<td>vip-dual-holders</td><td class="st-fail">fail<br><small>known finding`).MatchString(html) {
		t.Errorf("the known VIP finding does not read as a finding")
	}
}

// An evidence copy of a run (result.json and events.jsonl, no history.jsonl) must not draw
// empty operation charts as if the run had no traffic: it says where the operations are, and
// lists only the files it has.
func TestRenderHTMLWithoutHistory(t *testing.T) {
	dir := sampleRun(t)
	if err := os.Remove(filepath.Join(dir, result.HistoryFile)); err != nil {
		t.Fatal(err)
	}
	html := renderPage(t, dir)
	for _, want := range []string{"the 1800 client operations behind the figures above", "Files: result.json, events.jsonl."} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, unwanted := range []string{"operations per 250 ms", "writes by serving node", "history.jsonl,"} {
		if strings.Contains(html, unwanted) {
			t.Errorf("report has %q", unwanted)
		}
	}
}

// renderPage renders dir's run page and returns it.
func renderPage(t *testing.T, dir string) string {
	t.Helper()
	run, err := LoadRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := RenderHTML(run); err != nil {
		t.Fatal(err)
	}
	return string(must(os.ReadFile(filepath.Join(dir, result.HTMLFile))))
}
