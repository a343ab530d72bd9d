// Package core is the restart guard's decision: given what this node has
// persisted and what the sentinels and the other redis nodes say, how should
// redis-server start here (as the master, as a replica of whom, or as its own
// config says), and must a failover be asked for first so that booting does
// not wipe a replica that is ahead of this node's data.
//
// It is pure: observations come in with the time they were made, actions go
// out, and Next says when the core wants a Tick. The driver gathers the
// observations; docs/guard.md has the decision table and its argument.
package core

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Config is what the core needs to know about the stack.
type Config struct {
	// Self is this node's host:port as the sentinels and replicas name it.
	Self string
	// MasterName is the name the sentinels monitor.
	MasterName string
	// Sentinels is how many sentinels are configured; a majority of them
	// (Sentinels/2+1) must answer before the core trusts their view.
	Sentinels int
	// Bound is the longest the guard may delay a start. When it passes, the
	// node starts as its own config says and the decision says why.
	Bound time.Duration
	// Retry is the pause between two rounds of questions.
	Retry time.Duration
	// FailoverGrace is how long, after a sentinel accepted SENTINEL
	// FAILOVER, the core waits for a new configuration before asking again
	// when no sentinel reports the failover in progress.
	FailoverGrace time.Duration
}

// Persisted is what the node's own data set holds, read before it starts.
type Persisted struct {
	// Source says where the data comes from: "rdb", "aof" or "none" (no
	// data file at all: the node starts empty).
	Source string
	// HasPosition is true when the data carries its replication position
	// (an RDB written while the node was in a replication chain).
	HasPosition bool
	ReplID      string
	Offset      int64
}

func (p Persisted) String() string {
	switch {
	case p.Source == "none":
		return "no data file (starts empty)"
	case p.HasPosition:
		return fmt.Sprintf("%s at %s:%d", p.Source, short(p.ReplID), p.Offset)
	case p.Source == "aof":
		return "aof (no replication position; trusted as current)"
	}
	return p.Source + " without a replication position"
}

// SentinelObs is one sentinel's answer about MasterName.
type SentinelObs struct {
	Addr string
	// Err is set when the sentinel could not be asked (no answer, refused).
	Err error
	// Refused means the connection was refused: nothing listens there.
	Refused bool
	// Known is false when the sentinel answered that it monitors no master
	// of that name.
	Known bool
	// Master is get-master-addr-by-name's host:port.
	Master string
	// Epoch is SENTINEL MASTER's config-epoch.
	Epoch int64
	// FailoverInProgress is SENTINEL MASTER's failover_in_progress flag.
	FailoverInProgress bool
}

// NodeObs is one redis node's INFO replication.
type NodeObs struct {
	Addr    string
	Err     error
	Refused bool
	Role    string // "master" or "slave"
	ReplID  string // master_replid
	ReplID2 string // master_replid2 (all zeros when none)
	Offset  int64  // master_repl_offset
	// SecondOffset is second_repl_offset: the first offset that is not
	// ReplID2's history (-1 when none).
	SecondOffset int64
}

// Round is one set of answers, gathered together.
type Round struct {
	Sentinels []SentinelObs
	Nodes     []NodeObs
}

// Role is how redis-server should start.
type Role int

// The three ways to start.
const (
	// KeepConfig: start as the node's own config says (no override).
	KeepConfig Role = iota
	// Master: start as a master (replicaof no one).
	Master
	// Replica: start as a replica of Decision.Master.
	Replica
)

func (r Role) String() string {
	switch r {
	case Master:
		return "master"
	case Replica:
		return "replica"
	}
	return "keep-config"
}

// Decision is the guard's final answer.
type Decision struct {
	Role   Role
	Master string // host:port, for Replica
	Epoch  int64  // the configuration epoch the decision follows (-1: none)
	Reason string
	// FailoverAsked is true when the guard asked the sentinels to fail over.
	FailoverAsked bool
	// BoundReached is true when the decision was forced by the bound.
	BoundReached bool
	Elapsed      time.Duration
}

