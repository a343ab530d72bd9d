package daemon

import (
	"bufio"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
)

// closedPort returns a loopback port nothing listens on: the monitored
// master is simply down, which is all these API tests need.
func closedPort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return p
}

func testOptions(t testing.TB, dir string) Options {
	return Options{
		Core: core.Config{Masters: []core.MasterConfig{{Name: "mymaster",
			Addr: core.Addr{IP: "127.0.0.1", Port: closedPort(t)}, Quorum: 2, DownAfter: time.Second}}},
		StatePath: filepath.Join(dir, "state.json"),
	}
}

func startTest(t testing.TB, mod func(*Options)) *Server {
	t.Helper()
	o := testOptions(t, t.TempDir())
	if mod != nil {
		mod(&o)
	}
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type rawClient struct {
	t *testing.T
	c net.Conn
	r *resp.Reader
	w *resp.Writer
}

func dial(t *testing.T, s *Server) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", itoa(s.Port())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, r: resp.NewReader(bufio.NewReader(c)), w: resp.NewWriter(c)}
}

func itoa(n int) string { return strconv.Itoa(n) }

func (rc *rawClient) do(args ...string) resp.Value {
	rc.t.Helper()
	rc.send(args...)
	return rc.read()
}

func (rc *rawClient) send(args ...string) {
	rc.t.Helper()
	rc.w.Array(len(args))
	for _, a := range args {
		rc.w.Bulk(a)
	}
	if err := rc.w.Flush(); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) read() resp.Value {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	v, err := rc.r.ReadValue()
	if err != nil {
		rc.t.Fatal(err)
	}
	return v
}

func TestPingIsSimplePONG(t *testing.T) {
	s := startTest(t, nil)
	c := dial(t, s)
	if v := c.do("PING"); v.Kind != resp.SimpleString || v.Str != "PONG" {
		t.Fatalf("PING -> %+v; peers accept only +PONG", v)
	}
	// Inline, as HAProxy's tcp-check or telnet send it.
	c.c.Write([]byte("PING\r\n"))
	if v := c.read(); v.Str != "PONG" {
		t.Fatalf("inline PING -> %+v", v)
	}
}

func TestRESP2AndRESP3Shapes(t *testing.T) {
	s := startTest(t, nil)
	c := dial(t, s)
	m := c.do("SENTINEL", "MASTER", "mymaster")
	if m.Kind != resp.Array || len(m.Elems)%2 != 0 || m.Elems[0].Str != "name" || m.Elems[1].Str != "mymaster" {
		t.Fatalf("RESP2 SENTINEL MASTER: %+v", m)
	}
	if v := c.do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nope"); !v.Null {
		t.Fatalf("unknown master: %+v", v)
	}
	if v := c.do("SENTINEL", "MASTER", "nope"); !v.IsError() || v.Str != "ERR No such master with that name" {
		t.Fatalf("unknown master: %+v", v)
	}
	h := c.do("HELLO", "3")
	hp, err := h.Pairs()
	if h.Kind != resp.Map || err != nil || hp["proto"] != "3" || hp["mode"] != "sentinel" || hp["server"] != "redis" {
		t.Fatalf("HELLO 3: %+v", h)
	}
	m = c.do("SENTINEL", "MASTER", "mymaster")
	if m.Kind != resp.Map {
		t.Fatalf("RESP3 SENTINEL MASTER kind %v", m.Kind)
	}
	ms := c.do("SENTINEL", "MASTERS")
	if ms.Kind != resp.Array || len(ms.Elems) != 1 || ms.Elems[0].Kind != resp.Map {
		t.Fatalf("RESP3 SENTINEL MASTERS: %+v", ms)
	}
	if v := c.do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nope"); v.Kind != resp.Null {
		t.Fatalf("RESP3 null: %+v", v)
	}
	role := c.do("ROLE")
	if len(role.Elems) != 2 || role.Elems[0].Str != "sentinel" || role.Elems[1].Elems[0].Str != "mymaster" {
		t.Fatalf("ROLE: %+v", role)
	}
	if v := c.do("SENTINEL", "MYID"); len(v.Str) != 40 {
		t.Fatalf("MYID %q", v.Str)
	}
	if v := c.do("CLIENT", "SETNAME", "app"); v.Str != "OK" {
		t.Fatal(v)
	}
	if v := c.do("CLIENT", "SETINFO", "lib-name", "go-redis"); v.Str != "OK" {
		t.Fatal(v)
	}
	if v := c.do("CLIENT", "GETNAME"); v.Str != "app" {
		t.Fatal(v)
	}
	if v := c.do("INFO"); !strings.Contains(v.Str, "# Sentinel\r\nsentinel_masters:1\r\n") || !strings.Contains(v.Str, "redis_mode:sentinel") {
		t.Fatalf("INFO: %q", v.Str)
	}
}

