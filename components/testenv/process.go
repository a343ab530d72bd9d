package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/netns"
	"github.com/redisha/redisha/components/resp"
)

// Process is a real daemon started by a test, optionally inside a network
// namespace. It is killed when the test ends, and its log is printed when the
// test failed.
type Process struct {
	t     testing.TB
	Name  string
	Host  string // address it serves on, reachable from the test process
	Port  int
	Dir   string // its working directory, config and log
	Netns string // namespace name ("" for the host's)
	// Password is sent with AUTH before the readiness PING.
	Password string
	argv     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// ProcessSpec says how to run a daemon.
type ProcessSpec struct {
	Name  string   // label for logs and file names
	Argv  []string // program and arguments
	Host  string   // where it listens, for Addr and readiness
	Port  int
	Dir   string // working directory; a temp dir when empty
	Netns string // run inside this named namespace (or one given by path), via netns.Start
	// Password, when the daemon requires one, authenticates the readiness check.
	Password string
}

// StartProcess starts a daemon and waits until it answers PING on Host:Port
// (pass Port 0 to skip the wait).
func StartProcess(t testing.TB, spec ProcessSpec) *Process {
	t.Helper()
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	}
	p := &Process{t: t, Name: spec.Name, Host: spec.Host, Port: spec.Port, Dir: spec.Dir, Netns: spec.Netns,
		Password: spec.Password, argv: spec.Argv}
	p.Start()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("---- last lines of %s ----\n%s", p.Name, p.LogTail(40))
		}
	})
	if spec.Port != 0 {
		p.WaitReady(15 * time.Second)
	}
	return p
}

// LogPath is where the daemon's stdout and stderr go.
func (p *Process) LogPath() string { return filepath.Join(p.Dir, p.Name+".log") }

