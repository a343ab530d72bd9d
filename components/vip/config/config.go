// Package config loads and validates the redisha-vip YAML configuration.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/redisha/redisha/components/confkit"

	"github.com/redisha/redisha/components/vip/core"
	"github.com/redisha/redisha/components/vip/vrrp"
)

// Duration is confkit's: a Go duration ("1s", "250ms") as before, or whole
// milliseconds.
type Duration = confkit.Duration

// DefaultGARPRepeat is garp.repeat when unset: the second burst after
// becoming master.
const DefaultGARPRepeat = 5 * time.Second

// DefaultGARPRefresh is garp.refresh when unset. keepalived's
// garp_master_refresh is off by default, but behind redisha both proxies
// route to the same Redis master, so a client sent to either is served,
// while one left on a router that dropped the VIP is cut off until its ARP
// entry expires (Linux: 15-45 s reachable, then probes). One GARP per address
// every 10 s is negligible broadcast traffic and bounds that outage to
// about 10 s plus one advert interval.
const DefaultGARPRefresh = 10 * time.Second

// DefaultStallHold is stall_hold when unset: after yielding as a stalled
// master, no preemption for a minute. Long enough that a node that froze
// once does not take the VIP back within the same incident (the scenarios
// observe 15-20 s of trouble); short enough that the preferred node is
// preferred again soon after.
const DefaultStallHold = time.Minute

// Config is the whole file.
type Config struct {
	// Name identifies the instance in logs, notify hooks and metrics.
	Name string `yaml:"name"`
	// Interface carries the adverts and the virtual addresses.
	Interface string `yaml:"interface"`
	VRID      int    `yaml:"vrid"`
	// Version is the VRRP version, 3 (default) or 2 (keepalived's default).
	Version  int `yaml:"version"`
	Priority int `yaml:"priority"`
	// AdvertInterval: v3 in steps of 10ms (centiseconds), v2 whole seconds.
	AdvertInterval Duration `yaml:"advert_interval"`
	// Preempt defaults to true; set false for keepalived's nopreempt.
	Preempt *bool `yaml:"preempt"`
	// StallHold (default 60s, 0s off) turns on the stalled-master rule: a
	// master that could not advertise for three intervals (frozen,
	// starved) and hears that another took over yields instead of
	// reclaiming by priority, and does not preempt for this long, so a
	// slow master moves the VIP once, not twice (docs/vip.md).
	StallHold *Duration `yaml:"stall_hold"`
	// Checksum is the VRRPv3 send form: pseudo-header (default) or message-only.
	// Both forms are always accepted.
	Checksum string `yaml:"checksum"`
	// SourceAddress defaults to the first IPv4 address of Interface.
	SourceAddress string `yaml:"source_address"`
	// UnicastPeers, when set, replaces multicast to 224.0.0.18; adverts
	// from other sources are then dropped (reason peer).
	UnicastPeers []string `yaml:"unicast_peers"`
	// Authentication is VRRPv2 simple-password authentication, for a group
	// shared with keepalived configured with auth_type PASS.
	Authentication Authentication `yaml:"authentication"`
	// VirtualAddresses are "a.b.c.d" (a /32) or "a.b.c.d/len".
	VirtualAddresses []string  `yaml:"virtual_addresses"`
	GARP             GARP      `yaml:"garp"`
	Notify           Notify    `yaml:"notify"`
	Track            []Track   `yaml:"track"`
	Status           Status    `yaml:"status"`
	Log              LogConfig `yaml:"log"`
}

// Authentication mirrors keepalived's authentication block. The password
// travels in clear text in every advert: it keeps a misconfigured router
// out of the group, it does not secure it (RFC 3768 removed it for that
// reason; VRRPv3 has none).
type Authentication struct {
	// Type is "" or "none" (default) or "pass" (keepalived's auth_type
	// PASS). AH is not supported.
	Type string `yaml:"type"`
	// Password is keepalived's auth_pass: 1 to 8 bytes (keepalived uses
	// only the first 8 of a longer one, so a longer one is refused here
	// rather than silently truncated).
	Password string `yaml:"password"`
}

// Auth is the wire form of the authentication.
func (a Authentication) Auth() vrrp.Auth {
	if a.Type == "pass" {
		return vrrp.PasswordAuth(a.Password)
	}
	return vrrp.Auth{}
}

