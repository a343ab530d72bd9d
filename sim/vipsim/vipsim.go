// Package vipsim runs 2-3 routers, each redisha-vip's own driver and VRRP
// core (components/vip/driver, components/vip/core), on a simulated LAN. The
// driver encodes adverts with the real vrrp codec; they travel as bytes
// (which the network may lose, delay, reorder or corrupt) and the receiving
// driver decodes, filters and applies them as in the daemon. The model
// implements the driver's Network and Hooks on the virtual network and
// clock, so no driver logic is copied here. A seed draws the configuration
// and a fault schedule; the model checks the VRRP promises against what
// happened.
package vipsim

import (
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	vipconfig "github.com/redisha/redisha/components/vip/config"
	vip "github.com/redisha/redisha/components/vip/core"
	"github.com/redisha/redisha/components/vip/driver"
	"github.com/redisha/redisha/components/vip/vrrp"
	"github.com/redisha/redisha/sim"
)

// Invariants checked, by name.
const (
	// InvTwoHolders: two routers hold the VIP for longer than one advert
	// interval (plus the link delay) while the network between them is clean
	// and both run.
	InvTwoHolders = "two-holders"
	// InvHandover: a master leaving gracefully (priority 0 advert) is not
	// replaced within Skew_Time + one advert interval by a running backup.
	InvHandover = "graceful-handover"
	// InvTakeover: routers run but none is master for longer than
	// Master_Down_Interval (plus the largest link delay a fault may add).
	InvTakeover = "takeover"
	// InvFinalOne: once the network is whole and quiet for long enough,
	// not exactly one live router is master and holds the VIP.
	InvFinalOne = "final-one-master"
	// InvFinalPreempt: with preemption, the settled master is not the live
	// router with the highest effective priority.
	InvFinalPreempt = "final-preempt"
	// InvCodec: an advert failed to encode, an intact one failed to decode or
	// pass the filter, or a corrupted one was accepted.
	InvCodec = "codec"
)

// Invariants lists every invariant name, for tables.
var Invariants = []string{InvTwoHolders, InvHandover, InvTakeover, InvFinalOne, InvFinalPreempt, InvCodec}

// NoteStaleARP is an advisory finding: once settled, the client's ARP entry
// for the VIP (from the last gratuitous ARP it heard) points at a router that
// no longer holds it. It happens after a split brain (VRRP between the
// routers cut, clients still hearing both) whose loser leaves or yields
// without the winner hearing it: nothing makes the winner announce again,
// and clients send to the loser until their ARP entry expires.
const NoteStaleARP = "stale-arp-after-split"

// Mutation plants a bug in the model's Network (the driver's environment),
// to prove the invariants catch it.
type Mutation int

// Mutations.
const (
	NoMutation Mutation = iota
	// KeepVIPOnRemove: removing the VIP from the interface does nothing.
	KeepVIPOnRemove
	// DropPriorityZero: priority-0 adverts are lost on receipt.
	DropPriorityZero
	// LateBackupTimer: a backup's wake-up comes one advert interval late (a
	// daemon rounding its timer up, say).
	LateBackupTimer
)

// Options tune a run.
type Options struct {
	Mutation Mutation
	// Routers fixes the router count (2 or 3); 0 draws it from the seed.
	Routers int
	// FaultPhase is how long faults are injected (default 60s).
	FaultPhase time.Duration
	// MaxFaults bounds the faults per schedule (default 8).
	MaxFaults int
	// GARPRefresh overrides the periodic gratuitous ARP of a master; 0 keeps
	// redisha-vip's shipped default, a negative value turns it off (as
	// keepalived's default does).
	GARPRefresh time.Duration
	// StallHold overrides the stalled-master rule's preemption hold; 0
	// keeps redisha-vip's shipped default, a negative value turns the rule
	// off (RFC 5798 as written).
	StallHold time.Duration
}

var vipAddr = netip.MustParseAddr("10.0.0.100")

const (
	trackName     = "chk_haproxy"
	checkInterval = 2 * time.Second // the recipe's vrrp_script interval
)

