// Package core is the pure routing decision logic of redisha-proxy.
//
// The core takes timestamped events (backend health results, per-sentinel
// views of the master, sentinel pub/sub notices, timer ticks) and returns
// actions: where new client connections go (or why they are held or
// refused), which backends' client connections must be closed, and which
// backend or sentinel to probe next. It owns the probe schedule (regular
// interval, kicked probes no closer than the fast interval, a deadline per
// probe) and backend discovery, and says when it next needs a Tick (Next).
// It holds no goroutines, sockets or clocks, so the simulator drives the
// very same code under virtual time. See docs/proxy.md for the safety
// argument and docs/architecture.md for the contract.
package core

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Role is what a backend reports in INFO replication.
type Role string

// Roles a backend can report.
const (
	RoleMaster  Role = "master"
	RoleReplica Role = "slave"
)

// Config tunes the core. Zero durations take the defaults below.
type Config struct {
	// MasterName is the sentinel master name; notices about other masters are ignored.
	MasterName string
	// Sentinels are the configured sentinels (their addresses). N = len(Sentinels)
	// fixes the majority ⌊N/2⌋+1; views from sentinels not listed never count.
	Sentinels []string
	// Backends are the nodes the driver health-checks. Without sentinels a
	// sole role:master claimant is adopted only once every backend has a
	// fresh result, so a slow answer cannot hide a second claimant.
	Backends []string
	// NoMajorityGrace is how long new connections still go to the current master
	// after the sentinel majority view is lost (0 = refuse at once).
	NoMajorityGrace time.Duration
	// HealthTTL: a health result older than this is treated as unknown.
	HealthTTL time.Duration
	// ViewTTL: a sentinel view older than this does not count.
	ViewTTL time.Duration
	// FenceTimeout bounds how long a failover notice keeps the old master fenced
	// when no abort notice and no newer view arrives.
	FenceTimeout time.Duration
	// KeepOnSwitch keeps client connections open on a deposed master instead
	// of closing them (closing is the safe default).
	KeepOnSwitch bool
	// MaxReplicaLag is the largest replication offset gap (bytes) for a replica
	// to get read-only traffic; 0 means no limit.
	MaxReplicaLag int64

	// CheckInterval is the regular period of every probe (counted from the
	// end of the previous one).
	CheckInterval time.Duration
	// CheckTimeout is each probe's deadline, from its start.
	CheckTimeout time.Duration
	// FastInterval is the least gap between the starts of two probes of one
	// target when a probe is kicked (a decision is pending).
	FastInterval time.Duration
	// FastWindow is how long after a notice or a route change kicks are
	// honoured (0: never).
	FastWindow time.Duration
	// MaxDiscovered bounds the backends probed because a sentinel named
	// them without their being configured (0: DefaultMaxDiscovered).
	MaxDiscovered int
	// HelloViews also counts a configured sentinel's view heard on the data
	// nodes' __sentinel__:hello channel (Hello), under the rules in
	// hello.go. Sentinel probes then also ask SENTINEL MYID.
	HelloViews bool
	// PromotionFastPath routes, provisionally, to the replica a
	// majority-elected failover leader has just told REPLICAOF NO ONE, as
	// soon as it answers role:master, before the sentinels' views name it
	// (promote.go). Sentinel probes then also ask SENTINEL MYID.
	PromotionFastPath bool
	// PromotionConfirm bounds a provisional route: without a majority view
	// confirming it by then it is withdrawn (0: DefaultPromotionConfirm).
	PromotionConfirm time.Duration
}

// AsksRunID reports whether sentinel probes also ask SENTINEL MYID: the
// hello path and the promotion fast path match sentinels by run id.
func (c Config) AsksRunID() bool { return c.HelloViews || c.PromotionFastPath }

// Defaults for zero Config durations.
const (
	DefaultHealthTTL     = 3 * time.Second
	DefaultViewTTL       = 5 * time.Second
	DefaultFenceTimeout  = 15 * time.Second
	DefaultCheckInterval = time.Second
	DefaultCheckTimeout  = 500 * time.Millisecond
	DefaultFastInterval  = 10 * time.Millisecond
	DefaultMaxDiscovered = 32
)

