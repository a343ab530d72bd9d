package proxysim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
	"github.com/redisha/redisha/components/witness/driver"
	"github.com/redisha/redisha/sim"
)

// With Options.Witness, sentinel s3 is the production witness driver and core
// (components/witness/driver, components/witness/core): it pings and INFOs
// the nodes, announces itself with real hello strings, answers
// is-master-down-by-addr and votes for the model sentinels' leader elections,
// follows failovers through their hellos, and answers the proxy's SENTINEL
// MASTER / GET-MASTER-ADDR-BY-NAME with the driver's own command code. This
// file is only the transport: it implements the driver's Links (simulated
// messages with a reply timeout), Store (the state kept across the
// witness's restarts), Events (published to the proxy) and HeldReplies
// (a held is-master-down-by-addr reply goes to its sentinel when the
// driver releases it, and that sentinel's later requests wait behind it),
// and calls the driver when a message or a timer arrives, then sleeps until
// driver.Next.

// witnessTimeout is the daemon's link timeout (driver.CommandTimeout): it
// only frees a dead link's resources, SDOWN is timed by the core.
var witnessTimeout = driver.CommandTimeout(downAfter)

// Messages of the witness adapter.
type wReq struct {
	id   int
	kind core.ActionKind
	text string // hello payload for ActHello
}
type wRep struct {
	id   int
	text string // PONG, INFO text
}
type helloRelay struct{ payload string } // a node's __sentinel__:hello message
type helloCmd struct{ payload string }   // PUBLISH __sentinel__:hello to a sentinel's command link

type wPending struct {
	target core.Target
	kind   core.ActionKind
	timer  *sim.Timer
}

type witnessProc struct {
	s        *sentinel
	drv      *driver.Driver
	cfg      core.Config
	saved    *core.State // as last persisted
	tick     *sim.Timer
	armed    time.Time // when tick is set to fire
	nextID   int
	pending  map[int]*wPending
	lastPong map[string]time.Time     // address -> last PONG delivered to the core
	open     map[core.Target]openLink // links that got a reply, to notice their peer crashing

	// Held is-master-down-by-addr replies, as the daemon's client
	// connections keep them: a sentinel's requests are one connection,
	// answered in order, so the ones that come while its reply is held
	// wait (queued) until it is sent.
	heldAsks map[uint64]heldAsk
	busy     map[string]bool      // sentinel -> a reply of its is held
	queued   map[string][]downAsk // sentinel -> requests waiting behind it
	toDrain  []string             // sentinels whose held reply left: run their queue
}

type heldAsk struct {
	from string
	msg  downAsk
}

// openLink is a link whose peer process answered: the incarnation of the
// node that answered.
type openLink struct {
	node        string
	incarnation int
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
	wp := &witnessProc{s: s, cfg: core.Config{MyID: runID(s.name), AnnounceIP: h, AnnouncePort: port,
		Masters: []core.MasterConfig{{Name: masterName, Addr: core.Addr{IP: mh, Port: mport}, Quorum: m.quorum,
			DownAfter: downAfter, FailoverTimeout: 180 * time.Second}}}}
	wp.tick = m.w.NewTimer(s.node, func() { m.witnessWake(wp) })
	m.wit = wp
}

// witnessStart is the daemon's start: a driver from the persisted state.
func (m *model) witnessStart() {
	wp := m.wit
	wp.pending = map[int]*wPending{}
	wp.lastPong = map[string]time.Time{}
	wp.open = map[core.Target]openLink{}
	// A restart closes every client connection: held replies are lost.
	wp.heldAsks, wp.busy, wp.queued, wp.toDrain = map[uint64]heldAsk{}, map[string]bool{}, map[string][]downAsk{}, nil
	wp.armed = time.Time{}
	d, err := driver.New(m.w.Now(), wp.cfg, wp.saved, witnessLinks{m}, witnessStore{m}, witnessEvents{m}, witnessHeld{m}, nil)
	if err != nil {
		m.violate(InvWitness, "witness does not start from its persisted state: %v", err)
		return
	}
	if e := d.Core().CurrentEpoch(); e < m.witVoted {
		m.violate(InvWitness, "the witness restarted at current epoch %d although it voted in epoch %d: it may vote twice", e, m.witVoted)
	}
	wp.drv = d
	m.witnessArm()
}

