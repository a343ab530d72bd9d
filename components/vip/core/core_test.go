package core

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/vip/vrrp"
)

var (
	t0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addrA = netip.MustParseAddr("10.78.0.1")
	addrB = netip.MustParseAddr("10.78.0.2")
	vipX  = netip.MustParseAddr("10.78.0.100")
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func newM(t *testing.T, mod func(*Config)) *Core {
	t.Helper()
	c := Config{Version: 3, VRID: 51, Priority: 100, Interval: 100, Preempt: true, Primary: addrA}
	if mod != nil {
		mod(&c)
	}
	m, err := New(c, t0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func advert(src netip.Addr, prio uint8, interval uint16) vrrp.Packet {
	return vrrp.Packet{Advert: vrrp.Advert{Version: 3, VRID: 51, Priority: prio, Interval: interval,
		Addresses: []netip.Addr{vipX}}, Src: src, Dst: vrrp.MulticastGroup, TTL: 255}
}

func kinds(as []Action) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, " ")
}

func has(as []Action, k ActionKind) bool {
	for _, a := range as {
		if a.Kind == k {
			return true
		}
	}
	return false
}

func TestMasterDownInterval(t *testing.T) {
	for _, tc := range []struct {
		version  int
		prio     uint8
		interval uint16
		skew     time.Duration
		mdi      time.Duration
	}{
		// v3: skew = ((256-prio)*interval)/256 centiseconds, integer arithmetic.
		{3, 100, 100, ms(600), ms(3600)},      // 156*100/256 = 60 cs
		{3, 254, 100, 0, ms(3000)},            // 2*100/256 = 0 cs
		{3, 1, 100, ms(990), ms(3990)},        // 255*100/256 = 99 cs
		{3, 200, 20, ms(40), ms(640)},         // 56*20/256 = 4 cs
		{3, 150, 50, ms(200), ms(1700)},       // 106*50/256 = 20 cs
		{3, 100, 4095, ms(24950), ms(147800)}, // 156*4095/256 = 2495 cs
		// v2: interval in seconds, skew = (256-prio)/256 s.
		{2, 100, 100, 609375 * time.Microsecond, 3609375 * time.Microsecond},
		{2, 255, 300, 3906250, 9*time.Second + 3906250},
		{2, 150, 200, 414062500, 6*time.Second + 414062500},
	} {
		t.Run(fmt.Sprintf("v%d/p%d/i%d", tc.version, tc.prio, tc.interval), func(t *testing.T) {
			m := newM(t, func(c *Config) { c.Version, c.Priority, c.Interval = tc.version, tc.prio, tc.interval })
			if got := m.SkewTime(); got != tc.skew {
				t.Errorf("skew %v, want %v", got, tc.skew)
			}
			if got := m.MasterDownInterval(); got != tc.mdi {
				t.Errorf("MDI %v, want %v", got, tc.mdi)
			}
		})
	}
}

// A backup becomes master exactly Master_Down_Interval after the last advert.
func TestMasterDownDetection(t *testing.T) {
	m := newM(t, nil)
	as := m.Start(t0)
	if m.State() != Backup || m.Deadline() != t0.Add(ms(3600)) {
		t.Fatalf("start: %v deadline %v", kinds(as), m.Deadline())
	}
	last := t0.Add(ms(1000))
	m.Receive(last, advert(addrB, 100, 100)) // equal priority from a higher address: accept
	if m.Deadline() != last.Add(ms(3600)) {
		t.Fatalf("deadline %v after advert", m.Deadline())
	}
	if as := m.Tick(last.Add(ms(3599))); as != nil || m.State() != Backup {
		t.Fatalf("early timer acted: %v", kinds(as))
	}
	as = m.Tick(last.Add(ms(3600)))
	if m.State() != Master {
		t.Fatalf("not master after MDI: %v", kinds(as))
	}
	want := "StateChanged(BACKUP->MASTER: master down: no advert for Master_Down_Interval) SendAdvert(100) AddVIPs SendGARP"
	if got := kinds(as); got != want || m.Next() != t0.Add(ms(5600)) {
		t.Fatalf("actions\n got %s next %v\nwant %s next 00:00:05.600", got, m.Next(), want)
	}
	// Masters advertise every interval, on schedule.
	as = m.Tick(last.Add(ms(4600)))
	if kinds(as) != "SendAdvert(100)" || m.Next() != t0.Add(ms(6600)) {
		t.Fatalf("advert timer: %s next %v", kinds(as), m.Next())
	}
}

func TestPreemption(t *testing.T) {
	for _, tc := range []struct {
		name       string
		preempt    bool
		ours, peer uint8
		peerAddr   netip.Addr
		wantMaster bool // after MDI with the peer advertising every interval
	}{
		{"preempt lower master", true, 150, 100, addrB, true},
		{"nopreempt keeps lower master", false, 150, 100, addrB, false},
		{"higher master stays", true, 100, 150, addrB, false},
		{"equal priority accepted by backup", true, 100, 100, addrB, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newM(t, func(c *Config) { c.Preempt, c.Priority = tc.preempt, tc.ours })
			m.Start(t0)
			now := t0
			for i := 0; i < 50; i++ { // 5 s of adverts every 100 ms
				now = now.Add(ms(100))
				m.Tick(now)
				m.Receive(now, advert(tc.peerAddr, tc.peer, 100))
				m.Tick(now)
			}
			if (m.State() == Master) != tc.wantMaster {
				t.Fatalf("state %v, want master=%v", m.State(), tc.wantMaster)
			}
		})
	}
}

