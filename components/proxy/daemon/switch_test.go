package daemon

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
func startMonitor(t *testing.T, n *node) *monitorLog {
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
func watchSwitches(t *testing.T, sentinels []*node) <-chan switchSeen {
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

// TestSwitchLatency: ten SENTINEL FAILOVERs under a continuous writer through
// the proxy. For each, the first write acknowledged by the new master must
// come within 100 ms of the earliest +switch-master any sentinel published,
// and the old master must execute no write from the proxy after that moment
// (while it still reports role:master).
func TestSwitchLatency(t *testing.T) {
	const failovers = 10
	if testing.Short() {
		t.Skip("-short: ten failovers take ~15 s")
	}
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
	p := startProxy(t, cfg)
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

	type round struct {
		t0       time.Time
		old, new string
		settled  time.Time // old master re-attached as a replica
	}
	var rounds []round
	master, replica := c.a, c.b
	for i := 0; i < failovers; i++ {
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
		rounds = append(rounds, round{t0: first.at, old: master.addr, new: replica.addr})
		// Leave the old master claiming role:master for a while: two masters.
		time.Sleep(300 * time.Millisecond)
		master.do("REPLICAOF", "127.0.0.1", strconv.Itoa(replica.port))
		waitFor(t, 10*time.Second, "old master re-attached", func() bool { return linkUp(master) })
		rounds[len(rounds)-1].settled = time.Now()
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
	time.Sleep(100 * time.Millisecond) // let MONITOR streams catch up

	mu.Lock()
	ackAt := map[int]time.Time{}
	for _, a := range acks {
		ackAt[a.seq] = a.at
	}
	total, failed := len(acks), errs
	mu.Unlock()
	worst := time.Duration(0)
	var lat []time.Duration
	for i, r := range rounds {
		end := time.Now()
		if i+1 < len(rounds) {
			end = rounds[i+1].t0
		}
		// first acknowledged write executed on the new master by the proxy
		var firstAck, start time.Time
		if i > 0 {
			start = rounds[i-1].t0
		}
		for _, s := range mon[r.new].throughProxy(r.old) {
			if s.at.Before(start) || s.at.After(end) {
				continue
			}
			if a, ok := ackAt[s.seq]; ok && (firstAck.IsZero() || a.Before(firstAck)) {
				firstAck = a
			}
		}
		if firstAck.IsZero() {
			t.Errorf("failover %d: no acknowledged write on the new master %s (%d writes seen there)", i, r.new, len(mon[r.new].throughProxy(r.old)))
			continue
		}
		d := firstAck.Sub(r.t0)
		lat = append(lat, d)
		worst = max(worst, d)
		// writes the old master executed from the proxy after t0 in this round
		late := 0
		for _, s := range mon[r.old].throughProxy(r.new) {
			if s.at.After(r.t0) && s.at.Before(r.settled) {
				late++
			}
		}
		if mon[r.old].blind(r.t0, r.settled) {
			t.Errorf("failover %d: MONITOR on the old master %s was disconnected during the check window", i, r.old)
		}
		if late != 0 {
			t.Errorf("failover %d: old master %s executed %d proxy writes after the earliest +switch-master", i, r.old, late)
		}
		t.Logf("failover %d: %s -> %s first ack from new master %v after earliest +switch-master (t0 %s)", i, r.old, r.new, d.Round(100*time.Microsecond), r.t0.Format("15:04:05.000000"))
	}
	if len(lat) == 0 {
		t.Fatalf("no latency measured; %d writes acknowledged, %d failed", total, failed)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("switch latency over %d failovers: median %v, worst %v; %d writes acknowledged, %d failed during switches",
		len(lat), lat[len(lat)/2].Round(100*time.Microsecond), worst.Round(100*time.Microsecond), total, failed)
	if worst > 100*time.Millisecond {
		t.Errorf("worst switch latency %v > 100ms", worst)
	}
	_ = context.Background
}
