package daemon

import (
	"context"
	"time"

	"github.com/redisha/redisha/components/resp"
)

// subscription is one long-lived pub/sub reader: the sentinel event stream
// (subscribe, probes.go) and a backend's hello channel (subscribeHello,
// hello.go) are both this loop with different settings, so they dial, back
// off and reconnect alike.
type subscription struct {
	addr    string
	auth    Auth
	timeout time.Duration // dial, handshake and (p)subscribe bound
	// clientName is set with the handshake when not empty.
	clientName string
	// join subscribes the fresh connection (SUBSCRIBE or PSUBSCRIBE).
	join func(ctx context.Context, c *resp.Conn) error
	// idle, when not zero, redials a connection silent that long: a peer
	// gone behind a partition may never report an error by itself.
	idle time.Duration
	// onConnect, when set, runs after every (re)subscription.
	onConnect func()
	// onMessage gets every value read.
	onMessage func(resp.Value)
}

// run follows s until ctx ends, reconnecting with a backoff that starts at
// 50 ms, doubles after each failed or lost connection while under 2 s, and
// starts over once a subscription succeeds.
func (s subscription) run(ctx context.Context) {
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := resp.Dial(ctx, s.addr, resp.DialOptions{Username: s.auth.User, Password: s.auth.Password,
			DialTimeout: s.timeout, Timeout: s.timeout, ClientName: s.clientName})
		if err == nil {
			if err = s.join(ctx, conn); err != nil {
				conn.Close()
			}
		}
		if err == nil {
			backoff = 50 * time.Millisecond
			if s.onConnect != nil {
				s.onConnect()
			}
			for {
				v, rerr := s.receive(ctx, conn)
				if rerr != nil {
					break
				}
				s.onMessage(v)
			}
			conn.Close()
		}
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

// receive reads the next value, bounded by s.idle when set.
func (s subscription) receive(ctx context.Context, conn *resp.Conn) (resp.Value, error) {
	if s.idle == 0 {
		return conn.Receive(ctx)
	}
	rctx, cancel := context.WithTimeout(ctx, s.idle)
	defer cancel()
	return conn.Receive(rctx)
}
