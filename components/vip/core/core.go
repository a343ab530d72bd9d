// Package core is the pure VRRP state machine of redisha-vip: events with
// timestamps in (a start, a received advert, a tick, a tracking check
// result, a shutdown), actions out (send an advert, add or remove the virtual
// addresses, send gratuitous ARPs, report a state change), and Next, the
// time the core wants its next Tick. It has no goroutines, sockets or
// clocks, so the daemon and the simulator drive the same code (through
// components/vip/driver).
package core

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/redisha/redisha/components/vip/vrrp"
)

// State is a VRRP router state (RFC 5798 section 6.4), plus Fault.
type State int

// States. Fault is keepalived's: a tracked check with fault semantics failed,
// so the router neither holds the addresses nor competes for them.
const (
	Initialize State = iota
	Backup
	Master
	Fault
)

func (s State) String() string {
	switch s {
	case Initialize:
		return "INIT"
	case Backup:
		return "BACKUP"
	case Master:
		return "MASTER"
	case Fault:
		return "FAULT"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// PriorityOwner is the priority of the address owner; it never adds tracking
// weights and becomes master at once.
const PriorityOwner = 255

// Track configures one tracked check as the state machine sees it.
type Track struct {
	Name string
	// Rise and Fall are the consecutive results needed to change state.
	Rise, Fall int
	// Weight > 0 is added to the priority while the check passes; Weight < 0
	// is added while it fails. Ignored when Fault is set.
	Weight int
	// Fault puts the router into the Fault state while the check fails.
	Fault bool
}

// Config is the part of the configuration the state machine needs.
type Config struct {
	Version int   // 2 or 3
	VRID    uint8 // 1..255
	// Priority is the configured priority, 1..255.
	Priority uint8
	// Interval is the advertisement interval in centiseconds (v2: a multiple of 100).
	Interval uint16
	// Preempt lets a higher-priority backup take over a lower-priority master
	// (RFC default: true). keepalived calls the opposite "nopreempt".
	Preempt bool
	// Primary is our primary IPv4 address, the advert source and tie-breaker.
	Primary netip.Addr
	Tracks  []Track
	// GARPRefresh, when positive, makes a master announce the addresses
	// again (a SendGARP action with Refresh set) once this long has passed
	// since it last did, checked at each advert, as keepalived's
	// garp_master_refresh does. Zero is off. Without it nothing corrects a
	// client whose ARP entry still points at the loser of a split brain that
	// stopped or yielded without the winner hearing it.
	GARPRefresh time.Duration
	// GARPRepeat, when positive, repeats the announcement of a new master
	// once after this long (a SendGARP action with Repeat set), unless the
	// addresses were removed meanwhile (garp.repeat). Zero is off.
	GARPRepeat time.Duration
	// StallHold, when positive, turns on the stalled-router rules. A backup
	// whose Master_Down_Timer fires late reads the adverts queued meanwhile
	// before taking over (Core.backupStalled). A master that was silent for 3 advert intervals (frozen,
	// starved) and then hears another master, which took over meanwhile,
	// yields to it instead of reclaiming the addresses by priority, and then
	// does not preempt for StallHold, so a slow master costs one move, not
	// two. Zero is RFC 5798 as written: the higher priority wins at once.
	StallHold time.Duration
}

// StallListen is how long a master whose advert timer fired more than two
// intervals late waits before sending that advert: long enough for the
// adverts queued in its socket while it could not run to reach the core
// first (they are already in the kernel when it wakes), short against the
// Master_Down_Interval margin it eats into.
const StallListen = 10 * time.Millisecond

// Validate reports the first problem in c.
func (c Config) Validate() error {
	switch {
	case c.Version != 2 && c.Version != 3:
		return fmt.Errorf("version %d: want 2 or 3", c.Version)
	case c.VRID == 0:
		return errors.New("vrid must be 1..255")
	case c.Priority == 0:
		return errors.New("priority must be 1..255 (0 is reserved for a leaving master)")
	case c.Interval == 0:
		return errors.New("advert interval must be positive")
	case c.Version == 2 && (c.Interval%100 != 0 || c.Interval > 25500):
		return fmt.Errorf("VRRPv2 advert interval must be whole seconds 1..255, got %d cs", c.Interval)
	case c.Version == 3 && c.Interval > 4095:
		return fmt.Errorf("VRRPv3 advert interval must be at most 4095 cs, got %d", c.Interval)
	case !c.Primary.Is4():
		return fmt.Errorf("primary address %v is not IPv4", c.Primary)
	case c.GARPRefresh < 0:
		return fmt.Errorf("GARP refresh %v must not be negative", c.GARPRefresh)
	case c.GARPRepeat < 0:
		return fmt.Errorf("GARP repeat %v must not be negative", c.GARPRepeat)
	case c.StallHold < 0:
		return fmt.Errorf("stall hold %v must not be negative", c.StallHold)
	}
	seen := map[string]bool{}
	for _, t := range c.Tracks {
		if t.Name == "" || seen[t.Name] {
			return fmt.Errorf("track name %q empty or repeated", t.Name)
		}
		seen[t.Name] = true
		if t.Rise < 1 || t.Fall < 1 {
			return fmt.Errorf("track %s: rise and fall must be at least 1", t.Name)
		}
		if t.Weight < -253 || t.Weight > 253 {
			return fmt.Errorf("track %s: weight %d outside -253..253", t.Name, t.Weight)
		}
	}
	return nil
}

// ActionKind says what an Action asks the driver to do.
type ActionKind int

// Action kinds.
const (
	// SendAdvert: send an advertisement with Action.Priority.
	SendAdvert ActionKind = iota
	// AddVIPs: add the virtual addresses to the interface.
	AddVIPs
	// RemoveVIPs: remove the virtual addresses from the interface.
	RemoveVIPs
	// SendGARP: announce the virtual addresses with gratuitous ARP. With
	// Action.Refresh it is the periodic refresh of a settled master (a short
	// burst); with Action.Repeat it is the repeat of a new master's
	// announcement (Config.GARPRepeat).
	SendGARP
	// StateChanged: the state went From -> To because of Reason (notify hooks, logs, metrics).
	StateChanged
	// PriorityChanged: the effective priority is now Action.Priority.
	PriorityChanged
)

func (k ActionKind) String() string {
	return [...]string{"SendAdvert", "AddVIPs", "RemoveVIPs", "SendGARP", "StateChanged", "PriorityChanged"}[k]
}

// Action is one thing the driver must do, in order.
type Action struct {
	Kind     ActionKind
	Priority uint8
	From, To State
	Reason   string
	// Refresh marks a SendGARP of the periodic refresh (Config.GARPRefresh).
	Refresh bool
	// Repeat marks a SendGARP repeating a new master's announcement
	// (Config.GARPRepeat).
	Repeat bool
}

func (a Action) String() string {
	switch a.Kind {
	case SendAdvert, PriorityChanged:
		return fmt.Sprintf("%v(%d)", a.Kind, a.Priority)
	case StateChanged:
		return fmt.Sprintf("%v(%v->%v: %s)", a.Kind, a.From, a.To, a.Reason)
	case SendGARP:
		if a.Refresh {
			return "SendGARP(refresh)"
		}
		if a.Repeat {
			return "SendGARP(repeat)"
		}
	}
	return a.Kind.String()
}

type trackState struct {
	Track
	known    bool // a first result arrived
	ok       bool
	run      int  // consecutive results disagreeing with ok
	lastGood bool // the last raw result
}

// Core is one VRRP virtual router.
type Core struct {
	cfg      Config
	state    State
	priority uint8 // effective priority
	// masterAdverInterval is the interval the current master advertises (v3),
	// the basis of Master_Down_Interval.
	masterAdverInterval uint16
	deadline            time.Time
	masterAddr          netip.Addr
	masterPriority      uint8
	lastForcedGARP      time.Time
	// nextGARPRefresh is when a master re-announces its addresses (zero: never).
	nextGARPRefresh time.Time
	// garpRepeatAt is when a new master's announcement is repeated (zero: never).
	garpRepeatAt time.Time
	// stallListen is when a stalled master deferred its overdue advert by
	// StallListen (zero: not listening).
	stallListen  time.Time
	stallSilence time.Duration // how long we had been silent then
	// preemptHoldUntil: after yielding as a stalled master, preemption is
	// off until then.
	preemptHoldUntil time.Time
	tracks           []*trackState
}

// New validates cfg and returns a core in the Initialize state; nothing
// happens before Start. now is the creation time (a core needs no restored
// state, so it only documents the contract every core shares).
func New(cfg Config, now time.Time) (*Core, error) {
	_ = now
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Core{cfg: cfg, masterAdverInterval: cfg.Interval}
	for _, t := range cfg.Tracks {
		m.tracks = append(m.tracks, &trackState{Track: t})
	}
	m.priority = m.effectivePriority()
	return m, nil
}

// State returns the current state.
func (m *Core) State() State { return m.state }

// Priority returns the effective priority (configured plus tracking weights).
func (m *Core) Priority() uint8 { return m.priority }

// Deadline returns when the VRRP timer (the advert timer of a master, the
// Master_Down_Timer of a backup) fires; zero when none runs.
func (m *Core) Deadline() time.Time { return m.deadline }

// Next returns when the core next needs a Tick: the earlier of the VRRP
// timer and a pending repeat of the gratuitous ARPs; zero when never.
func (m *Core) Next() time.Time {
	switch {
	case m.garpRepeatAt.IsZero():
		return m.deadline
	case m.deadline.IsZero() || m.garpRepeatAt.Before(m.deadline):
		return m.garpRepeatAt
	}
	return m.deadline
}

// PreemptHeldUntil is when preemption, held off after yielding as a
// stalled master (Config.StallHold), resumes; zero when it never was held.
func (m *Core) PreemptHeldUntil() time.Time { return m.preemptHoldUntil }

// Master returns the address and priority of the last accepted master advert.
func (m *Core) Master() (netip.Addr, uint8) { return m.masterAddr, m.masterPriority }

// MasterAdverInterval returns the interval (cs) the master advertises.
func (m *Core) MasterAdverInterval() uint16 { return m.masterAdverInterval }

// Config returns the configuration.
func (m *Core) Config() Config { return m.cfg }

// SkewTime is RFC 5798's Skew_Time for our effective priority: for v3
// ((256 - priority) * Master_Adver_Interval) / 256 centiseconds, for v2
// (256 - priority) / 256 seconds.
func (m *Core) SkewTime() time.Duration {
	p := time.Duration(256 - int(m.priority))
	if m.cfg.Version == 2 {
		return p * time.Second / 256
	}
	return time.Duration((int(256-int(m.priority))*int(m.masterAdverInterval))/256) * 10 * time.Millisecond
}

// MasterDownInterval is 3 * Master_Adver_Interval + Skew_Time.
func (m *Core) MasterDownInterval() time.Duration {
	return 3*time.Duration(m.masterAdverInterval)*10*time.Millisecond + m.SkewTime()
}

func (m *Core) interval() time.Duration {
	return time.Duration(m.cfg.Interval) * 10 * time.Millisecond
}

func (m *Core) faulty() bool {
	for _, t := range m.tracks {
		if t.Fault && !t.ok {
			return true
		}
	}
	return false
}

func (m *Core) effectivePriority() uint8 {
	if m.cfg.Priority == PriorityOwner {
		return PriorityOwner
	}
	p := int(m.cfg.Priority)
	for _, t := range m.tracks {
		switch {
		case t.Fault:
		case t.Weight > 0 && t.ok:
			p += t.Weight
		case t.Weight < 0 && !t.ok:
			p += t.Weight
		}
	}
	return uint8(min(max(p, 1), 254))
}

func (m *Core) arm(at time.Time) { m.deadline = at }

// announce is the SendGARP of a new or re-asserting master; the repeat
// burst, if configured, follows GARPRepeat later.
func (m *Core) announce(now time.Time) Action {
	m.garpAnnounced(now)
	m.garpRepeatAt = time.Time{}
	if m.cfg.GARPRepeat > 0 {
		m.garpRepeatAt = now.Add(m.cfg.GARPRepeat)
	}
	return Action{Kind: SendGARP}
}

// removeVIPs drops the addresses and any pending repeat announcement.
func (m *Core) removeVIPs() Action {
	m.garpRepeatAt = time.Time{}
	return Action{Kind: RemoveVIPs}
}

// garpAnnounced restarts the refresh period after the addresses were announced.
func (m *Core) garpAnnounced(now time.Time) {
	m.nextGARPRefresh = time.Time{}
	if m.cfg.GARPRefresh > 0 {
		m.nextGARPRefresh = now.Add(m.cfg.GARPRefresh)
	}
}

func (m *Core) change(to State, reason string) Action {
	a := Action{Kind: StateChanged, From: m.state, To: to, Reason: reason}
	m.state = to
	return a
}

func (m *Core) becomeMaster(now time.Time, reason string) []Action {
	m.masterAddr, m.masterPriority = m.cfg.Primary, m.priority
	m.arm(now.Add(m.interval()))
	return []Action{
		m.change(Master, reason),
		{Kind: SendAdvert, Priority: m.priority},
		{Kind: AddVIPs},
		m.announce(now),
	}
}

// becomeBackup enters Backup; adverts from a master, if any, set the
// interval before the Master_Down_Timer is computed.
func (m *Core) becomeBackup(now time.Time, reason string, masterInterval uint16) []Action {
	var out []Action
	m.stallListen = time.Time{}
	if m.state == Master {
		out = append(out, m.removeVIPs())
	}
	m.masterAdverInterval = masterInterval
	out = append(out, m.change(Backup, reason))
	m.arm(now.Add(m.MasterDownInterval()))
	return out
}

// Start leaves Initialize: the address owner becomes master at once, others
// become backup and wait Master_Down_Interval for a master.
func (m *Core) Start(now time.Time) []Action {
	if m.state != Initialize {
		return nil
	}
	switch {
	case m.faulty():
		m.stop()
		return []Action{m.change(Fault, "tracked check failing at start")}
	case m.priority == PriorityOwner:
		return m.becomeMaster(now, "address owner (priority 255)")
	}
	return m.becomeBackup(now, "startup", m.cfg.Interval)
}

// stalled reports whether the stalled-master rule is on and our advert is
// more than two intervals overdue at now: we have been silent for three
// intervals, the shortest Master_Down_Interval a backup can have adopted
// from our adverts less its Skew_Time, so a backup may have declared us down.
func (m *Core) stalled(now time.Time) bool {
	return m.cfg.StallHold > 0 && m.state == Master && !m.deadline.IsZero() &&
		now.Sub(m.deadline) > 2*m.interval()
}

// stop ends every timer: in Initialize and Fault the core waits for events.
func (m *Core) stop() {
	m.deadline = time.Time{}
	m.garpRepeatAt = time.Time{}
}

// Shutdown leaves the group gracefully: a master sends priority 0 so a backup
// takes over after Skew_Time, then drops the addresses.
func (m *Core) Shutdown(now time.Time) []Action {
	var out []Action
	if m.state == Master {
		out = append(out, Action{Kind: SendAdvert, Priority: 0}, m.removeVIPs())
	}
	if m.state != Initialize {
		out = append(out, m.change(Initialize, "shutdown"))
	}
	m.stop()
	return out
}

// Tick runs what is due at now (see Next). Early calls do nothing.
func (m *Core) Tick(now time.Time) []Action {
	var out []Action
	// The repeat was announced before the advert timer it may coincide
	// with was last armed, so it goes first.
	if !m.garpRepeatAt.IsZero() && !now.Before(m.garpRepeatAt) {
		m.garpRepeatAt = time.Time{}
		out = append(out, Action{Kind: SendGARP, Repeat: true})
	}
	return append(out, m.timer(now)...)
}

// timer handles the VRRP timer firing at now. Early calls are ignored.
func (m *Core) timer(now time.Time) []Action {
	if m.deadline.IsZero() || now.Before(m.deadline) {
		return nil
	}
	switch m.state {
	case Master:
		if m.stallListen.IsZero() && m.stalled(now) {
			// Silent for three intervals: a backup may have taken over.
			// Let the adverts queued meanwhile arrive before ours, which
			// would make such a backup yield back (Receive decides).
			m.stallListen, m.stallSilence = now, now.Sub(m.deadline.Add(-m.interval()))
			m.arm(now.Add(StallListen))
			return nil
		}
		m.stallListen = time.Time{}
		// Schedule from the deadline, not from now, so that late wake-ups do
		// not stretch the interval over time.
		next := m.deadline.Add(m.interval())
		if !next.After(now) {
			next = now.Add(m.interval())
		}
		out := []Action{{Kind: SendAdvert, Priority: m.priority}}
		// The refresh rides on the advert timer (as keepalived's does), so
		// the machine keeps one timer; its period rounds up to adverts.
		if !m.nextGARPRefresh.IsZero() && !now.Before(m.nextGARPRefresh) {
			m.garpAnnounced(now)
			out = append(out, Action{Kind: SendGARP, Refresh: true})
		}
		m.arm(next)
		return out
	case Backup:
		if m.stallListen.IsZero() && m.backupStalled(now) {
			// Our own timer ran late: we were not running, so the master's
			// adverts may sit unread in our socket. Read them before
			// declaring it down (Receive re-arms the timer if one arrives).
			m.stallListen = now
			m.arm(now.Add(StallListen))
			return nil
		}
		m.stallListen = time.Time{}
		return m.becomeMaster(now, "master down: no advert for Master_Down_Interval")
	}
	return nil
}

// backupStalled reports whether the stalled-router rules are on and a
// backup's Master_Down_Timer fired more than StallListen after its deadline:
// the backup itself could not run (a loaded or starved node), and the
// adverts that would have re-armed the timer may be waiting in its socket.
// Waiting StallListen for them costs a genuine takeover at most that much,
// only when the backup was already late; a false takeover costs a move and
// time with the VIP on two nodes.
func (m *Core) backupStalled(now time.Time) bool {
	return m.cfg.StallHold > 0 && m.state == Backup && !m.deadline.IsZero() &&
		now.Sub(m.deadline) > StallListen
}

// Receive handles an advert that passed vrrp.Filter for this router.
func (m *Core) Receive(now time.Time, p vrrp.Packet) []Action {
	switch m.state {
	case Backup:
		if p.Priority == 0 {
			// The master is leaving: take over after Skew_Time only.
			m.arm(now.Add(m.SkewTime()))
			return nil
		}
		if !m.cfg.Preempt || p.Priority >= m.priority || now.Before(m.preemptHoldUntil) {
			if m.cfg.Version == 3 {
				m.masterAdverInterval = p.Interval
			}
			m.masterAddr, m.masterPriority = p.Src, p.Priority
			m.stallListen = time.Time{}
			m.arm(now.Add(m.MasterDownInterval()))
			return nil
		}
		// A lower-priority master while we preempt: ignore it, so our
		// Master_Down_Timer fires and we take over.
		return nil
	case Master:
		if p.Src == m.cfg.Primary {
			return nil // our own advert looped back
		}
		if p.Priority == 0 {
			// Another router is leaving: reassert ourselves at once.
			m.arm(now.Add(m.interval()))
			return []Action{{Kind: SendAdvert, Priority: m.priority}}
		}
		if p.Priority > m.priority || (p.Priority == m.priority && addrGreater(p.Src, m.cfg.Primary)) {
			interval := m.cfg.Interval
			if m.cfg.Version == 3 {
				interval = p.Interval
			}
			m.masterAddr, m.masterPriority = p.Src, p.Priority
			out := m.becomeBackup(now, fmt.Sprintf("higher priority advert from %v (priority %d)", p.Src, p.Priority), interval)
			// One last advert with our priority tells the winner that we
			// were master too (a healed split brain, or a preemption): the
			// winner then re-announces the VIPs with gratuitous ARP (ours and
			// keepalived do), so clients that followed our GARPs come back
			// even when the winner had not heard us before we yielded.
			return append(out, Action{Kind: SendAdvert, Priority: m.priority})
		}
		if m.stalled(now) || !m.stallListen.IsZero() {
			// We could not advertise for three intervals and another
			// master advertised meanwhile: it took over from a master that
			// looked dead, as the protocol says. Reclaiming by priority
			// would move the addresses a second time (a ping-pong), so
			// yield without the last advert (which would make it yield
			// back) and hold preemption off for a while.
			late := now.Sub(m.deadline.Add(-m.interval())) // since our last advert
			if !m.stallListen.IsZero() {
				late = m.stallSilence
			}
			m.preemptHoldUntil = now.Add(m.cfg.StallHold)
			interval := m.cfg.Interval
			if m.cfg.Version == 3 {
				interval = p.Interval
			}
			m.masterAddr, m.masterPriority = p.Src, p.Priority
			return m.becomeBackup(now, fmt.Sprintf("%v (priority %d) took over while we could not advertise for %v: yielding, no preemption for %v",
				p.Src, p.Priority, late.Round(time.Millisecond), m.cfg.StallHold), interval)
		}
		// Two masters (a healed partition): we win, so advertise now and
		// re-announce the addresses, which the loser's GARPs may have stolen.
		out := []Action{{Kind: SendAdvert, Priority: m.priority}}
		if now.Sub(m.lastForcedGARP) >= time.Second || m.lastForcedGARP.IsZero() {
			m.lastForcedGARP = now
			out = append(out, m.announce(now))
		}
		return out
	}
	return nil
}

// CheckResult feeds one result of the tracked check name.
func (m *Core) CheckResult(now time.Time, name string, ok bool) []Action {
	var t *trackState
	for _, x := range m.tracks {
		if x.Name == name {
			t = x
		}
	}
	if t == nil {
		return nil
	}
	t.lastGood = ok
	switch {
	case !t.known:
		t.known, t.ok, t.run = true, ok, 0
	case ok == t.ok:
		t.run = 0
	default:
		t.run++
		need := t.Fall
		if ok {
			need = t.Rise
		}
		if t.run < need {
			return nil
		}
		t.ok, t.run = ok, 0
	}
	return m.reevaluate(now, name)
}

func (m *Core) reevaluate(now time.Time, name string) []Action {
	var out []Action
	if p := m.effectivePriority(); p != m.priority {
		m.priority = p
		out = append(out, Action{Kind: PriorityChanged, Priority: p})
		if m.state == Master {
			out = append(out, Action{Kind: SendAdvert, Priority: p})
		}
	}
	switch faulty := m.faulty(); {
	case faulty && (m.state == Master || m.state == Backup):
		// A master leaves as on Shutdown (RFC 5798 section 6.4.3: "Send an
		// ADVERTISEMENT with Priority = 0"), as keepalived does on entering
		// FAULT: the backup then takes over after Skew_Time (section 6.4.2)
		// instead of Master_Down_Interval, which is what makes a watch
		// track on the local proxy fast.
		if m.state == Master {
			out = append(out, Action{Kind: SendAdvert, Priority: 0}, m.removeVIPs())
		}
		out = append(out, m.change(Fault, "tracked check "+name+" failed"))
		m.stop()
	case !faulty && m.state == Fault:
		out = append(out, m.becomeBackup(now, "tracked check "+name+" recovered", m.cfg.Interval)...)
	}
	return out
}

// TrackStatus describes a tracked check for status output.
type TrackStatus struct {
	Name       string `json:"name"`
	OK         bool   `json:"ok"`
	Known      bool   `json:"known"`
	LastResult bool   `json:"last_result"`
	Weight     int    `json:"weight"`
	Fault      bool   `json:"fault"`
}

// Tracks reports the tracked checks.
func (m *Core) Tracks() []TrackStatus {
	var out []TrackStatus
	for _, t := range m.tracks {
		out = append(out, TrackStatus{Name: t.Name, OK: t.ok, Known: t.known, LastResult: t.lastGood, Weight: t.Weight, Fault: t.Fault})
	}
	return out
}

func addrGreater(a, b netip.Addr) bool { return a.Compare(b) > 0 }

// Filter returns the packet filter for this router's adverts.
func (m *Core) Filter(unicast bool) vrrp.Filter {
	return vrrp.Filter{Version: m.cfg.Version, VRID: m.cfg.VRID, Interval: m.cfg.Interval, Unicast: unicast}
}
