// Package nfqueue holds packets in userspace to add latency, jitter and
// loss where the kernel has no netem. A netfilter rule (nft `queue num N` or
// iptables `-j NFQUEUE --queue-num N`) hands packets to a queue; a Delayer
// bound to that queue in the same network namespace keeps each packet for the
// configured delay and then lets it continue (or drops it).
//
// It speaks the nfnetlink_queue protocol directly on a netlink socket: the
// ready-made Go nfqueue packages are not available here, and the protocol
// needs only a bind, a parameter message and verdicts.
package nfqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
)

// Kernel constants from include/uapi/linux/netfilter/nfnetlink_queue.h.
const (
	netlinkNetfilter = 12 // NETLINK_NETFILTER
	subsysQueue      = 3  // NFNL_SUBSYS_QUEUE

	msgPacket       = 0 // NFQNL_MSG_PACKET
	msgVerdict      = 1 // NFQNL_MSG_VERDICT
	msgConfig       = 2 // NFQNL_MSG_CONFIG
	msgVerdictBatch = 3 // NFQNL_MSG_VERDICT_BATCH

	attrPacketHdr  = 1 // NFQA_PACKET_HDR
	attrVerdictHdr = 2 // NFQA_VERDICT_HDR

	cfgCmd        = 1 // NFQA_CFG_CMD
	cfgParams     = 2 // NFQA_CFG_PARAMS
	cfgMaxLen     = 3 // NFQA_CFG_QUEUE_MAXLEN
	cfgMask       = 4 // NFQA_CFG_MASK
	cfgFlags      = 5 // NFQA_CFG_FLAGS
	cmdBind       = 1 // NFQNL_CFG_CMD_BIND
	cmdUnbind     = 2 // NFQNL_CFG_CMD_UNBIND
	copyMeta      = 1 // NFQNL_COPY_META: we never look at payloads
	flagGSO       = 4 // NFQA_CFG_F_GSO: hand over GSO super-packets unsegmented
	verdictDrop   = 0 // NF_DROP
	verdictAccept = 1 // NF_ACCEPT
)

// drainWindow is how long Close keeps accepting packets that were already
// on their way to us when the rule was removed.
const drainWindow = 50 * time.Millisecond

// DefaultMaxLen is the kernel queue length used when Options.MaxLen is 0.
// Like netem's limit, packets beyond it are dropped by the kernel.
const DefaultMaxLen = 10000

// Options configures a Delayer.
type Options struct {
	// NetnsPath is the network namespace (e.g. /proc/PID/ns/net or
	// /run/netns/NAME) whose queue to bind; "" means the caller's.
	NetnsPath string
	// Num is the queue number the netfilter rule sends packets to.
	Num uint16
	// MaxLen is the kernel-side queue length (DefaultMaxLen when 0).
	MaxLen uint32
	// Delay is added to every packet that is not lost.
	Delay time.Duration
	// Jitter widens the delay uniformly to [Delay-Jitter, Delay+Jitter].
	// Packets are still released in arrival order (no reordering), so a
	// packet may wait a little longer than its own draw.
	Jitter time.Duration
	// Loss is the probability (0..1) that a packet is dropped.
	Loss float64
	// Rand is the only randomness used; required when Jitter or Loss is set.
	Rand *rand.Rand
}

// Stats counts what a Delayer did.
type Stats struct {
	Received uint64 // packets handed to us by the kernel
	Released uint64 // packets accepted after their delay
	Lost     uint64 // packets dropped by the loss probability
}

// Delayer holds packets of one queue in one network namespace.
type Delayer struct {
	opts Options
	conn *netlink.Conn

	mu       sync.Mutex
	held     []heldPacket
	last     time.Time // release time of the newest held packet
	draining bool
	wake     chan struct{}

	done     chan struct{}
	readDone chan struct{}
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once

	received, released, lost atomic.Uint64
}

type heldPacket struct {
	id      uint32
	release time.Time
}

