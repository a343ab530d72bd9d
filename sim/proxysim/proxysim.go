// Package proxysim runs the production driver and routing core of
// redisha-proxy (components/proxy/driver, components/proxy/core) under
// virtual time, fed by a model of three Redis
// nodes and three sentinels over a simulated network. Sentinels agree and
// disagree, epochs rise on failover, partitions cut the proxy from
// sentinels or backends, an old master comes back still claiming master,
// and a replica may claim master on its own. A seed draws a fault schedule;
// the model checks the routing promises after every step of the core.
package proxysim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redisha/redisha/components/proxy/config"
	"github.com/redisha/redisha/sim"
)

// Invariants checked, by name.
const (
	// InvNotMajority: the core routes to a node that the majority of fresh
	// sentinel views at the highest epoch does not name (outside the grace
	// period kept for the last agreed master).
	InvNotMajority = "route-not-majority"
	// InvTwoMasters: the core routed to two different masters in one epoch.
	InvTwoMasters = "two-masters-one-epoch"
	// InvNoMajority: without a majority view, the core still routes new
	// connections after the grace period.
	InvNoMajority = "no-majority-refuse"
	// InvCutOff: the proxy cannot reach a majority of sentinels, yet it
	// still routes after view TTL + grace.
	InvCutOff = "cut-off-refuse"
	// InvStale: a sentinel majority the proxy reaches names another master
	// at a higher epoch, yet the proxy keeps routing to the old one.
	InvStale = "stale-route"
	// InvDeadRoute: the routed node is down, frozen or a replica for longer
	// than two health checks.
	InvDeadRoute = "route-to-non-master"
	// InvFinal: after the faults, with sentinels agreeing on a master that
	// alone claims the role, the proxy does not route to it.
	InvFinal = "final-route"
	// InvCodec: a reply or notice failed to parse.
	InvCodec = "codec"
	// InvDeposed: the proxy routes to a node for longer than ViewTTL + grace
	// (+ a check timeout) while a majority of the sentinels (all of them,
	// reachable or not) name another master at an epoch no sentinel names
	// the routed node at: routing to a deposed master.
	InvDeposed = "route-to-deposed"
	// InvUnsaid: the proxy routes to a node that fewer than a majority of
	// the sentinels stated (answered the proxy or said in a genuine hello)
	// within ViewTTL + grace: it routes on evidence no sentinel gave
	// (forged, replayed or held-up hellos).
	InvUnsaid = "route-unsaid"
	// InvWitness (with Options.Witness): the witness voted for two leaders
	// in one epoch (across restarts), said a master was down less than
	// down-after since its last PONG, announced a configuration no sentinel
	// made, sent an unparsable hello, or did not restart from its state.
	InvWitness = "witness-voter"
	// InvProvisional (with Options.FastPath): a route outside the majority
	// rule that no majority-elected promotion of that node explains, or
	// that outlives the promotion fast path's confirmation bound
	// (core.DefaultPromotionConfirm, from when the route moved there).
	InvProvisional = "provisional-route"
)

// Invariants lists every invariant name, for tables.
var Invariants = []string{InvNotMajority, InvTwoMasters, InvNoMajority, InvCutOff, InvStale, InvDeadRoute, InvFinal, InvCodec, InvWitness, InvDeposed, InvUnsaid, InvProvisional}

// NoteOldViews is an advisory finding: the rules of InvNotMajority and
// InvNoMajority, with each view aged from when its sentinel answered (plus
// one check timeout) rather than from when the proxy read it. The driver
// stamps a reply when it reads it, so after the proxy was frozen it routes,
// for the few milliseconds until its kicked polls return, on answers given
// before the freeze.
const NoteOldViews = "route-on-old-views"

// Mutation plants a bug in the proxy's transport or router, to prove the
// invariants catch it.
type Mutation int

// Mutations.
const (
	NoMutation Mutation = iota
	// StaleViewCache: a sentinel that does not answer is replaced by its last
	// good answer, restamped (the transport ignores partitions).
	StaleViewCache
	// IgnoreEpoch: views reach the core with config-epoch 0.
	IgnoreEpoch
	// DropFailedChecks: health checks that time out never reach the core
	// as failures: the transport answers them from its last good reply.
	DropFailedChecks
	// StickyRoute: the router keeps routing to the last master when the
	// core stops naming one.
	StickyRoute
	// WitnessNoPersist: the witness adapter never writes its state, so a
	// restarted witness forgets its votes (needs Options.Witness).
	WitnessNoPersist
	// HelloAsView: every hello heard reaches the core as a direct view of
	// the sentinel it announces (a core that takes hellos uncorroborated,
	// without checking the run id); needs Options.Hello.
	HelloAsView
)

