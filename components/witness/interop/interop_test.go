package interop_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

// stack is the recipe on loopback: master + replica, two real sentinels and
// the witness, quorum 2.
type stack struct {
	master, replica *testenv.Process
	s1, s2, w       *testenv.Process
}

func newStack(t *testing.T, withWitness bool) *stack {
	t.Helper()
	testenv.RequireBinary(t, "redis-server", "redis-sentinel")
	st := &stack{}
	st.master = testenv.StartRedis(t, testenv.RedisOptions{})
	st.replica = testenv.StartRedis(t, testenv.RedisOptions{ReplicaOf: st.master.Addr()})
	eventually(t, 30*time.Second, "the replica to sync", func() bool { return replicaOnline(t, st.master.Addr()) })
	so := testenv.SentinelOptions{MasterAddr: st.master.Addr(), DownAfterMs: downAfterMs, FailoverTimeout: failoverTimeout}
	st.s1 = testenv.StartSentinel(t, so)
	st.s2 = testenv.StartSentinel(t, so)
	nodes := []*testenv.Process{st.s1, st.s2}
	if withWitness {
		st.w = startWitness(t, witnessOpts{MasterAddr: st.master.Addr()})
		nodes = append(nodes, st.w)
	}
	meshReady(t, nodes...)
	return st
}

// TestWitnessJoinsSentinelQuorum: the real sentinels list the witness as a
// healthy peer and it lists them; everyone agrees quorum can be reached.
func TestWitnessJoinsSentinelQuorum(t *testing.T) {
	st := newStack(t, true)
	wid := myID(t, st.w.Addr())
	if len(wid) != 40 {
		t.Fatalf("witness run id %q", wid)
	}
	for _, s := range []*testenv.Process{st.s1, st.s2} {
		m, _ := do(t, s.Addr(), "SENTINEL", "MASTER", "mymaster").Pairs()
		if m["num-other-sentinels"] != "2" {
			t.Errorf("%s num-other-sentinels %s", s.Name, m["num-other-sentinels"])
		}
		if v := do(t, s.Addr(), "SENTINEL", "CKQUORUM", "mymaster"); !strings.HasPrefix(v.Str, "OK 3 usable") {
			t.Errorf("%s ckquorum %q", s.Name, v.Str)
		}
	}
	m, _ := do(t, st.w.Addr(), "SENTINEL", "MASTER", "mymaster").Pairs()
	if m["num-other-sentinels"] != "2" || m["num-slaves"] != "1" || m["flags"] != "master" || m["role-reported"] != "master" {
		t.Errorf("witness SENTINEL MASTER: %v", m)
	}
	if v := do(t, st.w.Addr(), "SENTINEL", "CKQUORUM", "mymaster"); !strings.HasPrefix(v.Str, "OK 3 usable") {
		t.Errorf("witness ckquorum %q", v.Str)
	}
	// Same field names in the same order as the real thing.
	for _, q := range [][]string{{"SENTINEL", "MASTER", "mymaster"}, {"SENTINEL", "SENTINELS", "mymaster"}, {"SENTINEL", "REPLICAS", "mymaster"}} {
		real, ours := fieldNames(t, do(t, st.s1.Addr(), q...)), fieldNames(t, do(t, st.w.Addr(), q...))
		if real != ours {
			t.Errorf("%v field names differ:\nsentinel: %s\nwitness:  %s", q, real, ours)
		}
	}
	info := do(t, st.w.Addr(), "INFO", "sentinel").Str
	want := fmt.Sprintf("master0:name=mymaster,status=ok,address=%s,slaves=1,sentinels=3", st.master.Addr())
	if !strings.Contains(info, want) {
		t.Errorf("INFO sentinel lacks %q:\n%s", want, info)
	}
}