type router struct {
	name string
	node *sim.Node
	cfg  vip.Config
	form vrrp.ChecksumForm
	d    *driver.Driver // nil while the process is not running
	// m is d's core, read for the invariants (nil while not running).
	m        *vip.Core
	timer    *sim.Timer // wakes d at d.Next()
	armed    time.Time  // d.Next() the timer was last set for
	check    *sim.Timer
	hasVIP   bool
	failing  bool // the tracked check fails
	killed   bool // SIGKILLed: the VIP stays on the interface until restart
	lastSent time.Time
	// starting marks the driver's start-up (its stale-VIP removal).
	starting bool
	// from is the sender of the packet being handed to d.
	from  string
	model *model
}

func (r *router) running() bool { return r.m != nil && r.node.State() == sim.Up }

type meta struct {
	src, dst netip.Addr
	ttl      int
	sent     []byte // the bytes as sent, to tell corruption from codec bugs
}

type model struct {
	w        *sim.World
	opt      Options
	res      *sim.Result
	routers  []*router
	interval time.Duration
	preempt  bool
	tracked  bool
	// garpRefresh is each router's vip.Config.GARPRefresh.
	garpRefresh time.Duration
	unicast     bool // adverts go to each peer's address (unicast_peers), not 224.0.0.18

	faultChanges int // fault starts and ends so far
	dualToken    int
	tkToken      int
	tkActive     bool
	dualSince    time.Time
	handover     *handover

	lastHolders  int
	lastHolderAt time.Time
	noHolder     time.Duration
	dual         time.Duration
	drops        map[vrrp.Reason]int

	arpOwner    *router   // who the client's ARP entry for the VIP points at
	arpSince    time.Time // accounting of misdirected time
	arpWrong    time.Duration
	arpWasWrong bool
}

// clientName is a host on the LAN that learns the VIP's MAC from gratuitous
// ARPs. Faults between routers do not cut it off.
const clientName = "client"

// discard is the drivers' logger: the trace records what matters.
var discard = slog.New(slog.DiscardHandler)

type handover struct {
	from      *router
	deadline  time.Time
	changes   int
	satisfied bool
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
	m := &model{w: w, opt: opt, res: &res, drops: map[vrrp.Reason]int{}}
	sched := sim.NewRand(seed, sim.StreamSchedule)
	m.setup(sched)
	end := m.schedule(sched)
	for _, line := range res.Schedule {
		w.Logf("schedule: %s", line)
	}
	for _, r := range m.routers {
		m.start(r)
	}
	if err := w.RunUntil(end); err != nil {
		res.Err = err
	}
	m.account()
	m.final()
	res.Stats["no_holder_s"] = m.noHolder.Seconds()
	res.Stats["dual_holder_s"] = m.dual.Seconds()
	res.Stats["adverts_lost"] = float64(w.Net.Lost)
	m.arpAccount()
	res.Stats["arp_misdirected_s"] = m.arpWrong.Seconds()
	res.Finish(w)
	return res
}

// Runner adapts Run to sim.Explore.
func Runner(opt Options) sim.Runner {
	return func(seed uint64, keep bool) sim.Result { return Run(seed, keep, opt) }
}

func (m *model) note(name, format string, args ...any) {
	v := sim.Violation{At: m.w.Elapsed(), Invariant: name, Detail: fmt.Sprintf(format, args...)}
	m.res.Notes = append(m.res.Notes, v)
	m.w.Logf("NOTE %s: %s", name, v.Detail)
}

func (m *model) violate(inv, format string, args ...any) {
	v := sim.Violation{At: m.w.Elapsed(), Invariant: inv, Detail: fmt.Sprintf(format, args...)}
	m.res.Violations = append(m.res.Violations, v)
	m.w.Logf("VIOLATION %s: %s", inv, v.Detail)
}

