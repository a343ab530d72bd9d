package daemon

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

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

func (l *sentinelEvents) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	t0 := time.Time{}
	for _, e := range l.evs {
		if t0.IsZero() {
			t0 = e.at
		}
		fmt.Fprintf(&b, "\n\t%8.3fs %s %s %s", e.at.Sub(t0).Seconds(), e.sentinel, e.channel, e.payload)
	}
	return b.String()
}

// fastPathRound kills the master of a fresh cluster (real redis-server x2,
// real redis-sentinel x3, down-after 1 s) under a proxy with
// routing.promotion_fast_path set to on, and returns when the leader
// announced +failover-state-wait-promotion, when the first +switch-master
// was published, and when the proxy's route moved to the replica.
func fastPathRound(t *testing.T, on bool) (wait, switched, routed time.Time, p *Proxy) {
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PROXY_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p = New(cfg, log)
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
			t.Logf("sentinel events since the kill:%s", evs.dump())
		}
	})
	waitFor(t, 30*time.Second, "route to the promoted replica", func() bool { return p.Route().Master == c.b.addr })
	waitFor(t, 10*time.Second, "+switch-master", func() bool { _, ok := evs.first("+switch-master", c.b.addr[len("127.0.0.1:"):]); return ok })
	w, ok := evs.first("+failover-state-wait-promotion", "")
	if !ok {
		t.Fatalf("no +failover-state-wait-promotion:%s", evs.dump())
	}
	sw, _ := evs.first("+switch-master", "")
	d, _, ok := trace.decision(killed, c.b.addr)
	if !ok {
		t.Fatalf("no traced decision routing to %s", c.b.addr)
	}
	if on {
		t.Logf("events:%s", evs.dump())
	}
	return w.at, sw.at, d.applied, p
}

// With routing.promotion_fast_path the proxy routes to the replica the
// leader promotes as soon as it answers role:master, before +switch-master
// (which waits for the leader's next INFO to it, up to a second); without
// it, on the majority view after +switch-master. Both measured from the
// leader's +failover-state-wait-promotion.
func TestPromotionFastPathRealSentinels(t *testing.T) {
	if testing.Short() {
		t.Skip("real redis-server and redis-sentinel failover (about 20 s)")
	}
	var res [2]time.Duration
	for i, on := range []bool{false, true} {
		wait, switched, routed, p := fastPathRound(t, on)
		res[i] = routed.Sub(wait)
		t.Logf("fast path %-5v: proxy switch %7.1f ms after +failover-state-wait-promotion; +switch-master %7.1f ms after it",
			on, ms(routed.Sub(wait)), ms(switched.Sub(wait)))
		st := p.stats.Load()
		if !on {
			if st.FastPathRouted != 0 {
				t.Errorf("fast path off, yet %d provisional routes", st.FastPathRouted)
			}
			continue
		}
		if !routed.Before(switched) {
			t.Errorf("fast path on: the proxy switched %v after +switch-master", routed.Sub(switched))
		}
		if st.FastPathRouted != 1 {
			t.Errorf("fast path on: %d provisional routes, want 1", st.FastPathRouted)
		}
		// The majority catches up and confirms the route; it is never withdrawn.
		waitFor(t, 10*time.Second, "confirmation", func() bool { return p.stats.Load().FastPathConfirmed == 1 })
		if st := p.stats.Load(); st.FastPathWithdrawn != 0 {
			t.Errorf("provisional route withdrawn %d times", st.FastPathWithdrawn)
		}
		if s := p.Snapshot(); s.Provisional != "" || s.Route.Master == "" {
			t.Errorf("after confirmation: provisional %q route %+v", s.Provisional, s.Route)
		}
	}
	t.Logf("wait-promotion -> proxy switch: off %.1f ms, on %.1f ms", ms(res[0]), ms(res[1]))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
