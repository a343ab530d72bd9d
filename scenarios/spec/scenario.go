// Package spec is the scenario file format: the schema (stack, workload, fault timeline,
// expectations), its strict parser and validation, the stack parameters shared with the lab's
// templates, and the fault timeline a seed resolves. It is pure data and arithmetic: no Docker,
// lab, network or client code, so the simulator can read scenarios too.
package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/redisha/redisha/scenarios/result"
)

// Defaults recorded in every result, so a reader knows what the clients did.
const (
	DefaultClientTimeout   = 200 * time.Millisecond
	DefaultClientRetries   = 0
	DefaultClients         = 4
	DefaultRate            = 200 // ops per second, all clients together
	DefaultKeys            = 8
	DefaultDuration        = 40 * time.Second
	DefaultConvergeTimeout = 60 * time.Second
	DefaultLinTimeout      = 20 * time.Second
	DefaultStack           = "reference"
)

// The parts of a scenario that a result records are defined in package result, so result.json
// is typed without the result model depending on this parser; here they are the schema's own.
type (
	// Duration is a time.Duration written as "200ms", "5s", "1m30s" in YAML.
	Duration = result.Duration
	// Workload describes the clients.
	Workload = result.Workload
	// Mix weighs the operation kinds.
	Mix = result.Mix
	// Expect holds the expectations. Unset ones are measured and reported, never judged.
	Expect = result.Expect
	// Failover is an expected failover count; YAML accepts none, one, or a number.
	Failover = result.Failover
	// StackParams are the stack parameters, the one type shared by scenario files, stack files,
	// the lab's templates and results.
	StackParams = result.StackParams
	// Interval is the parameters' duration type, rendered in HAProxy's syntax.
	Interval = result.Interval
	// PubSub is the publish/subscribe workload.
	PubSub = result.PubSub
)

// Scenario is one scenario file.
type Scenario struct {
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description" json:"description"`
	Stack       Stack    `yaml:"stack" json:"stack"`
	Workload    Workload `yaml:"workload" json:"workload"`
	Faults      []Fault  `yaml:"faults" json:"faults"`
	Expect      Expect   `yaml:"expect" json:"expect"`
	// ConvergeTimeout bounds the wait for every replica to catch up before the final read.
	ConvergeTimeout Duration `yaml:"converge-timeout" json:"converge_timeout"`

	// Source is where the scenario came from (file path or catalog:<name>); not part of the file.
	Source string `yaml:"-" json:"source"`
}

// Stack names the stack and overrides its parameters; zero values keep the stack's defaults.
type Stack struct {
	Name   string      `yaml:"name" json:"name"`
	Params StackParams `yaml:"params" json:"params"`
}

// Path values for Workload.Path.
const (
	PathVIP    = "vip"    // through the VIP (proxies), as applications connect
	PathDirect = "direct" // straight to one redis node (Workload.Node)
	// PathSentinel: each client asks the sentinels for the master and connects to it (go-redis
	// FailoverClient), as most applications do; no VIP and no proxy in the way.
	PathSentinel = "sentinel"
)

// Fault is one entry of the timeline. Kind names and fields follow scenarios/lab/fault.
type Fault struct {
	At       Duration `yaml:"at" json:"at"`             // after the workload starts
	Duration Duration `yaml:"duration" json:"duration"` // 0: until the heal at the end of the workload
	Kind     string   `yaml:"kind" json:"kind"`
	Targets  []string `yaml:"targets" json:"targets,omitempty"`
	A        []string `yaml:"a" json:"a,omitempty"` // partition / link faults: one side
	B        []string `yaml:"b" json:"b,omitempty"` // the other side
	OneWay   bool     `yaml:"one-way" json:"one_way,omitempty"`
	Daemon   string   `yaml:"daemon" json:"daemon,omitempty"`
	Latency  Duration `yaml:"latency" json:"latency,omitempty"`
	Jitter   Duration `yaml:"jitter" json:"jitter,omitempty"`
	Loss     float64  `yaml:"loss" json:"loss,omitempty"`               // fraction 0..1
	CPU      float64  `yaml:"cpu" json:"cpu,omitempty"`                 // cpu-throttle: share of one CPU, (0, 1]
	RateKBps int      `yaml:"rate-kbytes" json:"rate_kbytes,omitempty"` // client-bandwidth, kilobytes per second
	Timeout  Duration `yaml:"timeout" json:"timeout,omitempty"`
	// MaxSpan bounds how long the fault may really last, from the start of its apply to the end
	// of its undo (0: no bound). A scenario whose point rests on the fault being short (a master
	// back before down-after) sets it: on a host too slow to kill and start a node in time the
	// run is a harness error, because the scenario's premise did not hold, never a verdict on
	// the stack.
	MaxSpan Duration `yaml:"max-span" json:"max_span,omitempty"`

	// Randomization, drawn from the run's seed.
	AtJitter       Duration `yaml:"at-jitter" json:"at_jitter,omitempty"`             // add [0, at-jitter) to at
	DurationJitter Duration `yaml:"duration-jitter" json:"duration_jitter,omitempty"` // add [0, d-jitter) to duration
	Pick           int      `yaml:"pick" json:"pick,omitempty"`                       // choose this many of targets
	// Repetition: the fault happens Repeat times, Every apart (flapping).
	Repeat int      `yaml:"repeat" json:"repeat,omitempty"`
	Every  Duration `yaml:"every" json:"every,omitempty"`
}

