package check

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redisha/redisha/scenarios/history"
)

// FailoverExpectation says how many failovers a scenario allows.
type FailoverExpectation struct {
	// Any means no expectation: the count is measured only.
	Any bool
	// Count is the exact number of failovers expected (0: none).
	Count int
	// Within bounds how long after FaultStart the (last) expected failover may complete; 0: any time.
	Within time.Duration
}

// Failover counts promotions seen in the master timeline. An unexpected one when none is
// expected is a false-positive failover.
func Failover(in Input, exp FailoverExpectation) Verdict {
	tl := MasterTimeline(in)
	n := len(tl) - 1
	v := Verdict{Check: CheckFailover, Metrics: map[string]float64{"failovers": float64(n)}}
	switch {
	case exp.Any:
		v.Expected = "measured only"
	case exp.Count == 0:
		v.Expected = "no failover"
	default:
		v.Expected = fmt.Sprintf("exactly %d failover(s)", exp.Count)
		if exp.Within > 0 {
			v.Expected += " within " + exp.Within.String() + " of the first fault"
		}
	}
	v.Observed = fmt.Sprintf("%d failover(s)", n)
	for _, ep := range tl[1:] {
		line := fmt.Sprintf("+switch-master to %s at %s", ep.Master, ep.From.Format("15:04:05.000"))
		if !in.FaultStart.IsZero() {
			line += fmt.Sprintf(" (%s after the first fault)", fmtDur(ep.From.Sub(in.FaultStart)))
		}
		evidence(&v, "%s", line)
	}
	v.Status = Pass
	switch {
	case exp.Any:
	case n != exp.Count:
		v.Status = Fail
		if exp.Count == 0 {
			v.Observed += ": false-positive failover"
		}
	case n > 0 && exp.Within > 0 && !in.FaultStart.IsZero():
		took := tl[len(tl)-1].From.Sub(in.FaultStart)
		v.Metrics["failover_seconds"] = took.Seconds()
		v.Observed += " after " + fmtDur(took)
		if took > exp.Within {
			v.Status = Fail
		}
	}
	return v
}

// Window is a span in which one worker could not get a write acknowledged.
type Window struct {
	Worker int           `json:"worker"`
	From   time.Time     `json:"from"` // invocation of the first failed write
	To     time.Time     `json:"to"`   // completion of the next acknowledged write, or the end
	Open   bool          `json:"open"` // no acknowledged write followed before the end
	Length time.Duration `json:"length_ns"`
}

// UnavailabilityWindows computes, per worker, each span from a write that was not acknowledged
// (failed or indeterminate) to the first acknowledged write after it.
func UnavailabilityWindows(in Input) []Window {
	byWorker := map[int][]history.Op{}
	for _, o := range in.Ops {
		if o.IsWrite() {
			byWorker[o.Worker] = append(byWorker[o.Worker], o)
		}
	}
	workers := make([]int, 0, len(byWorker))
	for w := range byWorker {
		workers = append(workers, w)
	}
	sort.Ints(workers)
	end := in.End
	var out []Window
	for _, w := range workers {
		ops := byWorker[w]
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].Invoke.Before(ops[j].Invoke) })
		var cur *Window
		for _, o := range ops {
			if o.Complete.After(end) {
				end = o.Complete
			}
			switch {
			case o.Status != history.OK && cur == nil:
				cur = &Window{Worker: w, From: o.Invoke}
			case o.Status == history.OK && cur != nil:
				cur.To = o.Complete
				cur.Length = cur.To.Sub(cur.From)
				out = append(out, *cur)
				cur = nil
			}
		}
		if cur != nil {
			cur.To, cur.Open = end, true
			if in.End.After(cur.To) {
				cur.To = in.End
			}
			cur.Length = cur.To.Sub(cur.From)
			out = append(out, *cur)
		}
	}
	return out
}

