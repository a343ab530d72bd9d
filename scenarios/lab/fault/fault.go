// Package fault injects and undoes the lab's faults: partitions, crashes,
// restarts, freezes, latency/jitter/loss between nodes and toxics on the
// client path. Everything goes through one Injector, every fault has an
// undo, and every apply and undo is reported as a timestamped Event.
//
// The package knows nodes only through the Target interface and a few
// optional lifecycle interfaces, so it works the same on the lab's
// containers and on plain network namespaces.
package fault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Target is anything with its own network namespace that faults can hit:
// a lab node or the client namespace.
type Target interface {
	Name() string
	Addr() netip.Addr
	// NetnsPath is a path that opens the target's network namespace,
	// e.g. /proc/PID/ns/net or /run/netns/NAME.
	NetnsPath() string
}

// Pauser freezes and thaws a whole node (docker pause: the cgroup freezer).
type Pauser interface {
	Pause(ctx context.Context) error
	Unpause(ctx context.Context) error
}

// Killer kills a whole node with SIGKILL and starts it again.
type Killer interface {
	Kill(ctx context.Context) error
	Start(ctx context.Context) error
}

// Restarter restarts a node in one step (optional; Kill+Start otherwise).
type Restarter interface {
	Restart(ctx context.Context) error
}

// DaemonFinder gives the host PID of one daemon inside a node,
// e.g. "redis-server", "redis-sentinel", "haproxy", "keepalived".
type DaemonFinder interface {
	DaemonPID(ctx context.Context, daemon string) (int, error)
}

// DaemonStarter starts one daemon again after it was crashed (optional; a
// daemon crash is otherwise undone with Killer.Start, which restarts a
// container whose main process died).
type DaemonStarter interface {
	StartDaemon(ctx context.Context, daemon string) error
}

// Kind names a fault, with the same strings as the scenario YAML.
type Kind string

// The fault kinds.
const (
	Partition       Kind = "partition"
	Crash           Kind = "crash"
	Restart         Kind = "restart"
	FreezeNode      Kind = "freeze-node"
	FreezeProcess   Kind = "freeze-process"
	CPUThrottle     Kind = "cpu-throttle"
	Latency         Kind = "latency"
	Jitter          Kind = "jitter"
	Loss            Kind = "loss"
	ClientLatency   Kind = "client-latency"
	ClientJitter    Kind = "client-jitter"
	ClientBandwidth Kind = "client-bandwidth"
	ClientTimeout   Kind = "client-timeout"
	ClientReset     Kind = "client-reset"
)

// Kinds lists every kind the Injector accepts.
var Kinds = []Kind{Partition, Crash, Restart, FreezeNode, FreezeProcess, CPUThrottle, Latency, Jitter, Loss,
	ClientLatency, ClientJitter, ClientBandwidth, ClientTimeout, ClientReset}

// Spec describes one fault. Names refer to the targets passed to Apply.
type Spec struct {
	Kind Kind `json:"kind,omitempty" yaml:"kind,omitempty"`
	// A and B are the two sides of a partition or of a latency/jitter/loss
	// fault (node names; "client" is a node too).
	A []string `json:"a,omitempty" yaml:"a,omitempty"`
	B []string `json:"b,omitempty" yaml:"b,omitempty"`
	// OneWay limits a partition or latency fault to packets going from A to B.
	OneWay bool `json:"one_way,omitempty" yaml:"one_way,omitempty"`
	// Node is the target of crash, restart, freeze-node, freeze-process and
	// cpu-throttle;
	// it may be left empty when Apply gets exactly one target.
	Node string `json:"node,omitempty" yaml:"node,omitempty"`
	// Daemon selects one process inside Node (crash, restart,
	// freeze-process), e.g. "redis-server".
	Daemon string `json:"daemon,omitempty" yaml:"daemon,omitempty"`
	// Delay is the added latency per direction (latency, client-latency).
	Delay time.Duration `json:"delay,omitempty" yaml:"delay,omitempty"`
	// Jitter spreads Delay uniformly over [Delay-Jitter, Delay+Jitter].
	Jitter time.Duration `json:"jitter,omitempty" yaml:"jitter,omitempty"`
	// Loss is a drop probability in [0,1] (loss).
	Loss float64 `json:"loss,omitempty" yaml:"loss,omitempty"`
	// CPU is the share of one CPU a cpu-throttle node may use, in (0,1]
	// (0.05: 5 ms of CPU time per 100 ms period, over all its processes).
	CPU float64 `json:"cpu,omitempty" yaml:"cpu,omitempty"`
	// RateKBps caps the client path's throughput (client-bandwidth).
	RateKBps int64 `json:"rate_kbps,omitempty" yaml:"rate_kbps,omitempty"`
	// Timeout is how long client-timeout stalls before closing (0 = stall
	// until undone) and how long client-reset waits before resetting.
	Timeout time.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Stream is the client-path direction a toxic acts on: "downstream"
	// (VIP to client, the default), "upstream" or "both".
	Stream string `json:"stream,omitempty" yaml:"stream,omitempty"`
}

