package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redisha/redisha/components/resp"
)

// Tick runs the periodic work of sentinelTimer: TILT detection, then for every
// master, replica and peer sentinel the monitoring half (PING, INFO, hello)
// and the acting half (SDOWN, ODOWN, asking peers). Drivers call it at Next.
func (c *Core) Tick(now time.Time) []Action {
	c.checkTilt(now)
	c.forgetSilentPeers(now)
	for _, name := range c.names {
		m := c.masters[name]
		c.handleInstance(m, m.self, now)
		for _, k := range sortedKeys(m.replicas) {
			c.handleInstance(m, m.replicas[k], now)
		}
		for _, k := range sortedKeys(m.sentinels) {
			c.handleInstance(m, m.sentinels[k], now)
		}
	}
	c.releaseHeld(now)
	c.forgetOldHolds(now)
	c.persistDue(now)
	return c.end()
}

// checkTilt mirrors sentinelCheckTiltCondition: a tick that comes too late
// or goes back in time means we were frozen or the clock jumped, so every
// timeout we measured is suspect. The gap is now.Sub(prevTick): on the
// monotonic clock when the driver's times carry one, so a wall-clock step
// does not count, a freeze does.
func (c *Core) checkTilt(now time.Time) {
	if !c.prevTick.IsZero() {
		delta := now.Sub(c.prevTick)
		if delta < 0 || delta > c.timing.TiltTrigger {
			c.tilt = true
			c.tiltSince = now
			c.event(LevelWarning, "+tilt", "#tilt mode entered")
		}
	}
	c.prevTick = now
}

func (c *Core) handleInstance(m *master, ri *instance, now time.Time) {
	c.sendPeriodic(m, ri, now)
	if c.tilt {
		if now.Sub(c.tiltSince) < c.timing.TiltPeriod {
			return
		}
		c.tilt = false
		c.event(LevelWarning, "-tilt", "#tilt mode exited")
	}
	c.checkSDown(m, ri, now)
	if ri.kind == KindMaster {
		c.checkODown(m, now)
		c.askOthers(m, now)
	}
}

// sendPeriodic mirrors sentinelReconnectInstance + sentinelSendPeriodicCommands.
// Links are opened lazily by the driver, so a disconnected link gets only a
// PING (sentinel's reconnect attempt), at most once per ping period.
func (c *Core) sendPeriodic(m *master, ri *instance, now time.Time) {
	t := Target{Master: m.cfg.Name, Kind: ri.kind, Addr: ri.addr}
	l := &ri.link
	if !l.connected {
		c.reconnect(t, l, now)
		return
	}
	if ri.kind != KindSentinel && !l.infoInFlight {
		period := c.timing.InfoPeriod
		if ri.kind == KindReplica && (m.odown || ri.masterLinkDownTime != 0) {
			period = time.Second
		}
		if ri.infoRefresh.IsZero() || now.Sub(ri.infoRefresh) > period {
			l.infoInFlight = true
			c.out = append(c.out, Action{Kind: ActInfo, Target: t})
		}
	}
	pingPeriod := m.cfg.DownAfter
	if pingPeriod > c.timing.PingPeriod {
		pingPeriod = c.timing.PingPeriod
	}
	if !l.pingInFlight && now.Sub(l.lastPong) > pingPeriod && now.Sub(l.lastPing) > pingPeriod/2 {
		c.sendPing(t, l, now)
	}
	c.probeIfLate(m, t, l, now)
	if !l.pubInFlight && now.Sub(ri.lastPub) > c.timing.PublishPeriod {
		l.pubInFlight = true
		c.out = append(c.out, Action{Kind: ActHello, Target: t, Hello: c.hello(m)})
	}
}

// reconnect mirrors sentinelReconnectInstance: a disconnected link is
// re-established with a PING, at most once per ping period. The PING's
// act-ping time (kept from the first unanswered PING) times SDOWN.
func (c *Core) reconnect(t Target, l *link, now time.Time) {
	if !l.connected && !l.pingInFlight && now.Sub(l.lastReconn) >= c.timing.PingPeriod {
		l.lastReconn = now
		c.sendPing(t, l, now)
	}
}

func (c *Core) sendPing(t Target, l *link, now time.Time) {
	l.pingInFlight = true
	l.lastPing = now
	if l.actPing.IsZero() {
		l.actPing = now
	}
	c.out = append(c.out, Action{Kind: ActPing, Target: t})
}