// setup draws the configuration: router count, version, interval,
// preemption, priorities (distinct, tied or with an address owner) and
// whether a tracked check with the recipe's weight +2 is configured.
func (m *model) setup(r *rand.Rand) {
	n := m.opt.Routers
	if n == 0 {
		n = 2 + r.IntN(2)
	}
	version := 3
	if r.IntN(5) == 0 {
		version = 2
	}
	interval := uint16(100)
	switch k := r.IntN(10); {
	case version == 3 && k == 0:
		interval = 50
	case k == 1:
		interval = 200
	}
	m.interval = time.Duration(interval) * 10 * time.Millisecond
	m.preempt = r.IntN(4) != 0
	switch {
	case m.opt.GARPRefresh < 0:
		m.garpRefresh = 0
	case m.opt.GARPRefresh > 0:
		m.garpRefresh = m.opt.GARPRefresh
	default:
		m.garpRefresh = vipconfig.DefaultGARPRefresh
	}
	stallHold := vipconfig.DefaultStallHold
	switch {
	case m.opt.StallHold < 0:
		stallHold = 0
	case m.opt.StallHold > 0:
		stallHold = m.opt.StallHold
	}
	m.tracked = r.IntN(2) == 0
	prios := []uint8{101, 100, 99}[:n]
	switch k := r.IntN(10); {
	case k == 0:
		prios[1] = prios[0] // a tie, broken by address
	case k == 1:
		prios[r.IntN(n)] = vip.PriorityOwner
	}
	r.Shuffle(n, func(i, j int) { prios[i], prios[j] = prios[j], prios[i] })
	base := sim.Link{Delay: time.Duration(100+r.IntN(900)) * time.Microsecond,
		Jitter: time.Duration(r.IntN(1000)) * time.Microsecond}
	m.w.Net.Base = base
	for i := range n {
		name := fmt.Sprintf("r%d", i+1)
		cfg := vip.Config{Version: version, VRID: 51, Priority: prios[i], Interval: interval,
			Preempt: m.preempt, Primary: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}),
			GARPRefresh: m.garpRefresh, StallHold: stallHold}
		if m.tracked {
			cfg.Tracks = []vip.Track{{Name: trackName, Rise: 1 + r.IntN(2), Fall: 1 + r.IntN(2), Weight: 2}}
		}
		form := vrrp.ChecksumPseudoHeader
		if version == 3 && r.IntN(4) == 0 {
			form = vrrp.ChecksumMessageOnly
		}
		cfg.GARPRepeat = vipconfig.DefaultGARPRepeat
		rt := &router{name: name, node: m.w.AddNode(name), cfg: cfg, form: form, model: m}
		rt.timer = m.w.NewTimer(rt.node, func() {
			rt.armed = time.Time{}
			rt.d.Wake(m.w.Now())
			m.rearm(rt)
		})
		rt.check = m.w.NewTimer(rt.node, func() { m.runCheck(rt) })
		m.w.Net.Handle(name, func(from string, data []byte, md any) { m.receive(rt, from, data, md.(meta)) })
		m.routers = append(m.routers, rt)
	}
	m.w.AddNode(clientName)
	m.w.Net.Handle(clientName, func(from string, _ []byte, _ any) {
		for _, rt := range m.routers {
			if rt.name == from && m.arpOwner != rt {
				m.arpAccount()
				m.arpOwner = rt
				m.w.Logf("client: ARP for the VIP now points at %s", from)
				m.arpAccount()
			}
		}
	})
	var desc []string
	for _, rt := range m.routers {
		desc = append(desc, fmt.Sprintf("%s=%v/prio %d/%v", rt.name, rt.cfg.Primary, rt.cfg.Priority, rt.form))
	}
	m.res.Schedule = append(m.res.Schedule, fmt.Sprintf("config: VRRPv%d interval %v preempt=%v tracked=%v link %v+%v; %s",
		version, m.interval, m.preempt, m.tracked, base.Delay, base.Jitter, strings.Join(desc, ", ")))
}

// start runs the daemon's start-up on r: a new driver removes stale VIPs
// and starts its core, the tracked check begins.
func (m *model) start(r *router) {
	r.killed = false
	dc := driver.Config{Core: r.cfg, VIPs: []netip.Addr{vipAddr}, Checksum: r.form}
	if m.unicast {
		for _, o := range m.routers {
			if o != r {
				dc.Peers = append(dc.Peers, o.cfg.Primary)
			}
		}
	}
	d, err := driver.New(dc, m.w.Now(), r, r, discard)
	if err != nil {
		panic(err) // the drawn configuration is always valid
	}
	r.d, r.m = d, d.Core()
	r.armed = time.Time{}
	r.starting = true
	err = d.Start(m.w.Now())
	r.starting = false
	if err != nil {
		panic(err) // the model's RemoveVIPs does not fail
	}
	m.rearm(r)
	if m.tracked {
		m.runCheck(r)
	}
}

