// Package core is the pure core of redisha-witness: a sentinel-protocol
// voter that monitors Redis masters, takes part in the down agreement and the
// failover leader vote like redis-sentinel, and never runs a failover itself.
//
// It keeps the core contract of docs/architecture.md: New validates the
// configuration and takes the restored state; every event is a method with
// the time it happened first (ticks, replies from Redis nodes and peer
// sentinels, link failures, hellos, vote requests) that returns the actions
// it causes in the order the driver must carry them out (an ActPersist
// carrying the state to write comes first, before any command, event or
// reply that depends on it); Next says when the core wants its next Tick. It
// owns no goroutines, sockets or clocks, so the simulator and the tests drive
// exactly the code that runs in production. It is not safe for concurrent
// use: the driver serialises every call.
//
// The rules follow redis src/sentinel.c (7.x); function comments name the C
// function they mirror.
package core

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Kind is the kind of a monitored instance.
type Kind uint8

// Instance kinds, named as sentinel names them in events and flags.
const (
	KindMaster Kind = iota + 1
	KindReplica
	KindSentinel
)

func (k Kind) String() string {
	switch k {
	case KindMaster:
		return "master"
	case KindReplica:
		return "slave"
	case KindSentinel:
		return "sentinel"
	}
	return "unknown"
}

// Addr is an instance address as sentinel keeps it: an IP string (compared
// literally, like sentinel does) and a port.
type Addr struct {
	IP   string
	Port int
}

func (a Addr) String() string {
	if strings.Contains(a.IP, ":") { // IPv6, bracketed as net.JoinHostPort does
		return "[" + a.IP + "]:" + strconv.Itoa(a.Port)
	}
	return a.IP + ":" + strconv.Itoa(a.Port)
}

// Target names one link the driver keeps open for the core: an instance of a
// given kind, monitored as part of a given master. It is comparable.
type Target struct {
	Master string
	Kind   Kind
	Addr   Addr
}

// Timing holds the sentinel periods. Zero fields take redis-sentinel's defaults.
type Timing struct {
	PingPeriod    time.Duration // 1s
	InfoPeriod    time.Duration // 10s
	PublishPeriod time.Duration // 2s
	AskPeriod     time.Duration // 1s
	TiltTrigger   time.Duration // 2s
	TiltPeriod    time.Duration // 30s
	// TickPeriod bounds Next: the core asks for a Tick at most this long
	// after the previous one (sentinel's hz 10), which is what makes a late
	// tick (a frozen process) visible to the TILT rule.
	TickPeriod time.Duration // 100ms
	// PersistDelay coalesces the state writes of changes that are not
	// votes (peers, replicas, epochs and configurations learned from
	// hellos): they are written at most this long after the first of them.
	// A vote is always written before its reply.
	PersistDelay time.Duration // 1s
	// ForgetPeersAfter removes a peer sentinel not heard from (no hello)
	// for this long; it is learned again from its next hello.
	ForgetPeersAfter time.Duration // 10m
	// ReplacePeerAfter: when a master's peer table is full, a new peer
	// takes the place of the longest-silent one if that one has been
	// silent this long (sentinels say hello every 2 s); otherwise the new
	// one is refused.
	ReplacePeerAfter time.Duration // 30s
}

func (t Timing) withDefaults() Timing {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.PingPeriod, time.Second)
	def(&t.InfoPeriod, 10*time.Second)
	def(&t.PublishPeriod, 2*time.Second)
	def(&t.AskPeriod, time.Second)
	def(&t.TiltTrigger, 2*time.Second)
	def(&t.TiltPeriod, 30*time.Second)
	def(&t.TickPeriod, 100*time.Millisecond)
	def(&t.PersistDelay, time.Second)
	def(&t.ForgetPeersAfter, 10*time.Minute)
	def(&t.ReplacePeerAfter, 30*time.Second)
	return t
}

// MasterConfig is one monitored master as configured.
type MasterConfig struct {
	Name            string
	Addr            Addr
	Quorum          int
	DownAfter       time.Duration
	FailoverTimeout time.Duration
	ParallelSyncs   int
}

