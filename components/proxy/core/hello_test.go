package core

import (
	"strings"
	"testing"
	"time"
)

const (
	S1 = "10.0.2.1:26379"
	S2 = "10.0.2.2:26379"
	S3 = "10.0.2.3:26379"
)

var (
	id1 = strings.Repeat("a", 40)
	id2 = strings.Repeat("b", 40)
	id3 = strings.Repeat("c", 40)
)

func helloCore(t *testing.T, on bool) *Core {
	t.Helper()
	c, err := New(Config{MasterName: "m", Sentinels: []string{S1, S2, S3}, Backends: []string{A, B, C},
		HelloViews: on, CheckInterval: time.Second, CheckTimeout: 500 * time.Millisecond}, at(0))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hello(s, id, addr string, epoch int64) Hello {
	return Hello{Via: A, Sentinel: s, RunID: id, CurrentEpoch: epoch, MasterName: "m", MasterAddr: addr, ConfigEpoch: epoch}
}

// walk ticks the core every second up to ms, as the daemon's probes do:
// a longer gap would be a stall.
func walk(c *Core, ms int) {
	for c.now.Before(at(ms)) {
		next := c.now.Add(time.Second)
		if next.After(at(ms)) {
			next = at(ms)
		}
		c.Tick(next)
	}
}

// runIDView is a direct view that also carries the sentinel's run id.
func runIDView(ms int, s, id, addr string, epoch int64) View {
	v := view(ms, s, addr, epoch)
	v.RunID = id
	return v
}

// The scenario of the issue: after a failover to B at epoch 2, the proxy
// reaches S1 directly only; S2 (died with the old master) and S3 (cut off)
// are heard on the data nodes' hello channel. Only with hello views on does
// the majority form, and only for what S1 says directly.
func TestHelloCompletesMajority(t *testing.T) {
	for _, on := range []bool{false, true} {
		c := helloCore(t, on)
		// Run ids learned directly before the links broke.
		c.View(at(0), runIDView(0, S1, id1, A, 1))
		c.View(at(0), runIDView(0, S2, id2, A, 1))
		c.View(at(0), runIDView(0, S3, id3, A, 1))
		c.Health(at(0), master(0, A))
		if c.Route().Master != A {
			t.Fatalf("on=%v: route %+v, want %s", on, c.Route(), A)
		}
		// Failover; S1's direct view names B at 2, S3's only through hellos.
		walk(c, 6000)
		c.Health(at(6000), replica(6000, A, B))
		c.Health(at(6000), master(6000, B))
		c.View(at(6000), runIDView(6000, S1, id1, B, 2))
		c.Hello(at(6100), hello(S3, id3, B, 2))
		want := ""
		if on {
			want = B
		}
		if got := c.Route().Master; got != want {
			t.Fatalf("on=%v: route %+v, want %q", on, c.Route(), want)
		}
		s := c.Snapshot()
		if on && (s.SentinelsViaHello != 1 || s.Hellos.Kept != 1 || !s.Sentinels[2].ViaHello) {
			t.Fatalf("snapshot: %+v", s)
		}
		if !on && s.Hellos.Off != 1 {
			t.Fatalf("snapshot: %+v", s.Hellos)
		}
		// The hello is dated by when it was heard: it stops counting ViewTTL later.
		walk(c, 6100+int(DefaultViewTTL/time.Millisecond)+1)
		if c.Route().Master == B && c.Snapshot().SentinelsViaHello != 0 {
			t.Fatalf("on=%v: hello still counts after the TTL", on)
		}
	}
}

// Forged hellos never make a majority of their own.
func TestHelloForgeries(t *testing.T) {
	setup := func() *Core {
		c := helloCore(t, true)
		c.View(at(0), runIDView(0, S1, id1, A, 1))
		c.View(at(0), runIDView(0, S2, id2, A, 1))
		c.View(at(0), runIDView(0, S3, id3, A, 1))
		c.Health(at(0), master(0, A))
		c.Health(at(0), master(0, C)) // C claims master too (a returning old master)
		// Only S1 answers directly from now on.
		walk(c, 6000)
		c.View(at(6000), runIDView(6000, S1, id1, A, 1))
		c.Health(at(6000), master(6000, A))
		c.Health(at(6000), master(6000, C))
		return c
	}
	cases := []struct {
		name  string
		h     []Hello
		want  string
		stats func(HelloStats) bool
	}{
		{"wrong run id", []Hello{hello(S2, id3, A, 1), hello(S3, id1, A, 1)}, "",
			func(s HelloStats) bool { return s.BadRunID == 2 }},
		{"unknown sentinel", []Hello{hello("10.0.9.9:26379", id2, A, 1)}, "",
			func(s HelloStats) bool { return s.Unknown == 1 }},
		{"other master name", []Hello{{Sentinel: S2, RunID: id2, MasterName: "x", MasterAddr: A, ConfigEpoch: 1}}, "",
			func(s HelloStats) bool { return s.OtherName == 1 }},
		{"right run ids, another master", []Hello{hello(S2, id2, C, 1), hello(S3, id3, C, 1)}, "",
			func(s HelloStats) bool { return s.Kept == 2 }},
		{"right run ids, higher epoch", []Hello{hello(S2, id2, C, 9), hello(S3, id3, C, 9)}, "",
			func(s HelloStats) bool { return s.Kept == 2 }},
		{"genuine", []Hello{hello(S2, id2, A, 1)}, A,
			func(s HelloStats) bool { return s.Kept == 1 }},
	}
	for _, tc := range cases {
		c := setup()
		for _, h := range tc.h {
			c.Hello(at(6050), h)
		}
		if got := c.Route().Master; got != tc.want {
			t.Errorf("%s: route %+v, want %q", tc.name, c.Route(), tc.want)
		}
		if !tc.stats(c.Snapshot().Hellos) {
			t.Errorf("%s: stats %+v", tc.name, c.Snapshot().Hellos)
		}
		// Nothing a hello names is probed.
		for _, tg := range c.targets {
			if tg.addr == "10.0.9.9:26379" {
				t.Errorf("%s: a hello's address became a probe target", tc.name)
			}
		}
	}
}

// A hello older in epoch than a fresh one of the same sentinel (replayed,
// or held up in a frozen node) does not replace it; hellos read right after
// the proxy stalled are not believed.
func TestHelloReplayAndStall(t *testing.T) {
	c := helloCore(t, true)
	c.View(at(0), runIDView(0, S1, id1, B, 2))
	c.View(at(0), runIDView(0, S2, id2, B, 2))
	c.Hello(at(100), hello(S2, id2, B, 2))
	c.Hello(at(200), hello(S2, id2, A, 1))
	if s := c.Snapshot(); s.Hellos.OlderEpoch != 1 || s.Sentinels[1].HelloEpoch != 2 {
		t.Fatalf("older-epoch hello replaced a newer one: %+v", s.Sentinels[1])
	}
	// A 3 s gap without a step (the proxy was frozen): hellos read within
	// the quarantine are dropped, later ones kept.
	c.Hello(at(3300), hello(S2, id2, B, 2))
	c.Hello(at(3300+400), hello(S2, id2, B, 2))
	c.Hello(at(3300+600), hello(S2, id2, B, 2))
	if s := c.Snapshot().Hellos; s.Stalled != 2 || s.Kept != 2 {
		t.Fatalf("stall: %+v", s)
	}
}

func TestParseHello(t *testing.T) {
	h, ok := ParseHello("10.0.0.5,26379," + id1 + ",7,mymaster,10.0.0.1,6379,6")
	if !ok || h.Sentinel != "10.0.0.5:26379" || h.MasterAddr != "10.0.0.1:6379" || h.ConfigEpoch != 6 || h.CurrentEpoch != 7 || h.RunID != id1 {
		t.Fatalf("%+v %v", h, ok)
	}
	for _, bad := range []string{"", "a,b", "10.0.0.5,26379,xyz,7,mymaster,10.0.0.1,6379,6",
		"10.0.0.5,0," + id1 + ",7,mymaster,10.0.0.1,6379,6", "10.0.0.5,26379," + id1 + ",-1,mymaster,10.0.0.1,6379,6",
		"10.0.0.5,26379," + id1 + ",7,,10.0.0.1,6379,6", "10.0.0.5,26379," + id1 + ",7,m,10.0.0.1,6379,x,1"} {
		if _, ok := ParseHello(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
