package core

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// HelloFromPubSub handles a message received on the hello channel of a
// monitored Redis node (sentinelReceiveHelloMessages): our own hellos are
// skipped the same way sentinel does, by looking for our run id anywhere in it.
func (c *Core) HelloFromPubSub(now time.Time, payload string) ([]Action, error) {
	if strings.Contains(payload, c.cfg.MyID) {
		return c.end(), nil
	}
	return c.ProcessHello(now, payload)
}

// ErrPeerTableFull is returned for a hello from a new peer while the
// master's peer table is full of peers heard from recently.
var ErrPeerTableFull = errors.New("hello: peer table full")

// forgetPeer drops a peer sentinel with a "-sentinel" event (the witness's
// own: sentinel never forgets a peer short of SENTINEL RESET).
func (c *Core) forgetPeer(m *master, s *instance, now time.Time) {
	delete(m.sentinels, s.runID)
	c.event(LevelNotice, "-sentinel", c.describe(m, s))
	c.markDirtyAt(now)
}

// forgetSilentPeers drops the peers not heard from for ForgetPeersAfter; a
// live one is learned again from its next hello.
func (c *Core) forgetSilentPeers(now time.Time) {
	for _, name := range c.names {
		m := c.masters[name]
		for _, k := range sortedKeys(m.sentinels) {
			if s := m.sentinels[k]; now.Sub(s.lastHello) > c.timing.ForgetPeersAfter {
				c.forgetPeer(m, s, now)
			}
		}
	}
}

// Reset mirrors SENTINEL RESET <pattern> (sentinelResetMasterByPattern):
// every master whose name matches the glob pattern forgets its replicas and
// peer sentinels (rediscovered from INFO and hellos), its links start over
// and "+reset-master" is published. Unlike sentinel, the witness keeps its
// vote (leader and leader epoch): a vote is never forgotten. It returns the
// number of masters reset.
func (c *Core) Reset(now time.Time, pattern string) (int, []Action) {
	n := 0
	for _, name := range c.names {
		if !GlobMatch(pattern, name) {
			continue
		}
		m := c.masters[name]
		m.replicas = map[string]*instance{}
		m.sentinels = map[string]*instance{}
		m.self = newInstance(KindMaster, m.self.addr, now)
		m.odown = false
		c.event(LevelWarning, "+reset-master", c.describe(m, m.self))
		c.markDirtyAt(now)
		n++
	}
	c.releaseHeld(now)
	return n, c.end()
}

// ErrUnknownMaster is returned for a hello about a master we do not monitor;
// sentinel silently drops those too.
var ErrUnknownMaster = errors.New("hello: unknown master name")

// ProcessHello mirrors sentinelProcessHelloMessage: learn or update the
// announcing sentinel, adopt a greater current epoch, and follow a master
// configuration with a greater config epoch (this is how a failover done by
// others reaches us: sentinels never send each other +switch-master). It
// is also what a peer's PUBLISH __sentinel__:hello on our command port does
// (sentinelPublishCommand); the error is for logging and metrics only.
func (c *Core) ProcessHello(now time.Time, payload string) ([]Action, error) {
	err := c.processHello(now, payload)
	c.releaseHeld(now) // a new configuration moves the master away from a held request's address
	return c.end(), err
}

func (c *Core) processHello(now time.Time, payload string) error {
	h, err := ParseHello(payload)
	if err != nil {
		return err
	}
	m := c.masters[h.MasterName]
	if m == nil {
		return ErrUnknownMaster
	}
	if h.RunID == c.cfg.MyID {
		// A peer relaying our own announcement; never list ourselves.
		return nil
	}
	addr := Addr{IP: h.IP, Port: h.Port}
	si := m.sentinels[h.RunID]
	if si != nil && si.addr != addr {
		si = nil
	}
	if si == nil && m.sentinels[h.RunID] == nil && m.sentinelByAddr(addr) == nil && len(m.sentinels) >= c.cfg.MaxPeers {
		// A new peer and a full table: it may take the place of one that
		// has been silent for a while, never of one that is talking.
		var oldest *instance
		for _, k := range sortedKeys(m.sentinels) {
			if s := m.sentinels[k]; oldest == nil || s.lastHello.Before(oldest.lastHello) {
				oldest = s
			}
		}
		if now.Sub(oldest.lastHello) <= c.timing.ReplacePeerAfter {
			return ErrPeerTableFull
		}
		c.forgetPeer(m, oldest, now)
	}
	if si == nil {
		removed := c.removeSentinelByRunID(m, h.RunID, now)
		if removed > 0 {
			c.event(LevelNotice, "+sentinel-address-switch",
				fmt.Sprintf("%s ip %s port %d for %s", c.describe(m, m.self), h.IP, h.Port, h.RunID))
		} else if other := m.sentinelByAddr(addr); other != nil {
			// Another run id claims this address: the old one is gone (restarted
			// with a fresh id), drop it everywhere.
			c.event(LevelNotice, "+sentinel-invalid-addr", c.describe(m, other))
			for _, name := range c.names {
				c.removeSentinelByRunID(c.masters[name], other.runID, now)
			}
		}
		si = newInstance(KindSentinel, addr, now)
		si.runID = h.RunID
		m.sentinels[h.RunID] = si
		if removed == 0 {
			c.event(LevelNotice, "+sentinel", c.describe(m, si))
		}
		c.markDirtyAt(now)
	}
	if h.CurrentEpoch > c.currentEpoch {
		c.currentEpoch = h.CurrentEpoch
		c.markDirtyAt(now)
		c.event(LevelWarning, "+new-epoch", fmt.Sprint(c.currentEpoch))
	}
	if m.configEpoch < h.MasterConfigEpoch {
		m.configEpoch = h.MasterConfigEpoch
		c.markDirtyAt(now)
		newAddr := Addr{IP: h.MasterIP, Port: h.MasterPort}
		if newAddr != m.self.addr {
			old := m.self.addr
			c.event(LevelWarning, "+config-update-from", c.describe(m, si))
			c.event(LevelWarning, "+switch-master",
				fmt.Sprintf("%s %s %d %s %d", m.cfg.Name, old.IP, old.Port, newAddr.IP, newAddr.Port))
			c.resetMasterAndChangeAddress(m, newAddr, now)
		}
	}
	si.lastHello = now
	return nil
}

