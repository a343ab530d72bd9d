package core

import (
	"testing"
	"time"
)

var tmHold = Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}

// crashedAt builds a core whose master answered until crash, when its
// connection broke: the reconnect PING goes out then, so the witness's
// SDOWN deadline is crash + down-after (1 s); the hold bound is 250 ms.
func crashedAt(t *testing.T, crash int) *Core {
	t.Helper()
	c := newTestCore(t, nil)
	for ms := 0; ms < crash; ms += 100 {
		for _, a := range c.Tick(at(ms)) {
			if a.Kind == ActPing {
				c.PingReply(at(ms+1), tmHold, "PONG")
			}
		}
	}
	if len(actionsOf(c.LinkBroken(at(crash), tmHold), ActPing)) != 1 {
		t.Fatal("no reconnect PING at the crash")
	}
	return c
}

// ask sends is-master-down-by-addr from client; a vote request (a run id)
// is for epoch 1.
func ask(c *Core, ms int, client ClientID, runID string) []Action {
	epoch := uint64(0)
	if runID != "*" {
		epoch = 1
	}
	return c.IsMasterDownByAddrFrom(at(ms), client, "10.0.0.1", 6379, epoch, runID)
}

func heldTicket(acts []Action) uint64 {
	if h := actionsOf(acts, ActHold); len(h) == 1 {
		return h[0].Ticket
	}
	return 0
}

func released(acts []Action, ticket uint64) (Action, bool) {
	for _, a := range acts {
		if a.Kind == ActDownReply && a.Ticket == ticket && ticket != 0 {
			return a, true
		}
	}
	return Action{}, false
}

// TestHeldReplyReleases: a "*" request that arrives while the witness's own
// SDOWN deadline is within the bound is held, and released by each path
// with the truth at that moment: down=1 once SDOWN fired (never before
// down-after), down=0 when the master proves alive, the state at the
// moment on TILT or when the master moved away.
func TestHeldReplyReleases(t *testing.T) {
	const crash = 1050 // SDOWN deadline 2050 (down=1 from 2051 on the test's ms)
	cases := []struct {
		name     string
		event    func(c *Core) []Action
		want     Release // 0: still held
		wantDown bool
	}{
		{"own SDOWN, ticking at Next", func(c *Core) []Action {
			var out []Action
			for i := 0; i < 5 && c.Held() > 0; i++ {
				out = append(out, c.Tick(c.Next())...)
			}
			return out
		}, ReleaseDown, true},
		{"tick before the deadline keeps it", func(c *Core) []Action { return c.Tick(at(2049)) }, 0, false},
		{"tick at the deadline keeps it (SDOWN needs more than down-after)", func(c *Core) []Action { return c.Tick(at(2050)) }, 0, false},
		{"PONG", func(c *Core) []Action { return c.PingReply(at(1950), tmHold, "PONG") }, ReleaseAlive, false},
		{"LOADING", func(c *Core) []Action { return c.PingReply(at(1950), tmHold, "LOADING Redis is loading") }, ReleaseAlive, false},
		{"MASTERDOWN", func(c *Core) []Action { return c.PingReply(at(1950), tmHold, "MASTERDOWN link down") }, ReleaseAlive, false},
		{"probe PONG", func(c *Core) []Action { return c.ProbeReply(at(1950), tmHold, "PONG") }, ReleaseAlive, false},
		{"error reply is no proof of life", func(c *Core) []Action { return c.PingReply(at(1950), tmHold, "ERR busy") }, 0, false},
		{"refused reconnect keeps the clock", func(c *Core) []Action { return c.LinkFailed(at(1950), tmHold, ActPing) }, 0, false},
		{"refused then SDOWN", func(c *Core) []Action {
			c.LinkFailed(at(1950), tmHold, ActPing)
			return c.LinkBroken(at(2060), tmHold)
		}, ReleaseDown, true},
		{"TILT", func(c *Core) []Action { return c.Tick(at(1900).Add(3 * time.Second)) }, ReleaseBound, false},
		{"master moved", func(c *Core) []Action {
			acts, err := c.ProcessHello(at(1950), "10.0.0.9,26379,"+idA+",1,mymaster,10.0.0.2,6379,1")
			if err != nil {
				t.Fatal(err)
			}
			return acts
		}, ReleaseBound, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := crashedAt(t, crash)
			c.Tick(at(1900))
			acts := ask(c, 1900, 7, "*")
			tk := heldTicket(acts)
			if tk == 0 {
				t.Fatalf("not held 150 ms before the SDOWN deadline: %+v", acts)
			}
			if _, ok := DownReplyOf(acts); ok {
				t.Fatal("a held request was also answered at once")
			}
			if c.Held() != 1 {
				t.Fatalf("held %d", c.Held())
			}
			out := tc.event(c)
			rel, ok := released(out, tk)
			if tc.want == 0 {
				if ok || c.Held() != 1 {
					t.Fatalf("released by %v: %+v", rel.Release, out)
				}
				return
			}
			if !ok {
				t.Fatalf("not released: %+v", out)
			}
			if rel.Release != tc.want || rel.Down.Down != tc.wantDown || rel.Down.Leader != "*" {
				t.Fatalf("release %v down %v leader %q, want %v down %v", rel.Release, rel.Down.Down, rel.Down.Leader, tc.want, tc.wantDown)
			}
			if tc.wantDown {
				// The +sdown event comes before the reply that reports it.
				sd, rp := -1, -1
				for i, a := range out {
					if a.Kind == ActEvent && a.Event.Type == "+sdown" {
						sd = i
					}
					if a.Kind == ActDownReply && a.Ticket == tk {
						rp = i
					}
				}
				if sd < 0 || sd > rp {
					t.Fatalf("+sdown missing or after the reply: %v", eventTypes(out))
				}
			}
			if c.Held() != 0 {
				t.Fatalf("still %d held after the release", c.Held())
			}
		})
	}
}

