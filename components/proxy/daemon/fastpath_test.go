package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
	"github.com/redisha/redisha/components/resp"
)

// sentinelEvents records every event every sentinel publishes (an
// independent PSUBSCRIBE * per sentinel), with the time it was read.
type sentinelEvents struct {
	mu  sync.Mutex
	evs []sentinelEvent
}

type sentinelEvent struct {
	at       time.Time
	sentinel string
	channel  string
	payload  string
}

func watchEvents(t testing.TB, sentinels []*node) *sentinelEvents {
	t.Helper()
	l := &sentinelEvents{}
	for _, s := range sentinels {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "PSUBSCRIBE *\r\n")
		r := resp.NewReader(conn)
		if _, err := r.ReadValue(); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				v, err := r.ReadValue()
				if err != nil {
					return
				}
				now := time.Now()
				if len(v.Elems) != 4 {
					continue
				}
				l.mu.Lock()
				l.evs = append(l.evs, sentinelEvent{at: now, sentinel: s.addr, channel: v.Elems[2].Str, payload: v.Elems[3].Str})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// first is the earliest event on channel whose payload contains sub.
func (l *sentinelEvents) first(channel, sub string) (sentinelEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e.channel == channel && strings.Contains(e.payload, sub) {
			return e, true
		}
	}
	return sentinelEvent{}, false
}

// dump lists every event with its time after t0 (and t0's wall clock, to
// line them up with the proxy's log).
func (l *sentinelEvents) dump(t0 time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, " (times after %s)", t0.Format("15:04:05.000"))
	for _, e := range l.evs {
		fmt.Fprintf(&b, "\n\t%8.3fs %s %s %s", e.at.Sub(t0).Seconds(), e.sentinel, e.channel, e.payload)
	}
	return b.String()
}

// fastPathRound kills the master of a fresh cluster (real redis-server x2,
// real redis-sentinel x3, down-after 1 s) under a proxy with
// routing.promotion_fast_path set to on, and returns when the leader
// announced +failover-state-wait-promotion, when the first +switch-master
// was published, the traced input that moved the proxy's route to the
// replica, and the replica's address.
func fastPathRound(t *testing.T, on bool) (wait, switched time.Time, routed tracedInput, promoted string, p *Proxy) {
	c := startCluster(t)
	for _, s := range c.sentinels {
		waitFor(t, 10*time.Second, "sentinel mesh", func() bool {
			v, err := s.client().Do(bg, "SENTINEL", "SENTINELS", "m").Slice()
			return err == nil && len(v) == 2
		})
	}
	cfg := testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs())
	// The lab's polling (1 s): the switch must come from events.
	cfg.Check.Interval = time.Second
	cfg.Routing.PromotionFastPath = on
	cfg.Derive()
	trace := &traceLog{}
	// The proxy's log (routes, fast path steps, withdrawals) is kept and
	// shown with the sentinels' events when the round fails.
	proxyLog := &lockedLog{}
	var h slog.Handler = slog.NewTextHandler(proxyLog, nil)
	if os.Getenv("PROXY_TEST_LOG") != "" {
		h = fanout{h, slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})}
	}
	p = New(cfg, slog.New(h))
	p.traceHook = trace.hook
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	waitRoute(t, p, c.a.addr)
	if on {
		waitFor(t, 10*time.Second, "every sentinel's run id", func() bool {
			for _, st := range p.Snapshot().Sentinels {
				if st.RunID == "" {
					return false
				}
			}
			return true
		})
	}
	evs := watchEvents(t, c.sentinels)
	killed := time.Now()
	c.a.kill()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sentinel events since the kill:%s", evs.dump(killed))
			t.Logf("proxy log (fast path %v):\n%s", on, proxyLog.tail(200))
		}
	})
	waitFor(t, 30*time.Second, "route to the promoted replica", func() bool { return p.Route().Master == c.b.addr })
	// Clients see the route while the driver is still carrying out the
	// deciding input's actions; its trace entry, then the snapshot and the
	// counters, are published after them. Wait for those (reading them at
	// once found no traced decision under load).
	var d tracedInput
	waitFor(t, 5*time.Second, "the traced decision and the published state", func() bool {
		var ok bool
		d, _, ok = trace.decision(killed, c.b.addr)
		return ok && p.stats.Load().Switchovers >= 1
	})
	if on {
		// /status as the route moved: provisional, unless the majority
		// already confirmed it.
		st := p.StatusNow()
		f := st.FastPath
		switch {
		case f == nil || !st.PromotionFastPath:
			t.Errorf("/status with the fast path on: promotion_fast_path %v, fast_path %+v", st.PromotionFastPath, f)
		case st.Provisional == c.b.addr:
			if st.ProvisionalEpoch < 1 || st.ProvisionalUntil.IsZero() || st.ProvisionalUntil.After(time.Now().Add(core.DefaultPromotionConfirm)) ||
				*f != (FastPathCounts{Routed: 1}) {
				t.Errorf("/status during the provisional route: epoch %d until %v (in %v) counts %+v",
					st.ProvisionalEpoch, st.ProvisionalUntil, time.Until(st.ProvisionalUntil), *f)
			}
		case st.Provisional != "" || *f != (FastPathCounts{Routed: 1, Confirmed: 1}):
			t.Errorf("/status as the route moved to %s: provisional %q, counts %+v", c.b.addr, st.Provisional, *f)
		}
	}
	waitFor(t, 10*time.Second, "+switch-master", func() bool { _, ok := evs.first("+switch-master", c.b.addr[len("127.0.0.1:"):]); return ok })
	w, ok := evs.first("+failover-state-wait-promotion", "")
	if !ok {
		t.Fatalf("no +failover-state-wait-promotion")
	}
	sw, _ := evs.first("+switch-master", "")
	if on {
		t.Logf("events:%s", evs.dump(killed))
	}
	return w.at, sw.at, d, c.b.addr, p
}

