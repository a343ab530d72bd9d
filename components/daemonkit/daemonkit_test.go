package daemonkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redisha/redisha/components/confkit"
)

// testConfig stands for a component's config.
type testConfig struct {
	Path      string
	Overrides map[string]string
	Level     string
}

// call is what one Execute did.
type call struct {
	Sub       string // run, check-config, status, version, or "" (help)
	Path      string
	Overrides map[string]string
	Status    StatusOptions
}

// spec builds a test daemon shaped like one of the three mains; it records
// what the command line asked for instead of doing it.
func spec(name, defaultConfig string, bareRuns bool, flags []string, boolFlags []string, got *call) *Daemon[testConfig] {
	d := &Daemon[testConfig]{
		Name: name, Version: "v1.2.3", DefaultConfig: defaultConfig, BareRuns: bareRuns,
		Load: func(path string) (*testConfig, []string, error) {
			if strings.Contains(path, "bad") {
				return nil, nil, confkit.ErrorList{{File: path, Line: 2, Path: "bogus", Msg: "unknown key"}, {File: path, Line: 3, Path: "x", Msg: "bad"}}
			}
			return &testConfig{Path: path, Overrides: map[string]string{}, Level: "info"}, nil, nil
		},
		Run: func(ctx context.Context, cfg *testConfig, log *slog.Logger) error {
			*got = call{Sub: "run", Path: cfg.Path, Overrides: cfg.Overrides}
			return nil
		},
		Status: func(ctx context.Context, cfg *testConfig, opts StatusOptions, w io.Writer) error {
			*got = call{Sub: "status", Status: opts}
			if cfg != nil {
				got.Path = cfg.Path
			}
			return nil
		},
	}
	for _, f := range flags {
		d.Flags = append(d.Flags, Flag[testConfig]{Name: f, Apply: func(c *testConfig, v string) error { c.Overrides[f] = v; return nil }})
	}
	for _, f := range boolFlags {
		d.Flags = append(d.Flags, Flag[testConfig]{Name: f, Bool: true, Apply: func(c *testConfig, v string) error { c.Overrides[f] = v; return nil }})
	}
	return d
}

// The three daemons' command lines as they were: redisha-proxy (Go flag:
// -config, -check-config and overrides, no default file), redisha-vip (cobra:
// run/check-config/status, --config/-c with a default), redisha-witness (Go
// flag: -config with a default, -check).
var proxyFlags = []string{"listen", "read-only-listen", "admin", "master-name", "backends", "sentinels", "log-level"}

func proxy(got *call) *Daemon[testConfig] {
	return spec("redisha-proxy", "", true, proxyFlags, []string{"admin-pprof"}, got)
}
func vip(got *call) *Daemon[testConfig] {
	return spec("redisha-vip", "/etc/redisha/vip.yaml", false, nil, nil, got)
}
func witness(got *call) *Daemon[testConfig] {
	return spec("redisha-witness", "/etc/redisha/witness.yaml", true, nil, nil, got)
}

