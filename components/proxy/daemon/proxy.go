// Package daemon is the redisha-proxy process: listeners and forwarding
// (components/proxy/forward), the probe and subscription connections, the
// one loop goroutine that runs the driver (components/proxy/driver, which
// runs the routing core), metrics and the admin endpoint. Every decision,
// including when to probe what, comes from the core; this package only does
// the I/O the driver asks for and posts what it reads back to the loop.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisha/redisha/components/proxy/config"
	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
	"github.com/redisha/redisha/components/proxy/forward"
	"github.com/redisha/redisha/components/resp"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"
)

// Config is the proxy's configuration (components/proxy/config).
type Config = config.Config

// Auth is an AUTH password with an optional ACL user.
type Auth = config.Auth

// Proxy is one running redisha-proxy instance.
type Proxy struct {
	log     *slog.Logger
	cfg     atomic.Pointer[Config]
	metrics *metrics

	ctx    context.Context
	cancel context.CancelFunc

	// events are closures run by the loop goroutine, which owns the driver.
	events   chan func(d *driver.Driver)
	reloadCh chan *Config
	stats    atomic.Pointer[driver.Stats]

	routeMu  sync.Mutex
	route    atomic.Pointer[core.Route]
	routeCh  chan struct{} // closed and replaced on every route change
	replicas atomic.Pointer[[]string]
	snap     atomic.Pointer[core.Snapshot]
	rr       atomic.Uint64

	reg      registry
	active   atomic.Int64
	draining atomic.Bool
	stopping atomic.Bool // a stop began (watchers told); /livez is 503 from then on
	handlers sync.WaitGroup

	lnMu      sync.Mutex
	rw        *net.TCPListener
	ro        *net.TCPListener
	dl        *net.TCPListener // durable_listen (always "replicated")
	admin     *http.Server
	adminAddr string
	watch     *watchServer   // the current watch listener (nil: none)
	oldWatch  []*watchServer // watch listeners replaced by a reload: their watchers stay until the stop

	// afterDial, when set (tests only), runs between dialling a client's
	// master and checking that the route still names it.
	afterDial atomic.Pointer[func()]

	// acceptErr is the last accept error of the read-write listener, ""
	// once an accept succeeds again (/livez).
	acceptErr atomic.Pointer[string]

	// durable mode (durable.go)
	dstats  *forward.DurableStats
	durMu   sync.Mutex
	durCmds map[string]*forward.CommandTable // COMMAND tables by master address
	// durFetch shares one COMMAND fetch among the connections that need it at once.
	durFetch singleflight.Group
	durRepl  map[string]*replicaWatch // no-replica pollers by master (policy async)

	// Version is reported by /status; set it before Start.
	Version string

	// traceHook, when set before Start, sees every driver input with the
	// time its actions had been carried out (tests measure the proxy's own
	// reaction time from it).
	traceHook func(e driver.TraceEntry, applied time.Time)

	// owned by the loop goroutine
	workers   map[workerKey]*worker
	subs      map[string]context.CancelFunc
	probeAuth Auth // credentials the running probes use
	watchAuth Auth // credentials the running sentinel watchers use
}

// New prepares a proxy; Start binds and runs it.
func New(cfg *Config, log *slog.Logger) *Proxy {
	p := &Proxy{log: log, metrics: newMetrics(), events: make(chan func(*driver.Driver), 4096), reloadCh: make(chan *Config, 1),
		routeCh: make(chan struct{}), reg: registry{m: map[string]map[*pair]struct{}{}},
		workers: map[workerKey]*worker{}, subs: map[string]context.CancelFunc{},
		dstats: &forward.DurableStats{}, durCmds: map[string]*forward.CommandTable{}, durRepl: map[string]*replicaWatch{}}
	p.metrics.durable = p.dstats
	p.cfg.Store(cfg)
	p.stats.Store(&driver.Stats{})
	p.metrics.stats = func() driver.Stats { return *p.stats.Load() }
	p.metrics.bytes.live = p.liveBytes
	r := core.Route{Hold: true, Reason: "starting"}
	p.route.Store(&r)
	p.replicas.Store(&[]string{})
	p.snap.Store(&core.Snapshot{Route: r})
	return p
}

