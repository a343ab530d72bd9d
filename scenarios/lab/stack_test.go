package lab

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func renderReference(t *testing.T, p Params) map[string]map[string]string {
	t.Helper()
	return renderStack(t, "reference", p)
}

func renderStack(t *testing.T, name string, p Params) map[string]map[string]string {
	t.Helper()
	s, err := LoadStack(name)
	if err != nil {
		t.Fatal(err)
	}
	p = p.withDefaults(s.Defaults)
	d := &renderData{Lab: "rhl-t", Params: p, Nodes: map[string]NodeInfo{}, VIP: netip.MustParseAddr("10.77.9.200"), Subnet: netip.MustParsePrefix("10.77.9.0/24")}
	for _, n := range s.Nodes {
		d.Nodes[n.Name] = NodeInfo{Name: n.Name, Role: n.Role, IP: netip.AddrFrom4([4]byte{10, 77, 9, byte(n.Host)}), Vars: n.Vars}
	}
	out := map[string]map[string]string{}
	for i := range s.Nodes {
		n := &s.Nodes[i]
		dd := *d
		dd.Self = d.Nodes[n.Name]
		files, _, err := s.render(n, &dd)
		if err != nil {
			t.Fatal(err)
		}
		out[n.Name] = map[string]string{}
		for k, v := range files {
			out[n.Name][k] = string(v)
		}
	}
	return out
}

func TestReferenceRendering(t *testing.T) {
	r := renderReference(t, Params{DownAfterMs: 1500, Persistence: "aof", MinReplicasToWrite: 1})
	for _, want := range []struct{ node, file, text string }{
		{"redis1", "/etc/redis/redis.conf", "bind 127.0.0.1 10.77.9.11"},
		{"redis1", "/etc/redis/redis.conf", "appendonly yes"},
		{"redis1", "/etc/redis/redis.conf", "min-replicas-to-write 1"},
		{"redis2", "/etc/redis/redis.conf", "replicaof 10.77.9.11 6379"},
		{"sentinel", "/etc/redis/sentinel.conf", "sentinel monitor mymaster 10.77.9.11 6379 2"},
		{"sentinel", "/etc/redis/sentinel.conf", "sentinel down-after-milliseconds mymaster 1500"},
		{"haproxy1", "/etc/haproxy/haproxy.cfg", "bind 10.77.9.200:6379 name redis"},
		{"haproxy1", "/etc/haproxy/haproxy.cfg", "server redis2 10.77.9.12:6379 check inter 1s"},
		{"haproxy1", "/etc/haproxy/haproxy.cfg", "tcp-check expect string role:master"},
		{"haproxy1", "/etc/keepalived/keepalived.conf", "state MASTER"},
		{"haproxy1", "/etc/keepalived/keepalived.conf", "priority 101"},
		{"haproxy2", "/etc/keepalived/keepalived.conf", "state BACKUP"},
		{"haproxy2", "/etc/keepalived/keepalived.conf", "priority 100"},
		{"haproxy2", "/etc/keepalived/keepalived.conf", "virtual_router_id 51"},
		{"haproxy2", initPath, "exec keepalived --dont-fork"},
	} {
		if !strings.Contains(r[want.node][want.file], want.text) {
			t.Errorf("%s %s lacks %q:\n%s", want.node, want.file, want.text, r[want.node][want.file])
		}
	}
	if strings.Contains(r["redis1"]["/etc/redis/redis.conf"], "replicaof") {
		t.Error("redis1 must not be a replica")
	}
	if strings.Contains(r["redis1"]["/etc/redis/sentinel.conf"], "daemonize yes") {
		t.Error("sentinel must not daemonize")
	}
}

