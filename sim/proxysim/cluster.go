package proxysim

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	witness "github.com/redisha/redisha/components/witness/core"
	"github.com/redisha/redisha/sim"
)

// This file is the world around the proxy: Redis nodes that answer
// PING/INFO and obey REPLICAOF, and a small model of redis-sentinel (down
// detection, quorum, leader vote per epoch, promotion, config propagation by
// hellos, re-conversion of a master that comes back). It is a model, not
// sentinel itself: it exists to feed the real proxy core with the kinds of
// view sequences real sentinels produce, including stale and split ones.

const (
	masterName    = "mymaster"
	downAfter     = 5 * time.Second // the recipe's down-after-milliseconds
	sentinelTick  = time.Second
	helloPeriod   = 2 * time.Second
	convertWait   = 8 * time.Second // SENTINEL_PUBLISH_PERIOD*4 before +convert-to-slave
	promoteTimout = 6 * time.Second // model failover timeout for the promotion step
	reconfDelay   = time.Second     // leader: promoted seen -> failover end
)

// redisNode is a Redis server: a role and, as replica, the master it follows.
type redisNode struct {
	name     string // node name in the world
	addr     string // "ip:port"
	node     *sim.Node
	master   bool
	follows  string // replica: master address
	offset   int64
	sinceMst time.Time // when it last became master
}

func (m *model) info(n *redisNode) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Server\r\nrun_id:%s\r\n\r\n# Replication\r\n", runID(fmt.Sprint(n.name, n.node.Incarnation())))
	if n.master {
		var slaves []string
		for _, o := range m.nodes {
			if !o.master && o.follows == n.addr && o.node.State() == sim.Up {
				h, p := hostPort(o.addr)
				slaves = append(slaves, fmt.Sprintf("slave%d:ip=%s,port=%s,state=online,offset=%d,lag=0", len(slaves), h, p, o.offset))
			}
		}
		fmt.Fprintf(&b, "role:master\r\nconnected_slaves:%d\r\n", len(slaves))
		for _, l := range slaves {
			b.WriteString(l + "\r\n")
		}
		fmt.Fprintf(&b, "master_repl_offset:%d\r\n", n.offset)
		return b.String()
	}
	host, port, _ := net.SplitHostPort(n.follows)
	fmt.Fprintf(&b, "role:slave\r\nmaster_host:%s\r\nmaster_port:%s\r\nmaster_link_status:up\r\nslave_repl_offset:%d\r\n", host, port, n.offset)
	return b.String()
}

// sentinel is one redis-sentinel's state about mymaster.
type sentinel struct {
	name   string
	addr   string
	node   *sim.Node
	timer  *sim.Timer
	epoch  int64  // config-epoch of the master it names
	master string // the master address in its configuration

	currentEpoch int64
	votedEpoch   int64
	votedFor     string

	lastOK      map[string]time.Time // last ping reply per redis address
	claimsSince map[string]time.Time // since when each address reports master
	lastRole    map[string]bool      // last reported role:master per address
	downYes     map[string]time.Time // peers that said the master is down, when
	votes       map[string]bool      // votes for us in currentEpoch
	nextTry     time.Time
	lastHello   time.Time
	fo          *failover
}

// failover is the leader's failover in progress.
type failover struct {
	epoch    int64
	old, new string
	started  time.Time
	promoted time.Time // zero until the promoted replica reports master
	ended    bool
}

// viewAddr is what GET-MASTER-ADDR-BY-NAME answers: from the reconf step on,
// the leader already names the promoted replica.
func (s *sentinel) viewAddr() string {
	if s.fo != nil && !s.fo.promoted.IsZero() {
		return s.fo.new
	}
	return s.master
}

// viewEpoch is SENTINEL MASTER's config-epoch.
func (s *sentinel) viewEpoch() int64 {
	if s.fo != nil && !s.fo.promoted.IsZero() {
		return s.fo.epoch
	}
	return s.epoch
}

func hostPort(addr string) (string, string) {
	h, p, _ := net.SplitHostPort(addr)
	return h, p
}

