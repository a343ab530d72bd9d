package proxysim

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/redisha/redisha/components/proxy/config"
	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/sim"
)

// This file is the proxy's transport on the simulated network: it runs the
// production driver (components/proxy/driver, around the production core),
// implementing its Prober (probes become messages to the model's nodes and
// sentinels) and Router (the route the model checks), and calls its entry
// points from world events: replies, pub/sub notices, and the wake-up the
// driver asks for (Next). Every reply and notice travels as RESP bytes
// written and read by components/resp. When to probe, kicks, deadlines and
// discovery are the core's; nothing here decides.

type healthReq struct{ id int }
type queryReq struct{ id int }
type replyMeta struct {
	id int
	at time.Time // when the sentinel or node answered
}
type noticeMeta struct{}

// slack is added to the ground-truth bounds for the scheduling of wake-ups
// and message delivery.
const slack = 50 * time.Millisecond

type inflight struct {
	p      core.Probe
	target string // world node name
	timer  *sim.Timer
}

type proxyProc struct {
	node     *sim.Node
	cfg      config.Config
	drv      *driver.Driver
	wake     *sim.Timer
	route    core.Route // as the Router last set it
	pending  map[int]*inflight
	lastGood map[string][]resp.Value // target -> last good replies (for the cache mutations)
	feed     bytes.Buffer
	rd       *resp.Reader
}

// encoder serialises replies with the production RESP writer.
type encoder struct {
	buf bytes.Buffer
	w   *resp.Writer
}

func newEncoder() *encoder {
	e := &encoder{}
	e.w = resp.NewWriter(&e.buf)
	return e
}

func (e *encoder) bytes() []byte {
	e.w.Flush()
	b := bytes.Clone(e.buf.Bytes())
	e.buf.Reset()
	return b
}

// answerHealth answers PING and INFO replication.
func (m *model) answerHealth(n *redisNode, to string, req healthReq) {
	e := m.enc
	e.w.Simple("PONG")
	e.w.Bulk(m.info(n))
	m.w.Net.Send(n.name, to, e.bytes(), replyMeta{id: req.id, at: m.w.Now()})
}

func (m *model) answerQuery(s *sentinel, to string, req queryReq) {
	e := m.enc
	// SENTINEL MASTER: its ip/port stay the old master's until the failover
	// ends; config-epoch moves when the promotion is seen. Real sentinels
	// send some 40 fields; these are the ones the proxy reads, as every
	// bulk string costs the parser an allocation.
	h, p := hostPort(s.master)
	fields := []string{"name", masterName, "ip", h, "port", p, "flags", "master",
		"config-epoch", strconv.FormatInt(s.viewEpoch(), 10)}
	e.w.Array(len(fields))
	for _, f := range fields {
		e.w.Bulk(f)
	}
	ah, ap := hostPort(s.viewAddr())
	e.w.Array(2)
	e.w.Bulk(ah)
	e.w.Bulk(ap)
	m.said(s, s.viewAddr())
	if m.asksRunID() {
		e.w.Bulk(runID(s.name)) // SENTINEL MYID
	}
	m.w.Net.Send(s.name, to, e.bytes(), replyMeta{id: req.id, at: m.w.Now()})
}

// publish sends a sentinel event to the proxy's PSUBSCRIBE connection.
func (m *model) publish(s *sentinel, channel, payload string) {
	e := m.enc
	e.w.Array(4)
	for _, f := range []string{"pmessage", "*", channel, payload} {
		e.w.Bulk(f)
	}
	m.w.Net.Send(s.name, proxyName, e.bytes(), noticeMeta{})
}

// startProxy starts the proxy process: a fresh driver and core.
func (m *model) startProxy() {
	p := m.px
	for _, f := range p.pending {
		f.timer.Stop()
	}
	p.pending = map[int]*inflight{}
	p.lastGood = map[string][]resp.Value{}
	p.rd = resp.NewReader(&p.feed)
	p.feed.Reset()
	now := m.w.Now()
	d, err := driver.New(p.cfg.CoreConfig(), now, (*simProber)(m), (*simRouter)(m), nil)
	if err != nil {
		panic(fmt.Sprintf("proxysim: the model's proxy configuration is invalid: %v", err))
	}
	p.drv = d
	p.route = d.Route()
	m.routeSince = now
	m.oracleReset()
	p.wake.Reset(now)
}

// simProber is the driver's Prober on the simulated network.
type simProber model

// Probe sends the probe's request; the reply comes back through
// proxyReceive. A timer at the deadline records, for the oracle, that the
// probe failed (the core counts it failed then by itself).
func (sp *simProber) Probe(p core.Probe) {
	m := (*model)(sp)
	to := m.nodeName(p.Target)
	id := int(p.ID)
	f := &inflight{p: p, target: to}
	m.px.pending[id] = f
	at := p.Deadline
	if m.cacheMutation(p) {
		at = at.Add(-time.Microsecond) // before the core's own deadline
	}
	f.timer = m.w.NewTimer(m.px.node, func() { m.probeTimeout(id) })
	f.timer.Reset(at)
	if to == "" {
		return // nobody has that address: the probe times out
	}
	if p.Kind == core.ProbeSentinel {
		m.w.Net.Send(proxyName, to, nil, queryReq{id: id})
	} else {
		m.w.Net.Send(proxyName, to, nil, healthReq{id: id})
	}
}

// cacheMutation: the planted transport bugs that answer a probe that got
// no answer from the last good reply.
func (m *model) cacheMutation(p core.Probe) bool {
	return (p.Kind == core.ProbeSentinel && m.opt.Mutation == StaleViewCache) ||
		(p.Kind == core.ProbeBackend && m.opt.Mutation == DropFailedChecks)
}

