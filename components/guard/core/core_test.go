package core

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	self = "10.0.0.1:6379"
	rep  = "10.0.0.2:6379"
	rep2 = "10.0.0.3:6379"
	idX  = "1111111111111111111111111111111111111111"
	idY  = "2222222222222222222222222222222222222222"
	idZ  = "3333333333333333333333333333333333333333"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func cfg() Config {
	return Config{Self: self, MasterName: "mymaster", Sentinels: 3, Bound: 30 * time.Second,
		Retry: 500 * time.Millisecond, FailoverGrace: 5 * time.Second}
}

func sent(addr, master string, epoch int64) SentinelObs {
	return SentinelObs{Addr: addr, Known: true, Master: master, Epoch: epoch}
}

func down(addr string) SentinelObs {
	return SentinelObs{Addr: addr, Err: errors.New("i/o timeout")}
}

func refused(addr string) SentinelObs {
	return SentinelObs{Addr: addr, Err: errors.New("connection refused"), Refused: true}
}

func node(addr, id string, off int64) NodeObs {
	return NodeObs{Addr: addr, Role: "slave", ReplID: id, ReplID2: strings.Repeat("0", 40), Offset: off, SecondOffset: -1}
}

func all(master string, epoch int64) []SentinelObs {
	return []SentinelObs{sent("s1", master, epoch), sent("s2", master, epoch), sent("s3", master, epoch)}
}

var rdbAt = Persisted{Source: "rdb", HasPosition: true, ReplID: idX, Offset: 1000}

// TestDecisionTable covers every branch of one round's evaluation.
func TestDecisionTable(t *testing.T) {
	cases := []struct {
		name   string
		p      Persisted
		round  Round
		want   string // "master", "replica <addr>", "keep", "failover <sentinel>", "wait"
		reason string // substring of the reason (decision or wait)
	}{
		{"not the configured master: replica of it", rdbAt,
			Round{Sentinels: all(rep, 3)}, "replica " + rep, "config epoch 3 names " + rep},
		{"highest epoch wins over a lagging majority", rdbAt,
			Round{Sentinels: []SentinelObs{sent("s1", self, 2), sent("s2", self, 2), sent("s3", rep, 3)}}, "replica " + rep, "epoch 3"},
		{"lagging sentinel with a lower epoch names someone else", rdbAt,
			Round{Sentinels: []SentinelObs{sent("s1", rep, 1), sent("s2", self, 2), down("s3")},
				Nodes: []NodeObs{node(rep, idX, 900)}}, "master", "epoch 2 names " + self},
		{"master, replica at the same offset", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idX, 1000)}}, "master", "no reachable replica is ahead"},
		{"master, replica with a smaller offset", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idX, 10)}}, "master", "no reachable replica is ahead"},
		{"master, replica ahead: failover", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idX, 5000)}}, "failover s1", "ahead of this node's data"},
		{"failover goes to the sentinel with the latest configuration", rdbAt,
			Round{Sentinels: []SentinelObs{sent("s1", self, 1), sent("s2", self, 4), down("s3")}, Nodes: []NodeObs{node(rep, idX, 5000)}}, "failover s2", "epoch 4"},
		{"replid mismatch is not compared", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idY, 5000)}}, "master", "another replication history"},
		{"replid2 continues our history past our offset: ahead", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{{Addr: rep, Role: "slave", ReplID: idY, ReplID2: idX, SecondOffset: 1201, Offset: 1500}}}, "failover s1", "ahead"},
		{"replid2 diverged before our offset", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{{Addr: rep, Role: "slave", ReplID: idY, ReplID2: idX, SecondOffset: 501, Offset: 1500}}}, "master", "diverged"},
		{"another node plays master while the sentinels name us: wait", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{{Addr: rep, Role: "master", ReplID: idY, ReplID2: idX, SecondOffset: 1001, Offset: 1000}}}, "wait", rep + " reports role master"},
		{"RDB without position, replica holds data: ahead", Persisted{Source: "rdb"},
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idZ, 42)}}, "failover s1", "rdb without a replication position"},
		{"no data file, replica holds data: ahead", Persisted{Source: "none"},
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idZ, 42)}}, "failover s1", "no data file"},
		{"first start: no data anywhere", Persisted{Source: "none"},
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idZ, 0)}}, "master", "no reachable replica is ahead"},
		{"AOF is trusted", Persisted{Source: "aof"},
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idX, 5000)}}, "master", "AOF has no replication position"},
		{"unreachable replica is noted, not waited for", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{{Addr: rep, Err: errors.New("i/o timeout")}, node(rep2, idX, 1000)}}, "master", rep + " unreachable"},
		{"self in the node list is ignored", rdbAt,
			Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(self, idX, 99999)}}, "master", "no reachable replica"},
		{"no majority of sentinels: wait", rdbAt,
			Round{Sentinels: []SentinelObs{sent("s1", self, 0), down("s2"), down("s3")}}, "wait", "1 of 3 sentinels answered, 2 needed"},
		{"majority answered, none monitors the name: keep", Persisted{Source: "none"},
			Round{Sentinels: []SentinelObs{{Addr: "s1"}, {Addr: "s2"}, down("s3")}}, "keep", "none monitors"},
		{"sentinels disagree at the same epoch: wait", rdbAt,
			Round{Sentinels: []SentinelObs{sent("s1", self, 5), sent("s2", rep, 5), sent("s3", rep, 5)}}, "wait", "disagree at config epoch 5"},
		{"failover in progress: wait", rdbAt,
			Round{Sentinels: []SentinelObs{sent("s1", self, 5), {Addr: "s2", Known: true, Master: self, Epoch: 5, FailoverInProgress: true}, sent("s3", self, 5)}}, "wait", "failover of mymaster in progress"},
		{"nothing runs at all: keep at once", Persisted{Source: "none"},
			Round{Sentinels: []SentinelObs{refused("s1"), refused("s2"), refused("s3")}, Nodes: []NodeObs{{Addr: rep, Err: errors.New("refused"), Refused: true}}}, "keep", "every connection refused"},
		{"sentinels refuse but a node answers: wait", rdbAt,
			Round{Sentinels: []SentinelObs{refused("s1"), refused("s2"), refused("s3")}, Nodes: []NodeObs{node(rep, idX, 1)}}, "wait", "0 of 3 sentinels answered"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(cfg(), t0, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if acts := c.Tick(t0); len(acts) != 1 || acts[0] != (Probe{}) {
				t.Fatalf("first tick: %v", acts)
			}
			now := t0.Add(100 * time.Millisecond)
			acts := c.Observe(now, tc.round)
			got, reason := summarize(acts)
			if got == "wait" {
				reason = c.waiting
				if next := c.Next(); !next.Equal(now.Add(cfg().Retry)) {
					t.Errorf("waiting: Next=%v, want now+retry", next.Sub(t0))
				}
			}
			if got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Fatalf("got %s (%q), want %s containing %q", got, reason, tc.want, tc.reason)
			}
		})
	}
}

