package vipsim

import (
	"fmt"
	"math/rand/v2"
	"time"

	vip "github.com/redisha/redisha/components/vip/core"
	"github.com/redisha/redisha/sim"
)

// schedule draws the faults, queues them, and returns when the run ends:
// the fault phase, then a whole and quiet network for long enough that the
// routers must have settled.
func (m *model) schedule(r *rand.Rand) time.Time {
	w := m.w
	phase := m.opt.FaultPhase
	sim.Windows(r, phase, m.opt.MaxFaults, 15*time.Second, func(start, end time.Duration) { m.fault(r, start, end) })
	w.At(sim.Epoch.Add(phase), func() {
		w.Logf("fault phase over: heal the network, thaw, restart killed daemons, checks pass")
		w.Net.Heal()
		for _, rt := range m.routers {
			w.Thaw(rt.node)
			rt.failing = false
			if rt.killed {
				w.Restart(rt.node)
				m.start(rt)
			}
		}
		m.faultChanged()
	})
	// Drawn last so that adding them kept every earlier seed's schedule.
	if m.unicast = r.IntN(4) == 0; m.unicast {
		m.res.Schedule[0] += "; unicast peers"
	}
	if m.tracked && r.IntN(3) == 0 {
		// keepalived's track_script without a weight: a failing check puts
		// the router in FAULT (no VIP, no competing) instead of lowering it.
		for _, rt := range m.routers {
			rt.cfg.Tracks[0].Weight, rt.cfg.Tracks[0].Fault = 0, true
		}
		m.res.Schedule[0] += "; check failure means FAULT"
	}
	// Settling: a backup that restarted late waits Master_Down_Interval, a
	// preempting one then takes over; tracked checks need Rise results.
	mdi := 3*m.interval + m.interval // Skew_Time < interval
	settle := 2*mdi + 3*m.interval + time.Second
	if m.tracked {
		settle += 3 * checkInterval
	}
	return sim.Epoch.Add(phase + settle)
}

func (m *model) pick(r *rand.Rand) *router { return m.routers[r.IntN(len(m.routers))] }

func (m *model) names() []string {
	var ns []string
	for _, rt := range m.routers {
		ns = append(ns, rt.name)
	}
	return ns
}

// fault draws one fault active from start to end.
func (m *model) fault(r *rand.Rand, start, end time.Duration) {
	w := m.w
	at := func(d time.Duration, fn func()) {
		w.At(sim.Epoch.Add(d), func() { fn(); m.faultChanged() })
	}
	desc := func(format string, args ...any) {
		m.res.Schedule = append(m.res.Schedule, fmt.Sprintf("%7.3fs-%7.3fs ", start.Seconds(), end.Seconds())+fmt.Sprintf(format, args...))
	}
	kinds := []string{"partition", "oneway", "lossy", "slow", "corrupt", "kill", "poweroff", "freeze", "shutdown"}
	if m.tracked {
		kinds = append(kinds, "check", "check")
	}
	kind := kinds[r.IntN(len(kinds))]
	rt := m.pick(r)
	switch kind {
	case "partition":
		names := m.names()
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		cut := 1 + r.IntN(len(names)-1)
		left, right := names[:cut], names[cut:]
		desc("partition %v | %v", left, right)
		var lift func()
		at(start, func() { lift = w.Net.Partition(left, right) })
		at(end, func() { lift(); w.Logf("net: partition lifted") })
	case "oneway", "lossy", "slow", "corrupt":
		other := m.pick(r)
		for other == rt {
			other = m.pick(r)
		}
		both := r.IntN(2) == 0
		var change func(*sim.Link)
		switch kind {
		case "oneway":
			both = false
			change = func(l *sim.Link) { l.Cut = true }
		case "lossy":
			loss := 0.1 + 0.8*r.Float64()
			change = func(l *sim.Link) { l.Loss = loss }
		case "slow":
			delay := time.Duration(r.IntN(200)) * time.Millisecond
			jitter := time.Duration(r.IntN(300)) * time.Millisecond
			change = func(l *sim.Link) { l.Delay, l.Jitter = delay, jitter }
		case "corrupt":
			p := 0.2 + 0.8*r.Float64()
			change = func(l *sim.Link) { l.Corrupt = p }
		}
		desc("%s %s->%s (both ways: %v)", kind, rt.name, other.name, both)
		var lift func()
		at(start, func() {
			lift = w.Net.Between(rt.name, other.name, both, change)
			w.Logf("net: %s %s->%s both=%v", kind, rt.name, other.name, both)
		})
		at(end, func() { lift(); w.Logf("net: %s %s->%s lifted", kind, rt.name, other.name) })
	case "kill":
		desc("kill -9 %s (VIP stays on its interface), restart", rt.name)
		at(start, func() { m.kill(rt, false) })
		at(end, func() { m.restart(rt) })
	case "poweroff":
		forever := r.IntN(5) == 0
		desc("power off %s (forever: %v)", rt.name, forever)
		at(start, func() { m.kill(rt, true) })
		if !forever {
			at(end, func() { m.restart(rt) })
		}
	case "freeze":
		desc("freeze %s", rt.name)
		at(start, func() { w.Freeze(rt.node) })
		at(end, func() { w.Thaw(rt.node) })
	case "shutdown":
		desc("graceful stop of %s, restart", rt.name)
		at(start, func() { m.shutdown(rt) })
		at(end, func() { m.restart(rt) })
	case "check":
		desc("%s fails on %s", trackName, rt.name)
		at(start, func() { rt.failing = true; w.Logf("%s: %s starts failing", rt.name, trackName) })
		at(end, func() { rt.failing = false; w.Logf("%s: %s passes again", rt.name, trackName) })
	}
}

