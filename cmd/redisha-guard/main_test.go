package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

func do(t *testing.T, addr string, args ...string) resp.Value {
	t.Helper()
	v, err := testenv.Do(addr, 15*time.Second, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", addr, args, err)
	}
	return v
}

func info(t *testing.T, addr string) resp.Info {
	t.Helper()
	return resp.ParseInfo(do(t, addr, "INFO", "replication").Str)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not after %v (last: %s)", what, timeout, last)
}

type guardRun struct {
	rc      int
	elapsed time.Duration
	stdout  string
	log     string
	env     string
}

// runGuard runs the command in-process, as ExecStartPre would run the binary.
func runGuard(t *testing.T, args ...string) guardRun {
	t.Helper()
	env := filepath.Join(t.TempDir(), "guard.env")
	var out, errb bytes.Buffer
	start := time.Now()
	rc := run(context.Background(), append(append([]string{"run"}, args...), "--write-env", env, "--print", "--log-level", "debug"), &out, &errb)
	g := guardRun{rc: rc, elapsed: time.Since(start), stdout: out.String(), log: errb.String()}
	if b, err := os.ReadFile(env); err == nil {
		g.env = string(b)
	}
	t.Logf("guard rc=%d in %v\nstdout: %s\nlog:\n%s\nenv:\n%s", rc, g.elapsed, g.stdout, g.log, g.env)
	return g
}

func sentinels(t *testing.T, master string, downAfterMs int) []*testenv.Process {
	var out []*testenv.Process
	for i := 0; i < 3; i++ {
		out = append(out, testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: master, DownAfterMs: downAfterMs,
			FailoverTimeout: 10000}))
	}
	return out
}

func addrs(ps []*testenv.Process) string {
	var a []string
	for _, p := range ps {
		a = append(a, p.Addr())
	}
	return strings.Join(a, ",")
}