func summarize(acts []Action) (string, string) {
	if len(acts) == 0 {
		return "wait", ""
	}
	switch a := acts[0].(type) {
	case Decide:
		switch a.Decision.Role {
		case Master:
			return "master", a.Decision.Reason
		case Replica:
			return "replica " + a.Decision.Master, a.Decision.Reason
		}
		return "keep", a.Decision.Reason
	case Failover:
		return "failover " + a.Sentinel, a.Reason
	case Probe:
		return "probe", ""
	}
	return "?", ""
}

// TestFailoverFlow: ask, wait through the grace while the old configuration
// stands, then follow the new master.
func TestFailoverFlow(t *testing.T) {
	c, _ := New(cfg(), t0, rdbAt)
	c.Tick(t0)
	ahead := Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idX, 5000)}}
	now := t0.Add(50 * time.Millisecond)
	if got, _ := summarize(c.Observe(now, ahead)); got != "failover s1" {
		t.Fatalf("got %s", got)
	}
	if !c.Next().Equal(c.Deadline()) {
		t.Fatal("while asking, the core waits for the answer until the bound")
	}
	if acts := c.FailoverResult(now, "s1", nil); len(acts) != 0 {
		t.Fatalf("after +OK: %v", acts)
	}
	now = now.Add(cfg().Retry)
	if got, _ := summarize(c.Tick(now)); got != "probe" {
		t.Fatalf("want a probe after retry, got %s", got)
	}
	// Still the old configuration, inside the grace: no second request.
	if got, _ := summarize(c.Observe(now, ahead)); got != "wait" || !strings.Contains(c.waiting, "failover asked") {
		t.Fatalf("inside grace: %s %q", got, c.waiting)
	}
	now = now.Add(cfg().Retry)
	c.Tick(now)
	acts := c.Observe(now, Round{Sentinels: []SentinelObs{sent("s1", rep, 1), sent("s2", self, 0), sent("s3", self, 0)}})
	d := acts[0].(Decide).Decision
	if d.Role != Replica || d.Master != rep || !d.FailoverAsked || d.Epoch != 1 || !strings.Contains(d.Reason, "after the failover the guard asked for") {
		t.Fatalf("decision %+v", d)
	}
	if d.Elapsed != now.Sub(t0) {
		t.Fatalf("elapsed %v", d.Elapsed)
	}
	if c.Tick(now.Add(time.Hour)) != nil || !c.Next().IsZero() {
		t.Fatal("a decided core does nothing more")
	}
}

