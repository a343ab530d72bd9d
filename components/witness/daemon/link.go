package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
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
// (PING, INFO, PUBLISH, SENTINEL is-master-down-by-addr) served by one worker
// so replies arrive in order like on a hiredis async link, and for Redis nodes
// a Pub/Sub link subscribed to the hello channel. Both are resp.Conn, so the
// links parse with the project's one RESP stack. A probe (core.ActProbe) is a
// PING on a third, fresh connection while the command link is late; if the
// core adopts it, it becomes the command link. Its goroutines hand what they
// read (replies as resp values, errors, hello messages) to the driver through
// the loop; they decide nothing.
type link struct {
	s      *Server
	target core.Target
	opts   resp.DialOptions
	queue  chan core.Action
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	mu      sync.Mutex
	cmd     *resp.Conn // the command connection; nil until dialled, and after a failure
	nc      net.Conn   // cmd's socket, watched while the link is idle
	localIP string     // our address on the command link, for hellos
	probe   *resp.Conn // a probe's connection while its reply is handled
	probeNC net.Conn
	probing bool // a probe goroutine runs
}

// errSuperseded: the connection a command ran on was replaced by an adopted
// probe; the core has already forgotten the command, so nothing is posted.
var errSuperseded = errors.New("command connection replaced by a probe")

func (s *Server) newLink(t core.Target) *link {
	ctx, cancel := context.WithCancel(s.ctx)
	l := &link{s: s, target: t, queue: make(chan core.Action, 16), ctx: ctx, cancel: cancel}
	auth := s.opts.SentinelAuth
	if t.Kind != core.KindSentinel {
		auth = s.opts.MasterAuth[t.Master]
	}
	// A slow link is not a dead one: the core times SDOWN from the first
	// unanswered PING and probes a late link on a fresh connection, so the
	// connection itself waits well past down-after (a reply that takes 3 s
	// on a link with down-after 5 s is a proof of life, not a failure).
	timeout := driver.CommandTimeout(s.drv.Core().DownAfter(t.Master))
	l.opts = resp.DialOptions{
		DialTimeout: timeout,
		Timeout:     timeout,
		Username:    auth.User,
		Password:    auth.Pass,
		Protocol:    2,
		// Replies are small (INFO is the largest); a peer cannot make the
		// witness buffer more than this.
		MaxReply: 1 << 20,
	}
	s.wg.Add(1)
	go l.worker()
	if t.Kind != core.KindSentinel {
		s.wg.Add(1)
		go l.subscriber()
	}
	return l
}

// dial opens one of the link's connections, named as sentinel names its own
// ("sentinel-<id8>-cmd", "-pubsub"), and returns its socket too.
func (l *link) dial(kind string) (*resp.Conn, net.Conn, error) {
	o := l.opts
	o.ClientName = "sentinel-" + l.s.myID[:8] + "-" + kind
	var nc net.Conn
	o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		nc = c
		return c, err
	}
	c, err := resp.Dial(l.ctx, l.target.Addr.String(), o)
	return c, nc, err
}

func localIPOf(nc net.Conn) string {
	if nc != nil {
		if ta, ok := nc.LocalAddr().(*net.TCPAddr); ok {
			return ta.IP.String()
		}
	}
	return ""
}

// send queues a command for the worker (or starts a probe, or adopts the
// probe's connection). A full queue cannot happen with the core's
// one-in-flight-per-kind rule; the command fails rather than block the loop.
// It runs on the loop goroutine.
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
	select {
	case l.queue <- a:
		return nil
	default:
		return errors.New("link queue full")
	}
}

