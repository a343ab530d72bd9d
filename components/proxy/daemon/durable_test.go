package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/proxy/config"
)

// durableSetup is a master, a replica, three sentinels and a proxy whose
// durable_listen is the durable mode.
func durableSetup(t *testing.T, timeout time.Duration) (*cluster, *Proxy) {
	t.Helper()
	c := startCluster(t)
	cfg := testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs())
	cfg.DurableListen = "127.0.0.1:0"
	cfg.DurabilityTimeout = timeout
	p := startProxy(t, cfg)
	waitRoute(t, p, c.a.addr)
	return c, p
}

func rawCmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// readReply reads one line-based reply (+, -, :) with a deadline.
func readLine(t *testing.T, c net.Conn, d time.Duration) (string, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	var out []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			return string(out), err
		}
		out = append(out, b[0])
		if b[0] == '\n' {
			return string(out), nil
		}
	}
}

// firstDurableWrite sets key through the durable listener and returns the
// connection that got +OK. A loaded replica may acknowledge later than a
// short WAIT timeout, and the proxy then closes the connection (never an
// acknowledgement): the write is tried on a new connection until it is
// acknowledged, within a deadline.
func firstDurableWrite(t *testing.T, p *Proxy, key string) net.Conn {
	t.Helper()
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		conn, err := net.Dial("tcp", p.DurableAddr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(rawCmd("SET", key, "1"))); err == nil {
			line, err := readLine(t, conn, 5*time.Second)
			if line == "+OK\r\n" {
				return conn
			}
			last = fmt.Sprintf("%q %v", line, err)
		}
		conn.Close()
	}
	t.Fatalf("no durable write of %s acknowledged in 15 s; last: %s", key, last)
	return nil
}