// Start binds the listeners and starts checks and forwarding.
func (p *Proxy) Start() error {
	cfg := p.cfg.Load()
	p.ctx, p.cancel = context.WithCancel(context.Background())
	d, err := driver.New(cfg.CoreConfig(), time.Now(), p, p, p.log)
	if err != nil {
		return err
	}
	rw, err := listen(cfg.Listen)
	if err != nil {
		return err
	}
	p.rw = rw
	if cfg.ReadOnlyListen != "" {
		if p.ro, err = listen(cfg.ReadOnlyListen); err != nil {
			rw.Close()
			return err
		}
	}
	if cfg.DurableListen != "" {
		if p.dl, err = listen(cfg.DurableListen); err != nil {
			rw.Close()
			if p.ro != nil {
				p.ro.Close()
			}
			return err
		}
	}
	if cfg.WatchListen != "" {
		if p.watch, err = startWatch(cfg.WatchListen, p.log); err != nil {
			rw.Close()
			if p.ro != nil {
				p.ro.Close()
			}
			if p.dl != nil {
				p.dl.Close()
			}
			return err
		}
	}
	if cfg.Admin != "" {
		if err := p.startAdmin(cfg.Admin); err != nil {
			rw.Close()
			if p.ro != nil {
				p.ro.Close()
			}
			if p.watch != nil {
				p.watch.stop(false)
			}
			if p.dl != nil {
				p.dl.Close()
			}
			return err
		}
	}
	p.handlers.Add(1)
	go p.loop(d, cfg)
	go p.serve(p.rw, lnRW)
	if p.ro != nil {
		go p.serve(p.ro, lnRO)
	}
	if p.dl != nil {
		go p.serve(p.dl, lnDurable)
	}
	go p.reapIdle()
	p.log.Info("proxy started", "listen", p.rw.Addr().String(), "read_only_listen", cfg.ReadOnlyListen,
		"durability", cfg.Durability, "durable_listen", cfg.DurableListen,
		"admin", cfg.Admin, "watch_listen", cfg.WatchListen, "master_name", cfg.MasterName, "backends", cfg.Backends, "sentinels", cfg.Sentinels)
	return nil
}

func listen(addr string) (*net.TCPListener, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, err
	}
	return net.ListenTCP("tcp", ta)
}

// Addr is the read-write listener's address.
func (p *Proxy) Addr() string {
	p.lnMu.Lock()
	defer p.lnMu.Unlock()
	return p.rw.Addr().String()
}

// ReadOnlyAddr is the read-only listener's address ("" when disabled).
func (p *Proxy) ReadOnlyAddr() string {
	p.lnMu.Lock()
	defer p.lnMu.Unlock()
	if p.ro == nil {
		return ""
	}
	return p.ro.Addr().String()
}

// DurableAddr is the durable listener's address ("" when disabled).
func (p *Proxy) DurableAddr() string {
	p.lnMu.Lock()
	defer p.lnMu.Unlock()
	if p.dl == nil {
		return ""
	}
	return p.dl.Addr().String()
}

// AdminAddr is the admin HTTP address ("" when disabled).
func (p *Proxy) AdminAddr() string {
	p.lnMu.Lock()
	defer p.lnMu.Unlock()
	return p.adminAddr
}

// Route is the current decision for new read-write connections.
func (p *Proxy) Route() core.Route { return *p.route.Load() }

// Snapshot is the routing core's last summary.
func (p *Proxy) Snapshot() core.Snapshot { return *p.snap.Load() }

