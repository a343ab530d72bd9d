package interop_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

// sdownEvent is one +sdown/-sdown message about the master, stamped when the
// test read it.
type sdownEvent struct {
	from string // "sentinel" or "witness"
	typ  string
	at   time.Time
}

// watchSDown subscribes to +sdown and -sdown on addr and forwards the
// master's events until ctx ends.
func watchSDown(t *testing.T, ctx context.Context, addr, from string, out chan<- sdownEvent) {
	t.Helper()
	c, err := resp.Dial(ctx, addr, resp.DialOptions{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, "+sdown", "-sdown"); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer c.Close()
		for {
			m, err := c.ReceiveMessage(ctx)
			if err != nil {
				return
			}
			if len(m.Payload) > 7 && m.Payload[:7] == "master " {
				out <- sdownEvent{from: from, typ: m.Channel, at: time.Now()}
			}
		}
	}()
}

// TestCrashSeenLikeSentinel: a master process killed at a random phase of
// the witness's ping cycle is SDOWN at the witness within 250 ms of the real
// sentinel (issue 10: the witness hears the closed connection at once, pings
// at once, and times SDOWN from that PING, as sentinel's reconnect path
// does), over 10 kills.
func TestCrashSeenLikeSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("10 master kills against real processes")
	}
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	master := testenv.StartRedis(t, testenv.RedisOptions{})
	s := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: master.Addr(), DownAfterMs: downAfterMs, FailoverTimeout: failoverTimeout})
	w := startWitness(t, witnessOpts{MasterAddr: master.Addr()})
	meshReady(t, s, w)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan sdownEvent, 64)
	watchSDown(t, ctx, s.Addr(), "sentinel", events)
	watchSDown(t, ctx, w.Addr(), "witness", events)
	flags := func(addr string) string {
		v, err := testenv.Do(addr, 2*time.Second, "SENTINEL", "MASTER", "mymaster")
		if err != nil {
			return ""
		}
		m, _ := v.Pairs()
		return m["flags"]
	}
	for kill := 1; kill <= 10; kill++ {
		eventually(t, 15*time.Second, "both to see the master up", func() bool {
			return flags(s.Addr()) == "master" && flags(w.Addr()) == "master"
		})
		for len(events) > 0 {
			<-events
		}
		// Both reconnected to the restarted master less than a ping period
		// ago, and a reconnect PING waits for the ping period since the
		// last one (sentinelReconnectInstance): let that pass, so the kill
		// meets links that have been up a while, as in production. Then a
		// random phase of the ping cycle.
		time.Sleep(1100*time.Millisecond + time.Duration(rand.Int64N(int64(1100*time.Millisecond))))
		killed := time.Now()
		master.Kill()
		got := map[string]time.Time{}
		deadline := time.After(5 * time.Second)
		for len(got) < 2 {
			select {
			case e := <-events:
				if e.typ == "+sdown" {
					got[e.from] = e.at
				}
			case <-deadline:
				t.Fatalf("kill %d: +sdown seen from %v only", kill, got)
			}
		}
		delta := got["witness"].Sub(got["sentinel"])
		t.Logf("kill %d: sentinel +sdown %v after the kill, witness %v, delta %v", kill,
			got["sentinel"].Sub(killed).Round(time.Millisecond), got["witness"].Sub(killed).Round(time.Millisecond), delta.Round(time.Millisecond))
		if delta > 250*time.Millisecond || delta < -250*time.Millisecond {
			t.Errorf("kill %d: witness +sdown %v from the real sentinel's (want within 250ms)", kill, delta)
		}
		master.Start()
		master.WaitReady(10 * time.Second)
	}
}
