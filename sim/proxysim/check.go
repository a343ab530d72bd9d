package proxysim

import (
	"fmt"
	"slices"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/sim"
)

// oracle is the specification the core's answers are checked against: the
// latest view per sentinel, fresh for ViewTTL, the majority at the highest
// fresh epoch, and the grace period after losing it. Two instances run:
// one over the views as the proxy stamped them (when it read them), one over
// the time each sentinel actually answered, which exposes decisions taken
// on old answers read late (after the proxy was frozen, say).
type oracle struct {
	slack time.Duration // added to ViewTTL (the answer-time oracle allows one timeout)
	// byExpiry dates a lost majority from when its views went stale rather
	// than from the step that noticed it (the core's own rule).
	byExpiry bool
	views    map[string]core.View
	// hellos are the hello views the specification lets count (the hello
	// path): per sentinel the fresh one with the highest epoch; each counts
	// only when a fresh direct view of another sentinel names the same
	// address at the same epoch.
	hellos  map[string]core.View
	known   map[string]bool // sentinels that answered (their run id is known to the proxy)
	haveMaj bool
	lastMaj string
	lastEp  int64
	expiry  time.Time // when the current majority's supporting views go stale
	lostAt  time.Time
}

func (m *model) oracleReset() {
	m.orRead = &oracle{views: map[string]core.View{}, hellos: map[string]core.View{}, known: map[string]bool{}}
	m.orSaid = &oracle{slack: m.px.cfg.Check.Timeout, byExpiry: true, views: map[string]core.View{}, hellos: map[string]core.View{}, known: map[string]bool{}}
	m.lastStep, m.stallAt = m.w.Now(), time.Time{}
}

// oracleView records a view as read (stamped by the proxy) and as said
// (stamped with the sentinel's answer time).
func (m *model) oracleView(v core.View, said time.Time) {
	m.orRead.add(v)
	v.At = said
	m.orSaid.add(v)
}

// noteStep is the stall rule of the specification: a step more than a
// check interval and a timeout after the previous one follows a stall, and
// hellos read within a check timeout of it do not count.
func (m *model) noteStep() {
	now := m.w.Now()
	cfg := m.px.cfg.Check
	if now.Sub(m.lastStep) > cfg.Interval+cfg.Timeout {
		m.stallAt = now
	}
	m.lastStep = now
}

// oracleHello records a hello heard by the proxy as the specification
// lets it count: announced by a configured sentinel with its real run id,
// about our master, not read right after a stall; dated when heard (and,
// for the answer-time oracle, when said).
func (m *model) oracleHello(h core.Hello, md helloMeta) {
	now := m.w.Now()
	if h.MasterName != masterName || h.RunID != m.runIDOf(h.Sentinel) {
		return
	}
	if !m.stallAt.IsZero() && now.Before(m.stallAt.Add(m.px.cfg.Check.Timeout)) {
		return
	}
	v := core.View{At: now, Sentinel: h.Sentinel, OK: true, Addr: h.MasterAddr, Epoch: h.ConfigEpoch}
	ttl := m.px.cfg.Routing.ViewTTL
	m.orRead.addHello(v, now, ttl)
	v.At = md.said
	m.orSaid.addHello(v, now, ttl)
}

func (o *oracle) addHello(v core.View, now time.Time, ttl time.Duration) {
	ttl += o.slack
	if !o.known[v.Sentinel] {
		return
	}
	if prev, ok := o.hellos[v.Sentinel]; ok && !now.After(prev.At.Add(ttl)) && prev.Epoch > v.Epoch {
		return
	}
	if prev, ok := o.hellos[v.Sentinel]; ok && v.At.Before(prev.At) && prev.Epoch >= v.Epoch {
		return
	}
	o.hellos[v.Sentinel] = v
}

func (o *oracle) add(v core.View) {
	if v.OK {
		o.known[v.Sentinel] = true
	}
	if prev, ok := o.views[v.Sentinel]; !ok || !v.At.Before(prev.At) {
		o.views[v.Sentinel] = v
	}
}

