// Package sim is redisha's deterministic simulator: a virtual clock, an event
// queue, a seeded random source, and a virtual network between named nodes
// with per-link delay, jitter, loss, corruption and (one-way) partitions, plus
// node crash, restart, freeze and thaw. Models in the sub-packages (vipsim,
// proxysim) put the production pure cores on these nodes and check invariants.
//
// Nothing here uses goroutines, sockets or the wall clock: one seed fixes
// every choice, so a seed replays the same run event for event.
package sim

import (
	"container/heap"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"
)

// Epoch is virtual time zero. A fixed date keeps traces readable and equal
// across runs.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Stream numbers for rand.NewPCG: one seed, independent streams, so that
// changing how often the network draws numbers does not change the fault
// schedule drawn from the same seed.
const (
	StreamSchedule = 1
	StreamNetwork  = 2
	StreamModel    = 3
)

// NewRand returns the PCG source for seed and stream.
func NewRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// World is one simulated run: clock, queue, nodes, network and trace.
type World struct {
	Seed  uint64
	Rand  *rand.Rand // network and model draws (stream StreamNetwork)
	Net   *Network
	now   time.Time
	queue eventQueue
	seq   uint64
	nodes map[string]*Node
	order []*Node
	free  []*event
	trace Trace
	steps int
	// MaxSteps bounds a run (a livelocked model fails instead of hanging).
	MaxSteps int
}

// NewWorld returns a world at Epoch whose random choices all derive from seed.
func NewWorld(seed uint64, keepTrace bool) *World {
	w := &World{Seed: seed, Rand: NewRand(seed, StreamNetwork), now: Epoch, nodes: map[string]*Node{},
		MaxSteps: 5_000_000}
	w.trace.keep = keepTrace
	w.trace.h = fnv.New64a()
	w.Net = newNetwork(w)
	return w
}

// Now is the virtual time.
func (w *World) Now() time.Time { return w.now }

// Elapsed is the virtual time since Epoch.
func (w *World) Elapsed() time.Duration { return w.now.Sub(Epoch) }

// Steps is the number of events run so far.
func (w *World) Steps() int { return w.steps }

// Trace returns the run's trace.
func (w *World) Trace() *Trace { return &w.trace }

// Logf appends one line to the trace, stamped with the virtual time.
func (w *World) Logf(format string, args ...any) {
	w.trace.add(w.Elapsed(), fmt.Sprintf(format, args...))
}

// NodeState says whether a node runs.
type NodeState int

// Node states.
const (
	Up NodeState = iota
	Down
	Frozen
)

func (s NodeState) String() string { return [...]string{"up", "down", "frozen"}[s] }

// Node is a named process. Events owned by a node are dropped when it
// crashes and postponed while it is frozen (SIGSTOP: the kernel keeps
// queueing its packets and its timers expire, and it sees all of it at once
// on SIGCONT).
type Node struct {
	Name        string
	state       NodeState
	incarnation int
	pending     []*event
}

// State returns the node's state.
func (n *Node) State() NodeState { return n.state }

// Incarnation counts the node's crashes: a restarted process is a new one.
func (n *Node) Incarnation() int { return n.incarnation }

// AddNode creates a running node.
func (w *World) AddNode(name string) *Node {
	if _, dup := w.nodes[name]; dup {
		panic("sim: duplicate node " + name)
	}
	n := &Node{Name: name}
	w.nodes[name] = n
	w.order = append(w.order, n)
	return n
}

// Node returns the node called name (nil if none).
func (w *World) Node(name string) *Node { return w.nodes[name] }

// Nodes returns the nodes in creation order.
func (w *World) Nodes() []*Node { return w.order }

// Crash stops n at once: its pending and queued events are lost.
func (w *World) Crash(n *Node) {
	n.state = Down
	n.incarnation++
	n.pending = nil
	w.Logf("%s: crash", n.Name)
}

// Restart brings a crashed node back; the model re-initialises its process.
func (w *World) Restart(n *Node) {
	if n.state != Down {
		return
	}
	n.state = Up
	w.Logf("%s: restart", n.Name)
}

// Freeze stops n without losing anything addressed to it.
func (w *World) Freeze(n *Node) {
	if n.state != Up {
		return
	}
	n.state = Frozen
	w.Logf("%s: freeze", n.Name)
}

// Thaw resumes a frozen node: everything that reached it meanwhile runs now,
// in the order it arrived.
func (w *World) Thaw(n *Node) {
	if n.state != Frozen {
		return
	}
	n.state = Up
	w.Logf("%s: thaw (%d postponed events)", n.Name, len(n.pending))
	p := n.pending
	n.pending = nil
	for _, e := range p {
		e.at = w.now
		e.incarnation = n.incarnation
		w.push(e)
	}
}

// event is one queued happening: a function, a timer firing or a message
// delivery (the last two without a closure, as they are most of the events).
type event struct {
	at          time.Time
	ns          int64 // at as nanoseconds since Epoch, for cheap ordering
	seq         uint64
	node        *Node
	incarnation int
	fn          func()
	timer       *Timer
	gen         uint64
	handler     Handler
	from        string
	data        []byte
	meta        any
}