// TestFailoverNeedsWitnessVote: the master and its co-located sentinel crash
// together. The surviving sentinel can only reach ODOWN and win the election
// with the witness: exactly one failover happens and the leader logs the
// witness's vote. The control run, without the witness, must not fail over
// within three times the time the first run took.
func TestFailoverNeedsWitnessVote(t *testing.T) {
	var took time.Duration
	t.Run("with witness", func(t *testing.T) {
		st := newStack(t, true)
		wid, s2id := myID(t, st.w.Addr()), myID(t, st.s2.Addr())
		oldMaster, newMaster := st.master.Addr(), st.replica.Addr()
		start := time.Now()
		st.master.Kill()
		st.s1.Kill()
		eventually(t, 30*time.Second, "the surviving sentinel to promote the replica", func() bool {
			return masterAddr(t, st.s2.Addr()) == newMaster
		})
		took = time.Since(start)
		eventually(t, 10*time.Second, "the witness to follow the new configuration", func() bool {
			return masterAddr(t, st.w.Addr()) == newMaster
		})
		// Let any second attempt show up before counting.
		time.Sleep(3 * time.Second)
		s2log, wlog := readLog(st.s2), readLog(st.w)
		if n := countMatches(s2log, `\+switch-master mymaster `); n != 1 {
			t.Errorf("leader logged %d +switch-master, want exactly 1", n)
		}
		if n := countMatches(s2log, `\+elected-leader`); n != 1 {
			t.Errorf("leader logged %d +elected-leader, want exactly 1", n)
		}
		voted := regexp.MustCompile(wid + ` voted for ` + s2id + ` (\d+)`)
		if !voted.MatchString(s2log) {
			t.Errorf("the leader's log does not show the witness's vote (%s voted for %s)", wid, s2id)
		}
		if n := countMatches(wlog, `\+vote-for-leader `+s2id); n != 1 {
			t.Errorf("witness logged %d votes for the leader, want 1", n)
		}
		if !strings.Contains(wlog, "+switch-master mymaster "+strings.Replace(oldMaster, ":", " ", 1)+" "+strings.Replace(newMaster, ":", " ", 1)) {
			t.Errorf("witness did not log the +switch-master it learned from hellos")
		}
		if v := do(t, st.replica.Addr(), "ROLE"); v.Elems[0].Str != "master" {
			t.Errorf("replica role after failover: %v", v.Elems[0].Str)
		}
		t.Logf("failover took %v", took)

		// The witness spreads the new configuration too: with the leader gone,
		// a sentinel restarted with the old configuration can only learn it
		// from the witness's hellos (sent to it directly; the old master is dead).
		st.s2.Kill()
		st.s1.Start()
		st.s1.WaitReady(10 * time.Second)
		eventually(t, 15*time.Second, "the restarted sentinel to learn the new master from the witness", func() bool {
			return masterAddr(t, st.s1.Addr()) == newMaster
		})
		if !regexp.MustCompile(`\+config-update-from sentinel ` + wid).MatchString(readLog(st.s1)) {
			t.Errorf("restarted sentinel did not take the configuration from the witness")
		}
	})
	if took == 0 {
		t.Fatal("no baseline failover time; control run skipped")
	}
	t.Run("control without witness", func(t *testing.T) {
		st := newStack(t, false)
		oldMaster := st.master.Addr()
		st.master.Kill()
		st.s1.Kill()
		wait := 3 * took
		if wait < 6*time.Second {
			wait = 6 * time.Second
		}
		eventually(t, 10*time.Second, "the surviving sentinel to see the master down", func() bool {
			return strings.Contains(readLog(st.s2), "+sdown master mymaster")
		})
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			if a := masterAddr(t, st.s2.Addr()); a != oldMaster {
				t.Fatalf("failover without the witness: master is now %s", a)
			}
			time.Sleep(200 * time.Millisecond)
		}
		log := readLog(st.s2)
		for _, ev := range []string{"+odown", "+try-failover", "+switch-master"} {
			if strings.Contains(log, ev) {
				t.Errorf("control run logged %s", ev)
			}
		}
		t.Logf("no failover in %v (3x the witness run)", wait)
	})
}

// TestVoteSurvivesRestart: after voting for A in epoch E the witness is
// killed and restarted; asked for B in the same epoch it still names A.
func TestVoteSurvivesRestart(t *testing.T) {
	testenv.RequireBinary(t, "redis-server")
	master := testenv.StartRedis(t, testenv.RedisOptions{})
	state := t.TempDir()
	w := startWitness(t, witnessOpts{MasterAddr: master.Addr(), StateDir: state})
	host, port := "127.0.0.1", fmt.Sprint(master.Port)
	a := strings.Repeat("a", 40)
	b := strings.Repeat("b", 40)
	const epoch = "17"
	v := do(t, w.Addr(), "SENTINEL", "is-master-down-by-addr", host, port, epoch, a)
	if len(v.Elems) != 3 || v.Elems[0].Int != 0 || v.Elems[1].Str != a || v.Elems[2].Int != 17 {
		t.Fatalf("first vote: %+v", v)
	}
	for _, restart := range []string{"SIGKILL", "SIGTERM"} {
		if restart == "SIGKILL" {
			w.Kill()
		} else {
			w.Stop()
		}
		w.Start()
		w.WaitReady(10 * time.Second)
		v = do(t, w.Addr(), "SENTINEL", "is-master-down-by-addr", host, port, epoch, b)
		if v.Elems[1].Str != a || v.Elems[2].Int != 17 {
			t.Fatalf("after %s restart the witness voted %q epoch %d, want %q 17", restart, v.Elems[1].Str, v.Elems[2].Int, a)
		}
	}
	// A later epoch is a new election.
	v = do(t, w.Addr(), "SENTINEL", "is-master-down-by-addr", host, port, "18", b)
	if v.Elems[1].Str != b || v.Elems[2].Int != 18 {
		t.Fatalf("epoch 18: %+v", v)
	}
}

// fieldNames lists the keys of a SENTINEL MASTER reply, or of the first entry
// of a SENTINEL SENTINELS/REPLICAS reply.
func fieldNames(t *testing.T, v resp.Value) string {
	t.Helper()
	if len(v.Elems) > 0 && v.Elems[0].Kind == resp.Array {
		v = v.Elems[0]
	}
	pl, err := v.PairList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, kv := range pl {
		names = append(names, kv[0])
	}
	return strings.Join(names, " ")
}
