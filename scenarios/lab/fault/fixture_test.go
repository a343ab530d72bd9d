package fault

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
)

// The test topology: one bridge rhf-br<N> with the host (the "observer")
// on 10.81.0.1 and one plain network namespace per node on 10.81.0.10+k.
// It uses only this package's prefix (rhf-) and subnet (10.81.0.0/24).

const (
	testPrefix = "rhf-"
	hostAddr   = "10.81.0.1"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root and network namespaces; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root (network namespaces, nftables); run `make test` as root or use -short")
	}
	for _, bin := range []string{"ip", "redis-server"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("this test needs %s: %v (make deps installs it)", bin, err)
		}
	}
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testNode is a plain network namespace holding one redis-server that the
// test started; it implements Target, DaemonFinder and DaemonStarter.
type testNode struct {
	t    *testing.T
	name string
	ns   string // /run/netns name
	addr netip.Addr

	mu    sync.Mutex
	redis *exec.Cmd
	exit  chan struct{}
}

func (n *testNode) Name() string      { return n.name }
func (n *testNode) Addr() netip.Addr  { return n.addr }
func (n *testNode) NetnsPath() string { return "/run/netns/" + n.ns }

func (n *testNode) DaemonPID(_ context.Context, daemon string) (int, error) {
	if daemon != "redis-server" {
		return 0, fmt.Errorf("no daemon %q on %s", daemon, n.name)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.redis == nil {
		return 0, errors.New("redis-server not running")
	}
	select {
	case <-n.exit:
		return 0, errors.New("redis-server exited")
	default:
	}
	return n.redis.Process.Pid, nil
}

func (n *testNode) StartDaemon(ctx context.Context, daemon string) error {
	if daemon != "redis-server" {
		return fmt.Errorf("no daemon %q on %s", daemon, n.name)
	}
	return n.startRedis(ctx)
}

// startRedis starts redis-server in the namespace and waits until it answers.
func (n *testNode) startRedis(ctx context.Context) error {
	cmd := exec.Command("ip", "netns", "exec", n.ns, "redis-server", "--port", "6379", "--bind", "0.0.0.0",
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning")
	// `ip netns exec` execs the server, so cmd's pid is redis-server's.
	if err := cmd.Start(); err != nil {
		return err
	}
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	n.mu.Lock()
	n.redis, n.exit = cmd, exit
	n.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", n.addr.String()+":6379", 200*time.Millisecond); err == nil {
			_, perr := ping(c, time.Second)
			c.Close()
			if perr == nil {
				return nil
			}
		}
		select {
		case <-exit:
			return fmt.Errorf("redis-server on %s exited at start", n.name)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis-server on %s did not answer", n.name)
}

func (n *testNode) stopRedis() {
	n.mu.Lock()
	cmd, exit := n.redis, n.exit
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exit
}

// dial opens a TCP connection from inside this node's namespace.
func (n *testNode) dial(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetns(n.NetnsPath(), func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

// ping sends one PING and waits for +PONG, returning the round trip.
func ping(c net.Conn, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = c.SetDeadline(start.Add(timeout))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return 0, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return 0, err
	}
	if line != "+PONG\r\n" {
		return 0, fmt.Errorf("unexpected reply %q", line)
	}
	return time.Since(start), nil
}

type topology struct {
	bridge string
	nodes  map[string]*testNode
}

var topoSeq int

// newTopology builds the bridge and one namespace per name, each running
// redis-server, and removes all of it (and checks no fault table is left
// behind) in t.Cleanup.
func newTopology(t *testing.T, names ...string) *topology {
	t.Helper()
	requireRoot(t)
	topoSeq++
	tag := fmt.Sprintf("%d%d", os.Getpid()%1000, topoSeq)
	tp := &topology{bridge: testPrefix + "br" + tag, nodes: map[string]*testNode{}}
	run(t, "ip", "link", "add", tp.bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", tp.bridge).Run() })
	run(t, "ip", "addr", "add", hostAddr+"/24", "dev", tp.bridge)
	run(t, "ip", "link", "set", tp.bridge, "up")
	// Once dockerd runs, bridged traffic meets its FORWARD DROP policy.
	if exec.Command("iptables", "-n", "-L", "DOCKER-USER").Run() == nil {
		rule := []string{"DOCKER-USER", "-i", tp.bridge, "-o", tp.bridge, "-j", "ACCEPT"}
		run(t, append([]string{"iptables", "-I"}, rule...)...)
		t.Cleanup(func() { exec.Command("iptables", append([]string{"-D"}, rule...)...).Run() })
	}
	for k, name := range names {
		n := &testNode{t: t, name: name, ns: fmt.Sprintf("%s%s-%s", testPrefix, tag, name),
			addr: netip.AddrFrom4([4]byte{10, 81, 0, byte(10 + k)})}
		veth := fmt.Sprintf("%sv%s%d", testPrefix, tag, k)
		run(t, "ip", "netns", "add", n.ns)
		t.Cleanup(func() {
			n.stopRedis()
			assertNoFaultTable(t, n)
			exec.Command("ip", "netns", "del", n.ns).Run()
		})
		run(t, "ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", n.ns)
		// Namespaces die asynchronously; deleting the veth is immediate.
		t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() })
		run(t, "ip", "link", "set", veth, "master", tp.bridge, "up")
		run(t, "ip", "-n", n.ns, "addr", "add", n.addr.String()+"/24", "dev", "eth0")
		run(t, "ip", "-n", n.ns, "link", "set", "eth0", "up")
		run(t, "ip", "-n", n.ns, "link", "set", "lo", "up")
		if err := n.startRedis(context.Background()); err != nil {
			t.Fatal(err)
		}
		tp.nodes[name] = n
	}
	return tp
}

func (tp *topology) targets() []Target {
	var out []Target
	for _, n := range tp.nodes {
		out = append(out, n)
	}
	return out
}

func assertNoFaultTable(t *testing.T, n *testNode) {
	f, err := os.Open(n.NetnsPath())
	if err != nil {
		return
	}
	defer f.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Errorf("%s: nftables: %v", n.name, err)
		return
	}
	tables, err := conn.ListTables()
	if err != nil {
		t.Errorf("%s: list tables: %v", n.name, err)
		return
	}
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, DefaultTable) {
			t.Errorf("%s: table %s left behind", n.name, tb.Name)
		}
	}
}

// reachable reports whether from (nil = the host observer) can open a TCP
// connection to to's redis and get a PONG.
func reachable(from, to *testNode) bool {
	addr := to.addr.String() + ":6379"
	var c net.Conn
	var err error
	if from == nil {
		c, err = net.DialTimeout("tcp", addr, 400*time.Millisecond)
	} else {
		c, err = from.dial(addr, 400*time.Millisecond)
	}
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = ping(c, 400*time.Millisecond)
	return err == nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	// After every test nothing of ours may remain.
	if os.Geteuid() == 0 {
		out, _ := exec.Command("ip", "-o", "link", "show").Output()
		ns, _ := exec.Command("ip", "netns", "list").Output()
		for _, l := range strings.Split(string(out)+string(ns), "\n") {
			if strings.Contains(l, testPrefix) {
				fmt.Fprintf(os.Stderr, "leftover after tests: %s\n", l)
				code = 1
			}
		}
	}
	os.Exit(code)
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
