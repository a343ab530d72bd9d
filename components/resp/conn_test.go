package resp_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

// The tests here run against real redis-server and redis-sentinel processes
// on loopback; testenv fails them (never skips, except under -short) when the
// binaries are missing.

func dial(t *testing.T, addr string, opts resp.DialOptions) *resp.Conn {
	t.Helper()
	c, err := resp.Dial(context.Background(), addr, opts)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConnCommands(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			c := dial(t, srv.Addr(), resp.DialOptions{Protocol: proto, ClientName: "resp-test", Timeout: 10 * time.Second})
			assert.Equal(t, proto, c.Protocol())
			ctx := ctxTimeout(t, 10*time.Second)

			v, err := c.Do(ctx, "PING")
			require.NoError(t, err)
			assert.Equal(t, resp.Value{Kind: resp.SimpleString, Str: "PONG"}, v)

			v, err = c.Do(ctx, "INFO", "replication")
			require.NoError(t, err)
			info := resp.ParseInfo(v.Str)
			assert.Equal(t, "master", info.Get("role"))
			assert.Equal(t, "0", info.Get("connected_slaves"))

			v, err = c.Do(ctx, "CLIENT", "GETNAME")
			require.NoError(t, err)
			assert.Equal(t, "resp-test", v.Str)

			// An error reply is an error and a value; the connection goes on.
			v, err = c.Do(ctx, "NOSUCHCOMMAND", "x")
			var re resp.ReplyError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, "ERR", re.Code())
			assert.True(t, v.IsError())
			v, err = c.Do(ctx, "ECHO", "binary\r\n\x00")
			require.NoError(t, err)
			assert.Equal(t, "binary\r\n\x00", v.Str)

			// Pipelining: three commands in one write, replies in order.
			key := fmt.Sprintf("counter%d", proto)
			require.NoError(t, c.Send("SET", key, "1"))
			require.NoError(t, c.Send("INCR", key))
			require.NoError(t, c.Send("HGETALL", "nohash"))
			require.NoError(t, c.Flush(ctx))
			want := []resp.Kind{resp.SimpleString, resp.Integer, resp.Array}
			if proto == 3 {
				want[2] = resp.Map
			}
			for i, k := range want {
				v, err := c.Receive(ctx)
				require.NoError(t, err)
				assert.Equal(t, k, v.Kind, "reply %d", i)
				if k == resp.Integer {
					assert.Equal(t, int64(2), v.Int)
				}
			}
			require.NoError(t, c.Close())
			_, err = c.Do(ctx, "PING")
			assert.ErrorIs(t, err, resp.ErrClosed)
		})
	}
}

func TestConnSentinel(t *testing.T) {
	master := testenv.StartRedis(t, testenv.RedisOptions{})
	sentinel := testenv.StartSentinel(t, testenv.SentinelOptions{MasterAddr: master.Addr(), Quorum: 1})
	for _, proto := range []int{2, 3} {
		c := dial(t, sentinel.Addr(), resp.DialOptions{Protocol: proto, Timeout: 10 * time.Second})
		ctx := ctxTimeout(t, 10*time.Second)
		v, err := c.Do(ctx, "SENTINEL", "get-master-addr-by-name", "mymaster")
		require.NoError(t, err)
		require.Len(t, v.Elems, 2, "RESP%d", proto)
		assert.Equal(t, master.Host, v.Elems[0].Str)
		assert.Equal(t, strconv.Itoa(master.Port), v.Elems[1].Str)

		v, err = c.Do(ctx, "SENTINEL", "get-master-addr-by-name", "nosuch")
		require.NoError(t, err)
		assert.True(t, v.Null, "RESP%d: an unknown master is a null", proto)

		v, err = c.Do(ctx, "SENTINEL", "MASTER", "mymaster")
		require.NoError(t, err)
		m, err := v.Pairs()
		require.NoError(t, err)
		assert.Equal(t, "mymaster", m["name"])
		assert.Equal(t, "1", m["quorum"])
	}
}

func TestConnAuth(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{Password: "s3cret"})
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			ctx := ctxTimeout(t, 10*time.Second)
			_, err := resp.Dial(ctx, srv.Addr(), resp.DialOptions{Protocol: proto, Password: "wrong"})
			var re resp.ReplyError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, "WRONGPASS", re.Code())

			_, err = resp.Dial(ctx, srv.Addr(), resp.DialOptions{Protocol: proto, Username: "nobody", Password: "s3cret"})
			require.ErrorAs(t, err, &re)
			assert.Equal(t, "WRONGPASS", re.Code())

			if proto == 2 {
				// Without a password the handshake is empty; commands are refused.
				c := dial(t, srv.Addr(), resp.DialOptions{})
				_, err = c.Do(ctx, "PING")
				require.ErrorAs(t, err, &re)
				assert.Equal(t, "NOAUTH", re.Code())
			} else {
				// HELLO 3 itself needs authentication.
				_, err = resp.Dial(ctx, srv.Addr(), resp.DialOptions{Protocol: 3})
				require.ErrorAs(t, err, &re)
				assert.Equal(t, "NOAUTH", re.Code())
			}

			for _, user := range []string{"", "default"} {
				c := dial(t, srv.Addr(), resp.DialOptions{Protocol: proto, Username: user, Password: "s3cret"})
				v, err := c.Do(ctx, "PING")
				require.NoError(t, err)
				assert.Equal(t, "PONG", v.Str)
			}
		})
	}
}