// fastPathRouted reports whether the input's actions include the fast
// path's provisional route to addr.
func fastPathRouted(d tracedInput, addr string) bool {
	for _, a := range d.e.Actions {
		if ev, ok := a.(core.FastPathEvent); ok && ev.What == "route" && ev.Addr == addr {
			return true
		}
	}
	return false
}

// With routing.promotion_fast_path the proxy routes to the replica the
// leader promotes as soon as it answers role:master, without waiting for
// any sentinel to name it; without it, on the majority view after
// +switch-master. Both measured from the leader's
// +failover-state-wait-promotion.
//
// What is asserted is the mechanism: the route moved on the replica's own
// probe answer, by the fast path, and was confirmed, never withdrawn. That
// it comes before +switch-master is measured, not asserted: +switch-master
// waits for the leader's next INFO to the replica (once a second), and
// where that INFO falls is sentinel's business. It is usually 0.7-1 s after
// REPLICAOF NO ONE (the INFO phase is set at +odown), but after a split vote
// the new epoch's election starts at any phase (one round here: 370 ms),
// so the INFO can go out in the very tick of REPLICAOF NO ONE; and the
// replica itself answers nobody while its CONFIG REWRITE (in the
// promotion's MULTI) fsyncs, 0.15-1.2 s on a loaded disk, and then
// answers the proxy's probe and the leader's INFO together. In either case
// the leader learns of the promotion as soon as the proxy can, and the
// order of the proxy's switch and +switch-master is a race.
func TestPromotionFastPathRealSentinels(t *testing.T) {
	if testing.Short() {
		t.Skip("real redis-server and redis-sentinel failover (about 20 s)")
	}
	var res [2]time.Duration
	for i, on := range []bool{false, true} {
		wait, switched, routed, x, p := fastPathRound(t, on)
		res[i] = routed.applied.Sub(wait)
		t.Logf("fast path %-5v: proxy switch %7.1f ms after +failover-state-wait-promotion; +switch-master %7.1f ms after it",
			on, ms(routed.applied.Sub(wait)), ms(switched.Sub(wait)))
		st := p.Snapshot().FastPath
		if !on {
			if st.Routed != 0 || fastPathRouted(routed, x) {
				t.Errorf("fast path off, yet %d provisional routes", st.Routed)
			}
			continue
		}
		// The route moved on the promoted replica's answer to the proxy's
		// probe, by the fast path: no sentinel view was waited for.
		if e := routed.e; !fastPathRouted(routed, x) || e.Input != driver.InputReply || e.Target != x || e.Probe.Kind != core.ProbeBackend {
			t.Errorf("fast path on: the route to %s moved on %s from %s (probe kind %v), actions %+v, not on its own answer by the fast path",
				x, e.Input, e.Target, e.Probe.Kind, e.Actions)
		}
		if st.Routed != 1 {
			t.Errorf("fast path on: %d provisional routes, want 1", st.Routed)
		}
		// The majority catches up and confirms the route; it is never withdrawn.
		waitFor(t, 10*time.Second, "confirmation", func() bool { return p.Snapshot().FastPath.Confirmed == 1 })
		if st := p.Snapshot().FastPath; st.Withdrawn != 0 {
			t.Errorf("provisional route withdrawn %d times", st.Withdrawn)
		}
		if s := p.Snapshot(); s.Provisional != "" || s.Route.Master == "" {
			t.Errorf("after confirmation: provisional %q route %+v", s.Provisional, s.Route)
		}
		// What the admin endpoint shows of it.
		var doc StatusDoc
		if code, body := adminGet(t, p, "/status"); code != 200 || json.Unmarshal([]byte(body), &doc) != nil ||
			!doc.PromotionFastPath || doc.Provisional != "" || doc.ProvisionalEpoch != 0 || doc.FastPath == nil ||
			*doc.FastPath != (FastPathCounts{Routed: 1, Confirmed: 1}) || !strings.Contains(body, `"promotion_fast_path": true`) {
			t.Errorf("/status after confirmation: %d %s", code, body)
		}
		_, m := adminGet(t, p, "/metrics")
		for _, want := range []string{
			"redisha_proxy_fast_path_routed_total 1\n",
			"redisha_proxy_fast_path_confirmed_total 1\n",
			"redisha_proxy_fast_path_withdrawn_total 0\n",
			"redisha_proxy_route_provisional 0\n",
		} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics after confirmation: no line %q", strings.TrimSpace(want))
			}
		}
	}
	t.Logf("wait-promotion -> proxy switch: off %.1f ms, on %.1f ms", ms(res[0]), ms(res[1]))
}

// fanout is a slog.Handler passing each record to two handlers, each with
// its own level.
type fanout [2]slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	return f[0].Enabled(ctx, l) || f[1].Enabled(ctx, l)
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			h.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (f fanout) WithAttrs(a []slog.Attr) slog.Handler {
	return fanout{f[0].WithAttrs(a), f[1].WithAttrs(a)}
}

func (f fanout) WithGroup(g string) slog.Handler { return fanout{f[0].WithGroup(g), f[1].WithGroup(g)} }

// adminGet fetches path from p's admin endpoint.
func adminGet(t *testing.T, p *Proxy, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + p.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
