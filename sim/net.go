package sim

import (
	"fmt"
	"time"
)

// Link is the behaviour of one direction between two nodes.
type Link struct {
	Delay   time.Duration // base one-way delay
	Jitter  time.Duration // extra delay, uniform in [0, Jitter)
	Loss    float64       // probability a message is lost
	Corrupt float64       // probability one bit of a message flips
	Cut     bool          // partitioned in this direction
}

// Clean reports whether the link delivers everything unchanged.
func (l Link) Clean() bool { return !l.Cut && l.Loss == 0 && l.Corrupt == 0 }

// Handler receives a message on a node: the sender, the bytes (possibly
// corrupted on the way) and out-of-band metadata (e.g. an IP header) that
// the network passes through untouched.
type Handler func(from string, data []byte, meta any)

type pair struct{ from, to string }

// Network carries messages between nodes. Every link starts as Base (or
// what SetLink made it); active faults are applied on top, in the order they
// were imposed, so overlapping faults end independently.
type Network struct {
	w        *World
	Base     Link
	links    map[pair]Link
	faults   []*netFault
	nextID   int
	handlers map[string]Handler
	Sent     int
	Lost     int // dropped by loss, a cut, or a dead sender or receiver
	Changes  int // link changes so far; models use it to tell a quiet network
}

func newNetwork(w *World) *Network {
	return &Network{w: w, links: map[pair]Link{}, handlers: map[string]Handler{}}
}

// Handle registers the receiver of node name.
func (n *Network) Handle(name string, h Handler) { n.handlers[name] = h }

type netFault struct {
	id    int
	apply func(from, to string, l *Link)
}

// Link returns the link from -> to with the active faults applied.
func (n *Network) Link(from, to string) Link {
	l, ok := n.links[pair{from, to}]
	if !ok {
		l = n.Base
	}
	for _, f := range n.faults {
		f.apply(from, to, &l)
	}
	return l
}

// Impose activates a fault that changes links (fn may ignore the pairs it
// does not touch); the returned function lifts it.
func (n *Network) Impose(fn func(from, to string, l *Link)) (lift func()) {
	n.nextID++
	f := &netFault{id: n.nextID, apply: fn}
	n.faults = append(n.faults, f)
	n.Changes++
	return func() {
		for i, x := range n.faults {
			if x == f {
				n.faults = append(n.faults[:i], n.faults[i+1:]...)
				n.Changes++
				return
			}
		}
	}
}

// Between applies change to the link from -> to, and to -> from too when
// both is set, as an imposed fault.
func (n *Network) Between(from, to string, both bool, change func(*Link)) (lift func()) {
	return n.Impose(func(a, b string, l *Link) {
		if (a == from && b == to) || (both && a == to && b == from) {
			change(l)
		}
	})
}

// SetLink replaces the link from -> to.
func (n *Network) SetLink(from, to string, l Link) {
	n.links[pair{from, to}] = l
	n.Changes++
}

// Heal lifts every fault and resets every link to Base.
func (n *Network) Heal() {
	clear(n.links)
	n.faults = nil
	n.Changes++
	n.w.Logf("net: heal all links")
}

// PairClean reports whether both directions between a and b are clean.
func (n *Network) PairClean(a, b string) bool {
	return n.Link(a, b).Clean() && n.Link(b, a).Clean()
}

// MaxDelay is the worst one-way delay a message can take from a to b.
func (n *Network) MaxDelay(a, b string) time.Duration {
	l := n.Link(a, b)
	return l.Delay + l.Jitter
}

// Partition cuts every link between the two groups, both ways, until lifted.
func (n *Network) Partition(left, right []string) (lift func()) {
	side := map[string]int{}
	for _, a := range left {
		side[a] = 1
	}
	for _, b := range right {
		side[b] = 2
	}
	n.w.Logf("net: partition %v | %v", left, right)
	return n.Impose(func(a, b string, l *Link) {
		if sa, sb := side[a], side[b]; sa != 0 && sb != 0 && sa != sb {
			l.Cut = true
		}
	})
}

// Send carries data from -> to. The sender must be running; the message is
// lost on a cut or by chance, may arrive corrupted, and is delivered after
// the link's delay unless the receiver has crashed by then (a frozen
// receiver gets it when thawed).
func (n *Network) Send(from, to string, data []byte, meta any) {
	n.Sent++
	src, dst := n.w.nodes[from], n.w.nodes[to]
	if src == nil || dst == nil {
		panic(fmt.Sprintf("sim: send %s -> %s: unknown node", from, to))
	}
	l := n.Link(from, to)
	r := n.w.Rand
	if src.state != Up || l.Cut || (l.Loss > 0 && r.Float64() < l.Loss) {
		n.Lost++
		return
	}
	if l.Corrupt > 0 && r.Float64() < l.Corrupt && len(data) > 0 {
		data = append([]byte(nil), data...)
		bit := r.IntN(8 * len(data))
		data[bit/8] ^= 1 << (bit % 8)
	}
	d := l.Delay
	if l.Jitter > 0 {
		d += time.Duration(r.Int64N(int64(l.Jitter)))
	}
	h := n.handlers[to]
	if h == nil {
		return
	}
	e := n.w.newEvent()
	e.at, e.node, e.incarnation = n.w.now.Add(d), dst, dst.incarnation
	e.handler, e.from, e.data, e.meta = h, from, data, meta
	n.w.push(e)
}
