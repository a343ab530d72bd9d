package core

import (
	"testing"
	"time"
)

func probes(acts []Action) []Probe {
	var out []Probe
	for _, a := range acts {
		if p, ok := a.(Probe); ok {
			out = append(out, p)
		}
	}
	return out
}

func probeOf(t *testing.T, acts []Action, target string) Probe {
	t.Helper()
	for _, p := range probes(acts) {
		if p.Target == target {
			return p
		}
	}
	t.Fatalf("no probe of %s in %+v", target, acts)
	return Probe{}
}

func noProbe(t *testing.T, acts []Action, target string) {
	t.Helper()
	for _, p := range probes(acts) {
		if p.Target == target {
			t.Fatalf("unexpected probe of %s at %v", target, p.At.Sub(t0))
		}
	}
}

var schedCfg = Config{MasterName: "m", Backends: []string{A, B}, Sentinels: sentinels3,
	CheckInterval: time.Second, CheckTimeout: 500 * time.Millisecond,
	FastInterval: 10 * time.Millisecond, FastWindow: 5 * time.Second}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{MasterName: "m", Sentinels: []string{"s1", "s1"}},
		{Sentinels: []string{"s1"}},
		{Backends: []string{A, A}},
		{Backends: []string{A}, CheckTimeout: -time.Second},
	} {
		if _, err := New(cfg, t0); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	c := newCore(t, schedCfg)
	if _, err := c.Reconfigure(at(1), Config{Sentinels: []string{"s1"}}); err == nil {
		t.Fatal("Reconfigure accepted sentinels without a master name")
	}
}

// Every target is probed at once, then the regular interval after its
// probe ends; Next says when.
func TestProbeScheduleRegular(t *testing.T) {
	c := newCore(t, schedCfg)
	if !c.Next().IsZero() && c.Next().After(t0) {
		t.Fatalf("first Next %v, want now", c.Next())
	}
	acts := c.Tick(t0)
	if got := len(probes(acts)); got != 5 {
		t.Fatalf("%d probes at start, want 5 (2 backends, 3 sentinels): %+v", got, acts)
	}
	pa := probeOf(t, acts, A)
	if pa.Kind != ProbeBackend || pa.At != t0 || pa.Deadline != at(500) {
		t.Fatalf("probe of A %+v", pa)
	}
	if ps := probeOf(t, acts, "s1"); ps.Kind != ProbeSentinel {
		t.Fatalf("probe of s1 %+v", ps)
	}
	if got := c.Next(); got != at(500) {
		t.Fatalf("Next %v, want the probes' deadline", got.Sub(t0))
	}
	h := master(0, A)
	h.Probe = pa.ID
	noProbe(t, c.Health(at(20), h), A)
	// Nothing answered but A: the others time out at 500 ms.
	acts = c.Tick(at(500))
	noProbe(t, acts, A)
	if s := c.Snapshot(); len(s.Backends) != 2 || s.Backends[1].Addr != B || s.Backends[1].Err != "i/o timeout" {
		t.Fatalf("B's probe did not time out: %+v", s.Backends)
	}
	if got := c.Next(); got != at(1020) {
		t.Fatalf("Next %v, want A's next probe at 1020ms", got.Sub(t0))
	}
	probeOf(t, c.Tick(at(1020)), A)
	probeOf(t, c.Tick(at(1500)), B)
}

// A timed-out probe counts as a failure dated from its start, and its late
// answer is ignored.
func TestProbeTimeoutIsADeadline(t *testing.T) {
	c := newCore(t, schedCfg)
	acts := c.Tick(t0)
	var ids = map[string]uint64{}
	for _, p := range probes(acts) {
		ids[p.Target] = p.ID
	}
	for _, s := range []string{"s1", "s2"} {
		v := view(0, s, A, 1)
		v.Probe = ids[s]
		c.View(at(5), v)
	}
	h := master(0, A)
	h.Probe = ids[A]
	c.Health(at(5), h)
	if c.Route().Master != A {
		t.Fatalf("route %+v", c.Route())
	}
	c.Tick(at(500)) // s3 and B time out
	late := view(0, "s3", B, 2)
	late.Probe = ids["s3"]
	c.View(at(600), late)
	if c.Snapshot().SentinelsFresh != 2 || c.Route().Master != A {
		t.Fatalf("a late answer counted: %+v", c.Snapshot())
	}
}

