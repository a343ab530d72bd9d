package fault

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func procState(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "State:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestFreezeProcessKeepsSocketsAndThaws(t *testing.T) {
	tp := newTopology(t, "redis1", "sentinel")
	r, s := tp.nodes["redis1"], tp.nodes["sentinel"]
	inj := NewInjector(nil)
	ctx := context.Background()
	conn, err := net.Dial("tcp", r.redisAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := ping(conn, time.Second); err != nil {
		t.Fatal(err)
	}
	h, err := inj.Apply(ctx, Spec{Kind: FreezeProcess, Node: "redis1", Daemon: "redis-server"}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	pid := r.redis.Pid()
	if st := procState(t, pid); !strings.HasPrefix(st, "T") {
		t.Errorf("redis-server state %q, want T (stopped)", st)
	}
	var ne net.Error
	if _, err := ping(conn, 300*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("PING to frozen redis: %v, want a timeout (the socket must stay open)", err)
	}
	// The kernel still completes handshakes into the listen backlog.
	c2, err := s.dial(r.redisAddr(), time.Second)
	if err != nil {
		t.Fatalf("connect to frozen redis failed (%v); a frozen process keeps its listener", err)
	}
	defer c2.Close()
	if _, err := ping(c2, 300*time.Millisecond); err == nil {
		t.Error("frozen redis answered")
	}
	if err := h.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	// The PING sent while frozen is answered on the same connection.
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Errorf("after thaw the pending PING got %q, %v", line, err)
	}
	if _, err := ping(conn, time.Second); err != nil {
		t.Errorf("PING after thaw: %v", err)
	}
	if r.redis.Pid() != pid {
		t.Error("thaw restarted the daemon")
	}
}

func waitExit(t *testing.T, n *testNode) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.redis.Running() {
		if time.Now().After(deadline) {
			t.Fatal("redis-server still running after SIGKILL")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCrashAndRestartDaemonByPID(t *testing.T) {
	tp := newTopology(t, "redis1")
	r := tp.nodes["redis1"]
	inj := NewInjector(nil)
	ctx := context.Background()
	pid := r.redis.Pid()
	h, err := inj.Apply(ctx, Spec{Kind: Crash, Node: "redis1", Daemon: "redis-server"}, tp.targets()...)
	if err != nil {
		t.Fatal(err)
	}
	waitExit(t, r)
	if reachable(nil, r) {
		t.Fatal("crashed redis still answers")
	}
	if err := h.Undo(ctx); err != nil {
		t.Fatal(err)
	}
	if !reachable(nil, r) {
		t.Fatal("redis does not answer after restart")
	}
	pid2 := r.redis.Pid()
	if pid2 == pid {
		t.Error("pid unchanged: the daemon was not restarted")
	}
	// restart = crash and start in one step
	if _, err := inj.Apply(ctx, Spec{Kind: Restart, Node: "redis1", Daemon: "redis-server"}, tp.targets()...); err != nil {
		t.Fatal(err)
	}
	if r.redis.Pid() == pid2 || !reachable(nil, r) {
		t.Error("restart did not give a new, answering redis-server")
	}
	// The old pid must never be signalled again.
	if _, err := inj.Apply(ctx, Spec{Kind: FreezeProcess, Node: "redis1", Daemon: "nope"}, tp.targets()...); err == nil {
		t.Error("freeze of an unknown daemon succeeded")
	}
}
