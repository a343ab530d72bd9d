// Package vrrp encodes and decodes VRRP advertisements for IPv4: version 2
// (RFC 3768, keepalived's default) and version 3 (RFC 5798 / RFC 9568).
//
// Decoding never panics: every malformed or unwanted packet is rejected with a
// *DropError whose Reason is a short, stable label suitable for a metric.
package vrrp

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Protocol constants shared by both versions.
const (
	// ProtocolNumber is the IP protocol number of VRRP.
	ProtocolNumber = 112
	// TTL is the only IPv4 TTL a multicast advertisement may carry.
	TTL = 255
	// TypeAdvertisement is the only packet type VRRP defines.
	TypeAdvertisement = 1
	// headerLen is the fixed part of the VRRP message before the addresses.
	headerLen = 8
	// v2AuthLen is the authentication data that always trails a v2 message.
	v2AuthLen = 8
	// MaxAddresses bounds the address count so a message fits a 1500-byte MTU.
	MaxAddresses = 255
)

// MulticastGroup is the IPv4 multicast group adverts are sent to (224.0.0.18).
var MulticastGroup = netip.AddrFrom4([4]byte{224, 0, 0, 18})

// ChecksumForm says how the checksum of an IPv4 VRRPv3 message is computed.
type ChecksumForm int

const (
	// ChecksumPseudoHeader covers an IPv4 pseudo-header (source, destination,
	// zero, protocol, VRRP length) plus the message: RFC 5798's form and
	// keepalived's default.
	ChecksumPseudoHeader ChecksumForm = iota
	// ChecksumMessageOnly covers the VRRP message alone, the VRRPv2 way, as
	// some routers and keepalived's "v3 checksum as v2" option do.
	ChecksumMessageOnly
)

// String names the form as it is written in configuration.
func (f ChecksumForm) String() string {
	switch f {
	case ChecksumPseudoHeader:
		return "pseudo-header"
	case ChecksumMessageOnly:
		return "message-only"
	}
	return fmt.Sprintf("ChecksumForm(%d)", int(f))
}

// ParseChecksumForm parses "pseudo-header" or "message-only".
func ParseChecksumForm(s string) (ChecksumForm, error) {
	switch s {
	case "pseudo-header", "":
		return ChecksumPseudoHeader, nil
	case "message-only":
		return ChecksumMessageOnly, nil
	}
	return 0, fmt.Errorf("unknown checksum form %q (want pseudo-header or message-only)", s)
}

// Advert is one decoded VRRP advertisement.
type Advert struct {
	// Version is 2 or 3.
	Version int
	// VRID is the virtual router identifier, 1..255.
	VRID uint8
	// Priority is the sender's priority; 0 means "master is leaving".
	Priority uint8
	// Interval is the advertisement interval in centiseconds. Version 2
	// carries whole seconds on the wire, so it is always a multiple of 100.
	Interval uint16
	// Addresses are the virtual IPv4 addresses the sender protects.
	Addresses []netip.Addr
	// Auth is the VRRPv2 authentication (type and the 8 bytes of data
	// that trail every v2 message); zero for version 3.
	Auth Auth
}

// VRRPv2 authentication types (RFC 2338 section 5.3.6; RFC 3768 keeps only
// 0, keepalived still speaks 1 and 2).
const (
	// AuthNone: no authentication, the data is zero.
	AuthNone uint8 = 0
	// AuthPassword: the 8 bytes of data are a clear-text password,
	// keepalived's auth_type PASS.
	AuthPassword uint8 = 1
	// AuthAH: IPsec AH, carried in an AH header, never on a protocol-112
	// packet; listed to name it in errors.
	AuthAH uint8 = 2
)

// Auth is VRRPv2 authentication as it is on the wire.
type Auth struct {
	Type uint8
	Data [8]byte
}

// PasswordAuth is keepalived's auth_pass: the first 8 bytes of password,
// zero-padded (keepalived truncates a longer one with a configuration
// warning). The caller rejects an empty password, which keepalived treats
// as no authentication.
func PasswordAuth(password string) Auth {
	a := Auth{Type: AuthPassword}
	copy(a.Data[:], password)
	return a
}

// Reason labels why a packet was dropped. The values are metric label values.
type Reason string

