package proxysim

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/redisha/redisha/components/proxy"
	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/sim"
)

// This file is the proxy driver's twin: the pollers (one per backend and per
// sentinel: regular interval, kicked probes no closer than the fast
// interval, a timeout per round trip), the pub/sub notices, the 50ms tick,
// and apply (route changes, fast polling). Sentinel replies and notices
// travel as RESP bytes and go through the production parser
// (components/resp) and interpreters (proxy.ViewFromReplies,
// proxy.NoticeFromMessage); backend health replies carry the INFO text
// (the driver reads them with go-redis) into proxy.HealthFromInfo. All of it
// then enters the production core.

type healthReq struct{ id int }
type queryReq struct{ id int }
type replyMeta struct {
	id int
	at time.Time // when the sentinel answered
}
type healthRep struct {
	id   int
	pong string
	info string
}
type noticeMeta struct{}

const tickPeriod = 50 * time.Millisecond // proxy.go's control loop ticker

type probe struct {
	target    string // world node name
	addr      string // backend or sentinel address as the core spells it
	sentinel  bool
	inflight  bool
	id        int
	lastStart time.Time
	kicked    bool
	next      *sim.Timer
	timeout   *sim.Timer
	lastGood  core.View // for the StaleViewCache mutation
}

type proxyProc struct {
	node       *sim.Node
	cfg        proxy.Config
	core       *core.Core
	probes     []*probe
	tick       *sim.Timer
	lastUrgent time.Time
	route      core.Route
	feed       bytes.Buffer
	rd         *resp.Reader
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

func (m *model) answerHealth(n *redisNode, to string, req healthReq) {
	m.w.Net.Send(n.name, to, nil, healthRep{id: req.id, pong: "PONG", info: m.info(n)})
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

// startProxy starts the proxy process: a fresh core and fresh pollers.
func (m *model) startProxy() {
	p := m.px
	p.core = core.New(p.cfg.CoreConfig())
	p.route = p.core.Route()
	p.lastUrgent = time.Time{}
	p.rd = resp.NewReader(&p.feed)
	p.feed.Reset()
	now := m.w.Now()
	for _, pr := range p.probes {
		pr.inflight, pr.kicked, pr.lastGood = false, false, core.View{}
		pr.next.Reset(now) // startPoller's first probe is immediate
	}
	p.tick.Reset(now.Add(tickPeriod))
	m.oracleReset()
}

func (m *model) newProbe(target, addr string, sentinel bool) *probe {
	pr := &probe{target: target, addr: addr, sentinel: sentinel}
	pr.next = m.w.NewTimer(m.px.node, func() { m.probeStart(pr) })
	pr.timeout = m.w.NewTimer(m.px.node, func() { m.probeTimeout(pr) })
	return pr
}

func (m *model) probeStart(pr *probe) {
	now := m.w.Now()
	pr.inflight, pr.kicked = true, false
	pr.lastStart = now
	pr.id++
	pr.timeout.Reset(now.Add(m.px.cfg.Check.Timeout))
	if pr.sentinel {
		m.w.Net.Send(proxyName, pr.target, nil, queryReq{id: pr.id})
	} else {
		m.w.Net.Send(proxyName, pr.target, nil, healthReq{id: pr.id})
	}
}

// probeDone schedules the next probe the way startPoller does: the regular
// interval after this one ends, or as soon as the fast interval allows when
// kicked meanwhile.
func (m *model) probeDone(pr *probe) {
	pr.inflight = false
	pr.timeout.Stop()
	if pr.kicked {
		m.kickProbe(pr)
		return
	}
	pr.next.Reset(m.w.Now().Add(m.px.cfg.Check.Interval))
}

func (m *model) kickProbe(pr *probe) {
	if pr.inflight {
		pr.kicked = true
		return
	}
	pr.kicked = false
	at := pr.lastStart.Add(m.px.cfg.Check.FastInterval)
	if now := m.w.Now(); at.Before(now) {
		at = now
	}
	pr.next.Reset(at)
}

func (m *model) probeTimeout(pr *probe) {
	if !pr.inflight {
		return
	}
	now := m.w.Now()
	m.probeDone(pr)
	err := "i/o timeout"
	if pr.sentinel {
		m.oracleView(core.View{At: pr.lastStart, ReadAt: now, Sentinel: pr.addr, Err: err}, now)
		if m.opt.Mutation == StaleViewCache && pr.lastGood.OK {
			v := pr.lastGood
			v.At, v.ReadAt = pr.lastStart, now
			m.step(v)
			return
		}
		m.step(core.View{At: pr.lastStart, ReadAt: now, Sentinel: pr.addr, Err: err})
		return
	}
	if m.opt.Mutation == DropFailedChecks {
		return
	}
	m.step(core.Health{At: pr.lastStart, ReadAt: now, Backend: pr.addr, Err: err})
}

// proxyReceive is the proxy's socket side: probe replies and notices.
func (m *model) proxyReceive(from string, data []byte, md any) {
	p := m.px
	now := m.w.Now()
	switch md := md.(type) {
	case noticeMeta:
		v, err := m.decode(data, 1)
		if err != nil {
			m.violate(InvCodec, "notice from %s does not parse: %v", from, err)
			return
		}
		ch, payload, ok := proxy.NoticeFromMessage(v[0])
		if !ok {
			m.violate(InvCodec, "notice from %s not recognised: %q", from, data)
			return
		}
		n := core.Notice{At: now, Sentinel: m.sentinelAddr(from), Channel: ch, Payload: payload}
		p.lastUrgent = now
		m.w.Logf("proxy: notice %s %s %s", from, ch, payload)
		m.step(n)
	case healthRep:
		pr := m.inflight(from, md.id)
		if pr == nil {
			return
		}
		m.probeDone(pr)
		if md.pong != "PONG" {
			m.violate(InvCodec, "PING to %s answered %q", from, md.pong)
		}
		// Dated from when the probe was sent, as the production driver does:
		// the answer may be that old.
		h := proxy.HealthFromInfo(pr.lastStart, pr.addr, md.info)
		h.ReadAt = now
		if !h.OK {
			m.violate(InvCodec, "INFO from %s not understood: %s", from, h.Err)
		}
		m.step(h)
	case replyMeta:
		pr := m.inflight(from, md.id)
		if pr == nil {
			return
		}
		m.probeDone(pr)
		v, err := m.decode(data, 2)
		if err != nil {
			m.violate(InvCodec, "reply from %s does not parse: %v", from, err)
			return
		}
		{
			view := proxy.ViewFromReplies(pr.lastStart, pr.addr, v[0], v[1])
			view.ReadAt = now
			if !view.OK {
				m.violate(InvCodec, "sentinel %s reply not understood: %s", from, view.Err)
			}
			m.oracleView(view, md.at)
			if view.OK {
				pr.lastGood = view
			}
			if m.opt.Mutation == IgnoreEpoch {
				view.Epoch = 0
			}
			m.step(view)
		}
	}
}

// inflight returns the probe of target waiting for reply id; a reply after
// its timeout finds none (the real driver closed that connection).
func (m *model) inflight(target string, id int) *probe {
	for _, x := range m.px.probes {
		if x.target == target && x.inflight && x.id == id {
			return x
		}
	}
	return nil
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

func (m *model) proxyTick() {
	now := m.w.Now()
	m.px.tick.Reset(now.Add(tickPeriod))
	m.step(core.Tick{At: now})
}

// step feeds the core, checks the invariants on its answer, and applies it
// like proxy.apply.
func (m *model) step(ev any) {
	out := m.px.core.Step(ev)
	m.checkStep(out)
	m.apply(out)
}

// apply is proxy.apply: store a changed route, close deposed clients, poll
// fast while a decision is pending.
func (m *model) apply(out core.Output) {
	p := m.px
	now := m.w.Now()
	if out.Changed && !(m.opt.Mutation == StickyRoute && out.Route.Master == "" && p.route.Master != "") {
		p.lastUrgent = now
		if out.Route.Master != p.route.Master {
			m.w.Logf("proxy: route %q -> %q (%s)", p.route.Master, out.Route.Master, out.Route.Reason)
		}
		p.route = out.Route
		m.groundCheck()
	}
	for _, c := range out.Close {
		m.w.Logf("proxy: close clients of %s: %s", c.Backend, c.Reason)
	}
	if out.CheckNow && now.Sub(p.lastUrgent) < p.cfg.Check.FastWindow {
		for _, pr := range p.probes {
			m.kickProbe(pr)
		}
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