// The fault kinds of scenarios/lab/fault.
var faultKinds = map[string]string{
	"partition":        "sets",
	"crash":            "targets",
	"restart":          "targets",
	"freeze-node":      "targets",
	"freeze-process":   "targets",
	"cpu-throttle":     "targets",
	"latency":          "sets",
	"jitter":           "sets",
	"loss":             "sets",
	"client-latency":   "client",
	"client-jitter":    "client",
	"client-bandwidth": "client",
	"client-timeout":   "client",
	"client-reset":     "client",
}

// FaultKinds lists the known fault kinds.
func FaultKinds() []string {
	out := make([]string, 0, len(faultKinds))
	for k := range faultKinds {
		out = append(out, k)
	}
	return sortStrings(out)
}

// Parse decodes and validates a scenario. name labels errors (a file path or catalog entry).
func Parse(name string, data []byte) (*Scenario, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, YAMLError(name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s Scenario
	if err := dec.Decode(&s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty scenario", name)
		}
		return nil, YAMLError(name, err)
	}
	s.Source = name
	s.applyDefaults()
	if errs := s.validate(); len(errs) > 0 {
		var b strings.Builder
		for i, e := range errs {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "%s:%d: %s: %s", name, lineOf(&root, e.field), e.field, e.msg)
		}
		return nil, errors.New(b.String())
	}
	return &s, nil
}

// ParseFile reads and validates a scenario file.
func ParseFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

var (
	yamlPrefix  = regexp.MustCompile(`^yaml: (unmarshal errors:\n)?`)
	yamlUnknown = regexp.MustCompile(`field (\S+) not found in type \S+`)
	yamlLineNo  = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// YAMLError rewrites yaml's "yaml: unmarshal errors:\n  line 3: field x not found in type ..."
// as "name:3: unknown field x", one error per line.
func YAMLError(name string, err error) error {
	msg := yamlUnknown.ReplaceAllString(yamlPrefix.ReplaceAllString(err.Error(), ""), "unknown field $1")
	var out []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if m := yamlLineNo.FindStringSubmatch(l); m != nil {
			out = append(out, name+":"+m[1]+": "+m[2])
		} else {
			out = append(out, name+": "+l)
		}
	}
	return errors.New(strings.Join(out, "\n"))
}

func (s *Scenario) applyDefaults() {
	if s.Stack.Name == "" {
		s.Stack.Name = DefaultStack
	}
	w := &s.Workload
	if w.Clients == 0 {
		w.Clients = DefaultClients
	}
	if w.Rate == 0 {
		w.Rate = DefaultRate
	}
	if w.Duration == 0 {
		w.Duration = Duration(DefaultDuration)
	}
	if w.Mix == (Mix{}) {
		w.Mix = Mix{Set: 40, Get: 30, Add: 30}
	}
	if w.Keys == 0 {
		w.Keys = DefaultKeys
	}
	if w.Path == "" {
		w.Path = PathVIP
	}
	if w.Timeout == 0 {
		w.Timeout = Duration(DefaultClientTimeout)
	}
	if s.ConvergeTimeout == 0 {
		s.ConvergeTimeout = Duration(DefaultConvergeTimeout)
	}
	if s.Expect.SplitBrainWrites == "" {
		s.Expect.SplitBrainWrites = "forbidden"
	}
}

type fieldError struct{ field, msg string }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

