// Package probe is the restart guard's production transport: each request
// on its own TCP connection, RESP through components/resp, all requests of
// a round at once. It also holds the wall clock the driver sleeps on.
package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
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
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", r.Addr)
	if err != nil {
		return driver.Reply{Err: err, Refused: errors.Is(err, syscall.ECONNREFUSED)}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// Close the connection if ctx ends before its deadline (a cancelled run).
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	w := resp.NewWriter(c)
	rd := resp.NewReader(bufio.NewReader(c))
	cmds := r.Cmds
	if r.Auth.Password != "" {
		auth := []string{"AUTH", r.Auth.Password}
		if r.Auth.Username != "" {
			auth = []string{"AUTH", r.Auth.Username, r.Auth.Password}
		}
		cmds = append([][]string{auth}, cmds...)
	}
	for _, args := range cmds {
		w.Array(len(args))
		for _, a := range args {
			w.Bulk(a)
		}
	}
	if err := w.Flush(); err != nil {
		return driver.Reply{Err: err}
	}
	vals := make([]resp.Value, 0, len(cmds))
	for range cmds {
		v, err := rd.ReadValue()
		if err != nil {
			return driver.Reply{Err: err}
		}
		vals = append(vals, v)
	}
	if r.Auth.Password != "" {
		if vals[0].IsError() {
			return driver.Reply{Err: fmt.Errorf("AUTH: %s", vals[0].Str)}
		}
		vals = vals[1:]
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