func TestConnPubSub(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	pub := dial(t, srv.Addr(), resp.DialOptions{Timeout: 10 * time.Second})
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("RESP%d", proto), func(t *testing.T) {
			ctx := ctxTimeout(t, 10*time.Second)
			sub := dial(t, srv.Addr(), resp.DialOptions{Protocol: proto, Timeout: 10 * time.Second})
			require.NoError(t, sub.Subscribe(ctx, "ch1", "ch2"))
			require.NoError(t, sub.PSubscribe(ctx, "news.*"))

			v, err := pub.Do(ctx, "PUBLISH", "ch2", "hello\r\nworld")
			require.NoError(t, err)
			assert.Equal(t, int64(1), v.Int, "one subscriber")
			m, err := sub.ReceiveMessage(ctx)
			require.NoError(t, err)
			assert.Equal(t, resp.Message{Kind: "message", Channel: "ch2", Payload: "hello\r\nworld"}, m)

			_, err = pub.Do(ctx, "PUBLISH", "news.sport", "goal")
			require.NoError(t, err)
			v, err = sub.Receive(ctx)
			require.NoError(t, err)
			if proto == 3 {
				assert.Equal(t, resp.Push, v.Kind)
			} else {
				assert.Equal(t, resp.Array, v.Kind)
			}
			m, ok := resp.ParseMessage(v)
			require.True(t, ok)
			assert.Equal(t, resp.Message{Kind: "pmessage", Pattern: "news.*", Channel: "news.sport", Payload: "goal"}, m)

			if proto == 3 {
				// In RESP3 a subscriber still runs commands; a message that
				// arrives before the reply is kept for Receive. PUBLISH has
				// returned, so the message is queued ahead of PING's reply.
				_, err = pub.Do(ctx, "PUBLISH", "ch1", "before-pong")
				require.NoError(t, err)
				v, err = sub.Do(ctx, "PING")
				require.NoError(t, err)
				assert.Equal(t, "PONG", v.Str)
				m, err = sub.ReceiveMessage(ctx)
				require.NoError(t, err)
				assert.Equal(t, "before-pong", m.Payload)
			}
		})
	}
}

func TestConnDeadlines(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})

	// The context's deadline interrupts a reply that does not come (BLPOP
	// blocks in the server for 30 s).
	c := dial(t, srv.Addr(), resp.DialOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, "BLPOP", "nolist", "30")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 10*time.Second)
	// The reply would now arrive out of step: the connection is broken.
	_, err2 := c.Do(context.Background(), "PING")
	assert.ErrorIs(t, err2, context.DeadlineExceeded)

	// The Timeout option bounds a call whose context has no deadline.
	c = dial(t, srv.Addr(), resp.DialOptions{Timeout: 300 * time.Millisecond})
	_, err = c.Do(context.Background(), "BLPOP", "nolist", "30")
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)

	// Cancellation interrupts Receive, which has no Timeout.
	c = dial(t, srv.Addr(), resp.DialOptions{Timeout: time.Hour})
	require.NoError(t, c.Subscribe(context.Background(), "quiet"))
	cctx, ccancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, ccancel)
	_, err = c.Receive(cctx)
	assert.ErrorIs(t, err, context.Canceled)

	// Close from another goroutine unblocks a pending Receive.
	c = dial(t, srv.Addr(), resp.DialOptions{})
	require.NoError(t, c.Subscribe(context.Background(), "quiet"))
	time.AfterFunc(200*time.Millisecond, func() { c.Close() })
	_, err = c.Receive(context.Background())
	assert.ErrorIs(t, err, resp.ErrClosed)
}

