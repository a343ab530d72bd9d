package daemon

import (
	"math/rand"
	"net"
	"strings"
	"testing"
	"time"
)

// garbageServer accepts connections and answers anything with random bytes.
func garbageServer(t *testing.T, seed int64) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		rng := rand.New(rand.NewSource(seed))
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			rng.Read(buf)
			go func(c net.Conn, b []byte) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				c.Write(b)
				c.Read(make([]byte, 1024))
				c.Write([]byte("*3\r\n$8\r\npmessage\r\n$99999999999\r\n-ERR\r\n:-1\r\n%-5\r\n"))
			}(c, buf)
		}
	}()
	return ln.Addr().String()
}

// TestGarbageNeverCrashes: backends and sentinels that answer garbage, and a
// client that sends garbage, leave the proxy running and routing correctly.
func TestGarbageNeverCrashes(t *testing.T) {
	a := startRedis(t)
	junkBackend := garbageServer(t, 1)
	junkSentinels := []string{garbageServer(t, 2), garbageServer(t, 3), garbageServer(t, 4)}
	p := startProxy(t, testConfig([]string{a.addr, junkBackend}, junkSentinels))
	time.Sleep(600 * time.Millisecond) // several check rounds against the junk
	s := p.Snapshot()
	if s.HaveMajority || s.Route.Master != "" {
		t.Fatalf("garbage sentinels produced a route: %+v", s)
	}
	for _, b := range s.Backends {
		if b.Addr == junkBackend && (b.OK || b.Err == "") {
			t.Fatalf("garbage backend looks healthy: %+v", b)
		}
	}
	if reply := rawCommand(t, p.Addr(), "PING"); !strings.HasPrefix(reply, "-ERR redisha-proxy") {
		t.Fatalf("got %q", reply)
	}

	// Now a real route, and a client sending garbage through it.
	p2 := startProxy(t, testConfig([]string{a.addr, junkBackend}, nil))
	waitRoute(t, p2, a.addr)
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < 20; i++ {
		conn, err := net.Dial("tcp", p2.Addr())
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 1+rng.Intn(8192))
		rng.Read(junk)
		conn.Write(junk)
		conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		conn.Read(make([]byte, 512))
		conn.Close()
	}
	if reply := rawCommand(t, p2.Addr(), "PING"); reply != "+PONG" {
		t.Fatalf("after client garbage: %q", reply)
	}
	if reply := rawCommand(t, p.Addr(), "PING"); !strings.HasPrefix(reply, "-ERR redisha-proxy") {
		t.Fatalf("first proxy after garbage: %q", reply)
	}
}