func (c *Core) removeSentinelByRunID(m *master, runID string, now time.Time) int {
	n := 0
	for k, s := range m.sentinels {
		if s.runID == runID {
			delete(m.sentinels, k)
			n++
		}
	}
	if n > 0 {
		c.markDirtyAt(now)
	}
	return n
}

// resetMasterAndChangeAddress mirrors sentinelResetMasterAndChangeAddress:
// the replicas become the old replicas minus the new master plus the old
// master; peer sentinels are kept; the vote (not its epoch) is forgotten.
func (c *Core) resetMasterAndChangeAddress(m *master, addr Addr, now time.Time) {
	var keep []Addr
	for _, k := range sortedKeys(m.replicas) {
		if a := m.replicas[k].addr; a != addr {
			keep = append(keep, a)
		}
	}
	if addr != m.self.addr {
		keep = append(keep, m.self.addr)
	}
	m.self = newInstance(KindMaster, addr, now)
	m.replicas = map[string]*instance{}
	m.leader = ""
	m.odown = false
	for _, s := range m.sentinels {
		s.masterDown = false
	}
	for _, a := range keep {
		r := newInstance(KindReplica, a, now)
		m.replicas[a.String()] = r
		c.event(LevelNotice, "+slave", c.describe(m, r))
	}
	c.markDirtyAt(now)
}

// IsMasterDownReply is the 3-element reply to SENTINEL is-master-down-by-addr.
type IsMasterDownReply struct {
	Down        bool
	Leader      string // "*" when no vote is given or known
	LeaderEpoch uint64
}

// IsMasterDownByAddr answers SENTINEL is-master-down-by-addr at once (a
// caller that cannot wait: IsMasterDownByAddrFrom with client 0).
func (c *Core) IsMasterDownByAddr(now time.Time, ip string, port int, reqEpoch uint64, runID string) []Action {
	return c.IsMasterDownByAddrFrom(now, 0, ip, port, reqEpoch, runID)
}

// IsMasterDownByAddrFrom answers SENTINEL is-master-down-by-addr received
// on client's connection. The master is looked up by address, not name. A
// runID other than "*" asks for our vote, decided by VoteLeader, and is
// always answered at once. The reply is the ActDownReply action, after the
// ActPersist of any vote or epoch the request caused: the driver sends it
// only once that state is on disk.
//
// A "*" request (the down-state probe) about a master the witness does not
// see SDOWN yet, but whose SDOWN deadline is near, may instead be held
// (ActHold with a ticket, see maybeHold): its ActDownReply comes later,
// carrying the ticket, and says down=1 only once the witness's own SDOWN
// fired.
func (c *Core) IsMasterDownByAddrFrom(now time.Time, client ClientID, ip string, port int, reqEpoch uint64, runID string) []Action {
	rep := IsMasterDownReply{Leader: "*"}
	m := c.masterByAddr(Addr{IP: ip, Port: port})
	if m != nil {
		if !c.tilt {
			// Answer from the state at the moment of the request: replies and
			// link failures are applied as they arrive, so SDOWN is judged
			// now, not at the last tick.
			c.checkSDown(m, m.self, now)
		}
		c.releaseHeld(now)
		if runID == "*" && c.maybeHold(m, client, now) {
			return c.end()
		}
		rep.Down = !c.tilt && m.self.sdown
		if runID != "*" {
			leader, epoch := c.voteLeader(m.cfg.Name, reqEpoch, runID)
			if leader != "" {
				rep.Leader = leader
			}
			rep.LeaderEpoch = epoch
		}
	}
	c.out = append(c.out, Action{Kind: ActDownReply, Down: rep})
	return c.end()
}

// VoteLeader mirrors sentinelVoteLeader exactly: adopt a greater requested
// epoch, then vote for reqRunID only if we have not voted in this or a later
// epoch for this master. It returns the standing vote ("" if none), its
// epoch, and the actions (persist first) the driver must carry out before
// anyone hears of the vote.
func (c *Core) VoteLeader(now time.Time, masterName string, reqEpoch uint64, reqRunID string) (string, uint64, []Action) {
	leader, epoch := c.voteLeader(masterName, reqEpoch, reqRunID)
	return leader, epoch, c.end()
}

func (c *Core) voteLeader(masterName string, reqEpoch uint64, reqRunID string) (string, uint64) {
	m := c.masters[masterName]
	if m == nil {
		return "", 0
	}
	if reqEpoch > c.currentEpoch {
		c.currentEpoch = reqEpoch
		c.markVote()
		c.event(LevelWarning, "+new-epoch", fmt.Sprint(c.currentEpoch))
	}
	if m.leaderEpoch < reqEpoch && c.currentEpoch <= reqEpoch {
		m.leader = reqRunID
		m.leaderEpoch = c.currentEpoch
		c.markVote()
		c.event(LevelWarning, "+vote-for-leader", fmt.Sprintf("%s %d", m.leader, m.leaderEpoch))
	}
	return m.leader, m.leaderEpoch
}
