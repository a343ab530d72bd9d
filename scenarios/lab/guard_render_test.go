package lab

import (
	"strings"
	"testing"
)

// The redisha stack with the redisha-durable variant's parameters (scenarios/variants.go:
// durability replicated, guard on) renders a proxy in replicated mode and runs redisha-guard
// before every start of redis-server; without them the proxy has no durability key and
// redis-server starts directly, as before.
func TestRedishaGuardAndDurabilityRendering(t *testing.T) {
	on := renderStack(t, "redisha", Params{Durability: "replicated", Guard: true})
	for _, want := range []struct{ node, file, text string }{
		{"haproxy1", "/etc/redisha/proxy.yaml", "\ndurability: replicated\n"},
		{"haproxy2", "/etc/redisha/proxy.yaml", "\ndurability_no_replica: refuse\n"},
		{"haproxy2", "/etc/redisha/proxy.yaml", "\ndurability_replicas: 1\n"},
		{"redis1", initPath, "'redis-server') (setsid sh -c 'exec /opt/redisha/redis-start.sh'"},
		{"redis2", initPath, "'redis-server') (setsid sh -c 'exec /opt/redisha/redis-start.sh'"},
		{"redis1", "/opt/redisha/redis-start.sh", "args=$(/opt/redisha/bin/redisha-guard run --config /etc/redisha/guard.yaml) || {"},
		{"redis1", "/opt/redisha/redis-start.sh", "exec redis-server /etc/redis/redis.conf $args\n"},
		{"redis1", "/etc/redisha/guard.yaml", "self: 10.77.9.11:6379\n"},
		{"redis2", "/etc/redisha/guard.yaml", "self: 10.77.9.12:6379\n"},
		// redis-sentinels before the witness, which refuses SENTINEL FAILOVER.
		{"redis2", "/etc/redisha/guard.yaml", "sentinels:\n  - 10.77.9.11:26379\n  - 10.77.9.12:26379\n  - 10.77.9.13:26379\n"},
		{"redis2", "/etc/redisha/guard.yaml", "master_name: mymaster\n"},
		{"redis2", "/etc/redisha/guard.yaml", "rdb: /var/lib/redis/dump.rdb\n"},
		{"redis2", "/etc/redisha/guard.yaml", "print: true\n"},
	} {
		if !strings.Contains(on[want.node][want.file], want.text) {
			t.Errorf("%s %s lacks %q:\n%s", want.node, want.file, want.text, on[want.node][want.file])
		}
	}
	async := renderStack(t, "redisha", Params{Durability: "replicated", Extra: map[string]string{"durabilityNoReplica": "async"}})
	if p := async["haproxy1"]["/etc/redisha/proxy.yaml"]; !strings.Contains(p, "\ndurability_no_replica: async\n") {
		t.Errorf("extra.durabilityNoReplica async not rendered:\n%s", p)
	}
	aof := renderStack(t, "redisha", Params{Guard: true, Persistence: "aof"})
	if g := aof["redis1"]["/etc/redisha/guard.yaml"]; !strings.Contains(g, "appendonly: true\naof_dir: /var/lib/redis/appendonlydir\n") {
		t.Errorf("aof persistence: guard.yaml does not say so:\n%s", g)
	}

	off := renderStack(t, "redisha", Params{})
	if p := off["haproxy1"]["/etc/redisha/proxy.yaml"]; strings.Contains(p, "durability") {
		t.Errorf("plain redisha: proxy.yaml sets durability:\n%s", p)
	}
	for _, node := range []string{"redis1", "redis2"} {
		init := off[node][initPath]
		if !strings.Contains(init, "'redis-server') (setsid sh -c 'exec redis-server /etc/redis/redis.conf'") || strings.Contains(init, "redis-start.sh") {
			t.Errorf("plain redisha: %s starts redis-server through the guard:\n%s", node, init)
		}
	}
}
