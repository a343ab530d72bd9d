package core

import (
	"testing"
	"time"
)

// linkModel plays a master's side of the witness's links in virtual time:
// the current connection answers each command rtt after it is sent, in
// order; a probe answers probeDelay after it is sent (the fresh connection's
// connect, handshake and PING), unless probes fail. dead: nothing answers.
type linkModel struct {
	rtt, probeDelay time.Duration
	probesFail      bool
	dead            bool
	stuck           bool // the current connection never answers, fresh ones do
}

type due struct {
	at   time.Time
	kind ActionKind
}

// runLink ticks the core every 100 ms for d and returns when +sdown came
// (zero: never) and how many probes and adoptions there were.
func runLink(t *testing.T, c *Core, lm linkModel, start time.Time, d time.Duration) (sdown time.Time, probes, adopts int) {
	t.Helper()
	tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
	var pending []due // current connection, in order
	var probe *due
	busyUntil := start
	handle := func(now time.Time, acts []Action) {
		for _, a := range acts {
			if a.Target != tm && a.Kind != ActEvent {
				continue
			}
			switch a.Kind {
			case ActPing, ActInfo, ActHello:
				if lm.dead || lm.stuck {
					continue
				}
				// Replies on one connection come in order.
				at := now.Add(lm.rtt)
				if at.Before(busyUntil) {
					at = busyUntil
				}
				busyUntil = at
				pending = append(pending, due{at, a.Kind})
			case ActProbe:
				probes++
				if lm.dead {
					continue // a black hole: the dial never completes
				}
				probe = &due{now.Add(lm.probeDelay), ActProbe}
			case ActAdopt:
				adopts++
				lm.stuck = false
				pending, busyUntil = nil, now
			case ActEvent:
				if a.Event.Type == "+sdown" && sdown.IsZero() {
					sdown = now
				}
			}
		}
	}
	for now := start; !now.After(start.Add(d)); now = now.Add(time.Millisecond) {
		for len(pending) > 0 && !pending[0].at.After(now) {
			p := pending[0]
			pending = pending[1:]
			switch p.kind {
			case ActPing:
				handle(now, c.PingReply(now, tm, "PONG"))
			case ActInfo:
				handle(now, c.InfoReply(now, tm, "# Replication\r\nrole:master\r\n"))
			case ActHello:
				handle(now, c.PublishReply(now, tm, false))
			}
		}
		if probe != nil && !probe.at.After(now) {
			probe = nil
			if lm.probesFail {
				handle(now, c.LinkFailed(now, tm, ActProbe))
			} else {
				handle(now, c.ProbeReply(now, tm, "PONG"))
			}
		}
		if now.Sub(start)%(100*time.Millisecond) == 0 {
			handle(now, c.Tick(now))
		}
	}
	return sdown, probes, adopts
}

func newSlowCore(t *testing.T, downAfter time.Duration) *Core {
	t.Helper()
	c, err := New(Config{MyID: idW, Masters: []MasterConfig{{
		Name: "mymaster", Addr: Addr{"10.0.0.1", 6379}, Quorum: 2, DownAfter: downAfter,
	}}}, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSlowMasterIsNotDown (issue 10 part 2): a link whose round trip is
// below down-after never makes the master SDOWN, however slow a fresh
// connection is; a stuck connection is replaced by a probe that answers;
// a dead master is SDOWN exactly down-after after its first unanswered
// PING, probes or not.
func TestSlowMasterIsNotDown(t *testing.T) {
	const da = 5 * time.Second
	cases := []struct {
		name       string
		lm         linkModel
		wantDownAt time.Duration // from the first unanswered PING; 0: never
		wantAdopts bool
	}{
		{"3s round trip, fresh connections take 9s", linkModel{rtt: 3 * time.Second, probeDelay: 9 * time.Second}, 0, false},
		{"3s round trip, probes refused", linkModel{rtt: 3 * time.Second, probeDelay: 10 * time.Millisecond, probesFail: true}, 0, false},
		{"4.9s round trip", linkModel{rtt: 4900 * time.Millisecond, probeDelay: 15 * time.Second}, 0, false},
		{"stuck connection, fresh one answers in 1s", linkModel{stuck: true, probeDelay: time.Second}, 0, true},
		{"dead master, probes vanish", linkModel{dead: true}, da, false},
		{"dead master, probes refused", linkModel{dead: true, probesFail: true, probeDelay: time.Millisecond}, da, false},
		{"stuck connection, probes refused", linkModel{stuck: true, probesFail: true, probeDelay: time.Millisecond}, da, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newSlowCore(t, da)
			tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
			// Connected and healthy first: the reconnect PING at 0 answered at 1 ms.
			c.Tick(at(0))
			c.PingReply(at(1), tm, "PONG")
			start := at(100)
			sdown, probes, adopts := runLink(t, c, tc.lm, start, 3*da)
			if tc.wantDownAt == 0 {
				if !sdown.IsZero() {
					t.Fatalf("+sdown at %v although the master answers (probes %d)", sdown.Sub(t0), probes)
				}
			} else {
				// The first unanswered PING is the one due after the last
				// PONG (1 ms) plus the ping period: sent at the tick of 1100 ms.
				first := at(1100)
				want := first.Add(tc.wantDownAt)
				if sdown.IsZero() || sdown.Sub(want) < 0 || sdown.Sub(want) > 100*time.Millisecond {
					t.Fatalf("+sdown at %v, want the first tick after %v", sdown.Sub(t0), want.Sub(t0))
				}
			}
			if (adopts > 0) != tc.wantAdopts {
				t.Fatalf("%d adoptions (probes %d), want adoptions: %v", adopts, probes, tc.wantAdopts)
			}
			if tc.lm.rtt > 0 && !tc.lm.probesFail && probes > 4 {
				t.Fatalf("%d probes in %v: at most one per late PING", probes, 3*da)
			}
		})
	}
}
