package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
	"github.com/redisha/redisha/components/witness/driver"
)

// RedisVersion is the version we report, the Redis 7 sentinel API we mirror.
const RedisVersion = "7.0.15"

const writeDeadline = 5 * time.Second

// clientConn is one client connection: a command reader, a writer shared by
// replies and pushed messages, and the connection's auth/protocol/pubsub state.
type clientConn struct {
	s      *Server
	id     int64
	conn   net.Conn
	wmu    sync.Mutex
	out    []byte // the reply being written (Server.encode), under wmu
	proto  atomic.Int32
	authed bool
	// handshaken: authenticated (with requirepass) or sent a first command
	// (without). Until then the connection is closed at its auth deadline
	// and may be evicted for a newcomer when maxclients is reached.
	handshaken atomic.Bool
	evicted    atomic.Bool
	name       string
	lib        [2]string

	smu      sync.Mutex
	channels map[string]bool
	patterns map[string]bool
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("accept failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if s.nclients.Load() >= int64(s.opts.MaxClients) && !s.evictUnauthenticated() {
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write([]byte("-ERR max number of clients reached\r\n"))
			conn.Close()
			continue
		}
		// Registered before its goroutine runs, so that the next accept can
		// already evict it. A write that blocks is bounded by writeDeadline
		// (quietConn).
		c := &clientConn{s: s, id: atomic.AddInt64(&s.clientSeq, 1), conn: newQuietConn(conn, writeDeadline),
			authed: s.opts.RequirePass == "", channels: map[string]bool{}, patterns: map[string]bool{}}
		s.clients.Store(c, struct{}{})
		s.nclients.Add(1)
		s.wg.Add(1)
		go s.serveClient(c)
	}
}

// evictUnauthenticated closes the oldest connection that has not
// authenticated yet, so that unauthenticated idlers can never fill
// maxclients and lock the peer sentinels out; it reports whether there was
// one. The evicted connection's count drops when its goroutine ends, so the
// newcomer may briefly make maxclients+1.
func (s *Server) evictUnauthenticated() bool {
	var oldest *clientConn
	s.clients.Range(func(k, _ any) bool {
		c := k.(*clientConn)
		if !c.handshaken.Load() && !c.evicted.Load() && (oldest == nil || c.id < oldest.id) {
			oldest = c
		}
		return true
	})
	if oldest == nil {
		return false
	}
	oldest.evicted.Store(true)
	oldest.conn.Close()
	return true
}

// Client protocol limits (resp.Limits): before authentication Redis's own
// (networking.c: 10 arguments, 16 KiB each, since CVE-2021-32675), so that
// an unauthenticated peer cannot make the witness allocate; after it, what
// the sentinel API needs with room to spare (the largest argument is a
// hello of a few hundred bytes).
var (
	preAuthLimits = resp.Limits{MaxBulk: resp.PreAuthMaxBulk, MaxElems: resp.PreAuthMaxElems, MaxDepth: 1, MaxInline: 16 << 10}
	clientLimits  = resp.Limits{MaxBulk: 64 << 10, MaxElems: 256, MaxDepth: 1, MaxInline: 64 << 10}
)

