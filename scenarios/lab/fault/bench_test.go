package fault

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// BenchmarkNodeLinkThroughput measures TCP throughput between two
// namespaces plain and through an NFQUEUE latency fault (1 ms each way), to
// see what holding packets in userspace costs. Run with
// go test -run XXX -bench NodeLink ./scenarios/lab/fault/
func BenchmarkNodeLinkThroughput(b *testing.B) {
	for _, delay := range []time.Duration{0, time.Millisecond, 20 * time.Millisecond} {
		b.Run("delay="+delay.String(), func(b *testing.B) {
			benchThroughput(b, delay)
		})
	}
}

func benchThroughput(b *testing.B, delay time.Duration) {
	tp := newTopology(b, "src", "dst")
	src, dst := tp.nodes["src"], tp.nodes["dst"]
	var ln net.Listener
	if err := inNetns(dst.NetnsPath(), func() (err error) {
		ln, err = net.Listen("tcp", dst.Addr().String()+":7000")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	ctx := context.Background()
	inj := NewInjector(nil)
	if delay > 0 {
		if _, err := inj.Apply(ctx, Spec{Kind: Latency, A: []string{"src"}, B: []string{"dst"}, Delay: delay}, src, dst); err != nil {
			b.Fatal(err)
		}
		defer inj.UndoAll(ctx)
	}
	c, err := src.dial(dst.Addr().String()+":7000", 2*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for range b.N {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNodeLinkDelay reports the PING round-trip time added by a
// one-way latency fault, to check the delay's accuracy (metric added-ms).
func BenchmarkNodeLinkDelay(b *testing.B) {
	tp := newTopology(b, "sentinel", "redis1")
	s, r := tp.nodes["sentinel"], tp.nodes["redis1"]
	base := medianRTT(b, s, r, 50)
	for _, delay := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond} {
		b.Run("delay="+delay.String(), func(b *testing.B) {
			ctx := context.Background()
			inj := NewInjector(nil)
			if _, err := inj.Apply(ctx, Spec{Kind: Latency, A: []string{"sentinel"}, B: []string{"redis1"}, OneWay: true, Delay: delay}, s, r); err != nil {
				b.Fatal(err)
			}
			defer inj.UndoAll(ctx)
			var added time.Duration
			for range b.N {
				added = medianRTT(b, s, r, 9) - base
			}
			b.ReportMetric(float64(added)/1e6, "added-ms")
			b.ReportMetric(float64(base)/1e6, "base-ms")
		})
	}
}
