// Package config reads the redisha-witness YAML config file with
// components/confkit (one strict document, unknown keys rejected, every
// problem as "file:line: key: message") and turns it into daemon options.
package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redisha/redisha/components/confkit"
	"github.com/redisha/redisha/components/witness/core"
	"github.com/redisha/redisha/components/witness/daemon"
)

// File is the config file's schema.
type File struct {
	// Bind lists the addresses to listen on (like sentinel's bind).
	Bind []string `yaml:"bind"`
	// Port is the client/peer port (26379 like sentinel).
	Port int `yaml:"port"`
	// AnnounceIP/AnnouncePort are what hellos announce (sentinel announce-ip/-port).
	AnnounceIP   string `yaml:"announce_ip"`
	AnnouncePort int    `yaml:"announce_port"`
	// ProtectedMode (default true) refuses a non-loopback bind without requirepass.
	ProtectedMode *bool  `yaml:"protected_mode"`
	RequirePass   string `yaml:"requirepass"`
	// MaxClients caps client connections (redis maxclients; 10000).
	// Unauthenticated connections never lock peers out: at the cap, a new
	// connection takes the place of the oldest unauthenticated one.
	MaxClients int `yaml:"maxclients"`
	// AuthTimeout closes a connection that has not authenticated (or, with
	// no requirepass, sent a command) this long after connecting (10s).
	AuthTimeout Duration `yaml:"auth_timeout"`
	// MaxPeers bounds the peer sentinels kept per master (32).
	MaxPeers int `yaml:"max_peers"`
	// ForgetPeersAfter drops a peer sentinel not heard from this long (10m);
	// it is learned again from its next hello.
	ForgetPeersAfter Duration `yaml:"forget_peers_after"`
	// SentinelAuth authenticates us to peer sentinels (sentinel
	// sentinel-user/-pass); default: requirepass. The old flat keys
	// sentinel_user/sentinel_pass still work (deprecated).
	SentinelAuth confkit.Auth `yaml:"sentinel_auth"`
	// StateFile is where run id, epochs and votes are kept.
	StateFile string `yaml:"state_file"`
	// MetricsListen serves Prometheus /metrics ("" disables).
	MetricsListen string   `yaml:"metrics_listen"`
	LogLevel      string   `yaml:"log_level"`  // debug, info, warn, error
	LogFormat     string   `yaml:"log_format"` // text, json
	Masters       []Master `yaml:"masters"`
	// Timing overrides the sentinel periods (tests, simulations).
	Timing Timing `yaml:"timing"`
}

// Master is one monitored master (sentinel monitor + its options).
type Master struct {
	Name            string   `yaml:"name"`
	Address         string   `yaml:"address"` // ip:port
	Quorum          int      `yaml:"quorum"`
	DownAfter       Duration `yaml:"down_after"`
	FailoverTimeout Duration `yaml:"failover_timeout"`
	ParallelSyncs   int      `yaml:"parallel_syncs"`
	// Auth is sentinel auth-user/auth-pass for the master and its replicas;
	// the old flat keys auth_user/auth_pass still work (deprecated).
	Auth confkit.Auth `yaml:"auth"`
}

// Timing mirrors core.Timing.
type Timing struct {
	PingPeriod    Duration `yaml:"ping_period"`
	InfoPeriod    Duration `yaml:"info_period"`
	PublishPeriod Duration `yaml:"publish_period"`
	AskPeriod     Duration `yaml:"ask_period"`
	TiltTrigger   Duration `yaml:"tilt_trigger"`
	TiltPeriod    Duration `yaml:"tilt_period"`
	// PersistDelay coalesces state writes that are not votes (1s).
	PersistDelay Duration `yaml:"persist_delay"`
}

// Duration is confkit's: a Go duration ("5s", "1500ms") or a bare integer
// of milliseconds, as sentinel's *-milliseconds options and as before.
type Duration = confkit.Duration

