// Package workload drives go-redis clients against a stack and records every operation.
//
// Each worker owns exactly one connection at a time (a go-redis client with a pool of one,
// replaced after any connection error), so the server that acknowledged an operation is known:
// at every dial the worker asks the server for CLIENT INFO (laddr: the server's own address, which
// a proxied TCP connection keeps for its life) and INFO server (run_id).
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/scenarios/history"
)

// DialFunc opens a connection, e.g. from inside the lab's client network namespace.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Config describes one workload run.
type Config struct {
	Addr string // host:port to dial (the VIP or a node); unused with Sentinels
	// Sentinels, when set, make every client a go-redis FailoverClient: it asks these sentinels
	// (host:port) for MasterName's address at each dial and follows +switch-master, as most
	// applications do.
	Sentinels  []string
	MasterName string
	// Publishers and Subscribers, when both are set, add a pub/sub workload on Channel beside
	// the key-value clients: publishers PUBLISH unique messages at PublishRate (over all of
	// them; 0: back to back), subscribers record every message they receive.
	Publishers, Subscribers int
	PublishRate             int
	Channel                 string // default Prefix + ":ps"

	Dial     DialFunc      // nil: net.Dialer
	Clients  int           // workers, one connection each
	Rate     int           // ops/s over all workers; 0: back to back
	Duration time.Duration // how long to run
	SetW     int           // weight of SET (register write)
	GetW     int           // weight of GET (register read)
	AddW     int           // weight of SADD (set element write)
	Keys     int           // registers and sets each
	Timeout  time.Duration // dial, read and write timeout per operation
	Retries  int           // go-redis retries; 0: none
	// Reconnect closes and re-dials each worker's connection once it is this old (0: keep it
	// until an error), like clients that connect per request or recycle pooled connections.
	Reconnect time.Duration
	Seed      uint64 // op choice and key choice
	Prefix    string // key prefix; values are unique per prefix
	// NodeOf names the node listening on an ip:port; nil or "" when unknown.
	NodeOf func(addr string) string
}

// Keys returns the register and set keys a config uses, for the final read.
func (c Config) KeyNames() (registers, sets []string) {
	for i := 0; i < c.Keys; i++ {
		registers = append(registers, fmt.Sprintf("%s:r:%d", c.Prefix, i))
		sets = append(sets, fmt.Sprintf("%s:s:%d", c.Prefix, i))
	}
	return registers, sets
}

// Counters are live totals for progress display.
type Counters struct {
	OK, Fail, Indeterminate, Dials atomic.Int64
}

// Recorder receives every finished operation (history.Writer satisfies it).
type Recorder interface{ Write(v any) }

// Run executes the workload until Duration elapses or ctx ends, recording each operation and
// each dial to rec. It returns when every worker has finished its last operation.
func Run(parent context.Context, cfg Config, rec Recorder, cnt *Counters) error {
	ctx := parent
	if cfg.Clients < 1 || cfg.Keys < 1 || cfg.SetW+cfg.GetW+cfg.AddW <= 0 || cfg.Timeout <= 0 {
		return fmt.Errorf("workload: invalid config (clients %d, keys %d, mix %d/%d/%d, timeout %s)",
			cfg.Clients, cfg.Keys, cfg.SetW, cfg.GetW, cfg.AddW, cfg.Timeout)
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "rh"
	}
	if cnt == nil {
		cnt = &Counters{}
	}
	quietGoRedis.Do(func() { redis.SetLogger(discardLogger{}) })
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	if cfg.Channel == "" {
		cfg.Channel = cfg.Prefix + ":ps"
	}
	var ids atomic.Int64
	var wg, subs sync.WaitGroup
	// Subscribers outlive the publishers by drain, so a message published at the very end is
	// still read: the run's end must not look like a lost message.
	subCtx, subCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer subCancel()
	stopSubs := context.AfterFunc(parent, subCancel) // the caller's cancellation stops them at once
	defer stopSubs()
	start := func(g *sync.WaitGroup, ctx context.Context, body func(context.Context)) {
		g.Add(1)
		go func() {
			defer g.Done()
			body(ctx)
		}()
	}
	newWorker := func(i int) *worker {
		return &worker{id: i, cfg: cfg, rec: rec, cnt: cnt, ids: &ids, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1))}
	}
	pubsub := cfg.Publishers > 0 && cfg.Subscribers > 0
	if pubsub {
		// Subscribers first, so the first messages have someone to reach.
		for i := 0; i < cfg.Subscribers; i++ {
			w := newWorker(cfg.Clients + cfg.Publishers + i)
			start(&subs, subCtx, w.subscribe)
		}
	}
	for i := 0; i < cfg.Clients; i++ {
		w := newWorker(i)
		w.interval = every(cfg.Rate, cfg.Clients)
		start(&wg, ctx, w.run)
	}
	if pubsub {
		for i := 0; i < cfg.Publishers; i++ {
			w := newWorker(cfg.Clients + i)
			w.publisher, w.interval = true, every(cfg.PublishRate, cfg.Publishers)
			start(&wg, ctx, w.run)
		}
	}
	wg.Wait()
	if pubsub {
		t := time.NewTimer(drain(cfg.Timeout))
		select {
		case <-t.C:
		case <-subCtx.Done():
		}
		t.Stop()
	}
	subCancel()
	subs.Wait()
	return nil
}

