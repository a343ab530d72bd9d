package daemon

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisha/redisha/components/testenv"
)

var bg = context.Background()

func TestRoutesToMasterAndPassesRedisFeatures(t *testing.T) {
	c := startCluster(t)
	p := startProxy(t, testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs()))
	waitRoute(t, p, c.a.addr)

	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			cl := p.testClient(t, proto)
			key := fmt.Sprintf("k%d", proto)
			if err := cl.Set(bg, key, "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if got := c.a.do("GET", key); got != "v" {
				t.Fatalf("master has %q for %s", got, key)
			}
			// pipelining
			cmds, err := cl.Pipelined(bg, func(pp redis.Pipeliner) error {
				for i := 0; i < 500; i++ {
					pp.Incr(bg, key+"ctr")
				}
				return nil
			})
			if err != nil || cmds[499].(*redis.IntCmd).Val() != 500 {
				t.Fatalf("pipeline: %v", err)
			}
			// MULTI/EXEC
			var incr *redis.IntCmd
			if _, err := cl.TxPipelined(bg, func(pp redis.Pipeliner) error {
				pp.Set(bg, key+"tx", "1", 0)
				incr = pp.Incr(bg, key+"tx")
				return nil
			}); err != nil || incr.Val() != 2 {
				t.Fatalf("MULTI/EXEC: %v %d", err, incr.Val())
			}
			// blocking command released by another client
			go func() {
				time.Sleep(50 * time.Millisecond)
				c.a.client().RPush(bg, key+"list", "x")
			}()
			if v, err := cl.BLPop(bg, 5*time.Second, key+"list").Result(); err != nil || v[1] != "x" {
				t.Fatalf("BLPOP: %v %v", v, err)
			}
			// pub/sub through the proxy both ways
			sub := cl.Subscribe(bg, key+"chan")
			defer sub.Close()
			if _, err := sub.Receive(bg); err != nil {
				t.Fatal(err)
			}
			if n, err := cl.Publish(bg, key+"chan", "hello").Result(); err != nil || n != 1 {
				t.Fatalf("PUBLISH reached %d subscribers: %v", n, err)
			}
			msg, err := sub.ReceiveMessage(bg)
			if err != nil || msg.Payload != "hello" {
				t.Fatalf("message %v %v", msg, err)
			}
		})
	}
	// The writes went to the master, so they replicate to the replica.
	waitFor(t, 5*time.Second, "writes replicated", func() bool { return c.b.do("EXISTS", "k2", "k3").(int64) == 2 })
}

// countKeys returns how many keys with prefix a node holds.
func countKeys(n *node, prefix string) int {
	keys, err := n.client().Keys(bg, prefix+"*").Result()
	if err != nil {
		n.t.Fatal(err)
	}
	return len(keys)
}

func TestTwoMastersOnlyMajorityChoiceGetsTraffic(t *testing.T) {
	c := startCluster(t)
	p := startProxy(t, testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs()))
	waitRoute(t, p, c.a.addr)
	c.b.do("REPLICAOF", "NO", "ONE")
	waitFor(t, 5*time.Second, "proxy sees both claim master", func() bool {
		for _, b := range p.Snapshot().Backends {
			if b.Addr == c.b.addr && b.Role == "master" && b.Fresh {
				return true
			}
		}
		return false
	})
	for i := 0; i < 100; i++ {
		cl := p.testClient(t, 2) // fresh connection each time: every one is a routing decision
		if err := cl.Set(bg, fmt.Sprintf("tm:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		cl.Close()
	}
	if n := countKeys(c.a, "tm:"); n != 100 {
		t.Fatalf("majority's master has %d of 100 writes", n)
	}
	if n := countKeys(c.b, "tm:"); n != 0 {
		t.Fatalf("second self-proclaimed master got %d writes", n)
	}
}

// rawCommand sends one inline command on a fresh connection and returns the
// first reply line.
func rawCommand(t *testing.T, addr, cmd string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "%s\r\n", cmd)
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return strings.TrimRight(line, "\r\n")
}

func TestNoMajorityAndAmbiguousRolesRefusesNewConnections(t *testing.T) {
	c := startCluster(t)
	p := startProxy(t, testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs()))
	waitRoute(t, p, c.a.addr)

	existing := p.testClient(t, 2)
	if err := existing.Set(bg, "before", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.sentinels[0].kill()
	c.sentinels[1].kill()
	c.b.do("REPLICAOF", "NO", "ONE")
	waitFor(t, 5*time.Second, "route withdrawn", func() bool { return p.Route().Master == "" && !p.Route().Hold })

	for i := 0; i < 20; i++ {
		reply := rawCommand(t, p.Addr(), fmt.Sprintf("SET nm:%d x", i))
		if !strings.HasPrefix(reply, "-ERR redisha-proxy: no master") {
			t.Fatalf("new connection got %q, want a refusal", reply)
		}
	}
	// The existing connection stays with the current master while it claims master.
	if err := existing.Set(bg, "nm:existing", "1", 0).Err(); err != nil {
		t.Fatalf("existing connection broken: %v", err)
	}
	if n := countKeys(c.b, "nm:"); n != 0 {
		t.Fatalf("wrong node got %d writes", n)
	}
	if n := countKeys(c.a, "nm:"); n != 1 {
		t.Fatalf("current master has %d nm: keys, want only the existing connection's", n)
	}

	// A proxy that starts in this state has no current master: refuse.
	p2 := startProxy(t, testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs()))
	waitFor(t, 5*time.Second, "second proxy sees both masters", func() bool {
		n := 0
		for _, b := range p2.Snapshot().Backends {
			if b.Role == "master" && b.Fresh {
				n++
			}
		}
		return n == 2
	})
	if reply := rawCommand(t, p2.Addr(), "SET nm2 x"); !strings.HasPrefix(reply, "-ERR redisha-proxy: no master") {
		t.Fatalf("fresh proxy answered %q", reply)
	}
	if countKeys(c.a, "nm2")+countKeys(c.b, "nm2") != 0 {
		t.Fatal("refused write landed somewhere")
	}
}

