package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
	"github.com/redisha/redisha/components/resp"
)

// monitorLog records, from MONITOR on one node, when each writer key was
// executed and by which peer.
type monitorLog struct {
	mu   sync.Mutex
	sets []monitored
	gaps [][2]time.Time // [lost, back]
}

type monitored struct {
	at   time.Time
	peer string
	seq  int
}

var monitorLine = regexp.MustCompile(`^(\d+)\.(\d{6}) \[\d+ ([^\]]+)\] "(?i:set)" "w:(\d+)"`)

// startMonitor follows MONITOR on a node, reconnecting at once when the
// connection is killed (sentinel's promotion sends CLIENT KILL TYPE normal,
// which includes monitors). Gaps are recorded so the checks can refuse to
// conclude over a window the monitor did not see.
func startMonitor(t testing.TB, n *node) *monitorLog {
	t.Helper()
	m := &monitorLog{}
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(bg)
	t.Cleanup(cancel)
	go func() {
		first := true
		for ctx.Err() == nil {
			lost := time.Now()
			conn, err := net.Dial("tcp", n.addr)
			if err != nil {
				time.Sleep(time.Millisecond)
				continue
			}
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			fmt.Fprintf(conn, "MONITOR\r\n")
			r := resp.NewReader(conn)
			if v, err := r.ReadValue(); err == nil && v.Str == "OK" {
				if first {
					close(ready)
					first = false
				} else {
					m.mu.Lock()
					m.gaps = append(m.gaps, [2]time.Time{lost, time.Now()})
					m.mu.Unlock()
				}
				for {
					v, err := r.ReadValue()
					if err != nil {
						break
					}
					g := monitorLine.FindStringSubmatch(v.Str)
					if g == nil {
						continue
					}
					sec, _ := strconv.ParseInt(g[1], 10, 64)
					usec, _ := strconv.ParseInt(g[2], 10, 64)
					seq, _ := strconv.Atoi(g[4])
					m.mu.Lock()
					m.sets = append(m.sets, monitored{at: time.Unix(sec, usec*1000), peer: g[3], seq: seq})
					m.mu.Unlock()
				}
			}
			stop()
			conn.Close()
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		t.Fatalf("MONITOR on %s did not start", n.addr)
	}
	return m
}

// blind reports whether the monitor was disconnected at any time in [from, to].
func (m *monitorLog) blind(from, to time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, g := range m.gaps {
		if !g[1].Before(from) && !g[0].After(to) {
			return true
		}
	}
	return false
}

// throughProxy returns the writes executed on the node by the proxy, leaving
// out the replication stream (whose peer is the other node).
func (m *monitorLog) throughProxy(other string) []monitored {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []monitored
	for _, s := range m.sets {
		if s.peer != other {
			out = append(out, s)
		}
	}
	return out
}

type switchSeen struct {
	at       time.Time
	from, to string
}

// watchSwitches is the independent observer: it records every
// +switch-master on every sentinel.
func watchSwitches(t testing.TB, sentinels []*node) <-chan switchSeen {
	ch := make(chan switchSeen, 100)
	for _, s := range sentinels {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		fmt.Fprintf(conn, "SUBSCRIBE +switch-master\r\n")
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
				if len(v.Elems) != 3 {
					continue
				}
				f := strings.Fields(v.Elems[2].Str)
				if len(f) == 5 {
					ch <- switchSeen{at: now, from: f[1] + ":" + f[2], to: f[3] + ":" + f[4]}
				}
			}
		}()
	}
	return ch
}

type ack struct {
	seq int
	at  time.Time
}

// switchRound is one forced failover as observed from outside and from the
// proxy's decision trace.
type switchRound struct {
	t0       time.Time // earliest +switch-master published by any sentinel
	old, new string
	settled  time.Time // old master re-attached as a replica
	firstAck time.Time // first acknowledged proxy write the new master executed
	late     int       // proxy writes the old master executed in [t0, settled]
	blind    bool      // MONITOR on the old master was disconnected in [t0, settled]
	// routesTo lists, when no decision is found, every traced input that
	// routed to new, with when it was applied relative to the request.
	routesTo string
	// the proxy's own decision: the input whose actions moved the route to
	// new, when it was received, when the route had moved, and for a reply
	// when its probe was sent and when the previous answer of that target
	// had arrived (a kicked probe follows it at once; a polled one waits
	// check.interval).
	decided      bool
	input        string
	target       string
	received     time.Time
	applied      time.Time
	probeSent    time.Time
	prevReceived time.Time
}

// reaction is the proxy's own share: deciding input received -> route moved.
func (r switchRound) reaction() time.Duration { return r.applied.Sub(r.received) }

