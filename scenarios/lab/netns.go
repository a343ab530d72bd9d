package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/redisha/redisha/components/nsdial"
)

// netnsDir is where iproute2 keeps named namespaces.
const netnsDir = "/var/run/netns"

func clientNetnsName(lab string) string { return lab + "-client" }
func clientNetnsPath(lab string) string { return filepath.Join(netnsDir, clientNetnsName(lab)) }

// clientVeth is the host end of the client's veth (at most 15 bytes).
func clientVeth(lab string) string { return lab + "-c" }

// ClientDial opens a connection from inside the client namespace, so the
// workload's traffic crosses the lab network like a real client's and a
// partition can cut it off. Its signature matches net.Dialer.DialContext.
func (l *Lab) ClientDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return nsdial.Dialer(clientNetnsPath(l.Name))(ctx, network, addr)
}

// createClient makes the client namespace: a named netns with a veth to the
// lab bridge, the client's address on it, and no default route (the client
// can reach the lab network and nothing else).
func (l *Lab) createClient() error {
	nsName := clientNetnsName(l.Name)
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return fmt.Errorf("lab: client netns: %w", err)
	}
	// netns.NewNamed switches the calling thread; do it on a locked thread
	// that dies afterwards so no goroutine inherits the namespace.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.NewNamed(nsName)
		if err == nil {
			h.Close()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("lab: create netns %s: %w", nsName, err)
	}
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return fmt.Errorf("lab: open netns %s: %w", nsName, err)
	}
	defer ns.Close()
	br, err := netlink.LinkByName(l.Bridge)
	if err != nil {
		return fmt.Errorf("lab: bridge %s: %w", l.Bridge, err)
	}
	hostEnd := clientVeth(l.Name)
	peer := hostEnd + "p"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd, MasterIndex: br.Attrs().Index}, PeerName: peer}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("lab: veth %s: %w", hostEnd, err)
	}
	peerLink, err := netlink.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("lab: veth peer %s: %w", peer, err)
	}
	if err := netlink.LinkSetNsFd(peerLink, int(ns)); err != nil {
		return fmt.Errorf("lab: move %s into %s: %w", peer, nsName, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("lab: up %s: %w", hostEnd, err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("lab: netlink in %s: %w", nsName, err)
	}
	defer h.Close()
	in, err := h.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("lab: %s in %s: %w", peer, nsName, err)
	}
	if err := h.LinkSetName(in, "eth0"); err != nil {
		return fmt.Errorf("lab: rename %s: %w", peer, err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: l.Client.ip.AsSlice(), Mask: net.CIDRMask(l.Subnet.Bits(), 32)}}
	if err := h.AddrAdd(in, addr); err != nil {
		return fmt.Errorf("lab: client address: %w", err)
	}
	if err := h.LinkSetUp(in); err != nil {
		return fmt.Errorf("lab: client eth0 up: %w", err)
	}
	if lo, err := h.LinkByName("lo"); err == nil {
		_ = h.LinkSetUp(lo)
	}
	return nil
}

// removeClient deletes the client's veth and namespace; missing ones are fine.
func removeClient(lab string) error {
	var errs []error
	if link, err := netlink.LinkByName(clientVeth(lab)); err == nil {
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", clientVeth(lab), err))
		}
	}
	if _, err := os.Stat(clientNetnsPath(lab)); err == nil {
		if err := netns.DeleteNamed(clientNetnsName(lab)); err != nil {
			errs = append(errs, fmt.Errorf("delete netns %s: %w", clientNetnsName(lab), err))
		}
	}
	return errors.Join(errs...)
}

// bridgeAcceptRule lets all traffic between ports of the lab bridge through
// dockerd's FORWARD policy. Without it an internal network drops VRRP
// multicast (224.0.0.18 is outside the subnet) and both keepalived nodes
// claim the VIP.
func bridgeAcceptRule(bridge, lab string) []string {
	return []string{"-i", bridge, "-o", bridge, "-m", "comment", "--comment", LabelLab + "=" + lab, "-j", "ACCEPT"}
}

func addBridgeAccept(bridge, lab string) error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("lab: iptables: %w", err)
	}
	if ok, _ := ipt.ChainExists("filter", "DOCKER-USER"); !ok {
		return fmt.Errorf("lab: iptables chain DOCKER-USER is missing: is dockerd managing iptables?")
	}
	rule := bridgeAcceptRule(bridge, lab)
	if ok, _ := ipt.Exists("filter", "DOCKER-USER", rule...); ok {
		return nil
	}
	if err := ipt.Insert("filter", "DOCKER-USER", 1, rule...); err != nil {
		return fmt.Errorf("lab: DOCKER-USER rule for %s: %w", bridge, err)
	}
	return nil
}

func removeBridgeAccept(bridge, lab string) error {
	ipt, err := iptables.New()
	if err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	if ok, _ := ipt.ChainExists("filter", "DOCKER-USER"); !ok {
		return nil
	}
	if err := ipt.DeleteIfExists("filter", "DOCKER-USER", bridgeAcceptRule(bridge, lab)...); err != nil {
		return fmt.Errorf("delete DOCKER-USER rule for %s: %w", bridge, err)
	}
	return nil
}

// leftoverAcceptRules lists DOCKER-USER rules the lab added (by comment), as
// argument lists ready for Delete.
func leftoverAcceptRules() ([][]string, error) {
	ipt, err := iptables.New()
	if err != nil {
		return nil, err
	}
	if ok, _ := ipt.ChainExists("filter", "DOCKER-USER"); !ok {
		return nil, nil
	}
	rules, err := ipt.List("filter", "DOCKER-USER")
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, r := range rules {
		if !strings.Contains(r, LabelLab+"=") || !strings.HasPrefix(r, "-A DOCKER-USER ") {
			continue
		}
		out = append(out, splitRule(strings.TrimPrefix(r, "-A DOCKER-USER ")))
	}
	return out, nil
}

// splitRule splits an iptables -S line, honouring double quotes.
func splitRule(s string) []string {
	var out []string
	var cur strings.Builder
	inq := false
	for _, r := range s {
		switch {
		case r == '"':
			inq = !inq
		case r == ' ' && !inq:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