// witnessArm sets the timer to the driver's next deadline, as the daemon's
// loop does, after running the requests that waited behind a released
// held reply (outside the driver call that released it).
func (m *model) witnessArm() {
	wp := m.wit
	for len(wp.toDrain) > 0 && wp.drv != nil {
		from := wp.toDrain[0]
		wp.toDrain = wp.toDrain[1:]
		for !wp.busy[from] && len(wp.queued[from]) > 0 {
			msg := wp.queued[from][0]
			wp.queued[from] = wp.queued[from][1:]
			m.witnessAsked(from, msg)
		}
	}
	if next := wp.drv.Next(); !next.Equal(wp.armed) {
		wp.armed = next
		wp.tick.Reset(next)
	}
}

func (m *model) witnessWake(wp *witnessProc) {
	wp.armed = time.Time{}
	m.witnessLinksClosed()
	wp.drv.Wake(m.w.Now())
	m.witnessArm()
}

// witnessLinksClosed reports the links whose peer process crashed since it
// last answered: its kernel closed the connections, and the daemon's link
// goroutines see the EOF (issue 10). The simulator notices at the witness's
// next wake-up, within one tick of the crash; a frozen or partitioned peer
// closes nothing.
func (m *model) witnessLinksClosed() {
	wp := m.wit
	var closed []core.Target
	for t, o := range wp.open {
		if n := m.w.Node(o.node); n == nil || n.State() == sim.Down || n.Incarnation() != o.incarnation {
			closed = append(closed, t)
		}
	}
	sort.Slice(closed, func(i, j int) bool { return closed[i].Addr.String() < closed[j].Addr.String() })
	for _, t := range closed {
		delete(wp.open, t)
		wp.drv.HandleLinkDown(m.w.Now(), t, io.EOF)
	}
}

// witnessSawCrash is the fault injector's hook, called right after it
// crashes a node: the crashed process's kernel closes its sockets, and the
// daemon's link goroutines see the EOF at once, so the adapter reports the
// closed links now rather than at the witness's next wake-up.
func (m *model) witnessSawCrash() {
	wp := m.wit
	if wp == nil || wp.drv == nil || wp.s.node.State() == sim.Down {
		return
	}
	m.witnessLinksClosed()
	m.witnessArm()
}

// witnessAnswered records that t's peer process answered on the link.
func (m *model) witnessAnswered(t core.Target, from string) {
	if n := m.w.Node(from); n != nil {
		m.wit.open[t] = openLink{node: from, incarnation: n.Incarnation()}
	}
}

// witnessStore keeps the state across restarts (unless the WitnessNoPersist
// mutation forgets to).
type witnessStore struct{ m *model }

func (s witnessStore) Save(st core.State) error {
	if s.m.opt.Mutation != WitnessNoPersist {
		s.m.wit.saved = &st
	}
	return nil
}

// witnessEvents publishes the witness's events to the proxy.
type witnessEvents struct{ m *model }

func (e witnessEvents) Publish(ev core.Event) { e.m.publish(e.m.wit.s, ev.Type, ev.Msg) }

