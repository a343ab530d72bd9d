package resp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// DialOptions configure a Conn. The zero value dials plainly, RESP2, no AUTH.
type DialOptions struct {
	// Dialer opens the connection; a net.Dialer when nil. nsdial.Dialer's
	// functions fit, to dial from inside a network namespace.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds connecting and the handshake (HELLO, AUTH); 5 s when 0.
	DialTimeout time.Duration
	// Timeout bounds each Do, Flush and Subscribe whose context carries no
	// earlier deadline; 0 leaves them to the context. Receive is bounded by its
	// context only, since a subscriber waits as long as it likes.
	Timeout time.Duration
	// Username and Password authenticate when Password is set (Username empty:
	// the default user, as AUTH with one argument).
	Username, Password string
	// Protocol 3 sends HELLO 3: replies in RESP3, pub/sub messages as pushes.
	// Anything else stays in RESP2.
	Protocol int
	// ClientName is set with the handshake when not empty.
	ClientName string
	// MaxReply bounds one reply's size in bytes (within the 16 KiB read
	// buffer); 64 MiB when 0. A larger reply breaks the connection with
	// ErrReplyTooLarge instead of growing memory without bound.
	MaxReply int64
}

// ErrReplyTooLarge reports a reply over DialOptions.MaxReply.
var ErrReplyTooLarge = errors.New("resp: reply larger than MaxReply")

// ErrClosed is returned by a Conn after Close. A Conn broken by an error
// returns that error (wrapped) instead.
var ErrClosed = errors.New("resp: connection closed")

// ReplyError is an error reply from the server, such as "WRONGPASS invalid
// username-password pair" or "LOADING Redis is loading". The connection stays
// usable after one.
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

// Code is the error's first word: "ERR", "WRONGPASS", "NOAUTH", "LOADING".
func (e ReplyError) Code() string {
	code, _, _ := strings.Cut(string(e), " ")
	return code
}

// Message is one pub/sub delivery.
type Message struct {
	Kind    string // "message", "pmessage" or "smessage"
	Pattern string // the matching pattern of a pmessage
	Channel string
	Payload string
}

// ParseMessage reads a pub/sub delivery, RESP2 array or RESP3 push; it
// reports false for anything else (subscribe confirmations, replies).
func ParseMessage(v Value) (Message, bool) {
	if (v.Kind != Array && v.Kind != Push) || len(v.Elems) < 3 {
		return Message{}, false
	}
	kind := strings.ToLower(v.Elems[0].Text())
	switch {
	case (kind == "message" || kind == "smessage") && len(v.Elems) == 3:
		return Message{Kind: kind, Channel: v.Elems[1].Text(), Payload: v.Elems[2].Text()}, true
	case kind == "pmessage" && len(v.Elems) == 4:
		return Message{Kind: kind, Pattern: v.Elems[1].Text(), Channel: v.Elems[2].Text(), Payload: v.Elems[3].Text()}, true
	}
	return Message{}, false
}

// maxPending bounds the pushes a Conn keeps while it waits for a reply.
const maxPending = 1024

const readBufSize = 16 << 10

// Conn is a minimal client connection for the project's own links to redis
// and sentinels: health probes, the witness's links, test set-up. It speaks
// through Reader and Writer, so those links parse with the same code as the
// rest of the project. For workload clients with pools, retries and cluster
// support, go-redis stays the right tool.
//
// A Conn is used by one goroutine at a time, except Close, which may be called
// from any goroutine and unblocks a pending call. After an I/O error, a
// protocol error, a deadline or a cancellation the connection is out of step
// with the server: it is closed, and every later call returns an error.
type Conn struct {
	nc      net.Conn
	r       *Reader
	w       *Writer      // encodes into wbuf; only flushes touch the socket,
	wbuf    bytes.Buffer // so that every write runs under a deadline
	budget  budgetReader
	opts    DialOptions
	pending []Value // pushes that arrived while a reply was awaited
	err     error
	closed  atomic.Bool
}

// Dial connects to addr and runs the handshake the options ask for.
func Dial(ctx context.Context, addr string, opts DialOptions) (*Conn, error) {
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	dial := opts.Dialer
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("resp: dial %s: %w", addr, err)
	}
	c, err := NewConn(ctx, nc, opts)
	if err != nil {
		return nil, fmt.Errorf("resp: %s: %w", addr, err)
	}
	return c, nil
}

