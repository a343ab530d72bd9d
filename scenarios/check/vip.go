package check

import (
	"fmt"
	"strings"
	"time"

	"github.com/redisha/redisha/scenarios/history"
)

// Check names of the VIP checkers, as used in results and known-verdict files.
const (
	CheckVIPMoves       = "vip-moves"
	CheckVIPDualHolders = "vip-dual-holders"
)

// VIPMoveExpectation says how many times the VIP may move. Min == Max is an exact count.
type VIPMoveExpectation struct {
	Min, Max int
}

// VIPSpan is one observation of the VIP's holders, valid until the next one (or the end).
type VIPSpan struct {
	From    time.Time
	Holders []string // sorted node names; empty: no node held the VIP
	// Move is set when a node that did not hold the VIP in the last span with a holder holds it
	// now: the VIP moved (or a second node took it).
	Move bool
}

// VIPTimeline reads the observer's vip-holder events up to end (the end of the workload) into
// spans, and counts the moves: a node that did not hold the VIP in the last span with any
// holder takes it. The first span with a holder is where the VIP starts, not a move; a span
// with no holder does not end the count, so holder A, then nobody, then B is one move, A then
// nobody then A is none, and A then A and B then A is one (B took it while A kept it).
// The observer polls the holders (every 200 ms by default), so a takeover shorter than a poll
// can go unseen: "never on two nodes" means never seen on two nodes.
func VIPTimeline(events []history.Event, end time.Time) (spans []VIPSpan, moves int) {
	var last map[string]bool
	for _, e := range events {
		if e.Source != history.SourceVIP || e.Kind != history.KindVIPHolder {
			continue
		}
		if !end.IsZero() && e.Time.After(end) {
			break
		}
		var hs []string
		if h := e.Attrs["holders"]; h != "" {
			hs = strings.Split(h, ",")
		}
		sp := VIPSpan{From: e.Time, Holders: hs}
		if len(hs) > 0 {
			if last != nil {
				for _, h := range hs {
					if !last[h] {
						sp.Move = true
					}
				}
			}
			last = map[string]bool{}
			for _, h := range hs {
				last[h] = true
			}
		}
		if sp.Move {
			moves++
		}
		spans = append(spans, sp)
	}
	return spans, moves
}

// vipEvidence lists the holder changes, marking moves and two holders.
func vipEvidence(v *Verdict, spans []VIPSpan) {
	for i, sp := range spans {
		what := "held by " + strings.Join(sp.Holders, " and ")
		if len(sp.Holders) == 0 {
			what = "on no node"
		}
		mark := ""
		switch {
		case len(sp.Holders) > 1:
			mark = " (two holders)"
		case sp.Move:
			mark = " (move)"
		}
		if i == 0 {
			evidence(v, "VIP %s at %s (first observation)", what, sp.From.Format("15:04:05.000"))
			continue
		}
		evidence(v, "VIP %s from %s%s", what, sp.From.Format("15:04:05.000"), mark)
	}
}

// notObserved marks a VIP verdict that could not be decided: the observer never read the VIP's
// holders (a stack without a VIP, or holders it could not read).
func notObserved(v *Verdict) Verdict {
	v.Status = Unknown
	v.Observed = "not measured: the VIP's holders were never observed (a stack without a VIP?)"
	return *v
}

// VIPMoves counts the VIP's moves during the workload (see VIPTimeline) against exp.
func VIPMoves(in Input, exp VIPMoveExpectation) Verdict {
	spans, moves := VIPTimeline(in.Events, in.End)
	v := Verdict{Check: CheckVIPMoves, Metrics: map[string]float64{"moves": float64(moves)}}
	switch {
	case exp.Max == 0:
		v.Expected = "no VIP move"
	case exp.Min == exp.Max:
		v.Expected = fmt.Sprintf("exactly %d VIP move(s)", exp.Max)
	case exp.Min == 0:
		v.Expected = fmt.Sprintf("at most %d VIP move(s)", exp.Max)
	default:
		v.Expected = fmt.Sprintf("%d to %d VIP moves", exp.Min, exp.Max)
	}
	if len(spans) == 0 {
		return notObserved(&v)
	}
	vipEvidence(&v, spans)
	v.Observed = fmt.Sprintf("%d VIP move(s)", moves)
	if moves > 0 {
		var to []string
		for _, sp := range spans {
			if sp.Move {
				to = append(to, strings.Join(sp.Holders, "+")+" at "+sp.From.Format("15:04:05.000"))
			}
		}
		v.Observed += ": to " + strings.Join(to, ", ")
	}
	v.Status = Pass
	if moves < exp.Min || moves > exp.Max {
		v.Status = Fail
	}
	return v
}

// VIPDualHolders sums the time during the workload in which two or more nodes held the VIP (a
// VRRP split brain) and compares it with bound; a bound of 0 allows none at all.
func VIPDualHolders(in Input, bound time.Duration) Verdict {
	spans, _ := VIPTimeline(in.Events, in.End)
	_, dual := VIPStats(in.Events, in.End)
	v := Verdict{Check: CheckVIPDualHolders, Metrics: map[string]float64{"dual_seconds": dual.Seconds()}}
	v.Expected = "never on two nodes"
	if bound > 0 {
		v.Expected = "on two nodes for at most " + bound.String()
	}
	if len(spans) == 0 {
		return notObserved(&v)
	}
	vipEvidence(&v, spans)
	v.Observed = "never on two nodes"
	if dual > 0 {
		for _, sp := range spans {
			if len(sp.Holders) > 1 {
				v.Observed = fmt.Sprintf("on two nodes for %s in all (first %s from %s)", fmtDur(dual),
					strings.Join(sp.Holders, " and "), sp.From.Format("15:04:05.000"))
				break
			}
		}
	}
	v.Status = Pass
	if dual > bound {
		v.Status = Fail
	}
	return v
}
