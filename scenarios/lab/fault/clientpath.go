package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
	zlog "github.com/rs/zerolog/log"
)

// ClientPathConfig says where the client path listens and where it forwards.
type ClientPathConfig struct {
	// Name labels the proxy (default "client").
	Name string
	// NetnsPath is the namespace in which the proxy listens and dials the
	// upstream; use the client namespace so its upstream connections carry
	// the client's address and partitions of the client apply to them.
	// "" means the caller's namespace.
	NetnsPath string
	// Listen is the listen address inside that namespace (default
	// "127.0.0.1:0": reachable only from the same namespace).
	Listen string
	// Upstream is where connections go, e.g. "VIP:6379".
	Upstream string
	// Seed feeds the jitter of client-jitter toxics (the Injector's seed is
	// used when it adds toxics; this is for direct use).
	Seed uint64
}

// ClientPath is an in-process toxiproxy between the workload and the VIP.
// The workload dials Addr() from inside the client namespace; toxics added
// by the Injector (client-latency, client-jitter, client-bandwidth,
// client-timeout, client-reset) act on every connection, current and new.
type ClientPath struct {
	cfg      ClientPathConfig
	proxy    *toxiproxy.Proxy
	server   *toxiproxy.ApiServer
	ln       net.Listener
	accepted atomic.Uint64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewClientPath starts listening and forwarding.
func NewClientPath(cfg ClientPathConfig) (*ClientPath, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("client path: no upstream")
	}
	if cfg.Name == "" {
		cfg.Name = "client"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	var ln net.Listener
	if err := inNetns(cfg.NetnsPath, func() (err error) {
		ln, err = net.Listen("tcp", cfg.Listen)
		return err
	}); err != nil {
		return nil, fmt.Errorf("client path: listen %s: %w", cfg.Listen, err)
	}
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	c := &ClientPath{
		cfg:    cfg,
		server: server,
		proxy:  toxiproxy.NewProxy(server, cfg.Name, ln.Addr().String(), cfg.Upstream),
		ln:     ln,
		conns:  map[net.Conn]struct{}{},
	}
	c.wg.Add(1)
	go c.acceptLoop()
	return c, nil
}

// Addr is the address to dial (from inside the path's namespace).
func (c *ClientPath) Addr() string { return c.ln.Addr().String() }

// Upstream is where the path forwards to.
func (c *ClientPath) Upstream() string { return c.cfg.Upstream }

// Accepted counts the client connections accepted so far.
func (c *ClientPath) Accepted() uint64 { return c.accepted.Load() }

// We run toxiproxy's links ourselves instead of Proxy.Start, because its
// own accept loop listens and dials from whatever thread it lands on, i.e.
// in the host namespace, while ours must do both inside the client's.
func (c *ClientPath) acceptLoop() {
	defer c.wg.Done()
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.accepted.Add(1)
		if !c.track(client) {
			return
		}
		// Dial in the background: while the VIP is partitioned away each
		// dial hangs until its timeout, and must not hold up the others.
		go c.forward(client)
	}
}

func (c *ClientPath) forward(client net.Conn) {
	var upstream net.Conn
	err := inNetns(c.cfg.NetnsPath, func() (err error) {
		d := net.Dialer{Timeout: upstreamDialTimeout}
		upstream, err = d.Dial("tcp", c.cfg.Upstream)
		return err
	})
	if err != nil {
		// The workload sees its connection close, as with a refused VIP.
		client.Close()
		return
	}
	if !c.track(upstream) {
		return
	}
	name := client.RemoteAddr().String()
	c.proxy.Toxics.StartLink(c.server, name+"upstream", client, upstream, stream.Upstream)
	c.proxy.Toxics.StartLink(c.server, name+"downstream", upstream, client, stream.Downstream)
}

// upstreamDialTimeout bounds a connection attempt to the VIP.
const upstreamDialTimeout = 5 * time.Second

// isClosed reports whether conn was closed (by toxiproxy ending its link).
func isClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	return rc.Control(func(uintptr) {}) != nil
}

func (c *ClientPath) track(conns ...net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		for _, x := range conns {
			x.Close()
		}
		return false
	}
	// Forget connections toxiproxy already closed, so a long run with
	// many reconnects does not keep them all.
	if len(c.conns) >= 64 {
		for x := range c.conns {
			if isClosed(x) {
				delete(c.conns, x)
			}
		}
	}
	for _, x := range conns {
		c.conns[x] = struct{}{}
	}
	return true
}

// open counts the connections (client and upstream sides) still tracked.
func (c *ClientPath) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for x := range c.conns {
		if !isClosed(x) {
			n++
		}
	}
	return n
}

// Close stops listening and closes every forwarded connection.
func (c *ClientPath) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	err := c.ln.Close()
	for x := range c.conns {
		x.Close()
	}
	c.conns = nil
	c.mu.Unlock()
	c.wg.Wait()
	return err
}