// Start binds queue opts.Num in opts.NetnsPath and begins holding packets.
// The caller installs the netfilter rule (after Start, so no packet finds
// the queue unbound) and removes it before Close.
func Start(opts Options) (*Delayer, error) {
	if opts.Loss < 0 || opts.Loss > 1 {
		return nil, fmt.Errorf("nfqueue: loss %v outside [0,1]", opts.Loss)
	}
	if opts.Delay < 0 || opts.Jitter < 0 {
		return nil, errors.New("nfqueue: negative delay or jitter")
	}
	if opts.Jitter > opts.Delay {
		return nil, fmt.Errorf("nfqueue: jitter %v larger than delay %v", opts.Jitter, opts.Delay)
	}
	if (opts.Jitter > 0 || opts.Loss > 0) && opts.Rand == nil {
		return nil, errors.New("nfqueue: jitter or loss needs a seeded Rand")
	}
	if opts.MaxLen == 0 {
		opts.MaxLen = DefaultMaxLen
	}
	cfg := &netlink.Config{}
	if opts.NetnsPath != "" {
		f, err := os.Open(opts.NetnsPath)
		if err != nil {
			return nil, fmt.Errorf("nfqueue: open netns: %w", err)
		}
		defer f.Close()
		cfg.NetNS = int(f.Fd())
	}
	conn, err := netlink.Dial(netlinkNetfilter, cfg)
	if err != nil {
		return nil, fmt.Errorf("nfqueue: netlink dial: %w", err)
	}
	// Losing queue messages would lose packets silently: ask for a large
	// buffer and no ENOBUFS errors (the kernel then drops, as netem would).
	_ = conn.SetReadBuffer(8 << 20)
	_ = conn.SetOption(netlink.NoENOBUFS, true)
	d := &Delayer{opts: opts, conn: conn, wake: make(chan struct{}, 1), done: make(chan struct{}), readDone: make(chan struct{})}
	if err := d.configure(); err != nil {
		conn.Close()
		return nil, err
	}
	d.wg.Add(1)
	go func() { defer close(d.readDone); d.readLoop() }()
	go d.releaseLoop()
	return d, nil
}

func (d *Delayer) configure() error {
	cmd := []byte{cmdBind, 0, 0, 0} // command, pad, pf (unused since 3.8)
	params := make([]byte, 5)       // __be32 copy_range, u8 copy_mode (packed)
	params[4] = copyMeta
	maxLen := binary.BigEndian.AppendUint32(nil, d.opts.MaxLen)
	flags := binary.BigEndian.AppendUint32(nil, flagGSO)
	for _, attrs := range [][]netlink.Attribute{
		{{Type: cfgCmd, Data: cmd}},
		{{Type: cfgParams, Data: params}, {Type: cfgMaxLen, Data: maxLen},
			{Type: cfgFlags, Data: flags}, {Type: cfgMask, Data: flags}},
	} {
		if err := d.request(msgConfig, attrs, true); err != nil {
			return fmt.Errorf("nfqueue: configure queue %d: %w", d.opts.Num, err)
		}
	}
	return nil
}

// request sends one nfqueue message; with ack it waits for the kernel's answer.
func (d *Delayer) request(typ uint8, attrs []netlink.Attribute, ack bool) error {
	body, err := netlink.MarshalAttributes(attrs)
	if err != nil {
		return err
	}
	// nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id = queue (big endian).
	data := append([]byte{0, 0, byte(d.opts.Num >> 8), byte(d.opts.Num)}, body...)
	m := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(subsysQueue<<8 | uint16(typ)), Flags: netlink.Request},
		Data:   data,
	}
	if ack {
		m.Header.Flags |= netlink.Acknowledge
		_, err = d.conn.Execute(m)
		return err
	}
	_, err = d.conn.Send(m)
	return err
}

func (d *Delayer) verdict(typ uint8, id, verdict uint32) error {
	hdr := binary.BigEndian.AppendUint32(nil, verdict)
	hdr = binary.BigEndian.AppendUint32(hdr, id)
	return d.request(typ, []netlink.Attribute{{Type: attrVerdictHdr, Data: hdr}}, false)
}