func (m *model) nodeNameByAddr(a core.Addr) string {
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

var (
	errNoSuchAddr = errors.New("no node has this address")
	errRefused    = errors.New("connection refused")
)

// witnessLinks carries the driver's commands as simulated messages; a reply
// that does not come within witnessTimeout is a link error.
type witnessLinks struct{ m *model }

func (l witnessLinks) Sync([]core.Target) {} // links are implicit in the simulated network

func (l witnessLinks) Send(a core.Action) error {
	m := l.m
	wp := m.wit
	to := m.nodeNameByAddr(a.Target.Addr)
	if to == "" {
		return errNoSuchAddr
	}
	if n := m.w.Node(to); n != nil && n.State() == sim.Down {
		// Nothing listens on a crashed process's port: the connection is
		// refused at once, as the daemon's dial is.
		delete(wp.open, a.Target)
		return errRefused
	}
	if a.Kind == core.ActAdopt {
		// The probe's connection replaces the command link: what the old
		// one still owed is never delivered.
		for id, p := range wp.pending {
			if p.target == a.Target && p.kind != core.ActProbe {
				p.timer.Stop()
				delete(wp.pending, id)
			}
		}
		return nil
	}
	wp.nextID++
	id := wp.nextID
	p := &wPending{target: a.Target, kind: a.Kind}
	p.timer = m.w.NewTimer(wp.s.node, func() {
		if wp.pending[id] == p {
			delete(wp.pending, id)
			wp.drv.HandleLinkError(m.w.Now(), p.target, p.kind, errors.New("timeout"))
			m.witnessArm()
		}
	})
	p.timer.Reset(m.w.Now().Add(witnessTimeout))
	wp.pending[id] = p
	switch a.Kind {
	case core.ActHello:
		if h := a.Hello; h.MasterConfigEpoch > 0 && !m.announced[fmt.Sprintf("%s:%d@%d", h.MasterIP, h.MasterPort, h.MasterConfigEpoch)] {
			m.violate(InvWitness, "the witness announces %s:%d at config epoch %d, a configuration no sentinel made",
				h.MasterIP, h.MasterPort, h.MasterConfigEpoch)
		}
		m.w.Net.Send(wp.s.name, to, nil, wReq{id: id, kind: a.Kind, text: a.Hello.String()})
	case core.ActAsk:
		m.w.Net.Send(wp.s.name, to, nil, downAsk{master: a.Ask.IP + ":" + strconv.Itoa(a.Ask.Port), wid: id})
	case core.ActProbe:
		// A PING on a fresh connection: the node answers it like any PING.
		m.w.Net.Send(wp.s.name, to, nil, wReq{id: id, kind: core.ActPing})
	default:
		m.w.Net.Send(wp.s.name, to, nil, wReq{id: id, kind: a.Kind})
	}
	return nil
}

// witnessReceive hands everything addressed to the witness to the driver,
// as the daemon's readers do, as the RESP value the real link would read.
func (m *model) witnessReceive(from string, data []byte, md any) {
	wp := m.wit
	if wp.drv == nil {
		return
	}
	now := m.w.Now()
	d := wp.drv
	switch msg := md.(type) {
	case wRep:
		p := wp.pending[msg.id]
		if p == nil {
			return
		}
		delete(wp.pending, msg.id)
		p.timer.Stop()
		m.witnessAnswered(p.target, from)
		var v resp.Value
		switch p.kind {
		case core.ActPing, core.ActProbe:
			if msg.text == "PONG" {
				wp.lastPong[p.target.Addr.String()] = now
			}
			v = resp.Value{Kind: resp.SimpleString, Str: msg.text}
		case core.ActInfo:
			v = resp.Value{Kind: resp.BulkString, Str: msg.text}
		case core.ActHello:
			n, _ := strconv.ParseInt(msg.text, 10, 64)
			v = resp.Value{Kind: resp.Integer, Int: n}
		}
		d.HandleReply(now, p.target, p.kind, v)
	case downRep:
		p := wp.pending[msg.wid]
		if p == nil {
			return
		}
		delete(wp.pending, msg.wid)
		p.timer.Stop()
		m.witnessAnswered(p.target, from)
		down := int64(0)
		if msg.down {
			down = 1
		}
		leader := "*"
		if msg.leader != "" {
			leader = runID(msg.leader)
		}
		d.HandleReply(now, p.target, p.kind, resp.Value{Kind: resp.Array, Elems: []resp.Value{
			{Kind: resp.Integer, Int: down}, {Kind: resp.BulkString, Str: leader}, {Kind: resp.Integer, Int: msg.epoch}}})
	case helloRelay:
		_ = d.HandleHello(now, msg.payload, driver.ViaPubSub)
	case helloCmd:
		_ = d.HandleHello(now, msg.payload, driver.ViaPublish)
	case downAsk:
		m.witnessAsked(from, msg)
	case queryReq:
		m.witnessQuery(from, msg)
	}
	m.witnessArm()
}

// witnessAsked answers SENTINEL is-master-down-by-addr from a model
// sentinel through the driver (which stores the vote first), and checks the
// voter's promises. Each model sentinel is one client connection: while a
// reply of its is held, its later requests wait in order.
func (m *model) witnessAsked(from string, msg downAsk) {
	wp := m.wit
	if wp.busy[from] {
		wp.queued[from] = append(wp.queued[from], msg)
		return
	}
	now := m.w.Now()
	host, port, _ := net.SplitHostPort(msg.master)
	p, _ := strconv.Atoi(port)
	id := "*"
	if msg.reqEpoch > 0 {
		id = runID(msg.leader)
	}
	rep, ticket, err := wp.drv.IsMasterDownFrom(now, m.witnessClient(from), host, p, uint64(msg.reqEpoch), id)
	if ticket != 0 {
		wp.heldAsks[ticket] = heldAsk{from: from, msg: msg}
		wp.busy[from] = true
		m.res.Stats["witness_held"]++
		return
	}
	if err != nil {
		return // an error reply: the model sentinel ignores it like a missing one
	}
	m.witnessAnswer(from, msg, rep)
}

// witnessClient is the client id of a model sentinel's connection to the
// witness (never 0: every sentinel can wait for a held reply).
func (m *model) witnessClient(from string) core.ClientID {
	for i, s := range m.sentinels {
		if s.name == from {
			return core.ClientID(i + 1)
		}
	}
	return core.ClientID(len(m.sentinels) + 1)
}

// witnessHeld is the driver's HeldReplies: a released reply goes to the
// sentinel that asked, and its waiting requests run once the driver call
// that released it has returned (witnessArm).
type witnessHeld struct{ m *model }

func (h witnessHeld) Release(ticket uint64, rep core.IsMasterDownReply, err error) {
	m := h.m
	wp := m.wit
	ha, ok := wp.heldAsks[ticket]
	if !ok {
		return
	}
	delete(wp.heldAsks, ticket)
	wp.busy[ha.from] = false
	wp.toDrain = append(wp.toDrain, ha.from)
	if rep.Down && err == nil {
		m.res.Stats["witness_held_released_down"]++
	}
	if err == nil {
		m.witnessAnswer(ha.from, ha.msg, rep)
	}
}

// witnessAnswer sends the witness's reply to a model sentinel's request,
// checking the voter's promises at the moment it leaves.
func (m *model) witnessAnswer(from string, msg downAsk, rep core.IsMasterDownReply) {
	now := m.w.Now()
	if rep.Down {
		// The answer is the truth when it leaves (replies are applied as
		// they arrive, a held reply is judged at its release), so no PONG
		// may be younger than down-after.
		if last, ok := m.wit.lastPong[msg.master]; ok && now.Sub(last) <= downAfter {
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
		} else if !ok {
			m.res.Stats["witness_votes"]++ // epochs the witness voted in
		}
		m.votes[ep] = name
		m.witVoted = max(m.witVoted, uint64(ep))
		out.leader, out.epoch = name, int64(rep.LeaderEpoch)
	}
	m.w.Net.Send(m.wit.s.name, from, nil, out)
}

// witnessQuery answers the proxy's SENTINEL MASTER and
// GET-MASTER-ADDR-BY-NAME, and SENTINEL MYID when the proxy asks it (the
// hello path, the fast path), with the driver's command code (RESP2).
func (m *model) witnessQuery(to string, req queryReq) {
	now := m.w.Now()
	var b bytes.Buffer
	w := resp.NewWriter(&b)
	m.wit.drv.Command(now, []string{"SENTINEL", "MASTER", masterName}, w)
	m.wit.drv.Command(now, []string{"SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName}, w)
	if m.asksRunID() { // the hello path and the fast path both ask it
		m.wit.drv.Command(now, []string{"SENTINEL", "MYID"}, w)
	}
	w.Flush()
	a, _ := m.witnessView()
	m.said(m.wit.s, a)
	m.w.Net.Send(m.wit.s.name, to, b.Bytes(), replyMeta{id: req.id, at: now})
}

// witnessView returns the witness's configuration (for the ground truth).
func (m *model) witnessView() (string, int64) {
	if m.wit.drv == nil {
		return m.wit.s.master, m.wit.s.epoch
	}
	c := m.wit.drv.Core()
	a, _ := c.MasterAddr(masterName)
	for _, ms := range c.State().Masters {
		if ms.Name == masterName {
			return a.String(), int64(ms.ConfigEpoch)
		}
	}
	return a.String(), 0
}
