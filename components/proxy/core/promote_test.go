package core

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	rid1 = strings.Repeat("1", 40)
	rid2 = strings.Repeat("2", 40)
	rid3 = strings.Repeat("3", 40)
)

func fastCfg(on bool) Config {
	return Config{MasterName: "mymaster", Sentinels: sentinels3, Backends: []string{A, B, C}, PromotionFastPath: on}
}

// stable: every sentinel names A at epoch 1 and gave its run id; A is
// master, B and C replicas. The proxy routes to A.
func stable() []any {
	return []any{
		runIDView(0, "s1", rid1, A, 1), runIDView(0, "s2", rid2, A, 1), runIDView(0, "s3", rid3, A, 1),
		master(0, A), replica(0, B, A), replica(0, C, A),
	}
}

func voteFor(ms int, s, leader string, epoch int) noticeAt {
	return notice(ms, s, "+vote-for-leader", leader+" "+strconv.Itoa(epoch))
}

// promoting is sentinel s's (a) announcement that x is promoted for A.
func promoting(ms int, s, ch, x string) noticeAt {
	h, p, _ := strings.Cut(x, ":")
	return notice(ms, s, ch, "slave "+x+" "+h+" "+p+" @ mymaster 10.0.0.1 6379")
}

// failover is the real sequence up to SLAVEOF NO ONE sent to B by s2,
// elected by all three votes in epoch 2.
func failover(ms int) []any {
	return []any{
		notice(ms, "s2", "+sdown", "master mymaster 10.0.0.1 6379"),
		notice(ms+50, "s2", "+odown", "master mymaster 10.0.0.1 6379 #quorum 2/2"),
		notice(ms+50, "s2", "+new-epoch", "2"),
		notice(ms+50, "s2", "+try-failover", "master mymaster 10.0.0.1 6379"),
		voteFor(ms+50, "s2", rid2, 2),
		voteFor(ms+60, "s1", rid2, 2),
		voteFor(ms+60, "s3", rid2, 2),
		notice(ms+200, "s2", "+elected-leader", "master mymaster 10.0.0.1 6379"),
		promoting(ms+200, "s2", "+selected-slave", B),
		promoting(ms+200, "s2", "+failover-state-send-slaveof-noone", B),
		promoting(ms+300, "s2", "+failover-state-wait-promotion", B),
	}
}

type fastResult struct {
	result
	events []FastPathEvent
	snap   Snapshot
}

func runFast(t *testing.T, cfg Config, steps ...any) fastResult {
	t.Helper()
	c := newCore(t, rulesOnly(cfg))
	var r fastResult
	for _, s := range steps {
		for _, a := range feed(c, s) {
			switch a := a.(type) {
			case Close:
				r.closed = append(r.closed, a.Backend)
			case Switch:
				r.switches = append(r.switches, a)
			case FastPathEvent:
				r.events = append(r.events, a)
			}
		}
		r.route = c.Route()
	}
	r.snap = c.Snapshot()
	return r
}