func (m *model) probeTimeout(id int) {
	f := m.px.pending[id]
	if f == nil {
		return
	}
	delete(m.px.pending, id)
	now := m.w.Now()
	if f.p.Kind == core.ProbeSentinel {
		m.oracleView(core.View{At: f.p.At, Sentinel: f.p.Target, Err: "i/o timeout"}, now)
	}
	if cached, ok := m.px.lastGood[f.p.Target]; ok && m.cacheMutation(f.p) {
		m.px.drv.HandleReply(now, f.p, cached, nil)
		m.stepped()
	}
}

// simRouter is the driver's Router: the model's record of the route.
type simRouter model

func (sr *simRouter) SetRoute(r core.Route) {
	m := (*model)(sr)
	p := m.px
	if m.opt.Mutation == StickyRoute && r.Master == "" && p.route.Master != "" {
		return // the planted bug: keep routing to the last master
	}
	if r.Master != p.route.Master {
		m.w.Logf("proxy: route %q -> %q (%s)", p.route.Master, r.Master, r.Reason)
		m.routeSince = m.w.Now()
	}
	p.route = r
	m.groundCheck()
}

func (sr *simRouter) CloseClients(backend, reason string) int {
	(*model)(sr).w.Logf("proxy: close clients of %s: %s", backend, reason)
	return 0
}

// proxyReceive is the proxy's socket side: probe replies and notices.
func (m *model) proxyReceive(from string, data []byte, md any) {
	p := m.px
	now := m.w.Now()
	switch md := md.(type) {
	case helloMeta:
		m.proxyHello(from, data, md)
	case noticeMeta:
		v, err := m.decode(data, 1)
		if err != nil {
			m.violate(InvCodec, "notice from %s does not parse: %v", from, err)
			return
		}
		ch, payload, ok := driver.NoticeFromMessage(v[0])
		if !ok {
			m.violate(InvCodec, "notice from %s not recognised: %q", from, data)
			return
		}
		m.w.Logf("proxy: notice %s %s %s", from, ch, payload)
		p.drv.HandleMessage(now, m.sentinelAddr(from), v[0])
		m.stepped()
	case replyMeta:
		f := p.pending[md.id]
		if f == nil || f.target != from || !now.Before(f.p.Deadline) {
			return // after its deadline: the daemon closed that connection
		}
		delete(p.pending, md.id)
		f.timer.Stop()
		want := 2
		if f.p.Kind == core.ProbeSentinel && m.asksRunID() {
			want = 3
		}
		v, err := m.decode(data, want)
		if err != nil {
			m.violate(InvCodec, "reply from %s does not parse: %v", from, err)
			return
		}
		if f.p.Kind == core.ProbeSentinel {
			view := driver.ViewFromReplies(f.p.At, f.p.Target, v[0], v[1])
			if !view.OK {
				m.violate(InvCodec, "sentinel %s reply not understood: %s", from, view.Err)
			}
			m.oracleView(view, md.at)
			if view.OK {
				p.lastGood[f.p.Target] = v
			}
			if m.opt.Mutation == IgnoreEpoch {
				v = append([]resp.Value{zeroEpoch(v[0])}, v[1:]...)
			}
		} else {
			if h := driver.HealthFromReplies(f.p.At, f.p.Target, v[0], v[1]); !h.OK {
				m.violate(InvCodec, "INFO from %s not understood: %s", from, h.Err)
			} else {
				p.lastGood[f.p.Target] = v
			}
		}
		p.drv.HandleReply(now, f.p, v, nil)
		m.stepped()
	}
}

// zeroEpoch is the IgnoreEpoch mutation: SENTINEL MASTER's config-epoch
// reaches the driver as 0.
func zeroEpoch(master resp.Value) resp.Value {
	out := master
	out.Elems = append([]resp.Value(nil), master.Elems...)
	for i := 0; i+1 < len(out.Elems); i += 2 {
		if out.Elems[i].Str == "config-epoch" {
			out.Elems[i+1].Str = "0"
		}
	}
	return out
}

func (m *model) decode(data []byte, n int) ([]resp.Value, error) {
	p := m.px
	p.feed.Write(data)
	var out []resp.Value
	for range n {
		v, err := p.rd.ReadValue()
		if err != nil {
			p.feed.Reset()
			p.rd = resp.NewReader(&p.feed)
			return nil, err
		}
		out = append(out, v)
	}
	if p.rd.Buffered() > 0 || p.feed.Len() > 0 {
		p.feed.Reset()
		p.rd = resp.NewReader(&p.feed)
		return nil, fmt.Errorf("%d bytes left over", p.rd.Buffered()+p.feed.Len())
	}
	return out, nil
}

func (m *model) proxyWake() {
	m.px.drv.Wake(m.w.Now())
	m.stepped()
}

// stepped runs after every call into the driver: check the invariants on
// the core's route and sleep until the driver's next deadline.
func (m *model) stepped() {
	m.noteStep()
	m.checkStep(m.px.drv.Route())
	if next := m.px.drv.Next(); !next.IsZero() {
		m.px.wake.Reset(next)
	} else {
		m.px.wake.Stop()
	}
}

func (m *model) sentinelAddr(name string) string {
	for _, s := range m.sentinels {
		if s.name == name {
			return s.addr
		}
	}
	return ""
}

// nodeName is the world node a probe address belongs to ("" for none).
func (m *model) nodeName(addr string) string {
	for _, n := range m.nodes {
		if n.addr == addr {
			return n.name
		}
	}
	for _, s := range m.sentinels {
		if s.addr == addr {
			return s.name
		}
	}
	return ""
}
