package daemon_test

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/redisha/redisha/components/testenv"
)

// The watch track against the real redisha-proxy: each node runs a
// redis-server, a redisha-proxy routing to it with watch_listen on, and a
// redisha-vip whose watch track holds a connection to that proxy, as the
// redisha stack ships them (scenarios/stacks/redisha).

var (
	proxyBinOnce sync.Once
	proxyBinPath string
	proxyBinErr  error
)

// proxyBinary builds cmd/redisha-proxy once per test binary.
func proxyBinary(t testing.TB) string {
	t.Helper()
	proxyBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rhv-proxy-bin")
		if err != nil {
			proxyBinErr = err
			return
		}
		proxyBinPath = filepath.Join(dir, "redisha-proxy")
		out, err := exec.Command("go", "build", "-o", proxyBinPath, "github.com/redisha/redisha/cmd/redisha-proxy").CombinedOutput()
		if err != nil {
			proxyBinErr = fmt.Errorf("go build redisha-proxy: %v: %s", err, out)
		}
	})
	if proxyBinErr != nil {
		t.Fatal(proxyBinErr)
	}
	return proxyBinPath
}

const (
	watchPort      = 7070 // the proxy's watch_listen
	proxyPort      = 6380 // the proxy's client listener (0.0.0.0: the VIP too)
	proxyAdminPort = 9740
	redisPort      = 6379
)

// stopNotice is the proxy's limits.stop_notice in these tests: after
// SIGTERM it says "stopping" to its watchers and keeps serving this long,
// so only the line, not the process's exit, can move the VIP in time.
const stopNotice = 2 * time.Second

// startProxy starts a redis-server and a redisha-proxy routing to it in h's
// namespace, and waits until a PING through the proxy is answered by
// redis (alive, accepting, routing).
func startProxy(t testing.TB, h *testenv.Host) *testenv.Process {
	t.Helper()
	testenv.StartRedis(t, testenv.RedisOptions{Host: h.IP.String(), Port: redisPort, Netns: h.Netns})
	dir := t.TempDir()
	cfg := fmt.Sprintf(`listen: 0.0.0.0:%d
read_only_listen: ""
admin: %s:%d
watch_listen: %s:%d
backends: [%s:%d]
check: {interval: 100ms}
limits: {stop_notice: %s}
log: {level: debug, format: text}
`, proxyPort, h.IP, proxyAdminPort, h.IP, watchPort, h.IP, redisPort, stopNotice)
	path := filepath.Join(dir, "proxy.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return testenv.StartProcess(t, testenv.ProcessSpec{Name: "redisha-proxy-" + h.Name, Dir: dir, Netns: h.Netns,
		Host: h.IP.String(), Port: proxyPort, Argv: []string{proxyBinary(t), "run", "-c", path}})
}

// signalAt sends sig to p and returns when it did, on the clock the
// kernel stamps packets with (CLOCK_REALTIME; time.Time.Sub against a
// kernel timestamp, which has no monotonic reading, uses the wall clock).
func signalAt(t testing.TB, p *testenv.Process, sig syscall.Signal) time.Time {
	t.Helper()
	pid := p.Pid()
	at := time.Now()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("%s: kill %d %v: %v", p.Name, pid, sig, err)
	}
	return at
}

// tcpCapture records TCP packets from one port on a namespace's loopback
// (where the namespace's traffic to its own address goes), with kernel
// timestamps: the watched proxy's FIN or RST (the kernel closes a dead
// process's sockets) or data (the "stopping" line).
type tcpCapture struct {
	fd   int
	port uint16
	mu   sync.Mutex
	seen []tcpSeen
	stop chan struct{}
	done chan struct{}
}

type tcpSeen struct {
	At    time.Time
	Flags byte // TCP flags
	Data  int  // payload bytes
}