func TestSubscribeAndPingWhileSubscribed(t *testing.T) {
	for _, proto := range []string{"2", "3"} {
		s := startTest(t, nil) // fresh, so that +sdown is still to come
		c := dial(t, s)
		c.do("HELLO", proto)
		c.send("PSUBSCRIBE", "*")
		if v := c.read(); v.Elems[0].Str != "psubscribe" || v.Elems[2].Int != 1 {
			t.Fatalf("psubscribe: %+v", v)
		}
		c.send("PING")
		// The master port is closed: +sdown arrives within ~1s, maybe before
		// our PONG; remember it while looking for the PONG.
		sawSDown := false
		isSDown := func(v resp.Value) bool {
			if (v.Kind == resp.Push || v.Kind == resp.Array) && len(v.Elems) == 4 && v.Elems[0].Str == "pmessage" && v.Elems[2].Str == "+sdown" {
				if proto == "3" && v.Kind != resp.Push {
					t.Fatalf("RESP3 message not a push: %v", v.Kind)
				}
				if want := "master mymaster 127.0.0.1 "; !strings.HasPrefix(v.Elems[3].Str, want) {
					t.Fatalf("+sdown payload %q", v.Elems[3].Str)
				}
				return true
			}
			return false
		}
		for {
			v := c.read()
			if len(v.Elems) > 0 && v.Elems[0].Str == "pmessage" {
				sawSDown = sawSDown || isSDown(v)
				continue
			}
			if proto == "2" && (v.Kind != resp.Array || v.Elems[0].Str != "pong" || v.Elems[1].Str != "") {
				t.Fatalf("RESP2 PING while subscribed: %+v", v)
			}
			if proto == "3" && (v.Kind != resp.SimpleString || v.Str != "PONG") {
				t.Fatalf("RESP3 PING while subscribed: %+v", v)
			}
			break
		}
		if proto == "2" {
			c.send("SENTINEL", "MYID")
			for {
				v := c.read()
				if len(v.Elems) > 0 && v.Elems[0].Str == "pmessage" {
					sawSDown = sawSDown || isSDown(v)
					continue
				}
				if !v.IsError() || !strings.Contains(v.Str, "only (P|S)SUBSCRIBE") {
					t.Fatalf("RESP2 command while subscribed: %+v", v)
				}
				break
			}
		}
		for !sawSDown {
			sawSDown = isSDown(c.read())
		}
	}
}

func TestRequirePass(t *testing.T) {
	s := startTest(t, func(o *Options) { o.RequirePass = "s3cret" })
	c := dial(t, s)
	if v := c.do("SENTINEL", "MYID"); !v.IsError() || !strings.HasPrefix(v.Str, "NOAUTH") {
		t.Fatalf("unauthenticated: %+v", v)
	}
	if v := c.do("AUTH", "wrong"); !strings.HasPrefix(v.Str, "WRONGPASS") {
		t.Fatalf("wrong pass: %+v", v)
	}
	if v := c.do("AUTH", "s3cret"); v.Str != "OK" {
		t.Fatalf("auth: %+v", v)
	}
	if v := c.do("SENTINEL", "MYID"); len(v.Str) != 40 {
		t.Fatal(v)
	}
	c2 := dial(t, s)
	if v := c2.do("HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "x"); v.Kind != resp.Map {
		t.Fatalf("HELLO AUTH: %+v", v)
	}
	if v := c2.do("PING"); v.Str != "PONG" {
		t.Fatal(v)
	}
}

