package compare

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redisha/redisha/scenarios/result"
)

// Planned is one run to do: a cell (stack, scenario, seed) and its repetition number, which
// names its directory (result.RunDir) and, with the base seed, fixes its seed.
type Planned struct {
	result.Cell
	Run int `json:"run"`
}

// Plan lists the runs of a comparison: every scenario on every stack, repetitions 1..repeat[s]
// with seeds seed, seed+1, ... (the same seeds, so the same fault timelines, on every stack).
// repeat maps a scenario to its count; absent scenarios run def times. The order is canonical
// (scenario, stack, seed), whatever the order of the arguments.
func Plan(stacks, scenarios []string, seed uint64, def int, repeat map[string]int) []Planned {
	var out []Planned
	for _, st := range stacks {
		for _, sc := range scenarios {
			n := def
			if r, ok := repeat[sc]; ok {
				n = r
			}
			for i := 1; i <= n; i++ {
				out = append(out, Planned{Cell: result.Cell{Stack: st, Scenario: sc, Seed: seed + uint64(i-1)}, Run: i})
			}
		}
	}
	SortPlanned(out)
	return slices.CompactFunc(out, func(a, b Planned) bool { return a == b })
}

// SortPlanned sorts runs canonically: by scenario, stack, then seed.
func SortPlanned(p []Planned) {
	slices.SortFunc(p, func(a, b Planned) int {
		if c := strings.Compare(a.Scenario, b.Scenario); c != 0 {
			return c
		}
		if c := strings.Compare(a.Stack, b.Stack); c != 0 {
			return c
		}
		if a.Seed != b.Seed {
			if a.Seed < b.Seed {
				return -1
			}
			return 1
		}
		return a.Run - b.Run
	})
}

// Shard is a part i of n (1 <= i <= n) of a plan.
type Shard struct{ I, N int }

// All is the whole plan, unsharded.
var All = Shard{1, 1}

// ParseShard reads "i/n".
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return Shard{}, fmt.Errorf("shard %q: want i/n with 1 <= i <= n", s)
	}
	return Shard{i, n}, nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.I, s.N) }

// Of returns the runs of the plan that belong to this shard: the plan in canonical order, dealt
// round-robin (the k-th run, from 0, goes to shard k mod n + 1). The split depends only on the set
// of runs, not on the order of the flags or arguments that produced it, so every machine given
// the same arguments computes the same shards; the n shards together hold every run exactly
// once, and the runs of one scenario spread over the shards.
func (s Shard) Of(plan []Planned) []Planned {
	p := slices.Clone(plan)
	SortPlanned(p)
	var out []Planned
	for k, r := range p {
		if k%s.N == s.I-1 {
			out = append(out, r)
		}
	}
	return out
}

// StackDir names a stack's output directory under the comparison's output: its name, with
// anything but letters, digits, dots, dashes and underscores replaced by a dash.
func StackDir(stack string) string {
	b := []byte(stack)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if s := strings.Trim(string(b), "."); s != "" {
		return s
	}
	return "stack"
}