// TestFailoverRefusedThenAskedAgain: a refused FAILOVER is retried on the
// next round; after the grace an accepted one without progress is too.
func TestFailoverRefusedThenAskedAgain(t *testing.T) {
	c, _ := New(cfg(), t0, rdbAt)
	c.Tick(t0)
	ahead := Round{Sentinels: all(self, 0), Nodes: []NodeObs{node(rep, idX, 5000)}}
	now := t0
	c.Observe(now, ahead)
	c.FailoverResult(now, "s1", errors.New("NOGOODSLAVE No suitable replica to promote"))
	if !strings.Contains(c.waiting, "NOGOODSLAVE") {
		t.Fatalf("waiting: %q", c.waiting)
	}
	now = now.Add(cfg().Retry)
	c.Tick(now)
	if got, _ := summarize(c.Observe(now, ahead)); got != "failover s1" {
		t.Fatalf("after a refusal: %s", got)
	}
	c.FailoverResult(now, "s1", nil)
	now = now.Add(cfg().FailoverGrace)
	c.Tick(now)
	if got, _ := summarize(c.Observe(now, ahead)); got != "failover s1" {
		t.Fatalf("after the grace: %s", got)
	}
}

// TestBound: waiting never outlasts the bound; the decision says so.
func TestBound(t *testing.T) {
	c, _ := New(cfg(), t0, rdbAt)
	now := t0
	rounds := 0
	for {
		acts := c.Tick(now)
		if len(acts) == 1 {
			if _, ok := acts[0].(Probe); ok {
				rounds++
				acts = c.Observe(now, Round{Sentinels: []SentinelObs{down("s1"), down("s2"), sent("s3", self, 0)}})
			}
		}
		if len(acts) == 1 {
			if d, ok := acts[0].(Decide); ok {
				if !d.Decision.BoundReached || d.Decision.Role != KeepConfig || d.Decision.Elapsed != cfg().Bound ||
					!strings.Contains(d.Decision.Reason, "1 of 3 sentinels answered") {
					t.Fatalf("decision %+v", d.Decision)
				}
				break
			}
		}
		next := c.Next()
		if next.Before(now) || next.After(c.Deadline()) {
			t.Fatalf("Next %v out of range", next.Sub(t0))
		}
		now = next
	}
	if want := int(cfg().Bound / cfg().Retry); rounds != want {
		t.Fatalf("%d rounds, want %d", rounds, want)
	}
}

// TestBoundWhileProbing: a probe that has not come back by the bound does
// not hold the decision.
func TestBoundWhileProbing(t *testing.T) {
	c, _ := New(cfg(), t0, rdbAt)
	c.Tick(t0)
	if !c.Next().Equal(t0.Add(cfg().Bound)) {
		t.Fatalf("Next while probing: %v", c.Next())
	}
	acts := c.Tick(c.Deadline())
	if d := acts[0].(Decide).Decision; !d.BoundReached || !strings.Contains(d.Reason, "no answer yet") {
		t.Fatalf("%+v", d)
	}
	if acts := c.Observe(c.Deadline(), Round{Sentinels: all(rep, 9)}); acts != nil {
		t.Fatal("a late round changes nothing")
	}
}

func TestNewValidates(t *testing.T) {
	bad := cfg()
	bad.Self, bad.Sentinels, bad.Bound = "", 0, 0
	_, err := New(bad, t0, Persisted{Source: "tape"})
	for _, want := range []string{"self", "sentinel", "bound", "tape"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v lacks %q", err, want)
		}
	}
}
