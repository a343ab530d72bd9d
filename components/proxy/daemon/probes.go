package daemon

import (
	"context"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
	"github.com/redisha/redisha/components/resp"
)

// Probes run in one worker goroutine per target, so a hung backend delays
// nobody else and none of this touches forwarding. The core decides when to
// probe what and when a probe has failed; a worker only does the I/O, with
// the probe's deadline on its socket, and posts the replies (or the error)
// to the loop with the time it read them.

type workerKey struct {
	kind   core.ProbeKind
	target string
}

type worker struct {
	probes     chan core.Probe
	ctx        context.Context
	stop       context.CancelFunc
	discovered bool
	hello      context.CancelFunc // the backend's hello subscriber (hello.go); nil: none
}

// Probe is the driver's Prober: hand p to its target's worker.
func (p *Proxy) Probe(pr core.Probe) {
	k := workerKey{pr.Kind, pr.Target}
	w := p.workers[k]
	if w == nil {
		ctx, cancel := context.WithCancel(p.ctx)
		w = &worker{probes: make(chan core.Probe, 4), ctx: ctx, stop: cancel, discovered: pr.Discovered}
		p.workers[k] = w
		auth := p.probeAuth
		if pr.Kind == core.ProbeSentinel {
			auth = p.cfg.Load().SentinelAuth
		}
		go p.runWorker(ctx, &probeConn{addr: pr.Target, auth: auth}, w.probes)
	}
	if pr.Kind == core.ProbeBackend && !pr.Discovered {
		// Hellos are heard on configured backends only: an address a
		// sentinel (let alone a hello) named is probed, never subscribed.
		p.syncHello(w, pr.Target)
	}
	select {
	case w.probes <- pr:
	default:
		// The worker is stuck past several deadlines; the core counts
		// these probes as failed when their deadlines pass.
	}
}

// wanted reports whether a worker's target is still probed under cfg.
func (p *Proxy) wanted(cfg *Config, k workerKey) bool {
	if w := p.workers[k]; w != nil && w.discovered {
		return true
	}
	list := cfg.Backends
	if k.kind == core.ProbeSentinel {
		list = cfg.Sentinels
	}
	for _, x := range list {
		if x == k.target {
			return true
		}
	}
	return false
}

func (p *Proxy) stopWorkers(which func(workerKey) bool) {
	for k, w := range p.workers {
		if which(k) {
			w.stop()
			delete(p.workers, k)
		}
	}
}

func (p *Proxy) runWorker(ctx context.Context, c *probeConn, probes <-chan core.Probe) {
	defer c.close()
	for {
		select {
		case <-ctx.Done():
			return
		case pr := <-probes:
			cfg := p.cfg.Load()
			c.myID = cfg.Routing.HelloViews || cfg.Routing.PromotionFastPath
			vals, readAt, err := c.probe(ctx, pr, cfg.MasterName)
			p.post(func(d *driver.Driver) { d.HandleReply(readAt, pr, vals, err) })
		}
	}
}

// probeCommands are what each kind of probe sends, pipelined (the
// driver's list: it interprets the replies); myID adds SENTINEL MYID to
// sentinel probes (the hello path, the promotion fast path).
func probeCommands(kind core.ProbeKind, masterName string, myID bool) [][]string {
	return driver.ProbeCommands(kind, core.Config{MasterName: masterName, HelloViews: myID})
}

// probeConn is one connection (components/resp's client) to a backend or
// sentinel, so every reply the routing depends on passes through the one
// fuzzed parser. It reconnects lazily after any error. Only its worker
// goroutine uses it; cancelling the worker's context interrupts it.
type probeConn struct {
	addr string
	auth Auth
	conn *resp.Conn
	myID bool // also ask SENTINEL MYID (routing.hello_views, routing.promotion_fast_path)
}

// probe sends pr's commands, bounded by pr.Deadline, and returns the
// replies and the time they were read. The answer is dated by the driver
// from the probe's start (pr.At), not from the read: the target answered
// somewhere in between, and the read may come much later (this process
// frozen, or descheduled, with the replies waiting in the socket buffer).
func (c *probeConn) probe(ctx context.Context, pr core.Probe, masterName string) ([]resp.Value, time.Time, error) {
	ctx, cancel := context.WithDeadline(ctx, pr.Deadline)
	defer cancel()
	vals, err := c.exchange(ctx, probeCommands(pr.Kind, masterName, c.myID))
	if err != nil {
		c.close()
	}
	return vals, time.Now(), err
}

func (c *probeConn) exchange(ctx context.Context, cmds [][]string) ([]resp.Value, error) {
	if c.conn == nil {
		conn, err := resp.Dial(ctx, c.addr, resp.DialOptions{Username: c.auth.User, Password: c.auth.Password,
			DialTimeout: time.Until(deadlineOf(ctx))})
		if err != nil {
			return nil, err
		}
		c.conn = conn
	}
	for _, cmd := range cmds {
		if err := c.conn.Send(cmd...); err != nil {
			return nil, err
		}
	}
	if err := c.conn.Flush(ctx); err != nil {
		return nil, err
	}
	vals := make([]resp.Value, 0, len(cmds))
	for range cmds {
		v, err := c.conn.Receive(ctx)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, nil
}

func deadlineOf(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(5 * time.Second)
	}
	return d
}

func (c *probeConn) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// subscribe follows one sentinel's event stream until ctx ends, reconnecting
// with a short backoff (subscription.run). onConnect runs after every
// (re)subscription, because events may have been missed while the connection
// was down; onMessage gets every value read (the driver tells notices from
// the rest). No idle bound: a sentinel may stay silent for as long as nothing
// happens.
func subscribe(ctx context.Context, addr string, auth Auth, timeout time.Duration, onConnect func(), onMessage func(resp.Value)) {
	subscription{
		addr: addr, auth: auth, timeout: timeout,
		join: func(ctx context.Context, c *resp.Conn) error {
			return c.PSubscribe(ctx, "*")
		},
		onConnect: onConnect,
		onMessage: onMessage,
	}.run(ctx)
}
