package fault

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clientSetup is a client namespace with a ClientPath that forwards to the
// redis in the "vip" namespace, standing in for the VIP.
func clientSetup(t *testing.T) (*topology, *ClientPath, *Injector) {
	tp := newTopology(t, "client", "vip")
	cp, err := NewClientPath(ClientPathConfig{NetnsPath: tp.nodes["client"].NetnsPath(), Upstream: tp.nodes["vip"].redisAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	return tp, cp, NewInjector(nil, WithClientPath(cp), WithSeed(3))
}

func dialPath(t *testing.T, tp *topology, cp *ClientPath) net.Conn {
	t.Helper()
	c, err := tp.nodes["client"].dial(cp.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// command sends one inline command and returns the first reply line, or
// the body of a bulk reply.
func command(c net.Conn, timeout time.Duration, cmd string) (string, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "$") {
		return strings.TrimRight(line, "\r\n"), nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil {
		return "", err
	}
	buf := make([]byte, n+2)
	_, err = io.ReadFull(r, buf)
	return string(buf[:n]), err
}

func TestClientPathForwardsFromClientNamespace(t *testing.T) {
	tp, cp, inj := clientSetup(t)
	c := dialPath(t, tp, cp)
	if _, err := ping(c, time.Second); err != nil {
		t.Fatal(err)
	}
	obs, err := net.Dial("tcp", tp.nodes["vip"].redisAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	list, err := command(obs, time.Second, "CLIENT LIST")
	if err != nil {
		t.Fatal(err)
	}
	if want := "addr=" + tp.nodes["client"].Addr().String() + ":"; !strings.Contains(list, want) {
		t.Errorf("upstream connection does not come from the client namespace: %s", list)
	}
	// Partitions of the client apply to the path's upstream connections.
	ctx := context.Background()
	if _, err := inj.Apply(ctx, Spec{Kind: Partition, A: []string{"client"}, B: []string{"vip"}}, tp.targets()...); err != nil {
		t.Fatal(err)
	}
	if _, err := ping(c, 300*time.Millisecond); err == nil {
		t.Error("PING through the path crossed a client|vip partition")
	}
	if err := inj.UndoAll(ctx); err != nil {
		t.Fatal(err)
	}
	c2 := dialPath(t, tp, cp)
	if _, err := ping(c2, 2*time.Second); err != nil {
		t.Errorf("after heal: %v", err)
	}
	// Closed connections are let go on both sides.
	c.Close()
	c2.Close()
	deadline := time.Now().Add(5 * time.Second)
	for cp.open() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d proxied sockets still open after the clients closed", cp.open())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestClientLatencyAndJitter(t *testing.T) {
	tp, cp, inj := clientSetup(t)
	ctx := context.Background()
	c := dialPath(t, tp, cp)
	h, err := inj.Apply(ctx, Spec{Kind: ClientLatency, Delay: 100 * time.Millisecond}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	rtt, err := ping(c, 2*time.Second)
	if err != nil || rtt < 100*time.Millisecond || rtt > 180*time.Millisecond {
		t.Errorf("PING with client-latency 100ms: %v, %v", rtt, err)
	}
	// New connections get the toxic too.
	if rtt, err := ping(dialPath(t, tp, cp), 2*time.Second); err != nil || rtt < 100*time.Millisecond {
		t.Errorf("new connection with client-latency 100ms: %v, %v", rtt, err)
	}
	if err := h.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if rtt, err := ping(c, time.Second); err != nil || rtt > 30*time.Millisecond {
		t.Errorf("PING after undo: %v, %v", rtt, err)
	}

	h, err = inj.Apply(ctx, Spec{Kind: ClientJitter, Delay: 50 * time.Millisecond, Jitter: 40 * time.Millisecond, Stream: "both"}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := time.Hour, time.Duration(0)
	for range 12 {
		rtt, err := ping(c, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi = min(lo, rtt), max(hi, rtt)
	}
	t.Logf("client-jitter 50±40ms each way: RTT %v..%v", lo, hi)
	if lo < 20*time.Millisecond || hi > 500*time.Millisecond || hi-lo < 15*time.Millisecond {
		t.Errorf("jittered RTTs %v..%v, want at least 20ms and spread", lo, hi)
	}
	if err := h.Undo(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClientBandwidth(t *testing.T) {
	tp, cp, inj := clientSetup(t)
	ctx := context.Background()
	c := dialPath(t, tp, cp)
	if _, err := inj.Apply(ctx, Spec{Kind: ClientBandwidth, RateKBps: 64, Stream: "upstream"}, tp.targets()...); err != nil {
		t.Fatal(err)
	}
	value := strings.Repeat("x", 64*1024)
	start := time.Now()
	reply, err := command(c, 10*time.Second, "SET big "+value)
	took := time.Since(start)
	if err != nil || reply != "+OK" {
		t.Fatalf("SET through bandwidth cap: %q, %v", reply, err)
	}
	t.Logf("64 KiB at 64 KB/s took %v", took)
	if took < 700*time.Millisecond || took > 3*time.Second {
		t.Errorf("64 KiB at 64 KB/s took %v, want about 1s", took)
	}
	if err := inj.UndoAll(ctx); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if reply, err := command(c, 5*time.Second, "SET big "+value); err != nil || reply != "+OK" || time.Since(start) > 300*time.Millisecond {
		t.Errorf("after undo: %q, %v in %v", reply, err, time.Since(start))
	}
}

func TestClientTimeoutAndReset(t *testing.T) {
	tp, cp, inj := clientSetup(t)
	ctx := context.Background()

	c := dialPath(t, tp, cp)
	h, err := inj.Apply(ctx, Spec{Kind: ClientTimeout}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := ping(c, 300*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("PING under client-timeout: %v, want a timeout", err)
	}
	if err := h.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ping(dialPath(t, tp, cp), time.Second); err != nil {
		t.Errorf("new connection after client-timeout undo: %v", err)
	}

	c = dialPath(t, tp, cp)
	h, err = inj.Apply(ctx, Spec{Kind: ClientReset, Stream: "upstream"}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ping(c, 2*time.Second)
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("PING under client-reset: %v, want the connection reset", err)
	}
	if err := h.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ping(dialPath(t, tp, cp), time.Second); err != nil {
		t.Errorf("new connection after client-reset undo: %v", err)
	}
}

func TestClientSpecErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := NewInjector(nil).Apply(ctx, Spec{Kind: ClientLatency, Delay: time.Second}); err == nil {
		t.Error("client fault without a client path succeeded")
	}
	if _, err := NewClientPath(ClientPathConfig{}); err == nil {
		t.Error("client path without upstream succeeded")
	}
	cp, err := NewClientPath(ClientPathConfig{Upstream: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	inj := NewInjector(nil, WithClientPath(cp))
	for _, s := range []Spec{
		{Kind: ClientLatency},
		{Kind: ClientJitter, Delay: time.Millisecond, Jitter: time.Second},
		{Kind: ClientBandwidth},
		{Kind: ClientLatency, Delay: time.Second, Stream: "sideways"},
	} {
		if _, err := inj.Apply(ctx, s); err == nil {
			t.Errorf("Apply(%v) succeeded", s)
		}
	}
}
