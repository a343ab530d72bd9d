package proxysim

import (
	"fmt"
	"strconv"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/sim"
)

// The hello path (Options.Hello): sentinels publish their view on every
// Redis node they reach (__sentinel__:hello, every helloPeriod), the nodes
// pass it to the proxy's subscription, and the proxy's production driver
// interprets it (driver.HandleHello). A forging client (Options.Forge)
// publishes hellos of its own on the nodes, as a client could without the
// stack's ACL: wrong run ids, right run ids naming another master, replays
// of genuine hellos heard earlier, and right run ids claiming a higher
// epoch. The invariants must hold all the same.

// helloMeta marks a message on the proxy's hello subscription of a node.
type helloMeta struct {
	said   time.Time // when the sentinel said it (a forged one: when it was forged)
	forged bool
}

// publishHello is PUBLISH __sentinel__:hello on Redis node n: the proxy's
// subscription on n gets the message.
func (m *model) publishHello(n *redisNode, payload string, md helloMeta) {
	e := m.enc
	e.w.Array(3)
	for _, f := range []string{"message", core.HelloChannel, payload} {
		e.w.Bulk(f)
	}
	m.w.Net.Send(n.name, proxyName, e.bytes(), md)
}

// helloPayload is what sentinelSendHello writes: the announcing sentinel,
// then the master as it currently announces it (the promoted replica from
// the reconf step on) with its config epoch.
func helloPayload(sentinelAddr, id string, current int64, master string, epoch int64) string {
	sh, sp := hostPort(sentinelAddr)
	mh, mp := hostPort(master)
	return fmt.Sprintf("%s,%s,%s,%d,%s,%s,%s,%d", sh, sp, id, current, masterName, mh, mp, epoch)
}

// sentinelSaysHello: sentinel s publishes its hello on every node (each
// node gets it if the link lets it through).
func (m *model) sentinelSaysHello(s *sentinel) {
	if !m.opt.Hello {
		return
	}
	addr, epoch := m.view(s)
	m.said(s, addr)
	payload := helloPayload(s.addr, runID(s.name), s.currentEpoch, addr, epoch)
	if len(m.genuine) < 64 {
		m.genuine = append(m.genuine, payload)
	} else {
		m.genuine[m.w.Rand.IntN(len(m.genuine))] = payload
	}
	for _, n := range m.nodes {
		m.w.Net.Send(s.name, n.name, nil, helloPub{payload: payload, md: helloMeta{said: m.w.Now()}})
	}
}

// helloPub is a PUBLISH __sentinel__:hello arriving at a node.
type helloPub struct {
	payload string
	md      helloMeta
}

// said records that sentinel s stated addr now (in an answer or a hello):
// the ground truth the deposed-master invariant checks against.
func (m *model) said(s *sentinel, addr string) {
	if m.saidAt[s.name] == nil {
		m.saidAt[s.name] = map[string]time.Time{}
	}
	m.saidAt[s.name][addr] = m.w.Now()
}

// forgeStart arms the forging client: every 300-1500 ms it publishes one
// forged hello (or a burst for every sentinel) on a random node.
func (m *model) forgeStart() {
	if !m.opt.Forge {
		return
	}
	m.forger = m.w.AddNode("forger")
	var tick func()
	tick = func() {
		m.forge()
		m.w.NodeAt(m.forger, m.w.Now().Add(time.Duration(300+m.w.Rand.IntN(1200))*time.Millisecond), tick)
	}
	m.w.NodeAt(m.forger, sim.Epoch.Add(time.Duration(m.w.Rand.IntN(1000))*time.Millisecond), tick)
}

// forge publishes one kind of forgery.
func (m *model) forge() {
	r := m.w.Rand
	n := m.nodes[r.IntN(len(m.nodes))]
	// The forger prefers a node that claims master without being the
	// sentinels' choice (a returning old master, a rogue): a hello that made
	// the proxy route there would do harm.
	target := m.nodes[r.IntN(len(m.nodes))].addr
	var top int64
	var truth string
	for _, s := range m.sentinels {
		if a, e := m.view(s); e >= top {
			top, truth = e, a
		}
	}
	for _, x := range m.nodes {
		if x.master && x.addr != truth {
			target = x.addr
		}
	}
	var payloads []string
	switch kind := r.IntN(4); kind {
	case 0: // wrong run id
		s := m.sentinels[r.IntN(len(m.sentinels))]
		payloads = append(payloads, helloPayload(s.addr, runID("forged"+strconv.Itoa(r.IntN(3))), top, target, top))
	case 1: // right run ids, another master, current epoch: a forged majority
		for _, s := range m.sentinels {
			payloads = append(payloads, helloPayload(s.addr, runID(s.name), top, target, top))
		}
	case 2: // replays of genuine hellos heard earlier
		for i := 0; i < 3 && len(m.genuine) > 0; i++ {
			payloads = append(payloads, m.genuine[r.IntN(len(m.genuine))])
		}
	case 3: // right run ids, a higher epoch
		for _, s := range m.sentinels {
			payloads = append(payloads, helloPayload(s.addr, runID(s.name), top+1, target, top+1+int64(r.IntN(3))))
		}
	}
	m.res.Stats["forged_hellos"] += float64(len(payloads))
	for _, p := range payloads {
		m.w.Net.Send("forger", n.name, nil, helloPub{payload: p, md: helloMeta{said: m.w.Now(), forged: true}})
	}
}

