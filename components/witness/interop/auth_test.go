package interop_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// TestAuthPassAndAnnounce: the witness monitors password-protected Redis
// nodes with auth_pass, protects its own API with requirepass (the real
// sentinel authenticates with sentinel-pass), and announces the address set
// by announce_ip, which is the one the real sentinel then lists and uses.
func TestAuthPassAndAnnounce(t *testing.T) {
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	master := testenv.StartRedis(t, testenv.RedisOptions{})
	replica := testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: master.Addr()})
	// testenv waits for readiness with an unauthenticated PING, so the
	// password goes in once they run.
	for _, n := range []*testenv.Process{master, replica} {
		do(t, n.Addr(), "CONFIG", "SET", "masterauth", "nodepw")
		do(t, n.Addr(), "CONFIG", "SET", "requirepass", "nodepw")
	}
	s1 := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: master.Addr(),
		Extra: []string{"sentinel auth-pass mymaster nodepw", "sentinel sentinel-pass witnesspw"}})
	w := startWitness(t, witnessOpts{MasterAddr: master.Addr(), AuthPass: "nodepw", Binds: []string{"127.0.0.1", "127.0.0.2"},
		AnnounceIP: "127.0.0.2", Requirepass: "witnesspw"})
	if _, err := testenv.Do(w.Addr(), time.Second, "SENTINEL", "MYID"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("unauthenticated client got %v, want NOAUTH", err)
	}
	var wid string
	eventually(t, 20*time.Second, "the real sentinel to list the witness at its announced address", func() bool {
		v, err := testenv.Do(s1.Addr(), time.Second, "SENTINEL", "SENTINELS", "mymaster")
		if err != nil || len(v.Elems) != 1 {
			return false
		}
		m, _ := v.Elems[0].Pairs()
		wid = m["runid"]
		return m["ip"] == "127.0.0.2" && m["port"] == fmt.Sprint(w.Port) && m["flags"] == "sentinel"
	})
	// The replica was told masterauth after it began to sync: on a loaded
	// machine its first handshake can meet the new requirepass and retry.
	// Until the master lists it online, no observer can find it in INFO.
	eventually(t, 30*time.Second, "the replica to sync with the protected master", func() bool {
		v, err := doAuth(master.Addr(), "nodepw", "INFO", "replication")
		return err == nil && strings.Contains(v.Str, "state=online")
	})
	// The witness reaches the protected master: not down, and it found the
	// replica via INFO (sent every 10 s, so the deadline covers two).
	var last map[string]string
	if _, ok := within(25*time.Second, func() bool {
		v, err := doAuth(w.Addr(), "witnesspw", "SENTINEL", "MASTER", "mymaster")
		if err != nil {
			return false
		}
		last, _ = v.Pairs()
		return last["flags"] == "master" && last["num-slaves"] == "1" && last["num-other-sentinels"] == "1"
	}); !ok {
		t.Fatalf("the witness does not monitor the protected master: flags %q, num-slaves %q, num-other-sentinels %q (want master, 1, 1)",
			last["flags"], last["num-slaves"], last["num-other-sentinels"])
	}
	// Still healthy after two down-after periods: the sentinel's PINGs are
	// authenticated (a NOAUTH reply would turn the witness s_down).
	time.Sleep(2 * downAfterMs * time.Millisecond)
	v := do(t, s1.Addr(), "SENTINEL", "SENTINELS", "mymaster")
	if m, _ := v.Elems[0].Pairs(); m["flags"] != "sentinel" {
		t.Fatalf("real sentinel sees the witness as %q", m["flags"])
	}
	if len(wid) != 40 {
		t.Fatalf("witness run id %q", wid)
	}
}