func (s *Server) serveClient(c *clientConn) {
	defer s.wg.Done()
	conn := c.conn
	c.proto.Store(2)
	s.metrics.clients.Inc()
	defer func() {
		s.nclients.Add(-1)
		s.hub.remove(c)
		s.clients.Delete(c)
		s.metrics.clients.Dec()
		conn.Close()
	}()
	// Both readers share the one buffer; which one reads a command depends
	// on the state when it starts, as in Redis.
	br := bufio.NewReaderSize(conn, linkReadBuf)
	pre, post := resp.NewReaderLimits(br, preAuthLimits), resp.NewReaderLimits(br, clientLimits)
	_ = conn.SetReadDeadline(time.Now().Add(s.opts.AuthTimeout))
	wasHandshaken := false
	for {
		r := post
		if !c.authed {
			r = pre
		}
		args, err := r.ReadCommand()
		if err != nil {
			var pe *resp.ProtocolError
			if errors.As(err, &pe) {
				// Like redis: report the protocol error, then close.
				s.metrics.protocolErrors.Inc()
				c.reply(func(w *resp.Writer) { w.Error("ERR " + pe.Error()) })
			}
			return
		}
		s.metrics.commands.WithLabelValues(commandLabel(args)).Inc()
		if c.authed && !wasHandshaken {
			// Without requirepass the first command is the handshake: mark
			// it before the reply leaves, so that a client that has read
			// its reply can no longer be evicted as an idler (as setAuthed).
			c.handshaken.Store(true)
		}
		if quit := c.dispatch(args); quit {
			return
		}
		switch {
		case c.authed && !wasHandshaken:
			c.handshaken.Store(true)              // without requirepass: the first command
			_ = conn.SetReadDeadline(time.Time{}) // an authenticated client may idle, as with redis' timeout 0
			wasHandshaken = true
		case !c.authed && wasHandshaken: // RESET
			c.handshaken.Store(false)
			_ = conn.SetReadDeadline(time.Now().Add(s.opts.AuthTimeout))
			wasHandshaken = false
		}
	}
}

func commandLabel(args []string) string {
	name := strings.ToLower(args[0])
	switch name {
	case "ping", "info", "role", "publish", "subscribe", "psubscribe", "unsubscribe", "punsubscribe",
		"auth", "hello", "client", "quit", "reset", "echo", "command":
		return name
	case "sentinel":
		if len(args) > 1 {
			sub := strings.ToLower(args[1])
			switch sub {
			case "is-master-down-by-addr", "get-master-addr-by-name", "masters", "master", "replicas",
				"slaves", "sentinels", "ckquorum", "myid":
				return "sentinel " + sub
			}
		}
		return "sentinel other"
	}
	return "unknown"
}

// reply serialises one reply (or push) on the connection.
func (c *clientConn) reply(fn func(w *resp.Writer)) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out = c.s.encode(int(c.proto.Load()), c.out, fn)
	c.send()
}

// send writes c.out; wmu is held. A buffer grown by a large reply (INFO,
// SENTINEL MASTERS) is not kept.
func (c *clientConn) send() {
	if _, err := c.conn.Write(c.out); err != nil {
		c.conn.Close()
	}
	if cap(c.out) > maxKeptReply {
		c.out = nil
	}
}

// maxKeptReply is the largest reply buffer a connection keeps between
// replies.
const maxKeptReply = 4 << 10

func (c *clientConn) subscribed() bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	return len(c.channels)+len(c.patterns) > 0
}

// deliver pushes an event to this client if one of its subscriptions matches.
func (c *clientConn) deliver(channel, msg string) {
	c.smu.Lock()
	exact := c.channels[channel]
	var pats []string
	for p := range c.patterns {
		if core.GlobMatch(p, channel) {
			pats = append(pats, p)
		}
	}
	c.smu.Unlock()
	sort.Strings(pats)
	if exact {
		c.reply(func(w *resp.Writer) {
			w.Push(3)
			w.Bulk("message")
			w.Bulk(channel)
			w.Bulk(msg)
		})
	}
	for _, p := range pats {
		c.reply(func(w *resp.Writer) {
			w.Push(4)
			w.Bulk("pmessage")
			w.Bulk(p)
			w.Bulk(channel)
			w.Bulk(msg)
		})
	}
}

func errArity(cmd string) string { return driver.ErrArity(cmd) }

