package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"
)

// geteuid is swapped by tests of the non-root error.
var geteuid = os.Geteuid

// Preflight checks what every lab needs and returns a one-line error that
// says what to do: root, and a Docker engine that answers.
func Preflight(ctx context.Context) error {
	if err := checkRoot(geteuid()); err != nil {
		return err
	}
	return checkDocker(ctx, dockerHost())
}

func checkRoot(euid int) error {
	if euid != 0 {
		return fmt.Errorf("lab: needs root (it creates network namespaces, veths and iptables rules); run it as root, e.g. sudo %s", os.Args[0])
	}
	return nil
}

func dockerHost() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return client.DefaultDockerHost
}

func checkDocker(ctx context.Context, host string) error {
	c, err := client.New(client.WithHost(host))
	if err != nil {
		return fmt.Errorf("lab: bad DOCKER_HOST %q: %v", host, oneLine(err))
	}
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("lab: no Docker engine answers at %s (%v); run 'make deps' as root to install and start dockerd", host, oneLine(err))
	}
	return nil
}

// oneLine keeps error text on one line (Docker errors may span several).
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func dockerClient() (*client.Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("lab: docker client: %v", oneLine(err))
	}
	return c, nil
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

func stdcopyStream(w io.Writer, r io.Reader) (int64, error) { return stdcopy.StdCopy(w, w, r) }

func labelFilter(kv ...string) client.Filters {
	f := make(client.Filters)
	for _, s := range kv {
		f.Add("label", s)
	}
	return f
}

func labExists(ctx context.Context, c *client.Client, name string) (bool, error) {
	nets, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: labelFilter(LabelLab + "=" + name)})
	if err != nil {
		return false, fmt.Errorf("lab: list networks: %v", oneLine(err))
	}
	ctrs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labelFilter(LabelLab + "=" + name)})
	if err != nil {
		return false, fmt.Errorf("lab: list containers: %v", oneLine(err))
	}
	_, statErr := os.Stat(statePath(name))
	return len(nets.Items) > 0 || len(ctrs.Items) > 0 || statErr == nil, nil
}

// usedPrefixes collects every IPv4 prefix in use on this host: Docker
// networks' subnets and the host's routes.
func usedPrefixes(ctx context.Context, c *client.Client) ([]netip.Prefix, map[netip.Prefix]string, error) {
	owner := map[netip.Prefix]string{}
	var out []netip.Prefix
	nets, err := c.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("lab: list networks: %v", oneLine(err))
	}
	for _, n := range nets.Items {
		for _, cfg := range n.IPAM.Config {
			if cfg.Subnet.IsValid() {
				out = append(out, cfg.Subnet)
				owner[cfg.Subnet] = "docker network " + n.Name
			}
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, r := range routes {
			// A default route (nil or 0.0.0.0/0) overlaps everything and
			// says nothing about addresses in use.
			if r.Dst == nil {
				continue
			}
			if ones, _ := r.Dst.Mask.Size(); ones == 0 {
				continue
			}
			if p, ok := netip.AddrFromSlice(r.Dst.IP); ok {
				ones, _ := r.Dst.Mask.Size()
				pfx := netip.PrefixFrom(p.Unmap(), ones)
				out = append(out, pfx)
				if _, ok := owner[pfx]; !ok {
					owner[pfx] = "a host route"
				}
			}
		}
	}
	return out, owner, nil
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) (netip.Prefix, bool) {
	for _, u := range used {
		if u.Overlaps(p) {
			return u, true
		}
	}
	return netip.Prefix{}, false
}

