package result

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// StackParams are the knobs of a stack: its stack.yaml's defaults, a scenario's stack.params and
// a built-in variant's overrides are all this one type, and the stack's templates read it as
// .Params. Zero values mean "not set" (Merge takes them from underneath).
//
// In YAML every field has two spellings: the kebab-case of scenario files (down-after-ms,
// check-interval-ms in milliseconds) and the camelCase of stack files (downAfterMs,
// checkInterval as a duration). JSON (result.json, lab state files) uses the camelCase names.
type StackParams struct {
	DownAfterMs        int      `json:"downAfterMs,omitempty"`
	FailoverTimeoutMs  int      `json:"failoverTimeoutMs,omitempty"`
	Quorum             int      `json:"quorum,omitempty"`
	CheckInterval      Interval `json:"checkInterval,omitempty"` // proxy health-check interval
	Persistence        string   `json:"persistence,omitempty"`   // none, rdb, aof, aof-always
	MinReplicasToWrite int      `json:"minReplicasToWrite,omitempty"`
	MinReplicasMaxLag  int      `json:"minReplicasMaxLag,omitempty"`
	VRRPAdvertInt      int      `json:"vrrpAdvertInt,omitempty"` // seconds
	// Durability is the proxies' acknowledgement mode where a stack has one (the redisha
	// stack's redisha-proxy: async or replicated, docs/durability.md); "" keeps the proxy's own
	// default.
	Durability string `json:"durability,omitempty"`
	// Guard runs redisha-guard before every start of redis-server where a stack supports it
	// (the redisha stack: docs/guard.md). Off unless set: zero is "not set" like every field,
	// so a variant can turn it on and nothing underneath turns it off.
	Guard bool `json:"guard,omitempty"`
	// Where the harness finds the stack's daemons (Conventions when a stack says nothing):
	// redis-server's and the sentinels' ports, the name the sentinels monitor, HAProxy's admin
	// socket and redisha-proxy's admin HTTP address, both as seen inside their node.
	RedisPort     int    `json:"redisPort,omitempty"`
	SentinelPort  int    `json:"sentinelPort,omitempty"`
	MasterName    string `json:"masterName,omitempty"`
	HAProxySocket string `json:"haproxySocket,omitempty"`
	ProxyAdmin    string `json:"proxyAdmin,omitempty"`
	// Extra carries stack-specific values for templates (.Params.Extra.key).
	Extra map[string]string `json:"extra,omitempty"`
}

// Conventions are the recipe's ports and names, under every stack's defaults: a stack that
// uses others says so in its stack.yaml (redisPort, sentinelPort, masterName, haproxySocket,
// proxyAdmin) and the harness follows.
var Conventions = StackParams{RedisPort: 6379, SentinelPort: 26379, MasterName: "mymaster",
	HAProxySocket: "/run/haproxy/admin.sock", ProxyAdmin: "127.0.0.1:9121"}

// paramKeys maps every accepted YAML key to how it sets a field.
var paramKeys = map[string]func(p *StackParams, n *yaml.Node) error{
	"down-after-ms":         intField(func(p *StackParams) *int { return &p.DownAfterMs }),
	"failover-timeout-ms":   intField(func(p *StackParams) *int { return &p.FailoverTimeoutMs }),
	"quorum":                intField(func(p *StackParams) *int { return &p.Quorum }),
	"min-replicas-to-write": intField(func(p *StackParams) *int { return &p.MinReplicasToWrite }),
	"min-replicas-max-lag":  intField(func(p *StackParams) *int { return &p.MinReplicasMaxLag }),
	"vrrp-advert-int":       intField(func(p *StackParams) *int { return &p.VRRPAdvertInt }),
	"check-interval-ms": func(p *StackParams, n *yaml.Node) error {
		var ms int
		if err := n.Decode(&ms); err != nil {
			return err
		}
		p.CheckInterval = Interval(time.Duration(ms) * time.Millisecond)
		return nil
	},
	"check-interval": func(p *StackParams, n *yaml.Node) error { return p.CheckInterval.UnmarshalYAML(n) },
	"persistence":    func(p *StackParams, n *yaml.Node) error { return n.Decode(&p.Persistence) },
	"extra":          func(p *StackParams, n *yaml.Node) error { return n.Decode(&p.Extra) },
	"redis-port":     intField(func(p *StackParams) *int { return &p.RedisPort }),
	"sentinel-port":  intField(func(p *StackParams) *int { return &p.SentinelPort }),
	"master-name":    func(p *StackParams, n *yaml.Node) error { return n.Decode(&p.MasterName) },
	"haproxy-socket": func(p *StackParams, n *yaml.Node) error { return n.Decode(&p.HAProxySocket) },
	"proxy-admin":    func(p *StackParams, n *yaml.Node) error { return n.Decode(&p.ProxyAdmin) },
	"durability": func(p *StackParams, n *yaml.Node) error {
		if err := n.Decode(&p.Durability); err != nil {
			return err
		}
		if p.Durability != "async" && p.Durability != "replicated" {
			return fmt.Errorf("%q is not async or replicated", p.Durability)
		}
		return nil
	},
	"guard": func(p *StackParams, n *yaml.Node) error { return n.Decode(&p.Guard) },
}

