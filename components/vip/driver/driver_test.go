package driver

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/vip/core"
	"github.com/redisha/redisha/components/vip/vrrp"
)

var (
	t0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	addrA = netip.MustParseAddr("10.78.0.1")
	addrB = netip.MustParseAddr("10.78.0.2")
	vipX  = netip.MustParseAddr("10.78.0.100")
)

// lan records what the driver asks of the network, in order.
type lan struct {
	calls []string
	sent  [][]byte
	held  bool
}

func (l *lan) SendAdvert(dst netip.Addr, raw []byte) error {
	l.calls = append(l.calls, fmt.Sprintf("advert(%v,%d)", dst, raw[2]))
	l.sent = append(l.sent, raw)
	return nil
}
func (l *lan) AddVIPs() error { l.held = true; l.calls = append(l.calls, "add"); return nil }
func (l *lan) RemoveVIPs() ([]netip.Addr, error) {
	l.calls = append(l.calls, "remove")
	if !l.held {
		return nil, nil
	}
	l.held = false
	return []netip.Addr{vipX}, nil
}
func (l *lan) SendGARP(k GARPKind) { l.calls = append(l.calls, fmt.Sprintf("garp(%d)", k)) }

type hooks struct{ events []string }

func (h *hooks) Advert(_ time.Time, p vrrp.Packet) {
	h.events = append(h.events, fmt.Sprintf("advert %v %d", p.Src, p.Priority))
}
func (h *hooks) StateChanged(_ time.Time, from, to core.State, _ string, prio uint8) {
	h.events = append(h.events, fmt.Sprintf("%v->%v %d", from, to, prio))
}
func (h *hooks) PriorityChanged(_ time.Time, p uint8) {
	h.events = append(h.events, fmt.Sprint("prio ", p))
}

