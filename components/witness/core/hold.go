package core

import "time"

// ClientID names the connection a request came on, so that the core can
// bound how often one connection's replies are held. 0 is a caller that
// cannot wait: its requests are never held.
type ClientID uint64

// maxHoldBound caps holdBound for long down-after periods.
const maxHoldBound = 500 * time.Millisecond

// heldReply is an is-master-down-by-addr "*" request whose reply waits for
// the witness's own SDOWN deadline.
type heldReply struct {
	ticket uint64
	client ClientID
	addr   Addr      // the master asked about, looked up again at release
	until  time.Time // the bound: released by then whatever happens
}

// holdBound is how long a reply may be held: min(down-after/4, 500 ms).
//
// The asking sentinel writes its PINGs to the witness on the same
// connection as the request, so they are answered only after the held
// reply. sentinelCheckSubjectivelyDown closes a command link whose PING has
// been pending for more than down-after/2 with no reply of any kind for as
// long; a hold of at most down-after/4 leaves the other quarter for the
// network and the scheduler, so the peer never drops its link to the
// witness. 500 ms keeps a held reply within half of SENTINEL_ASK_PERIOD of
// the request for the long down-after periods of production.
func holdBound(m *master) time.Duration {
	return min(m.cfg.DownAfter/4, maxHoldBound)
}

// sdownDeadline is the instant from which checkSDown calls the master down
// on its PING clock (sentinelCheckSubjectivelyDown: elapsed > down-after,
// from the first unanswered PING, or from the last proof of life while
// disconnected with no PING out); false when no clock runs, because the
// last PING was answered.
func (c *Core) sdownDeadline(m *master) (time.Time, bool) {
	l := &m.self.link
	switch {
	case !l.actPing.IsZero():
		return l.actPing.Add(m.cfg.DownAfter), true
	case !l.connected:
		return l.lastAvail.Add(m.cfg.DownAfter), true
	}
	return time.Time{}, false
}

// masterByAddr finds the monitored master at a (is-master-down-by-addr
// looks masters up by address, not name).
func (c *Core) masterByAddr(a Addr) *master {
	for _, name := range c.names {
		if m := c.masters[name]; m.self.addr == a {
			return m
		}
	}
	return nil
}

// maybeHold decides whether the reply to a "*" request about m from client
// is held: when the witness does not see m SDOWN yet but its own SDOWN
// deadline is within holdBound, and client had no reply held in the last
// ask period.
//
// Why: a sentinel that goes SDOWN asks every peer at once
// (sentinelAskMasterStateToOtherSentinels) and asks a peer again only
// SENTINEL_ASK_PERIOD (1 s) after that peer's last reply. Two observers of
// one crash go SDOWN some milliseconds apart; when the witness is the later
// one, an immediate down=0 costs the failover a whole second. Holding the
// reply until the witness's own SDOWN fires (or the master proves alive)
// closes that race without ever saying down earlier than the witness's
// own full down-after of silence: the reply is always the truth at the
// moment it leaves.
//
// The per-client rule stops a chain: the sentinel asks again on every tick
// while a reply is outstanding (it is gated on the last reply, not the
// last ask), and those requests queue behind the held one on the same
// connection; after a release they are answered at once.
func (c *Core) maybeHold(m *master, client ClientID, now time.Time) bool {
	if client == 0 || c.tilt || m.self.sdown {
		return false
	}
	dl, ok := c.sdownDeadline(m)
	bound := holdBound(m)
	if !ok || dl.Sub(now) > bound {
		return false
	}
	if last, seen := c.lastHold[client]; seen && now.Sub(last) < c.timing.AskPeriod {
		return false
	}
	if c.lastHold == nil {
		c.lastHold = map[ClientID]time.Time{}
	}
	c.lastHold[client] = now
	c.nextTicket++
	h := heldReply{ticket: c.nextTicket, client: client, addr: m.self.addr, until: now.Add(bound)}
	c.held = append(c.held, h)
	c.out = append(c.out, Action{Kind: ActHold, Ticket: h.ticket, Until: h.until})
	return true
}

// releaseHeld releases every held reply whose answer is now known: the
// master is SDOWN (down=1), its SDOWN clock stopped or restarted beyond the
// hold (down=0: it answered), or the bound passed (the state then). TILT
// or a master that moved away from the address asked about release at
// once with down=0, as an immediate reply would say. Every event that can
// change the answer calls it.
func (c *Core) releaseHeld(now time.Time) {
	if len(c.held) == 0 {
		return
	}
	keep := c.held[:0]
	for _, h := range c.held {
		m := c.masterByAddr(h.addr)
		var why Release
		if m == nil || c.tilt {
			why = ReleaseBound
		} else {
			c.checkSDown(m, m.self, now)
			dl, ok := c.sdownDeadline(m)
			switch {
			case m.self.sdown:
				why = ReleaseDown
			case !ok || dl.After(h.until):
				why = ReleaseAlive
			case !now.Before(h.until):
				why = ReleaseBound
			}
		}
		if why == 0 {
			keep = append(keep, h)
			continue
		}
		rep := IsMasterDownReply{Leader: "*", Down: m != nil && !c.tilt && m.self.sdown}
		c.out = append(c.out, Action{Kind: ActDownReply, Down: rep, Ticket: h.ticket, Release: why})
	}
	c.held = keep
	if len(c.held) == 0 {
		c.held = nil
	}
}

// holdNext is the earliest moment a held reply may need releasing: its
// master's SDOWN deadline (just after it: SDOWN needs more than down-after)
// or its bound; the zero time when nothing is held.
func (c *Core) holdNext() time.Time {
	var next time.Time
	for _, h := range c.held {
		d := h.until
		if m := c.masterByAddr(h.addr); m != nil {
			if dl, ok := c.sdownDeadline(m); ok && dl.Add(time.Millisecond).Before(d) {
				d = dl.Add(time.Millisecond)
			}
		}
		if next.IsZero() || d.Before(next) {
			next = d
		}
	}
	return next
}

// forgetOldHolds drops the per-client hold times older than an ask period:
// they no longer stop a hold.
func (c *Core) forgetOldHolds(now time.Time) {
	for id, at := range c.lastHold {
		if now.Sub(at) >= c.timing.AskPeriod {
			delete(c.lastHold, id)
		}
	}
}

// Held is the number of replies held now.
func (c *Core) Held() int { return len(c.held) }
