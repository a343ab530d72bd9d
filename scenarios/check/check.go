// Package check judges a recorded run. Every checker is a pure function of the run's records
// (client history, observed events, final state) and an expectation, and returns a Verdict that
// carries its evidence. Nothing here touches the network or the clock.
package check

import (
	"fmt"
	"sort"
	"time"

	"github.com/redisha/redisha/scenarios/history"
	"github.com/redisha/redisha/scenarios/result"
)

// Status is a checker's verdict; the type lives in the result model so results need no checker.
type Status = result.Status

// Statuses, as in package result.
const (
	Pass         = result.Pass
	Fail         = result.Fail
	Unknown      = result.Unknown
	NotConverged = result.NotConverged
)

// Check names, as used in results and known-verdict files.
const (
	CheckFailover       = "failover"
	CheckUnavailability = "write-unavailability"
	CheckLostWrites     = "lost-writes"
	CheckSplitBrain     = "split-brain"
	CheckLinearizable   = "linearizable"
	CheckConvergence    = "convergence"
)

// maxEvidence bounds how many evidence lines a verdict carries; the counts stay exact.
const maxEvidence = 20

// Verdict is one checker's judgement with the numbers and the records behind it.
type Verdict = result.Verdict

func evidence(v *Verdict, format string, args ...any) {
	if len(v.Evidence) < maxEvidence {
		v.Evidence = append(v.Evidence, fmt.Sprintf(format, args...))
	} else if len(v.Evidence) == maxEvidence {
		v.Evidence = append(v.Evidence, "... (more omitted)")
	}
}

// Input is everything a checker may look at.
type Input struct {
	Ops    []history.Op
	Events []history.Event // sorted by time
	Final  history.Final
	// InitialMaster is the quorum's master (ip:port) when the workload started. When empty, the
	// old address of the first +switch-master event is used.
	InitialMaster string
	// FaultStart is when the first fault began (zero: no fault); failover deadlines count from it.
	FaultStart time.Time
	// End is when the workload stopped; windows still open then end here.
	End time.Time
}

// Epoch is a span during which the quorum's master was one address.
type Epoch = result.Epoch

// MasterTimeline derives the quorum's master over time from +promoted-slave and +switch-master
// events. The leader announces +promoted-slave once the replica it promoted reports role:master;
// from then on the sentinels answer the new address to get-master-addr-by-name (clients on the
// sentinel path go there) although +switch-master comes a little later. Every sentinel announces
// the same switch, so repeats of the current master are folded into one epoch.
//
// A confirmed promotion dates from the leader's choice, not from its noticing: the epoch of a
// replica the leader then announced as promoted begins at that leader's
// +failover-state-send-slaveof-noone for it. Before the order the replica refuses writes, so no
// write it acknowledged can be dated too early; a promotion the leader never confirms (the
// failover aborted) starts no epoch, and writes the replica acknowledged stay split-brain
// writes. A proxy that routes on the order (redisha-proxy's promotion fast path) is judged by
// the same rule.
//
// sentinel.c moves one failover step per timer tick: it announces
// +failover-state-send-slaveof-noone when it chooses the replica, and sends SLAVEOF NO ONE at
// its next tick (50-100 ms later), announcing +failover-state-wait-promotion. Until then the
// old master is the only node that can accept writes, so writes it acknowledged before the
// leader's +failover-state-wait-promotion are lost writes, not split-brain writes: the epoch
// records that time as PreviousUntil.
func MasterTimeline(in Input) []Epoch {
	initial := in.InitialMaster
	if initial == "" {
		for _, e := range in.Events {
			if e.Kind == history.KindInitialMaster && e.Attrs["addr"] != "" {
				initial = e.Attrs["addr"]
				break
			}
		}
	}
	var switches []history.Event
	for _, e := range in.Events {
		if e.Source == history.SourceSentinel && (e.Kind == history.KindSwitchMaster || e.Kind == history.KindPromoted) {
			switches = append(switches, e)
		}
	}
	sort.SliceStable(switches, func(i, j int) bool { return switches[i].Time.Before(switches[j].Time) })
	if initial == "" && len(switches) > 0 {
		initial, _, _ = switchAddrs(switches[0])
	}
	tl := []Epoch{{Master: initial}}
	for _, e := range switches {
		_, to, ok := switchAddrs(e)
		if !ok || to == tl[len(tl)-1].Master {
			continue
		}
		ep := Epoch{From: e.Time, Master: to}
		if e.Kind == history.KindPromoted {
			since := tl[len(tl)-1].From
			if t, ok := leaderStep(in.Events, history.KindSendSlaveofNoOne, e, to, since); ok {
				ep.From = t
			}
			if t, ok := leaderStep(in.Events, history.KindWaitPromotion, e, to, since); ok && t.After(ep.From) {
				ep.PreviousUntil = t
			}
		}
		tl = append(tl, ep)
	}
	return tl
}

// leaderStep finds when the sentinel that announced promoted (a +promoted-slave of to) took a
// failover step of kind for it: its last such event naming to, after since and not after the
// announcement.
func leaderStep(events []history.Event, kind string, promoted history.Event, to string, since time.Time) (time.Time, bool) {
	var at time.Time
	for _, e := range events {
		if e.Source != history.SourceSentinel || e.Kind != kind || e.Node != promoted.Node ||
			e.Time.After(promoted.Time) || !e.Time.After(since) {
			continue
		}
		if _, addr, ok := history.PromotedAddrs(e.Detail); ok && addr == to && e.Time.After(at) {
			at = e.Time
		}
	}
	return at, !at.IsZero()
}

// switchAddrs reads the old and new master of a +switch-master or +promoted-slave event.
func switchAddrs(e history.Event) (from, to string, ok bool) {
	if e.Kind == history.KindPromoted {
		return history.PromotedAddrs(e.Detail)
	}
	return history.SwitchMasterAddrs(e.Detail)
}

// mastersDuring returns every address that was the quorum's master at some instant of [from, to].
// A master's epoch lasts until the next one's From, or its PreviousUntil when that is later.
func mastersDuring(tl []Epoch, from, to time.Time) map[string]bool {
	out := map[string]bool{}
	for i, ep := range tl {
		end := time.Time{}
		if i+1 < len(tl) {
			end = tl[i+1].From
			if tl[i+1].PreviousUntil.After(end) {
				end = tl[i+1].PreviousUntil
			}
		}
		if !ep.From.After(to) && (end.IsZero() || end.After(from)) {
			out[ep.Master] = true
		}
	}
	return out
}

func fmtDur(d time.Duration) string { return d.Round(time.Millisecond).String() }

func opRef(o history.Op) string {
	srv := o.Node
	if srv == "" {
		srv = o.Server
	}
	return fmt.Sprintf("op %d worker %d %s %s=%q on %s [%s..%s]", o.ID, o.Worker, o.Kind, o.Key, o.Value, srv,
		o.Invoke.Format("15:04:05.000"), o.Complete.Format("15:04:05.000"))
}
