package config

import (
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

const minimal = `
interface: eth0
vrid: 51
priority: 100
virtual_addresses: [10.78.0.100/24, 10.78.0.101]
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 3 || c.Interval() != 100 || !*c.Preempt || c.GARP.Count != 5 || c.Status.Listen != "127.0.0.1:9732" ||
		c.StallHold.D() != time.Minute {
		t.Fatalf("defaults: %+v", c)
	}
	v, _ := c.VIPs()
	if len(v) != 2 || v[0].String() != "10.78.0.100/24" || v[1].String() != "10.78.0.101/32" {
		t.Fatalf("vips %v", v)
	}
}

func TestExampleConfigParses(t *testing.T) {
	b, err := os.ReadFile("../dist/redisha-vip.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Track) == 0 {
		t.Fatal("example config should show tracking")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"", "the file is empty"},
		{minimal + "bogus: 1\n", "config:6: bogus: unknown key"},
		{minimal + "advert_interval: 1.5s\nversion: 2\n", "VRRPv2 needs whole seconds"},
		{minimal + "advert_interval: 15ms\n", "multiple of 10ms"},
		{minimal + "advert_interval: fast\n", `advert_interval: "fast" is not a duration`},
		{minimal + "version: 4\n", "version: 4"},
		{minimal + "version: 4\n", "config:6: version"},
		{minimal + "---\nname: x\n", "document"},
		{minimal + "priority: 90\n", "priority"},
		{minimal + "checksum: crc\n", "unknown checksum form"},
		{minimal + "unicast_peers: [224.0.0.1]\n", "unicast_peers"},
		{strings.Replace(minimal, "vrid: 51", "vrid: 0", 1), "vrid"},
		{strings.Replace(minimal, "priority: 100", "priority: 256", 1), "priority"},
		{strings.Replace(minimal, "10.78.0.101", "10.78.0.100", 1), "repeated"},
		{strings.Replace(minimal, "10.78.0.101", "fe80::1", 1), "not a unicast IPv4"},
		{strings.Replace(minimal, "interface: eth0", "", 1), "interface: required"},
		{minimal + "track: [{name: a, http: 'http://x', process: p, weight: 1}]\n", "exactly one"},
		{minimal + "track: [{name: a, watch: '127.0.0.1:7000', process: p, fault: true}]\n", "exactly one of http, process, command, watch"},
		{minimal + "track: [{name: a, watch: '127.0.0.1', fault: true}]\n", "want host:port or unix:/path"},
		{minimal + "track: [{name: a, watch: 'unix:', fault: true}]\n", "empty unix socket path"},
		{minimal + "track: [{name: a, process: p}]\n", "non-zero weight or fault"},
		{minimal + "track: [{name: a, process: p, weight: 5, fault: true}]\n", "exclusive"},
		{minimal + "track: [{name: a, http: 'ftp://x', weight: 5}]\n", "http://"},
		{minimal + "track: [{name: a, process: p, weight: 5, colour: red}]\n", "track[0].colour: unknown key"},
		{minimal + "garp: {refresh: -1s}\n", "must not be negative"},
		{minimal + "garp: {refresh_repeat: -1}\n", "must not be negative"},
		{minimal + "garp: {refresh: often}\n", `garp.refresh: "often" is not a duration`},
		{minimal + "garp: {refresh_every: 10s}\n", "garp.refresh_every: unknown key"},
		{minimal + "authentication: {type: pass, password: secret}\n", "VRRPv2 only"},
		{minimal + "stall_hold: -1s\n", "stall_hold: must not be negative"},
		{minimal + "version: 2\nauthentication: {type: pass}\n", "0 bytes, want 1..8"},
		{minimal + "version: 2\nauthentication: {type: pass, password: 123456789}\n", "9 bytes, want 1..8"},
		{minimal + "version: 2\nauthentication: {type: AH, password: x}\n", `"AH", want none or pass`},
		{minimal + "version: 2\nauthentication: {password: x}\n", "only with type: pass"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestWatchTrack(t *testing.T) {
	c, err := Parse([]byte(minimal + "track:\n  - {name: p, watch: '127.0.0.1:7000', fault: true}\n  - {name: u, watch: 'unix:/run/p.sock', fault: true, interval: 50ms}\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, u := c.Track[0], c.Track[1]
	if p.Interval.D() != DefaultWatchRetry || p.Timeout.D() != time.Second || p.Rise != 1 || p.Fall != 1 {
		t.Fatalf("watch defaults: %+v", p)
	}
	if n, a, _ := p.WatchAddr(); n != "tcp" || a != "127.0.0.1:7000" {
		t.Fatalf("tcp watch: %s %s", n, a)
	}
	if n, a, _ := u.WatchAddr(); n != "unix" || a != "/run/p.sock" || u.Interval.D() != 50*time.Millisecond {
		t.Fatalf("unix watch: %s %s %v", n, a, u.Interval)
	}
}

func TestTrackDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal + "track: [{name: a, process: haproxy, weight: -20, interval: 2s}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Track[0]
	if tr.Rise != 1 || tr.Fall != 1 || tr.Timeout.D() != 2*time.Second {
		t.Fatalf("%+v", tr)
	}
}

func TestGARPRefreshConfig(t *testing.T) {
	addr := netip.MustParseAddr("10.78.0.1")
	for _, tc := range []struct {
		yaml    string
		refresh time.Duration
		repeat  int
	}{
		{minimal, DefaultGARPRefresh, 1},
		{minimal + "garp: {refresh: 0s}\n", 0, 1},
		{minimal + "garp: {refresh: 30s, refresh_repeat: 3}\n", 30 * time.Second, 3},
	} {
		c, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		mc, err := c.Core(addr)
		if err != nil {
			t.Fatal(err)
		}
		if mc.GARPRefresh != tc.refresh || c.GARP.RefreshRepeat != tc.repeat {
			t.Errorf("%q: refresh %v repeat %d, want %v %d", tc.yaml, mc.GARPRefresh, c.GARP.RefreshRepeat, tc.refresh, tc.repeat)
		}
	}
}

func TestAuthentication(t *testing.T) {
	c, err := Parse([]byte(minimal + "version: 2\nauthentication: {type: pass, password: secret}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Authentication.Auth(); a.Type != 1 || string(a.Data[:]) != "secret\x00\x00" {
		t.Fatalf("auth %+v", a)
	}
	c, _ = Parse([]byte(minimal))
	if a := c.Authentication.Auth(); a.Type != 0 || a.Data != [8]byte{} {
		t.Fatalf("default auth %+v", a)
	}
}
