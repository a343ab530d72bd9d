package netns_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/redisha/redisha/components/netns"
	"github.com/redisha/redisha/components/testenv"
)

// Only this package's prefix (rhn-) and subnet (10.83.0.0/24) are used.
const prefix = "rhn-"

var (
	gw  = netip.MustParsePrefix("10.83.0.254/24")
	ipA = netip.MustParsePrefix("10.83.0.1/24")
	ipB = netip.MustParsePrefix("10.83.0.2/24")
)

func cleanup() {
	for _, n := range []string{"a", "b"} {
		_ = netns.Delete(prefix + n)
		_ = netns.DelLink(prefix + n)
	}
	_ = netns.RemoveBridgeForward(prefix+"br", "")
	_ = netns.DelLink(prefix + "br")
}

// pair builds two namespaces a and b on a bridge that also holds the
// host's address, with the toolkit alone, and returns their paths.
func pair(t *testing.T) (a, b string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skips tests on network namespaces")
	}
	testenv.RequireRoot(t)
	cleanup()
	t.Cleanup(cleanup)
	if err := netns.AddBridge(prefix+"br", gw); err != nil {
		t.Fatal(err)
	}
	if err := netns.AllowBridgeForward(prefix+"br", ""); err != nil && !errors.Is(err, netns.ErrNoDockerUser) {
		t.Fatal(err)
	}
	for _, h := range []struct {
		name string
		addr netip.Prefix
	}{{"a", ipA}, {"b", ipB}} {
		if err := netns.Create(prefix + h.name); err != nil {
			t.Fatal(err)
		}
		if err := netns.AddVeth(netns.Veth{Host: prefix + h.name, Bridge: prefix + "br", Netns: netns.NamedPath(prefix + h.name), Addr: h.addr}); err != nil {
			t.Fatal(err)
		}
	}
	return netns.NamedPath(prefix + "a"), netns.NamedPath(prefix + "b")
}

// echo serves one line per connection back to the sender, inside path.
func echo(t *testing.T, path, addr string) string {
	t.Helper()
	l, err := netns.Listen(path, "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				c.Write([]byte(line))
			}()
		}
	}()
	return l.Addr().String()
}

