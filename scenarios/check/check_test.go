package check

import (
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/history"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

const (
	m1 = "10.0.0.11:6379"
	m2 = "10.0.0.12:6379"
)

// op builds an operation invoked at from ms and completed at to ms.
func op(id int64, worker int, kind, key, value string, from, to int, st history.Status, server string) history.Op {
	return history.Op{ID: id, Worker: worker, Kind: kind, Key: key, Value: value, Invoke: at(from), Complete: at(to), Status: st, Server: server}
}

func get(id int64, worker int, key, value string, from, to int) history.Op {
	o := op(id, worker, history.KindGet, key, value, from, to, history.OK, m1)
	o.Nil = value == ""
	return o
}

func switchTo(ms int, from, to string) history.Event {
	f := strings.Split(from, ":")
	t := strings.Split(to, ":")
	return history.Event{Time: at(ms), Source: history.SourceSentinel, Kind: history.KindSwitchMaster,
		Detail: "mymaster " + f[0] + " " + f[1] + " " + t[0] + " " + t[1]}
}

func converged(regs map[string]string, sets map[string][]string) history.Final {
	return history.Final{Converged: true, Master: m1, Registers: regs, Sets: sets}
}

func TestFailover(t *testing.T) {
	fault := at(1000)
	tests := []struct {
		name   string
		events []history.Event
		exp    FailoverExpectation
		want   Status
		count  float64
	}{
		{"no failover expected, none", nil, FailoverExpectation{}, Pass, 0},
		{"false-positive failover", []history.Event{switchTo(7000, m1, m2)}, FailoverExpectation{}, Fail, 1},
		{"three sentinels announce one failover",
			[]history.Event{switchTo(7000, m1, m2), switchTo(7001, m1, m2), switchTo(7003, m1, m2)},
			FailoverExpectation{Count: 1, Within: 10 * time.Second}, Pass, 1},
		{"failover too late", []history.Event{switchTo(15000, m1, m2)}, FailoverExpectation{Count: 1, Within: 10 * time.Second}, Fail, 1},
		{"expected failover missing", nil, FailoverExpectation{Count: 1}, Fail, 0},
		{"failover and back is two", []history.Event{switchTo(7000, m1, m2), switchTo(20000, m2, m1)}, FailoverExpectation{Count: 1}, Fail, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Failover(Input{Events: tc.events, InitialMaster: m1, FaultStart: fault}, tc.exp)
			if v.Status != tc.want || v.Metrics["failovers"] != tc.count {
				t.Fatalf("got %s with %v failovers (%s), want %s with %v", v.Status, v.Metrics["failovers"], v.Observed, tc.want, tc.count)
			}
		})
	}
}

func TestWriteUnavailability(t *testing.T) {
	ops := []history.Op{
		op(1, 0, history.KindSet, "r1", "a", 0, 10, history.OK, m1),
		op(2, 0, history.KindSet, "r1", "b", 100, 300, history.Fail, ""),
		op(3, 0, history.KindGet, "r1", "", 400, 500, history.Fail, ""), // reads do not close a window
		op(4, 0, history.KindAdd, "s1", "c", 600, 800, history.Indeterminate, m1),
		op(5, 0, history.KindSet, "r1", "d", 5000, 5100, history.OK, m2),
		op(6, 1, history.KindSet, "r2", "e", 0, 10, history.OK, m1),
		op(7, 1, history.KindSet, "r2", "f", 2000, 2200, history.Fail, ""),
		op(8, 1, history.KindSet, "r2", "g", 2300, 2400, history.OK, m2),
	}
	tests := []struct {
		name  string
		ops   []history.Op
		bound time.Duration
		want  Status
		worst time.Duration
	}{
		{"worst window within bound", ops, 6 * time.Second, Pass, 5 * time.Second},
		{"worst window over bound", ops, 2 * time.Second, Fail, 5 * time.Second},
		{"clean history", ops[:1], time.Second, Pass, 0},
		{"window open at the end fails", ops[5:7], time.Hour, Fail, 8 * time.Second},
		{"one write failing in the last moment is not an outage", []history.Op{ops[5],
			op(9, 1, history.KindSet, "r2", "h", 9700, 9900, history.Indeterminate, m1)}, time.Hour, Pass, 300 * time.Millisecond},
		{"open for the grace fails", []history.Op{ops[5],
			op(9, 1, history.KindSet, "r2", "h", 9000, 9200, history.Fail, "")}, time.Hour, Fail, OpenWindowGrace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := WriteUnavailability(Input{Ops: tc.ops, End: at(10000)}, tc.bound)
			if v.Status != tc.want || v.Metrics["worst_seconds"] != tc.worst.Seconds() {
				t.Fatalf("got %s worst %vs (%s), want %s worst %v", v.Status, v.Metrics["worst_seconds"], v.Observed, tc.want, tc.worst)
			}
		})
	}
	ws := UnavailabilityWindows(Input{Ops: ops, End: at(10000)})
	if len(ws) != 2 || ws[0].Worker != 0 || !ws[0].From.Equal(at(100)) || !ws[0].To.Equal(at(5100)) || ws[1].Length != 400*time.Millisecond {
		t.Fatalf("windows: %+v", ws)
	}
}

