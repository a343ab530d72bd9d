package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

// syncBuffer is a bytes.Buffer safe to read while the daemon writes its log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// legacyConfig is the example config as shipped before confkit (flat auth
// keys), with only what ties it to a machine changed: loopback addresses,
// free ports, a temporary state file. The monitored master is a closed
// loopback port: the witness must start and serve all the same.
func legacyConfig(t *testing.T) (path string, port int, pass string) {
	t.Helper()
	b, err := os.ReadFile("../../components/witness/config/testdata/witness.legacy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port = testenv.FreePort(t)
	s := string(b)
	for old, repl := range map[string]string{
		"bind: [10.0.0.3]":                    "bind: [127.0.0.1]",
		"port: 26379":                         fmt.Sprintf("port: %d", port),
		"/var/lib/redisha-witness/state.json": filepath.Join(dir, "state.json"),
		`metrics_listen: "127.0.0.1:9479"`:    fmt.Sprintf(`metrics_listen: "127.0.0.1:%d"`, testenv.FreePort(t)),
		"address: 10.0.0.1:6379":              fmt.Sprintf("address: 127.0.0.1:%d", testenv.FreePort(t)),
	} {
		if !strings.Contains(s, old) {
			t.Fatalf("the legacy example no longer has %q", old)
		}
		s = strings.Replace(s, old, repl, 1)
	}
	path = filepath.Join(dir, "witness.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, port, "change-me"
}

// unitArgs returns the arguments of a command line in the shipped systemd
// unit (ExecStart=, ExecStartPre=), with the config path replaced.
func unitArgs(t *testing.T, key, config string) []string {
	t.Helper()
	f, err := os.Open("../../components/witness/dist/redisha-witness.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			args := strings.Fields(v)[1:]
			for i, a := range args {
				if a == "/etc/redisha/witness.yaml" {
					args[i] = config
				}
			}
			return args
		}
	}
	t.Fatalf("no %s in the unit", key)
	return nil
}

// TestLegacyConfigAndFlags starts the daemon as the shipped unit does
// (ExecStartPre check, then ExecStart, both with the old single-dash flags)
// on the example config of before, and with the new subcommands.
func TestLegacyConfigAndFlags(t *testing.T) {
	path, port, pass := legacyConfig(t)
	// The unit's check, and the one it shipped with before (-config F -check).
	for _, pre := range [][]string{unitArgs(t, "ExecStartPre", path), {"-config", path, "-check"}, {"--config=" + path, "-check"}} {
		var out, errOut bytes.Buffer
		if code := witnessDaemon().Execute(context.Background(), pre, &out, &errOut); code != 0 || !strings.Contains(out.String(), "config ok") {
			t.Fatalf("%v: exit %d, %q %q", pre, code, out.String(), errOut.String())
		}
		if !strings.Contains(errOut.String(), "deprecated") || !strings.Contains(errOut.String(), "masters[0].auth_pass") {
			t.Fatalf("%v: no deprecation lines for the old flags and keys: %q", pre, errOut.String())
		}
	}
	for _, args := range [][]string{unitArgs(t, "ExecStart", path), {"-config", path}, {"--config", path}, {"run", "-c", path}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var logBuf syncBuffer
			done := make(chan int, 1)
			go func() { done <- witnessDaemon().Execute(ctx, args, &bytes.Buffer{}, &logBuf) }()
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			deadline := time.Now().Add(10 * time.Second)
			var v resp.Value
			for {
				c, err := resp.Dial(ctx, addr, resp.DialOptions{Password: pass, Timeout: 2 * time.Second})
				if err == nil {
					v, err = c.Do(ctx, "SENTINEL", "MASTER", "mymaster")
					c.Close()
					if err == nil {
						break
					}
				}
				select {
				case code := <-done:
					t.Fatalf("exited %d: %s", code, logBuf.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("witness not serving: %v\n%s", err, logBuf.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			m, err := v.Pairs()
			if err != nil || m["name"] != "mymaster" || m["quorum"] != "2" || m["down-after-milliseconds"] != "5000" {
				t.Fatalf("SENTINEL MASTER: %v %v", m, err)
			}
			var st bytes.Buffer
			if code := witnessDaemon().Execute(ctx, []string{"status", "-c", path}, &st, &bytes.Buffer{}); code != 0 ||
				!strings.Contains(st.String(), "sentinel_masters:1") || !strings.Contains(st.String(), "master0:name=mymaster") {
				t.Errorf("status: exit %d, %q", code, st.String())
			}
			if args[0] != "run" && !strings.Contains(logBuf.String(), "deprecated") {
				t.Errorf("no deprecation line for %v: %s", args, logBuf.String())
			}
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit %d: %s", code, logBuf.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("did not stop")
			}
		})
	}
}