// paramAliases are the stack files' camelCase spellings.
var paramAliases = map[string]string{
	"downAfterMs": "down-after-ms", "failoverTimeoutMs": "failover-timeout-ms", "checkInterval": "check-interval",
	"minReplicasToWrite": "min-replicas-to-write", "minReplicasMaxLag": "min-replicas-max-lag", "vrrpAdvertInt": "vrrp-advert-int",
	"redisPort": "redis-port", "sentinelPort": "sentinel-port", "masterName": "master-name", "haproxySocket": "haproxy-socket",
	"proxyAdmin": "proxy-admin",
}

func intField(f func(*StackParams) *int) func(*StackParams, *yaml.Node) error {
	return func(p *StackParams, n *yaml.Node) error { return n.Decode(f(p)) }
}

// UnmarshalYAML reads either spelling strictly: an unknown key, or one field set under both of
// its spellings, is an error.
func (p *StackParams) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		if n.Tag == "!!null" {
			return nil
		}
		return fmt.Errorf("line %d: stack parameters must be a mapping", n.Line)
	}
	var out StackParams
	seen := map[string]string{} // field -> the key that set it
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if canon, ok := paramAliases[key]; ok {
			key = canon
		}
		set, ok := paramKeys[key]
		if !ok {
			return fmt.Errorf("line %d: unknown field %s", k.Line, k.Value)
		}
		field := key
		if key == "check-interval-ms" {
			field = "check-interval" // milliseconds or a duration: the same field
		}
		if prev, dup := seen[field]; dup {
			return fmt.Errorf("line %d: %s sets the same parameter as %s", k.Line, k.Value, prev)
		}
		seen[field] = k.Value
		if err := set(&out, v); err != nil {
			return fmt.Errorf("line %d: %s: %w", v.Line, k.Value, err)
		}
	}
	*p = out
	return nil
}

// Merge returns p with every zero field taken from under: a scenario's parameters over a
// variant's, and those over the stack's defaults. Extra values merge key by key.
func (p StackParams) Merge(under StackParams) StackParams {
	pick := func(a, b int) int {
		if a != 0 {
			return a
		}
		return b
	}
	out := p
	out.DownAfterMs = pick(p.DownAfterMs, under.DownAfterMs)
	out.FailoverTimeoutMs = pick(p.FailoverTimeoutMs, under.FailoverTimeoutMs)
	out.Quorum = pick(p.Quorum, under.Quorum)
	out.CheckInterval = Interval(pick(int(p.CheckInterval), int(under.CheckInterval)))
	out.MinReplicasToWrite = pick(p.MinReplicasToWrite, under.MinReplicasToWrite)
	out.MinReplicasMaxLag = pick(p.MinReplicasMaxLag, under.MinReplicasMaxLag)
	out.VRRPAdvertInt = pick(p.VRRPAdvertInt, under.VRRPAdvertInt)
	out.RedisPort = pick(p.RedisPort, under.RedisPort)
	out.SentinelPort = pick(p.SentinelPort, under.SentinelPort)
	str := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	out.Persistence = str(p.Persistence, under.Persistence)
	out.MasterName = str(p.MasterName, under.MasterName)
	out.HAProxySocket = str(p.HAProxySocket, under.HAProxySocket)
	out.ProxyAdmin = str(p.ProxyAdmin, under.ProxyAdmin)
	out.Durability = str(p.Durability, under.Durability)
	out.Guard = p.Guard || under.Guard
	out.Extra = map[string]string{}
	maps.Copy(out.Extra, under.Extra)
	maps.Copy(out.Extra, p.Extra)
	return out
}

// Interval is a time.Duration that reads "1s" from YAML and renders as HAProxy and humans
// expect ("1s", "500ms"), in templates and in JSON.
type Interval time.Duration

// UnmarshalYAML accepts Go duration strings.
func (d *Interval) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Interval(v)
	return nil
}

// String renders the duration in HAProxy's syntax (whole ms).
func (d Interval) String() string {
	ms := time.Duration(d).Milliseconds()
	if ms%1000 == 0 {
		return fmt.Sprintf("%ds", ms/1000)
	}
	return fmt.Sprintf("%dms", ms)
}

// MarshalJSON writes the duration as Go prints it ("1s", "1.5s"), as result.json always has.
func (d Interval) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string, or nanoseconds as older lab state files hold them.
func (d *Interval) UnmarshalJSON(b []byte) error {
	if ns, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*d = Interval(ns)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Interval(v)
	return err
}