// String renders the spec compactly for events and logs.
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString(string(s.Kind))
	if len(s.A) > 0 || len(s.B) > 0 {
		sep := "<->"
		if s.OneWay {
			sep = "->"
		}
		fmt.Fprintf(&b, " %s%s%s", strings.Join(s.A, ","), sep, strings.Join(s.B, ","))
	}
	if s.Node != "" {
		fmt.Fprintf(&b, " node=%s", s.Node)
	}
	if s.Daemon != "" {
		fmt.Fprintf(&b, " daemon=%s", s.Daemon)
	}
	if s.Delay > 0 {
		fmt.Fprintf(&b, " delay=%s", s.Delay)
	}
	if s.Jitter > 0 {
		fmt.Fprintf(&b, " jitter=%s", s.Jitter)
	}
	if s.Loss > 0 {
		fmt.Fprintf(&b, " loss=%g", s.Loss)
	}
	if s.CPU > 0 {
		fmt.Fprintf(&b, " cpu=%g", s.CPU)
	}
	if s.RateKBps > 0 {
		fmt.Fprintf(&b, " rate=%dKB/s", s.RateKBps)
	}
	if s.Timeout > 0 {
		fmt.Fprintf(&b, " timeout=%s", s.Timeout)
	}
	if s.Stream != "" {
		fmt.Fprintf(&b, " stream=%s", s.Stream)
	}
	return b.String()
}

// Validate checks what can be checked without the lab: the kind is known
// and the fields it needs are present and in range. The scenario loader
// calls it so a bad YAML file fails before anything starts; Apply calls it
// too.
func (s Spec) Validate() error {
	if _, ok := appliers[s.Kind]; !ok {
		return fmt.Errorf("unknown fault kind %q (known: %v)", s.Kind, Kinds)
	}
	if s.Delay < 0 || s.Jitter < 0 || s.Timeout < 0 || s.RateKBps < 0 {
		return fmt.Errorf("%s: negative duration or rate", s.Kind)
	}
	if s.Loss < 0 || s.Loss > 1 {
		return fmt.Errorf("%s: loss %v must be in [0,1]", s.Kind, s.Loss)
	}
	if s.CPU < 0 || s.CPU > 1 {
		return fmt.Errorf("%s: cpu %v must be in (0,1]", s.Kind, s.CPU)
	}
	if s.Kind == CPUThrottle && s.CPU <= 0 {
		return fmt.Errorf("%s needs a cpu share in (0,1]", s.Kind)
	}
	if s.CPU > 0 && s.Kind != CPUThrottle {
		return fmt.Errorf("%s: only cpu-throttle takes cpu", s.Kind)
	}
	if s.Jitter > s.Delay {
		return fmt.Errorf("%s: jitter %v is larger than delay %v", s.Kind, s.Jitter, s.Delay)
	}
	switch s.Kind {
	case Partition, Latency, Jitter, Loss:
		if len(s.A) == 0 || len(s.B) == 0 {
			return fmt.Errorf("%s needs two non-empty sides a and b", s.Kind)
		}
	case FreezeProcess:
		if s.Daemon == "" {
			return fmt.Errorf("%s needs a daemon", s.Kind)
		}
	}
	switch {
	case (s.Kind == Latency || s.Kind == ClientLatency) && s.Delay <= 0:
		return fmt.Errorf("%s needs a positive delay", s.Kind)
	case (s.Kind == Jitter || s.Kind == ClientJitter) && s.Jitter <= 0:
		return fmt.Errorf("%s needs a positive jitter", s.Kind)
	case s.Kind == Loss && s.Loss <= 0:
		return fmt.Errorf("%s needs a loss probability in (0,1]", s.Kind)
	case s.Kind == ClientBandwidth && s.RateKBps <= 0:
		return fmt.Errorf("%s needs a positive rate (KB/s)", s.Kind)
	}
	switch s.Stream {
	case "", "upstream", "downstream", "both":
	default:
		return fmt.Errorf("%s: stream %q must be upstream, downstream or both", s.Kind, s.Stream)
	}
	return nil
}