// Preemption takes Master_Down_Interval from the first ignored advert.
func TestPreemptTiming(t *testing.T) {
	m := newM(t, func(c *Config) { c.Priority = 200 })
	m.Start(t0)
	skewed := t0.Add(m.MasterDownInterval())
	for now := t0.Add(ms(100)); now.Before(skewed); now = now.Add(ms(100)) {
		m.Receive(now, advert(addrB, 100, 100))
		m.Tick(now)
		if m.State() != Backup {
			t.Fatalf("took over at %v, before %v", now.Sub(t0), m.MasterDownInterval())
		}
	}
	m.Tick(skewed)
	if m.State() != Master {
		t.Fatalf("not master at MDI")
	}
}

func TestMasterYieldsAndTieBreak(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ours      uint8
		peer      uint8
		peerAddr  netip.Addr
		wantState State
	}{
		{"higher priority", 100, 101, addrB, Backup},
		{"lower priority", 100, 99, addrB, Master},
		{"tie, peer address higher", 100, 100, addrB, Backup},
		{"tie, peer address lower", 100, 100, netip.MustParseAddr("10.78.0.0"), Master},
		{"own advert looped back", 100, 100, addrA, Master},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newM(t, func(c *Config) { c.Priority = tc.ours })
			m.Start(t0)
			m.Tick(t0.Add(m.MasterDownInterval()))
			if m.State() != Master {
				t.Fatal("setup: not master")
			}
			now := t0.Add(5 * time.Second)
			as := m.Receive(now, advert(tc.peerAddr, tc.peer, 100))
			if m.State() != tc.wantState {
				t.Fatalf("state %v, want %v (%s)", m.State(), tc.wantState, kinds(as))
			}
			if tc.wantState == Backup && (!has(as, RemoveVIPs) || as[len(as)-1].Kind != SendAdvert) {
				t.Fatalf("yielded without removing VIPs and a last advert for the winner: %s", kinds(as))
			}
			if tc.name == "lower priority" && (!has(as, SendAdvert) || !has(as, SendGARP)) {
				t.Fatalf("split-brain heal must re-advertise and re-GARP: %s", kinds(as))
			}
		})
	}
}

// Graceful shutdown: the master sends priority 0, a backup takes over after
// Skew_Time instead of Master_Down_Interval.
func TestGracefulHandover(t *testing.T) {
	master := newM(t, func(c *Config) { c.Priority = 200; c.Primary = addrB })
	master.Start(t0)
	master.Tick(t0.Add(master.MasterDownInterval()))
	as := master.Shutdown(t0.Add(10 * time.Second))
	if got := kinds(as); got != "SendAdvert(0) RemoveVIPs StateChanged(MASTER->INIT: shutdown)" || !master.Next().IsZero() {
		t.Fatalf("shutdown actions: %s next %v", got, master.Next())
	}
	backup := newM(t, nil)
	backup.Start(t0)
	now := t0.Add(ms(500))
	backup.Receive(now, advert(addrB, 200, 100))
	bye := now.Add(ms(50))
	backup.Receive(bye, advert(addrB, 0, 100))
	if backup.Deadline() != bye.Add(backup.SkewTime()) || backup.SkewTime() != ms(600) {
		t.Fatalf("deadline %v, want priority-0 time + skew %v", backup.Deadline().Sub(bye), backup.SkewTime())
	}
	backup.Tick(bye.Add(ms(600)))
	if backup.State() != Master {
		t.Fatal("backup did not take over after Skew_Time")
	}
	// A master receiving priority 0 from someone else re-advertises at once.
	as = backup.Receive(bye.Add(ms(700)), advert(netip.MustParseAddr("10.78.0.9"), 0, 100))
	if kinds(as) != "SendAdvert(100)" || backup.Next() != t0.Add(ms(2250)) {
		t.Fatalf("master on priority 0: %s next %v", kinds(as), backup.Next())
	}
}