// stop ends r's process: its driver and timers are gone.
func (m *model) stop(r *router) {
	m.w.Crash(r.node)
	r.d, r.m = nil, nil
}

func (m *model) runCheck(r *router) {
	if r.d == nil {
		return
	}
	r.d.CheckResult(m.w.Now(), trackName, !r.failing)
	m.rearm(r)
	r.check.Reset(m.w.Now().Add(checkInterval))
}

// rearm sets r's timer to its driver's next deadline, as the daemon's loop
// does after every event.
func (m *model) rearm(r *router) {
	if r.d == nil {
		return
	}
	next := r.d.Next()
	if next.Equal(r.armed) {
		return
	}
	r.armed = next
	if next.IsZero() {
		r.timer.Stop()
		return
	}
	if m.opt.Mutation == LateBackupTimer && r.m.State() == vip.Backup {
		next = next.Add(m.interval)
	}
	r.timer.Reset(next)
}

// AddVIPs implements driver.Network on the virtual LAN.
func (r *router) AddVIPs() error {
	m := r.model
	if !r.hasVIP {
		r.hasVIP = true
		m.w.Logf("%s: add VIP", r.name)
		m.holdersChanged()
	}
	if h := m.handover; h != nil && h.from != r {
		h.satisfied = true
	}
	return nil
}

// RemoveVIPs implements driver.Network.
func (r *router) RemoveVIPs() ([]netip.Addr, error) {
	m := r.model
	if r.starting {
		if !r.hasVIP {
			return nil, nil
		}
		m.w.Logf("%s: removes stale VIP at start-up", r.name)
		r.hasVIP = false
		m.holdersChanged()
		return []netip.Addr{vipAddr}, nil
	}
	if m.opt.Mutation == KeepVIPOnRemove || !r.hasVIP {
		return nil, nil
	}
	r.hasVIP = false
	m.w.Logf("%s: remove VIP", r.name)
	m.holdersChanged()
	return []netip.Addr{vipAddr}, nil
}

// SendGARP implements driver.Network: one burst the client hears.
func (r *router) SendGARP(kind driver.GARPKind) {
	if kind != driver.GARPRepeat {
		r.model.w.Logf("%s: %v", r.name, vip.Action{Kind: vip.SendGARP, Refresh: kind == driver.GARPRefresh})
	}
	r.model.sendGARP(r)
}

// Advert implements driver.Hooks.
func (r *router) Advert(_ time.Time, p vrrp.Packet) {
	r.model.w.Logf("%s: <- %s priority %d", r.name, r.from, p.Priority)
}

// StateChanged implements driver.Hooks.
func (r *router) StateChanged(_ time.Time, from, to vip.State, reason string, _ uint8) {
	r.model.w.Logf("%s: %v", r.name, vip.Action{Kind: vip.StateChanged, From: from, To: to, Reason: reason})
	r.model.takeoverCheck(false)
}

// PriorityChanged implements driver.Hooks.
func (r *router) PriorityChanged(_ time.Time, p uint8) {
	r.model.w.Logf("%s: %v", r.name, vip.Action{Kind: vip.PriorityChanged, Priority: p})
}

// sendGARP is one burst of gratuitous ARPs (a broadcast the client hears).
func (m *model) sendGARP(r *router) {
	m.w.Net.Send(r.name, clientName, nil, nil)
}

// arpAccount adds up the time the client's ARP entry points at a router
// that does not hold the VIP while another one does.
func (m *model) arpAccount() {
	now := m.w.Now()
	if m.arpWasWrong {
		m.arpWrong += now.Sub(m.arpSince)
	}
	m.arpSince = now
	hs := m.holders()
	m.arpWasWrong = len(hs) > 0 && (m.arpOwner == nil || !m.arpOwner.hasVIP)
}

// SendAdvert implements driver.Network: a multicast advert goes to every
// other router, a unicast one (the v3 pseudo-header checksum covers the
// peer's address) to that peer.
func (r *router) SendAdvert(dst netip.Addr, raw []byte) error {
	m := r.model
	if dst == vrrp.MulticastGroup || m.isFirstPeer(r, dst) {
		m.w.Logf("%s: advert priority %d", r.name, raw[2])
		r.lastSent = m.w.Now()
	}
	for _, o := range m.routers {
		if o == r || (dst != vrrp.MulticastGroup && o.cfg.Primary != dst) {
			continue
		}
		// TTL 255 as sent; the unicast filter does not check it anyway.
		m.w.Net.Send(r.name, o.name, raw, meta{src: r.cfg.Primary, dst: dst, ttl: vrrp.TTL, sent: raw})
	}
	return nil
}