func signal(t *testing.T, n *node, sig syscall.Signal) {
	t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// TestDurableAckIsOnReplica: every write the durable listener
// acknowledged is on the replica at the moment of the acknowledgement:
// right after the +OK the master is frozen (SIGSTOP: nothing more can
// reach the replica), and the replica, read directly, has the value.
func TestDurableAckIsOnReplica(t *testing.T) {
	c, p := durableSetup(t, 2*time.Second)
	conn, err := net.Dial("tcp", p.DurableAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 0; i < 20; i++ {
		key, val := fmt.Sprintf("ack%d", i), fmt.Sprintf("v%d-%d", i, time.Now().UnixNano())
		// A pipeline: the write and a 64 KiB value, so replication is not
		// instantaneous.
		big := strings.Repeat("x", 64<<10)
		if _, err := conn.Write([]byte(rawCmd("SET", key+"big", big) + rawCmd("SET", key, val))); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			line, err := readLine(t, conn, 5*time.Second)
			if err != nil || line != "+OK\r\n" {
				t.Fatalf("write %d: %q %v", i, line, err)
			}
		}
		signal(t, c.a, syscall.SIGSTOP)
		got, err := c.b.client().Get(context.Background(), key).Result()
		signal(t, c.a, syscall.SIGCONT)
		if err != nil || got != val {
			t.Fatalf("write %d acknowledged through the durable listener, but the replica has %q (%v), want %q", i, got, err, val)
		}
	}
	if n := p.dstats.Held.Load(); n < 20 {
		t.Fatalf("%d batches acknowledged after WAIT, want at least 20", n)
	}
}

// exchange sends script to addr in steps (each step's bytes, then waits
// for want bytes of reply, then runs its hook) and returns every byte
// received until the server closed (the script ends with QUIT).
type step struct {
	send  string
	until string // read until the received bytes contain this
	hook  func()
}

func exchange(t *testing.T, addr string, steps []step) []byte {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got bytes.Buffer
	buf := make([]byte, 64<<10)
	for _, s := range steps {
		if _, err := conn.Write([]byte(s.send)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for s.until != "" && !bytes.Contains(got.Bytes(), []byte(s.until)) {
			n, err := conn.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				if err == io.EOF {
					break
				}
				t.Fatalf("reading: %v after %q", err, got.String())
			}
		}
		if s.hook != nil {
			s.hook()
		}
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("reading to the end: %v after %q", err, got.String())
	}
	got.Write(rest)
	return got.Bytes()
}

// TestDurableSameBytes: pipelines of mixed reads and writes, MULTI/EXEC,
// Lua, inline commands, RESP3 and pub/sub give byte for byte the replies
// redis gives without the proxy.
func TestDurableSameBytes(t *testing.T) {
	c, p := durableSetup(t, 2*time.Second)
	lua := "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])"
	pipeline := rawCmd("GET", "k") + rawCmd("SET", "k", "1") + rawCmd("INCR", "k") + rawCmd("GET", "k") +
		rawCmd("LPUSH", "l", "a", "b") + rawCmd("LRANGE", "l", "0", "-1") + rawCmd("NOSUCHCMD") +
		"SET inline \"two words\"\r\nGET inline\r\n" + rawCmd("SET", "big", strings.Repeat("z", 100<<10)) + rawCmd("STRLEN", "big")
	scripts := map[string][]step{
		"pipeline":           {{send: pipeline + rawCmd("QUIT")}},
		"pipeline in pieces": {{send: rawCmd("SET", "a", "1"), until: "+OK"}, {send: rawCmd("GET", "a") + rawCmd("DEL", "a") + rawCmd("QUIT")}},
		"multi": {{send: rawCmd("MULTI") + rawCmd("SET", "m", "1") + rawCmd("INCR", "m") + rawCmd("GET", "m") + rawCmd("EXEC") +
			rawCmd("MULTI") + rawCmd("GET", "m") + rawCmd("DISCARD") + rawCmd("MULTI") + rawCmd("SET", "m") + rawCmd("EXEC") + rawCmd("QUIT")}},
		"multi interactive": {{send: rawCmd("MULTI"), until: "+OK"}, {send: rawCmd("SET", "x", "1"), until: "QUEUED"},
			{send: rawCmd("EXEC"), until: "*1"}, {send: rawCmd("GET", "x") + rawCmd("QUIT")}},
		"lua": {{send: rawCmd("EVAL", lua, "1", "s", "v") + rawCmd("EVAL", "return redis.call('get', KEYS[1])", "1", "s") +
			rawCmd("EVAL", "return redis.error_reply('boom')", "0") + rawCmd("QUIT")}},
		"resp3": {{send: rawCmd("HELLO", "3"), until: "proto"}, {send: rawCmd("SET", "r", "1") + rawCmd("HGETALL", "nokey") +
			rawCmd("HSET", "h", "f", "v") + rawCmd("HGETALL", "h") + rawCmd("CLIENT", "TRACKING", "on") + rawCmd("GET", "r") + rawCmd("QUIT")}},
		"pubsub": {{send: rawCmd("SET", "ps", "1") + rawCmd("SUBSCRIBE", "chan"), until: "chan\r\n:1\r\n",
			hook: func() { c.a.do("PUBLISH", "chan", "hello") }}, {send: rawCmd("PING") + rawCmd("QUIT")}},
		"resp3 pubsub": {{send: rawCmd("HELLO", "3"), until: "proto"}, {send: rawCmd("SUBSCRIBE", "chan3"), until: "chan3\r\n:1\r\n",
			hook: func() { c.a.do("PUBLISH", "chan3", "hi") }}, {send: rawCmd("SET", "p3", "1") + rawCmd("QUIT")}},
	}
	for name, script := range scripts {
		t.Run(name, func(t *testing.T) {
			c.a.do("FLUSHALL")
			direct := exchange(t, c.a.addr, script)
			c.a.do("FLUSHALL")
			proxied := exchange(t, p.DurableAddr(), script)
			// HELLO's reply names the connection's id: the one thing that differs.
			direct, proxied = maskID(direct), maskID(proxied)
			if !bytes.Equal(direct, proxied) {
				t.Fatalf("replies differ\ndirect:  %q\nproxied: %q", direct, proxied)
			}
		})
	}
	if p.dstats.Waits.Load() == 0 || p.dstats.PassSubscribe.Load() != 2 {
		t.Fatalf("waits %d, subscribe passthroughs %d (want >0, 2)", p.dstats.Waits.Load(), p.dstats.PassSubscribe.Load())
	}
}

func maskID(b []byte) []byte {
	i := bytes.Index(b, []byte("$2\r\nid\r\n:"))
	if i < 0 {
		return b
	}
	j := i + len("$2\r\nid\r\n:")
	k := bytes.Index(b[j:], []byte("\r\n"))
	return append(append(append([]byte{}, b[:j]...), 'N'), b[j+k:]...)
}

// TestDurableReplicaStops: with the replica frozen (SIGSTOP), a write
// through the durable listener is never acknowledged: the connection
// closes, within the WAIT timeout and a margin, without a reply.
func TestDurableReplicaStops(t *testing.T) {
	const timeout = 300 * time.Millisecond
	c, p := durableSetup(t, timeout)
	conn := firstDurableWrite(t, p, "before")
	defer conn.Close()
	signal(t, c.b, syscall.SIGSTOP)
	defer signal(t, c.b, syscall.SIGCONT)
	start := time.Now()
	if _, err := conn.Write([]byte(rawCmd("GET", "before") + rawCmd("SET", "after", "1") + rawCmd("GET", "after"))); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	took := time.Since(start)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading: %v (got %q)", err, got)
	}
	// The GET before the write is not held; nothing after it may arrive.
	if string(got) != "$1\r\n1\r\n" {
		t.Fatalf("client got %q, want only the read's reply before the write", got)
	}
	if took > timeout+time.Second {
		t.Fatalf("closed after %v, want within the timeout %v and a margin", took, timeout)
	}
	if p.dstats.ClosedShort.Load() == 0 {
		t.Fatal("not counted as closed: not_replicated")
	}
	t.Logf("closed after %v (timeout %v)", took, timeout)
}