func (c Config) withDefaults() Config {
	if c.HealthTTL <= 0 {
		c.HealthTTL = DefaultHealthTTL
	}
	if c.ViewTTL <= 0 {
		c.ViewTTL = DefaultViewTTL
	}
	if c.FenceTimeout <= 0 {
		c.FenceTimeout = DefaultFenceTimeout
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = DefaultCheckTimeout
	}
	if c.FastInterval <= 0 {
		c.FastInterval = DefaultFastInterval
	}
	if c.MaxDiscovered <= 0 {
		c.MaxDiscovered = DefaultMaxDiscovered
	}
	return c
}

// Validate reports what would make the core misbehave: a sentinel or
// backend listed twice (it would count twice), sentinels without a master
// name, negative durations.
func (c Config) Validate() error {
	var errs []error
	dup := func(what string, list []string) {
		seen := map[string]bool{}
		for _, x := range list {
			if x == "" {
				errs = append(errs, fmt.Errorf("%s: empty address", what))
			}
			if seen[x] {
				errs = append(errs, fmt.Errorf("%s: %q listed twice", what, x))
			}
			seen[x] = true
		}
	}
	dup("sentinels", c.Sentinels)
	dup("backends", c.Backends)
	if len(c.Sentinels) > 0 && c.MasterName == "" {
		errs = append(errs, errors.New("master name: required with sentinels"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"no-majority grace", c.NoMajorityGrace}, {"health TTL", c.HealthTTL}, {"view TTL", c.ViewTTL},
		{"fence timeout", c.FenceTimeout}, {"check interval", c.CheckInterval}, {"check timeout", c.CheckTimeout},
		{"fast interval", c.FastInterval}, {"fast window", c.FastWindow}, {"promotion confirm", c.PromotionConfirm}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v must not be negative", d.name, d.v))
		}
	}
	if c.MaxReplicaLag < 0 {
		errs = append(errs, fmt.Errorf("max replica lag: %d must not be negative", c.MaxReplicaLag))
	}
	return errors.Join(errs...)
}

// Quorum is ⌊N/2⌋+1 of the configured sentinels (0 when none are configured).
func (c Config) Quorum() int {
	if len(c.Sentinels) == 0 {
		return 0
	}
	return len(c.Sentinels)/2 + 1
}

// Health is one health-check result for a backend.
//
// At is when the observation may be dated from: the time the probe was
// sent, because the answer was given somewhere between then and the read,
// and freshness (HealthTTL) counts from At. The event's now is when the
// driver read it, which moves the core's clock. Keeping both means an answer
// read late (the proxy was frozen) is judged as old while the grace and
// fence rules still run on the current time.
type Health struct {
	At      time.Time
	Backend string // "ip:port"
	OK      bool   // PING and INFO replication both answered
	Err     string
	Role    Role
	// LinkUp is master_link_status:up (replicas only).
	LinkUp bool
	// MasterAddr is the master a replica follows ("ip:port").
	MasterAddr string
	// Offset is master_repl_offset (masters) or slave_repl_offset (replicas).
	Offset int64
	// Probe is the ID of the Probe action this answers; 0 for evidence that
	// answers no probe. An answer to a probe that is no longer in flight
	// (it timed out, or was superseded) is ignored.
	Probe uint64
}

// View is one sentinel's answer about the master. At is as in Health:
// ViewTTL counts from At, the probe's start.
type View struct {
	At       time.Time
	Sentinel string
	OK       bool // the sentinel answered and knows the master name
	Err      string
	Addr     string // "ip:port" the sentinel currently names as master
	Epoch    int64  // config-epoch
	Probe    uint64 // as in Health
	// RunID is the sentinel's run id (SENTINEL MYID, what its hellos carry);
	// "" when not asked or not answered.
	RunID string
}

// Notice is one sentinel pub/sub message, received at the event's now.
type Notice struct {
	Sentinel string
	Channel  string
	Payload  string
}

