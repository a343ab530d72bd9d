package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/redisha/redisha/components/vip/vrrp"
)

// vrrpConn is a raw IPv4 protocol-112 socket bound to one interface.
type vrrpConn struct {
	pc    *ipv4.PacketConn
	raw   net.PacketConn
	ifi   *net.Interface
	src   netip.Addr
	dsts  []netip.Addr
	mcast bool
}

func openVRRP(ctx context.Context, ifi *net.Interface, src netip.Addr, peers []netip.Addr) (*vrrpConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			// Only adverts arriving on our interface are ours.
			serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifi.Name)
		})
		return errors.Join(err, serr)
	}}
	raw, err := lc.ListenPacket(ctx, fmt.Sprintf("ip4:%d", vrrp.ProtocolNumber), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("open raw VRRP socket (needs CAP_NET_RAW): %w", err)
	}
	c := &vrrpConn{pc: ipv4.NewPacketConn(raw), raw: raw, ifi: ifi, src: src, dsts: peers, mcast: len(peers) == 0}
	steps := []error{
		c.pc.SetTTL(vrrp.TTL),
		c.pc.SetMulticastTTL(vrrp.TTL),
		c.pc.SetMulticastLoopback(false),
		c.pc.SetTOS(0xc0), // CS6 (network control), as keepalived
		c.pc.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true),
	}
	if c.mcast {
		c.dsts = []netip.Addr{vrrp.MulticastGroup}
		steps = append(steps,
			c.pc.SetMulticastInterface(ifi),
			c.pc.JoinGroup(ifi, &net.IPAddr{IP: net.IP(vrrp.MulticastGroup.AsSlice())}))
	}
	if err := errors.Join(steps...); err != nil {
		raw.Close()
		return nil, fmt.Errorf("configure VRRP socket on %s: %w", ifi.Name, err)
	}
	return c, nil
}

// received is one packet as the read loop saw it.
type received struct {
	payload []byte
	src     netip.Addr
	dst     netip.Addr
	ttl     int
}

// read returns the next packet; the IPv4 header, if the kernel left it in,
// is stripped (VRRP's version nibble is 2 or 3, IPv4's is 4).
func (c *vrrpConn) read(buf []byte) (received, error) {
	n, cm, src, err := c.pc.ReadFrom(buf)
	if err != nil {
		return received{}, err
	}
	r := received{payload: buf[:n], ttl: -1}
	if ia, ok := src.(*net.IPAddr); ok {
		r.src, _ = netip.AddrFromSlice(ia.IP.To4())
	}
	if cm != nil {
		r.ttl = cm.TTL
		r.dst, _ = netip.AddrFromSlice(cm.Dst.To4())
	}
	if n >= 20 && buf[0]>>4 == 4 {
		h, payload, err := vrrp.ParseIPv4(buf[:n])
		if err == nil {
			r.payload, r.ttl, r.src, r.dst = payload, h.TTL, h.Src, h.Dst
		}
	}
	return r, nil
}

func (c *vrrpConn) send(a vrrp.Advert, form vrrp.ChecksumForm) error {
	var errs []error
	for _, dst := range c.dsts {
		b, err := vrrp.Encode(a, c.src, dst, form)
		if err != nil {
			return err
		}
		cm := &ipv4.ControlMessage{Src: net.IP(c.src.AsSlice()), IfIndex: c.ifi.Index}
		if _, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: net.IP(dst.AsSlice())}); err != nil {
			errs = append(errs, fmt.Errorf("send advert to %v: %w", dst, err))
		}
	}
	return errors.Join(errs...)
}

func (c *vrrpConn) close() error { return c.raw.Close() }