// Action says whether an Event is a fault being applied or undone.
type Action string

// Event actions.
const (
	Applied Action = "apply"
	Undone  Action = "undo"
)

// Event reports one apply or undo, for events.jsonl.
type Event struct {
	Time    time.Time     `json:"time"`
	Action  Action        `json:"action"`
	ID      int           `json:"id"`
	Kind    Kind          `json:"kind"`
	Spec    string        `json:"spec"`
	Targets []string      `json:"targets,omitempty"`
	Took    time.Duration `json:"took_ns"`
	Detail  string        `json:"detail,omitempty"`
	Err     string        `json:"error,omitempty"`
}

// Option configures an Injector.
type Option func(*Injector)

// WithSeed sets the seed of every random choice (jitter, loss). The default
// is 1; the runner passes its logged scenario seed.
func WithSeed(seed uint64) Option { return func(i *Injector) { i.seed = seed } }

// WithEvents registers a callback that receives every Event, in order.
// It is called synchronously; keep it quick.
func WithEvents(fn func(Event)) Option { return func(i *Injector) { i.onEvent = fn } }

// WithTableName sets the nftables table the injector owns in each
// namespace (default DefaultTable). Two injectors acting on the same
// namespaces at once need different names, as each deletes its table when
// its last fault there is undone. Keep the DefaultTable prefix:
// RemoveLeftovers (`redisha lab gc`) finds tables by it.
func WithTableName(name string) Option { return func(i *Injector) { i.table = name } }

// WithExempt names addresses that no network fault may ever match, such as
// the host-side observer's bridge gateway address. Rules only ever match the
// peer sets' own addresses, so these are exempt anyway; listing them makes
// Apply refuse a spec that would put one into a peer set.
func WithExempt(addrs ...netip.Addr) Option {
	return func(i *Injector) { i.exempt = append(i.exempt, addrs...) }
}

// WithClientPath attaches the toxiproxy path that client-* faults act on.
func WithClientPath(cp *ClientPath) Option { return func(i *Injector) { i.client = cp } }

// DefaultTable is the nftables table name faults use in every namespace.
const DefaultTable = "redisha_fault"

// Injector applies and undoes faults. It is safe for concurrent use.
type Injector struct {
	log     *slog.Logger
	seed    uint64
	onEvent func(Event)
	table   string
	exempt  []netip.Addr
	client  *ClientPath

	mu      sync.Mutex
	nextID  int
	nextQ   uint16
	active  []*Handle
	eventMu sync.Mutex
}

// NewInjector returns an injector; logger may be nil.
func NewInjector(logger *slog.Logger, opts ...Option) *Injector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	i := &Injector{log: logger, seed: 1, table: DefaultTable, nextQ: firstQueue}
	for _, o := range opts {
		o(i)
	}
	return i
}

// firstQueue is the first NFQUEUE number handed out; queues are per
// namespace, so numbers only need to be unique within one injector.
const firstQueue = 4200

// AttachClientPath sets (or replaces) the client path used by client-* faults.
func (i *Injector) AttachClientPath(cp *ClientPath) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.client = cp
}

// Handle is one applied fault.
type Handle struct {
	inj     *Injector
	id      int
	spec    Spec
	targets []string
	undo    func(ctx context.Context) (string, error)

	mu     sync.Mutex
	undone bool
	err    error
}

// ID is the fault's number within its injector (also in its events).
func (h *Handle) ID() int { return h.id }

// Spec is the fault as applied.
func (h *Handle) Spec() Spec { return h.spec }

// Undo reverts the fault and emits its undo event. Calling it again
// returns the first result without doing anything.
func (h *Handle) Undo(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.undone {
		return h.err
	}
	h.undone = true
	start := time.Now()
	var detail string
	if h.undo != nil {
		detail, h.err = h.undo(ctx)
	}
	h.inj.emit(Undone, h, start, detail, h.err)
	h.inj.forget(h)
	return h.err
}

func (i *Injector) forget(h *Handle) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.active = slices.DeleteFunc(i.active, func(x *Handle) bool { return x == h })
}

// Active returns the faults applied and not yet undone, oldest first.
func (i *Injector) Active() []*Handle {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.active)
}

// UndoAll undoes every active fault, newest first, and returns all errors.
func (i *Injector) UndoAll(ctx context.Context) error {
	hs := i.Active()
	var errs []error
	for k := len(hs) - 1; k >= 0; k-- {
		if err := hs[k].Undo(ctx); err != nil {
			errs = append(errs, fmt.Errorf("undo %d (%s): %w", hs[k].id, hs[k].spec.Kind, err))
		}
	}
	return errors.Join(errs...)
}