// captureTCP records TCP packets from port on h's loopback.
func captureTCP(t testing.TB, h *testenv.Host, port uint16) *tcpCapture {
	t.Helper()
	c := &tcpCapture{fd: openPacketSocket(t, h, "lo"), port: port, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf, oob := make([]byte, 2048), make([]byte, 256)
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			n, at, _, err := recvStamped(c.fd, buf, oob)
			if err != nil || n < 20 || buf[0]>>4 != 4 || buf[9] != unix.IPPROTO_TCP {
				continue
			}
			ihl := int(buf[0]&0x0f) * 4
			total := int(binary.BigEndian.Uint16(buf[2:]))
			if n < ihl+20 || total > n {
				continue
			}
			tcp := buf[ihl:total]
			if binary.BigEndian.Uint16(tcp[0:]) != c.port {
				continue
			}
			doff := int(tcp[12]>>4) * 4
			c.mu.Lock()
			c.seen = append(c.seen, tcpSeen{At: at, Flags: tcp[13], Data: len(tcp) - doff})
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(c.stop); <-c.done; unix.Close(c.fd) })
	return c
}

func (c *tcpCapture) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

const (
	tcpFIN = 0x01
	tcpRST = 0x04
)

// end waits for the first FIN, RST or data packet after mark and returns
// its kernel time.
func (c *tcpCapture) end(t testing.TB, mark int) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, "the watched proxy's FIN, RST or stopping line", 5*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, s := range c.seen[mark:] {
			if s.Flags&(tcpFIN|tcpRST) != 0 || s.Data > 0 {
				at = s.At
				return true
			}
		}
		return false
	})
	return at
}

// firstAdvert waits for newSrc's first advert (priority > 0) after mark.
func (c *vrrpCapture) firstAdvert(t testing.TB, mark int, newSrc netip.Addr) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, fmt.Sprintf("first advert of %v as master", newSrc), 10*time.Second, func() bool {
		for _, a := range c.adverts()[mark:] {
			if a.Src == newSrc && a.Priority > 0 {
				at = a.At
				return true
			}
		}
		return false
	})
	return at
}

// settledOn reports whether master has advertised at least twice since
// backup's last advert, as this capture saw them: a master that just
// yielded sends one last advert, which must not be taken for the first
// advert of a takeover the test is about to cause.
func (c *vrrpCapture) settledOn(master, backup netip.Addr) bool {
	all, n := c.adverts(), 0
	for i := len(all) - 1; i >= 0 && all[i].Src != backup; i-- {
		if all[i].Src == master && all[i].Priority > 0 {
			n++
		}
	}
	return n >= 2
}

// gapMonitor records the longest time neither view held the VIP, counting
// only time known to be uncovered (as overlapMonitor does for shared time).
type gapMonitor struct {
	mu      sync.Mutex
	max     time.Duration
	stop    chan struct{}
	stopped chan struct{}
}

func monitorGap(a, b *nsView) *gapMonitor {
	m := &gapMonitor{stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(m.stopped)
		var since time.Time
		for {
			select {
			case <-m.stop:
				return
			case <-time.After(time.Millisecond):
			}
			start := time.Now()
			none := !a.has(vipIP) && !b.has(vipIP)
			end := time.Now()
			if none {
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

func (m *gapMonitor) Max() time.Duration {
	close(m.stop)
	<-m.stopped
	return m.max
}

// addrEvent is the VIP added to or removed from a node, as the node's
// netlink address notifications reported it: At is when the test read the
// notification, so never before the change itself.
type addrEvent struct {
	At   time.Time
	Node string
	Add  bool
}

// addrLog follows the VIP on several namespaces continuously, from every
// RTM_NEWADDR/RTM_DELADDR the kernel multicasts there (none is missed
// silently: a lost notification is a receive error, and fails the test).
type addrLog struct {
	mu     sync.Mutex
	events []addrEvent
	errs   []error
}

func followVIP(t testing.TB, hosts ...*testenv.Host) *addrLog {
	t.Helper()
	l := &addrLog{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, h := range hosts {
		ns, err := netns.GetFromName(h.Netns)
		if err != nil {
			t.Fatal(err)
		}
		ch := make(chan netlink.AddrUpdate, 1024)
		name := h.Name
		err = netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
			Namespace: &ns, ListExisting: true, ReceiveBufferSize: 1 << 20,
			ErrorCallback: func(err error) {
				select {
				case <-done: // the subscription's socket closed at the end
				default:
					l.mu.Lock()
					l.errs = append(l.errs, fmt.Errorf("%s: %w", name, err))
					l.mu.Unlock()
				}
			}})
		ns.Close()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range ch {
				at := time.Now()
				if a, ok := netip.AddrFromSlice(u.LinkAddress.IP); ok && a.Unmap() == vipIP {
					l.mu.Lock()
					l.events = append(l.events, addrEvent{At: at, Node: name, Add: u.NewAddr})
					l.mu.Unlock()
				}
			}
		}()
	}
	t.Cleanup(func() {
		close(done)
		wg.Wait()
		if errs := l.errors(); len(errs) > 0 {
			t.Errorf("following the VIP's addresses over netlink: %v", errs)
		}
	})
	return l
}

func (l *addrLog) errors() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func (l *addrLog) snapshot() []addrEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]addrEvent(nil), l.events...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// firstAdd waits for node's first VIP addition after since.
func (l *addrLog) firstAdd(t testing.TB, node string, since time.Time) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, "the VIP's netlink notification on "+node, 5*time.Second, func() bool {
		for _, e := range l.snapshot() {
			if e.Node == node && e.Add && e.At.After(since) {
				at = e.At
				return true
			}
		}
		return false
	})
	return at
}

