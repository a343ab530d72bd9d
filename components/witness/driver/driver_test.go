package driver

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
)

const (
	idW = "0000000000000000000000000000000000000000"
	idA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// journal records, in order, what the driver did through its interfaces.
type journal struct {
	log     []string
	sent    []core.Action
	saved   []core.State
	failErr error // Save fails with it while set
	sendErr error
	targets []core.Target
	rel     []released
}

type released struct {
	ticket uint64
	rep    core.IsMasterDownReply
	err    error
}

func (j *journal) Release(ticket uint64, rep core.IsMasterDownReply, err error) {
	j.log = append(j.log, "release")
	j.rel = append(j.rel, released{ticket, rep, err})
}

func (j *journal) Send(a core.Action) error {
	j.log = append(j.log, "send "+kindName(a.Kind))
	if j.sendErr != nil {
		return j.sendErr
	}
	j.sent = append(j.sent, a)
	return nil
}
func (j *journal) Sync(ts []core.Target) { j.targets = ts; j.log = append(j.log, "sync") }
func (j *journal) Save(st core.State) error {
	if j.failErr != nil {
		j.log = append(j.log, "save failed")
		return j.failErr
	}
	j.log = append(j.log, "save")
	j.saved = append(j.saved, st)
	return nil
}
func (j *journal) Publish(e core.Event) { j.log = append(j.log, "event "+e.Type) }

func kindName(k core.ActionKind) string {
	return map[core.ActionKind]string{core.ActPing: "ping", core.ActInfo: "info", core.ActHello: "hello", core.ActAsk: "ask"}[k]
}

var master = core.Target{Master: "mymaster", Kind: core.KindMaster, Addr: core.Addr{IP: "10.0.0.1", Port: 6379}}

func newTest(t *testing.T) (*Driver, *journal) {
	t.Helper()
	j := &journal{}
	d, err := New(t0, core.Config{MyID: idW, Masters: []core.MasterConfig{{Name: "mymaster", Addr: master.Addr,
		Quorum: 2, DownAfter: time.Second}}}, nil, j, j, j, j, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.saved) != 1 || j.saved[0].MyID != idW {
		t.Fatalf("New must store the run id before serving: %v", j.log)
	}
	j.log = nil
	return d, j
}

// command runs one client command through the driver and decodes the reply.
func command(t *testing.T, d *Driver, now time.Time, args ...string) resp.Value {
	t.Helper()
	var b bytes.Buffer
	w := resp.NewWriter(&b)
	if !d.Command(now, args, w) {
		t.Fatalf("%v not handled", args)
	}
	w.Flush()
	v, err := resp.NewReader(&b).ReadValue()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVoteStoredBeforeReply: the vote is saved before the reply exists; if
// the save fails, the requester gets an error, never the vote, also when it
// asks again while the store is still failing.
func TestVoteStoredBeforeReply(t *testing.T) {
	d, j := newTest(t)
	d.Wake(at(100))
	d.Wake(at(1100)) // no PONG ever: SDOWN
	j.log = nil
	j.failErr = errors.New("disk full")
	v := command(t, d, at(1150), "SENTINEL", "is-master-down-by-addr", "10.0.0.1", "6379", "5", idA)
	if !v.IsError() || !strings.Contains(v.Str, "persist") {
		t.Fatalf("got %+v, want an error", v)
	}
	v = command(t, d, at(1160), "SENTINEL", "is-master-down-by-addr", "10.0.0.1", "6379", "5", idA)
	if !v.IsError() || !strings.Contains(v.Str, "persist") {
		t.Fatalf("repeated request while the store fails: got %+v, want an error", v)
	}
	if d.Stats().PersistErrors != 2 {
		t.Fatalf("persist errors %d", d.Stats().PersistErrors)
	}
	j.failErr = nil
	j.log = nil
	v = command(t, d, at(1170), "SENTINEL", "is-master-down-by-addr", "10.0.0.1", "6379", "5", idA)
	if v.Kind != resp.Array || v.Elems[0].Int != 1 || v.Elems[1].Str != idA || v.Elems[2].Int != 5 {
		t.Fatalf("vote: %+v", v)
	}
	if len(j.log) == 0 || j.log[0] != "save" {
		t.Fatalf("the vote was not stored first: %v", j.log)
	}
	if st := j.saved[len(j.saved)-1]; st.Masters[0].Leader != idA || st.Masters[0].LeaderEpoch != 5 {
		t.Fatalf("stored %+v", st)
	}
	// Another candidate in the same epoch gets the same answer.
	v = command(t, d, at(1180), "SENTINEL", "is-master-down-by-addr", "10.0.0.1", "6379", "5", idB)
	if v.Elems[1].Str != idA {
		t.Fatalf("voted twice in epoch 5: %+v", v)
	}
	if d.Stats().VoteRequests != 2 {
		t.Fatalf("vote requests %d", d.Stats().VoteRequests)
	}
}

// TestRepliesBecomeCoreEvents: raw replies reach the core as the events they
// mean, and the core's commands and targets reach the links.
func TestRepliesBecomeCoreEvents(t *testing.T) {
	d, j := newTest(t)
	if d.Wake(at(50)); len(j.sent) != 0 {
		t.Fatal("woke before Next")
	}
	d.Wake(d.Next())
	if len(j.sent) != 1 || j.sent[0].Kind != core.ActPing || len(j.targets) != 1 {
		t.Fatalf("first tick: sent %v targets %v", j.sent, j.targets)
	}
	d.HandleReply(at(110), master, core.ActPing, resp.Value{Kind: resp.SimpleString, Str: "PONG"})
	d.Wake(at(200))
	var info bool
	for _, a := range j.sent {
		info = info || a.Kind == core.ActInfo
	}
	if !info {
		t.Fatalf("no INFO after a PONG: %v", j.log)
	}
	d.HandleReply(at(210), master, core.ActInfo, resp.Value{Kind: resp.BulkString,
		Str: "# Replication\r\nrole:master\r\nslave0:ip=10.0.0.2,port=6379,state=online\r\n"})
	if !strings.Contains(strings.Join(j.log, ","), "event +slave") {
		t.Fatalf("a new replica must be announced: %v", j.log)
	}
	d.Wake(at(300))
	if len(j.targets) != 2 {
		t.Fatalf("links not synced to the new replica: %v", j.targets)
	}
	// Not a vote: stored within PersistDelay (1 s), coalesced.
	j.log = nil
	for ms := 400; ms <= 1300; ms += 100 {
		d.Wake(at(ms))
	}
	if !strings.Contains(strings.Join(j.log, ","), "save") {
		t.Fatalf("the new replica is not stored within PersistDelay: %v", j.log)
	}
	// A hello through PUBLISH: acknowledged, its epoch stored within PersistDelay.
	j.log = nil
	v := command(t, d, at(1310), "PUBLISH", core.HelloChannel, "10.0.0.9,26379,"+idA+",3,mymaster,10.0.0.1,6379,0")
	if v.Int != 1 || d.Core().CurrentEpoch() != 3 {
		t.Fatalf("publish: %+v %v", v, j.log)
	}
	for ms := 1400; ms <= 2400; ms += 100 {
		d.Wake(at(ms))
	}
	if !strings.Contains(strings.Join(j.log, ","), "save") {
		t.Fatalf("the hello's epoch is not stored within PersistDelay: %v", j.log)
	}
	if v := command(t, d, at(2411), "PUBLISH", core.HelloChannel, "garbage"); v.Int != 1 || d.Stats().HellosMalformed != 1 {
		t.Fatalf("malformed hello: %+v %+v", v, d.Stats())
	}
	// A link that cannot take the command reports it failed at once (the
	// PING in flight answered first, so that the next one is due).
	d.HandleReply(at(2450), master, core.ActPing, resp.Value{Kind: resp.SimpleString, Str: "PONG"})
	j.sendErr = errors.New("queue full")
	for ms := 2500; ms < 5000; ms += 100 {
		d.Wake(at(ms))
	}
	f, _ := d.Core().MasterFields(at(5000), "mymaster")
	for _, x := range f {
		if x.Name == "flags" && !strings.Contains(x.Value, "disconnected") {
			t.Fatalf("flags %q", x.Value)
		}
	}
}

func TestParseAsk(t *testing.T) {
	ok := resp.Value{Kind: resp.Array, Elems: []resp.Value{{Kind: resp.Integer, Int: 1}, {Kind: resp.BulkString, Str: "*"}, {Kind: resp.Integer, Int: 7}}}
	if v, down, l, e := parseAsk(ok); !v || down != 1 || l != "*" || e != 7 {
		t.Fatal(v, down, l, e)
	}
	for _, bad := range []resp.Value{{Kind: resp.Error, Str: "ERR x"}, {Kind: resp.Array},
		{Kind: resp.Array, Elems: []resp.Value{{Kind: resp.BulkString}, {Kind: resp.BulkString}, {Kind: resp.Integer}}}} {
		if v, _, _, _ := parseAsk(bad); v {
			t.Fatalf("%+v parsed", bad)
		}
	}
}

// TestLinkDownPingsAtOnce: a connection that breaks outside a command
// reaches the core now, and its reconnect PING goes to the links now.
func TestLinkDownPingsAtOnce(t *testing.T) {
	d, j := newTest(t)
	d.Wake(d.Next())
	d.HandleReply(at(101), master, core.ActPing, resp.Value{Kind: resp.SimpleString, Str: "PONG"})
	d.Wake(at(1050)) // INFO, hello; no PING yet (the last PONG is 949 ms old)
	j.log, j.sent = nil, nil
	// A ping period after the reconnect PING at 100, the connection closes.
	d.HandleLinkDown(at(1100), master, errors.New("EOF"))
	if len(j.sent) != 1 || j.sent[0].Kind != core.ActPing {
		t.Fatalf("want one PING at once, sent %v", j.log)
	}
}

// TestHeldReplyThroughDriver: a "*" request while the witness's own SDOWN
// deadline is near writes nothing and returns a ticket; the reply comes
// through HeldReplies when the core releases it (here at the witness's
// SDOWN, at Next), counted in Stats. A vote request is answered at once.
func TestHeldReplyThroughDriver(t *testing.T) {
	d, j := newTest(t)
	d.Wake(d.Next())
	d.HandleReply(at(101), master, core.ActPing, resp.Value{Kind: resp.SimpleString, Str: "PONG"})
	for ms := 200; ms <= 1100; ms += 100 {
		d.Wake(at(ms))
	}
	d.HandleLinkDown(at(1150), master, errors.New("EOF")) // reconnect PING at 1150: SDOWN after 2150
	d.HandleLinkError(at(1151), master, core.ActPing, errors.New("connection refused"))
	for ms := 1200; ms <= 1900; ms += 100 {
		d.Wake(at(ms))
	}
	var b bytes.Buffer
	w := resp.NewWriter(&b)
	ok, ticket := d.ClientCommand(at(1950), 9, []string{"SENTINEL", "is-master-down-by-addr", "10.0.0.1", "6379", "0", "*"}, w)
	w.Flush()
	if !ok || ticket == 0 || b.Len() != 0 {
		t.Fatalf("handled %v ticket %d wrote %q: want held, nothing written", ok, ticket, b.String())
	}
	// A vote request on another connection is never held.
	if v := command(t, d, at(1960), "SENTINEL", "is-master-down-by-addr", "10.0.0.1", "6379", "1", idA); v.Kind != resp.Array || v.Elems[0].Int != 0 || v.Elems[1].Str != idA {
		t.Fatalf("vote request: %+v", v)
	}
	for i := 0; i < 5 && len(j.rel) == 0; i++ {
		now := d.Next()
		d.Wake(now)
		if len(j.rel) > 0 && !now.After(at(2150)) {
			t.Fatalf("released at %v, before down-after", now.Sub(t0))
		}
	}
	if len(j.rel) != 1 || j.rel[0].ticket != ticket || !j.rel[0].rep.Down || j.rel[0].err != nil {
		t.Fatalf("released %+v", j.rel)
	}
	if st := d.Stats(); st.Held != 1 || st.ReleasedDown != 1 || st.ReleasedAlive != 0 || st.ReleasedBound != 0 {
		t.Fatalf("stats %+v", st)
	}
	var out bytes.Buffer
	w = resp.NewWriter(&out)
	WriteDownReply(w, j.rel[0].rep, nil)
	w.Flush()
	if out.String() != "*3\r\n:1\r\n$1\r\n*\r\n:0\r\n" {
		t.Fatalf("encoded %q", out.String())
	}
}