// Drop reasons, stable for metrics and logs.
const (
	ReasonShort       Reason = "short"       // truncated IP header or VRRP message
	ReasonIPHeader    Reason = "ip_header"   // malformed IPv4 header, fragments
	ReasonProtocol    Reason = "protocol"    // IP protocol is not 112
	ReasonTTL         Reason = "ttl"         // multicast advert with TTL != 255
	ReasonVersion     Reason = "version"     // VRRP version unknown or not ours
	ReasonType        Reason = "type"        // not an advertisement
	ReasonLength      Reason = "length"      // length disagrees with the address count
	ReasonChecksum    Reason = "checksum"    // neither checksum form verifies
	ReasonVRID        Reason = "vrid"        // another virtual router's advert
	ReasonInterval    Reason = "interval"    // v2 interval differs from ours, or zero
	ReasonAuth        Reason = "auth"        // v2 authentication type unknown or not ours
	ReasonPassword    Reason = "password"    // v2 simple password differs from ours
	ReasonPeer        Reason = "peer"        // unicast mode: source is not a configured peer
	ReasonAddress     Reason = "address"     // bad source or a non-unicast VIP
	ReasonDestination Reason = "destination" // multicast/unicast mismatch with our mode
)

// AllReasons lists every drop reason, for pre-creating metric series.
var AllReasons = []Reason{ReasonShort, ReasonIPHeader, ReasonProtocol, ReasonTTL, ReasonVersion,
	ReasonType, ReasonLength, ReasonChecksum, ReasonVRID, ReasonInterval, ReasonAuth, ReasonPassword,
	ReasonAddress, ReasonDestination, ReasonPeer}

// DropError explains why a packet was rejected.
type DropError struct {
	Reason Reason
	Detail string
}

func (e *DropError) Error() string { return fmt.Sprintf("vrrp: drop (%s): %s", e.Reason, e.Detail) }

func drop(r Reason, format string, args ...any) error {
	return &DropError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the drop reason of err, or "" when err is not a *DropError.
func ReasonOf(err error) Reason {
	var d *DropError
	if errors.As(err, &d) {
		return d.Reason
	}
	return ""
}

// Encode builds the VRRP message (the IP payload) for a. src and dst are the
// IPv4 source and destination the packet will carry: they enter the
// pseudo-header checksum of version 3 when form is ChecksumPseudoHeader.
func Encode(a Advert, src, dst netip.Addr, form ChecksumForm) ([]byte, error) {
	if len(a.Addresses) == 0 || len(a.Addresses) > MaxAddresses {
		return nil, fmt.Errorf("vrrp: %d addresses, want 1..%d", len(a.Addresses), MaxAddresses)
	}
	if a.VRID == 0 {
		return nil, errors.New("vrrp: VRID 0 is invalid")
	}
	n := headerLen + 4*len(a.Addresses)
	if a.Version == 2 {
		n += v2AuthLen
	}
	b := make([]byte, n)
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addresses))
	switch a.Version {
	case 2:
		if a.Interval%100 != 0 || a.Interval/100 == 0 || a.Interval/100 > 255 {
			return nil, fmt.Errorf("vrrp: v2 interval %d cs is not 1..255 whole seconds", a.Interval)
		}
		b[0] = 2<<4 | TypeAdvertisement
		switch a.Auth.Type {
		case AuthNone: // the data stays zero, as keepalived sends it
		case AuthPassword:
			copy(b[n-v2AuthLen:], a.Auth.Data[:])
		default:
			return nil, fmt.Errorf("vrrp: v2 auth type %d unsupported (0 none, 1 password)", a.Auth.Type)
		}
		b[4] = a.Auth.Type
		b[5] = uint8(a.Interval / 100)
	case 3:
		if a.Auth != (Auth{}) {
			return nil, errors.New("vrrp: v3 has no authentication (RFC 5798)")
		}
		if a.Interval == 0 || a.Interval > 0x0fff {
			return nil, fmt.Errorf("vrrp: v3 interval %d cs is not 1..4095", a.Interval)
		}
		b[0] = 3<<4 | TypeAdvertisement
		binary.BigEndian.PutUint16(b[4:], a.Interval&0x0fff)
	default:
		return nil, fmt.Errorf("vrrp: version %d unsupported", a.Version)
	}
	for i, ip := range a.Addresses {
		if !ip.Is4() {
			return nil, fmt.Errorf("vrrp: address %v is not IPv4", ip)
		}
		v := ip.As4()
		copy(b[headerLen+4*i:], v[:])
	}
	var sum uint32
	if a.Version == 3 && form == ChecksumPseudoHeader {
		sum = pseudoHeaderSum(src, dst, len(b))
	}
	binary.BigEndian.PutUint16(b[6:], finish(addSum(sum, b)))
	return b, nil
}

