// Package interop tests redisha-witness against real redis-server and
// redis-sentinel processes: discovery both ways, failovers that need the
// witness's vote, partitions, restarts, and real clients.
package interop_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

var witnessBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "witness-bin")
	if err != nil {
		panic(err)
	}
	witnessBin = filepath.Join(dir, "redisha-witness")
	args := []string{"build", "-o", witnessBin}
	if os.Getenv("WITNESS_RACE") != "" {
		// Race-enabled witness; with GORACE=halt_on_error=1 a race kills it
		// and the test fails.
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/redisha/redisha/cmd/redisha-witness")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building redisha-witness: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	downAfterMs     = 1000
	failoverTimeout = 3000
)

type witnessOpts struct {
	Host        string // bind; 127.0.0.1 when empty
	Port        int
	Netns       string
	MasterAddr  string
	StateDir    string // reuse to restart with the same state
	Extra       string // more YAML
	LogLevel    string // debug when empty
	Binds       []string
	AnnounceIP  string
	Requirepass string
	AuthPass    string // master auth_pass
	DownAfterMs int    // downAfterMs when 0
}

// startWitness runs the real redisha-witness binary with a generated config.
func startWitness(t *testing.T, o witnessOpts) *testenv.Process { return startWitnessTB(t, o) }

func startWitnessTB(t testing.TB, o witnessOpts) *testenv.Process {
	t.Helper()
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		if o.Netns != "" {
			o.Port = 26379
		} else {
			o.Port = testenv.FreePort(t)
		}
	}
	if o.StateDir == "" {
		o.StateDir = t.TempDir()
	}
	if o.LogLevel == "" {
		o.LogLevel = "debug"
	}
	if o.DownAfterMs == 0 {
		o.DownAfterMs = downAfterMs
	}
	binds := o.Binds
	if len(binds) == 0 {
		binds = []string{o.Host}
	}
	cfg := fmt.Sprintf(`bind: [%s]
port: %d
protected_mode: false
state_file: %s
log_level: %s
announce_ip: "%s"
requirepass: "%s"
masters:
  - name: mymaster
    address: %s
    quorum: 2
    down_after: %d
    failover_timeout: %d
    auth_pass: "%s"
%s`, strings.Join(binds, ", "), o.Port, filepath.Join(o.StateDir, "state.json"), o.LogLevel, o.AnnounceIP, o.Requirepass,
		o.MasterAddr, o.DownAfterMs, failoverTimeout, o.AuthPass, o.Extra)
	path := filepath.Join(o.StateDir, "witness.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := testenv.ProcessSpec{Name: "witness-" + strconv.Itoa(o.Port),
		Argv: []string{witnessBin, "-config", path}, Host: o.Host, Port: o.Port, Dir: o.StateDir, Netns: o.Netns}
	if o.Requirepass == "" {
		return testenv.StartProcess(t, spec)
	}
	// PING needs AUTH first: wait for readiness ourselves.
	spec.Port = 0
	p := testenv.StartProcess(t, spec)
	p.Port = o.Port
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err := doAuth(p.Addr(), o.Requirepass, "PING")
		if err == nil && v.Str == "PONG" {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("witness not ready: %v\n%s", err, p.LogTail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func do(t *testing.T, addr string, args ...string) resp.Value {
	t.Helper()
	v, err := testenv.Do(addr, 3*time.Second, args...)
	if err != nil {
		t.Fatalf("%s %v: %v", addr, args, err)
	}
	return v
}

func myID(t *testing.T, addr string) string {
	t.Helper()
	return do(t, addr, "SENTINEL", "MYID").Str
}

// sentinelsOf returns runid -> flags of the sentinels addr lists.
func sentinelsOf(t *testing.T, addr string) map[string]string {
	t.Helper()
	out, err := trySentinelsOf(addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s SENTINEL SENTINELS: %v", addr, err)
	}
	return out
}

// trySentinelsOf is sentinelsOf for a condition polled under a deadline:
// a sentinel that answers slowly (a loaded machine, a real sentinel busy
// with a flood) is "not yet", not a failure; the poll's deadline decides.
func trySentinelsOf(addr string, timeout time.Duration) (map[string]string, error) {
	v, err := testenv.Do(addr, timeout, "SENTINEL", "SENTINELS", "mymaster")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range v.Elems {
		m, err := e.Pairs()
		if err != nil {
			return nil, err
		}
		out[m["runid"]] = m["flags"]
	}
	return out, nil
}

func masterAddr(t *testing.T, addr string) string {
	t.Helper()
	v, err := testenv.Do(addr, 3*time.Second, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
	if err != nil || len(v.Elems) != 2 {
		return ""
	}
	return v.Elems[0].Str + ":" + v.Elems[1].Str
}

// within polls cond every 100ms until it holds or the timeout passes, and
// reports whether it held, for a caller that explains the failure itself.
func within(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start), true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, false
}

// eventually polls cond every 100ms until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", timeout, what)
	return 0
}

func readLog(p *testenv.Process) string {
	b, _ := os.ReadFile(p.LogPath())
	return string(b)
}

func countMatches(text, re string) int {
	return len(regexp.MustCompile(re).FindAllStringIndex(text, -1))
}

// meshReady waits until every sentinel lists every other one, connected.
func meshReady(t *testing.T, nodes ...*testenv.Process) {
	t.Helper()
	ids := map[string]string{}
	for _, n := range nodes {
		ids[n.Addr()] = myID(t, n.Addr())
	}
	eventually(t, 20*time.Second, "the sentinels and the witness to list each other", func() bool {
		for _, n := range nodes {
			got, err := trySentinelsOf(n.Addr(), 3*time.Second)
			if err != nil {
				return false
			}
			for _, o := range nodes {
				if o == n {
					continue
				}
				if flags, ok := got[ids[o.Addr()]]; !ok || flags != "sentinel" {
					return false
				}
			}
			if len(got) != len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

func replicaOnline(t *testing.T, master string) bool {
	v, err := testenv.Do(master, 2*time.Second, "INFO", "replication")
	return err == nil && strings.Contains(v.Str, "state=online")
}

// doAuth runs AUTH then one command on a fresh connection.
func doAuth(addr, pass string, args ...string) (resp.Value, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return resp.Value{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	w, r := resp.NewWriter(c), resp.NewReader(bufio.NewReader(c))
	for _, cmd := range [][]string{{"AUTH", pass}, args} {
		w.Array(len(cmd))
		for _, a := range cmd {
			w.Bulk(a)
		}
	}
	if err := w.Flush(); err != nil {
		return resp.Value{}, err
	}
	if v, err := r.ReadValue(); err != nil || v.IsError() {
		return v, fmt.Errorf("AUTH: %v %s", err, v.Str)
	}
	v, err := r.ReadValue()
	if err == nil && v.IsError() {
		err = fmt.Errorf("%s", v.Str)
	}
	return v, err
}
