package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/vip/config"
)

func TestRunCheck(t *testing.T) {
	healthy := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	self, _ := os.ReadFile("/proc/self/comm")
	dir := t.TempDir()
	flag := filepath.Join(dir, "up")
	base := config.Track{Name: "x", Timeout: config.Duration(2 * time.Second)}
	with := func(f func(*config.Track)) config.Track { c := base; f(&c); return c }
	for _, tc := range []struct {
		name  string
		track config.Track
		setup func()
		ok    bool
	}{
		{"http 200", with(func(c *config.Track) { c.HTTP = srv.URL }), func() { healthy = true }, true},
		{"http 503", with(func(c *config.Track) { c.HTTP = srv.URL }), func() { healthy = false }, false},
		{"http refused", with(func(c *config.Track) { c.HTTP = "http://127.0.0.1:1/" }), nil, false},
		{"process running", with(func(c *config.Track) { c.Process = strings.TrimSpace(string(self)) }), nil, true},
		{"process missing", with(func(c *config.Track) { c.Process = "no-such-process-rhv" }), nil, false},
		{"command ok", with(func(c *config.Track) { c.Command = []string{"test", "-e", flag} }), func() { os.WriteFile(flag, nil, 0o644) }, true},
		{"command fails", with(func(c *config.Track) { c.Command = []string{"test", "-e", flag} }), func() { os.Remove(flag) }, false},
		{"command timeout", with(func(c *config.Track) {
			c.Command = []string{"sleep", "5"}
			c.Timeout = config.Duration(50 * time.Millisecond)
		}), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			err := runCheck(context.Background(), tc.track)
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v err=%v", tc.ok, err)
			}
		})
	}
}

// next returns the next watch result, failing the test after a deadline.
func next(t *testing.T, out <-chan checkResult) checkResult {
	t.Helper()
	select {
	case r := <-out:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no watch result within 5s")
	}
	return checkResult{}
}

// TestWatchLoop: a watch passes when connected and fails at once when the
// server closes the connection, says "stopping" while keeping it open, or
// refuses; it reconnects after its interval; TCP and unix sockets alike.
func TestWatchLoop(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = filepath.Join(t.TempDir(), "w.sock")
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			watch := ln.Addr().String()
			if network == "unix" {
				watch = "unix:" + watch
			}
			conns := make(chan net.Conn, 4)
			serve := func(ln net.Listener, conns chan<- net.Conn) {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					conns <- c
				}
			}
			go serve(ln, conns)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make(chan checkResult)
			tr := config.Track{Name: "w", Watch: watch, Interval: config.Duration(20 * time.Millisecond),
				Timeout: config.Duration(time.Second)}
			go watchLoop(ctx, tr, out)

			if r := next(t, out); !r.ok {
				t.Fatalf("connected: %+v", r)
			}
			c := <-conns
			c.Close() // the server's process died: FIN
			if r := next(t, out); r.ok || !strings.Contains(r.err.Error(), "ended") {
				t.Fatalf("closed: %+v", r)
			}
			if r := next(t, out); !r.ok {
				t.Fatalf("reconnected: %+v", r)
			}
			c = <-conns
			fmt.Fprintf(c, "hello\n%s\n", WatchStopping) // a clean stop: still open, draining
			if r := next(t, out); r.ok || !strings.Contains(r.err.Error(), "stopping") {
				t.Fatalf("stopping: %+v", r)
			}
			ln.Close()
			c.Close()
			// Refused from now on (a reconnection accepted just before the
			// close may pass once and end at once): failures keep coming.
			go func() {
				for c := range conns {
					c.Close()
				}
			}()
			fails := 0
			for fails < 3 {
				if r := next(t, out); !r.ok {
					fails++
				}
			}
			if network == "unix" {
				os.Remove(addr)
			}
			ln2, err := net.Listen(network, strings.TrimPrefix(watch, "unix:"))
			if err != nil {
				t.Fatal(err)
			}
			defer ln2.Close()
			held := make(chan net.Conn, 1)
			go serve(ln2, held)
			deadline := time.Now().Add(5 * time.Second)
			for r := next(t, out); !r.ok; r = next(t, out) {
				if time.Now().After(deadline) {
					t.Fatal("no reconnection after the server came back")
				}
			}
		})
	}
}
