package driver

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/resp"
)

// recorder is the injected transport: it records what the driver asks.
type recorder struct {
	probes []core.Probe
	routes []core.Route
	closed []string
}

func (r *recorder) Probe(p core.Probe)     { r.probes = append(r.probes, p) }
func (r *recorder) SetRoute(rt core.Route) { r.routes = append(r.routes, rt) }
func (r *recorder) CloseClients(b, _ string) int {
	r.closed = append(r.closed, b)
	return 3
}

func (r *recorder) take(kind core.ProbeKind, target string) core.Probe {
	for i, p := range r.probes {
		if p.Kind == kind && p.Target == target {
			r.probes = append(r.probes[:i], r.probes[i+1:]...)
			return p
		}
	}
	return core.Probe{}
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func bulk(s string) resp.Value { return resp.Value{Kind: resp.BulkString, Str: s} }

func sentinelReplies(addr, port, epoch string) []resp.Value {
	m := resp.Value{Kind: resp.Array}
	for _, f := range []string{"name", "m", "ip", addr, "port", port, "config-epoch", epoch} {
		m.Elems = append(m.Elems, bulk(f))
	}
	return []resp.Value{m, {Kind: resp.Array, Elems: []resp.Value{bulk(addr), bulk(port)}}}
}

func healthReplies(role string) []resp.Value {
	return []resp.Value{{Kind: resp.SimpleString, Str: "PONG"}, bulk("# Replication\r\nrole:" + role + "\r\n")}
}

// The driver turns RESP replies into core events dated from the probe's
// start, applies the route before any close, and counts what it did.
func TestDriverRoundTrip(t *testing.T) {
	const a, b = "10.0.0.1:6379", "10.0.0.2:6379"
	r := &recorder{}
	cfg := core.Config{MasterName: "m", Backends: []string{a, b}, Sentinels: []string{"s1", "s2", "s3"},
		CheckInterval: time.Second, CheckTimeout: 500 * time.Millisecond, FastInterval: 10 * time.Millisecond, FastWindow: 5 * time.Second}
	d, err := New(cfg, t0, r, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.Next().Equal(t0) {
		t.Fatalf("Next %v, want now", d.Next())
	}
	d.Wake(t0)
	if len(r.probes) != 5 {
		t.Fatalf("%d probes at start: %+v", len(r.probes), r.probes)
	}
	now := t0.Add(20 * time.Millisecond)
	d.HandleReply(now, r.take(core.ProbeBackend, a), healthReplies("master"), nil)
	d.HandleReply(now, r.take(core.ProbeBackend, b), nil, errors.New("connection refused"))
	for _, s := range []string{"s1", "s2"} {
		d.HandleReply(now, r.take(core.ProbeSentinel, s), sentinelReplies("10.0.0.1", "6379", "1"), nil)
	}
	if got := d.Route(); got.Master != a {
		t.Fatalf("route %+v", got)
	}
	if last := r.routes[len(r.routes)-1]; last.Master != a {
		t.Fatalf("router got %+v", r.routes)
	}
	snap := d.Snapshot()
	if snap.Backends[1].Err != "connection refused" || snap.SentinelsFresh != 2 {
		t.Fatalf("snapshot %+v", snap)
	}
	// A failover notice fences a: its clients are closed after the route moved.
	routes := len(r.routes)
	v := resp.Value{Kind: resp.Array, Elems: []resp.Value{bulk("pmessage"), bulk("*"), bulk("+switch-master"), bulk("m 10.0.0.1 6379 10.0.0.2 6379")}}
	d.HandleMessage(now.Add(time.Millisecond), "s3", v)
	if len(r.routes) != routes+1 || r.routes[routes].Master != "" || len(r.closed) != 1 || r.closed[0] != a {
		t.Fatalf("after the notice: routes %+v closed %v", r.routes[routes:], r.closed)
	}
	st := d.Stats()
	if st.Notices != 1 || st.ClosedOnSwitch != 3 || st.ProbeErrors != 1 || st.Probes < 5 {
		t.Fatalf("stats %+v", st)
	}
	// A subscription confirmation is not a notice.
	d.HandleMessage(now, "s3", resp.Value{Kind: resp.Array, Elems: []resp.Value{bulk("psubscribe"), bulk("*"), {Kind: resp.Integer, Int: 1}}})
	if d.Stats().Notices != 1 {
		t.Fatal("a confirmation counted as a notice")
	}
}

func TestHealthFromReplies(t *testing.T) {
	for _, tc := range []struct {
		ping, info resp.Value
		ok         bool
	}{
		{resp.Value{Kind: resp.SimpleString, Str: "PONG"}, bulk("role:master\r\n"), true},
		{resp.Value{Kind: resp.Error, Str: "NOAUTH Authentication required."}, bulk("role:master\r\n"), false},
		{resp.Value{Kind: resp.SimpleString, Str: "PONG"}, resp.Value{Kind: resp.Error, Str: "NOPERM"}, false},
		{resp.Value{Kind: resp.SimpleString, Str: "PONGX"}, bulk("role:master\r\n"), false},
		{resp.Value{Kind: resp.SimpleString, Str: "PONG"}, resp.Value{Kind: resp.Integer, Int: 1}, false},
	} {
		h := HealthFromReplies(t0, "b", tc.ping, tc.info)
		if h.OK != tc.ok || (!h.OK && h.Err == "") {
			t.Errorf("HealthFromReplies(%+v, %+v) = %+v", tc.ping, tc.info, h)
		}
	}
}

// The decision trace reports every input with its receive time, after its
// actions were carried out: the reply that decides the route is the entry
// whose actions hold the SetRoute, and the Router already has it.
func TestDecisionTrace(t *testing.T) {
	const a = "10.0.0.1:6379"
	r := &recorder{}
	cfg := core.Config{MasterName: "m", Backends: []string{a}, Sentinels: []string{"s1"},
		CheckInterval: time.Second, CheckTimeout: 500 * time.Millisecond, FastInterval: 10 * time.Millisecond, FastWindow: 5 * time.Second}
	d, err := New(cfg, t0, r, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	var trace []TraceEntry
	d.SetTrace(func(e TraceEntry) {
		if len(r.routes) > 0 && e.Input == InputReply && e.Probe.Target == "s1" && len(e.Actions) > 0 {
			if _, ok := e.Actions[0].(core.SetRoute); ok && r.routes[len(r.routes)-1].Master != a {
				t.Errorf("trace ran before the route was applied")
			}
		}
		trace = append(trace, e)
	})
	d.Wake(t0)
	p1, p2 := r.take(core.ProbeBackend, a), r.take(core.ProbeSentinel, "s1")
	d.HandleReply(t0.Add(3*time.Millisecond), p1, healthReplies("master"), nil)
	d.HandleReply(t0.Add(7*time.Millisecond), p2, sentinelReplies("10.0.0.1", "6379", "1"), nil)
	if len(trace) != 3 || trace[0].Input != InputWake || len(trace[0].Actions) == 0 {
		t.Fatalf("trace %+v", trace)
	}
	last := trace[2]
	if last.Input != InputReply || last.Target != "s1" || !last.Now.Equal(t0.Add(7*time.Millisecond)) || last.Probe.ID != p2.ID {
		t.Fatalf("deciding entry %+v", last)
	}
	found := false
	for _, a0 := range last.Actions {
		if sr, ok := a0.(core.SetRoute); ok && sr.Route.Master == a {
			found = true
		}
	}
	if !found {
		t.Fatalf("the deciding reply's actions lack the route: %+v", last.Actions)
	}
}

// With the hello path on, a sentinel probe expects SENTINEL MYID's reply
// too (the run id reaches the core), and a hello message on a backend's
// subscription completes a majority for what a sentinel says directly.
func TestDriverHello(t *testing.T) {
	const a = "10.0.0.1:6379"
	s1, s2 := "10.0.2.1:26379", "10.0.2.2:26379"
	id2 := strings.Repeat("b", 40)
	r := &recorder{}
	cfg := core.Config{MasterName: "m", Backends: []string{a}, Sentinels: []string{s1, s2, "10.0.2.3:26379"},
		CheckInterval: time.Second, CheckTimeout: 500 * time.Millisecond, HelloViews: true}
	if got := ProbeCommands(core.ProbeSentinel, cfg); len(got) != 3 || got[2][1] != "MYID" {
		t.Fatalf("sentinel probe commands %v", got)
	}
	d, err := New(cfg, t0, r, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Wake(t0)
	now := t0.Add(20 * time.Millisecond)
	d.HandleReply(now, r.take(core.ProbeBackend, a), healthReplies("master"), nil)
	// Two replies where three are expected: a failed probe.
	d.HandleReply(now, r.take(core.ProbeSentinel, s2), sentinelReplies("10.0.0.1", "6379", "1"), nil)
	if d.Stats().ProbeErrors != 1 {
		t.Fatalf("stats %+v", d.Stats())
	}
	// Step on (as the daemon does at Next) until both sentinels are
	// probed again.
	r.probes = nil
	last := map[string]core.Probe{} // the newest probe of each target
	inflight := func(at time.Time) bool {
		for _, tg := range []string{a, s1, s2} {
			if p, ok := last[tg]; !ok || !p.Deadline.After(at) {
				return false
			}
		}
		return true
	}
	for now = t0; !inflight(now); {
		now = now.Add(10 * time.Millisecond)
		d.Wake(now)
		for _, p := range r.probes {
			last[p.Target] = p
		}
		if now.After(t0.Add(5 * time.Second)) {
			t.Fatal("no probes in flight at once")
		}
	}
	d.HandleReply(now, last[s2], append(sentinelReplies("10.0.0.1", "6379", "1"), bulk(id2)), nil)
	d.HandleReply(now, last[s1], append(sentinelReplies("10.0.0.1", "6379", "1"), bulk(strings.Repeat("a", 40))), nil)
	if d.Snapshot().Sentinels[1].RunID != id2 {
		t.Fatalf("run id not learned: %+v", d.Snapshot().Sentinels[1])
	}
	d.HandleReply(now, last[a], healthReplies("master"), nil)
	if d.Route().Master != a {
		t.Fatalf("route %+v; probes %+v; snapshot %+v", d.Route(), r.probes, d.Snapshot())
	}
	// s1 stops answering; s2's hello on the backend keeps the majority.
	msg := func(payload string) resp.Value {
		return resp.Value{Kind: resp.Array, Elems: []resp.Value{bulk("message"), bulk(core.HelloChannel), bulk(payload)}}
	}
	d.HandleHello(now, a, msg("10.0.2.2,26379,"+id2+",1,m,10.0.0.1,6379,1"))
	d.HandleHello(now, a, msg("garbage"))
	d.HandleHello(now, a, resp.Value{Kind: resp.Array, Elems: []resp.Value{bulk("subscribe"), bulk(core.HelloChannel), {Kind: resp.Integer, Int: 1}}})
	if st := d.Stats(); st.Hellos != 1 || st.HellosBad != 1 {
		t.Fatalf("stats %+v", st)
	}
	if s := d.Snapshot(); s.Hellos.Kept != 1 || s.Sentinels[1].HelloMaster != a {
		t.Fatalf("snapshot %+v", s)
	}
}
