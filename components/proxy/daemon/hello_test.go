package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// stackACL is the redisha stack's ACL: the "user" lines of its redis.conf
// template, which the lab renders unchanged.
func stackACL(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../../scenarios/stacks/redisha/redis.conf.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "user ") {
			users = append(users, l)
		}
	}
	if len(users) == 0 {
		t.Fatal("the redisha stack's redis.conf has no ACL users")
	}
	return users
}

const (
	labSentinelUser = "redisha-sentinel"
	labSentinelPass = "redisha-lab-sentinel"
)

// The stack's ACL: a client on the default user cannot forge a hello (or
// lift the restriction); the sentinels' user can publish; the default user
// keeps its pub/sub on ordinary channels and may subscribe to the hellos.
func TestStackACLRefusesForgedHello(t *testing.T) {
	n := startRedis(t, stackACL(t)...)
	ctx := context.Background()
	def := n.client()
	forged := "127.0.0.1,26379," + strings.Repeat("a", 40) + ",9,mymaster,127.0.0.1,1,9"
	for _, cmd := range [][]any{
		{"PUBLISH", "__sentinel__:hello", forged},
		{"SPUBLISH", "__sentinel__:hello", forged},
		{"EVAL", "return redis.call('publish','__sentinel__:hello',ARGV[1])", 0, forged},
		{"ACL", "SETUSER", "default", "+publish", "allchannels"},
		{"CONFIG", "SET", "aclfile", "/tmp/x"},
	} {
		err := def.Do(ctx, cmd...).Err()
		if err == nil || !strings.Contains(err.Error(), "NOPERM") && !strings.Contains(err.Error(), "can't publish") {
			t.Errorf("default user %v: %v, want a permission error", cmd[:2], err)
		}
	}
	if err := def.Publish(ctx, "app:ps", "x").Err(); err != nil {
		t.Errorf("default user PUBLISH app:ps: %v", err)
	}
	sub := def.Subscribe(ctx, "__sentinel__:hello")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatalf("default user SUBSCRIBE __sentinel__:hello: %v", err)
	}
	sen := redis.NewClient(&redis.Options{Addr: n.addr, Username: labSentinelUser, Password: labSentinelPass, Protocol: 2, DisableIdentity: true})
	defer sen.Close()
	if got, err := sen.Publish(ctx, "__sentinel__:hello", "genuine").Result(); err != nil || got != 1 {
		t.Fatalf("sentinel user PUBLISH __sentinel__:hello: %d %v", got, err)
	}
	if m, err := sub.ReceiveMessage(ctx); err != nil || m.Payload != "genuine" {
		t.Fatalf("subscriber got %v %v", m, err)
	}
}

// With hello_views on, the proxy learns each real sentinel's run id
// (SENTINEL MYID) and keeps the hellos the sentinels publish on the nodes
// (under the stack's ACL, sentinels on its user), on every configured
// backend, routing as before.
func TestHelloPathRealSentinels(t *testing.T) {
	acl := stackACL(t)
	a := startRedis(t, acl...)
	b := startRedis(t, append(acl, fmt.Sprintf("replicaof 127.0.0.1 %d", a.port))...)
	waitFor(t, 10*time.Second, "replica link up", func() bool { return linkUp(b) })
	var sentinels []string
	for range 3 {
		s := startProcess(t, "redis-sentinel", fmt.Sprintf(
			"sentinel monitor m 127.0.0.1 %d 2\nsentinel down-after-milliseconds m 1000\n"+
				"sentinel auth-user m %s\nsentinel auth-pass m %s\n", a.port, labSentinelUser, labSentinelPass))
		sentinels = append(sentinels, s.addr)
	}
	cfg := testConfig([]string{a.addr, b.addr}, sentinels)
	cfg.Routing.HelloViews = true
	// A sentinel publishes a hello every 2 s; testConfig's view TTL (3 x
	// 200 ms + 300 ms = 0.9 s) would keep each sentinel's hello view
	// fresh less than half the time, so the three are fresh at once only
	// when their publish phases happen to be within 0.9 s of each other
	// (a flake seen under -race). With a TTL above the hello period plus
	// a second of jitter, a hello view heard stays fresh until the next.
	cfg.Routing.ViewTTL = 3 * time.Second
	p := startProxy(t, cfg)
	waitRoute(t, p, a.addr)
	waitFor(t, 15*time.Second, "a kept hello of every sentinel", func() bool {
		s := p.Snapshot()
		for _, st := range s.Sentinels {
			if st.RunID == "" || !st.HelloFresh || st.HelloMaster != a.addr {
				return false
			}
		}
		return s.Hellos.Kept > 0
	})
	s := p.Snapshot()
	if s.Hellos.BadRunID+s.Hellos.Unknown+s.Hellos.NoRunID > s.Hellos.Heard/2 {
		t.Errorf("most hellos dropped: %+v", s.Hellos)
	}
	if st := p.stats.Load(); st.HellosBad != 0 {
		t.Errorf("%d hellos did not parse", st.HellosBad)
	}
	// /status shows the same: the path on, every sentinel's run id and
	// fresh hello view, and the counters.
	doc := p.StatusNow()
	if !doc.HelloViews || doc.Hellos == nil || doc.Hellos.Kept == 0 {
		t.Errorf("/status: hello_views %v, hellos %+v", doc.HelloViews, doc.Hellos)
	}
	for _, st := range doc.Sentinels {
		if st.RunID == "" || !st.HelloFresh || st.HelloMaster != a.addr || st.HelloAt.IsZero() {
			t.Errorf("/status sentinel %s: run_id %q hello_fresh %v hello_master %q hello_at %v", st.Addr, st.RunID, st.HelloFresh, st.HelloMaster, st.HelloAt)
		}
	}
	t.Logf("hellos: %+v", s.Hellos)
}
