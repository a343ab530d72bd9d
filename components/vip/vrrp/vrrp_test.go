package vrrp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
)

// readPcap returns the IPv4 packets of an Ethernet pcap file.
func readPcap(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s: not a little-endian microsecond pcap", path)
	}
	var pkts [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off+8:]))
		frame := b[off+16 : off+16+n]
		off += 16 + n
		if len(frame) > 14 && binary.BigEndian.Uint16(frame[12:]) == 0x0800 {
			pkts = append(pkts, frame[14:])
		}
	}
	if len(pkts) == 0 {
		t.Fatalf("%s: no IPv4 packets", path)
	}
	return pkts
}

var (
	vip100 = netip.MustParseAddr("10.78.0.100")
	vip101 = netip.MustParseAddr("10.78.0.101")
	src202 = netip.MustParseAddr("10.78.0.202")
	src201 = netip.MustParseAddr("10.78.0.201")
)

// TestGoldenKeepalived decodes adverts captured from Debian's keepalived 2.2.7
// (testdata/capture-keepalived.sh) and re-encodes them byte for byte.
func TestGoldenKeepalived(t *testing.T) {
	for _, tc := range []struct {
		file     string
		version  int
		interval uint16
		form     ChecksumForm
	}{
		{"testdata/keepalived-v2.pcap", 2, 100, ChecksumMessageOnly},
		{"testdata/keepalived-v3.pcap", 3, 50, ChecksumPseudoHeader},
	} {
		t.Run(tc.file, func(t *testing.T) {
			sawZero := false
			for i, raw := range readPcap(t, tc.file) {
				p, err := DecodeIPv4(raw)
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if p.Version != tc.version || p.VRID != 51 || p.Interval != tc.interval || p.TTL != 255 ||
					p.Checksum != tc.form || p.Dst != MulticastGroup {
					t.Fatalf("packet %d: unexpected %+v", i, p)
				}
				if p.Src != src201 && p.Src != src202 {
					t.Fatalf("packet %d: source %v", i, p.Src)
				}
				want := map[netip.Addr]uint8{src201: 110, src202: 120}[p.Src]
				if p.Priority == 0 {
					sawZero = true
				} else if p.Priority != want {
					t.Fatalf("packet %d: priority %d from %v, want %d", i, p.Priority, p.Src, want)
				}
				if len(p.Addresses) != 2 || p.Addresses[0] != vip100 || p.Addresses[1] != vip101 {
					t.Fatalf("packet %d: addresses %v", i, p.Addresses)
				}
				if err := (Filter{Version: tc.version, VRID: 51, Interval: tc.interval}).Check(p); err != nil {
					t.Fatalf("packet %d: filter: %v", i, err)
				}
				enc, err := Encode(p.Advert, p.Src, p.Dst, tc.form)
				if err != nil {
					t.Fatal(err)
				}
				_, payload, _ := ParseIPv4(raw)
				if !bytes.Equal(enc, payload) {
					t.Fatalf("packet %d: encode mismatch\n got %x\nwant %x", i, enc, payload)
				}
			}
			if !sawZero {
				t.Fatal("capture has no priority-0 (graceful shutdown) advert")
			}
		})
	}
}

func TestChecksumForms(t *testing.T) {
	a := Advert{Version: 3, VRID: 7, Priority: 100, Interval: 20, Addresses: []netip.Addr{vip100}}
	for _, form := range []ChecksumForm{ChecksumPseudoHeader, ChecksumMessageOnly} {
		b, err := Encode(a, src201, MulticastGroup, form)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Decode(b, src201, MulticastGroup)
		if err != nil {
			t.Fatalf("%v: %v", form, err)
		}
		if p.Checksum != form {
			t.Fatalf("decoded form %v, sent %v", p.Checksum, form)
		}
		// The pseudo-header form binds the source address: another source fails.
		if form == ChecksumPseudoHeader {
			if _, err := Decode(b, src202, MulticastGroup); ReasonOf(err) != ReasonChecksum {
				t.Fatalf("pseudo-header checksum with wrong source: %v", err)
			}
		}
	}
}

