// Package config is redisha-proxy's configuration: the YAML schema, its
// defaults, strict parsing and validation, and the routing core's view of it.
package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redisha/redisha/components/confkit"
	"github.com/redisha/redisha/components/proxy/core"
)

// Config is redisha-proxy's configuration (YAML file plus flags).
type Config struct {
	// Listen is the read-write listener ("host:port") routed to the master.
	Listen string `yaml:"listen"`
	// ReadOnlyListen, when set, is a listener routed to healthy replicas.
	ReadOnlyListen string `yaml:"read_only_listen"`
	// Admin serves /healthz and /metrics; "" disables it.
	Admin string `yaml:"admin"`
	// WatchListen, when set, is where a VIP manager holds a connection to
	// learn that this proxy stopped: "host:port" or "unix:/path". The
	// proxy never writes to it while serving; the connection ending means
	// the process died, and a clean stop first sends the line "stopping",
	// before the client listeners close (redisha-vip's `watch` track,
	// docs/vip.md).
	WatchListen string `yaml:"watch_listen"`
	// Threads is how many cores the proxy runs on (Go's GOMAXPROCS), and so
	// how many event loops forward traffic: default 1, 0 for one per CPU.
	// The GOMAXPROCS environment variable, when set, wins. One is the
	// measured best where the proxy shares its cores with other processes
	// (docs/results/proxy-bench.md, Run F: 7-8 % more throughput than two
	// on a 2-core machine, and no more CPU per request); set 2 or more for
	// a proxy with cores to itself. Read at start only.
	Threads int `yaml:"threads"`
	// AdminPprof also serves Go's /debug/pprof on the admin address.
	AdminPprof bool `yaml:"admin_pprof"`
	// MasterName is the name the sentinels monitor.
	MasterName string `yaml:"master_name"`
	// Backends are redis nodes ("ip:port", as sentinels spell them).
	Backends []string `yaml:"backends"`
	// Sentinels are the configured sentinels; N fixes the majority.
	Sentinels []string `yaml:"sentinels"`

	// Durability is what an acknowledgement on the read-write listener
	// means: "async" (default: whatever the master answered, as redis
	// does) or "replicated" (the proxy follows each batch of requests
	// holding a write with WAIT and releases the replies only once
	// DurabilityReplicas replicas have the write; docs/durability.md).
	Durability string `yaml:"durability"`
	// DurabilityTimeout is WAIT's timeout: a write not replicated within it
	// closes the client connection (indeterminate, never acknowledged).
	DurabilityTimeout time.Duration `yaml:"durability_timeout"`
	// DurabilityReplicas is WAIT's replica count (default 1).
	DurabilityReplicas int `yaml:"durability_replicas"`
	// DurabilityNoReplica is the policy when the master has no connected
	// replica at all: "refuse" (default: writes close the connection) or
	// "async" (acknowledge asynchronously, with a metric and a log line).
	DurabilityNoReplica string `yaml:"durability_no_replica"`
	// DurableListen, when set, is a second read-write listener that is
	// always "replicated", whatever Durability says: a listener overrides
	// the top-level mode, so clients choose per connection.
	DurableListen string `yaml:"durable_listen"`

	Auth         Auth      `yaml:"auth"`          // for backend health checks
	SentinelAuth Auth      `yaml:"sentinel_auth"` // for sentinel queries
	Check        Check     `yaml:"check"`
	Routing      Routing   `yaml:"routing"`
	Limits       Limits    `yaml:"limits"`
	Log          LogConfig `yaml:"log"`

	meta *confkit.Meta // where the file gave each key, for error lines
}

// Auth is an AUTH password with an optional ACL user (confkit's: "user",
// "password" or "password_file"; the old key "username" still works).
type Auth = confkit.Auth

// aliases are the keys renamed since the first release.
var aliases = confkit.AuthAliases("auth", "sentinel_auth")