// isFirstPeer reports whether dst is r's first unicast peer: one advert is
// logged once, however many peers it goes to.
func (m *model) isFirstPeer(r *router, dst netip.Addr) bool {
	for _, o := range m.routers {
		if o != r {
			return o.cfg.Primary == dst
		}
	}
	return false
}

// receive hands a packet to r's driver (the daemon's packet path) and
// checks the codec's verdict against what the network did to it.
func (m *model) receive(r *router, from string, data []byte, md meta) {
	if r.d == nil {
		return
	}
	intact := bytes.Equal(data, md.sent)
	if m.opt.Mutation == DropPriorityZero && intact {
		if p, err := vrrp.Decode(data, md.src, md.dst); err == nil && p.Priority == 0 {
			return
		}
	}
	sendErrs := r.d.Stats().SendErrors
	r.from = from
	err := r.d.HandlePacket(m.w.Now(), driver.Packet{Payload: data, Src: md.src, Dst: md.dst, TTL: md.ttl})
	r.from = ""
	m.rearm(r)
	if r.d != nil && r.d.Stats().SendErrors != sendErrs {
		m.violate(InvCodec, "%s cannot encode its advert", r.name)
	}
	switch {
	case err != nil && intact:
		m.violate(InvCodec, "%s drops an intact advert from %s: %v", r.name, from, err)
		return
	case err != nil:
		m.drops[vrrp.ReasonOf(err)]++
		m.w.Logf("%s: drop advert from %s: %s", r.name, from, vrrp.ReasonOf(err))
		return
	case !intact:
		m.violate(InvCodec, "%s accepts a corrupted advert from %s: %x (sent %x)", r.name, from, data, md.sent)
	}
}

// holdersChanged keeps the time accounts and re-evaluates the two-holder rule.
func (m *model) holdersChanged() {
	m.account()
	m.arpAccount()
	m.reassess()
}

func (m *model) holders() []*router {
	var hs []*router
	for _, r := range m.routers {
		if r.hasVIP {
			hs = append(hs, r)
		}
	}
	return hs
}

func (m *model) live() []*router {
	var ls []*router
	for _, r := range m.routers {
		if r.running() {
			ls = append(ls, r)
		}
	}
	return ls
}

// account adds the time since the last change to the no-holder or
// dual-holder totals.
func (m *model) account() {
	now := m.w.Now()
	if !m.lastHolderAt.IsZero() {
		d := now.Sub(m.lastHolderAt)
		switch {
		case m.lastHolders == 0:
			m.noHolder += d
		case m.lastHolders > 1:
			m.dual += d
		}
	}
	m.lastHolderAt = now
	m.lastHolders = len(m.holders())
}

// cleanPair returns a pair of VIP holders that both run and see each other
// over clean links, and the bound for it; ok is false when there is none.
func (m *model) cleanPair() (a, b *router, bound time.Duration, ok bool) {
	hs := m.holders()
	for i := range hs {
		for j := i + 1; j < len(hs); j++ {
			x, y := hs[i], hs[j]
			if x.running() && y.running() && m.w.Net.PairClean(x.name, y.name) {
				d := max(m.w.Net.MaxDelay(x.name, y.name), m.w.Net.MaxDelay(y.name, x.name))
				return x, y, m.interval + d + time.Millisecond, true
			}
		}
	}
	return nil, nil, 0, false
}

// reassess starts or ends a two-holder episode. An episode begins when two
// running holders can hear each other over clean links; any fault change
// ends it (a new one may begin at once), so the bound always counts from
// the moment the network between them became clean.
func (m *model) reassess() {
	a, b, bound, ok := m.cleanPair()
	if !ok {
		if !m.dualSince.IsZero() {
			m.dualSince = time.Time{}
			m.dualToken++
		}
		return
	}
	if !m.dualSince.IsZero() {
		return
	}
	m.dualSince = m.w.Now()
	m.dualToken++
	m.res.Stats["checked_dual_episodes"]++
	tok, since := m.dualToken, m.dualSince
	m.w.After(bound, func() {
		if m.dualToken != tok {
			return
		}
		m.violate(InvTwoHolders, "%s and %s both hold the VIP since %.3fs over a clean network (bound %v; states %s)",
			a.name, b.name, since.Sub(sim.Epoch).Seconds(), bound, m.states())
	})
}

