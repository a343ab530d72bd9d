package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/redisha/redisha/components/netns"
)

// Remove tears down the named lab from any process: its containers and
// network (by label), client namespace, veth, firewall accept rules and state.
func Remove(ctx context.Context, name string) error {
	if err := checkRoot(geteuid()); err != nil {
		return err
	}
	c, err := dockerClient()
	if err != nil {
		return err
	}
	defer c.Close()
	if !strings.HasPrefix(name, NamePrefix) {
		name = NamePrefix + name
	}
	ok, err := labExists(ctx, c, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("lab: no lab named %s (see 'redisha lab status')", name)
	}
	return removeLab(ctx, c, name, slog.Default())
}

// GCOptions tune GC.
type GCOptions struct {
	// Force also removes labs whose owning process still runs.
	Force bool
	// Only limits GC to these lab names (tests use it to clean their own).
	Only []string
}

// GCReport says what GC removed.
type GCReport struct {
	Labs    []string // labs removed by label and state
	Skipped []string // labs in use by a live process
	Host    []string // host-side leftovers: netns, links, rules, nft tables
}

// Leftovers lists everything of labs on this machine: lab names found by
// label or state file, and host-side objects carrying the rhl- prefix or the
// redisha.lab comment. It changes nothing.
func Leftovers(ctx context.Context) (labs []string, host []string, err error) {
	c, err := dockerClient()
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	names, err := labNames(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return names, hostLeftovers(nil), nil
}

// labNames finds every lab known by label (containers, networks) or state file.
func labNames(ctx context.Context, c *client.Client) ([]string, error) {
	set := map[string]bool{}
	ctrs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labelFilter(LabelLab)})
	if err != nil {
		return nil, fmt.Errorf("lab: list containers: %v", oneLine(err))
	}
	for _, ct := range ctrs.Items {
		set[ct.Labels[LabelLab]] = true
	}
	nets, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: labelFilter(LabelLab)})
	if err != nil {
		return nil, fmt.Errorf("lab: list networks: %v", oneLine(err))
	}
	for _, n := range nets.Items {
		set[n.Labels[LabelLab]] = true
	}
	states, _ := ListStates()
	for _, st := range states {
		set[st.Name] = true
	}
	delete(set, "")
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// hostLeftovers lists host-side objects of labs; only non-nil limits it to
// those labs' names.
func hostLeftovers(only map[string]bool) []string {
	match := func(name string) bool {
		if !strings.HasPrefix(name, NamePrefix) {
			return false
		}
		if only == nil {
			return true
		}
		for lab := range only {
			if name == lab || strings.HasPrefix(name, lab+"-") {
				return true
			}
		}
		return false
	}
	var out []string
	if names, err := netns.Names(); err == nil {
		for _, n := range names {
			if match(n) {
				out = append(out, "netns "+n)
			}
		}
	}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			if match(l.Attrs().Name) {
				out = append(out, "link "+l.Attrs().Name)
			}
		}
	}
	if rules, err := leftoverAcceptRules(); err == nil {
		for _, r := range rules {
			lab := ruleLab(r)
			if only == nil || only[lab] {
				out = append(out, "iptables "+r.String())
			}
		}
	}
	if conn, err := nftables.New(); err == nil {
		if tables, err := conn.ListTables(); err == nil {
			for _, t := range tables {
				if match(t.Name) {
					out = append(out, "nft table "+familyName(t.Family)+" "+t.Name)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	}
	return fmt.Sprint(uint8(f))
}

// GC removes leftovers of labs: every lab found by label or state file whose
// owner is gone (or all with Force), then host-side objects with the rhl-
// prefix or the redisha.lab comment that no live lab owns.
func GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	var rep GCReport
	if err := checkRoot(geteuid()); err != nil {
		return rep, err
	}
	c, err := dockerClient()
	if err != nil {
		return rep, err
	}
	defer c.Close()
	names, err := labNames(ctx, c)
	if err != nil {
		return rep, err
	}
	var only map[string]bool
	if opts.Only != nil {
		only = map[string]bool{}
		for _, n := range opts.Only {
			only[n] = true
		}
	}
	live := map[string]bool{}
	var errs []error
	for _, name := range names {
		if only != nil && !only[name] {
			continue
		}
		if st, err := readState(name); err == nil && st.ownerAlive() && !opts.Force {
			rep.Skipped = append(rep.Skipped, name)
			live[name] = true
			continue
		}
		if err := removeLab(ctx, c, name, slog.Default()); err != nil {
			errs = append(errs, err)
		}
		rep.Labs = append(rep.Labs, name)
	}
	// Host objects of labs that are gone (or never got a label or state).
	if states, err := ListStates(); err == nil {
		for _, st := range states {
			if st.ownerAlive() && !opts.Force {
				live[st.Name] = true
			}
		}
	}
	owned := func(name string) bool {
		for lab := range live {
			if name == lab || strings.HasPrefix(name, lab+"-") {
				return true
			}
		}
		return false
	}
	inScope := func(name string) bool {
		if !strings.HasPrefix(name, NamePrefix) || owned(name) {
			return false
		}
		if only == nil {
			return true
		}
		for lab := range only {
			if name == lab || strings.HasPrefix(name, lab+"-") {
				return true
			}
		}
		return false
	}
	if names, err := netns.Names(); err == nil {
		for _, n := range names {
			if inScope(n) {
				if err := netns.Delete(n); err != nil {
					errs = append(errs, err)
				} else {
					rep.Host = append(rep.Host, "netns "+n)
				}
			}
		}
	}
	if links, err := netlink.LinkList(); err == nil {
		for _, l := range links {
			// Bridges belong to Docker networks: those went with the network;
			// a bridge left without one is removed here too.
			if inScope(l.Attrs().Name) {
				if err := netlink.LinkDel(l); err != nil {
					errs = append(errs, fmt.Errorf("link %s: %w", l.Attrs().Name, err))
				} else {
					rep.Host = append(rep.Host, "link "+l.Attrs().Name)
				}
			}
		}
	}
	if rules, err := leftoverAcceptRules(); err == nil {
		for _, r := range rules {
			lab := ruleLab(r)
			if live[lab] || (only != nil && !only[lab]) {
				continue
			}
			if err := netns.DeleteForwardRule(r); err != nil {
				errs = append(errs, fmt.Errorf("iptables %v: %w", r, err))
			} else {
				rep.Host = append(rep.Host, "iptables "+r.String())
			}
		}
	}
	if conn, err := nftables.New(); err == nil {
		if tables, err := conn.ListTables(); err == nil {
			n := 0
			for _, t := range tables {
				if inScope(t.Name) {
					conn.DelTable(t)
					rep.Host = append(rep.Host, "nft table "+familyName(t.Family)+" "+t.Name)
					n++
				}
			}
			if n > 0 {
				if err := conn.Flush(); err != nil {
					errs = append(errs, fmt.Errorf("nft: %w", err))
				}
			}
		}
	}
	return rep, errors.Join(errs...)
}

func containerListAll(lab string) client.ContainerListOptions {
	return client.ContainerListOptions{All: true, Filters: labelFilter(LabelLab + "=" + lab)}
}

func networkList(lab string) client.NetworkListOptions {
	return client.NetworkListOptions{Filters: labelFilter(LabelLab + "=" + lab)}
}

// ruleLab is the lab named in an accept rule's comment ("" for none).
func ruleLab(r netns.ForwardRule) string {
	for i, a := range r.Args {
		if a == "--comment" && i+1 < len(r.Args) {
			return strings.TrimPrefix(r.Args[i+1], LabelLab+"=")
		}
	}
	return ""
}
