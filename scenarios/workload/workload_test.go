package workload

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/history"
)

type memRecorder struct {
	mu  sync.Mutex
	ops []history.Op
}

func (m *memRecorder) Write(v any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops = append(m.ops, v.(history.Op))
}

func (m *memRecorder) split() (ops, dials []history.Op) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.ops {
		if o.Kind == "dial" {
			dials = append(dials, o)
		} else {
			ops = append(ops, o)
		}
	}
	return ops, dials
}

func baseConfig(addr string) Config {
	return Config{Addr: addr, Clients: 3, Rate: 300, Duration: 1500 * time.Millisecond, SetW: 4, GetW: 3, AddW: 3,
		Keys: 4, Timeout: 200 * time.Millisecond, Seed: 7, Prefix: "t",
		NodeOf: func(a string) string {
			if a != "" {
				return "node-" + a[strings.LastIndexByte(a, ':')+1:]
			}
			return ""
		}}
}

// finalState reads the keys back the way the runner does.
func finalState(t *testing.T, addr string, cfg Config) history.Final {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	ctx := context.Background()
	f := history.Final{Converged: true, Master: addr, Registers: map[string]string{}, Sets: map[string][]string{}}
	regs, sets := cfg.KeyNames()
	for _, k := range regs {
		if v, err := c.Get(ctx, k).Result(); err == nil {
			f.Registers[k] = v
		}
	}
	for _, k := range sets {
		v, err := c.SMembers(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		f.Sets[k] = v
	}
	return f
}

func serverRunID(t *testing.T, addr string) string {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	s, err := c.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(l, "run_id:"); ok {
			return v
		}
	}
	t.Fatal("no run_id")
	return ""
}

func TestWorkloadRecordsEveryOp(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	cfg := baseConfig(srv.Addr())
	rec := &memRecorder{}
	var cnt Counters
	start := time.Now()
	if err := Run(context.Background(), cfg, rec, &cnt); err != nil {
		t.Fatal(err)
	}
	ops, dials := rec.split()
	if len(dials) != cfg.Clients {
		t.Fatalf("%d dials, want one per worker", len(dials))
	}
	// 300 ops/s for 1.5 s; allow slack for a loaded machine.
	if len(ops) < 250 || len(ops) > 500 {
		t.Fatalf("%d ops in %s, want about 450", len(ops), time.Since(start))
	}
	runID := serverRunID(t, srv.Addr())
	seen := map[string]bool{}
	kinds := map[string]int{}
	for _, o := range ops {
		kinds[o.Kind]++
		if o.Status != history.OK {
			t.Fatalf("op failed against a healthy server: %+v", o)
		}
		if o.Server != srv.Addr() || o.RunID != runID || o.Node != "node-"+strings.Split(srv.Addr(), ":")[1] || o.Dial != 1 {
			t.Fatalf("op not attributed to its server: %+v (server %s run_id %s)", o, srv.Addr(), runID)
		}
		if o.IsWrite() {
			if seen[o.Value] {
				t.Fatalf("value %q written twice", o.Value)
			}
			seen[o.Value] = true
		}
		if !o.Complete.After(o.Invoke) {
			t.Fatalf("times: %+v", o)
		}
	}
	if kinds["set"] == 0 || kinds["get"] == 0 || kinds["add"] == 0 {
		t.Fatalf("mix not honoured: %v", kinds)
	}
	if got := cnt.OK.Load(); got != int64(len(ops)) {
		t.Fatalf("counter %d, ops %d", got, len(ops))
	}
	in := check.Input{Ops: ops, Final: finalState(t, srv.Addr(), cfg)}
	if v := check.LostWrites(in, 0); v.Status != check.Pass || v.Metrics["lost"] != 0 {
		t.Fatalf("lost writes on a healthy server: %+v", v)
	}
	if v := check.Linearizable(in, true, 10*time.Second); v.Status != check.Pass {
		t.Fatalf("a single healthy server is not linearizable? %+v", v)
	}
}