// majority: the address named by at least need fresh views at the highest
// epoch among fresh views, and when those views go stale.
func (o *oracle) majority(now time.Time, ttl time.Duration, need int) (string, int64, time.Time, bool) {
	ttl += o.slack
	// At most a handful of sentinels: slices beat maps here, and this runs
	// after every step of the core.
	var fresh [8]core.View
	n := 0
	top := int64(-1)
	ok := func(v core.View) bool { return v.OK && v.Addr != "" && !now.After(v.At.Add(ttl)) }
	for _, v := range o.views {
		if ok(v) && n < len(fresh) {
			fresh[n] = v
			n++
			top = max(top, v.Epoch)
		}
	}
	// Hello views: a sentinel's counts instead of its direct one when it is
	// corroborated and has a higher epoch (or there is no fresh direct one),
	// dated by the earlier of its own time and its newest corroboration's.
	direct := n
	dir := fresh // the direct views only: hellos are corroborated by these
	for s, h := range o.hellos {
		if !ok(h) {
			continue
		}
		var best time.Time
		for i := range direct {
			if d := dir[i]; d.Sentinel != s && d.Addr == h.Addr && d.Epoch == h.Epoch && d.At.After(best) {
				best = d.At
			}
		}
		if best.IsZero() {
			continue
		}
		if best.Before(h.At) {
			h.At = best
		}
		own := -1
		for i := range direct {
			if dir[i].Sentinel == s {
				own = i
			}
		}
		switch {
		case own >= 0 && h.Epoch > fresh[own].Epoch:
			fresh[own] = h
		case own < 0 && n < len(fresh):
			fresh[n] = h
			n++
		default:
			continue
		}
		top = max(top, h.Epoch)
	}
	for i := range n {
		a := fresh[i]
		if a.Epoch != top {
			continue
		}
		var ats [8]time.Time
		k := 0
		for j := range n {
			if b := fresh[j]; b.Epoch == top && b.Addr == a.Addr {
				ats[k] = b.At
				k++
			}
		}
		if k >= need {
			slices.SortFunc(ats[:k], func(x, y time.Time) int { return y.Compare(x) })
			return a.Addr, top, ats[need-1].Add(ttl), true
		}
	}
	return "", top, time.Time{}, false
}

// step updates the oracle at now; it returns whether x may be routed to and
// why not.
func (o *oracle) step(now time.Time, ttl, grace time.Duration, need int, x string) (inv, why string) {
	maj, ep, exp, ok := o.majority(now, ttl, need)
	if ok {
		o.haveMaj, o.lastMaj, o.lastEp, o.expiry, o.lostAt = true, maj, ep, exp, time.Time{}
	} else {
		if o.haveMaj {
			// Lost when its views went stale, or now (a newer epoch, say).
			o.lostAt = now
			if o.byExpiry && !o.expiry.IsZero() && o.expiry.Before(now) {
				o.lostAt = o.expiry
			}
		} else if o.lostAt.IsZero() {
			o.lostAt = now
		}
		o.haveMaj = false
	}
	switch {
	case x == "":
	case ok && x != maj:
		return InvNotMajority, fmt.Sprintf("routes to %s while the majority at epoch %d names %s", x, ep, maj)
	case !ok && x != o.lastMaj:
		return InvNotMajority, fmt.Sprintf("routes to %s without a majority; the last majority named %q", x, o.lastMaj)
	case !ok && now.Sub(o.lostAt) >= grace:
		return InvNoMajority, fmt.Sprintf("routes to %s %v after the majority was lost (grace %v)", x, now.Sub(o.lostAt), grace)
	}
	return "", ""
}

// checkStep checks the core's route after one step of the driver.
func (m *model) checkStep(route core.Route) {
	now := m.w.Now()
	rc := m.px.cfg.Routing
	need := len(m.sentinels)/2 + 1
	x := route.Master
	// A provisional route of the promotion fast path is outside the
	// majority rule by design; provisional says whether this one is
	// explained (and checks its bound).
	invR, whyR := m.orRead.step(now, rc.ViewTTL, rc.NoMajorityGrace, need, x)
	invS, whyS := m.orSaid.step(now, rc.ViewTTL, rc.NoMajorityGrace, need, x)
	var provEpoch int64
	prov := false
	if invR != "" || invS != "" || (x != "" && !m.saidEnough(x)) {
		provEpoch, prov = m.provisional(x)
	}
	if inv, why := invR, whyR; inv != "" && !prov {
		m.violate(inv, "%s", why)
	}
	if inv, why := invS, whyS; inv != "" && !prov {
		truth := "it is still the master"
		if n := m.nodeByAddr(x); n == nil || !n.master || n.node.State() != sim.Up {
			truth = "it is NOT a running master now"
		}
		m.note(NoteOldViews, "by the sentinels' answer times: %s (%s): %s", why, truth, m.states())
	}
	if x == "" {
		return
	}
	e := m.orRead.lastEp
	if prov {
		e = provEpoch
	} else {
		m.checkSaid(x)
	}
	if prev, seen := m.routed[e]; seen && prev != x {
		m.violate(InvTwoMasters, "routes to %s in epoch %d after routing to %s in it", x, e, prev)
	}
	m.routed[e] = x
}

// episode tracks one condition over time: when it has held with the same
// key for the bound, the check runs.
type episode struct {
	key   string
	token int
}

func (m *model) episode(e *episode, cond bool, key string, bound time.Duration, check func()) {
	if !cond {
		if e.key != "" {
			e.key = ""
			e.token++
		}
		return
	}
	if e.key == key {
		return
	}
	e.key = key
	e.token++
	m.res.Stats["checked_ground_episodes"]++
	tok := e.token
	m.w.After(bound, func() {
		if e.token == tok {
			check()
		}
	})
}