func TestInvocations(t *testing.T) {
	none := map[string]string{}
	tests := []struct {
		daemon     func(*call) *Daemon[testConfig]
		args       string
		want       call
		deprecated bool
		code       int
		where      string // who uses this form today
	}{
		// redisha-proxy: every flag of cmd/redisha-proxy/main.go.
		{proxy, "-config /etc/redisha/proxy.yaml", call{Sub: "run", Path: "/etc/redisha/proxy.yaml", Overrides: none}, true, 0, "proxy.service ExecStart, stack.yaml, main_test.go"},
		{proxy, "-config /etc/redisha/proxy.yaml -check-config", call{Sub: "check-config"}, true, 0, "proxy.service ExecStartPre"},
		{proxy, "-check-config -config /etc/redisha/proxy.yaml", call{Sub: "check-config"}, true, 0, ""},
		{proxy, "--config /etc/redisha/proxy.yaml", call{Sub: "run", Path: "/etc/redisha/proxy.yaml", Overrides: none}, true, 0, "issue 9"},
		{proxy, "-config=/p.yaml", call{Sub: "run", Path: "/p.yaml", Overrides: none}, true, 0, "Go flag syntax"},
		{proxy, "--config=/p.yaml", call{Sub: "run", Path: "/p.yaml", Overrides: none}, true, 0, "Go flag syntax"},
		{proxy, "-config /p.yaml -check-config=false", call{Sub: "run", Path: "/p.yaml", Overrides: none}, true, 0, "Go flag syntax"},
		{proxy, "-listen 127.0.0.1:7000 -admin 127.0.0.1:7001 -backends 127.0.0.1:6379 -log-level warn",
			call{Sub: "run", Overrides: map[string]string{"listen": "127.0.0.1:7000", "admin": "127.0.0.1:7001", "backends": "127.0.0.1:6379", "log-level": "warn"}}, true, 0, "components/proxy/bench"},
		{proxy, "-config /p.yaml -read-only-listen :7002 -master-name m -sentinels a:1,b:2 -admin-pprof",
			call{Sub: "run", Path: "/p.yaml", Overrides: map[string]string{"read-only-listen": ":7002", "master-name": "m", "sentinels": "a:1,b:2", "admin-pprof": "true"}}, true, 0, ""},
		{proxy, "-admin-pprof=false -backends=a:1", call{Sub: "run", Overrides: map[string]string{"admin-pprof": "false", "backends": "a:1"}}, true, 0, ""},
		{proxy, "", call{Sub: "run", Overrides: none}, true, 0, "bare binary ran with defaults"},
		{proxy, "run --config /p.yaml --listen :1", call{Sub: "run", Path: "/p.yaml", Overrides: map[string]string{"listen": ":1"}}, false, 0, "new form"},
		{proxy, "check-config -c /p.yaml", call{Sub: "check-config"}, false, 0, "new form"},
		{proxy, "-config /bad.yaml", call{}, true, 2, "config error exits 2, as before"},
		{proxy, "-config /bad.yaml -check-config", call{Sub: "check-config"}, true, 2, ""},
		{proxy, "-nosuchflag", call{}, true, 2, "usage error"},
		{vip, "run -c/v.yaml", call{Sub: "run", Path: "/v.yaml", Overrides: none}, false, 0, "pflag shorthand with its value attached"},
		{proxy, "run -check-config", call{}, false, 2, "contradiction"},

		// redisha-vip: every invocation of cmd/redisha-vip/main.go, vip.service, stack.yaml, docs/vip.md, tests.
		{vip, "run -c /etc/redisha/vip.yaml", call{Sub: "run", Path: "/etc/redisha/vip.yaml", Overrides: none}, false, 0, "vip.service ExecStart, stack.yaml"},
		{vip, "check-config -c /etc/redisha/vip.yaml", call{Sub: "check-config"}, false, 0, "vip.service ExecStartPre, main_test.go"},
		{vip, "run", call{Sub: "run", Path: "/etc/redisha/vip.yaml", Overrides: none}, false, 0, "default file"},
		{vip, "-c /v.yaml run", call{Sub: "run", Path: "/v.yaml", Overrides: none}, false, 0, "persistent flag first"},
		{vip, "--config /v.yaml run", call{Sub: "run", Path: "/v.yaml", Overrides: none}, false, 0, ""},
		{vip, "run --config=/v.yaml", call{Sub: "run", Path: "/v.yaml", Overrides: none}, false, 0, ""},
		{vip, "status", call{Sub: "status", Path: "/etc/redisha/vip.yaml"}, false, 0, "docs/vip.md"},
		{vip, "status -c /v.yaml", call{Sub: "status", Path: "/v.yaml"}, false, 0, "daemon/netns_test.go"},
		{vip, "status --addr 127.0.0.1:9732 --json", call{Sub: "status", Path: "/etc/redisha/vip.yaml", Status: StatusOptions{Addr: "127.0.0.1:9732", JSON: true}}, false, 0, "docs/vip.md"},
		{vip, "status -c /bad.yaml --addr h:1", call{Sub: "status", Status: StatusOptions{Addr: "h:1"}}, false, 0, "status without a readable file"},
		{vip, "--config /v.yaml", call{Sub: "run", Path: "/v.yaml", Overrides: none}, true, 0, "issue 9: --config with no subcommand runs"},
		{vip, "-config /v.yaml", call{Sub: "run", Path: "/v.yaml", Overrides: none}, true, 0, "issue 9"},
		{vip, "", call{}, false, 0, "help, as before"},
		{vip, "--help", call{}, false, 0, ""},
		{vip, "check-config -c /bad.yaml", call{Sub: "check-config"}, false, 2, ""},

		// redisha-witness: every flag of cmd/redisha-witness/main.go, witness.service, stack.yaml, interop tests.
		{witness, "-config /etc/redisha/witness.yaml", call{Sub: "run", Path: "/etc/redisha/witness.yaml", Overrides: none}, true, 0, "witness.service ExecStart, stack.yaml, interop"},
		{witness, "-config /etc/redisha/witness.yaml -check", call{Sub: "check-config"}, true, 0, "witness.service ExecStartPre, interop/cli_test.go"},
		{witness, "-check", call{Sub: "check-config"}, true, 0, "default file"},
		{witness, "--check --config=/w.yaml", call{Sub: "check-config"}, true, 0, ""},
		{witness, "", call{Sub: "run", Path: "/etc/redisha/witness.yaml", Overrides: none}, true, 0, "bare binary ran with the default file"},
		{witness, "-config /bad.yaml", call{}, true, 2, "config error exits 2, as before"},
		{witness, "-h", call{}, false, 0, ""},
		{witness, "version", call{Sub: "version"}, false, 0, ""},
		{witness, "--version", call{}, false, 0, ""},
	}
	for _, tc := range tests {
		var got call
		d := tc.daemon(&got)
		name := d.Name + " " + tc.args
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := strings.Fields(tc.args)
			code := d.Execute(context.Background(), args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.code, stderr.String())
			}
			switch {
			case strings.Contains(stdout.String(), "configuration OK"):
				got = call{Sub: "check-config"}
			case strings.HasPrefix(stdout.String(), d.Name+" v1.2.3"):
				got = call{Sub: "version"}
			}
			if tc.code == 2 && strings.Contains(tc.args, "bad") {
				if !strings.Contains(stderr.String(), d.Name+": /bad.yaml:2: bogus: unknown key\n"+d.Name+": /bad.yaml:3: x: bad\n") {
					t.Fatalf("config errors not one per line: %q", stderr.String())
				}
				if strings.Contains(tc.args, "check") {
					got = call{Sub: "check-config"}
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			warned := strings.Contains(stderr.String(), "deprecated")
			if warned != tc.deprecated {
				t.Fatalf("deprecation warning %v, want %v; stderr %q", warned, tc.deprecated, stderr.String())
			}
			for _, l := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
				if strings.Contains(l, "deprecated") && strings.Count(stderr.String(), "deprecated") != 1 {
					t.Fatalf("more than one deprecation line: %q", stderr.String())
				}
				_ = l
			}
		})
	}
}