// Packet is an advert together with what the IP layer said about it.
type Packet struct {
	Advert
	Src, Dst netip.Addr
	TTL      int
	// Checksum is the form that verified (always ChecksumMessageOnly for v2).
	Checksum ChecksumForm
}

// Decode parses and verifies the VRRP message b (the IP payload) received
// from src for dst. It checks version, type, length, checksum (for version 3
// both IPv4 forms are accepted) and that a v2 authentication type is one we
// know (none or password). It does not check TTL, VRID, interval, source or
// the authentication itself: that is Filter's job.
func Decode(b []byte, src, dst netip.Addr) (Packet, error) {
	p := Packet{Src: src, Dst: dst}
	if len(b) < headerLen {
		return p, drop(ReasonShort, "%d bytes, need at least %d", len(b), headerLen)
	}
	if !src.Is4() || src.IsMulticast() || src.IsUnspecified() || src == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return p, drop(ReasonAddress, "source %v is not a unicast IPv4 address", src)
	}
	version := int(b[0] >> 4)
	if version != 2 && version != 3 {
		return p, drop(ReasonVersion, "version %d", version)
	}
	if t := b[0] & 0x0f; t != TypeAdvertisement {
		return p, drop(ReasonType, "type %d", t)
	}
	count := int(b[3])
	want := headerLen + 4*count
	if version == 2 {
		want += v2AuthLen
	}
	if len(b) < want {
		return p, drop(ReasonShort, "%d bytes for %d addresses, need %d", len(b), count, want)
	}
	if len(b) != want {
		return p, drop(ReasonLength, "%d bytes for %d addresses, want %d", len(b), count, want)
	}
	if count == 0 {
		return p, drop(ReasonLength, "no addresses")
	}
	p.Version = version
	p.VRID = b[1]
	p.Priority = b[2]
	switch version {
	case 2:
		if b[4] != AuthNone && b[4] != AuthPassword {
			return p, drop(ReasonAuth, "v2 auth type %d, only 0 (none) and 1 (password) are supported", b[4])
		}
		p.Auth.Type = b[4]
		copy(p.Auth.Data[:], b[len(b)-v2AuthLen:])
		p.Interval = uint16(b[5]) * 100
		if finish(addSum(0, b)) != 0 {
			return p, drop(ReasonChecksum, "v2 checksum 0x%04x does not verify", binary.BigEndian.Uint16(b[6:]))
		}
		p.Checksum = ChecksumMessageOnly
	case 3:
		p.Interval = binary.BigEndian.Uint16(b[4:]) & 0x0fff
		switch {
		case dst.Is4() && finish(addSum(pseudoHeaderSum(src, dst, len(b)), b)) == 0:
			p.Checksum = ChecksumPseudoHeader
		case finish(addSum(0, b)) == 0:
			p.Checksum = ChecksumMessageOnly
		default:
			return p, drop(ReasonChecksum, "v3 checksum 0x%04x verifies in neither form", binary.BigEndian.Uint16(b[6:]))
		}
	}
	if p.VRID == 0 {
		return p, drop(ReasonVRID, "VRID 0")
	}
	p.Addresses = make([]netip.Addr, count)
	for i := range count {
		a := netip.AddrFrom4([4]byte(b[headerLen+4*i : headerLen+4*i+4]))
		if a.IsMulticast() || a.IsUnspecified() {
			return p, drop(ReasonAddress, "virtual address %v is not unicast", a)
		}
		p.Addresses[i] = a
	}
	return p, nil
}

// Filter holds what a virtual router accepts beyond a well-formed packet.
type Filter struct {
	Version int
	VRID    uint8
	// Interval is our configured interval in centiseconds; version 2 drops
	// adverts carrying another one, as RFC 3768 and keepalived require.
	Interval uint16
	// Unicast is true when the router talks to unicast peers: then the TTL is
	// not checked and multicast adverts are unexpected.
	Unicast bool
	// Peers, when set (unicast mode), are the only sources accepted: an
	// advert from anyone else on the segment cannot take part in the
	// election.
	Peers []netip.Addr
	// Auth is the version 2 authentication we require, as keepalived does:
	// the advert's type must equal ours, and with a password its 8 bytes
	// must match. Version 3 ignores it.
	Auth Auth
}