// The fast window: a notice kicks every probe, no sooner than the fast
// interval after its last start; a settled route kicks nothing; a holding
// route keeps kicking. (Formerly Output.CheckNow.)
func TestKicksOnNoticeAndWhileHolding(t *testing.T) {
	c := newCore(t, schedCfg)
	ids := map[string]uint64{}
	for _, p := range probes(c.Tick(t0)) {
		ids[p.Target] = p.ID
	}
	h := master(0, A)
	h.Probe = ids[A]
	c.Health(at(1), h)
	r := replica(0, B, A)
	r.Probe = ids[B]
	c.Health(at(1), r)
	for _, s := range sentinels3 {
		v := view(0, s, A, 1)
		v.Probe = ids[s]
		c.View(at(2), v)
	}
	if c.Route().Master != A {
		t.Fatalf("route %+v", c.Route())
	}
	// The route changed at 2 ms (fast window open) but is settled: nothing
	// is kicked, the next probes are the regular ones.
	if got := c.Next(); got != at(1001) {
		t.Fatalf("settled route: Next %v, want the regular probe at 1001ms", got.Sub(t0))
	}
	acts := c.Notice(at(5), Notice{Sentinel: "s3", Channel: "+odown", Payload: "master m 10.0.0.1 6379 #quorum 2/2"})
	if len(probes(acts)) != 0 {
		t.Fatalf("probed sooner than the fast interval: %+v", acts)
	}
	if got := c.Next(); got != at(10) {
		t.Fatalf("after a notice Next %v, want the fast interval after the last start (10ms)", got.Sub(t0))
	}
	acts = c.Tick(at(10))
	if len(probes(acts)) != 5 {
		t.Fatalf("kicked probes at 10ms: %+v", acts)
	}
	for _, p := range probes(acts) {
		ids[p.Target] = p.ID
	}
	acts = c.Notice(at(12), Notice{Sentinel: "s3", Channel: "+failover-state-send-slaveof-noone",
		Payload: "slave 10.0.0.2:6379 10.0.0.2 6379 @ m 10.0.0.1 6379"})
	if r := c.Route(); r.Master != "" || !r.Hold {
		t.Fatalf("fence route %+v", r)
	}
	// Kicked while in flight: probed again as soon as each answer arrives
	// (and the fast interval allows).
	h = master(10, A)
	h.Probe = ids[A]
	c.Health(at(15), h)
	if got := c.Next(); got != at(20) {
		t.Fatalf("kicked in flight: Next %v, want 20ms", got.Sub(t0))
	}
	probeOf(t, c.Tick(at(20)), A)
	// Holding: every step keeps kicking, within the window.
	v := view(10, "s1", A, 1)
	v.Probe = ids["s1"]
	probeOf(t, c.View(at(40), v), "s1")
	// After the window, a holding route no longer kicks: the next probe
	// of s1 is the regular one.
	v = view(40, "s1", A, 1)
	v.Probe = probeOf(t, c.Tick(at(6000)), "s1").ID
	noProbe(t, c.View(at(6001), v), "s1")
	if r := c.Route(); r.Master != "" || !r.Hold {
		t.Fatalf("route %+v, want held by the fence", r)
	}
}

// A sentinel's (re)subscription queries it again as soon as allowed, even
// outside the fast window.
func TestSubscribedQueriesTheSentinel(t *testing.T) {
	c := newCore(t, schedCfg)
	c.Tick(t0)
	noProbe(t, c.Tick(at(7000)), "s2") // every probe timed out: next ones at 8000ms
	acts := c.Subscribed(at(7100), "s2")
	probeOf(t, acts, "s2")
	noProbe(t, acts, "s1")
}

// A master a sentinel names that is not configured is probed at once, up
// to MaxDiscovered.
func TestDiscovery(t *testing.T) {
	cfg := Config{MasterName: "m", Sentinels: sentinels3, MaxDiscovered: 1}
	c := newCore(t, cfg)
	ids := map[string]uint64{}
	for _, p := range probes(c.Tick(t0)) {
		ids[p.Target] = p.ID
	}
	v := view(0, "s1", C, 1)
	v.Probe = ids["s1"]
	p := probeOf(t, c.View(at(1), v), C)
	if !p.Discovered || p.Kind != ProbeBackend {
		t.Fatalf("discovered probe %+v", p)
	}
	v = view(0, "s2", B, 1)
	v.Probe = ids["s2"]
	noProbe(t, c.View(at(2), v), B)
	// Discovered targets stay across a reload.
	acts, err := c.Reconfigure(at(3), cfg)
	if err != nil {
		t.Fatal(err)
	}
	noProbe(t, acts, C)
	if c.target(ProbeBackend, C) == nil {
		t.Fatal("reload forgot the discovered backend")
	}
}

// Next covers the end of the no-majority grace.
func TestNextCoversGrace(t *testing.T) {
	cfg := rulesOnly(Config{MasterName: "m", Sentinels: sentinels3, NoMajorityGrace: time.Second,
		ViewTTL: 10 * time.Second, HealthTTL: 10 * time.Second})
	c := newCore(t, cfg)
	for _, ev := range []any{master(0, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
		View{At: at(500), Sentinel: "s1", Err: "timeout"}} {
		feed(c, ev)
	}
	if c.Route().Master != A {
		t.Fatalf("route %+v within grace", c.Route())
	}
	if got := c.Next(); got != at(1500) {
		t.Fatalf("Next %v, want the end of the grace at 1500ms", got.Sub(t0))
	}
	c.Tick(c.Next())
	if c.Route().Master != "" {
		t.Fatalf("route %+v after grace", c.Route())
	}
}