// Config configures the core.
type Config struct {
	// MyID is this witness's 40-hex-char run id (see NewRunID).
	MyID string
	// AnnounceIP/AnnouncePort go into hellos. An empty AnnounceIP lets the
	// driver put the local address of each link, as sentinel does.
	AnnounceIP   string
	AnnouncePort int
	Masters      []MasterConfig
	Timing       Timing
	// MaxPeers bounds the peer sentinels kept per master (DefaultMaxPeers
	// when 0): anyone who can PUBLISH on a monitored Redis can announce
	// sentinels, and each costs a link.
	MaxPeers int
}

// DefaultMaxPeers is Config.MaxPeers's default.
const DefaultMaxPeers = 32

// Validate reports the first problem in c.
func (c Config) Validate() error {
	if !ValidRunID(c.MyID) {
		return fmt.Errorf("witness: run id %q is not 40 hex characters", c.MyID)
	}
	if c.AnnouncePort < 0 || c.AnnouncePort > 65535 {
		return fmt.Errorf("witness: announce port %d out of range", c.AnnouncePort)
	}
	if len(c.Masters) == 0 {
		return errors.New("witness: no master to monitor")
	}
	if c.MaxPeers < 0 {
		return fmt.Errorf("witness: max peers %d is negative", c.MaxPeers)
	}
	if t := c.Timing.withDefaults(); t.TickPeriod >= t.TiltTrigger {
		return fmt.Errorf("witness: tick period %v must be shorter than the tilt trigger %v", t.TickPeriod, t.TiltTrigger)
	}
	seen := map[string]bool{}
	for _, m := range c.Masters {
		switch {
		case m.Name == "" || !validName(m.Name):
			return fmt.Errorf("witness: master name %q must be non-empty without spaces or commas", m.Name)
		case seen[m.Name]:
			return fmt.Errorf("witness: master %q configured twice", m.Name)
		case !validIP(m.Addr.IP):
			return fmt.Errorf("witness: master %q: %q is not an IP address", m.Name, m.Addr.IP)
		case m.Addr.Port < 1 || m.Addr.Port > 65535:
			return fmt.Errorf("witness: master %q: port %d out of range", m.Name, m.Addr.Port)
		case m.Quorum < 1:
			return fmt.Errorf("witness: master %q: quorum must be 1 or greater", m.Name)
		case m.DownAfter <= 0:
			return fmt.Errorf("witness: master %q: down-after must be positive", m.Name)
		}
		seen[m.Name] = true
	}
	return nil
}

func validName(s string) bool {
	for _, r := range s {
		if r == ' ' || r == ',' || r == '\r' || r == '\n' || r == '\t' {
			return false
		}
	}
	return true
}

// ValidRunID reports whether s looks like a sentinel run id (40 hex chars).
func ValidRunID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// link is the per-instance connection bookkeeping of sentinel's instanceLink.
type link struct {
	connected    bool
	actPing      time.Time // first unanswered ping; zero when the last one was answered
	lastPing     time.Time
	lastPong     time.Time
	lastAvail    time.Time
	lastReconn   time.Time
	pingInFlight bool
	// probeInFlight: a PING on a fresh connection (ActProbe) is out while
	// the current connection's PING is late; probeAt is when it was sent.
	probeInFlight bool
	probeAt       time.Time
	infoInFlight  bool
	pubInFlight   bool
	askInFlight   bool
}

func (l *link) pending() int {
	n := 0
	for _, b := range []bool{l.pingInFlight, l.infoInFlight, l.pubInFlight, l.askInFlight} {
		if b {
			n++
		}
	}
	return n
}

