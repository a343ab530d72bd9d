package daemon

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

// TestIsolatedMasterStillReachableByProxy is the recipe's split brain: the
// master is cut off from its replica and from the other sentinels but the
// proxy still reaches it, and it keeps answering role:master. The sentinels
// on the majority side promote the replica. HAProxy would now route to both;
// redisha-proxy must route only to the promoted replica and cut the old
// master's client connections.
func TestIsolatedMasterStillReachableByProxy(t *testing.T) {
	topo := testenv.NewTopology(t, "rhp-", netip.MustParsePrefix("10.80.0.0/24"), "a", "b", "c")
	ha, hb, hc := topo.Host("a"), topo.Host("b"), topo.Host("c")
	a := testenv.StartRedis(t, testenv.RedisOptions{Host: ha.IP.String(), Port: 6379, Netns: ha.Netns,
		Extra: []string{"--repl-diskless-sync-delay", "0"}})
	b := testenv.StartRedis(t, testenv.RedisOptions{Host: hb.IP.String(), Port: 6379, Netns: hb.Netns, ReplicaOf: a.Addr()})
	do := func(addr string, args ...string) resp.Value {
		t.Helper()
		v, err := testenv.Do(addr, 2*time.Second, args...)
		if err != nil {
			t.Fatalf("%s %v: %v", addr, args, err)
		}
		return v
	}
	waitFor(t, 10*time.Second, "replica link up", func() bool {
		v, err := testenv.Do(b.Addr(), time.Second, "INFO", "replication")
		return err == nil && resp.ParseInfo(v.Str).Get("master_link_status") == "up"
	})
	var sentinels []string
	for _, h := range []*testenv.Host{ha, hb, hc} {
		s := testenv.StartSentinel(t, testenv.SentinelOptions{Host: h.IP.String(), Port: 26379, Netns: h.Netns,
			MasterName: "m", MasterAddr: a.Addr(), Quorum: 2, DownAfterMs: 1000, FailoverTimeout: 3000})
		sentinels = append(sentinels, s.Addr())
	}
	waitFor(t, 10*time.Second, "sentinel mesh", func() bool {
		v, err := testenv.Do(sentinels[2], time.Second, "SENTINEL", "SENTINELS", "m")
		return err == nil && len(v.Elems) == 2
	})

	p := startProxy(t, testConfig([]string{a.Addr(), b.Addr()}, sentinels))
	waitRoute(t, p, a.Addr())
	old, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldR := bufio.NewReader(old)
	fmt.Fprintf(old, "SET before 1\r\n")
	if line, _ := oldR.ReadString('\n'); line != "+OK\r\n" {
		t.Fatalf("got %q", line)
	}

	// Isolate a (redis and its sentinel) from b and c. The proxy, on the
	// bridge, still reaches everyone.
	defer topo.Cut(ha, hb)()
	defer topo.Cut(ha, hc)()
	cut := time.Now()
	// First the sentinels' decision, on their own schedule: down-after 1 s,
	// then an election that can fail (both majority-side sentinels ask for
	// votes at once) and is retried only 2 x failover-timeout (6 s) later,
	// plus up to 1 s of random desync; on a loaded machine a second retry is
	// possible. That is redis-sentinel's time, not the proxy's, so it gets a
	// deadline of its own.
	waitFor(t, 30*time.Second, "the majority side's sentinels to name "+b.Addr(), func() bool {
		for _, s := range sentinels[1:] {
			v, err := testenv.Do(s, time.Second, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m")
			if err != nil || len(v.Elems) != 2 || net.JoinHostPort(v.Elems[0].Str, v.Elems[1].Str) != b.Addr() {
				return false
			}
		}
		return true
	})
	agreed := time.Now()
	// Then the proxy's part: it polls the sentinels every 200 ms here and
	// gets their notices, so it follows within a few polls; 10 s is a bound
	// for a loaded machine.
	waitFor(t, 10*time.Second, "route to "+b.Addr()+" after the sentinels agreed", func() bool {
		return p.Route().Master == b.Addr()
	})
	t.Logf("sentinels named the promoted replica %v after the cut; the proxy routed to it %v later",
		agreed.Sub(cut).Round(time.Millisecond), time.Since(agreed).Round(time.Millisecond))
	if role := do(a.Addr(), "ROLE").Elems[0].Str; role != "master" {
		t.Fatalf("isolated node reports %q; the scenario needs two masters", role)
	}
	old.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(old, "SET pt:old 1\r\n")
	if line, err := oldR.ReadString('\n'); err == nil {
		t.Fatalf("a client connection to the isolated master survived the switch: %q", line)
	}
	for i := 0; i < 50; i++ {
		c := p.testClient(t, 2)
		if err := c.Set(bg, fmt.Sprintf("pt:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("write %d after the switch: %v", i, err)
		}
		c.Close()
	}
	if n := do(a.Addr(), "EVAL", "return #redis.call('KEYS', 'pt:*')", "0").Int; n != 0 {
		t.Fatalf("isolated old master got %d writes after the switch", n)
	}
	if n := do(b.Addr(), "EVAL", "return #redis.call('KEYS', 'pt:*')", "0").Int; n != 50 {
		t.Fatalf("promoted master has %d of 50 writes", n)
	}
}
