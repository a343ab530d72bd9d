package fault

import (
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// vrrpGroup is VRRP's multicast group; the test sends IP protocol 112 there
// like keepalived does, to show network faults cover it although its
// destination is no peer's address.
var vrrpGroup = &net.IPAddr{IP: net.IPv4(224, 0, 0, 18)}

type vrrpSocket struct {
	pc *ipv4.PacketConn
}

func openVRRP(t testing.TB, n *testNode) *vrrpSocket {
	t.Helper()
	var pc *ipv4.PacketConn
	if err := inNetns(n.NetnsPath(), func() error {
		c, err := net.ListenPacket("ip4:112", "0.0.0.0")
		if err != nil {
			return err
		}
		pc = ipv4.NewPacketConn(c)
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if err := pc.JoinGroup(ifi, vrrpGroup); err != nil {
			return err
		}
		if err := pc.SetMulticastInterface(ifi); err != nil {
			return err
		}
		return pc.SetMulticastLoopback(false)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return &vrrpSocket{pc: pc}
}

// exchange sends one advertisement-sized packet from s to the group and
// returns how long until r saw it (0 if it never arrived).
func exchange(t testing.TB, s, r *vrrpSocket, from *testNode) time.Duration {
	t.Helper()
	payload := []byte{0x31, 51, 100, 1, 0, 100, 0, 0, 10, 81, 0, 100}
	start := time.Now()
	if _, err := s.pc.WriteTo(payload, nil, vrrpGroup); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	r.pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		n, _, src, err := r.pc.ReadFrom(buf)
		if err != nil {
			return 0
		}
		if src.(*net.IPAddr).IP.Equal(from.Addr().AsSlice()) && n >= len(payload) {
			return time.Since(start)
		}
	}
}

func TestVRRPMulticastPartitionedAndDelayed(t *testing.T) {
	tp := newTopology(t, "haproxy1", "haproxy2")
	h1, h2 := tp.nodes["haproxy1"], tp.nodes["haproxy2"]
	s1, s2 := openVRRP(t, h1), openVRRP(t, h2)
	if exchange(t, s1, s2, h1) == 0 {
		t.Fatal("VRRP multicast does not reach haproxy2 without a fault")
	}
	inj := NewInjector(nil)
	ctx := context.Background()
	h, err := inj.Apply(ctx, Spec{Kind: Partition, A: []string{"haproxy1"}, B: []string{"haproxy2"}}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	if exchange(t, s1, s2, h1) != 0 || exchange(t, s2, s1, h2) != 0 {
		t.Error("VRRP multicast crossed a partition")
	}
	h.Undo(ctx)
	const delay = 60 * time.Millisecond
	if _, err := inj.Apply(ctx, Spec{Kind: Latency, A: []string{"haproxy1"}, B: []string{"haproxy2"}, Delay: delay}, tp.targets()...); err != nil {
		t.Fatal(err)
	}
	got := exchange(t, s1, s2, h1)
	if got < delay || got > delay*14/10 {
		t.Errorf("VRRP multicast with latency %v arrived after %v", delay, got)
	}
	if err := inj.UndoAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := exchange(t, s1, s2, h1); got == 0 || got > 10*time.Millisecond {
		t.Errorf("after undo VRRP multicast took %v", got)
	}
}
