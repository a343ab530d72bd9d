package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisha/redisha/components/proxy/config"
	"github.com/redisha/redisha/components/testenv"
)

// node is a real redis-server or redis-sentinel process on loopback.
type node struct {
	t    testing.TB
	addr string
	port int
	cmd  *exec.Cmd
	cl   *redis.Client
}

func startProcess(t testing.TB, bin string, conf string) *node {
	t.Helper()
	testenv.RequireBinary(t, bin)
	port := testenv.FreePort(t)
	dir := t.TempDir()
	conf = fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n", port, dir) + conf
	path := filepath.Join(dir, "node.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log, _ := os.Create(filepath.Join(dir, "node.log"))
	cmd := exec.Command(bin, path)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	n := &node{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port), port: port, cmd: cmd}
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "node.log"))
			lines := strings.Split(string(b), "\n")
			if len(lines) > 15 {
				lines = lines[len(lines)-15:]
			}
			t.Logf("%s %s log tail:\n%s", bin, n.addr, strings.Join(lines, "\n"))
		}
	})
	c := redis.NewClient(&redis.Options{Addr: n.addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil || strings.Contains(err.Error(), "NOAUTH") || strings.Contains(err.Error(), "WRONGPASS") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s did not answer PING", bin, n.addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.client() // create the shared client before any goroutine uses it
	return n
}

func startRedis(t testing.TB, extra ...string) *node {
	return startProcess(t, "redis-server", "save \"\"\nappendonly no\nrepl-diskless-sync-delay 0\n"+strings.Join(extra, "\n")+"\n")
}

func startSentinel(t testing.TB, master *node, quorum int) *node {
	return startProcess(t, "redis-sentinel", fmt.Sprintf(
		"sentinel monitor m 127.0.0.1 %d %d\nsentinel down-after-milliseconds m 1000\n"+
			"sentinel failover-timeout m 4000\nsentinel parallel-syncs m 1\n", master.port, quorum))
}

func (n *node) kill() {
	if n.cmd.Process != nil && n.cmd.ProcessState == nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
	}
}

// client is a shared direct client to the node.
func (n *node) client() *redis.Client {
	if n.cl == nil {
		n.cl = redis.NewClient(&redis.Options{Addr: n.addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
		c := n.cl
		n.t.Cleanup(func() { c.Close() })
	}
	return n.cl
}

func (n *node) do(args ...any) any {
	n.t.Helper()
	v, err := n.client().Do(context.Background(), args...).Result()
	if err != nil {
		n.t.Fatalf("%s %v: %v", n.addr, args, err)
	}
	return v
}

// cluster is a master, a replica and three sentinels.
type cluster struct {
	a, b      *node
	sentinels []*node
}

func startCluster(t testing.TB) *cluster {
	a := startRedis(t)
	b := startRedis(t, fmt.Sprintf("replicaof 127.0.0.1 %d", a.port))
	c := &cluster{a: a, b: b}
	// Sentinels discover replicas from the master's INFO; start them once the
	// replica is attached so the first INFO already lists it.
	waitFor(t, 10*time.Second, "replica link up", func() bool { return linkUp(b) })
	for i := 0; i < 3; i++ {
		c.sentinels = append(c.sentinels, startSentinel(t, a, 2))
	}
	return c
}

func linkUp(n *node) bool {
	info, _ := n.client().Info(context.Background(), "replication").Result()
	return strings.Contains(info, "master_link_status:up")
}

func (c *cluster) sentinelAddrs() []string {
	var out []string
	for _, s := range c.sentinels {
		out = append(out, s.addr)
	}
	return out
}

func waitFor(t testing.TB, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testConfig(backends, sentinels []string) *Config {
	c := config.DefaultConfig()
	c.Listen = "127.0.0.1:0"
	c.Admin = "127.0.0.1:0"
	c.MasterName = "m"
	c.Backends = backends
	c.Sentinels = sentinels
	c.Check.Interval = 200 * time.Millisecond
	c.Check.Timeout = 300 * time.Millisecond
	c.Routing.NoMajorityGrace = 200 * time.Millisecond
	c.Routing.HoldNewConnections = 300 * time.Millisecond
	c.Derive()
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return &c
}

func startProxy(t testing.TB, cfg *Config) *Proxy {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("PROXY_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := New(cfg, log)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func (p *Proxy) testClient(t testing.TB, proto int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), Protocol: proto, DisableIdentity: true, MaxRetries: -1, PoolSize: 4})
	t.Cleanup(func() { c.Close() })
	return c
}

func waitRoute(t testing.TB, p *Proxy, want string) {
	t.Helper()
	waitFor(t, 10*time.Second, "route to "+want, func() bool { return p.Route().Master == want })
}