// Reload applies a new configuration without dropping client connections:
// changed listeners are re-bound (accepted connections are untouched), the
// core keeps its state, and checks follow the new targets.
func (p *Proxy) Reload(cfg *Config) error {
	old := p.cfg.Load()
	p.lnMu.Lock()
	if cfg.Listen != old.Listen {
		ln, err := listen(cfg.Listen)
		if err != nil {
			p.lnMu.Unlock()
			return fmt.Errorf("reload: listen %s: %w", cfg.Listen, err)
		}
		oldLn := p.rw
		p.rw = ln
		go p.serve(ln, lnRW)
		oldLn.Close()
	}
	if cfg.ReadOnlyListen != old.ReadOnlyListen {
		var ln *net.TCPListener
		if cfg.ReadOnlyListen != "" {
			var err error
			if ln, err = listen(cfg.ReadOnlyListen); err != nil {
				p.lnMu.Unlock()
				return fmt.Errorf("reload: read_only_listen %s: %w", cfg.ReadOnlyListen, err)
			}
			go p.serve(ln, lnRO)
		}
		if p.ro != nil {
			p.ro.Close()
		}
		p.ro = ln
	}
	if cfg.DurableListen != old.DurableListen {
		var ln *net.TCPListener
		if cfg.DurableListen != "" {
			var err error
			if ln, err = listen(cfg.DurableListen); err != nil {
				p.lnMu.Unlock()
				return fmt.Errorf("reload: durable_listen %s: %w", cfg.DurableListen, err)
			}
			go p.serve(ln, lnDurable)
		}
		if p.dl != nil {
			p.dl.Close()
		}
		p.dl = ln
	}
	if cfg.WatchListen != old.WatchListen {
		var w *watchServer
		if cfg.WatchListen != "" {
			var err error
			if w, err = startWatch(cfg.WatchListen, p.log); err != nil {
				p.lnMu.Unlock()
				return fmt.Errorf("reload: watch_listen %s: %w", cfg.WatchListen, err)
			}
		}
		if p.watch != nil {
			// Its watchers keep their connections (the VIP manager may still
			// watch the old address) until the proxy stops.
			p.watch.closeListener()
			p.oldWatch = append(p.oldWatch, p.watch)
		}
		p.watch = w
	}
	p.lnMu.Unlock()
	if cfg.Admin != old.Admin {
		p.stopAdmin()
		if cfg.Admin != "" {
			if err := p.startAdmin(cfg.Admin); err != nil {
				return fmt.Errorf("reload: admin %s: %w", cfg.Admin, err)
			}
		}
	}
	p.cfg.Store(cfg)
	select {
	case p.reloadCh <- cfg:
	case <-p.ctx.Done():
	}
	p.log.Info("configuration reloaded", "listen", cfg.Listen, "backends", cfg.Backends, "sentinels", cfg.Sentinels)
	return nil
}