// GARP configures gratuitous ARP on becoming master.
type GARP struct {
	// Count is how many GARPs per address per burst (default 5).
	Count int `yaml:"count"`
	// Delay separates the GARPs of a burst (default 10ms).
	Delay Duration `yaml:"delay"`
	// Repeat sends a second burst this long after becoming master (default 5s, 0 off),
	// as keepalived's garp_master_delay does.
	Repeat *Duration `yaml:"repeat"`
	// Refresh makes a settled master announce again this often (default
	// 10s, 0 off), as keepalived's garp_master_refresh does (off there by
	// default). It bounds how long clients keep a stale ARP entry for the
	// loser of a split brain that left without the winner hearing it.
	// Checked at each advert, so it rounds up to whole advert intervals.
	Refresh *Duration `yaml:"refresh"`
	// RefreshRepeat is how many GARPs per address each refresh sends
	// (default 1, keepalived's garp_master_refresh_repeat).
	RefreshRepeat int `yaml:"refresh_repeat"`
}

// Notify holds commands run on state changes (argv lists, no shell).
type Notify struct {
	Master []string `yaml:"master"`
	Backup []string `yaml:"backup"`
	Fault  []string `yaml:"fault"`
	Stop   []string `yaml:"stop"`
	// Any runs on every change with arguments: name state priority.
	Any     []string `yaml:"any"`
	Timeout Duration `yaml:"timeout"`
}

// Track is one tracked check; exactly one of HTTP, Process, Command, Watch
// is set.
type Track struct {
	Name    string   `yaml:"name"`
	HTTP    string   `yaml:"http"`
	Process string   `yaml:"process"`
	Command []string `yaml:"command"`
	// Watch is an address the tracked server keeps a connection open on:
	// "host:port" (TCP) or "unix:/path". The connection being established
	// is a pass; its end (close, reset, refusal) or a "stopping" line from
	// the server is a failure at once, reported without waiting for an
	// interval. docs/vip.md describes the protocol.
	Watch string `yaml:"watch"`
	// Interval is the check period; for watch, the pause before
	// reconnecting after a failure (default 100ms).
	Interval Duration `yaml:"interval"`
	// Timeout bounds one check; for watch, one connection attempt (default 1s).
	Timeout Duration `yaml:"timeout"`
	Rise    int      `yaml:"rise"`
	Fall    int      `yaml:"fall"`
	Weight  int      `yaml:"weight"`
	// Fault: a failing check puts the router into FAULT instead of weighting.
	Fault bool `yaml:"fault"`
}

// DefaultWatchRetry is a watch track's interval when unset: how long it
// waits before reconnecting after the connection ended or was refused.
const DefaultWatchRetry = 100 * time.Millisecond

// WatchAddr splits Watch into a network for net.Dial ("tcp" or "unix") and
// an address.
func (t Track) WatchAddr() (network, addr string, err error) {
	if path, ok := strings.CutPrefix(t.Watch, "unix:"); ok {
		if path == "" {
			return "", "", fmt.Errorf("watch %q: empty unix socket path", t.Watch)
		}
		return "unix", path, nil
	}
	host, port, err := net.SplitHostPort(t.Watch)
	if err != nil || host == "" || port == "" {
		return "", "", fmt.Errorf("watch %q: want host:port or unix:/path", t.Watch)
	}
	return "tcp", t.Watch, nil
}

// Status configures the local HTTP endpoint (/status, /metrics).
type Status struct {
	// Listen is host:port; default 127.0.0.1:9732, "off" disables it.
	Listen string `yaml:"listen"`
}

// LogConfig selects the slog output.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default) or json
}

// VIP is a parsed virtual address.
type VIP struct {
	Addr netip.Addr
	Bits int
}

func (v VIP) String() string { return netip.PrefixFrom(v.Addr, v.Bits).String() }

// Load reads and validates a file with confkit's strict loader (one
// document, unknown or repeated keys rejected, "file:line: key: message"
// errors). It returns the file's deprecation warnings, one line each.
func Load(path string) (*Config, []string, error) {
	var c Config
	meta, err := confkit.Load(path, &c)
	if err != nil {
		return nil, nil, err
	}
	return c.finish(meta)
}

// Parse is Load for data already read.
func Parse(b []byte) (*Config, error) {
	var c Config
	meta, err := confkit.Parse("config", b, &c)
	if err != nil {
		return nil, err
	}
	cfg, _, err := c.finish(meta)
	return cfg, err
}

