package core

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func hello(ip string, port int, runID string, epoch uint64) string {
	return fmt.Sprintf("%s,%d,%s,%d,mymaster,10.0.0.1,6379,0", ip, port, runID, epoch)
}

const idC = "cccccccccccccccccccccccccccccccccccccccc"

var realIP = map[string]string{idA: "10.0.0.10", idB: "10.0.0.11", idC: "10.0.0.12"}

func forgedID(i int) string { return fmt.Sprintf("%040x", i+1) }

// TestHelloValidation: only 40-hex run ids and IP addresses make peers.
func TestHelloValidation(t *testing.T) {
	c := newTestCore(t, nil)
	for _, h := range []string{
		hello("10.0.0.9", 26379, "not-a-run-id", 0),
		hello("10.0.0.9", 26379, idA[:39]+"g", 0),
		hello("sentinel-host", 26379, idA, 0),
		hello("10.0.0.999", 26379, idA, 0),
		hello("10.0.0.9", 0, idA, 0),
		hello("10.0.0.9", 70000, idA, 0),
		"10.0.0.9,26379," + idA + ",0,mymaster,master-host,6379,0",
	} {
		if _, err := c.ProcessHello(at(0), h); err == nil {
			t.Errorf("accepted %q", h)
		}
	}
	if n := len(c.masters["mymaster"].sentinels); n != 0 {
		t.Fatalf("%d peers from invalid hellos", n)
	}
	if _, err := c.ProcessHello(at(0), hello("::1", 26379, idA, 0)); err != nil {
		t.Fatalf("IPv6 peer refused: %v", err)
	}
}

