package testenv

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/nsdial"
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
	// dockerRule records that the DOCKER-USER accept rule was added.
	dockerRule bool
}

// Host is one namespace of a Topology.
type Host struct {
	Name  string     // short name given by the test
	Netns string     // namespace name (ip netns)
	IP    netip.Addr // address on eth0
	Iface string     // "eth0" inside the namespace
	veth  string     // host-side end
	topo  *Topology
}

// NsPath is the namespace's file, for nsdial and netns.GetFromPath.
func (h *Host) NsPath() string { return "/var/run/netns/" + h.Netns }

// NewTopology creates namespaces named prefix+host (keep prefix+host within
// 15 characters: interface names are built from them) on a bridge named
// prefix+"br", numbering addresses from subnet's .1 in the order given; the
// bridge takes .254. Everything is removed when the test ends, and leftovers
// of an earlier crashed run with the same prefix are removed first.
func NewTopology(t testing.TB, prefix string, subnet netip.Prefix, hosts ...string) *Topology {
	t.Helper()
	RequireRoot(t)
	RequireBinary(t, "ip", "iptables")
	subnet = subnet.Masked()
	if !subnet.Addr().Is4() || subnet.Bits() > 24 {
		t.Fatalf("topology subnet %v: want an IPv4 /24 or larger", subnet)
	}
	topo := &Topology{t: t, Bridge: prefix + "br", Prefix: subnet, hosts: map[string]*Host{}}
	if len(topo.Bridge) > 15 {
		t.Fatalf("bridge name %q longer than 15 characters", topo.Bridge)
	}
	base := subnet.Addr().As4()
	topo.Gw = netip.AddrFrom4([4]byte{base[0], base[1], base[2], 254})
	RemoveTopology(prefix, hosts...)
	t.Cleanup(topo.Close)

	topo.run("ip", "link", "add", topo.Bridge, "type", "bridge")
	// VRRP and other multicast must flood; snooping would drop it before any join.
	topo.run("ip", "link", "set", topo.Bridge, "type", "bridge", "mcast_snooping", "0")
	topo.run("ip", "addr", "add", fmt.Sprintf("%s/%d", topo.Gw, subnet.Bits()), "dev", topo.Bridge)
	topo.run("ip", "link", "set", topo.Bridge, "up")
	// dockerd's FORWARD policy is DROP; without this, bridged packets between
	// our namespaces die in the host's firewall.
	if exec.Command("iptables", "-n", "-L", "DOCKER-USER").Run() == nil {
		topo.run("iptables", "-I", "DOCKER-USER", "-i", topo.Bridge, "-o", topo.Bridge, "-j", "ACCEPT")
		topo.dockerRule = true
	}
	for i, name := range hosts {
		ip := netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(i + 1)})
		h := &Host{Name: name, Netns: prefix + name, IP: ip, Iface: "eth0", veth: prefix + name, topo: topo}
		if len(h.veth) > 15 {
			t.Fatalf("interface name %q longer than 15 characters", h.veth)
		}
		tmp := "rhtmp" + fmt.Sprint(i)
		topo.run("ip", "netns", "add", h.Netns)
		topo.run("ip", "link", "add", h.veth, "type", "veth", "peer", "name", tmp)
		topo.run("ip", "link", "set", tmp, "netns", h.Netns)
		topo.run("ip", "-n", h.Netns, "link", "set", tmp, "name", "eth0")
		topo.run("ip", "-n", h.Netns, "addr", "add", fmt.Sprintf("%s/%d", ip, subnet.Bits()), "dev", "eth0")
		topo.run("ip", "-n", h.Netns, "link", "set", "eth0", "up")
		topo.run("ip", "-n", h.Netns, "link", "set", "lo", "up")
		// Routes only to the test subnet: nothing in a namespace can reach
		// the machine's real network.
		topo.run("ip", "link", "set", h.veth, "master", topo.Bridge)
		topo.run("ip", "link", "set", h.veth, "up")
		topo.hosts[name] = h
		topo.order = append(topo.order, h)
	}
	return topo
}

// RemoveTopology deletes what NewTopology(prefix, hosts...) creates, if present.
func RemoveTopology(prefix string, hosts ...string) {
	for _, name := range hosts {
		_ = exec.Command("ip", "netns", "del", prefix+name).Run()
		_ = exec.Command("ip", "link", "del", prefix+name).Run()
	}
	for exec.Command("iptables", "-D", "DOCKER-USER", "-i", prefix+"br", "-o", prefix+"br", "-j", "ACCEPT").Run() == nil {
	}
	_ = exec.Command("ip", "link", "del", prefix+"br").Run()
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

func (topo *Topology) run(argv ...string) {
	topo.t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		topo.t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// Run runs a command inside the host's namespace and returns its output.
func (h *Host) Run(ctx context.Context, argv ...string) (string, error) {
	full := append([]string{"ip", "netns", "exec", h.Netns}, argv...)
	out, err := exec.CommandContext(ctx, full[0], full[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(argv, " "), h.Netns, err, out)
	}
	return string(out), nil
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
func (h *Host) Dial() nsdial.DialFunc { return nsdial.Dialer(h.NsPath()) }

// Cut drops all traffic between hosts a and b, both ways, with iptables rules
// inside both namespaces, and returns the undo. Tests of a component use it to
// stage a partition; the chaos harness has its own injector for scenarios.
func (topo *Topology) Cut(a, b *Host) (heal func()) {
	topo.t.Helper()
	rules := [][2]*Host{{a, b}, {b, a}}
	for _, r := range rules {
		r[0].MustRun("iptables", "-I", "INPUT", "-s", r[1].IP.String(), "-j", "DROP")
		r[0].MustRun("iptables", "-I", "OUTPUT", "-d", r[1].IP.String(), "-j", "DROP")
	}
	return func() {
		for _, r := range rules {
			r[0].MustRun("iptables", "-D", "INPUT", "-s", r[1].IP.String(), "-j", "DROP")
			r[0].MustRun("iptables", "-D", "OUTPUT", "-d", r[1].IP.String(), "-j", "DROP")
		}
	}
}
