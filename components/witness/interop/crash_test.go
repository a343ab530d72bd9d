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
//
// Both observers are compared on the same kill, never against a wall-clock
// expectation. One thing is not a crash measurement: an observer that
// declares SDOWN less than down-after after the kill was timing a PING left
// unanswered before it (the loaded machine stalled the master or the
// observer), so its +sdown says nothing about how fast it saw the crash.
// Such a kill is logged and done again; the 10 kills compared are ones
// where both observers timed SDOWN from the crash itself.
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
	// A kill that meets an observer already timing a pre-kill stall is
	// redone; if the machine stalls that often, the test says so.
	const kills, maxAttempts = 10, 25
	attempt := 0
	for kill := 1; kill <= kills; kill++ {
		attempt++
		if attempt > maxAttempts {
			t.Fatalf("only %d of %d attempts were crash measurements (an observer declared SDOWN less than down-after after the kill, timing a stall from before it): the machine is stalling the processes", kill-1, maxAttempts)
		}
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
		if early := earlyObserver(got, killed); early != "" {
			t.Logf("kill %d (attempt %d) not counted: %s +sdown %v after the kill, less than down-after (%d ms): it was timing a PING left unanswered before the kill (sentinel %v, witness %v)",
				kill, attempt, early, got[early].Sub(killed).Round(time.Millisecond), downAfterMs,
				got["sentinel"].Sub(killed).Round(time.Millisecond), got["witness"].Sub(killed).Round(time.Millisecond))
			master.Start()
			master.WaitReady(10 * time.Second)
			kill--
			continue
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

// earlyObserver names an observer whose +sdown came less than down-after
// after the kill ("" if none): the crash cannot be timed before it happens,
// so that observer's SDOWN clock started at a PING sent before the kill
// and left unanswered (a stall of the master or of the observer). The
// test's stamps are taken when it reads the events, never earlier than the
// observer's decision, so the rule only names an observer that certainly
// started early.
func earlyObserver(got map[string]time.Time, killed time.Time) string {
	for _, from := range []string{"sentinel", "witness"} {
		if got[from].Sub(killed) < downAfterMs*time.Millisecond {
			return from
		}
	}
	return ""
}