func TestLostWrites(t *testing.T) {
	base := []history.Op{
		op(1, 0, history.KindSet, "r1", "v1", 0, 10, history.OK, m1),
		op(2, 1, history.KindSet, "r1", "v2", 5, 20, history.OK, m1), // concurrent with v1
		op(3, 0, history.KindAdd, "s1", "e1", 30, 40, history.OK, m1),
		op(4, 0, history.KindAdd, "s1", "e2", 50, 60, history.Indeterminate, m1),
		op(5, 0, history.KindAdd, "s1", "e3", 70, 80, history.Fail, ""),
	}
	tests := []struct {
		name  string
		ops   []history.Op
		final history.Final
		max   int
		want  Status
		lost  float64
	}{
		{"clean: concurrent writes may land in either order", base,
			converged(map[string]string{"r1": "v1"}, map[string][]string{"s1": {"e1"}}), 0, Pass, 0},
		{"lost set element", base,
			converged(map[string]string{"r1": "v2"}, map[string][]string{"s1": {"e2"}}), 0, Fail, 1},
		{"register overwritten by an older value",
			append(base[:0:0], op(1, 0, history.KindSet, "r1", "old", 0, 10, history.OK, m1), op(2, 0, history.KindSet, "r1", "new", 20, 30, history.OK, m2)),
			converged(map[string]string{"r1": "old"}, nil), 0, Fail, 1},
		{"everything wiped", base, converged(nil, nil), 0, Fail, 3},
		{"wiped but allowed", base, converged(nil, nil), 5, Pass, 3},
		{"not converged gives no count", base, history.Final{Reason: "redis2 offset 10 behind"}, 0, NotConverged, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := LostWrites(Input{Ops: tc.ops, Final: tc.final}, tc.max)
			if v.Status != tc.want || v.Metrics["lost"] != tc.lost {
				t.Fatalf("got %s lost %v (%s %v), want %s lost %v", v.Status, v.Metrics["lost"], v.Observed, v.Evidence, tc.want, tc.lost)
			}
		})
	}
}