// proxyHello is the proxy's hello subscription on node from.
func (m *model) proxyHello(from string, data []byte, md helloMeta) {
	p := m.px
	now := m.w.Now()
	m.noteStep()
	v, err := m.decode(data, 1)
	if err != nil {
		m.violate(InvCodec, "hello message from %s does not parse: %v", from, err)
		return
	}
	backend := ""
	for _, n := range m.nodes {
		if n.name == from {
			backend = n.addr
		}
	}
	if h, ok := helloOf(v[0]); ok {
		m.oracleHello(h, md)
		if m.opt.Mutation == HelloAsView {
			m.helloAsView(h)
			return
		}
	}
	p.drv.HandleHello(now, backend, v[0])
	if s := p.drv.Snapshot(); s.Route.Master != "" && s.SentinelsFresh-s.SentinelsViaHello < m.quorum {
		m.res.Stats["routed_via_hello"]++
	}
	m.stepped()
}

// helloAsView is the planted bug: a hello reaches the core as a direct
// view of the sentinel it announces, uncorroborated.
func (m *model) helloAsView(h core.Hello) {
	now := m.w.Now()
	e := m.enc
	mh, mp := hostPort(h.MasterAddr)
	fields := []string{"name", masterName, "ip", mh, "port", mp, "config-epoch", strconv.FormatInt(h.ConfigEpoch, 10)}
	e.w.Array(len(fields))
	for _, f := range fields {
		e.w.Bulk(f)
	}
	e.w.Array(2)
	e.w.Bulk(mh)
	e.w.Bulk(mp)
	e.w.Bulk(h.RunID)
	v, err := m.decode(e.bytes(), 3)
	if err != nil {
		panic(err)
	}
	m.px.drv.HandleReply(now, core.Probe{Kind: core.ProbeSentinel, Target: h.Sentinel, At: now}, v, nil)
	m.stepped()
}

func helloOf(v resp.Value) (core.Hello, bool) {
	if len(v.Elems) != 3 {
		return core.Hello{}, false
	}
	return core.ParseHello(v.Elems[2].Str)
}

// runIDOf is the run id sentinel s gives (SENTINEL MYID).
func (m *model) runIDOf(addr string) string {
	for _, s := range m.sentinels {
		if s.addr == addr {
			return runID(s.name)
		}
	}
	return ""
}

// NoteReplayed: with forged hellos delivered (no ACL), the proxy counted a
// sentinel that said nothing lately (a replay of its hello).
const NoteReplayed = "route-on-replayed-hello"

// helloReach is how many sentinels the proxy can hear on the hello path
// only: not directly, but through a running node that both reach.
func (m *model) helloReach() int {
	if !m.opt.Hello {
		return 0
	}
	n := 0
	for _, s := range m.sentinels {
		if m.reachable(s, false) || s.node.State() != sim.Up {
			continue
		}
		for _, d := range m.nodes {
			if d.node.State() == sim.Up && !m.w.Net.Link(s.name, d.name).Cut && !m.w.Net.Link(d.name, proxyName).Cut {
				n++
				break
			}
		}
	}
	return n
}

// checkSaid is InvUnsaid: the routed node x was stated by a majority of
// the sentinels within ViewTTL + grace (every view the core may count is
// dated no later than its sentinel said it).
func (m *model) checkSaid(x string) {
	n, since := m.saidCount(x)
	if n < m.quorum && m.opt.Forge {
		// A replayed hello is a sentinel's own words: without the ACL
		// nothing tells it from a fresh one, so a forger can keep a
		// crashed sentinel counting (for what another one says directly).
		// Not a routing violation: a note.
		m.note(NoteReplayed, "routes to %s, which only %d sentinels stated since %v: %s",
			x, n, since.Sub(sim.Epoch), m.states())
		return
	}
	if n < m.quorum {
		m.violate(InvUnsaid, "routes to %s, which only %d sentinels stated since %v: %s",
			x, n, since.Sub(sim.Epoch), m.states())
	}
}

// saidCount is how many sentinels stated x since since (ViewTTL + grace ago).
func (m *model) saidCount(x string) (n int, since time.Time) {
	rc := m.px.cfg.Routing
	since = m.w.Now().Add(-(rc.ViewTTL + rc.NoMajorityGrace + 2*slack))
	for _, s := range m.sentinels {
		if at, ok := m.saidAt[s.name][x]; ok && !at.Before(since) {
			n++
		}
	}
	return n, since
}

// saidEnough: InvUnsaid would not object to routing to x.
func (m *model) saidEnough(x string) bool {
	n, _ := m.saidCount(x)
	return n >= m.quorum
}

// deposed reports whether a majority of the sentinels (their configuration,
// reachable or not) name one other master at an epoch that no sentinel
// names x at.
func (m *model) deposed(x string) (by string, epoch int64, ok bool) {
	count := map[string]int{}
	top := map[string]int64{}
	var xEpoch int64 = -1
	for _, s := range m.sentinels {
		a, e := m.view(s)
		if a == x {
			xEpoch = max(xEpoch, e)
			continue
		}
		key := fmt.Sprintf("%s@%d", a, e)
		count[key]++
		top[key] = e
	}
	for key, c := range count {
		if c >= m.quorum && top[key] > xEpoch {
			return key, top[key], true
		}
	}
	return "", 0, false
}

// checkDeposed is InvDeposed, run on every ground change (an episode that
// faults do not restart).
func (m *model) checkDeposed() {
	px := m.px
	route := px.route.Master
	rc := px.cfg.Routing
	by, _, dep := "", int64(0), false
	if route != "" && px.node.State() == sim.Up && !m.inProvisionalWindow(route) {
		by, _, dep = m.deposed(route)
	}
	bound := rc.ViewTTL + rc.NoMajorityGrace + px.cfg.Check.Timeout + 3*slack
	m.episode(&m.depEp, dep, route+"|"+by, bound, func() {
		m.violate(InvDeposed, "routes to %s for %v while the sentinels' majority names %s: %s", route, bound, by, m.states())
	})
}
