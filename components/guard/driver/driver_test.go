package driver_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/guard/core"
	"github.com/redisha/redisha/components/guard/driver"
	"github.com/redisha/redisha/components/guard/probe"
	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

// TestGatherRealStack reads real sentinel and redis replies through the
// production transport.
func TestGatherRealStack(t *testing.T) {
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	m := testenv.StartRedis(t, testenv.RedisOptions{Extra: []string{"--repl-diskless-sync-delay", "0"}})
	r := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: m.Addr()})
	s := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: m.Addr()})
	other := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: m.Addr(), MasterName: "other"})
	if _, err := testenv.Do(m.Addr(), 5*time.Second, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := testenv.Do(m.Addr(), 15*time.Second, "WAIT", "1", "10000"); err != nil || v.Int != 1 {
		t.Fatalf("WAIT: %v %v", v, err)
	}
	refused := testenv.Addr("127.0.0.1", testenv.FreePort(t))
	o := driver.Options{MasterName: "mymaster", Self: m.Addr(), Sentinels: []string{s.Addr(), other.Addr(), refused}}
	var round core.Round
	// The replication offset keeps moving (the sentinels' hellos and pings go
	// through the master's stream), so the replica's own offset read just before
	// and just after the round brackets the one the round must report.
	replicaOffset := func() int64 {
		off, err := strconv.ParseInt(resp.ParseInfo(mustDo(t, r.Addr(), "INFO", "replication").Str).Get("master_repl_offset"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	var before, after int64
	deadline := time.Now().Add(20 * time.Second)
	for {
		// The sentinel learns the replica from the master's INFO.
		before = replicaOffset()
		round = driver.Gather(context.Background(), time.Now().Add(5*time.Second), o, probe.Transport{Timeout: time.Second})
		after = replicaOffset()
		if len(round.Nodes) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	got := round.Sentinels
	if len(got) != 3 {
		t.Fatalf("sentinels: %+v", got)
	}
	if g := got[0]; g.Err != nil || !g.Known || g.Master != m.Addr() || g.Epoch != 0 || g.FailoverInProgress {
		t.Errorf("monitoring sentinel: %+v", g)
	}
	if g := got[1]; g.Err != nil || g.Known {
		t.Errorf("sentinel without that name: %+v", g)
	}
	if g := got[2]; g.Err == nil || !g.Refused {
		t.Errorf("nothing listening: %+v", g)
	}
	if len(round.Nodes) != 1 {
		t.Fatalf("nodes: %+v", round.Nodes)
	}
	mi := resp.ParseInfo(mustDo(t, m.Addr(), "INFO", "replication").Str)
	n := round.Nodes[0]
	if n.Addr != r.Addr() || n.Err != nil || n.Role != "slave" || n.ReplID != mi.Get("master_replid") ||
		n.Offset < before || n.Offset > after || n.SecondOffset != -1 {
		t.Errorf("replica: %+v (its own offset was %d before the round and %d after), master INFO %v", n, before, after, mi.Section("replication"))
	}
}

func mustDo(t *testing.T, addr string, args ...string) resp.Value {
	t.Helper()
	v, err := testenv.Do(addr, 15*time.Second, args...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// virtualClock advances only when the driver sleeps.
type virtualClock struct {
	now    time.Time
	sleeps int
}

func (c *virtualClock) Now() time.Time { return c.now }
func (c *virtualClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.sleeps++
	if t.After(c.now) {
		c.now = t
	}
	return ctx.Err()
}

// unreachable answers every request with a timeout, as a partitioned stack.
type unreachable struct{ calls int }

func (u *unreachable) Do(_ context.Context, reqs []driver.Request) []driver.Reply {
	u.calls++
	out := make([]driver.Reply, len(reqs))
	for i := range out {
		out[i].Err = errors.New("i/o timeout")
	}
	return out
}

// TestRunSleepsOnTheCoreUntilTheBound: with nobody answering, Run asks once
// per retry interval, sleeps on the injected clock, and returns the bound's
// decision.
func TestRunSleepsOnTheCoreUntilTheBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := core.New(core.Config{Self: "a:1", MasterName: "mymaster", Sentinels: 3, Bound: 10 * time.Second,
		Retry: time.Second, FailoverGrace: time.Second}, t0, core.Persisted{Source: "none"})
	if err != nil {
		t.Fatal(err)
	}
	clk := &virtualClock{now: t0}
	tr := &unreachable{}
	d, err := driver.Run(context.Background(), c, driver.Options{MasterName: "mymaster", Self: "a:1",
		Sentinels: []string{"s:1", "s:2", "s:3"}, Nodes: []string{"n:1"}}, tr, clk)
	if err != nil {
		t.Fatal(err)
	}
	if !d.BoundReached || d.Elapsed != 10*time.Second || !strings.Contains(d.Reason, "0 of 3 sentinels answered") {
		t.Fatalf("decision %+v", d)
	}
	// 10 rounds, each asking the sentinels and then the node.
	if tr.calls != 20 || clk.sleeps != 10 {
		t.Fatalf("%d transport calls, %d sleeps", tr.calls, clk.sleeps)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	t0 := time.Now()
	c, _ := core.New(core.Config{Self: "a:1", MasterName: "m", Sentinels: 1, Bound: time.Hour,
		Retry: time.Second, FailoverGrace: time.Second}, t0, core.Persisted{Source: "none"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := driver.Run(ctx, c, driver.Options{MasterName: "m", Self: "a:1", Sentinels: []string{"s:1"}},
		&unreachable{}, &virtualClock{now: t0}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}
