package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The promotion fast path (Config.PromotionFastPath, docs/proxy.md).
//
// Sentinel's failover leader sends REPLICAOF NO ONE to the replica it
// promotes, announces +failover-state-wait-promotion, and learns of the
// promotion only from its next INFO to that replica, which it sends once a
// second (sentinelSendPeriodicCommands): +promoted-slave and +switch-master,
// hence the majority view the proxy routes on, come up to a second after the
// replica already answers role:master. The fast path routes to the replica X
// in that second, provisionally, when all of these hold:
//
//	(a) a configured sentinel L announced on its own event channel
//	    +failover-state-send-slaveof-noone or +failover-state-wait-promotion
//	    naming X as the replica promoted for our master M (M is the master
//	    the proxy routes to, or routed to before it fenced it);
//	(b) a majority (⌊N/2⌋+1 of the configured sentinels, L's own vote
//	    included) announced +vote-for-leader <L's run id> <E>, where E is the
//	    epoch of L's own latest vote for itself, newer than the configuration
//	    the proxy fenced M at; L's run id is the one it gave directly
//	    (SENTINEL MYID);
//	(c) X answers role:master to a probe the proxy started after (a) (X is
//	    probed at once after (a), then every FastInterval, for at most
//	    PromotionConfirm);
//	(d) M is fenced (the fence every failover notice sets), and no fresh
//	    majority view names anything but M at M's fenced epoch or older.
//
// The route is provisional, with epoch E: a majority view naming X at a
// config epoch >= E confirms it; a majority view naming anything else at
// E or later, a majority naming M at a newer epoch than the fence's, an
// abort notice, the fence ending, X reporting another role, or
// PromotionConfirm passing without confirmation withdraws it (X's client
// connections are closed as on any switch). A withdrawn epoch is not tried
// again.

// Vote and promotion channels.
const (
	chanVote         = "+vote-for-leader"
	chanSendNoOne    = "+failover-state-send-slaveof-noone"
	chanWaitPromoted = "+failover-state-wait-promotion"
)

// DefaultPromotionConfirm bounds a provisional route: sentinel's leader
// sees the promotion at its next INFO to the replica (at most a second
// after REPLICAOF NO ONE), publishes +switch-master at once, and every
// sentinel's view follows within a hello; three seconds leave room for a
// loaded machine without keeping an unconfirmed route for long.
const DefaultPromotionConfirm = 3 * time.Second

// voteTTL: votes older than this do not count for (b). Sentinel's election
// timeout is at most 10 s (SENTINEL_ELECTION_TIMEOUT); a leader that
// announces a promotion later than that after the votes is no case the fast
// path needs to be fast for.
const voteTTL = 10 * time.Second

// ParseVote parses a +vote-for-leader payload: "<runid> <epoch>"
// (sentinelVoteLeader's "%s %llu"; it names no master).
func ParseVote(payload string) (runID string, epoch int64, ok bool) {
	f := strings.Fields(payload)
	if len(f) != 2 || !ValidRunID(f[0]) {
		return "", 0, false
	}
	e, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || e <= 0 {
		return "", 0, false
	}
	return f[0], e, true
}

// ParsePromotion parses a +failover-state-send-slaveof-noone or
// +failover-state-wait-promotion payload, sentinel's "%@" for the promoted
// replica: "slave <ip:port> <ip> <port> @ <master> <mip> <mport>". It
// returns the replica's address, the master name and the master's address.
func ParsePromotion(channel, payload string) (replica, name, master string, ok bool) {
	if channel != chanSendNoOne && channel != chanWaitPromoted {
		return "", "", "", false
	}
	f := strings.Fields(payload)
	if len(f) != 8 || f[0] != "slave" || f[4] != "@" {
		return "", "", "", false
	}
	r, ok1 := joinAddr(f[2], f[3])
	m, ok2 := joinAddr(f[6], f[7])
	if !ok1 || !ok2 || r == m {
		return "", "", "", false
	}
	return r, f[5], m, true
}

// vote is a configured sentinel's latest +vote-for-leader.
type vote struct {
	runID string
	epoch int64
	at    time.Time
}