// coreCommand runs a command that needs the core on the loop, into a buffer
// in the connection's protocol, and sends the reply from this goroutine: the
// loop never writes to a socket. A held reply (is-master-down-by-addr while
// the witness's own SDOWN deadline is near) is waited for here, so the
// connection's later commands wait behind it and replies stay in order.
func (c *clientConn) coreCommand(args []string) {
	s := c.s
	proto := int(c.proto.Load())
	var out []byte
	var wait chan []byte
	if !s.do(func(now time.Time) {
		s.loopW.SetProto(proto)
		if _, ticket := s.drv.ClientCommand(now, core.ClientID(c.id), args, s.loopW); ticket != 0 {
			wait = make(chan []byte, 1)
			s.held[ticket] = heldWaiter{proto: proto, ch: wait}
		}
		_ = s.loopW.Flush()
		out = append(out, s.loopEnc.Bytes()...)
		s.loopEnc.Reset()
	}) {
		return // closing
	}
	if wait != nil {
		select {
		case out = <-wait:
		case <-s.ctx.Done():
			return
		}
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out = append(c.out[:0], out...)
	c.send()
}

// dispatch runs one command; it returns true when the connection must close.
func (c *clientConn) dispatch(args []string) bool {
	cmd := strings.ToLower(args[0])
	if !c.authed && cmd != "auth" && cmd != "hello" && cmd != "quit" {
		c.reply(func(w *resp.Writer) { w.Error("NOAUTH Authentication required.") })
		return false
	}
	if c.subscribed() && c.proto.Load() == 2 {
		switch cmd {
		case "subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset":
		default:
			c.reply(func(w *resp.Writer) {
				w.Error(fmt.Sprintf("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context", cmd))
			})
			return false
		}
	}
	switch cmd {
	case "ping":
		c.cmdPing(args)
	case "echo":
		if len(args) != 2 {
			c.reply(func(w *resp.Writer) { w.Error(errArity(cmd)) })
		} else {
			c.reply(func(w *resp.Writer) { w.Bulk(args[1]) })
		}
	case "quit":
		c.reply(func(w *resp.Writer) { w.Simple("OK") })
		return true
	case "reset":
		c.unsubscribeAll()
		c.proto.Store(2)
		c.name = ""
		c.authed = c.s.opts.RequirePass == ""
		c.reply(func(w *resp.Writer) { w.SetProto(2); w.Simple("RESET") })
	case "auth":
		c.cmdAuth(args)
	case "hello":
		c.cmdHello(args)
	case "client":
		c.cmdClient(args)
	case "command":
		c.reply(func(w *resp.Writer) { w.Array(0) })
	case "info":
		c.cmdInfo(args)
	case "role", "sentinel", "publish":
		c.coreCommand(args)
	case "subscribe", "psubscribe":
		c.cmdSubscribe(cmd, args)
	case "unsubscribe", "punsubscribe":
		c.cmdUnsubscribe(cmd, args)
	default:
		var b strings.Builder
		for i, a := range args[1:] {
			if i == 10 {
				break
			}
			fmt.Fprintf(&b, "'%s' ", truncate(a, 128))
		}
		c.reply(func(w *resp.Writer) {
			w.Error(fmt.Sprintf("ERR unknown command '%s', with args beginning with: %s", truncate(args[0], 128), b.String()))
		})
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (c *clientConn) cmdPing(args []string) {
	if len(args) > 2 {
		c.reply(func(w *resp.Writer) { w.Error(errArity("ping")) })
		return
	}
	if c.subscribed() && c.proto.Load() == 2 {
		msg := ""
		if len(args) == 2 {
			msg = args[1]
		}
		c.reply(func(w *resp.Writer) { w.Array(2); w.Bulk("pong"); w.Bulk(msg) })
		return
	}
	if len(args) == 2 {
		c.reply(func(w *resp.Writer) { w.Bulk(args[1]) })
		return
	}
	// Peers accept only this exact simple string.
	c.reply(func(w *resp.Writer) { w.Simple("PONG") })
}

func (c *clientConn) checkPass(user, pass string) bool {
	return (user == "" || user == "default") && c.s.opts.RequirePass != "" && pass == c.s.opts.RequirePass
}

// setAuthed marks the connection authenticated before its reply leaves, so
// that once a client reads +OK it can no longer be evicted as an idler.
func (c *clientConn) setAuthed() {
	c.authed = true
	c.handshaken.Store(true)
}

func (c *clientConn) cmdAuth(args []string) {
	var user, pass string
	switch len(args) {
	case 2:
		pass = args[1]
	case 3:
		user, pass = args[1], args[2]
	default:
		c.reply(func(w *resp.Writer) { w.Error("ERR syntax error") })
		return
	}
	if c.s.opts.RequirePass == "" && len(args) == 2 {
		c.reply(func(w *resp.Writer) {
			w.Error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		})
		return
	}
	if !c.checkPass(user, pass) && !(c.s.opts.RequirePass == "" && (user == "default")) {
		c.s.metrics.authFailures.Inc()
		c.reply(func(w *resp.Writer) { w.Error("WRONGPASS invalid username-password pair or user is disabled.") })
		return
	}
	c.setAuthed()
	c.reply(func(w *resp.Writer) { w.Simple("OK") })
}

// cmdHello implements HELLO [protover [AUTH user pass] [SETNAME name]].
func (c *clientConn) cmdHello(args []string) {
	proto := int(c.proto.Load())
	if len(args) >= 2 {
		v, err := strconv.Atoi(args[1])
		if err != nil {
			c.reply(func(w *resp.Writer) { w.Error("ERR Protocol version is not an integer or out of range") })
			return
		}
		if v != 2 && v != 3 {
			c.reply(func(w *resp.Writer) { w.Error("NOPROTO unsupported protocol version") })
			return
		}
		proto = v
	}
	name, setName := "", false
	for i := 2; i < len(args); i++ {
		switch {
		case strings.EqualFold(args[i], "auth") && i+2 < len(args):
			if !c.checkPass(args[i+1], args[i+2]) {
				c.s.metrics.authFailures.Inc()
				c.reply(func(w *resp.Writer) { w.Error("WRONGPASS invalid username-password pair or user is disabled.") })
				return
			}
			c.setAuthed()
			i += 2
		case strings.EqualFold(args[i], "setname") && i+1 < len(args):
			name, setName = args[i+1], true
			i++
		default:
			c.reply(func(w *resp.Writer) { w.Error(fmt.Sprintf("ERR Syntax error in HELLO option '%s'", args[i])) })
			return
		}
	}
	if !c.authed {
		c.reply(func(w *resp.Writer) {
			w.Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		})
		return
	}
	if setName {
		if !validClientName(name) {
			c.reply(func(w *resp.Writer) {
				w.Error("ERR Client names cannot contain spaces, newlines or special characters.")
			})
			return
		}
		c.name = name
	}
	c.proto.Store(int32(proto))
	c.reply(func(w *resp.Writer) {
		w.SetProto(proto)
		// redis-server in sentinel mode leaves out "role".
		w.Map(6)
		w.Bulk("server")
		w.Bulk("redis")
		w.Bulk("version")
		w.Bulk(RedisVersion)
		w.Bulk("proto")
		w.Int(int64(proto))
		w.Bulk("id")
		w.Int(c.id)
		w.Bulk("mode")
		w.Bulk("sentinel")
		w.Bulk("modules")
		w.Array(0)
	})
}

func validClientName(n string) bool {
	for i := 0; i < len(n); i++ {
		if n[i] < '!' || n[i] > '~' {
			return false
		}
	}
	return true
}

func (c *clientConn) cmdClient(args []string) {
	if len(args) < 2 {
		c.reply(func(w *resp.Writer) { w.Error(errArity("client")) })
		return
	}
	sub := strings.ToLower(args[1])
	switch {
	case sub == "setname" && len(args) == 3:
		if !validClientName(args[2]) {
			c.reply(func(w *resp.Writer) {
				w.Error("ERR Client names cannot contain spaces, newlines or special characters.")
			})
			return
		}
		c.name = args[2]
		c.reply(func(w *resp.Writer) { w.Simple("OK") })
	case sub == "getname" && len(args) == 2:
		if c.name == "" {
			c.reply(func(w *resp.Writer) { w.Null() })
		} else {
			c.reply(func(w *resp.Writer) { w.Bulk(c.name) })
		}
	case sub == "setinfo" && len(args) == 4:
		switch strings.ToLower(args[2]) {
		case "lib-name":
			c.lib[0] = args[3]
		case "lib-ver":
			c.lib[1] = args[3]
		default:
			c.reply(func(w *resp.Writer) { w.Error(fmt.Sprintf("ERR Unrecognized option '%s'", args[2])) })
			return
		}
		c.reply(func(w *resp.Writer) { w.Simple("OK") })
	case sub == "id" && len(args) == 2:
		c.reply(func(w *resp.Writer) { w.Int(c.id) })
	case sub == "info" && len(args) == 2:
		line := fmt.Sprintf("id=%d addr=%s laddr=%s name=%s resp=%d lib-name=%s lib-ver=%s\n",
			c.id, c.conn.RemoteAddr(), c.conn.LocalAddr(), c.name, c.proto.Load(), c.lib[0], c.lib[1])
		c.reply(func(w *resp.Writer) { w.Bulk(line) })
	default:
		c.reply(func(w *resp.Writer) {
			w.Error(fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try CLIENT HELP.", args[1]))
		})
	}
}

func (c *clientConn) cmdInfo(args []string) {
	want := map[string]bool{}
	for _, a := range args[1:] {
		want[strings.ToLower(a)] = true
	}
	all := len(want) == 0 || want["all"] || want["everything"] || want["default"]
	s := c.s
	var parts []string
	if all || want["server"] {
		up := s.opts.Now().Sub(s.started)
		host, _ := os.Hostname()
		parts = append(parts, fmt.Sprintf("# Server\r\nredis_version:%s\r\nredis_mode:sentinel\r\nos:%s %s\r\narch_bits:64\r\n"+
			"process_id:%d\r\nrun_id:%s\r\ntcp_port:%d\r\nuptime_in_seconds:%d\r\nuptime_in_days:%d\r\nexecutable:redisha-witness\r\nhostname:%s\r\n",
			RedisVersion, runtime.GOOS, runtime.GOARCH, os.Getpid(), s.MyID(), s.opts.Port, int64(up.Seconds()), int64(up.Hours()/24), host))
	}
	if all || want["clients"] {
		n := 0
		s.clients.Range(func(_, _ any) bool { n++; return true })
		parts = append(parts, fmt.Sprintf("# Clients\r\nconnected_clients:%d\r\n", n))
	}
	if all || want["sentinel"] {
		var text string
		s.do(func(now time.Time) { text = s.drv.InfoSentinel(now) })
		parts = append(parts, text)
	}
	text := strings.Join(parts, "\r\n")
	// redis-server sends INFO as a verbatim string in RESP3; a bulk string is
	// what every client turns it into anyway.
	c.reply(func(w *resp.Writer) { w.Bulk(text) })
}

func (c *clientConn) cmdSubscribe(cmd string, args []string) {
	if len(args) < 2 {
		c.reply(func(w *resp.Writer) { w.Error(errArity(cmd)) })
		return
	}
	c.s.hub.add(c)
	for _, ch := range args[1:] {
		c.smu.Lock()
		if cmd == "subscribe" {
			c.channels[ch] = true
		} else {
			c.patterns[ch] = true
		}
		n := len(c.channels) + len(c.patterns)
		c.smu.Unlock()
		ch := ch
		c.reply(func(w *resp.Writer) { w.Push(3); w.Bulk(cmd); w.Bulk(ch); w.Int(int64(n)) })
	}
}

func (c *clientConn) cmdUnsubscribe(cmd string, args []string) {
	c.smu.Lock()
	set := c.channels
	if cmd == "punsubscribe" {
		set = c.patterns
	}
	names := args[1:]
	if len(names) == 0 {
		for k := range set {
			names = append(names, k)
		}
		sort.Strings(names)
	}
	c.smu.Unlock()
	if len(names) == 0 {
		c.reply(func(w *resp.Writer) { w.Push(3); w.Bulk(cmd); w.Null(); w.Int(0) })
		return
	}
	for _, ch := range names {
		c.smu.Lock()
		delete(set, ch)
		n := len(c.channels) + len(c.patterns)
		c.smu.Unlock()
		ch := ch
		c.reply(func(w *resp.Writer) { w.Push(3); w.Bulk(cmd); w.Bulk(ch); w.Int(int64(n)) })
	}
	if !c.subscribed() {
		c.s.hub.remove(c)
	}
}

func (c *clientConn) unsubscribeAll() {
	c.smu.Lock()
	c.channels = map[string]bool{}
	c.patterns = map[string]bool{}
	c.smu.Unlock()
	c.s.hub.remove(c)
}