// v3: a backup uses the master's advertised interval for Master_Down_Interval.
func TestBackupAdoptsMasterInterval(t *testing.T) {
	m := newM(t, func(c *Config) { c.Interval = 100 })
	m.Start(t0)
	m.Receive(t0, advert(addrB, 150, 30))
	if m.MasterAdverInterval() != 30 {
		t.Fatalf("master interval %d", m.MasterAdverInterval())
	}
	// 3*30 + (156*30)/256 = 90 + 18 = 108 cs
	if m.Deadline() != t0.Add(ms(1080)) {
		t.Fatalf("deadline %v, want 1.08s", m.Deadline().Sub(t0))
	}
	// Our own adverts still use our interval once we are master.
	as := m.Tick(t0.Add(ms(1080)))
	if m.State() != Master || m.Next() != t0.Add(ms(2080)) {
		t.Fatalf("master timer %s next %v", kinds(as), m.Next())
	}
}

// v2: adverts with another interval never reach the machine (dropped by the
// filter, as keepalived does), so they cannot keep a backup quiet.
func TestV2IntervalMismatchDropped(t *testing.T) {
	m := newM(t, func(c *Config) { c.Version, c.Interval = 2, 100 })
	m.Start(t0)
	f := m.Filter(false)
	p := advert(addrB, 200, 200)
	p.Version = 2
	if vrrp.ReasonOf(f.Check(p)) != vrrp.ReasonInterval {
		t.Fatalf("v2 advert with 2 s interval not dropped for a 1 s router")
	}
	p.Interval = 100
	if err := f.Check(p); err != nil {
		t.Fatal(err)
	}
	m.Receive(t0.Add(ms(100)), p)
	if m.MasterAdverInterval() != 100 {
		t.Fatal("v2 must not adopt intervals")
	}
}

func TestTrackingWeights(t *testing.T) {
	m := newM(t, func(c *Config) {
		c.Priority = 100
		c.Tracks = []Track{{Name: "up", Rise: 2, Fall: 3, Weight: 50}, {Name: "down", Rise: 1, Fall: 1, Weight: -30}}
	})
	// Pending checks count as failing: 100 + 0 - 30.
	if m.Priority() != 70 {
		t.Fatalf("initial priority %d", m.Priority())
	}
	m.Start(t0)
	now := t0
	step := func(name string, ok bool) []Action { now = now.Add(ms(10)); return m.CheckResult(now, name, ok) }
	if as := step("up", true); !has(as, PriorityChanged) || m.Priority() != 120 {
		t.Fatalf("first result decides at once: %d %s", m.Priority(), kinds(as))
	}
	step("down", true)
	if m.Priority() != 150 {
		t.Fatalf("priority %d, want 150", m.Priority())
	}
	step("up", false)
	step("up", false)
	if m.Priority() != 150 {
		t.Fatal("fell before fall=3")
	}
	step("up", true) // resets the run
	step("up", false)
	step("up", false)
	step("up", false)
	if m.Priority() != 100 {
		t.Fatalf("priority %d after 3 failures, want 100", m.Priority())
	}
	step("up", true)
	if m.Priority() != 100 {
		t.Fatal("rose before rise=2")
	}
	step("up", true)
	if m.Priority() != 150 {
		t.Fatalf("priority %d after rise, want 150", m.Priority())
	}
}