func TestSplitBrain(t *testing.T) {
	events := []history.Event{switchTo(5000, m1, m2), switchTo(5002, m1, m2)}
	tests := []struct {
		name    string
		ops     []history.Op
		allowed bool
		want    Status
		n       float64
	}{
		{"writes follow the master", []history.Op{
			op(1, 0, history.KindSet, "r", "a", 1000, 1010, history.OK, m1),
			op(2, 0, history.KindSet, "r", "b", 6000, 6010, history.OK, m2),
		}, false, Pass, 0},
		{"write straddling the switch is not counted", []history.Op{
			op(1, 0, history.KindSet, "r", "a", 4990, 5010, history.OK, m1),
		}, false, Pass, 0},
		{"old master acknowledges after the switch", []history.Op{
			op(1, 0, history.KindSet, "r", "a", 6000, 6010, history.OK, m1),
			op(2, 0, history.KindAdd, "s", "b", 6100, 6110, history.OK, m1),
			op(3, 0, history.KindAdd, "s", "c", 6200, 6210, history.Fail, m1),
		}, false, Fail, 2},
		{"allowed split brain is measured", []history.Op{
			op(1, 0, history.KindSet, "r", "a", 6000, 6010, history.OK, m1),
		}, true, Pass, 1},
		{"replica never master acknowledges a write", []history.Op{
			op(1, 0, history.KindSet, "r", "a", 1000, 1010, history.OK, m2),
		}, false, Fail, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := SplitBrain(Input{Ops: tc.ops, Events: events, InitialMaster: m1, End: at(10000)}, tc.allowed)
			if v.Status != tc.want || v.Metrics["split_brain_writes"] != tc.n {
				t.Fatalf("got %s n=%v (%s %v), want %s n=%v", v.Status, v.Metrics["split_brain_writes"], v.Observed, v.Evidence, tc.want, tc.n)
			}
		})
	}
	if v := SplitBrain(Input{}, false); v.Status != Unknown {
		t.Fatalf("without a known master: %s", v.Status)
	}
}

func TestTwoMasterWindow(t *testing.T) {
	role := func(ms int, node, r string) history.Event {
		return history.Event{Time: at(ms), Source: history.SourceRole, Kind: history.KindRole, Node: node, Attrs: map[string]string{"role": r}}
	}
	ev := []history.Event{
		role(0, "redis1", "master"), role(0, "redis2", "slave"),
		role(5000, "redis2", "master"), role(8000, "redis1", "slave"),
		role(9000, "redis1", "master"),
	}
	if got := TwoMasterWindow(ev, at(10000)); got != 4*time.Second {
		t.Fatalf("two-master window %v, want 4s", got)
	}
}

func TestLinearizable(t *testing.T) {
	tests := []struct {
		name     string
		ops      []history.Op
		required bool
		want     Status
	}{
		{"clean register history", []history.Op{
			op(1, 0, history.KindSet, "r1", "a", 0, 10, history.OK, m1),
			get(2, 1, "r1", "a", 20, 30),
			op(3, 0, history.KindSet, "r1", "b", 40, 50, history.OK, m1),
			get(4, 1, "r1", "b", 60, 70),
			get(5, 1, "r2", "", 60, 70),
		}, true, Pass},
		{"stale read after an acknowledged overwrite", []history.Op{
			op(1, 0, history.KindSet, "r1", "a", 0, 10, history.OK, m1),
			op(2, 0, history.KindSet, "r1", "b", 20, 30, history.OK, m2),
			get(3, 1, "r1", "a", 40, 50),
		}, true, Fail},
		{"read of a lost write: the value vanished", []history.Op{
			op(1, 0, history.KindSet, "r1", "a", 0, 10, history.OK, m1),
			get(2, 1, "r1", "", 40, 50),
		}, true, Fail},
		{"indeterminate write may take effect late", []history.Op{
			op(1, 0, history.KindSet, "r1", "a", 0, 10, history.OK, m1),
			op(2, 0, history.KindSet, "r1", "b", 20, 220, history.Indeterminate, m1),
			get(3, 1, "r1", "a", 300, 310),
			get(4, 1, "r1", "b", 400, 410),
		}, true, Pass},
		{"failed write must not be observed", []history.Op{
			op(1, 0, history.KindSet, "r1", "a", 0, 10, history.OK, m1),
			op(2, 0, history.KindSet, "r1", "b", 20, 220, history.Fail, ""),
			get(3, 1, "r1", "b", 300, 310),
		}, true, Fail},
		{"violation is reported but passes when not required", []history.Op{
			op(1, 0, history.KindSet, "r1", "a", 0, 10, history.OK, m1),
			get(2, 1, "r1", "", 40, 50),
		}, false, Pass},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Linearizable(Input{Ops: tc.ops}, tc.required, 5*time.Second)
			if v.Status != tc.want {
				t.Fatalf("got %s (%s %v), want %s", v.Status, v.Observed, v.Evidence, tc.want)
			}
			if tc.want == Fail && len(v.Evidence) == 0 {
				t.Fatalf("a violation without evidence")
			}
		})
	}
}