// cluster messages between sentinels and nodes (model-only, not RESP).
// pingReq is sentinel's periodic PING/INFO; asked is when it was sent,
// echoed in the reply.
type pingReq struct{ asked time.Time }
type pingRep struct {
	addr   string
	master bool
	asked  time.Time
}
type replicaOf struct{ master string } // "" = NO ONE
type downAsk struct {
	master   string
	reqEpoch int64 // > 0: also a vote request for this epoch
	leader   string
	wid      int // the witness's request id, echoed
}
type downRep struct {
	down   bool
	epoch  int64
	leader string
	wid    int
}
type hello struct {
	epoch  int64
	master string
}

func (m *model) redisByAddr(addr string) *redisNode {
	for _, n := range m.nodes {
		if n.addr == addr {
			return n
		}
	}
	return nil
}

// nodeReceive handles cluster messages at a Redis node; proxy health checks
// arrive here too (see driver.go).
func (m *model) nodeReceive(n *redisNode, from string, data []byte, md any) {
	switch msg := md.(type) {
	case pingReq:
		m.w.Net.Send(n.name, from, nil, pingRep{addr: n.addr, master: n.master, asked: msg.asked})
	case replicaOf:
		if msg.master == "" {
			if !n.master {
				n.master, n.follows, n.sinceMst = true, "", m.w.Now()
				m.w.Logf("%s: REPLICAOF NO ONE from %s: now master", n.name, from)
				m.groundChanged()
			}
			return
		}
		if n.master || n.follows != msg.master {
			n.master, n.follows = false, msg.master
			m.w.Logf("%s: REPLICAOF %s from %s", n.name, msg.master, from)
			m.groundChanged()
		}
	case healthReq:
		m.answerHealth(n, from, msg)
	case helloPub:
		m.publishHello(n, msg.payload, msg.md)
	case wReq:
		switch msg.kind {
		case witness.ActPing:
			m.w.Net.Send(n.name, from, nil, wRep{id: msg.id, text: "PONG"})
		case witness.ActInfo:
			m.w.Net.Send(n.name, from, nil, wRep{id: msg.id, text: m.info(n)})
		case witness.ActHello:
			// PUBLISH __sentinel__:hello on the node: every sentinel
			// subscribed to it gets the message.
			for _, s := range m.sentinels {
				m.w.Net.Send(n.name, s.name, nil, helloRelay{payload: msg.text})
			}
			if m.opt.Hello {
				if h, ok := core.ParseHello(msg.text); ok {
					m.said(m.wit.s, h.MasterAddr)
				}
				m.publishHello(n, msg.text, helloMeta{said: m.w.Now()})
			}
			m.w.Net.Send(n.name, from, nil, wRep{id: msg.id, text: "1"})
		}
	}
}

func (m *model) sentinelStart(s *sentinel) {
	if m.isWitness(s) {
		m.witnessStart()
		return
	}
	s.lastOK = map[string]time.Time{}
	s.claimsSince = map[string]time.Time{}
	s.lastRole = map[string]bool{}
	s.downYes = map[string]time.Time{}
	s.votes = map[string]bool{}
	s.fo = nil
	now := m.w.Now()
	for _, n := range m.nodes {
		s.lastOK[n.addr] = now // a fresh start gives every node down-after-ms
	}
	s.timer.Reset(now.Add(time.Duration(m.w.Rand.IntN(1000)) * time.Millisecond))
}

