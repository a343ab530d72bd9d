package core

import (
	"strings"
	"testing"
	"time"
)

const (
	idW = "0000000000000000000000000000000000000000"
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestCore(t *testing.T, st *State) *Core {
	t.Helper()
	c, err := New(Config{MyID: idW, Masters: []MasterConfig{{
		Name: "mymaster", Addr: Addr{"10.0.0.1", 6379}, Quorum: 2, DownAfter: time.Second,
	}}}, t0, st)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func actionsOf(acts []Action, k ActionKind) []Action {
	var out []Action
	for _, a := range acts {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

func eventTypes(acts []Action) []string {
	var out []string
	for _, a := range acts {
		if a.Kind == ActEvent {
			out = append(out, a.Event.Type)
		}
	}
	return out
}

func hasEvent(acts []Action, typ string) bool {
	for _, e := range eventTypes(acts) {
		if e == typ {
			return true
		}
	}
	return false
}

// TestVoteLeaderRules replays sentinelVoteLeader's rules step by step.
func TestVoteLeaderRules(t *testing.T) {
	c := newTestCore(t, nil)
	steps := []struct {
		name            string
		epoch           uint64
		runid           string
		wantLeader      string
		wantLeaderEpoch uint64
		wantCurrent     uint64
	}{
		{"first request in epoch 1 gets the vote", 1, idA, idA, 1, 1},
		{"same epoch, other candidate: old vote returned", 1, idB, idA, 1, 1},
		{"older epoch: old vote returned", 0, idB, idA, 1, 1},
		{"greater epoch adopted and voted", 5, idB, idB, 5, 5},
		{"repeat by the winner is idempotent", 5, idB, idB, 5, 5},
		{"A asks epoch 5 again: still B", 5, idA, idB, 5, 5},
		{"A asks epoch 6: new vote", 6, idA, idA, 6, 6},
	}
	for _, s := range steps {
		leader, le, _ := c.VoteLeader(at(0), "mymaster", s.epoch, s.runid)
		if leader != s.wantLeader || le != s.wantLeaderEpoch || c.CurrentEpoch() != s.wantCurrent {
			t.Fatalf("%s: got leader %q epoch %d current %d, want %q %d %d", s.name, leader, le, c.CurrentEpoch(),
				s.wantLeader, s.wantLeaderEpoch, s.wantCurrent)
		}
	}
}

// TestVoteNeedsCurrentEpochNotAhead: when our current epoch is already ahead
// of the request (learned from a hello), no vote is cast in the older epoch.
func TestVoteNeedsCurrentEpochNotAhead(t *testing.T) {
	c := newTestCore(t, nil)
	acts, err := c.ProcessHello(at(0), "10.0.0.9,26379,"+idB+",7,mymaster,10.0.0.1,6379,0")
	if err != nil {
		t.Fatal(err)
	}
	// Not a vote: the write is coalesced (issue 10 part 3), within
	// PersistDelay (1 s), and it carries the epoch.
	if PersistOf(acts) != nil {
		t.Fatalf("a hello's change must be coalesced, not written at once: %v", acts)
	}
	if st := PersistOf(c.Tick(at(900))); st != nil {
		t.Fatalf("written before PersistDelay: %+v", st)
	}
	if st := PersistOf(c.Tick(at(1000))); st == nil || st.CurrentEpoch != 7 {
		t.Fatalf("the epoch a hello raised is not written within PersistDelay: %+v", st)
	}
	leader, le, acts := c.VoteLeader(at(1000), "mymaster", 6, idA)
	if leader != "" || le != 0 {
		t.Fatalf("voted in a stale epoch: %q %d", leader, le)
	}
	if PersistOf(acts) != nil {
		t.Fatal("a refused vote must not change durable state")
	}
	leader, le, acts = c.VoteLeader(at(0), "mymaster", 7, idA)
	if st := PersistOf(acts); leader != idA || le != 7 || st == nil || acts[0].Kind != ActPersist ||
		st.Masters[0].Leader != idA || st.Masters[0].LeaderEpoch != 7 {
		t.Fatalf("vote in current epoch: %q %d actions %v", leader, le, acts)
	}
}

func TestIsMasterDownByAddr(t *testing.T) {
	c := newTestCore(t, nil)
	c.Tick(at(0))
	// Unknown address: no vote, not down.
	if r := downReply(t, c.IsMasterDownByAddr(at(10), "10.0.0.2", 6379, 1, idA)); r.Down || r.Leader != "*" || r.LeaderEpoch != 0 {
		t.Fatalf("unknown master: %+v", r)
	}
	if c.CurrentEpoch() != 0 {
		t.Fatal("a request about an unknown master must not move the epoch")
	}
	// Up master, "*": plain down query.
	if r := downReply(t, c.IsMasterDownByAddr(at(10), "10.0.0.1", 6379, 3, "*")); r.Down || r.Leader != "*" || r.LeaderEpoch != 0 {
		t.Fatalf("star query: %+v", r)
	}
	// Let it go SDOWN (the initial act ping time is creation time).
	c.Tick(at(1001))
	acts := c.IsMasterDownByAddr(at(1001), "10.0.0.1", 6379, 3, idA)
	r := downReply(t, acts)
	if !r.Down || r.Leader != idA || r.LeaderEpoch != 3 {
		t.Fatalf("vote: %+v", r)
	}
	// The vote is persisted, and the persist comes before the reply.
	if st := PersistOf(acts); st == nil || acts[0].Kind != ActPersist || acts[len(acts)-1].Kind != ActDownReply ||
		st.Masters[0].Leader != idA || st.Masters[0].LeaderEpoch != 3 || st.CurrentEpoch != 3 {
		t.Fatalf("vote must be persisted before its reply: %v", acts)
	}
}

func TestSDownTimingInjectedClock(t *testing.T) {
	c := newTestCore(t, nil)
	tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
	pings := actionsOf(c.Tick(at(0)), ActPing)
	if len(pings) != 1 {
		t.Fatalf("want one reconnect PING, got %d", len(pings))
	}
	c.PingReply(at(5), tm, "PONG")
	acts := c.Tick(at(100))
	if len(actionsOf(acts, ActInfo)) != 1 || len(actionsOf(acts, ActPing)) != 0 {
		t.Fatalf("after connect want INFO and no PING yet: %v", acts)
	}
	// Next ping goes out once the last pong is older than the ping period.
	if len(actionsOf(c.Tick(at(1005)), ActPing)) != 0 {
		t.Fatal("pinged before the ping period elapsed")
	}
	if len(actionsOf(c.Tick(at(1006)), ActPing)) != 1 {
		t.Fatal("no ping after the ping period")
	}
	// This ping is never answered: SDOWN strictly after down-after (1000 ms) from it.
	if acts := c.Tick(at(2006)); hasEvent(acts, "+sdown") {
		t.Fatal("+sdown at exactly down-after")
	}
	acts = c.Tick(at(2007))
	if !hasEvent(acts, "+sdown") {
		t.Fatalf("no +sdown after down-after: %v", eventTypes(acts))
	}
	f, _ := c.MasterFields(at(2007), "mymaster")
	if v := fieldValue(f, "flags"); v != "s_down,master" {
		t.Fatalf("flags %q", v)
	}
	// A late PONG brings it back.
	c.PingReply(at(2100), tm, "PONG")
	if !hasEvent(c.Tick(at(2150)), "-sdown") {
		t.Fatal("no -sdown after PONG")
	}
	// Error replies other than LOADING/MASTERDOWN do not count as available.
	c.Tick(at(3200))
	c.PingReply(at(3210), tm, "ERR unknown")
	if !hasEvent(c.Tick(at(4300)), "+sdown") {
		t.Fatal("an -ERR reply to PING kept the master up")
	}
}

func TestLinkFailureGoesSDown(t *testing.T) {
	c := newTestCore(t, nil)
	tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
	c.Tick(at(0))
	c.PingReply(at(1), tm, "PONG")
	c.Tick(at(1100))
	c.LinkFailed(at(1101), tm, ActPing)
	f, _ := c.MasterFields(at(1102), "mymaster")
	if !strings.Contains(fieldValue(f, "flags"), "disconnected") {
		t.Fatalf("flags %q lack disconnected", fieldValue(f, "flags"))
	}
	if hasEvent(c.Tick(at(2100)), "+sdown") {
		t.Fatal("sdown too early")
	}
	if !hasEvent(c.Tick(at(2101)), "+sdown") {
		t.Fatal("no sdown after a dead link")
	}
}

func TestRoleMismatchSDown(t *testing.T) {
	c := newTestCore(t, nil)
	tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
	c.Tick(at(0))
	c.PingReply(at(1), tm, "PONG")
	c.InfoReply(at(10), tm, "# Replication\r\nrole:slave\r\nmaster_host:10.0.0.2\r\nmaster_port:6379\r\n")
	var acts []Action
	for ms := 100; ms <= 21000; ms += 100 {
		acts = append(acts, c.PingReply(at(ms), tm, "PONG")...)
		acts = append(acts, c.Tick(at(ms))...)
	}
	if hasEvent(acts, "+sdown") {
		t.Fatal("sdown before down-after + 2 info periods")
	}
	c.PingReply(at(21100), tm, "PONG")
	if !hasEvent(c.Tick(at(21100)), "+sdown") {
		t.Fatal("a master reporting role:slave must go SDOWN")
	}
}

func TestInfoDiscoversReplicas(t *testing.T) {
	c := newTestCore(t, nil)
	tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
	c.Tick(at(0))
	if acts := c.PingReply(at(1), tm, "PONG"); PersistOf(acts) != nil {
		t.Fatalf("a PONG changed durable state: %v", acts)
	}
	acts := c.InfoReply(at(10), tm, "# Server\r\nrun_id:"+idA+"\r\n# Replication\r\nrole:master\r\nconnected_slaves:1\r\n"+
		"slave0:ip=10.0.0.2,port=6380,state=online,offset=1,lag=0\r\nmaster_repl_offset:1\r\n")
	if !hasEvent(acts, "+slave") {
		t.Fatalf("replica not discovered: %v", eventTypes(acts))
	}
	// Stored within PersistDelay (coalesced: not a vote).
	var st *State
	for ms := 100; ms <= 1100 && st == nil; ms += 100 {
		st = PersistOf(c.Tick(at(ms)))
	}
	if st == nil || len(st.Masters[0].Replicas) != 1 {
		t.Fatalf("replica not stored within PersistDelay: %+v", st)
	}
	ts := c.Targets()
	if len(ts) != 2 || ts[1].Kind != KindReplica || ts[1].Addr != (Addr{"10.0.0.2", 6380}) {
		t.Fatalf("targets %v", ts)
	}
}

func TestHelloDiscoveryAndEpochs(t *testing.T) {
	c := newTestCore(t, nil)
	h := Hello{IP: "10.0.0.5", Port: 26379, RunID: idA, CurrentEpoch: 3, MasterName: "mymaster",
		MasterIP: "10.0.0.1", MasterPort: 6379, MasterConfigEpoch: 0}
	acts, err := c.HelloFromPubSub(at(0), h.String())
	if err != nil {
		t.Fatal(err)
	}
	if !hasEvent(acts, "+sentinel") || !hasEvent(acts, "+new-epoch") || c.CurrentEpoch() != 3 {
		t.Fatalf("events %v epoch %d", eventTypes(acts), c.CurrentEpoch())
	}
	// Our own hello relayed back is ignored.
	own := h
	own.RunID, own.IP = idW, "10.0.0.6"
	if _, err := c.HelloFromPubSub(at(1), own.String()); err != nil {
		t.Fatal(err)
	}
	if s, _ := c.SentinelFields(at(1), "mymaster"); len(s) != 1 {
		t.Fatalf("listed %d sentinels, want 1", len(s))
	}
	// Unknown master: dropped.
	other := h
	other.MasterName = "other"
	if _, err := c.ProcessHello(at(2), other.String()); err != ErrUnknownMaster {
		t.Fatalf("want ErrUnknownMaster, got %v", err)
	}
	// Same run id at a new address: address switch, still one sentinel.
	moved := h
	moved.IP = "10.0.0.7"
	acts, err = c.ProcessHello(at(3), moved.String())
	if err != nil {
		t.Fatal(err)
	}
	if !hasEvent(acts, "+sentinel-address-switch") {
		t.Fatalf("events %v", eventTypes(acts))
	}
	s, _ := c.SentinelFields(at(3), "mymaster")
	if len(s) != 1 || fieldValue(s[0], "ip") != "10.0.0.7" {
		t.Fatalf("sentinels %v", s)
	}
	// A new run id at that address (restarted sentinel) replaces it.
	re := moved
	re.RunID = idB
	acts, _ = c.ProcessHello(at(4), re.String())
	s, _ = c.SentinelFields(at(4), "mymaster")
	if len(s) != 1 || fieldValue(s[0], "runid") != idB {
		t.Fatalf("sentinels %v", s)
	}
	if !hasEvent(acts, "+sentinel-invalid-addr") {
		t.Fatal("no +sentinel-invalid-addr")
	}
}

func TestHelloConfigEpochMovesMaster(t *testing.T) {
	c := newTestCore(t, nil)
	tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
	c.Tick(at(0))
	c.PingReply(at(1), tm, "PONG")
	c.InfoReply(at(2), tm, "# Replication\r\nrole:master\r\nslave0:ip=10.0.0.2,port=6379,state=online\r\n"+
		"slave1:ip=10.0.0.3,port=6379,state=online\r\n")
	newer := "10.0.0.5,26379," + idA + ",4,mymaster,10.0.0.2,6379,4"
	acts, err := c.ProcessHello(at(10), newer)
	if err != nil {
		t.Fatal(err)
	}
	var sw string
	for _, a := range acts {
		if a.Kind == ActEvent && a.Event.Type == "+switch-master" {
			sw = a.Event.Msg
		}
	}
	if sw != "mymaster 10.0.0.1 6379 10.0.0.2 6379" {
		t.Fatalf("+switch-master %q (events %v)", sw, eventTypes(acts))
	}
	if a, _ := c.MasterAddr("mymaster"); a != (Addr{"10.0.0.2", 6379}) {
		t.Fatalf("master addr %v", a)
	}
	reps, _ := c.ReplicaFields(at(10), "mymaster")
	var got []string
	for _, r := range reps {
		got = append(got, fieldValue(r, "name"))
	}
	if strings.Join(got, " ") != "10.0.0.1:6379 10.0.0.3:6379" {
		t.Fatalf("replicas after switch %v", got)
	}
	// An older configuration (lower config epoch) never moves it back.
	older := "10.0.0.6,26379," + idB + ",4,mymaster,10.0.0.1,6379,3"
	_, _ = c.ProcessHello(at(11), older)
	if a, _ := c.MasterAddr("mymaster"); a != (Addr{"10.0.0.2", 6379}) {
		t.Fatalf("older config epoch moved the master to %v", a)
	}
	// Same config epoch, other address: still ignored (only greater wins).
	same := "10.0.0.6,26379," + idB + ",4,mymaster,10.0.0.3,6379,4"
	_, _ = c.ProcessHello(at(12), same)
	if a, _ := c.MasterAddr("mymaster"); a != (Addr{"10.0.0.2", 6379}) {
		t.Fatalf("equal config epoch moved the master to %v", a)
	}
}

func TestHelloGenerationAndAskStar(t *testing.T) {
	c, err := New(Config{MyID: idW, AnnounceIP: "10.0.0.9", AnnouncePort: 26390, Masters: []MasterConfig{{
		Name: "mymaster", Addr: Addr{"10.0.0.1", 6379}, Quorum: 2, DownAfter: time.Second}}}, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.ProcessHello(at(0), "10.0.0.5,26379,"+idA+",2,mymaster,10.0.0.1,6379,1")
	var hellos, asks []Action
	masterAlive := true
	for ms := 0; ms <= 3100; ms += 100 {
		for _, a := range c.Tick(at(ms)) {
			switch {
			case a.Kind == ActPing && (a.Target.Kind == KindSentinel || masterAlive):
				c.PingReply(at(ms+1), a.Target, "PONG")
			case a.Kind == ActHello:
				hellos = append(hellos, a)
				c.PublishReply(at(ms+1), a.Target, false)
			case a.Kind == ActAsk:
				asks = append(asks, a)
			}
		}
		if ms == 1000 {
			masterAlive = false
		}
	}
	if len(hellos) != 4 {
		t.Fatalf("want two hellos (2 s period) to the master and two to the peer in 3.1 s, got %d", len(hellos))
	}
	want := "10.0.0.9,26390," + idW + ",2,mymaster,10.0.0.1,6379,1"
	for _, h := range hellos {
		if h.Hello.String() != want {
			t.Fatalf("hello %q want %q", h.Hello.String(), want)
		}
	}
	// Master died at ~1s: once SDOWN we ask the peer with "*" (never for a vote).
	if len(asks) != 1 || asks[0].Ask.RunID != "*" || asks[0].Ask.IP != "10.0.0.1" || asks[0].Ask.Port != 6379 || asks[0].Ask.Epoch != 2 {
		t.Fatalf("asks %+v", asks)
	}
	// The peer agrees: ODOWN with quorum 2.
	c.AskReply(at(3110), asks[0].Target, true, 1, "*", 0)
	if acts := c.Tick(at(3200)); !hasEvent(acts, "+odown") {
		t.Fatal("no +odown with quorum reached")
	}
	f, _ := c.MasterFields(at(3200), "mymaster")
	if fieldValue(f, "flags") != "s_down,o_down,master" || fieldValue(f, "num-other-sentinels") != "1" {
		t.Fatalf("fields %v", f)
	}
	// The peer's opinion expires after 5 ask periods without replies.
	c.LinkFailed(at(3300), asks[0].Target, ActAsk)
	var later []Action
	for ms := 3300; ms <= 8300; ms += 100 {
		later = append(later, c.Tick(at(ms))...)
	}
	if !hasEvent(later, "-odown") {
		t.Fatal("stale peer opinion kept ODOWN")
	}
}

func TestTiltRepliesNotDown(t *testing.T) {
	c := newTestCore(t, nil)
	c.Tick(at(0))
	c.Tick(at(1500))
	c.Tick(at(1600))
	if c.Tilt() {
		t.Fatal("tilt without a time jump")
	}
	acts := c.Tick(at(5000)) // frozen for 3.4s
	if !c.Tilt() || !hasEvent(acts, "+tilt") {
		t.Fatal("no tilt after a freeze")
	}
	if r := downReply(t, c.IsMasterDownByAddr(at(5000), "10.0.0.1", 6379, 0, "*")); r.Down {
		t.Fatal("down reply in tilt")
	}
	acts = nil
	for ms := 5100; ms <= 35100; ms += 100 {
		acts = append(acts, c.Tick(at(ms))...)
	}
	if c.Tilt() || !hasEvent(acts, "-tilt") {
		t.Fatal("tilt not left after the tilt period")
	}
}

func TestRestartNeverVotesTwice(t *testing.T) {
	c := newTestCore(t, nil)
	c.Tick(at(0))
	c.Tick(at(1001))
	if r := downReply(t, c.IsMasterDownByAddr(at(1001), "10.0.0.1", 6379, 7, idA)); r.Leader != idA || r.LeaderEpoch != 7 {
		t.Fatalf("first vote %+v", r)
	}
	st := c.State()
	c2 := newTestCore(t, &st)
	if c2.MyID() != idW || c2.CurrentEpoch() != 7 {
		t.Fatalf("restored id %s epoch %d", c2.MyID(), c2.CurrentEpoch())
	}
	if r := downReply(t, c2.IsMasterDownByAddr(at(0), "10.0.0.1", 6379, 7, idB)); r.Leader != idA || r.LeaderEpoch != 7 {
		t.Fatalf("after restart voted again: %+v", r)
	}
}

func TestStateRestoreFollowsLearnedAddressUnlessConfigEdited(t *testing.T) {
	c := newTestCore(t, nil)
	_, _ = c.ProcessHello(at(0), "10.0.0.5,26379,"+idA+",4,mymaster,10.0.0.2,6379,4")
	st := c.State()
	c2 := newTestCore(t, &st)
	if a, _ := c2.MasterAddr("mymaster"); a != (Addr{"10.0.0.2", 6379}) {
		t.Fatalf("restart forgot the failover: %v", a)
	}
	if s, _ := c2.SentinelFields(at(0), "mymaster"); len(s) != 1 {
		t.Fatal("restart forgot the peer")
	}
	st.Masters[0].Configured = AddrState{"10.0.0.8", 6379}
	c3 := newTestCore(t, &st)
	if a, _ := c3.MasterAddr("mymaster"); a != (Addr{"10.0.0.1", 6379}) {
		t.Fatalf("operator's config edit ignored: %v", a)
	}
	if c3.CurrentEpoch() != 4 {
		t.Fatal("epoch lost on config edit")
	}
}

func TestConfigValidate(t *testing.T) {
	good := MasterConfig{Name: "m", Addr: Addr{"127.0.0.1", 6379}, Quorum: 2, DownAfter: time.Second}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"bad id", Config{MyID: "x", Masters: []MasterConfig{good}}, "40 hex"},
		{"no masters", Config{MyID: idW}, "no master"},
		{"bad ip", Config{MyID: idW, Masters: []MasterConfig{{Name: "m", Addr: Addr{"host", 1}, Quorum: 1, DownAfter: 1}}}, "not an IP"},
		{"quorum", Config{MyID: idW, Masters: []MasterConfig{{Name: "m", Addr: Addr{"1.2.3.4", 1}, DownAfter: 1}}}, "quorum"},
		{"dup", Config{MyID: idW, Masters: []MasterConfig{good, good}}, "twice"},
		{"name", Config{MyID: idW, Masters: []MasterConfig{{Name: "a,b", Addr: Addr{"1.2.3.4", 1}, Quorum: 1, DownAfter: 1}}}, "master name"},
	}
	for _, tc := range cases {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestCKQuorumAndInfo(t *testing.T) {
	c := newTestCore(t, nil)
	ok, msg, _ := c.CKQuorum("mymaster")
	if ok || !strings.HasPrefix(msg, "NOQUORUM 1 usable Sentinels.") {
		t.Fatalf("%v %q", ok, msg)
	}
	_, _ = c.ProcessHello(at(0), "10.0.0.5,26379,"+idA+",0,mymaster,10.0.0.1,6379,0")
	ok, msg, _ = c.CKQuorum("mymaster")
	if !ok || msg != "OK 2 usable Sentinels. Quorum and failover authorization can be reached" {
		t.Fatalf("%v %q", ok, msg)
	}
	info := c.InfoSentinel(at(0))
	if !strings.Contains(info, "master0:name=mymaster,status=ok,address=10.0.0.1:6379,slaves=0,sentinels=2\r\n") {
		t.Fatalf("info %q", info)
	}
}

// downReply returns the reply an is-master-down-by-addr request produced.
func downReply(t *testing.T, acts []Action) IsMasterDownReply {
	t.Helper()
	r, ok := DownReplyOf(acts)
	if !ok || acts[len(acts)-1].Kind != ActDownReply {
		t.Fatalf("no reply last among %v", acts)
	}
	return r
}

func fieldValue(fs []Field, name string) string {
	for _, f := range fs {
		if f.Name == name {
			return f.Value
		}
	}
	return "<missing>"
}

// TestNextIsBoundedTick: the core asks for a tick one tick period after the
// previous one (or after creation), never later, so that a tick that comes
// much later than Next is a freeze that TILT must see.
func TestNextIsBoundedTick(t *testing.T) {
	c := newTestCore(t, nil)
	if got := c.Next(); !got.Equal(at(100)) {
		t.Fatalf("Next after New = %v, want creation + 100ms", got.Sub(t0))
	}
	c.Tick(at(130))
	if got := c.Next(); !got.Equal(at(230)) {
		t.Fatalf("Next after a tick at 130ms = %v, want 230ms", got.Sub(t0))
	}
	// Ticking at every Next never enters TILT, however long it runs.
	for i := 0; i < 400; i++ {
		if acts := c.Tick(c.Next()); hasEvent(acts, "+tilt") {
			t.Fatal("tilt while ticking at Next")
		}
	}
	// A gap longer than the tilt trigger, on the clock now carries, is a freeze.
	if acts := c.Tick(c.Next().Add(2 * time.Second)); !hasEvent(acts, "+tilt") {
		t.Fatal("no tilt after a tick 2s later than Next")
	}
	// Real times: the gap is measured on their monotonic readings.
	base := time.Now()
	m := newTestCoreAt(t, base)
	m.Tick(base.Add(100 * time.Millisecond))
	if acts := m.Tick(base.Add(2200 * time.Millisecond)); !hasEvent(acts, "+tilt") {
		t.Fatal("no tilt on a monotonic gap of 2.1s")
	}
}

func newTestCoreAt(t *testing.T, now time.Time) *Core {
	t.Helper()
	c, err := New(Config{MyID: idW, Masters: []MasterConfig{{
		Name: "mymaster", Addr: Addr{"10.0.0.1", 6379}, Quorum: 2, DownAfter: time.Second,
	}}}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLinkBrokenPingsAtOnce: a connection closed under an idle link (the
// master's process died) reaches the core as LinkBroken, which pings at
// once like sentinel's reconnect path; SDOWN is timed from that PING, not
// from the next scheduled one.
func TestLinkBrokenPingsAtOnce(t *testing.T) {
	c := newTestCore(t, nil)
	tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
	c.Tick(at(0))
	c.PingReply(at(1), tm, "PONG")
	for ms := 100; ms <= 1500; ms += 100 {
		for _, a := range c.Tick(at(ms)) {
			if a.Kind == ActPing {
				c.PingReply(at(ms+1), tm, "PONG")
			}
		}
	}
	// Last PONG at ~1101; the next PING is due after 2101. The master dies at 1550.
	acts := c.LinkBroken(at(1550), tm)
	if len(actionsOf(acts, ActPing)) != 1 {
		t.Fatalf("LinkBroken must ping at once: %v", acts)
	}
	f, _ := c.MasterFields(at(1551), "mymaster")
	if !strings.Contains(fieldValue(f, "flags"), "disconnected") {
		t.Fatalf("flags %q", fieldValue(f, "flags"))
	}
	// The reconnect PING is refused.
	c.LinkFailed(at(1552), tm, ActPing)
	var down time.Time
	for ms := 1600; ms <= 3000; ms += 100 {
		if hasEvent(c.Tick(at(ms)), "+sdown") && down.IsZero() {
			down = at(ms)
		}
	}
	if !down.Equal(at(2600)) {
		t.Fatalf("+sdown at %v, want the first tick after 1550+1000", down.Sub(t0))
	}
	// Reconnect PINGs stay one per ping period (the tick at 2600 sent one,
	// still unanswered): another break does not add a PING.
	if acts := c.LinkBroken(at(2650), tm); len(actionsOf(acts, ActPing)) != 0 {
		t.Fatalf("pinged while a PING is in flight: %v", acts)
	}
	c.LinkFailed(at(2700), tm, ActPing)
	if acts := c.LinkBroken(at(2750), tm); len(actionsOf(acts, ActPing)) != 0 {
		t.Fatalf("pinged twice within a ping period: %v", acts)
	}
}

// TestIsMasterDownFromCurrentState: the answer reflects replies and time up
// to the request, not only up to the last tick.
func TestIsMasterDownFromCurrentState(t *testing.T) {
	c := newTestCore(t, nil)
	tm := Target{Master: "mymaster", Kind: KindMaster, Addr: Addr{"10.0.0.1", 6379}}
	c.Tick(at(0)) // reconnect PING at 0, never answered
	c.Tick(at(1000))
	// Down-after passed at 1000 exclusive; no tick since.
	r := downReply(t, c.IsMasterDownByAddr(at(1050), "10.0.0.1", 6379, 0, "*"))
	if !r.Down {
		t.Fatal("not down 1050 ms after an unanswered PING (down-after 1000 ms)")
	}
	// A PONG arrives; the next request says up at once.
	c.PingReply(at(1060), tm, "PONG")
	acts := c.IsMasterDownByAddr(at(1061), "10.0.0.1", 6379, 0, "*")
	if r := downReply(t, acts); r.Down || !hasEvent(acts, "-sdown") {
		t.Fatalf("still down right after a PONG: %+v %v", r, eventTypes(acts))
	}
}
