package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildBinary builds redisha-proxy once for the package's tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redisha-proxy-test")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "redisha-proxy")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func command(conn net.Conn, r *bufio.Reader, cmd string) string {
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(conn, "%s\r\n", cmd)
	line, _ := r.ReadString('\n')
	return strings.TrimSpace(line)
}

// TestBinarySignals runs the real binary: SIGHUP reloads without dropping a
// client, a bad file on SIGHUP is rejected, SIGTERM drains until the client leaves.
func TestBinarySignals(t *testing.T) {
	testenv.RequireBinary(t, "redis-server")
	dir := t.TempDir()
	bin := buildBinary(t)
	rport := testenv.FreePort(t)
	redis := exec.Command("redis-server", "--port", fmt.Sprint(rport), "--bind", "127.0.0.1", "--save", "")
	redis.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Process.Kill(); redis.Wait() })

	listen := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	admin := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	cfgPath := filepath.Join(dir, "proxy.yaml")
	writeCfg := func(extra string) {
		os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: %s\nadmin: %s\nbackends: [127.0.0.1:%d]\ncheck:\n  interval: 200ms\n%s",
			listen, admin, rport, extra)), 0o644)
	}
	writeCfg("")
	p := startProxy(t, admin, "/healthz 200", bin, "-config", cfgPath)
	conn, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if got := command(conn, r, "SET a 1"); got != "+OK" {
		t.Fatalf("got %q", got)
	}

	writeCfg("limits:\n  max_connections: 1\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload logged", func() bool { return strings.Contains(p.logs.String(), "configuration reloaded") })
	if got := command(conn, r, "GET a"); got != "$1" {
		t.Fatalf("after reload the client got %q", got)
	}
	c2, _ := net.Dial("tcp", listen)
	if got := command(c2, bufio.NewReader(c2), "PING"); !strings.Contains(got, "max number of clients") {
		t.Fatalf("reloaded limit not applied: %q", got)
	}
	c2.Close()

	writeCfg("bogus_key: 1\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "bad reload rejected", func() bool { return strings.Contains(p.logs.String(), "reload rejected") })
	r.ReadString('\n') // consume the GET's bulk payload line
	if got := command(conn, r, "PING"); got != "+PONG" {
		t.Fatalf("after rejected reload: %q", got)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "/healthz 503 or closed while draining", func() bool {
		r, err := http.Get("http://" + admin + "/healthz")
		if err != nil {
			return true
		}
		r.Body.Close()
		return r.StatusCode == 503
	})
	select {
	case err := <-p.exited:
		t.Fatalf("exited while a client was connected: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if got := command(conn, r, "PING"); got != "+PONG" {
		t.Fatalf("draining proxy dropped the client: %q", got)
	}
	conn.Close()
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("did not exit after the last client left")
	}
}

// TestApplyThreads: the config's threads sets GOMAXPROCS unless the
// environment already did; 0 leaves Go's default (one per CPU).
func TestApplyThreads(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name    string
		env     string
		threads int
		want    int
	}{
		{"config's one", "", 1, 1},
		{"config's two", "", 2, 2},
		{"zero keeps what runs", "", 0, 2}, // still 2 from the case before
		{"environment wins", "3", 1, 2},    // the runtime read it at start: left alone
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.env)
			applyThreads(tc.threads, log)
			if got := runtime.GOMAXPROCS(0); got != tc.want {
				t.Fatalf("GOMAXPROCS = %d, want %d", got, tc.want)
			}
		})
	}
}
