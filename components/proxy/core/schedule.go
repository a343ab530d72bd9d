package core

import "time"

// The probe schedule: every backend (configured or discovered) and every
// sentinel is one target, probed at the regular interval after its previous
// probe ends, at once when kicked but never sooner than FastInterval after
// its previous probe started, and counted as failed at its deadline. A
// probe's answer carries its ID; an answer to a probe that timed out is
// ignored, as the daemon has closed that connection.

type target struct {
	kind       ProbeKind
	addr       string
	discovered bool
	inflight   bool
	id         uint64
	start      time.Time // of the last probe
	deadline   time.Time // of the probe in flight
	kicked     bool      // kicked while in flight: probe again when it ends
	next       time.Time // when the next probe is due (not in flight)
}

type sched struct {
	targets    []*target // probe order: backends, discovered backends, sentinels
	discovered []string
	lastUrgent time.Time // last notice or route change: the fast window counts from it
	nextID     uint64
}

// syncTargets makes the target list follow the configuration, keeping the
// schedule of targets that stay.
func (c *Core) syncTargets(now time.Time) {
	old := c.targets
	c.targets = nil
	add := func(kind ProbeKind, addr string, discovered bool) {
		if c.target(kind, addr) != nil {
			return
		}
		for _, t := range old {
			if t.kind == kind && t.addr == addr {
				t.discovered = discovered
				c.targets = append(c.targets, t)
				return
			}
		}
		c.targets = append(c.targets, &target{kind: kind, addr: addr, discovered: discovered, next: now})
	}
	for _, b := range c.cfg.Backends {
		add(ProbeBackend, b, false)
	}
	for _, b := range c.discovered {
		add(ProbeBackend, b, true)
	}
	for _, s := range c.cfg.Sentinels {
		add(ProbeSentinel, s, false)
	}
}

func (c *Core) target(kind ProbeKind, addr string) *target {
	for _, t := range c.targets {
		if t.kind == kind && t.addr == addr {
			return t
		}
	}
	return nil
}

// discover makes a master address a sentinel names a probe target, so the
// routing rules can see its role.
func (c *Core) discover(addr string) {
	if addr == "" || c.target(ProbeBackend, addr) != nil || len(c.discovered) >= c.cfg.MaxDiscovered {
		return
	}
	c.discovered = append(c.discovered, addr)
	c.targets = append(c.targets, &target{kind: ProbeBackend, addr: addr, discovered: true, next: c.now})
}

// kick asks for a probe of t as soon as the fast interval allows.
func (c *Core) kick(t *target) {
	if t.inflight {
		t.kicked = true
		return
	}
	t.kicked = false
	at := t.start.Add(c.cfg.FastInterval)
	if at.Before(c.now) {
		at = c.now
	}
	if at.Before(t.next) {
		t.next = at
	}
}

// done ends t's probe in flight and schedules the next one.
func (c *Core) done(t *target) {
	t.inflight = false
	t.next = c.now.Add(c.cfg.CheckInterval)
	if t.kicked {
		c.kick(t)
	}
}

// answered reports whether id is kind/addr's probe in flight and answered
// before its deadline, and ends it.
func (c *Core) answered(kind ProbeKind, addr string, id uint64) bool {
	t := c.target(kind, addr)
	if t == nil || !t.inflight || t.id != id || !c.now.Before(t.deadline) {
		return false // late: the probe failed at its deadline
	}
	c.done(t)
	return true
}

// expire fails every probe whose deadline has passed.
func (c *Core) expire(acts *[]Action) {
	for _, t := range c.targets {
		if !t.inflight || c.now.Before(t.deadline) {
			continue
		}
		c.done(t)
		const err = "i/o timeout"
		if t.kind == ProbeSentinel {
			c.apply(acts, c.view1(View{At: t.start, Sentinel: t.addr, Err: err}))
		} else {
			c.apply(acts, c.health1(Health{At: t.start, Backend: t.addr, Err: err}))
		}
	}
}

// finish appends a Probe for every target that is due.
func (c *Core) finish(acts []Action) []Action {
	for _, t := range c.targets {
		if t.inflight || t.next.After(c.now) {
			continue
		}
		c.nextID++
		t.inflight, t.kicked = true, false
		t.id, t.start, t.deadline = c.nextID, c.now, c.now.Add(c.cfg.CheckTimeout)
		acts = append(acts, Probe{Kind: t.kind, Target: t.addr, ID: t.id, At: t.start, Deadline: t.deadline, Discovered: t.discovered})
	}
	return acts
}

// Next is when the core next needs a Tick: the next probe or probe
// deadline, or the next moment a result, view, grace period or fence
// expires. It is never the zero time: some probe is always scheduled.
func (c *Core) Next() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(c.now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, t := range c.targets {
		switch {
		case t.inflight:
			consider(t.deadline)
		case !t.next.After(c.now):
			return c.now // due (a fresh core): tick at once
		default:
			consider(t.next)
		}
	}
	// Freshness ends just after At+TTL (fresh means not after it).
	for _, h := range c.health {
		consider(h.At.Add(c.cfg.HealthTTL + time.Nanosecond))
	}
	for _, v := range c.views {
		consider(v.At.Add(c.cfg.ViewTTL + time.Nanosecond))
	}
	for _, v := range c.hellos {
		consider(v.At.Add(c.cfg.ViewTTL + time.Nanosecond))
	}
	if c.fence != nil {
		consider(c.fence.until)
	}
	for _, t := range c.fastNext() {
		consider(t)
	}
	if !c.haveMajor && !c.lostMajor.IsZero() {
		consider(c.lostMajor.Add(c.cfg.NoMajorityGrace))
	}
	return next
}
