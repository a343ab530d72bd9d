package fault

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/redisha/redisha/components/netns/filter"
	"github.com/redisha/redisha/scenarios/lab/fault/nfqueue"
)

// Network faults are filters of components/netns/filter, the project's one
// nftables implementation: a partition is filter.Cut; a latency fault is a
// filter per receiving namespace that queues packets to an nfqueue.Delayer.
// Each fault's chains are named f<ID>_in / f<ID>_out in the injector's table.

func chainName(id int) string { return fmt.Sprintf("f%d", id) }

// queued is one namespace of a latency fault: its filter and the reader
// of the queue the filter feeds.
type queued struct {
	filter *filter.Installed
	queue  *nfqueue.Delayer
}

// removeQueued undoes a latency fault in all its namespaces at once (a
// base chain's deletion waits for an RCU grace period, several ms, and
// one namespace after the other would heal the nodes noticeably apart).
func removeQueued(qs []queued) error {
	errs := make([]error, len(qs))
	var wg sync.WaitGroup
	for k, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Rules first, so no packet is queued to a reader going away.
			errs[k] = errors.Join(q.filter.Remove(), q.queue.Close())
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
	members := func(ts []Target) []filter.Member {
		out := make([]filter.Member, len(ts))
		for k, t := range ts {
			out[k] = filter.Member{Name: t.Name(), Netns: t.NetnsPath(), Addr: t.Addr()}
		}
		return out
	}
	p, err := filter.Cut(filter.Spec{A: members(a), B: members(b), OneWay: s.OneWay, Table: inj.table, Chain: chainName(id)})
	if err != nil {
		return nil, "", err
	}
	detail := fmt.Sprintf("nft table %s chains f%d_in/f%d_out in %s", inj.table, id, id, p.Members())
	return func(context.Context) (string, error) {
		err := p.Heal()
		return fmt.Sprintf("removed %s; %d packets dropped", detail, p.Dropped()), err
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
	var done []queued
	fail := func(err error) (func(context.Context) (string, error), string, error) {
		return nil, "", errors.Join(err, removeQueued(done))
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
		f, err := filter.Install(filter.Rules{Name: p.t.Name(), Netns: p.t.NetnsPath(), Table: inj.table, Chain: chainName(id),
			In: p.from, Queue: &filter.Queue{Num: q, Bypass: true}})
		if err != nil {
			d.Close()
			return fail(err)
		}
		done = append(done, queued{filter: f, queue: d})
	}
	names := make([]string, len(done))
	for k, r := range done {
		names[k] = r.filter.Name()
	}
	detail := fmt.Sprintf("nfqueue %d, nft chain f%d_in in %s", q, id, strings.Join(names, ","))
	return func(context.Context) (string, error) {
		var st nfqueue.Stats
		for _, r := range done {
			x := r.queue.Stats()
			st.Received += x.Received
			st.Released += x.Released
			st.Lost += x.Lost
		}
		err := removeQueued(done)
		return fmt.Sprintf("removed %s; packets held=%d released=%d lost=%d", detail, st.Received, st.Released, st.Lost), err
	}, detail, nil
}

// RemoveLeftovers deletes every table whose name starts with DefaultTable
// in the network namespace at nsPath: what a crashed run left behind.
// `redisha lab gc` calls it for namespaces it finds; an injector's own
// Undo/UndoAll never needs it.
func RemoveLeftovers(nsPath string) (removed []string, err error) {
	return filter.RemoveTables(nsPath, DefaultTable)
}
