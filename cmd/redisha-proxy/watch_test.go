package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/proxy/daemon"
	"github.com/redisha/redisha/components/testenv"
)

// runningProxy is the real binary started with a config file.
type runningProxy struct {
	*running
	listen, admin, watch string
}

func startBinary(t *testing.T, cfg string) *runningProxy {
	t.Helper()
	bin := buildBinary(t)
	p := &runningProxy{listen: testenv.Addr("127.0.0.1", testenv.FreePort(t)), admin: testenv.Addr("127.0.0.1", testenv.FreePort(t)),
		watch: testenv.Addr("127.0.0.1", testenv.FreePort(t))}
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf("listen: %s\nadmin: %s\nwatch_listen: %s\n%s", p.listen, p.admin, p.watch, cfg)), 0o644)
	p.running = startProcess(t, bin, "run", "--config", path)
	return p
}

func (p *runningProxy) get(path string) (int, []byte, error) {
	r, err := http.Get("http://" + p.admin + path)
	if err != nil {
		return 0, nil, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return r.StatusCode, b, err
}

// watcher holds a connection to the watch listener, as redisha-vip's watch
// track does, and reports what it read: the "stopping" line, or the end.
func (p *runningProxy) watcher(t *testing.T) <-chan string {
	t.Helper()
	var c net.Conn
	waitFor(t, "watch listener", func() bool {
		var err error
		c, err = net.Dial("tcp", p.watch)
		return err == nil
	})
	t.Cleanup(func() { c.Close() })
	out := make(chan string, 2)
	go func() {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
					out <- "closed"
				} else {
					out <- "error: " + err.Error()
				}
				return
			}
			out <- strings.TrimSpace(line)
		}
	}()
	return out
}

// TestBinaryLivezStatusWatch: /livez is liveness (200 with no route, while
// /healthz is 503), /status describes the routing state and `status`
// prints it, and on SIGTERM the watch connection gets "stopping" while the
// client listener still accepts (limits.stop_notice), then ends.
func TestBinaryLivezStatusWatch(t *testing.T) {
	testenv.RequireBinary(t, "redis-server")
	rport := testenv.FreePort(t)
	p := startBinary(t, fmt.Sprintf("backends: [127.0.0.1:%d]\ncheck:\n  interval: 100ms\nlimits:\n  stop_notice: 2s\n", rport))

	// No redis yet: alive, but no route.
	waitFor(t, "/livez 200", func() bool { code, _, err := p.get("/livez"); return err == nil && code == 200 })
	if code, _, _ := p.get("/healthz"); code != 503 {
		t.Fatalf("/healthz %d without a backend, want 503", code)
	}
	code, body, err := p.get("/status")
	var st daemon.StatusDoc
	if err != nil || code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("/status %d %v %s", code, err, body)
	}
	if st.Route.Master != "" || st.Status == "routing" || !st.Live || st.Version == "" || st.Listeners["watch"] != p.watch || st.Listeners["read_write"] != p.listen {
		t.Fatalf("/status without a backend: %s", body)
	}
	if out, err := exec.Command(buildBinary(t), "status", "--addr", p.admin).CombinedOutput(); err == nil || !strings.Contains(string(out), "not routing") {
		t.Fatalf("status without a route: err %v, output:\n%s", err, out)
	}

	redis := exec.Command("redis-server", "--port", fmt.Sprint(rport), "--bind", "127.0.0.1", "--save", "")
	redis.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := redis.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { redis.Process.Kill(); redis.Wait() })
	backend := fmt.Sprintf("127.0.0.1:%d", rport)
	waitFor(t, "/healthz 200", func() bool { code, _, err := p.get("/healthz"); return err == nil && code == 200 })
	watch := p.watcher(t)
	waitFor(t, "/status routing with one watcher", func() bool {
		_, body, err := p.get("/status")
		st = daemon.StatusDoc{}
		return err == nil && json.Unmarshal(body, &st) == nil && st.Watchers == 1 && st.Status == "routing"
	})
	if st.Route.Master != backend || len(st.Backends) != 1 || st.Backends[0].Role != "master" || !st.Backends[0].OK ||
		!st.Backends[0].Routed || st.Backends[0].LastHealth.IsZero() {
		t.Fatalf("/status: %+v", st)
	}
	out, err := exec.Command(buildBinary(t), "status", "--addr", p.admin).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "routing to "+backend) || !strings.Contains(string(out), "backend  "+backend) {
		t.Fatalf("status: %v\n%s", err, out)
	}
	out, err = exec.Command(buildBinary(t), "status", "--addr", p.admin, "--json").Output()
	if err != nil || json.Unmarshal(out, &st) != nil || st.Route.Master != backend {
		t.Fatalf("status --json: %v\n%s", err, out)
	}

	// A client that stays: the drain lasts until it leaves.
	conn, err := net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if got := command(conn, r, "PING"); got != "+PONG" {
		t.Fatalf("got %q", got)
	}
	select {
	case got := <-watch:
		t.Fatalf("watch connection said %q while serving", got)
	default:
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case got := <-watch:
		if got != "stopping" {
			t.Fatalf("watch connection on SIGTERM: %q, want the stopping line", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no stopping line on SIGTERM")
	}
	// The watcher was told first: the client listener still accepts and
	// serves (for stop_notice), and /livez already says stopping.
	c2, err := net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatalf("client listener closed before the stop notice ended: %v", err)
	}
	if got := command(c2, bufio.NewReader(c2), "PING"); got != "+PONG" {
		t.Fatalf("new client right after the stopping line: %q", got)
	}
	c2.Close()
	if code, _, err := p.get("/livez"); err != nil || code != 503 {
		t.Fatalf("/livez while stopping: %d %v", code, err)
	}
	select {
	case got := <-watch:
		if got != "closed" {
			t.Fatalf("after the stopping line: %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch connection not closed after the stopping line")
	}
	waitFor(t, "client listener closed", func() bool {
		c, err := net.Dial("tcp", p.listen)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if got := command(conn, r, "PING"); got != "+PONG" {
		t.Fatalf("draining proxy dropped the client: %q", got)
	}
	conn.Close()
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after the last client left")
	}
}

// TestBinaryWatchOnKill: a proxy that dies (SIGKILL) ends the watch
// connection without a stopping line; the kernel closes it.
func TestBinaryWatchOnKill(t *testing.T) {
	p := startBinary(t, "backends: [127.0.0.1:1]\n")
	watch := p.watcher(t)
	p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case got := <-watch:
		if got != "closed" {
			t.Fatalf("watch connection after SIGKILL: %q, want it closed", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch connection still open after SIGKILL")
	}
}