// TestLinearizableTimeoutIsUnknown builds a history too large to decide within a nanosecond: an
// unknown result must fail a `linearizable: true` expectation.
func TestLinearizableTimeoutIsUnknown(t *testing.T) {
	var ops []history.Op
	for i := 0; i < 400; i++ {
		ops = append(ops, op(int64(i), i%8, history.KindSet, "r1", string(rune('A'+i%50))+string(rune('a'+i/50)), i, 100000, history.Indeterminate, m1))
	}
	ops = append(ops, get(1000, 9, "r1", "zz", 200000, 200001))
	v := Linearizable(Input{Ops: ops}, true, time.Nanosecond)
	if v.Status != Unknown {
		t.Fatalf("got %s (%s), want unknown", v.Status, v.Observed)
	}
}

func TestConvergence(t *testing.T) {
	if v := Convergence(Input{Final: history.Final{Reason: "redis2 not caught up after 60s"}}); v.Status != NotConverged {
		t.Fatalf("got %s", v.Status)
	}
	if v := Convergence(Input{Final: converged(nil, nil)}); v.Status != Pass {
		t.Fatalf("got %s", v.Status)
	}
}

func TestVIPStats(t *testing.T) {
	vip := func(ms int, holders string) history.Event {
		return history.Event{Time: at(ms), Source: history.SourceVIP, Kind: history.KindVIPHolder, Attrs: map[string]string{"holders": holders}}
	}
	ch, dual := VIPStats([]history.Event{vip(0, "haproxy1"), vip(1000, "haproxy1,haproxy2"), vip(4000, "haproxy2"), vip(6000, "haproxy1,haproxy2")}, at(7000))
	if ch != 3 || dual != 4*time.Second {
		t.Fatalf("changes %d dual %s", ch, dual)
	}
}

func TestTwoMasterWindowStopsAtEnd(t *testing.T) {
	role := func(ms int, node, r string) history.Event {
		return history.Event{Time: at(ms), Source: history.SourceRole, Kind: history.KindRole, Node: node, Attrs: map[string]string{"role": r}}
	}
	ev := []history.Event{role(0, "redis1", "master"), role(5000, "redis2", "master"), role(20000, "redis1", "slave")}
	if got := TwoMasterWindow(ev, at(10000)); got != 5*time.Second {
		t.Fatalf("got %v, want 5s (clamped to the end of the workload)", got)
	}
}

// TestLinearizableIncludesFinalRead: a write nobody read back but missing from the final state is
// a violation too.
func TestLinearizableIncludesFinalRead(t *testing.T) {
	ops := []history.Op{
		op(1, 0, history.KindSet, "r1", "a", 0, 10, history.OK, m1),
		op(2, 0, history.KindSet, "r1", "b", 20, 30, history.OK, m1),
	}
	fin := converged(map[string]string{"r1": "a"}, nil)
	fin.ReadAt = at(1000)
	if v := Linearizable(Input{Ops: ops, Final: fin}, true, 5*time.Second); v.Status != Fail {
		t.Fatalf("final state lost b: got %s (%s)", v.Status, v.Observed)
	}
	fin.Registers["r1"] = "b"
	if v := Linearizable(Input{Ops: ops, Final: fin}, true, 5*time.Second); v.Status != Pass {
		t.Fatalf("clean final state: got %s (%s %v)", v.Status, v.Observed, v.Evidence)
	}
}

func TestDualRouteWindow(t *testing.T) {
	px := func(ms int, node, detail string) history.Event {
		return history.Event{Time: at(ms), Source: history.SourceProxy, Kind: "backends", Node: node, Detail: detail}
	}
	ev := []history.Event{
		px(0, "haproxy1", "redis_backend/redis1=UP redis_backend/redis2=DOWN"),
		px(0, "haproxy2", "redis_backend/redis1=UP redis_backend/redis2=DOWN"),
		px(2000, "haproxy1", "redis_backend/redis1=UP redis_backend/redis2=UP"),
		px(2500, "haproxy2", "redis_backend/redis1=UP redis_backend/redis2=UP 1/2"),
		px(5000, "haproxy1", "redis_backend/redis1=DOWN redis_backend/redis2=UP"),
		px(6000, "haproxy2", "unreachable"),
	}
	if got := DualRouteWindow(ev, at(10000)); got != 4*time.Second {
		t.Fatalf("got %v, want 4s", got)
	}
	if up := UpBackends("b/redis1=UP b/redis2=DOWN 1/2"); len(up) != 1 || up[0] != "redis1" {
		t.Fatalf("%v", up)
	}
}