// toxic is the JSON toxiproxy's collection takes.
type toxic struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Stream     string         `json:"stream"`
	Toxicity   float32        `json:"toxicity"`
	Attributes map[string]any `json:"attributes"`
}

func (c *ClientPath) addToxic(t toxic) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	_, err = c.proxy.Toxics.AddToxicJson(bytes.NewReader(b))
	return err
}

func (c *ClientPath) removeToxic(ctx context.Context, name string) error {
	return c.proxy.Toxics.RemoveToxic(ctx, name)
}

// seededLatencyType is our latency toxic: toxiproxy's own draws its jitter
// from the global math/rand, which no seed controls.
const seededLatencyType = "redisha_latency"

// SeededLatencyToxic delays each chunk by Latency±Jitter milliseconds, with
// jitter drawn from a per-connection source derived from Seed.
type SeededLatencyToxic struct {
	Latency int64  `json:"latency"`
	Jitter  int64  `json:"jitter"`
	Seed    uint64 `json:"seed"`
	links   atomic.Uint64
}

// GetBufferSize matches toxiproxy's latency toxic.
func (t *SeededLatencyToxic) GetBufferSize() int { return 1024 }

// NewState gives each link (one direction of one connection) its own
// source: links are created in connection order, so draws are reproducible
// for a reproducible workload.
func (t *SeededLatencyToxic) NewState() any {
	return rand.New(rand.NewPCG(t.Seed, t.links.Add(1)))
}

// Pipe forwards chunks after their delay, in order.
func (t *SeededLatencyToxic) Pipe(stub *toxics.ToxicStub) {
	rng, _ := stub.State.(*rand.Rand)
	for {
		select {
		case <-stub.Interrupt:
			return
		case ch := <-stub.Input:
			if ch == nil {
				stub.Close()
				return
			}
			delay := time.Duration(t.Latency) * time.Millisecond
			if t.Jitter > 0 && rng != nil {
				delay += time.Duration(rng.Int64N(2*t.Jitter+1)-t.Jitter) * time.Millisecond
			}
			sleep := delay - time.Since(ch.Timestamp)
			timer := time.NewTimer(sleep)
			select {
			case <-timer.C:
				ch.Timestamp = ch.Timestamp.Add(sleep)
				stub.Output <- ch
			case <-stub.Interrupt:
				timer.Stop()
				stub.Output <- ch // never drop data when the toxic goes away
				return
			}
		}
	}
}

func init() {
	toxics.Register(seededLatencyType, new(SeededLatencyToxic))
	// toxiproxy's toxics log through zerolog's global logger, at trace
	// level, onto stderr; the harness has its own event log.
	zlog.Logger = zerolog.Nop()
}

func applyClientToxic(_ context.Context, inj *Injector, id int, s Spec, _ map[string]Target) (func(context.Context) (string, error), string, error) {
	inj.mu.Lock()
	cp := inj.client
	inj.mu.Unlock()
	if cp == nil {
		return nil, "", errors.New("no client path attached (fault.WithClientPath)")
	}
	streams := []string{"downstream"}
	switch s.Stream {
	case "upstream":
		streams = []string{"upstream"}
	case "both":
		streams = []string{"upstream", "downstream"}
	}
	var typ string
	var attrs map[string]any
	switch s.Kind {
	case ClientLatency, ClientJitter:
		typ = seededLatencyType
		attrs = map[string]any{"latency": s.Delay.Milliseconds(), "jitter": s.Jitter.Milliseconds(),
			"seed": inj.rng(id, 0).Uint64()}
	case ClientBandwidth:
		typ, attrs = "bandwidth", map[string]any{"rate": s.RateKBps}
	case ClientTimeout:
		typ, attrs = "timeout", map[string]any{"timeout": s.Timeout.Milliseconds()}
	case ClientReset:
		typ, attrs = "reset_peer", map[string]any{"timeout": s.Timeout.Milliseconds()}
	}
	var added []string
	undo := func(ctx context.Context) error {
		var errs []error
		for _, n := range added {
			errs = append(errs, cp.removeToxic(ctx, n))
		}
		return errors.Join(errs...)
	}
	for _, st := range streams {
		name := fmt.Sprintf("f%d_%s_%s", id, typ, st)
		if err := cp.addToxic(toxic{Name: name, Type: typ, Stream: st, Toxicity: 1, Attributes: attrs}); err != nil {
			return nil, "", errors.Join(fmt.Errorf("add toxic %s: %w", name, err), undo(context.Background()))
		}
		added = append(added, name)
	}
	detail := fmt.Sprintf("toxics %v on %s -> %s", added, cp.Addr(), cp.Upstream())
	return func(ctx context.Context) (string, error) { return fmt.Sprintf("removed toxics %v", added), undo(ctx) }, detail, nil
}
