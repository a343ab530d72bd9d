package forward

import (
	"strings"
	"testing"
)

// The durable mode's per-request cost without I/O: one read of a client's
// 16-request pipeline through Up, and one read of the 16 replies (plus
// WAIT's reply for a write batch) through Down, as redis-benchmark -P 16
// sends them.
func benchDurable(b *testing.B, cmd []string, reply, waitReply string) {
	d := NewDurable(DurableConfig{Commands: testTable(b)})
	up := []byte(strings.Repeat(req(cmd...), 16))
	down := []byte(strings.Repeat(reply, 16) + waitReply)
	b.SetBytes(int64(len(up) + len(down)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Up(up); err != nil {
			b.Fatal(err)
		}
		out, err := d.Down(down)
		if err != nil || len(out) == 0 {
			b.Fatal(err, len(out))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*16), "ns/req")
}

func BenchmarkDurableGetP16(b *testing.B) {
	benchDurable(b, []string{"GET", "key:__rand_int__"}, "$3\r\nxxx\r\n", "")
}

func BenchmarkDurableSetP16(b *testing.B) {
	benchDurable(b, []string{"SET", "key:__rand_int__", "xxx"}, "+OK\r\n", ":1\r\n")
}

// The durable mode allocates nothing per request once a connection's
// buffers have grown: mixed pipelines of reads and writes, held replies.
func TestDurableDoesNotAllocate(t *testing.T) {
	d := NewDurable(DurableConfig{Commands: testTable(t)})
	up := []byte(req("GET", "a") + req("SET", "a", "b") + req("get", "b") + req("INCR", "c") + req("CONFIG", "GET", "x") + req("PING"))
	down := []byte("$1\r\nb\r\n+OK\r\n$-1\r\n:1\r\n*0\r\n+PONG\r\n:1\r\n")
	run := func() {
		if _, err := d.Up(up); err != nil {
			t.Fatal(err)
		}
		// The replies in two reads: the held ones span them.
		if _, err := d.Down(down[:12]); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Down(down[12:]); err != nil {
			t.Fatal(err)
		}
	}
	run()
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("%v allocations per batch", n)
	}
}
