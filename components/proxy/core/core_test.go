package core

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

const (
	A = "10.0.0.1:6379"
	B = "10.0.0.2:6379"
	C = "10.0.0.3:6379"
)

var sentinels3 = []string{"s1", "s2", "s3"}

func master(ms int, addr string) Health {
	return Health{At: at(ms), Backend: addr, OK: true, Role: RoleMaster}
}

func replica(ms int, addr, of string) Health {
	return Health{At: at(ms), Backend: addr, OK: true, Role: RoleReplica, LinkUp: true, MasterAddr: of}
}

func down(ms int, addr string) Health {
	return Health{At: at(ms), Backend: addr, Err: "connection refused"}
}

func view(ms int, s, addr string, epoch int64) View {
	return View{At: at(ms), Sentinel: s, OK: true, Addr: addr, Epoch: epoch}
}

// noticeAt is a notice received at a time; tickAt a timer tick; late an
// observation (Health or View) read at a later time than its At.
type (
	noticeAt struct {
		at time.Time
		n  Notice
	}
	tickAt time.Time
	late   struct {
		ev   any
		read time.Time
	}
)

func notice(ms int, s, ch, payload string) noticeAt {
	return noticeAt{at(ms), Notice{Sentinel: s, Channel: ch, Payload: payload}}
}

func tick(ms int) tickAt { return tickAt(at(ms)) }

// feed passes one test event to the core's typed method, read at the
// event's own time unless it is late.
func feed(c *Core, ev any) []Action {
	switch e := ev.(type) {
	case Health:
		return c.Health(e.At, e)
	case View:
		return c.View(e.At, e)
	case noticeAt:
		return c.Notice(e.at, e.n)
	case tickAt:
		return c.Tick(time.Time(e))
	case late:
		switch o := e.ev.(type) {
		case Health:
			return c.Health(e.read, o)
		case View:
			return c.View(e.read, o)
		}
	}
	panic(fmt.Sprintf("feed: unknown test event %T", ev))
}

// rulesOnly keeps the probe schedule out of the routing-rule tests: its
// probes start at the first event and neither end nor time out within them.
func rulesOnly(cfg Config) Config {
	cfg.CheckInterval, cfg.CheckTimeout = time.Hour, time.Hour
	return cfg
}

