package daemon_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redisha/redisha/components/netns"
	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/components/vip/vrrp"
)

// Timing bounds in these tests are measured on the wire, not from the test
// process's clock. A takeover is the interval between two adverts as one
// namespace's eth0 saw them, stamped by the kernel (SO_TIMESTAMPNS on an
// AF_PACKET socket): the master's priority-0 advert (or its last advert)
// arriving, and the new master's first advert leaving. That is exactly
// what RFC 5798 times (Skew_Time, Master_Down_Interval from the last advert
// heard), and it excludes what the old measurement (SIGTERM sent by the test
// -> VIP seen by the test's netlink poll) added: the signal's delivery, the
// leaving master's wake-up, and two test-side wake-ups. Only the receiving
// router's own reaction remains (one wake-up for a timer, one for the
// packet): that is bounded by a tolerance taken from scheduling latency
// measured on this machine during the test (schedProbe), capped so that
// the protocol regressions each bound is there for stay detectable.

// advertSeen is one VRRP advert on a namespace's eth0.
type advertSeen struct {
	At       time.Time // kernel receive/transmit timestamp
	Src      netip.Addr
	Priority uint8
	Outgoing bool // sent by this namespace
	Auth     vrrp.Auth
	Payload  []byte // the VRRP message
}

// vrrpCapture records every VRRP advert on eth0 of one namespace (a
// SOCK_DGRAM packet socket: the link-layer header is stripped).
type vrrpCapture struct {
	fd   int
	mu   sync.Mutex
	seen []advertSeen
	stop chan struct{}
	done chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// captureVRRP starts capturing on h's eth0; it stops when the test ends.
func captureVRRP(t testing.TB, h *testenv.Host) *vrrpCapture {
	t.Helper()
	c := &vrrpCapture{stop: make(chan struct{}), done: make(chan struct{})}
	c.fd = openPacketSocket(t, h, "eth0")
	go c.loop()
	t.Cleanup(func() { close(c.stop); <-c.done; unix.Close(c.fd) })
	return c
}

// openPacketSocket opens a packet socket on ifname inside h's namespace
// that stamps every frame, in and out, with the kernel's time.
func openPacketSocket(t testing.TB, h *testenv.Host, ifname string) int {
	t.Helper()
	var fd int
	err := netns.Do(h.NsPath(), func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// ETH_P_ALL: the kernel hands outgoing packets only to taps of
		// every protocol; non-IP frames fail to decode and are skipped.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		steps := []error{
			unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}),
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1),
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000}),
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20),
		}
		if err := errors.Join(steps...); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("capture on %s %s: %v", h.Name, ifname, err)
	}
	return fd
}

// recvStamped reads one frame (link-layer header stripped) with its kernel
// timestamp and whether this namespace sent it; an error is the receive
// timeout or worse.
func recvStamped(fd int, buf, oob []byte) (n int, at time.Time, outgoing bool, err error) {
	n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
	if err != nil {
		return 0, time.Time{}, false, err
	}
	at = time.Now()
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				at = time.Unix(sec, nsec)
			}
		}
	}
	ll, _ := from.(*unix.SockaddrLinklayer)
	return n, at, ll != nil && ll.Pkttype == unix.PACKET_OUTGOING, nil
}

func (c *vrrpCapture) loop() {
	defer close(c.done)
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, at, outgoing, err := recvStamped(c.fd, buf, oob)
		if err != nil {
			continue // the receive timeout: look at stop again
		}
		p, err := vrrp.DecodeIPv4(buf[:n])
		if err != nil {
			continue // not VRRP
		}
		_, payload, _ := vrrp.ParseIPv4(buf[:n])
		s := advertSeen{At: at, Src: p.Src, Priority: p.Priority, Outgoing: outgoing,
			Auth: p.Auth, Payload: append([]byte(nil), payload...)}
		c.mu.Lock()
		c.seen = append(c.seen, s)
		c.mu.Unlock()
	}
}

// adverts returns what was captured so far.
func (c *vrrpCapture) adverts() []advertSeen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]advertSeen(nil), c.seen...)
}