// The redisha stack's daemons are told the ports, master name and admin address the harness
// reads from the same parameters (the recipe's by default, any others when set).
func TestRedishaRendering(t *testing.T) {
	for _, c := range []struct {
		p    Params
		want []struct{ node, file, text string }
	}{
		{Params{}, []struct{ node, file, text string }{
			{"haproxy1", "/etc/redisha/proxy.yaml", "listen: 0.0.0.0:6379"},
			{"haproxy1", "/etc/redisha/proxy.yaml", "admin: 127.0.0.1:9121"},
			{"haproxy1", "/etc/redisha/proxy.yaml", "master_name: mymaster"},
			{"haproxy1", "/etc/redisha/proxy.yaml", "  - 10.77.9.12:6379\n"},
			{"haproxy1", "/etc/redisha/proxy.yaml", "  - 10.77.9.13:26379\n"},
			// The VIP watches the local proxy's watch listener (fault semantics), at 200 ms adverts.
			{"haproxy1", "/etc/redisha/proxy.yaml", "watch_listen: 127.0.0.1:9122"},
			{"haproxy2", "/etc/redisha/vip.yaml", "watch: 127.0.0.1:9122"},
			{"haproxy2", "/etc/redisha/vip.yaml", "fault: true"},
			{"haproxy2", "/etc/redisha/vip.yaml", "advert_interval: 200ms"},
			{"sentinel", "/etc/redisha/witness.yaml", "port: 26379"},
			{"sentinel", "/etc/redisha/witness.yaml", "address: 10.77.9.11:6379"},
			{"redis2", "/etc/redis/redis.conf", "replicaof 10.77.9.11 6379"},
		}},
		{Params{RedisPort: 7000, SentinelPort: 27000, MasterName: "cache", ProxyAdmin: "127.0.0.1:9000"}, []struct{ node, file, text string }{
			{"haproxy1", "/etc/redisha/proxy.yaml", "listen: 0.0.0.0:7000"},
			{"haproxy1", "/etc/redisha/proxy.yaml", "admin: 127.0.0.1:9000"},
			{"haproxy1", "/etc/redisha/proxy.yaml", "master_name: cache"},
			{"haproxy1", "/etc/redisha/proxy.yaml", "  - 10.77.9.13:27000\n"},
			// The VIP watches the local proxy's watch listener (fault semantics), at 200 ms adverts.
			{"haproxy1", "/etc/redisha/proxy.yaml", "watch_listen: 127.0.0.1:9122"},
			{"haproxy2", "/etc/redisha/vip.yaml", "watch: 127.0.0.1:9122"},
			{"haproxy2", "/etc/redisha/vip.yaml", "fault: true"},
			{"haproxy2", "/etc/redisha/vip.yaml", "advert_interval: 200ms"},
			{"sentinel", "/etc/redisha/witness.yaml", "port: 27000"},
			{"redis1", "/etc/redis/sentinel.conf", "sentinel monitor cache 10.77.9.11 7000 2"},
			{"redis1", "/opt/redisha/sentinel-ready.sh", "redis-cli -p 27000 sentinel master cache"},
			{"redis2", "/etc/redis/redis.conf", "replicaof 10.77.9.11 7000"},
		}},
	} {
		r := renderStack(t, "redisha", c.p)
		for _, want := range c.want {
			if !strings.Contains(r[want.node][want.file], want.text) {
				t.Errorf("%+v: %s %s lacks %q:\n%s", c.p, want.node, want.file, want.text, r[want.node][want.file])
			}
		}
		// No track on /healthz: it answers 503 during every Redis failover.
		if v := r["haproxy2"]["/etc/redisha/vip.yaml"]; strings.Contains(v, "http:") {
			t.Errorf("%+v: vip.yaml tracks over HTTP:\n%s", c.p, v)
		}
	}
	ref := renderReference(t, Params{RedisPort: 7000, HAProxySocket: "/run/h.sock"})
	for _, text := range []string{"stats socket /run/h.sock ", "bind 10.77.9.200:7000 name redis", "server redis1 10.77.9.11:7000 check"} {
		if !strings.Contains(ref["haproxy1"]["/etc/haproxy/haproxy.cfg"], text) {
			t.Errorf("haproxy.cfg lacks %q", text)
		}
	}
}

func TestStackErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown field", "name: x\nnodez: []\n", "field nodez not found"},
		{"no nodes", "name: x\n", "no nodes"},
		{"bad node name", "name: x\nnodes:\n  - name: Redis\n    role: redis\n", "name \"Redis\""},
		{"reserved name", "name: x\nnodes:\n  - name: client\n    role: redis\n", "reserved"},
		{"host in vip range", "name: x\nnodes:\n  - name: a\n    role: redis\n    host: 200\n", "host 200"},
		{"duplicate host", "name: x\nnodes:\n  - name: a\n    role: r\n    host: 11\n  - name: b\n    role: r\n    host: 11\n", "already used"},
		{"missing template", "name: x\nnodes:\n  - name: a\n    role: r\n    files:\n      /etc/a: nope.tmpl\n", "nope.tmpl"},
		{"vip holder", "name: x\nvip:\n  host: 200\n  holders: [b]\nnodes:\n  - name: a\n    role: r\n", "vip holder \"b\""},
		{"bad duration", "name: x\ndefaults:\n  checkInterval: soon\nnodes:\n  - name: a\n    role: r\n", "soon"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "stack.yaml"), []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadStack(dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
	if _, err := LoadStack("nosuchstack"); err == nil || !strings.Contains(err.Error(), "built-in: redisha, reference") {
		t.Fatalf("unknown stack: %v", err)
	}
}

func TestBadPersistence(t *testing.T) {
	s, _ := LoadStack("reference")
	p := Params{Persistence: "sometimes"}.withDefaults(s.Defaults)
	d := &renderData{Params: p, Nodes: map[string]NodeInfo{"redis1": {IP: netip.MustParseAddr("10.77.9.11")}}}
	d.Self = NodeInfo{Name: "redis1"}
	if _, _, err := s.render(s.Node("redis1"), d); err == nil || !strings.Contains(err.Error(), "unknown persistence") {
		t.Fatalf("err %v", err)
	}
}

// The built-in stacks' defaults (camelCase in stack.yaml) read into the one parameter type.
func TestBuiltinStackDefaults(t *testing.T) {
	for _, name := range BuiltinStacks() {
		s, err := LoadStack(name)
		if err != nil {
			t.Fatal(err)
		}
		d := s.Defaults
		if d.DownAfterMs != 5000 || d.Quorum != 2 || d.CheckInterval.String() != "1s" || d.Persistence != "rdb" || d.VRRPAdvertInt != 1 {
			t.Errorf("%s: defaults %+v", name, d)
		}
	}
}
