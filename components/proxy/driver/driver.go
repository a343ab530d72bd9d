package driver

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/resp"
)

// Prober sends probes. The answer (or the failure) comes back through
// Driver.HandleReply with the same core.Probe, from the loop that owns the
// driver; an answer that never comes is the core's deadline's business.
type Prober interface {
	// Probe starts p: PING + INFO replication to a backend, or SENTINEL
	// MASTER + SENTINEL GET-MASTER-ADDR-BY-NAME to a sentinel, with
	// p.Deadline as the I/O deadline.
	Probe(p core.Probe)
}

// Router carries out routing decisions on client connections.
type Router interface {
	// SetRoute: new read-write connections follow r from now on.
	SetRoute(r core.Route)
	// CloseClients closes every client connection to backend and says how
	// many there were.
	CloseClients(backend, reason string) int
}

// Stats are the driver's counters, for metrics.
type Stats struct {
	Switchovers    uint64 // times the routed master changed
	ClosedOnSwitch uint64 // client connections closed because their master was deposed or fenced
	Notices        uint64 // sentinel pub/sub messages understood
	Probes         uint64 // probes sent
	ProbeErrors    uint64 // probes the transport reported as failed (timeouts are the core's)
	Hellos         uint64 // __sentinel__:hello messages understood (what the core made of them: Snapshot().Hellos)
	HellosBad      uint64 // values on a hello subscription that are no hello
}

// Driver is the single-threaded event loop logic of redisha-proxy. Every
// entry point takes the time the input arrived; none blocks.
type Driver struct {
	core   *core.Core
	prober Prober
	router Router
	log    *slog.Logger
	stats  Stats
	known  map[string]bool
	trace  func(TraceEntry)
}

// Input kinds in a TraceEntry.
const (
	InputReply       = "reply"
	InputMessage     = "message"
	InputSubscribed  = "subscribed"
	InputWake        = "wake"
	InputReconfigure = "reconfigure"
	InputHello       = "hello"
)

// TraceEntry is one input the driver handled and what the core decided
// from it: the decision trace. Now is the input's receive time (the
// caller's stamp), so "how long after the deciding answer arrived did the
// route move" is measurable without the driver reading a clock.
type TraceEntry struct {
	Now    time.Time
	Input  string     // InputReply, InputMessage, ...
	Target string     // the probed target or the sentinel the message came from
	Probe  core.Probe // the probe a reply answers (Input == InputReply)
	// Actions are the core's actions for this input, already carried out
	// (the Router and Prober were called) when the trace function runs.
	Actions []core.Action
}

// SetTrace installs f, called after every input, once the actions it
// caused were carried out (nil: no trace). It runs on the
// driver's goroutine and must not block.
func (d *Driver) SetTrace(f func(TraceEntry)) { d.trace = f }

// traced applies acts, then reports them to the trace function.
func (d *Driver) traced(e TraceEntry, acts []core.Action) {
	d.apply(acts)
	if d.trace != nil {
		e.Actions = acts
		d.trace(e)
	}
}

// New returns a driver around a fresh core. Nothing is sent until the first
// Wake (Next is then now).
func New(cfg core.Config, now time.Time, p Prober, r Router, log *slog.Logger) (*Driver, error) {
	c, err := core.New(cfg, now)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{core: c, prober: p, router: r, log: log, known: map[string]bool{}}, nil
}

// HandleReply delivers the answer to probe p: the replies in the order the
// commands were sent, or the error that ended the exchange. The result is
// dated from p.At (the answer was given somewhere between then and now).
func (d *Driver) HandleReply(now time.Time, p core.Probe, replies []resp.Value, err error) {
	if want := d.replies(p.Kind); err == nil && len(replies) != want {
		err = fmt.Errorf("%d replies, want %d", len(replies), want)
	}
	if err != nil {
		d.stats.ProbeErrors++
	}
	switch p.Kind {
	case core.ProbeSentinel:
		v := core.View{At: p.At, Sentinel: p.Target}
		if err != nil {
			v.Err = err.Error()
		} else {
			v = ViewFromReplies(p.At, p.Target, replies[0], replies[1])
			if len(replies) == 3 {
				v.RunID = RunIDFromReply(replies[2])
			}
		}
		v.Probe = p.ID
		d.log.Debug("sentinel view", "sentinel", p.Target, "id", p.ID, "sent", p.At, "ok", v.OK, "addr", v.Addr, "epoch", v.Epoch, "err", v.Err)
		d.traced(TraceEntry{Now: now, Input: InputReply, Target: p.Target, Probe: p}, d.core.View(now, v))
	default:
		h := core.Health{At: p.At, Backend: p.Target}
		if err != nil {
			h.Err = err.Error()
		} else {
			h = HealthFromReplies(p.At, p.Target, replies[0], replies[1])
		}
		h.Probe = p.ID
		d.log.Debug("backend health", "backend", p.Target, "id", p.ID, "sent", p.At, "ok", h.OK, "role", h.Role, "err", h.Err)
		d.traced(TraceEntry{Now: now, Input: InputReply, Target: p.Target, Probe: p}, d.core.Health(now, h))
	}
}