// adopt makes the probe's connection the command link and closes the old
// one: a command blocked on it fails with errSuperseded and is not reported.
func (l *link) adopt() {
	l.mu.Lock()
	old := l.cmd
	if l.probe == nil {
		l.mu.Unlock()
		return
	}
	l.cmd, l.nc, l.localIP = l.probe, l.probeNC, localIPOf(l.probeNC)
	l.probe, l.probeNC = nil, nil
	l.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// runProbe dials a fresh connection and PINGs on it; the connection is
// offered for adoption while the driver handles the reply, then closed if
// the core did not adopt it.
func (l *link) runProbe(a core.Action) {
	defer l.s.wg.Done()
	defer func() {
		l.mu.Lock()
		l.probing = false
		l.mu.Unlock()
	}()
	c, nc, err := l.dial("cmd")
	var v resp.Value
	if err == nil {
		v, err = c.Do(l.ctx, "PING")
		var re resp.ReplyError
		if err != nil && errors.As(err, &re) {
			err = nil
		}
	}
	var re resp.ReplyError
	if err != nil && errors.As(err, &re) {
		v, err = resp.Value{Kind: resp.Error, Str: string(re)}, nil // refused handshake: still a reply
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		l.post(a, v, err)
		return
	}
	if c != nil {
		l.mu.Lock()
		l.probe, l.probeNC = c, nc
		l.mu.Unlock()
	}
	l.post(a, v, nil)
	l.mu.Lock()
	left := l.probe
	l.probe, l.probeNC = nil, nil
	l.mu.Unlock()
	if left != nil {
		left.Close() // not adopted
	}
}

// close stops the link's goroutines; they close their connections.
func (l *link) close() {
	l.once.Do(l.cancel)
}

func (l *link) current() (*resp.Conn, net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cmd, l.nc
}

// drop closes c and forgets it if it is still the command connection; it
// reports whether it was (false: an adopted probe replaced it).
func (l *link) drop(c *resp.Conn) bool {
	l.mu.Lock()
	cur := l.cmd == c
	if cur {
		l.cmd, l.nc = nil, nil
	}
	l.mu.Unlock()
	c.Close()
	return cur
}

// worker runs the commands in order. While the command link is open and
// idle it watches the socket, so that a peer that closes or resets it (a
// crashed process) is reported to the driver at once, as hiredis reports it
// to sentinel, rather than at the next scheduled command.
func (l *link) worker() {
	defer l.s.wg.Done()
	defer func() {
		if c, _ := l.current(); c != nil {
			l.drop(c)
		}
	}()
	for {
		c, nc := l.current()
		if c == nil {
			select {
			case <-l.ctx.Done():
				return
			case a := <-l.queue:
				l.run(a)
			}
			continue
		}
		w := watchIdle(nc)
		select {
		case <-l.ctx.Done():
			w.stop()
			return
		case err := <-w.res:
			if l.drop(c) {
				l.postDown(err)
			}
		case a := <-l.queue:
			if err := w.stop(); err != nil {
				if l.drop(c) {
					l.postDown(err)
				}
			}
			l.run(a)
		}
	}
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

// idleWatch reads the idle command link's socket: nothing may arrive there
// (RESP2, no subscription), so the read ends only with the connection, or
// when stop wakes it before the next command.
type idleWatch struct {
	nc  net.Conn
	res chan error
}

func watchIdle(nc net.Conn) *idleWatch {
	w := &idleWatch{nc: nc, res: make(chan error, 1)}
	_ = nc.SetReadDeadline(time.Time{}) // before the read starts, so stop's deadline wins
	go func() {
		var b [1]byte
		n, err := nc.Read(b[:])
		if n > 0 {
			err = errUnexpectedData
		}
		w.res <- err
	}()
	return w
}

// stop ends the watch; it returns the error that ended the connection
// meanwhile, nil if it is still good.
func (w *idleWatch) stop() error {
	_ = w.nc.SetReadDeadline(time.Unix(1, 0))
	err := <-w.res
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return err
}

// post hands the outcome of a to the driver, unless the link was closed or
// the command's connection was replaced by an adopted probe.
func (l *link) post(a core.Action, v resp.Value, err error) {
	if l.ctx.Err() != nil || errors.Is(err, errSuperseded) {
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

// do runs one command on the command link, dialling it first when needed.
// An error reply (also one to the handshake's AUTH) is a value, as on a
// hiredis link; a transport failure drops the connection, to be dialled
// again by the next command.
func (l *link) do(args ...string) (resp.Value, error) {
	c, _ := l.current()
	if c == nil {
		nc, ncc, err := l.dial("cmd")
		if err != nil {
			var re resp.ReplyError
			if errors.As(err, &re) {
				return resp.Value{Kind: resp.Error, Str: string(re)}, nil
			}
			return resp.Value{}, err
		}
		l.mu.Lock()
		if l.cmd != nil { // a probe was adopted meanwhile
			l.mu.Unlock()
			nc.Close()
			return resp.Value{}, errSuperseded
		}
		l.cmd, l.nc, l.localIP = nc, ncc, localIPOf(ncc)
		l.mu.Unlock()
		c = nc
	}
	v, err := c.Do(l.ctx, args...)
	var re resp.ReplyError
	if err != nil && errors.As(err, &re) {
		return v, nil
	}
	if err != nil && !l.drop(c) {
		return v, errSuperseded
	}
	return v, err
}

func (l *link) run(a core.Action) {
	switch a.Kind {
	case core.ActPing:
		v, err := l.do("PING")
		l.post(a, v, err)
	case core.ActInfo:
		v, err := l.do("INFO")
		l.post(a, v, err)
	case core.ActHello:
		h := a.Hello
		if h.IP == "" {
			l.mu.Lock()
			ip := l.localIP
			l.mu.Unlock()
			if ip == "" {
				// Not connected yet; sentinel also skips the hello then.
				l.post(a, resp.Value{}, errors.New("hello: no local address yet"))
				return
			}
			h.IP = ip
		}
		v, err := l.do("PUBLISH", core.HelloChannel, h.String())
		l.post(a, v, err)
	case core.ActAsk:
		q := a.Ask
		v, err := l.do("SENTINEL", "is-master-down-by-addr", q.IP, strconv.Itoa(q.Port), fmt.Sprint(q.Epoch), q.RunID)
		l.post(a, v, err)
	}
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

func (l *link) subscribeOnce() error {
	c, _, err := l.dial("pubsub")
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Subscribe(l.ctx, core.HelloChannel); err != nil {
		return err
	}
	for {
		ctx, cancel := context.WithTimeout(l.ctx, subIdle)
		m, err := c.ReceiveMessage(ctx)
		cancel()
		if err != nil {
			return err
		}
		if m.Channel == core.HelloChannel {
			l.s.onHello(m.Payload, driver.ViaPubSub)
		}
	}
}

func (s *Server) onHello(payload string, via driver.Via) {
	s.do(func(now time.Time) { _ = s.drv.HandleHello(now, payload, via) })
}
