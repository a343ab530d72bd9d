// Package result is the model of one scenario run as result.json records it: the verdicts set
// against their expectations, the run's outcome and exit code, the headline numbers, and every
// analysis the report shows, computed once by the judge. Renderers (reports) and aggregators
// (compare) read it; nothing here judges. It imports nothing of the project's, so every other
// package may use it.
package result

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File names inside a run directory.
const (
	ResultFile  = "result.json"
	HistoryFile = "history.jsonl"
	EventsFile  = "events.jsonl"
	FinalFile   = "final.json"
	JUnitFile   = "junit.xml"
	HTMLFile    = "index.html"
	LogsDir     = "logs"
)

// Result is result.json.
type Result struct {
	Scenario    string            `json:"scenario"`
	Description string            `json:"description,omitempty"`
	Source      string            `json:"source"`
	Stack       string            `json:"stack"`
	StackParams *StackParams      `json:"stack_params,omitempty"` // the parameters the lab ran with, as its templates saw them
	Nodes       map[string]string `json:"nodes,omitempty"`        // name -> IP
	VIP         string            `json:"vip,omitempty"`
	Seed        uint64            `json:"seed"`
	Run         int               `json:"run"` // repetition number, from 1
	Workload    Workload          `json:"workload"`
	Expect      Expect            `json:"expect"`
	Started     time.Time         `json:"started"`
	WorkStart   time.Time         `json:"workload_start"`
	WorkEnd     time.Time         `json:"workload_end"`
	Ended       time.Time         `json:"ended"`
	Timeline    []TimelineEntry   `json:"timeline"` // the fault timeline resolved from the seed
	Faults      []FaultWindow     `json:"faults"`   // the faults as applied
	Verdicts    []Judged          `json:"verdicts"`
	LostOpIDs   []int64           `json:"lost_op_ids,omitempty"` // every lost acknowledged write
	Summary     Summary           `json:"summary"`
	// Analysis holds what the report draws beyond the verdicts; nil in results written before it
	// existed (a reader may compute it again from the run's records).
	Analysis *Analysis `json:"analysis,omitempty"`
	Outcome  Outcome   `json:"outcome"`
	Reasons  []string  `json:"reasons,omitempty"` // why fail or error
	Error    string    `json:"error,omitempty"`   // harness error
	Machine  string    `json:"machine,omitempty"`
	// Version is the harness's build (its VCS revision, "+dirty" when built from a modified
	// tree): the stack's components are built from the same tree by make images.
	Version string `json:"version,omitempty"`
	// HostLoad is the machine's load average when the run started and ended: timings taken on
	// a loaded shared machine read differently from a quiet one, so the evidence says which.
	HostLoad *HostLoad `json:"host_load,omitempty"`
}

// HostLoad is the host's 1-minute load average at a run's start and end (from /proc/loadavg).
type HostLoad struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// TimelineEntry is one fault of the timeline as resolved from the seed, before it was applied.
type TimelineEntry struct {
	At       string   `json:"at"`       // after the workload start, e.g. "10s"
	Duration string   `json:"duration"` // "0s": until the heal after the workload
	Kind     string   `json:"kind"`
	Targets  []string `json:"targets"`
	A        []string `json:"a"`
	B        []string `json:"b"`
	Entry    int      `json:"entry"`  // index in the scenario's faults
	Repeat   int      `json:"repeat"` // 0-based repetition
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
	Ops                  int     `json:"ops"`
	OK                   int     `json:"ok"`
	Failed               int     `json:"failed"`
	Indeterminate        int     `json:"indeterminate"`
	Failovers            int     `json:"failovers"`
	WorstUnavailabilityS float64 `json:"worst_unavailability_s"`
	AckedWrites          int     `json:"acked_writes"`
	LostWrites           *int    `json:"lost_writes"` // nil when not converged
	SplitBrainWrites     int     `json:"split_brain_writes"`
	TwoMasterS           float64 `json:"two_master_s"`
	VIPChanges           int     `json:"vip_changes"` // changes of the set of holders (A, nobody, B: 2)
	// VIPMoves counts a node taking the VIP it did not hold (A, nobody, B: 1), as the
	// vip-moves check does; nil in results recorded before it existed.
	VIPMoves   *int    `json:"vip_moves,omitempty"`
	DualVIPS   float64 `json:"dual_vip_s"`
	DualRouteS float64 `json:"dual_route_s"` // the proxies routed new connections to two masters
	// ProxiesObserved counts the proxies whose routes the run read at least once: 0 means
	// DualRouteS was not measured (no proxy, or one the harness cannot read).
	ProxiesObserved int      `json:"proxies_observed,omitempty"`
	Linearizable    string   `json:"linearizable"` // pass, fail, unknown, or not checked
	FailoverS       *float64 `json:"failover_s,omitempty"`
	// Pub/sub workload (absent without one): messages published with an acknowledgement, those
	// the publisher was told reached a subscriber but none recorded, and repeated deliveries.
	Published          int  `json:"published,omitempty"`
	MessagesLost       *int `json:"messages_lost,omitempty"`
	MessagesDuplicated int  `json:"messages_duplicated,omitempty"`
}

// Analysis is what the judge derived from the records for the report to draw.
type Analysis struct {
	// Masters is the quorum's master over time; the first epoch has a zero From.
	Masters []Epoch `json:"masters"`
	// SplitBrainOpIDs are the acknowledged writes served by a node that was not the quorum's
	// master at the time.
	SplitBrainOpIDs []int64 `json:"split_brain_op_ids,omitempty"`
	// Routes is each proxy's view of its backends over time, in time order.
	Routes []Route `json:"routes,omitempty"`
}

// Epoch is a span during which the quorum's master was one address.
type Epoch struct {
	From   time.Time `json:"from"` // zero for the initial epoch
	Master string    `json:"master"`
	// PreviousUntil, when later than From, is when the previous master stopped being the only
	// node that could accept writes: the leader chose this master at From but sent it SLAVEOF
	// NO ONE only then. Writes the previous master acknowledged before it are not split brain.
	PreviousUntil time.Time `json:"previous_until,omitzero"`
}

// Route is one observation of a proxy's backends, valid until the proxy's next one.
type Route struct {
	Proxy       string    `json:"proxy"` // node name
	Time        time.Time `json:"time"`
	Unreachable bool      `json:"unreachable,omitempty"` // the proxy could not be read
	Up          []string  `json:"up,omitempty"`          // the backends it would route to
	Detail      string    `json:"detail"`                // the observation as recorded
}

// Write writes dir/result.json.
func Write(dir string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ResultFile), append(b, '\n'), 0o644)
}

// Read reads dir/result.json.
func Read(dir string) (*Result, error) {
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