// Route is the decision for new client connections.
type Route struct {
	// Master is the backend new connections go to; "" means none.
	Master string
	// Hold means a decision is expected shortly (a failover is in flight): the
	// driver may hold new connections for a moment before refusing them.
	Hold bool
	// Reason explains why there is no master, for the refusal error and logs.
	Reason string
}

// Action is something the driver must do, in the order given.
type Action interface{ isAction() }

// SetRoute: new read-write connections follow Route from now on. It comes
// before any Close of the same event, so a connection registered after the
// close sees the new route.
type SetRoute struct{ Route Route }

// Close asks the driver to close every client connection to Backend.
type Close struct {
	Backend string
	Reason  string
}

// Switch records a change of routed master (for logs and metrics).
type Switch struct{ From, To string }

// ProbeKind says what a probe asks.
type ProbeKind int

// Probe kinds.
const (
	// ProbeBackend: PING and INFO replication to a backend.
	ProbeBackend ProbeKind = iota + 1
	// ProbeSentinel: SENTINEL MASTER and SENTINEL GET-MASTER-ADDR-BY-NAME
	// for MasterName, pipelined.
	ProbeSentinel
)

// Probe asks the driver to probe Target now. The answer goes back as a
// Health or View carrying ID and dated At; without an answer by Deadline
// the core counts the probe as failed ("i/o timeout").
type Probe struct {
	Kind     ProbeKind
	Target   string
	ID       uint64
	At       time.Time
	Deadline time.Time
	// Discovered: a sentinel named this backend; it is not configured.
	Discovered bool
}

func (SetRoute) isAction() {}
func (Close) isAction()    {}
func (Switch) isAction()   {}
func (Probe) isAction()    {}

// output is what one evaluation asks for, before it becomes actions.
type output struct {
	Route    Route
	Close    []Close
	CheckNow bool    // re-check all backends and re-query all sentinels now
	Switch   *Switch // set when traffic moved to a different master
	Changed  bool    // Route differs from the previous step's
}

type fence struct {
	addr  string
	until time.Time
	epoch int64 // majority epoch when fenced; a newer view lifts the fence
}

// Core is the routing state machine. It is not safe for concurrent use.
type Core struct {
	cfg     Config
	now     time.Time
	health  map[string]Health
	views   map[string]View
	current string // master we route to; "" when none
	last    string // last master we routed to, for switch detection
	fence   *fence
	route   Route

	agreed      string
	agreedEpoch int64
	haveMajor   bool
	lostMajor   time.Time // when the majority view was lost; zero while we have one
	// majorUntil is when the current majority expires if no newer view
	// arrives: the quorum-th newest supporting view's At plus ViewTTL.
	majorUntil time.Time
	switches   int

	// The hello path (hello.go).
	runIDs     map[string]string // configured sentinel -> run id it gave directly
	hellos     map[string]View   // configured sentinel -> its kept hello view
	helloStats HelloStats
	stallAt    time.Time // the first step after the last gap longer than stallGap

	// The promotion fast path (promote.go).
	votes      map[string]vote // configured sentinel -> its latest +vote-for-leader
	promo      *promotion      // an announced promotion awaiting (b) and (c)
	prov       *provisional    // the provisional route, while unconfirmed
	fastDone   int64           // highest epoch whose provisional route was withdrawn
	fastStats  FastPathStats
	fastEvents []FastPathEvent // to report with the step's actions

	sched
}

// New validates cfg and returns a core with no knowledge: it refuses until
// evidence arrives, and its first Tick (Next() is now) starts a probe of
// every backend and sentinel.
func New(cfg Config, now time.Time) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy core: %w", err)
	}
	c := &Core{cfg: cfg.withDefaults(), now: now, health: map[string]Health{}, views: map[string]View{},
		runIDs: map[string]string{}, hellos: map[string]View{}, votes: map[string]vote{}}
	c.route = Route{Reason: "starting: no health or sentinel results yet", Hold: true}
	c.syncTargets(now)
	return c, nil
}