func (i *Injector) emit(a Action, h *Handle, start time.Time, detail string, err error) {
	ev := Event{Time: time.Now(), Action: a, ID: h.id, Kind: h.spec.Kind, Spec: h.spec.String(),
		Targets: h.targets, Took: time.Since(start), Detail: detail}
	level := slog.LevelInfo
	if err != nil {
		ev.Err = err.Error()
		level = slog.LevelError
	}
	i.log.Log(context.Background(), level, "fault "+string(a), "id", ev.ID, "spec", ev.Spec,
		"targets", ev.Targets, "took", ev.Took, "detail", detail, "error", ev.Err)
	if i.onEvent != nil {
		i.eventMu.Lock()
		defer i.eventMu.Unlock()
		i.onEvent(ev)
	}
}

// applier does the work of one kind and returns its undo.
type applier func(ctx context.Context, inj *Injector, id int, s Spec, pool map[string]Target) (undo func(context.Context) (string, error), detail string, err error)

var appliers = map[Kind]applier{
	Partition:       applyPartition,
	Crash:           applyCrash,
	Restart:         applyRestart,
	FreezeNode:      applyFreezeNode,
	FreezeProcess:   applyFreezeProcess,
	CPUThrottle:     applyCPUThrottle,
	Latency:         applyNetDelay,
	Jitter:          applyNetDelay,
	Loss:            applyNetDelay,
	ClientLatency:   applyClientToxic,
	ClientJitter:    applyClientToxic,
	ClientBandwidth: applyClientToxic,
	ClientTimeout:   applyClientToxic,
	ClientReset:     applyClientToxic,
}

// Apply injects one fault. targets is the pool the spec's names refer to
// (pass all lab nodes and the client). A failed Apply leaves nothing behind
// and still emits an event carrying the error.
func (i *Injector) Apply(ctx context.Context, s Spec, targets ...Target) (*Handle, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("fault: %w", err)
	}
	fn := appliers[s.Kind]
	pool := make(map[string]Target, len(targets))
	for _, t := range targets {
		if t == nil {
			return nil, errors.New("fault: nil target")
		}
		if _, dup := pool[t.Name()]; dup {
			return nil, fmt.Errorf("fault: two targets named %q", t.Name())
		}
		pool[t.Name()] = t
	}
	if s.Node == "" && len(targets) == 1 {
		s.Node = targets[0].Name()
	}
	i.mu.Lock()
	i.nextID++
	id := i.nextID
	i.mu.Unlock()
	h := &Handle{inj: i, id: id, spec: s, targets: specTargets(s)}
	start := time.Now()
	undo, detail, err := fn(ctx, i, id, s, pool)
	if err != nil {
		err = fmt.Errorf("fault %s: %w", s.Kind, err)
		h.undone = true
		i.emit(Applied, h, start, detail, err)
		return nil, err
	}
	h.undo = undo
	i.mu.Lock()
	i.active = append(i.active, h)
	i.mu.Unlock()
	i.emit(Applied, h, start, detail, nil)
	return h, nil
}

func specTargets(s Spec) []string {
	var out []string
	out = append(out, s.A...)
	out = append(out, s.B...)
	if s.Node != "" && !slices.Contains(out, s.Node) {
		out = append(out, s.Node)
	}
	return out
}

// rng returns the random source for fault id: a pure function of the
// injector seed and the fault's number, so a replay makes the same draws.
func (i *Injector) rng(id int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(i.seed, uint64(id)<<16|stream))
}

func (i *Injector) queueNum() uint16 {
	i.mu.Lock()
	defer i.mu.Unlock()
	q := i.nextQ
	i.nextQ++
	return q
}

func resolve(pool map[string]Target, names []string, what string) ([]Target, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("%s is empty", what)
	}
	out := make([]Target, 0, len(names))
	for _, n := range names {
		t, ok := pool[n]
		if !ok {
			return nil, fmt.Errorf("%s names unknown target %q", what, n)
		}
		out = append(out, t)
	}
	return out, nil
}

func node(pool map[string]Target, s Spec) (Target, error) {
	if s.Node == "" {
		return nil, errors.New("no node named")
	}
	t, ok := pool[s.Node]
	if !ok {
		return nil, fmt.Errorf("unknown node %q", s.Node)
	}
	return t, nil
}