// TestCrashRestartFast is the master-crash-restart-fast: the master
// snapshots early, takes more writes that its replica acknowledges, and is
// killed; the guard runs at once (well inside down-after), sees the replica
// ahead of the snapshot, has the sentinels fail over to it, and redis-server
// then starts as the new master's replica. No acknowledged write is lost.
func TestCrashRestartFast(t *testing.T) {
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	dirM := t.TempDir()
	m := testenv.StartRedis(t, testenv.RedisOptions{Extra: []string{"--dir", dirM, "--dbfilename", "dump.rdb", "--repl-diskless-sync-delay", "0"}})
	r := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: m.Addr()})
	ss := sentinels(t, m.Addr(), 5000)

	write := func(from, to int) {
		for i := from; i < to; i++ {
			do(t, m.Addr(), "SET", "k"+strconv.Itoa(i), "v"+strconv.Itoa(i))
		}
		// Acknowledged means on the replica too: the guard cannot save a
		// write that only the dead master had (that is the durable mode's job).
		if n := do(t, m.Addr(), "WAIT", "1", "10000").Int; n != 1 {
			t.Fatalf("WAIT: %d replicas acknowledged", n)
		}
	}
	write(0, 100)
	do(t, m.Addr(), "SAVE") // the snapshot the master will come back with
	write(100, 300)
	// Every sentinel knows the replica and the other sentinels, as in a
	// stack that has been running for a while.
	for _, s := range ss {
		eventually(t, 30*time.Second, "sentinel "+s.Addr()+" knows the replica and its peers", func() (bool, string) {
			v := do(t, s.Addr(), "SENTINEL", "MASTER", "mymaster")
			f, _ := v.Pairs()
			return f["num-slaves"] == "1" && f["num-other-sentinels"] == "2", fmt.Sprint(f["num-slaves"], " ", f["num-other-sentinels"])
		})
	}
	mOff, _ := strconv.ParseInt(info(t, m.Addr()).Get("master_repl_offset"), 10, 64)

	m.Kill()
	killed := time.Now()
	g := runGuard(t, "--self", m.Addr(), "--sentinel", addrs(ss), "--rdb", filepath.Join(dirM, "dump.rdb"), "--bound", "30s")
	if started := g.elapsed; started > 30*time.Second {
		t.Fatalf("guard took %v", started)
	}
	if g.rc != 0 {
		t.Fatalf("guard exit %d", g.rc)
	}
	want := "--replicaof 127.0.0.1 " + strconv.Itoa(r.Port)
	if strings.TrimSpace(g.stdout) != want || !strings.Contains(g.env, "REDISHA_GUARD_ARGS="+want+"\n") {
		t.Fatalf("decision: stdout %q env %q, want %q", g.stdout, g.env, want)
	}
	if !strings.Contains(g.log, "failover_asked=true") || !strings.Contains(g.log, "asking the sentinels to fail over") {
		t.Fatal("the guard did not ask for the failover")
	}
	if strings.Contains(g.log, "bound_reached") || strings.Contains(g.log, "decided at its bound") {
		t.Fatal("decided by the bound, not by the evidence")
	}

	// Start redis-server as the guard decided, on the same port and data.
	argv := []string{"redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(m.Port), "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no", "--dir", dirM, "--dbfilename", "dump.rdb"}
	argv = append(argv, strings.Fields(g.stdout)...)
	restarted := testenv.StartProcess(t, testenv.ProcessSpec{Name: "redis-restarted", Argv: argv, Host: "127.0.0.1", Port: m.Port})
	t.Logf("master killed and its redis-server restarted after %v", time.Since(killed))

	if role := info(t, r.Addr()).Get("role"); role != "master" {
		t.Fatalf("old replica's role %q", role)
	}
	eventually(t, 30*time.Second, "restarted node is an in-sync replica of the new master", func() (bool, string) {
		i := info(t, restarted.Addr())
		off, _ := strconv.ParseInt(i.Get("master_repl_offset"), 10, 64)
		return i.Get("role") == "slave" && i.Get("master_port") == strconv.Itoa(r.Port) &&
			i.Get("master_link_status") == "up" && off >= mOff, fmt.Sprint(i.Section("replication"))
	})
	for _, node := range []*testenv.Process{r, restarted} {
		for i := 0; i < 300; i++ {
			k := "k" + strconv.Itoa(i)
			if v := do(t, node.Addr(), "GET", k); v.Str != "v"+strconv.Itoa(i) {
				t.Fatalf("%s: %s = %q: acknowledged write lost", node.Name, k, v.Text())
			}
		}
	}
	for _, s := range ss {
		eventually(t, 30*time.Second, "sentinel "+s.Addr()+" follows the new master", func() (bool, string) {
			v := do(t, s.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
			return len(v.Elems) == 2 && v.Elems[1].Text() == strconv.Itoa(r.Port), fmt.Sprint(v)
		})
	}
}

// TestFirstStartNotDelayed: an empty stack (sentinels configured with this
// node as master, a replica that never synced, no data file) starts at once.
func TestFirstStartNotDelayed(t *testing.T) {
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	self := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	r := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: self})
	ss := sentinels(t, self, 5000)
	bound := 10 * time.Second
	g := runGuard(t, "--self", self, "--sentinel", addrs(ss), "--node", r.Addr(),
		"--rdb", filepath.Join(t.TempDir(), "dump.rdb"), "--bound", bound.String())
	if g.rc != 0 || strings.TrimSpace(g.stdout) != "--replicaof no one" {
		t.Fatalf("rc %d, args %q: want a master", g.rc, g.stdout)
	}
	if g.elapsed >= bound/2 {
		t.Fatalf("first start delayed by %v (bound %v)", g.elapsed, bound)
	}
	// The arguments override a stale replicaof line that sentinel's CONFIG
	// REWRITE could have left in the config file.
	dir := t.TempDir()
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte("replicaof 127.0.0.1 1\nsave \"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(self, ":")
	p := testenv.StartProcess(t, testenv.ProcessSpec{Name: "redis-first", Dir: dir, Host: "127.0.0.1", Port: atoi(t, port),
		Argv: append([]string{"redis-server", conf, "--bind", "127.0.0.1", "--port", port, "--daemonize", "no"}, strings.Fields(g.stdout)...)})
	if role := info(t, p.Addr()).Get("role"); role != "master" {
		t.Fatalf("started with the guard's arguments as %q", role)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestNothingRunning: no sentinel and no node answer (connection refused):
// the guard does not wait for them.
func TestNothingRunning(t *testing.T) {
	free := func() string { return testenv.Addr("127.0.0.1", testenv.FreePort(t)) }
	bound := 10 * time.Second
	g := runGuard(t, "--self", free(), "--sentinel", free()+","+free()+","+free(), "--node", free(),
		"--rdb", filepath.Join(t.TempDir(), "dump.rdb"), "--bound", bound.String())
	if g.rc != 0 || strings.TrimSpace(g.stdout) != "" || !strings.Contains(g.env, "REDISHA_GUARD_ARGS=\n") {
		t.Fatalf("rc %d, args %q: want keep-config", g.rc, g.stdout)
	}
	if g.elapsed >= bound/2 {
		t.Fatalf("delayed by %v", g.elapsed)
	}
}

// TestBoundWithoutMajority: one of three sentinels runs, so there is no
// majority; the guard keeps asking, and at its bound starts as configured.
func TestBoundWithoutMajority(t *testing.T) {
	testenv.RequireBinary(t, "redis-sentinel")
	self := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	s := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: self})
	// Two sentinels that accept connections and never answer: a listener
	// nobody reads from, like a partitioned host.
	silent := func() string {
		l, err := netListen()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.Addr().String()
	}
	bound := 3 * time.Second
	g := runGuard(t, "--self", self, "--sentinel", s.Addr()+","+silent()+","+silent(),
		"--rdb", filepath.Join(t.TempDir(), "dump.rdb"), "--bound", bound.String(), "--probe-timeout", "500ms")
	if g.rc != 0 || strings.TrimSpace(g.stdout) != "" || !strings.Contains(g.log, "decided at its bound") ||
		!strings.Contains(g.log, "1 of 3 sentinels answered") {
		t.Fatalf("rc %d args %q: want keep-config at the bound", g.rc, g.stdout)
	}
	if g.elapsed < bound || g.elapsed > bound+2*time.Second {
		t.Fatalf("decided after %v, bound %v", g.elapsed, bound)
	}
}

func TestFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := run(context.Background(), []string{"check-config", "--sentinel", "nohost"}, &out, &errb); rc != 2 ||
		!strings.Contains(errb.String(), "self: required") || !strings.Contains(errb.String(), `sentinels: "nohost" is not host:port`) ||
		!strings.Contains(errb.String(), "no output") {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	out.Reset()
	if rc := run(context.Background(), []string{"check-config", "--self", "a:1", "--sentinel", "b:2,c:3", "--print"}, &out, &errb); rc != 0 || out.String() != "config ok\n" {
		t.Fatalf("check-config: %d %q %s", rc, out.String(), errb.String())
	}
}

// TestConfigFile: the same settings from a YAML file, strictly read, with a
// flag overriding a key.
func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pass")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "guard.yaml")
	yaml := "self: 10.0.0.1:6379\nsentinels: [10.0.0.1:26379, 10.0.0.2:26379, 10.0.0.3:26379]\nbound: 20s\n" +
		"node_auth:\n  password_file: " + pw + "\nwrite_env: /run/redis/redisha-guard.env\n"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if rc := run(context.Background(), []string{"check-config", "--config", file, "--bound", "5s"}, &out, &errb); rc != 0 {
		t.Fatalf("rc %d: %s", rc, errb.String())
	}
	if err := os.WriteFile(file, []byte(yaml+"boundd: 1s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if rc := run(context.Background(), []string{"check-config", "--config", file}, &out, &errb); rc != 2 || !strings.Contains(errb.String(), "guard.yaml:7: boundd: unknown key") {
		t.Fatalf("unknown key: rc %d: %s", rc, errb.String())
	}
}

// TestOldMasterReturns: the sentinels failed over while the master was down;
// when it comes back, the guard starts it as the new master's replica
// instead of as a second master.
func TestOldMasterReturns(t *testing.T) {
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	dirM := t.TempDir()
	m := testenv.StartRedis(t, testenv.RedisOptions{Extra: []string{"--dir", dirM, "--dbfilename", "dump.rdb", "--repl-diskless-sync-delay", "0"}})
	r := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: m.Addr()})
	ss := sentinels(t, m.Addr(), 1000)
	do(t, m.Addr(), "SET", "k", "v")
	if n := do(t, m.Addr(), "WAIT", "1", "10000").Int; n != 1 {
		t.Fatalf("WAIT: %d", n)
	}
	do(t, m.Addr(), "SAVE")
	for _, s := range ss {
		eventually(t, 30*time.Second, "sentinel "+s.Addr()+" knows the replica and its peers", func() (bool, string) {
			f, _ := do(t, s.Addr(), "SENTINEL", "MASTER", "mymaster").Pairs()
			return f["num-slaves"] == "1" && f["num-other-sentinels"] == "2", fmt.Sprint(f)
		})
	}
	m.Kill()
	for _, s := range ss {
		eventually(t, 60*time.Second, "sentinel "+s.Addr()+" failed over", func() (bool, string) {
			v := do(t, s.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
			return len(v.Elems) == 2 && v.Elems[1].Text() == strconv.Itoa(r.Port), fmt.Sprint(v)
		})
	}
	g := runGuard(t, "--self", m.Addr(), "--sentinel", addrs(ss), "--rdb", filepath.Join(dirM, "dump.rdb"))
	if want := "--replicaof 127.0.0.1 " + strconv.Itoa(r.Port); g.rc != 0 || strings.TrimSpace(g.stdout) != want ||
		strings.Contains(g.log, "failover_asked=true") {
		t.Fatalf("rc %d args %q: want %q without a failover", g.rc, g.stdout, want)
	}
}

// TestSelfSpelledDifferently: the sentinels name this node as 127.0.0.1:P
// while self says 127.0.0.2:P; the guard must not make redis its own replica.
func TestSelfSpelledDifferently(t *testing.T) {
	testenv.RequireBinary(t, "redis-sentinel")
	port := strconv.Itoa(testenv.FreePort(t))
	ss := sentinels(t, "127.0.0.1:"+port, 5000)
	g := runGuard(t, "--self", "127.0.0.2:"+port, "--sentinel", addrs(ss), "--rdb", filepath.Join(t.TempDir(), "dump.rdb"))
	if g.rc != 0 || strings.TrimSpace(g.stdout) != "" || !strings.Contains(g.log, "misconfigured self") {
		t.Fatalf("rc %d args %q: want keep-config with a misconfiguration error", g.rc, g.stdout)
	}
}