// Config returns the active configuration (with defaults applied).
func (c *Core) Config() Config { return c.cfg }

// Reconfigure replaces the configuration, keeping state, and re-evaluates:
// the route is announced again, removed targets stop being probed, new ones
// are probed at once.
func (c *Core) Reconfigure(now time.Time, cfg Config) ([]Action, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy core: %w", err)
	}
	c.cfg = cfg.withDefaults()
	keep := map[string]bool{}
	for _, s := range c.cfg.Sentinels {
		keep[s] = true
	}
	for s := range c.views {
		if !keep[s] {
			delete(c.views, s)
		}
	}
	for s := range c.hellos {
		if !keep[s] {
			delete(c.hellos, s)
		}
	}
	for s := range c.runIDs {
		if !keep[s] {
			delete(c.runIDs, s)
		}
	}
	for s := range c.votes {
		if !keep[s] {
			delete(c.votes, s)
		}
	}
	c.advance(now)
	c.syncTargets(c.now)
	var acts []Action
	c.expire(&acts)
	c.apply(&acts, c.evaluate(true))
	return c.finish(acts), nil
}

// Reprobe abandons every probe in flight and probes every target at once
// (the driver's credentials changed, say).
func (c *Core) Reprobe(now time.Time) []Action {
	c.advance(now)
	for _, t := range c.targets {
		t.inflight, t.kicked, t.next = false, false, c.now
	}
	return c.Tick(now)
}

// Route returns the current decision for new connections.
func (c *Core) Route() Route { return c.route }

// Health feeds one backend health result.
func (c *Core) Health(now time.Time, h Health) []Action {
	c.advance(h.At)
	c.advance(now)
	var acts []Action
	if h.Probe != 0 && !c.answered(ProbeBackend, h.Backend, h.Probe) {
		return c.Tick(now)
	}
	c.expire(&acts)
	c.apply(&acts, c.health1(h))
	return c.finish(acts)
}

func (c *Core) health1(h Health) output {
	if prev, ok := c.health[h.Backend]; !ok || !h.At.Before(prev.At) {
		c.health[h.Backend] = h
	}
	return c.evaluate(false)
}

// View feeds one sentinel's view. A view naming a master that is not
// configured makes it a probe target (up to MaxDiscovered), so its role can
// be seen.
func (c *Core) View(now time.Time, v View) []Action {
	c.advance(v.At)
	c.advance(now)
	if v.Probe != 0 && !c.answered(ProbeSentinel, v.Sentinel, v.Probe) {
		return c.Tick(now)
	}
	var acts []Action
	c.expire(&acts)
	if v.OK {
		c.discover(v.Addr)
	}
	c.apply(&acts, c.view1(v))
	return c.finish(acts)
}

func (c *Core) view1(v View) output {
	if !c.isConfiguredSentinel(v.Sentinel) {
		return c.evaluate(false)
	}
	if prev, ok := c.views[v.Sentinel]; !ok || !v.At.Before(prev.At) {
		c.views[v.Sentinel] = v
		if v.OK && v.RunID != "" {
			c.runIDs[v.Sentinel] = v.RunID
		}
	}
	return c.evaluate(false)
}

// Notice feeds one sentinel pub/sub message received at now. Every notice
// opens the fast window.
func (c *Core) Notice(now time.Time, n Notice) []Action {
	c.advance(now)
	c.lastUrgent = now
	var acts []Action
	c.expire(&acts)
	c.apply(&acts, c.notice(n))
	return c.finish(acts)
}

// Subscribed: the driver (re)subscribed to a sentinel's events. Notices
// may have been missed meanwhile, so its view is queried as soon as the
// fast interval allows.
func (c *Core) Subscribed(now time.Time, sentinel string) []Action {
	c.advance(now)
	if t := c.target(ProbeSentinel, sentinel); t != nil {
		c.kick(t)
	}
	return c.Tick(now)
}