// finish fills defaults and validates; a problem is reported at the line of
// the key it names, when there is one.
func (c *Config) finish(meta *confkit.Meta) (*Config, []string, error) {
	c.defaults()
	if err := c.validate(); err != nil {
		key, _, _ := strings.Cut(err.Error(), ":")
		key, _, _ = strings.Cut(key, "[")
		if line := meta.Line(key); line > 0 && !strings.ContainsAny(key, " ") {
			return nil, nil, fmt.Errorf("%s:%d: %w", meta.File, line, err)
		}
		return nil, nil, fmt.Errorf("%s: %w", meta.File, err)
	}
	var warn []string
	for _, d := range meta.Deprecations {
		warn = append(warn, d.String())
	}
	return c, warn, nil
}

func (c *Config) defaults() {
	if c.Name == "" {
		c.Name = fmt.Sprintf("vrid%d", c.VRID)
	}
	if c.Version == 0 {
		c.Version = 3
	}
	if c.AdvertInterval == 0 {
		c.AdvertInterval = Duration(time.Second)
	}
	if c.Preempt == nil {
		t := true
		c.Preempt = &t
	}
	if c.StallHold == nil {
		d := Duration(DefaultStallHold)
		c.StallHold = &d
	}
	if c.GARP.Count == 0 {
		c.GARP.Count = 5
	}
	if c.GARP.Delay == 0 {
		c.GARP.Delay = Duration(10 * time.Millisecond)
	}
	if c.GARP.Repeat == nil {
		d := Duration(DefaultGARPRepeat)
		c.GARP.Repeat = &d
	}
	if c.GARP.Refresh == nil {
		d := Duration(DefaultGARPRefresh)
		c.GARP.Refresh = &d
	}
	if c.GARP.RefreshRepeat == 0 {
		c.GARP.RefreshRepeat = 1
	}
	if c.Notify.Timeout == 0 {
		c.Notify.Timeout = Duration(10 * time.Second)
	}
	if c.Status.Listen == "" {
		c.Status.Listen = "127.0.0.1:9732"
	}
	for i := range c.Track {
		t := &c.Track[i]
		if t.Watch != "" {
			if t.Interval == 0 {
				t.Interval = Duration(DefaultWatchRetry)
			}
			if t.Timeout == 0 {
				t.Timeout = Duration(time.Second)
			}
		}
		if t.Interval == 0 {
			t.Interval = Duration(time.Second)
		}
		if t.Timeout == 0 {
			t.Timeout = t.Interval
		}
		if t.Rise == 0 {
			t.Rise = 1
		}
		if t.Fall == 0 {
			t.Fall = 1
		}
	}
}

