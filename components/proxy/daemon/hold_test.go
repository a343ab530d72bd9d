package daemon

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestHoldWhileConnectingIsNotAMove: the master's probe times out while a
// client's connection to it is being set up (between the dial and the
// check that the route still names it), so the route goes on hold and comes
// back to the same master. The client must get its connection, not "master
// changed while connecting": under load one late probe refused clients whose
// master never changed (the idle-connection benchmark failed at connection
// 7140 that way).
func TestHoldWhileConnectingIsNotAMove(t *testing.T) {
	a := startRedis(t)
	cfg := testConfig([]string{a.addr}, nil)
	cfg.Routing.HoldNewConnections = 5 * time.Second
	p := startProxy(t, cfg)
	waitRoute(t, p, a.addr)

	held := false
	var once sync.Once
	hook := func() { once.Do(func() { held = holdMaster(t, p, a) }) }
	p.afterDial.Store(&hook)
	c := p.testClient(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET through a connection made across a hold: %v", err)
	}
	if !held {
		t.Fatal("the hold did not happen while connecting: the test proves nothing")
	}
}

// holdMaster freezes the master until its probe times out and the route is
// on hold, then lets it answer again; it reports whether the hold came.
func holdMaster(t *testing.T, p *Proxy, master *node) bool {
	if err := master.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Error(err)
		return false
	}
	defer master.cmd.Process.Signal(syscall.SIGCONT)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if r := p.Route(); r.Master == "" && r.Hold {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Error("the route never went on hold with the master stopped")
	return false
}