// TestPeerTableBound: a flood of forged hellos fills the table to MaxPeers
// and no further, costs one coalesced write, and never pushes out a peer
// that keeps talking; a silent one gives its place after ReplacePeerAfter
// and is forgotten after ForgetPeersAfter.
func TestPeerTableBound(t *testing.T) {
	c, err := New(Config{MyID: idW, MaxPeers: 4, Masters: []MasterConfig{{
		Name: "mymaster", Addr: Addr{"10.0.0.1", 6379}, Quorum: 2, DownAfter: time.Second}},
		Timing: Timing{ReplacePeerAfter: 30 * time.Second, ForgetPeersAfter: 10 * time.Minute}}, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Two real peers.
	for _, id := range []string{idA, idB} {
		if _, err := c.ProcessHello(at(0), hello(realIP[id], 26379, id, 0)); err != nil {
			t.Fatal(err)
		}
	}
	writes := 0
	refused := 0
	for i := 0; i < 1000; i++ {
		acts, err := c.ProcessHello(at(i), hello(fmt.Sprintf("127.0.%d.%d", i/250, i%250+1), 26379, forgedID(i), 0))
		if errors.Is(err, ErrPeerTableFull) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
		if PersistOf(acts) != nil {
			writes++
		}
	}
	for ms := 1000; ms <= 2000; ms += 100 {
		if PersistOf(c.Tick(at(ms))) != nil {
			writes++
		}
	}
	m := c.masters["mymaster"]
	if len(m.sentinels) != 4 || m.sentinels[idA] == nil || m.sentinels[idB] == nil || refused != 998 {
		t.Fatalf("%d peers (want 4 with both real ones), %d refused", len(m.sentinels), refused)
	}
	if writes != 1 {
		t.Fatalf("%d state writes for the flood, want 1 coalesced", writes)
	}
	// The real peers keep saying hello every 2 s; 40 s later a new peer
	// replaces a forged one that fell silent, never a real one.
	for s := 2; s <= 40; s += 2 {
		now := t0.Add(time.Duration(s) * time.Second)
		c.Tick(now)
		for _, id := range []string{idA, idB} {
			c.ProcessHello(now, hello(realIP[id], 26379, id, 0))
		}
	}
	acts, err := c.ProcessHello(t0.Add(41*time.Second), hello("10.0.0.12", 26379, idC, 0))
	if err != nil || m.sentinels[idC] == nil || m.sentinels[idA] == nil || m.sentinels[idB] == nil || len(m.sentinels) != 4 ||
		!hasEvent(acts, "-sentinel") || !hasEvent(acts, "+sentinel") {
		t.Fatalf("new peer with a silent one in the table: %v %v", err, eventTypes(acts))
	}
	// After ForgetPeersAfter of silence the forged one left is forgotten.
	later := t0.Add(11 * time.Minute)
	for _, id := range []string{idA, idB, idC} {
		c.ProcessHello(later.Add(-time.Second), hello(realIP[id], 26379, id, 0))
	}
	acts = append(c.Tick(later.Add(-200*time.Millisecond)), c.Tick(later)...)
	if !hasEvent(acts, "-sentinel") || len(m.sentinels) != 3 {
		t.Fatalf("silent forged peer not forgotten: %d peers, %v", len(m.sentinels), eventTypes(acts))
	}
}

// TestRestoreBoundsPeers: a state file written before the bound and the
// checks existed loses its invalid and excess peers on load.
func TestRestoreBoundsPeers(t *testing.T) {
	st := &State{MyID: idW, Masters: []MasterState{{Name: "mymaster",
		Addr: AddrState{"10.0.0.1", 6379}, Configured: AddrState{"10.0.0.1", 6379}}}}
	st.Masters[0].Sentinels = append(st.Masters[0].Sentinels, SentinelState{"forged", "127.0.0.1", 1}, SentinelState{idA, "host", 1})
	for i := 0; i < 100; i++ {
		st.Masters[0].Sentinels = append(st.Masters[0].Sentinels, SentinelState{forgedID(i), fmt.Sprintf("127.0.1.%d", i+1), 26379})
	}
	c := newTestCore(t, st)
	if n := len(c.masters["mymaster"].sentinels); n != DefaultMaxPeers {
		t.Fatalf("%d peers restored, want %d", n, DefaultMaxPeers)
	}
}

// TestSentinelReset mirrors SENTINEL RESET <pattern>: matching masters forget
// replicas and peers, "+reset-master", the vote stays.
func TestSentinelReset(t *testing.T) {
	c := newTestCore(t, nil)
	c.ProcessHello(at(0), hello("10.0.0.9", 26379, idA, 0))
	c.VoteLeader(at(0), "mymaster", 3, idA)
	if n, _ := c.Reset(at(10), "other*"); n != 0 || len(c.masters["mymaster"].sentinels) != 1 {
		t.Fatalf("non-matching pattern reset %d", n)
	}
	n, acts := c.Reset(at(20), "my*")
	m := c.masters["mymaster"]
	if n != 1 || len(m.sentinels) != 0 || !hasEvent(acts, "+reset-master") || m.leader != idA || m.leaderEpoch != 3 {
		t.Fatalf("reset: %d, %d peers, events %v, vote %q@%d", n, len(m.sentinels), eventTypes(acts), m.leader, m.leaderEpoch)
	}
}

// TestVoteNotCoalesced: a vote is written before its reply even while
// other changes wait for their coalesced write, and that write carries them.
func TestVoteNotCoalesced(t *testing.T) {
	c := newTestCore(t, nil)
	if acts, _ := c.ProcessHello(at(0), hello("10.0.0.9", 26379, idA, 0)); PersistOf(acts) != nil {
		t.Fatal("a new peer is written at once")
	}
	acts := c.IsMasterDownByAddr(at(10), "10.0.0.1", 6379, 1, idA)
	st := PersistOf(acts)
	if st == nil || acts[0].Kind != ActPersist || acts[len(acts)-1].Kind != ActDownReply ||
		st.Masters[0].LeaderEpoch != 1 || len(st.Masters[0].Sentinels) != 1 {
		t.Fatalf("vote: %v", acts)
	}
	// Nothing left to write.
	for ms := 100; ms <= 2000; ms += 100 {
		if PersistOf(c.Tick(at(ms))) != nil {
			t.Fatal("written again with nothing changed")
		}
	}
}