func steps(parts ...[]any) []any {
	var out []any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestParseVoteAndPromotion(t *testing.T) {
	if id, e, ok := ParseVote(rid2 + " 7"); !ok || id != rid2 || e != 7 {
		t.Fatalf("ParseVote = %q %d %v", id, e, ok)
	}
	for _, bad := range []string{"", rid2, rid2 + " x", "abc 7", rid2 + " 7 8", rid2 + " -1", rid2 + " 0"} {
		if _, _, ok := ParseVote(bad); ok {
			t.Errorf("ParseVote(%q) ok", bad)
		}
	}
	x, name, m, ok := ParsePromotion("+failover-state-wait-promotion", "slave 10.0.0.2:6379 10.0.0.2 6379 @ mymaster 10.0.0.1 6379")
	if !ok || x != B || name != "mymaster" || m != A {
		t.Fatalf("ParsePromotion = %q %q %q %v", x, name, m, ok)
	}
	for _, c := range [][2]string{
		{"+promoted-slave", "slave 10.0.0.2:6379 10.0.0.2 6379 @ mymaster 10.0.0.1 6379"},
		{"+failover-state-wait-promotion", "master mymaster 10.0.0.1 6379"},
		{"+failover-state-wait-promotion", "slave 10.0.0.2:6379 10.0.0.2 6379 @ mymaster 10.0.0.1"},
		{"+failover-state-wait-promotion", "slave 10.0.0.1:6379 10.0.0.1 6379 @ mymaster 10.0.0.1 6379"},
		{"+failover-state-send-slaveof-noone", "sentinel x 10.0.0.2 6379 @ mymaster 10.0.0.1 6379"},
	} {
		if _, _, _, ok := ParsePromotion(c[0], c[1]); ok {
			t.Errorf("ParsePromotion(%q, %q) ok", c[0], c[1])
		}
	}
}

// The fast path routes to B once all four conditions hold, before any
// majority view names B; the confirming view changes nothing but the
// provisional mark.
func TestFastPathRoutesAndIsConfirmed(t *testing.T) {
	r := runFast(t, fastCfg(true), steps(stable(), failover(1000), []any{
		master(1310, B), // (c): probed after the announcement
	})...)
	if r.route.Master != B {
		t.Fatalf("route %+v, want %s provisionally", r.route, B)
	}
	if !slices.Contains(r.closed, A) || len(r.switches) != 1 || r.switches[0] != (Switch{From: A, To: B}) {
		t.Fatalf("closed %v switches %v", r.closed, r.switches)
	}
	if r.snap.Provisional != B || r.snap.ProvisionalEpoch != 2 || r.snap.FastPath.Routed != 1 {
		t.Fatalf("snapshot %+v", r.snap)
	}
	// The majority catches up: confirmed, no second switch, nothing closed.
	r = runFast(t, fastCfg(true), steps(stable(), failover(1000), []any{
		master(1310, B),
		runIDView(2200, "s2", rid2, B, 2), runIDView(2210, "s1", rid1, B, 2),
	})...)
	if r.route.Master != B || len(r.switches) != 1 || r.snap.Provisional != "" || r.snap.FastPath.Confirmed != 1 {
		t.Fatalf("after confirmation: route %+v switches %v snapshot %+v", r.route, r.switches, r.snap)
	}
	if len(r.events) != 2 || r.events[0].What != "route" || r.events[1].What != "confirmed" {
		t.Fatalf("events %+v", r.events)
	}
	// Held: after confirmation the route outlives the bound.
	r = runFast(t, fastCfg(true), steps(stable(), failover(1000), []any{
		master(1310, B),
		runIDView(2200, "s2", rid2, B, 2), runIDView(2210, "s1", rid1, B, 2),
		master(5000, B), runIDView(5000, "s2", rid2, B, 2), runIDView(5000, "s1", rid1, B, 2), tick(5000),
	})...)
	if r.route.Master != B {
		t.Fatalf("confirmed route withdrawn: %+v", r.route)
	}
}

// Each condition missing: no route to B before the majority names it.
func TestFastPathNeedsEveryCondition(t *testing.T) {
	held := func(t *testing.T, name string, cfg Config, s []any) {
		t.Helper()
		r := runFast(t, cfg, s...)
		if r.route.Master == B || r.snap.FastPath.Routed != 0 {
			t.Errorf("%s: route %+v (fast path %+v), want none to %s", name, r.route, r.snap.FastPath, B)
		}
	}
	without := func(drop func(any) bool) []any {
		var out []any
		for _, s := range failover(1000) {
			if !drop(s) {
				out = append(out, s)
			}
		}
		return out
	}
	channel := func(ch string) func(any) bool {
		return func(s any) bool { n, ok := s.(noticeAt); return ok && n.n.Channel == ch }
	}
	votesOf := func(who ...string) func(any) bool {
		return func(s any) bool {
			n, ok := s.(noticeAt)
			return ok && n.n.Channel == "+vote-for-leader" && slices.Contains(who, n.n.Sentinel)
		}
	}
	promoted := []any{master(1310, B)}

	held(t, "fast path off", fastCfg(false), steps(stable(), failover(1000), promoted))
	// (a): no announcement naming B (the fence alone comes from +promoted-slave later).
	held(t, "(a) missing", fastCfg(true), steps(stable(),
		without(func(s any) bool {
			return channel("+failover-state-send-slaveof-noone")(s) || channel("+failover-state-wait-promotion")(s)
		}), []any{notice(1250, "s1", "+promoted-slave", "slave 10.0.0.2:6379 10.0.0.2 6379 @ mymaster 10.0.0.1 6379")}, promoted))
	// (a) from a sentinel that is not the voted leader.
	held(t, "(a) from a non-leader", fastCfg(true), steps(stable(),
		without(func(s any) bool {
			return channel("+failover-state-send-slaveof-noone")(s) || channel("+failover-state-wait-promotion")(s)
		}), []any{promoting(1300, "s1", "+failover-state-wait-promotion", B)}, promoted))
	// (a) about another master than the routed one.
	held(t, "(a) for another master", fastCfg(true), steps(stable(),
		without(func(s any) bool {
			return channel("+failover-state-send-slaveof-noone")(s) || channel("+failover-state-wait-promotion")(s)
		}), []any{notice(1300, "s2", "+failover-state-wait-promotion", "slave 10.0.0.2:6379 10.0.0.2 6379 @ mymaster 10.0.0.3 6379")}, promoted))
	// (b): one vote short of the majority.
	held(t, "(b) only the leader's own vote", fastCfg(true), steps(stable(), without(votesOf("s1", "s3")), promoted))
	held(t, "(b) no self vote", fastCfg(true), steps(stable(), without(votesOf("s2")), promoted))
	held(t, "(b) votes in another epoch", fastCfg(true), steps(stable(), without(votesOf("s1", "s3")),
		[]any{voteFor(1060, "s1", rid2, 3), voteFor(1060, "s3", rid2, 1)}, promoted))
	held(t, "(b) votes for another leader", fastCfg(true), steps(stable(), without(votesOf("s1", "s3")),
		[]any{voteFor(1060, "s1", rid3, 2), voteFor(1060, "s3", rid3, 2)}, promoted))
	held(t, "(b) a vote from an unconfigured sentinel", fastCfg(true), steps(stable(), without(votesOf("s1", "s3")),
		[]any{voteFor(1060, "s9", rid2, 2)}, promoted))
	// (b): the leader's run id was never given directly (no SENTINEL MYID).
	held(t, "(b) leader's run id unknown", fastCfg(true), steps([]any{
		runIDView(0, "s1", rid1, A, 1), view(0, "s2", A, 1), runIDView(0, "s3", rid3, A, 1),
		master(0, A), replica(0, B, A), replica(0, C, A),
	}, failover(1000), promoted))
	// (b): the votes are for the epoch the proxy fenced at (an old election).
	held(t, "(b) votes not newer than the fenced configuration", fastCfg(true), steps([]any{
		runIDView(0, "s1", rid1, A, 2), runIDView(0, "s2", rid2, A, 2), runIDView(0, "s3", rid3, A, 2),
		master(0, A), replica(0, B, A), replica(0, C, A),
	}, failover(1000), promoted))
	// (c): B's master answer is from a probe started before the announcement.
	held(t, "(c) answer predates the announcement", fastCfg(true), steps(stable(), failover(1000), []any{master(1199, B), tick(1400)}))
	held(t, "(c) B still a replica", fastCfg(true), steps(stable(), failover(1000), []any{replica(1310, B, A)}))
	// (c) never comes within the bound: a later master answer does not count.
	held(t, "(c) too late", fastCfg(true), steps(stable(), failover(1000), []any{tick(4400), master(4400, B)}))
	// (d): the proxy routed to no master (A's health unknown), so nothing is fenced.
	held(t, "(d) nothing fenced", fastCfg(true), steps([]any{
		runIDView(0, "s1", rid1, A, 1), runIDView(0, "s2", rid2, A, 1), runIDView(0, "s3", rid3, A, 1),
		replica(0, B, A), replica(0, C, A),
	}, failover(1000), promoted))
	// A majority already names another node at a newer epoch.
	r := runFast(t, fastCfg(true), steps(stable(), failover(1000), []any{
		runIDView(1305, "s1", rid1, C, 3), runIDView(1305, "s3", rid3, C, 3), master(1310, B),
	})...)
	if r.route.Master == B {
		t.Errorf("routes to B while a majority names C at epoch 3")
	}
}

// Not confirmed within the bound: withdrawn, B's clients closed, not tried
// again for that epoch.
func TestFastPathWithdrawnOnTimeout(t *testing.T) {
	r := runFast(t, fastCfg(true), steps(stable(), failover(1000), []any{
		master(1310, B), master(2000, B), tick(4309), master(4309, B),
	})...)
	if r.route.Master != B {
		t.Fatalf("withdrawn before the bound: %+v", r.route)
	}
	r = runFast(t, fastCfg(true), steps(stable(), failover(1000), []any{
		master(1310, B), master(2000, B), master(4305, B), tick(4310), master(4320, B), tick(4400),
	})...)
	if r.route.Master != "" || !r.route.Hold {
		t.Fatalf("route %+v, want withdrawn", r.route)
	}
	if !slices.Contains(r.closed, B) || r.snap.FastPath.Withdrawn != 1 || r.snap.Provisional != "" {
		t.Fatalf("closed %v snapshot %+v", r.closed, r.snap)
	}
	if e := r.events[len(r.events)-1]; e.What != "withdrawn" || e.Addr != B || e.Epoch != 2 || !strings.Contains(e.Reason, "within 3s") {
		t.Fatalf("last event %+v", e)
	}
	// The bound is configurable.
	cfg := fastCfg(true)
	cfg.PromotionConfirm = time.Second
	r = runFast(t, cfg, steps(stable(), failover(1000), []any{master(1310, B), tick(2310)})...)
	if r.route.Master != "" || r.snap.FastPath.Withdrawn != 1 {
		t.Fatalf("1s bound: route %+v snapshot %+v", r.route, r.snap)
	}
	// The core asks to be woken at the bound.
	c := newCore(t, rulesOnly(fastCfg(true)))
	for _, s := range steps(stable(), failover(1000), []any{master(1310, B)}) {
		feed(c, s)
	}
	if n := c.Next(); n.After(at(4310)) {
		t.Fatalf("Next %v, after the bound %v", n, at(4310))
	}
}

// A majority view naming another master wins at once; an abort, or B
// stepping down, withdraws the route too.
func TestFastPathConflicts(t *testing.T) {
	base := steps(stable(), failover(1000), []any{master(1310, B)})
	r := runFast(t, fastCfg(true), steps(base, []any{
		master(1500, C), runIDView(1500, "s1", rid1, C, 2), runIDView(1500, "s3", rid3, C, 2),
	})...)
	if r.route.Master != C || !slices.Contains(r.closed, B) || r.snap.FastPath.Withdrawn != 1 {
		t.Fatalf("conflicting majority: route %+v closed %v snapshot %+v", r.route, r.closed, r.snap)
	}
	if n := len(r.switches); n != 2 || r.switches[1] != (Switch{From: B, To: C}) {
		t.Fatalf("switches %v", r.switches)
	}
	// A majority naming the old master at a newer epoch than the fence's.
	r = runFast(t, fastCfg(true), steps(base, []any{
		runIDView(1500, "s1", rid1, A, 2), runIDView(1500, "s3", rid3, A, 2),
	})...)
	if r.route.Master == B || r.snap.FastPath.Withdrawn != 1 {
		t.Fatalf("majority for A at epoch 2: route %+v snapshot %+v", r.route, r.snap)
	}
	// The old configuration, still held by the majority, does not withdraw it.
	r = runFast(t, fastCfg(true), steps(base, []any{
		runIDView(1500, "s1", rid1, A, 1), runIDView(1500, "s3", rid3, A, 1), master(1500, A),
	})...)
	if r.route.Master != B {
		t.Fatalf("the old configuration withdrew the route: %+v", r.route)
	}
	r = runFast(t, fastCfg(true), steps(base, []any{
		notice(1500, "s2", "-failover-abort-slave-timeout", "master mymaster 10.0.0.1 6379"),
	})...)
	if r.route.Master == B || r.snap.FastPath.Withdrawn != 1 {
		t.Fatalf("abort: route %+v snapshot %+v", r.route, r.snap)
	}
	r = runFast(t, fastCfg(true), steps(base, []any{replica(1500, B, A)})...)
	if r.route.Master != "" || !slices.Contains(r.closed, B) {
		t.Fatalf("B demoted: route %+v closed %v", r.route, r.closed)
	}
	// Turned off by a reload: withdrawn.
	c := newCore(t, rulesOnly(fastCfg(true)))
	for _, s := range base {
		feed(c, s)
	}
	if _, err := c.Reconfigure(at(1400), rulesOnly(fastCfg(false))); err != nil {
		t.Fatal(err)
	}
	if c.Route().Master != "" {
		t.Fatalf("fast path off: route %+v", c.Route())
	}
}

// While (c) is awaited, the announced replica is probed at once and then
// every fast interval, also outside the fast window.
func TestFastPathProbesTheReplica(t *testing.T) {
	cfg := fastCfg(true)
	cfg.CheckInterval, cfg.CheckTimeout = time.Hour, 5*time.Millisecond
	c := newCore(t, cfg)
	feed(c, tick(0))
	for _, s := range stable() {
		feed(c, s)
	}
	// Let every probe started at 0 time out, so only kicks probe now.
	feed(c, tick(10))
	var got []time.Time
	for _, s := range failover(1000) {
		for _, p := range probes(feed(c, s)) {
			if p.Target == B {
				got = append(got, p.At)
			}
		}
	}
	for ms := 1301; ms < 1360; ms++ {
		if !c.Next().After(at(ms)) {
			for _, p := range probes(c.Tick(at(ms))) {
				if p.Target == B {
					got = append(got, p.At)
				}
			}
		}
	}
	if len(got) == 0 || got[0].After(at(1200)) {
		t.Fatalf("B probed at %v, want at once after the announcement (1200ms)", got)
	}
	if len(got) < 4 {
		t.Fatalf("B probed %d times between the announcement and 1360ms: %v", len(got), got)
	}
}
