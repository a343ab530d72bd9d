package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
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
	stop       context.CancelFunc
	discovered bool
}

// Probe is the driver's Prober: hand p to its target's worker.
func (p *Proxy) Probe(pr core.Probe) {
	k := workerKey{pr.Kind, pr.Target}
	w := p.workers[k]
	if w == nil {
		ctx, cancel := context.WithCancel(p.ctx)
		w = &worker{probes: make(chan core.Probe, 4), stop: cancel, discovered: pr.Discovered}
		p.workers[k] = w
		auth := p.probeAuth
		if pr.Kind == core.ProbeSentinel {
			auth = p.cfg.Load().SentinelAuth
		}
		go p.runWorker(ctx, &probeConn{addr: pr.Target, auth: auth}, w.probes)
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
	stop := context.AfterFunc(ctx, c.interrupt)
	defer stop()
	defer c.close()
	for {
		select {
		case <-ctx.Done():
			return
		case pr := <-probes:
			vals, err, readAt := c.probe(ctx, pr, p.cfg.Load().MasterName)
			p.post(func(d *driver.Driver) { d.HandleReply(readAt, pr, vals, err) })
		}
	}
}

// probeCommands are what each kind of probe sends, pipelined.
func probeCommands(kind core.ProbeKind, masterName string) [][]string {
	if kind == core.ProbeSentinel {
		return [][]string{{"SENTINEL", "MASTER", masterName}, {"SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName}}
	}
	return [][]string{{"PING"}, {"INFO", "replication"}}
}

// probeConn is one connection to a backend or sentinel speaking raw RESP
// through components/resp, so every reply the routing depends on passes
// through the one fuzzed parser. It reconnects lazily after any error.
type probeConn struct {
	addr string
	auth Auth
	// conn is written only by the goroutine using the probeConn, always
	// under mu, so that interrupt may close it from another goroutine.
	mu   sync.Mutex
	conn net.Conn
	r    *resp.Reader
	w    *resp.Writer
}

// probe sends pr's commands with pr.Deadline on the socket and returns the
// replies and the time they were read. The answer is dated by the driver
// from the probe's start (pr.At), not from the read: the target answered
// somewhere in between, and the read may come much later (this process
// frozen, or descheduled, with the replies waiting in the socket buffer).
func (c *probeConn) probe(ctx context.Context, pr core.Probe, masterName string) ([]resp.Value, error, time.Time) {
	vals, err := c.exchange(ctx, pr.Deadline, probeCommands(pr.Kind, masterName))
	if err != nil {
		c.close()
	}
	return vals, err, time.Now()
}

func (c *probeConn) exchange(ctx context.Context, deadline time.Time, cmds [][]string) ([]resp.Value, error) {
	if c.conn == nil {
		if err := c.dial(ctx, deadline); err != nil {
			return nil, err
		}
	}
	c.conn.SetDeadline(deadline)
	for _, cmd := range cmds {
		c.command(cmd...)
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	vals := make([]resp.Value, 0, len(cmds))
	for range cmds {
		v, err := c.r.ReadValue()
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
	}
	return vals, nil
}

func (c *probeConn) dial(ctx context.Context, deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	c.r, c.w = resp.NewReader(conn), resp.NewWriter(conn)
	if c.auth.Password != "" {
		conn.SetDeadline(deadline)
		args := []string{"AUTH", c.auth.Password}
		if c.auth.User != "" {
			args = []string{"AUTH", c.auth.User, c.auth.Password}
		}
		c.command(args...)
		if err := c.w.Flush(); err != nil {
			c.close()
			return err
		}
		v, err := c.r.ReadValue()
		if err == nil && v.IsError() {
			err = errors.New("AUTH: " + truncate(v.Str, 120))
		}
		if err != nil {
			c.close()
			return err
		}
	}
	return nil
}

func (c *probeConn) command(args ...string) {
	c.w.Array(len(args))
	for _, a := range args {
		c.w.Bulk(a)
	}
}

func (c *probeConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// interrupt closes the connection from another goroutine, unblocking a read.
func (c *probeConn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
	}
}

// subscribe follows one sentinel's event stream until ctx ends, reconnecting
// with a short backoff. onConnect runs after every (re)subscription, because
// events may have been missed while the connection was down; onMessage gets
// every value read (the driver tells notices from the rest).
func subscribe(ctx context.Context, addr string, auth Auth, timeout time.Duration, onConnect func(), onMessage func(resp.Value)) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		s := &probeConn{addr: addr, auth: auth}
		deadline := time.Now().Add(timeout)
		err := s.dial(ctx, deadline)
		if err == nil {
			s.conn.SetDeadline(deadline)
			s.command("PSUBSCRIBE", "*")
			err = s.w.Flush()
		}
		if err == nil {
			var v resp.Value
			v, err = s.r.ReadValue()
			if err == nil && (v.IsError() || len(v.Elems) == 0 || !strings.EqualFold(v.Elems[0].Text(), "psubscribe")) {
				err = fmt.Errorf("PSUBSCRIBE answered %s", truncate(v.Text(), 80))
			}
		}
		if err == nil {
			backoff = 50 * time.Millisecond
			s.conn.SetDeadline(time.Time{})
			onConnect()
			stop := context.AfterFunc(ctx, s.interrupt)
			for {
				v, rerr := s.r.ReadValue()
				if rerr != nil {
					break
				}
				onMessage(v)
			}
			stop()
		}
		s.close()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff < 2*time.Second {
			backoff *= 2
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