// probeIfLate replaces sentinel's low-activity reconnection. Sentinel
// (sentinelCheckSubjectivelyDown) closes a command link whose PING has been
// pending for more than down-after/2 with no reply of any kind for as long,
// and reconnects; the pending PING is lost with the link, and the new link
// pays a connect and a handshake before its first PING can be answered, so
// a link that is merely slow (a round trip below down-after) never gets a
// reply in time and the master is called down. The witness keeps the slow
// connection and its pending PING, and probes with a PING on a fresh
// connection instead (once per late PING): a reply on either proves the
// instance alive. act-ping (the first unanswered PING) is untouched by the
// probe, so a dead instance is declared down exactly when it was before.
func (c *Core) probeIfLate(m *master, t Target, l *link, now time.Time) {
	half := m.cfg.DownAfter / 2
	if !l.pingInFlight || l.probeInFlight || l.actPing.IsZero() ||
		now.Sub(l.actPing) <= half || now.Sub(l.lastPong) <= half || !l.probeAt.Before(l.actPing) {
		return
	}
	l.probeInFlight = true
	l.probeAt = now
	c.out = append(c.out, Action{Kind: ActProbe, Target: t})
}

// ProbeReply handles the reply to an ActProbe's PING. Like any PING reply it
// proves the link works, and PONG, LOADING or MASTERDOWN that the instance
// is available. If the current connection's PING is still pending, that
// connection is the stuck one: the probe's connection is adopted
// (ActAdopt) and the commands pending on the old one are forgotten, so
// their slots are free again.
func (c *Core) ProbeReply(now time.Time, t Target, reply string) []Action {
	_, ri := c.lookup(t)
	if ri == nil {
		return c.end()
	}
	l := &ri.link
	l.probeInFlight = false
	c.linkUp(ri)
	if available(reply) {
		l.lastAvail = now
		l.actPing = time.Time{}
	}
	l.lastPong = now
	if l.pingInFlight {
		l.pingInFlight, l.infoInFlight, l.pubInFlight, l.askInFlight = false, false, false, false
		c.out = append(c.out, Action{Kind: ActAdopt, Target: t})
	}
	c.releaseHeld(now)
	return c.end()
}

// available reports whether a PING reply proves the instance available
// (sentinelPingReplyCallback): PONG, LOADING or MASTERDOWN.
func available(reply string) bool {
	return strings.HasPrefix(reply, "PONG") || strings.HasPrefix(reply, "LOADING") || strings.HasPrefix(reply, "MASTERDOWN")
}

// hello is what sentinelSendHello announces for m.
func (c *Core) hello(m *master) Hello {
	port := c.cfg.AnnouncePort
	return Hello{IP: c.cfg.AnnounceIP, Port: port, RunID: c.cfg.MyID, CurrentEpoch: c.currentEpoch,
		MasterName: m.cfg.Name, MasterIP: m.self.addr.IP, MasterPort: m.self.addr.Port,
		MasterConfigEpoch: m.configEpoch}
}

// checkSDown mirrors sentinelCheckSubjectivelyDown.
func (c *Core) checkSDown(m *master, ri *instance, now time.Time) {
	var elapsed time.Duration
	if !ri.link.actPing.IsZero() {
		elapsed = now.Sub(ri.link.actPing)
	} else if !ri.link.connected {
		elapsed = now.Sub(ri.link.lastAvail)
	}
	down := elapsed > m.cfg.DownAfter ||
		(ri.kind == KindMaster && ri.roleReported == KindReplica &&
			now.Sub(ri.roleReportedTime) > m.cfg.DownAfter+2*c.timing.InfoPeriod)
	if down && !ri.sdown {
		ri.sdown = true
		ri.sdownSince = now
		c.event(LevelWarning, "+sdown", c.describe(m, ri))
	} else if !down && ri.sdown {
		ri.sdown = false
		c.event(LevelWarning, "-sdown", c.describe(m, ri))
	}
}

// checkODown mirrors sentinelCheckObjectivelyDown. The witness never acts on
// ODOWN; it tracks it so that its flags and events tell the truth.
func (c *Core) checkODown(m *master, now time.Time) {
	quorum := 0
	if m.self.sdown {
		quorum = 1
		for _, s := range m.sentinels {
			if s.masterDown {
				quorum++
			}
		}
	}
	odown := m.self.sdown && quorum >= m.cfg.Quorum
	if odown && !m.odown {
		m.odown = true
		m.odownSince = now
		c.event(LevelWarning, "+odown", fmt.Sprintf("%s #quorum %d/%d", c.describe(m, m.self), quorum, m.cfg.Quorum))
	} else if !odown && m.odown {
		m.odown = false
		c.event(LevelWarning, "-odown", c.describe(m, m.self))
	}
}