// NewConn runs the handshake on an open connection and returns a Conn that
// owns it (closed on failure). ctx bounds the handshake.
func NewConn(ctx context.Context, nc net.Conn, opts DialOptions) (*Conn, error) {
	if opts.MaxReply <= 0 {
		opts.MaxReply = 64 << 20
	}
	c := &Conn{nc: nc, opts: opts}
	c.budget.r = nc
	lim := DefaultLimits
	lim.MaxBulk = min(lim.MaxBulk, opts.MaxReply)
	c.r = NewReaderLimits(&c.budget, lim)
	c.w = NewWriter(&c.wbuf)
	var hs [][]string
	switch {
	case opts.Protocol == 3:
		hello := []string{"HELLO", "3"}
		if opts.Password != "" {
			user := opts.Username
			if user == "" {
				user = "default"
			}
			hello = append(hello, "AUTH", user, opts.Password)
		}
		if opts.ClientName != "" {
			hello = append(hello, "SETNAME", opts.ClientName)
		}
		hs = append(hs, hello)
	default:
		if opts.Password != "" {
			if opts.Username != "" {
				hs = append(hs, []string{"AUTH", opts.Username, opts.Password})
			} else {
				hs = append(hs, []string{"AUTH", opts.Password})
			}
		}
		if opts.ClientName != "" {
			hs = append(hs, []string{"CLIENT", "SETNAME", opts.ClientName})
		}
	}
	for _, args := range hs {
		if _, err := c.do(ctx, false, args); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", args[0], err)
		}
	}
	return c, nil
}

// Protocol is 3 when the connection speaks RESP3, else 2.
func (c *Conn) Protocol() int {
	if c.opts.Protocol == 3 {
		return 3
	}
	return 2
}

// Do sends one command and returns its reply. An error reply comes back both
// as the value and as a ReplyError; RESP3 pushes that arrive first are kept
// for Receive. Use Subscribe, not Do, to subscribe.
func (c *Conn) Do(ctx context.Context, args ...string) (Value, error) {
	return c.do(ctx, true, args)
}

func (c *Conn) do(ctx context.Context, timeout bool, args []string) (Value, error) {
	if err := c.usable(); err != nil {
		return Value{}, err
	}
	if len(args) == 0 {
		return Value{}, errors.New("resp: Do without a command")
	}
	c.write(args)
	var v Value
	err := c.io(ctx, timeout, func() error {
		if err := c.flush(); err != nil {
			return err
		}
		var err error
		v, err = c.readReply()
		return err
	})
	if err != nil {
		return Value{}, err
	}
	if v.IsError() {
		return v, ReplyError(v.Str)
	}
	return v, nil
}

// Send buffers a command for a pipeline; Flush sends the buffer and Receive
// reads the replies in order.
func (c *Conn) Send(args ...string) error {
	if err := c.usable(); err != nil {
		return err
	}
	if len(args) == 0 {
		return errors.New("resp: Send without a command")
	}
	c.write(args)
	return nil
}

// Flush sends the commands buffered by Send.
func (c *Conn) Flush(ctx context.Context) error {
	if err := c.usable(); err != nil {
		return err
	}
	return c.io(ctx, true, c.flush)
}

// Receive returns the next value from the server: a pipelined reply, or a
// pub/sub message on a subscribed connection (RESP2 array or RESP3 push),
// pushes kept by Do or Subscribe first. An error reply is a value here, not
// an error. Only ctx bounds the wait.
func (c *Conn) Receive(ctx context.Context) (Value, error) {
	if len(c.pending) > 0 {
		v := c.pending[0]
		c.pending = c.pending[1:]
		return v, nil
	}
	if err := c.usable(); err != nil {
		return Value{}, err
	}
	var v Value
	err := c.io(ctx, false, func() error {
		var err error
		v, err = c.read()
		return err
	})
	return v, err
}

// ReceiveMessage returns the next pub/sub message, passing over subscribe
// confirmations and other values.
func (c *Conn) ReceiveMessage(ctx context.Context) (Message, error) {
	for {
		v, err := c.Receive(ctx)
		if err != nil {
			return Message{}, err
		}
		if m, ok := ParseMessage(v); ok {
			return m, nil
		}
	}
}

// Subscribe subscribes to channels and waits for the server to confirm each.
func (c *Conn) Subscribe(ctx context.Context, channels ...string) error {
	return c.subscribe(ctx, "subscribe", channels)
}