func TestDeprecationNamesTheNewForm(t *testing.T) {
	d := proxy(new(call))
	_, w, err := d.normalize(strings.Fields("-config /etc/redisha/proxy.yaml -check-config"))
	if err != nil || w != `"redisha-proxy -config /etc/redisha/proxy.yaml -check-config" is deprecated; use "redisha-proxy check-config --config /etc/redisha/proxy.yaml"` {
		t.Fatalf("%q %v", w, err)
	}
	if out, _, _ := d.normalize([]string{"-nosuchflag"}); strings.Join(out, " ") != "run --nosuchflag" {
		t.Fatalf("%q: cobra would say 'unknown shorthand flag'", out)
	}
	// A flag's value is copied as it is, even when it looks like a subcommand or a flag.
	out, _, err := d.normalize([]string{"-master-name", "run", "-listen", "-weird"})
	if err != nil || strings.Join(out, " ") != "run --master-name run --listen -weird" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestConfigAndFlagDeprecationsLoggedOnce(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("log_level: debug\n"), 0o644)
	type cfg struct {
		Log struct {
			Level string `yaml:"level"`
		} `yaml:"log"`
		Listen string `yaml:"-"`
	}
	reloaded := make(chan struct{}, 1)
	var sigs sync.Map
	d := &Daemon[cfg]{
		Name: "redisha-test",
		Load: func(path string) (*cfg, []string, error) {
			var c cfg
			m, err := confkit.Load(path, &c, confkit.Alias{Old: "log_level", New: "log.level"})
			var w []string
			for _, dep := range m.Deprecations {
				w = append(w, dep.String())
			}
			return &c, w, err
		},
		Flags:       []Flag[cfg]{{Name: "listen", Deprecated: "set listen in the file", Apply: func(c *cfg, v string) error { c.Listen = v; return nil }}},
		LogSettings: func(c *cfg) (string, string) { return c.Log.Level, "text" },
		Run: func(ctx context.Context, c *cfg, log *slog.Logger) error {
			log.Debug("running", "listen", c.Listen)
			fire(&sigs, syscall.SIGHUP)
			<-reloaded
			fire(&sigs, syscall.SIGTERM)
			<-ctx.Done()
			return nil
		},
		Reload: func(c *cfg, log *slog.Logger) error { reloaded <- struct{}{}; return nil },
	}
	d.notify = fakeNotify(&sigs)
	var stdout, stderr bytes.Buffer
	code := d.Execute(context.Background(), []string{"-config", p, "-listen", ":1"}, &stdout, &stderr)
	out := stderr.String()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{
		`level=WARN msg="\"redisha-test -config ` + p + ` -listen :1\" is deprecated; use \"redisha-test run --config ` + p + ` --listen :1\""`,
		`level=WARN msg="` + p + `:1: log_level: deprecated key, write log.level instead (it still works for now)"`,
		`level=WARN msg="--listen is deprecated: set listen in the file"`,
		`level=DEBUG msg=running listen=:1`,
		`level=INFO msg="configuration reloaded"`,
		`level=INFO msg="signal: stopping" signal=terminated`,
	} {
		if strings.Count(out, want) != 1 {
			t.Errorf("want exactly one %s in:\n%s", want, out)
		}
	}
}