// OpenWindowGrace is how long a window still open at the end of the run must have lasted to
// say writes were still failing: a lone write that timed out in the run's last moments (a loaded
// host delays a reply past the client's 200 ms) is no evidence that the stack stopped taking
// writes, and a real outage at the end lasts longer than that.
const OpenWindowGrace = time.Second

// WriteUnavailability compares the worst per-worker unavailability window with bound (0: no
// bound, measured only). A window still open at the end of the run fails a bound once it has
// lasted OpenWindowGrace.
func WriteUnavailability(in Input, bound time.Duration) Verdict {
	ws := UnavailabilityWindows(in)
	v := Verdict{Check: CheckUnavailability, Expected: "measured only", Metrics: map[string]float64{}}
	if bound > 0 {
		v.Expected = "at most " + bound.String() + " per client"
	}
	var worst Window
	perWorker := map[int]time.Duration{}
	open := false
	for _, w := range ws {
		if w.Length > perWorker[w.Worker] {
			perWorker[w.Worker] = w.Length
		}
		if w.Length > worst.Length {
			worst = w
		}
		open = open || (w.Open && w.Length >= OpenWindowGrace)
	}
	v.Metrics["worst_seconds"] = worst.Length.Seconds()
	v.Metrics["windows"] = float64(len(ws))
	v.Observed = "worst " + fmtDur(worst.Length)
	if worst.Length == 0 {
		v.Observed = "no failed writes"
	} else {
		v.Observed += fmt.Sprintf(" (worker %d from %s)", worst.Worker, worst.From.Format("15:04:05.000"))
	}
	if open {
		v.Observed += "; writes still failing at the end"
	}
	workers := make([]int, 0, len(perWorker))
	for w := range perWorker {
		workers = append(workers, w)
	}
	sort.Ints(workers)
	for _, w := range workers {
		v.Metrics[fmt.Sprintf("worker_%d_seconds", w)] = perWorker[w].Seconds()
	}
	for _, w := range ws {
		state := ""
		if w.Open {
			state = " (still open)"
		}
		evidence(&v, "worker %d: no acknowledged write from %s to %s: %s%s", w.Worker,
			w.From.Format("15:04:05.000"), w.To.Format("15:04:05.000"), fmtDur(w.Length), state)
	}
	v.Status = Pass
	if bound > 0 && (worst.Length > bound || open) {
		v.Status = Fail
	}
	return v
}

// LostWrites counts acknowledged writes missing from the converged final state. An acknowledged
// SADD is lost when its element is absent. An acknowledged SET is lost when the key has no value,
// or holds a value whose write completed before the acknowledged one was invoked (so it must have
// been overwritten). max < 0 means measured only.
func LostWrites(in Input, max int) Verdict {
	v := Verdict{Check: CheckLostWrites, Expected: "measured only", Metrics: map[string]float64{}}
	if max >= 0 {
		v.Expected = fmt.Sprintf("at most %d acknowledged writes lost", max)
	}
	if !in.Final.Converged {
		v.Status = NotConverged
		v.Observed = "final state not converged: " + in.Final.Reason
		return v
	}
	lost, acked := LostOps(in)
	for _, l := range lost {
		evidence(&v, "%s: %s", opRef(l.Op), l.Why)
	}
	v.Metrics["acked_writes"] = float64(acked)
	v.Metrics["lost"] = float64(len(lost))
	v.Observed = fmt.Sprintf("%d of %d acknowledged writes lost", len(lost), acked)
	v.Status = Pass
	if max >= 0 && len(lost) > max {
		v.Status = Fail
	}
	return v
}

// Lost is an acknowledged write missing from the final state, with the reason.
type Lost struct {
	Op  history.Op
	Why string
}

