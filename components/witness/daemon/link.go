package daemon

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
	"github.com/redisha/redisha/components/witness/driver"
)

// subIdle is how long the hello subscription may stay silent before it is
// re-established: the witness itself publishes a hello to every node every
// 2 s, so a silent subscription is a dead connection (go-redis's pub/sub
// health check used the same 5 s).
const subIdle = 5 * time.Second

// link is the pair of connections sentinel keeps per instance: a command link
// (PING, INFO, PUBLISH, SENTINEL is-master-down-by-addr) and, for Redis
// nodes, a Pub/Sub link subscribed to the hello channel. The command link is
// pipelined like sentinel's hiredis async link: commands are written as the
// core issues them and a reader matches the replies in order, so a slow
// reply to INFO never holds a PING back. A probe (core.ActProbe) is a PING
// on a fresh connection while the command link is late; if the core adopts
// it, it becomes the command link. The goroutines hand what they read
// (replies as resp values, errors, hello messages) to the driver through
// the loop; they decide nothing.
type link struct {
	s       *Server
	target  core.Target
	timeout time.Duration
	auth    Auth
	ctx     context.Context
	cancel  context.CancelFunc
	once    sync.Once

	mu      sync.Mutex // guards cur, localIP, probe, probing and every write on a pconn
	cur     *pconn     // the command connection; nil until dialled, and after a failure
	localIP string     // our address on the command link, for hellos
	probe   *pconn     // the probe's connection while it runs
	probing bool
	out     []byte // the command being written (Server.encode)
	// Commands are written by the loop itself while the command
	// connection is up and its socket takes them at once; otherwise
	// (dialling, a write that would block) a writer goroutine runs for as
	// long as there is something to write, and the commands sent meanwhile
	// wait in pending, in order. An idle link has no goroutine but its
	// connection's reader.
	pending []core.Action
	writing bool   // a writer goroutine runs
	tail    []byte // the unwritten end of a command the loop began
	tailOn  *pconn

	sub     net.Conn     // the hello subscription while it runs (under mu)
	subLast atomic.Int64 // mono() of the subscription's last message
}

// pconn is one pipelined command connection: writes happen under link.mu,
// one reader goroutine reads the replies and pairs them with the commands
// in q, in order.
type pconn struct {
	l          *link
	nc         net.Conn
	qmu        sync.Mutex
	q          []core.Action // commands written, reply not read yet (Kind 0: handshake)
	superseded atomic.Bool   // replaced by an adopted probe: nothing it owed is reported
	// owedSince is mono() when the reply now awaited became due (its
	// command was written onto an idle connection, or the reply before it
	// arrived); 0 while nothing is owed. Server.sweep closes the connection
	// once it is older than the link's timeout and marks it expired: the
	// reply deadline, checked on the loop's tick instead of a runtime timer
	// per command (see quietConn).
	owedSince atomic.Int64
	expired   atomic.Bool
}

// monoBase anchors mono: time.Since reads the monotonic clock.
var monoBase = time.Now()

// mono is the time since the process started, on the monotonic clock.
func mono() int64 { return int64(time.Since(monoBase)) }

func (s *Server) newLink(t core.Target) *link {
	ctx, cancel := context.WithCancel(s.ctx)
	l := &link{s: s, target: t, ctx: ctx, cancel: cancel}
	l.auth = s.opts.SentinelAuth
	if t.Kind != core.KindSentinel {
		l.auth = s.opts.MasterAuth[t.Master]
	}
	// A slow link is not a dead one: the core times SDOWN from the first
	// unanswered PING and probes a late link on a fresh connection, so a
	// connection waits well past down-after (a reply that takes 3 s on a
	// link with down-after 5 s is a proof of life, not a failure).
	l.timeout = driver.CommandTimeout(s.drv.Core().DownAfter(t.Master))
	if t.Kind != core.KindSentinel {
		s.wg.Add(1)
		go l.subscriber()
	}
	return l
}

// maxLinkReply bounds one reply on a link (INFO is the largest); a peer
// cannot make the witness buffer more.
const maxLinkReply = 1 << 20

