package spec

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// RolePrefix marks a role where a fault names a node or a daemon: "role:master" instead of
// "redis1", "role:proxy" instead of "haproxy". Roles resolve against the stack a run uses (which
// node runs which daemon, and who is master and holds the VIP when the workload starts), so one
// scenario applies to every stack whatever its node and program names. Plain names still work.
const RolePrefix = "role:"

// NodeRoles are the roles a fault may name in targets, a and b, with what each resolves to.
var NodeRoles = map[string]string{
	"master":        "the node whose redis-server is the quorum's master when the workload starts",
	"replica":       "a replica: the first other node running redis-server, in stack order",
	"replicas":      "every node running redis-server but the master",
	"proxy-active":  "the active proxy node: the node holding the VIP when the workload starts (no VIP: the first proxy node)",
	"proxy-standby": "the first proxy node that is not the active one",
	"proxies":       "every node running a proxy daemon",
	"quorum":        "the dedicated quorum node(s): a sentinel daemon and no redis-server",
	"sentinels":     "every node running a sentinel daemon (redis-sentinel or redisha-witness)",
}

// Daemon roles a fault may name in daemon. Each resolves, on every target node, to the program
// that plays the role there.
const (
	DaemonRedis    = "redis"    // redis-server
	DaemonSentinel = "sentinel" // redis-sentinel, redisha-witness: vote on failovers, answer SENTINEL queries
	DaemonProxy    = "proxy"    // haproxy, redisha-proxy: where clients connect
	DaemonVIP      = "vip"      // keepalived, redisha-vip: who holds the VIP
)

// DaemonRoles describes each daemon role.
var DaemonRoles = map[string]string{
	DaemonRedis:    "the redis-server",
	DaemonSentinel: "the sentinel daemon (redis-sentinel or redisha-witness)",
	DaemonProxy:    "the proxy daemon (haproxy or redisha-proxy)",
	DaemonVIP:      "the VIP daemon (keepalived or redisha-vip)",
}

// KnownDaemons maps the programs the harness knows to their role; a stack names the role of
// any other daemon in its stack.yaml.
var KnownDaemons = map[string]string{
	"redis-server":    DaemonRedis,
	"redis-sentinel":  DaemonSentinel,
	"redisha-witness": DaemonSentinel,
	"haproxy":         DaemonProxy,
	"redisha-proxy":   DaemonProxy,
	"keepalived":      DaemonVIP,
	"redisha-vip":     DaemonVIP,
}

// RoleName returns the role a name stands for, if it is one ("role:master" -> "master").
func RoleName(name string) (string, bool) { return strings.CutPrefix(name, RolePrefix) }

// Roles is what role names resolve to on one run's stack.
type Roles struct {
	// Nodes maps each node role to its nodes, in stack order (absent or empty: none).
	Nodes map[string][]string
	// Daemons maps node -> daemon role -> the daemon's name on that node.
	Daemons map[string]map[string]string
}

// Topology is what the runner knows of a stack when the workload starts: each node's daemons
// with their roles, the quorum's master and the VIP holders.
type Topology struct {
	Nodes      []TopologyNode // in stack order
	Master     string         // node name of the quorum's master
	VIPHolders []string       // nodes holding the VIP
}

// TopologyNode is one node and its daemons (daemon name -> role).
type TopologyNode struct {
	Name    string
	Daemons map[string]string
}