// LostOps lists the acknowledged writes missing from a converged final state (see LostWrites)
// and counts the acknowledged writes.
func LostOps(in Input) (lost []Lost, acked int) {
	writer := map[string]history.Op{} // key \x00 value -> the write that wrote it
	for _, o := range in.Ops {
		if o.Kind == history.KindSet {
			writer[o.Key+"\x00"+o.Value] = o
		}
	}
	members := map[string]map[string]bool{}
	for k, els := range in.Final.Sets {
		m := map[string]bool{}
		for _, e := range els {
			m[e] = true
		}
		members[k] = m
	}
	for _, o := range in.Ops {
		if o.Status != history.OK || !o.IsWrite() {
			continue
		}
		acked++
		why := ""
		switch o.Kind {
		case history.KindAdd:
			if !members[o.Key][o.Value] {
				why = "element missing from the final set"
			}
		case history.KindSet:
			fv, ok := in.Final.Registers[o.Key]
			switch {
			case !ok:
				why = "key has no value in the final state"
			case fv == o.Value:
			default:
				if w, known := writer[o.Key+"\x00"+fv]; !known {
					why = fmt.Sprintf("key holds %q, which no client wrote", fv)
				} else if w.Complete.Before(o.Invoke) {
					why = fmt.Sprintf("key holds older value %q (op %d, done before this write began)", fv, w.ID)
				}
			}
		}
		if why != "" {
			lost = append(lost, Lost{o, why})
		}
	}
	return lost, acked
}

// SplitBrain finds acknowledged writes served by a node that was not the quorum's master at any
// instant of the write's interval. It also reports how long two nodes claimed role:master at once.
func SplitBrain(in Input, allowed bool) Verdict {
	v := Verdict{Check: CheckSplitBrain, Expected: "no split-brain writes", Metrics: map[string]float64{}}
	if allowed {
		v.Expected = "measured only"
	}
	tl := MasterTimeline(in)
	tm := TwoMasterWindow(in.Events, in.End)
	v.Metrics["two_master_seconds"] = tm.Seconds()
	if tl[0].Master == "" {
		v.Status = Unknown
		v.Observed = "the quorum's master is unknown (no initial-master event)"
		return v
	}
	sb := SplitBrainOps(in)
	for _, o := range sb {
		evidence(&v, "%s: quorum's master was %s", opRef(o), masterAt(tl, o.Invoke))
	}
	n := len(sb)
	unattributed := 0
	for _, o := range in.Ops {
		if o.Status == history.OK && o.IsWrite() && o.Server == "" {
			unattributed++
		}
	}
	v.Metrics["split_brain_writes"] = float64(n)
	v.Metrics["unattributed_writes"] = float64(unattributed)
	v.Observed = fmt.Sprintf("%d split-brain writes; two masters for %s", n, fmtDur(tm))
	v.Status = Pass
	if n > 0 && !allowed {
		v.Status = Fail
	}
	return v
}

// SplitBrainOps lists the acknowledged writes served by a node that was not the quorum's master
// at any instant of the write's interval.
func SplitBrainOps(in Input) []history.Op {
	tl := MasterTimeline(in)
	if tl[0].Master == "" {
		return nil
	}
	var out []history.Op
	for _, o := range in.Ops {
		if o.Status != history.OK || !o.IsWrite() || o.Server == "" {
			continue
		}
		if !mastersDuring(tl, o.Invoke, o.Complete)[o.Server] {
			out = append(out, o)
		}
	}
	return out
}

func masterAt(tl []Epoch, t time.Time) string {
	m := tl[0].Master
	for _, ep := range tl[1:] {
		if !ep.From.After(t) {
			m = ep.Master
		}
	}
	return m
}

// TwoMasterWindow sums the time up to end (the end of the workload) during which more than one
// node reported role:master, from the observer's role events (sorted by time). A window still
// open at end is closed there.
func TwoMasterWindow(events []history.Event, end time.Time) time.Duration {
	roles := map[string]string{}
	var total time.Duration
	var since time.Time
	count := func() int {
		n := 0
		for _, r := range roles {
			if r == "master" {
				n++
			}
		}
		return n
	}
	for _, e := range events {
		if e.Source != history.SourceRole || e.Kind != history.KindRole {
			continue
		}
		if !end.IsZero() && e.Time.After(end) {
			break // after the workload: no client could be split any more
		}
		before := count()
		roles[e.Node] = e.Attrs["role"]
		after := count()
		if before <= 1 && after > 1 {
			since = e.Time
		} else if before > 1 && after <= 1 {
			total += e.Time.Sub(since)
		}
	}
	if count() > 1 && end.After(since) {
		total += end.Sub(since)
	}
	return total
}