// linkReadBuf is the read buffer of a command link and of a client
// connection: what crosses them at idle (PONG, a hello, a vote request) is
// a few hundred bytes, and resp.Reader reads a longer line or bulk (INFO)
// through it in several reads.
const linkReadBuf = 1 << 10

// writeTimeout bounds one write of a few small commands: a socket whose
// send buffer stays full that long is stuck.
const writeTimeout = time.Second

// connect dials a command connection and pipelines sentinel's handshake
// (AUTH, CLIENT SETNAME) ahead of anything else; its replies are skipped.
// It does not start the reader.
func (l *link) connect() (*pconn, error) {
	d := net.Dialer{Timeout: l.timeout}
	nc, err := d.DialContext(l.ctx, "tcp", l.target.Addr.String())
	if err != nil {
		return nil, err
	}
	p := &pconn{l: l, nc: newQuietConn(nc, writeTimeout)}
	var hs [][]string
	if l.auth.Pass != "" {
		if l.auth.User != "" {
			hs = append(hs, []string{"AUTH", l.auth.User, l.auth.Pass})
		} else {
			hs = append(hs, []string{"AUTH", l.auth.Pass})
		}
	}
	hs = append(hs, []string{"CLIENT", "SETNAME", "sentinel-" + l.s.myID[:8] + "-cmd"})
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, args := range hs {
		if err := p.write(core.Action{}, args...); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return p, nil
}

// write sends one command and queues a for its reply; l.mu is held. The
// connection bounds a write that blocks by writeTimeout (quietConn).
func (p *pconn) write(a core.Action, args ...string) error {
	_, err := p.put(a, args, nil)
	return err
}

// writeNow is write for the loop goroutine: one non-blocking write; it
// returns what the socket did not take (the caller has it written later,
// ahead of anything else) and false, with nothing queued, when the
// connection does not support it. l.mu is held.
func (p *pconn) writeNow(a core.Action, args ...string) ([]byte, bool) {
	qc, ok := p.nc.(*quietConn)
	if !ok {
		return nil, false
	}
	rest, _ := p.put(a, args, qc)
	return rest, true
}

// put queues a for its reply, encodes its command and writes it: with one
// non-blocking write on nb when it is set, else with a blocking write. The
// reply is due from now when the queue was empty (the reader moves it on).
// It returns what the socket did not take; on an error the connection is
// closed (its reader reports every command owed) and nothing is left to
// write. l.mu is held.
func (p *pconn) put(a core.Action, args []string, nb *quietConn) ([]byte, error) {
	l := p.l
	p.qmu.Lock()
	p.q = append(p.q, a)
	if len(p.q) == 1 {
		p.owedSince.Store(mono())
	}
	p.qmu.Unlock()
	l.out = l.s.encode(2, l.out, func(w *resp.Writer) {
		w.Array(len(args))
		for _, x := range args {
			w.Bulk(x)
		}
	})
	var n int
	var err error
	if nb != nil {
		n, err = nb.write(l.out, true)
	} else {
		n, err = p.nc.Write(l.out)
	}
	if err != nil {
		p.nc.Close()
		return nil, err
	}
	return l.out[n:], nil
}

// pop takes the command the next reply answers and moves the reply
// deadline: none while nothing is owed, so an idle link waits for ever and
// its reader sees a crashed peer's EOF at once, as hiredis does.
func (p *pconn) pop() (core.Action, bool) {
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if len(p.q) == 0 {
		return core.Action{}, false
	}
	a := p.q[0]
	p.q = p.q[1:]
	if len(p.q) == 0 {
		p.q = nil
		p.owedSince.Store(0)
	} else {
		p.owedSince.Store(mono())
	}
	return a, true
}

// read runs the connection's reader until the connection ends: every reply
// goes to the driver as the outcome of its command; at the end, every
// command still owed fails with the error, and an idle connection that
// broke is reported as a broken link.
func (p *pconn) read() {
	l := p.l
	defer l.s.wg.Done()
	r := resp.NewReaderLimits(bufio.NewReaderSize(p.nc, linkReadBuf),
		resp.Limits{MaxBulk: maxLinkReply, MaxElems: 64, MaxDepth: 2, MaxInline: 4 << 10})
	var err error
	for {
		var v resp.Value
		v, err = r.ReadValue()
		if err != nil {
			break
		}
		a, ok := p.pop()
		if !ok {
			err = errUnexpectedData
			break
		}
		if a.Kind == 0 || p.superseded.Load() {
			continue // a handshake reply; an error one shows in the next reply
		}
		l.post(a, v, nil)
		if a.Kind == core.ActProbe {
			l.mu.Lock()
			adopted := l.cur == p
			if !adopted && l.probe == p {
				l.probe = nil
			}
			l.mu.Unlock()
			if !adopted {
				p.nc.Close()
				return
			}
		}
	}
	p.nc.Close()
	if p.expired.Load() {
		err = &net.OpError{Op: "read", Net: "tcp", Addr: p.nc.RemoteAddr(), Err: os.ErrDeadlineExceeded}
	}
	l.mu.Lock()
	if l.cur == p {
		l.cur = nil
	}
	if l.probe == p {
		l.probe = nil
	}
	l.mu.Unlock()
	if p.superseded.Load() {
		return
	}
	p.qmu.Lock()
	owed := p.q
	p.q = nil
	p.qmu.Unlock()
	n := 0
	for _, a := range owed {
		if a.Kind != 0 {
			l.post(a, resp.Value{}, err)
			n++
		}
	}
	if n == 0 {
		l.postDown(err)
	}
}

// maxPending bounds the commands waiting for the writer goroutine. A full
// queue cannot happen with the core's one-in-flight-per-kind rule; the
// command fails rather than grow it.
const maxPending = 16

// send writes a command (or starts a probe, or adopts the probe's
// connection). It runs on the loop goroutine and never blocks on the
// network: with the command connection up and nothing waiting, the
// command is written at once with a non-blocking write; a connection to
// dial, or a socket that takes only part of the command, is left to the
// writer goroutine.
func (l *link) send(a core.Action) error {
	switch a.Kind {
	case core.ActProbe:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.probing {
			return errors.New("probe already running")
		}
		l.probing = true
		l.s.wg.Add(1)
		go l.runProbe(a)
		return nil
	case core.ActAdopt:
		l.adopt()
		return nil
	}
	args := l.args(a)
	if args == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.writing && l.cur != nil {
		if rest, ok := l.cur.writeNow(a, args...); ok {
			if len(rest) > 0 {
				l.tail, l.tailOn = append(l.tail[:0], rest...), l.cur
				l.startWriter()
			}
			return nil
		}
	}
	if len(l.pending) >= maxPending {
		return errors.New("link queue full")
	}
	l.pending = append(l.pending, a)
	if !l.writing {
		l.startWriter()
	}
	return nil
}

// startWriter starts the writer goroutine; l.mu is held.
func (l *link) startWriter() {
	l.writing = true
	l.s.wg.Add(1)
	go l.writer()
}

// writer finishes the loop's partial write, then writes the pending
// commands in order (dialling when there is no connection), and ends when
// nothing is left.
func (l *link) writer() {
	defer l.s.wg.Done()
	for {
		l.mu.Lock()
		if l.tailOn != nil {
			p := l.tailOn
			if _, err := p.nc.Write(l.tail); err != nil {
				p.nc.Close() // the reader reports every command owed
			}
			l.tail, l.tailOn = l.tail[:0], nil
		}
		if len(l.pending) == 0 || l.ctx.Err() != nil {
			l.pending, l.writing = nil, false
			l.mu.Unlock()
			return
		}
		a := l.pending[0]
		l.pending = l.pending[1:]
		l.mu.Unlock()
		l.run(a)
	}
}

// adopt makes the probe's connection the command link and closes the old
// one, whose owed replies are dropped (the core forgot those commands).
func (l *link) adopt() {
	l.mu.Lock()
	old, p := l.cur, l.probe
	if p == nil {
		l.mu.Unlock()
		return
	}
	l.cur, l.probe, l.localIP = p, nil, localIPOf(p.nc)
	l.mu.Unlock()
	if old != nil {
		old.superseded.Store(true)
		old.nc.Close()
	}
}

// runProbe dials a fresh connection and PINGs on it; the reply goes to the
// driver as ActProbe's, and the connection is closed unless adopted then.
func (l *link) runProbe(a core.Action) {
	defer l.s.wg.Done()
	p, err := l.connect()
	if err == nil {
		l.mu.Lock()
		err = p.write(a, "PING")
		if err == nil {
			l.probe = p
			if l.ctx.Err() != nil { // closed while dialling
				p.nc.Close()
			}
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.probing = false
	l.mu.Unlock()
	if err != nil {
		l.post(a, resp.Value{}, err)
		return
	}
	l.s.wg.Add(1)
	go p.read()
}

// close stops the link: its connections are closed (their readers end)
// and a dial in progress is cancelled. A connection installed after this
// sees the cancelled context under l.mu and is closed at once.
func (l *link) close() {
	l.once.Do(func() {
		l.cancel()
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, p := range []*pconn{l.cur, l.probe} {
			if p != nil {
				p.nc.Close()
			}
		}
	})
}

// sweep enforces the link's timeouts at now (mono()): a command
// connection whose awaited reply is l.timeout late is closed as timed out
// (its reader reports every command owed), and a hello subscription silent
// for subIdle is closed and subscribed again. It runs on the loop's timer
// wake-ups, at most 100 ms apart, in place of a deadline per command.
func (l *link) sweep(now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range []*pconn{l.cur, l.probe} {
		if p == nil {
			continue
		}
		if since := p.owedSince.Load(); since != 0 && now-since >= int64(l.timeout) && !p.expired.Load() {
			p.expired.Store(true)
			p.nc.Close()
		}
	}
	if l.sub != nil && now-l.subLast.Load() >= int64(subIdle) {
		l.sub.Close()
		l.sub = nil
	}
}

func localIPOf(nc net.Conn) string {
	if ta, ok := nc.LocalAddr().(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}

// run writes a's command, dialling first when needed; a failure goes to the
// driver as the command's outcome. It runs on the writer goroutine.
func (l *link) run(a core.Action) {
	l.mu.Lock()
	p := l.cur
	l.mu.Unlock()
	if p == nil {
		var err error
		if p, err = l.connect(); err != nil {
			l.post(a, resp.Value{}, err)
			return
		}
		l.mu.Lock()
		if l.cur != nil { // a probe was adopted meanwhile
			p.nc.Close()
			p = l.cur
		} else {
			l.cur, l.localIP = p, localIPOf(p.nc)
			if l.ctx.Err() != nil { // closed while dialling
				p.nc.Close()
			}
			l.s.wg.Add(1)
			go p.read()
		}
		l.mu.Unlock()
	}
	args := l.args(a)
	if args == nil {
		return
	}
	l.mu.Lock()
	if l.cur != nil {
		p = l.cur
	}
	err := p.write(a, args...)
	l.mu.Unlock()
	_ = err // a failed write closes the connection; its reader reports every command owed
}

// args is a's command, nil for an action that is not one. A hello without
// an announced IP carries our address on the command link.
func (l *link) args(a core.Action) []string {
	switch a.Kind {
	case core.ActPing:
		return []string{"PING"}
	case core.ActInfo:
		return []string{"INFO"}
	case core.ActHello:
		h := a.Hello
		if h.IP == "" {
			l.mu.Lock()
			h.IP = l.localIP
			l.mu.Unlock()
		}
		return []string{"PUBLISH", core.HelloChannel, h.String()}
	case core.ActAsk:
		q := a.Ask
		return []string{"SENTINEL", "is-master-down-by-addr", q.IP, strconv.Itoa(q.Port), strconv.FormatUint(q.Epoch, 10), q.RunID}
	}
	return nil
}

// postDown tells the driver that a connection of the link broke outside a
// command: closed, reset or refused. Timeouts are not breaks (a slow link
// is not a dead one) and are not reported.
func (l *link) postDown(err error) {
	if l.ctx.Err() != nil || !isBroken(err) {
		return
	}
	t := l.target
	l.s.do(func(now time.Time) { l.s.drv.HandleLinkDown(now, t, err) })
}

// isBroken reports whether err says the peer closed, reset or refused the
// connection.
func isBroken(err error) bool {
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.ECONNREFUSED,
		syscall.ECONNABORTED, syscall.EPIPE, errUnexpectedData} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

var errUnexpectedData = errors.New("unexpected data on an idle command link")

// post hands the outcome of a to the driver, unless the link was closed.
func (l *link) post(a core.Action, v resp.Value, err error) {
	if l.ctx.Err() != nil {
		return
	}
	t := l.target
	l.s.do(func(now time.Time) {
		if err != nil {
			l.s.drv.HandleLinkError(now, t, a.Kind, err)
		} else {
			l.s.drv.HandleReply(now, t, a.Kind, v)
		}
	})
}

// subscriber keeps a connection subscribed to the node's hello channel and
// hands every message to the driver; after any failure it waits a second
// and subscribes again.
func (l *link) subscriber() {
	defer l.s.wg.Done()
	for l.ctx.Err() == nil {
		if err := l.subscribeOnce(); err != nil && l.ctx.Err() == nil {
			l.s.log.Debug("hello subscription lost", "target", l.target.Addr.String(), "err", err)
			l.postDown(err)
		}
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// subscribeOnce subscribes to the hello channel on a fresh connection and
// reads its messages until the connection fails. It uses the command
// links' raw socket I/O and a small read buffer (a resp.Conn carried 32 KiB
// of buffers for a few hellos a second). The handshake (AUTH, CLIENT
// SETNAME, SUBSCRIBE) is pipelined; from the dial on, the loop's sweep
// closes the connection after subIdle without a reply or a message.
func (l *link) subscribeOnce() error {
	d := net.Dialer{Timeout: l.timeout}
	raw, err := d.DialContext(l.ctx, "tcp", l.target.Addr.String())
	if err != nil {
		return err
	}
	nc := newQuietConn(raw, writeTimeout)
	defer nc.Close()
	stop := context.AfterFunc(l.ctx, func() { nc.Close() })
	defer stop()
	l.subLast.Store(mono())
	l.mu.Lock()
	l.sub = nc
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if l.sub == nc {
			l.sub = nil
		}
		l.mu.Unlock()
	}()
	var cmds [][]string
	if l.auth.Pass != "" {
		if l.auth.User != "" {
			cmds = append(cmds, []string{"AUTH", l.auth.User, l.auth.Pass})
		} else {
			cmds = append(cmds, []string{"AUTH", l.auth.Pass})
		}
	}
	cmds = append(cmds, []string{"CLIENT", "SETNAME", "sentinel-" + l.s.myID[:8] + "-pubsub"}, []string{"SUBSCRIBE", core.HelloChannel})
	out := l.s.encode(2, nil, func(w *resp.Writer) {
		for _, args := range cmds {
			w.Array(len(args))
			for _, x := range args {
				w.Bulk(x)
			}
		}
	})
	if _, err := nc.Write(out); err != nil {
		return err
	}
	r := resp.NewReaderLimits(bufio.NewReaderSize(nc, linkReadBuf),
		resp.Limits{MaxBulk: maxLinkReply, MaxElems: 64, MaxDepth: 2, MaxInline: 4 << 10})
	for i := 0; i < len(cmds)-1; i++ { // AUTH, CLIENT SETNAME
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		if v.IsError() && cmds[i][0] == "AUTH" {
			return resp.ReplyError(v.Str)
		}
	}
	subscribed := false
	for {
		v, err := r.ReadValue()
		if err != nil {
			return err
		}
		if v.IsError() {
			return resp.ReplyError(v.Str)
		}
		l.subLast.Store(mono())
		m, ok := resp.ParseMessage(v)
		if !ok {
			if !subscribed && (v.Kind == resp.Array || v.Kind == resp.Push) && len(v.Elems) == 3 && strings.EqualFold(v.Elems[0].Text(), "subscribe") {
				subscribed = true
				continue
			}
			return errUnexpectedData
		}
		if m.Channel == core.HelloChannel {
			l.s.onHello(m.Payload, driver.ViaPubSub)
		}
	}
}

func (s *Server) onHello(payload string, via driver.Via) {
	s.do(func(now time.Time) { _ = s.drv.HandleHello(now, payload, via) })
}
