package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigParses(t *testing.T) {
	c, err := LoadConfig("../dist/redisha-proxy.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Sentinels) != 3 || c.CoreConfig().Quorum() != 2 || c.Routing.HealthTTL != 3500*time.Millisecond {
		t.Fatalf("unexpected example config: %+v", c)
	}
}

func TestConfigDefaultsAndExplicitZero(t *testing.T) {
	c, err := ParseConfig([]byte("backends: [127.0.0.1:6379]\nrouting:\n  no_majority_grace: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.NoMajorityGrace != 0 {
		t.Fatalf("explicit 0 grace became %v", c.Routing.NoMajorityGrace)
	}
	if c.Check.Interval != time.Second || !c.Routing.CloseOnSwitch || c.Limits.MaxConnections != 10000 || c.Threads != 1 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown key with line", "backends: [127.0.0.1:1]\nlisten_addr: x\n", "config:2: listen_addr: unknown key"},
		{"typo in nested key", "backends: [127.0.0.1:1]\ncheck:\n  intervall: 1s\n", "config:3: check.intervall: unknown key"},
		{"bad duration", "backends: [127.0.0.1:1]\ncheck:\n  interval: fast\n", `config:3: check.interval: "fast" is not a duration`},
		{"wrong type", "backends: 127.0.0.1:1\n", "config:1: backends: want a list"},
		{"nothing to route to", "listen: 127.0.0.1:1\n", "need at least one backend or one sentinel"},
		{"bad address", "backends: [localhost]\n", `backends[0]: "localhost"`},
		{"duplicate sentinel", "sentinels: [127.0.0.1:1, 127.0.0.1:1]\n", "listed twice"},
		{"negative", "backends: [127.0.0.1:1]\nlimits:\n  max_connections: -1\n", "limits.max_connections"},
		{"negative threads", "backends: [127.0.0.1:1]\nthreads: -1\n", "config:2: threads: -1 must be 0 (one per CPU) or more"},
		{"ttl below interval", "backends: [127.0.0.1:1]\nrouting:\n  health_ttl: 10ms\n", "routing.health_ttl"},
		{"zero interval", "backends: [127.0.0.1:1]\ncheck:\n  interval: 0s\n", "must be positive"},
		{"two documents", "backends: [127.0.0.1:1]\n---\nbackends: [127.0.0.1:2]\n", "a second YAML document"},
		{"bad value names its line", "backends: [127.0.0.1:1]\nlimits:\n  max_connections: -1\n", "config:3: limits.max_connections"},
		{"log level", "backends: [127.0.0.1:1]\nlog:\n  level: loud\n", "log.level"},
		{"not yaml", "backends: [\n", "config:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	p := t.TempDir() + "/p.yaml"
	os.WriteFile(p, []byte("bogus: 1\n"), 0o644)
	if _, err := LoadConfig(p); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("error %v does not name the file", err)
	}
	if _, err := LoadConfig(p + ".missing"); err == nil {
		t.Fatal("missing file accepted")
	}
}

// The first release's "username" key still works, with a deprecation.
func TestOldAuthKeys(t *testing.T) {
	p := t.TempDir() + "/p.yaml"
	os.WriteFile(p, []byte("backends: [127.0.0.1:1]\nauth:\n  username: check\n  password: pw\nsentinel_auth:\n  username: s\n  password: spw\n"), 0o644)
	c, warnings, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := Finish(c); err != nil {
		t.Fatal(err)
	}
	if c.Auth.User != "check" || c.Auth.Password != "pw" || c.SentinelAuth.User != "s" || c.SentinelAuth.Password != "spw" {
		t.Fatalf("auth %+v / %+v", c.Auth, c.SentinelAuth)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "username") {
		t.Fatalf("deprecations %q", warnings)
	}
}
