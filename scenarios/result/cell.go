package result

import "fmt"

// Cell identifies what a run measured: one scenario on one stack with one seed. Runs that share
// a cell are repetitions of the same experiment (same fault timeline); aggregations (a compare
// table, shards merged back together) group and split runs by cell.
type Cell struct {
	Stack    string `json:"stack"`
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
}

// Cell returns the run's cell.
func (r *Result) Cell() Cell { return Cell{Stack: r.Stack, Scenario: r.Scenario, Seed: r.Seed} }

func (c Cell) String() string { return fmt.Sprintf("%s/%s/%d", c.Stack, c.Scenario, c.Seed) }

// RunDir is the name of a run's directory under the output directory.
func RunDir(scenario string, run int) string { return fmt.Sprintf("%s-%d", scenario, run) }
