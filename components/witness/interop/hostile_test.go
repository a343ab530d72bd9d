package interop_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

// rssKiB reads VmRSS and VmHWM (peak) of pid.
func rssKiB(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				rss = n
			case "VmHWM:":
				hwm = n
			}
		}
	}
	return rss, hwm
}

// sentinelSees reports whether the real sentinel s lists the peer with run
// id id as a healthy sentinel (flags exactly "sentinel", a PING answered
// within the last 2 s).
func sentinelSees(t *testing.T, s *testenv.Process, id string) bool {
	v, err := testenv.Do(s.Addr(), 2*time.Second, "SENTINEL", "SENTINELS", "mymaster")
	if err != nil {
		return false
	}
	for _, e := range v.Elems {
		m, _ := e.Pairs()
		if m["runid"] == id {
			ok, _ := strconv.Atoi(m["last-ok-ping-reply"])
			return m["flags"] == "sentinel" && ok < 2000
		}
	}
	return false
}

// TestUnauthenticatedMemoryAttacks (issue 10 part 3): with requirepass, an
// unauthenticated client declaring a $536870000 bulk and sending 100 MB, and
// one declaring *16000000 and sending 2 million $0, leave the witness under
// 32 MiB of RSS (peak included), and it keeps answering its peer.
func TestUnauthenticatedMemoryAttacks(t *testing.T) {
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	master := testenv.StartRedis(t, testenv.RedisOptions{})
	s := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: master.Addr(), Extra: []string{"sentinel sentinel-pass witnesspw"}})
	w := startWitness(t, witnessOpts{MasterAddr: master.Addr(), Requirepass: "witnesspw", LogLevel: "info"})
	wid := authedID(t, w.Addr(), "witnesspw")
	eventually(t, 20*time.Second, "the real sentinel to list the witness", func() bool { return sentinelSees(t, s, wid) })

	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r, _ := rssKiB(w.Pid()); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	before, _ := rssKiB(w.Pid())
	attack := func(name, header string, body func(func([]byte) error) error) {
		c, err := net.Dial("tcp", w.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sent := int64(0)
		write := func(b []byte) error {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Write(b)
			sent += int64(n)
			return err
		}
		err = write([]byte(header))
		if err == nil {
			err = body(write)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		reply, _ := io.ReadAll(bufio.NewReader(c))
		t.Logf("%s: %d bytes accepted by the socket before it ended (%v); witness replied %q", name, sent, err, strings.TrimSpace(string(reply)))
	}
	attack("$536870000 bulk, 100 MB", "*1\r\n$536870000\r\n", func(write func([]byte) error) error {
		chunk := make([]byte, 1<<20)
		for i := 0; i < 100; i++ {
			if err := write(chunk); err != nil {
				return err
			}
		}
		return nil
	})
	attack("*16000000 then 2 million $0", "*16000000\r\n", func(write func([]byte) error) error {
		chunk := []byte(strings.Repeat("$0\r\n\r\n", 10000))
		for i := 0; i < 200; i++ {
			if err := write(chunk); err != nil {
				return err
			}
		}
		return nil
	})
	// The peer still gets answers, now and a few PING periods later.
	if v, err := doAuth(w.Addr(), "witnesspw", "PING"); err != nil || v.Str != "PONG" {
		t.Fatalf("PING after the attacks: %v %v", v, err)
	}
	time.Sleep(3 * time.Second)
	if !sentinelSees(t, s, wid) {
		t.Fatal("the real sentinel lost the witness after the attacks")
	}
	close(stop)
	<-sampled
	_, hwm := rssKiB(w.Pid())
	t.Logf("witness RSS: %d KiB before, %d KiB peak sampled during the attacks, VmHWM %d KiB", before, peak.Load(), hwm)
	if peak.Load() >= 32<<10 || hwm >= 32<<10 {
		t.Fatalf("witness RSS reached %d KiB (VmHWM %d KiB), want under 32 MiB", peak.Load(), hwm)
	}
}

func authedID(t *testing.T, addr, pass string) string {
	t.Helper()
	v, err := doAuth(addr, pass, "SENTINEL", "MYID")
	if err != nil {
		t.Fatal(err)
	}
	return v.Str
}

// persistCount reads how many state file writes the witness made so far
// from its metrics.
func persistCount(t *testing.T, metrics string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", metrics, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(c)
	m := regexp.MustCompile(`(?m)^redisha_witness_state_persist_seconds_count (\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no persist count in the metrics:\n%s", b)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestForgedHelloFlood (issue 10 part 3): 1000 forged hellos published
// through the monitored master (forged peers at 127.x.y.z) leave at most the
// bound (32) of peers at the witness and a handful of state writes; the real
// sentinels stay listed, and the witness still gives its vote in a
// failover right after the flood.
func TestForgedHelloFlood(t *testing.T) {
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	st := &stack{}
	st.master = testenv.StartRedis(t, testenv.RedisOptions{})
	st.replica = testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: st.master.Addr()})
	eventually(t, 30*time.Second, "the replica to sync", func() bool { return replicaOnline(t, st.master.Addr()) })
	so := testenv.SentinelOptions{MasterAddr: st.master.Addr(), DownAfterMs: downAfterMs, FailoverTimeout: failoverTimeout}
	st.s1 = testenv.StartSentinel(t, so)
	st.s2 = testenv.StartSentinel(t, so)
	metrics := net.JoinHostPort("127.0.0.1", strconv.Itoa(testenv.FreePort(t)))
	st.w = startWitness(t, witnessOpts{MasterAddr: st.master.Addr(), LogLevel: "info", Extra: "metrics_listen: " + metrics + "\n"})
	meshReady(t, st.s1, st.s2, st.w)
	s1id, s2id, wid := myID(t, st.s1.Addr()), myID(t, st.s2.Addr()), myID(t, st.w.Addr())
	writesBefore := persistCount(t, metrics)

	mh, mp, _ := net.SplitHostPort(st.master.Addr())
	c, err := resp.Dial(t.Context(), st.master.Addr(), resp.DialOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		h := fmt.Sprintf("127.1.%d.%d,9,%040x,0,mymaster,%s,%s,0", i/250, i%250+1, i+1, mh, mp)
		if err := c.Send("PUBLISH", "__sentinel__:hello", h); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000; i++ {
		if _, err := c.Receive(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	flooded := time.Now()
	eventually(t, 10*time.Second, "the witness to take the flood", func() bool {
		p, err := trySentinelsOf(st.w.Addr(), 3*time.Second)
		return err == nil && len(p) >= 32
	})
	time.Sleep(3 * time.Second) // the coalesced write is due within a second
	peers := sentinelsOf(t, st.w.Addr())
	writes := persistCount(t, metrics) - writesBefore
	t.Logf("after 1000 forged hellos: %d peers at the witness, %d state writes", len(peers), writes)
	if len(peers) > 32 {
		t.Errorf("%d peers at the witness, want at most 32", len(peers))
	}
	// Listed; the real sentinels themselves may answer slowly meanwhile
	// (each is dialling the 1000 forged peers it took in), so their flags
	// are only logged.
	if peers[s1id] == "" || peers[s2id] == "" {
		t.Errorf("the real sentinels are not listed after the flood: %v", peers)
	}
	t.Logf("real sentinels' flags at the witness: %q, %q", peers[s1id], peers[s2id])
	if writes > 5 {
		t.Errorf("%d state file writes for the flood, want a handful at most", writes)
	}

	// The real sentinels took the flood too (redis-sentinel has no bound,
	// and counts every known sentinel as a voter): reset them, as an
	// operator would; the witness keeps its table.
	for _, s := range []*testenv.Process{st.s1, st.s2} {
		// A sentinel busy dialling 1000 forged peers answers slowly, and
		// on a loaded machine more slowly than any one timeout: ask again
		// until it answers (a RESET it read before the client gave up only
		// resets it once more), within a deadline.
		var v resp.Value
		var err error
		if _, ok := within(90*time.Second, func() bool {
			v, err = testenv.Do(s.Addr(), 20*time.Second, "SENTINEL", "RESET", "mymaster")
			return err == nil
		}); !ok || v.Int != 1 {
			t.Fatalf("SENTINEL RESET on %s: %+v %v", s.Name, v, err)
		}
	}
	// The flood froze them long enough to enter TILT (30 s): wait it out.
	notTilted := func(s *testenv.Process) bool {
		v, err := testenv.Do(s.Addr(), 2*time.Second, "INFO", "sentinel")
		return err == nil && strings.Contains(v.Str, "sentinel_tilt:0")
	}
	eventually(t, 60*time.Second, "the real sentinels to find each other and the witness again, out of TILT", func() bool {
		// Real sentinels still digesting the flood may answer slowly: a
		// slow answer is "not yet", the 60 s deadline decides.
		a, errA := trySentinelsOf(st.s1.Addr(), 5*time.Second)
		b, errB := trySentinelsOf(st.s2.Addr(), 5*time.Second)
		return errA == nil && errB == nil && len(a) == 2 && len(b) == 2 && a[wid] == "sentinel" && b[wid] == "sentinel" && a[s2id] == "sentinel" && b[s1id] == "sentinel" &&
			notTilted(st.s1) && notTilted(st.s2)
	})
	t.Logf("real sentinels reset and meshed again %v after the flood", time.Since(flooded).Round(time.Millisecond))
	// SENTINEL RESET also forgot the replica: the sentinel that will lead
	// learns it again from the master's INFO (every 10 s). Killing the master
	// before that leaves it no replica to promote (-failover-abort-no-good-slave).
	newMaster := st.replica.Addr()
	eventually(t, 60*time.Second, "the surviving sentinel to know the replica again", func() bool {
		v, err := testenv.Do(st.s2.Addr(), 2*time.Second, "SENTINEL", "REPLICAS", "mymaster")
		if err != nil {
			return false
		}
		for _, e := range v.Elems {
			m, err := e.Pairs()
			if err == nil && m["ip"]+":"+m["port"] == newMaster && m["flags"] == "slave" && m["master-link-status"] == "ok" {
				return true
			}
		}
		return false
	})

	// A failover that needs the witness's vote.
	st.master.Kill()
	st.s1.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for masterAddr(t, st.s2.Addr()) != newMaster {
		if time.Now().After(deadline) {
			t.Fatalf("no failover in 30 s\n%s\n%s", st.s2.LogTail(40), st.w.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The leader may have needed more than one attempt (one epoch each);
	// what matters is that the witness gave its vote.
	if n := countMatches(readLog(st.w), `\+vote-for-leader `+s2id); n < 1 {
		t.Errorf("witness logged no vote for the leader")
	} else {
		t.Logf("witness voted for the leader in %d epoch(s)", n)
	}
	if !regexp.MustCompile(wid + ` voted for ` + s2id).MatchString(readLog(st.s2)) {
		t.Error("the leader's log does not show the witness's vote")
	}
	// SENTINEL RESET on the witness empties its table too.
	if v := do(t, st.w.Addr(), "SENTINEL", "RESET", "*"); v.Int != 1 {
		t.Fatalf("SENTINEL RESET on the witness: %+v", v)
	}
	if n := len(sentinelsOf(t, st.w.Addr())); n > 1 {
		t.Errorf("%d peers right after SENTINEL RESET", n)
	}
}

// TestIdleUnauthenticatedClosed (issue 10 part 3): with maxclients 5 held by
// unauthenticated idle connections, a real sentinel started afterwards
// still gets through (each newcomer takes the oldest idler's place), and the
// idlers are closed at the auth timeout.
func TestIdleUnauthenticatedClosed(t *testing.T) {
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	master := testenv.StartRedis(t, testenv.RedisOptions{})
	w := startWitness(t, witnessOpts{MasterAddr: master.Addr(), Requirepass: "witnesspw", LogLevel: "info",
		Extra: "maxclients: 5\nauth_timeout: 4s\n"})
	wid := authedID(t, w.Addr(), "witnesspw")
	var idle []net.Conn
	opened := time.Now()
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", w.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	s := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: master.Addr(), Extra: []string{"sentinel sentinel-pass witnesspw"}})
	eventually(t, 20*time.Second, "the real sentinel to reach the witness past the idlers", func() bool { return sentinelSees(t, s, wid) })
	for i, c := range idle {
		c.SetReadDeadline(opened.Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if os.IsTimeout(err) {
			t.Fatalf("idle connection %d still open %v after it connected (auth timeout 4 s): %v", i, time.Since(opened), err)
		}
		if len(b) > 0 {
			t.Logf("idle connection %d got %q before it was closed", i, b)
		}
	}
	t.Logf("all 5 idlers closed within %v", time.Since(opened).Round(time.Millisecond))
	if !sentinelSees(t, s, wid) {
		t.Fatal("the real sentinel lost the witness")
	}
}
