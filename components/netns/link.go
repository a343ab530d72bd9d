package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// MaxIfName is the longest interface name Linux accepts (IFNAMSIZ-1).
const MaxIfName = 15

func checkIfName(name string) error {
	if name == "" || len(name) > MaxIfName {
		return fmt.Errorf("netns: interface name %q: want 1 to %d bytes", name, MaxIfName)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// AddBridge creates an up Linux bridge in the caller's namespace, with
// multicast snooping off (VRRP and other link-local multicast must flood;
// snooping would drop it before any join) and addr on it unless addr is
// the zero Prefix.
func AddBridge(name string, addr netip.Prefix) error {
	if err := checkIfName(name); err != nil {
		return err
	}
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}, MulticastSnooping: &off}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("netns: bridge %s: %w", name, err)
	}
	if addr.IsValid() {
		if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: ipNet(addr)}); err != nil {
			return fmt.Errorf("netns: bridge %s address %s: %w", name, addr, err)
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("netns: bridge %s up: %w", name, err)
	}
	return nil
}

// Veth describes a veth pair from the caller's namespace into another one.
type Veth struct {
	Host   string       // name of the end that stays in the caller's namespace
	Bridge string       // bridge the host end joins ("" for none)
	Netns  string       // path of the namespace the other end goes into
	Name   string       // the other end's name in there ("eth0" when empty)
	Addr   netip.Prefix // the other end's address (none when zero)
}

// AddVeth creates the pair, moves the peer into v.Netns under v.Name with
// v.Addr, and brings both ends (and the namespace's loopback) up. Only
// the subnet's own route is installed: nothing in the namespace can reach
// beyond it.
func AddVeth(v Veth) error {
	if v.Name == "" {
		v.Name = "eth0"
	}
	if err := checkIfName(v.Host); err != nil {
		return err
	}
	if err := checkIfName(v.Name); err != nil {
		return err
	}
	ns, err := Open(v.Netns)
	if err != nil {
		return err
	}
	defer ns.Close()
	attrs := netlink.LinkAttrs{Name: v.Host}
	if v.Bridge != "" {
		br, err := netlink.LinkByName(v.Bridge)
		if err != nil {
			return fmt.Errorf("netns: bridge %s: %w", v.Bridge, err)
		}
		attrs.MasterIndex = br.Attrs().Index
	}
	// The peer is created directly inside the namespace (no temporary name
	// in the caller's namespace that could clash with another caller's).
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: v.Name, PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("netns: veth %s: %w", v.Host, err)
	}
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	in, err := h.LinkByName(v.Name)
	if err != nil {
		return fmt.Errorf("netns: %s in %s: %w", v.Name, v.Netns, err)
	}
	if v.Addr.IsValid() {
		if err := h.AddrAdd(in, &netlink.Addr{IPNet: ipNet(v.Addr)}); err != nil {
			return fmt.Errorf("netns: address %s on %s in %s: %w", v.Addr, v.Name, v.Netns, err)
		}
	}
	if err := h.LinkSetUp(in); err != nil {
		return fmt.Errorf("netns: %s up in %s: %w", v.Name, v.Netns, err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("netns: %s up: %w", v.Host, err)
	}
	// The kernel activates a link's queueing discipline (and sets its
	// operational state) from its linkwatch work, which can lag the carrier
	// by up to a second; until then every packet sent is dropped, e.g. a
	// first TCP SYN, which then waits a whole retransmission timeout. So
	// return only once both ends, and the bridge, can carry packets.
	deadline := time.Now().Add(linkUpTimeout)
	if err := waitOperUp(h, v.Name, deadline); err != nil {
		return fmt.Errorf("netns: %s in %s: %w", v.Name, v.Netns, err)
	}
	if err := waitOperUp(nil, v.Host, deadline); err != nil {
		return fmt.Errorf("netns: %s: %w", v.Host, err)
	}
	if v.Bridge != "" {
		if err := waitOperUp(nil, v.Bridge, deadline); err != nil {
			return fmt.Errorf("netns: bridge %s: %w", v.Bridge, err)
		}
	}
	return nil
}

// linkUpTimeout bounds the wait for a new link to become operational.
const linkUpTimeout = 10 * time.Second

// waitOperUp waits until the named link (in h's namespace, or the caller's
// when h is nil) is operationally up.
func waitOperUp(h *netlink.Handle, name string, deadline time.Time) error {
	byName := netlink.LinkByName
	if h != nil {
		byName = h.LinkByName
	}
	for {
		l, err := byName(name)
		if err != nil {
			return err
		}
		st := l.Attrs().OperState
		if st == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still %s, not up, after %v", st, linkUpTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DelLink deletes the named interface of the caller's namespace (a veth
// takes its peer with it); a missing one is not an error.
func DelLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("netns: link %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("netns: delete link %s: %w", name, err)
	}
	return nil
}

// HasAddr reports whether any interface of the namespace at path carries a.
func HasAddr(path string, a netip.Addr) (bool, error) {
	h, err := Handle(path)
	if err != nil {
		return false, err
	}
	defer h.Close()
	family := netlink.FAMILY_V4
	if a.Is6() && !a.Is4In6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := h.AddrList(nil, family)
	if err != nil {
		return false, fmt.Errorf("netns: addresses in %s: %w", path, err)
	}
	for _, ad := range addrs {
		if ip, ok := netip.AddrFromSlice(ad.IP); ok && ip.Unmap() == a.Unmap() {
			return true, nil
		}
	}
	return false, nil
}

// DropDefaultRoutes removes every IPv4 default route in the namespace at
// path, so nothing inside can send towards the machine's gateway.
func DropDefaultRoutes(path string) error {
	h, err := Handle(path)
	if err != nil {
		return err
	}
	defer h.Close()
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("netns: routes in %s: %w", path, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			if err := h.RouteDel(&r); err != nil {
				return fmt.Errorf("netns: drop default route in %s: %w", path, err)
			}
		}
	}
	return nil
}