// A master whose priority drops below a preempting backup loses the VIP to it.
func TestTrackingPriorityDropHandsOver(t *testing.T) {
	a := newM(t, func(c *Config) {
		c.Priority = 150
		c.Tracks = []Track{{Name: "proxy", Rise: 1, Fall: 1, Weight: -100}}
	})
	b := newM(t, func(c *Config) { c.Priority = 100; c.Primary = addrB })
	a.CheckResult(t0, "proxy", true)
	a.Start(t0)
	b.Start(t0)
	a.Tick(t0.Add(a.MasterDownInterval()))
	now := t0.Add(a.MasterDownInterval())
	b.Receive(now, advert(addrA, a.Priority(), 100))
	as := a.CheckResult(now.Add(ms(10)), "proxy", false)
	if a.Priority() != 50 || !has(as, SendAdvert) {
		t.Fatalf("priority %d actions %s", a.Priority(), kinds(as))
	}
	// b ignores a's low-priority adverts and takes over at its MDI.
	for t1 := now.Add(ms(100)); t1.Before(now.Add(5 * time.Second)); t1 = t1.Add(ms(100)) {
		for _, x := range a.Tick(t1) {
			if x.Kind == SendAdvert && b.State() == Backup {
				b.Receive(t1, advert(addrA, x.Priority, 100))
			}
		}
		for _, x := range b.Tick(t1) {
			if x.Kind == SendAdvert {
				a.Receive(t1, advert(addrB, x.Priority, 100))
			}
		}
	}
	if a.State() != Backup || b.State() != Master {
		t.Fatalf("a %v b %v", a.State(), b.State())
	}
}

func TestTrackingFault(t *testing.T) {
	m := newM(t, func(c *Config) { c.Tracks = []Track{{Name: "haproxy", Rise: 1, Fall: 2, Fault: true}} })
	if as := m.Start(t0); m.State() != Fault {
		t.Fatalf("pending fault check must hold Fault: %s", kinds(as))
	}
	as := m.CheckResult(t0.Add(ms(10)), "haproxy", true)
	if m.State() != Backup || m.Next() != t0.Add(ms(10)).Add(m.MasterDownInterval()) {
		t.Fatalf("recovery: %v %s next %v", m.State(), kinds(as), m.Next())
	}
	m.Tick(m.Deadline())
	if m.State() != Master {
		t.Fatal("not master")
	}
	m.CheckResult(m.Deadline(), "haproxy", false)
	if m.State() != Master {
		t.Fatal("fault before fall=2")
	}
	as = m.CheckResult(m.Deadline(), "haproxy", false)
	if m.State() != Fault || kinds(as) != "SendAdvert(0) RemoveVIPs StateChanged(MASTER->FAULT: tracked check haproxy failed)" || !m.Next().IsZero() {
		t.Fatalf("fault: %v %s next %v", m.State(), kinds(as), m.Next())
	}
	if as := m.Receive(t0.Add(time.Minute), advert(addrB, 1, 100)); as != nil {
		t.Fatalf("fault state reacted to advert: %s", kinds(as))
	}
}