// changes counts the VIP's additions and removals between from and to.
func (l *addrLog) changes(from, to time.Time) []addrEvent {
	var out []addrEvent
	for _, e := range l.snapshot() {
		if e.At.After(from) && !e.At.After(to) {
			out = append(out, e)
		}
	}
	return out
}

// coverage replays the notifications and returns, within [from, to], the
// longest stretch with no holder and the longest with two or more.
func (l *addrLog) coverage(from, to time.Time) (gap, overlap time.Duration) {
	held := map[string]bool{}
	var since time.Time  // start of the current no-holder or shared stretch
	kind := func() int { // 0 none, 1 one, 2 several
		n := 0
		for _, h := range held {
			if h {
				n++
			}
		}
		return min(n, 2)
	}
	finish := func(k int, at time.Time) {
		if since.IsZero() || k == 1 {
			return
		}
		d := at.Sub(later(since, from))
		if at.After(from) && d > 0 {
			if k == 0 {
				gap = max(gap, d)
			} else {
				overlap = max(overlap, d)
			}
		}
	}
	for _, e := range l.snapshot() {
		if e.At.After(to) {
			break
		}
		before := kind()
		held[e.Node] = e.Add
		if after := kind(); after != before {
			finish(before, e.At)
			since = e.At
		}
	}
	finish(kind(), to)
	return gap, overlap
}

// watchConfig is vipConfig with the redisha stack's track on the node's
// own proxy (scenarios/stacks/redisha/vip.yaml.tmpl: a watch every 100 ms,
// 1 s timeout, fault: true).
func watchConfig(h *testenv.Host, prio int, preempt bool) string {
	return vipConfig(h, 3, prio, watchInterval.String()) + fmt.Sprintf(`preempt: %v
track:
  - {name: proxy, watch: "%s:%d", interval: 100ms, timeout: 1s, fault: true}
`, preempt, h.IP, watchPort)
}

// watchInterval is the advert interval docs/vip.md proposes for the
// redisha stack.
const watchInterval = 200 * time.Millisecond

// TestWatchMovesVIP: on nodes a (redisha-vip priority 200) and b (100),
// each with a redis-server, a real redisha-proxy routing to it, and a
// redisha-vip watching that proxy (fault: true), VRRPv3 at 200 ms.
// SIGKILL of a's redisha-proxy moves the VIP to b within 0.5 s; SIGTERM of
// the current master's proxy (it says "stopping" and keeps serving for
// stop_notice) within 0.3 s. Both bounds run from the moment the test
// sends the signal to the new master's first advert on its wire (kernel
// timestamp) and to the VIP's netlink notification on the new master (read
// by the test, so never early); from the proxy's FIN or "stopping" line on
// the master's loopback (kernel timestamp) as well. Restoring a's proxy
// does not move the VIP back without preemption (no address change at
// all); with preemption it does, with no stretch without a holder longer
// than 0.5 s and none with two holders longer than the new master's
// reaction, both replayed from every netlink address notification of the
// two namespaces (and the gap also by polling).
func TestWatchMovesVIP(t *testing.T) {
	needNetns(t)
	testenv.RequireBinary(t, "redis-server")
	for _, preempt := range []bool{true, false} {
		t.Run("preempt="+strconv.FormatBool(preempt), func(t *testing.T) { watchMovesVIP(t, preempt) })
	}
}