// Options tune a run.
type Options struct {
	Mutation   Mutation
	FaultPhase time.Duration // default 60s
	MaxFaults  int           // default 8
	// Witness makes sentinel s3 the production witness core.
	Witness bool
	// Hello turns the proxy's hello path on (routing.hello_views): sentinels
	// publish hellos on the nodes, the proxy hears them there.
	Hello bool
	// Forge adds a client that publishes forged hellos on the nodes (with Hello).
	Forge bool
	// FastPath turns the proxy's promotion fast path on
	// (routing.promotion_fast_path); with Witness the witness model answers
	// SENTINEL MYID too, so its +vote-for-leader counts (TestFastPathWithWitness).
	FastPath bool
}

const proxyName = "proxy"

type model struct {
	w         *sim.World
	opt       Options
	res       *sim.Result
	enc       *encoder
	nodes     []*redisNode
	sentinels []*sentinel
	quorum    int
	px        *proxyProc
	orRead    *oracle          // over views as the proxy stamped them
	orSaid    *oracle          // over views stamped when the sentinel answered
	routed    map[int64]string // epoch -> master routed to in it (across proxy restarts)
	eps       [3]episode
	seen      map[string]bool
	wit       *witnessProc
	announced map[string]bool  // "ip:port@epoch" configurations sentinels made
	votes     map[int64]string // epoch -> leader the witness voted for
	witVoted  uint64           // highest epoch the witness voted in

	noRoute   time.Duration
	lastRoute time.Time
	routing   bool

	// The hello path (hello.go).
	genuine  []string                        // a sample of genuine hello payloads (for replays)
	saidAt   map[string]map[string]time.Time // sentinel name -> address -> when it last stated it
	forger   *sim.Node
	depEp    episode   // InvDeposed, not restarted by faults
	lastStep time.Time // the proxy's last step (the oracle's stall rule)
	stallAt  time.Time

	// The promotion fast path (fastpath.go).
	promotions []promotionRec // every failover a leader started (ground truth)
	routeSince time.Time      // when the route last moved to its current master
}

// Run runs the schedule drawn from seed.
func Run(seed uint64, keepTrace bool, opt Options) sim.Result {
	if opt.FaultPhase <= 0 {
		opt.FaultPhase = 60 * time.Second
	}
	if opt.MaxFaults <= 0 {
		opt.MaxFaults = 8
	}
	w := sim.NewWorld(seed, keepTrace)
	res := sim.Result{Seed: seed, Stats: map[string]float64{}}
	m := &model{w: w, opt: opt, res: &res, enc: newEncoder(), quorum: 2, seen: map[string]bool{}, routed: map[int64]string{},
		announced: map[string]bool{}, votes: map[int64]string{}, saidAt: map[string]map[string]time.Time{}}
	r := sim.NewRand(seed, sim.StreamSchedule)
	m.setup(r)
	end := m.schedule(r)
	for _, line := range res.Schedule {
		w.Logf("schedule: %s", line)
	}
	for _, s := range m.sentinels {
		m.sentinelStart(s)
	}
	m.startProxy()
	m.forgeStart()
	if err := w.RunUntil(end); err != nil {
		res.Err = err
	}
	m.final()
	m.accountRoute()
	res.Stats["no_route_s"] = m.noRoute.Seconds()
	res.Stats["switches"] = float64(m.px.drv.Snapshot().Switches)
	if opt.FastPath {
		fp := m.px.drv.Snapshot().FastPath // since the proxy's last start
		res.Stats["fast_path_routed"] = float64(fp.Routed)
		res.Stats["fast_path_confirmed"] = float64(fp.Confirmed)
		res.Stats["fast_path_withdrawn"] = float64(fp.Withdrawn)
	}
	res.Finish(w)
	return res
}

// Runner adapts Run to sim.Explore.
func Runner(opt Options) sim.Runner {
	return func(seed uint64, keep bool) sim.Result { return Run(seed, keep, opt) }
}

// note records the first advisory finding of each kind in a run.
func (m *model) note(name, format string, args ...any) {
	if m.seen[name] {
		return
	}
	m.seen[name] = true
	v := sim.Violation{At: m.w.Elapsed(), Invariant: name, Detail: fmt.Sprintf(format, args...)}
	m.res.Notes = append(m.res.Notes, v)
	m.w.Logf("NOTE %s: %s", name, v.Detail)
}

// violate records the first violation of each invariant in a run (later
// ones are counted in the trace only).
func (m *model) violate(inv, format string, args ...any) {
	if m.seen[inv] {
		m.w.Logf("VIOLATION %s (again)", inv)
		return
	}
	m.seen[inv] = true
	v := sim.Violation{At: m.w.Elapsed(), Invariant: inv, Detail: fmt.Sprintf(format, args...)}
	m.res.Violations = append(m.res.Violations, v)
	m.w.Logf("VIOLATION %s: %s", inv, v.Detail)
}