// createNetwork makes the lab's internal network on a free /24 of LabNet.
// Two labs racing for the same /24 are told apart by Docker's overlap error;
// the loser takes the next one.
func (l *Lab) createNetwork(ctx context.Context, want netip.Prefix) error {
	used, owner, err := usedPrefixes(ctx, l.docker)
	if err != nil {
		return err
	}
	var cands []netip.Prefix
	if want.IsValid() {
		want = want.Masked()
		if want.Bits() != 24 || !LabNet.Contains(want.Addr()) {
			return fmt.Errorf("lab: subnet %s: want a /24 inside %s", want, LabNet)
		}
		if u, ok := overlapsAny(want, used); ok {
			return fmt.Errorf("lab: subnet %s is already taken by %s (%s)", want, owner[u], u)
		}
		cands = []netip.Prefix{want}
	} else {
		// Start at a random /24 so concurrent labs rarely collide.
		var b [1]byte
		_, _ = randRead(b[:])
		base := LabNet.Addr().As4()
		for i := 0; i < 254; i++ {
			third := 1 + (int(b[0])+i)%254
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(third), 0}), 24)
			if _, ok := overlapsAny(p, used); !ok {
				cands = append(cands, p)
			}
		}
		if len(cands) == 0 {
			return fmt.Errorf("lab: no free /24 left in %s (run 'redisha lab gc')", LabNet)
		}
	}
	var lastErr error
	for _, p := range cands {
		a := p.Addr().As4()
		host := func(h int) netip.Addr { return netip.AddrFrom4([4]byte{a[0], a[1], a[2], byte(h)}) }
		// Never abandoned half-way: dockerd finishes a create whose client gave
		// up, and teardown (which finds networks by label) may look before it
		// exists, leaving it behind (seen at load 30: a cancelled Up left its
		// network and bridge). So the create runs to its end, within its own
		// bound, and a cancelled Up then fails at its next step and removes it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), networkCreateTimeout)
		res, err := l.docker.NetworkCreate(cctx, l.Network, client.NetworkCreateOptions{
			Driver:   "bridge",
			Internal: true,
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{
				Subnet:  p,
				IPRange: netip.PrefixFrom(p.Addr(), 25),
				Gateway: host(gatewayHost),
			}}},
			Options: map[string]string{
				"com.docker.network.bridge.name": l.Bridge,
			},
			Labels: map[string]string{LabelLab: l.Name, LabelStack: l.Stack.Name},
		})
		cancel()
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "overlap") && !want.IsValid() {
				continue
			}
			if strings.Contains(err.Error(), "overlap") {
				return fmt.Errorf("lab: subnet %s is already taken: %v", p, oneLine(err))
			}
			return fmt.Errorf("lab: create network: %v", oneLine(err))
		}
		l.NetworkID = res.ID
		l.Subnet = p
		l.Gateway = host(gatewayHost)
		if l.Stack.VIP != nil {
			l.VIP = host(l.Stack.VIP.Host)
		}
		l.Client = &Node{lab: l, name: "client", role: "client", ip: host(clientHost)}
		for i := range l.Stack.Nodes {
			spec := &l.Stack.Nodes[i]
			l.Nodes = append(l.Nodes, &Node{lab: l, name: spec.Name, role: spec.Role, ip: host(spec.Host), spec: spec})
		}
		return nil
	}
	return fmt.Errorf("lab: create network: %v", oneLine(lastErr))
}

// networkCreateTimeout bounds one network create, which a cancelled Up waits
// for (dockerd took seconds at a host load of 30).
const networkCreateTimeout = time.Minute

// removeLab removes everything labelled or named for lab name. It is what
// Close, `lab down` and (per lab) `lab gc` do; it keeps going on errors and
// returns them joined.
func removeLab(ctx context.Context, c *client.Client, name string, log interface {
	Warn(string, ...any)
}) error {
	var errs []error
	ctrs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labelFilter(LabelLab + "=" + name)})
	if err != nil {
		errs = append(errs, fmt.Errorf("list containers: %w", err))
	}
	done := make(chan error, len(ctrs.Items))
	for _, ct := range ctrs.Items {
		go func(id string) {
			_, err := c.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			if err != nil && !isNotFound(err) {
				done <- fmt.Errorf("remove container %.12s: %w", id, err)
				return
			}
			done <- nil
		}(ct.ID)
	}
	for range ctrs.Items {
		if err := <-done; err != nil {
			errs = append(errs, err)
		}
	}
	st, _ := readState(name)
	bridge := name
	if st != nil && st.Bridge != "" {
		bridge = st.Bridge
	}
	// Host-side objects before the network: the veth hangs on its bridge.
	if err := removeClient(name); err != nil {
		errs = append(errs, err)
	}
	if err := removeBridgeAccept(bridge, name); err != nil {
		errs = append(errs, err)
	}
	nets, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: labelFilter(LabelLab + "=" + name)})
	if err != nil {
		errs = append(errs, fmt.Errorf("list networks: %w", err))
	}
	for _, n := range nets.Items {
		if _, err := c.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	if err := os.Remove(statePath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab %s: teardown: %w", name, errors.Join(errs...))
	}
	return nil
}