// fakeNotify delivers signals the test fires to the channels registered for
// them, as signal.Notify does for real ones.
func fakeNotify(m *sync.Map) func(c chan<- os.Signal, sig ...os.Signal) {
	return func(c chan<- os.Signal, sig ...os.Signal) {
		for _, s := range sig {
			m.Store(s, c)
		}
	}
}

func fire(m *sync.Map, s os.Signal) {
	c, ok := m.Load(s)
	if !ok {
		panic(fmt.Sprintf("no handler for %v", s))
	}
	c.(chan<- os.Signal) <- s
}

// TestRealSignals sends real SIGHUP and SIGTERM to this process: the reload
// callback runs, a rejected reload keeps the running config, SIGTERM cancels
// Run's context.
func TestRealSignals(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	os.WriteFile(p, []byte("level: info\n"), 0o644)
	type cfg struct {
		Level string `yaml:"level"`
	}
	reloads := make(chan string, 4)
	running := make(chan struct{})
	d := &Daemon[cfg]{
		Name: "redisha-test",
		Load: func(path string) (*cfg, []string, error) {
			var c cfg
			_, err := confkit.Load(path, &c)
			return &c, nil, err
		},
		LogSettings: func(c *cfg) (string, string) { return c.Level, "" },
		Run: func(ctx context.Context, c *cfg, log *slog.Logger) error {
			close(running)
			<-ctx.Done()
			return ctx.Err()
		},
		Reload: func(c *cfg, log *slog.Logger) error { reloads <- c.Level; return nil },
	}
	var stderr syncBuffer
	code := make(chan int, 1)
	go func() { code <- d.Execute(context.Background(), []string{"run", "--config", p}, io.Discard, &stderr) }()
	waitClosed(t, running)
	os.WriteFile(p, []byte("level: debug\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	select {
	case l := <-reloads:
		if l != "debug" {
			t.Fatalf("reloaded %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload after SIGHUP")
	}
	os.WriteFile(p, []byte("level: debug\nbogus: 1\n"), 0o644)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "reload rejected") })
	if !strings.Contains(stderr.String(), p+":2: bogus: unknown key") {
		t.Fatalf("rejection does not say why: %s", stderr.String())
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d: %s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not stop Run")
	}
	if len(reloads) != 0 {
		t.Fatal("a rejected file was reloaded")
	}
}

func TestRunFailureExits1(t *testing.T) {
	d := &Daemon[struct{}]{
		Name: "x",
		Load: func(string) (*struct{}, []string, error) { return &struct{}{}, nil, nil },
		Run:  func(context.Context, *struct{}, *slog.Logger) error { return errors.New("cannot bind") },
	}
	var stderr bytes.Buffer
	if code := d.Execute(context.Background(), []string{"run"}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "x: cannot bind") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := d.Execute(context.Background(), []string{"status"}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "no status command") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func TestBadLogLevelIsAConfigError(t *testing.T) {
	d := &Daemon[struct{}]{
		Name:        "x",
		Load:        func(string) (*struct{}, []string, error) { return &struct{}{}, nil, nil },
		LogSettings: func(*struct{}) (string, string) { return "loud", "" },
		Run:         func(context.Context, *struct{}, *slog.Logger) error { t.Fatal("ran"); return nil },
	}
	var stderr bytes.Buffer
	if code := d.Execute(context.Background(), []string{"run"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), `log level "loud"`) {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func TestCheckOKMessage(t *testing.T) {
	var got call
	d := witness(&got)
	d.CheckOK = "config ok"
	var stdout bytes.Buffer
	if code := d.Execute(context.Background(), []string{"-config", "/w.yaml", "-check"}, &stdout, io.Discard); code != 0 || stdout.String() != "config ok\n" {
		t.Fatalf("exit %d: %q", code, stdout.String())
	}
}

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

func waitClosed(t *testing.T, c chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
	}
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
