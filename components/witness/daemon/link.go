package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisha/redisha/components/witness"
)

// link is the pair of connections sentinel keeps per instance: a command link
// (PING, INFO, PUBLISH, SENTINEL is-master-down-by-addr) served by one worker
// so replies arrive in order like on a hiredis async link, and for Redis nodes
// a Pub/Sub link subscribed to the hello channel.
type link struct {
	s       *Server
	target  witness.Target
	cmd     *redis.Client
	sub     *redis.Client
	queue   chan witness.Action
	ctx     context.Context
	cancel  context.CancelFunc
	localIP atomic.Value // string: our address on the command link
	once    sync.Once
}

func (s *Server) newLink(t witness.Target) *link {
	ctx, cancel := context.WithCancel(s.ctx)
	l := &link{s: s, target: t, queue: make(chan witness.Action, 16), ctx: ctx, cancel: cancel}
	auth := s.opts.SentinelAuth
	if t.Kind != witness.KindSentinel {
		auth = s.opts.MasterAuth[t.Master]
	}
	downAfter := time.Second
	for _, m := range s.opts.Core.Masters {
		if m.Name == t.Master {
			downAfter = m.DownAfter
		}
	}
	timeout := downAfter / 2
	if timeout < 500*time.Millisecond {
		timeout = 500 * time.Millisecond
	}
	id8 := s.core.MyID()[:8]
	opt := func(kind string) *redis.Options {
		return &redis.Options{
			Addr:        t.Addr.String(),
			Username:    auth.User,
			Password:    auth.Pass,
			ClientName:  "sentinel-" + id8 + "-" + kind,
			Protocol:    2,
			DialTimeout: timeout,
			// One dial per attempt: the core retries each ping period, like
			// sentinel's reconnect, and must hear of a failure promptly.
			DialerRetries: 1,
			ReadTimeout:   timeout,
			WriteTimeout:  timeout,
			PoolSize:      1,
			MinIdleConns:  0,
			MaxRetries:    -1,
			// CLIENT SETINFO is unknown to older servers and to sentinels.
			DisableIdentity: true,
			Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
				d := net.Dialer{Timeout: timeout}
				c, err := d.DialContext(ctx, network, addr)
				if err == nil && kind == "cmd" {
					if ta, ok := c.LocalAddr().(*net.TCPAddr); ok {
						l.localIP.Store(ta.IP.String())
					}
				}
				return c, err
			},
		}
	}
	l.cmd = redis.NewClient(opt("cmd"))
	s.wg.Add(1)
	go l.worker()
	if t.Kind != witness.KindSentinel {
		l.sub = redis.NewClient(opt("pubsub"))
		s.wg.Add(1)
		go l.subscriber()
	}
	return l
}

func (l *link) send(a witness.Action) {
	select {
	case l.queue <- a:
	default:
		// Cannot happen with the core's one-in-flight-per-kind rule; fail the
		// command rather than block the event loop.
		l.s.core.LinkFailed(l.target, a.Kind, l.s.opts.Now())
	}
}

func (l *link) close() {
	l.once.Do(func() {
		l.cancel()
		l.cmd.Close()
		if l.sub != nil {
			l.sub.Close()
		}
	})
}

func (l *link) worker() {
	defer l.s.wg.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case a := <-l.queue:
			l.run(a)
		}
	}
}

// isNetErr tells transport failures (the link is down) from Redis error
// replies (the link works, the instance said no).
func isNetErr(err error) bool {
	if err == nil {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		return false
	}
	return true
}

func (l *link) run(a witness.Action) {
	ctx := l.ctx
	t := l.target
	fail := func(err error) {
		if l.ctx.Err() != nil {
			return
		}
		l.s.log.Debug("link command failed", "target", t.Addr.String(), "kind", t.Kind.String(), "err", err)
		l.s.step(func(c *witness.Core, now time.Time) { c.LinkFailed(t, a.Kind, now) })
	}
	switch a.Kind {
	case witness.ActPing:
		res, err := l.cmd.Ping(ctx).Result()
		if isNetErr(err) {
			fail(err)
			return
		}
		reply := res
		if err != nil {
			reply = strings.TrimSpace(err.Error())
		}
		l.s.step(func(c *witness.Core, now time.Time) { c.PingReply(t, reply, now) })
	case witness.ActInfo:
		res, err := l.cmd.Info(ctx).Result()
		if isNetErr(err) {
			fail(err)
			return
		}
		l.s.step(func(c *witness.Core, now time.Time) { c.InfoReply(t, res, now) })
	case witness.ActHello:
		h := a.Hello
		if h.IP == "" {
			ip, _ := l.localIP.Load().(string)
			if ip == "" {
				// Not connected yet; sentinel also skips the hello then.
				l.s.step(func(c *witness.Core, now time.Time) { c.LinkFailed(t, a.Kind, now) })
				return
			}
			h.IP = ip
		}
		err := l.cmd.Publish(ctx, witness.HelloChannel, h.String()).Err()
		if isNetErr(err) {
			fail(err)
			return
		}
		l.s.metrics.hellosSent.Inc()
		l.s.step(func(c *witness.Core, now time.Time) { c.PublishReply(t, err != nil, now) })
	case witness.ActAsk:
		q := a.Ask
		v, err := l.cmd.Do(ctx, "SENTINEL", "is-master-down-by-addr", q.IP, fmt.Sprint(q.Port), fmt.Sprint(q.Epoch), q.RunID).Slice()
		if isNetErr(err) {
			fail(err)
			return
		}
		valid, down, leader, epoch := parseAsk(v, err)
		l.s.step(func(c *witness.Core, now time.Time) { c.AskReply(t, valid, down, leader, epoch, now) })
	}
}

func parseAsk(v []any, err error) (bool, int64, string, int64) {
	if err != nil || len(v) != 3 {
		return false, 0, "", 0
	}
	down, ok1 := v[0].(int64)
	leader, ok2 := v[1].(string)
	epoch, ok3 := v[2].(int64)
	return ok1 && ok2 && ok3, down, leader, epoch
}

func (l *link) subscriber() {
	defer l.s.wg.Done()
	for l.ctx.Err() == nil {
		ps := l.sub.Subscribe(l.ctx, witness.HelloChannel)
		ch := ps.Channel(redis.WithChannelHealthCheckInterval(5 * time.Second))
	loop:
		for {
			select {
			case <-l.ctx.Done():
				ps.Close()
				return
			case msg, ok := <-ch:
				if !ok {
					break loop
				}
				l.s.onHello(msg.Payload, "pubsub")
			}
		}
		ps.Close()
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) onHello(payload, via string) {
	var err error
	s.step(func(c *witness.Core, now time.Time) {
		if via == "pubsub" {
			err = c.HelloFromPubSub(payload, now)
		} else {
			_, err = c.PublishCommand(witness.HelloChannel, payload, now)
		}
	})
	result := "ok"
	switch {
	case errors.Is(err, witness.ErrUnknownMaster):
		result = "unknown_master"
	case err != nil:
		result = "malformed"
		s.log.Warn("dropped malformed hello", "via", via, "err", err)
	}
	s.metrics.hellosReceived.WithLabelValues(result).Inc()
}
