// Package reports writes and reads a scenario run's report directory: result.json, junit.xml
// and a self-contained index.html, plus tables that aggregate many runs.
package reports

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/redisha/redisha/scenarios/check"
)

// File names inside a run directory.
const (
	ResultFile  = "result.json"
	HistoryFile = "history.jsonl"
	EventsFile  = "events.jsonl"
	JUnitFile   = "junit.xml"
	HTMLFile    = "index.html"
	LogsDir     = "logs"
)

// Outcome of a run as a whole.
type Outcome string

const (
	// OutcomePass: every verdict matched its expectation (known findings included).
	OutcomePass Outcome = "pass"
	// OutcomeFail: a regression or an unexpected pass.
	OutcomeFail Outcome = "fail"
	// OutcomeError: the harness could not judge (Docker, time-out, not converged).
	OutcomeError Outcome = "error"
)

// Judged is a verdict set against what was expected of it.
type Judged struct {
	check.Verdict
	// Want is the status that counts as matching: pass, or a known finding's status.
	Want check.Status `json:"want"`
	// Known is the reason from the stack's known-verdicts file, when the expectation is a finding.
	Known string `json:"known,omitempty"`
	// Match reports whether Status equals Want.
	Match bool `json:"match"`
}

// FaultWindow is one fault as applied, from its apply to its undo event.
type FaultWindow struct {
	ID      int       `json:"id"`
	Kind    string    `json:"kind"`
	Spec    string    `json:"spec"`
	Targets []string  `json:"targets,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"` // zero if never undone
	Err     string    `json:"error,omitempty"`
}

// Summary holds the headline numbers of a run.
type Summary struct {
	Ops                  int      `json:"ops"`
	OK                   int      `json:"ok"`
	Failed               int      `json:"failed"`
	Indeterminate        int      `json:"indeterminate"`
	Failovers            int      `json:"failovers"`
	WorstUnavailabilityS float64  `json:"worst_unavailability_s"`
	AckedWrites          int      `json:"acked_writes"`
	LostWrites           *int     `json:"lost_writes"` // nil when not converged
	SplitBrainWrites     int      `json:"split_brain_writes"`
	TwoMasterS           float64  `json:"two_master_s"`
	VIPChanges           int      `json:"vip_changes"`
	DualVIPS             float64  `json:"dual_vip_s"`
	DualRouteS           float64  `json:"dual_route_s"` // a proxy saw two backends UP (two masters)
	Linearizable         string   `json:"linearizable"` // pass, fail, unknown, or not checked
	FailoverS            *float64 `json:"failover_s,omitempty"`
}

// Result is result.json.
type Result struct {
	Scenario    string            `json:"scenario"`
	Description string            `json:"description,omitempty"`
	Source      string            `json:"source"`
	Stack       string            `json:"stack"`
	StackParams map[string]any    `json:"stack_params,omitempty"`
	Nodes       map[string]string `json:"nodes,omitempty"` // name -> IP
	VIP         string            `json:"vip,omitempty"`
	Seed        uint64            `json:"seed"`
	Run         int               `json:"run"` // repetition number, from 1
	Workload    map[string]any    `json:"workload"`
	Expect      map[string]any    `json:"expect"`
	Started     time.Time         `json:"started"`
	WorkStart   time.Time         `json:"workload_start"`
	WorkEnd     time.Time         `json:"workload_end"`
	Ended       time.Time         `json:"ended"`
	Timeline    []map[string]any  `json:"timeline"` // the fault timeline resolved from the seed
	Faults      []FaultWindow     `json:"faults"`   // the faults as applied
	Verdicts    []Judged          `json:"verdicts"`
	LostOpIDs   []int64           `json:"lost_op_ids,omitempty"` // every lost acknowledged write`
	Summary     Summary           `json:"summary"`
	Outcome     Outcome           `json:"outcome"`
	Reasons     []string          `json:"reasons,omitempty"` // why fail or error
	Error       string            `json:"error,omitempty"`   // harness error
	Machine     string            `json:"machine,omitempty"`
	Version     string            `json:"version,omitempty"`
}

// WriteResult writes result.json into dir.
func WriteResult(dir string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ResultFile), append(b, '\n'), 0o644)
}

// ReadResult reads dir/result.json.
func ReadResult(dir string) (*Result, error) {
	b, err := os.ReadFile(filepath.Join(dir, ResultFile))
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ResultFile), err)
	}
	return &r, nil
}
