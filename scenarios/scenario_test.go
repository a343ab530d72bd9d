package scenarios

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/lab"
	"github.com/redisha/redisha/scenarios/spec"
)

// referenceNodes are the node names of the built-in reference stack.
var referenceNodes = map[string]bool{"redis1": true, "redis2": true, "sentinel": true, "haproxy1": true, "haproxy2": true, "client": true}

func TestCatalog(t *testing.T) {
	all, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"master-crash", "master-crash-restart-fast", "master-freeze-long", "master-freeze-short",
		"master-replica-partition", "master-minority", "master-isolated", "sentinel-crash", "sentinel-partitioned",
		"proxy-crash", "proxy-process-killed", "proxy-partition", "old-master-returns", "replica-crash",
		"replica-lagging", "sentinel-latency", "sentinel-latency-low", "flapping-link", "master-and-proxy-crash", "rolling-restart"}
	have := map[string]*spec.Scenario{}
	for _, s := range all {
		have[s.Name] = s
		if s.Description == "" {
			t.Errorf("%s: no description", s.Name)
		}
		if s.Expect.Failover == nil {
			t.Errorf("%s: states no failover expectation", s.Name)
		}
		// Every catalog scenario resolves on the reference stack to its nodes (roles included).
		res, err := s.Resolve(referenceRoles(t))
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		for _, f := range res.Faults {
			for _, n := range append(append(append([]string(nil), f.Targets...), f.A...), f.B...) {
				if !referenceNodes[n] {
					t.Errorf("%s: fault names %q, not a node of the reference stack", s.Name, n)
				}
			}
		}
	}
	for _, n := range want {
		if have[n] == nil {
			t.Errorf("catalog lacks %s", n)
		}
	}
	for _, n := range DemoScenarios {
		if have[n] == nil {
			t.Errorf("demo names %s, not in the catalog", n)
		}
	}
}

func TestTimelineWithoutRandomness(t *testing.T) {
	s, err := Load("rolling-restart")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Timeline(1), s.Timeline(999)) {
		t.Fatal("a fixed timeline depends on the seed")
	}
	res, err := s.Resolve(referenceRoles(t))
	if err != nil {
		t.Fatal(err)
	}
	tl := res.Timeline(1)
	if len(tl) != 5 || tl[4].Fault.Targets[0] != "redis1" || tl[4].At != 36*time.Second {
		t.Fatalf("timeline: %+v", tl)
	}
}

// referenceRoles are the roles of the reference stack as it starts: redis1 master, haproxy1
// holding the VIP.
func referenceRoles(t *testing.T) spec.Roles {
	t.Helper()
	st, err := lab.LoadStack("reference")
	if err != nil {
		t.Fatal(err)
	}
	return spec.ResolveRoles(topology(st, "redis1", []string{"haproxy1"}))
}

// Roles resolve from each stack's description: the catalog's names mean the same places on the
// reference and redisha stacks (and the proxy daemon is each one's own program), and follow the
// state the workload starts in (a promoted replica is "the master").
func TestRolesOnBuiltinStacks(t *testing.T) {
	pk, err := Load("proxy-process-killed")
	if err != nil {
		t.Fatal(err)
	}
	for stack, want := range map[string]string{"reference": "haproxy", "redisha": "redisha-proxy"} {
		st, err := lab.LoadStack(stack)
		if err != nil {
			t.Fatal(err)
		}
		roles := spec.ResolveRoles(topology(st, "redis2", []string{"haproxy2"}))
		for role, nodes := range map[string]string{"master": "redis2", "replica": "redis1", "replicas": "redis1", "quorum": "sentinel",
			"sentinels": "redis1,redis2,sentinel", "proxy-active": "haproxy2", "proxy-standby": "haproxy1", "proxies": "haproxy1,haproxy2"} {
			if got := strings.Join(roles.Nodes[role], ","); got != nodes {
				t.Errorf("%s: role:%s = %s, want %s", stack, role, got, nodes)
			}
		}
		res, err := pk.Resolve(roles)
		if err != nil {
			t.Fatal(err)
		}
		f := res.Faults[0]
		if len(f.Targets) != 1 || f.Targets[0] != "haproxy2" || f.Daemon != want {
			t.Errorf("%s: proxy-process-killed resolves to %+v, want %s on haproxy2", stack, f, want)
		}
		specs, err := specs(res.Timeline(1)[0], roles)
		if err != nil || len(specs) != 1 || specs[0].Daemon != want || specs[0].Node != "haproxy2" {
			t.Errorf("%s: injector specs %+v %v", stack, specs, err)
		}
		for _, d := range []struct{ role, name string }{{"role:vip", map[string]string{"reference": "keepalived", "redisha": "redisha-vip"}[stack]},
			{"role:sentinel", "redis-sentinel"}, {"role:redis", "redis-server"}} {
			if got, err := roles.Daemon("redis1", d.role); d.role != "role:vip" && (err != nil || got != d.name) {
				t.Errorf("%s: redis1 %s = %q %v", stack, d.role, got, err)
			}
			if got, err := roles.Daemon("haproxy1", d.role); d.role == "role:vip" && (err != nil || got != d.name) {
				t.Errorf("%s: haproxy1 %s = %q %v", stack, d.role, got, err)
			}
		}
		if got, err := roles.Daemon("sentinel", "role:sentinel"); err != nil || got != map[string]string{"reference": "redis-sentinel", "redisha": "redisha-witness"}[stack] {
			t.Errorf("%s: the quorum node's sentinel daemon is %q %v", stack, got, err)
		}
	}
}