// Start (re)starts the daemon with its original arguments.
func (p *Process) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	argv := p.argv
	logf, err := os.OpenFile(p.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("%s: log file: %v", p.Name, err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a terminal's Ctrl-C reaches only the test;
	// and killed with the test binary, so a timed-out or interrupted test
	// leaves no daemon behind. netns.Start forks from a thread that lives
	// as long as the daemon, which is what makes Pdeathsig mean that.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	done, err := netns.Start(netns.PathOf(p.Netns), cmd)
	if err != nil {
		p.t.Fatalf("%s: start %v in netns %q: %v", p.Name, argv, p.Netns, err)
	}
	exited := make(chan struct{})
	go func() {
		<-done
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
}

// Pid is the daemon's own process id (netns.Start forks it directly inside
// the namespace, with no wrapper process).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Addr is host:port.
func (p *Process) Addr() string { return Addr(p.Host, p.Port) }

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the daemon.
func (p *Process) Signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits for the exit. A frozen process is thawed first
// so that it can die.
func (p *Process) Kill() { p.stop(syscall.SIGKILL) }

// Stop sends SIGTERM and waits up to 10 s, then kills.
func (p *Process) Stop() { p.stop(syscall.SIGTERM) }

func (p *Process) stop(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Pause freezes the daemon with SIGSTOP; its sockets stay open.
func (p *Process) Pause() { p.Signal(syscall.SIGSTOP) }

// Resume thaws it with SIGCONT.
func (p *Process) Resume() { p.Signal(syscall.SIGCONT) }

// WaitReady waits until the daemon answers PING with +PONG.
func (p *Process) WaitReady(timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if !p.Running() {
			p.t.Fatalf("%s exited during start-up:\n%s", p.Name, p.LogTail(20))
		}
		if last = PingAuth(p.Addr(), p.Password, time.Second); last == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("%s not ready at %s after %v: %v\n%s", p.Name, p.Addr(), timeout, last, p.LogTail(20))
}

// LogTail returns the last n lines of the daemon's log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath())
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Ping sends one PING to addr and wants +PONG back.
func Ping(addr string, timeout time.Duration) error { return PingAuth(addr, "", timeout) }

// PingAuth is Ping on a connection that first authenticates with password
// (none when empty).
func PingAuth(addr, password string, timeout time.Duration) error {
	cmds := [][]string{{"PING"}}
	if password != "" {
		cmds = [][]string{{"AUTH", password}, {"PING"}}
	}
	replies, err := DoAll(addr, timeout, cmds...)
	if err != nil {
		return err
	}
	v := replies[len(replies)-1]
	if v.Kind != resp.SimpleString || v.Str != "PONG" {
		return fmt.Errorf("PING answered %q", v.Text())
	}
	return nil
}

// Do sends one command on a fresh connection and returns the reply; an error
// reply is returned as an error. It is for test set-up and assertions; code
// under test uses its own clients.
func Do(addr string, timeout time.Duration, args ...string) (resp.Value, error) {
	replies, err := DoAll(addr, timeout, args)
	if err != nil {
		return resp.Value{}, err
	}
	return replies[0], nil
}

// DoAll sends commands in order on one fresh connection and stops at the
// first error reply, which it returns as an error.
func DoAll(addr string, timeout time.Duration, cmds ...[]string) ([]resp.Value, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	w := resp.NewWriter(c)
	r := resp.NewReader(bufio.NewReader(c))
	var replies []resp.Value
	for _, args := range cmds {
		w.Array(len(args))
		for _, a := range args {
			w.Bulk(a)
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		v, err := r.ReadValue()
		if err != nil {
			return nil, err
		}
		if v.IsError() {
			return nil, fmt.Errorf("%s: %s", args[0], v.Str)
		}
		replies = append(replies, v)
	}
	return replies, nil
}

// RedisOptions configures a test redis-server.
type RedisOptions struct {
	Host      string   // bind address; 127.0.0.1 when empty
	Port      int      // a free port when 0 (only on the host's namespace)
	Netns     string   // run inside this named namespace
	ReplicaOf string   // "host:port" of its master
	Password  string   // requirepass (and masterauth, for a replica of a protected master)
	Extra     []string // more command-line options
}

// StartRedis starts a real redis-server without persistence and waits for it.
func StartRedis(t testing.TB, o RedisOptions) *Process {
	t.Helper()
	RequireBinary(t, "redis-server")
	o = hostPort(t, o.Host, o.Port, o.Netns, o)
	argv := []string{"redis-server", "--bind", o.Host, "--port", strconv.Itoa(o.Port),
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"}
	if o.ReplicaOf != "" {
		h, port, err := net.SplitHostPort(o.ReplicaOf)
		if err != nil {
			t.Fatalf("ReplicaOf %q: %v", o.ReplicaOf, err)
		}
		argv = append(argv, "--replicaof", h, port)
	}
	if o.Password != "" {
		argv = append(argv, "--requirepass", o.Password, "--masterauth", o.Password)
	}
	argv = append(argv, o.Extra...)
	return StartProcess(t, ProcessSpec{Name: fmt.Sprintf("redis-%d", o.Port), Argv: argv, Host: o.Host, Port: o.Port,
		Netns: o.Netns, Password: o.Password})
}

// SentinelOptions configures a test redis-sentinel.
type SentinelOptions struct {
	Host            string // bind address; 127.0.0.1 when empty
	Port            int    // a free port when 0
	Netns           string
	MasterName      string // "mymaster" when empty
	MasterAddr      string // host:port of the monitored master
	Quorum          int    // 2 when 0
	DownAfterMs     int    // 1000 when 0
	FailoverTimeout int    // ms; 3000 when 0
	AnnounceIP      string
	Extra           []string // more config lines, verbatim
}

// StartSentinel writes a sentinel config and starts a real redis-sentinel.
func StartSentinel(t testing.TB, o SentinelOptions) *Process {
	t.Helper()
	RequireBinary(t, "redis-sentinel")
	host, port := o.Host, o.Port
	ro := hostPort(t, host, port, o.Netns, RedisOptions{})
	o.Host, o.Port = ro.Host, ro.Port
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	if o.Quorum == 0 {
		o.Quorum = 2
	}
	if o.DownAfterMs == 0 {
		o.DownAfterMs = 1000
	}
	if o.FailoverTimeout == 0 {
		o.FailoverTimeout = 3000
	}
	mh, mp, err := net.SplitHostPort(o.MasterAddr)
	if err != nil {
		t.Fatalf("MasterAddr %q: %v", o.MasterAddr, err)
	}
	dir := t.TempDir()
	conf := []string{
		"port " + strconv.Itoa(o.Port),
		"bind " + o.Host,
		"protected-mode no",
		"daemonize no",
		"dir " + dir,
		fmt.Sprintf("sentinel monitor %s %s %s %d", o.MasterName, mh, mp, o.Quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", o.MasterName, o.DownAfterMs),
		fmt.Sprintf("sentinel failover-timeout %s %d", o.MasterName, o.FailoverTimeout),
	}
	if o.AnnounceIP != "" {
		conf = append(conf, "sentinel announce-ip "+o.AnnounceIP)
	}
	conf = append(conf, o.Extra...)
	path := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return StartProcess(t, ProcessSpec{Name: fmt.Sprintf("sentinel-%d", o.Port), Argv: []string{"redis-sentinel", path},
		Host: o.Host, Port: o.Port, Dir: dir, Netns: o.Netns})
}

// hostPort fills in the defaults: loopback and a free port on the host; in a
// namespace the caller names both, since the host cannot probe its ports.
func hostPort(t testing.TB, host string, port int, netns string, o RedisOptions) RedisOptions {
	t.Helper()
	if host == "" {
		if netns != "" {
			t.Fatal("a daemon in a namespace needs an explicit Host")
		}
		host = "127.0.0.1"
	}
	if port == 0 {
		if netns != "" {
			port = 6379
		} else {
			port = FreePort(t)
		}
	}
	o.Host, o.Port, o.Netns = host, port, netns
	return o
}