// TestDurabilityTopLevel: durability: replicated makes the read-write
// listener durable too.
func TestDurabilityTopLevel(t *testing.T) {
	c := startCluster(t)
	cfg := testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs())
	cfg.Durability = config.DurabilityReplicated
	p := startProxy(t, cfg)
	waitRoute(t, p, c.a.addr)
	cl := p.testClient(t, 2)
	// A loaded replica may acknowledge the first write after WAIT's
	// 500 ms: the proxy then closes the connection (correctly, never
	// acknowledging), and the client tries again on a new one.
	var err error
	waitFor(t, 10*time.Second, "a write acknowledged through the read-write listener", func() bool {
		err = cl.Set(context.Background(), "top", "1", 0).Err()
		return err == nil
	})
	if p.dstats.Held.Load() == 0 {
		t.Fatal("a write on the read-write listener was not waited for")
	}
}

// TestDurableNoReplicaPolicies: a master with no replica at all. With
// durability_no_replica: refuse a write is never acknowledged (the
// connection closes after WAIT's timeout); with async, once the proxy's
// poll has seen no online replica, writes are acknowledged without WAIT
// and counted.
func TestDurableNoReplicaPolicies(t *testing.T) {
	a := startRedis(t)
	for _, policy := range []string{config.NoReplicaRefuse, config.NoReplicaAsync} {
		t.Run(policy, func(t *testing.T) {
			cfg := testConfig([]string{a.addr}, nil)
			cfg.DurableListen = "127.0.0.1:0"
			cfg.DurabilityTimeout = 200 * time.Millisecond
			cfg.DurabilityNoReplica = policy
			p := startProxy(t, cfg)
			waitRoute(t, p, a.addr)
			write := func(key string) (string, error) {
				conn, err := net.Dial("tcp", p.DurableAddr())
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if _, err := conn.Write([]byte(rawCmd("SET", key, "1"))); err != nil {
					return "", err
				}
				return readLine(t, conn, 5*time.Second)
			}
			if policy == config.NoReplicaRefuse {
				for i := range 3 {
					if line, err := write(fmt.Sprintf("refused:%d", i)); line != "" || err == nil {
						t.Fatalf("write %d without a replica: %q %v, want the connection closed", i, line, err)
					}
				}
				if p.dstats.ClosedShort.Load() < 3 || p.dstats.AsyncAcks.Load() != 0 {
					t.Fatalf("closed_short %d async_acks %d", p.dstats.ClosedShort.Load(), p.dstats.AsyncAcks.Load())
				}
				return
			}
			// The first writes may close (WAIT times out before the poll
			// has answered); within a few check intervals they succeed.
			i := 0
			waitFor(t, 10*time.Second, "a write acknowledged asynchronously", func() bool {
				i++
				line, _ := write(fmt.Sprintf("async:%d", i))
				return line == "+OK\r\n"
			})
			if p.dstats.AsyncAcks.Load() == 0 {
				t.Fatal("acknowledged but not counted as async")
			}
		})
	}
}

// TestDurableAsyncAfterFailover is the lab's master-crash under
// durability_no_replica: async (docs/results/durability.md): the master
// dies, the sentinels promote the replica, which has no replica of its
// own. Writes through the durable listener are then acknowledged
// asynchronously (counted), not refused; and the proxy stops watching the
// former master (restarted as a replica, its INFO would list no replica and
// read as "no replica": a false log line, and a poller per former master
// for the proxy's lifetime).
func TestDurableAsyncAfterFailover(t *testing.T) {
	c := startCluster(t)
	cfg := testConfig([]string{c.a.addr, c.b.addr}, c.sentinelAddrs())
	cfg.DurableListen = "127.0.0.1:0"
	cfg.DurabilityTimeout = 200 * time.Millisecond
	cfg.DurabilityNoReplica = config.NoReplicaAsync
	p := startProxy(t, cfg)
	waitRoute(t, p, c.a.addr)
	firstDurableWrite(t, p, "before").Close()
	if n := p.dstats.AsyncAcks.Load(); n != 0 {
		t.Fatalf("%d batches acknowledged asynchronously while the master had its replica", n)
	}
	watching := func(addr string) bool {
		p.durMu.Lock()
		defer p.durMu.Unlock()
		return p.durRepl[addr] != nil
	}
	if !watching(c.a.addr) {
		t.Fatal("no replica watch for the master under the async policy")
	}

	c.a.kill()
	waitRoute(t, p, c.b.addr)
	i := 0
	waitFor(t, 15*time.Second, "a write acknowledged by the promoted replica without a replica", func() bool {
		i++
		conn, err := net.Dial("tcp", p.DurableAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte(rawCmd("SET", fmt.Sprintf("after:%d", i), "1"))); err != nil {
			return false
		}
		line, _ := readLine(t, conn, 5*time.Second)
		return line == "+OK\r\n"
	})
	if p.dstats.AsyncAcks.Load() == 0 {
		t.Fatal("acknowledged without a replica but not counted as asynchronous")
	}
	if !watching(c.b.addr) {
		t.Fatal("no replica watch for the promoted master")
	}
	waitFor(t, 10*time.Second, "the former master's replica watch to end", func() bool { return !watching(c.a.addr) })
}
