package check

import (
	"reflect"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/history"
)

func pub(id int64, worker int, msg string, from, to int, st history.Status, server string, receivers int) history.Op {
	o := op(id, worker, history.KindPublish, "ch", msg, from, to, st, server)
	o.Receivers = receivers
	return o
}

func sub(worker int, ms int, server string) history.Op {
	return op(0, worker, history.KindSubscribe, "ch", "", ms, ms, history.OK, server)
}

func unsub(worker int, ms int) history.Op {
	return op(0, worker, history.KindUnsub, "ch", "", ms, ms, history.Fail, "")
}

func recv(worker int, msg string, ms int, server string) history.Op {
	return op(0, worker, history.KindReceive, "ch", msg, ms, ms, history.OK, server)
}

// A failover from A to B: subscribers 10 and 11 on A; 10 loses its connection at 2 s and
// subscribes on B at 3 s; 11 stays on A until the end.
func TestPubSubCount(t *testing.T) {
	const A, B = "10.0.0.11:6379", "10.0.0.12:6379"
	base := []history.Op{sub(10, 0, A), sub(11, 0, A), unsub(10, 2000), sub(10, 3000, B)}
	for _, c := range []struct {
		name string
		ops  []history.Op
		want PubSubStats
	}{
		{"every message delivered", []history.Op{
			pub(1, 5, "m1", 100, 110, history.OK, A, 2), recv(10, "m1", 105, A), recv(11, "m1", 106, A),
			pub(2, 5, "m2", 3500, 3510, history.OK, B, 1), recv(10, "m2", 3505, B),
		}, PubSubStats{Published: 2, WithReceivers: 2, Told: 3, Delivered: 3}},
		{"announced to two, recorded by one: lost and missed", []history.Op{
			pub(1, 5, "m1", 100, 110, history.OK, A, 2), recv(11, "m1", 106, A),
		}, PubSubStats{Published: 1, WithReceivers: 1, Told: 2, Delivered: 1, Lost: 1, Missed: 1}},
		{"published while 10 was away: no receiver announced for it, nothing lost", []history.Op{
			pub(1, 5, "m1", 2100, 2110, history.OK, A, 1), recv(11, "m1", 2105, A),
			pub(2, 5, "m2", 2200, 2210, history.OK, B, 0),
		}, PubSubStats{Published: 2, WithReceivers: 1, Told: 1, Delivered: 1}},
		{"duplicate delivery", []history.Op{
			pub(1, 5, "m1", 3500, 3510, history.OK, B, 1), recv(10, "m1", 3505, B), recv(10, "m1", 3506, B),
		}, PubSubStats{Published: 1, WithReceivers: 1, Told: 1, Delivered: 1, Duplicated: 1}},
		{"a publish that timed out but was delivered", []history.Op{
			pub(1, 5, "m1", 3500, 3700, history.Indeterminate, B, 0), recv(10, "m1", 3505, B),
		}, PubSubStats{Unacknowledged: 1}},
		{"a publish straddling the subscription's start is not expected", []history.Op{
			pub(1, 5, "m1", 2900, 3100, history.OK, B, 0),
		}, PubSubStats{Published: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := PubSubCount(append(append([]history.Op(nil), base...), c.ops...), at(5000))
			got.LostOps = nil
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
	subs := Subscriptions(base, at(5000))
	if len(subs) != 3 || subs[0].To != at(2000) || subs[1].Server != B || subs[1].From != at(3000) || subs[1].To != at(5000) || subs[2].Worker != 11 {
		t.Fatalf("subscriptions %+v", subs)
	}
}

func TestPubSubVerdict(t *testing.T) {
	const A = "10.0.0.11:6379"
	in := Input{End: at(5000), Ops: []history.Op{sub(10, 0, A), sub(11, 0, A),
		pub(1, 5, "m1", 100, 110, history.OK, A, 2), recv(11, "m1", 106, A)}}
	if v := PubSub(in, -1); v.Status != Pass || v.Metrics["lost"] != 1 || len(v.Evidence) != 1 {
		t.Fatalf("measured only: %+v", v)
	}
	if v := PubSub(in, 0); v.Status != Fail {
		t.Fatalf("max 0: %+v", v)
	}
	if HasPubSub(in.Ops[2:3]) != true || HasPubSub([]history.Op{op(1, 0, history.KindSet, "k", "v", 0, 1, history.OK, A)}) {
		t.Fatal("HasPubSub")
	}
}

// redisha-proxy routes to one backend each; two proxies routing to different nodes route
// clients to two masters.
func TestDualRouteAcrossProxies(t *testing.T) {
	rt := func(ms int, node, up string) history.Event {
		return history.Event{Time: at(ms), Source: history.SourceProxy, Kind: "route", Node: node,
			Detail: "route=" + up, Attrs: map[string]string{"up": up}}
	}
	ev := []history.Event{
		rt(0, "proxy1", "redis1"),
		rt(0, "proxy2", "redis1"),
		rt(1000, "proxy2", "redis2"), // split from here
		rt(3000, "proxy1", "redis2"), // joined
		rt(4000, "proxy1", ""),       // no route
		{Time: at(4500), Source: history.SourceProxy, Kind: "route", Node: "proxy2", Detail: "unreachable"},
	}
	if got := DualRouteWindow(ev, at(10000)); got != 2*time.Second {
		t.Fatalf("got %v, want 2s", got)
	}
	routes := Routes(ev)
	if len(routes) != 6 || routes[2].Up[0] != "redis2" || len(routes[4].Up) != 0 || !routes[5].Unreachable {
		t.Fatalf("routes %+v", routes)
	}
}

// The leader's +promoted-slave starts the new master's epoch: clients that ask the sentinels
// reach the promoted replica before +switch-master, and their writes there are no split brain.
// The switch announced afterwards folds into the same epoch.
func TestPromotedSlaveStartsTheEpoch(t *testing.T) {
	const A, B = "10.0.0.11:6379", "10.0.0.12:6379"
	promoted := history.Event{Time: at(1000), Source: history.SourceSentinel, Kind: history.KindPromoted, Node: "redis2",
		Detail: "slave 10.0.0.12:6379 10.0.0.12 6379 @ mymaster 10.0.0.11 6379"}
	in := Input{InitialMaster: A, End: at(5000),
		Events: []history.Event{promoted, switchTo(1070, A, B), switchTo(1090, A, B)},
		Ops:    []history.Op{op(1, 0, history.KindSet, "k", "v1", 1010, 1020, history.OK, B), op(2, 0, history.KindSet, "k", "v0", 900, 990, history.OK, A)}}
	tl := MasterTimeline(in)
	if len(tl) != 2 || tl[1].Master != B || tl[1].From != at(1000) {
		t.Fatalf("timeline %+v", tl)
	}
	if sb := SplitBrainOps(in); len(sb) != 0 {
		t.Fatalf("writes to the promoted replica counted as split brain: %+v", sb)
	}
	if _, _, ok := history.PromotedAddrs("slave garbage"); ok {
		t.Fatal("malformed payload accepted")
	}
}