// instance mirrors sentinelRedisInstance for the fields a witness needs.
type instance struct {
	kind  Kind
	addr  Addr
	runID string
	link  link

	lastPub time.Time

	// INFO-derived (masters and replicas).
	infoRefresh        time.Time
	roleReported       Kind
	roleReportedTime   time.Time
	masterLinkDownTime int64 // ms
	slaveMasterHost    string
	slaveMasterPort    int
	slaveLinkUp        bool
	slavePriority      int
	slaveReplOffset    uint64
	replicaAnnounced   int

	sdown      bool
	sdownSince time.Time

	// Sentinels only.
	lastHello           time.Time
	masterDown          bool // SRI_MASTER_DOWN: it told us the master is down
	lastMasterDownReply time.Time
	leader              string
	leaderEpoch         uint64
}

func newInstance(kind Kind, addr Addr, now time.Time) *instance {
	return &instance{
		kind: kind, addr: addr,
		link:             link{actPing: now, lastAvail: now, lastPong: now},
		roleReported:     kind,
		roleReportedTime: now,
		slavePriority:    100,
		replicaAnnounced: 1,
	}
}

// master is a monitored master with its replicas and peer sentinels.
type master struct {
	cfg  MasterConfig
	self *instance

	configuredAddr Addr // the address in the config file, to notice operator edits
	configEpoch    uint64
	leader         string
	leaderEpoch    uint64
	odown          bool
	odownSince     time.Time
	replicas       map[string]*instance // "ip:port" -> replica
	sentinels      map[string]*instance // run id -> sentinel: sentinel names peers by run id
}

// Core is the witness state machine.
type Core struct {
	cfg          Config
	timing       Timing
	currentEpoch uint64
	masters      map[string]*master
	names        []string // sorted master names, for deterministic iteration

	tilt      bool
	tiltSince time.Time
	prevTick  time.Time
	created   time.Time

	dirty     bool      // a vote changed during the current event: persist before anything else
	lazySince time.Time // first unsaved change that is not a vote; zero when none
	gen       uint64    // bumped on every durable change, a superset of target changes
	out       []Action  // the current event's actions, returned by end

	// Held is-master-down-by-addr replies (hold.go).
	held       []heldReply
	lastHold   map[ClientID]time.Time // when each client last had a reply held
	nextTicket uint64
}