// Tick runs the time-based rules: probe deadlines, grace and fence expiry,
// freshness, and due probes.
func (c *Core) Tick(now time.Time) []Action {
	c.advance(now)
	var acts []Action
	c.expire(&acts)
	c.apply(&acts, c.evaluate(false))
	return c.finish(acts)
}

// apply turns an evaluation into actions and runs the fast-window rule:
// while a decision is pending within FastWindow of the last notice or
// route change, every target is probed as soon as the fast interval allows.
func (c *Core) apply(acts *[]Action, out output) {
	if out.Changed {
		c.lastUrgent = c.now
		*acts = append(*acts, SetRoute{Route: out.Route})
	}
	for _, cl := range out.Close {
		*acts = append(*acts, cl)
	}
	if out.Switch != nil {
		*acts = append(*acts, *out.Switch)
	}
	for _, e := range c.fastEvents {
		*acts = append(*acts, e)
	}
	c.fastEvents = c.fastEvents[:0]
	if out.CheckNow && c.now.Sub(c.lastUrgent) < c.cfg.FastWindow {
		for _, t := range c.targets {
			c.kick(t)
		}
	}
}

func (c *Core) advance(at time.Time) {
	if at.After(c.now) {
		if at.Sub(c.now) > c.stallGap() {
			// The core is stepped at least every check interval (probes):
			// a longer gap means this process did not run (frozen,
			// starved), and input read now may have waited meanwhile.
			c.stallAt = at
		}
		c.now = at
	}
}

func (c *Core) isConfiguredSentinel(s string) bool {
	for _, x := range c.cfg.Sentinels {
		if x == s {
			return true
		}
	}
	return false
}

// notice reacts to a sentinel pub/sub message about our master.
func (c *Core) notice(n Notice) output {
	if n.Channel == chanVote && c.cfg.PromotionFastPath {
		c.noteVote(n.Sentinel, n.Payload)
	}
	p, ok := ParseNotice(n.Channel, n.Payload)
	if !ok || (p.Master != "" && p.Master != c.cfg.MasterName) {
		return c.evaluate(false)
	}
	var pre []Close
	switch p.Effect {
	case EffectFence:
		// A failover of the node we route to is under way: from here on writes
		// to it may be lost, so stop sending any until a majority view and the
		// node's own role agree on who the master is.
		if c.current != "" && p.OldAddr == c.current && p.NewAddr != c.current {
			c.fence = &fence{addr: c.current, until: c.now.Add(c.cfg.FenceTimeout), epoch: c.agreedEpoch}
			pre = c.depose("sentinel " + n.Sentinel + " reports " + n.Channel)
		}
	case EffectAbort:
		if c.fence != nil && (p.OldAddr == "" || p.OldAddr == c.fence.addr) {
			c.fence = nil
		}
		c.promo = nil
	}
	if p.Effect == EffectFence {
		c.notePromotion(n)
	}
	out := c.evaluate(false)
	out.Close = append(pre, out.Close...)
	out.CheckNow = true
	return out
}

// depose stops routing to the current master and, unless configured
// otherwise, asks to close its client connections.
func (c *Core) depose(reason string) []Close {
	if c.current == "" {
		return nil
	}
	addr := c.current
	c.current = ""
	if c.cfg.KeepOnSwitch {
		return nil
	}
	return []Close{{Backend: addr, Reason: reason}}
}

func (c *Core) fresh(h Health) bool { return !c.now.After(h.At.Add(c.cfg.HealthTTL)) }

// claims reports whether addr has a fresh result saying role:master.
func (c *Core) claims(addr string) bool {
	h, ok := c.health[addr]
	return ok && c.fresh(h) && h.OK && h.Role == RoleMaster
}

// denies reports whether addr has a fresh result with a role other than master.
func (c *Core) denies(addr string) bool {
	h, ok := c.health[addr]
	return ok && c.fresh(h) && h.OK && h.Role != RoleMaster
}