// sentinelTick is sentinel's periodic work: ping nodes, hellos, down
// agreement, leader vote and the failover steps.
func (m *model) sentinelTick(s *sentinel) {
	now := m.w.Now()
	s.timer.Reset(now.Add(sentinelTick))
	for _, n := range m.nodes {
		m.w.Net.Send(s.name, n.name, nil, pingReq{asked: now})
	}
	if now.Sub(s.lastHello) >= helloPeriod {
		s.lastHello = now
		m.sentinelSaysHello(s)
		for _, o := range m.sentinels {
			switch {
			case o == s:
			case m.isWitness(o):
				mh, mp := hostPort(s.master)
				port, _ := strconv.Atoi(mp)
				sh, sp := hostPort(s.addr)
				sport, _ := strconv.Atoi(sp)
				h := witness.Hello{IP: sh, Port: sport, RunID: runID(s.name), CurrentEpoch: uint64(s.currentEpoch),
					MasterName: masterName, MasterIP: mh, MasterPort: port, MasterConfigEpoch: uint64(s.epoch)}
				m.w.Net.Send(s.name, o.name, nil, helloCmd{payload: h.String()})
			default:
				m.w.Net.Send(s.name, o.name, nil, hello{epoch: s.epoch, master: s.master})
			}
		}
	}
	if s.fo != nil {
		m.failoverStep(s)
		return
	}
	m.convertStrays(s)
	sdown := now.Sub(s.lastOK[s.master]) > downAfter
	if !sdown {
		clear(s.downYes)
		return
	}
	agree := 1
	for peer, at := range s.downYes {
		if now.Sub(at) <= 2*sentinelTick {
			agree++
		} else {
			delete(s.downYes, peer)
		}
	}
	odown := agree >= m.quorum
	if odown && len(s.votes) >= max(m.quorum, len(m.sentinels)/2+1) && s.votedEpoch == s.currentEpoch && s.votedFor == s.name {
		m.startFailover(s)
		return
	}
	var req int64
	if odown && !now.Before(s.nextTry) {
		// Try to become leader of a new epoch.
		s.currentEpoch++
		s.votedEpoch, s.votedFor = s.currentEpoch, s.name
		s.votes = map[string]bool{s.name: true}
		s.nextTry = now.Add(time.Duration(3000+m.w.Rand.IntN(3000)) * time.Millisecond)
		req = s.currentEpoch
		m.w.Logf("%s: +odown %s, +try-failover epoch %d", s.name, s.master, req)
		m.publish(s, "+new-epoch", strconv.FormatInt(req, 10))
		m.publish(s, "+try-failover", masterLine(s.master))
		// sentinelFailoverWaitStart -> sentinelGetLeader: with no winner yet
		// the candidate votes for itself (sentinelVoteLeader's "%s %llu").
		m.publish(s, "+vote-for-leader", runID(s.name)+" "+strconv.FormatInt(req, 10))
	}
	for _, o := range m.sentinels {
		if o != s {
			m.w.Net.Send(s.name, o.name, nil, downAsk{master: s.master, reqEpoch: req, leader: s.name})
		}
	}
}

func masterLine(addr string) string {
	h, p := hostPort(addr)
	return fmt.Sprintf("master %s %s %s", masterName, h, p)
}

func instanceLine(kind, addr, master string) string {
	h, p := hostPort(addr)
	mh, mp := hostPort(master)
	return fmt.Sprintf("%s %s:%s %s %s @ %s %s %s", kind, h, p, h, p, masterName, mh, mp)
}