// Drain stops accepting, reports unhealthy, waits for clients to leave (up
// to the drain timeout or ctx), then closes what is left and stops.
//
// Watchers (watch_listen) are told "stopping" first, before the listeners
// close, and the listeners keep accepting for limits.stop_notice: a VIP
// manager moves the address while this proxy still serves.
func (p *Proxy) Drain(ctx context.Context) {
	p.stopping.Store(true)
	p.stopWatchers()
	if d := p.cfg.Load().Limits.StopNotice; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	p.draining.Store(true)
	p.lnMu.Lock()
	p.rw.Close()
	if p.ro != nil {
		p.ro.Close()
	}
	if p.dl != nil {
		p.dl.Close()
	}
	p.lnMu.Unlock()
	timeout := time.NewTimer(p.cfg.Load().Limits.DrainTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	p.log.Info("draining", "connections", p.active.Load())
wait:
	for p.active.Load() > 0 {
		select {
		case <-ctx.Done():
			break wait
		case <-timeout.C:
			break wait
		case <-tick.C:
		}
	}
	if n := p.reg.closeAll(); n > 0 {
		p.log.Warn("drain timeout: closed remaining connections", "connections", n)
	}
	p.Close()
}

// Close stops everything at once.
func (p *Proxy) Close() {
	p.stopping.Store(true)
	p.draining.Store(true)
	p.stopWatchers()
	p.lnMu.Lock()
	p.rw.Close()
	if p.ro != nil {
		p.ro.Close()
	}
	if p.dl != nil {
		p.dl.Close()
	}
	p.lnMu.Unlock()
	p.reg.closeAll()
	p.stopAdmin()
	p.cancel()
	p.handlers.Wait()
}

// ---- the loop ----------------------------------------------------------------

// post hands an input to the loop goroutine. Callers stamp the receive time
// inside f's arguments before posting.
func (p *Proxy) post(f func(d *driver.Driver)) {
	select {
	case p.events <- f:
	case <-p.ctx.Done():
	}
}

// loop is the one goroutine that owns the driver: it runs what the I/O
// goroutines post, wakes the driver at its Next, and publishes the state.
func (p *Proxy) loop(d *driver.Driver, cfg *Config) {
	defer p.handlers.Done()
	defer p.stopTargets()
	p.probeAuth, p.watchAuth = cfg.Auth, cfg.SentinelAuth
	p.syncSubs(cfg)
	if h := p.traceHook; h != nil {
		d.SetTrace(func(e driver.TraceEntry) { h(e, time.Now()) })
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case f := <-p.events:
			f(d)
		case now := <-timer.C:
			d.Wake(now)
		case ncfg := <-p.reloadCh:
			reprobe := ncfg.Auth != p.probeAuth || ncfg.SentinelAuth != p.watchAuth
			if reprobe {
				// New credentials: every probe connection redials with them.
				p.stopWorkers(func(workerKey) bool { return true })
			}
			p.probeAuth = ncfg.Auth
			if err := d.Reconfigure(time.Now(), ncfg.CoreConfig(), reprobe); err != nil {
				p.log.Error("reload: routing core rejected the configuration", "err", err)
			}
			cfg = ncfg
			p.syncSubs(cfg)
			p.stopWorkers(func(k workerKey) bool { return !p.wanted(cfg, k) })
		}
		p.publish(d)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if next := d.Next(); !next.IsZero() {
			timer.Reset(time.Until(next))
		}
	}
}

// publish stores what handlers, /healthz and /metrics read.
func (p *Proxy) publish(d *driver.Driver) {
	s := d.Snapshot()
	p.snap.Store(&s)
	reps := d.Replicas()
	p.replicas.Store(&reps)
	st := d.Stats()
	p.stats.Store(&st)
	p.metrics.observe(s)
}

// SetRoute is the driver's Router: new read-write connections follow r.
func (p *Proxy) SetRoute(r core.Route) {
	p.routeMu.Lock()
	p.route.Store(&r)
	close(p.routeCh)
	p.routeCh = make(chan struct{})
	p.routeMu.Unlock()
}

// CloseClients is the driver's Router: close a deposed master's clients.
func (p *Proxy) CloseClients(backend, reason string) int {
	return p.reg.closeBackend(backend)
}

// syncSubs follows the configured sentinels' event streams.
func (p *Proxy) syncSubs(cfg *Config) {
	if cfg.SentinelAuth != p.watchAuth {
		for s, stop := range p.subs {
			stop()
			delete(p.subs, s)
		}
		p.watchAuth = cfg.SentinelAuth
	}
	want := map[string]bool{}
	for _, s := range cfg.Sentinels {
		want[s] = true
	}
	for s, stop := range p.subs {
		if !want[s] {
			stop()
			delete(p.subs, s)
		}
	}
	for s := range want {
		if _, ok := p.subs[s]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(p.ctx)
		p.subs[s] = cancel
		addr := s
		go subscribe(ctx, addr, cfg.SentinelAuth, cfg.Check.Timeout,
			func() {
				now := time.Now()
				p.post(func(d *driver.Driver) { d.Subscribed(now, addr) })
			},
			func(v resp.Value) {
				now := time.Now()
				p.post(func(d *driver.Driver) { d.HandleMessage(now, addr, v) })
			})
	}
}

func (p *Proxy) stopTargets() {
	p.stopWorkers(func(workerKey) bool { return true })
	for s, stop := range p.subs {
		stop()
		delete(p.subs, s)
	}
}

// ---- forwarding --------------------------------------------------------------