// majority returns the address named by at least ⌊N/2⌋+1 configured
// sentinels at the highest config epoch seen among fresh views.
func (c *Core) majority() (addr string, epoch int64, ok bool) {
	q := c.cfg.Quorum()
	if q == 0 {
		return "", 0, false
	}
	eff := c.effective()
	var top int64 = -1
	for _, v := range eff {
		if v.Epoch > top {
			top = v.Epoch
		}
	}
	if top < 0 {
		return "", 0, false
	}
	count := map[string]int{}
	for _, v := range eff {
		if v.Epoch == top {
			count[v.Addr]++
		}
	}
	for a, n := range count {
		if n >= q {
			return a, top, true
		}
	}
	return "", top, false
}

// majorityExpiry is when the views naming addr at epoch stop being a
// majority by age alone.
func (c *Core) majorityExpiry(addr string, epoch int64) time.Time {
	var untils []time.Time
	for _, v := range c.effective() {
		if v.Epoch == epoch && v.Addr == addr {
			untils = append(untils, v.until)
		}
	}
	slices.SortFunc(untils, func(a, b time.Time) int { return b.Compare(a) })
	q := c.cfg.Quorum()
	if q == 0 || len(untils) < q {
		return c.now
	}
	return untils[q-1]
}

func (c *Core) viewFresh(v View) bool {
	return v.OK && v.Addr != "" && !c.now.After(v.At.Add(c.cfg.ViewTTL))
}

func (c *Core) fenced(addr string) bool { return c.fence != nil && c.fence.addr == addr }

// evaluate applies the routing rules to the current evidence.
func (c *Core) evaluate(force bool) output {
	var out output
	if c.fence != nil && !c.now.Before(c.fence.until) {
		c.fence = nil
	}
	prev := c.route
	if len(c.cfg.Sentinels) > 0 {
		out.Close = c.evaluateWithSentinels()
	} else {
		out.Close = c.evaluateAlone()
	}
	if c.current != "" && c.current != c.last {
		if c.last != "" {
			out.Switch = &Switch{From: c.last, To: c.current}
			c.switches++
		}
		c.last = c.current
	}
	out.Route = c.route
	out.Changed = force || prev != c.route
	if c.route.Master == "" && c.route.Hold {
		// While a decision is pending, ask for evidence on every step the
		// driver makes rather than waiting for the next regular poll.
		out.CheckNow = true
	}
	c.fastKick()
	return out
}

func (c *Core) evaluateWithSentinels() []Close {
	addr, epoch, ok := c.majority()
	if !ok {
		if c.lostMajor.IsZero() {
			c.lostMajor = c.now
			// Expired while the core was not stepped (the proxy was frozen):
			// the grace counts from the expiry, not from the late step that
			// noticed it, or a long freeze would earn a full grace on top.
			if c.haveMajor && c.majorUntil.Before(c.now) {
				c.lostMajor = c.majorUntil
			}
		}
		c.haveMajor = false
	} else {
		c.haveMajor, c.lostMajor = true, time.Time{}
		c.majorUntil = c.majorityExpiry(addr, epoch)
		c.agreed, c.agreedEpoch = addr, epoch
		if c.fence != nil && c.fence.addr == addr && epoch > c.fence.epoch {
			// A configuration newer than the one we fenced names the node again.
			c.fence = nil
		}
	}
	// The promotion fast path (off by default) may decide first: it keeps
	// or withdraws a provisional route (promote.go).
	fastCloses, handled := c.fastPath(addr, epoch, ok)
	if handled {
		return fastCloses
	}
	if !ok {
		return append(fastCloses, c.withoutMajority()...)
	}
	return append(fastCloses, c.withMajority(addr, epoch)...)
}

// withMajority is rule 1 of docs/proxy.md: route to the agreed master if
// it reports role:master.
func (c *Core) withMajority(addr string, epoch int64) []Close {
	var closes []Close
	if c.current != "" && c.current != addr {
		closes = c.depose(fmt.Sprintf("sentinel majority names %s at epoch %d", addr, epoch))
	}
	switch {
	case c.fenced(addr):
		c.route = Route{Hold: true, Reason: fmt.Sprintf("failover of %s in progress", addr)}
	case c.claims(addr):
		c.current = addr
		if c.fence != nil && c.fence.addr != addr {
			c.fence = nil
		}
		c.route = Route{Master: addr}
	default:
		if c.current == addr && c.denies(addr) {
			closes = append(closes, c.depose(fmt.Sprintf("%s no longer reports role:master", addr))...)
		}
		c.route = Route{Hold: true, Reason: fmt.Sprintf("sentinel majority names %s at epoch %d but it does not report role:master", addr, epoch)}
	}
	return closes
}

