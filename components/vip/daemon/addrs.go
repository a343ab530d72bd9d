package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/redisha/redisha/components/vip/config"
)

// addrManager adds and removes exactly the configured virtual addresses on
// exactly the configured interface, nothing else.
type addrManager struct {
	ifname string
	vips   []config.VIP
	log    *slog.Logger
}

func (m *addrManager) link() (netlink.Link, error) {
	l, err := netlink.LinkByName(m.ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", m.ifname, err)
	}
	return l, nil
}

func (m *addrManager) nlAddr(v config.VIP) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(v.Addr.AsSlice()), Mask: net.CIDRMask(v.Bits, 32)}}
}

// present lists which configured VIPs are on the interface now.
func (m *addrManager) present() ([]netip.Addr, error) {
	l, err := m.link()
	if err != nil {
		return nil, err
	}
	have, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, v := range m.vips {
		for _, h := range have {
			if a, ok := netip.AddrFromSlice(h.IP.To4()); ok && a == v.Addr {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func (m *addrManager) add() error {
	l, err := m.link()
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range m.vips {
		if err := netlink.AddrAdd(l, m.nlAddr(v)); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add %v to %s: %w", v, m.ifname, err))
		}
	}
	return errors.Join(errs...)
}

// remove deletes the configured VIPs that are present, whatever their prefix
// length (a crash may have left one added by an older configuration).
func (m *addrManager) remove() (removed []netip.Addr, err error) {
	l, err := m.link()
	if err != nil {
		return nil, err
	}
	have, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, v := range m.vips {
		for _, h := range have {
			a, ok := netip.AddrFromSlice(h.IP.To4())
			if !ok || a != v.Addr {
				continue
			}
			h := h
			if err := netlink.AddrDel(l, &h); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
				errs = append(errs, fmt.Errorf("remove %v from %s: %w", h.IPNet, m.ifname, err))
			} else {
				removed = append(removed, a)
			}
		}
	}
	return removed, errors.Join(errs...)
}

// garp announces every VIP with gratuitous ARP requests (sender and target
// address both the VIP, broadcast), count times, delay apart.
func garp(ifname string, vips []config.VIP, count int, delay time.Duration) (sent int, err error) {
	if count <= 0 {
		return 0, nil
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return 0, err
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return 0, fmt.Errorf("gratuitous ARP on %s: %w", ifname, err)
	}
	defer c.Close()
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for i := 0; i < count; i++ {
		if i > 0 && delay > 0 {
			time.Sleep(delay)
		}
		for _, v := range vips {
			p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, v.Addr, bcast, v.Addr)
			if err != nil {
				return sent, err
			}
			if err := c.WriteTo(p, bcast); err != nil {
				return sent, fmt.Errorf("gratuitous ARP for %v: %w", v.Addr, err)
			}
			sent++
		}
	}
	return sent, nil
}
