package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/redisha/redisha/components/vip/driver"
	"github.com/redisha/redisha/components/vip/vrrp"
)

// vrrpConn is a raw IPv4 protocol-112 socket bound to one interface.
type vrrpConn struct {
	pc    *ipv4.PacketConn
	raw   net.PacketConn
	ifi   *net.Interface
	src   netip.Addr
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
	c := &vrrpConn{pc: ipv4.NewPacketConn(raw), raw: raw, ifi: ifi, src: src, mcast: len(peers) == 0}
	steps := []error{
		c.pc.SetTTL(vrrp.TTL),
		c.pc.SetMulticastTTL(vrrp.TTL),
		c.pc.SetMulticastLoopback(false),
		c.pc.SetTOS(0xc0), // CS6 (network control), as keepalived
		c.pc.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true),
	}
	if c.mcast {
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

// read returns the next packet; the IPv4 header, if the kernel left it in,
// is stripped (VRRP's version nibble is 2 or 3, IPv4's is 4).
func (c *vrrpConn) read(buf []byte) (driver.Packet, error) {
	n, cm, src, err := c.pc.ReadFrom(buf)
	if err != nil {
		return driver.Packet{}, err
	}
	r := driver.Packet{Payload: buf[:n], TTL: -1}
	if ia, ok := src.(*net.IPAddr); ok {
		r.Src, _ = netip.AddrFromSlice(ia.IP.To4())
	}
	if cm != nil {
		r.TTL = cm.TTL
		r.Dst, _ = netip.AddrFromSlice(cm.Dst.To4())
	}
	if n >= 20 && buf[0]>>4 == 4 {
		h, payload, err := vrrp.ParseIPv4(buf[:n])
		if err == nil {
			r.Payload, r.TTL, r.Src, r.Dst = payload, h.TTL, h.Src, h.Dst
		}
	}
	return r, nil
}

// send writes one encoded advert to dst from our primary address.
func (c *vrrpConn) send(dst netip.Addr, b []byte) error {
	cm := &ipv4.ControlMessage{Src: net.IP(c.src.AsSlice()), IfIndex: c.ifi.Index}
	_, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: net.IP(dst.AsSlice())})
	return err
}

func (c *vrrpConn) close() error { return c.raw.Close() }
