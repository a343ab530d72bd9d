package fault

import (
	"context"
	"reflect"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestSpecValidate(t *testing.T) {
	ab := func(s Spec) Spec { s.A, s.B = []string{"a"}, []string{"b"}; return s }
	for _, tc := range []struct {
		spec Spec
		ok   bool
	}{
		{ab(Spec{Kind: Partition}), true},
		{ab(Spec{Kind: Partition, OneWay: true}), true},
		{Spec{Kind: Partition, A: []string{"a"}}, false},
		{Spec{Kind: "flood"}, false},
		{Spec{Kind: Crash, Node: "redis1"}, true},
		{Spec{Kind: Crash, Node: "redis1", Daemon: "redis-server"}, true},
		{Spec{Kind: Restart, Node: "redis1"}, true},
		{Spec{Kind: FreezeNode, Node: "redis1"}, true},
		{Spec{Kind: FreezeProcess, Node: "redis1"}, false},
		{Spec{Kind: FreezeProcess, Node: "redis1", Daemon: "redis-sentinel"}, true},
		{Spec{Kind: CPUThrottle, Node: "haproxy1", CPU: 0.05}, true},
		{Spec{Kind: CPUThrottle, Node: "haproxy1", CPU: 1}, true},
		{Spec{Kind: CPUThrottle, Node: "haproxy1"}, false},
		{Spec{Kind: CPUThrottle, Node: "haproxy1", CPU: 1.5}, false},
		{Spec{Kind: CPUThrottle, Node: "haproxy1", CPU: -0.1}, false},
		{Spec{Kind: FreezeNode, Node: "haproxy1", CPU: 0.05}, false},
		{ab(Spec{Kind: Latency, Delay: 10 * time.Millisecond}), true},
		{ab(Spec{Kind: Latency}), false},
		{ab(Spec{Kind: Latency, Delay: time.Millisecond, Jitter: time.Second}), false},
		{ab(Spec{Kind: Jitter, Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}), true},
		{ab(Spec{Kind: Jitter, Delay: 10 * time.Millisecond}), false},
		{ab(Spec{Kind: Loss, Loss: 0.2}), true},
		{ab(Spec{Kind: Loss}), false},
		{ab(Spec{Kind: Loss, Loss: 1.5}), false},
		{ab(Spec{Kind: Latency, Delay: -time.Second}), false},
		{Spec{Kind: ClientLatency, Delay: time.Second}, true},
		{Spec{Kind: ClientLatency, Delay: time.Second, Stream: "both"}, true},
		{Spec{Kind: ClientLatency, Delay: time.Second, Stream: "sideways"}, false},
		{Spec{Kind: ClientJitter, Delay: time.Second, Jitter: time.Millisecond}, true},
		{Spec{Kind: ClientBandwidth}, false},
		{Spec{Kind: ClientBandwidth, RateKBps: 10}, true},
		{Spec{Kind: ClientTimeout}, true},
		{Spec{Kind: ClientReset, Timeout: time.Second}, true},
	} {
		if err := tc.spec.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%v) = %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}

func TestSpecString(t *testing.T) {
	s := Spec{Kind: Partition, A: []string{"client", "redis1"}, B: []string{"redis2"}, OneWay: true}
	if got, want := s.String(), "partition client,redis1->redis2"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestRemoveLeftovers(t *testing.T) {
	tp := newTopology(t, "a", "b")
	inj := NewInjector(nil)
	ctx := context.Background()
	h, err := inj.Apply(ctx, Spec{Kind: Partition, A: []string{"a"}, B: []string{"b"}}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	// As if the runner had crashed: the rules are still there.
	removed, err := RemoveLeftovers(tp.nodes["a"].NetnsPath())
	if err != nil || len(removed) != 1 || removed[0] != DefaultTable {
		t.Fatalf("RemoveLeftovers = %v, %v", removed, err)
	}
	if _, err := RemoveLeftovers(tp.nodes["b"].NetnsPath()); err != nil {
		t.Fatal(err)
	}
	if !reachable(tp.nodes["a"], tp.nodes["b"]) {
		t.Error("a cannot reach b after the leftovers went")
	}
	// Undo after a gc reports the missing rules but still ends the fault.
	if err := h.Undo(ctx); err == nil {
		t.Error("undo of removed rules reported nothing")
	}
	if len(inj.Active()) != 0 {
		t.Error("fault still active after undo")
	}
}

func TestSpecFromYAML(t *testing.T) {
	var s Spec
	doc := "kind: latency\na: [sentinel]\nb: [redis1, redis2]\none_way: true\ndelay: 150ms\njitter: 20ms\n"
	if err := yaml.Unmarshal([]byte(doc), &s); err != nil {
		t.Fatal(err)
	}
	want := Spec{Kind: Latency, A: []string{"sentinel"}, B: []string{"redis1", "redis2"}, OneWay: true,
		Delay: 150 * time.Millisecond, Jitter: 20 * time.Millisecond}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v, want %+v", s, want)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}
