package proxysim

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redisha/redisha/components/witness"
	"github.com/redisha/redisha/sim"
)

// With Options.Witness, sentinel s3 is the production witness core
// (components/witness): it pings and INFOs the nodes, announces itself with
// real hello strings, answers is-master-down-by-addr and votes for the model
// sentinels' leader elections, follows failovers through their hellos, and
// answers the proxy's SENTINEL MASTER / GET-MASTER-ADDR-BY-NAME from its own
// views. The adapter persists its State before every reply that changed it,
// as the driver must, and restarts it from that state.

const (
	witnessTick    = 100 * time.Millisecond
	witnessTimeout = time.Second
)

// Messages of the witness adapter.
type wReq struct {
	id   int
	kind witness.ActionKind
	text string // hello payload for ActHello
}
type wRep struct {
	id   int
	text string // PONG, INFO text
}
type helloRelay struct{ payload string } // a node's __sentinel__:hello message
type helloCmd struct{ payload string }   // PUBLISH __sentinel__:hello to a sentinel's command link

type wPending struct {
	target witness.Target
	kind   witness.ActionKind
	timer  *sim.Timer
}

type witnessProc struct {
	s        *sentinel
	core     *witness.Core
	cfg      witness.Config
	saved    *witness.State // as last persisted
	tick     *sim.Timer
	nextID   int
	pending  map[int]*wPending
	lastPong map[string]time.Time // address -> last PONG delivered to the core
}

func runID(name string) string {
	b := []byte(fmt.Sprintf("%040x", name))
	return string(b[len(b)-40:])
}

func (m *model) isWitness(s *sentinel) bool { return m.wit != nil && m.wit.s == s }

func (m *model) witnessSetup(s *sentinel) {
	h, p := hostPort(s.addr)
	port, _ := strconv.Atoi(p)
	mh, mp := hostPort(m.nodes[0].addr)
	mport, _ := strconv.Atoi(mp)
	wp := &witnessProc{s: s, cfg: witness.Config{MyID: runID(s.name), AnnounceIP: h, AnnouncePort: port,
		Masters: []witness.MasterConfig{{Name: masterName, Addr: witness.Addr{IP: mh, Port: mport}, Quorum: m.quorum,
			DownAfter: downAfter, FailoverTimeout: 180 * time.Second}}}}
	wp.tick = m.w.NewTimer(s.node, func() { m.witnessTick(wp) })
	m.wit = wp
}

// witnessStart is the daemon's start: a core from the persisted state.
func (m *model) witnessStart() {
	wp := m.wit
	c, err := witness.New(wp.cfg, wp.saved, m.w.Now())
	if err != nil {
		m.violate(InvWitness, "witness does not start from its persisted state: %v", err)
		return
	}
	if e := c.CurrentEpoch(); e < m.witVoted {
		m.violate(InvWitness, "the witness restarted at current epoch %d although it voted in epoch %d: it may vote twice", e, m.witVoted)
	}
	wp.core = c
	wp.pending = map[int]*wPending{}
	wp.lastPong = map[string]time.Time{}
	m.persist()
	wp.tick.Reset(m.w.Now().Add(witnessTick))
}

// persist writes the state when it changed (unless the WitnessNoPersist
// mutation forgets to).
func (m *model) persist() {
	c := m.wit.core
	if !c.Dirty() {
		return
	}
	if m.opt.Mutation != WitnessNoPersist {
		st := c.State()
		m.wit.saved = &st
	}
	c.MarkPersisted()
}

func (m *model) witnessTick(wp *witnessProc) {
	now := m.w.Now()
	wp.tick.Reset(now.Add(witnessTick))
	wp.core.Tick(now)
	m.witnessActions()
}

func (m *model) nodeNameByAddr(a witness.Addr) string {
	s := a.String()
	for _, n := range m.nodes {
		if n.addr == s {
			return n.name
		}
	}
	for _, x := range m.sentinels {
		if x.addr == s {
			return x.name
		}
	}
	return ""
}

// witnessActions carries out what the core asked for.
func (m *model) witnessActions() {
	wp := m.wit
	m.persist()
	for _, a := range wp.core.Drain() {
		if a.Kind == witness.ActEvent {
			m.publish(wp.s, a.Event.Type, a.Event.Msg)
			continue
		}
		to := m.nodeNameByAddr(a.Target.Addr)
		if to == "" {
			wp.core.LinkFailed(a.Target, a.Kind, m.w.Now()) // an address nobody has
			continue
		}
		wp.nextID++
		id := wp.nextID
		p := &wPending{target: a.Target, kind: a.Kind}
		p.timer = m.w.NewTimer(wp.s.node, func() {
			if wp.pending[id] == p {
				delete(wp.pending, id)
				wp.core.LinkFailed(p.target, p.kind, m.w.Now())
			}
		})
		p.timer.Reset(m.w.Now().Add(witnessTimeout))
		wp.pending[id] = p
		switch a.Kind {
		case witness.ActHello:
			if h := a.Hello; h.MasterConfigEpoch > 0 && !m.announced[fmt.Sprintf("%s:%d@%d", h.MasterIP, h.MasterPort, h.MasterConfigEpoch)] {
				m.violate(InvWitness, "the witness announces %s:%d at config epoch %d, a configuration no sentinel made",
					h.MasterIP, h.MasterPort, h.MasterConfigEpoch)
			}
			m.w.Net.Send(wp.s.name, to, nil, wReq{id: id, kind: a.Kind, text: a.Hello.String()})
		case witness.ActAsk:
			m.w.Net.Send(wp.s.name, to, nil, downAsk{master: a.Ask.IP + ":" + strconv.Itoa(a.Ask.Port), wid: id})
		default:
			m.w.Net.Send(wp.s.name, to, nil, wReq{id: id, kind: a.Kind})
		}
	}
}

