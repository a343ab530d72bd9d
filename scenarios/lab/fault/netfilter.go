package fault

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"

	"github.com/redisha/redisha/scenarios/lab/fault/nfqueue"
)

// nsRules is what one fault installed in one namespace. The namespace file
// stays open until undo: it keeps the very namespace alive and addressable
// even if the node's PID changes or dies meanwhile.
type nsRules struct {
	target string
	ns     *os.File
	table  *nftables.Table
	chains []*nftables.Chain
	sets   []*nftables.Set
	queue  *nfqueue.Delayer
	// matched counts the packets the rules matched, read just before removal.
	matched uint64
}

func matchedPackets(conn *nftables.Conn, t *nftables.Table, c *nftables.Chain) uint64 {
	rules, err := conn.GetRules(t, c)
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

// nftConn opens one netlink socket in the namespace for a whole batch of
// operations (a socket per operation costs a thread switch into the
// namespace each time). Close it with CloseLasting.
func (i *Injector) nftConn(ns *os.File) (*nftables.Conn, error) {
	return nftables.New(nftables.WithNetNSFd(int(ns.Fd())), nftables.AsLasting())
}

// install adds one input and/or output base chain for fault id in t's
// namespace, each dropping (or queueing, when queue is non-nil) packets
// whose peer address is in the given set. Nothing else is matched: traffic
// from any other address, such as the host-side observer, passes.
func (i *Injector) install(t Target, id int, in, out []netip.Addr, queue *queueSpec) (*nsRules, error) {
	i.nftMu.Lock()
	defer i.nftMu.Unlock()
	ns, err := os.Open(t.NetnsPath())
	if err != nil {
		return nil, fmt.Errorf("%s: open netns: %w", t.Name(), err)
	}
	r := &nsRules{target: t.Name(), ns: ns}
	conn, err := i.nftConn(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("%s: nftables: %w", t.Name(), err)
	}
	defer conn.CloseLasting()
	r.table = conn.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: i.table})
	for _, m := range []struct {
		dir    string
		hook   *nftables.ChainHook
		peers  []netip.Addr
		offset uint32 // of the peer address in the IPv4 header
	}{
		{"in", nftables.ChainHookInput, in, 12},
		{"out", nftables.ChainHookOutput, out, 16},
	} {
		if len(m.peers) == 0 {
			continue
		}
		set := &nftables.Set{Table: r.table, Name: fmt.Sprintf("f%d_%s", id, m.dir), KeyType: nftables.TypeIPAddr}
		elems := make([]nftables.SetElement, 0, len(m.peers))
		for _, a := range m.peers {
			elems = append(elems, nftables.SetElement{Key: a.AsSlice()})
		}
		if err := conn.AddSet(set, elems); err != nil {
			ns.Close()
			return nil, fmt.Errorf("%s: add set: %w", t.Name(), err)
		}
		r.sets = append(r.sets, set)
		policy := nftables.ChainPolicyAccept
		chain := conn.AddChain(&nftables.Chain{
			Name: fmt.Sprintf("f%d_%s", id, m.dir), Table: r.table, Type: nftables.ChainTypeFilter,
			Hooknum: m.hook, Priority: nftables.ChainPriorityFilter, Policy: &policy,
		})
		r.chains = append(r.chains, chain)
		var verdict expr.Any = &expr.Verdict{Kind: expr.VerdictDrop}
		if queue != nil {
			verdict = nfqueueTarget(*queue)
		}
		conn.AddRule(&nftables.Rule{Table: r.table, Chain: chain, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: m.offset, Len: 4},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			&expr.Counter{},
			verdict,
		}})
	}
	if err := conn.Flush(); err != nil {
		ns.Close()
		return nil, fmt.Errorf("%s: install rules: %w", t.Name(), err)
	}
	return r, nil
}