// Aliases keep the keys of the first config format working: each use is
// reported as a deprecation with the new key.
var Aliases = []confkit.Alias{
	{Old: "sentinel_user", New: "sentinel_auth.user"},
	{Old: "sentinel_pass", New: "sentinel_auth.password"},
	{Old: "masters[].auth_user", New: "masters[].auth.user"},
	{Old: "masters[].auth_pass", New: "masters[].auth.password"},
}

// Load reads and validates a config file. The strings are deprecation
// warnings (old key names) for the caller to log once each.
func Load(path string) (*File, []string, error) {
	var f File
	meta, err := confkit.Load(path, &f, Aliases...)
	if err != nil {
		return nil, nil, err
	}
	return f.finish(meta)
}

// Parse decodes and validates config text.
func Parse(b []byte) (*File, error) {
	var f File
	meta, err := confkit.Parse("config", b, &f, Aliases...)
	if err != nil {
		return nil, err
	}
	out, _, err := f.finish(meta)
	return out, err
}

func (f *File) finish(meta *confkit.Meta) (*File, []string, error) {
	f.defaults()
	if err := f.validate(meta); err != nil {
		return nil, nil, err
	}
	var dep []string
	for _, d := range meta.Deprecations {
		dep = append(dep, d.String())
	}
	return f, dep, nil
}

func (f *File) defaults() {
	if len(f.Bind) == 0 {
		f.Bind = []string{"127.0.0.1"}
	}
	if f.Port == 0 {
		f.Port = 26379
	}
	if f.ProtectedMode == nil {
		t := true
		f.ProtectedMode = &t
	}
	if f.StateFile == "" {
		f.StateFile = "/var/lib/redisha-witness/state.json"
	}
	if f.LogLevel == "" {
		f.LogLevel = "info"
	}
	if f.LogFormat == "" {
		f.LogFormat = "text"
	}
	for i := range f.Masters {
		m := &f.Masters[i]
		if m.DownAfter == 0 {
			m.DownAfter = Duration(30 * time.Second)
		}
		if m.FailoverTimeout == 0 {
			m.FailoverTimeout = Duration(180 * time.Second)
		}
		if m.ParallelSyncs == 0 {
			m.ParallelSyncs = 1
		}
	}
}

// validate reports every problem at the line of the key it concerns.
func (f *File) validate(meta *confkit.Meta) error {
	var errs confkit.ErrorList
	bad := func(path, format string, args ...any) { errs = append(errs, meta.Errorf(path, format, args...)) }
	if f.Port < 1 || f.Port > 65535 {
		bad("port", "%d is not a TCP port", f.Port)
	}
	for i, b := range f.Bind {
		if b != "localhost" && net.ParseIP(b) == nil {
			bad(fmt.Sprintf("bind[%d]", i), "%q is not an IP address", b)
		}
	}
	if f.MaxClients < 0 {
		bad("maxclients", "%d is negative", f.MaxClients)
	}
	if f.MaxPeers < 0 {
		bad("max_peers", "%d is negative", f.MaxPeers)
	}
	if f.AuthTimeout < 0 {
		bad("auth_timeout", "must be positive")
	}
	if f.ForgetPeersAfter < 0 {
		bad("forget_peers_after", "must be positive")
	}
	if f.AnnounceIP != "" && net.ParseIP(f.AnnounceIP) == nil {
		bad("announce_ip", "%q is not an IP address (hellos announce IPs; hostnames are not supported)", f.AnnounceIP)
	}
	if f.MetricsListen != "" {
		if err := checkListen(f.MetricsListen); err != nil {
			bad("metrics_listen", "%q: %v", f.MetricsListen, err)
		}
	}
	if f.AnnouncePort < 0 || f.AnnouncePort > 65535 {
		bad("announce_port", "%d is not a TCP port", f.AnnouncePort)
	}
	if *f.ProtectedMode && f.RequirePass == "" {
		for i, b := range f.Bind {
			if !daemon.IsLoopback(b) {
				bad(fmt.Sprintf("bind[%d]", i), "bind %s: %v", b, daemon.ErrProtectedMode)
			}
		}
	}
	if _, err := confkit.ParseLevel(f.LogLevel); err != nil {
		bad("log_level", "%q is not debug, info, warn or error", f.LogLevel)
	}
	if f.LogFormat != "text" && f.LogFormat != "json" {
		bad("log_format", "%q is not text or json", f.LogFormat)
	}
	if len(f.Masters) == 0 {
		bad("masters", "at least one master is needed")
	}
	for i, m := range f.Masters {
		path := fmt.Sprintf("masters[%d]", i)
		if _, err := m.addr(); err != nil {
			bad(path+".address", "(%s) %v", m.Name, err)
		}
		if m.DownAfter < 0 || m.FailoverTimeout < 0 {
			bad(path, "(%s) durations must be positive", m.Name)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	cfg, err := f.coreConfig("0000000000000000000000000000000000000000")
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		bad("masters", "%v", err)
		return errs
	}
	return nil
}

// checkListen accepts what the metrics listener can bind: "ip:port",
// ":port" (every address) or "localhost:port".
func checkListen(s string) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want ip:port")
	}
	if h != "" && h != "localhost" && net.ParseIP(h) == nil {
		return fmt.Errorf("%q is not an IP address", h)
	}
	if port, err := strconv.Atoi(p); err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("%q is not a TCP port", p)
	}
	return nil
}