// TestFrozenServerGivesIndeterminateOps freezes redis-server (SIGSTOP) mid-run: commands already
// sent time out and must be indeterminate, not failed, and some of them do take effect when the
// server thaws. Afterwards workers reconnect and succeed again.
func TestFrozenServerGivesIndeterminateOps(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	cfg := baseConfig(srv.Addr())
	cfg.Duration = 2500 * time.Millisecond
	cfg.SetW, cfg.GetW, cfg.AddW = 0, 0, 1
	rec := &memRecorder{}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), cfg, rec, nil) }()
	time.Sleep(700 * time.Millisecond)
	srv.Pause()
	frozeAt := time.Now()
	time.Sleep(800 * time.Millisecond)
	srv.Resume()
	thawedAt := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ops, dials := rec.split()
	byStatus := map[history.Status][]history.Op{}
	for _, o := range ops {
		byStatus[o.Status] = append(byStatus[o.Status], o)
	}
	if len(byStatus[history.Indeterminate]) == 0 {
		t.Fatalf("no indeterminate op while the server was frozen: %v", len(byStatus[history.Fail]))
	}
	for _, o := range byStatus[history.Indeterminate] {
		if o.Invoke.Before(frozeAt.Add(-cfg.Timeout)) || o.Invoke.After(thawedAt) || o.Server == "" {
			t.Fatalf("indeterminate op outside the freeze or unattributed: %+v", o)
		}
	}
	if len(dials) <= cfg.Clients {
		t.Fatalf("workers did not reconnect after timeouts: %d dials", len(dials))
	}
	var lastOK time.Time
	for _, o := range byStatus[history.OK] {
		if o.Complete.After(lastOK) {
			lastOK = o.Complete
		}
	}
	if !lastOK.After(thawedAt) {
		t.Fatal("no acknowledged write after the thaw")
	}
	// Every acknowledged element is there; indeterminate ones may or may not be.
	final := finalState(t, srv.Addr(), cfg)
	if v := check.LostWrites(check.Input{Ops: ops, Final: final}, 0); v.Status != check.Pass {
		t.Fatalf("%+v", v)
	}
	w := check.UnavailabilityWindows(check.Input{Ops: ops, End: time.Now()})
	if len(w) == 0 {
		t.Fatal("a frozen server caused no unavailability window")
	}
	sort.Slice(w, func(i, j int) bool { return w[i].Length > w[j].Length })
	if w[0].Length < 500*time.Millisecond || w[0].Length > 3*time.Second {
		t.Fatalf("worst window %s for an 800 ms freeze", w[0].Length)
	}
}

func TestRefusedAndRejectedAreFailures(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		cfg := baseConfig(testenv.Addr("127.0.0.1", testenv.FreePort(t)))
		cfg.Duration, cfg.Rate = 400*time.Millisecond, 50
		rec := &memRecorder{}
		if err := Run(context.Background(), cfg, rec, nil); err != nil {
			t.Fatal(err)
		}
		ops, _ := rec.split()
		if len(ops) == 0 {
			t.Fatal("no ops")
		}
		for _, o := range ops {
			if o.Status != history.Fail || o.Server != "" || o.Err == "" {
				t.Fatalf("refused op: %+v", o)
			}
		}
	})
	t.Run("error reply", func(t *testing.T) {
		// A replica of an unreachable master refuses writes with READONLY: definite failures,
		// attributed to the server that refused them.
		srv := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: testenv.Addr("127.0.0.1", testenv.FreePort(t))})
		cfg := baseConfig(srv.Addr())
		cfg.Duration, cfg.Rate, cfg.GetW = 400*time.Millisecond, 100, 0
		rec := &memRecorder{}
		if err := Run(context.Background(), cfg, rec, nil); err != nil {
			t.Fatal(err)
		}
		// go-redis drops a connection after READONLY (it expects a failover), so every op may
		// come with a new dial; each must still name the refusing server.
		ops, _ := rec.split()
		for _, o := range ops {
			if o.Status != history.Fail || !strings.Contains(o.Err, "READONLY") || o.Server != srv.Addr() {
				t.Fatalf("rejected write: %+v", o)
			}
		}
	})
}

func TestReconnectRedials(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	cfg := baseConfig(srv.Addr())
	cfg.Clients, cfg.Duration, cfg.Reconnect = 1, time.Second, 200*time.Millisecond
	rec := &memRecorder{}
	if err := Run(context.Background(), cfg, rec, nil); err != nil {
		t.Fatal(err)
	}
	ops, dials := rec.split()
	if len(dials) < 4 || len(dials) > 7 {
		t.Fatalf("%d dials in 1 s with reconnect every 200 ms", len(dials))
	}
	for _, o := range ops {
		if o.Status != history.OK {
			t.Fatalf("reconnecting must not fail ops: %+v", o)
		}
	}
}