// askOthers mirrors sentinelAskMasterStateToOtherSentinels, always with "*":
// a witness never asks for a vote.
func (c *Core) askOthers(m *master, now time.Time) {
	for _, k := range sortedKeys(m.sentinels) {
		s := m.sentinels[k]
		if now.Sub(s.lastMasterDownReply) > 5*c.timing.AskPeriod {
			s.masterDown = false
			s.leader = ""
		}
		if !m.self.sdown || !s.link.connected || s.link.askInFlight {
			continue
		}
		if now.Sub(s.lastMasterDownReply) < c.timing.AskPeriod {
			continue
		}
		s.link.askInFlight = true
		c.out = append(c.out, Action{Kind: ActAsk, Target: Target{Master: m.cfg.Name, Kind: KindSentinel, Addr: s.addr},
			Ask: AskRequest{IP: m.self.addr.IP, Port: m.self.addr.Port, Epoch: c.currentEpoch, RunID: "*"}})
	}
}

// describe renders sentinelEvent's "%@".
func (c *Core) describe(m *master, ri *instance) string {
	if ri.kind == KindMaster {
		return fmt.Sprintf("master %s %s %d", m.cfg.Name, ri.addr.IP, ri.addr.Port)
	}
	return fmt.Sprintf("%s %s %s %d @ %s %s %d", ri.kind, ri.name(), ri.addr.IP, ri.addr.Port,
		m.cfg.Name, m.self.addr.IP, m.self.addr.Port)
}

func (c *Core) event(level Level, typ, msg string) {
	c.out = append(c.out, Action{Kind: ActEvent, Event: Event{Level: level, Type: typ, Msg: msg}})
}

// LinkFailed reports that a command to t could not be delivered or answered
// (connection refused, reset, timeout). It marks the link disconnected and
// frees the in-flight slot of cmd.
func (c *Core) LinkFailed(now time.Time, t Target, cmd ActionKind) []Action {
	_, ri := c.lookup(t)
	if ri == nil {
		return c.end()
	}
	if cmd == ActProbe {
		// Only the probe's fresh connection failed; the current one and its
		// pending PING are kept (a connection that broke reports itself).
		ri.link.probeInFlight = false
		return c.end()
	}
	ri.link.connected = false
	c.clearInFlight(ri, cmd)
	c.reconnect(t, &ri.link, now)
	c.releaseHeld(now)
	return c.end()
}

// LinkBroken reports that one of t's connections (the command link or the
// hello subscription) was closed, reset or refused outside any command: a
// crashed Redis process closes its sockets, and sentinel hears of it at
// once through hiredis. The link is marked disconnected and, like
// sentinel's reconnect path, a PING goes out now (unless one went out less
// than a ping period ago); SDOWN is timed from the first unanswered PING.
func (c *Core) LinkBroken(now time.Time, t Target) []Action {
	_, ri := c.lookup(t)
	if ri == nil {
		return c.end()
	}
	ri.link.connected = false
	c.reconnect(t, &ri.link, now)
	c.releaseHeld(now)
	return c.end()
}

func (c *Core) clearInFlight(ri *instance, cmd ActionKind) {
	switch cmd {
	case ActPing:
		ri.link.pingInFlight = false
	case ActInfo:
		ri.link.infoInFlight = false
	case ActHello:
		ri.link.pubInFlight = false
	case ActAsk:
		ri.link.askInFlight = false
	}
}

func (c *Core) linkUp(ri *instance) {
	ri.link.connected = true
}

// PingReply mirrors sentinelPingReplyCallback. reply is the text of a simple
// string or error reply; only PONG, LOADING and MASTERDOWN prove the
// instance available.
func (c *Core) PingReply(now time.Time, t Target, reply string) []Action {
	_, ri := c.lookup(t)
	if ri == nil {
		return c.end()
	}
	c.linkUp(ri)
	ri.link.pingInFlight = false
	if available(reply) {
		ri.link.lastAvail = now
		ri.link.actPing = time.Time{}
	}
	ri.link.lastPong = now
	c.releaseHeld(now)
	return c.end()
}