// mutate returns a copy of the first v3 golden packet changed by f, with the IP
// header fixed up where the test wants only the VRRP part broken.
func golden(t testing.TB, file string) []byte {
	return append([]byte(nil), readPcap(t, file)[0]...)
}

func TestDropReasons(t *testing.T) {
	f3 := Filter{Version: 3, VRID: 51, Interval: 50}
	f2 := Filter{Version: 2, VRID: 51, Interval: 100}
	f2pass := Filter{Version: 2, VRID: 51, Interval: 100, Auth: PasswordAuth("secret")}
	f3peers := Filter{Version: 3, VRID: 51, Interval: 50, Unicast: true, Peers: []netip.Addr{netip.MustParseAddr("10.78.0.1")}}
	resum := func(b []byte) { // recompute a valid pseudo-header checksum
		b[20+6], b[20+7] = 0, 0
		total := int(binary.BigEndian.Uint16(b[2:]))
		s := finish(addSum(pseudoHeaderSum(netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20])), total-20), b[20:total]))
		binary.BigEndian.PutUint16(b[26:], s)
	}
	resum2 := func(b []byte) {
		b[26], b[27] = 0, 0
		binary.BigEndian.PutUint16(b[26:], finish(addSum(0, b[20:])))
	}
	// password sets v2 auth type 1 and the 8 trailing bytes.
	password := func(pw string) func(b []byte) []byte {
		return func(b []byte) []byte {
			b[24] = AuthPassword
			a := PasswordAuth(pw)
			copy(b[len(b)-8:], a.Data[:])
			resum2(b)
			return b
		}
	}
	for _, tc := range []struct {
		name   string
		file   string
		filter Filter
		mut    func(b []byte) []byte
		want   Reason
	}{
		{"empty", "v3", f3, func(b []byte) []byte { return nil }, ReasonShort},
		{"truncated ip", "v3", f3, func(b []byte) []byte { return b[:19] }, ReasonShort},
		{"truncated vrrp", "v3", f3, func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 26); return b[:26] }, ReasonShort},
		{"ip total beyond data", "v3", f3, func(b []byte) []byte { return b[:30] }, ReasonIPHeader},
		{"not ipv4", "v3", f3, func(b []byte) []byte { b[0] = 0x65; return b }, ReasonIPHeader},
		{"fragment", "v3", f3, func(b []byte) []byte { b[6] = 0x20; return b }, ReasonIPHeader},
		{"other protocol", "v3", f3, func(b []byte) []byte { b[9] = 17; return b }, ReasonProtocol},
		{"wrong ttl", "v3", f3, func(b []byte) []byte { b[8] = 254; return b }, ReasonTTL},
		{"wrong checksum", "v3", f3, func(b []byte) []byte { b[27] ^= 0xff; return b }, ReasonChecksum},
		{"v2 wrong checksum", "v2", f2, func(b []byte) []byte { b[27] ^= 0x01; return b }, ReasonChecksum},
		{"wrong vrid", "v3", f3, func(b []byte) []byte { b[21] = 52; resum(b); return b }, ReasonVRID},
		{"vrid zero", "v3", f3, func(b []byte) []byte { b[21] = 0; resum(b); return b }, ReasonVRID},
		{"v2 wrong interval", "v2", f2, func(b []byte) []byte { b[25] = 2; resum2(b); return b }, ReasonInterval},
		{"v3 zero interval", "v3", f3, func(b []byte) []byte { b[24], b[25] = 0, 0; resum(b); return b }, ReasonInterval},
		{"v2 auth", "v2", f2, func(b []byte) []byte { b[24] = 1; resum2(b); return b }, ReasonAuth},
		{"v2 password to a router without", "v2", f2, password("secret"), ReasonAuth},
		{"v2 no auth to a password router", "v2", f2pass, func(b []byte) []byte { return b }, ReasonAuth},
		{"v2 wrong password", "v2", f2pass, password("secreT"), ReasonPassword},
		{"v2 password prefix only", "v2", f2pass, password("secre"), ReasonPassword},
		{"v2 password", "v2", f2pass, password("secret"), ""},
		{"v2 password truncated to 8", "v2", Filter{Version: 2, VRID: 51, Interval: 100, Auth: PasswordAuth("12345678")},
			password("123456789"), ""},
		{"v2 AH auth type", "v2", f2pass, func(b []byte) []byte { b[24] = AuthAH; resum2(b); return b }, ReasonAuth},
		{"v2 unknown auth type", "v2", f2, func(b []byte) []byte { b[24] = 7; resum2(b); return b }, ReasonAuth},
		{"unicast from a non-peer", "v3", f3peers, func(b []byte) []byte { copy(b[16:20], []byte{10, 78, 0, 2}); resum(b); return b }, ReasonPeer},
		{"unicast from a peer", "v3", f3peers, func(b []byte) []byte {
			copy(b[12:16], []byte{10, 78, 0, 1})
			copy(b[16:20], []byte{10, 78, 0, 2})
			resum(b)
			return b
		}, ""},
		{"v3 ignores v2 auth config", "v3", Filter{Version: 3, VRID: 51, Interval: 50, Auth: PasswordAuth("x")}, func(b []byte) []byte { return b }, ""},
		{"bad version", "v3", f3, func(b []byte) []byte { b[20] = 0x41; resum(b); return b }, ReasonVersion},
		{"v2 for v3 router", "v2", f3, func(b []byte) []byte { return b }, ReasonVersion},
		{"bad type", "v3", f3, func(b []byte) []byte { b[20] = 0x32; resum(b); return b }, ReasonType},
		{"count too big", "v3", f3, func(b []byte) []byte { b[23] = 3; resum(b); return b }, ReasonShort},
		{"count too small", "v3", f3, func(b []byte) []byte { b[23] = 1; resum(b); return b }, ReasonLength},
		{"multicast vip", "v3", f3, func(b []byte) []byte { b[28] = 239; resum(b); return b }, ReasonAddress},
		{"multicast source", "v3", f3, func(b []byte) []byte { b[12] = 239; resum(b); return b }, ReasonAddress},
		{"unicast to multicast router", "v3", f3, func(b []byte) []byte { copy(b[16:20], []byte{10, 78, 0, 201}); resum(b); return b }, ReasonDestination},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mut(golden(t, "testdata/keepalived-"+tc.file+".pcap"))
			p, err := DecodeIPv4(b)
			if err == nil {
				err = tc.filter.Check(p)
			}
			if got := ReasonOf(err); got != tc.want {
				t.Fatalf("reason %q (%v), want %q", got, err, tc.want)
			}
		})
	}
}

