package netns_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"golang.org/x/net/ipv4"

	"github.com/redisha/redisha/components/netns"
	"github.com/redisha/redisha/components/testenv"
)

// The emulated host and its two guests, and the bridge inside the host.
const (
	fwHost   = prefix + "fw"
	fwBridge = prefix + "fbr"
	fwGroup  = "224.0.0.18" // VRRP's group: link-local, outside any subnet
)

var fwSubnet = netip.MustParsePrefix("10.83.1.0/24")

// dockerLayout is dockerd's (20.10) filter table for one bridge, built in
// the emulated host: FORWARD policy DROP, the jumps to DOCKER-USER and
// DOCKER-ISOLATION-STAGE-1 first, and for an --internal network the
// isolation drops plus the accept of traffic looping through its bridge.
func dockerLayout(ipt *iptables.IPTables, internal bool) error {
	subnet := fwSubnet.String()
	steps := []func() error{
		func() error { return ipt.ChangePolicy("filter", "FORWARD", "DROP") },
		func() error { return ipt.NewChain("filter", "DOCKER-USER") },
		func() error { return ipt.Append("filter", "DOCKER-USER", "-j", "RETURN") },
		func() error { return ipt.NewChain("filter", "DOCKER-ISOLATION-STAGE-1") },
	}
	if internal {
		steps = append(steps,
			func() error {
				return ipt.Append("filter", "DOCKER-ISOLATION-STAGE-1", "!", "-s", subnet, "-o", fwBridge, "-j", "DROP")
			},
			func() error {
				return ipt.Append("filter", "DOCKER-ISOLATION-STAGE-1", "-i", fwBridge, "!", "-d", subnet, "-j", "DROP")
			})
	}
	steps = append(steps,
		func() error { return ipt.Append("filter", "DOCKER-ISOLATION-STAGE-1", "-j", "RETURN") },
		func() error { return ipt.Append("filter", "FORWARD", "-j", "DOCKER-USER") },
		func() error { return ipt.Append("filter", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1") })
	if internal {
		steps = append(steps, func() error {
			return ipt.Append("filter", "FORWARD", "-i", fwBridge, "-o", fwBridge, "-j", "ACCEPT")
		})
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// emulatedHost makes a private namespace that plays the machine dockerd
// runs on, with a bridge and two guests a and b on it, so the test changes
// firewall rules there and never on the real host. It returns the paths of
// the host and the two guests.
func emulatedHost(t *testing.T) (host, a, b string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skips tests on network namespaces")
	}
	testenv.RequireRoot(t)
	names := []string{fwHost, prefix + "fa", prefix + "fb"}
	drop := func() {
		for _, n := range names {
			_ = netns.Delete(n)
		}
	}
	drop()
	t.Cleanup(drop)
	for _, n := range names {
		if err := netns.Create(n); err != nil {
			t.Fatal(err)
		}
	}
	host, a, b = netns.NamedPath(names[0]), netns.NamedPath(names[1]), netns.NamedPath(names[2])
	err := netns.Do(host, func() error {
		// br_netfilter is what sends bridged packets through iptables at
		// all; dockerd loads it, and its switch is per namespace.
		if v, err := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil || !bytes.HasPrefix(v, []byte("1")) {
			return fmt.Errorf("bridged packets do not go through iptables (br_netfilter not loaded? dockerd loads it; or run `modprobe br_netfilter`): %q, %v", v, err)
		}
		if err := netns.AddBridge(fwBridge, netip.PrefixFrom(fwSubnet.Addr().Next(), fwSubnet.Bits())); err != nil {
			return err
		}
		for i, g := range []string{a, b} {
			addr := netip.PrefixFrom(fwSubnet.Addr().Next().Next().Next(), fwSubnet.Bits())
			if i == 1 {
				addr = netip.PrefixFrom(addr.Addr().Next(), fwSubnet.Bits())
			}
			if err := netns.AddVeth(netns.Veth{Host: fmt.Sprintf("%sfv%d", prefix, i), Bridge: fwBridge, Netns: g, Addr: addr}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return host, a, b
}

// multicastProbe sends datagrams to fwGroup from a and reports whether b
// receives one.
type multicastProbe struct {
	send, recv *ipv4.PacketConn
	dst        *net.UDPAddr
	seq        int
}

func newMulticastProbe(t *testing.T, a, b string) *multicastProbe {
	t.Helper()
	group := net.ParseIP(fwGroup)
	p := &multicastProbe{}
	var ifi *net.Interface
	p.recv, ifi = udpSocket(t, b)
	p.dst = &net.UDPAddr{IP: group, Port: p.recv.LocalAddr().(*net.UDPAddr).Port}
	if err := p.recv.JoinGroup(ifi, &net.UDPAddr{IP: group}); err != nil {
		t.Fatal(err)
	}
	p.send, ifi = udpSocket(t, a)
	if err := p.send.SetMulticastInterface(ifi); err != nil {
		t.Fatal(err)
	}
	return p
}

// udpSocket opens a UDP socket inside the guest at path, closed at the
// end of the test, and returns it with the guest's eth0.
func udpSocket(t *testing.T, path string) (*ipv4.PacketConn, *net.Interface) {
	t.Helper()
	var pc *ipv4.PacketConn
	var ifi *net.Interface
	err := netns.Do(path, func() error {
		var err error
		if ifi, err = net.InterfaceByName("eth0"); err != nil {
			return err
		}
		c, err := net.ListenPacket("udp4", "0.0.0.0:0")
		if err != nil {
			return err
		}
		t.Cleanup(func() { c.Close() })
		pc = ipv4.NewPacketConn(c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pc, ifi
}

// passes sends a fresh datagram every 50 ms for up to wait and reports
// whether one of them (not an older one) reached b.
func (p *multicastProbe) passes(t *testing.T, wait time.Duration) bool {
	t.Helper()
	p.seq++
	want := []byte(fmt.Sprintf("probe %d", p.seq))
	deadline := time.Now().Add(wait)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) {
		if _, err := p.send.WriteTo(want, nil, p.dst); err != nil {
			t.Fatalf("send to %v: %v", p.dst, err)
		}
		_ = p.recv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		for {
			n, _, _, err := p.recv.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				t.Fatalf("receive: %v", err)
			}
			if bytes.Equal(buf[:n], want) {
				return true
			}
		}
	}
	return false
}

// TestAcceptSurvivesDockerRearranging checks AllowBridgeForward against what
// dockerd does on every network it creates or removes: it deletes its jump
// from FORWARD to DOCKER-USER (or to DOCKER-ISOLATION-STAGE-1) and inserts
// it again a moment later. Link-local multicast, VRRP's kind, must cross
// the bridge in every one of those states, for a bridge of an --internal
// docker network and for a bridge dockerd does not know. A rule in
// DOCKER-USER alone, as the lab had, loses it in the first state: the
// control case shows the emulation is faithful.
func TestAcceptSurvivesDockerRearranging(t *testing.T) {
	states := []struct {
		name    string
		missing []string // dockerd's jumps deleted from FORWARD at that moment
	}{
		{"all jumps in place", nil},
		{"DOCKER-USER jump deleted", []string{"DOCKER-USER"}},
		{"isolation jump deleted", []string{"DOCKER-ISOLATION-STAGE-1"}},
		{"both jumps deleted", []string{"DOCKER-USER", "DOCKER-ISOLATION-STAGE-1"}},
	}
	for _, internal := range []bool{true, false} {
		name := "bridge dockerd does not know"
		if internal {
			name = "internal docker network"
		}
		t.Run(name, func(t *testing.T) {
			host, a, b := emulatedHost(t)
			probe := newMulticastProbe(t, a, b)
			inHost := func(fn func(ipt *iptables.IPTables) error) {
				t.Helper()
				if err := netns.Do(host, func() error {
					ipt, err := iptables.New()
					if err != nil {
						return err
					}
					return fn(ipt)
				}); err != nil {
					t.Fatal(err)
				}
			}
			inHost(func(ipt *iptables.IPTables) error { return dockerLayout(ipt, internal) })
			if probe.passes(t, 300*time.Millisecond) {
				t.Fatal("multicast crossed the bridge before any accept rule: the emulated firewall does not filter bridged packets")
			}
			inHost(func(*iptables.IPTables) error { return netns.AllowBridgeForward(fwBridge, "rhn-test") })
			for _, s := range states {
				inHost(func(ipt *iptables.IPTables) error {
					for _, c := range s.missing {
						if err := ipt.Delete("filter", "FORWARD", "-j", c); err != nil {
							return err
						}
					}
					return nil
				})
				if !probe.passes(t, 3*time.Second) {
					t.Errorf("%s: multicast did not cross the bridge", s.name)
				}
				inHost(func(ipt *iptables.IPTables) error {
					for _, c := range s.missing {
						if err := ipt.Insert("filter", "FORWARD", 1, "-j", c); err != nil {
							return err
						}
					}
					return nil
				})
			}

			// Control: the rule in DOCKER-USER alone.
			inHost(func(ipt *iptables.IPTables) error {
				rules, err := netns.ForwardRules("rhn-test")
				if err != nil {
					return err
				}
				if len(rules) != len(netns.AcceptChains) {
					return fmt.Errorf("ForwardRules found %v, want one per chain of %v", rules, netns.AcceptChains)
				}
				for _, r := range rules {
					if r.Chain != "DOCKER-USER" {
						if err := netns.DeleteForwardRule(r); err != nil {
							return err
						}
					}
				}
				return ipt.Delete("filter", "FORWARD", "-j", "DOCKER-USER")
			})
			if probe.passes(t, 300*time.Millisecond) {
				t.Error("control: with the rule in DOCKER-USER alone and that jump deleted, multicast still crossed: the test proves nothing")
			}
			inHost(func(ipt *iptables.IPTables) error {
				if err := ipt.Insert("filter", "FORWARD", 1, "-j", "DOCKER-USER"); err != nil {
					return err
				}
				if err := netns.RemoveBridgeForward(fwBridge, "rhn-test"); err != nil {
					return err
				}
				if left, err := netns.ForwardRules("rhn-test"); err != nil || len(left) > 0 {
					return fmt.Errorf("after RemoveBridgeForward: %v, %v", left, err)
				}
				return nil
			})
		})
	}
}