// promotion is a leader's announcement (a), waiting for (b) and (c).
type promotion struct {
	leader  string    // configured sentinel that announced it
	replica string    // X
	old     string    // M
	at      time.Time // when heard: probes of X started from then on count
}

// provisional is a route to X that no majority view names yet.
type provisional struct {
	addr     string
	old      string
	epoch    int64 // E
	oldEpoch int64 // the fenced configuration's epoch
	since    time.Time
	until    time.Time
}

// FastPathEvent reports what the fast path did, for logs and metrics.
type FastPathEvent struct {
	// What is "route" (a provisional route was set), "confirmed" or
	// "withdrawn".
	What   string
	Addr   string
	Epoch  int64
	Leader string // the sentinel whose announcement started it
	Reason string
}

func (FastPathEvent) isAction() {}

// FastPathStats count the fast path's outcomes.
type FastPathStats struct {
	Routed, Confirmed, Withdrawn uint64
}

// promotionConfirm is the bound on a provisional route and on probing the
// announced replica.
func (c *Core) promotionConfirm() time.Duration {
	if c.cfg.PromotionConfirm > 0 {
		return c.cfg.PromotionConfirm
	}
	return DefaultPromotionConfirm
}

// noteVote records a +vote-for-leader heard on configured sentinel s.
func (c *Core) noteVote(s, payload string) {
	id, epoch, ok := ParseVote(payload)
	if !ok || !c.isConfiguredSentinel(s) {
		return
	}
	if prev, ok := c.votes[s]; ok && prev.epoch > epoch {
		return // a sentinel's vote epochs only rise
	}
	c.votes[s] = vote{runID: id, epoch: epoch, at: c.now}
}

// notePromotion records (a) when it names our master as the routed or
// fenced one; the announced replica is probed at once.
func (c *Core) notePromotion(n Notice) {
	if !c.cfg.PromotionFastPath || !c.isConfiguredSentinel(n.Sentinel) {
		return
	}
	x, name, m, ok := ParsePromotion(n.Channel, n.Payload)
	if !ok || name != c.cfg.MasterName || c.fence == nil || c.fence.addr != m {
		return
	}
	if p := c.promo; p != nil && p.leader == n.Sentinel && p.replica == x && p.old == m {
		return // the second announcement of the same step keeps the first's time
	}
	c.promo = &promotion{leader: n.Sentinel, replica: x, old: m, at: c.now}
	c.discover(x)
}

// promoEpoch is (b) for the pending promotion: the epoch of the leader's
// own latest vote for itself, when a majority of configured sentinels
// voted for it in that epoch.
func (c *Core) promoEpoch(p *promotion) (int64, bool) {
	id := c.runIDs[p.leader]
	self, ok := c.votes[p.leader]
	if id == "" || !ok || !strings.EqualFold(self.runID, id) {
		return 0, false
	}
	n := 0
	for _, s := range c.cfg.Sentinels {
		v, ok := c.votes[s]
		if ok && v.epoch == self.epoch && strings.EqualFold(v.runID, id) && c.now.Sub(v.at) <= voteTTL {
			n++
		}
	}
	return self.epoch, n >= c.cfg.Quorum()
}

// promotedSince is (c): X's latest health, from a probe started at or after
// since, says role:master.
func (c *Core) promotedSince(x string, since time.Time) bool {
	h, ok := c.health[x]
	return ok && !h.At.Before(since) && c.claims(x)
}

// oldConfigOnly: no fresh majority view, or one naming old at its fenced
// epoch or older.
func oldConfigOnly(addr string, epoch int64, ok bool, old string, oldEpoch int64) bool {
	return !ok || (addr == old && epoch <= oldEpoch)
}