func newDriver(t *testing.T, prio uint8, peers ...netip.Addr) (*Driver, *lan, *hooks, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	l, h := &lan{held: true}, &hooks{}
	cfg := Config{Core: core.Config{Version: 3, VRID: 51, Priority: prio, Interval: 100, Preempt: true, Primary: addrA,
		GARPRepeat: 5 * time.Second}, VIPs: []netip.Addr{vipX}, Peers: peers}
	d, err := New(cfg, t0, l, h, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return d, l, h, &logs
}

func packet(t *testing.T, src netip.Addr, prio uint8) Packet {
	t.Helper()
	b, err := vrrp.Encode(vrrp.Advert{Version: 3, VRID: 51, Priority: prio, Interval: 100, Addresses: []netip.Addr{vipX}},
		src, vrrp.MulticastGroup, vrrp.ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	return Packet{Payload: b, Src: src, Dst: vrrp.MulticastGroup, TTL: 255}
}

// Start removes a stale VIP (and says so), then the core waits as backup;
// the master-down wake makes it master: advert, VIPs, GARP, in that order.
func TestStartAndTakeover(t *testing.T) {
	d, l, h, logs := newDriver(t, 100)
	if _, err := New(Config{}, t0, l, h, slog.Default()); err == nil {
		t.Fatal("invalid core config accepted")
	}
	if err := d.Start(t0); err != nil {
		t.Fatal(err)
	}
	if strings.Join(l.calls, " ") != "remove" || !strings.Contains(logs.String(), "removed stale virtual addresses") {
		t.Fatalf("start: %v\n%s", l.calls, logs)
	}
	mdi := d.Core().MasterDownInterval()
	if d.State() != core.Backup || d.Next() != t0.Add(mdi) {
		t.Fatalf("start: %v next %v", d.State(), d.Next())
	}
	l.calls = nil
	d.Wake(t0.Add(mdi - time.Millisecond)) // early: nothing
	d.Wake(t0.Add(mdi))
	if got := strings.Join(l.calls, " "); got != "advert(224.0.0.18,100) add garp(0)" {
		t.Fatalf("takeover calls: %s", got)
	}
	if d.Next() != t0.Add(mdi+time.Second) {
		t.Fatalf("next %v", d.Next().Sub(t0))
	}
	d.Wake(t0.Add(mdi + 5*time.Second)) // the repeat burst rides with the fifth advert
	if got := strings.Join(l.calls[3:], " "); got != "garp(1) advert(224.0.0.18,100)" {
		t.Fatalf("repeat calls: %s", got)
	}
	s := d.Stats()
	if s.AdvertsSent != 2 || s.TransitionsTotal() != 2 || s.Transitions[core.Master] != 1 || !s.Since.Equal(t0.Add(mdi)) {
		t.Fatalf("stats %+v", s)
	}
	if fmt.Sprint(h.events) != "[INIT->BACKUP 100 BACKUP->MASTER 100]" {
		t.Fatalf("hooks %v", h.events)
	}
}

// Received packets are decoded and filtered here: bad ones are counted by
// reason (the VRID of another group quietly), good ones reach the core, and
// a higher-priority master makes us yield with the VIPs removed.
func TestHandlePacket(t *testing.T) {
	d, l, h, logs := newDriver(t, 100)
	d.Start(t0)
	d.Wake(d.Next()) // master
	l.calls = nil
	bad := packet(t, addrB, 200)
	bad.Payload = append([]byte(nil), bad.Payload...)
	bad.Payload[6] ^= 0xff // checksum
	if err := d.HandlePacket(t0.Add(5*time.Second), bad); vrrp.ReasonOf(err) != vrrp.ReasonChecksum {
		t.Fatalf("corrupt packet: %v", err)
	}
	ttl := packet(t, addrB, 200)
	ttl.TTL = 64
	if err := d.HandlePacket(t0.Add(5*time.Second), ttl); vrrp.ReasonOf(err) != vrrp.ReasonTTL {
		t.Fatalf("TTL 64: %v", err)
	}
	if !strings.Contains(logs.String(), "dropped bad VRRP packet") || len(l.calls) != 0 {
		t.Fatalf("drops: %v\n%s", l.calls, logs)
	}
	if err := d.HandlePacket(t0.Add(5*time.Second), packet(t, addrB, 200)); err != nil {
		t.Fatal(err)
	}
	if d.State() != core.Backup || strings.Join(l.calls, " ") != "remove advert(224.0.0.18,100)" {
		t.Fatalf("yield: %v %v", d.State(), l.calls)
	}
	s := d.Stats()
	if s.AdvertsReceived != 1 || s.Bad[vrrp.ReasonChecksum] != 1 || s.Bad[vrrp.ReasonTTL] != 1 {
		t.Fatalf("stats %+v", s)
	}
	if h.events[len(h.events)-2] != "advert 10.78.0.2 200" {
		t.Fatalf("advert hook: %v", h.events)
	}
}

// Unicast: one advert per peer, each encoded for its destination; the
// checks' results are counted.
func TestUnicastAndChecks(t *testing.T) {
	d, l, _, _ := newDriver(t, 255, addrB, netip.MustParseAddr("10.78.0.3"))
	d.Start(t0)
	if got := strings.Join(l.calls, " "); got != "remove advert(10.78.0.2,255) advert(10.78.0.3,255) add garp(0)" {
		t.Fatalf("owner start: %s", got)
	}
	if bytes.Equal(l.sent[0], l.sent[1]) {
		t.Fatal("per-peer adverts share a checksum: the pseudo-header covers the destination")
	}
	d.CheckResult(t0, "x", true)
	d.CheckResult(t0, "x", false)
	if c := d.Stats().Checks["x"]; c != [2]uint64{1, 1} {
		t.Fatalf("checks %v", c)
	}
}

// Unicast mode accepts adverts only from the configured peers: an advert
// from another address on the segment is dropped (reason peer), counted,
// logged once, and never reaches the core, even with a higher priority.
func TestUnicastDropsNonPeers(t *testing.T) {
	d, l, _, logs := newDriver(t, 100, addrB)
	d.Start(t0)
	d.Wake(d.Next()) // master
	l.calls = nil
	stranger := netip.MustParseAddr("10.78.0.9")
	for range 3 {
		p := packet(t, stranger, 250)
		p.Dst = addrA
		b, _ := vrrp.Encode(vrrp.Advert{Version: 3, VRID: 51, Priority: 250, Interval: 100, Addresses: []netip.Addr{vipX}},
			stranger, addrA, vrrp.ChecksumPseudoHeader)
		p.Payload = b
		if err := d.HandlePacket(t0.Add(5*time.Second), p); vrrp.ReasonOf(err) != vrrp.ReasonPeer {
			t.Fatalf("advert from a non-peer: %v", err)
		}
	}
	if d.State() != core.Master || len(l.calls) != 0 || d.Stats().Bad[vrrp.ReasonPeer] != 3 {
		t.Fatalf("after non-peer adverts: %v %v %v", d.State(), l.calls, d.Stats().Bad)
	}
	if n := strings.Count(logs.String(), "reason=peer"); n != 1 {
		t.Fatalf("logged %d peer drops, want 1 (rate-limited):\n%s", n, logs)
	}
	p := packet(t, addrB, 250)
	p.Dst = addrA
	p.Payload, _ = vrrp.Encode(vrrp.Advert{Version: 3, VRID: 51, Priority: 250, Interval: 100, Addresses: []netip.Addr{vipX}},
		addrB, addrA, vrrp.ChecksumPseudoHeader)
	if err := d.HandlePacket(t0.Add(5*time.Second), p); err != nil || d.State() != core.Backup {
		t.Fatalf("advert from the peer: %v, state %v", err, d.State())
	}
}

// VRRPv2 with keepalived's auth_type PASS: our adverts carry type 1 and the
// padded password; adverts with another password or without authentication
// are dropped (password, auth) and counted; New refuses auth with v3.
func TestPasswordAuth(t *testing.T) {
	var logs bytes.Buffer
	l, h := &lan{}, &hooks{}
	cfg := Config{Core: core.Config{Version: 2, VRID: 51, Priority: 255, Interval: 100, Preempt: true, Primary: addrA},
		VIPs: []netip.Addr{vipX}, Auth: vrrp.PasswordAuth("secret")}
	v3 := cfg
	v3.Core.Version = 3
	if _, err := New(v3, t0, l, h, slog.Default()); err == nil {
		t.Fatal("authentication accepted with VRRPv3")
	}
	d, err := New(cfg, t0, l, h, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	d.Start(t0)
	sent, err := vrrp.Decode(l.sent[0], addrA, vrrp.MulticastGroup)
	if err != nil || sent.Auth != vrrp.PasswordAuth("secret") {
		t.Fatalf("our advert: auth %+v (%v)", sent.Auth, err)
	}
	send := func(auth vrrp.Auth) error {
		b, err := vrrp.Encode(vrrp.Advert{Version: 2, VRID: 51, Priority: 100, Interval: 100, Addresses: []netip.Addr{vipX}, Auth: auth},
			addrB, vrrp.MulticastGroup, vrrp.ChecksumMessageOnly)
		if err != nil {
			t.Fatal(err)
		}
		return d.HandlePacket(t0.Add(time.Second), Packet{Payload: b, Src: addrB, Dst: vrrp.MulticastGroup, TTL: 255})
	}
	if err := send(vrrp.PasswordAuth("wrong")); vrrp.ReasonOf(err) != vrrp.ReasonPassword {
		t.Fatalf("wrong password: %v", err)
	}
	if err := send(vrrp.Auth{}); vrrp.ReasonOf(err) != vrrp.ReasonAuth {
		t.Fatalf("no authentication: %v", err)
	}
	if err := send(vrrp.PasswordAuth("secret")); err != nil {
		t.Fatalf("right password: %v", err)
	}
	s := d.Stats()
	if s.Bad[vrrp.ReasonPassword] != 1 || s.Bad[vrrp.ReasonAuth] != 1 || s.AdvertsReceived != 1 {
		t.Fatalf("stats %+v", s)
	}
	if !strings.Contains(logs.String(), "reason=password") || !strings.Contains(logs.String(), "reason=auth") {
		t.Fatalf("drops not logged:\n%s", logs.String())
	}
}