// Action is something the driver must do.
type Action interface{ isAction() }

// Probe asks the driver to gather one Round and pass it to Observe.
type Probe struct{}

// Failover asks the driver to send SENTINEL FAILOVER to Sentinel and pass
// the outcome to FailoverResult.
type Failover struct {
	Sentinel string
	Reason   string
}

// Decide is the final decision; the driver stops.
type Decide struct{ Decision Decision }

func (Probe) isAction()    {}
func (Failover) isAction() {}
func (Decide) isAction()   {}

// Core holds the guard's state between rounds.
type Core struct {
	cfg       Config
	p         Persisted
	start     time.Time
	deadline  time.Time
	nextProbe time.Time
	probing   bool // a Probe is out and not yet observed
	asking    bool // a Failover is out and not yet answered
	decided   *Decision

	failoverAsked bool      // ever asked
	failoverSince time.Time // zero: no accepted request pending
	waiting       string    // why the last round did not decide
}

// New validates cfg and starts the clock of the bound at now.
func New(cfg Config, now time.Time, p Persisted) (*Core, error) {
	var errs []error
	if cfg.Self == "" {
		errs = append(errs, errors.New("self address is empty"))
	}
	if cfg.MasterName == "" {
		errs = append(errs, errors.New("master name is empty"))
	}
	if cfg.Sentinels < 1 {
		errs = append(errs, errors.New("at least one sentinel is needed"))
	}
	if cfg.Bound <= 0 {
		errs = append(errs, errors.New("bound must be positive"))
	}
	if cfg.Retry <= 0 {
		errs = append(errs, errors.New("retry must be positive"))
	}
	if cfg.FailoverGrace <= 0 {
		errs = append(errs, errors.New("failover grace must be positive"))
	}
	switch p.Source {
	case "rdb", "aof", "none":
	default:
		errs = append(errs, fmt.Errorf("persisted source %q is not rdb, aof or none", p.Source))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Core{cfg: cfg, p: p, start: now, deadline: now.Add(cfg.Bound), nextProbe: now}, nil
}

// Deadline is when the bound runs out; I/O started by the driver should not
// outlive it.
func (c *Core) Deadline() time.Time { return c.deadline }

// Decided returns the decision once there is one.
func (c *Core) Decided() (Decision, bool) {
	if c.decided == nil {
		return Decision{}, false
	}
	return *c.decided, true
}

// Next is when the core needs a Tick (zero: never, it has decided).
func (c *Core) Next() time.Time {
	if c.decided != nil {
		return time.Time{}
	}
	if c.probing || c.asking || c.nextProbe.After(c.deadline) {
		return c.deadline
	}
	return c.nextProbe
}

// Tick runs the time rules: the bound, and the next round.
func (c *Core) Tick(now time.Time) []Action {
	if c.decided != nil {
		return nil
	}
	if !now.Before(c.deadline) {
		why := c.waiting
		if why == "" {
			why = "no answer yet"
		}
		return c.decide(now, Decision{Role: KeepConfig, Epoch: -1, BoundReached: true,
			Reason: fmt.Sprintf("bound of %v reached, starting as configured; last: %s", c.cfg.Bound, why)})
	}
	if c.probing || c.asking || now.Before(c.nextProbe) {
		return nil
	}
	c.probing = true
	return []Action{Probe{}}
}

// FailoverResult is the sentinel's answer to SENTINEL FAILOVER (nil: +OK).
func (c *Core) FailoverResult(now time.Time, sentinel string, err error) []Action {
	c.asking = false
	if c.decided != nil {
		return nil
	}
	if err != nil {
		c.failoverSince = time.Time{}
		c.wait(now, fmt.Sprintf("SENTINEL FAILOVER %s at %s failed: %v", c.cfg.MasterName, sentinel, err))
		return c.Tick(now)
	}
	c.failoverSince = now
	c.wait(now, fmt.Sprintf("SENTINEL FAILOVER accepted by %s; waiting for the new configuration", sentinel))
	return c.Tick(now)
}

// Observe takes one round of answers and decides, asks for a failover, or
// waits for the next round.
func (c *Core) Observe(now time.Time, r Round) []Action {
	c.probing = false
	if c.decided != nil {
		return nil
	}
	if acts := c.evaluate(now, r); acts != nil {
		return acts
	}
	return c.Tick(now)
}

func (c *Core) evaluate(now time.Time, r Round) []Action {
	need := c.cfg.Sentinels/2 + 1
	var answered, known []SentinelObs
	for _, s := range r.Sentinels {
		if s.Err != nil {
			continue
		}
		answered = append(answered, s)
		if s.Known {
			known = append(known, s)
		}
	}
	if len(answered) < need {
		if c.nothingRuns(r) && !c.failoverAsked {
			return c.decide(now, Decision{Role: KeepConfig, Epoch: -1, Reason: fmt.Sprintf(
				"no sentinel and no other redis node is running (every connection refused): first start of the stack, starting as configured; data: %s", c.p)})
		}
		c.wait(now, fmt.Sprintf("%d of %d sentinels answered, %d needed%s", len(answered), c.cfg.Sentinels, need, failures(r)))
		return nil
	}
	if len(known) == 0 {
		return c.decide(now, Decision{Role: KeepConfig, Epoch: -1, Reason: fmt.Sprintf(
			"%d of %d sentinels answered and none monitors %q yet: no configuration to follow, starting as configured; data: %s",
			len(answered), c.cfg.Sentinels, c.cfg.MasterName, c.p)})
	}
	best := known[0]
	for _, s := range known[1:] {
		if s.Epoch > best.Epoch {
			best = s
		}
	}
	masters := map[string][]string{}
	for _, s := range known {
		if s.Epoch == best.Epoch {
			masters[s.Master] = append(masters[s.Master], s.Addr)
		}
		if s.FailoverInProgress {
			c.wait(now, fmt.Sprintf("sentinel %s reports a failover of %s in progress (epoch %d)", s.Addr, c.cfg.MasterName, s.Epoch))
			return nil
		}
	}
	if len(masters) > 1 {
		c.wait(now, fmt.Sprintf("sentinels disagree at config epoch %d: %s", best.Epoch, describe(masters)))
		return nil
	}
	view := fmt.Sprintf("%d of %d sentinels answered, config epoch %d names %s as master", len(answered), c.cfg.Sentinels, best.Epoch, best.Master)
	if best.Master != c.cfg.Self {
		reason := view + "; this node starts as its replica"
		if c.failoverAsked {
			reason = view + " after the failover the guard asked for; this node starts as its replica"
		}
		return c.decide(now, Decision{Role: Replica, Master: best.Master, Epoch: best.Epoch, Reason: reason + "; data: " + c.p.String()})
	}
	// This node is the master of the latest configuration.
	if !c.failoverSince.IsZero() && now.Sub(c.failoverSince) < c.cfg.FailoverGrace {
		c.wait(now, fmt.Sprintf("failover asked %v ago, %s", now.Sub(c.failoverSince).Round(time.Millisecond), view))
		return nil
	}
	// A node that already plays master while the sentinels that answered
	// still name this node: a failover whose leader did not answer (or whose
	// new configuration has not reached the others yet) may have promoted
	// it. Starting as a master now would make two; wait for the sentinels.
	for _, n := range r.Nodes {
		if n.Err == nil && n.Addr != c.cfg.Self && n.Role == "master" {
			c.wait(now, fmt.Sprintf("%s, but %s reports role master: a newer configuration may not have reached these sentinels yet", view, n.Addr))
			return nil
		}
	}
	ahead, notes := c.ahead(r.Nodes)
	if len(ahead) == 0 {
		reason := view + " (this node); no reachable replica is ahead of this node's data (" + c.p.String() + ")"
		if len(notes) > 0 {
			reason += "; " + strings.Join(notes, "; ")
		}
		return c.decide(now, Decision{Role: Master, Epoch: best.Epoch, Reason: reason})
	}
	// Ask the sentinel that holds the latest configuration: it will pick the
	// best replica by its own rules (priority, offset, run ID).
	c.failoverAsked, c.asking = true, true
	why := fmt.Sprintf("%s (this node), but %s ahead of this node's data (%s)", view, strings.Join(ahead, ", "), c.p)
	c.waiting = "asked for a failover: " + why
	return []Action{Failover{Sentinel: best.Addr, Reason: why}}
}

// ahead lists the nodes whose replication history contains all of this
// node's persisted data and more, and notes on those it could not compare.
func (c *Core) ahead(nodes []NodeObs) (ahead, notes []string) {
	for _, n := range nodes {
		if n.Addr == c.cfg.Self {
			continue
		}
		if n.Err != nil {
			notes = append(notes, fmt.Sprintf("%s unreachable: %v", n.Addr, n.Err))
			continue
		}
		if n.Offset <= 0 {
			continue // holds no replicated data
		}
		at := fmt.Sprintf("%s (%s %s:%d)", n.Addr, n.Role, short(n.ReplID), n.Offset)
		switch {
		case !c.p.HasPosition && c.p.Source == "aof":
			// Redis writes the AOF before it answers clients or feeds
			// replicas (beforeSleep), so after a process crash the AOF holds
			// at least what any replica got; it carries no position to
			// compare, so it is trusted.
			notes = append(notes, at+" not compared: AOF has no replication position")
		case !c.p.HasPosition:
			// No data file, or an RDB saved outside any replication chain:
			// everything the node has replicated came after it.
			ahead = append(ahead, at)
		case n.ReplID == c.p.ReplID:
			if n.Offset > c.p.Offset {
				ahead = append(ahead, at)
			}
		case n.ReplID2 == c.p.ReplID && n.SecondOffset > 0:
			// The node changed history at SecondOffset; it holds ours up to
			// SecondOffset-1.
			if n.SecondOffset-1 >= c.p.Offset && n.Offset > c.p.Offset {
				ahead = append(ahead, at)
			} else if n.SecondOffset-1 < c.p.Offset {
				notes = append(notes, at+" diverged from this node's history at "+fmt.Sprint(n.SecondOffset))
			}
		default:
			notes = append(notes, at+" not compared: another replication history")
		}
	}
	return ahead, notes
}

// nothingRuns: every sentinel and every node refused the connection.
func (c *Core) nothingRuns(r Round) bool {
	if len(r.Sentinels) == 0 {
		return false
	}
	for _, s := range r.Sentinels {
		if !s.Refused {
			return false
		}
	}
	for _, n := range r.Nodes {
		if n.Addr != c.cfg.Self && !n.Refused {
			return false
		}
	}
	return true
}

func (c *Core) wait(now time.Time, why string) {
	c.waiting = why
	c.nextProbe = now.Add(c.cfg.Retry)
}

func (c *Core) decide(now time.Time, d Decision) []Action {
	d.Elapsed = now.Sub(c.start)
	d.FailoverAsked = c.failoverAsked
	c.decided = &d
	return []Action{Decide{Decision: d}}
}

func failures(r Round) string {
	var out []string
	for _, s := range r.Sentinels {
		if s.Err != nil {
			out = append(out, fmt.Sprintf("%s: %v", s.Addr, s.Err))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return " (" + strings.Join(out, "; ") + ")"
}

func describe(m map[string][]string) string {
	var parts []string
	for master, who := range m {
		parts = append(parts, fmt.Sprintf("%s by %s", master, strings.Join(who, ",")))
	}
	sort.Strings(parts)
	return strings.Join(parts, " vs ")
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
