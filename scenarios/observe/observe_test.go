package observe

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/scenarios/check"
	"github.com/redisha/redisha/scenarios/history"
)

type memRec struct {
	mu sync.Mutex
	ev []history.Event
}

func (m *memRec) Write(v any) { m.mu.Lock(); m.ev = append(m.ev, v.(history.Event)); m.mu.Unlock() }

func (m *memRec) events() []history.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]history.Event(nil), m.ev...)
}

func (m *memRec) waitFor(t *testing.T, d time.Duration, what string, ok func(history.Event) bool) history.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, e := range m.events() {
			if ok(e) {
				return e
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s within %s; events: %+v", what, d, m.events())
	return history.Event{}
}

// TestObserverSeesRealFailover runs a real master, replica and sentinel, kills the master and
// expects the observer to record the sentinel's +switch-master and the role changes, and the
// checkers to count exactly one failover from those records.
func TestObserverSeesRealFailover(t *testing.T) {
	master := testenv.StartRedis(t, testenv.RedisOptions{})
	replica := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: master.Addr()})
	sent := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: master.Addr(), Quorum: 1, DownAfterMs: 1000})
	nodes := []Endpoint{{"m", master.Addr()}, {"r", replica.Addr()}}
	if _, _, err := Converge(context.Background(), nodes, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	initial, err := MasterFromSentinels(context.Background(), []Endpoint{{"s", sent.Addr()}}, "mymaster")
	if err != nil || initial != master.Addr() {
		t.Fatalf("initial master %q, %v", initial, err)
	}
	rec := &memRec{}
	holders := []string{"p1"}
	var hmu sync.Mutex
	obs := Start(context.Background(), Config{
		Sentinels: []Endpoint{{"s", sent.Addr()}}, Redis: nodes, Rec: rec, Poll: 100 * time.Millisecond,
		VIPHolders: func(context.Context) ([]string, error) {
			hmu.Lock()
			defer hmu.Unlock()
			return append([]string(nil), holders...), nil
		},
	})
	defer obs.Stop()
	rec.waitFor(t, 5*time.Second, "initial roles", func(e history.Event) bool { return e.Node == "r" && e.Attrs["role"] == "slave" })
	hmu.Lock()
	holders = []string{"p1", "p2"}
	hmu.Unlock()
	rec.waitFor(t, 2*time.Second, "dual VIP", func(e history.Event) bool { return e.Kind == history.KindVIPHolder && e.Attrs["count"] == "2" })
	fault := time.Now()
	master.Kill()
	sw := rec.waitFor(t, 20*time.Second, "+switch-master", func(e history.Event) bool { return e.Kind == history.KindSwitchMaster })
	if sw.Attrs["to"] != replica.Addr() || sw.Attrs["from"] != master.Addr() {
		t.Fatalf("switch: %+v", sw)
	}
	rec.waitFor(t, 5*time.Second, "promotion seen by role polling", func(e history.Event) bool { return e.Node == "r" && e.Attrs["role"] == "master" })
	rec.waitFor(t, 5*time.Second, "dead master", func(e history.Event) bool { return e.Node == "m" && e.Attrs["role"] == "unreachable" })
	kinds := map[string]bool{}
	for _, e := range rec.events() {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"+sdown", "+odown", "+try-failover"} {
		if !kinds[k] {
			t.Errorf("no %s event", k)
		}
	}
	ev := rec.events()
	history.SortEvents(ev)
	v := check.Failover(check.Input{Events: ev, InitialMaster: initial, FaultStart: fault}, check.FailoverExpectation{Count: 1, Within: 15 * time.Second})
	if v.Status != check.Pass {
		t.Fatalf("%+v", v)
	}
	// Not converged while the old master is dead and still listed.
	_, _, err = Converge(context.Background(), nodes, time.Second)
	if err == nil || !strings.Contains(err.Error(), "not converged") {
		t.Fatalf("converge with a dead node: %v", err)
	}
	m, _, err := Converge(context.Background(), nodes[1:], 5*time.Second)
	if err != nil || m.Node != "r" {
		t.Fatalf("converge on the survivor: %v %v", m, err)
	}
	f, err := ReadFinal(context.Background(), m, []string{"x"}, []string{"y"})
	if err != nil || !f.Converged || len(f.Registers) != 0 || len(f.Sets["y"]) != 0 {
		t.Fatalf("final %+v %v", f, err)
	}
}

func TestParseShowStat(t *testing.T) {
	csv := "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n" +
		"redis,FRONTEND,,,0,1,4096,1,0,0,0,0,0,,,,,OPEN,\n" +
		"redis_backend,redis1,0,0,0,1,,1,0,0,,0,,0,0,0,0,UP,1\n" +
		"redis_backend,redis2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1\n" +
		"redis_backend,BACKEND,0,0,0,1,410,1,0,0,0,0,,0,0,0,0,UP,1\n"
	got, err := parseShowStat(csv)
	if err != nil || len(got) != 2 || got["redis_backend/redis1"] != "UP" || got["redis_backend/redis2"] != "DOWN" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := parseShowStat("Unknown command\n"); err == nil {
		t.Fatal("accepted garbage")
	}
}
