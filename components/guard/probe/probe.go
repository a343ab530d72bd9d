// Package probe is the restart guard's production transport: each request
// pipelined on its own connection (components/resp's Conn), all requests of
// a round at once. It also holds the wall clock the driver sleeps on.
package probe

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/redisha/redisha/components/guard/driver"
	"github.com/redisha/redisha/components/resp"
)

// Transport implements driver.Transport over TCP.
type Transport struct {
	// Timeout bounds one request (dial, AUTH and commands).
	Timeout time.Duration
}

// Do implements driver.Transport.
func (t Transport) Do(ctx context.Context, reqs []driver.Request) []driver.Reply {
	out := make([]driver.Reply, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = t.one(ctx, reqs[i])
		}()
	}
	wg.Wait()
	return out
}

func (t Transport) one(ctx context.Context, r driver.Request) driver.Reply {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := resp.Dial(ctx, r.Addr, resp.DialOptions{DialTimeout: timeout, Timeout: timeout,
		Username: r.Auth.Username, Password: r.Auth.Password, ClientName: "redisha-guard", MaxReply: 1 << 20})
	if err != nil {
		return driver.Reply{Err: err, Refused: errors.Is(err, syscall.ECONNREFUSED)}
	}
	defer c.Close()
	for _, args := range r.Cmds {
		if err := c.Send(args...); err != nil {
			return driver.Reply{Err: err}
		}
	}
	if err := c.Flush(ctx); err != nil {
		return driver.Reply{Err: err}
	}
	vals := make([]resp.Value, 0, len(r.Cmds))
	for range r.Cmds {
		// An error reply is a value here: the driver reads "no such master"
		// as an answer.
		v, err := c.Receive(ctx)
		if err != nil {
			return driver.Reply{Err: err}
		}
		vals = append(vals, v)
	}
	return driver.Reply{Values: vals}
}

// Clock is the wall clock.
type Clock struct{}

// Now implements driver.Clock.
func (Clock) Now() time.Time { return time.Now() }

// SleepUntil implements driver.Clock.
func (Clock) SleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
