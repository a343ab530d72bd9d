package proxysim

import (
	"time"

	"github.com/redisha/redisha/components/proxy/core"
)

// The promotion fast path in the simulator (Options.FastPath): the
// proxy may route to the replica a leader is promoting before any majority
// view names it (components/proxy/core/promote.go). The specification
// allows exactly that: a route outside the majority rule is a provisional
// route when the model's ground truth has a failover that a majority of
// the sentinels elected (its leader's votes) promoting that node, the
// route moved there after that failover started, no majority view the
// proxy holds names a third node or the old master at the failover's epoch
// or later, and it has lasted at most the confirmation bound.

// promotionRec is one failover a leader started: its epoch, the votes it
// was elected with, the old master and the promoted replica.
type promotionRec struct {
	epoch    int64
	leader   string
	old, new string
	votes    int
	at       time.Time
}

// asksRunID: sentinel answers carry SENTINEL MYID (the hello path, the
// fast path).
func (m *model) asksRunID() bool { return m.opt.Hello || m.opt.FastPath }

// provisionalBound is the core's confirmation bound plus the scheduling
// slack of the other ground-truth checks.
func provisionalBound() time.Duration { return core.DefaultPromotionConfirm + 3*slack }

// promotionOf is the latest majority-elected failover promoting x that
// began before the route moved to x.
func (m *model) promotionOf(x string) (promotionRec, bool) {
	need := len(m.sentinels)/2 + 1
	for i := len(m.promotions) - 1; i >= 0; i-- {
		p := m.promotions[i]
		if p.new == x && p.votes >= need && !m.routeSince.Before(p.at) {
			return p, true
		}
	}
	return promotionRec{}, false
}

// inProvisionalWindow: the route to x may be a provisional one still
// within its bound (the ground-truth episodes do not count it meanwhile).
func (m *model) inProvisionalWindow(x string) bool {
	if !m.opt.FastPath || x == "" {
		return false
	}
	_, ok := m.promotionOf(x)
	return ok && m.w.Now().Sub(m.routeSince) <= provisionalBound()
}

// provisional reports whether the route to x is a provisional route the
// specification allows, and its epoch. It is consulted only when the
// majority the proxy holds does not name x; a route outside the rule that
// outlives the bound is InvProvisional.
func (m *model) provisional(x string) (int64, bool) {
	if !m.opt.FastPath || x == "" {
		return 0, false
	}
	now := m.w.Now()
	rc := m.px.cfg.Routing
	need := len(m.sentinels)/2 + 1
	maj, ep, _, ok := m.orRead.majority(now, rc.ViewTTL, need)
	if ok && maj == x {
		return 0, false // the majority rule itself
	}
	p, found := m.promotionOf(x)
	if !found {
		return 0, false
	}
	if ok && !(maj == p.old && ep < p.epoch) {
		return 0, false // a majority names another configuration: the rule applies
	}
	if o := m.orRead; o.lastMaj == x && o.lastEp >= p.epoch && (ok || now.Sub(o.lostAt) < rc.NoMajorityGrace) {
		// Confirmed: a majority named x at the promotion's epoch (through
		// hellos, say) and the rule still allows it within its grace; the
		// majority rule's own invariants judge the route from then on.
		return 0, false
	}
	if d := now.Sub(m.routeSince); d > provisionalBound() {
		m.violate(InvProvisional, "routes to %s, promoted by %s in epoch %d, for %v without a majority view naming it (bound %v): %s",
			x, p.leader, p.epoch, d, core.DefaultPromotionConfirm, m.states())
	}
	m.res.Stats["provisional_steps"]++
	return p.epoch, true
}