func (s *Scenario) validate() []fieldError {
	var errs []fieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, fieldError{field, fmt.Sprintf(format, args...)})
	}
	if s.Name == "" {
		bad("name", "required")
	} else if !nameRE.MatchString(s.Name) {
		bad("name", "%q: use lower-case letters, digits and dashes", s.Name)
	}
	p := s.Stack.Params
	switch p.Persistence {
	case "", "none", "rdb", "aof":
	default:
		bad("stack.params.persistence", "%q: want none, rdb or aof", p.Persistence)
	}
	for f, v := range map[string]int{"down-after-ms": p.DownAfterMs, "quorum": p.Quorum, "check-interval-ms": int(p.CheckInterval),
		"failover-timeout-ms": p.FailoverTimeoutMs, "min-replicas-to-write": p.MinReplicasToWrite, "min-replicas-max-lag": p.MinReplicasMaxLag,
		"vrrp-advert-int": p.VRRPAdvertInt} {
		if v < 0 {
			bad("stack.params."+f, "must not be negative")
		}
	}
	w := s.Workload
	if w.Clients < 1 || w.Clients > 256 {
		bad("workload.clients", "%d: want 1..256", w.Clients)
	}
	if w.Rate < 0 {
		bad("workload.rate", "must not be negative")
	}
	if w.Duration.D() < time.Second {
		bad("workload.duration", "%s: want at least 1s", w.Duration.D())
	}
	if w.Mix.Set < 0 || w.Mix.Get < 0 || w.Mix.Add < 0 {
		bad("workload.mix", "weights must not be negative")
	}
	if w.Mix.Set+w.Mix.Add == 0 {
		bad("workload.mix", "needs writes (set or add) to judge anything")
	}
	if w.Keys < 1 {
		bad("workload.keys", "want at least 1")
	}
	switch w.Path {
	case PathVIP, PathSentinel:
		if w.Node != "" {
			bad("workload.node", "only with path: direct")
		}
	case PathDirect:
		if w.Node == "" {
			bad("workload.node", "path: direct needs the node to dial")
		}
	default:
		bad("workload.path", "%q: want vip, sentinel or direct", w.Path)
	}
	if ps := w.PubSub; ps != nil {
		if ps.Publishers < 1 || ps.Publishers > 64 || ps.Subscribers < 1 || ps.Subscribers > 64 {
			bad("workload.pubsub", "want 1..64 publishers and 1..64 subscribers")
		}
		if ps.Rate < 0 {
			bad("workload.pubsub.rate", "must not be negative")
		}
	}
	if w.Timeout.D() <= 0 {
		bad("workload.timeout", "must be positive")
	}
	if w.Retries < 0 {
		bad("workload.retries", "must not be negative")
	}
	if w.Reconnect < 0 {
		bad("workload.reconnect", "must not be negative")
	}
	for i, f := range s.Faults {
		at := fmt.Sprintf("faults[%d]", i)
		shape, ok := faultKinds[f.Kind]
		if !ok {
			bad(at+".kind", "%q: want one of %s", f.Kind, strings.Join(FaultKinds(), ", "))
			continue
		}
		if f.At < 0 || f.Duration < 0 || f.AtJitter < 0 || f.DurationJitter < 0 || f.Every < 0 || f.MaxSpan < 0 {
			bad(at, "times must not be negative")
		}
		if f.MaxSpan > 0 && (f.Duration == 0 || f.MaxSpan < f.Duration+f.DurationJitter) {
			bad(at+".max-span", "needs a duration, and must be at least duration + duration-jitter")
		}
		if f.At.D()+f.AtJitter.D() >= w.Duration.D() {
			bad(at+".at", "%s is not before the end of the workload (%s)", (f.At + f.AtJitter).D(), w.Duration.D())
		}
		switch shape {
		case "sets":
			if len(f.A) == 0 || len(f.B) == 0 {
				bad(at, "%s needs both sides: a: [...] and b: [...]", f.Kind)
			}
			if len(f.Targets) > 0 {
				bad(at+".targets", "%s takes a and b, not targets", f.Kind)
			}
			for _, n := range f.A {
				for _, m := range f.B {
					if n == m {
						bad(at+".b", "%s is on both sides", n)
					}
				}
			}
		case "targets":
			if len(f.Targets) == 0 {
				bad(at+".targets", "%s needs at least one target node", f.Kind)
			}
			if len(f.A)+len(f.B) > 0 {
				bad(at+".a", "%s takes targets, not a/b", f.Kind)
			}
		case "client":
			if len(f.Targets)+len(f.A)+len(f.B) > 0 {
				bad(at+".targets", "%s acts on the client path; it takes no targets", f.Kind)
			}
			if w.Path == PathSentinel {
				bad(at+".kind", "%s acts on one client path (the VIP or a node); path: sentinel dials several", f.Kind)
			}
		}
		for field, names := range map[string][]string{"targets": f.Targets, "a": f.A, "b": f.B} {
			for _, n := range names {
				if role, ok := RoleName(n); ok {
					if _, known := NodeRoles[role]; !known {
						bad(at+"."+field, "%s: no such role (roles: %s)", n, strings.Join(roleList(NodeRoles), ", "))
					}
				}
			}
		}
		if role, ok := RoleName(f.Daemon); ok {
			if _, known := DaemonRoles[role]; !known {
				bad(at+".daemon", "%s: no such daemon role (roles: %s)", f.Daemon, strings.Join(roleList(DaemonRoles), ", "))
			}
		}
		if f.Kind == "freeze-process" && f.Daemon == "" {
			bad(at+".daemon", "freeze-process needs the daemon to stop (e.g. redis-server)")
		}
		if f.Daemon != "" && f.Kind != "crash" && f.Kind != "freeze-process" && f.Kind != "restart" {
			bad(at+".daemon", "only crash, restart and freeze-process act on one daemon")
		}
		switch f.Kind {
		case "latency", "client-latency":
			if f.Latency <= 0 {
				bad(at+".latency", "%s needs latency > 0", f.Kind)
			}
		case "jitter", "client-jitter":
			if f.Jitter <= 0 {
				bad(at+".jitter", "%s needs jitter > 0", f.Kind)
			}
		case "loss":
			if f.Loss <= 0 || f.Loss > 1 {
				bad(at+".loss", "want a fraction in (0, 1]")
			}
		case "cpu-throttle":
			if f.CPU <= 0 || f.CPU > 1 {
				bad(at+".cpu", "cpu-throttle needs cpu, the share of one CPU the node keeps, in (0, 1] (0.05: 5 %%)")
			}
		case "client-bandwidth":
			if f.RateKBps <= 0 {
				bad(at+".rate-kbytes", "client-bandwidth needs rate-kbytes > 0")
			}
		case "client-timeout":
			if f.Timeout <= 0 {
				bad(at+".timeout", "client-timeout needs timeout > 0")
			}
		}
		if f.CPU != 0 && f.Kind != "cpu-throttle" {
			bad(at+".cpu", "only cpu-throttle takes cpu")
		}
		if f.Pick < 0 || f.Pick > len(f.Targets) {
			bad(at+".pick", "%d: want 0..%d (the number of targets)", f.Pick, len(f.Targets))
		}
		if f.Repeat < 0 {
			bad(at+".repeat", "must not be negative")
		}
		if f.Repeat > 1 {
			if f.Every <= 0 {
				bad(at+".every", "repeat needs every > 0")
			} else if f.Duration.D()+f.DurationJitter.D() >= f.Every.D() {
				bad(at+".every", "repeats would overlap: duration must be shorter than every")
			}
		}
	}
	e := s.Expect
	if e.FailoverWithin < 0 || e.MaxWriteUnavailability < 0 {
		bad("expect", "times must not be negative")
	}
	if e.FailoverWithin > 0 && (e.Failover == nil || *e.Failover == 0) {
		bad("expect.failover-within", "only with an expected failover")
	}
	if e.MaxLostWrites != nil && *e.MaxLostWrites < 0 {
		bad("expect.max-lost-writes", "must not be negative")
	}
	if e.MaxLostMessages != nil && (*e.MaxLostMessages < 0 || w.PubSub == nil) {
		bad("expect.max-lost-messages", "needs a pubsub workload and a count of at least 0")
	}
	if e.VIPMoves != nil && e.MaxVIPMoves != nil {
		bad("expect.max-vip-moves", "set vip-moves (an exact count) or max-vip-moves (a bound), not both")
	}
	if e.MaxVIPDualHolders != nil && *e.MaxVIPDualHolders < 0 {
		bad("expect.max-vip-dual-holders", "%s: must not be negative (0s: never on two nodes)", e.MaxVIPDualHolders.D())
	}
	switch e.SplitBrainWrites {
	case "forbidden", "allowed":
	default:
		bad("expect.split-brain-writes", "%q: want forbidden or allowed", e.SplitBrainWrites)
	}
	if s.ConvergeTimeout.D() < time.Second {
		bad("converge-timeout", "want at least 1s")
	}
	return errs
}

// lineOf finds the line of a dotted field path such as "faults[2].kind"; the deepest node that
// exists is used, so a missing field points at its parent.
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, part := range strings.Split(path, ".") {
		name, idx := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 {
			name = part[:i]
			idx, _ = strconv.Atoi(strings.TrimSuffix(part[i+1:], "]"))
		}
		next := mapValue(n, name)
		if next == nil {
			return line
		}
		n, line = next, next.Line
		if idx >= 0 {
			if n.Kind != yaml.SequenceNode || idx >= len(n.Content) {
				return line
			}
			n, line = n.Content[idx], n.Content[idx].Line
		}
	}
	return line
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