// Check tunes health checks and sentinel queries.
type Check struct {
	Interval time.Duration `yaml:"interval"` // regular poll of backends and sentinels
	Timeout  time.Duration `yaml:"timeout"`  // per check round trip
	// FastInterval is the poll period while a routing decision is pending
	// (a failover notice arrived, or the route just changed).
	FastInterval time.Duration `yaml:"fast_interval"`
	// FastWindow is how long after such an event fast polling lasts.
	FastWindow time.Duration `yaml:"fast_window"`
}

// Routing tunes the routing rules (see docs/proxy.md).
type Routing struct {
	NoMajorityGrace time.Duration `yaml:"no_majority_grace"`
	HealthTTL       time.Duration `yaml:"health_ttl"`
	ViewTTL         time.Duration `yaml:"view_ttl"`
	FenceTimeout    time.Duration `yaml:"fence_timeout"`
	// CloseOnSwitch closes client connections to a deposed master (default true).
	CloseOnSwitch bool `yaml:"close_on_switch"`
	// HoldNewConnections is how long a new client waits for a pending
	// decision before it is refused.
	HoldNewConnections time.Duration `yaml:"hold_new_connections"`
	MaxReplicaLag      int64         `yaml:"max_replica_lag"`
	// HelloViews also counts a configured sentinel's view heard on the
	// data nodes' __sentinel__:hello channel, when it corroborates a view
	// heard directly from another configured sentinel. Turn it on only
	// where the redis ACL lets nobody but the sentinels publish on
	// __sentinel__:* (docs/proxy.md).
	HelloViews bool `yaml:"hello_views"`
	// PromotionFastPath routes, provisionally, to the replica a
	// majority-elected sentinel leader has told REPLICAOF NO ONE as soon
	// as it answers role:master, before the sentinels' views name it,
	// and withdraws that route unless a majority view confirms it within
	// 3 s (docs/proxy.md: the promotion fast path and its one risk).
	PromotionFastPath bool `yaml:"promotion_fast_path"`
}

// Limits bound resource use.
type Limits struct {
	MaxConnections int           `yaml:"max_connections"`
	IdleTimeout    time.Duration `yaml:"idle_timeout"` // 0 = never
	DialTimeout    time.Duration `yaml:"dial_timeout"`
	DrainTimeout   time.Duration `yaml:"drain_timeout"`
	// StopNotice is how long the client listeners keep accepting on a clean
	// stop after the watchers (watch_listen) were told "stopping", so the
	// VIP can move before this node refuses connections (0: close at once).
	StopNotice time.Duration `yaml:"stop_notice"`
}

// LogConfig selects slog level and format.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// The values of Durability and DurabilityNoReplica.
const (
	DurabilityAsync      = "async"
	DurabilityReplicated = "replicated"
	NoReplicaRefuse      = "refuse"
	NoReplicaAsync       = "async"
)

// DefaultConfig is the configuration before the file and flags apply; a
// key given in the file (even as 0) overrides its default.
func DefaultConfig() Config {
	return Config{
		Listen:              "127.0.0.1:6379",
		Threads:             1,
		MasterName:          "mymaster",
		Durability:          DurabilityAsync,
		DurabilityTimeout:   500 * time.Millisecond,
		DurabilityReplicas:  1,
		DurabilityNoReplica: NoReplicaRefuse,
		Check: Check{
			Interval:     time.Second,
			Timeout:      500 * time.Millisecond,
			FastInterval: 10 * time.Millisecond,
			FastWindow:   5 * time.Second,
		},
		Routing: Routing{
			NoMajorityGrace:    5 * time.Second,
			FenceTimeout:       core.DefaultFenceTimeout,
			CloseOnSwitch:      true,
			HoldNewConnections: 2 * time.Second,
		},
		Limits: Limits{
			MaxConnections: 10000,
			// Above the 1 s first SYN retransmit: a backlog overflow on the
			// backend during a connection burst must not fail the client.
			DialTimeout:  3 * time.Second,
			DrainTimeout: 30 * time.Second,
		},
		Log: LogConfig{Level: "info", Format: "json"},
	}
}

