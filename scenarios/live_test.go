package scenarios

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

// The live tests run catalog scenarios against real containers of the reference stack, with a
// shortened down-after (2 s) and workload (20 s) so the three fit in about three minutes. They
// prove the harness catches real behaviour: a failover with bounded unavailability, no failover
// on a master-replica partition, and lost and split-brain writes when the master is in the
// minority. A run that finds nothing in the last one means the harness is broken.

func requireLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: live runs against real containers")
	}
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
}

// shortened loads a catalog scenario and compresses it: down-after 2 s, a 20 s workload, and
// the fault timeline scaled to fit.
func shortened(t *testing.T, name string, faultAt, faultFor time.Duration) *spec.Scenario {
	t.Helper()
	s, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	s.Stack.Params.DownAfterMs = 2000
	s.Workload.Duration = spec.Duration(20 * time.Second)
	s.Workload.Rate = 150
	s.ConvergeTimeout = spec.Duration(40 * time.Second)
	for i := range s.Faults {
		s.Faults[i].At = spec.Duration(faultAt)
		if s.Faults[i].Duration != 0 {
			s.Faults[i].Duration = spec.Duration(faultFor)
		}
	}
	if s.Expect.FailoverWithin != 0 {
		s.Expect.FailoverWithin = spec.Duration(10 * time.Second)
	}
	if s.Expect.MaxWriteUnavailability != 0 {
		s.Expect.MaxWriteUnavailability = spec.Duration(12 * time.Second)
	}
	return s
}

func runLive(t *testing.T, s *spec.Scenario) *result.Result {
	t.Helper()
	return runLiveOn(t, s, "")
}

// runDirs remembers each live run's directory.
var runDirs = map[*result.Result]string{}

func runDir(t *testing.T, res *result.Result) string {
	t.Helper()
	d, ok := runDirs[res]
	if !ok {
		t.Fatal("no directory recorded for the run")
	}
	return d
}

// runLiveOn runs s on stack (a built-in name or a directory; "" for the scenario's own).
func runLiveOn(t *testing.T, s *spec.Scenario, stack string) *result.Result {
	t.Helper()
	out := t.TempDir()
	if keep := os.Getenv("REDISHA_KEEP_REPORTS"); keep != "" {
		out = keep
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, dir := Run(ctx, s, 1, Options{Stack: stack, Seed: 1, Out: out, Progress: testWriter{t}})
	runDirs[res] = dir
	if res.Error != "" {
		t.Fatalf("harness error: %s", res.Error)
	}
	firstNode := "redis1"
	for n := range res.Nodes {
		if strings.HasPrefix(n, "db-") {
			firstNode = "db-a"
		}
	}
	for _, f := range []string{result.ResultFile, result.HistoryFile, result.EventsFile, result.JUnitFile, result.HTMLFile, result.FinalFile, "logs/" + firstNode + ".log"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("report file %s missing or empty: %v", f, err)
		}
	}
	for _, v := range res.Verdicts {
		t.Logf("%-20s %-13s want %-5s %s", v.Check, v.Status, v.Want, v.Observed)
	}
	if res.Analysis == nil || len(res.Analysis.Masters) == 0 || res.Analysis.Masters[0].Master == "" {
		t.Fatalf("the judge stored no analysis of the quorum's master: %+v", res.Analysis)
	}
	if back, err := result.Read(dir); err != nil || back.Outcome != res.Outcome || len(back.Verdicts) != len(res.Verdicts) {
		t.Fatalf("result.json does not read back as the run's result: %v", err)
	}
	if res.Summary.Ops < 1000 {
		t.Fatalf("only %d operations recorded", res.Summary.Ops)
	}
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b[:len(b)-1])); return len(b), nil }

func TestLiveMasterCrash(t *testing.T) {
	requireLab(t)
	s := shortened(t, "master-crash", 5*time.Second, 0)
	res := runLive(t, s)
	if res.Summary.Failovers != 1 {
		t.Fatalf("master crash: %d failovers, want 1", res.Summary.Failovers)
	}
	if res.Summary.FailoverS == nil || *res.Summary.FailoverS > 10 {
		t.Fatalf("failover took %v s", res.Summary.FailoverS)
	}
	// Down-after 2 s, promotion, HAProxy's checks: writes must stop and come back.
	if u := res.Summary.WorstUnavailabilityS; u < 1 || u > 12 {
		t.Fatalf("worst write unavailability %.1fs: want a real but bounded outage", u)
	}
	if res.Outcome != result.OutcomePass {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Reasons)
	}
}

func TestLiveMasterReplicaPartition(t *testing.T) {
	requireLab(t)
	s := shortened(t, "master-replica-partition", 5*time.Second, 8*time.Second)
	res := runLive(t, s)
	if res.Summary.Failovers != 0 {
		t.Fatalf("master-replica partition caused %d failovers: the false positive the recipe should avoid", res.Summary.Failovers)
	}
	if res.Summary.LostWrites == nil || *res.Summary.LostWrites != 0 {
		t.Fatalf("lost writes: %v", res.Summary.LostWrites)
	}
	if res.Outcome != result.OutcomePass {
		t.Fatalf("outcome %s: %v", res.Outcome, res.Reasons)
	}
}

// TestLiveMasterMinorityFindsSplitBrain is the harness's proof of sight: the reference stack
// acknowledges writes on the isolated old master after the majority promoted the replica, and
// loses them when it rejoins. Both must be found, and the known-verdicts file must make the run
// pass as expected findings.
func TestLiveMasterMinorityFindsSplitBrain(t *testing.T) {
	requireLab(t)
	s := shortened(t, "master-minority", 4*time.Second, 10*time.Second)
	res := runLive(t, s)
	if res.Summary.Failovers != 1 {
		t.Fatalf("master-minority: %d failovers, want 1", res.Summary.Failovers)
	}
	if res.Summary.SplitBrainWrites == 0 {
		t.Fatal("no split-brain writes found: the harness is blind")
	}
	if res.Summary.LostWrites == nil || *res.Summary.LostWrites == 0 {
		t.Fatalf("no lost writes found (%v): the harness is blind", res.Summary.LostWrites)
	}
	if n := len(res.Analysis.SplitBrainOpIDs); n != res.Summary.SplitBrainWrites {
		t.Fatalf("the analysis marks %d split-brain writes, the summary counts %d", n, res.Summary.SplitBrainWrites)
	}
	if res.Summary.TwoMasterS < 1 {
		t.Fatalf("two-master window %.1fs", res.Summary.TwoMasterS)
	}
	if res.Outcome != result.OutcomePass {
		t.Fatalf("outcome %s (the findings are known for the reference stack): %v", res.Outcome, res.Reasons)
	}
}
