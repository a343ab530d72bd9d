// Package daemon is the process around the witness driver: real sockets and
// goroutines implementing the driver's interfaces (links to the monitored
// Redis nodes and peer sentinels, the state file, the event hub), the one
// loop goroutine that serialises every driver call and sleeps until
// driver.Next, the RESP2/RESP3 client server, and the metrics.
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
	"github.com/redisha/redisha/components/witness/driver"
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
	Core core.Config
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
	// Registry receives the metrics; nil keeps them unregistered (nothing
	// serves them).
	Registry *prometheus.Registry
	// MaxClients caps client connections like redis maxclients (10000 when 0).
	// Connections that have not authenticated yet never lock out a peer: at
	// the cap, a new connection takes the place of the oldest of them.
	MaxClients int
	// AuthTimeout closes a connection that has not authenticated (with
	// requirepass; without it, sent a first command) this long after it
	// was accepted (DefaultAuthTimeout when 0).
	AuthTimeout time.Duration
	// Now and Rand are injectable for tests.
	Now  func() time.Time
	Rand io.Reader
}

// Server is a running witness.
type Server struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	myID    string
	started time.Time // on the injected clock, for INFO's uptime

	// Owned by the loop goroutine: only touched inside do/loop.
	drv   *driver.Driver
	links map[core.Target]*link
	held  map[uint64]heldWaiter // held is-master-down-by-addr replies by ticket

	ops chan op // to the loop goroutine

	listeners []net.Listener
	hub       *hub
	clientSeq int64
	nclients  atomic.Int64
	clients   sync.Map // *clientConn -> struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// One RESP encoder for every link command and client reply, and one
	// for the loop's replies to core commands: a resp.Writer carries a
	// 16 KiB buffer, and one per link and per client was a tenth of the
	// witness's private memory. Each user copies the encoded bytes out
	// (encode) before it writes to its socket, so a slow peer never holds
	// encMu.
	encMu   sync.Mutex
	enc     bytes.Buffer
	encW    *resp.Writer
	loopEnc bytes.Buffer // owned by the loop goroutine
	loopW   *resp.Writer
}

// encode runs fn on the shared encoder in protocol proto and returns the
// bytes appended to dst[:0].
func (s *Server) encode(proto int, dst []byte, fn func(w *resp.Writer)) []byte {
	s.encMu.Lock()
	defer s.encMu.Unlock()
	s.encW.SetProto(proto)
	fn(s.encW)
	_ = s.encW.Flush()
	dst = append(dst[:0], s.enc.Bytes()...)
	s.enc.Reset()
	return dst
}

// op is one call into the driver, run on the loop goroutine.
type op struct {
	fn   func(now time.Time)
	done chan struct{}
}

// DefaultAuthTimeout is Options.AuthTimeout's default: a peer sentinel
// authenticates in its first round trip.
const DefaultAuthTimeout = 10 * time.Second

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

// Start loads the state, builds the driver, opens the listeners and starts
// the loop, link and client goroutines.
func Start(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 10000
	}
	if opts.AuthTimeout <= 0 {
		opts.AuthTimeout = DefaultAuthTimeout
	}
	opts.MaxClients = fitMaxClients(opts.MaxClients, opts.Logger)
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
		if cfg.MyID, err = core.NewRunID(opts.Rand); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: opts, log: opts.Logger, links: map[core.Target]*link{}, held: map[uint64]heldWaiter{}, ops: make(chan op)}
	s.encW, s.loopW = resp.NewWriter(&s.enc), resp.NewWriter(&s.loopEnc)
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
	// Without a registry nobody can read the metrics: they are kept but
	// not registered (no descriptors, no collector state).
	s.metrics = newMetrics(opts.Registry, s)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// The driver stores the state (a new run id) before anyone can see it.
	drv, err := driver.New(opts.Now(), cfg, st, linkSet{s}, store{s}, eventSink{s}, heldSet{s}, s.log)
	if err != nil {
		s.cancel()
		s.closeListeners()
		return nil, err
	}
	s.drv = drv
	s.started = drv.Started()
	s.myID = drv.Core().MyID()
	s.hub = newHub(s)
	s.log.Info("witness started", "myid", s.myID, "port", opts.Port, "bind", opts.Bind,
		"current_epoch", drv.Core().CurrentEpoch(), "state", opts.StatePath)
	s.wg.Add(1)
	go s.loop()
	for _, ln := range s.listeners {
		s.wg.Add(1)
		go s.acceptLoop(ln)
	}
	return s, nil
}

// reservedFDs are the descriptors kept beside the clients: links to the
// monitored nodes and peers (bounded by Core.MaxPeers), listeners, the
// state file, the metrics listener.
const reservedFDs = 128

