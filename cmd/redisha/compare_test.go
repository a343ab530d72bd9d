package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/redisha/redisha/reports"
	"github.com/redisha/redisha/scenarios"
	"github.com/redisha/redisha/scenarios/compare"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

// fakeRun stands in for scenarios.Run: it writes the result.json a run of that cell would, with
// figures derived from the cell, so planning, sharding and merging are tested without labs.
func fakeRun(t *testing.T, calls *[]compare.Planned) runFunc {
	return func(_ context.Context, s *spec.Scenario, runNo int, opt scenarios.Options) (*result.Result, string) {
		name, err := stackLabel(opt.Stack)
		if err != nil {
			t.Fatal(err)
		}
		seed := opt.Seed + uint64(runNo-1)
		dir := filepath.Join(opt.Out, result.RunDir(s.Name, runNo))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		lost := int(seed % 3)
		res := &result.Result{Scenario: s.Name, Stack: name, Seed: seed, Run: runNo, VIP: "10.0.0.200", Machine: "fake",
			Workload: s.Workload, Expect: s.Expect,
			Summary:  result.Summary{Failovers: 1, WorstUnavailabilityS: float64(len(name)) + float64(seed)/10, LostWrites: &lost, VIPChanges: 1},
			Verdicts: []result.Judged{{Verdict: result.Verdict{Check: "failover", Status: result.Pass}, Want: result.Pass, Match: true}},
			Outcome:  result.OutcomePass}
		if err := result.Write(dir, res); err != nil {
			t.Fatal(err)
		}
		*calls = append(*calls, compare.Planned{Cell: res.Cell(), Run: runNo})
		return res, dir
	}
}

func executeCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newCompareCmd()
	switch args[0] {
	case "run":
		cmd = newRunCmd()
	case "report":
		cmd = newReportCmd()
	}
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args[1:])
	err := cmd.Execute()
	return out.String(), err
}

// figures is what a comparison says about each run, keyed by cell and repetition.
func figures(t *testing.T, dir string) map[compare.Planned]map[string]*float64 {
	t.Helper()
	doc, err := reports.ReadCompareJSON(filepath.Join(dir, compare.File))
	if err != nil {
		t.Fatal(err)
	}
	out := map[compare.Planned]map[string]*float64{}
	for _, sc := range doc.Scenarios {
		for _, sr := range sc.Stacks {
			for _, r := range sr.Runs {
				// Each link leads to the run's own result, relative to the page.
				back, err := result.Read(filepath.Dir(filepath.Join(dir, filepath.FromSlash(r.Link))))
				if err != nil || back.Scenario != sc.Name || back.Stack != sr.Stack || back.Seed != r.Seed {
					t.Fatalf("%s: link %s does not lead to its run: %v %+v", dir, r.Link, err, back)
				}
				out[compare.Planned{Cell: result.Cell{Stack: sr.Stack, Scenario: sc.Name, Seed: r.Seed}, Run: r.Run}] = r.Values
			}
		}
	}
	return out
}