func (m *model) states() string {
	var s []string
	for _, r := range m.routers {
		st := "stopped"
		if r.m != nil {
			st = fmt.Sprintf("%v/%d", r.m.State(), r.m.Priority())
		}
		if r.node.State() != sim.Up {
			st += "," + r.node.State().String()
		}
		if r.hasVIP {
			st += ",VIP"
		}
		s = append(s, r.name+"="+st)
	}
	return strings.Join(s, " ")
}

// takeoverCheck starts or ends a masterless episode: some router runs and
// none is master. A backup's Master_Down_Timer counts from the last advert
// it got, at the latest when the episode began, so a backup must take over
// within Master_Down_Interval; adverts still in flight on a slow link may
// re-arm it up to 500ms later. restart begins a new episode (a fault changed).
func (m *model) takeoverCheck(restart bool) {
	live := m.live()
	// A backup must exist to take over (routers in Fault do not compete).
	masterless := false
	for _, r := range live {
		if r.m.State() == vip.Backup {
			masterless = true
		}
	}
	for _, r := range live {
		if r.m.State() == vip.Master {
			masterless = false
		}
	}
	if m.tkActive && (restart || !masterless) {
		m.tkActive = false
		m.tkToken++
	}
	if !masterless || m.tkActive {
		return
	}
	m.tkActive = true
	m.tkToken++
	m.res.Stats["checked_masterless_episodes"]++
	tok, since := m.tkToken, m.w.Elapsed()
	bound := 4*m.interval + 510*time.Millisecond
	m.w.After(bound, func() {
		if m.tkToken == tok {
			m.violate(InvTakeover, "no running router became master within %v since %.3fs: %s", bound, since.Seconds(), m.states())
		}
	})
}

// faultChanged is called after every fault start or end.
func (m *model) faultChanged() {
	m.takeoverCheck(true)
	m.faultChanges++
	if !m.dualSince.IsZero() {
		m.dualSince = time.Time{}
		m.dualToken++
	}
	m.holdersChanged()
}

// final checks the settled state.
func (m *model) final() {
	live := m.live()
	hs := m.holders()
	if len(live) == 0 {
		if len(hs) > 0 {
			m.violate(InvFinalOne, "no router runs but the VIP is held: %s", m.states())
		}
		return
	}
	masters := 0
	for _, r := range live {
		if r.m.State() == vip.Master {
			masters++
		}
	}
	if len(hs) != 1 || masters != 1 || hs[0].m == nil || hs[0].m.State() != vip.Master {
		m.violate(InvFinalOne, "network whole and quiet, yet %d holders and %d masters: %s", len(hs), masters, m.states())
		return
	}
	if m.arpOwner != hs[0] {
		owner := "nobody"
		if m.arpOwner != nil {
			owner = m.arpOwner.name
		}
		m.note(NoteStaleARP, "%s holds the VIP but the client's ARP entry points at %s: %s", hs[0].name, owner, m.states())
	}
	if !m.preempt {
		return
	}
	top := slices.MaxFunc(live, func(x, y *router) int { return int(x.m.Priority()) - int(y.m.Priority()) })
	ties := 0
	for _, r := range live {
		if r.m.Priority() == top.m.Priority() {
			ties++
		}
	}
	// A router that yielded as a stalled master holds preemption off for a
	// while (vip.Config.StallHold): not preempting then is the rule, and
	// after it preemption takes up to a Master_Down_Interval (the timer
	// armed by the last advert it accepted).
	if held := top.m.PreemptHeldUntil(); !held.IsZero() && m.w.Now().Before(held.Add(top.m.MasterDownInterval())) {
		return
	}
	if ties == 1 && hs[0] != top {
		m.violate(InvFinalPreempt, "%s holds the VIP but %s has the highest priority %d: %s",
			hs[0].name, top.name, top.m.Priority(), m.states())
	}
}