// fitMaxClients mirrors redis' adjustOpenFilesLimit: maxclients plus the
// reserved descriptors must fit in RLIMIT_NOFILE; the soft limit is raised
// up to the hard one if needed, and maxclients is lowered (with a warning)
// if even that is not enough, so that a full client table can never starve
// the links of descriptors.
func fitMaxClients(maxClients int, log *slog.Logger) int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return maxClients
	}
	need := uint64(maxClients) + reservedFDs
	if l.Cur < need {
		want := l
		want.Cur = min(need, l.Max)
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) == nil {
			l = want
		}
	}
	if l.Cur >= need {
		return maxClients
	}
	n := int(l.Cur) - reservedFDs
	if n < 1 {
		n = 1
	}
	log.Warn("maxclients lowered to fit the open files limit (raise LimitNOFILE)", "maxclients", maxClients, "now", n, "nofile", l.Cur)
	return n
}

func (s *Server) closeListeners() {
	for _, ln := range s.listeners {
		ln.Close()
	}
}

// Port returns the client port.
func (s *Server) Port() int { return s.opts.Port }

// MyID returns the run id.
func (s *Server) MyID() string { return s.myID }

// Close stores any coalesced state change, then stops everything and waits
// for the goroutines.
func (s *Server) Close() error {
	s.do(func(now time.Time) { s.drv.Flush(now) })
	s.cancel()
	s.closeListeners()
	s.clients.Range(func(k, _ any) bool {
		k.(*clientConn).conn.Close()
		return true
	})
	s.wg.Wait() // the loop closes the links on its way out
	return nil
}

// loop is the one goroutine that calls the driver: the I/O goroutines hand
// it their input through do, and it wakes the driver at driver.Next. Every
// call gets the time it runs at, read from the monotonic clock that
// time.Now carries, so the core's TILT rule sees real scheduling gaps.
func (s *Server) loop() {
	defer s.wg.Done()
	defer func() {
		for _, l := range s.links {
			l.close()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(s.drv.Next().Sub(s.opts.Now()))
		select {
		case <-s.ctx.Done():
			return
		case o := <-s.ops:
			o.fn(s.opts.Now())
			close(o.done)
		case <-timer.C:
			s.drv.Wake(s.opts.Now())
			now := mono()
			for _, l := range s.links {
				l.sweep(now)
			}
		}
	}
}

// do runs fn on the loop goroutine and waits for it. It returns false, with
// fn not run, once the server is closing.
func (s *Server) do(fn func(now time.Time)) bool {
	o := op{fn: fn, done: make(chan struct{})}
	select {
	case s.ops <- o:
	case <-s.ctx.Done():
		return false
	}
	<-o.done
	return true
}

// store is the driver's Store: the state file, timed for the metrics.
type store struct{ s *Server }

func (st store) Save(state core.State) error {
	start := time.Now()
	if err := statefile.Save(st.s.opts.StatePath, state); err != nil {
		st.s.metrics.persistErrors.Inc()
		return err
	}
	st.s.metrics.persistSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// eventSink is the driver's Events: log, count, publish to subscribers.
type eventSink struct{ s *Server }

func (e eventSink) Publish(ev core.Event) {
	s := e.s
	lvl := slog.LevelInfo
	switch ev.Level {
	case core.LevelVerbose:
		lvl = slog.LevelDebug
	case core.LevelWarning:
		lvl = slog.LevelWarn
	}
	s.log.Log(context.Background(), lvl, ev.Type+" "+ev.Msg, "event", ev.Type)
	s.metrics.events.WithLabelValues(ev.Type).Inc()
	if s.hub != nil {
		s.hub.publish(ev.Type, ev.Msg)
	}
}

// heldWaiter is a client connection waiting for its held reply: the
// protocol to encode it in, and where its goroutine waits for the bytes.
type heldWaiter struct {
	proto int
	ch    chan []byte // buffered: the loop never blocks on it
}

// heldSet is the driver's HeldReplies: it runs on the loop goroutine,
// encodes the released reply in the waiting connection's protocol and
// hands it to that connection's goroutine, which writes it (the loop never
// writes to a client socket) and only then reads the connection's next
// command.
type heldSet struct{ s *Server }

func (h heldSet) Release(ticket uint64, rep core.IsMasterDownReply, err error) {
	s := h.s
	w, ok := s.held[ticket]
	if !ok {
		return
	}
	delete(s.held, ticket)
	// The shared encoder, not the loop's: a release can happen while the
	// loop's encoder holds a command's reply (a hello that moved the master).
	w.ch <- s.encode(w.proto, nil, func(rw *resp.Writer) { driver.WriteDownReply(rw, rep, err) })
}

// linkSet is the driver's Links: one link (goroutines, connections) per
// target, created on first use.
type linkSet struct{ s *Server }

func (ls linkSet) Send(a core.Action) error {
	s := ls.s
	if s.ctx.Err() != nil {
		return errors.New("closing")
	}
	l := s.links[a.Target]
	if l == nil {
		l = s.newLink(a.Target)
		s.links[a.Target] = l
	}
	return l.send(a)
}

// Sync opens links to new targets and closes links to targets the core no
// longer knows (e.g. replicas reset by a switch-master).
func (ls linkSet) Sync(targets []core.Target) {
	s := ls.s
	if s.ctx.Err() != nil {
		return
	}
	want := map[core.Target]bool{}
	for _, t := range targets {
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