// probeGap is how long the deciding probe waited after the previous answer
// from the same target (0 when unknown).
func (r switchRound) probeGap() time.Duration {
	if r.probeSent.IsZero() || r.prevReceived.IsZero() {
		return 0
	}
	return r.probeSent.Sub(r.prevReceived)
}

// endToEnd is the client's view: earliest +switch-master -> first
// acknowledged write on the new master (sentinels' speed included).
func (r switchRound) endToEnd() time.Duration { return r.firstAck.Sub(r.t0) }

// lockedLog is an io.Writer the proxy's logger and the test share.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// tail returns the last n lines written.
func (l *lockedLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(l.b.String(), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// traceLog keeps the proxy's decision trace: every input with the time its
// actions had been carried out.
type traceLog struct {
	mu      sync.Mutex
	entries []tracedInput
}

type tracedInput struct {
	e       driver.TraceEntry
	applied time.Time
}

func (l *traceLog) hook(e driver.TraceEntry, applied time.Time) {
	if e.Input == driver.InputWake && len(e.Actions) == 0 {
		return
	}
	l.mu.Lock()
	l.entries = append(l.entries, tracedInput{e, applied})
	l.mu.Unlock()
}

// decision finds the first input after from whose actions routed to addr,
// and the previous answer from the same target.
func (l *traceLog) decision(from time.Time, addr string) (d tracedInput, prev time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.entries {
		if x.applied.Before(from) {
			continue
		}
		for _, a := range x.e.Actions {
			if sr, isRoute := a.(core.SetRoute); isRoute && sr.Route.Master == addr {
				if x.e.Input == driver.InputReply {
					for j := i - 1; j >= 0; j-- {
						y := l.entries[j].e
						if y.Input == driver.InputReply && y.Target == x.e.Target && y.Probe.Kind == x.e.Probe.Kind && y.Probe.ID < x.e.Probe.ID {
							prev = y.Now
							break
						}
					}
				}
				return x, prev, true
			}
		}
	}
	return tracedInput{}, time.Time{}, false
}

// routesTo describes every traced input whose actions routed to addr, with
// its time relative to from, for a failure message.
func (l *traceLog) routesTo(from time.Time, addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, x := range l.entries {
		for _, a := range x.e.Actions {
			if sr, isRoute := a.(core.SetRoute); isRoute && sr.Route.Master == addr {
				fmt.Fprintf(&b, "\n\t%s from %s applied %v after the request", x.e.Input, x.e.Target, x.applied.Sub(from))
			}
		}
	}
	if b.Len() == 0 {
		return " (none in the whole trace)"
	}
	return b.String()
}

// runFailovers forces n SENTINEL FAILOVERs under a continuous writer through
// a proxy whose polls are 1 s apart (switching must come from notices and
// kicked probes, not polls) and returns what each round looked like.
func runFailovers(t testing.TB, n int) (rounds []switchRound, acked, failed int) {
	c := startCluster(t)
	// Steady state first: each sentinel knows the other two (hello messages,
	// every 2 s), so a new configuration spreads by the leader's forced hello
	// rather than by discovery.
	for _, s := range c.sentinels {
		waitFor(t, 10*time.Second, "sentinel mesh", func() bool {
			v, err := s.client().Do(bg, "SENTINEL", "SENTINELS", "m").Slice()
			return err == nil && len(v) == 2
		})
	}
	cfg := testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs())
	cfg.Check.Interval = time.Second // switching must come from events, not polls
	cfg.Derive()
	trace := &traceLog{}
	// The proxy's debug log (every view, health result and route) is kept
	// and shown when a round finds no deciding input, to tell a product
	// fault from a test fault.
	debugLog := &lockedLog{}
	log := slog.New(slog.NewTextHandler(debugLog, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := New(cfg, log)
	p.traceHook = trace.hook
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	waitRoute(t, p, c.a.addr)

	mon := map[string]*monitorLog{c.a.addr: startMonitor(t, c.a), c.b.addr: startMonitor(t, c.b)}
	switches := watchSwitches(t, c.sentinels)

	writer := redis.NewClient(&redis.Options{Addr: p.Addr(), Protocol: 2, DisableIdentity: true,
		MaxRetries: -1, PoolSize: 1, DialTimeout: 3 * time.Second, ReadTimeout: 3 * time.Second})
	defer writer.Close()
	var (
		mu     sync.Mutex
		acks   []ack
		errs   int
		stopWr = make(chan struct{})
		wrDone = make(chan struct{})
	)
	go func() {
		defer close(wrDone)
		for seq := 1; ; seq++ {
			select {
			case <-stopWr:
				return
			default:
			}
			err := writer.Set(bg, fmt.Sprintf("w:%d", seq), "x", 0).Err()
			now := time.Now()
			mu.Lock()
			if err == nil {
				acks = append(acks, ack{seq, now})
			} else {
				errs++
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(time.Millisecond)
			}
		}
	}()

	master, replica := c.a, c.b
	for i := 0; i < n; i++ {
		asked := time.Now()
		// Ask sentinels in turn until one accepts (a sentinel refuses while
		// its view of the replica is older than its INFO validity window).
		deadline := time.Now().Add(40 * time.Second)
		for k := 0; ; k++ {
			s := c.sentinels[k%len(c.sentinels)]
			err := s.client().Do(bg, "SENTINEL", "FAILOVER", "m").Err()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("failover %d: sentinels keep refusing: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var first switchSeen
		for first.at.IsZero() {
			select {
			case sw := <-switches:
				if sw.to == replica.addr {
					first = sw
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("failover %d: no +switch-master to %s", i, replica.addr)
			}
		}
		// The proxy must have switched by itself, long before the old
		// master is demoted below (a generous deadline: sentinels answer
		// slowly on a loaded machine).
		waitFor(t, 10*time.Second, "proxy route to "+replica.addr, func() bool { return p.Route().Master == replica.addr })
		r := switchRound{t0: first.at, old: master.addr, new: replica.addr}
		// The driver calls the Router (the route the test just saw) before
		// it hands the input to the trace hook, on the loop goroutine: the
		// deciding entry lands moments later, so wait for it on a deadline
		// instead of reading the trace at once (a loaded scheduler can
		// preempt the loop between the two).
		var (
			x    tracedInput
			prev time.Time
			ok   bool
		)
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if x, prev, ok = trace.decision(asked, replica.addr); ok || time.Now().After(end) {
				break
			}
		}
		if ok {
			r.decided, r.input, r.target, r.received, r.applied = true, x.e.Input, x.e.Target, x.e.Now, x.applied
			if x.e.Input == driver.InputReply {
				r.probeSent, r.prevReceived = x.e.Probe.At, prev
			}
		} else {
			r.routesTo = trace.routesTo(asked, replica.addr) + "\nthe proxy's log, last lines:\n" + debugLog.tail(150)
		}
		// Leave the old master claiming role:master for a while: two masters.
		time.Sleep(300 * time.Millisecond)
		master.do("REPLICAOF", "127.0.0.1", strconv.Itoa(replica.port))
		waitFor(t, 10*time.Second, "old master re-attached", func() bool { return linkUp(master) })
		r.settled = time.Now()
		rounds = append(rounds, r)
		// drain the other sentinels' switch notices for this round
	drain:
		for {
			select {
			case <-switches:
			case <-time.After(50 * time.Millisecond):
				break drain
			}
		}
		master, replica = replica, master
	}
	close(stopWr)
	<-wrDone
	// let MONITOR streams catch up with the writer's last acknowledged write
	mu.Lock()
	lastSeq := 0
	if len(acks) > 0 {
		lastSeq = acks[len(acks)-1].seq
	}
	mu.Unlock()
	// (a condition with a deadline, not a failure: a monitor gap is judged
	// per round below)
	caughtUp := func() bool {
		for _, m := range mon {
			for _, s := range m.throughProxy("") {
				if s.seq == lastSeq {
					return true
				}
			}
		}
		return lastSeq == 0
	}
	for end := time.Now().Add(5 * time.Second); !caughtUp() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}

	mu.Lock()
	ackAt := map[int]time.Time{}
	for _, a := range acks {
		ackAt[a.seq] = a.at
	}
	acked, failed = len(acks), errs
	mu.Unlock()
	for i := range rounds {
		r := &rounds[i]
		end := time.Now()
		if i+1 < len(rounds) {
			end = rounds[i+1].t0
		}
		var start time.Time
		if i > 0 {
			start = rounds[i-1].t0
		}
		// first acknowledged write executed on the new master by the proxy
		for _, s := range mon[r.new].throughProxy(r.old) {
			if s.at.Before(start) || s.at.After(end) {
				continue
			}
			if a, ok := ackAt[s.seq]; ok && (r.firstAck.IsZero() || a.Before(r.firstAck)) {
				r.firstAck = a
			}
		}
		// writes the old master executed from the proxy after t0 in this round
		for _, s := range mon[r.old].throughProxy(r.new) {
			if s.at.After(r.t0) && s.at.Before(r.settled) {
				r.late++
			}
		}
		r.blind = mon[r.old].blind(r.t0, r.settled)
	}
	return rounds, acked, failed
}

// Bounds on the proxy's own share of a switch. They leave room for a loaded
// scheduler (the loop goroutine, a probe goroutine) but not for a poll:
// runFailovers polls every second, so a switch that waited for a poll
// instead of a notice-kicked probe fails maxProbeGap.
const (
	maxReaction = 300 * time.Millisecond // deciding input received -> route moved
	maxProbeGap = 500 * time.Millisecond // previous answer -> deciding probe sent
)

// TestSwitchLatency: ten SENTINEL FAILOVERs under a continuous writer through
// the proxy. It asserts what the proxy controls, which scheduler load cannot
// break but a regression would:
//   - safety: the old master executes no write from the proxy after the
//     earliest +switch-master any sentinel published (while it still
//     reports role:master), seen by MONITOR;
//   - the switch happens, and the writer's writes reach the new master;
//   - the proxy's reaction, from its decision trace: the route moves within
//     maxReaction of receiving the deciding answer, and that answer's probe
//     was a kicked one (sent within maxProbeGap of the target's previous
//     answer), not the next 1 s poll.
//
// The end-to-end latency (earliest +switch-master -> first acknowledged
// write on the new master) includes how fast the sentinels answer, which the
// proxy does not control: BenchmarkSwitchLatency prints its distribution.
func TestSwitchLatency(t *testing.T) {
	const failovers = 10
	if testing.Short() {
		t.Skip("-short: ten failovers take ~15 s")
	}
	rounds, acked, failed := runFailovers(t, failovers)
	var lat []time.Duration
	for i, r := range rounds {
		if r.blind {
			t.Errorf("failover %d: MONITOR on the old master %s was disconnected during the check window", i, r.old)
		}
		if r.late != 0 {
			t.Errorf("failover %d: old master %s executed %d proxy writes after the earliest +switch-master", i, r.old, r.late)
		}
		if r.firstAck.IsZero() {
			t.Errorf("failover %d: no acknowledged write on the new master %s", i, r.new)
		} else {
			lat = append(lat, r.endToEnd())
		}
		if !r.decided {
			t.Errorf("failover %d: no input in the proxy's decision trace routed to %s after the failover was requested; inputs that did:%s", i, r.new, r.routesTo)
			continue
		}
		if r.reaction() > maxReaction {
			t.Errorf("failover %d: the route moved %v after the deciding %s from %s arrived (> %v)", i, r.reaction(), r.input, r.target, maxReaction)
		}
		if r.input == driver.InputReply && r.probeGap() > maxProbeGap {
			t.Errorf("failover %d: the deciding probe of %s was sent %v after its previous answer (> %v): a poll, not a kick", i, r.target, r.probeGap(), maxProbeGap)
		}
		t.Logf("failover %d: %s -> %s: decided by %s from %s, route moved %v after it arrived (probe sent %v after the previous answer); first ack on the new master %v after the earliest +switch-master",
			i, r.old, r.new, r.input, r.target, r.reaction().Round(10*time.Microsecond), r.probeGap().Round(10*time.Microsecond), r.endToEnd().Round(100*time.Microsecond))
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		t.Logf("end-to-end over %d failovers (informative, see BenchmarkSwitchLatency): median %v, worst %v; %d writes acknowledged, %d failed during switches",
			len(lat), lat[len(lat)/2].Round(100*time.Microsecond), lat[len(lat)-1].Round(100*time.Microsecond), acked, failed)
	}
}

// BenchmarkSwitchLatency measures the end-to-end switch latency: earliest
// +switch-master -> first acknowledged write through the proxy on the new
// master, over b.N forced failovers (at least 5), and reports median, p90
// and worst, and the proxy's own reaction. A measurement, not a test: it
// depends on how fast the sentinels answer. Run with
// `go test -run '^$' -bench SwitchLatency -benchtime 10x ./components/proxy/daemon`.
func BenchmarkSwitchLatency(b *testing.B) {
	n := max(b.N, 5)
	rounds, _, _ := runFailovers(b, n)
	var e2e, react []time.Duration
	for _, r := range rounds {
		if !r.firstAck.IsZero() {
			e2e = append(e2e, r.endToEnd())
		}
		if r.decided {
			react = append(react, r.reaction())
		}
	}
	pct := func(d []time.Duration, q float64) float64 {
		if len(d) == 0 {
			return 0
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return float64(d[int(q*float64(len(d)-1)+0.5)]) / 1e6
	}
	b.ReportMetric(pct(e2e, 0.5), "e2e-p50-ms")
	b.ReportMetric(pct(e2e, 0.9), "e2e-p90-ms")
	b.ReportMetric(pct(e2e, 1), "e2e-max-ms")
	b.ReportMetric(pct(react, 0.5), "react-p50-ms")
	b.ReportMetric(pct(react, 1), "react-max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d failovers: end-to-end %v; proxy reaction %v", len(rounds), e2e, react)
}