func (m *model) setup(r *rand.Rand) {
	w := m.w
	w.Net.Base = sim.Link{Delay: time.Duration(100+r.IntN(900)) * time.Microsecond,
		Jitter: time.Duration(r.IntN(1000)) * time.Microsecond}
	for i := range 3 {
		n := &redisNode{name: fmt.Sprintf("n%d", i+1), addr: fmt.Sprintf("10.0.1.%d:6379", i+1)}
		n.node = w.AddNode(n.name)
		m.nodes = append(m.nodes, n)
	}
	m.nodes[0].master = true
	for _, n := range m.nodes[1:] {
		n.follows = m.nodes[0].addr
	}
	for i := range 3 {
		s := &sentinel{name: fmt.Sprintf("s%d", i+1), addr: fmt.Sprintf("10.0.2.%d:26379", i+1),
			master: m.nodes[0].addr}
		s.node = w.AddNode(s.name)
		s.timer = w.NewTimer(s.node, func() { m.sentinelTick(s) })
		m.sentinels = append(m.sentinels, s)
	}
	if m.opt.Witness {
		m.witnessSetup(m.sentinels[2])
	}
	cfg := config.DefaultConfig()
	cfg.MasterName = masterName
	for _, n := range m.nodes {
		cfg.Backends = append(cfg.Backends, n.addr)
	}
	for _, s := range m.sentinels {
		cfg.Sentinels = append(cfg.Sentinels, s.addr)
	}
	// Half the runs use the shipped defaults; the others vary the knobs an
	// operator may turn (the TTLs follow the check interval, as Derive does).
	if r.IntN(2) == 0 {
		cfg.Check.Interval = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}[r.IntN(3)]
		cfg.Check.Timeout = min(cfg.Check.Timeout, cfg.Check.Interval)
		cfg.Routing.NoMajorityGrace = []time.Duration{0, 2 * time.Second, 5 * time.Second, 10 * time.Second}[r.IntN(4)]
		cfg.Routing.CloseOnSwitch = r.IntN(2) == 0
	}
	cfg.Routing.HelloViews = m.opt.Hello
	cfg.Routing.PromotionFastPath = m.opt.FastPath
	cfg.Derive()
	m.px = &proxyProc{node: w.AddNode(proxyName), cfg: cfg}
	m.px.wake = w.NewTimer(m.px.node, m.proxyWake)
	for _, n := range m.nodes {
		w.Net.Handle(n.name, func(from string, data []byte, md any) { m.nodeReceive(n, from, data, md) })
	}
	for _, s := range m.sentinels {
		if m.isWitness(s) {
			w.Net.Handle(s.name, m.witnessReceive)
			continue
		}
		w.Net.Handle(s.name, func(from string, data []byte, md any) { m.sentinelReceive(s, from, data, md) })
	}
	w.Net.Handle(proxyName, m.proxyReceive)
	rc := m.px.cfg.Routing
	kind := "3 sentinels"
	if m.opt.Witness {
		kind = "2 sentinels + the witness (s3)"
	}
	if m.opt.Hello {
		kind += ", hello path on"
	}
	if m.opt.Forge {
		kind += ", forged hellos"
	}
	if m.opt.FastPath {
		kind += ", promotion fast path on"
	}
	m.res.Schedule = append(m.res.Schedule, fmt.Sprintf("config: 3 nodes, "+kind+" quorum %d; proxy check %v/%v grace %v view TTL %v health TTL %v; link %v+%v",
		m.quorum, cfg.Check.Interval, cfg.Check.Timeout, rc.NoMajorityGrace, rc.ViewTTL, rc.HealthTTL, w.Net.Base.Delay, w.Net.Base.Jitter))
}

// view is what sentinel s answers GET-MASTER-ADDR-BY-NAME and config-epoch.
func (m *model) view(s *sentinel) (string, int64) {
	if m.isWitness(s) {
		return m.witnessView()
	}
	return s.viewAddr(), s.viewEpoch()
}

// groundChanged is called when a role or a sentinel configuration changes.
func (m *model) groundChanged() { m.groundCheck() }

func (m *model) states() string {
	var b strings.Builder
	for _, n := range m.nodes {
		role := "replica"
		if n.master {
			role = "MASTER"
		}
		fmt.Fprintf(&b, "%s=%s,%s ", n.name, role, n.node.State())
	}
	for _, s := range m.sentinels {
		a, e := m.view(s)
		fmt.Fprintf(&b, "%s=%s@%d,%s ", s.name, a, e, s.node.State())
	}
	fmt.Fprintf(&b, "proxy=%q,%s", m.px.route.Master, m.px.node.State())
	return b.String()
}

func (m *model) accountRoute() {
	now := m.w.Now()
	if !m.lastRoute.IsZero() && !m.routing {
		m.noRoute += now.Sub(m.lastRoute)
	}
	m.lastRoute = now
	m.routing = m.px.route.Master != ""
}