func watchMovesVIP(t *testing.T, preempt bool) {
	const killBound, termBound = 500 * time.Millisecond, 300 * time.Millisecond
	topo := testenv.NewTopology(t, prefix, subnet, "a", "b")
	ha, hb := topo.Host("a"), topo.Host("b")
	va, vb := newView(t, ha.Netns), newView(t, hb.Netns)
	capA, capB := captureVRRP(t, ha), captureVRRP(t, hb)
	loA, loB := captureTCP(t, ha, watchPort), captureTCP(t, hb, watchPort)
	vips := followVIP(t, ha, hb)
	pa, pb := startProxy(t, ha), startProxy(t, hb)
	b := startVIP(t, hb, vb, watchConfig(hb, 100, preempt))
	waitFor(t, "b master", 5*time.Second, func() bool { return vb.has(vipIP) })
	a := startVIP(t, ha, va, watchConfig(ha, 200, preempt))
	if preempt {
		waitFor(t, "a to preempt b", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	} else {
		// Without preemption a stays backup beside b: stop b once so a
		// becomes master, the starting point of both cases.
		time.Sleep(time.Second)
		if va.has(vipIP) || a.state(t) != "BACKUP" {
			t.Fatalf("nopreempt: a took the VIP from b (a %s)", a.state(t))
		}
		b.proc.Stop()
		waitFor(t, "a master", 5*time.Second, func() bool { return va.has(vipIP) })
		b.proc.Start()
		waitFor(t, "b back as backup", 5*time.Second, func() bool { s, err := b.status(); return err == nil && s.State == "BACKUP" })
	}

	// SIGKILL of a's proxy: the kernel closes the watch connection, a
	// faults at once and sends priority 0.
	waitFor(t, "b to hear a as master", 5*time.Second, func() bool { return capB.settledOn(ha.IP, hb.IP) })
	mark, markLo := capB.mark(), loA.mark()
	killed := signalAt(t, pa, syscall.SIGKILL)
	seen := waitFor(t, "b to take the VIP after a's proxy was killed", 5*time.Second, func() bool { return vb.has(vipIP) && !va.has(vipIP) })
	advert := capB.firstAdvert(t, mark, hb.IP)
	added := vips.firstAdd(t, "b", killed)
	died := loA.end(t, markLo)
	t.Logf("redisha-proxy SIGKILL on the master: signal -> b's first advert %v, -> VIP added on b %v (bound %v); its FIN -> b's first advert %v; signal -> FIN %v; SIGKILL -> VIP on b seen by polling %v",
		advert.Sub(killed), added.Sub(killed), killBound, advert.Sub(died), died.Sub(killed), seen.Sub(killed))
	if d := advert.Sub(killed); d > killBound {
		t.Errorf("b's first advert as master %v after SIGKILL of the master's proxy, want <= %v", d, killBound)
	}
	if d := added.Sub(killed); d > killBound {
		t.Errorf("VIP added on b %v after SIGKILL of the master's proxy, want <= %v", d, killBound)
	}
	if d := advert.Sub(died); d > killBound {
		t.Errorf("VIP moved %v after the proxy's watch connection closed, want <= %v", d, killBound)
	}
	if s, _ := a.status(); s.State != "FAULT" {
		t.Fatalf("a with its proxy dead: %s, want FAULT", s.State)
	}
	waitFor(t, "a's killed proxy to be reaped", 5*time.Second, func() bool { return !pa.Running() })

	// Restore a's proxy: a comes back as backup; preemption decides.
	gap, probe := monitorGap(va, vb), startSchedProbe()
	restored := time.Now()
	pa.Start()
	pa.WaitReady(15 * time.Second)
	waitFor(t, "a back from FAULT", 5*time.Second, func() bool { s, err := a.status(); return err == nil && s.State != "FAULT" })
	master, masterLo, masterProxy, backup, backupCap, backupView := a, loA, pa, b, capB, vb
	if preempt {
		waitFor(t, "a to take the VIP back (preemption)", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	} else {
		time.Sleep(3 * watchInterval * 2) // two Master_Down_Intervals
		if va.has(vipIP) || !vb.has(vipIP) || a.state(t) != "BACKUP" {
			t.Fatalf("nopreempt: the VIP moved back to a when its proxy returned (a %s)", a.state(t))
		}
		master, masterLo, masterProxy, backup, backupCap, backupView = b, loB, pb, a, capA, va
	}
	g := gap.Max()
	// The notifications may be read a little after the polls saw the
	// change: the replay covers until both of the handback's arrived.
	var settled time.Time
	if preempt {
		settled = waitFor(t, "the handback's netlink notifications (added on a, removed from b)", 5*time.Second, func() bool {
			var addA, delB bool
			for _, e := range vips.changes(restored, time.Now()) {
				addA = addA || e.Node == "a" && e.Add
				delB = delB || e.Node == "b" && !e.Add
			}
			return addA && delB
		})
	} else {
		time.Sleep(50 * time.Millisecond)
		settled = time.Now()
		if ch := vips.changes(restored, settled); len(ch) > 0 {
			t.Fatalf("nopreempt: the VIP changed hands while a's proxy returned: %+v", ch)
		}
	}
	eg, eo := vips.coverage(restored, settled)
	t.Logf("restoring a's proxy (preempt=%v): longest time without a VIP holder %v (polled), %v (netlink notifications); with two holders %v",
		preempt, g, eg, eo)
	if g > killBound || eg > killBound {
		t.Errorf("restoring the proxy left the VIP without a holder for %v polled, %v by notifications, want <= %v", g, eg, killBound)
	}
	// Two holders: the new master advertises, then adds the VIP; the old
	// one removes it when that advert arrives. Only its reaction may
	// overlap: 20 ms, plus the scheduler stalls seen meanwhile up to half
	// an advert interval.
	lag := probe.lagIn(stall{restored, settled})
	if tol := min(20*time.Millisecond+lag, watchInterval/2); eo > tol {
		t.Errorf("restoring the proxy: two VIP holders for %v, want <= %v (20ms + stalls %v, capped at %v)", eo, tol, lag, watchInterval/2)
	}

	// SIGTERM of the master's proxy: "stopping" while it keeps serving.
	waitFor(t, "the backup to hear the master", 5*time.Second, func() bool { return backupCap.settledOn(master.host.IP, backup.host.IP) })
	mark, markLo = backupCap.mark(), masterLo.mark()
	termed := signalAt(t, masterProxy, syscall.SIGTERM)
	seen = waitFor(t, "the backup to take the VIP after the master's proxy said stopping", 5*time.Second,
		func() bool { return backupView.has(vipIP) })
	advert = backupCap.firstAdvert(t, mark, backup.host.IP)
	added = vips.firstAdd(t, backup.host.Name, termed)
	said := masterLo.end(t, markLo)
	t.Logf("redisha-proxy SIGTERM on the master: signal -> %s's first advert %v, -> VIP added there %v (bound %v); its stopping line -> first advert %v; signal -> stopping line %v; SIGTERM -> VIP seen by polling %v",
		backup.host.Name, advert.Sub(termed), added.Sub(termed), termBound, advert.Sub(said), said.Sub(termed), seen.Sub(termed))
	if d := advert.Sub(termed); d > termBound {
		t.Errorf("%s's first advert as master %v after SIGTERM of the master's proxy, want <= %v", backup.host.Name, d, termBound)
	}
	if d := added.Sub(termed); d > termBound {
		t.Errorf("VIP added on %s %v after SIGTERM of the master's proxy, want <= %v", backup.host.Name, d, termBound)
	}
	if d := advert.Sub(said); d > termBound {
		t.Errorf("VIP moved %v after the proxy said stopping, want <= %v", d, termBound)
	}
	if !masterProxy.Running() {
		t.Fatal("the proxy exited before the VIP moved: the line did not do it")
	}
	if log := readFile(t, masterProxy.LogPath()); !strings.Contains(log, "signal: draining") {
		t.Fatalf("the proxy did not log its clean stop:\n%s", log)
	}
}