// faultChanged restarts every ground-truth episode: bounds count from the
// last change of the network or of a process.
func (m *model) faultChanged() {
	for i := range m.eps {
		m.eps[i] = episode{token: m.eps[i].token + 1}
	}
	m.groundCheck()
}

func (m *model) reachable(s *sentinel, clean bool) bool {
	if s.node.State() != sim.Up {
		return false
	}
	a, b := m.w.Net.Link(proxyName, s.name), m.w.Net.Link(s.name, proxyName)
	if clean {
		return a.Clean() && b.Clean()
	}
	return !a.Cut && !b.Cut
}

// groundCheck evaluates the ground-truth rules (what really is, rather than
// what reached the proxy) after any change.
func (m *model) groundCheck() {
	m.accountRoute()
	m.checkDeposed()
	px := m.px
	up := px.node.State() == sim.Up
	route := px.route.Master
	cfg := px.cfg
	tick := 3 * slack

	// The proxy cannot hear a majority of sentinels: it must refuse once
	// their views expire and the grace period passes.
	reach := 0
	for _, s := range m.sentinels {
		if m.reachable(s, false) {
			reach++
		}
	}
	// With the hello path, sentinels heard through the nodes count too,
	// as long as one is reached directly (hellos only corroborate).
	cut := reach < m.quorum
	if m.opt.Hello {
		cut = reach == 0 || reach+m.helloReach() < m.quorum
	}
	m.episode(&m.eps[0], up && cut, "cut", cfg.Routing.ViewTTL+cfg.Routing.NoMajorityGrace+tick, func() {
		if r := m.px.route.Master; r != "" && m.opt.Forge {
			// Replayed hellos keep down or frozen sentinels counting (no
			// ACL in the model): a note, like route-unsaid.
			m.note(NoteReplayed, "the proxy reaches %d sentinels and still routes to %s: %s", reach, r, m.states())
		} else if r != "" {
			m.violate(InvCutOff, "the proxy reaches %d sentinels since %v ago and still routes to %s: %s",
				reach, cfg.Routing.ViewTTL+cfg.Routing.NoMajorityGrace+tick, r, m.states())
		}
	})

	// A reachable majority at the highest epoch names Y: the proxy must not
	// keep routing elsewhere.
	top := int64(-1)
	for _, s := range m.sentinels {
		if _, e := m.view(s); m.reachable(s, true) && e > top {
			top = e
		}
	}
	count := map[string]int{}
	for _, s := range m.sentinels {
		if a, e := m.view(s); m.reachable(s, true) && e == top {
			count[a]++
		}
	}
	var y string
	for a, n := range count {
		if n >= m.quorum {
			y = a
		}
	}
	stale := up && route != "" && y != "" && y != route && !m.inProvisionalWindow(route)
	bound := cfg.Routing.ViewTTL + cfg.Routing.NoMajorityGrace + cfg.Check.Interval + cfg.Check.Timeout + tick
	m.episode(&m.eps[1], stale, fmt.Sprintf("%s|%s|%d", route, y, top), bound, func() {
		m.violate(InvStale, "routes to %s for %v while reachable sentinels agree on %s at epoch %d: %s",
			route, bound, y, top, m.states())
	})

	// The routed node is down, frozen or a replica: two health checks must
	// notice.
	var dead bool
	if n := m.nodeByAddr(route); n != nil {
		dead = n.node.State() != sim.Up || !n.master
	}
	b3 := cfg.Check.Interval + 2*cfg.Check.Timeout + tick
	m.episode(&m.eps[2], up && route != "" && dead, route, b3, func() {
		m.violate(InvDeadRoute, "routes to %s for %v although it is not a running master: %s", route, b3, m.states())
	})
}

func (m *model) nodeByAddr(addr string) *redisNode {
	if addr == "" {
		return nil
	}
	return m.redisByAddr(addr)
}

// final: the network is whole and quiet; if every sentinel names the same
// master at the same epoch and that node alone claims master, the proxy
// routes to it.
func (m *model) final() {
	a0, e0 := m.view(m.sentinels[0])
	for _, s := range m.sentinels {
		if a, e := m.view(s); a != a0 || e != e0 || s.fo != nil {
			m.res.Stats["final_unsettled"]++
			return
		}
	}
	for _, n := range m.nodes {
		if n.master != (n.addr == a0) {
			m.res.Stats["final_unsettled"]++
			return
		}
	}
	if r := m.px.drv.Route(); r.Master != a0 {
		m.violate(InvFinal, "sentinels agree on %s at epoch %d, yet the route is %q (%s): %s",
			a0, e0, r.Master, r.Reason, m.states())
	}
}
