package scenarios

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/redisha/redisha/reports"
	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/result"
	"github.com/redisha/redisha/scenarios/spec"
)

// KnownVerdict is an expected non-pass verdict of a stack: a finding, not a regression.
type KnownVerdict struct {
	Status check.Status `yaml:"status"`
	Why    string       `yaml:"why"`
}

// Known maps scenario name to check name to its known verdict.
type Known map[string]map[string]KnownVerdict

// KnownVerdictsFile is the file a stack directory may ship.
const KnownVerdictsFile = "known-verdicts.yaml"

//go:embed known/*.yaml
var knownFS embed.FS

// LoadKnown reads the known verdicts of a stack: stackDir/known-verdicts.yaml for a stack given
// as a directory, or the built-in file for a built-in stack. No file means no known findings.
func LoadKnown(stack, stackDir string) (Known, error) {
	var data []byte
	var err error
	name := ""
	if stackDir != "" {
		name = filepath.Join(stackDir, KnownVerdictsFile)
		data, err = os.ReadFile(name)
	} else {
		name = "known/" + stack + ".yaml"
		data, err = knownFS.ReadFile(name)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return Known{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseKnown(name, data)
}

// ParseKnown decodes a known-verdicts file strictly.
func ParseKnown(name string, data []byte) (Known, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	k := Known{}
	if err := dec.Decode(&k); err != nil && err.Error() != "EOF" {
		return nil, spec.YAMLError(name, err)
	}
	checks := map[string]bool{check.CheckFailover: true, check.CheckUnavailability: true, check.CheckLostWrites: true,
		check.CheckSplitBrain: true, check.CheckLinearizable: true}
	for sc, m := range k {
		for c, v := range m {
			if !checks[c] {
				return nil, fmt.Errorf("%s: %s: unknown check %q", name, sc, c)
			}
			if v.Status != check.Fail && v.Status != check.Unknown {
				return nil, fmt.Errorf("%s: %s.%s: status must be fail or unknown, not %q", name, sc, c, v.Status)
			}
			if strings.TrimSpace(v.Why) == "" {
				return nil, fmt.Errorf("%s: %s.%s: say why (a known finding needs its reason)", name, sc, c)
			}
		}
	}
	return k, nil
}

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
	e := s.Expect
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
	var j Judgement
	for _, v := range vs {
		jv := result.Judged{Verdict: v, Want: check.Pass}
		if k, ok := known[v.Check]; ok {
			jv.Want, jv.Known = k.Status, k.Why
		}
		jv.Match = jv.Status == jv.Want
		j.Verdicts = append(j.Verdicts, jv)
	}
	sum := &j.Summary
	for _, o := range in.Ops {
		if o.Kind == "dial" {
			continue
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
		case check.CheckLinearizable:
			sum.Linearizable = string(v.Status)
			if strings.HasPrefix(v.Observed, "not linearizable") {
				sum.Linearizable = "fail"
			} else if strings.HasPrefix(v.Observed, "unknown") {
				sum.Linearizable = "unknown"
			}
		}
	}
	lost, acked := check.LostOps(in)
	sum.AckedWrites = acked
	if in.Final.Converged {
		for _, l := range lost {
			j.LostOpIDs = append(j.LostOpIDs, l.Op.ID)
		}
	}
	changes, dual := check.VIPStats(in.Events, in.End)
	sum.VIPChanges, sum.DualVIPS = changes, dual.Seconds()
	sum.DualRouteS = check.DualRouteWindow(in.Events, in.End).Seconds()
	j.Analysis = check.Analyze(in)
	j.Outcome, j.Reasons = result.Fold(j.Verdicts, "")
	return j
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