// withoutMajority: keep the current master while it claims master, and let
// new connections reach it only during the grace period.
func (c *Core) withoutMajority() []Close {
	reason := fmt.Sprintf("no view agreed by %d of %d sentinels", c.cfg.Quorum(), len(c.cfg.Sentinels))
	if c.current == "" {
		// During a failover the new epoch reaches the sentinels one by one:
		// the majority is briefly lost, and a decision is expected shortly.
		c.route = Route{Reason: reason, Hold: c.fence != nil}
		return nil
	}
	if c.denies(c.current) {
		closes := c.depose(fmt.Sprintf("%s no longer reports role:master", c.current))
		c.route = Route{Reason: reason}
		return closes
	}
	if c.claims(c.current) && c.now.Sub(c.lostMajor) < c.cfg.NoMajorityGrace {
		c.route = Route{Master: c.current}
		return nil
	}
	// Existing connections stay; new ones are refused.
	c.route = Route{Reason: reason}
	return nil
}

// evaluateAlone is the rule without sentinels: stay on the current master
// while it claims master; adopt a new one only when it is the sole claimant.
func (c *Core) evaluateAlone() []Close {
	var closes []Close
	if c.current != "" {
		if c.claims(c.current) {
			c.route = Route{Master: c.current}
			return nil
		}
		if c.denies(c.current) {
			closes = c.depose(fmt.Sprintf("%s no longer reports role:master", c.current))
		}
	}
	var claimants []string
	for a := range c.health {
		if c.claims(a) {
			claimants = append(claimants, a)
		}
	}
	sort.Strings(claimants)
	switch {
	case c.current != "":
		// Current master unreachable or unknown: keep its connections, but
		// do not move anywhere until it answers or clearly steps down.
		c.route = Route{Hold: true, Reason: fmt.Sprintf("current master %s does not answer", c.current)}
	case len(claimants) == 1 && !c.allKnown():
		c.route = Route{Hold: true, Reason: "waiting for a health result from every backend"}
	case len(claimants) == 1:
		c.current = claimants[0]
		c.route = Route{Master: c.current}
	case len(claimants) > 1:
		c.route = Route{Reason: fmt.Sprintf("%d nodes report role:master %v and none is current", len(claimants), claimants)}
	default:
		c.route = Route{Hold: true, Reason: "no node reports role:master"}
	}
	return closes
}

// allKnown reports whether every configured backend has a fresh result.
func (c *Core) allKnown() bool {
	for _, b := range c.cfg.Backends {
		h, ok := c.health[b]
		if !ok || !c.fresh(h) {
			return false
		}
	}
	return true
}