// nfqueueTarget is the xtables NFQUEUE target (revision 3) as an nft
// compat expression: this kernel lacks nft's native `queue` expression
// (nft_queue) but has xt_NFQUEUE, exactly what iptables-nft emits for
// `-j NFQUEUE`. Info is struct xt_NFQ_info_v3 {u16 queuenum, queues_total,
// flags} in host byte order, padded to XT_ALIGN (8 bytes).
func nfqueueTarget(q queueSpec) *expr.Target {
	info := make(xt.Unknown, 8)
	binary.NativeEndian.PutUint16(info[0:], q.num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	if q.bypass {
		binary.NativeEndian.PutUint16(info[4:], 1) // NFQ_FLAG_BYPASS
	}
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}

// queueSpec selects a netfilter queue for matched packets.
type queueSpec struct {
	num    uint16
	bypass bool // accept packets when no reader is bound
}

// remove deletes exactly the chains and sets of this fault, then the table
// if no other fault still uses it.
func (i *Injector) remove(r *nsRules) error {
	// Serialised with install: deleting the then empty table must not race
	// with another fault adding its chains to it.
	i.nftMu.RLock()
	defer i.nftMu.RUnlock()
	defer r.ns.Close()
	conn, err := i.nftConn(r.ns)
	if err != nil {
		return fmt.Errorf("%s: nftables: %w", r.target, err)
	}
	defer conn.CloseLasting()
	for _, c := range r.chains {
		r.matched += matchedPackets(conn, r.table, c)
	}
	for _, c := range r.chains {
		conn.DelChain(c)
	}
	for _, s := range r.sets {
		conn.DelSet(s)
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("%s: remove rules: %w", r.target, err)
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil
	}
	if !slices.ContainsFunc(chains, func(c *nftables.Chain) bool { return c.Table.Name == i.table }) {
		conn.DelTable(r.table)
		_ = conn.Flush() // another injector may have just added to it: leave it then
	}
	return nil
}

// removeAll undoes a fault in all its namespaces at once: deleting a base
// chain waits for an RCU grace period (several ms), and one namespace after
// the other would heal the nodes noticeably apart.
func (i *Injector) removeAll(rs []*nsRules) error {
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for k, r := range rs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Rules first, so no packet is queued to a reader going away.
			errs[k] = i.remove(r)
			if r.queue != nil {
				errs[k] = errors.Join(errs[k], r.queue.Close())
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sides resolves and checks the two peer sets of a network fault.
func (i *Injector) sides(s Spec, pool map[string]Target) (a, b []Target, err error) {
	if a, err = resolve(pool, s.A, "side A"); err != nil {
		return nil, nil, err
	}
	if b, err = resolve(pool, s.B, "side B"); err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, t := range append(slices.Clone(a), b...) {
		if seen[t.Name()] {
			return nil, nil, fmt.Errorf("target %q is on both sides or twice on one", t.Name())
		}
		seen[t.Name()] = true
		addr := t.Addr()
		if !addr.Is4() {
			return nil, nil, fmt.Errorf("target %q: address %v is not IPv4", t.Name(), addr)
		}
		if slices.Contains(i.exempt, addr) {
			return nil, nil, fmt.Errorf("target %q: address %v is exempt from network faults (host-side observer)", t.Name(), addr)
		}
		if t.NetnsPath() == "" {
			return nil, nil, fmt.Errorf("target %q has no network namespace", t.Name())
		}
	}
	return a, b, nil
}

func addrs(ts []Target) []netip.Addr {
	out := make([]netip.Addr, len(ts))
	for k, t := range ts {
		out[k] = t.Addr()
	}
	return out
}

// applyPartition drops packets between A and B inside every member's own
// namespace: on input by source address and on output by destination
// address, so multicast (VRRP) and traffic to a VIP a member holds are cut
// too. One-way drops only packets travelling from A to B.
func applyPartition(_ context.Context, inj *Injector, id int, s Spec, pool map[string]Target) (func(context.Context) (string, error), string, error) {
	a, b, err := inj.sides(s, pool)
	if err != nil {
		return nil, "", err
	}
	type plan struct {
		t       Target
		in, out []netip.Addr
	}
	var plans []plan
	for _, t := range a {
		p := plan{t: t, out: addrs(b)}
		if !s.OneWay {
			p.in = addrs(b)
		}
		plans = append(plans, p)
	}
	for _, t := range b {
		p := plan{t: t, in: addrs(a)}
		if !s.OneWay {
			p.out = addrs(a)
		}
		plans = append(plans, p)
	}
	var done []*nsRules
	for _, p := range plans {
		r, err := inj.install(p.t, id, p.in, p.out, nil)
		if err != nil {
			return nil, "", errors.Join(err, inj.removeAll(done))
		}
		done = append(done, r)
	}
	detail := fmt.Sprintf("nft table %s chains f%d_in/f%d_out in %s", inj.table, id, id, names(done))
	return func(context.Context) (string, error) {
		err := inj.removeAll(done)
		var dropped uint64
		for _, r := range done {
			dropped += r.matched
		}
		return fmt.Sprintf("removed %s; %d packets dropped", detail, dropped), err
	}, detail, nil
}

// applyNetDelay holds packets between A and B in userspace: each receiving
// namespace queues packets whose source is on the other side, and a
// Delayer bound there releases them after Delay±Jitter or drops them with
// probability Loss. Each direction is delayed once, so a round trip between
// A and B grows by 2×Delay (by Delay when OneWay).
func applyNetDelay(_ context.Context, inj *Injector, id int, s Spec, pool map[string]Target) (func(context.Context) (string, error), string, error) {
	a, b, err := inj.sides(s, pool)
	if err != nil {
		return nil, "", err
	}
	type plan struct {
		t    Target
		from []netip.Addr
	}
	plans := []plan{}
	for _, t := range b {
		plans = append(plans, plan{t, addrs(a)})
	}
	if !s.OneWay {
		for _, t := range a {
			plans = append(plans, plan{t, addrs(b)})
		}
	}
	q := inj.queueNum()
	var done []*nsRules
	fail := func(err error) (func(context.Context) (string, error), string, error) {
		return nil, "", errors.Join(err, inj.removeAll(done))
	}
	for k, p := range plans {
		// Bind the queue before the rule exists, so no packet meets an
		// unbound queue; without the bypass flag a dead reader would turn a
		// latency fault into a partition, which is the wrong fault.
		d, err := nfqueue.Start(nfqueue.Options{
			NetnsPath: p.t.NetnsPath(), Num: q, Delay: s.Delay, Jitter: s.Jitter, Loss: s.Loss,
			Rand: inj.rng(id, uint64(k)),
		})
		if err != nil {
			return fail(fmt.Errorf("%s: %w", p.t.Name(), err))
		}
		r, err := inj.install(p.t, id, p.from, nil, &queueSpec{num: q, bypass: true})
		if err != nil {
			d.Close()
			return fail(err)
		}
		r.queue = d
		done = append(done, r)
	}
	detail := fmt.Sprintf("nfqueue %d, nft chain f%d_in in %s", q, id, names(done))
	return func(context.Context) (string, error) {
		var st nfqueue.Stats
		for _, r := range done {
			x := r.queue.Stats()
			st.Received += x.Received
			st.Released += x.Released
			st.Lost += x.Lost
		}
		err := inj.removeAll(done)
		return fmt.Sprintf("removed %s; packets held=%d released=%d lost=%d", detail, st.Received, st.Released, st.Lost), err
	}, detail, nil
}

// RemoveLeftovers deletes every table whose name starts with DefaultTable
// in the network namespace at nsPath: what a crashed run left behind.
// `redisha lab gc` calls it for namespaces it finds; an injector's own
// Undo/UndoAll never needs it.
func RemoveLeftovers(nsPath string) (removed []string, err error) {
	ns, err := os.Open(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	conn, err := nftables.New(nftables.WithNetNSFd(int(ns.Fd())))
	if err != nil {
		return nil, err
	}
	tables, err := conn.ListTables()
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		if strings.HasPrefix(t.Name, DefaultTable) {
			conn.DelTable(t)
			removed = append(removed, t.Name)
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	return removed, conn.Flush()
}

func names(rs []*nsRules) string {
	n := make([]string, len(rs))
	for k, r := range rs {
		n[k] = r.target
	}
	return strings.Join(n, ",")
}