// sentinelReceive handles the cluster messages at a sentinel; proxy queries
// arrive here too (see driver.go).
func (m *model) sentinelReceive(s *sentinel, from string, data []byte, md any) {
	now := m.w.Now()
	switch msg := md.(type) {
	case pingRep:
		// role_reported_time, and sentinelRedisInstanceNoDownFor: a node
		// back from an outage starts its wait again.
		if msg.master && (!s.lastRole[msg.addr] || now.Sub(s.lastOK[msg.addr]) > 2*sentinelTick) {
			s.claimsSince[msg.addr] = now
		}
		s.lastOK[msg.addr] = now
		s.lastRole[msg.addr] = msg.master
		// The leader sees the promotion in the reply to an INFO it sent
		// after REPLICAOF NO ONE, i.e. at its next period (sentinel sends
		// INFO to the promoted replica every second during the failover),
		// not in the answer to one sent in the same tick that the
		// network happened to deliver after it.
		if s.fo != nil && msg.addr == s.fo.new && msg.master && s.fo.promoted.IsZero() && msg.asked.After(s.fo.started) {
			s.fo.promoted = now
			m.w.Logf("%s: promoted %s seen, config-epoch %d", s.name, msg.addr, s.fo.epoch)
			m.publish(s, "+promoted-slave", instanceLine("slave", s.fo.new, s.fo.old))
			m.publish(s, "+failover-state-reconf-slaves", masterLine(s.fo.old))
			m.groundChanged()
		}
	case downAsk:
		down := now.Sub(s.lastOK[msg.master]) > downAfter
		rep := downRep{down: down, wid: msg.wid}
		if msg.reqEpoch > 0 {
			if msg.reqEpoch > s.currentEpoch {
				s.currentEpoch = msg.reqEpoch
				m.publish(s, "+new-epoch", strconv.FormatInt(msg.reqEpoch, 10))
			}
			if msg.reqEpoch > s.votedEpoch {
				s.votedEpoch, s.votedFor = msg.reqEpoch, msg.leader
				m.w.Logf("%s: votes for %s in epoch %d", s.name, msg.leader, msg.reqEpoch)
				m.publish(s, "+vote-for-leader", runID(msg.leader)+" "+strconv.FormatInt(msg.reqEpoch, 10))
			}
			if s.votedEpoch == msg.reqEpoch {
				rep.epoch, rep.leader = s.votedEpoch, s.votedFor
			}
		}
		m.w.Net.Send(s.name, from, nil, rep)
	case downRep:
		if msg.down {
			s.downYes[from] = now
		}
		if msg.epoch == s.currentEpoch && msg.leader == s.name {
			s.votes[from] = true
		}
	case wReq: // from the witness
		switch msg.kind {
		case witness.ActPing:
			m.w.Net.Send(s.name, from, nil, wRep{id: msg.id, text: "PONG"})
		case witness.ActHello:
			m.sentinelHello(s, from, msg.text)
			m.w.Net.Send(s.name, from, nil, wRep{id: msg.id, text: "1"})
		}
	case helloRelay:
		m.sentinelHello(s, from, msg.payload)
	case hello:
		m.adopt(s, from, msg)
	case queryReq:
		m.answerQuery(s, from, msg)
	}
}

// sentinelHello handles a hello string (from the witness).
func (m *model) sentinelHello(s *sentinel, from, payload string) {
	h, err := witness.ParseHello(payload)
	if err != nil {
		m.violate(InvWitness, "%s cannot parse a hello from %s: %v", s.name, from, err)
		return
	}
	if h.RunID == runID(s.name) {
		return
	}
	if int64(h.CurrentEpoch) > s.currentEpoch {
		s.currentEpoch = int64(h.CurrentEpoch)
	}
	m.adopt(s, from, hello{epoch: int64(h.MasterConfigEpoch), master: net.JoinHostPort(h.MasterIP, strconv.Itoa(h.MasterPort))})
}

// adopt follows a configuration with a greater config epoch.
func (m *model) adopt(s *sentinel, from string, msg hello) {
	now := m.w.Now()
	{
		if msg.epoch > s.epoch {
			old := s.master
			s.epoch, s.master = msg.epoch, msg.master
			if msg.epoch > s.currentEpoch {
				s.currentEpoch = msg.epoch
			}
			s.fo = nil
			s.lastOK[msg.master] = now
			m.w.Logf("%s: config update from %s: %s at epoch %d", s.name, from, msg.master, msg.epoch)
			m.publish(s, "+config-update-from", "sentinel "+from+" "+from+" 26379 @ "+masterName+" "+strings.Join(split(old), " "))
			m.publishSwitch(s, old, msg.master)
			m.groundChanged()
		}
	}
}

func split(addr string) []string {
	h, p := hostPort(addr)
	return []string{h, p}
}

func (m *model) publishSwitch(s *sentinel, old, new string) {
	oh, op := hostPort(old)
	nh, np := hostPort(new)
	m.publish(s, "+switch-master", fmt.Sprintf("%s %s %s %s %s", masterName, oh, op, nh, np))
}

