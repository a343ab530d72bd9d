// Package server is the I/O driver of redisha-witness: it runs the pure
// witness core on a clock, keeps links to the monitored Redis nodes and peer
// sentinels (go-redis), persists the core's durable state before any reply
// that depends on it, and serves the sentinel client API over RESP2/RESP3.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redisha/redisha/components/witness"
	"github.com/redisha/redisha/components/witness/statefile"
)

// Auth is a username (optional) and password.
type Auth struct {
	User string
	Pass string
}

// Options configures a Server.
type Options struct {
	// Core carries the monitored masters, announce address and timing. Its
	// MyID is ignored: the run id comes from the state file, or is created.
	Core witness.Config
	// Bind lists the addresses to listen on; Port the client port (0 picks a
	// free one, for tests).
	Bind []string
	Port int
	// ProtectedMode refuses to listen on a non-loopback address without
	// RequirePass, like Redis.
	ProtectedMode bool
	// RequirePass protects the client API (AUTH). Peers must use it too.
	RequirePass string
	// SentinelAuth authenticates us to peer sentinels; empty means use
	// RequirePass, as redis-sentinel does.
	SentinelAuth Auth
	// MasterAuth is sentinel auth-pass/auth-user per master name.
	MasterAuth map[string]Auth
	// StatePath is the durable state file.
	StatePath string
	Logger    *slog.Logger
	// Registry receives the metrics; nil creates a private one.
	Registry *prometheus.Registry
	// MaxClients caps client connections like redis maxclients (10000 when 0).
	MaxClients int
	// TickInterval is the core's timer period (100ms like sentinel's hz).
	TickInterval time.Duration
	// Now and Rand are injectable for tests.
	Now  func() time.Time
	Rand io.Reader
}

// Server is a running witness.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex // guards core, links
	core  *witness.Core
	links map[witness.Target]*link
	// linksGen is the core generation the links were last reconciled at.
	linksGen uint64
	linksSet bool

	listeners []net.Listener
	hub       *hub
	started   time.Time
	clientSeq int64
	nclients  atomic.Int64
	clients   sync.Map // *clientConn -> struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ErrProtectedMode is returned when protected mode forbids the bind address.
var ErrProtectedMode = errors.New("protected mode: refusing to listen on a non-loopback address without requirepass (set requirepass, bind to loopback, or disable protected_mode)")

// IsLoopback reports whether a bind address only accepts local clients.
func IsLoopback(bind string) bool {
	if bind == "localhost" {
		return true
	}
	ip := net.ParseIP(bind)
	return ip != nil && ip.IsLoopback()
}

// Start loads the state, builds the core, opens the listeners and starts the
// timer, link and client goroutines.
func Start(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = 100 * time.Millisecond
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 10000
	}
	if len(opts.Bind) == 0 {
		opts.Bind = []string{"127.0.0.1"}
	}
	if opts.ProtectedMode && opts.RequirePass == "" {
		for _, b := range opts.Bind {
			if !IsLoopback(b) {
				return nil, fmt.Errorf("bind %s: %w", b, ErrProtectedMode)
			}
		}
	}
	if opts.StatePath == "" {
		return nil, errors.New("witness: a state file path is required (votes must survive restarts)")
	}
	if opts.SentinelAuth.Pass == "" {
		opts.SentinelAuth = Auth{Pass: opts.RequirePass}
	}
	st, err := statefile.Load(opts.StatePath)
	if err != nil {
		return nil, err
	}
	cfg := opts.Core
	if st == nil || st.MyID == "" {
		if cfg.MyID, err = witness.NewRunID(opts.Rand); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: opts, log: opts.Logger, links: map[witness.Target]*link{}, started: opts.Now()}
	for _, b := range opts.Bind {
		ln, err := net.Listen("tcp", net.JoinHostPort(b, strconv.Itoa(opts.Port)))
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("witness: listen: %w", err)
		}
		s.listeners = append(s.listeners, ln)
		if opts.Port == 0 { // all binds share the first picked port
			opts.Port = ln.Addr().(*net.TCPAddr).Port
			s.opts.Port = opts.Port
		}
	}
	if cfg.AnnouncePort == 0 {
		cfg.AnnouncePort = opts.Port
	}
	core, err := witness.New(cfg, st, opts.Now())
	if err != nil {
		s.closeListeners()
		return nil, err
	}
	s.core = core
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newMetrics(reg, s)
	if err := s.persistLocked(); err != nil { // records a new run id before anyone can see it
		s.closeListeners()
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.hub = newHub(s)
	s.log.Info("witness started", "myid", core.MyID(), "port", opts.Port, "bind", opts.Bind,
		"current_epoch", core.CurrentEpoch(), "state", opts.StatePath)
	for _, ln := range s.listeners {
		s.wg.Add(1)
		go s.acceptLoop(ln)
	}
	s.wg.Add(1)
	go s.timerLoop()
	return s, nil
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Close()
	}
}