// A promotion the leader confirms (+promoted-slave) dates from its choice of the replica
// (+failover-state-send-slaveof-noone from the same sentinel), so a proxy routing on the order
// is not charged with split-brain writes; an order never confirmed starts no epoch. The old
// master stays a legitimate writer until the leader sends SLAVEOF NO ONE at its next tick
// (+failover-state-wait-promotion): what it acknowledged before then is lost, not split brain
// (the demo of 2026-12-02 13:34 charged one such write, acknowledged 5 ms after the choice and
// 80 ms before the command, to the redisha stack).
func TestSplitBrainDatesConfirmedPromotionFromTheOrder(t *testing.T) {
	instance := func(ms int, node, kind, addr, master string) history.Event {
		a, m := strings.Split(addr, ":"), strings.Split(master, ":")
		return history.Event{Time: at(ms), Source: history.SourceSentinel, Kind: kind, Node: node,
			Detail: "slave " + addr + " " + a[0] + " " + a[1] + " @ mymaster " + m[0] + " " + m[1]}
	}
	order := instance(5000, "redis2", history.KindSendSlaveofNoOne, m2, m1)
	promoted := instance(6000, "redis2", history.KindPromoted, m2, m1)
	write := op(1, 0, history.KindSet, "r", "a", 5400, 5410, history.OK, m2) // between order and promotion
	early := op(2, 0, history.KindSet, "r", "b", 4900, 4910, history.OK, m2) // before the order
	sent := instance(5080, "redis2", history.KindWaitPromotion, m2, m1)
	oldBetween := op(3, 0, history.KindSet, "r", "c", 5010, 5020, history.OK, m1) // old master, between choice and command
	oldAfter := op(4, 0, history.KindSet, "r", "d", 5090, 5100, history.OK, m1)   // old master, after the command
	tests := []struct {
		name   string
		events []history.Event
		ops    []history.Op
		want   float64
	}{
		{"confirmed: dated from the order", []history.Event{order, promoted, switchTo(6100, m1, m2)}, []history.Op{write}, 0},
		{"before the order still counts", []history.Event{order, promoted}, []history.Op{early}, 1},
		{"never confirmed: no epoch", []history.Event{order, switchTo(9000, m1, m2)}, []history.Op{write}, 1},
		{"another sentinel's order does not date it", []history.Event{instance(5000, "sentinel", history.KindSendSlaveofNoOne, m2, m1), promoted}, []history.Op{write}, 1},
		{"an order for another replica does not date it", []history.Event{instance(5000, "redis2", history.KindSendSlaveofNoOne, "10.0.0.13:6379", m1), promoted}, []history.Op{write}, 1},
		{"old master before the command: not split brain", []history.Event{order, sent, promoted}, []history.Op{oldBetween}, 0},
		{"old master after the command: split brain", []history.Event{order, sent, promoted}, []history.Op{oldAfter}, 1},
		{"no command recorded: the choice ends the old epoch", []history.Event{order, promoted}, []history.Op{oldBetween}, 1},
		{"another sentinel's command does not extend it", []history.Event{order, instance(5080, "sentinel", history.KindWaitPromotion, m2, m1), promoted}, []history.Op{oldBetween}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := SplitBrain(Input{Ops: tc.ops, Events: tc.events, InitialMaster: m1, End: at(10000)}, false)
			if v.Metrics["split_brain_writes"] != tc.want {
				t.Fatalf("got %v split-brain writes (%s %v), want %v", v.Metrics["split_brain_writes"], v.Observed, v.Evidence, tc.want)
			}
		})
	}
}
