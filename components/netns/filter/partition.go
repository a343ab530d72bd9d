package filter

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Member is one side's host in a partition.
type Member struct {
	Name  string     // for errors and reports
	Netns string     // path of its network namespace
	Addr  netip.Addr // its IPv4 address, as its peers see it
}

// Spec is a partition between two sets of hosts.
type Spec struct {
	A, B []Member
	// OneWay drops only packets travelling from A to B.
	OneWay bool
	Table  string // nftables table to add the chains to
	Chain  string // chain/set name prefix, unique per partition in Table
}

// Partition is a partition in place.
type Partition struct {
	filters []*Installed
}

// Cut drops packets between A and B inside every member's own namespace:
// on input by source address and on output by destination address, so
// multicast (VRRP) and traffic to an address a member holds besides its
// own (a VIP) are cut too. With OneWay only packets from A to B are
// dropped (TCP then fails both ways: it needs both directions). Any other
// traffic, such as a host-side observer's, passes. On error nothing stays
// installed.
func Cut(s Spec) (*Partition, error) {
	for _, m := range append(append([]Member(nil), s.A...), s.B...) {
		if !m.Addr.Is4() {
			return nil, fmt.Errorf("%s: address %v is not IPv4", m.Name, m.Addr)
		}
		if m.Netns == "" {
			return nil, fmt.Errorf("%s has no network namespace", m.Name)
		}
	}
	if len(s.A) == 0 || len(s.B) == 0 {
		return nil, errors.New("partition: both sides need a member")
	}
	addrs := func(ms []Member) []netip.Addr {
		out := make([]netip.Addr, len(ms))
		for k, m := range ms {
			out[k] = m.Addr
		}
		return out
	}
	var plans []Rules
	for _, m := range s.A {
		r := Rules{Name: m.Name, Netns: m.Netns, Table: s.Table, Chain: s.Chain, Out: addrs(s.B)}
		if !s.OneWay {
			r.In = addrs(s.B)
		}
		plans = append(plans, r)
	}
	for _, m := range s.B {
		r := Rules{Name: m.Name, Netns: m.Netns, Table: s.Table, Chain: s.Chain, In: addrs(s.A)}
		if !s.OneWay {
			r.Out = addrs(s.A)
		}
		plans = append(plans, r)
	}
	p := &Partition{}
	for _, r := range plans {
		x, err := Install(r)
		if err != nil {
			return nil, errors.Join(err, RemoveAll(p.filters))
		}
		p.filters = append(p.filters, x)
	}
	return p, nil
}

// Heal removes the partition in all namespaces at once. A second call
// does nothing.
func (p *Partition) Heal() error { return RemoveAll(p.filters) }

// Dropped is how many packets the partition dropped, known after Heal.
func (p *Partition) Dropped() uint64 {
	var n uint64
	for _, x := range p.filters {
		n += x.Matched()
	}
	return n
}

// Members names the namespaces holding the partition's rules, comma-separated.
func (p *Partition) Members() string {
	n := make([]string, len(p.filters))
	for k, x := range p.filters {
		n[k] = x.Name()
	}
	return strings.Join(n, ",")
}