// drain is how long subscribers keep reading after the last publish: a few client time-outs.
func drain(timeout time.Duration) time.Duration { return max(5*timeout, 500*time.Millisecond) }

// every is each of n workers' period for rate operations per second over all of them (0: none,
// back to back).
func every(rate, n int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) * float64(n) / float64(rate))
}

type worker struct {
	id  int
	cfg Config
	rec Recorder
	cnt *Counters
	ids *atomic.Int64
	rng *rand.Rand
	seq int
	// interval is the worker's period between operations (0: back to back).
	interval time.Duration
	// publisher workers PUBLISH on the channel instead of the key-value mix.
	publisher bool

	client   *redis.Client
	dials    int
	dialedAt time.Time
	server   string // laddr of the current connection
	node     string
	runID    string

	// sent is set once bytes of the current operation's command reach the socket; handshake
	// traffic at dial time does not count.
	sent      atomic.Bool
	handshake atomic.Bool
}

func (w *worker) run(ctx context.Context) {
	defer w.drop()
	interval := w.interval
	// Stagger workers so their ops interleave instead of arriving in bursts.
	next := time.Now().Add(time.Duration(w.rng.Int64N(int64(interval) + 1)))
	for {
		if interval > 0 {
			d := time.Until(next)
			if d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			next = next.Add(interval)
			if now := time.Now(); next.Before(now) {
				next = now // fell behind (slow replies): do not burst to catch up
			}
		}
		if ctx.Err() != nil {
			return
		}
		w.one()
	}
}

func (w *worker) pick() (kind, key, value string) {
	if w.publisher {
		w.seq++
		return history.KindPublish, w.cfg.Channel, fmt.Sprintf("p%d-%d", w.id, w.seq)
	}
	total := w.cfg.SetW + w.cfg.GetW + w.cfg.AddW
	n := w.rng.IntN(total)
	k := w.rng.IntN(w.cfg.Keys)
	w.seq++
	value = fmt.Sprintf("w%d-%d", w.id, w.seq)
	switch {
	case n < w.cfg.SetW:
		return history.KindSet, fmt.Sprintf("%s:r:%d", w.cfg.Prefix, k), value
	case n < w.cfg.SetW+w.cfg.GetW:
		return history.KindGet, fmt.Sprintf("%s:r:%d", w.cfg.Prefix, k), ""
	default:
		return history.KindAdd, fmt.Sprintf("%s:s:%d", w.cfg.Prefix, k), value
	}
}