func (c *Config) validate() error {
	if c.Interface == "" {
		return errors.New("interface: required")
	}
	if c.VRID < 1 || c.VRID > 255 {
		return fmt.Errorf("vrid: %d is not 1..255", c.VRID)
	}
	if c.Priority < 1 || c.Priority > 255 {
		return fmt.Errorf("priority: %d is not 1..255", c.Priority)
	}
	iv := c.AdvertInterval.D()
	switch c.Version {
	case 2:
		if iv%time.Second != 0 || iv < time.Second || iv > 255*time.Second {
			return fmt.Errorf("advert_interval: VRRPv2 needs whole seconds 1s..255s, got %v", iv)
		}
	case 3:
		if iv%(10*time.Millisecond) != 0 || iv < 10*time.Millisecond || iv > 40950*time.Millisecond {
			return fmt.Errorf("advert_interval: VRRPv3 needs a multiple of 10ms in 10ms..40.95s, got %v", iv)
		}
	default:
		return fmt.Errorf("version: %d is not 2 or 3", c.Version)
	}
	if _, err := vrrp.ParseChecksumForm(c.Checksum); err != nil {
		return fmt.Errorf("checksum: %v", err)
	}
	if c.SourceAddress != "" {
		if a, err := netip.ParseAddr(c.SourceAddress); err != nil || !a.Is4() {
			return fmt.Errorf("source_address: %q is not an IPv4 address", c.SourceAddress)
		}
	}
	for _, p := range c.UnicastPeers {
		if a, err := netip.ParseAddr(p); err != nil || !a.Is4() || a.IsMulticast() {
			return fmt.Errorf("unicast_peers: %q is not a unicast IPv4 address", p)
		}
	}
	switch a := c.Authentication; a.Type {
	case "", "none":
		if a.Password != "" {
			return errors.New("authentication.password: set only with type: pass")
		}
	case "pass":
		if c.Version != 2 {
			return errors.New("authentication.type: pass is VRRPv2 only (RFC 5798 removed authentication; keepalived ignores it with v3)")
		}
		if len(a.Password) < 1 || len(a.Password) > 8 {
			return fmt.Errorf("authentication.password: %d bytes, want 1..8 (keepalived's auth_pass uses at most 8)", len(a.Password))
		}
	default:
		return fmt.Errorf("authentication.type: %q, want none or pass", a.Type)
	}
	vips, err := c.VIPs()
	if err != nil {
		return err
	}
	if len(vips) == 0 {
		return errors.New("virtual_addresses: at least one is required")
	}
	if *c.StallHold < 0 {
		return errors.New("stall_hold: must not be negative")
	}
	if c.GARP.Count < 0 || c.GARP.Delay < 0 || *c.GARP.Repeat < 0 || *c.GARP.Refresh < 0 || c.GARP.RefreshRepeat < 0 {
		return errors.New("garp: count, delay, repeat, refresh and refresh_repeat must not be negative")
	}
	names := map[string]bool{}
	for i, t := range c.Track {
		where := fmt.Sprintf("track[%d] (%s)", i, t.Name)
		if t.Name == "" || names[t.Name] {
			return fmt.Errorf("%s: name empty or repeated", where)
		}
		names[t.Name] = true
		n := 0
		if t.HTTP != "" {
			n++
			if !strings.HasPrefix(t.HTTP, "http://") && !strings.HasPrefix(t.HTTP, "https://") {
				return fmt.Errorf("%s: http %q must be an http:// or https:// URL", where, t.HTTP)
			}
		}
		if t.Process != "" {
			n++
		}
		if len(t.Command) > 0 {
			n++
		}
		if t.Watch != "" {
			n++
			if _, _, err := t.WatchAddr(); err != nil {
				return fmt.Errorf("%s: %v", where, err)
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: set exactly one of http, process, command, watch", where)
		}
		if t.Interval < 0 || t.Timeout < 0 || t.Rise < 1 || t.Fall < 1 {
			return fmt.Errorf("%s: interval/timeout must be positive, rise/fall at least 1", where)
		}
		if t.Fault && t.Weight != 0 {
			return fmt.Errorf("%s: fault and weight are exclusive", where)
		}
		if !t.Fault && t.Weight == 0 {
			return fmt.Errorf("%s: set a non-zero weight or fault: true", where)
		}
		if t.Weight < -253 || t.Weight > 253 {
			return fmt.Errorf("%s: weight %d outside -253..253", where, t.Weight)
		}
	}
	if _, err := c.Core(netip.MustParseAddr("0.0.0.1")); err != nil {
		return err
	}
	return nil
}

// VIPs parses VirtualAddresses.
func (c *Config) VIPs() ([]VIP, error) {
	var out []VIP
	seen := map[netip.Addr]bool{}
	for _, s := range c.VirtualAddresses {
		var v VIP
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("virtual_addresses: %q: %v", s, err)
			}
			v = VIP{p.Addr(), p.Bits()}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("virtual_addresses: %q: %v", s, err)
			}
			v = VIP{a, 32}
		}
		if !v.Addr.Is4() || v.Addr.IsMulticast() || v.Addr.IsUnspecified() || v.Addr.IsLoopback() {
			return nil, fmt.Errorf("virtual_addresses: %q is not a unicast IPv4 address", s)
		}
		if seen[v.Addr] {
			return nil, fmt.Errorf("virtual_addresses: %q repeated", s)
		}
		seen[v.Addr] = true
		out = append(out, v)
	}
	return out, nil
}

// Interval is the advert interval in centiseconds.
func (c *Config) Interval() uint16 {
	return uint16(c.AdvertInterval.D() / (10 * time.Millisecond))
}

// Core builds the state machine configuration for a primary address.
func (c *Config) Core(primary netip.Addr) (core.Config, error) {
	mc := core.Config{
		Version: c.Version, VRID: uint8(c.VRID), Priority: uint8(c.Priority),
		Interval: c.Interval(), Preempt: *c.Preempt, Primary: primary,
		GARPRefresh: c.GARP.Refresh.D(), GARPRepeat: c.GARP.Repeat.D(), StallHold: c.StallHold.D(),
	}
	for _, t := range c.Track {
		mc.Tracks = append(mc.Tracks, core.Track{Name: t.Name, Rise: t.Rise, Fall: t.Fall, Weight: t.Weight, Fault: t.Fault})
	}
	return mc, mc.Validate()
}