// Derive fills the values that depend on others when left at zero.
func (c *Config) Derive() {
	if c.Routing.HealthTTL == 0 {
		c.Routing.HealthTTL = 3*c.Check.Interval + c.Check.Timeout
	}
	if c.Routing.ViewTTL == 0 {
		c.Routing.ViewTTL = 3*c.Check.Interval + c.Check.Timeout
	}
}

// Validate reports every problem at once, naming the field.
func (c *Config) Validate() error {
	var errs []error
	for _, p := range c.problems() {
		errs = append(errs, fmt.Errorf("%s: %s", p.path, p.msg))
	}
	return errors.Join(errs...)
}

type problem struct{ path, msg string }

func (c *Config) problems() []problem {
	var probs []problem
	add := func(path, format string, args ...any) {
		probs = append(probs, problem{path, fmt.Sprintf(format, args...)})
	}
	addr := func(field, v string, optional bool) {
		if v == "" && optional {
			return
		}
		if _, err := ParseHostPort(v); err != nil {
			add(field, "%q: %v", v, err)
		}
	}
	addr("listen", c.Listen, false)
	addr("read_only_listen", c.ReadOnlyListen, true)
	addr("admin", c.Admin, true)
	addr("durable_listen", c.DurableListen, true)
	switch c.Durability {
	case DurabilityAsync, DurabilityReplicated:
	default:
		add("durability", "%q is not async or replicated", c.Durability)
	}
	switch c.DurabilityNoReplica {
	case NoReplicaRefuse, NoReplicaAsync:
	default:
		add("durability_no_replica", "%q is not refuse or async", c.DurabilityNoReplica)
	}
	if c.DurabilityTimeout <= 0 {
		add("durability_timeout", "%v must be positive (WAIT 0 would block forever)", c.DurabilityTimeout)
	}
	if c.Threads < 0 {
		add("threads", "%d must be 0 (one per CPU) or more", c.Threads)
	}
	if c.DurabilityReplicas < 1 {
		add("durability_replicas", "%d must be at least 1", c.DurabilityReplicas)
	}
	if path, ok := strings.CutPrefix(c.WatchListen, "unix:"); ok {
		if path == "" {
			add("watch_listen", "%q: empty unix socket path", c.WatchListen)
		}
	} else {
		addr("watch_listen", c.WatchListen, true)
	}
	if len(c.Backends) == 0 && len(c.Sentinels) == 0 {
		add("backends", "need at least one backend or one sentinel (backends, sentinels)")
	}
	seen := map[string]bool{}
	for i, b := range c.Backends {
		addr(fmt.Sprintf("backends[%d]", i), b, false)
		if seen[b] {
			add(fmt.Sprintf("backends[%d]", i), "%q listed twice", b)
		}
		seen[b] = true
	}
	seen = map[string]bool{}
	for i, s := range c.Sentinels {
		addr(fmt.Sprintf("sentinels[%d]", i), s, false)
		if seen[s] {
			add(fmt.Sprintf("sentinels[%d]", i), "%q listed twice (it would count twice toward the majority)", s)
		}
		seen[s] = true
	}
	if len(c.Sentinels) > 0 && c.MasterName == "" {
		add("master_name", "required with sentinels")
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{{"check.interval", c.Check.Interval}, {"check.timeout", c.Check.Timeout}, {"check.fast_interval", c.Check.FastInterval}} {
		if d.v <= 0 {
			add(d.path, "%v must be positive", d.v)
		}
	}
	for _, d := range []struct {
		path string
		v    time.Duration
	}{{"check.fast_window", c.Check.FastWindow}, {"routing.no_majority_grace", c.Routing.NoMajorityGrace},
		{"routing.health_ttl", c.Routing.HealthTTL}, {"routing.view_ttl", c.Routing.ViewTTL},
		{"routing.fence_timeout", c.Routing.FenceTimeout}, {"routing.hold_new_connections", c.Routing.HoldNewConnections},
		{"limits.idle_timeout", c.Limits.IdleTimeout}, {"limits.dial_timeout", c.Limits.DialTimeout},
		{"limits.drain_timeout", c.Limits.DrainTimeout}, {"limits.stop_notice", c.Limits.StopNotice}} {
		if d.v < 0 {
			add(d.path, "%v must not be negative", d.v)
		}
	}
	if c.Check.Interval > 0 && c.Routing.HealthTTL > 0 && c.Routing.HealthTTL < c.Check.Interval {
		add("routing.health_ttl", "%v is shorter than check.interval %v: every result would expire before the next", c.Routing.HealthTTL, c.Check.Interval)
	}
	if c.Routing.MaxReplicaLag < 0 {
		add("routing.max_replica_lag", "%d must not be negative", c.Routing.MaxReplicaLag)
	}
	if c.Limits.MaxConnections < 0 {
		add("limits.max_connections", "%d must not be negative", c.Limits.MaxConnections)
	}
	if _, err := confkit.ParseLevel(c.Log.Level); err != nil || c.Log.Level == "" {
		add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch strings.ToLower(c.Log.Format) {
	case "json", "text":
	default:
		add("log.format", "%q is not json or text", c.Log.Format)
	}
	return probs
}

// ParseHostPort validates "host:port" and returns it normalised.
func ParseHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(host, strconv.Itoa(n)), nil
}

// ParseConfig decodes YAML strictly with components/confkit (one document,
// unknown and repeated keys rejected, "file:line: key: message" errors),
// applies defaults, derives and validates.
func ParseConfig(data []byte) (*Config, error) {
	c := DefaultConfig()
	meta, err := confkit.Parse("config", data, &c, aliases...)
	if err != nil {
		return nil, err
	}
	return c.finish(meta)
}

// LoadConfig reads and parses a YAML file (see ParseConfig).
func LoadConfig(path string) (*Config, error) {
	c, _, err := Load(path)
	if err != nil {
		return nil, err
	}
	if err := Finish(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Load is daemonkit's loader: the file at path ("" for none) over the
// defaults, not yet derived or validated (flags apply first; Finish does
// both), with the deprecation warnings of renamed keys.
func Load(path string) (*Config, []string, error) {
	c := DefaultConfig()
	if path == "" {
		return &c, nil, nil
	}
	meta, err := confkit.Load(path, &c, aliases...)
	if err != nil {
		return nil, nil, err
	}
	var warnings []string
	for _, d := range meta.Deprecations {
		warnings = append(warnings, d.String())
	}
	c.meta = meta
	return &c, warnings, nil
}

// Finish derives the values that depend on others and validates; problems
// of keys the file gives carry its name and line.
func Finish(c *Config) error {
	c.Derive()
	return c.finishErr("")
}

func (c *Config) finish(meta *confkit.Meta) (*Config, error) {
	c.meta = meta
	c.Derive()
	if err := c.finishErr(""); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) finishErr(name string) error {
	probs := c.problems()
	if len(probs) == 0 {
		return nil
	}
	var list confkit.ErrorList
	for _, p := range probs {
		if c.meta != nil {
			list = append(list, c.meta.Errorf(p.path, "%s", p.msg))
			continue
		}
		list = append(list, &confkit.Error{File: name, Path: p.path, Msg: p.msg})
	}
	return list.Err()
}

// CoreConfig is the routing core's view of this configuration.
func (c *Config) CoreConfig() core.Config {
	return core.Config{
		MasterName:      c.MasterName,
		Sentinels:       append([]string(nil), c.Sentinels...),
		Backends:        append([]string(nil), c.Backends...),
		NoMajorityGrace: c.Routing.NoMajorityGrace,
		HealthTTL:       c.Routing.HealthTTL,
		ViewTTL:         c.Routing.ViewTTL,
		FenceTimeout:    c.Routing.FenceTimeout,
		KeepOnSwitch:    !c.Routing.CloseOnSwitch,
		MaxReplicaLag:   c.Routing.MaxReplicaLag,
		CheckInterval:   c.Check.Interval,
		CheckTimeout:    c.Check.Timeout,
		FastInterval:    c.Check.FastInterval,
		FastWindow:      c.Check.FastWindow,
		HelloViews:      c.Routing.HelloViews,

		PromotionFastPath: c.Routing.PromotionFastPath,
	}
}
