package fault

import (
	"context"
	"net"
	"slices"
	"sort"
	"testing"
	"time"
)

func TestPartitionBothWaysAndHeal(t *testing.T) {
	tp := newTopology(t, "a", "b", "c")
	a, b, c := tp.nodes["a"], tp.nodes["b"], tp.nodes["c"]
	var events []Event
	inj := NewInjector(nil, WithEvents(func(e Event) { events = append(events, e) }))
	ctx := context.Background()

	if !reachable(a, b) || !reachable(b, a) {
		t.Fatal("a and b cannot talk before the partition")
	}
	h, err := inj.Apply(ctx, Spec{Kind: Partition, A: []string{"a"}, B: []string{"b"}}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	if reachable(a, b) || reachable(b, a) {
		t.Error("partition a|b still lets traffic through")
	}
	if !reachable(a, c) || !reachable(c, b) {
		t.Error("partition a|b cut c off too")
	}
	if !reachable(nil, a) || !reachable(nil, b) {
		t.Error("host-side observer lost a or b")
	}
	if err := h.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if !reachable(a, b) || !reachable(b, a) {
		t.Error("heal did not restore a<->b")
	}
	if len(events) != 2 || events[0].Action != Applied || events[1].Action != Undone ||
		events[0].ID != h.ID() || events[1].ID != h.ID() || events[1].Time.Before(events[0].Time) {
		t.Errorf("events = %+v, want apply then undo of fault %d", events, h.ID())
	}
	if err := h.Undo(ctx); err != nil || len(events) != 2 {
		t.Errorf("second undo: err %v, %d events; want no-op", err, len(events))
	}
}

// udpSent sends n datagrams from one node to another's listener and returns
// how many arrived.
func udpDelivered(t *testing.T, from, to *testNode, n int) int {
	t.Helper()
	var ln net.PacketConn
	if err := inNetns(to.NetnsPath(), func() (err error) {
		ln, err = net.ListenPacket("udp4", to.Addr().String()+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out net.Conn
	if err := inNetns(from.NetnsPath(), func() (err error) {
		out, err = net.Dial("udp4", ln.LocalAddr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for i := 0; i < n; i++ {
		out.Write([]byte{byte(i)})
	}
	got := 0
	buf := make([]byte, 16)
	for {
		ln.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := ln.ReadFrom(buf); err != nil {
			return got
		}
		got++
	}
}

func TestPartitionOneWay(t *testing.T) {
	tp := newTopology(t, "a", "b")
	a, b := tp.nodes["a"], tp.nodes["b"]
	inj := NewInjector(nil)
	ctx := context.Background()
	_, err := inj.Apply(ctx, Spec{Kind: Partition, A: []string{"a"}, B: []string{"b"}, OneWay: true}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	if got := udpDelivered(t, a, b, 10); got != 0 {
		t.Errorf("one-way a->b: %d of 10 datagrams a->b arrived, want 0", got)
	}
	if got := udpDelivered(t, b, a, 10); got != 10 {
		t.Errorf("one-way a->b: %d of 10 datagrams b->a arrived, want 10", got)
	}
	// The documented side effect: TCP needs both directions.
	if reachable(a, b) || reachable(b, a) {
		t.Error("one-way partition let a TCP connection through")
	}
	if err := inj.UndoAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := udpDelivered(t, a, b, 10); got != 10 {
		t.Errorf("after heal %d of 10 datagrams a->b arrived", got)
	}
}

func TestPartitionClientFromOneNodeObserverStillReaches(t *testing.T) {
	tp := newTopology(t, "client", "redis1", "redis2")
	client, r1, r2 := tp.nodes["client"], tp.nodes["redis1"], tp.nodes["redis2"]
	inj := NewInjector(nil, WithExempt(tp.observer()))
	ctx := context.Background()
	if _, err := inj.Apply(ctx, Spec{Kind: Partition, A: []string{"client"}, B: []string{"redis1"}}, tp.targets()...); err != nil {
		t.Fatal(err)
	}
	defer inj.UndoAll(ctx)
	if reachable(client, r1) {
		t.Error("client still reaches redis1")
	}
	if !reachable(client, r2) {
		t.Error("client lost redis2 too")
	}
	if !reachable(nil, r1) || !reachable(r2, r1) {
		t.Error("observer or redis2 lost redis1")
	}
	if err := inj.UndoAll(ctx); err != nil {
		t.Fatal(err)
	}
	if !reachable(client, r1) {
		t.Error("heal did not restore client->redis1")
	}
}

// medianRTT measures n PING round trips on one connection from -> to.
func medianRTT(t testing.TB, from, to *testNode, n int) time.Duration {
	t.Helper()
	c, err := from.dial(to.redisAddr(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rtts []time.Duration
	for i := 0; i < n; i++ {
		d, err := ping(c, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		rtts = append(rtts, d)
	}
	sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
	return rtts[n/2]
}

func TestLatencyBetweenNodesDelaysPing(t *testing.T) {
	tp := newTopology(t, "sentinel", "redis1")
	s, r := tp.nodes["sentinel"], tp.nodes["redis1"]
	inj := NewInjector(nil, WithSeed(7))
	ctx := context.Background()
	base := medianRTT(t, s, r, 20)
	const delay = 40 * time.Millisecond
	for _, tc := range []struct {
		oneWay bool
		want   time.Duration
	}{{false, 2 * delay}, {true, delay}} {
		h, err := inj.Apply(ctx, Spec{Kind: Latency, A: []string{"sentinel"}, B: []string{"redis1"}, OneWay: tc.oneWay, Delay: delay}, tp.targets()...)
		if err != nil {
			t.Fatal(err)
		}
		got := medianRTT(t, s, r, 10) - base
		t.Logf("one-way=%v: base RTT %v, added %v (want %v)", tc.oneWay, base, got, tc.want)
		if got < tc.want*6/10 || got > tc.want*14/10 {
			t.Errorf("one-way=%v: PING RTT grew by %v, want %v ±40%%", tc.oneWay, got, tc.want)
		}
		// The host-side observer is not in a peer set: not delayed.
		obs, err := net.Dial("tcp", r.redisAddr())
		if err != nil {
			t.Fatal(err)
		}
		if d, err := ping(obs, time.Second); err != nil || d > delay/2 {
			t.Errorf("observer PING during latency: %v, %v; want undelayed", d, err)
		}
		obs.Close()
		if err := h.Undo(ctx); err != nil {
			t.Fatal(err)
		}
		if after := medianRTT(t, s, r, 10); after > base+10*time.Millisecond {
			t.Errorf("after undo RTT %v, base %v", after, base)
		}
	}
}

func TestLossIsSeededAndUndone(t *testing.T) {
	tp := newTopology(t, "a", "b")
	a, b := tp.nodes["a"], tp.nodes["b"]
	ctx := context.Background()
	var counts []int
	for range 2 {
		inj := NewInjector(nil, WithSeed(42))
		h, err := inj.Apply(ctx, Spec{Kind: Loss, A: []string{"a"}, B: []string{"b"}, OneWay: true, Loss: 0.5}, tp.targets()...)
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, udpDelivered(t, a, b, 200))
		if err := h.Undo(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if counts[0] < 60 || counts[0] > 140 {
		t.Errorf("loss 0.5 delivered %d of 200", counts[0])
	}
	if counts[0] != counts[1] {
		t.Errorf("same seed delivered %d then %d datagrams", counts[0], counts[1])
	}
	if got := udpDelivered(t, a, b, 50); got != 50 {
		t.Errorf("after undo %d of 50 arrived", got)
	}
}

func TestNetworkSpecErrors(t *testing.T) {
	tp := newTopology(t, "a", "b")
	inj := NewInjector(nil, WithExempt(tp.nodes["b"].Addr()))
	ctx := context.Background()
	for _, s := range []Spec{
		{Kind: Partition, A: []string{"a"}},
		{Kind: Partition, A: []string{"a"}, B: []string{"nope"}},
		{Kind: Partition, A: []string{"a"}, B: []string{"a"}},
		{Kind: Partition, A: []string{"a"}, B: []string{"b"}}, // b is exempt
		{Kind: Latency, A: []string{"a"}, B: []string{"b"}},
		{Kind: Loss, A: []string{"a"}, B: []string{"b"}, Loss: 2},
		{Kind: "flood"},
	} {
		if h, err := inj.Apply(ctx, s, tp.targets()...); err == nil {
			h.Undo(ctx)
			t.Errorf("Apply(%v) succeeded, want an error", s)
		}
	}
	if n := len(inj.Active()); n != 0 {
		t.Errorf("%d faults active after failed applies", n)
	}
	if !slices.Contains(Kinds, Partition) {
		t.Error("Kinds misses partition")
	}
}

func TestHealRemovesOnlyItsOwnRules(t *testing.T) {
	tp := newTopology(t, "a", "b", "c")
	a, b, c := tp.nodes["a"], tp.nodes["b"], tp.nodes["c"]
	inj := NewInjector(nil)
	ctx := context.Background()
	h1, err := inj.Apply(ctx, Spec{Kind: Partition, A: []string{"a"}, B: []string{"b"}}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := inj.Apply(ctx, Spec{Kind: Partition, A: []string{"a"}, B: []string{"c"}}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if !reachable(a, b) {
		t.Error("a|b not healed")
	}
	if reachable(a, c) || reachable(c, a) {
		t.Error("healing a|b also healed a|c")
	}
	if err := h2.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if !reachable(a, c) {
		t.Error("a|c not healed")
	}
}