func (e *event) run() {
	switch {
	case e.timer != nil:
		if t := e.timer; t.gen == e.gen {
			t.at = time.Time{}
			t.fn()
		}
	case e.handler != nil:
		e.handler(e.from, e.data, e.meta)
	default:
		e.fn()
	}
}

func (w *World) newEvent() *event {
	if n := len(w.free); n > 0 {
		e := w.free[n-1]
		w.free = w.free[:n-1]
		return e
	}
	return &event{}
}

func (w *World) release(e *event) {
	*e = event{}
	w.free = append(w.free, e)
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].ns != q[j].ns {
		return q[i].ns < q[j].ns
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// At runs fn at virtual time at (now if at is in the past). Events at the
// same instant run in the order they were scheduled.
func (w *World) At(at time.Time, fn func()) {
	e := w.newEvent()
	e.at, e.fn = at, fn
	w.push(e)
}

// After runs fn d from now.
func (w *World) After(d time.Duration, fn func()) { w.At(w.now.Add(d), fn) }

// NodeAt runs fn at at on behalf of n: dropped if n crashes first, postponed
// while n is frozen.
func (w *World) NodeAt(n *Node, at time.Time, fn func()) {
	e := w.newEvent()
	e.at, e.node, e.incarnation, e.fn = at, n, n.incarnation, fn
	w.push(e)
}

func (w *World) push(e *event) {
	if e.at.Before(w.now) {
		e.at = w.now
	}
	e.ns = int64(e.at.Sub(Epoch))
	w.seq++
	e.seq = w.seq
	heap.Push(&w.queue, e)
}

// RunUntil runs events up to and including virtual time end, then sets the
// clock to end.
func (w *World) RunUntil(end time.Time) error {
	for len(w.queue) > 0 && !w.queue[0].at.After(end) {
		e := heap.Pop(&w.queue).(*event)
		w.now = e.at
		w.steps++
		if w.steps > w.MaxSteps {
			return fmt.Errorf("sim: more than %d events by %v (livelock?)", w.MaxSteps, w.Elapsed())
		}
		if n := e.node; n != nil {
			switch {
			case n.incarnation != e.incarnation || n.state == Down:
				w.release(e)
				continue
			case n.state == Frozen:
				n.pending = append(n.pending, e)
				continue
			}
		}
		e.run()
		w.release(e)
	}
	if end.After(w.now) {
		w.now = end
	}
	return nil
}

// Timer is a re-armable one-shot timer owned by a node, like time.Timer
// with Reset semantics: arming replaces the earlier arming.
type Timer struct {
	w    *World
	node *Node
	gen  uint64
	fn   func()
	at   time.Time
}

// NewTimer returns a stopped timer that runs fn on node n when it fires.
func (w *World) NewTimer(n *Node, fn func()) *Timer { return &Timer{w: w, node: n, fn: fn} }

// Reset arms the timer for at.
func (t *Timer) Reset(at time.Time) {
	t.gen++
	t.at = at
	e := t.w.newEvent()
	e.at, e.node, e.incarnation, e.timer, e.gen = at, t.node, t.node.incarnation, t, t.gen
	t.w.push(e)
}

// Stop disarms the timer.
func (t *Timer) Stop() { t.gen++; t.at = time.Time{} }

// Trace is the ordered log of a run. Every line enters a running FNV-64a
// hash; lines are kept only when asked, so exploring stays cheap.
type Trace struct {
	keep  bool
	lines []string
	h     interface {
		Write([]byte) (int, error)
		Sum64() uint64
	}
	n int
}

func (t *Trace) add(at time.Duration, line string) {
	s := fmt.Sprintf("%10.3fs %s", at.Seconds(), line)
	t.h.Write([]byte(s))
	t.h.Write([]byte{'\n'})
	t.n++
	if t.keep {
		t.lines = append(t.lines, s)
	}
}

// Hash is the FNV-64a hash of every line so far.
func (t *Trace) Hash() uint64 { return t.h.Sum64() }

// Len is the number of lines so far.
func (t *Trace) Len() int { return t.n }

// Lines returns the kept lines (none unless the world keeps its trace).
func (t *Trace) Lines() []string { return t.lines }

// String joins the kept lines.
func (t *Trace) String() string { return strings.Join(t.lines, "\n") }

// Windows draws up to maxFaults fault windows inside a fault phase: each
// starts anywhere in it and lasts 500 ms plus up to maxExtra (whole
// milliseconds), cut at the phase's end. add gets each window in draw order
// and may draw more from r; the order of draws is part of what a seed means.
func Windows(r *rand.Rand, phase time.Duration, maxFaults int, maxExtra time.Duration, add func(start, end time.Duration)) {
	k := r.IntN(maxFaults + 1)
	for range k {
		start := time.Duration(r.Int64N(int64(phase)))
		dur := time.Duration(500+r.IntN(int(maxExtra/time.Millisecond))) * time.Millisecond
		add(start, min(start+dur, phase))
	}
}