// mark is the number of adverts captured so far, to look only at later ones.
func (c *vrrpCapture) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// handover finds the first advert the new master sent after mark (from
// newSrc, priority > 0) and the advert from oldSrc it answered: with
// leaving, the old master's priority-0 advert before it (which must exist);
// without, the old master's last advert before it. It returns the
// two kernel timestamps.
func (c *vrrpCapture) handover(t testing.TB, mark int, oldSrc, newSrc netip.Addr, leaving bool) handoverTimes {
	t.Helper()
	var first *advertSeen
	var all []advertSeen
	waitFor(t, fmt.Sprintf("captured first advert of %v as master", newSrc), 10*time.Second, func() bool {
		all = c.adverts()
		for i := mark; i < len(all); i++ {
			if all[i].Src == newSrc && all[i].Priority > 0 {
				first = &all[i]
				return true
			}
		}
		return false
	})
	// The old master's last advert may precede mark (it was sent before
	// the test killed it), so the search for it covers the whole capture.
	var from *advertSeen
	for i := range all {
		a := &all[i]
		if !a.At.Before(first.At) {
			break
		}
		if a.Src != oldSrc {
			continue
		}
		if !leaving || a.Priority == 0 {
			from = a
		}
	}
	if from == nil {
		what := "any advert"
		if leaving {
			what = "a priority-0 advert"
		}
		t.Fatalf("no capture of %s from %v before %v's first advert; captured: %v", what, oldSrc, newSrc, all[max(0, mark-3):])
	}
	return handoverTimes{from.At, first.At}
}

// handoverTimes are the kernel timestamps of the advert a new master
// answered and of its own first advert.
type handoverTimes struct{ from, to time.Time }

// schedProbe measures how late this machine wakes a sleeping thread up: a
// goroutine sleeps 1 ms in a loop and records every overshoot beyond 2 ms
// as a stall (when it started and ended). Started before a measured event
// and read after it, it says how long the machine kept a just-woken router
// (one wake-up for the packet, one for its timer) from running inside the
// interval being measured, so a bound can allow for load it did not cause
// and only for load that happened then.
type schedProbe struct {
	stop chan struct{}
	done chan []stall
}

type stall struct{ from, to time.Time }

func startSchedProbe() *schedProbe {
	p := &schedProbe{stop: make(chan struct{}), done: make(chan []stall, 1)}
	go func() {
		var stalls []stall
		for {
			select {
			case <-p.stop:
				p.done <- stalls
				return
			default:
			}
			t0 := time.Now()
			time.Sleep(time.Millisecond)
			if t1 := time.Now(); t1.Sub(t0) > 3*time.Millisecond {
				stalls = append(stalls, stall{t0.Add(time.Millisecond), t1})
			}
		}
	}()
	return p
}

// lagIn stops the probe and returns the stall time that overlapped w.
func (p *schedProbe) lagIn(w stall) time.Duration {
	close(p.stop)
	var sum time.Duration
	for _, s := range <-p.done {
		from, to := later(s.from, w.from), earlier(s.to, w.to)
		if to.After(from) {
			sum += to.Sub(from)
		}
	}
	return sum
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// reactionBound checks a handover measured on the wire took at least want
// (a router must not act early; 5 ms of slack for timer granularity) and at
// most want plus a tolerance: base (the router's own reaction on an idle
// machine) plus the stall time the probe saw inside the handover, capped at
// limit, the margin beyond which the bound would no longer tell correct
// behaviour from the regression it guards against. It logs the numbers.
func reactionBound(t testing.TB, what string, h handoverTimes, want, base, limit time.Duration, probe *schedProbe) {
	t.Helper()
	took := h.to.Sub(h.from)
	lag := probe.lagIn(stall{h.from, h.to})
	tol := min(base+lag, limit)
	t.Logf("%s: %v on the wire (protocol %v, tolerance %v: base %v + stalls %v, cap %v)", what, took, want, tol, base, lag, limit)
	if took < want-5*time.Millisecond {
		t.Errorf("%s: %v, earlier than the protocol's %v", what, took, want)
	}
	if took > want+tol {
		t.Errorf("%s: %v, want <= %v + %v (base %v + stalls %v, capped at %v)", what, took, want, tol, base, lag, limit)
	}
}
