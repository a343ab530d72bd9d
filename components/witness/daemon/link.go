package daemon

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

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
	"github.com/redisha/redisha/components/witness/driver"
)

// link is the pair of connections sentinel keeps per instance: a command link
// (PING, INFO, PUBLISH, SENTINEL is-master-down-by-addr) served by one worker
// so replies arrive in order like on a hiredis async link, and for Redis nodes
// a Pub/Sub link subscribed to the hello channel. Its goroutines hand what
// they read (replies as resp values, errors, hello messages) to the driver
// through the loop; they decide nothing.
type link struct {
	s       *Server
	target  core.Target
	cmd     *redis.Client
	sub     *redis.Client
	queue   chan core.Action
	ctx     context.Context
	cancel  context.CancelFunc
	localIP atomic.Value // string: our address on the command link
	once    sync.Once
}

func (s *Server) newLink(t core.Target) *link {
	ctx, cancel := context.WithCancel(s.ctx)
	l := &link{s: s, target: t, queue: make(chan core.Action, 16), ctx: ctx, cancel: cancel}
	auth := s.opts.SentinelAuth
	if t.Kind != core.KindSentinel {
		auth = s.opts.MasterAuth[t.Master]
	}
	downAfter := s.drv.Core().DownAfter(t.Master)
	if downAfter <= 0 {
		downAfter = time.Second
	}
	timeout := downAfter / 2
	if timeout < 500*time.Millisecond {
		timeout = 500 * time.Millisecond
	}
	id8 := s.myID[:8]
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
	if t.Kind != core.KindSentinel {
		l.sub = redis.NewClient(opt("pubsub"))
		s.wg.Add(1)
		go l.subscriber()
	}
	return l
}

// send queues a command for the worker. A full queue cannot happen with the
// core's one-in-flight-per-kind rule; the command fails rather than block
// the loop.
func (l *link) send(a core.Action) error {
	select {
	case l.queue <- a:
		return nil
	default:
		return errors.New("link queue full")
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

// post hands the outcome of a to the driver, unless the link was closed.
func (l *link) post(a core.Action, v resp.Value, err error) {
	if l.ctx.Err() != nil {
		return
	}
	t := l.target
	l.s.do(func(now time.Time) {
		if err != nil {
			l.s.drv.HandleLinkError(now, t, a.Kind, err)
		} else {
			l.s.drv.HandleReply(now, t, a.Kind, v)
		}
	})
}

// replyValue turns a go-redis outcome into the RESP value it was read from:
// a Redis error reply is a value, a transport failure an error.
func replyValue(ok resp.Value, err error) (resp.Value, error) {
	if err == nil {
		return ok, nil
	}
	if !isNetErr(err) {
		return resp.Value{Kind: resp.Error, Str: strings.TrimSpace(err.Error())}, nil
	}
	return resp.Value{}, err
}

func (l *link) run(a core.Action) {
	ctx := l.ctx
	switch a.Kind {
	case core.ActPing:
		res, err := l.cmd.Ping(ctx).Result()
		v, err := replyValue(resp.Value{Kind: resp.SimpleString, Str: res}, err)
		l.post(a, v, err)
	case core.ActInfo:
		res, err := l.cmd.Info(ctx).Result()
		v, err := replyValue(resp.Value{Kind: resp.BulkString, Str: res}, err)
		l.post(a, v, err)
	case core.ActHello:
		h := a.Hello
		if h.IP == "" {
			ip, _ := l.localIP.Load().(string)
			if ip == "" {
				// Not connected yet; sentinel also skips the hello then.
				l.post(a, resp.Value{}, errors.New("hello: no local address yet"))
				return
			}
			h.IP = ip
		}
		n, err := l.cmd.Publish(ctx, core.HelloChannel, h.String()).Result()
		v, err := replyValue(resp.Value{Kind: resp.Integer, Int: n}, err)
		l.post(a, v, err)
	case core.ActAsk:
		q := a.Ask
		res, err := l.cmd.Do(ctx, "SENTINEL", "is-master-down-by-addr", q.IP, fmt.Sprint(q.Port), fmt.Sprint(q.Epoch), q.RunID).Slice()
		v, err := replyValue(askValue(res), err)
		l.post(a, v, err)
	}
}

// askValue rebuilds the is-master-down-by-addr reply go-redis decoded.
func askValue(res []any) resp.Value {
	v := resp.Value{Kind: resp.Array}
	for _, e := range res {
		switch x := e.(type) {
		case int64:
			v.Elems = append(v.Elems, resp.Value{Kind: resp.Integer, Int: x})
		case string:
			v.Elems = append(v.Elems, resp.Value{Kind: resp.BulkString, Str: x})
		default:
			v.Elems = append(v.Elems, resp.Value{Kind: resp.Null, Null: true})
		}
	}
	return v
}

func (l *link) subscriber() {
	defer l.s.wg.Done()
	for l.ctx.Err() == nil {
		ps := l.sub.Subscribe(l.ctx, core.HelloChannel)
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
				l.s.onHello(msg.Payload, driver.ViaPubSub)
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

func (s *Server) onHello(payload string, via driver.Via) {
	s.do(func(now time.Time) { _ = s.drv.HandleHello(now, payload, via) })
}
