package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/components/vip/daemon"
)

// Every namespace, bridge and address of these tests: prefix rhv-, 10.78.0.0/24.
const (
	prefix     = "rhv-"
	statusPort = 9732
)

var (
	subnet = netip.MustParsePrefix("10.78.0.0/24")
	vipIP  = netip.MustParseAddr("10.78.0.100")
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// vipBinary builds cmd/redisha-vip once per test binary.
func vipBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rhv-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "redisha-vip")
		args := []string{"build", "-o", binPath}
		if os.Getenv("REDISHA_VIP_RACE") == "1" { // hunt data races in the daemon
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "github.com/redisha/redisha/cmd/redisha-vip")...).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// needNetns: these tests need root for namespaces and raw sockets; -short
// skips them for a quick local loop (make test never passes -short).
func needNetns(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("namespace test skipped under -short")
	}
	testenv.RequireRoot(t)
}

// nsView reads addresses and neighbours inside one namespace over netlink,
// without entering it.
type nsView struct {
	name string
	h    *netlink.Handle
	link netlink.Link
	mac  net.HardwareAddr
}

func newView(t testing.TB, nsName string) *nsView {
	t.Helper()
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	ns.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	return &nsView{name: nsName, h: h, link: link, mac: link.Attrs().HardwareAddr}
}

func (v *nsView) has(a netip.Addr) bool {
	addrs, err := v.h.AddrList(v.link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if x.IP.Equal(net.IP(a.AsSlice())) {
			return true
		}
	}
	return false
}

// neighMAC is the link-layer address this namespace has cached for ip.
func (v *nsView) neighMAC(ip netip.Addr) net.HardwareAddr {
	ns, _ := v.h.NeighList(v.link.Attrs().Index, netlink.FAMILY_V4)
	for _, n := range ns {
		if n.IP.Equal(net.IP(ip.AsSlice())) && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
			return n.HardwareAddr
		}
	}
	return nil
}

// waitFor polls cond every millisecond until it holds, returning when.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// overlapMonitor records the longest time both views held the VIP at once.
type overlapMonitor struct {
	mu      sync.Mutex
	max     time.Duration
	stop    chan struct{}
	stopped chan struct{}
}

func monitorOverlap(a, b *nsView) *overlapMonitor {
	m := &overlapMonitor{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(m.stopped)
		// A sample is two netlink reads; a loaded machine may stall between
		// or after them. The overlap counted is the interval known to be
		// covered: from the end of the first sample that saw both holders to
		// the start of the latest one, so scheduling delays can only shrink
		// it, never make one holder's time look shared.
		var since time.Time
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(time.Millisecond):
			}
			start := time.Now()
			both := a.has(vipIP) && b.has(vipIP)
			end := time.Now()
			if both {
				if since.IsZero() {
					since = end
				}
				m.mu.Lock()
				m.max = max(m.max, start.Sub(since))
				m.mu.Unlock()
			} else {
				since = time.Time{}
			}
		}
	}()
	return m
}

func (m *overlapMonitor) Max() time.Duration {
	close(m.stop)
	<-m.stopped
	return m.max
}

type vipNode struct {
	host *testenv.Host
	view *nsView
	proc *testenv.Process
	cfg  string
}

// vipConfig renders a redisha-vip configuration for host h.
func vipConfig(h *testenv.Host, version, prio int, interval string) string {
	return fmt.Sprintf(`name: %s
interface: eth0
vrid: 51
version: %d
priority: %d
advert_interval: %s
virtual_addresses: [%s/24]
garp: {count: 3, delay: 5ms, repeat: 0s}
status: {listen: "0.0.0.0:%d"}
log: {level: debug}
`, h.Name, version, prio, interval, vipIP, statusPort)
}

func startVIP(t testing.TB, h *testenv.Host, view *nsView, cfg string) *vipNode {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "vip.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testenv.StartProcess(t, testenv.ProcessSpec{Name: "redisha-vip-" + h.Name, Dir: dir, Netns: h.Netns,
		Argv: []string{vipBinary(t), "run", "-c", path}})
	n := &vipNode{host: h, view: view, proc: p, cfg: path}
	t.Cleanup(func() { // registered after StartProcess's: runs first, while the log exists
		if log, _ := os.ReadFile(p.LogPath()); strings.Contains(string(log), "DATA RACE") {
			t.Errorf("%s: data race in the daemon:\n%s", h.Name, log)
		}
	})
	waitFor(t, h.Name+" status endpoint", 10*time.Second, func() bool { _, err := n.status(); return err == nil })
	return n
}