// VIPStats counts changes of the set of VIP holders after the first observation and sums the
// time during which more than one node held the VIP (a VRRP split brain), up to end.
func VIPStats(events []history.Event, end time.Time) (changes int, dual time.Duration) {
	seen := false
	var dualSince time.Time
	for _, e := range events {
		if e.Source != history.SourceVIP || e.Kind != history.KindVIPHolder {
			continue
		}
		if !end.IsZero() && e.Time.After(end) {
			break
		}
		if seen {
			changes++
		}
		seen = true
		many := strings.Contains(e.Attrs["holders"], ",")
		switch {
		case many && dualSince.IsZero():
			dualSince = e.Time
		case !many && !dualSince.IsZero():
			dual += e.Time.Sub(dualSince)
			dualSince = time.Time{}
		}
	}
	if !dualSince.IsZero() && end.After(dualSince) {
		dual += end.Sub(dualSince)
	}
	return changes, dual
}

// UpBackends counts the servers an HAProxy "backends" event reports UP (Detail holds
// "backend/server=STATUS" pairs).
func UpBackends(detail string) []string {
	var up []string
	for _, f := range strings.Fields(detail) {
		name, st, ok := strings.Cut(f, "=")
		if ok && strings.HasPrefix(st, "UP") {
			if i := strings.IndexByte(name, '/'); i >= 0 {
				name = name[i+1:]
			}
			up = append(up, name)
		}
	}
	return up
}

// RoutedTo returns the backends a proxy event says the proxy routes new connections to:
// Attrs["up"] when the observer recorded it, else the UP servers of an HAProxy "backends" Detail
// (events recorded before "up" existed). An unreachable proxy routes nowhere.
func RoutedTo(e history.Event) []string {
	if e.Detail == "unreachable" {
		return nil
	}
	if up, ok := e.Attrs["up"]; ok {
		if up == "" {
			return nil
		}
		return strings.Split(up, ",")
	}
	return UpBackends(e.Detail)
}

// DualRouteWindow sums the time up to end during which the proxies together routed new
// connections to two or more backends (two masters): one HAProxy with two servers UP, or two
// proxies each routing to a different node. Every proxy counts, VIP holder or not: any of them
// may have clients.
func DualRouteWindow(events []history.Event, end time.Time) time.Duration {
	routes := map[string][]string{}
	var total time.Duration
	var since time.Time
	dual := func() bool {
		seen := map[string]bool{}
		for _, up := range routes {
			for _, b := range up {
				seen[b] = true
			}
		}
		return len(seen) > 1
	}
	for _, e := range events {
		if e.Source != history.SourceProxy {
			continue
		}
		if !end.IsZero() && e.Time.After(end) {
			break
		}
		before := dual()
		routes[e.Node] = RoutedTo(e)
		after := dual()
		if !before && after {
			since = e.Time
		} else if before && !after {
			total += e.Time.Sub(since)
		}
	}
	if dual() && end.After(since) {
		total += end.Sub(since)
	}
	return total
}

// Convergence turns the final-state read into a verdict: not-converged is a harness-level
// outcome (the run cannot be judged), never a loss count.
func Convergence(in Input) Verdict {
	v := Verdict{Check: CheckConvergence, Expected: "one master, every replica caught up",
		Metrics: map[string]float64{"waited_seconds": in.Final.Waited.Seconds()}}
	if in.Final.Converged {
		v.Status = Pass
		v.Observed = fmt.Sprintf("converged on %s after %s", in.Final.Master, fmtDur(in.Final.Waited))
		return v
	}
	v.Status = NotConverged
	v.Observed = in.Final.Reason
	return v
}
