// Package config is redisha-guard's configuration: a YAML file read with the
// project's strict loader (components/confkit), every key of which can also
// be given, or overridden, by a flag (Flags, for components/daemonkit).
//
//	master_name: mymaster
//	self: 10.0.0.1:6379
//	sentinels: [10.0.0.1:26379, 10.0.0.2:26379, 10.0.0.3:26379]
//	nodes: [10.0.0.2:6379]
//	rdb: /var/lib/redis/dump.rdb
//	bound: 30s
//	node_auth: {password_file: /etc/redis/guard.pass}
//	write_env: /run/redis/redisha-guard.env
package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redisha/redisha/components/confkit"
	"github.com/redisha/redisha/components/daemonkit"
	"github.com/redisha/redisha/components/guard/core"
	"github.com/redisha/redisha/components/guard/driver"
)

// Config is everything the guard needs.
type Config struct {
	MasterName string   `yaml:"master_name"`
	Self       string   `yaml:"self"`      // this node as the sentinels name it
	Sentinels  []string `yaml:"sentinels"` // every configured sentinel
	Nodes      []string `yaml:"nodes"`     // other redis nodes (the sentinels' replicas are added)

	// RDB is the node's RDB file (redis's dir + dbfilename).
	RDB string `yaml:"rdb"`
	// AppendOnly says redis runs with appendonly yes; AOFDir is its
	// appenddirname inside dir, where the manifest lives.
	AppendOnly bool   `yaml:"appendonly"`
	AOFDir     string `yaml:"aof_dir"`

	Bound         time.Duration `yaml:"bound"`
	Retry         time.Duration `yaml:"retry"`
	ProbeTimeout  time.Duration `yaml:"probe_timeout"`
	FailoverGrace time.Duration `yaml:"failover_grace"`

	NodeAuth     confkit.Auth `yaml:"node_auth"`
	SentinelAuth confkit.Auth `yaml:"sentinel_auth"`

	// Outputs: any combination; at least one.
	WriteEnv     string `yaml:"write_env"`     // systemd EnvironmentFile with REDISHA_GUARD_ARGS
	WriteInclude string `yaml:"write_include"` // redis config fragment with a replicaof line
	Print        bool   `yaml:"print"`         // the redis-server arguments on stdout

	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
}

// Defaults are the values of keys neither the file nor a flag gives.
func Defaults() Config {
	return Config{MasterName: "mymaster", RDB: "/var/lib/redis/dump.rdb", AOFDir: "/var/lib/redis/appendonlydir",
		Bound: 30 * time.Second, Retry: 500 * time.Millisecond, ProbeTimeout: time.Second,
		FailoverGrace: 5 * time.Second}
}

// Load reads the file at path over the defaults ("" means flags only) and
// returns confkit's deprecation warnings.
func Load(path string) (*Config, []string, error) {
	c := Defaults()
	if path == "" {
		return &c, nil, nil
	}
	meta, err := confkit.Load(path, &c)
	var warns []string
	for _, d := range meta.Deprecations {
		warns = append(warns, d.String())
	}
	if err != nil {
		return nil, warns, err
	}
	return &c, warns, nil
}

func list(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func str(set func(*Config, string)) func(*Config, string) error {
	return func(c *Config, v string) error { set(c, v); return nil }
}

func dur(set func(*Config, time.Duration)) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := confkit.ParseDuration(v)
		if err != nil {
			return err
		}
		set(c, d)
		return nil
	}
}

func boolean(set func(*Config, bool)) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return err
		}
		set(c, b)
		return nil
	}
}

func secret(a func(*Config) *confkit.Auth) func(*Config, string) error {
	return func(c *Config, v string) error {
		pw, err := confkit.ReadSecretFile(v)
		if err != nil {
			return err
		}
		auth := a(c)
		auth.PasswordFile, auth.Password = v, pw
		return nil
	}
}

