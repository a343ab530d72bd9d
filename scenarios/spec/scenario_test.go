package spec

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreRecorded(t *testing.T) {
	s, err := Parse("x.yaml", []byte("name: x\nfaults: [{at: 1s, kind: crash, targets: [redis1]}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := s.Workload
	if w.Timeout.D() != 200*time.Millisecond || w.Retries != 0 || w.Path != PathVIP || w.Clients != DefaultClients {
		t.Fatalf("defaults: %+v", w)
	}
	if s.Stack.Name != "reference" || s.Expect.SplitBrainWrites != "forbidden" {
		t.Fatalf("defaults: %+v %+v", s.Stack, s.Expect)
	}
}

// A cpu-throttle fault parses with its share and reaches the scenario as written.
func TestCPUThrottleParses(t *testing.T) {
	s, err := Parse("f.yaml", []byte("name: x\nfaults:\n  - {at: 1s, duration: 15s, kind: cpu-throttle, cpu: 0.05, targets: [role:proxy-active]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f := s.Faults[0]; f.Kind != "cpu-throttle" || f.CPU != 0.05 || f.Targets[0] != "role:proxy-active" {
		t.Errorf("parsed %+v", f)
	}
}

// The VIP expectations parse as written; unset, they stay nil (measured, not judged), and 0 is a
// bound, not "unset".
func TestVIPExpectations(t *testing.T) {
	tests := []struct {
		yaml           string
		moves, maxMove int // -1: unset
		dual           time.Duration
		dualSet        bool
	}{
		{"expect: {failover: none}", -1, -1, 0, false},
		{"expect: {vip-moves: none, max-vip-dual-holders: 0s}", 0, -1, 0, true},
		{"expect: {vip-moves: one}", 1, -1, 0, false},
		{"expect: {vip-moves: 2}", 2, -1, 0, false},
		{"expect: {max-vip-moves: 0}", -1, 0, 0, false},
		{"expect: {max-vip-moves: one}", -1, 1, 0, false},
		{"expect: {max-vip-moves: 1, max-vip-dual-holders: 250ms}", -1, 1, 250 * time.Millisecond, true},
	}
	for _, tc := range tests {
		s, err := Parse("v.yaml", []byte("name: x\n"+tc.yaml+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		e := s.Expect
		moves, maxMove := -1, -1
		if e.VIPMoves != nil {
			moves = int(*e.VIPMoves)
		}
		if e.MaxVIPMoves != nil {
			maxMove = int(*e.MaxVIPMoves)
		}
		if moves != tc.moves || maxMove != tc.maxMove || (e.MaxVIPDualHolders != nil) != tc.dualSet ||
			(tc.dualSet && e.MaxVIPDualHolders.D() != tc.dual) {
			t.Errorf("%s: parsed %+v", tc.yaml, e)
		}
	}
}

func TestValidationErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown top-level field", "name: x\nfautls: []\n", []string{"f.yaml:2: unknown field fautls"}},
		{"unknown nested field", "name: x\nworkload:\n  clients: 2\n  timout: 1s\n", []string{"f.yaml:4: unknown field timout"}},
		{"bad duration", "name: x\nworkload:\n  timeout: 200\n", []string{"f.yaml:3: ", `"200" is not a duration`}},
		{"missing name", "workload: {clients: 2}\n", []string{"f.yaml:1: name: required"}},
		{"unknown fault kind", "name: x\nfaults:\n  - at: 1s\n    kind: explode\n    targets: [redis1]\n",
			[]string{"f.yaml:4: faults[0].kind", `"explode"`, "partition"}},
		{"partition without sides", "name: x\nfaults:\n  - at: 1s\n    kind: partition\n    targets: [redis1]\n",
			[]string{"f.yaml:3: faults[0]: partition needs both sides", "f.yaml:5: faults[0].targets"}},
		{"fault after the end", "name: x\nworkload: {duration: 10s}\nfaults:\n  - {at: 12s, kind: crash, targets: [redis1]}\n",
			[]string{"f.yaml:4: faults[0].at"}},
		{"freeze-process without daemon", "name: x\nfaults:\n  - {at: 1s, kind: freeze-process, targets: [redis1]}\n",
			[]string{"faults[0].daemon"}},
		{"cpu-throttle without cpu", "name: x\nfaults:\n  - {at: 1s, kind: cpu-throttle, targets: [role:proxy-active]}\n",
			[]string{"faults[0].cpu", "(0, 1]"}},
		{"cpu-throttle above one cpu", "name: x\nfaults:\n  - {at: 1s, kind: cpu-throttle, cpu: 1.5, targets: [redis1]}\n",
			[]string{"faults[0].cpu"}},
		{"cpu on another kind", "name: x\nfaults:\n  - {at: 1s, kind: freeze-node, cpu: 0.05, targets: [redis1]}\n",
			[]string{"faults[0].cpu: only cpu-throttle takes cpu"}},
		{"overlapping repeats", "name: x\nfaults:\n  - {at: 1s, duration: 3s, every: 2s, repeat: 3, kind: crash, targets: [redis1]}\n",
			[]string{"faults[0].every", "overlap"}},
		{"max-span without duration", "name: x\nfaults:\n  - {at: 1s, max-span: 4s, kind: crash, targets: [redis1]}\n",
			[]string{"faults[0].max-span", "needs a duration"}},
		{"max-span below duration", "name: x\nfaults:\n  - {at: 1s, duration: 2s, duration-jitter: 1s, max-span: 2500ms, kind: crash, targets: [redis1]}\n",
			[]string{"faults[0].max-span", "at least duration + duration-jitter"}},
		{"bad failover", "name: x\nexpect: {failover: maybe}\n", []string{"f.yaml:2: ", "failover must be none, one or a count"}},
		{"within without failover", "name: x\nexpect: {failover: none, failover-within: 5s}\n", []string{"f.yaml:2: expect.failover-within"}},
		{"bad path", "name: x\nworkload: {path: tunnel}\n", []string{"f.yaml:2: workload.path"}},
		{"client fault on the sentinel path", "name: x\nworkload: {path: sentinel}\nfaults:\n  - {at: 1s, kind: client-reset}\n",
			[]string{"f.yaml:4: faults[0].kind", "path: sentinel dials several"}},
		{"bad pubsub", "name: x\nworkload:\n  pubsub: {publishers: 0, subscribers: 2, rate: -1}\n",
			[]string{"f.yaml:3: workload.pubsub: want 1..64", "workload.pubsub.rate"}},
		{"lost messages without pubsub", "name: x\nexpect: {max-lost-messages: 0}\n", []string{"f.yaml:2: expect.max-lost-messages"}},
		{"unknown roles", "name: x\nfaults:\n  - {at: 1s, kind: crash, targets: [role:boss], daemon: role:db}\n",
			[]string{"faults[0].targets: role:boss: no such role", "faults[0].daemon: role:db: no such daemon role"}},
		{"direct without node", "name: x\nworkload: {path: direct}\n", []string{"workload.node"}},
		{"bad persistence", "name: x\nstack:\n  params:\n    persistence: maybe\n", []string{"f.yaml:4: stack.params.persistence"}},
		{"bad split-brain", "name: x\nexpect:\n  split-brain-writes: sometimes\n", []string{"f.yaml:3: expect.split-brain-writes"}},
		{"bad vip-moves", "name: x\nexpect:\n  vip-moves: twice\n", []string{"f.yaml:3: VIP moves must be none, one or a count, not \"twice\""}},
		{"negative vip-moves", "name: x\nexpect:\n  vip-moves: -1\n", []string{"f.yaml:3: VIP moves must be none, one or a count, not \"-1\""}},
		{"vip-moves and max-vip-moves", "name: x\nexpect:\n  vip-moves: one\n  max-vip-moves: 1\n",
			[]string{"f.yaml:4: expect.max-vip-moves: set vip-moves (an exact count) or max-vip-moves (a bound), not both"}},
		{"negative max-vip-moves", "name: x\nexpect:\n  max-vip-moves: -1\n", []string{"f.yaml:3: VIP moves must be none, one or a count, not \"-1\""}},
		{"max-vip-moves not a count", "name: x\nexpect:\n  max-vip-moves: 1.5\n", []string{"f.yaml:3: VIP moves must be none, one or a count, not \"1.5\""}},
		{"dual holders without a unit", "name: x\nexpect:\n  max-vip-dual-holders: 1\n", []string{"f.yaml:3: ", `"1" is not a duration`}},
		{"negative dual holders", "name: x\nexpect:\n  max-vip-dual-holders: -1s\n", []string{"f.yaml:3: expect.max-vip-dual-holders: -1s: must not be negative"}},
		{"misspelt vip key", "name: x\nexpect:\n  max-vip-move: 1\n", []string{"f.yaml:3: unknown field max-vip-move"}},
		{"not yaml", "name: [x\n", []string{"f.yaml:1: did not find"}},
		{"empty", "", []string{"f.yaml: empty scenario"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

const randomized = `
name: random
workload: {duration: 60s}
faults:
  - at: 5s
    at-jitter: 10s
    duration: 2s
    duration-jitter: 3s
    kind: crash
    pick: 1
    targets: [redis1, redis2, sentinel]
  - at: 20s
    every: 8s
    repeat: 4
    duration: 3s
    duration-jitter: 2s
    kind: partition
    a: [redis1]
    b: [redis2]
`

func TestTimelineSameSeedSameTimeline(t *testing.T) {
	s, err := Parse("r.yaml", []byte(randomized))
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.Timeline(42), s.Timeline(42)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("same seed, different timelines:\n%+v\n%+v", a, b)
	}
	if len(a) != 5 {
		t.Fatalf("want 1 + 4 repetitions, got %d", len(a))
	}
	differs := false
	for seed := uint64(1); seed < 20 && !differs; seed++ {
		differs = !reflect.DeepEqual(a, s.Timeline(seed))
	}
	if !differs {
		t.Fatal("the seed changes nothing")
	}
	for seed := uint64(0); seed < 50; seed++ {
		for _, f := range s.Timeline(seed) {
			switch f.Entry {
			case 0:
				if f.At < 5*time.Second || f.At >= 15*time.Second || f.Duration < 2*time.Second || f.Duration >= 5*time.Second || len(f.Fault.Targets) != 1 {
					t.Fatalf("seed %d: out of range: %+v", seed, f)
				}
			case 1:
				if f.At != 20*time.Second+time.Duration(f.Repeat)*8*time.Second {
					t.Fatalf("seed %d: repetition %d at %s", seed, f.Repeat, f.At)
				}
			}
		}
	}
}