func talk(dial netns.DialFunc, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	c, err := dial(ctx, "tcp4", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("hi\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "hi\n" {
		return fmt.Errorf("echo answered %q", line)
	}
	return nil
}

func TestCreateWireDial(t *testing.T) {
	a, b := pair(t)
	if err := netns.Create(prefix + "a"); err == nil {
		t.Error("creating an existing namespace succeeded")
	}
	names, err := netns.Names()
	if err != nil || !slices.Contains(names, prefix+"a") || !slices.Contains(names, prefix+"b") {
		t.Fatalf("Names() = %v, %v; want both namespaces", names, err)
	}
	for _, c := range []struct {
		path string
		addr netip.Addr
		want bool
	}{{a, ipA.Addr(), true}, {a, ipB.Addr(), false}, {b, ipB.Addr(), true}, {"", ipA.Addr(), false}} {
		if got, err := netns.HasAddr(c.path, c.addr); err != nil || got != c.want {
			t.Errorf("HasAddr(%q, %v) = %v, %v; want %v", c.path, c.addr, got, err, c.want)
		}
	}
	srv := echo(t, a, ipA.Addr().String()+":0")
	// No retry: AddVeth returns only once the links carry packets.
	if err := talk(netns.Dialer(b), srv); err != nil {
		t.Errorf("b cannot reach a's listener: %v", err)
	}
	if err := talk(netns.Dialer(""), srv); err != nil {
		t.Errorf("the host cannot reach a's listener over the bridge: %v", err)
	}
	// The listener is a's: b's loopback does not have it.
	if err := talk(netns.Dialer(b), strings.Replace(srv, ipA.Addr().String(), "127.0.0.1", 1)); err == nil {
		t.Error("a's listener answers on b's loopback")
	}

	// UDP too.
	pc, err := netns.ListenPacket(b, "udp4", ipB.Addr().String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := netns.Do(a, func() error {
		c, err := net.Dial("udp4", pc.LocalAddr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 8)
	if _, from, err := pc.ReadFrom(buf); err != nil || from.(*net.UDPAddr).IP.String() != ipA.Addr().String() {
		t.Errorf("datagram a->b: from %v, %v", from, err)
	}
}

func TestDoLeavesNoThreadBehind(t *testing.T) {
	a, _ := pair(t)
	var inside []net.Addr
	if err := netns.Do(a, func() (err error) {
		inside, err = net.InterfaceAddrs()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(inside, func(x net.Addr) bool { return strings.HasPrefix(x.String(), ipA.Addr().String()+"/") }) {
		t.Fatalf("inside a: addresses %v lack %v", inside, ipA.Addr())
	}
	// Many goroutines later, none runs in a's namespace.
	for i := 0; i < 50; i++ {
		_ = netns.Do(a, func() error { return nil })
		errc := make(chan error, 1)
		go func() {
			addrs, err := net.InterfaceAddrs()
			if err == nil && slices.ContainsFunc(addrs, func(x net.Addr) bool { return strings.HasPrefix(x.String(), ipA.Addr().String()+"/") }) {
				err = errors.New("a goroutine runs inside a's namespace")
			}
			errc <- err
		}()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if err := netns.Do("/nonexistent/ns", func() error { return nil }); err == nil {
		t.Error("Do on a missing namespace succeeded")
	}
}

func inode(t *testing.T, path string) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

func TestStartAndRunInside(t *testing.T) {
	a, _ := pair(t)
	testenv.RequireBinary(t, "sleep", "ip")
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done, err := netns.Start(a, cmd)
	if err != nil {
		t.Fatal(err)
	}
	// The pid is the program's own, and it runs in a's namespace.
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)); strings.TrimSpace(string(comm)) != "sleep" {
		t.Errorf("pid %d is %q, want sleep itself", cmd.Process.Pid, comm)
	}
	if got, err := os.Readlink(netns.PidPath(cmd.Process.Pid)); err != nil || got != inode(t, a) {
		t.Errorf("child's namespace %s (%v), want a's %s", got, err, inode(t, a))
	}
	// The toolkit opens it by pid, as the lab does for containers.
	if ok, err := netns.HasAddr(netns.PidPath(cmd.Process.Pid), ipA.Addr()); err != nil || !ok {
		t.Errorf("HasAddr by pid: %v, %v", ok, err)
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no exit reported")
	}

	var out strings.Builder
	run := exec.Command("ip", "-o", "-4", "addr", "show", "dev", "eth0")
	run.Stdout = &out
	if err := netns.Run(a, run); err != nil || !strings.Contains(out.String(), ipA.String()) {
		t.Errorf("ip addr in a: %q, %v; want %v", out.String(), err, ipA)
	}
	if _, err := netns.Start("/nonexistent/ns", exec.Command("true")); err == nil {
		t.Error("Start in a missing namespace succeeded")
	}
}

func TestDropDefaultRoutes(t *testing.T) {
	a, _ := pair(t)
	h, err := netns.Handle(a)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.RouteAdd(&netlink.Route{Gw: gw.Addr().AsSlice()}); err != nil {
		t.Fatal(err)
	}
	if err := netns.DropDefaultRoutes(a); err != nil {
		t.Fatal(err)
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			t.Errorf("default route %v survived", r)
		}
	}
}

func TestDeleteIsIdempotent(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	testenv.RequireRoot(t)
	if err := netns.Delete(prefix + "never"); err != nil {
		t.Errorf("deleting a missing namespace: %v", err)
	}
	if err := netns.DelLink(prefix + "never"); err != nil {
		t.Errorf("deleting a missing link: %v", err)
	}
}

// TestMain fails the run if anything with this package's prefix remains.
func TestMain(m *testing.M) {
	code := m.Run()
	if os.Geteuid() == 0 {
		for _, l := range leftovers(prefix) {
			fmt.Fprintf(os.Stderr, "leftover after tests: %s\n", l)
			code = 1
		}
	}
	os.Exit(code)
}

func leftovers(p string) []string {
	var out []string
	names, _ := netns.Names()
	for _, n := range names {
		if strings.HasPrefix(n, p) {
			out = append(out, "netns "+n)
		}
	}
	links, _ := netlink.LinkList()
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, p) {
			out = append(out, "link "+l.Attrs().Name)
		}
	}
	rules, _ := netns.ForwardRules(p)
	for _, r := range rules {
		out = append(out, "iptables "+r.String())
	}
	return out
}