// Check applies f to a decoded packet.
func (f Filter) Check(p Packet) error {
	if len(f.Peers) > 0 && !slices.Contains(f.Peers, p.Src) {
		return drop(ReasonPeer, "source %v is not a configured unicast peer", p.Src)
	}
	if !f.Unicast && p.TTL != TTL {
		return drop(ReasonTTL, "TTL %d from %v, want %d", p.TTL, p.Src, TTL)
	}
	if p.Version != f.Version {
		return drop(ReasonVersion, "version %d from %v, want %d", p.Version, p.Src, f.Version)
	}
	if p.VRID != f.VRID {
		return drop(ReasonVRID, "VRID %d from %v, want %d", p.VRID, p.Src, f.VRID)
	}
	if p.Interval == 0 {
		return drop(ReasonInterval, "zero interval from %v", p.Src)
	}
	if f.Version == 2 && p.Interval != f.Interval {
		return drop(ReasonInterval, "v2 interval %d s from %v, ours %d s", p.Interval/100, p.Src, f.Interval/100)
	}
	if f.Version == 2 {
		if p.Auth.Type != f.Auth.Type {
			return drop(ReasonAuth, "v2 auth type %d from %v, want %d", p.Auth.Type, p.Src, f.Auth.Type)
		}
		// Constant time, as keepalived compares: the password is clear
		// text on the wire anyway, but the comparison should not tell more.
		if f.Auth.Type == AuthPassword && subtle.ConstantTimeCompare(p.Auth.Data[:], f.Auth.Data[:]) != 1 {
			return drop(ReasonPassword, "v2 password from %v does not match ours", p.Src)
		}
	}
	if p.Dst.IsValid() && p.Dst.IsMulticast() == f.Unicast {
		return drop(ReasonDestination, "destination %v from %v while unicast=%v", p.Dst, p.Src, f.Unicast)
	}
	return nil
}

// IPv4Header is what ParseIPv4 extracts from an IPv4 header.
type IPv4Header struct {
	Src, Dst netip.Addr
	TTL      int
	Protocol int
}

// ParseIPv4 splits a raw IPv4 packet into header facts and payload, trimming
// link-layer padding beyond the IP total length.
func ParseIPv4(pkt []byte) (IPv4Header, []byte, error) {
	var h IPv4Header
	if len(pkt) < 20 {
		return h, nil, drop(ReasonShort, "%d bytes, no IPv4 header", len(pkt))
	}
	if pkt[0]>>4 != 4 {
		return h, nil, drop(ReasonIPHeader, "IP version %d", pkt[0]>>4)
	}
	ihl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if ihl < 20 || total < ihl || total > len(pkt) {
		return h, nil, drop(ReasonIPHeader, "header length %d, total length %d, have %d", ihl, total, len(pkt))
	}
	if frag := binary.BigEndian.Uint16(pkt[6:]); frag&0x3fff != 0 {
		return h, nil, drop(ReasonIPHeader, "fragmented packet")
	}
	h.TTL = int(pkt[8])
	h.Protocol = int(pkt[9])
	h.Src = netip.AddrFrom4([4]byte(pkt[12:16]))
	h.Dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	if h.Protocol != ProtocolNumber {
		return h, nil, drop(ReasonProtocol, "IP protocol %d", h.Protocol)
	}
	return h, pkt[ihl:total], nil
}

// DecodeIPv4 parses a whole IPv4 packet: ParseIPv4 then Decode, with the TTL
// filled in.
func DecodeIPv4(pkt []byte) (Packet, error) {
	h, payload, err := ParseIPv4(pkt)
	if err != nil {
		return Packet{}, err
	}
	p, err := Decode(payload, h.Src, h.Dst)
	p.TTL = h.TTL
	return p, err
}

func pseudoHeaderSum(src, dst netip.Addr, length int) uint32 {
	var ph [12]byte
	if src.Is4() {
		s := src.As4()
		copy(ph[0:4], s[:])
	}
	if dst.Is4() {
		d := dst.As4()
		copy(ph[4:8], d[:])
	}
	ph[9] = ProtocolNumber
	binary.BigEndian.PutUint16(ph[10:], uint16(length))
	return addSum(0, ph[:])
}

// addSum adds b to the running one's-complement sum.
func addSum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func finish(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
