package daemon

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
)

// TestProbesStampStartTime: a probe whose answer is read long after it was
// sent (here the target is stopped with SIGSTOP for a while; a frozen proxy
// reading replies buffered before its freeze is the same gap) is dated with
// the time the probe started, so the core ages it from then, while the read
// time (the event's now) is when the worker read it. Stamping at read time
// made an answer given before a freeze look fresh.
func TestProbesStampStartTime(t *testing.T) {
	const freeze = 400 * time.Millisecond
	master := startRedis(t)
	sentinel := startSentinel(t, master, 1)

	probes := []struct {
		name string
		node *node
		run  func() (at, readAt time.Time, ok bool, err string)
	}{
		{"health", master, func() (time.Time, time.Time, bool, string) {
			c := &probeConn{addr: master.addr}
			defer c.close()
			pr := core.Probe{Kind: core.ProbeBackend, Target: master.addr, At: time.Now(), Deadline: time.Now().Add(5 * time.Second)}
			vals, readAt, err := c.probe(context.Background(), pr, "m")
			if err != nil {
				return pr.At, readAt, false, err.Error()
			}
			h := driver.HealthFromReplies(pr.At, pr.Target, vals[0], vals[1])
			return h.At, readAt, h.OK, h.Err
		}},
		{"sentinel", sentinel, func() (time.Time, time.Time, bool, string) {
			c := &probeConn{addr: sentinel.addr}
			defer c.close()
			pr := core.Probe{Kind: core.ProbeSentinel, Target: sentinel.addr, At: time.Now(), Deadline: time.Now().Add(5 * time.Second)}
			vals, readAt, err := c.probe(context.Background(), pr, "m")
			if err != nil {
				return pr.At, readAt, false, err.Error()
			}
			v := driver.ViewFromReplies(pr.At, pr.Target, vals[0], vals[1])
			return v.At, readAt, v.OK, v.Err
		}},
	}
	for _, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if err := p.node.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			resumed := false
			t.Cleanup(func() {
				if !resumed {
					p.node.cmd.Process.Signal(syscall.SIGCONT)
				}
			})
			type result struct {
				at      time.Time
				stamped time.Time // ReadAt
				ok      bool
				err     string
				readAt  time.Time
				started time.Time
			}
			done := make(chan result, 1)
			go func() {
				started := time.Now()
				at, readAt, ok, err := p.run()
				done <- result{at, readAt, ok, err, time.Now(), started}
			}()
			time.Sleep(freeze) // the freeze itself, not an assertion
			p.node.cmd.Process.Signal(syscall.SIGCONT)
			resumed = true
			r := <-done
			if !r.ok {
				t.Fatalf("probe failed: %s", r.err)
			}
			if r.readAt.Sub(r.started) < freeze {
				t.Fatalf("answer read %v after the start, before the target resumed", r.readAt.Sub(r.started))
			}
			if r.at.Before(r.started) || r.at.Sub(r.started) > freeze/4 {
				t.Fatalf("stamped %v after the probe started and %v before it was read: want the start time",
					r.at.Sub(r.started), r.readAt.Sub(r.at))
			}
			if r.stamped.Sub(r.started) < freeze || r.stamped.After(r.readAt) {
				t.Fatalf("ReadAt %v after the start, read %v after: want the read time",
					r.stamped.Sub(r.started), r.readAt.Sub(r.started))
			}
		})
	}
}
