package interop_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisha/redisha/components/testenv"
)

const debianPython = "/usr/bin/python3"

const redisPy = `
import sys
from redis.sentinel import Sentinel
s = Sentinel([(sys.argv[1], int(sys.argv[2]))], socket_timeout=2)
ip, port = s.discover_master('mymaster')
m = s.master_for('mymaster', socket_timeout=2)
m.set('redis-py', 'ok')
print("%s:%s %s" % (ip, port, m.config_get('port')['port']))
`

// redisPyMaster asks redis-py's Sentinel, pointed only at the witness, for
// the master, writes to it, and returns "ip:port servedport".
func redisPyMaster(t *testing.T, witness string) (string, error) {
	h, p, _ := net.SplitHostPort(witness)
	// Debian's interpreter, where python3-redis lives (a pyenv shim may come first on PATH).
	out, err := exec.Command(debianPython, "-c", redisPy, h, p).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func redisCliMaster(t *testing.T, witness string, resp3 bool) (string, error) {
	h, p, _ := net.SplitHostPort(witness)
	args := []string{"-h", h, "-p", p}
	if resp3 {
		args = append(args, "-3")
	}
	args = append(args, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 {
		return string(out), fmt.Errorf("redis-cli: %v: %s", err, out)
	}
	// RESP2 prints "ip\nport", RESP3 "1) "ip"\n2) (integer) port" or similar: take the last two tokens.
	ip, port := strings.Trim(f[len(f)-2], `"`), strings.Trim(f[len(f)-1], `"`)
	return net.JoinHostPort(ip, port), nil
}

// TestClientsFindMasterThroughWitness: go-redis FailoverClient (RESP3),
// redis-cli (RESP2 and RESP3) and redis-py's Sentinel (RESP2), configured with
// the witness as their only sentinel, find the master and, after a failover
// done by a real sentinel, the new one. The witness pushes +switch-master to
// subscribers.
func TestClientsFindMasterThroughWitness(t *testing.T) {
	testenv.RequireBinary(t, debianPython, "redis-cli")
	st := newStack(t, true)
	oldM, newM := st.master.Addr(), st.replica.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, resp3 := range []bool{false, true} {
		if got, err := redisCliMaster(t, st.w.Addr(), resp3); err != nil || got != oldM {
			t.Fatalf("redis-cli (resp3=%v) master %q %v, want %s", resp3, got, err, oldM)
		}
	}
	if got, err := redisPyMaster(t, st.w.Addr()); err != nil || got != fmt.Sprintf("%s %d", oldM, st.master.Port) {
		t.Fatalf("redis-py: %q %v", got, err)
	}
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{st.w.Addr()},
		DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: 0})
	defer fc.Close()
	if port, err := fc.ConfigGet(ctx, "port").Result(); err != nil || port["port"] != fmt.Sprint(st.master.Port) {
		t.Fatalf("go-redis FailoverClient: %v %v", port, err)
	}
	// A RESP3 subscriber on the witness.
	sc := redis.NewSentinelClient(&redis.Options{Addr: st.w.Addr(), Protocol: 3})
	defer sc.Close()
	ps := sc.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ps.Ping(ctx); err != nil {
		t.Fatalf("PING while subscribed: %v", err)
	}

	st.master.Kill()
	st.s1.Kill()
	msg, err := ps.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("mymaster %s %d %s %d", st.master.Host, st.master.Port, st.replica.Host, st.replica.Port)
	if msg.Payload != want {
		t.Fatalf("+switch-master %q, want %q", msg.Payload, want)
	}
	eventually(t, 20*time.Second, "go-redis FailoverClient to reach the new master", func() bool {
		port, err := fc.ConfigGet(ctx, "port").Result()
		return err == nil && port["port"] == fmt.Sprint(st.replica.Port)
	})
	if err := fc.Set(ctx, "after-failover", "1", 0).Err(); err != nil {
		t.Fatalf("write through FailoverClient after failover: %v", err)
	}
	for _, resp3 := range []bool{false, true} {
		if got, err := redisCliMaster(t, st.w.Addr(), resp3); err != nil || got != newM {
			t.Errorf("redis-cli (resp3=%v) after failover %q %v, want %s", resp3, got, err, newM)
		}
	}
	eventually(t, 10*time.Second, "redis-py to find the new master", func() bool {
		got, err := redisPyMaster(t, st.w.Addr())
		return err == nil && got == fmt.Sprintf("%s %d", newM, st.replica.Port)
	})
}