// HandleMessage delivers one value read on sentinel's PSUBSCRIBE
// connection; confirmations and malformed messages are ignored.
func (d *Driver) HandleMessage(now time.Time, sentinel string, v resp.Value) {
	ch, payload, ok := NoticeFromMessage(v)
	if !ok {
		return
	}
	d.stats.Notices++
	d.log.Debug("sentinel notice", "sentinel", sentinel, "channel", ch, "payload", payload)
	d.traced(TraceEntry{Now: now, Input: InputMessage, Target: sentinel},
		d.core.Notice(now, core.Notice{Sentinel: sentinel, Channel: ch, Payload: payload}))
}

// replies is how many replies a probe of kind gets: SENTINEL MASTER and
// GET-MASTER-ADDR-BY-NAME, plus SENTINEL MYID with the hello path or the
// promotion fast path on;
// PING and INFO replication.
func (d *Driver) replies(kind core.ProbeKind) int {
	if kind == core.ProbeSentinel && d.core.Config().AsksRunID() {
		return 3
	}
	return 2
}

// ProbeCommands are the commands a probe of kind sends, pipelined, under
// cfg: what HandleReply expects the replies of, in this order.
func ProbeCommands(kind core.ProbeKind, cfg core.Config) [][]string {
	if kind == core.ProbeSentinel {
		cmds := [][]string{{"SENTINEL", "MASTER", cfg.MasterName}, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", cfg.MasterName}}
		if cfg.AsksRunID() {
			cmds = append(cmds, []string{"SENTINEL", "MYID"})
		}
		return cmds
	}
	return [][]string{{"PING"}, {"INFO", "replication"}}
}

// HandleHello delivers one value read on backend's subscription to the
// __sentinel__:hello channel; confirmations are ignored, anything else that
// is no well-formed hello is counted and dropped.
func (d *Driver) HandleHello(now time.Time, backend string, v resp.Value) {
	payload, ok := HelloFromMessage(v)
	if !ok {
		return
	}
	h, ok := core.ParseHello(payload)
	if !ok {
		d.stats.HellosBad++
		d.log.Debug("malformed hello", "backend", backend, "payload", truncate(payload, 200))
		return
	}
	d.stats.Hellos++
	h.Via = backend
	d.traced(TraceEntry{Now: now, Input: InputHello, Target: backend}, d.core.Hello(now, h))
}

// Subscribed reports a (re)subscription to sentinel's events: notices may
// have been missed while it was down.
func (d *Driver) Subscribed(now time.Time, sentinel string) {
	d.traced(TraceEntry{Now: now, Input: InputSubscribed, Target: sentinel}, d.core.Subscribed(now, sentinel))
}

// Wake runs the time-based rules; call it at Next().
func (d *Driver) Wake(now time.Time) {
	d.traced(TraceEntry{Now: now, Input: InputWake}, d.core.Tick(now))
}

// Reconfigure applies a new configuration, keeping the routing state. With
// reprobe (the probes' credentials changed) every target is probed afresh.
func (d *Driver) Reconfigure(now time.Time, cfg core.Config, reprobe bool) error {
	acts, err := d.core.Reconfigure(now, cfg)
	if err != nil {
		return err
	}
	if reprobe {
		acts = append(acts, d.core.Reprobe(now)...)
	}
	d.traced(TraceEntry{Now: now, Input: InputReconfigure}, acts)
	return nil
}

// Next is when the driver must be woken (Wake) at the latest.
func (d *Driver) Next() time.Time { return d.core.Next() }

// Route is the current decision for new read-write connections.
func (d *Driver) Route() core.Route { return d.core.Route() }

// Replicas are the backends fit for read-only traffic.
func (d *Driver) Replicas() []string { return d.core.Replicas() }

// Snapshot summarises the routing state.
func (d *Driver) Snapshot() core.Snapshot { return d.core.Snapshot() }

// Stats returns the counters.
func (d *Driver) Stats() Stats { return d.stats }

// apply carries out the core's actions in order: the route is set before
// any close, so a connection registered after the close sees the new route.
func (d *Driver) apply(acts []core.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case core.SetRoute:
			d.router.SetRoute(a.Route)
			if r := a.Route; r.Master != "" {
				d.log.Info("routing", "master", r.Master)
			} else {
				d.log.Warn("not routing new connections", "hold", r.Hold, "reason", r.Reason)
			}
		case core.Close:
			n := d.router.CloseClients(a.Backend, a.Reason)
			d.stats.ClosedOnSwitch += uint64(n)
			d.log.Warn("closed client connections to deposed master", "backend", a.Backend, "connections", n, "reason", a.Reason)
		case core.Switch:
			d.stats.Switchovers++
			d.log.Warn("switchover", "from", a.From, "to", a.To)
		case core.FastPathEvent:
			switch a.What {
			case "route":
				d.log.Warn("promotion fast path: provisional route", "master", a.Addr, "epoch", a.Epoch, "leader", a.Leader, "why", a.Reason)
			case "confirmed":
				d.log.Info("promotion fast path: provisional route confirmed", "master", a.Addr, "epoch", a.Epoch, "why", a.Reason)
			case "withdrawn":
				d.log.Warn("promotion fast path: provisional route withdrawn", "master", a.Addr, "epoch", a.Epoch, "why", a.Reason)
			}
		case core.Probe:
			if a.Discovered && !d.known[a.Target] {
				d.known[a.Target] = true
				d.log.Info("health-checking backend named by sentinels", "backend", a.Target)
			}
			d.stats.Probes++
			d.log.Debug("probe", "target", a.Target, "id", a.ID)
			d.prober.Probe(a)
		}
	}
}
