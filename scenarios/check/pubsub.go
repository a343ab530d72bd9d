package check

import (
	"fmt"
	"sort"
	"time"

	"github.com/redisha/redisha/scenarios/history"
)

// CheckPubSub is the pub/sub checker's name.
const CheckPubSub = "pubsub"

// Subscription is one span during which a subscriber was subscribed on one server.
type Subscription struct {
	Worker int
	Server string
	From   time.Time // the subscription was confirmed
	To     time.Time // the connection failed, or the end of the run
}

// PubSubStats is what the pub/sub records add up to.
type PubSubStats struct {
	Published     int // PUBLISH acknowledged
	WithReceivers int // acknowledged with a receiver count above 0
	Told          int // receivers the servers announced, summed over acknowledged publishes
	Delivered     int // of those, deliveries a subscriber recorded (at most the count, per message)
	// Lost sums, over acknowledged messages, the receivers announced that no subscriber recorded.
	Lost int
	// Duplicated counts deliveries of a message to a subscriber that had it already.
	Duplicated int
	// Missed counts (subscriber, message) pairs: the message was acknowledged by the server the
	// subscriber was subscribed to, entirely within its subscription, and never reached it.
	Missed int
	// Unacknowledged counts messages received whose PUBLISH failed or timed out at the publisher.
	Unacknowledged int
	// LostOps are the acknowledged publishes with lost receivers (for evidence).
	LostOps []history.Op
}

// Subscriptions derives each subscriber's subscription spans from its subscribe and
// unsubscribed records; a span still open at end closes there.
func Subscriptions(ops []history.Op, end time.Time) []Subscription {
	byWorker := map[int][]history.Op{}
	for _, o := range ops {
		if o.Kind == history.KindSubscribe || o.Kind == history.KindUnsub {
			byWorker[o.Worker] = append(byWorker[o.Worker], o)
		}
	}
	workers := make([]int, 0, len(byWorker))
	for w := range byWorker {
		workers = append(workers, w)
	}
	sort.Ints(workers)
	var out []Subscription
	for _, w := range workers {
		rs := byWorker[w]
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].Invoke.Before(rs[j].Invoke) })
		var cur *Subscription
		closeAt := func(t time.Time) {
			if cur != nil {
				cur.To = t
				out = append(out, *cur)
				cur = nil
			}
		}
		for _, o := range rs {
			switch {
			case o.Kind == history.KindSubscribe && o.Status == history.OK:
				closeAt(o.Invoke)
				cur = &Subscription{Worker: w, Server: o.Server, From: o.Complete}
			case o.Kind == history.KindUnsub:
				closeAt(o.Invoke)
			}
		}
		if cur != nil {
			t := end
			if t.Before(cur.From) {
				t = cur.From
			}
			closeAt(t)
		}
	}
	return out
}

// PubSubCount adds up the pub/sub records (see PubSubStats).
func PubSubCount(ops []history.Op, end time.Time) PubSubStats {
	var st PubSubStats
	got := map[string]map[int]int{} // message -> subscriber -> deliveries
	pubs := map[string]history.Op{}
	for _, o := range ops {
		switch o.Kind {
		case history.KindPublish:
			pubs[o.Key+"\x00"+o.Value] = o
		case history.KindReceive:
			k := o.Key + "\x00" + o.Value
			if got[k] == nil {
				got[k] = map[int]int{}
			}
			got[k][o.Worker]++
			if got[k][o.Worker] > 1 {
				st.Duplicated++
			}
		}
	}
	for k, subs := range got {
		if p, ok := pubs[k]; !ok || p.Status != history.OK {
			st.Unacknowledged += len(subs)
		}
	}
	subs := Subscriptions(ops, end)
	for _, o := range ops {
		if o.Kind != history.KindPublish || o.Status != history.OK {
			continue
		}
		st.Published++
		k := o.Key + "\x00" + o.Value
		if o.Receivers > 0 {
			st.WithReceivers++
			st.Told += o.Receivers
			d := min(len(got[k]), o.Receivers)
			st.Delivered += d
			if d < o.Receivers {
				st.Lost += o.Receivers - d
				st.LostOps = append(st.LostOps, o)
			}
		}
		for _, s := range subs {
			if s.Server != "" && s.Server == o.Server && !o.Invoke.Before(s.From) && !o.Complete.After(s.To) && got[k][s.Worker] == 0 {
				st.Missed++
			}
		}
	}
	sort.Slice(st.LostOps, func(i, j int) bool { return st.LostOps[i].ID < st.LostOps[j].ID })
	return st
}

// HasPubSub reports whether the records hold a pub/sub workload.
func HasPubSub(ops []history.Op) bool {
	for _, o := range ops {
		if o.Kind == history.KindPublish || o.Kind == history.KindSubscribe {
			return true
		}
	}
	return false
}

// PubSub judges the pub/sub workload: messages a publisher was told reached subscribers (the
// PUBLISH reply) against the messages the subscribers recorded, across whatever the faults did.
// Pub/sub is at-most-once, so max < 0 measures only.
func PubSub(in Input, max int) Verdict {
	st := PubSubCount(in.Ops, in.End)
	v := Verdict{Check: CheckPubSub, Expected: "measured only", Metrics: map[string]float64{
		"published": float64(st.Published), "with_receivers": float64(st.WithReceivers), "told": float64(st.Told),
		"delivered": float64(st.Delivered), "lost": float64(st.Lost), "duplicated": float64(st.Duplicated),
		"missed": float64(st.Missed), "unacknowledged_received": float64(st.Unacknowledged),
	}}
	if max >= 0 {
		v.Expected = fmt.Sprintf("at most %d announced deliveries lost", max)
	}
	v.Observed = fmt.Sprintf("%d of %d announced deliveries lost (%d messages acknowledged); %d duplicated; %d missed inside a subscription",
		st.Lost, st.Told, st.Published, st.Duplicated, st.Missed)
	for _, o := range st.LostOps {
		evidence(&v, "%s: %d receiver(s) announced, fewer recorded it", opRef(o), o.Receivers)
	}
	v.Status = Pass
	if max >= 0 && st.Lost > max {
		v.Status = Fail
	}
	return v
}
