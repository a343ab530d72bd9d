package daemon

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
)

const fuzzPass = "pre-auth-fuzz-secret-0b3f9a"

// readAll reads what the witness sends until it closes the connection (or
// the deadline passes: then closed is false).
func readAll(c net.Conn, d time.Duration) (out string, closed bool) {
	c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	// A close with our unread bytes in the server's buffer, or a byte we
	// send after it, comes back as a reset rather than EOF: closed too.
	return string(b), err == nil || errors.Is(err, syscall.ECONNRESET)
}

// TestPreAuthLimits: before AUTH a request may have at most 10 arguments of
// at most 16 KiB (Redis's own limits); the witness says so and closes at the
// header, before the payload. After AUTH the sane limits apply.
func TestPreAuthLimits(t *testing.T) {
	s := startTest(t, func(o *Options) { o.RequirePass = fuzzPass })
	addr := net.JoinHostPort("127.0.0.1", itoa(s.Port()))
	for _, in := range []string{"*11\r\n", "*1\r\n$16385\r\n", "*16000000\r\n", "*1\r\n$536870000\r\n", "*2\r\n*10\r\n"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte(in))
		out, closed := readAll(c, 3*time.Second)
		c.Close()
		if !closed || !strings.HasPrefix(out, "-ERR Protocol error") {
			t.Errorf("%q before AUTH: got %q, closed %v", in, out, closed)
		}
	}
	rc := dial(t, s)
	if v := rc.do("AUTH", fuzzPass); v.Str != "OK" {
		t.Fatalf("AUTH: %+v", v)
	}
	args := []string{"SUBSCRIBE"}
	for i := 0; i < 20; i++ {
		args = append(args, "ch"+itoa(i))
	}
	rc.send(args...)
	for i := 0; i < 20; i++ {
		if v := rc.read(); v.Kind != resp.Array {
			t.Fatalf("SUBSCRIBE with 20 channels after AUTH: %+v", v)
		}
	}
}

// TestAuthTimeoutAndRoomForPeers: an unauthenticated connection is closed
// at its auth deadline however it trickles; with maxclients full of them a
// newcomer takes the oldest one's place and can authenticate, while
// authenticated clients are never evicted.
func TestAuthTimeoutAndRoomForPeers(t *testing.T) {
	s := startTest(t, func(o *Options) {
		o.RequirePass = fuzzPass
		o.MaxClients = 3
		o.AuthTimeout = 300 * time.Millisecond
	})
	addr := net.JoinHostPort("127.0.0.1", itoa(s.Port()))
	// A trickling client: one byte every 50 ms.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	go func() {
		for _, b := range []byte("*2\r\n$4\r\nAUTH\r\n$100\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if _, closed := readAll(c, 3*time.Second); !closed {
		t.Fatal("trickling unauthenticated client not closed")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed after %v (auth timeout 300ms)", d)
	}
	// An authenticated client, then maxclients unauthenticated idlers.
	authed := dial(t, s)
	if v := authed.do("AUTH", fuzzPass); v.Str != "OK" {
		t.Fatal(v)
	}
	s2 := startTest(t, func(o *Options) {
		o.RequirePass = fuzzPass
		o.MaxClients = 3
		o.AuthTimeout = time.Minute
	})
	var idle []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(s2.Port())))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
		waitFor(t, func() bool { return s2.nclients.Load() == int64(i+1) })
	}
	peer := dial(t, s2)
	if v := peer.do("AUTH", fuzzPass); v.Str != "OK" {
		t.Fatalf("a peer with maxclients idlers connected: %+v", v)
	}
	if v := peer.do("PING"); v.Str != "PONG" {
		t.Fatal(v)
	}
	if _, closed := readAll(idle[0], 2*time.Second); !closed {
		t.Fatal("the oldest idler was not evicted")
	}
	// Authenticated clients fill the table: a newcomer is refused.
	for i := 1; i < 3; i++ {
		idle[i].Close()
	}
	waitFor(t, func() bool { return s2.nclients.Load() == 1 })
	for i := 0; i < 2; i++ {
		if v := dial(t, s2).do("AUTH", fuzzPass); v.Str != "OK" {
			t.Fatal(v)
		}
	}
	late := dial(t, s2)
	if v := late.read(); !v.IsError() || !strings.Contains(v.Str, "max number of clients") {
		t.Fatalf("over maxclients with authenticated clients: %+v", v)
	}
	if v := peer.do("PING"); v.Str != "PONG" {
		t.Fatal("an authenticated client was evicted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var (
	preAuthOnce sync.Once
	preAuthSrv  *Server
	preAuthErr  error
)

// FuzzPreAuth sends arbitrary bytes as one client that has not
// authenticated (requirepass set). Nothing but an error may come back (or
// QUIT's +OK): no command runs before AUTH, the pre-auth limits close an
// oversized request at its header, and the witness keeps serving.
func FuzzPreAuth(f *testing.F) {
	for _, s := range []string{"PING\r\n", "*1\r\n$4\r\nPING\r\n", "*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n",
		"*11\r\n", "*1\r\n$16385\r\n", "*16000000\r\n$0\r\n\r\n$0\r\n\r\n", "*1\r\n$536870000\r\nxxxx",
		"*3\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n", "*1\r\n$4\r\nQUIT\r\n", "*2\r\n*1\r\n$1\r\nx\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		if strings.Contains(data, fuzzPass) {
			return
		}
		preAuthOnce.Do(func() {
			dir, err := os.MkdirTemp("", "witness-preauth")
			if err != nil {
				preAuthErr = err
				return
			}
			preAuthSrv, preAuthErr = Start(Options{
				Core: core.Config{Masters: []core.MasterConfig{{Name: "mymaster",
					Addr: core.Addr{IP: "127.0.0.1", Port: 16479}, Quorum: 2, DownAfter: time.Second}}},
				StatePath: filepath.Join(dir, "state.json"), RequirePass: fuzzPass, AuthTimeout: 2 * time.Second,
			})
		})
		if preAuthErr != nil {
			t.Fatal(preAuthErr)
		}
		addr := net.JoinHostPort("127.0.0.1", itoa(preAuthSrv.Port()))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write([]byte(data))
			c.(*net.TCPConn).CloseWrite()
		}()
		r := resp.NewReader(bufio.NewReader(c))
		for {
			v, err := r.ReadValue()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("reply to %q: %v", data, err)
			}
			if !v.IsError() && !(v.Kind == resp.SimpleString && v.Str == "OK") {
				t.Fatalf("an unauthenticated client got %+v for %q", v, data)
			}
		}
		pc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		rc := &rawClient{t: t, c: pc, r: resp.NewReader(bufio.NewReader(pc)), w: resp.NewWriter(pc)}
		if v := rc.do("AUTH", fuzzPass); v.Str != "OK" {
			t.Fatalf("witness stopped serving after %q: %+v", data, v)
		}
	})
}

// TestMetricsListenerMustBind: a metrics address that cannot be bound stops
// the start instead of a log line.
func TestMetricsListenerMustBind(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	o := testOptions(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := Run(ctx, o, busy.Addr().String()); err == nil || !strings.Contains(err.Error(), "metrics_listen") {
		t.Fatalf("Run with a busy metrics address: %v", err)
	}
}