func TestOwnerStartsMaster(t *testing.T) {
	m := newM(t, func(c *Config) { c.Priority = 255 })
	m.Start(t0)
	if m.State() != Master {
		t.Fatal("owner not master at start")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.Version = 4 },
		func(c *Config) { c.VRID = 0 },
		func(c *Config) { c.Priority = 0 },
		func(c *Config) { c.Interval = 0 },
		func(c *Config) { c.Version, c.Interval = 2, 150 },
		func(c *Config) { c.Interval = 5000 },
		func(c *Config) { c.Primary = netip.Addr{} },
		func(c *Config) { c.Tracks = []Track{{Name: "a", Rise: 0, Fall: 1}} },
		func(c *Config) { c.Tracks = []Track{{Name: "a", Rise: 1, Fall: 1}, {Name: "a", Rise: 1, Fall: 1}} },
	} {
		c := Config{Version: 3, VRID: 51, Priority: 100, Interval: 100, Preempt: true, Primary: addrA}
		mod(&c)
		if _, err := New(c, t0); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

// runMaster makes a router master at t0 (address owner) and fires its timer
// on time until end, returning the offsets from t0 of refresh GARPs.
func runMaster(m *Core, end time.Duration, at map[time.Duration]func(now time.Time) []Action) []time.Duration {
	var got []time.Duration
	note := func(now time.Time, as []Action) {
		for _, a := range as {
			if a.Kind == SendGARP && a.Refresh {
				got = append(got, now.Sub(t0))
			}
		}
	}
	note(t0, m.Start(t0))
	for now := t0; now.Sub(t0) <= end; now = now.Add(ms(10)) {
		if f := at[now.Sub(t0)]; f != nil {
			note(now, f(now))
		}
		if d := m.Deadline(); !d.IsZero() && !now.Before(d) {
			note(now, m.Tick(now))
		}
	}
	return got
}

func TestGARPRefresh(t *testing.T) {
	s := time.Second
	owner := func(refresh time.Duration, interval uint16) func(*Config) {
		return func(c *Config) { c.Priority, c.GARPRefresh, c.Interval = PriorityOwner, refresh, interval }
	}
	cases := []struct {
		name     string
		refresh  time.Duration
		interval uint16
		at       func(m *Core) map[time.Duration]func(time.Time) []Action
		want     []time.Duration
	}{
		{name: "off", refresh: 0, interval: 100},
		{name: "every 10s on the advert timer", refresh: 10 * s, interval: 100,
			want: []time.Duration{10 * s, 20 * s, 30 * s}},
		{name: "rounds up to whole adverts", refresh: 2500 * time.Millisecond, interval: 100,
			want: []time.Duration{3 * s, 6 * s, 9 * s, 12 * s, 15 * s, 18 * s, 21 * s, 24 * s, 27 * s, 30 * s}},
		{name: "shorter than the advert interval: every advert", refresh: 300 * time.Millisecond, interval: 1000,
			want: []time.Duration{10 * s, 20 * s, 30 * s}},
		{name: "a forced GARP restarts the period", refresh: 10 * s, interval: 100,
			at: func(m *Core) map[time.Duration]func(time.Time) []Action {
				return map[time.Duration]func(time.Time) []Action{
					// A lower-priority master (a healed split brain) at 7.5s.
					7500 * time.Millisecond: func(now time.Time) []Action { return m.Receive(now, advert(addrB, 100, 100)) },
				}
			},
			want: []time.Duration{18 * s, 28 * s}},
		{name: "stops after yielding, restarts on mastership", refresh: 10 * s, interval: 100,
			at: func(m *Core) map[time.Duration]func(time.Time) []Action {
				return map[time.Duration]func(time.Time) []Action{
					5 * s:  func(now time.Time) []Action { return m.CheckResult(now, "c", false) },
					12 * s: func(now time.Time) []Action { return m.CheckResult(now, "c", true) },
				}
			},
			// Master at 3.21s (Master_Down_Interval, priority 200), FAULT
			// at 5s before any refresh, backup at 12s, master again at
			// 15.21s, refresh 10s later.
			want: []time.Duration{25*s + ms(210)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newM(t, func(c *Config) {
				owner(tc.refresh, tc.interval)(c)
				if strings.HasPrefix(tc.name, "stops") {
					c.Priority = 200
					c.Tracks = []Track{{Name: "c", Rise: 1, Fall: 1, Fault: true}}
				}
			})
			var at map[time.Duration]func(time.Time) []Action
			if tc.at != nil {
				at = tc.at(m)
			}
			if strings.HasPrefix(tc.name, "stops") {
				// Not the owner: become master through Master_Down_Interval.
				m.CheckResult(t0, "c", true)
			}
			got := runMaster(m, 30*s, at)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("refresh GARPs at %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGARPRefreshAction(t *testing.T) {
	m := newM(t, func(c *Config) { c.Priority, c.GARPRefresh = PriorityOwner, 2*time.Second })
	m.Start(t0)
	m.Tick(t0.Add(ms(1000)))
	as := m.Tick(t0.Add(ms(2000)))
	if got := kinds(as); got != "SendAdvert(255) SendGARP(refresh)" || m.Next() != t0.Add(ms(3000)) {
		t.Fatalf("refresh tick: %s next %v", got, m.Next())
	}
	if _, err := New(Config{Version: 3, VRID: 1, Priority: 1, Interval: 100, Primary: addrA, GARPRefresh: -1}, t0); err == nil {
		t.Fatal("negative refresh accepted")
	}
}

// A new master repeats its gratuitous ARPs once after GARPRepeat (the
// driver's second burst), first in the tick it shares with an advert; leaving
// master cancels a pending repeat.
func TestGARPRepeat(t *testing.T) {
	m := newM(t, func(c *Config) { c.Priority, c.GARPRepeat = PriorityOwner, 2*time.Second })
	if got := kinds(m.Start(t0)); !strings.HasSuffix(got, "SendGARP") || m.Next() != t0.Add(ms(1000)) {
		t.Fatalf("start: %s next %v", got, m.Next())
	}
	m.Tick(t0.Add(ms(1000)))
	if got := kinds(m.Tick(t0.Add(ms(2000)))); got != "SendGARP(repeat) SendAdvert(255)" || m.Next() != t0.Add(ms(3000)) {
		t.Fatalf("repeat tick: %s next %v", got, m.Next())
	}
	if got := kinds(m.Tick(t0.Add(ms(3000)))); got != "SendAdvert(255)" {
		t.Fatalf("the repeat is sent once: %s", got)
	}

	b := newM(t, func(c *Config) { c.GARPRepeat = 5 * time.Second })
	b.Start(t0)
	b.Tick(b.Next()) // master after Master_Down_Interval
	repeat := t0.Add(b.MasterDownInterval()).Add(5 * time.Second)
	if b.State() != Master {
		t.Fatal("not master")
	}
	b.Receive(t0.Add(4*time.Second), advert(addrB, 200, 100)) // yields: VIPs removed
	if b.State() != Backup || !b.Next().Before(repeat) || b.Next() != b.Deadline() {
		t.Fatalf("yielding kept the repeat: next %v deadline %v", b.Next(), b.Deadline())
	}
	if _, err := New(Config{Version: 3, VRID: 1, Priority: 1, Interval: 100, Primary: addrA, GARPRepeat: -1}, t0); err == nil {
		t.Fatal("negative repeat accepted")
	}
}

// TestFaultHandsOverAfterSkewTime: a master whose fault check fails leaves
// as a shutting-down master does (RFC 5798 section 6.4.3, Shutdown: "Send an
// ADVERTISEMENT with Priority = 0"; keepalived sends priority 0 when a
// master enters FAULT, vrrp_state_leave_master), so its backup takes over
// after Skew_Time (section 6.4.2: "If the Priority in the ADVERTISEMENT is
// zero, then: Set the Master_Down_Timer to Skew_Time") instead of
// Master_Down_Interval. Recovered, it comes back as backup; with preemption
// and the higher priority it takes the addresses back when its
// Master_Down_Timer fires, the other yielding on its advert; without
// preemption it stays backup.
func TestFaultHandsOverAfterSkewTime(t *testing.T) {
	for _, tc := range []struct {
		interval uint16
		preempt  bool
		skew     time.Duration // backup at priority 100
	}{
		{20, true, ms(120)},  // 156*20/256 = 12 cs
		{30, false, ms(180)}, // 156*30/256 = 18 cs
		{100, true, ms(600)}, // 156*100/256 = 60 cs
	} {
		t.Run(fmt.Sprintf("%dcs preempt=%v", tc.interval, tc.preempt), func(t *testing.T) {
			a := newM(t, func(c *Config) {
				c.Priority, c.Interval, c.Preempt = 200, tc.interval, tc.preempt
				c.Tracks = []Track{{Name: "proxy", Rise: 1, Fall: 1, Fault: true}}
			})
			b := newM(t, func(c *Config) { c.Primary, c.Interval, c.Preempt = addrB, tc.interval, tc.preempt })
			a.CheckResult(t0, "proxy", true)
			a.Start(t0)
			b.Start(t0)
			now := a.Next()
			a.Tick(now) // a master (priority 200 wins the first Master_Down_Interval)
			b.Receive(now, advert(addrA, 200, tc.interval))
			if a.State() != Master || b.State() != Backup {
				t.Fatalf("a %v b %v", a.State(), b.State())
			}
			now = now.Add(ms(50))
			as := a.CheckResult(now, "proxy", false)
			if got := kinds(as); got != "SendAdvert(0) RemoveVIPs StateChanged(MASTER->FAULT: tracked check proxy failed)" {
				t.Fatalf("fault: %s", got)
			}
			b.Receive(now, advert(addrA, 0, tc.interval))
			if b.Next() != now.Add(tc.skew) || b.SkewTime() != tc.skew {
				t.Fatalf("backup wakes after %v, want Skew_Time %v", b.Next().Sub(now), tc.skew)
			}
			b.Tick(now.Add(tc.skew - time.Millisecond))
			if b.State() != Backup {
				t.Fatal("took over before Skew_Time")
			}
			if as := b.Tick(now.Add(tc.skew)); b.State() != Master || !has(as, AddVIPs) {
				t.Fatalf("backup after Skew_Time: %v %s", b.State(), kinds(as))
			}
			// a recovers: backup, the Master_Down_Timer running.
			now = now.Add(time.Second)
			if as := a.CheckResult(now, "proxy", true); a.State() != Backup || has(as, AddVIPs) {
				t.Fatalf("recovered: %v %s", a.State(), kinds(as))
			}
			as = a.Receive(now.Add(ms(1)), advert(addrB, 100, tc.interval))
			if tc.preempt != (a.Next() == now.Add(a.MasterDownInterval())) {
				t.Fatalf("preempt=%v: a wakes at +%v (MDI %v): %s", tc.preempt, a.Next().Sub(now), a.MasterDownInterval(), kinds(as))
			}
			if !tc.preempt {
				return
			}
			as = a.Tick(a.Next())
			if a.State() != Master || !has(as, AddVIPs) {
				t.Fatalf("preempting: %v %s", a.State(), kinds(as))
			}
			if as := b.Receive(a.Next(), advert(addrA, 200, tc.interval)); b.State() != Backup || !has(as, RemoveVIPs) {
				t.Fatalf("b yields: %v %s", b.State(), kinds(as))
			}
		})
	}
}

// TestStalledMaster: a master whose advert timer fires more than two
// intervals late (silent for three: a backup may have declared it down)
// first listens for StallListen; a master heard then, or already queued
// before its timer ran, took over legitimately: it yields without a last
// advert and holds preemption off for StallHold, so the addresses move
// once. Late by less, or with the rule off (StallHold 0, RFC 5798 as
// written), it reclaims by priority as before.
func TestStalledMaster(t *testing.T) {
	const hold = time.Minute
	master := func(stallHold time.Duration) (*Core, time.Time) {
		m := newM(t, func(c *Config) { c.Priority, c.StallHold = 200, stallHold })
		m.Start(t0)
		m.Tick(m.Next())
		if m.State() != Master {
			t.Fatal("not master")
		}
		return m, m.Deadline() // the next advert is due then
	}
	yielded := "RemoveVIPs StateChanged(MASTER->BACKUP: 10.78.0.2 (priority 100) took over while we could not advertise for"

	// Woken 2 intervals + 1 ms late: listen, then hear the new master.
	m, due := master(hold)
	late := due.Add(2*time.Second + ms(1))
	if as := m.Tick(late); len(as) != 0 || m.Next() != late.Add(StallListen) {
		t.Fatalf("stalled tick: %s next %v", kinds(as), m.Next().Sub(late))
	}
	as := m.Receive(late.Add(ms(2)), advert(addrB, 100, 100))
	if got := kinds(as); !strings.HasPrefix(got, yielded) || has(as, SendAdvert) || !strings.Contains(got, "for 3.001s") {
		t.Fatalf("heard the new master while listening: %s", got)
	}
	// As backup it follows the lower-priority master (no preemption)
	// until the hold ends, then preempts as configured.
	now := late.Add(ms(2))
	for i := 1; i <= 55; i++ {
		now = now.Add(time.Second)
		m.Receive(now, advert(addrB, 100, 100))
	}
	if m.State() != Backup || m.Next() != now.Add(m.MasterDownInterval()) {
		t.Fatalf("held preemption: %v next %v", m.State(), m.Next().Sub(now))
	}
	now = late.Add(hold + ms(3))
	m.Receive(now, advert(addrB, 100, 100)) // ignored: preempting again
	if as := m.Tick(m.Next()); m.State() != Master || !has(as, AddVIPs) || m.Next().Sub(now) > m.MasterDownInterval()+m.interval() {
		t.Fatalf("after the hold: %v %s", m.State(), kinds(as))
	}

	// The new master's adverts already queued: handled before the timer.
	m, due = master(hold)
	if as := m.Receive(due.Add(2*time.Second+ms(5)), advert(addrB, 100, 100)); !strings.HasPrefix(kinds(as), yielded) {
		t.Fatalf("queued advert after a stall: %s", kinds(as))
	}

	// Listened and heard nobody: the overdue advert goes out.
	m, due = master(hold)
	late = due.Add(3 * time.Second)
	m.Tick(late)
	if as := m.Tick(late.Add(StallListen)); kinds(as) != "SendAdvert(200)" || m.Next() != late.Add(StallListen).Add(time.Second) {
		t.Fatalf("after listening: %s next %v", kinds(as), m.Next())
	}
	if as := m.Receive(late.Add(StallListen+ms(1)), advert(addrB, 100, 100)); !has(as, SendAdvert) || m.State() != Master {
		t.Fatalf("no longer stalled, a lower master is beaten: %s", kinds(as))
	}

	// Late by at most 2 intervals: no stall; a lower master is beaten.
	m, due = master(hold)
	if as := m.Tick(due.Add(2 * time.Second)); kinds(as) != "SendAdvert(200)" {
		t.Fatalf("2 intervals late: %s", kinds(as))
	}
	// The rule off: RFC 5798, the higher priority reclaims at once.
	m, due = master(0)
	if as := m.Tick(due.Add(5 * time.Second)); kinds(as) != "SendAdvert(200)" {
		t.Fatalf("rule off, stalled tick: %s", kinds(as))
	}
	m, due = master(0)
	if as := m.Receive(due.Add(5*time.Second), advert(addrB, 100, 100)); !has(as, SendAdvert) || m.State() != Master {
		t.Fatalf("rule off: %s", kinds(as))
	}
	if _, err := New(Config{Version: 3, VRID: 1, Priority: 1, Interval: 100, Primary: addrA, StallHold: -1}, t0); err == nil {
		t.Fatal("negative stall hold accepted")
	}
}

// TestStalledBackup: a backup whose Master_Down_Timer fires late (it could
// not run) first listens StallListen for the adverts queued meanwhile; one
// arriving keeps it backup, none makes it take over StallListen later. On
// time, or with the rules off (StallHold 0), it takes over at once.
func TestStalledBackup(t *testing.T) {
	backup := func(stallHold time.Duration) (*Core, time.Time) {
		m := newM(t, func(c *Config) { c.StallHold = stallHold })
		m.Start(t0)
		m.Receive(t0.Add(ms(1)), advert(addrB, 200, 100))
		if m.State() != Backup {
			t.Fatal("not backup")
		}
		return m, m.Next() // Master_Down_Timer's deadline
	}
	tests := []struct {
		name      string
		hold      time.Duration
		late      time.Duration
		advertAt  time.Duration // after the late tick; <0: none
		wantState State
	}{
		{"late, queued advert arrives while listening", time.Minute, 300 * time.Millisecond, 5 * time.Millisecond, Backup},
		{"late, nothing queued: takes over after the listen", time.Minute, 300 * time.Millisecond, -1, Master},
		{"late by StallListen exactly: at once", time.Minute, StallListen, -1, Master},
		{"on time: at once", time.Minute, 0, -1, Master},
		{"rules off: at once however late", 0, 300 * time.Millisecond, -1, Master},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, due := backup(tc.hold)
			now := due.Add(tc.late)
			as := m.Tick(now)
			listening := tc.hold > 0 && tc.late > StallListen
			if listening {
				if len(as) != 0 || m.State() != Backup || m.Next() != now.Add(StallListen) {
					t.Fatalf("late tick: %s state %v next %v", kinds(as), m.State(), m.Next().Sub(now))
				}
				if tc.advertAt >= 0 {
					at := now.Add(tc.advertAt)
					m.Receive(at, advert(addrB, 200, 100))
					if m.Next() != at.Add(m.MasterDownInterval()) {
						t.Fatalf("advert while listening: next %v, want Master_Down_Interval", m.Next().Sub(at))
					}
				}
				as = m.Tick(m.Next().Add(-time.Nanosecond)) // not yet due
				if len(as) != 0 {
					t.Fatalf("early tick acted: %s", kinds(as))
				}
				if tc.advertAt < 0 {
					as = m.Tick(now.Add(StallListen))
				}
			}
			if m.State() != tc.wantState {
				t.Fatalf("state %v, want %v (%s)", m.State(), tc.wantState, kinds(as))
			}
			if tc.wantState == Master && !has(as, AddVIPs) {
				t.Fatalf("took over without adding the VIPs: %s", kinds(as))
			}
		})
	}
}
