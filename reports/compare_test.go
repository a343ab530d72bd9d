package reports

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/compare"
	"github.com/redisha/redisha/scenarios/result"
)

// findingRun is a run that matched its stack's known findings: it exits 0, and must still read
// as a finding with its lost writes, never as a green pass.
func findingRun(stack string, seed uint64, lost int) *result.Result {
	one := result.Failover(1)
	return &result.Result{Scenario: "master-minority", Stack: stack, Seed: seed, Run: int(seed), VIP: "10.0.0.200",
		Expect:  result.Expect{Failover: &one},
		Summary: result.Summary{Failovers: 2, WorstUnavailabilityS: 3.25, LostWrites: &lost, AckedWrites: 900, SplitBrainWrites: 4, VIPChanges: 1},
		Verdicts: []result.Judged{
			{Verdict: result.Verdict{Check: "split-brain", Status: result.Fail}, Want: result.Fail, Known: "recipe", Match: true},
			{Verdict: result.Verdict{Check: "lost-writes", Status: result.Fail}, Want: result.Fail, Known: "async", Match: true},
		},
		Outcome: result.OutcomePass}
}

func TestKnownFindingIsNotAGreenPass(t *testing.T) {
	r := findingRun("reference", 1, 12)
	if got := Verdict(r); got != "known finding: split-brain,lost-writes (12 acked writes lost)" {
		t.Fatalf("verdict %q", got)
	}
	if row := RowOf(r); !strings.Contains(row.Verdict, "known finding") || strings.HasPrefix(row.Verdict, "pass") {
		t.Fatalf("table row %+v", row)
	}
	dir := t.TempDir()
	if err := result.Write(dir, r); err != nil {
		t.Fatal(err)
	}
	page := renderPage(t, dir)
	if !strings.Contains(page, `class="badge finding"`) || strings.Contains(page, `class="badge pass"`) || !strings.Contains(page, "12 acked writes lost") {
		t.Fatal("the run page shows a known finding as a pass")
	}
	// No proxy was observed in this run: its routing reads "not measured", not 0.0 s.
	if !strings.Contains(page, "not measured") {
		t.Fatal("the run page claims a routing figure nobody measured")
	}
	idx := filepath.Join(dir, "all.html")
	if err := WriteIndex(idx, []*result.Result{r}, []string{"x/index.html"}); err != nil {
		t.Fatal(err)
	}
	if s := string(must(os.ReadFile(idx))); !strings.Contains(s, `<td class="finding">known finding`) {
		t.Fatalf("index row:\n%s", s)
	}
}

func sampleDocument() *compare.Document {
	lost := 0
	one := result.Failover(1)
	crash := func(stack string, seed uint64, unavail float64, routes bool) *result.Result {
		r := &result.Result{Scenario: "master-crash", Stack: stack, Seed: seed, Run: int(seed), VIP: "10.0.0.200", Machine: "box 2 cpu",
			Expect:   result.Expect{Failover: &one},
			Summary:  result.Summary{Failovers: 1, WorstUnavailabilityS: unavail, LostWrites: &lost, VIPChanges: 1},
			Verdicts: []result.Judged{{Verdict: result.Verdict{Check: "failover", Status: result.Pass}, Want: result.Pass, Match: true}},
			Outcome:  result.OutcomePass}
		if routes {
			r.Analysis = &result.Analysis{Routes: []result.Route{{Proxy: "haproxy1", Up: []string{"redis1"}}}}
		}
		return r
	}
	var runs []compare.Run
	for s := uint64(1); s <= 3; s++ {
		runs = append(runs,
			compare.Run{Result: crash("reference", s, 5+float64(s), true), Link: "reference/master-crash-" + string(rune('0'+s)) + "/index.html"},
			compare.Run{Result: crash("redisha", s, 2+float64(s)/2, false), Link: "redisha/master-crash-" + string(rune('0'+s)) + "/index.html"},
			compare.Run{Result: findingRun("reference", s, 10*int(s)), Link: "reference/master-minority-" + string(rune('0'+s)) + "/index.html"})
	}
	d := compare.NewDocument(time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC), []string{"reference", "redisha"}, []string{"1/1"}, nil, nil, runs)
	return &d
}