// ResolveRoles derives every role from a stack's topology.
func ResolveRoles(t Topology) Roles {
	r := Roles{Nodes: map[string][]string{}, Daemons: map[string]map[string]string{}}
	add := func(role, node string) {
		if !slices.Contains(r.Nodes[role], node) {
			r.Nodes[role] = append(r.Nodes[role], node)
		}
	}
	var proxies []string
	for _, n := range t.Nodes {
		has := map[string]bool{}
		r.Daemons[n.Name] = map[string]string{}
		names := make([]string, 0, len(n.Daemons))
		for d := range n.Daemons {
			names = append(names, d)
		}
		sort.Strings(names)
		for _, d := range names {
			role := n.Daemons[d]
			has[role] = true
			if _, ok := r.Daemons[n.Name][role]; !ok {
				r.Daemons[n.Name][role] = d
			}
		}
		switch {
		case has[DaemonRedis] && n.Name == t.Master:
			add("master", n.Name)
		case has[DaemonRedis]:
			add("replicas", n.Name)
		}
		if has[DaemonSentinel] {
			add("sentinels", n.Name)
			if !has[DaemonRedis] {
				add("quorum", n.Name)
			}
		}
		if has[DaemonProxy] {
			proxies = append(proxies, n.Name)
			add("proxies", n.Name)
		}
	}
	if reps := r.Nodes["replicas"]; len(reps) > 0 {
		r.Nodes["replica"] = reps[:1]
	}
	active := ""
	for _, p := range proxies {
		if slices.Contains(t.VIPHolders, p) {
			active = p
			break
		}
	}
	if active == "" && len(proxies) > 0 {
		active = proxies[0]
	}
	if active != "" {
		r.Nodes["proxy-active"] = []string{active}
	}
	for _, p := range proxies {
		if p != active {
			r.Nodes["proxy-standby"] = []string{p}
			break
		}
	}
	return r
}

// nodes expands a list of node names and node roles into node names, without repeats.
func (r Roles) nodes(list []string) ([]string, error) {
	var out []string
	for _, n := range list {
		role, ok := RoleName(n)
		if !ok {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
			continue
		}
		got := r.Nodes[role]
		if len(got) == 0 {
			if _, known := NodeRoles[role]; !known {
				return nil, fmt.Errorf("%s: no such role (roles: %s)", n, strings.Join(roleList(NodeRoles), ", "))
			}
			return nil, fmt.Errorf("%s (%s): the stack has none", n, NodeRoles[role])
		}
		for _, g := range got {
			if !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	return out, nil
}

// Daemon returns the daemon name a fault's daemon field means on node: itself when it is a
// program name, the node's program for that role when it is a role.
func (r Roles) Daemon(node, daemon string) (string, error) {
	role, ok := RoleName(daemon)
	if !ok {
		return daemon, nil
	}
	if _, known := DaemonRoles[role]; !known {
		return "", fmt.Errorf("%s: no such daemon role (roles: %s)", daemon, strings.Join(roleList(DaemonRoles), ", "))
	}
	d, ok := r.Daemons[node][role]
	if !ok {
		return "", fmt.Errorf("%s (%s): node %s runs none", daemon, DaemonRoles[role], node)
	}
	return d, nil
}

// Resolve returns a copy of s whose faults name nodes and daemons, not roles. A fault with a
// daemon role keeps it only when its targets run different programs for it (each target then
// resolves on its own, with Roles.Daemon); every target is checked here.
func (s *Scenario) Resolve(r Roles) (*Scenario, error) {
	out := *s
	out.Faults = make([]Fault, len(s.Faults))
	var errs []string
	for i, f := range s.Faults {
		at := fmt.Sprintf("faults[%d]", i)
		var err error
		if f.Targets, err = r.nodes(f.Targets); err != nil {
			errs = append(errs, at+".targets: "+err.Error())
		}
		if f.A, err = r.nodes(f.A); err != nil {
			errs = append(errs, at+".a: "+err.Error())
		}
		if f.B, err = r.nodes(f.B); err != nil {
			errs = append(errs, at+".b: "+err.Error())
		}
		for _, a := range f.A {
			if slices.Contains(f.B, a) {
				errs = append(errs, fmt.Sprintf("%s: %s is on both sides once roles are resolved", at, a))
			}
		}
		if f.Pick > len(f.Targets) {
			errs = append(errs, fmt.Sprintf("%s.pick: %d, but the targets resolve to %d node(s)", at, f.Pick, len(f.Targets)))
		}
		if _, isRole := RoleName(f.Daemon); isRole {
			names := map[string]bool{}
			for _, t := range f.Targets {
				d, err := r.Daemon(t, f.Daemon)
				if err != nil {
					errs = append(errs, at+".daemon: "+err.Error())
					continue
				}
				names[d] = true
			}
			if len(names) == 1 {
				for d := range names {
					f.Daemon = d
				}
			}
		}
		out.Faults[i] = f
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", s.Source, strings.Join(errs, "; "))
	}
	return &out, nil
}

func roleList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, RolePrefix+k)
	}
	sort.Strings(out)
	return out
}
