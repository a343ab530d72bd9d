package forward

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redisha/redisha/components/resp"
)

// A small command table as redis 7 lists it: SET, INCR, DEL write; GET,
// PING, ECHO, CLIENT read; CONFIG SET reads, FUNCTION LOAD writes.
func testTable(t testing.TB) *CommandTable {
	t.Helper()
	cmd := func(name string, flags ...string) resp.Value {
		var fl []resp.Value
		for _, f := range flags {
			fl = append(fl, resp.Value{Kind: resp.SimpleString, Str: f})
		}
		return resp.Value{Kind: resp.Array, Elems: []resp.Value{{Kind: resp.BulkString, Str: name}, {Kind: resp.Integer, Int: -1}, {Kind: resp.Array, Elems: fl}}}
	}
	container := func(name string, subs ...resp.Value) resp.Value {
		v := cmd(name)
		for len(v.Elems) < 9 {
			v.Elems = append(v.Elems, resp.Value{Kind: resp.Array})
		}
		v.Elems = append(v.Elems, resp.Value{Kind: resp.Array, Elems: subs})
		return v
	}
	v := resp.Value{Kind: resp.Array, Elems: []resp.Value{
		cmd("set", "write", "denyoom"), cmd("incr", "write"), cmd("del", "write"),
		cmd("get", "readonly", "fast"), cmd("ping", "fast"), cmd("echo", "fast"), cmd("publish", "pubsub", "may_replicate"),
		cmd("multi"), cmd("exec"), cmd("discard"), cmd("wait"), cmd("eval", "noscript"), cmd("subscribe", "pubsub"),
		container("config", cmd("config|set", "admin"), cmd("config|get", "admin")),
		container("function", cmd("function|load", "write", "may_replicate"), cmd("function|list")),
		container("client", cmd("client|reply"), cmd("client|id")),
	}}
	tab, err := NewCommandTable(v)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func req(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

const wait1 = "*3\r\n$4\r\nWAIT\r\n$1\r\n1\r\n$3\r\n500\r\n"

func TestCommandTable(t *testing.T) {
	tab := testTable(t)
	fr := resp.NewFramer(resp.RequestLimits)
	for _, c := range []struct {
		in    string
		write bool
	}{
		{req("SET", "k", "v"), true}, {req("get", "k"), false}, {"PING\r\n", false}, {"set k v\r\n", true},
		{req("EVAL", "return 1", "0"), true}, {req("EVALSHA", "x", "0"), true}, {req("FCALL", "f", "0"), true},
		{req("NOSUCH"), true}, {req("PUBLISH", "c", "m"), true}, {req("CONFIG", "SET", "x", "y"), false},
		{req("function", "load", "x"), true}, {req("FUNCTION", "LIST"), false}, {req("FUNCTION", "NOSUCH"), false},
		{req(strings.Repeat("x", 100)), true},
	} {
		_, r, err := fr.Next([]byte(c.in))
		if err != nil || r == nil {
			t.Fatalf("%q: %v %v", c.in, r, err)
		}
		if got := tab.IsWrite(r); got != c.write {
			t.Errorf("%q: write %v, want %v", c.in, got, c.write)
		}
	}
	var nilTab *CommandTable
	_, r, _ := fr.Next([]byte("GET k\r\n"))
	if !nilTab.IsWrite(r) {
		t.Error("a nil table must count every command as a write")
	}
}

// TestDurableUp: where WAIT goes in each batch.
func TestDurableUp(t *testing.T) {
	W := wait1
	for _, c := range []struct {
		name   string
		chunks []string
		want   string
		err    error
	}{
		{"read only batch", []string{req("GET", "a") + req("GET", "b")}, req("GET", "a") + req("GET", "b"), nil},
		{"write then reads", []string{req("SET", "a", "1") + req("GET", "a")}, req("SET", "a", "1") + req("GET", "a") + W, nil},
		{"one WAIT per batch", []string{req("SET", "a", "1") + req("SET", "b", "1") + req("INCR", "c")},
			req("SET", "a", "1") + req("SET", "b", "1") + req("INCR", "c") + W, nil},
		{"two batches", []string{req("SET", "a", "1"), req("GET", "a"), req("DEL", "a")},
			req("SET", "a", "1") + W + req("GET", "a") + req("DEL", "a") + W, nil},
		{"partial request stays after WAIT", []string{req("SET", "a", "1") + "*2\r\n$3\r\nGE", "T\r\n$1\r\na\r\n"},
			req("SET", "a", "1") + W + req("GET", "a"), nil},
		{"inline", []string{"SET a 1\r\nGET a\r\n"}, "SET a 1\r\nGET a\r\n" + W, nil},
		{"lua counts as write", []string{req("EVAL", "return 1", "0")}, req("EVAL", "return 1", "0") + W, nil},
		{"unknown counts as write", []string{req("X.NEW")}, req("X.NEW") + W, nil},
		{"WAIT after EXEC, not inside", []string{req("MULTI") + req("SET", "a", "1"), req("INCR", "b") + req("EXEC")},
			req("MULTI") + req("SET", "a", "1") + req("INCR", "b") + req("EXEC") + W, nil},
		{"write before MULTI waits before it", []string{req("SET", "x", "1") + req("MULTI") + req("SET", "a", "1")},
			req("SET", "x", "1") + W + req("MULTI") + req("SET", "a", "1"), nil},
		{"read-only transaction", []string{req("MULTI") + req("GET", "a") + req("EXEC")}, req("MULTI") + req("GET", "a") + req("EXEC"), nil},
		{"discarded transaction", []string{req("MULTI") + req("SET", "a", "1") + req("DISCARD")}, req("MULTI") + req("SET", "a", "1") + req("DISCARD"), nil},
		{"subscribe: WAIT before, then passthrough", []string{req("SET", "a", "1") + req("SUBSCRIBE", "c") + req("SET", "b", "1"), req("SET", "c", "1")},
			req("SET", "a", "1") + W + req("SUBSCRIBE", "c") + req("SET", "b", "1") + req("SET", "c", "1"), nil},
		{"client reply off", []string{req("SET", "a", "1") + req("CLIENT", "REPLY", "OFF") + req("SET", "b", "1")},
			req("SET", "a", "1") + W + req("CLIENT", "REPLY", "OFF") + req("SET", "b", "1"), nil},
		{"client reply on stays durable", []string{req("CLIENT", "REPLY", "ON") + req("SET", "b", "1")},
			req("CLIENT", "REPLY", "ON") + req("SET", "b", "1") + W, nil},
		{"quit: WAIT before", []string{req("SET", "a", "1") + req("QUIT")}, req("SET", "a", "1") + W + req("QUIT"), nil},
		{"monitor inside MULTI closes", []string{req("MULTI") + req("MONITOR")}, req("MULTI"), ErrUnsupported},
		{"protocol error: complete requests and their WAIT", []string{req("SET", "a", "1") + "*1\r\n$3\r\nabcXX"}, req("SET", "a", "1") + W, resp.ErrBulkNotTerminated},
		{"empty requests", []string{"*0\r\n\r\n" + req("SET", "a", "1")}, "*0\r\n\r\n" + req("SET", "a", "1") + W, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := NewDurable(DurableConfig{Replicas: 1, TimeoutMs: 500, Commands: testTable(t)})
			var got bytes.Buffer
			var err error
			for _, ch := range c.chunks {
				var pieces [][]byte
				pieces, err = d.Up([]byte(ch))
				for _, p := range pieces {
					got.Write(p)
				}
				if err != nil {
					break
				}
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if got.String() != c.want {
				t.Fatalf("backend got\n%q\nwant\n%q", got.String(), c.want)
			}
		})
	}
}

// TestDurableDown: which replies are held, released, stripped, and when
// the connection closes.
func TestDurableDown(t *testing.T) {
	for _, c := range []struct {
		name      string
		up        []string // client chunks
		down      []string // backend chunks
		want      string   // delivered to the client
		err       error
		noReplica bool
	}{
		{"reads pass", []string{req("GET", "a")}, []string{"$1\r\nx\r\n"}, "$1\r\nx\r\n", nil, false},
		{"held until WAIT, WAIT stripped", []string{req("SET", "a", "1") + req("GET", "a")}, []string{"+OK\r\n$1\r\n1\r\n", ":1\r\n"}, "+OK\r\n$1\r\n1\r\n", nil, false},
		{"held, split anywhere", []string{req("SET", "a", "1")}, []string{"+O", "K\r", "\n:", "1\r", "\n"}, "+OK\r\n", nil, false},
		{"reads before the first write are not held", []string{req("GET", "a") + req("SET", "a", "1")}, []string{"$-1\r\n+OK"}, "$-1\r\n", nil, false},
		{"short WAIT closes, nothing held delivered", []string{req("GET", "a") + req("SET", "a", "1")}, []string{"$-1\r\n+OK\r\n:0\r\n"}, "$-1\r\n", ErrNotReplicated, false},
		{"WAIT error closes", []string{req("SET", "a", "1")}, []string{"+OK\r\n-ERR WAIT cannot be used with replica instances\r\n"}, "", ErrWaitFailed, false},
		{"all held replies errors: released", []string{req("SET", "a", "1")}, []string{"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"}, "-NOAUTH Authentication required.\r\n", nil, false},
		{"no replica, async policy", []string{req("SET", "a", "1")}, []string{"+OK\r\n"}, "+OK\r\n", nil, true},
		{"push in between goes to the client in place", []string{req("SET", "a", "1") + req("GET", "b")},
			[]string{"+OK\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n$1\r\nx\r\n>1\r\n$4\r\nping\r\n:1\r\n"},
			"+OK\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n$1\r\nx\r\n>1\r\n$4\r\nping\r\n", nil, false},
		{"transaction", []string{req("MULTI") + req("SET", "a", "1") + req("EXEC")}, []string{"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n", ":1\r\n"}, "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n", nil, false},
		{"queued replies are not held", []string{req("MULTI") + req("SET", "a", "1")}, []string{"+OK\r\n+QUEUED\r\n"}, "+OK\r\n+QUEUED\r\n", nil, false},
		{"refused MULTI closes", []string{req("MULTI") + req("SET", "a", "1")}, []string{"-NOPERM no\r\n+OK\r\n"}, "", ErrMultiFailed, false},
		{"subscribe passes through after the WAIT", []string{req("SET", "a", "1") + req("SUBSCRIBE", "c")},
			[]string{"+OK\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n", "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n"},
			"+OK\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n", nil, false},
		{"unexpected reply closes", []string{}, []string{"+OK\r\n"}, "", ErrDesync, false},
		{"server's farewell error passes", []string{}, []string{"-ERR max number of clients reached\r\n"}, "-ERR max number of clients reached\r\n", nil, false},
		{"garbage closes", []string{req("GET", "a")}, []string{"?\r\n"}, "", ErrDesync, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DurableConfig{Replicas: 1, TimeoutMs: 500, Commands: testTable(t)}
			if c.noReplica {
				cfg.NoReplica = func() bool { return true }
			}
			d := NewDurable(cfg)
			for _, ch := range c.up {
				if _, err := d.Up([]byte(ch)); err != nil {
					t.Fatal(err)
				}
			}
			var got bytes.Buffer
			var err error
			for _, ch := range c.down {
				var pieces [][]byte
				pieces, err = d.Down([]byte(ch))
				for _, p := range pieces {
					got.Write(p)
				}
				if err != nil {
					break
				}
			}
			if !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if got.String() != c.want {
				t.Fatalf("client got\n%q\nwant\n%q", got.String(), c.want)
			}
		})
	}
}

func TestDurableHeldLimit(t *testing.T) {
	d := NewDurable(DurableConfig{Replicas: 1, TimeoutMs: 500, MaxHeld: 100, Commands: testTable(t)})
	d.Up([]byte(req("SET", "a", "1") + req("GET", "a")))
	if _, err := d.Down([]byte("+OK\r\n$200\r\n" + strings.Repeat("x", 120))); !errors.Is(err, ErrHeldLimit) {
		t.Fatalf("error %v, want ErrHeldLimit", err)
	}
}
