package fault

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// recorder is a Target with docker-like lifecycle methods that records the
// calls; it stands in for the lab's container Node, whose real Pause/Kill
// the lab's own tests exercise.
type recorder struct {
	name  string
	calls []string
	fail  string // method that returns an error
}

func (r *recorder) Name() string      { return r.name }
func (r *recorder) Addr() netip.Addr  { return netip.MustParseAddr("10.81.0.99") }
func (r *recorder) NetnsPath() string { return "" }
func (r *recorder) call(m string) error {
	r.calls = append(r.calls, m)
	if m == r.fail {
		return errors.New(m + " failed")
	}
	return nil
}
func (r *recorder) Pause(context.Context) error   { return r.call("pause") }
func (r *recorder) Unpause(context.Context) error { return r.call("unpause") }
func (r *recorder) Kill(context.Context) error    { return r.call("kill") }
func (r *recorder) Start(context.Context) error   { return r.call("start") }
func (r *recorder) Restart(context.Context) error { return r.call("restart") }

type bare struct{ recorder }

func TestNodeLifecycleFaults(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		kind       Kind
		afterApply []string
		afterUndo  []string
	}{
		{FreezeNode, []string{"pause"}, []string{"pause", "unpause"}},
		{Crash, []string{"kill"}, []string{"kill", "start"}},
		{Restart, []string{"restart"}, []string{"restart"}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			r := &recorder{name: "haproxy1"}
			var evs []Event
			inj := NewInjector(nil, WithEvents(func(e Event) { evs = append(evs, e) }))
			h, err := inj.Apply(ctx, Spec{Kind: tc.kind}, r)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.calls, tc.afterApply) {
				t.Errorf("after apply: %v, want %v", r.calls, tc.afterApply)
			}
			if err := inj.UndoAll(ctx); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.calls, tc.afterUndo) {
				t.Errorf("after undo: %v, want %v", r.calls, tc.afterUndo)
			}
			if len(evs) != 2 || evs[0].Action != Applied || evs[1].Action != Undone || evs[0].ID != h.ID() ||
				evs[0].Kind != tc.kind || evs[0].Targets[0] != "haproxy1" || evs[0].Time.IsZero() {
				t.Errorf("events: %+v", evs)
			}
		})
	}
}

func TestLifecycleErrorsAreReported(t *testing.T) {
	ctx := context.Background()
	var evs []Event
	inj := NewInjector(nil, WithEvents(func(e Event) { evs = append(evs, e) }))
	r := &recorder{name: "redis1", fail: "pause"}
	if _, err := inj.Apply(ctx, Spec{Kind: FreezeNode}, r); err == nil {
		t.Error("failed pause reported no error")
	}
	if len(evs) != 1 || evs[0].Err == "" {
		t.Errorf("failed apply event: %+v", evs)
	}
	// A target without the lifecycle interfaces gets a clear error.
	type plain struct{ Target }
	p := plain{&recorder{name: "x"}}
	for _, k := range []Kind{FreezeNode, Crash, Restart, FreezeProcess} {
		if _, err := inj.Apply(ctx, Spec{Kind: k, Daemon: "d"}, p); err == nil {
			t.Errorf("%s on a target without lifecycle methods succeeded", k)
		}
	}
	if _, err := inj.Apply(ctx, Spec{Kind: Crash, Node: "ghost"}, r); err == nil {
		t.Error("crash of an unknown node succeeded")
	}
	if len(inj.Active()) != 0 {
		t.Error("failed applies left active faults")
	}
}

func TestUndoAllNewestFirst(t *testing.T) {
	ctx := context.Background()
	a, b := &recorder{name: "a"}, &recorder{name: "b"}
	var order []string
	inj := NewInjector(nil, WithEvents(func(e Event) {
		if e.Action == Undone {
			order = append(order, e.Targets[0])
		}
	}))
	for _, n := range []string{"a", "b"} {
		if _, err := inj.Apply(ctx, Spec{Kind: FreezeNode, Node: n}, a, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := inj.UndoAll(ctx); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(order, []string{"b", "a"}) {
		t.Errorf("undo order %v, want [b a]", order)
	}
}