// fastPath runs before the majority rule. handled means the route is
// decided here (a provisional route is kept); otherwise the majority rule
// runs, after closes.
func (c *Core) fastPath(addr string, epoch int64, ok bool) (closes []Close, handled bool) {
	if p := c.promo; p != nil && !c.now.Before(p.at.Add(c.promotionConfirm())) {
		c.promo = nil
	}
	if pr := c.prov; pr != nil {
		why := ""
		switch {
		case !c.cfg.PromotionFastPath:
			why = "routing.promotion_fast_path was turned off"
		case ok && addr == pr.addr && epoch >= pr.epoch:
			c.prov = nil
			c.fastStats.Confirmed++
			c.fastEvents = append(c.fastEvents, FastPathEvent{What: "confirmed", Addr: pr.addr, Epoch: pr.epoch,
				Reason: fmt.Sprintf("sentinel majority names %s at epoch %d", addr, epoch)})
			return nil, false
		case ok && !(addr == pr.addr || (addr == pr.old && epoch <= pr.oldEpoch)):
			why = fmt.Sprintf("sentinel majority names %s at epoch %d", addr, epoch)
		case c.fence == nil || c.fence.addr != pr.old:
			why = fmt.Sprintf("the failover of %s ended or was aborted before a majority named %s", pr.old, pr.addr)
		case c.denies(pr.addr):
			why = fmt.Sprintf("%s no longer reports role:master", pr.addr)
		case !c.now.Before(pr.until):
			why = fmt.Sprintf("no sentinel majority named %s at epoch %d within %v", pr.addr, pr.epoch, c.promotionConfirm())
		}
		if why != "" {
			return c.withdraw(why), false
		}
		if c.claims(pr.addr) {
			c.current = pr.addr
			c.route = Route{Master: pr.addr}
		} else {
			// Unknown for a moment (a probe failed): hold new clients, keep
			// the route's connections, as the majority rule does.
			c.route = Route{Hold: true, Reason: fmt.Sprintf("provisional master %s (epoch %d) does not answer", pr.addr, pr.epoch)}
		}
		return nil, true
	}
	p := c.promo
	if !c.cfg.PromotionFastPath || p == nil || c.current != "" || c.fence == nil || c.fence.addr != p.old {
		return nil, false
	}
	e, voted := c.promoEpoch(p)
	if !voted || e <= c.fence.epoch || e <= c.fastDone || !oldConfigOnly(addr, epoch, ok, p.old, c.fence.epoch) ||
		!c.promotedSince(p.replica, p.at) {
		return nil, false
	}
	c.promo = nil
	c.prov = &provisional{addr: p.replica, old: p.old, epoch: e, oldEpoch: c.fence.epoch, since: c.now,
		until: c.now.Add(c.promotionConfirm())}
	c.current = p.replica
	c.route = Route{Master: p.replica}
	c.fastStats.Routed++
	c.fastEvents = append(c.fastEvents, FastPathEvent{What: "route", Addr: p.replica, Epoch: e, Leader: p.leader,
		Reason: fmt.Sprintf("%s announced the promotion of %s (failover of %s), voted leader of epoch %d by a majority; %s reports role:master",
			p.leader, p.replica, p.old, e, p.replica)})
	return nil, true
}

// withdraw ends the provisional route: no master, the route's connections
// closed (unless KeepOnSwitch), and its epoch not tried again.
func (c *Core) withdraw(why string) []Close {
	pr := c.prov
	c.prov = nil
	c.fastDone = max(c.fastDone, pr.epoch)
	c.fastStats.Withdrawn++
	c.fastEvents = append(c.fastEvents, FastPathEvent{What: "withdrawn", Addr: pr.addr, Epoch: pr.epoch, Reason: why})
	if c.current != pr.addr {
		return nil
	}
	c.route = Route{Hold: true, Reason: "provisional route withdrawn: " + why}
	return c.depose("provisional route withdrawn: " + why)
}

// fastKick keeps the announced replica probed every FastInterval while (c)
// is awaited.
func (c *Core) fastKick() {
	p := c.promo
	if p == nil || c.prov != nil || c.current != "" {
		return
	}
	if c.promotedSince(p.replica, p.at) {
		return
	}
	if t := c.target(ProbeBackend, p.replica); t != nil {
		c.kick(t)
	}
}

// fastNext is when the fast path next needs a tick: the end of the wait
// for (c), or the provisional route's bound.
func (c *Core) fastNext() []time.Time {
	var out []time.Time
	if p := c.promo; p != nil {
		out = append(out, p.at.Add(c.promotionConfirm()))
	}
	if pr := c.prov; pr != nil {
		out = append(out, pr.until)
	}
	return out
}