// Replicas returns backends fit for read-only traffic: fresh, role replica,
// link up, following the current master, within MaxReplicaLag.
func (c *Core) Replicas() []string {
	var out []string
	master, haveMaster := c.health[c.current]
	for a, h := range c.health {
		if !c.fresh(h) || !h.OK || h.Role != RoleReplica || !h.LinkUp {
			continue
		}
		if c.current != "" && h.MasterAddr != "" && h.MasterAddr != c.current {
			continue
		}
		if c.cfg.MaxReplicaLag > 0 && haveMaster && c.fresh(master) && master.Offset-h.Offset > c.cfg.MaxReplicaLag {
			continue
		}
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// BackendState is a backend's last known state, for metrics and /healthz.
type BackendState struct {
	Addr   string
	At     time.Time // when the last result's probe was sent (what freshness counts from)
	Fresh  bool
	OK     bool
	Role   Role
	LinkUp bool
	Offset int64
	Err    string
}

// Snapshot is a read-only summary of the core's state.
type Snapshot struct {
	Route        Route
	Current      string
	Agreed       string
	AgreedEpoch  int64
	HaveMajority bool
	Fenced       string
	Switches     int
	Backends     []BackendState
	Sentinels    []SentinelState // every configured sentinel, heard from or not
	// SentinelsFresh counts the configured sentinels whose view counts now
	// (directly, or through a corroborated hello).
	SentinelsFresh int
	// SentinelsViaHello counts those among them that count through a hello.
	SentinelsViaHello int
	// HelloViews: the hello path is on; Hellos counts what became of them.
	HelloViews bool
	Hellos     HelloStats
	// PromotionFastPath: the fast path is on. Provisional is the
	// provisional route's master ("" when none), ProvisionalEpoch its
	// epoch, ProvisionalUntil when it is withdrawn unless confirmed;
	// FastPath counts its outcomes.
	PromotionFastPath bool
	Provisional       string
	ProvisionalEpoch  int64
	ProvisionalUntil  time.Time
	FastPath          FastPathStats
}

// SentinelState is a configured sentinel's last view, for the status
// endpoint.
type SentinelState struct {
	Addr   string
	Heard  bool      // a view (or an error) was received
	At     time.Time // when the last view's probe was sent
	Fresh  bool      // the view still counts (ViewTTL)
	OK     bool
	Master string // the master it names
	Epoch  int64  // its config epoch
	Err    string
	// RunID is the run id it gave directly (SENTINEL MYID).
	RunID string
	// Hello* describe its last kept hello view (the hello path):
	// when it was heard, what it names, whether it is fresh, and whether
	// it counts now (fresh, corroborated, and it beats the direct view).
	HelloHeard  bool
	HelloAt     time.Time
	HelloMaster string
	HelloEpoch  int64
	HelloFresh  bool
	ViaHello    bool
}

// Snapshot summarises the state for metrics and health endpoints.
func (c *Core) Snapshot() Snapshot {
	s := Snapshot{Route: c.route, Current: c.current, Agreed: c.agreed, AgreedEpoch: c.agreedEpoch,
		HaveMajority: c.haveMajor, Switches: c.switches}
	if c.fence != nil {
		s.Fenced = c.fence.addr
	}
	for a, h := range c.health {
		s.Backends = append(s.Backends, BackendState{Addr: a, At: h.At, Fresh: c.fresh(h), OK: h.OK, Role: h.Role, LinkUp: h.LinkUp, Offset: h.Offset, Err: h.Err})
	}
	sort.Slice(s.Backends, func(i, j int) bool { return s.Backends[i].Addr < s.Backends[j].Addr })
	eff := c.effective()
	via := map[string]bool{}
	for _, v := range eff {
		s.SentinelsFresh++
		if v.hello {
			s.SentinelsViaHello++
			via[v.Sentinel] = true
		}
	}
	s.HelloViews, s.Hellos = c.cfg.HelloViews, c.helloStats
	s.PromotionFastPath, s.FastPath = c.cfg.PromotionFastPath, c.fastStats
	if pr := c.prov; pr != nil {
		s.Provisional, s.ProvisionalEpoch, s.ProvisionalUntil = pr.addr, pr.epoch, pr.until
	}
	for _, a := range c.cfg.Sentinels {
		st := SentinelState{Addr: a, RunID: c.runIDs[a], ViaHello: via[a]}
		if v, ok := c.views[a]; ok {
			st.Heard, st.At, st.Fresh, st.OK, st.Master, st.Epoch, st.Err = true, v.At, c.viewFresh(v), v.OK, v.Addr, v.Epoch, v.Err
		}
		if h, ok := c.hellos[a]; ok {
			st.HelloHeard, st.HelloAt, st.HelloMaster, st.HelloEpoch, st.HelloFresh = true, h.At, h.Addr, h.Epoch, c.viewFresh(h)
		}
		s.Sentinels = append(s.Sentinels, st)
	}
	return s
}
