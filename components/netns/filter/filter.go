// Package filter installs and removes packet filters inside network
// namespaces with nftables: rules that drop (or hand to a netfilter queue)
// packets by peer address. It is the project's one partition
// implementation: testenv.Cut and the lab's fault injector both use Cut;
// the injector's latency faults use Install with a Queue.
//
// Each Install adds its own input and/or output base chain (and address
// set) to a shared IPv4 table in the namespace, so faults overlap freely
// and each is undone exactly; the table goes when its last chain does.
// Nothing but the listed peer addresses is matched: traffic from any other
// address, such as a host-side observer on the bridge, passes.
package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"

	"github.com/redisha/redisha/components/netns"
)

// mu serialises installs against removals in this process: deleting a
// table that has just become empty must not race with another filter
// adding its chains to it. Installs hold it exclusively; removals of
// different filters may run together (each base chain deletion waits for
// an RCU grace period, several ms, and a partition heals all its
// namespaces at once).
var mu sync.RWMutex

// Queue hands matched packets to netfilter queue Num instead of dropping them.
type Queue struct {
	Num uint16
	// Bypass accepts packets while no reader is bound to the queue.
	Bypass bool
}

// Rules is one filter in one namespace.
type Rules struct {
	Name  string // label for errors and reports, e.g. the node's name
	Netns string // path of the namespace
	Table string // nftables table (IPv4 family), shared by filters
	// Chain prefixes this filter's chain and set names: Chain+"_in" and
	// Chain+"_out". Unique per filter within Table.
	Chain string
	In    []netip.Addr // match packets arriving from these sources (hook input)
	Out   []netip.Addr // match packets leaving for these destinations (hook output)
	Queue *Queue       // nil drops matched packets
}

// Installed is a filter in place. Its namespace stays open until Remove,
// which keeps the very namespace alive and addressable even if the
// process whose /proc/PID/ns/net named it is gone meanwhile.
type Installed struct {
	name    string
	ns      *netns.NS
	table   *nftables.Table
	chains  []*nftables.Chain
	sets    []*nftables.Set
	matched uint64
	once    sync.Once
	err     error
}

// Name is Rules.Name.
func (x *Installed) Name() string { return x.name }

// Matched is how many packets the filter matched, read by Remove just
// before deleting its chains (0 before that).
func (x *Installed) Matched() uint64 { return x.matched }

// conn opens one netlink socket in the namespace for a whole batch of
// operations (a socket per operation would switch a thread into the
// namespace each time). Close it with CloseLasting.
func conn(ns *netns.NS) (*nftables.Conn, error) {
	return nftables.New(nftables.WithNetNSFd(ns.Fd()), nftables.AsLasting())
}

// Install adds r's chains, sets and rules in one transaction.
func Install(r Rules) (*Installed, error) {
	if len(r.In) == 0 && len(r.Out) == 0 {
		return nil, fmt.Errorf("%s: filter with no peers", r.Name)
	}
	mu.Lock()
	defer mu.Unlock()
	ns, err := netns.Open(r.Netns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.Name, err)
	}
	x := &Installed{name: r.Name, ns: ns}
	c, err := conn(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("%s: nftables: %w", r.Name, err)
	}
	defer c.CloseLasting()
	x.table = c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: r.Table})
	for _, m := range []struct {
		dir    string
		hook   *nftables.ChainHook
		peers  []netip.Addr
		offset uint32 // of the peer address in the IPv4 header
	}{
		{"in", nftables.ChainHookInput, r.In, 12},
		{"out", nftables.ChainHookOutput, r.Out, 16},
	} {
		if len(m.peers) == 0 {
			continue
		}
		set := &nftables.Set{Table: x.table, Name: r.Chain + "_" + m.dir, KeyType: nftables.TypeIPAddr}
		elems := make([]nftables.SetElement, 0, len(m.peers))
		for _, a := range m.peers {
			if !a.Is4() {
				ns.Close()
				return nil, fmt.Errorf("%s: peer %v is not IPv4", r.Name, a)
			}
			elems = append(elems, nftables.SetElement{Key: a.AsSlice()})
		}
		if err := c.AddSet(set, elems); err != nil {
			ns.Close()
			return nil, fmt.Errorf("%s: add set: %w", r.Name, err)
		}
		x.sets = append(x.sets, set)
		policy := nftables.ChainPolicyAccept
		chain := c.AddChain(&nftables.Chain{
			Name: r.Chain + "_" + m.dir, Table: x.table, Type: nftables.ChainTypeFilter,
			Hooknum: m.hook, Priority: nftables.ChainPriorityFilter, Policy: &policy,
		})
		x.chains = append(x.chains, chain)
		var verdict expr.Any = &expr.Verdict{Kind: expr.VerdictDrop}
		if r.Queue != nil {
			verdict = nfqueueTarget(*r.Queue)
		}
		c.AddRule(&nftables.Rule{Table: x.table, Chain: chain, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: m.offset, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			&expr.Counter{},
			verdict,
		}})
	}
	if err := c.Flush(); err != nil {
		ns.Close()
		return nil, fmt.Errorf("%s: install rules: %w", r.Name, err)
	}
	return x, nil
}