// one performs a single operation. Operations use a background context: the per-operation
// timeout bounds them, and stopping the run must not turn an in-flight op into a fake failure.
func (w *worker) one() {
	kind, key, value := w.pick()
	op := history.Op{ID: w.ids.Add(1), Worker: w.id, Kind: kind, Key: key, Value: value}
	ctx := context.Background()
	w.sent.Store(false)
	w.handshake.Store(false)
	if w.client != nil && w.cfg.Reconnect > 0 && !w.dialedAt.IsZero() && time.Since(w.dialedAt) >= w.cfg.Reconnect {
		w.drop()
	}
	if w.client == nil {
		w.connect()
	}
	op.Invoke = time.Now()
	var err error
	switch kind {
	case history.KindSet:
		err = w.client.Set(ctx, key, value, 0).Err()
	case history.KindAdd:
		err = w.client.SAdd(ctx, key, value).Err()
	case history.KindPublish:
		var n int64
		n, err = w.client.Publish(ctx, key, value).Result()
		op.Receivers = int(n)
	case history.KindGet:
		var v string
		v, err = w.client.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			op.Nil, err = true, nil
		}
		op.Value = v
	}
	op.Complete = time.Now()
	// The server identity is known only once the lazy dial inside the command has run.
	op.Server, op.Node, op.RunID, op.Dial = w.server, w.node, w.runID, w.dials
	var rerr redis.Error
	switch {
	case err == nil:
		op.Status = history.OK
		w.cnt.OK.Add(1)
	case errors.As(err, &rerr):
		// An error reply (READONLY, NOREPLICAS, LOADING, ...): the server refused it.
		op.Status, op.Err = history.Fail, err.Error()
		w.cnt.Fail.Add(1)
	case w.sent.Load():
		op.Status, op.Err = history.Indeterminate, err.Error()
		w.cnt.Indeterminate.Add(1)
		w.drop()
	default:
		op.Status, op.Err = history.Fail, err.Error()
		w.cnt.Fail.Add(1)
		w.drop()
	}
	if kind == history.KindGet && op.Status != history.OK {
		op.Value = ""
	}
	if op.Status == history.Fail && !w.sent.Load() {
		// Never reached a server: do not attribute it to the previous connection's.
		op.Server, op.Node, op.RunID = "", "", ""
	}
	w.rec.Write(op)
}

// connect prepares a fresh single-connection client; the dial itself happens inside the next
// command, and OnConnect identifies the server. With sentinels it is a FailoverClient, whose
// dial first asks a sentinel for the master.
func (w *worker) connect() {
	w.server, w.node, w.runID = "", "", ""
	w.dialedAt = time.Time{}
	if len(w.cfg.Sentinels) > 0 {
		w.client = redis.NewFailoverClient(w.failoverOptions())
		return
	}
	opt := &redis.Options{
		Addr:                     w.cfg.Addr,
		Protocol:                 2,
		DisableIdentity:          true,
		PoolSize:                 1,
		MinIdleConns:             0,
		MaxIdleConns:             1,
		PoolTimeout:              w.cfg.Timeout,
		DialTimeout:              w.cfg.Timeout,
		ReadTimeout:              w.cfg.Timeout,
		WriteTimeout:             w.cfg.Timeout,
		DialerRetries:            1,
		MaxRetries:               w.cfg.Retries,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := w.dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// go-redis may send its own setup commands before OnConnect: not the op's bytes.
			w.handshake.Store(true)
			return &trackedConn{Conn: c, w: w}, nil
		},
		OnConnect: w.identify,
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = -1
	}
	w.client = redis.NewClient(opt)
}

// failoverOptions are connect's options for the sentinel path: the same pool of one, timeouts
// and retries. Sentinel connections (queries and the +switch-master subscription) are not the
// operation's bytes, so only connections to the master are tracked.
func (w *worker) failoverOptions() *redis.FailoverOptions {
	sentinels := map[string]bool{}
	for _, s := range w.cfg.Sentinels {
		sentinels[s] = true
	}
	opt := &redis.FailoverOptions{
		MasterName:      w.cfg.MasterName,
		SentinelAddrs:   w.cfg.Sentinels,
		Protocol:        2,
		DisableIdentity: true,
		PoolSize:        1,
		MaxIdleConns:    1,
		PoolTimeout:     w.cfg.Timeout,
		DialTimeout:     w.cfg.Timeout,
		ReadTimeout:     w.cfg.Timeout,
		WriteTimeout:    w.cfg.Timeout,
		DialerRetries:   1,
		MaxRetries:      w.cfg.Retries,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := w.dial(ctx, network, addr)
			if err != nil || sentinels[addr] {
				return c, err
			}
			w.handshake.Store(true)
			return &trackedConn{Conn: c, w: w}, nil
		},
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			// go-redis runs OnConnect on its sentinel connections too; a connection names the
			// address its client was made for ("Redis<ADDR db:N>"), "FailoverClient" for the
			// master's.
			addr, _, _ := strings.Cut(strings.TrimPrefix(cn.String(), "Redis<"), " ")
			if sentinels[addr] {
				return nil
			}
			return w.identify(ctx, cn)
		},
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = -1
	}
	return opt
}

