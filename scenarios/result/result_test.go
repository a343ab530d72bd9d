package result

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestFoldAndExitCode(t *testing.T) {
	pass := Judged{Verdict: Verdict{Check: "failover", Status: Pass}, Want: Pass, Match: true}
	known := Judged{Verdict: Verdict{Check: "split-brain", Status: Fail}, Want: Fail, Known: "recipe", Match: true}
	unexpected := Judged{Verdict: Verdict{Check: "lost-writes", Status: Pass}, Want: Fail, Known: "loss"}
	regression := Judged{Verdict: Verdict{Check: "lost-writes", Status: Fail, Expected: "0", Observed: "3 lost"}, Want: Pass}
	notConverged := Judged{Verdict: Verdict{Check: "convergence", Status: NotConverged, Observed: "behind"}, Want: Pass}
	for _, c := range []struct {
		vs      []Judged
		harness string
		want    Outcome
		reasons int
		code    int
	}{
		{[]Judged{pass, known}, "", OutcomePass, 0, 0},
		{[]Judged{pass, unexpected}, "", OutcomeFail, 1, 1},
		{[]Judged{regression}, "", OutcomeFail, 1, 1},
		{[]Judged{notConverged, regression}, "", OutcomeError, 2, 2},
		{nil, "docker went away", OutcomeError, 1, 2},
	} {
		got, reasons := Fold(c.vs, c.harness)
		if got != c.want || len(reasons) != c.reasons || ExitCode(got) != c.code {
			t.Errorf("Fold(%v, %q) = %s %q (exit %d), want %s with %d reason(s), exit %d", c.vs, c.harness, got, reasons, ExitCode(got), c.want, c.reasons, c.code)
		}
	}
	if ExitCode(OutcomePass, OutcomeFail, OutcomeError, OutcomePass) != 2 || ExitCode(OutcomeFail, OutcomePass) != 1 || ExitCode() != 0 {
		t.Fatal("ExitCode does not take the worst outcome")
	}
}

// An old result.json (before the analysis and the typed timeline) reads back with every field.
func TestReadOldResult(t *testing.T) {
	dir := t.TempDir()
	old := `{"scenario":"master-crash","source":"catalog/master-crash.yaml","stack":"reference",
"stack_params":{"checkInterval":"1s","quorum":2},"seed":7,"run":1,"workload":{"clients":4,"duration":"40s"},
"expect":{"failover":1},"timeline":[{"a":null,"at":"10s","b":null,"duration":"0s","entry":0,"kind":"crash","repeat":0,"targets":["redis1"]}],
"faults":[],"verdicts":[{"check":"failover","status":"pass","expected":"exactly 1","observed":"1","want":"pass","match":true}],
"summary":{"ops":10,"lost_writes":0},"outcome":"pass"}`
	if err := os.WriteFile(filepath.Join(dir, ResultFile), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []TimelineEntry{{At: "10s", Duration: "0s", Kind: "crash", Targets: []string{"redis1"}}}
	if !reflect.DeepEqual(r.Timeline, want) || r.Analysis != nil || r.Outcome != OutcomePass || r.Verdicts[0].Status != Pass ||
		r.StackParams.CheckInterval.String() != "1s" || r.StackParams.Quorum != 2 || r.Workload.Clients != 4 || r.Workload.Duration.D() != 40*time.Second || *r.Expect.Failover != 1 || *r.Summary.LostWrites != 0 {
		t.Fatalf("read back %+v", r)
	}
	if err := Write(dir, r); err != nil {
		t.Fatal(err)
	}
	again, err := Read(dir)
	if err != nil || !reflect.DeepEqual(again, r) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, again, r)
	}
}

func TestCell(t *testing.T) {
	r := &Result{Stack: "reference", Scenario: "master-crash", Seed: 7, Run: 2}
	if c := r.Cell(); c != (Cell{"reference", "master-crash", 7}) || c.String() != "reference/master-crash/7" {
		t.Fatalf("cell %+v", c)
	}
	if RunDir(r.Scenario, r.Run) != "master-crash-2" {
		t.Fatal(RunDir(r.Scenario, r.Run))
	}
}