func (d *Delayer) readLoop() {
	for {
		msgs, err := d.conn.Receive()
		if err != nil {
			d.mu.Lock()
			draining := d.draining
			d.mu.Unlock()
			if draining {
				return // the drain deadline passed, or the socket closed
			}
			// A stale verdict answered with an error lands here; the queue
			// itself keeps working, so keep reading.
			continue
		}
		now := time.Now()
		for _, m := range msgs {
			if uint16(m.Header.Type) != subsysQueue<<8|msgPacket || len(m.Data) < 4 {
				continue
			}
			id, ok := packetID(m.Data[4:])
			if !ok {
				continue
			}
			d.received.Add(1)
			d.hold(id, now)
		}
	}
}

func packetID(b []byte) (uint32, bool) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, false
	}
	for ad.Next() {
		if ad.Type() == attrPacketHdr {
			if p := ad.Bytes(); len(p) >= 4 {
				return binary.BigEndian.Uint32(p), true
			}
		}
	}
	return 0, false
}

func (d *Delayer) hold(id uint32, now time.Time) {
	d.mu.Lock()
	if d.draining {
		d.mu.Unlock()
		d.released.Add(1)
		_ = d.verdict(msgVerdict, id, verdictAccept)
		return
	}
	if d.opts.Loss > 0 && d.opts.Rand.Float64() < d.opts.Loss {
		d.mu.Unlock()
		d.lost.Add(1)
		_ = d.verdict(msgVerdict, id, verdictDrop)
		return
	}
	delay := d.opts.Delay
	if d.opts.Jitter > 0 {
		delay += time.Duration(d.opts.Rand.Int64N(int64(2*d.opts.Jitter)+1)) - d.opts.Jitter
	}
	release := now.Add(delay)
	// Keep arrival order: TCP would read reordering as loss.
	if release.Before(d.last) {
		release = d.last
	}
	d.last = release
	d.held = append(d.held, heldPacket{id: id, release: release})
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Delayer) releaseLoop() {
	defer d.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		if len(d.held) == 0 {
			d.mu.Unlock()
			select {
			case <-d.wake:
				continue
			case <-d.done:
				return
			}
		}
		now := time.Now()
		n := 0
		for n < len(d.held) && !d.held[n].release.After(now) {
			n++
		}
		if n == 0 {
			wait := d.held[0].release.Sub(now)
			d.mu.Unlock()
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-d.done:
				return
			}
			continue
		}
		lastID := d.held[n-1].id
		d.held = append(d.held[:0], d.held[n:]...)
		d.mu.Unlock()
		// Packets are released in id order, and lost ones already got their
		// verdict, so one batch verdict ("every id up to this one") covers
		// every due packet, and also frees any packet whose queue message
		// the socket had to drop under overload instead of stranding it.
		_ = d.verdict(msgVerdictBatch, lastID, verdictAccept)
		d.released.Add(uint64(n))
	}
}

// Stats returns the counters so far.
func (d *Delayer) Stats() Stats {
	return Stats{Received: d.received.Load(), Released: d.released.Load(), Lost: d.lost.Load()}
}

// Close releases every held packet at once (so undoing a latency fault never
// turns into loss), lets stragglers through for a moment, unbinds the queue
// and closes the socket. Remove the netfilter rule first.
func (d *Delayer) Close() error {
	d.once.Do(func() {
		d.mu.Lock()
		d.draining = true
		held := d.held
		d.held = nil
		d.mu.Unlock()
		if len(held) > 0 {
			_ = d.verdict(msgVerdictBatch, held[len(held)-1].id, verdictAccept)
			d.released.Add(uint64(len(held)))
		}
		// Packets already queued in the socket before the rule went away are
		// accepted by the read loop in draining mode until this deadline.
		_ = d.conn.SetReadDeadline(time.Now().Add(drainWindow))
		<-d.readDone
		close(d.done)
		d.wg.Wait()
		unbind := d.request(msgConfig, []netlink.Attribute{{Type: cfgCmd, Data: []byte{cmdUnbind, 0, 0, 0}}}, false)
		d.closeErr = errors.Join(unbind, d.conn.Close())
	})
	return d.closeErr
}