// TestConnServerDiesMidReply kills redis-server while it is sending a 64 MiB
// reply the client has not read yet: the client gets the bytes that were in
// flight, then an unexpected EOF at once, not a hang until a timeout.
func TestConnServerDiesMidReply(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	ctx := ctxTimeout(t, 60*time.Second)
	c := dial(t, srv.Addr(), resp.DialOptions{ClientName: "big-reader", MaxReply: 128 << 20, Timeout: time.Minute})
	_, err := c.Do(ctx, "SET", "big", strings.Repeat("x", 64<<20))
	require.NoError(t, err)

	require.NoError(t, c.Send("GET", "big"))
	require.NoError(t, c.Flush(ctx))
	// Wait until redis holds the rest of the reply in its output buffer:
	// the socket buffers cannot take 64 MiB the client does not read.
	admin := dial(t, srv.Addr(), resp.DialOptions{Timeout: 10 * time.Second})
	require.Eventually(t, func() bool {
		v, err := admin.Do(ctx, "CLIENT", "LIST")
		if err != nil {
			return false
		}
		for _, line := range strings.Split(v.Str, "\n") {
			if strings.Contains(line, "name=big-reader") {
				f := resp.ParseFields(strings.ReplaceAll(strings.TrimSpace(line), " ", ","))
				return f["omem"] != "0" && f["omem"] != ""
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond)
	srv.Kill()

	start := time.Now()
	_, err = c.Receive(ctx)
	require.Error(t, err)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	assert.Less(t, time.Since(start), 10*time.Second, "EOF is reported at once")

	// An idle connection to a dead server fails at the next call, at once.
	start = time.Now()
	_, err = admin.Do(ctx, "PING")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestConnMaxReply(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{})
	ctx := ctxTimeout(t, 20*time.Second)
	setup := dial(t, srv.Addr(), resp.DialOptions{})
	args := []string{"RPUSH", "list"}
	for i := 0; i < 20000; i++ {
		args = append(args, strconv.Itoa(i))
	}
	_, err := setup.Do(ctx, args...)
	require.NoError(t, err)
	_, err = setup.Do(ctx, "SET", "value", strings.Repeat("v", 100<<10))
	require.NoError(t, err)

	// An aggregate of many small elements: the byte budget stops it.
	c := dial(t, srv.Addr(), resp.DialOptions{MaxReply: 32 << 10})
	_, err = c.Do(ctx, "LRANGE", "list", "0", "-1")
	assert.ErrorIs(t, err, resp.ErrReplyTooLarge)
	// One bulk string over the limit: refused from its header.
	c = dial(t, srv.Addr(), resp.DialOptions{MaxReply: 32 << 10})
	_, err = c.Do(ctx, "GET", "value")
	var pe *resp.ProtocolError
	assert.ErrorAs(t, err, &pe)
	// Within the limit, both are read.
	c = dial(t, srv.Addr(), resp.DialOptions{MaxReply: 1 << 20})
	v, err := c.Do(ctx, "LRANGE", "list", "0", "-1")
	require.NoError(t, err)
	assert.Len(t, v.Elems, 20000)
	v, err = c.Do(ctx, "GET", "value")
	require.NoError(t, err)
	assert.Len(t, v.Str, 100<<10)
}

// TestFramerErrorsMatchRedis sends each malformed request to a real
// redis-server and checks that the Framer rejects it with the text redis
// replies, the pre-authentication limits included.
func TestFramerErrorsMatchRedis(t *testing.T) {
	srv := testenv.StartRedis(t, testenv.RedisOptions{Password: "s3cret"})
	tests := []struct {
		name    string
		in      string
		preAuth bool
		want    error
	}{
		{"unauthenticated multibulk length", "*11\r\n", true, resp.ErrUnauthMultibulkLength},
		{"unauthenticated bulk length", "*1\r\n$16385\r\n", true, resp.ErrUnauthBulkLength},
		{"invalid multibulk length", "*3000000000\r\n", false, resp.ErrInvalidMultibulkLength},
		{"invalid bulk length", "*1\r\n$-10\r\n", false, resp.ErrInvalidBulkLength},
		{"bulk over proto-max-bulk-len", "*1\r\n$536870913\r\n", false, resp.ErrInvalidBulkLength},
		{"expected $", "*1\r\n:1\r\n", false, resp.ErrExpectedBulk},
		{"unbalanced quotes", "ECHO \"a\r\n", false, resp.ErrUnbalancedQuotes},
		{"too big inline", strings.Repeat("a", 70<<10), false, resp.ErrTooBigInline},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := resp.NewFramer(resp.Limits{})
			f.SetPreAuth(tc.preAuth)
			_, _, err := f.Next([]byte(tc.in))
			require.ErrorIs(t, err, tc.want)

			line := rawExchange(t, srv.Addr(), tc.preAuth, tc.in)
			assert.True(t, strings.HasPrefix(line, "-ERR "+err.Error()), "redis said %q, the Framer %q", line, err)
		})
	}

	// At the limits themselves redis goes on (and asks for AUTH), and so
	// does the Framer.
	for _, in := range []string{
		"*10\r\n$4\r\nMSET\r\n$1\r\nk\r\n" + strings.Repeat("$1\r\na\r\n", 8),
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$16384\r\n" + strings.Repeat("b", 16384) + "\r\n",
	} {
		f := resp.NewFramer(resp.Limits{})
		f.SetPreAuth(true)
		n, req, err := f.Next([]byte(in))
		require.NoError(t, err)
		require.NotNil(t, req)
		assert.Equal(t, len(in), n)
		line := rawExchange(t, srv.Addr(), true, in)
		assert.True(t, strings.HasPrefix(line, "-NOAUTH"), "redis said %q", line)
	}
}

// rawExchange writes raw bytes on a fresh unauthenticated connection (or
// an authenticated one) and returns the first reply line.
func rawExchange(t *testing.T, addr string, preAuth bool, in string) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	br := bufio.NewReader(nc)
	if !preAuth {
		_, err = io.WriteString(nc, "AUTH s3cret\r\n")
		require.NoError(t, err)
		line, err := br.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "+OK\r\n", line)
	}
	_, err = io.WriteString(nc, in)
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		require.NoError(t, err)
	}
	return strings.TrimRight(line, "\r\n")
}