// TestPasswordAuth: keepalived's auth_pass is the first 8 bytes of the
// password, zero-padded; an encoded advert carries auth type 1 and those
// bytes after the addresses (inside the checksum) and decodes back to them.
func TestPasswordAuth(t *testing.T) {
	for pw, want := range map[string][8]byte{
		"secret":       {'s', 'e', 'c', 'r', 'e', 't', 0, 0},
		"12345678":     {'1', '2', '3', '4', '5', '6', '7', '8'},
		"1234567890ab": {'1', '2', '3', '4', '5', '6', '7', '8'},
	} {
		if a := PasswordAuth(pw); a.Type != AuthPassword || a.Data != want {
			t.Errorf("PasswordAuth(%q) = %+v, want type 1 data %q", pw, a, want[:])
		}
	}
	a := Advert{Version: 2, VRID: 51, Priority: 100, Interval: 100, Addresses: []netip.Addr{vip100}, Auth: PasswordAuth("secret")}
	b, err := Encode(a, src201, MulticastGroup, ChecksumPseudoHeader)
	if err != nil {
		t.Fatal(err)
	}
	if b[4] != AuthPassword || string(b[len(b)-8:]) != "secret\x00\x00" {
		t.Fatalf("encoded % x: want auth type 1 and the padded password last", b)
	}
	p, err := Decode(b, src201, MulticastGroup)
	if err != nil || p.Auth != a.Auth {
		t.Fatalf("decoded %+v (%v), want auth %+v", p.Auth, err, a.Auth)
	}
	p.TTL = TTL
	if err := (Filter{Version: 2, VRID: 51, Interval: 100, Auth: PasswordAuth("secret")}).Check(p); err != nil {
		t.Fatalf("own password rejected: %v", err)
	}
	b[len(b)-1] ^= 1 // the checksum covers the password
	if _, err := Decode(b, src201, MulticastGroup); ReasonOf(err) != ReasonChecksum {
		t.Fatalf("altered password: %v, want a checksum drop", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	for _, a := range []Advert{
		{Version: 3, VRID: 1, Interval: 100},
		{Version: 3, VRID: 0, Interval: 100, Addresses: []netip.Addr{vip100}},
		{Version: 2, VRID: 1, Interval: 150, Addresses: []netip.Addr{vip100}},
		{Version: 3, VRID: 1, Interval: 5000, Addresses: []netip.Addr{vip100}},
		{Version: 4, VRID: 1, Interval: 100, Addresses: []netip.Addr{vip100}},
		{Version: 3, VRID: 1, Interval: 100, Addresses: []netip.Addr{netip.MustParseAddr("::1")}},
		{Version: 3, VRID: 1, Interval: 100, Addresses: []netip.Addr{vip100}, Auth: PasswordAuth("x")},
		{Version: 2, VRID: 1, Interval: 100, Addresses: []netip.Addr{vip100}, Auth: Auth{Type: AuthAH}},
	} {
		if _, err := Encode(a, src201, MulticastGroup, ChecksumPseudoHeader); err == nil {
			t.Errorf("Encode(%+v) accepted", a)
		}
	}
}

// FuzzDecode feeds arbitrary IPv4 packets to the decoder; the seed corpus in
// testdata/fuzz/FuzzDecode holds the captured keepalived adverts and broken
// variants of them. A packet either decodes to something that re-encodes to
// the same bytes, or is dropped with a known reason.
func FuzzDecode(f *testing.F) {
	for _, file := range []string{"testdata/keepalived-v2.pcap", "testdata/keepalived-v3.pcap"} {
		for _, p := range readPcap(f, file) {
			f.Add(p)
		}
	}
	known := map[Reason]bool{}
	for _, r := range AllReasons {
		known[r] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeIPv4(b)
		if err != nil {
			if !known[ReasonOf(err)] {
				t.Fatalf("unlabelled error %v", err)
			}
			return
		}
		for _, v := range []int{2, 3} {
			if err := (Filter{Version: v, VRID: p.VRID, Interval: p.Interval}).Check(p); err != nil && !known[ReasonOf(err)] {
				t.Fatalf("unlabelled filter error %v", err)
			}
		}
		enc, err := Encode(p.Advert, p.Src, p.Dst, p.Checksum)
		if err != nil {
			if p.Interval == 0 { // decodable but not something we would ever send
				return
			}
			t.Fatalf("decoded %+v does not re-encode: %v", p, err)
		}
		_, payload, _ := ParseIPv4(b)
		payload = append([]byte(nil), payload...)
		if p.Version == 3 {
			payload[4] &= 0x0f // reserved bits are ignored on receive and zero on send
		} else if p.Auth.Type == AuthNone {
			clear(payload[len(payload)-v2AuthLen:]) // v2 auth data is ignored with auth type 0
		}
		if !bytes.Equal(enc[:6], payload[:6]) || !bytes.Equal(enc[8:], payload[8:]) {
			t.Fatalf("re-encode differs\n got %x\nwant %x", enc, payload)
		}
	})
}
