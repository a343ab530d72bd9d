package check

import (
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/scenarios/history"
)

func vipAt(ms int, holders string) history.Event {
	return history.Event{Time: at(ms), Source: history.SourceVIP, Kind: history.KindVIPHolder, Attrs: map[string]string{"holders": holders}}
}

// vipSeq builds holder events one second apart from 0: "haproxy1", "", "haproxy1,haproxy2", ...
func vipSeq(holders ...string) []history.Event {
	var ev []history.Event
	for i, h := range holders {
		ev = append(ev, vipAt(i*1000, h))
	}
	return ev
}

// A move is a node taking the VIP that did not hold it in the last span with a holder.
func TestVIPTimelineMoves(t *testing.T) {
	tests := []struct {
		name    string
		holders []string
		moves   int
	}{
		{"steady", []string{"haproxy1"}, 0},
		{"no holder seen first", []string{"", "haproxy1"}, 0},
		{"through nobody", []string{"haproxy1", "", "haproxy2"}, 1},
		{"direct", []string{"haproxy1", "haproxy2"}, 1},
		{"lost and regained on the same node", []string{"haproxy1", "", "haproxy1"}, 0},
		{"through two holders", []string{"haproxy1", "haproxy1,haproxy2", "haproxy2"}, 1},
		{"false takeover, kept", []string{"haproxy1", "haproxy1,haproxy2", "haproxy1"}, 1},
		{"ping-pong", []string{"haproxy1", "", "haproxy2", "", "haproxy1"}, 2},
		{"ping-pong direct", []string{"haproxy1", "haproxy2", "haproxy1", "haproxy2"}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spans, moves := VIPTimeline(vipSeq(tc.holders...), at(60000))
			if moves != tc.moves || len(spans) != len(tc.holders) {
				t.Fatalf("moves %d (want %d), spans %d", moves, tc.moves, len(spans))
			}
		})
	}
	// Changes after the end of the workload (the heal restarting a crashed node) do not count.
	if _, moves := VIPTimeline(vipSeq("haproxy1", "", "haproxy2", "haproxy1"), at(2500)); moves != 1 {
		t.Fatalf("moves after the end counted: %d", moves)
	}
}

func TestVIPMovesVerdict(t *testing.T) {
	exact := func(n int) VIPMoveExpectation { return VIPMoveExpectation{Min: n, Max: n} }
	atMost := func(n int) VIPMoveExpectation { return VIPMoveExpectation{Max: n} }
	tests := []struct {
		name     string
		holders  []string
		exp      VIPMoveExpectation
		want     Status
		expected string
	}{
		{"none expected, none", []string{"haproxy1"}, exact(0), Pass, "no VIP move"},
		{"none expected, one", []string{"haproxy1", "", "haproxy2"}, exact(0), Fail, "no VIP move"},
		{"none expected, a false takeover", []string{"haproxy1", "haproxy1,haproxy2", "haproxy1"}, atMost(0), Fail, "no VIP move"},
		{"exactly one, one", []string{"haproxy1", "", "haproxy2"}, exact(1), Pass, "exactly 1 VIP move(s)"},
		{"exactly one, none", []string{"haproxy1"}, exact(1), Fail, "exactly 1 VIP move(s)"},
		{"exactly one, ping-pong", []string{"haproxy1", "haproxy2", "haproxy1"}, exact(1), Fail, "exactly 1 VIP move(s)"},
		{"at most one, none", []string{"haproxy1"}, atMost(1), Pass, "at most 1 VIP move(s)"},
		{"at most one, one", []string{"haproxy1", "haproxy2"}, atMost(1), Pass, "at most 1 VIP move(s)"},
		{"at most one, ping-pong", []string{"haproxy1", "", "haproxy2", "", "haproxy1"}, atMost(1), Fail, "at most 1 VIP move(s)"},
		{"never held: no move", []string{""}, exact(0), Pass, "no VIP move"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := VIPMoves(Input{Events: vipSeq(tc.holders...), End: at(60000)}, tc.exp)
			if v.Status != tc.want || v.Expected != tc.expected || v.Check != CheckVIPMoves {
				t.Fatalf("got %s %q (expected %q): %s", v.Status, v.Expected, tc.expected, v.Observed)
			}
			if v.Metrics["moves"] > 0 && !strings.Contains(v.Observed, "VIP move(s): to ") {
				t.Errorf("a failed verdict does not say where the VIP went: %q", v.Observed)
			}
			if len(v.Evidence) != len(tc.holders) {
				t.Errorf("evidence %q", v.Evidence)
			}
		})
	}
}

func TestVIPDualHoldersVerdict(t *testing.T) {
	tests := []struct {
		name    string
		events  []history.Event
		bound   time.Duration
		want    Status
		seconds float64
	}{
		{"never", []history.Event{vipAt(0, "haproxy1"), vipAt(5000, "haproxy2")}, 0, Pass, 0},
		{"a glimpse fails a 0s bound", []history.Event{vipAt(0, "haproxy1"), vipAt(5000, "haproxy1,haproxy2"), vipAt(5001, "haproxy2")}, 0, Fail, 0.001},
		{"at the bound", []history.Event{vipAt(0, "haproxy1"), vipAt(5000, "haproxy1,haproxy2"), vipAt(5500, "haproxy2")}, 500 * time.Millisecond, Pass, 0.5},
		{"over the bound", []history.Event{vipAt(0, "haproxy1"), vipAt(5000, "haproxy1,haproxy2"), vipAt(5501, "haproxy2")}, 500 * time.Millisecond, Fail, 0.501},
		{"still two at the end", []history.Event{vipAt(0, "haproxy1"), vipAt(5000, "haproxy1,haproxy2")}, time.Second, Fail, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := VIPDualHolders(Input{Events: tc.events, End: at(10000)}, tc.bound)
			if v.Status != tc.want || v.Metrics["dual_seconds"] != tc.seconds || v.Check != CheckVIPDualHolders {
				t.Fatalf("got %s, %.3fs: %s", v.Status, v.Metrics["dual_seconds"], v.Observed)
			}
			if tc.seconds > 0 && !strings.Contains(v.Observed, "haproxy1 and haproxy2") {
				t.Errorf("observed does not name the holders: %q", v.Observed)
			}
		})
	}
}

// Without a single observation of the VIP's holders, neither verdict can be decided: unknown,
// never a pass.
func TestVIPNotObserved(t *testing.T) {
	in := Input{Events: []history.Event{switchTo(1000, m1, m2)}, End: at(10000)}
	for _, v := range []Verdict{VIPMoves(in, VIPMoveExpectation{}), VIPDualHolders(in, 0)} {
		if v.Status != Unknown || !strings.Contains(v.Observed, "not measured") {
			t.Errorf("%s: %s %q", v.Check, v.Status, v.Observed)
		}
	}
}
