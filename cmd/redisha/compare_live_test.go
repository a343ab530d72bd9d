package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/reports"
	"github.com/redisha/redisha/scenarios"
	"github.com/redisha/redisha/scenarios/compare"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestCompareLive compares the two built-in stacks on a shortened master-crash (one seed) in real
// containers: compare writes the table, compare.json and a self-contained compare.html, and every
// figure of compare.json is the one in that run's own result.json. About 3 minutes.
func TestCompareLive(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: live runs against real containers")
	}
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	s, err := scenarios.Load("master-crash")
	if err != nil {
		t.Fatal(err)
	}
	demoTiming(s)
	s.Workload.Duration = spec.Duration(20 * time.Second)
	s.Workload.Rate = 150
	out := t.TempDir()
	if keep := os.Getenv("REDISHA_KEEP_REPORTS"); keep != "" {
		out = keep
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	doc, runs, err := executeCompare(ctx, compareConfig{stacks: DefaultStacks, scenarios: []*spec.Scenario{s}, seed: 1, repeat: 1,
		shard: compare.All, out: out, progress: logWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := reports.WriteCompareTable(&table, doc); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + table.String())
	if len(runs) != 2 || len(doc.Missing) != 0 || len(doc.Scenarios) != 1 || !strings.Contains(table.String(), "== master-crash (seeds 1; runs: reference 1, redisha 1)") {
		t.Fatalf("%d runs, missing %v", len(runs), doc.Missing)
	}
	for _, r := range runs {
		if r.Result.Error != "" || r.Result.Summary.Failovers != 1 {
			t.Fatalf("%s: error %q, %d failovers: %v", r.Result.Stack, r.Result.Error, r.Result.Summary.Failovers, r.Result.Reasons)
		}
	}

	// compare.json's cells are the per-run result.json files, figure for figure.
	back, err := reports.ReadCompareJSON(filepath.Join(out, compare.File))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*", "*", result.ResultFile))
	if len(files) != 2 {
		t.Fatalf("result.json files: %v", files)
	}
	seen := 0
	for _, sc := range back.Scenarios {
		for _, sr := range sc.Stacks {
			for _, fig := range sr.Runs {
				res, err := result.Read(filepath.Dir(filepath.Join(out, filepath.FromSlash(fig.Link))))
				if err != nil {
					t.Fatal(err)
				}
				if res.Stack != sr.Stack || res.Scenario != sc.Name || res.Seed != fig.Seed || res.Outcome != fig.Outcome ||
					!reflect.DeepEqual(compare.Values(res), fig.Values) {
					t.Fatalf("compare.json's %s/%s/%d is not its result.json: %+v vs %+v", sr.Stack, sc.Name, fig.Seed, fig.Values, compare.Values(res))
				}
				if *fig.Values[compare.WriteUnavailable.Key] != res.Summary.WorstUnavailabilityS || *fig.Values[compare.Failovers.Key] != 1 {
					t.Fatalf("figures %+v", fig.Values)
				}
				seen++
			}
		}
	}
	if seen != len(files) {
		t.Fatalf("compare.json holds %d runs, %d result.json files written", seen, len(files))
	}

	// The page and the table.
	for _, f := range []string{"compare.md", "compare.html", result.JUnitFile} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	page, _ := os.ReadFile(filepath.Join(out, "compare.html"))
	if m := regexp.MustCompile(`(?i)(src\s*=|href\s*=\s*["']?([a-z]+:|//)|<link|<script|@import|url\()`).Find(page); m != nil {
		t.Fatalf("compare.html loads an external asset: %q", m)
	}
	if n := strings.Count(string(page), `<circle class="run"`); n < 2*6 {
		t.Fatalf("compare.html draws %d run dots", n)
	}
	md, _ := os.ReadFile(filepath.Join(out, "compare.md"))
	if !strings.Contains(string(md), "| metric | reference | redisha |") {
		t.Fatalf("compare.md:\n%s", md)
	}
}
