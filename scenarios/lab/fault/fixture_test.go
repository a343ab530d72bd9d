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
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/redisha/redisha/components/testenv"
)

// The test topology: testenv's bridge (the host, i.e. the observer, on
// 10.81.0.254) and one plain network namespace per node on 10.81.0.1..,
// each running a real redis-server. Only this package's prefix (rhf-) and
// subnet (10.81.0.0/24) are used.

const testPrefix = "rhf-"

var testSubnet = netip.MustParsePrefix("10.81.0.0/24")

// testNode is a namespace with one redis-server that the test started; it
// implements Target, DaemonFinder and DaemonStarter.
type testNode struct {
	host  *testenv.Host
	redis *testenv.Process
}

func (n *testNode) Name() string      { return n.host.Name }
func (n *testNode) Addr() netip.Addr  { return n.host.IP }
func (n *testNode) NetnsPath() string { return n.host.NsPath() }

func (n *testNode) DaemonPID(_ context.Context, daemon string) (int, error) {
	if daemon != "redis-server" {
		return 0, fmt.Errorf("no daemon %q on %s", daemon, n.Name())
	}
	if !n.redis.Running() {
		return 0, errors.New("redis-server is not running")
	}
	return n.redis.Pid(), nil
}

func (n *testNode) StartDaemon(_ context.Context, daemon string) error {
	if daemon != "redis-server" {
		return fmt.Errorf("no daemon %q on %s", daemon, n.Name())
	}
	n.redis.Start()
	n.redis.WaitReady(10 * time.Second)
	return nil
}

func (n *testNode) redisAddr() string { return n.host.IP.String() + ":6379" }

// dial opens a TCP connection from inside this node's namespace.
func (n *testNode) dial(addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return n.host.Dial()(ctx, "tcp", addr)
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
	topo  *testenv.Topology
	nodes map[string]*testNode
}

// newTopology builds one namespace per name, each running redis-server,
// and removes all of it in t.Cleanup, failing the test if a fault table is
// left behind in any namespace.
func newTopology(t testing.TB, names ...string) *topology {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skips tests on network namespaces and real daemons")
	}
	testenv.RequireBinary(t, "redis-server")
	tp := &topology{topo: testenv.NewTopology(t, testPrefix, testSubnet, names...), nodes: map[string]*testNode{}}
	for _, h := range tp.topo.Hosts() {
		n := &testNode{host: h}
		t.Cleanup(func() { assertNoFaultTable(t, n) })
		n.redis = testenv.StartProcess(t, testenv.ProcessSpec{
			Name: "redis-" + h.Name, Host: h.IP.String(), Port: 6379, Netns: h.Netns,
			Argv: []string{"redis-server", "--port", "6379", "--bind", "0.0.0.0", "--save", "",
				"--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"},
		})
		tp.nodes[h.Name] = n
	}
	return tp
}

// observer is the host side's address on the bridge.
func (tp *topology) observer() netip.Addr { return tp.topo.Gw }

func (tp *topology) targets() []Target {
	var out []Target
	for _, n := range tp.nodes {
		out = append(out, n)
	}
	return out
}

func assertNoFaultTable(t testing.TB, n *testNode) {
	f, err := os.Open(n.NetnsPath())
	if err != nil {
		return
	}
	defer f.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Errorf("%s: nftables: %v", n.Name(), err)
		return
	}
	tables, err := conn.ListTables()
	if err != nil {
		t.Errorf("%s: list tables: %v", n.Name(), err)
		return
	}
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, DefaultTable) {
			t.Errorf("%s: table %s left behind", n.Name(), tb.Name)
		}
	}
}

// reachable reports whether from (nil = the host observer) can open a TCP
// connection to to's redis and get a PONG.
func reachable(from, to *testNode) bool {
	addr := to.redisAddr()
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
		fw, _ := exec.Command("iptables", "-S").Output()
		for _, l := range strings.Split(string(out)+string(ns)+string(fw), "\n") {
			if strings.Contains(l, testPrefix) {
				fmt.Fprintf(os.Stderr, "leftover after tests: %s\n", l)
				code = 1
			}
		}
	}
	os.Exit(code)
}