// A stack without what a role names fails before anything runs, naming the role.
func TestRoleErrors(t *testing.T) {
	s, err := spec.Parse("x.yaml", []byte("name: x\nfaults:\n  - {at: 1s, kind: crash, targets: [role:quorum], daemon: role:proxy}\n  - {at: 2s, kind: partition, a: [role:master], b: [role:replicas]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	roles := spec.ResolveRoles(spec.Topology{Master: "a", Nodes: []spec.TopologyNode{
		{Name: "a", Daemons: map[string]string{"redis-server": "redis"}},
		{Name: "q", Daemons: map[string]string{"redis-sentinel": "sentinel"}}}})
	_, err = s.Resolve(roles)
	if err == nil || !strings.Contains(err.Error(), "faults[0].daemon: role:proxy") || !strings.Contains(err.Error(), "faults[1].b: role:replicas") {
		t.Fatalf("err %v", err)
	}
	if _, err := spec.Parse("x.yaml", []byte("name: x\nfaults:\n  - {at: 1s, kind: crash, targets: [role:boss], daemon: role:db}\n")); err == nil ||
		!strings.Contains(err.Error(), "role:boss: no such role") || !strings.Contains(err.Error(), "role:db: no such daemon role") {
		t.Fatalf("unknown roles: %v", err)
	}
}

func TestLoadUnknown(t *testing.T) {
	if _, err := Load("no-such-scenario"); err == nil || !strings.Contains(err.Error(), "master-crash") {
		t.Fatalf("err = %v", err)
	}
}

func TestVariantParams(t *testing.T) {
	v, ok := variant("reference-minreplicas")
	if !ok || v.Base != "reference" {
		t.Fatal("no reference-minreplicas variant")
	}
	got := spec.StackParams{DownAfterMs: 2000, MinReplicasMaxLag: 5}.Merge(v.Params)
	if got.DownAfterMs != 2000 || got.MinReplicasToWrite != 1 || got.MinReplicasMaxLag != 5 {
		t.Fatalf("scenario params must win over the variant's: %+v", got)
	}
}

func TestBuiltinKnownVerdicts(t *testing.T) {
	all, err := Catalog()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range all {
		names[s.Name] = true
	}
	for _, stack := range []string{"reference", "reference-minreplicas"} {
		k, err := LoadKnown(stack, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(k) == 0 {
			t.Fatalf("%s: no known findings loaded", stack)
		}
		for sc := range k {
			if !names[sc] {
				t.Errorf("%s: known verdicts for %q, not a catalog scenario", stack, sc)
			}
		}
	}
	if _, err := ParseKnown("k.yaml", []byte("master-crash:\n  lost-writes: {status: pass, why: x}\n")); err == nil {
		t.Error("a known verdict of pass accepted")
	}
	if _, err := ParseKnown("k.yaml", []byte("master-crash:\n  lost-writes: {status: fail}\n")); err == nil {
		t.Error("a known finding without a reason accepted")
	}
	if _, err := ParseKnown("k.yaml", []byte("proxy-partition:\n  vip-dual-holders: {status: fail, why: VRRP has no quorum}\n")); err != nil {
		t.Errorf("a known VIP finding refused: %v", err)
	}
	if _, err := ParseKnown("k.yaml", []byte("master-crash:\n  lost: {status: fail, why: x}\n")); err == nil {
		t.Error("an unknown check accepted")
	}
}
