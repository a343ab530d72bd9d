package forward

import (
	"bytes"
	"math/rand"
	"strconv"
	"testing"

	"github.com/redisha/redisha/components/resp"
)

// FuzzDurable drives the durable mode's request and reply sides with any
// client byte stream, split at arbitrary points, against a server that
// answers every request it receives with one numbered reply (WAIT with the
// replica count), with RESP3 pushes in between. Whatever the input: no
// panic, WAIT's replies never reach the client, and the client receives
// exactly one reply per request it sent, in order (a prefix of them when
// the connection is closed instead).
func FuzzDurable(f *testing.F) {
	f.Add([]byte(req("SET", "a", "1")+req("GET", "a")), int64(1), true)
	f.Add([]byte("SET a 1\r\nGET a\r\n"+req("MULTI")+req("INCR", "x")+req("EXEC")+req("GET", "x")), int64(7), true)
	f.Add([]byte(req("GET", "a")+req("SET", "a", "1")+req("SUBSCRIBE", "c")+req("PING")), int64(3), false)
	f.Add([]byte(req("EVAL", "return 1", "0")+"*0\r\n"+req("CLIENT", "REPLY", "SKIP")+req("SET", "a", "b")), int64(11), true)
	f.Add([]byte(req("MULTI")+req("MULTI")+req("QUIT")+req("RESET")+req("DISCARD")+req("EXEC")+"*-1\r\n"), int64(5), true)
	f.Fuzz(func(t *testing.T, in []byte, seed int64, replicate bool) {
		rng := rand.New(rand.NewSource(seed))
		d := NewDurable(DurableConfig{Replicas: 1, TimeoutMs: 500, MaxHeld: 1 << 20, Commands: testTable(t)})
		var toServer bytes.Buffer
		inserted := map[int]bool{} // stream offsets where a proxy's WAIT ends
		var upErr error
		for rest := in; len(rest) > 0 && upErr == nil; {
			n := 1 + rng.Intn(len(rest))
			var pieces [][]byte
			pieces, upErr = d.Up(rest[:n])
			for _, p := range pieces {
				toServer.Write(p)
				if len(p) > 0 && &p[0] == &d.waitCmd[0] {
					inserted[toServer.Len()] = true
				}
			}
			rest = rest[n:]
		}
		// The server.
		sf := resp.NewFramer(resp.RequestLimits)
		var answers bytes.Buffer
		sent, seen, off := 0, toServer.Bytes(), 0
		for len(seen) > 0 {
			n, r, err := sf.Next(seen)
			if err != nil {
				if upErr != nil || d.passReq {
					break // the proxy passed a bad request through before it stopped framing
				}
				t.Fatalf("the server cannot frame what the proxy sent: %v", err)
			}
			seen, off = seen[n:], off+n
			if r == nil || r.Empty() {
				continue
			}
			if rng.Intn(4) == 0 {
				answers.WriteString(">2\r\n$4\r\npush\r\n:7\r\n")
			}
			if inserted[off] {
				if replicate {
					answers.WriteString(":1\r\n")
				} else {
					answers.WriteString(":0\r\n")
				}
				continue
			}
			answers.WriteString("+R" + strconv.Itoa(sent) + "\r\n")
			sent++
		}
		// The client.
		var got bytes.Buffer
		var downErr error
		for rest := answers.Bytes(); len(rest) > 0 && downErr == nil; {
			n := 1 + rng.Intn(len(rest))
			var pieces [][]byte
			pieces, downErr = d.Down(rest[:n])
			for _, p := range pieces {
				got.Write(p)
			}
			rest = rest[n:]
		}
		cf := resp.NewReplyFramer(resp.Limits{})
		next := 0
		for b := got.Bytes(); len(b) > 0; {
			n, r, err := cf.Next(b)
			if err != nil {
				t.Fatalf("client cannot frame what it got: %v\n%q", err, got.Bytes())
			}
			if r == nil {
				t.Fatalf("client got a partial reply: %q", got.Bytes())
			}
			if !r.IsPush() {
				if want := "+R" + strconv.Itoa(next) + "\r\n"; string(b[:n]) != want {
					t.Fatalf("reply %d is %q, want %q (WAIT's reply leaked or order lost)", next, b[:n], want)
				}
				next++
			}
			b = b[n:]
		}
		if downErr == nil && replicate && next != sent {
			t.Fatalf("client got %d replies for %d requests", next, sent)
		}
		if next > sent {
			t.Fatalf("client got %d replies for %d requests", next, sent)
		}
	})
}