// New builds a core from cfg and, when not nil, the durable state of a
// previous run (see State); the state's run id wins over cfg.MyID. now is the
// creation time. The driver persists State() once before it serves anyone,
// so that a new run id is on disk before a peer can learn it.
func New(cfg Config, now time.Time, st *State) (*Core, error) {
	if st != nil && st.MyID != "" {
		cfg.MyID = st.MyID
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxPeers == 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	c := &Core{cfg: cfg, timing: cfg.Timing.withDefaults(), masters: map[string]*master{}, created: now}
	for _, mc := range cfg.Masters {
		if mc.FailoverTimeout <= 0 {
			mc.FailoverTimeout = 180 * time.Second
		}
		if mc.ParallelSyncs <= 0 {
			mc.ParallelSyncs = 1
		}
		m := &master{cfg: mc, self: newInstance(KindMaster, mc.Addr, now), configuredAddr: mc.Addr,
			replicas: map[string]*instance{}, sentinels: map[string]*instance{}}
		c.masters[mc.Name] = m
		c.names = append(c.names, mc.Name)
	}
	sort.Strings(c.names)
	if st != nil {
		if err := c.restore(st, now); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// MyID returns the run id.
func (c *Core) MyID() string { return c.cfg.MyID }

// CurrentEpoch returns the current epoch.
func (c *Core) CurrentEpoch() uint64 { return c.currentEpoch }

// Tilt reports whether the core is in TILT mode.
func (c *Core) Tilt() bool { return c.tilt }

// DownAfter returns the configured down-after period of a master (0 when it
// is not monitored); drivers size their link timeouts from it.
func (c *Core) DownAfter(master string) time.Duration {
	if m := c.masters[master]; m != nil {
		return m.cfg.DownAfter
	}
	return 0
}

// Next is when the core needs its next Tick: one tick period after the
// previous Tick (or after creation). It is bounded on purpose, like
// sentinel's timer, so that the gap between ticks, measured on the clock
// that now carries (the monotonic clock in production), keeps meaning what
// TILT needs: a tick much later than Next means the process was frozen.
//
// A held is-master-down-by-addr reply brings Next forward to the moment it
// may be released (its master's SDOWN deadline, or its bound), so that the
// reply leaves when the witness's SDOWN fires, not at the next tick.
func (c *Core) Next() time.Time {
	next := c.prevTick.Add(c.timing.TickPeriod)
	if c.prevTick.IsZero() {
		next = c.created.Add(c.timing.TickPeriod)
	}
	// The coalesced write is due within a tick period too, so the bound
	// stays the only periodic deadline.
	if h := c.holdNext(); !h.IsZero() && h.Before(next) {
		next = h
	}
	return next
}

// Flush returns an ActPersist of the state when a coalesced change is not
// on disk yet (drivers call it before they stop).
func (c *Core) Flush(now time.Time) []Action {
	if !c.lazySince.IsZero() {
		c.dirty = true
	}
	return c.end()
}

// PersistFailed tells the core that the driver could not store the state of
// an ActPersist. The state stays unsaved: the next event's actions lead with
// an ActPersist again, so nothing that depends on it (a vote repeated to the
// same candidate) can be sent before it is on disk.
func (c *Core) PersistFailed(now time.Time) []Action {
	c.dirty = true
	return nil
}

// end closes an event: it returns the actions the event caused, led by an
// ActPersist of the state when the event changed it.
func (c *Core) end() []Action {
	out := c.out
	c.out = nil
	if c.dirty {
		c.dirty = false
		c.lazySince = time.Time{}
		st := c.State()
		out = append([]Action{{Kind: ActPersist, State: &st}}, out...)
	}
	return out
}

// Targets lists every instance the driver should keep links to, in a stable order.
func (c *Core) Targets() []Target {
	var ts []Target
	for _, name := range c.names {
		m := c.masters[name]
		ts = append(ts, Target{Master: name, Kind: KindMaster, Addr: m.self.addr})
		for _, k := range sortedKeys(m.replicas) {
			ts = append(ts, Target{Master: name, Kind: KindReplica, Addr: m.replicas[k].addr})
		}
		for _, k := range sortedKeys(m.sentinels) {
			ts = append(ts, Target{Master: name, Kind: KindSentinel, Addr: m.sentinels[k].addr})
		}
	}
	return ts
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// lookup finds the instance behind a target; nil when it is gone (e.g. the
// replica list was reset by a switch-master while a reply was in flight).
func (c *Core) lookup(t Target) (*master, *instance) {
	m := c.masters[t.Master]
	if m == nil {
		return nil, nil
	}
	switch t.Kind {
	case KindMaster:
		if m.self.addr == t.Addr {
			return m, m.self
		}
	case KindReplica:
		if r := m.replicas[t.Addr.String()]; r != nil {
			return m, r
		}
	case KindSentinel:
		if s := m.sentinelByAddr(t.Addr); s != nil {
			return m, s
		}
	}
	return m, nil
}

// markDirtyAt records a durable change that is not a vote: it is written
// within PersistDelay (with the next vote, if one comes first), so that a
// flood of hellos costs one write, not one per hello.
func (c *Core) markDirtyAt(now time.Time) {
	c.gen++
	if c.lazySince.IsZero() {
		c.lazySince = now
	}
}

// markVote records a vote (or the epoch a vote request raised): the state is
// written before anything else the event causes, before its reply above all.
func (c *Core) markVote() {
	c.dirty = true
	c.gen++
}

// persistDue turns coalesced changes into a write once PersistDelay passed.
func (c *Core) persistDue(now time.Time) {
	if !c.lazySince.IsZero() && now.Sub(c.lazySince) >= c.timing.PersistDelay {
		c.dirty = true
	}
}

// Generation changes whenever the durable state (and so possibly Targets)
// changes; drivers recompute their links only when it moved.
func (c *Core) Generation() uint64 { return c.gen }

func (m *master) sentinelByAddr(a Addr) *instance {
	for _, s := range m.sentinels {
		if s.addr == a {
			return s
		}
	}
	return nil
}