type pair struct {
	client, backend *net.TCPConn
	listener        string

	mu     sync.Mutex
	flow   *forward.Flow // set once the event loop owns the sockets
	closed bool
}

func (pr *pair) close() {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.closed = true
	if pr.flow != nil {
		pr.flow.Close()
		return
	}
	pr.client.Close()
	pr.backend.Close()
}

// tcpInfo is the client socket's TCP_INFO.
func (pr *pair) tcpInfo() (*unix.TCPInfo, bool) {
	pr.mu.Lock()
	f := pr.flow
	pr.mu.Unlock()
	if f == nil {
		return forward.TCPInfo(pr.client)
	}
	return f.TCPInfo()
}

// registry tracks live forwarded connections by backend, so a deposed
// master's clients can be cut at once.
type registry struct {
	mu sync.Mutex
	m  map[string]map[*pair]struct{}
}

func (r *registry) add(key string, pr *pair) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[key] == nil {
		r.m[key] = map[*pair]struct{}{}
	}
	r.m[key][pr] = struct{}{}
}

func (r *registry) remove(key string, pr *pair) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m[key], pr)
	if len(r.m[key]) == 0 {
		delete(r.m, key)
	}
}

func (r *registry) closeBackend(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.m[key])
	for pr := range r.m[key] {
		pr.close()
	}
	delete(r.m, key)
	return n
}

func (r *registry) closeAll() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for k, set := range r.m {
		for pr := range set {
			pr.close()
			n++
		}
		delete(r.m, k)
	}
	return n
}

func (r *registry) each(f func(*pair) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, set := range r.m {
		for pr := range set {
			if f(pr) {
				pr.close()
			}
		}
	}
}

// The client listeners.
type lnKind uint8

const (
	lnRW      lnKind = iota // listen: the master, durable when durability is "replicated"
	lnRO                    // read_only_listen: a healthy replica
	lnDurable               // durable_listen: the master, always durable
)

func (p *Proxy) serve(ln *net.TCPListener, kind lnKind) {
	readOnly := kind == lnRO
	delay := 5 * time.Millisecond
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if !readOnly {
				msg := err.Error()
				p.acceptErr.Store(&msg)
			}
			// EMFILE and friends: back off instead of spinning.
			p.log.Warn("accept", "err", err)
			time.Sleep(delay)
			if delay < time.Second {
				delay *= 2
			}
			continue
		}
		delay = 5 * time.Millisecond
		if !readOnly && p.acceptErr.Load() != nil {
			p.acceptErr.Store(nil)
		}
		p.handlers.Add(1)
		go p.handle(c, kind)
	}
}

func listenerName(kind lnKind) string {
	switch kind {
	case lnRO:
		return "read_only"
	case lnDurable:
		return "durable"
	}
	return "read_write"
}

// refuse answers a client with a RESP error and closes. It half-closes first
// and drains briefly, so the error is not lost to a reset when the client
// already sent commands.
func (p *Proxy) refuse(c *net.TCPConn, lst, reason, msg string) {
	p.metrics.refused.WithLabelValues(lst, reason).Inc()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	c.Write([]byte("-ERR redisha-proxy: " + oneLine(msg) + "\r\n"))
	c.CloseWrite()
	io.Copy(io.Discard, io.LimitReader(c, 1<<16))
	c.Close()
}

func oneLine(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch == '\r' || ch == '\n' {
			b[i] = ' '
		}
	}
	return string(b)
}