// PublishReply mirrors sentinelPublishReplyCallback: only a non-error reply
// counts as published; otherwise the hello is retried on the next tick.
func (c *Core) PublishReply(now time.Time, t Target, isErr bool) []Action {
	_, ri := c.lookup(t)
	if ri == nil {
		return c.end()
	}
	c.linkUp(ri)
	ri.link.pubInFlight = false
	if !isErr {
		ri.lastPub = now
	}
	return c.end()
}

// AskReply mirrors sentinelReceiveIsMasterDownReply. valid is false when the
// reply did not have the [integer, bulk, integer] shape; it is then ignored.
func (c *Core) AskReply(now time.Time, t Target, valid bool, down int64, leader string, leaderEpoch int64) []Action {
	_, ri := c.lookup(t)
	if ri == nil {
		return c.end()
	}
	c.linkUp(ri)
	ri.link.askInFlight = false
	if !valid {
		return c.end()
	}
	ri.lastMasterDownReply = now
	ri.masterDown = down == 1
	if leader != "*" {
		ri.leader = leader
		ri.leaderEpoch = uint64(leaderEpoch)
	}
	return c.end()
}

// InfoReply mirrors the parsing half of sentinelRefreshInstanceInfo. The
// acting half (reconfiguring replicas) is a failover leader's job, never the
// witness's.
func (c *Core) InfoReply(now time.Time, t Target, text string) []Action {
	m, ri := c.lookup(t)
	if ri == nil {
		return c.end()
	}
	c.linkUp(ri)
	ri.link.infoInFlight = false
	info := resp.ParseInfo(text)
	if id := info.Get("run_id"); len(id) == 40 {
		if ri.runID != "" && ri.runID != id {
			c.event(LevelNotice, "+reboot", c.describe(m, ri))
		}
		ri.runID = id
	}
	ri.masterLinkDownTime = 0
	role := Kind(0)
	repl := info.Section("replication")
	switch repl["role"] {
	case "master":
		role = KindMaster
	case "slave":
		role = KindReplica
	}
	if ri.kind == KindMaster {
		for i := 0; ; i++ {
			line, ok := repl["slave"+strconv.Itoa(i)]
			if !ok {
				break
			}
			f := resp.ParseFields(line)
			port, err := strconv.Atoi(f["port"])
			if err != nil || port < 1 || port > 65535 || f["ip"] == "" {
				continue
			}
			a := Addr{IP: f["ip"], Port: port}
			if m.replicas[a.String()] == nil && a != m.self.addr {
				r := newInstance(KindReplica, a, now)
				m.replicas[a.String()] = r
				c.event(LevelNotice, "+slave", c.describe(m, r))
				c.markDirtyAt(now)
			}
		}
	}
	if v, ok := repl["master_link_down_since_seconds"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			ri.masterLinkDownTime = n * 1000
		}
	}
	if role == KindReplica {
		if h := repl["master_host"]; h != "" && h != ri.slaveMasterHost {
			ri.slaveMasterHost = h
		}
		if p, err := strconv.Atoi(repl["master_port"]); err == nil {
			ri.slaveMasterPort = p
		}
		ri.slaveLinkUp = repl["master_link_status"] == "up"
		if p, err := strconv.Atoi(repl["slave_priority"]); err == nil {
			ri.slavePriority = p
		} else if p, err := strconv.Atoi(repl["replica_priority"]); err == nil {
			ri.slavePriority = p
		}
		if o, err := strconv.ParseUint(repl["slave_repl_offset"], 10, 64); err == nil {
			ri.slaveReplOffset = o
		}
		if a, err := strconv.Atoi(repl["replica_announced"]); err == nil {
			ri.replicaAnnounced = a
		}
	}
	ri.infoRefresh = now
	if role != ri.roleReported {
		ri.roleReportedTime = now
		ri.roleReported = role
		typ := "-role-change"
		if role == ri.kind {
			typ = "+role-change"
		}
		c.event(LevelVerbose, typ, fmt.Sprintf("%s new reported role is %s", c.describe(m, ri), roleName(role)))
	}
	c.releaseHeld(now)
	return c.end()
}

func roleName(k Kind) string {
	if k == KindMaster {
		return "master"
	}
	return "slave"
}

// name is sentinel's instance name: ip:port for replicas, the run id for
// sentinels (masters use their configured name).
func (ri *instance) name() string {
	if ri.kind == KindSentinel {
		return ri.runID
	}
	return ri.addr.String()
}
