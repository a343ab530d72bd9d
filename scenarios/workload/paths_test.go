package workload

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/history"
)

// On a healthy server every subscriber records every message published after it subscribed,
// once, and the receiver counts add up.
func TestPubSubHealthy(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	cfg := baseConfig(srv.Addr())
	cfg.Clients, cfg.Rate, cfg.Duration = 1, 50, 2*time.Second
	cfg.Publishers, cfg.Subscribers, cfg.PublishRate = 2, 3, 100
	rec := &memRecorder{}
	if err := Run(context.Background(), cfg, rec, nil); err != nil {
		t.Fatal(err)
	}
	ops, _ := rec.split()
	kinds := map[string]int{}
	for _, o := range ops {
		kinds[o.Kind]++
		if o.Kind == history.KindPublish && (o.Status != history.OK || o.Server != srv.Addr() || o.Worker < 1 || o.Worker > 2) {
			t.Fatalf("publish: %+v", o)
		}
		if (o.Kind == history.KindReceive || o.Kind == history.KindSubscribe) && (o.Server != srv.Addr() || o.Worker < 3) {
			t.Fatalf("subscriber record: %+v", o)
		}
	}
	if kinds[history.KindSubscribe] != 3 || kinds[history.KindPublish] < 100 || kinds[history.KindUnsub] != 0 {
		t.Fatalf("records %v", kinds)
	}
	st := check.PubSubCount(ops, time.Now())
	if st.Lost != 0 || st.Duplicated != 0 || st.Missed != 0 || st.Told != st.Delivered || st.WithReceivers < st.Published-10 {
		t.Fatalf("healthy server: %+v", st)
	}
	if kinds[history.KindReceive] != st.Delivered {
		t.Fatalf("%d receptions, %d deliveries counted", kinds[history.KindReceive], st.Delivered)
	}
}

// TestSentinelPathFollowsFailover: clients that find the master through a real sentinel (go-redis
// FailoverClient) move to the promoted replica when the master is killed, and so do the
// subscribers, each recorded against the server that served it.
func TestSentinelPathFollowsFailover(t *testing.T) {
	master := testenv.StartRedis(t, testenv.RedisOptions{})
	replica := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: master.Addr()})
	sent := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: master.Addr(), Quorum: 1, DownAfterMs: 1000, FailoverTimeout: 2000})
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := testenv.Do(sent.Addr(), time.Second, "SENTINEL", "replicas", "mymaster")
		if err == nil && len(v.Elems) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel does not see the replica: %v %v", v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cfg := baseConfig("")
	cfg.Sentinels, cfg.MasterName = []string{sent.Addr()}, "mymaster"
	cfg.Clients, cfg.Rate, cfg.Duration = 2, 100, 9*time.Second
	cfg.Publishers, cfg.Subscribers, cfg.PublishRate = 1, 2, 50
	rec := &memRecorder{}
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), cfg, rec, nil) }()
	time.Sleep(1500 * time.Millisecond)
	master.Kill()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ops, dials := rec.split()
	served := map[string]map[string]int{} // kind -> server -> ok
	for _, o := range ops {
		if o.Status == history.OK {
			if served[o.Kind] == nil {
				served[o.Kind] = map[string]int{}
			}
			served[o.Kind][o.Server]++
		}
	}
	for _, k := range []string{history.KindSet, history.KindPublish, history.KindSubscribe, history.KindReceive} {
		if served[k][master.Addr()] == 0 || served[k][replica.Addr()] == 0 {
			t.Errorf("%s: served %v, want both the old master %s and the promoted replica %s", k, served[k], master.Addr(), replica.Addr())
		}
		if len(served[k]) != 2 {
			t.Errorf("%s served by %v", k, served[k])
		}
	}
	for _, d := range dials {
		if d.Status == history.OK && d.Server != master.Addr() && d.Server != replica.Addr() {
			t.Fatalf("a dial identified a server that is no redis node (the sentinel?): %+v", d)
		}
	}
	st := check.PubSubCount(ops, time.Now())
	if st.Published == 0 || st.Delivered == 0 || st.Duplicated != 0 {
		t.Fatalf("pub/sub across the failover: %+v", st)
	}
	t.Logf("pub/sub across the failover: %+v", st)
}

// A dial that never completes (a crashed node's address: no RST, only lost SYNs) is bounded by
// the client time-out for subscribers too, so they keep trying instead of waiting for minutes.
func TestSubscriberDialsAreBounded(t *testing.T) {
	cfg := baseConfig("192.0.2.1:6379") // never dialled: the dial below only waits
	cfg.Clients, cfg.Rate, cfg.Duration = 1, 10, time.Second
	cfg.Publishers, cfg.Subscribers, cfg.PublishRate = 1, 1, 10
	var mu sync.Mutex
	attempts := 0
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		attempts++
		mu.Unlock()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	start := time.Now()
	if err := Run(context.Background(), cfg, &memRecorder{}, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the run took %s: a dial was not bounded", took)
	}
	mu.Lock()
	defer mu.Unlock()
	// Three workers for 1 s plus the drain, 200 ms per attempt: far more than one each.
	if attempts < 9 {
		t.Fatalf("%d dial attempts: a worker waited on a dial past its time-out", attempts)
	}
}
