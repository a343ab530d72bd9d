package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/resp"
)

// poller runs one probe at the regular interval, and at once when kicked, but
// never more often than the fast interval. Probes of different targets run in
// their own goroutines, so a hung backend delays nobody else, and none of
// this touches forwarding.
type poller struct {
	kick chan struct{}
	stop context.CancelFunc
}

func startPoller(parent context.Context, interval, minGap func() time.Duration, probe func(ctx context.Context)) *poller {
	ctx, cancel := context.WithCancel(parent)
	p := &poller{kick: make(chan struct{}, 1), stop: cancel}
	go func() {
		var last time.Time
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			case <-p.kick:
				if gap := minGap() - time.Since(last); gap > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(gap):
					}
				}
			}
			last = time.Now()
			probe(ctx)
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(interval())
		}
	}()
	return p
}

// Kick asks for a probe as soon as the fast interval allows.
func (p *poller) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// healthProbe checks one backend: PING, then INFO replication, pipelined.
type healthProbe struct {
	addr   string
	client *redis.Client
}

func newHealthProbe(addr string, auth Auth, timeout time.Duration) *healthProbe {
	return &healthProbe{addr: addr, client: redis.NewClient(&redis.Options{
		Addr: addr, Username: auth.Username, Password: auth.Password,
		Protocol: 2, DisableIdentity: true,
		DialTimeout: timeout, ReadTimeout: timeout, WriteTimeout: timeout,
		PoolSize: 1, MaxRetries: -1, ContextTimeoutEnabled: true,
	})}
}

// check stamps its result with the time the probe started, as query does:
// the answer describes the backend at some moment after that, never before.
func (h *healthProbe) check(ctx context.Context, timeout time.Duration) core.Health {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var ping *redis.StatusCmd
	var info *redis.StringCmd
	_, err := h.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		ping = p.Ping(ctx)
		info = p.Info(ctx, "replication")
		return nil
	})
	if err == nil && ping.Val() != "PONG" {
		err = fmt.Errorf("PING answered %q", truncate(ping.Val(), 40))
	}
	if err != nil {
		return core.Health{At: start, ReadAt: time.Now(), Backend: h.addr, Err: err.Error()}
	}
	r := HealthFromInfo(start, h.addr, info.Val())
	r.ReadAt = time.Now()
	return r
}

func (h *healthProbe) close() { h.client.Close() }

// sentinelConn is one connection to a sentinel speaking raw RESP through
// components/resp, so the replies the routing depends on pass through the one
// fuzzed parser. It reconnects lazily after any error.
type sentinelConn struct {
	addr string
	auth Auth
	// conn is written only by the goroutine using the sentinelConn, always
	// under mu, so that interrupt may close it from another goroutine.
	mu   sync.Mutex
	conn net.Conn
	r    *resp.Reader
	w    *resp.Writer
}

func (s *sentinelConn) dial(ctx context.Context, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	s.r, s.w = resp.NewReader(conn), resp.NewWriter(conn)
	if s.auth.Password != "" {
		conn.SetDeadline(time.Now().Add(timeout))
		args := []string{"AUTH", s.auth.Password}
		if s.auth.Username != "" {
			args = []string{"AUTH", s.auth.Username, s.auth.Password}
		}
		s.command(args...)
		if err := s.w.Flush(); err != nil {
			s.close()
			return err
		}
		v, err := s.r.ReadValue()
		if err == nil && v.IsError() {
			err = errors.New("AUTH: " + truncate(v.Str, 120))
		}
		if err != nil {
			s.close()
			return err
		}
	}
	return nil
}

func (s *sentinelConn) command(args ...string) {
	s.w.Array(len(args))
	for _, a := range args {
		s.w.Bulk(a)
	}
}

func (s *sentinelConn) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// interrupt closes the connection from another goroutine, unblocking a read.
func (s *sentinelConn) interrupt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
	}
}

// query sends SENTINEL MASTER and GET-MASTER-ADDR-BY-NAME in one pipeline.
//
// The view is stamped with the time the probe started, not the time the
// replies were read: the sentinel answered somewhere in between, and the read
// may come much later (this process frozen, or descheduled, with the replies
// waiting in the socket buffer). The core ages views from their stamp, so an
// answer given before a freeze is treated as at least that old instead of as
// fresh, and expires with its TTL rather than steering routing after a thaw.
// ReadAt carries the read time, which moves the core's clock.
func (s *sentinelConn) query(ctx context.Context, name string, timeout time.Duration) core.View {
	start := time.Now()
	fail := func(err error) core.View {
		s.close()
		return core.View{At: start, ReadAt: time.Now(), Sentinel: s.addr, Err: err.Error()}
	}
	if s.conn == nil {
		if err := s.dial(ctx, timeout); err != nil {
			return fail(err)
		}
	}
	s.conn.SetDeadline(time.Now().Add(timeout))
	s.command("SENTINEL", "MASTER", name)
	s.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)
	if err := s.w.Flush(); err != nil {
		return fail(err)
	}
	master, err := s.r.ReadValue()
	if err != nil {
		return fail(err)
	}
	addr, err := s.r.ReadValue()
	if err != nil {
		return fail(err)
	}
	v := ViewFromReplies(start, s.addr, master, addr)
	v.ReadAt = time.Now()
	return v
}

// NoticeFromMessage interprets one value read on a PSUBSCRIBE connection.
// ok is false for subscription confirmations and anything malformed.
func NoticeFromMessage(v resp.Value) (channel, payload string, ok bool) {
	if (v.Kind != resp.Array && v.Kind != resp.Push) || len(v.Elems) != 4 {
		return "", "", false
	}
	for _, e := range v.Elems {
		if !isText(e) {
			return "", "", false
		}
	}
	if !strings.EqualFold(v.Elems[0].Str, "pmessage") {
		return "", "", false
	}
	return v.Elems[2].Str, v.Elems[3].Str, true
}

// subscribe follows one sentinel's event stream until ctx ends, reconnecting
// with a short backoff. onConnect runs after every (re)subscription, because
// events may have been missed while the connection was down.
func subscribe(ctx context.Context, addr string, auth Auth, timeout time.Duration, onConnect func(), onNotice func(core.Notice)) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		s := &sentinelConn{addr: addr, auth: auth}
		err := s.dial(ctx, timeout)
		if err == nil {
			s.conn.SetDeadline(time.Now().Add(timeout))
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
				if ch, payload, ok := NoticeFromMessage(v); ok {
					onNotice(core.Notice{At: time.Now(), Sentinel: addr, Channel: ch, Payload: payload})
				}
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