// PSubscribe subscribes to patterns and waits for the server to confirm each.
func (c *Conn) PSubscribe(ctx context.Context, patterns ...string) error {
	return c.subscribe(ctx, "psubscribe", patterns)
}

func (c *Conn) subscribe(ctx context.Context, cmd string, names []string) error {
	if err := c.usable(); err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("resp: %s without a channel", cmd)
	}
	c.write(append([]string{strings.ToUpper(cmd)}, names...))
	return c.io(ctx, true, func() error {
		if err := c.flush(); err != nil {
			return err
		}
		for confirmed := 0; confirmed < len(names); {
			v, err := c.read()
			if err != nil {
				return err
			}
			switch {
			case v.IsError():
				return ReplyError(v.Str)
			case (v.Kind == Array || v.Kind == Push) && len(v.Elems) == 3 && strings.EqualFold(v.Elems[0].Text(), cmd):
				confirmed++
			default:
				if err := c.keep(v); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Close closes the connection; it may be called from any goroutine and more
// than once.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.nc.Close()
}

// RemoteAddr is the server's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

func (c *Conn) usable() error {
	if c.err != nil {
		return c.err
	}
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// write encodes a command into the send buffer (memory only).
func (c *Conn) write(args []string) {
	c.w.Array(len(args))
	for _, a := range args {
		c.w.Bulk(a)
	}
	_ = c.w.Flush() // into wbuf: cannot fail
}

// flush sends the buffered commands; it runs inside io, under a deadline.
func (c *Conn) flush() error {
	_, err := c.nc.Write(c.wbuf.Bytes())
	if c.wbuf.Cap() > 1<<20 {
		c.wbuf = bytes.Buffer{} // do not keep a large value's memory
	} else {
		c.wbuf.Reset()
	}
	return err
}

// read decodes one value within the MaxReply budget.
func (c *Conn) read() (Value, error) {
	c.budget.left = c.opts.MaxReply + readBufSize
	return c.r.ReadValue()
}

// readReply reads up to the next value that is not a RESP3 push, keeping the
// pushes for Receive.
func (c *Conn) readReply() (Value, error) {
	for {
		v, err := c.read()
		if err != nil {
			return Value{}, err
		}
		if v.Kind != Push {
			return v, nil
		}
		if err := c.keep(v); err != nil {
			return Value{}, err
		}
	}
}

func (c *Conn) keep(v Value) error {
	if len(c.pending) >= maxPending {
		return fmt.Errorf("resp: more than %d pushes arrived while waiting for a reply", maxPending)
	}
	c.pending = append(c.pending, v)
	return nil
}

// io runs op under ctx's deadline (and the Timeout option when timeout is
// set), with cancellation interrupting a blocked read or write. Any error
// but an error reply leaves the stream out of step: the Conn is broken.
func (c *Conn) io(ctx context.Context, timeout bool, op func() error) error {
	deadline, hasDeadline := ctx.Deadline()
	if timeout && c.opts.Timeout > 0 {
		if d := time.Now().Add(c.opts.Timeout); !hasDeadline || d.Before(deadline) {
			deadline, hasDeadline = d, true
		}
	}
	if err := c.nc.SetDeadline(deadline); err != nil { // zero: none
		return c.fail(err)
	}
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			// Wake a blocked read or write; the op then fails.
			_ = c.nc.SetDeadline(time.Unix(1, 0))
			close(fired)
		})
		defer func() {
			if !stop() {
				// Cancelled as the op ended: let the wake-up land now rather
				// than on the next call's fresh deadline.
				<-fired
			}
		}()
	}
	err := op()
	if err == nil {
		return nil
	}
	var re ReplyError
	if errors.As(err, &re) {
		return err
	}
	if ctx.Err() != nil {
		return c.fail(fmt.Errorf("%w (%w)", ctx.Err(), err))
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return c.fail(fmt.Errorf("%w (%w)", context.DeadlineExceeded, err))
		}
	}
	if c.closed.Load() {
		return c.fail(fmt.Errorf("%w (%w)", ErrClosed, err))
	}
	return c.fail(err)
}

// fail breaks the connection: it closes it and keeps err for every later call.
func (c *Conn) fail(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the server went away with a reply owed
	}
	c.err = fmt.Errorf("resp: connection to %s broken: %w", c.nc.RemoteAddr(), err)
	c.Close()
	return c.err
}

// budgetReader fails a read once a reply has pulled more than its budget
// from the socket.
type budgetReader struct {
	r    io.Reader
	left int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, ErrReplyTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}
