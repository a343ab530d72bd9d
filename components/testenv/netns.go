package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redisha/redisha/components/netns"
	"github.com/redisha/redisha/components/netns/filter"
)

// Topology is a set of test hosts: one network namespace each, all on one
// Linux bridge in the host namespace, like machines on one switch. The bridge
// itself holds an address too, so the test process can reach every host
// directly (that is the observer's path, which partitions do not cut).
type Topology struct {
	t      testing.TB
	Bridge string
	Prefix netip.Prefix
	Gw     netip.Addr // the bridge's own address
	hosts  map[string]*Host
	order  []*Host
}

// Host is one namespace of a Topology.
type Host struct {
	Name  string     // short name given by the test
	Netns string     // namespace name (under netns.Dir, so `ip netns` lists it)
	IP    netip.Addr // address on eth0
	Iface string     // "eth0" inside the namespace
	veth  string     // host-side end
	topo  *Topology
}

// NsPath is the namespace's file, for the components/netns toolkit.
func (h *Host) NsPath() string { return netns.NamedPath(h.Netns) }

// NewTopology creates namespaces named prefix+host (keep prefix+host within
// 15 characters: interface names are built from them) on a bridge named
// prefix+"br", numbering addresses from subnet's .1 in the order given; the
// bridge takes .254. Everything is removed when the test ends, and leftovers
// of an earlier crashed run with the same prefix are removed first. It is
// built on components/netns, like the lab.
func NewTopology(t testing.TB, prefix string, subnet netip.Prefix, hosts ...string) *Topology {
	t.Helper()
	RequireRoot(t)
	subnet = subnet.Masked()
	if !subnet.Addr().Is4() || subnet.Bits() > 24 {
		t.Fatalf("topology subnet %v: want an IPv4 /24 or larger", subnet)
	}
	topo := &Topology{t: t, Bridge: prefix + "br", Prefix: subnet, hosts: map[string]*Host{}}
	if len(topo.Bridge) > netns.MaxIfName {
		t.Fatalf("bridge name %q longer than %d characters", topo.Bridge, netns.MaxIfName)
	}
	base := subnet.Addr().As4()
	topo.Gw = netip.AddrFrom4([4]byte{base[0], base[1], base[2], 254})
	RemoveTopology(prefix, hosts...)
	t.Cleanup(topo.Close)

	topo.must(netns.AddBridge(topo.Bridge, netip.PrefixFrom(topo.Gw, subnet.Bits())))
	// dockerd's FORWARD policy is DROP; without this, bridged packets between
	// our namespaces die in the host's firewall. No dockerd, no policy.
	if err := netns.AllowBridgeForward(topo.Bridge, ""); err != nil && !errors.Is(err, netns.ErrNoDockerUser) {
		topo.must(err)
	}
	for i, name := range hosts {
		ip := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(i + 1)})
		h := &Host{Name: name, Netns: prefix + name, IP: ip, Iface: "eth0", veth: prefix + name, topo: topo}
		if len(h.veth) > netns.MaxIfName {
			t.Fatalf("interface name %q longer than %d characters", h.veth, netns.MaxIfName)
		}
		topo.must(netns.Create(h.Netns))
		// Routes only to the test subnet: nothing in a namespace can reach
		// the machine's real network.
		topo.must(netns.AddVeth(netns.Veth{Host: h.veth, Bridge: topo.Bridge, Netns: h.NsPath(), Name: h.Iface,
			Addr: netip.PrefixFrom(ip, subnet.Bits())}))
		topo.hosts[name] = h
		topo.order = append(topo.order, h)
	}
	return topo
}

// RemoveTopology deletes what NewTopology(prefix, hosts...) creates, if present.
func RemoveTopology(prefix string, hosts ...string) {
	for _, name := range hosts {
		_ = netns.Delete(prefix + name)
		_ = netns.DelLink(prefix + name)
	}
	_ = netns.RemoveBridgeForward(prefix+"br", "")
	_ = netns.DelLink(prefix + "br")
}

// Close removes the namespaces, veths, bridge and firewall rule. Processes
// still running inside a namespace keep it alive until they exit, so tests
// stop their daemons in earlier cleanups (t.Cleanup runs last-in first-out).
func (topo *Topology) Close() {
	names := make([]string, 0, len(topo.order))
	for _, h := range topo.order {
		names = append(names, h.Name)
	}
	RemoveTopology(strings.TrimSuffix(topo.Bridge, "br"), names...)
}

// Host returns the named host or fails the test.
func (topo *Topology) Host(name string) *Host {
	h, ok := topo.hosts[name]
	if !ok {
		topo.t.Fatalf("no host %q in topology", name)
	}
	return h
}

// Hosts lists the hosts in creation order.
func (topo *Topology) Hosts() []*Host { return topo.order }

func (topo *Topology) must(err error) {
	topo.t.Helper()
	if err != nil {
		topo.t.Fatal(err)
	}
}

// Run runs a command inside the host's namespace and returns its output
// (stdout and stderr).
func (h *Host) Run(ctx context.Context, argv ...string) (string, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := netns.Run(h.NsPath(), cmd); err != nil {
		return out.String(), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), h.Netns, err, out.String())
	}
	return out.String(), nil
}

// MustRun is Run that fails the test on error.
func (h *Host) MustRun(argv ...string) string {
	h.topo.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.Run(ctx, argv...)
	if err != nil {
		h.topo.t.Fatal(err)
	}
	return out
}

// Dial returns a dialer whose connections leave from this host.
func (h *Host) Dial() netns.DialFunc { return netns.Dialer(h.NsPath()) }

// cutTable is the nftables table Cut's chains go into in each namespace
// (the fault injector uses its own, so the two never touch each other's).
const cutTable = "redisha_cut"

// cuts numbers Cut's chains, unique within the process.
var cuts atomic.Uint64

// Cut drops all traffic between hosts a and b, both ways, and returns the
// undo. It is the fault injector's partition (components/netns/filter):
// nftables chains inside both namespaces dropping packets from and to the
// other host, so the bridge's own address (the observer) still reaches
// both. Tests of a component use it to stage a partition.
func (topo *Topology) Cut(a, b *Host) (heal func()) {
	topo.t.Helper()
	p, err := filter.Cut(filter.Spec{
		A:     []filter.Member{{Name: a.Name, Netns: a.NsPath(), Addr: a.IP}},
		B:     []filter.Member{{Name: b.Name, Netns: b.NsPath(), Addr: b.IP}},
		Table: cutTable,
		Chain: fmt.Sprintf("cut%d", cuts.Add(1)),
	})
	topo.must(err)
	return func() {
		topo.t.Helper()
		topo.must(p.Heal())
	}
}