func TestProtectedMode(t *testing.T) {
	o := testOptions(t, t.TempDir())
	o.ProtectedMode = true
	o.Bind = []string{"0.0.0.0"}
	if _, err := Start(o); !errors.Is(err, ErrProtectedMode) {
		t.Fatalf("got %v", err)
	}
	o.RequirePass = "x"
	o.Port = 0
	s, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestPublishAndIsMasterDownArgs(t *testing.T) {
	s := startTest(t, nil)
	c := dial(t, s)
	if v := c.do("PUBLISH", "news", "x"); !v.IsError() || !strings.Contains(v.Str, "Only HELLO messages") {
		t.Fatalf("publish: %+v", v)
	}
	if v := c.do("PUBLISH", core.HelloChannel, "garbage"); v.Kind != resp.Integer || v.Int != 1 {
		t.Fatalf("publish hello: %+v", v)
	}
	for _, args := range [][]string{
		{"SENTINEL", "is-master-down-by-addr", "127.0.0.1", "x", "1", "*"},
		{"SENTINEL", "is-master-down-by-addr", "127.0.0.1", "1", "-1", "*"},
		{"SENTINEL", "is-master-down-by-addr", "127.0.0.1", "1", "1"},
	} {
		if v := c.do(args...); !v.IsError() {
			t.Errorf("%v: %+v", args, v)
		}
	}
	if v := c.do("SENTINEL", "FAILOVER", "mymaster"); !v.IsError() {
		t.Fatal("the witness must never start a failover")
	}
}

// TestVoteNotSentWhenStateCannotBePersisted: if the vote cannot be made
// durable the requester gets an error, never the vote.
func TestVoteNotSentWhenStateCannotBePersisted(t *testing.T) {
	dir := t.TempDir()
	s := startTest(t, func(o *Options) {
		o.StatePath = filepath.Join(dir, "sub", "state.json")
		os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	})
	os.RemoveAll(filepath.Join(dir, "sub"))
	c := dial(t, s)
	port := s.opts.Core.Masters[0].Addr.Port
	v := c.do("SENTINEL", "is-master-down-by-addr", "127.0.0.1", itoa(port), "5", strings.Repeat("a", 40))
	if !v.IsError() || !strings.Contains(v.Str, "persist") {
		t.Fatalf("got %+v, want an error", v)
	}
}

func TestMetricsExposeState(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := startTest(t, func(o *Options) { o.Registry = reg })
	c := dial(t, s)
	c.do("SENTINEL", "is-master-down-by-addr", "127.0.0.1", "1", "3", "*")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, n := range []string{"redisha_witness_current_epoch", "redisha_witness_master_sdown", "redisha_witness_known_sentinels",
		"redisha_witness_commands_total", "redisha_witness_state_persist_seconds"} {
		if !got[n] {
			t.Errorf("metric %s missing (have %v)", n, got)
		}
	}
}

func TestMaxClients(t *testing.T) {
	s := startTest(t, func(o *Options) { o.MaxClients = 1 })
	c := dial(t, s)
	c.do("PING")
	c2 := dial(t, s)
	c2.c.SetReadDeadline(time.Now().Add(3 * time.Second))
	v, err := c2.r.ReadValue()
	if err != nil || !v.IsError() || !strings.Contains(v.Str, "max number of clients") {
		t.Fatalf("second client: %+v %v", v, err)
	}
}