// Port returns the client port.
func (s *Server) Port() int { return s.opts.Port }

// MyID returns the run id.
func (s *Server) MyID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.core.MyID()
}

// Close stops everything and waits for the goroutines.
func (s *Server) Close() error {
	s.cancel()
	s.closeListeners()
	s.clients.Range(func(k, _ any) bool {
		k.(*clientConn).conn.Close()
		return true
	})
	s.mu.Lock()
	for t, l := range s.links {
		l.close()
		delete(s.links, t)
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) timerLoop() {
	defer s.wg.Done()
	tk := time.NewTicker(s.opts.TickInterval)
	defer tk.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tk.C:
			s.mu.Lock()
			if s.ctx.Err() == nil {
				s.core.Tick(s.opts.Now())
				s.afterLocked(true)
			}
			s.mu.Unlock()
		}
	}
}

// afterLocked runs after every core step: persist, reconcile links,
// dispatch actions. Persisting comes first so no command or reply produced
// by this step can leave before the state it depends on is on disk.
func (s *Server) afterLocked(reconcile bool) {
	if err := s.persistLocked(); err != nil {
		s.log.Error("persisting state failed", "err", err)
	}
	if reconcile {
		s.reconcileLocked()
	}
	for _, a := range s.core.Drain() {
		s.dispatchLocked(a)
	}
}

func (s *Server) persistLocked() error {
	if !s.core.Dirty() {
		return nil
	}
	start := time.Now()
	if err := statefile.Save(s.opts.StatePath, s.core.State()); err != nil {
		s.metrics.persistErrors.Inc()
		return err
	}
	s.metrics.persistSeconds.Observe(time.Since(start).Seconds())
	s.core.MarkPersisted()
	return nil
}

func (s *Server) dispatchLocked(a witness.Action) {
	switch a.Kind {
	case witness.ActEvent:
		s.logEvent(a.Event)
		s.metrics.events.WithLabelValues(a.Event.Type).Inc()
		s.hub.publish(a.Event.Type, a.Event.Msg)
	default:
		l := s.links[a.Target]
		if l == nil {
			l = s.newLink(a.Target)
			s.links[a.Target] = l
		}
		l.send(a)
	}
}

func (s *Server) logEvent(e witness.Event) {
	lvl := slog.LevelInfo
	switch e.Level {
	case witness.LevelVerbose:
		lvl = slog.LevelDebug
	case witness.LevelWarning:
		lvl = slog.LevelWarn
	}
	s.log.Log(context.Background(), lvl, e.Type+" "+e.Msg, "event", e.Type)
}

// reconcileLocked opens links to new targets and closes links to targets
// the core no longer knows (e.g. replicas reset by a switch-master).
func (s *Server) reconcileLocked() {
	if s.linksSet && s.linksGen == s.core.Generation() {
		return
	}
	s.linksGen, s.linksSet = s.core.Generation(), true
	want := map[witness.Target]bool{}
	for _, t := range s.core.Targets() {
		want[t] = true
		if s.links[t] == nil {
			s.links[t] = s.newLink(t)
		}
	}
	for t, l := range s.links {
		if !want[t] {
			l.close()
			delete(s.links, t)
		}
	}
}

// step runs fn on the core under the lock and then does the post-step work.
func (s *Server) step(fn func(c *witness.Core, now time.Time)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return // closing: links are gone, do not open new ones
	}
	fn(s.core, s.opts.Now())
	// Links to new targets open on first use; closing stale ones waits for the next tick.
	s.afterLocked(false)
}