// kill stops r's process at once. A SIGKILLed daemon leaves the VIP on the
// interface; a powered-off host takes it down with it.
func (m *model) kill(r *router, power bool) {
	if r.node.State() == sim.Down {
		return
	}
	m.stop(r)
	if power {
		r.hasVIP = false
	} else {
		r.killed = true
	}
}

func (m *model) restart(r *router) {
	if r.node.State() != sim.Down {
		return
	}
	m.w.Restart(r.node)
	m.start(r)
}

// shutdown is SIGTERM: the daemon runs Shutdown (priority 0 advert, VIP
// removed) and exits.
func (m *model) shutdown(r *router) {
	if !r.running() {
		return
	}
	wasMaster := r.m.State() == vip.Master && r.hasVIP
	lastSent := r.lastSent
	r.d.Shutdown(m.w.Now())
	r.lastSent = lastSent // the priority 0 advert itself does not count
	m.stop(r)
	if wasMaster {
		m.expectHandover(r)
	}
}

// expectHandover arms the graceful-handover check: some running backup that
// hears the leaver over a clean link must hold the VIP within its
// Skew_Time + one advert interval (plus the delay), unless another fault
// starts or ends meanwhile.
func (m *model) expectHandover(from *router) {
	var bound time.Duration
	var candidates []*router
	for _, c := range m.routers {
		l := m.w.Net.Link(from.name, c.name)
		if c == from || !c.running() || c.m.State() != vip.Backup || !l.Clean() {
			continue
		}
		if c.failing && c.cfg.Tracks != nil && c.cfg.Tracks[0].Fault {
			continue // about to enter FAULT: it will not compete
		}
		if m.w.Now().Sub(from.lastSent) < l.Jitter {
			// The advert before the priority 0 one may overtake it, and a
			// backup then rightly waits Master_Down_Interval again.
			continue
		}
		b := c.m.SkewTime() + m.interval + m.w.Net.MaxDelay(from.name, c.name) + time.Millisecond
		bound = max(bound, b)
		candidates = append(candidates, c)
	}
	if bound == 0 {
		return
	}
	for _, h := range m.holders() {
		if h != from {
			return // someone else holds it already (a split brain healing)
		}
	}
	m.res.Stats["checked_handovers"]++
	h := &handover{from: from, deadline: m.w.Now().Add(bound), changes: m.faultChanges + 1}
	m.handover = h
	m.w.At(h.deadline, func() {
		if m.handover != h {
			return
		}
		m.handover = nil
		if h.satisfied || m.faultChanges != h.changes {
			return
		}
		competing := false
		for _, c := range candidates {
			competing = competing || (c.running() && c.m.State() != vip.Fault)
		}
		if !competing {
			return // every candidate went to FAULT meanwhile (a tracked check)
		}
		m.violate(InvHandover, "%s left gracefully at %.3fs and no backup took over within %v: %s",
			from.name, (h.deadline.Add(-bound)).Sub(sim.Epoch).Seconds(), bound, m.states())
	})
}