func (p *Proxy) handle(client *net.TCPConn, kind lnKind) {
	defer p.handlers.Done()
	lst := listenerName(kind)
	readOnly := kind == lnRO
	if p.draining.Load() {
		p.refuse(client, lst, "draining", "shutting down")
		return
	}
	n := p.active.Add(1)
	handedOff := false
	defer func() {
		if !handedOff {
			p.active.Add(-1)
		}
	}()
	cfg := p.cfg.Load()
	if cfg.Limits.MaxConnections > 0 && n > int64(cfg.Limits.MaxConnections) {
		p.refuse(client, lst, "limit", "max number of clients reached")
		return
	}
	var addr, key string
	holdUntil := time.Now().Add(cfg.Routing.HoldNewConnections)
	if readOnly {
		reps := *p.replicas.Load()
		if len(reps) == 0 {
			p.refuse(client, lst, "no_replica", "no healthy replica")
			return
		}
		addr = reps[p.rr.Add(1)%uint64(len(reps))]
		key = "ro|" + addr
	} else {
		r := p.waitRoute(holdUntil)
		if r.Master == "" {
			p.refuse(client, lst, "no_master", "no master: "+r.Reason)
			return
		}
		addr, key = r.Master, r.Master
	}
	d := net.Dialer{Timeout: cfg.Limits.DialTimeout}
	bc, err := d.DialContext(p.ctx, "tcp", addr)
	if err != nil {
		p.refuse(client, lst, "dial", fmt.Sprintf("cannot reach %s: %v", addr, err))
		return
	}
	backend := bc.(*net.TCPConn)
	pr := &pair{client: client, backend: backend, listener: lst}
	p.reg.add(key, pr)
	if f := p.afterDial.Load(); f != nil {
		(*f)()
	}
	if !readOnly {
		// The route may have moved while we dialled; the sweep of a deposed
		// master may have run before we registered. Nothing has been sent yet.
		// A hold is not a move (one late probe of the master puts the route
		// on hold until the next answer): wait for it within the same hold
		// budget, registered, so a sweep that deposes addr meanwhile still
		// closes us. Under load, refusing here failed clients whose master
		// never changed.
		if r := p.waitRoute(holdUntil); r.Master != addr {
			p.reg.remove(key, pr)
			backend.Close()
			why := "master changed while connecting"
			if r.Master == "" {
				why = "no master: " + r.Reason
			}
			p.refuse(client, lst, "no_master", why)
			return
		}
	}
	opts := forward.Options{}
	if kind == lnDurable || (kind == lnRW && cfg.Durability == config.DurabilityReplicated) {
		// Before anything is forwarded: the classification of this
		// master's commands (fetched once) and the no-replica policy.
		opts.Durable, opts.WaitLimit = p.durable(cfg, addr)
	}
	p.metrics.accepted.WithLabelValues(lst).Inc()
	p.metrics.active.WithLabelValues(lst).Inc()
	// The event loops (components/proxy/forward) take the sockets over and
	// this goroutine ends: an idle connection costs no goroutine at all.
	handedOff = true
	p.handlers.Add(1)
	pr.mu.Lock()
	if pr.closed { // a deposed master's sweep got here first
		pr.mu.Unlock()
		p.finished(pr, key, lst, 0, 0)
		return
	}
	opts.Done = func(up, down int64) { p.finished(pr, key, lst, up, down) }
	f, err := forward.Start(client, backend, opts)
	if err != nil {
		pr.mu.Unlock()
		p.log.Warn("forward", "err", err)
		client.Close()
		backend.Close()
		p.finished(pr, key, lst, 0, 0)
		return
	}
	pr.flow = f
	pr.mu.Unlock()
}

// finished cleans up after a pair ended.
func (p *Proxy) finished(pr *pair, key, lst string, up, down int64) {
	p.reg.remove(key, pr)
	p.active.Add(-1)
	p.metrics.active.WithLabelValues(lst).Dec()
	p.metrics.bytes.add(lst, up, down)
	p.handlers.Done()
}

// waitRoute returns the route, waiting until deadline while the core says
// a decision is pending.
func (p *Proxy) waitRoute(deadline time.Time) core.Route {
	for {
		p.routeMu.Lock()
		r, ch := *p.route.Load(), p.routeCh
		p.routeMu.Unlock()
		left := time.Until(deadline)
		if r.Master != "" || !r.Hold || left <= 0 {
			return r
		}
		t := time.NewTimer(left)
		select {
		case <-ch:
		case <-t.C:
		case <-p.ctx.Done():
			t.Stop()
			return core.Route{Reason: "shutting down"}
		}
		t.Stop()
	}
}