func TestCompareTableAndMarkdown(t *testing.T) {
	d := sampleDocument()
	var b strings.Builder
	if err := WriteCompareTable(&b, d); err != nil {
		t.Fatal(err)
	}
	txt := b.String()
	for _, want := range []string{"== master-crash (seeds 1, 2, 3; runs: reference 3, redisha 3)", "metric", "reference", "redisha",
		"3 pass", "median 7.0, p90 8.0, max 8.0 s", "median 3.0, p90 3.5, max 3.5 s",
		"3 known finding (60 acked writes lost)", "2, 2, 2 (3 FALSE)", "10, 20, 30", "no runs"} {
		if !strings.Contains(txt, want) {
			t.Errorf("table lacks %q:\n%s", want, txt)
		}
	}
	// redisha's proxies were not observed: "not measured", and the reference's 0.0 s is measured.
	for _, line := range strings.Split(txt, "\n") {
		if strings.HasPrefix(line, "proxies route to two masters") && strings.Contains(txt[:strings.Index(txt, line)], "== master-crash") {
			if !strings.Contains(line, "0.0 s") || !strings.Contains(line, "not measured") {
				t.Errorf("routing row %q", line)
			}
			break
		}
	}
	b.Reset()
	if err := WriteCompareMarkdown(&b, d); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"# redisha compare: reference vs redisha", "Generated 2026-12-01 20:00 UTC from runs on box 2 cpu",
		"## master-crash", "| metric | reference | redisha |", "| --- | --- | --- |", "| verdicts | 3 pass | 3 pass |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestCompareHTMLSelfContained(t *testing.T) {
	d := sampleDocument()
	dir := t.TempDir()
	path := filepath.Join(dir, "compare.html")
	if err := WriteCompareHTML(path, d); err != nil {
		t.Fatal(err)
	}
	page := string(must(os.ReadFile(path)))
	if m := regexp.MustCompile(`(?i)(src\s*=|href\s*=\s*["']?([a-z]+:|//)|<link|<script|@import|url\()`).FindString(page); m != "" {
		t.Fatalf("compare.html loads an external asset or runs a script: %q", m)
	}
	// Every measured value of every run is a dot that links to the run's own report.
	want := 0
	for _, sc := range d.Scenarios {
		for _, sr := range sc.Stacks {
			for _, r := range sr.Runs {
				for _, m := range compare.Metrics {
					if m != compare.FalseFailovers && r.Values[m.Key] != nil {
						want++
					}
				}
			}
		}
	}
	if got := strings.Count(page, `<circle class="run"`); got != want || want == 0 {
		t.Fatalf("%d dots, want %d", got, want)
	}
	for _, want := range []string{`<a href="reference/master-crash-2/index.html">`, `<a href="redisha/master-crash-3/index.html">`, "not measured",
		"known finding (60 acked writes lost)", "median 7.0", `stroke="#d64545" stroke-width="3"`} {
		if !strings.Contains(page, want) {
			t.Errorf("compare.html lacks %q", want)
		}
	}
	if out := os.Getenv("REDISHA_SAMPLE_COMPARE_HTML"); out != "" {
		_ = os.WriteFile(out, []byte(page), 0o644)
	}
	// compare.json reads back with every figure.
	jp := filepath.Join(dir, compare.File)
	if err := WriteCompareJSON(jp, d); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCompareJSON(jp)
	if err != nil || len(back.Scenarios) != 2 || back.Scenarios[0].Stacks[1].Runs[2].Values["write_unavailability_s"] == nil ||
		*back.Scenarios[0].Stacks[1].Runs[2].Values["write_unavailability_s"] != 3.5 || back.Scenarios[0].Stacks[1].Runs[2].Values["dual_route_s"] != nil {
		t.Fatalf("compare.json read back: %v %+v", err, back)
	}
}