// Sharding on recorded results: --shard 1/2 and --shard 2/2 (flags in another order) merged give
// exactly the runs, and the figures, of the unsharded comparison; one shard alone is incomplete.
func TestCompareShardsMergeToTheWhole(t *testing.T) {
	var calls []compare.Planned
	runScenario = fakeRun(t, &calls)
	defer func() { runScenario = scenarios.Run }()
	root := t.TempDir()
	whole, s1, s2 := filepath.Join(root, "whole"), filepath.Join(root, "shard-1"), filepath.Join(root, "shard-2")
	if out, err := executeCmd(t, "compare", "--stacks", "reference,redisha", "--seed", "5", "--runs", "master-crash=3", "--out", whole,
		"master-crash", "master-minority", "old-master-returns"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wholeCalls := slices.Clone(calls)
	if len(wholeCalls) != 2*(3+1+1) {
		t.Fatalf("%d runs: %+v", len(wholeCalls), wholeCalls)
	}
	calls = nil
	if _, err := executeCmd(t, "compare", "--shard", "1/2", "--stacks", "reference,redisha", "--seed", "5", "--runs", "master-crash=3", "--out", s1,
		"master-crash", "master-minority", "old-master-returns"); err != nil {
		t.Fatal(err)
	}
	first := slices.Clone(calls)
	calls = nil
	if _, err := executeCmd(t, "compare", "old-master-returns", "master-minority", "--out", s2, "master-crash", "--runs", "master-crash=3",
		"--seed", "5", "--stacks", "redisha,reference", "--shard", "2/2"); err != nil {
		t.Fatal(err)
	}
	second := slices.Clone(calls)
	if len(first) == 0 || len(second) == 0 || len(first)+len(second) != len(wholeCalls) {
		t.Fatalf("shards of %d and %d runs for %d", len(first), len(second), len(wholeCalls))
	}
	union := append(slices.Clone(first), second...)
	compare.SortPlanned(union)
	compare.SortPlanned(wholeCalls)
	if !slices.Equal(union, wholeCalls) {
		t.Fatalf("the shards ran\n%+v\nnot\n%+v", union, wholeCalls)
	}

	merged := filepath.Join(root, "merged")
	out, err := executeCmd(t, "report", "--merge", "--out", merged, s2, s1)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "== master-crash (seeds 5, 6, 7; runs: redisha 3, reference 3)") || !strings.Contains(out, filepath.Join(merged, "compare.html")) {
		t.Fatalf("merge output:\n%s", out)
	}
	if got, want := figures(t, merged), figures(t, whole); !reflect.DeepEqual(got, want) || len(want) != len(wholeCalls) {
		t.Fatalf("merged figures differ from the unsharded run:\n%v\n%v", got, want)
	}
	for _, f := range []string{"compare.md", "compare.html", "junit.xml"} {
		if st, err := os.Stat(filepath.Join(merged, f)); err != nil || st.Size() == 0 {
			t.Errorf("merge wrote no %s: %v", f, err)
		}
	}
	md, _ := os.ReadFile(filepath.Join(merged, "compare.md"))
	if !strings.Contains(string(md), "(shards 1/2, 2/2)") {
		t.Errorf("compare.md does not say which shards it merged:\n%s", md)
	}

	// One shard alone is an incomplete comparison: exit 2, the missing runs named.
	out, err = executeCmd(t, "report", "--merge", "--out", filepath.Join(root, "half"), s1)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(out, "MISSING") {
		t.Fatalf("one shard merged: %v\n%s", err, out)
	}
	// The same shard twice is an error.
	if _, err := executeCmd(t, "report", "--merge", "--out", filepath.Join(root, "twice"), s1, s1); err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Fatalf("overlapping shards merged: %v", err)
	}
}

// run --shard splits the same way, and a merge of run shards (no compare.json: every result.json
// found) is the whole.
func TestRunShards(t *testing.T) {
	var calls []compare.Planned
	runScenario = fakeRun(t, &calls)
	defer func() { runScenario = scenarios.Run }()
	root := t.TempDir()
	for _, sh := range []string{"1/3", "2/3", "3/3"} {
		if out, err := executeCmd(t, "run", "--shard", sh, "--seed", "9", "--repeat", "2", "--out", filepath.Join(root, strings.Replace(sh, "/", "of", 1)),
			"master-crash", "master-minority"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	if len(calls) != 4 {
		t.Fatalf("%d runs: %+v", len(calls), calls)
	}
	out, err := executeCmd(t, "report", "--merge", "--out", filepath.Join(root, "m"), filepath.Join(root, "1of3"), filepath.Join(root, "2of3"), filepath.Join(root, "3of3"))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := figures(t, filepath.Join(root, "m")); len(got) != 4 {
		t.Fatalf("merged %d runs", len(got))
	}
	if _, err := executeCmd(t, "run", "--shard", "1/2", "master-crash"); err == nil || !strings.Contains(err.Error(), "--seed") {
		t.Fatalf("--shard without --seed: %v", err)
	}
}

func TestCompareRejectsBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"compare"},
		{"compare", "no-such-scenario"},
		{"compare", "--stacks", "reference,nope", "master-crash"},
		{"compare", "--stacks", "reference,reference", "master-crash"},
		{"compare", "--shard", "3/2", "--seed", "1", "master-crash"},
		{"compare", "--shard", "1/2", "master-crash"},
		{"compare", "--runs", "master-minority=3", "master-crash"},
		{"compare", "--repeat", "0", "master-crash"},
	} {
		if _, err := executeCmd(t, args...); err == nil {
			t.Errorf("%v accepted", args)
		} else if ee := (*exitError)(nil); errors.As(err, &ee) {
			t.Errorf("%v: want a usage error (exit 2), got %v", args, err)
		}
	}
}

// The demo's timing is the same transformation on every stack, and keeps every fault inside the
// shortened workload.
func TestDemoTiming(t *testing.T) {
	for _, n := range DemoScenarios {
		s, err := scenarios.Load(n)
		if err != nil {
			t.Fatal(err)
		}
		demoTiming(s)
		if s.Stack.Params.DownAfterMs != 2000 || s.Workload.Duration.D().Seconds() != 24 {
			t.Fatalf("%s: %+v", n, s.Workload)
		}
		for _, f := range s.Faults {
			if end := f.At.D() + f.Duration.D(); end >= s.Workload.Duration.D() {
				t.Errorf("%s: a fault ends at %s, after the %s workload", n, end, s.Workload.Duration.D())
			}
		}
	}
}