// Flags are the guard's flags; each overrides its key in the file.
func Flags() []daemonkit.Flag[Config] {
	return []daemonkit.Flag[Config]{
		{Name: "master-name", Usage: "name the sentinels monitor (master_name; default mymaster)", Apply: str(func(c *Config, v string) { c.MasterName = v })},
		{Name: "self", Usage: "this node's host:port as the sentinels and replicas name it (self)", Apply: str(func(c *Config, v string) { c.Self = v })},
		{Name: "sentinel", Usage: "comma-separated host:port of every sentinel (sentinels)", Apply: str(func(c *Config, v string) { c.Sentinels = list(v) })},
		{Name: "node", Usage: "comma-separated host:port of the other redis nodes (nodes)", Apply: str(func(c *Config, v string) { c.Nodes = list(v) })},
		{Name: "rdb", Usage: "this node's RDB file, redis dir + dbfilename (rdb; default /var/lib/redis/dump.rdb)", Apply: str(func(c *Config, v string) { c.RDB = v })},
		{Name: "appendonly", Bool: true, Usage: "redis runs with appendonly yes: the AOF is loaded, not the RDB (appendonly)", Apply: boolean(func(c *Config, v bool) { c.AppendOnly = v })},
		{Name: "aof-dir", Usage: "redis's appenddirname inside dir (aof_dir; default /var/lib/redis/appendonlydir)", Apply: str(func(c *Config, v string) { c.AOFDir = v })},
		{Name: "bound", Usage: "the longest the guard delays the start (bound; default 30s)", Apply: dur(func(c *Config, d time.Duration) { c.Bound = d })},
		{Name: "retry", Usage: "pause between rounds of questions (retry; default 500ms)", Apply: dur(func(c *Config, d time.Duration) { c.Retry = d })},
		{Name: "probe-timeout", Usage: "timeout of one question to one sentinel or node (probe_timeout; default 1s)", Apply: dur(func(c *Config, d time.Duration) { c.ProbeTimeout = d })},
		{Name: "failover-grace", Usage: "after SENTINEL FAILOVER is accepted, wait this long for the new configuration before asking again (failover_grace; default 5s)", Apply: dur(func(c *Config, d time.Duration) { c.FailoverGrace = d })},
		{Name: "node-user", Usage: "ACL user for the redis nodes (node_auth.user)", Apply: str(func(c *Config, v string) { c.NodeAuth.User = v })},
		{Name: "node-password-file", Usage: "file holding the redis nodes' password (node_auth.password_file)", Apply: secret(func(c *Config) *confkit.Auth { return &c.NodeAuth })},
		{Name: "sentinel-user", Usage: "ACL user for the sentinels (sentinel_auth.user)", Apply: str(func(c *Config, v string) { c.SentinelAuth.User = v })},
		{Name: "sentinel-password-file", Usage: "file holding the sentinels' password (sentinel_auth.password_file)", Apply: secret(func(c *Config) *confkit.Auth { return &c.SentinelAuth })},
		{Name: "write-env", Usage: "write REDISHA_GUARD_ARGS=<redis-server arguments> to this systemd EnvironmentFile (write_env)", Apply: str(func(c *Config, v string) { c.WriteEnv = v })},
		{Name: "write-include", Usage: "write a redis config fragment (replicaof ...) to this file (write_include)", Apply: str(func(c *Config, v string) { c.WriteInclude = v })},
		{Name: "print", Bool: true, Usage: "print the redis-server arguments on stdout (print)", Apply: boolean(func(c *Config, v bool) { c.Print = v })},
		{Name: "log-level", Usage: "debug, info, warn or error (log_level; default info)", Apply: str(func(c *Config, v string) { c.LogLevel = v })},
	}
}

// Validate reports every problem at once, by key name.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.MasterName == "" {
		bad("master_name: empty")
	}
	addr := func(key, a string) {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			bad("%s: %q is not host:port", key, a)
		}
	}
	if c.Self == "" {
		bad("self: required (--self)")
	} else {
		addr("self", c.Self)
	}
	if len(c.Sentinels) == 0 {
		bad("sentinels: at least one is required (--sentinel)")
	}
	for _, s := range c.Sentinels {
		addr("sentinels", s)
	}
	for _, n := range c.Nodes {
		addr("nodes", n)
	}
	if c.RDB == "" && !c.AppendOnly {
		bad("rdb: empty")
	}
	if c.AppendOnly && c.AOFDir == "" {
		bad("aof_dir: empty with appendonly")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"bound", c.Bound}, {"retry", c.Retry}, {"probe_timeout", c.ProbeTimeout}, {"failover_grace", c.FailoverGrace}} {
		if d.v <= 0 {
			bad("%s: must be positive", d.key)
		}
	}
	if c.WriteEnv == "" && c.WriteInclude == "" && !c.Print {
		bad("no output: give write_env, write_include or print (--write-env, --write-include, --print)")
	}
	if _, err := confkit.ParseLevel(c.LogLevel); err != nil {
		bad("log_level: %v", err)
	}
	if _, err := confkit.ParseFormat(c.LogFormat); err != nil {
		bad("log_format: %v", err)
	}
	return errors.Join(errs...)
}

// Core is the core's configuration.
func (c *Config) Core() core.Config {
	return core.Config{Self: c.Self, MasterName: c.MasterName, Sentinels: len(c.Sentinels),
		Bound: c.Bound, Retry: c.Retry, FailoverGrace: c.FailoverGrace}
}

// Options is the driver's configuration.
func (c *Config) Options() driver.Options {
	return driver.Options{MasterName: c.MasterName, Self: c.Self, Sentinels: c.Sentinels, Nodes: c.Nodes,
		NodeAuth:     driver.Auth{Username: c.NodeAuth.User, Password: c.NodeAuth.Password},
		SentinelAuth: driver.Auth{Username: c.SentinelAuth.User, Password: c.SentinelAuth.Password}}
}
