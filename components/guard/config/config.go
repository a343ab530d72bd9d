// Package config is redisha-guard's configuration. Until the project's strict
// YAML loader (components/confkit) is available to it, the guard is
// configured with flags only; Bind registers them and Validate checks them.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/redisha/redisha/components/guard/core"
	"github.com/redisha/redisha/components/guard/driver"
)

// Config is everything the guard needs.
type Config struct {
	MasterName string
	Self       string
	Sentinels  []string
	Nodes      []string

	// RDB is the node's RDB file (redis's dir + dbfilename).
	RDB string
	// AppendOnly says redis runs with appendonly yes; AOFDir is its
	// appenddirname inside dir, where the manifest lives.
	AppendOnly bool
	AOFDir     string

	Bound         time.Duration
	Retry         time.Duration
	ProbeTimeout  time.Duration
	FailoverGrace time.Duration

	NodeUser, NodePasswordFile         string
	SentinelUser, SentinelPasswordFile string

	// Outputs: any combination; at least one.
	WriteEnv     string // systemd EnvironmentFile with REDISHA_GUARD_ARGS
	WriteInclude string // redis config fragment with a replicaof line
	Print        bool   // the redis-server arguments on stdout

	LogLevel string
}

// Defaults are the values of unset flags.
func Defaults() Config {
	return Config{MasterName: "mymaster", RDB: "/var/lib/redis/dump.rdb", AOFDir: "/var/lib/redis/appendonlydir",
		Bound: 30 * time.Second, Retry: 500 * time.Millisecond, ProbeTimeout: time.Second,
		FailoverGrace: 5 * time.Second, LogLevel: "info"}
}

type list struct{ p *[]string }

func (l list) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l list) Set(s string) error {
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			*l.p = append(*l.p, a)
		}
	}
	return nil
}

// Bind registers the guard's flags on fs, filling c (start from Defaults).
func Bind(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.MasterName, "master-name", c.MasterName, "name the sentinels monitor")
	fs.StringVar(&c.Self, "self", c.Self, "this node's host:port as the sentinels and replicas name it (required)")
	fs.Var(list{&c.Sentinels}, "sentinel", "a sentinel's host:port; repeat or comma-separate for each (required)")
	fs.Var(list{&c.Nodes}, "node", "another redis node's host:port; repeat or comma-separate (the sentinels' replicas are added)")
	fs.StringVar(&c.RDB, "rdb", c.RDB, "this node's RDB file (redis dir + dbfilename)")
	fs.BoolVar(&c.AppendOnly, "appendonly", c.AppendOnly, "redis runs with appendonly yes (the AOF is loaded, not the RDB)")
	fs.StringVar(&c.AOFDir, "aof-dir", c.AOFDir, "redis's appenddirname (inside dir), with -appendonly")
	fs.DurationVar(&c.Bound, "bound", c.Bound, "the longest the guard delays the start")
	fs.DurationVar(&c.Retry, "retry", c.Retry, "pause between rounds of questions")
	fs.DurationVar(&c.ProbeTimeout, "probe-timeout", c.ProbeTimeout, "timeout of one question to one sentinel or node")
	fs.DurationVar(&c.FailoverGrace, "failover-grace", c.FailoverGrace, "after SENTINEL FAILOVER is accepted, wait this long for the new configuration before asking again")
	fs.StringVar(&c.NodeUser, "node-user", c.NodeUser, "ACL user for the redis nodes")
	fs.StringVar(&c.NodePasswordFile, "node-password-file", c.NodePasswordFile, "file holding the redis nodes' password")
	fs.StringVar(&c.SentinelUser, "sentinel-user", c.SentinelUser, "ACL user for the sentinels")
	fs.StringVar(&c.SentinelPasswordFile, "sentinel-password-file", c.SentinelPasswordFile, "file holding the sentinels' password")
	fs.StringVar(&c.WriteEnv, "write-env", c.WriteEnv, "write REDISHA_GUARD_ARGS=<redis-server arguments> to this systemd EnvironmentFile")
	fs.StringVar(&c.WriteInclude, "write-include", c.WriteInclude, "write a redis config fragment (replicaof ...) to this file")
	fs.BoolVar(&c.Print, "print", c.Print, "print the redis-server arguments on stdout")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.MasterName == "" {
		bad("-master-name is empty")
	}
	addr := func(flagName, a string) {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			bad("-%s %q is not host:port", flagName, a)
		}
	}
	if c.Self == "" {
		bad("-self is required")
	} else {
		addr("self", c.Self)
	}
	if len(c.Sentinels) == 0 {
		bad("at least one -sentinel is required")
	}
	for _, s := range c.Sentinels {
		addr("sentinel", s)
	}
	for _, n := range c.Nodes {
		addr("node", n)
	}
	if c.RDB == "" && !c.AppendOnly {
		bad("-rdb is empty")
	}
	if c.AppendOnly && c.AOFDir == "" {
		bad("-appendonly needs -aof-dir")
	}
	for name, d := range map[string]time.Duration{"bound": c.Bound, "retry": c.Retry, "probe-timeout": c.ProbeTimeout, "failover-grace": c.FailoverGrace} {
		if d <= 0 {
			bad("-%s must be positive", name)
		}
	}
	if c.WriteEnv == "" && c.WriteInclude == "" && !c.Print {
		bad("no output: give -write-env, -write-include or -print")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("-log-level %q is not debug, info, warn or error", c.LogLevel)
	}
	return errors.Join(errs...)
}

// Core is the core's configuration.
func (c Config) Core() core.Config {
	return core.Config{Self: c.Self, MasterName: c.MasterName, Sentinels: len(c.Sentinels),
		Bound: c.Bound, Retry: c.Retry, FailoverGrace: c.FailoverGrace}
}

// Options is the driver's configuration; it reads the password files.
func (c Config) Options() (driver.Options, error) {
	o := driver.Options{MasterName: c.MasterName, Self: c.Self, Sentinels: c.Sentinels, Nodes: c.Nodes,
		NodeAuth: driver.Auth{Username: c.NodeUser}, SentinelAuth: driver.Auth{Username: c.SentinelUser}}
	var err error
	if o.NodeAuth.Password, err = secret(c.NodePasswordFile); err != nil {
		return o, err
	}
	if o.SentinelAuth.Password, err = secret(c.SentinelPasswordFile); err != nil {
		return o, err
	}
	return o, nil
}

func secret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