// nfqueueTarget is the xtables NFQUEUE target (revision 3) as an nft
// compat expression: some kernels lack nft's native `queue` expression
// (nft_queue) but have xt_NFQUEUE, exactly what iptables-nft emits for
// `-j NFQUEUE`. Info is struct xt_NFQ_info_v3 {u16 queuenum, queues_total,
// flags} in host byte order, padded to XT_ALIGN (8 bytes).
func nfqueueTarget(q Queue) *expr.Target {
	info := make(xt.Unknown, 8)
	binary.NativeEndian.PutUint16(info[0:], q.Num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	if q.Bypass {
		binary.NativeEndian.PutUint16(info[4:], 1) // NFQ_FLAG_BYPASS
	}
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}

func matchedPackets(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) uint64 {
	rules, err := c.GetRules(t, ch)
	if err != nil {
		return 0
	}
	var n uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				n += ctr.Packets
			}
		}
	}
	return n
}

// Remove deletes exactly this filter's chains and sets, then the table if
// no other filter still uses it. Later calls return the first one's result.
func (x *Installed) Remove() error {
	x.once.Do(func() { x.err = x.remove() })
	return x.err
}

func (x *Installed) remove() error {
	mu.RLock()
	defer mu.RUnlock()
	defer x.ns.Close()
	c, err := conn(x.ns)
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", x.name, err)
	}
	defer c.CloseLasting()
	for _, ch := range x.chains {
		x.matched += matchedPackets(c, x.table, ch)
	}
	for _, ch := range x.chains {
		c.DelChain(ch)
	}
	for _, s := range x.sets {
		c.DelSet(s)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s: remove rules: %w", x.name, err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil
	}
	if !slices.ContainsFunc(chains, func(ch *nftables.Chain) bool { return ch.Table.Name == x.table.Name }) {
		c.DelTable(x.table)
		_ = c.Flush() // another process may have just added to it: leave it then
	}
	return nil
}

// RemoveAll removes filters in all their namespaces at once, so the
// namespaces heal together rather than several ms apart.
func RemoveAll(xs []*Installed) error {
	errs := make([]error, len(xs))
	var wg sync.WaitGroup
	for k, x := range xs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = x.Remove()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// RemoveTables deletes every table whose name starts with prefix in the
// namespace at path (what a crashed process left behind) and returns
// their names.
func RemoveTables(path, prefix string) (removed []string, err error) {
	ns, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		return nil, err
	}
	tables, err := c.ListTables()
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if strings.HasPrefix(t.Name, prefix) {
			c.DelTable(t)
			removed = append(removed, t.Name)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	return removed, c.Flush()
}

// Tables lists the names of the nftables tables in the namespace at path.
func Tables(path string) ([]string, error) {
	ns, err := netns.Open(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(ns.Fd()))
	if err != nil {
		return nil, err
	}
	tables, err := c.ListTables()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(tables))
	for k, t := range tables {
		out[k] = t.Name
	}
	return out, nil
}
