// Package config reads the redisha-witness YAML config file and turns it into
// server options. Every mistake is reported with the field it concerns; unknown
// fields are errors, so a typo never silently falls back to a default.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

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
	MaxClients int `yaml:"maxclients"`
	// SentinelUser/SentinelPass authenticate us to peer sentinels
	// (sentinel sentinel-user/-pass); default: requirepass.
	SentinelUser string `yaml:"sentinel_user"`
	SentinelPass string `yaml:"sentinel_pass"`
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
	AuthUser        string   `yaml:"auth_user"`
	AuthPass        string   `yaml:"auth_pass"`
}

// Timing mirrors core.Timing.
type Timing struct {
	PingPeriod    Duration `yaml:"ping_period"`
	InfoPeriod    Duration `yaml:"info_period"`
	PublishPeriod Duration `yaml:"publish_period"`
	AskPeriod     Duration `yaml:"ask_period"`
	TiltTrigger   Duration `yaml:"tilt_trigger"`
	TiltPeriod    Duration `yaml:"tilt_period"`
}

// Duration accepts Go durations ("5s", "1500ms") or a bare integer of
// milliseconds, as sentinel's *-milliseconds options.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like 5s or milliseconds", n.Line)
	}
	if ms, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
		*d = Duration(time.Duration(ms) * time.Millisecond)
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 5s, 1500ms) nor milliseconds", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Load reads and validates a config file.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// Parse decodes and validates config text.
func Parse(b []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty config: at least one master is needed")
		}
		return nil, err
	}
	f.defaults()
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
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

func (f *File) validate() error {
	if f.Port < 1 || f.Port > 65535 {
		return fmt.Errorf("port: %d is not a TCP port", f.Port)
	}
	for _, b := range f.Bind {
		if b != "localhost" && net.ParseIP(b) == nil {
			return fmt.Errorf("bind: %q is not an IP address", b)
		}
	}
	if f.MaxClients < 0 {
		return fmt.Errorf("maxclients: %d is negative", f.MaxClients)
	}
	if f.AnnounceIP != "" && strings.ContainsAny(f.AnnounceIP, ", \t") {
		return fmt.Errorf("announce_ip: %q cannot go into a hello message", f.AnnounceIP)
	}
	if f.AnnouncePort < 0 || f.AnnouncePort > 65535 {
		return fmt.Errorf("announce_port: %d is not a TCP port", f.AnnouncePort)
	}
	if *f.ProtectedMode && f.RequirePass == "" {
		for _, b := range f.Bind {
			if !daemon.IsLoopback(b) {
				return fmt.Errorf("bind %s: %w", b, daemon.ErrProtectedMode)
			}
		}
	}
	if _, err := f.logLevel(); err != nil {
		return err
	}
	if f.LogFormat != "text" && f.LogFormat != "json" {
		return fmt.Errorf("log_format: %q is not text or json", f.LogFormat)
	}
	if len(f.Masters) == 0 {
		return errors.New("masters: at least one master is needed")
	}
	for i, m := range f.Masters {
		if _, err := m.addr(); err != nil {
			return fmt.Errorf("masters[%d] (%s): %w", i, m.Name, err)
		}
		if m.DownAfter < 0 || m.FailoverTimeout < 0 {
			return fmt.Errorf("masters[%d] (%s): durations must be positive", i, m.Name)
		}
	}
	cfg, err := f.coreConfig("0000000000000000000000000000000000000000")
	if err != nil {
		return err
	}
	return cfg.Validate()
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
			TiltTrigger: time.Duration(f.Timing.TiltTrigger), TiltPeriod: time.Duration(f.Timing.TiltPeriod)}}
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

func (f *File) logLevel() (slog.Level, error) {
	switch strings.ToLower(f.LogLevel) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log_level: %q is not debug, info, warn or error", f.LogLevel)
}

// Logger builds the slog logger the file asks for, writing to w.
func (f *File) Logger(w *os.File) *slog.Logger {
	lvl, _ := f.logLevel()
	o := &slog.HandlerOptions{Level: lvl}
	if f.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// Options converts the file into server options.
func (f *File) Options() (daemon.Options, error) {
	core, err := f.coreConfig("")
	if err != nil {
		return daemon.Options{}, err
	}
	auth := map[string]daemon.Auth{}
	for _, m := range f.Masters {
		auth[m.Name] = daemon.Auth{User: m.AuthUser, Pass: m.AuthPass}
	}
	return daemon.Options{Core: core, Bind: f.Bind, Port: f.Port, ProtectedMode: *f.ProtectedMode,
		RequirePass: f.RequirePass, SentinelAuth: daemon.Auth{User: f.SentinelUser, Pass: f.SentinelPass},
		MasterAuth: auth, StatePath: f.StateFile, MaxClients: f.MaxClients}, nil
}
