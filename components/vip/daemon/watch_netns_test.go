package daemon_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/components/vip/daemon"
)

// watchServerArg makes the test binary a watched server (TestMain): a
// stand-in for a proxy that offers redisha-vip's watch protocol.
const watchServerArg = "rhv-watch-server"

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == watchServerArg {
		drain, _ := time.ParseDuration(os.Args[3])
		os.Exit(watchServer(os.Args[2], drain))
	}
	os.Exit(m.Run())
}

// watchServer listens on addr and holds every connection open. On SIGTERM
// it does what docs/vip.md asks of a server stopping cleanly: it writes
// "stopping" on every watch connection, stops accepting, and keeps the
// connections open while it drains for drain (a proxy would finish its
// clients' requests), so only the line can move the VIP that fast.
func watchServer(addr string, drain time.Duration) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	fmt.Println("watch server listening on", addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	ln.Close()
	mu.Lock()
	for _, c := range conns {
		fmt.Fprintln(c, daemon.WatchStopping)
	}
	mu.Unlock()
	fmt.Println("stopping: told", len(conns), "watchers; draining for", drain)
	time.Sleep(drain)
	return 0
}

const watchPort = 7070

func startWatchServer(t testing.TB, h *testenv.Host, drain time.Duration) *testenv.Process {
	t.Helper()
	addr := netip.AddrPortFrom(h.IP, watchPort).String()
	p := testenv.StartProcess(t, testenv.ProcessSpec{Name: "watched-" + h.Name, Netns: h.Netns,
		Argv: []string{os.Args[0], watchServerArg, addr, drain.String()}})
	waitFor(t, "watch server on "+h.Name, 10*time.Second, func() bool {
		b, _ := os.ReadFile(p.LogPath())
		return len(b) > 0
	})
	return p
}

// tcpEnd is the kernel time of the first packet from port on h's loopback
// after the capture started that ends or announces the end of a
// connection: FIN or RST (a process dying closes its sockets in the
// kernel), or data (the "stopping" line).
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

// captureTCP records TCP packets from port on h's loopback (where the
// namespace's traffic to its own address goes).
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
	waitFor(t, "the watched server's FIN, RST or stopping line", 5*time.Second, func() bool {
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

// watchConfig is vipConfig with a fault-semantics watch track on the
// node's own watched server.
func watchConfig(h *testenv.Host, prio int, preempt bool) string {
	return vipConfig(h, 3, prio, watchInterval.String()) + fmt.Sprintf(`preempt: %v
track:
  - {name: proxy, watch: "%s:%d", fault: true}
`, preempt, h.IP, watchPort)
}

// watchInterval is the advert interval docs/vip.md proposes for the
// redisha stack.
const watchInterval = 200 * time.Millisecond

// TestWatchMovesVIP: redisha-vip on a (priority 200) and b (100), each
// with a watch track (fault: true) on its own node's watched server,
// VRRPv3 at 200 ms. SIGKILL of a's server moves the VIP to b within 0.5 s;
// SIGTERM of the current master's server (it says "stopping" and keeps
// draining) within 0.3 s. Restoring a's server does not move the VIP back
// without preemption; with preemption it does, with no moment without a
// holder longer than 0.5 s. Both bounds are measured from kernel
// timestamps: the server's FIN or "stopping" line on the master's loopback
// to the new master's first advert on its wire (it adds the VIP right
// after); the test's own wall-clock times are logged beside them.
func TestWatchMovesVIP(t *testing.T) {
	needNetns(t)
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
	wa := startWatchServer(t, ha, 2*time.Second)
	wb := startWatchServer(t, hb, 2*time.Second)
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

	// SIGKILL of a's watched server: a faults at once and sends priority 0.
	mark, markLo := capB.mark(), loA.mark()
	killed := time.Now()
	wa.Kill()
	seen := waitFor(t, "b to take the VIP after a's server was killed", 5*time.Second, func() bool { return vb.has(vipIP) && !va.has(vipIP) })
	died := loA.end(t, markLo)
	took := capB.firstAdvert(t, mark, hb.IP).Sub(died)
	t.Logf("watched server SIGKILL on the master: its FIN -> b's first advert %v on the wire (bound %v); SIGKILL -> VIP on b seen by the test %v",
		took, killBound, seen.Sub(killed))
	if took > killBound {
		t.Errorf("VIP moved %v after the watched server died, want <= %v", took, killBound)
	}
	if s, _ := a.status(); s.State != "FAULT" {
		t.Fatalf("a with its server dead: %s, want FAULT", s.State)
	}

	// Restore a's server: a comes back as backup; preemption decides.
	gap := monitorGap(va, vb)
	wa.Start()
	waitFor(t, "a back from FAULT", 5*time.Second, func() bool { s, err := a.status(); return err == nil && s.State != "FAULT" })
	masterLo, backup, backupCap, backupView, masterServer := loA, b, capB, vb, wa
	if preempt {
		waitFor(t, "a to take the VIP back (preemption)", 5*time.Second, func() bool { return va.has(vipIP) && !vb.has(vipIP) })
	} else {
		time.Sleep(3 * watchInterval * 2) // two Master_Down_Intervals
		if va.has(vipIP) || !vb.has(vipIP) || a.state(t) != "BACKUP" {
			t.Fatalf("nopreempt: the VIP moved back to a when its server returned (a %s)", a.state(t))
		}
		masterLo, backup, backupCap, backupView, masterServer = loB, a, capA, va, wb
	}
	g := gap.Max()
	t.Logf("restoring a's server (preempt=%v): longest time without a VIP holder %v", preempt, g)
	if g > killBound {
		t.Errorf("restoring the server left the VIP without a holder for %v, want <= %v", g, killBound)
	}

	// SIGTERM of the master's server: "stopping" while it drains.
	mark, markLo = backupCap.mark(), masterLo.mark()
	termed := time.Now()
	masterServer.Signal(syscall.SIGTERM)
	seen = waitFor(t, "the backup to take the VIP after the master's server said stopping", 5*time.Second,
		func() bool { return backupView.has(vipIP) })
	said := masterLo.end(t, markLo)
	took = backupCap.firstAdvert(t, mark, backup.host.IP).Sub(said)
	t.Logf("watched server SIGTERM on the master: its stopping line -> %s's first advert %v on the wire (bound %v); SIGTERM -> VIP seen by the test %v",
		backup.host.Name, took, termBound, seen.Sub(termed))
	if took > termBound {
		t.Errorf("VIP moved %v after the watched server said stopping, want <= %v", took, termBound)
	}
	if !masterServer.Running() {
		t.Fatal("the watched server exited before the VIP moved: the line did not do it")
	}
}