// TestHoldNeverDownBeforeDownAfter: whatever the request times and the
// wake-ups, a reply (held or not) says down=1 only after more than
// down-after since the first unanswered PING.
func TestHoldNeverDownBeforeDownAfter(t *testing.T) {
	const crash = 1050
	for req := 1700; req <= 2100; req += 10 {
		c := crashedAt(t, crash)
		for ms := crash; ms < req; ms += 100 {
			c.Tick(at(ms))
		}
		acts := ask(c, req, ClientID(req), "*")
		now := at(req)
		check := func(acts []Action, when time.Time) {
			for _, a := range acts {
				if a.Kind == ActDownReply && a.Down.Down && when.Sub(at(crash)) <= time.Second {
					t.Fatalf("request at %d: down=1 at %v, %v after the first unanswered PING", req, when.Sub(t0), when.Sub(at(crash)))
				}
			}
		}
		check(acts, now)
		for i := 0; i < 20 && c.Held() > 0; i++ {
			now = c.Next()
			check(c.Tick(now), now)
		}
		if c.Held() != 0 {
			t.Fatalf("request at %d still held at %v", req, now.Sub(t0))
		}
	}
}

// TestHoldOnlyNearTheDeadline: only a "*" request from a client that can
// wait, about a master whose SDOWN deadline is within the bound, is held.
func TestHoldOnlyNearTheDeadline(t *testing.T) {
	const crash = 1050
	cases := []struct {
		name   string
		ms     int
		client ClientID
		runID  string
		held   bool
		down   bool
	}{
		{"within the bound", 1850, 7, "*", true, false},
		{"at the bound", 1800, 7, "*", true, false},
		{"beyond the bound", 1790, 7, "*", false, false},
		{"already down", 2060, 7, "*", false, true},
		{"client 0 cannot wait", 1900, 0, "*", false, false},
		{"a vote request is never held", 1900, 7, idA, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := crashedAt(t, crash)
			acts := ask(c, tc.ms, tc.client, tc.runID)
			if got := heldTicket(acts) != 0; got != tc.held {
				t.Fatalf("held %v, want %v: %+v", got, tc.held, acts)
			}
			if tc.held {
				return
			}
			r, ok := DownReplyOf(acts)
			if !ok || r.Down != tc.down {
				t.Fatalf("immediate reply %+v (ok %v), want down %v", r, ok, tc.down)
			}
			if tc.runID != "*" && r.Leader != tc.runID {
				t.Fatalf("the vote request got no vote: %+v", r)
			}
		})
	}
	// A master that answered its last PING has no SDOWN clock: never held.
	c := newTestCore(t, nil)
	c.Tick(at(0))
	c.PingReply(at(1), tmHold, "PONG")
	if heldTicket(ask(c, 900, 7, "*")) != 0 {
		t.Fatal("held with no PING pending")
	}
}

// TestHoldChainBound: one connection gets at most one hold per ask period
// (a sentinel asks again on every tick while its reply is outstanding, and
// those requests queue behind the held one), so the requests after a
// release are answered at once; another connection may still be held.
func TestHoldChainBound(t *testing.T) {
	c := crashedAt(t, 1050)
	if heldTicket(ask(c, 1850, 7, "*")) == 0 {
		t.Fatal("first request not held")
	}
	if acts := ask(c, 1900, 7, "*"); heldTicket(acts) != 0 {
		t.Fatal("held twice for one connection within an ask period")
	} else if r, ok := DownReplyOf(acts); !ok || r.Down {
		t.Fatalf("immediate reply %+v, want down=0 (not SDOWN yet)", r)
	}
	if heldTicket(ask(c, 1900, 8, "*")) == 0 {
		t.Fatal("another connection's request not held")
	}
	// Both are released by the one SDOWN.
	n := 0
	for _, a := range c.Tick(at(2051)) {
		if a.Kind == ActDownReply && a.Ticket != 0 && a.Down.Down && a.Release == ReleaseDown {
			n++
		}
	}
	if n != 2 || c.Held() != 0 {
		t.Fatalf("%d released down, %d still held", n, c.Held())
	}
	// The master comes back, then falls silent: an ask period after its
	// last hold, connection 7 may be held again.
	c.PingReply(at(2100), tmHold, "PONG")
	for ms := 2100; ms <= 3200; ms += 100 {
		c.Tick(at(ms))
	}
	if heldTicket(ask(c, 4000, 7, "*")) == 0 {
		t.Fatal("not held an ask period after the connection's last hold")
	}
}

// TestHoldBringsNextForward: a held reply makes Next the moment the
// witness's SDOWN can fire, not the next tick period.
func TestHoldBringsNextForward(t *testing.T) {
	c := crashedAt(t, 1050)
	c.Tick(at(1990))
	if got := c.Next(); !got.Equal(at(2090)) {
		t.Fatalf("Next %v before any hold", got.Sub(t0))
	}
	ask(c, 1995, 7, "*")
	if got := c.Next(); !got.Equal(at(2051)) {
		t.Fatalf("Next %v with a reply held, want just after the SDOWN deadline 2050", got.Sub(t0))
	}
	if _, ok := released(c.Tick(c.Next()), 1); !ok {
		t.Fatal("not released at Next")
	}
	if got := c.Next(); !got.Equal(at(2151)) {
		t.Fatalf("Next %v after the release, want a tick period later", got.Sub(t0))
	}
}