func (m Master) addr() (core.Addr, error) {
	h, p, err := net.SplitHostPort(m.Address)
	if err != nil {
		return core.Addr{}, fmt.Errorf("address %q: want ip:port", m.Address)
	}
	if net.ParseIP(h) == nil {
		return core.Addr{}, fmt.Errorf("address %q: %q is not an IP address (sentinel monitors by IP)", m.Address, h)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return core.Addr{}, fmt.Errorf("address %q: bad port", m.Address)
	}
	return core.Addr{IP: h, Port: port}, nil
}

func (f *File) coreConfig(myid string) (core.Config, error) {
	c := core.Config{MyID: myid, AnnounceIP: f.AnnounceIP, AnnouncePort: f.AnnouncePort,
		Timing: core.Timing{
			PingPeriod: time.Duration(f.Timing.PingPeriod), InfoPeriod: time.Duration(f.Timing.InfoPeriod),
			PublishPeriod: time.Duration(f.Timing.PublishPeriod), AskPeriod: time.Duration(f.Timing.AskPeriod),
			TiltTrigger: time.Duration(f.Timing.TiltTrigger), TiltPeriod: time.Duration(f.Timing.TiltPeriod),
			PersistDelay: time.Duration(f.Timing.PersistDelay), ForgetPeersAfter: time.Duration(f.ForgetPeersAfter)},
		MaxPeers: f.MaxPeers}
	for _, m := range f.Masters {
		a, err := m.addr()
		if err != nil {
			return c, err
		}
		c.Masters = append(c.Masters, core.MasterConfig{Name: m.Name, Addr: a, Quorum: m.Quorum,
			DownAfter: time.Duration(m.DownAfter), FailoverTimeout: time.Duration(m.FailoverTimeout), ParallelSyncs: m.ParallelSyncs})
	}
	return c, nil
}

// LogSettings are the level and format for the logger daemonkit builds.
func (f *File) LogSettings() (level, format string) { return f.LogLevel, f.LogFormat }

// Options converts the file into server options.
func (f *File) Options() (daemon.Options, error) {
	core, err := f.coreConfig("")
	if err != nil {
		return daemon.Options{}, err
	}
	auth := map[string]daemon.Auth{}
	for _, m := range f.Masters {
		auth[m.Name] = daemon.Auth{User: m.Auth.User, Pass: m.Auth.Password}
	}
	return daemon.Options{Core: core, Bind: f.Bind, Port: f.Port, ProtectedMode: *f.ProtectedMode,
		RequirePass: f.RequirePass, SentinelAuth: daemon.Auth{User: f.SentinelAuth.User, Pass: f.SentinelAuth.Password},
		MasterAuth: auth, StatePath: f.StateFile, MaxClients: f.MaxClients, AuthTimeout: time.Duration(f.AuthTimeout)}, nil
}
