package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/redisha/redisha/components/netns"
)

// The lab's host-side network plumbing goes through components/netns, the
// project's one namespace toolkit: the client namespace, its veth, the
// firewall accept rules, and every look into a container's namespace (by its
// init's pid).

func clientNetnsName(lab string) string { return lab + "-client" }
func clientNetnsPath(lab string) string { return netns.NamedPath(clientNetnsName(lab)) }

// clientVeth is the host end of the client's veth (at most 15 bytes).
func clientVeth(lab string) string { return lab + "-c" }

// ClientDial opens a connection from inside the client namespace, so the
// workload's traffic crosses the lab network like a real client's and a
// partition can cut it off. Its signature matches net.Dialer.DialContext.
func (l *Lab) ClientDial(ctx context.Context, network, addr string) (net.Conn, error) {
	return netns.Dialer(clientNetnsPath(l.Name))(ctx, network, addr)
}

// createClient makes the client namespace: a named netns with a veth to the
// lab bridge, the client's address on it, and no default route (the client
// can reach the lab network and nothing else).
func (l *Lab) createClient() error {
	nsName := clientNetnsName(l.Name)
	if err := netns.Create(nsName); err != nil {
		return fmt.Errorf("lab: client: %w", err)
	}
	if err := netns.AddVeth(netns.Veth{
		Host: clientVeth(l.Name), Bridge: l.Bridge, Netns: clientNetnsPath(l.Name), Name: "eth0",
		Addr: netip.PrefixFrom(l.Client.ip, l.Subnet.Bits()),
	}); err != nil {
		return fmt.Errorf("lab: client: %w", err)
	}
	return nil
}

// removeClient deletes the client's veth and namespace; missing ones are fine.
func removeClient(lab string) error {
	return errors.Join(netns.DelLink(clientVeth(lab)), netns.Delete(clientNetnsName(lab)))
}

// bridgeAcceptComment marks the lab's accept rules, so gc finds them.
func bridgeAcceptComment(lab string) string { return LabelLab + "=" + lab }

// addBridgeAccept lets all traffic between ports of the lab bridge through
// dockerd's firewall, in every chain netns.AcceptChains names. Without it an
// internal network drops VRRP multicast (224.0.0.18 is outside the subnet)
// and both VRRP nodes claim the VIP; with it in DOCKER-USER alone, they did
// whenever another lab's network came up or went (dockerd re-inserts its
// FORWARD jumps then).
func addBridgeAccept(bridge, lab string) error {
	if err := netns.AllowBridgeForward(bridge, bridgeAcceptComment(lab)); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

func removeBridgeAccept(bridge, lab string) error {
	return netns.RemoveBridgeForward(bridge, bridgeAcceptComment(lab))
}

// leftoverAcceptRules lists the accept rules the lab added (by comment),
// ready for netns.DeleteForwardRule.
func leftoverAcceptRules() ([]netns.ForwardRule, error) { return netns.ForwardRules(LabelLab + "=") }