func TestWithoutSentinels(t *testing.T) {
	a := startRedis(t)
	b := startRedis(t)
	p := startProxy(t, testConfig([]string{a.addr, b.addr}, nil))
	waitFor(t, 5*time.Second, "both checked", func() bool { return len(p.Snapshot().Backends) == 2 })
	time.Sleep(300 * time.Millisecond) // a full check round after both are known
	if reply := rawCommand(t, p.Addr(), "SET x 1"); !strings.HasPrefix(reply, "-ERR redisha-proxy: no master") {
		t.Fatalf("two masters, no current: got %q", reply)
	}
	b.do("REPLICAOF", "127.0.0.1", fmt.Sprint(a.port))
	waitRoute(t, p, a.addr)
	if reply := rawCommand(t, p.Addr(), "SET x 1"); reply != "+OK" {
		t.Fatalf("got %q", reply)
	}
	// Another node claiming master does not move us while the current claims.
	b.do("REPLICAOF", "NO", "ONE")
	time.Sleep(500 * time.Millisecond)
	if got := p.Route().Master; got != a.addr {
		t.Fatalf("route moved to %q", got)
	}
}

func TestConnectionLimitAndDrain(t *testing.T) {
	a := startRedis(t)
	cfg := testConfig([]string{a.addr}, nil)
	cfg.Limits.MaxConnections = 2
	p := startProxy(t, cfg)
	waitRoute(t, p, a.addr)
	var conns []net.Conn
	for i := 0; i < 2; i++ {
		conn, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PING\r\n")
		r := bufio.NewReader(conn)
		if l, _ := r.ReadString('\n'); l != "+PONG\r\n" {
			t.Fatalf("got %q", l)
		}
		conns = append(conns, conn)
	}
	if reply := rawCommand(t, p.Addr(), "PING"); !strings.Contains(reply, "max number of clients") {
		t.Fatalf("third connection got %q", reply)
	}
	conns[0].Close()
	waitFor(t, 2*time.Second, "slot freed", func() bool { return p.active.Load() == 1 })

	done := make(chan struct{})
	go func() { p.Drain(bg); close(done) }()
	select {
	case <-done:
		t.Fatal("drain returned while a client was connected")
	case <-time.After(200 * time.Millisecond):
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), 200*time.Millisecond); err == nil {
		// the listener is closed while draining; a connect may still race in
		// the accept queue, but must not be served
	}
	conns[1].Close()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("drain did not finish after the last client left")
	}
}

func TestIdleTimeout(t *testing.T) {
	a := startRedis(t)
	cfg := testConfig([]string{a.addr}, nil)
	cfg.Limits.IdleTimeout = 300 * time.Millisecond
	p := startProxy(t, cfg)
	waitRoute(t, p, a.addr)
	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PING\r\n")
	r := bufio.NewReader(conn)
	r.ReadString('\n')
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err == nil {
		t.Fatal("idle connection got data instead of being closed")
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Fatalf("idle connection closed after %v", el)
	}
}

func TestReadOnlyListenerGoesToReplica(t *testing.T) {
	c := startCluster(t)
	cfg := testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs())
	cfg.ReadOnlyListen = "127.0.0.1:0"
	p := startProxy(t, cfg)
	waitRoute(t, p, c.a.addr)
	waitFor(t, 5*time.Second, "replica known", func() bool { return len(*p.replicas.Load()) == 1 })
	reply := rawCommand(t, p.ReadOnlyAddr(), "ROLE")
	_ = reply
	conn, err := net.Dial("tcp", p.ReadOnlyAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "SET rokey 1\r\n")
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "-READONLY") {
		t.Fatalf("write on the read-only listener answered %q, want the replica's -READONLY", line)
	}
}

func TestReloadKeepsConnections(t *testing.T) {
	a := startRedis(t)
	cfg := testConfig([]string{a.addr}, nil)
	p := startProxy(t, cfg)
	waitRoute(t, p, a.addr)
	cl := p.testClient(t, 2)
	if err := cl.Set(bg, "r", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	oldAddr := p.Addr()
	ncfg := *cfg
	ncfg.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ncfg.Limits.MaxConnections = 5
	if err := p.Reload(&ncfg); err != nil {
		t.Fatal(err)
	}
	if err := cl.Set(bg, "r", "2", 0).Err(); err != nil {
		t.Fatalf("connection dropped by reload: %v", err)
	}
	if p.Addr() == oldAddr {
		t.Fatal("listener not re-bound")
	}
	if reply := rawCommand(t, p.Addr(), "GET r"); reply != "$1" {
		t.Fatalf("new listener answered %q", reply)
	}
}

var _ = sync.Mutex{}

// With only sentinels configured, the proxy health-checks the address the
// sentinels name and routes once that node itself reports role:master.
func TestSentinelsOnlyDiscoverTheMaster(t *testing.T) {
	c := startCluster(t)
	p := startProxy(t, testConfig(nil, c.sentinelAddrs()))
	waitRoute(t, p, c.a.addr)
	if reply := rawCommand(t, p.Addr(), "SET disc 1"); reply != "+OK" {
		t.Fatalf("got %q", reply)
	}
	if got := c.a.do("GET", "disc"); got != "1" {
		t.Fatalf("master has %v", got)
	}
}