// subscribe runs one subscriber until ctx ends: it subscribes to the channel, records the
// subscription (with the server it is on), every message, and the loss of its connection, then
// connects again.
func (w *worker) subscribe(ctx context.Context) {
	defer w.drop()
	for ctx.Err() == nil {
		w.connect()
		// go-redis bounds its reads by the context's deadline too, which would turn the end of
		// the run into a read time-out: reads get a context without one, and the end of the run
		// closes the subscription instead.
		rctx := context.WithoutCancel(ctx)
		ps := w.client.Subscribe(rctx, w.cfg.Channel)
		stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
		subscribed := false
		for ctx.Err() == nil {
			msg, err := ps.ReceiveTimeout(rctx, time.Second)
			if ctx.Err() != nil {
				break
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && subscribed {
					if perr := ps.Ping(rctx); perr == nil {
						continue
					}
				}
				if subscribed {
					now := time.Now()
					w.rec.Write(history.Op{ID: w.ids.Add(1), Worker: w.id, Kind: history.KindUnsub, Key: w.cfg.Channel,
						Invoke: now, Complete: now, Status: history.Fail, Err: err.Error(), Server: w.server, Node: w.node})
				}
				break
			}
			now := time.Now()
			switch m := msg.(type) {
			case *redis.Subscription:
				if m.Kind == "subscribe" {
					subscribed = true
					w.rec.Write(history.Op{ID: w.ids.Add(1), Worker: w.id, Kind: history.KindSubscribe, Key: m.Channel,
						Invoke: now, Complete: now, Status: history.OK, Server: w.server, Node: w.node, RunID: w.runID, Dial: w.dials})
				}
			case *redis.Message:
				w.rec.Write(history.Op{ID: w.ids.Add(1), Worker: w.id, Kind: history.KindReceive, Key: m.Channel, Value: m.Payload,
					Invoke: now, Complete: now, Status: history.OK, Server: w.server, Node: w.node})
			}
		}
		stop()
		_ = ps.Close()
		w.drop()
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// dial opens a connection within the client time-out. go-redis bounds the dials of its command
// pool, but its pub/sub connections dial with the caller's context alone: a subscriber dialling
// a crashed node's address would wait for the kernel's SYN retries (minutes).
func (w *worker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	return w.cfg.Dial(ctx, network, addr)
}

// identify runs once per new connection: which server is this?
func (w *worker) identify(ctx context.Context, cn *redis.Conn) error {
	defer w.handshake.Store(false)
	w.dials++
	w.cnt.Dials.Add(1)
	dial := history.Op{ID: w.ids.Add(1), Worker: w.id, Kind: "dial", Invoke: time.Now(), Dial: w.dials}
	var ci *redis.ClientInfoCmd
	var info *redis.StringCmd
	_, err := cn.Pipelined(ctx, func(p redis.Pipeliner) error {
		ci = p.ClientInfo(ctx)
		info = p.Info(ctx, "server")
		return nil
	})
	dial.Complete = time.Now()
	w.dialedAt = dial.Complete
	if err == nil {
		if v, e := ci.Result(); e == nil && v != nil {
			w.server = v.LAddr
		}
		w.runID = resp.ParseInfo(info.Val()).Get("run_id")
		if w.cfg.NodeOf != nil {
			w.node = w.cfg.NodeOf(w.server)
		}
		dial.Status = history.OK
	} else {
		dial.Status, dial.Err = history.Fail, err.Error()
	}
	dial.Server, dial.Node, dial.RunID = w.server, w.node, w.runID
	w.rec.Write(dial)
	return err
}

func (w *worker) drop() {
	if w.client != nil {
		_ = w.client.Close()
		w.client = nil
	}
}

// go-redis logs every failed dial; the history records them already.
var quietGoRedis sync.Once

type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...interface{}) {}

// trackedConn notes when an operation's bytes were written, to tell failed from indeterminate.
type trackedConn struct {
	net.Conn
	w *worker
}

func (c *trackedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 && !c.w.handshake.Load() {
		c.w.sent.Store(true)
	}
	return n, err
}