// witnessReceive handles everything addressed to the witness.
func (m *model) witnessReceive(from string, data []byte, md any) {
	wp := m.wit
	if wp.core == nil {
		return
	}
	now := m.w.Now()
	c := wp.core
	switch msg := md.(type) {
	case wRep:
		p := wp.pending[msg.id]
		if p == nil {
			return
		}
		delete(wp.pending, msg.id)
		p.timer.Stop()
		switch p.kind {
		case witness.ActPing:
			if msg.text == "PONG" {
				wp.lastPong[p.target.Addr.String()] = now
			}
			c.PingReply(p.target, msg.text, now)
		case witness.ActInfo:
			c.InfoReply(p.target, msg.text, now)
		case witness.ActHello:
			c.PublishReply(p.target, false, now)
		}
	case downRep:
		p := wp.pending[msg.wid]
		if p == nil {
			return
		}
		delete(wp.pending, msg.wid)
		p.timer.Stop()
		down := int64(0)
		if msg.down {
			down = 1
		}
		leader := "*"
		if msg.leader != "" {
			leader = runID(msg.leader)
		}
		c.AskReply(p.target, true, down, leader, msg.epoch, now)
	case helloRelay:
		c.HelloFromPubSub(msg.payload, now)
	case helloCmd:
		c.PublishCommand(witness.HelloChannel, msg.payload, now)
	case downAsk:
		m.witnessAsked(from, msg)
	case queryReq:
		m.witnessQuery(from, msg)
	}
	m.witnessActions()
}

// witnessAsked answers SENTINEL is-master-down-by-addr from a model
// sentinel, persisting first, and checks the voter's promises.
func (m *model) witnessAsked(from string, msg downAsk) {
	wp := m.wit
	now := m.w.Now()
	host, port, _ := net.SplitHostPort(msg.master)
	p, _ := strconv.Atoi(port)
	id := "*"
	if msg.reqEpoch > 0 {
		id = runID(msg.leader)
	}
	rep := wp.core.IsMasterDownByAddr(host, p, uint64(msg.reqEpoch), id, now)
	m.persist()
	if rep.Down {
		// The sdown flag is re-evaluated on the next tick after a PONG, as
		// in sentinel: allow one tick.
		if last, ok := wp.lastPong[msg.master]; ok && now.Sub(last) > witnessTick && now.Sub(last) <= downAfter {
			m.violate(InvWitness, "the witness says %s is down %v after its last PONG (down-after %v)", msg.master, now.Sub(last), downAfter)
		}
	}
	out := downRep{down: rep.Down}
	if rep.Leader != "*" {
		name := ""
		for _, s := range m.sentinels {
			if runID(s.name) == rep.Leader {
				name = s.name
			}
		}
		ep := int64(rep.LeaderEpoch)
		if prev, ok := m.votes[ep]; ok && prev != name {
			m.violate(InvWitness, "the witness votes for %s in epoch %d after voting for %s", name, ep, prev)
		}
		m.votes[ep] = name
		m.witVoted = max(m.witVoted, uint64(ep))
		out.leader, out.epoch = name, int64(rep.LeaderEpoch)
	}
	m.w.Net.Send(m.wit.s.name, from, nil, out)
}

// witnessQuery answers the proxy from the witness's own views.
func (m *model) witnessQuery(to string, req queryReq) {
	c := m.wit.core
	now := m.w.Now()
	e := m.enc
	fields, _ := c.MasterFields(masterName, now)
	e.w.Array(2 * len(fields))
	for _, f := range fields {
		e.w.Bulk(f.Name)
		e.w.Bulk(f.Value)
	}
	a, _ := c.MasterAddr(masterName)
	e.w.Array(2)
	e.w.Bulk(a.IP)
	e.w.Bulk(strconv.Itoa(a.Port))
	m.w.Net.Send(m.wit.s.name, to, e.bytes(), replyMeta{id: req.id, at: now})
}

// witnessView returns the witness's configuration (for the ground truth).
func (m *model) witnessView() (string, int64) {
	c := m.wit.core
	if c == nil {
		return m.wit.s.master, m.wit.s.epoch
	}
	a, _ := c.MasterAddr(masterName)
	for _, ms := range c.State().Masters {
		if ms.Name == masterName {
			return a.String(), int64(ms.ConfigEpoch)
		}
	}
	return a.String(), 0
}