// startFailover: s won the vote of its epoch; pick a replica it can reach
// and promote it.
func (m *model) startFailover(s *sentinel) {
	now := m.w.Now()
	var pick *redisNode
	for _, n := range m.nodes {
		if n.addr != s.master && !s.lastRole[n.addr] && now.Sub(s.lastOK[n.addr]) <= 2*sentinelTick {
			pick = n
			break
		}
	}
	votes := len(s.votes)
	s.votes = map[string]bool{}
	m.publish(s, "+elected-leader", masterLine(s.master))
	m.publish(s, "+failover-state-select-slave", masterLine(s.master))
	if pick == nil {
		m.publish(s, "-failover-abort-no-good-slave", masterLine(s.master))
		m.w.Logf("%s: no good replica, failover aborted", s.name)
		return
	}
	s.fo = &failover{epoch: s.currentEpoch, old: s.master, new: pick.addr, started: now}
	m.w.Logf("%s: failover epoch %d: %s -> %s", s.name, s.fo.epoch, s.fo.old, s.fo.new)
	m.publish(s, "+selected-slave", instanceLine("slave", pick.addr, s.master))
	m.publish(s, "+failover-state-send-slaveof-noone", instanceLine("slave", pick.addr, s.master))
	m.w.Net.Send(s.name, pick.name, nil, replicaOf{})
	m.publish(s, "+failover-state-wait-promotion", instanceLine("slave", pick.addr, s.master))
	m.promotions = append(m.promotions, promotionRec{epoch: s.fo.epoch, leader: s.name, old: s.fo.old, new: pick.addr, at: now, votes: votes})
	m.groundChanged()
}

// failoverStep moves the leader's failover on: wait for the promotion
// (or give up), then end it, adopt the new configuration and repoint the
// other replicas.
func (m *model) failoverStep(s *sentinel) {
	now := m.w.Now()
	fo := s.fo
	if fo.promoted.IsZero() {
		m.w.Net.Send(s.name, m.redisByAddr(fo.new).name, nil, replicaOf{})
		if now.Sub(fo.started) > promoteTimout {
			m.publish(s, "-failover-abort-slave-timeout", masterLine(fo.old))
			m.w.Logf("%s: failover epoch %d aborted: %s never reported master", s.name, fo.epoch, fo.new)
			s.fo = nil
			m.groundChanged()
		}
		return
	}
	if now.Sub(fo.promoted) < reconfDelay {
		return
	}
	s.epoch, s.master = fo.epoch, fo.new
	m.announced[fmt.Sprintf("%s@%d", s.master, s.epoch)] = true
	s.fo = nil
	s.lastOK[fo.new] = now
	m.publish(s, "+failover-end", masterLine(fo.old))
	m.publishSwitch(s, fo.old, fo.new)
	m.w.Logf("%s: failover epoch %d ended: %s is master", s.name, s.epoch, s.master)
	for _, n := range m.nodes {
		if n.addr != s.master && n.addr != fo.old {
			m.w.Net.Send(s.name, n.name, nil, replicaOf{master: s.master})
		}
	}
	s.lastHello = time.Time{} // announce at once
	m.groundChanged()
}

// convertStrays is sentinel's +convert-to-slave: a node that reports master
// although the configuration names another one is told to replicate, once
// it has done so for convertWait and the configured master looks sane.
func (m *model) convertStrays(s *sentinel) {
	now := m.w.Now()
	if !s.lastRole[s.master] || now.Sub(s.lastOK[s.master]) > 2*sentinelTick {
		return
	}
	for _, n := range m.nodes {
		if n.addr == s.master || !s.lastRole[n.addr] || now.Sub(s.lastOK[n.addr]) > 2*sentinelTick {
			continue
		}
		if now.Sub(s.claimsSince[n.addr]) >= convertWait {
			m.w.Logf("%s: +convert-to-slave %s", s.name, n.addr)
			m.publish(s, "+convert-to-slave", instanceLine("slave", n.addr, s.master))
			m.w.Net.Send(s.name, n.name, nil, replicaOf{master: s.master})
		}
	}
}