func (n *vipNode) status() (daemon.Status, error) {
	var s daemon.Status
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s:%d/status", n.host.IP, statusPort))
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

func (n *vipNode) state(t testing.TB) string {
	s, err := n.status()
	if err != nil {
		t.Fatalf("%s status: %v", n.host.Name, err)
	}
	return s.State
}

// whoAnswers asks the VIP, from client's namespace, which instance it is.
func whoAnswers(client *testenv.Host) (string, error) {
	tr := &http.Transport{DialContext: client.Dial(), DisableKeepAlives: true}
	c := http.Client{Transport: tr, Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://%s:%d/status", vipIP, statusPort))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var s daemon.Status
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	return s.Name, nil
}

func badPackets(s daemon.Status) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range s.BadPackets {
		if v > 0 && k != "vrid" {
			out[k] = v
		}
	}
	return out
}

// TestTwoInstancesFailover runs two redisha-vip in namespaces a and b and a
// client in c: one master holds the VIP and answers on it; SIGKILL of the
// master moves the VIP within Master_Down_Interval + 100 ms, SIGTERM within
// Skew_Time + 100 ms; the client reaches the new owner at once because the
// gratuitous ARPs updated its neighbour cache; a restart removes the stale VIP
// a SIGKILL left behind; addresses and interfaces the config does not name
// are never touched.
func TestTwoInstancesFailover(t *testing.T) {
	needNetns(t)
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b", "c")
	ha, hb, hc := topo.Host("a"), topo.Host("b"), topo.Host("c")
	va, vb, vc := newView(t, ha.Netns), newView(t, hb.Netns), newView(t, hc.Netns)
	capB := captureVRRP(t, hb)

	// Things redisha-vip must leave alone: another address on its interface,
	// another interface with an address, the VIP's address on that other one.
	ha.MustRun("ip", "addr", "add", "10.78.0.200/24", "dev", "eth0")
	ha.MustRun("ip", "link", "add", "rhvdummy", "type", "veth", "peer", "name", "rhvdummy1")
	ha.MustRun("ip", "addr", "add", "10.78.1.100/32", "dev", "rhvdummy")
	untouched := func() {
		t.Helper()
		out := ha.MustRun("ip", "-4", "addr", "show")
		for _, want := range []string{"10.78.0.200/24", "10.78.1.100/32", ha.IP.String() + "/24"} {
			if !strings.Contains(out, want) {
				t.Fatalf("address %s not named by the config was touched:\n%s", want, out)
			}
		}
	}

	const interval = "300ms" // 30 cs
	// b (priority 100): Skew_Time = 156*30/256 = 18 cs, Master_Down_Interval = 108 cs.
	const mdiB, skewB = 1080 * time.Millisecond, 180 * time.Millisecond
	a := startVIP(t, ha, va, vipConfig(ha, 3, 200, interval))
	b := startVIP(t, hb, vb, vipConfig(hb, 3, 100, interval))
	waitFor(t, "a to become master", 5*time.Second, func() bool { return va.has(vipIP) })
	time.Sleep(700 * time.Millisecond) // a few adverts: b must stay backup
	if vb.has(vipIP) || b.state(t) != "BACKUP" || a.state(t) != "MASTER" {
		t.Fatalf("election: a=%s b=%s, VIP on b=%v", a.state(t), b.state(t), vb.has(vipIP))
	}
	if who, err := whoAnswers(hc); err != nil || who != "a" {
		t.Fatalf("VIP answered by %q (%v), want a", who, err)
	}
	if !macEqual(vc.neighMAC(vipIP), va.mac) {
		t.Fatalf("client caches %v for the VIP, want a's %v", vc.neighMAC(vipIP), va.mac)
	}

	// SIGKILL: no goodbye; b waits Master_Down_Interval from a's last advert.
	// Timed on the wire in b's namespace (capture_test.go); the tolerance is
	// capped at half an interval (4 intervals instead of 3 + Skew_Time would
	// be 120 ms late), after SIGTERM at 300 ms (an ignored priority-0 advert
	// costs at least Master_Down_Interval - interval = 780 ms).
	mark, probe := capB.mark(), startSchedProbe()
	killed := time.Now()
	a.proc.Kill()
	took := waitFor(t, "b to take the VIP after SIGKILL", 5*time.Second, func() bool { return vb.has(vipIP) }).Sub(killed)
	t.Logf("SIGKILL -> VIP on b seen by the test after %v", took)
	reactionBound(t, "a's last advert -> b's first advert as master", capB.handover(t, mark, ha.IP, hb.IP, false),
		mdiB, 20*time.Millisecond, 150*time.Millisecond, probe)
	waitFor(t, "client neighbour entry to follow the GARP", time.Second, func() bool { return macEqual(vc.neighMAC(vipIP), vb.mac) })
	if who, err := whoAnswers(hc); err != nil || who != "b" {
		t.Fatalf("after SIGKILL the VIP answered by %q (%v), want b", who, err)
	}

	// The killed instance left its VIP behind; a restart removes it first,
	// then preempts b (priority 200 > 100).
	if !va.has(vipIP) {
		t.Fatal("expected a stale VIP on a after SIGKILL")
	}
	a.proc.Start()
	waitFor(t, "a to preempt b", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	if log := readFile(t, a.proc.LogPath()); !strings.Contains(log, "removed stale virtual addresses") {
		t.Fatalf("restart did not report removing the stale VIP:\n%s", log)
	}
	waitFor(t, "client to follow a", time.Second, func() bool { return macEqual(vc.neighMAC(vipIP), va.mac) })
	if who, err := whoAnswers(hc); err != nil || who != "a" {
		t.Fatalf("after preemption the VIP answered by %q (%v), want a", who, err)
	}

	// SIGTERM: a sends priority 0, b takes over after its Skew_Time.
	mark, probe = capB.mark(), startSchedProbe()
	termed := time.Now()
	a.proc.Signal(syscall.SIGTERM)
	took = waitFor(t, "b to take the VIP after SIGTERM", 5*time.Second, func() bool { return vb.has(vipIP) }).Sub(termed)
	t.Logf("SIGTERM -> VIP on b seen by the test after %v", took)
	reactionBound(t, "a's priority-0 advert -> b's first advert as master", capB.handover(t, mark, ha.IP, hb.IP, true),
		skewB, 20*time.Millisecond, 300*time.Millisecond, probe)
	waitFor(t, "a to release the VIP", time.Second, func() bool { return !va.has(vipIP) })
	// Without GARP the client would still send to a, which no longer has the
	// VIP; it must reach b immediately instead.
	waitFor(t, "client neighbour entry to follow the GARP", time.Second, func() bool { return macEqual(vc.neighMAC(vipIP), vb.mac) })
	if who, err := whoAnswers(hc); err != nil || who != "b" {
		t.Fatalf("after SIGTERM the VIP answered by %q (%v), want b", who, err)
	}
	a.proc.Stop()
	untouched()
	s, err := b.status()
	if err != nil {
		t.Fatal(err)
	}
	if bad := badPackets(s); len(bad) > 0 {
		t.Fatalf("b dropped packets between two redisha-vip: %v", bad)
	}
	if s.AdvertsReceived == 0 || s.AdvertsSent == 0 {
		t.Fatalf("counters: %+v", s)
	}
	b.proc.Stop()
	if vb.has(vipIP) {
		t.Fatal("b kept the VIP after SIGTERM")
	}
}

func macEqual(a, b net.HardwareAddr) bool { return a != nil && a.String() == b.String() }

func readFile(t testing.TB, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestStatusCommand checks `redisha-vip status` against a live instance.
func TestStatusCommand(t *testing.T) {
	needNetns(t)
	topo := testenv.NewTopology(t, prefix, subnet, "a")
	ha := topo.Host("a")
	n := startVIP(t, ha, newView(t, ha.Netns), vipConfig(ha, 3, 255, "100ms"))
	waitFor(t, "owner to be master", 3*time.Second, func() bool { return n.view.has(vipIP) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := ha.Run(ctx, vipBinary(t), "status", "-c", n.cfg)
	if err != nil {
		t.Fatalf("status: %v: %s", err, out)
	}
	for _, want := range []string{"a: MASTER (priority 255", "VRRPv3", "held here: [" + vipIP.String() + "]"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("status output lacks %q:\n%s", want, out)
		}
	}
	resp, err := http.Get(fmt.Sprintf("http://%s:%d/metrics", ha.IP, statusPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`redisha_vip_state{instance_name="a",state="MASTER"} 1`, "redisha_vip_adverts_sent_total",
		`redisha_vip_bad_packets_total{instance_name="a",reason="checksum"} 0`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("metrics lack %q", want)
		}
	}
}
