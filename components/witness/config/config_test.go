package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const good = `
bind: [127.0.0.1]
port: 26390
state_file: /tmp/x.json
masters:
  - name: mymaster
    address: 10.0.0.1:6379
    quorum: 2
    down_after: 1500
    failover_timeout: 10s
`

func TestParseGood(t *testing.T) {
	f, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(f.Masters[0].DownAfter) != 1500*time.Millisecond || time.Duration(f.Masters[0].FailoverTimeout) != 10*time.Second {
		t.Fatalf("durations %v %v", f.Masters[0].DownAfter, f.Masters[0].FailoverTimeout)
	}
	o, err := f.Options()
	if err != nil || o.Port != 26390 || !o.ProtectedMode || o.Core.Masters[0].Addr.Port != 6379 {
		t.Fatalf("%+v %v", o, err)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"empty", "", "the file is empty"},
		{"no masters", "port: 26379\n", "at least one master"},
		{"typo", good + "requirepas: x\n", "config:11: requirepas: unknown key"},
		{"second document", good + "---\nport: 1\n", "a second YAML document"},
		{"bad port", strings.Replace(good, "26390", "70000", 1), "port"},
		{"protected", strings.Replace(good, "[127.0.0.1]", "[0.0.0.0]", 1), "protected mode"},
		{"hostname master", strings.Replace(good, "10.0.0.1:6379", "redis1:6379", 1), "not an IP"},
		{"no port", strings.Replace(good, "10.0.0.1:6379", "10.0.0.1", 1), "ip:port"},
		{"quorum", strings.Replace(good, "quorum: 2", "quorum: 0", 1), "quorum"},
		{"duration", strings.Replace(good, "down_after: 1500", "down_after: soon", 1), "not a duration"},
		{"log", good + "log_level: loud\n", "log_level"},
		{"announce", good + "announce_ip: 'a,b'\n", "announce_ip"},
		{"yaml", "masters: [", "config:1: YAML syntax"},
		{"metrics garbage", good + "metrics_listen: garbage\n", "metrics_listen: \"garbage\": want ip:port"},
		{"metrics host", good + "metrics_listen: 'metrics.example:9479'\n", "not an IP address"},
		{"metrics port", good + "metrics_listen: '127.0.0.1:99999'\n", "not a TCP port"},
		{"announce hostname", good + "announce_ip: witness.example\n", "announce_ip"},
		{"max peers", good + "max_peers: -1\n", "max_peers"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestProtectedModeOffOrPassword(t *testing.T) {
	open := strings.Replace(good, "[127.0.0.1]", "[0.0.0.0]", 1)
	if _, err := Parse([]byte(open + "requirepass: s3cret\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse([]byte(open + "protected_mode: false\n")); err != nil {
		t.Fatal(err)
	}
}

func TestExampleConfigParses(t *testing.T) {
	f, dep, err := Load("../dist/witness.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Masters[0].Name != "mymaster" || f.RequirePass == "" || f.Masters[0].Auth.Password != "node-secret" || len(dep) != 0 {
		t.Fatalf("%+v deprecations %v", f, dep)
	}
}

// TestLegacyExampleConfig: the example config as shipped before confkit
// (flat auth keys) loads to the same options, with one deprecation line per
// old key.
func TestLegacyExampleConfig(t *testing.T) {
	old, dep, err := Load("testdata/witness.legacy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cur, _, err := Load("../dist/witness.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	oo, _ := old.Options()
	co, _ := cur.Options()
	if fmt.Sprintf("%+v", oo) != fmt.Sprintf("%+v", co) {
		t.Fatalf("legacy example differs:\n%+v\n%+v", oo, co)
	}
	want := []string{"sentinel_user", "sentinel_pass", "masters[0].auth_user", "masters[0].auth_pass"}
	if len(dep) != len(want) {
		t.Fatalf("deprecations %q", dep)
	}
	for i, w := range want {
		if !strings.Contains(dep[i], w) || !strings.Contains(dep[i], "witness.legacy.yaml:") {
			t.Errorf("deprecation %q does not name %s with its line", dep[i], w)
		}
	}
	if oo.MasterAuth["mymaster"].Pass != "node-secret" {
		t.Fatalf("auth_pass lost: %+v", oo.MasterAuth)
	}
}