func newCore(t testing.TB, cfg Config) *Core {
	t.Helper()
	c, err := New(cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type result struct {
	route    Route
	closed   []string
	switches []Switch
}

func run(t testing.TB, cfg Config, steps ...any) result {
	c := newCore(t, rulesOnly(cfg))
	var r result
	for _, s := range steps {
		for _, a := range feed(c, s) {
			switch a := a.(type) {
			case Close:
				r.closed = append(r.closed, a.Backend)
			case Switch:
				r.switches = append(r.switches, a)
			}
		}
		r.route = c.Route()
	}
	return r
}

func TestRoutingWithSentinels(t *testing.T) {
	cfg := Config{MasterName: "m", Sentinels: sentinels3, NoMajorityGrace: time.Second}
	tests := []struct {
		name     string
		steps    []any
		master   string // expected route ("" = none)
		hold     bool
		closed   []string
		switches []Switch
	}{
		{
			name:   "majority view and role agree",
			steps:  []any{master(0, A), replica(0, B, A), view(1, "s1", A, 1), view(1, "s2", A, 1)},
			master: A,
		},
		{
			name:  "one sentinel is not a majority",
			steps: []any{master(0, A), view(1, "s1", A, 1)},
		},
		{
			name:   "views from unconfigured sentinels never count",
			steps:  []any{master(0, A), view(1, "s1", A, 1), view(1, "rogue", A, 1), view(1, "rogue2", A, 1)},
			master: "",
		},
		{
			name:  "majority names a node that reports replica: hold, no route",
			steps: []any{replica(0, A, B), master(0, B), view(1, "s1", A, 1), view(1, "s2", A, 1), view(1, "s3", A, 1)},
			hold:  true,
		},
		{
			name:   "two nodes claim master: only the majority's choice",
			steps:  []any{master(0, A), master(0, B), view(1, "s1", B, 3), view(1, "s2", B, 3), view(1, "s3", A, 2)},
			master: B,
		},
		{
			name: "majority must be at the highest epoch",
			steps: []any{master(0, A), master(0, B),
				view(1, "s3", B, 2), view(1, "s1", A, 1), view(1, "s2", A, 1)},
			master: "",
		},
		{
			name: "majority moves: old master's connections closed, switch counted",
			steps: []any{master(0, A), replica(0, B, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				master(100, B), view(101, "s1", B, 2), view(102, "s2", B, 2)},
			master:   B,
			closed:   []string{A},
			switches: []Switch{{A, B}},
		},
		{
			name: "majority moves to a node not yet master: close old, hold",
			steps: []any{master(0, A), replica(0, B, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				view(101, "s1", B, 2), view(102, "s2", B, 2)},
			hold:   true,
			closed: []string{A},
		},
		{
			name: "majority lost: within grace new connections still go to current",
			steps: []any{master(0, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				View{At: at(500), Sentinel: "s1", Err: "timeout"}, master(900, A)},
			master: A,
		},
		{
			name: "majority lost: after grace new connections refused, existing kept",
			steps: []any{master(0, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				View{At: at(500), Sentinel: "s1", Err: "timeout"}, master(1600, A)},
			master: "",
		},
		{
			name: "majority lost and current steps down: close",
			steps: []any{master(0, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				View{At: at(500), Sentinel: "s1", Err: "timeout"}, replica(600, A, B)},
			closed: []string{A},
		},
		{
			name: "stale views expire into no majority",
			steps: []any{master(0, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				master(2000, A), master(4000, A), master(7000, A), master(8100, A)},
			master: "",
		},
		{
			name:  "stale health is not a claim",
			steps: []any{master(0, A), view(5000, "s1", A, 1), view(5000, "s2", A, 1)},
			hold:  true,
		},
		{
			name: "failover notice fences the current master at once",
			steps: []any{master(0, A), replica(0, B, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				notice(50, "s1", "+failover-state-send-slaveof-noone", "slave 10.0.0.2:6379 10.0.0.2 6379 @ m 10.0.0.1 6379"),
				master(60, A)},
			hold:   true,
			closed: []string{A},
		},
		{
			name: "fenced old master stays fenced while the stale majority still names it",
			steps: []any{master(0, A), replica(0, B, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				notice(50, "s1", "+switch-master", "m 10.0.0.1 6379 10.0.0.2 6379"),
				master(60, A), master(60, B), view(61, "s2", A, 1), view(61, "s3", A, 1)},
			hold:   true,
			closed: []string{A},
		},
		{
			name: "fence then new majority: switch to the promoted node",
			steps: []any{master(0, A), replica(0, B, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				notice(50, "s1", "+promoted-slave", "slave 10.0.0.2:6379 10.0.0.2 6379 @ m 10.0.0.1 6379"),
				master(60, A), master(60, B), view(61, "s1", B, 2), view(62, "s3", B, 2)},
			master:   B,
			closed:   []string{A},
			switches: []Switch{{A, B}},
		},
		{
			name: "abort lifts the fence",
			steps: []any{master(0, A), replica(0, B, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				notice(50, "s1", "+failover-state-send-slaveof-noone", "slave 10.0.0.2:6379 10.0.0.2 6379 @ m 10.0.0.1 6379"),
				notice(70, "s1", "-failover-abort-slave-timeout", "master m 10.0.0.1 6379"), master(80, A)},
			master: A,
			closed: []string{A},
		},
		{
			name: "fence expires",
			steps: []any{master(0, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				notice(50, "s1", "+failover-end", "master m 10.0.0.1 6379"),
				master(15100, A), view(15100, "s1", A, 1), view(15100, "s2", A, 1)},
			master: A,
			closed: []string{A},
		},
		{
			name: "notice about another master name is ignored",
			steps: []any{master(0, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
				notice(50, "s1", "+switch-master", "other 10.0.0.1 6379 10.0.0.2 6379")},
			master: A,
		},
		{
			name: "switch-master to the node we already use does not fence",
			steps: []any{master(0, A), view(1, "s1", A, 2), view(1, "s2", A, 2),
				notice(50, "s3", "+switch-master", "m 10.0.0.2 6379 10.0.0.1 6379")},
			master: A,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, cfg, tc.steps...)
			if r.route.Master != tc.master {
				t.Fatalf("route = %+v, want master %q", r.route, tc.master)
			}
			if tc.master == "" && r.route.Reason == "" {
				t.Fatalf("refusal without a reason: %+v", r.route)
			}
			if tc.hold && !r.route.Hold {
				t.Fatalf("route = %+v, want hold", r.route)
			}
			if !reflect.DeepEqual(r.closed, tc.closed) {
				t.Fatalf("closed = %v, want %v", r.closed, tc.closed)
			}
			if !reflect.DeepEqual(r.switches, tc.switches) {
				t.Fatalf("switches = %v, want %v", r.switches, tc.switches)
			}
		})
	}
}

func TestRoutingWithoutSentinels(t *testing.T) {
	tests := []struct {
		name   string
		steps  []any
		master string
		closed []string
	}{
		{"sole claimant is adopted", []any{master(0, A), replica(0, B, A)}, A, nil},
		{"two claimants and no current: refuse", []any{master(0, A), master(0, B)}, "", nil},
		{"current stays while it claims, even if another claims", []any{master(0, A), replica(0, B, A), master(100, B), master(100, A)}, A, nil},
		{"current steps down, sole other claimant adopted", []any{master(0, A), replica(0, B, A), master(100, B), replica(101, A, B)}, B, []string{A}},
		{"current steps down, two others claim: refuse", []any{master(0, A), replica(0, B, A), master(100, B), master(100, C), replica(101, A, B)}, "", []string{A}},
		{"current unreachable: do not move", []any{master(0, A), replica(0, B, A), down(100, A), master(101, B)}, "", nil},
		{"nothing known: refuse", []any{down(0, A), down(0, B)}, "", nil},
		{"sole claimant waits for every backend's result", []any{master(0, A)}, "", nil},
		{"unreachable other backend does not block adoption", []any{master(0, A), down(0, B)}, A, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, Config{Backends: []string{A, B}}, tc.steps...)
			if r.route.Master != tc.master {
				t.Fatalf("route = %+v, want %q", r.route, tc.master)
			}
			if tc.master == "" && r.route.Reason == "" {
				t.Fatalf("refusal without a reason")
			}
			if !reflect.DeepEqual(r.closed, tc.closed) {
				t.Fatalf("closed = %v, want %v", r.closed, tc.closed)
			}
		})
	}
}

func TestKeepOnSwitch(t *testing.T) {
	r := run(t, Config{MasterName: "m", Sentinels: sentinels3, KeepOnSwitch: true},
		master(0, A), view(1, "s1", A, 1), view(1, "s2", A, 1),
		master(100, B), view(101, "s1", B, 2), view(102, "s2", B, 2))
	if r.route.Master != B || len(r.closed) != 0 {
		t.Fatalf("route %+v closed %v", r.route, r.closed)
	}
}

func TestQuorum(t *testing.T) {
	for n, want := range map[int]int{0: 0, 1: 1, 2: 2, 3: 2, 4: 3, 5: 3} {
		if got := (Config{Sentinels: make([]string, n)}).Quorum(); got != want {
			t.Errorf("N=%d quorum %d, want %d", n, got, want)
		}
	}
}

func TestReplicas(t *testing.T) {
	c := newCore(t, rulesOnly(Config{MasterName: "m", Sentinels: sentinels3, MaxReplicaLag: 100}))
	for _, ev := range []any{
		Health{At: at(0), Backend: A, OK: true, Role: RoleMaster, Offset: 1000},
		Health{At: at(0), Backend: B, OK: true, Role: RoleReplica, LinkUp: true, MasterAddr: A, Offset: 950},
		Health{At: at(0), Backend: C, OK: true, Role: RoleReplica, LinkUp: true, MasterAddr: A, Offset: 10},
		Health{At: at(0), Backend: "10.0.0.4:6379", OK: true, Role: RoleReplica, LinkUp: false, MasterAddr: A},
		view(1, "s1", A, 1), view(1, "s2", A, 1),
	} {
		feed(c, ev)
	}
	if got := c.Replicas(); !reflect.DeepEqual(got, []string{B}) {
		t.Fatalf("replicas = %v", got)
	}
}

func TestParseNotice(t *testing.T) {
	tests := []struct {
		ch, payload string
		want        ParsedNotice
		ok          bool
	}{
		{"+switch-master", "m 127.0.0.1 6379 127.0.0.1 6380", ParsedNotice{EffectFence, "m", "127.0.0.1:6379", "127.0.0.1:6380"}, true},
		{"+switch-master", "m ::1 6379 ::1 6380", ParsedNotice{EffectFence, "m", "[::1]:6379", "[::1]:6380"}, true},
		{"+switch-master", "m 127.0.0.1 x 127.0.0.1 6380", ParsedNotice{}, false},
		{"+switch-master", "m 127.0.0.1", ParsedNotice{}, false},
		{"+promoted-slave", "slave 127.0.0.1:6380 127.0.0.1 6380 @ m 127.0.0.1 6379", ParsedNotice{EffectFence, "m", "127.0.0.1:6379", ""}, true},
		{"+config-update-from", "sentinel 4f1a 127.0.0.1 26379 @ m 127.0.0.1 6379", ParsedNotice{EffectFence, "m", "127.0.0.1:6379", ""}, true},
		{"-failover-abort-not-elected", "master m 127.0.0.1 6379", ParsedNotice{EffectAbort, "m", "127.0.0.1:6379", ""}, true},
		{"+odown", "master m 127.0.0.1 6379 #quorum 2/2", ParsedNotice{EffectCheck, "m", "127.0.0.1:6379", ""}, true},
		{"+sdown", "master m 127.0.0.1 6379", ParsedNotice{EffectCheck, "m", "127.0.0.1:6379", ""}, true},
		{"+new-epoch", "7", ParsedNotice{EffectCheck, "", "", ""}, true},
		{"+new-epoch", "-1", ParsedNotice{}, false},
		{"+sdown", "slave 1:2 1 2 @ m 1 99999", ParsedNotice{}, false},
		{"+sdown", "", ParsedNotice{}, false},
	}
	for _, tc := range tests {
		got, ok := ParseNotice(tc.ch, tc.payload)
		if ok != tc.ok || got != tc.want {
			t.Errorf("ParseNotice(%q, %q) = %+v, %v; want %+v, %v", tc.ch, tc.payload, got, ok, tc.want, tc.ok)
		}
	}
}

// readLate is an observation dated from its probe's start (start ms) but
// read by the driver at read ms, as after the proxy thaws from a freeze.
func readLate(ev any, read int) any { return late{ev, at(read)} }

func TestAnswersReadLate(t *testing.T) {
	cfg := Config{MasterName: "m", Sentinels: sentinels3, NoMajorityGrace: 5 * time.Second,
		ViewTTL: 3500 * time.Millisecond, HealthTTL: 3500 * time.Millisecond}
	agreed := []any{master(0, A), view(0, "s1", A, 1), view(0, "s2", A, 1), view(0, "s3", A, 1)}
	tests := []struct {
		name   string
		steps  []any
		master string
	}{
		{
			// Probes sent at 900 ms, answered before a 9 s freeze, read at
			// 10 s: older than the TTLs, so they route nowhere. Stamped with
			// the read time they looked fresh and kept the route.
			name: "answers from before a freeze are as old as their probes",
			steps: append(agreed[:len(agreed):len(agreed)],
				readLate(master(900, A), 10000), readLate(view(900, "s1", A, 1), 10000),
				readLate(view(900, "s2", A, 1), 10000)),
		},
		{
			name: "the same answers read at once are fresh",
			steps: append(agreed[:len(agreed):len(agreed)],
				readLate(master(9900, A), 10000), readLate(view(9900, "s1", A, 1), 10000),
				readLate(view(9900, "s2", A, 1), 10000)),
			master: A,
		},
		{
			// The majority is lost at 2 s; the grace ends at 7 s. A health
			// result sent at 6.99 s and read at 7 s must not stretch it: the
			// read time moves the clock, the probe's start dates the answer.
			name: "the read time moves the clock for the grace period",
			steps: append(agreed[:len(agreed):len(agreed)],
				View{At: at(2000), Sentinel: "s2", Err: "timeout"}, View{At: at(2000), Sentinel: "s3", Err: "timeout"},
				master(2000, A), readLate(master(6990, A), 7000)),
		},
		{
			// The agreed views (answered at 0) expire at 3.5 s while the
			// proxy is frozen; the first step after the thaw, at 20 s, has a
			// fresh health result. The grace ran out at 8.5 s: no route.
			name: "a majority that expired during a freeze earns no grace after it",
			steps: append(agreed[:len(agreed):len(agreed)],
				readLate(master(19990, A), 20000)),
		},
		{
			name: "a majority that expired while stepped keeps its grace",
			steps: append(agreed[:len(agreed):len(agreed)],
				tick(3600), master(8000, A)),
			master: A,
		},
		{
			name: "within the grace the current master keeps new connections",
			steps: append(agreed[:len(agreed):len(agreed)],
				View{At: at(2000), Sentinel: "s2", Err: "timeout"}, View{At: at(2000), Sentinel: "s3", Err: "timeout"},
				master(2000, A), readLate(master(6980, A), 6990)),
			master: A,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := run(t, cfg, tc.steps...); r.route.Master != tc.master {
				t.Fatalf("route %+v, want master %q", r.route, tc.master)
			}
		})
	}
}
