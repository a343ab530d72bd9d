package forward

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redisha/redisha/components/resp"
)

// The durable mode ("durability: replicated", docs/durability.md) is pure
// decision code here, with no I/O: Durable.Up takes the bytes a client sent
// and returns what goes to the backend (the same bytes, with WAIT commands
// inserted at request boundaries); Durable.Down takes the bytes the backend
// answered and returns what goes to the client (the same bytes, with WAIT's
// replies taken out and each write's replies held back until its WAIT
// answered). The event loop (durable_io.go) only reads and writes.
//
// A segment is a run of consecutive requests whose replies are treated
// alike: released as they come (reads, the commands queued in a MULTI), or
// held until the WAIT that follows them answers (from a batch's first write
// to the end of the batch). A batch is what one read from the client
// brought: its complete requests.

// DurableConfig is what a durable connection needs.
type DurableConfig struct {
	// Replicas is WAIT's replica count; Timeout its timeout in milliseconds.
	Replicas  int
	TimeoutMs int64
	// MaxHeld bounds the reply bytes held back for one connection; more
	// closes the connection (0: DefaultMaxHeld).
	MaxHeld int
	// Commands classifies requests (nil: every command is a write).
	Commands *CommandTable
	// NoReplica, when set, is the "async" policy for a master with no
	// replica at all: while it reports true, writes are acknowledged
	// without WAIT, and a WAIT that fell short releases its replies. Nil is
	// the "refuse" policy: a short WAIT always closes the connection.
	NoReplica func() bool
	// Stats, when set, counts what happened (shared by many connections).
	Stats *DurableStats
}

// DefaultMaxHeld is the default bound on held reply bytes per connection.
const DefaultMaxHeld = 8 << 20

// DurableStats are the durable mode's counters, safe for concurrent use.
type DurableStats struct {
	Waits        atomic.Int64 // WAIT commands sent
	Held         atomic.Int64 // batches whose replies were held until WAIT answered
	AsyncAcks    atomic.Int64 // write batches acknowledged without a replica (no-replica policy async)
	ErrorRelease atomic.Int64 // short WAITs whose held replies were all errors (released: nothing acknowledged)
	// Passthrough counts connections that left the durable mode, by reason.
	PassSubscribe, PassMonitor, PassClientReply, PassSync atomic.Int64
	// Closed counts connections closed rather than acknowledged, by reason.
	ClosedShort, ClosedError, ClosedHeldLimit, ClosedDesync, ClosedMulti, ClosedStuck atomic.Int64
}

// Why a durable connection was closed (Down's and Up's errors). Each is
// an indeterminate outcome for the client, never an acknowledgement.
var (
	ErrNotReplicated = errors.New("durable: WAIT answered fewer replicas than required")
	ErrWaitFailed    = errors.New("durable: WAIT answered with an error")
	ErrHeldLimit     = errors.New("durable: held replies over the per-connection bound")
	ErrDesync        = errors.New("durable: a reply the requests do not account for")
	ErrMultiFailed   = errors.New("durable: MULTI was refused, queued commands would run unwaited")
	ErrUnsupported   = errors.New("durable: a command that changes reply accounting inside MULTI")
)

type seg struct {
	n       int  // replies still to come before the WAIT (or the segment's end)
	wait    bool // a WAIT reply follows the n replies
	checkOK bool // the first reply must not be an error (MULTI's)
	pass    bool // after the n replies, everything passes through
}

// Durable is one connection's durable-mode state. Not safe for concurrent
// use; Up and Down may interleave in any order.
type Durable struct {
	cfg     DurableConfig
	stats   *DurableStats
	fr      *resp.Framer
	rf      *resp.ReplyFramer
	waitCmd []byte

	// isWrite's cache: the last command name as sent, and its class.
	lastName  [16]byte
	lastLen   uint8
	lastWrite bool
	lastOK    bool

	// request side
	passReq      bool // requests pass through unframed from now on
	inMulti      bool
	multiWrite   bool
	pendingWrite bool // the open segment holds a write not yet followed by WAIT
	open         int  // replies of the open segment still to come
	segs         []seg
	head         int // first unfinished segment
	outstanding  int // WAITs sent, not yet answered
	pieces       [][]byte

	// reply side
	passRep   bool
	cur       disp // disposition of the reply in progress
	curPush   bool // it started as a push
	heldRun   []byte
	allErrors bool // every held reply of the front segment is an error
	heldBase  []byte
	held      []byte // held bytes from earlier reads
	out       [][]byte
	waitOK    bool // the last WAIT reply released its segment
}

type disp uint8

const (
	dNone disp = iota
	dForward
	dHold
	dStrip
)

// NewDurable starts a connection's state.
func NewDurable(cfg DurableConfig) *Durable {
	if cfg.MaxHeld <= 0 {
		cfg.MaxHeld = DefaultMaxHeld
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.TimeoutMs <= 0 {
		cfg.TimeoutMs = 500
	}
	st := cfg.Stats
	if st == nil {
		st = &DurableStats{}
	}
	n, t := strconv.Itoa(cfg.Replicas), strconv.FormatInt(cfg.TimeoutMs, 10)
	wait := "*3\r\n$4\r\nWAIT\r\n$" + strconv.Itoa(len(n)) + "\r\n" + n + "\r\n$" + strconv.Itoa(len(t)) + "\r\n" + t + "\r\n"
	return &Durable{cfg: cfg, stats: st, fr: resp.NewFramer(resp.RequestLimits), rf: resp.NewReplyFramer(resp.Limits{}),
		waitCmd: []byte(wait), allErrors: true}
}

// Outstanding is how many WAITs were sent and not yet answered.
func (d *Durable) Outstanding() int { return d.outstanding }

// Passthrough reports whether the connection left the durable mode both
// ways (subscribe, MONITOR, CLIENT REPLY OFF|SKIP, SYNC).
func (d *Durable) Passthrough() bool { return d.passReq && d.passRep }

// Spliceable is how many of the client's next bytes Up need not see.
func (d *Durable) Spliceable() int64 {
	if d.passReq {
		return 1 << 40
	}
	return d.fr.Skippable()
}

// Skipped accounts for n client bytes moved to the backend unseen.
func (d *Durable) Skipped(n int64) {
	if !d.passReq {
		d.fr.Skip(n)
	}
}

// Up frames p, the client's next bytes, and returns what to send to the
// backend, in order: pieces of p and WAIT commands. The pieces are valid
// until the next call. On an error the pieces are the complete requests
// before it (and their WAIT); the caller sends them and then ends the
// client's direction.
func (d *Durable) Up(p []byte) ([][]byte, error) {
	d.pieces = d.pieces[:0]
	if d.passReq {
		return append(d.pieces, p), nil
	}
	from, prevEnd := 0, 0 // p[from:] not yet emitted; prevEnd: end of the last complete request
	insert := func(at int) {
		if at > from {
			d.pieces = append(d.pieces, p[from:at])
		}
		from = at
		d.pieces = append(d.pieces, d.waitCmd)
		d.closeSeg(true, false)
		d.pendingWrite = false
		d.outstanding++
		d.stats.Waits.Add(1)
	}
	var err error
	i := 0
	for i < len(p) {
		n, r, ferr := d.fr.Next(p[i:])
		if ferr != nil {
			err = ferr
			break
		}
		i += n
		if r == nil {
			break
		}
		k := kindOf(r)
		act := d.request(r, k)
		switch act {
		case aBarrier, aPass:
			if d.pendingWrite {
				insert(prevEnd)
			}
		case aUnsupported:
			err = ErrUnsupported
		}
		if err != nil {
			break
		}
		d.account(r, k)
		if act == aPass {
			d.closeSeg(false, true)
			d.passReq = true
			d.pieces = append(d.pieces, p[from:])
			return d.pieces, nil
		}
		prevEnd = i
	}
	if d.pendingWrite {
		if d.cfg.NoReplica != nil && d.cfg.NoReplica() {
			// The async policy with no replica: acknowledge as redis does.
			d.closeSeg(false, false)
			d.pendingWrite = false
			d.stats.AsyncAcks.Add(1)
		} else {
			insert(prevEnd)
		}
	}
	if err != nil {
		if prevEnd > from {
			d.pieces = append(d.pieces, p[from:prevEnd])
		}
		return d.pieces, err
	}
	if len(p) > from {
		d.pieces = append(d.pieces, p[from:])
	}
	return d.pieces, nil
}

type action uint8

const (
	aNone        action = iota
	aBarrier            // a pending write's WAIT goes before this request
	aPass               // the connection leaves the durable mode at this request
	aUnsupported        // close the connection
)

// cmdKind is what the durable mode must know of a request's command name,
// found once per request (most commands are none of these).
type cmdKind uint8

const (
	kOther cmdKind = iota
	kQuit
	kReset
	kMulti
	kExec
	kDiscard
	kWatch
	kSubscribe // any of the six (un)subscribe commands
	kMonitor
	kSync // SYNC, PSYNC
	kClient
)

// kindNames are the command names kindOf knows, grouped by length
// (kindOf compares a name only with those of its length).
var kindNames = func() (t [13][]kindName) {
	for _, k := range []kindName{
		{"quit", kQuit}, {"exec", kExec}, {"sync", kSync},
		{"reset", kReset}, {"multi", kMulti}, {"watch", kWatch}, {"psync", kSync},
		{"client", kClient},
		{"monitor", kMonitor}, {"discard", kDiscard},
		{"subscribe", kSubscribe}, {"psubscribe", kSubscribe}, {"ssubscribe", kSubscribe},
		{"unsubscribe", kSubscribe}, {"punsubscribe", kSubscribe}, {"sunsubscribe", kSubscribe},
	} {
		t[len(k.name)] = append(t[len(k.name)], k)
	}
	return t
}()

type kindName struct {
	name string
	kind cmdKind
}

// kindOf classifies r's command name, ignoring ASCII case; a name of a
// length none of them has (GET, SET, ...) is decided by one comparison.
func kindOf(r *resp.Request) cmdKind {
	name := r.Name()
	if r.ArgLen(0) != int64(len(name)) || len(name) >= len(kindNames) {
		return kOther // longer than captured, or than any of them: no such name
	}
	for _, k := range kindNames[len(name)] {
		if resp.EqualFold(name, k.name) {
			return k.kind
		}
	}
	return kOther
}

// request decides how r (of kind k) relates to the WAIT boundaries, before
// its replies are counted.
func (d *Durable) request(r *resp.Request, k cmdKind) action {
	if r.Empty() {
		return aNone
	}
	switch k {
	case kQuit, kReset:
		// Both run even inside MULTI: QUIT closes (a WAIT after it would
		// never answer), RESET may log the connection out (WAIT NOAUTH).
		return aBarrier
	case kMulti:
		if d.inMulti {
			return aNone // an error reply; still in the transaction
		}
		return aBarrier
	case kSubscribe:
		if d.inMulti {
			return aUnsupported
		}
		d.stats.PassSubscribe.Add(1)
		return aPass
	case kMonitor:
		if d.inMulti {
			return aUnsupported
		}
		d.stats.PassMonitor.Add(1)
		return aPass
	case kSync:
		if d.inMulti {
			return aUnsupported
		}
		d.stats.PassSync.Add(1)
		return aPass
	case kClient:
		if r.ArgIs(1, "reply") && (r.ArgIs(2, "off") || r.ArgIs(2, "skip")) {
			if d.inMulti {
				return aUnsupported
			}
			d.stats.PassClientReply.Add(1)
			return aPass
		}
	}
	return aNone
}

// account counts r's reply (r of kind k) into the segments.
func (d *Durable) account(r *resp.Request, k cmdKind) {
	if r.Empty() {
		return
	}
	switch {
	case k == kReset:
		d.inMulti, d.multiWrite = false, false
		d.open++
		return
	case k == kQuit:
		d.open++
		return
	case d.inMulti:
		switch k {
		case kExec:
			d.inMulti = false
			if d.multiWrite {
				d.write()
				return
			}
		case kDiscard:
			d.inMulti = false
		case kMulti, kWatch:
			// errors, still in the transaction
		default:
			if d.isWrite(r) {
				d.multiWrite = true
			}
		}
		d.open++
		return
	case k == kMulti:
		if d.open > 0 {
			d.closeSeg(false, false)
		}
		d.segs = append(d.segs, seg{n: 1, checkOK: true})
		d.inMulti, d.multiWrite = true, false
		return
	case k == kExec, k == kDiscard:
		d.open++ // errors outside a transaction
		return
	}
	if d.isWrite(r) {
		d.write()
		return
	}
	d.open++
}

// isWrite is Commands.IsWrite with a one-entry cache of the last command
// name as sent (a pipeline usually repeats its command).
func (d *Durable) isWrite(r *resp.Request) bool {
	name := r.Name()
	if d.lastOK && len(name) == int(d.lastLen) && string(name) == string(d.lastName[:d.lastLen]) {
		return d.lastWrite
	}
	w, cacheable := d.cfg.Commands.classify(r)
	d.lastOK = cacheable && len(name) <= len(d.lastName)
	if d.lastOK {
		d.lastLen = uint8(copy(d.lastName[:], name))
		d.lastWrite = w
	}
	return w
}

// write counts a write's reply: the replies before it are released as
// they come, its own and the rest of the batch's are held.
func (d *Durable) write() {
	if !d.pendingWrite {
		if d.open > 0 {
			d.closeSeg(false, false)
		}
		d.pendingWrite = true
	}
	d.open++
}

func (d *Durable) closeSeg(wait, pass bool) {
	if d.head == len(d.segs) && d.head > 0 {
		d.segs, d.head = d.segs[:0], 0
	}
	if !wait && !pass && d.open == 0 {
		return
	}
	d.segs = append(d.segs, seg{n: d.open, wait: wait, pass: pass})
	d.open = 0
}

// Down takes p, the backend's next bytes, and returns what to send to the
// client, in order; the pieces are valid until the next call. An error
// means the connection must be closed without sending more than the
// returned pieces.
func (d *Durable) Down(p []byte) ([][]byte, error) {
	d.out = d.out[:0]
	if d.passRep {
		return append(d.out, p), nil
	}
	if len(d.held) == 0 {
		d.held = d.heldBase[:0]
	}
	// Runs of p: forwarded from fwdFrom, held from holdFrom; heldRun is a
	// finished held run waiting for the WAIT reply that follows it.
	fwdFrom, holdFrom := -1, -1
	d.heldRun = nil
	switch d.cur { // a reply continued from the last read
	case dForward:
		fwdFrom = 0
	case dHold:
		holdFrom = 0
	}
	flushFwd := func(end int) {
		if fwdFrom >= 0 && end > fwdFrom {
			d.out = append(d.out, p[fwdFrom:end])
		}
		fwdFrom = -1
	}
	i := 0
	for i < len(p) {
		start := i
		if d.cur == dNone {
			if s := d.front(); s != nil && s.pass && s.n == 0 {
				d.endSeg()
				flushFwd(i)
				return append(d.out, p[i:]), nil
			}
			d.cur, d.curPush = d.disposition(p[i]), p[i] == '>'
			switch d.cur {
			case dForward:
				if fwdFrom < 0 {
					fwdFrom = i
				}
			case dHold:
				flushFwd(i)
				if holdFrom < 0 {
					holdFrom = i
				}
			case dStrip:
				flushFwd(i)
				if holdFrom >= 0 {
					d.heldRun = p[holdFrom:i]
					holdFrom = -1
				}
			}
		}
		n, r, err := d.rf.Next(p[i:])
		if err != nil {
			flushFwd(start)
			d.stats.ClosedDesync.Add(1)
			return d.out, ErrDesync
		}
		i += n
		if r == nil {
			break
		}
		c := d.cur
		d.cur = dNone
		if r.IsPush() != d.curPush {
			// A push behind an attribute: where it belongs is unknown.
			flushFwd(start)
			d.stats.ClosedDesync.Add(1)
			return d.out, ErrDesync
		}
		if r.IsPush() {
			continue
		}
		if err := d.reply(r, c); err != nil {
			flushFwd(start)
			return d.out, err
		}
		if c == dStrip {
			// WAIT answered enough: release what was held, drop its reply.
			if len(d.held) > 0 {
				d.out = append(d.out, d.held[:len(d.held):len(d.held)])
				d.held = d.held[len(d.held):]
			}
			if len(d.heldRun) > 0 {
				d.out = append(d.out, d.heldRun)
			}
			d.heldRun = nil
		} else if d.passRep {
			flushFwd(i)
			return append(d.out, p[i:]), nil
		}
	}
	flushFwd(len(p))
	extra := len(d.heldRun)
	if holdFrom >= 0 {
		extra += len(p) - holdFrom
	}
	if extra > 0 {
		if len(d.held)+extra > d.cfg.MaxHeld {
			d.stats.ClosedHeldLimit.Add(1)
			return d.out, ErrHeldLimit
		}
		d.held = append(d.held, d.heldRun...)
		if holdFrom >= 0 {
			d.held = append(d.held, p[holdFrom:]...)
		}
		d.heldRun = nil
		if cap(d.held) > cap(d.heldBase) && cap(d.held) <= 64<<10 {
			d.heldBase = d.held[:0]
		}
	}
	return d.out, nil
}

// disposition decides, at a reply's first byte, what happens to it.
func (d *Durable) disposition(first byte) disp {
	s := d.front()
	holding := s != nil && s.wait
	if first == '>' { // a push: in place, held if replies around it are
		if holding {
			return dHold
		}
		return dForward
	}
	if s == nil {
		return dForward
	}
	if s.wait && s.n == 0 {
		return dStrip
	}
	if s.wait {
		return dHold
	}
	return dForward
}

// front is the first unfinished closed segment, nil when replies count
// against the open one.
func (d *Durable) front() *seg {
	for d.head < len(d.segs) {
		s := &d.segs[d.head]
		if s.n > 0 || s.wait || s.pass {
			return s
		}
		d.head++
	}
	return nil
}

// reply accounts for a complete, non-push reply r whose disposition was c.
func (d *Durable) reply(r *resp.Reply, c disp) error {
	s := d.front()
	if s == nil {
		if d.open == 0 {
			if r.IsError() {
				return nil // redis' own farewell ("max clients", protocol error)
			}
			d.stats.ClosedDesync.Add(1)
			return ErrDesync
		}
		d.open--
		return nil
	}
	if c == dStrip {
		d.outstanding--
		d.segs[d.head].wait = false
		d.waitOK = r.Kind == resp.Integer && r.Int >= int64(d.cfg.Replicas)
		all := d.allErrors
		d.allErrors = true
		if !d.waitOK {
			switch {
			case all:
				d.stats.ErrorRelease.Add(1)
				d.waitOK = true // nothing was acknowledged: release the errors
			case r.Kind == resp.Integer && d.cfg.NoReplica != nil && d.cfg.NoReplica():
				d.stats.AsyncAcks.Add(1)
				d.waitOK = true
			case r.IsError():
				d.stats.ClosedError.Add(1)
				return ErrWaitFailed
			default:
				d.stats.ClosedShort.Add(1)
				return ErrNotReplicated
			}
		} else {
			d.stats.Held.Add(1)
		}
		d.endSeg()
		return nil
	}
	if s.checkOK && r.IsError() {
		d.stats.ClosedMulti.Add(1)
		return ErrMultiFailed
	}
	s.checkOK = false
	if c == dHold && !r.IsError() {
		d.allErrors = false
	}
	s.n--
	if s.n == 0 && !s.wait {
		d.endSeg()
	}
	return nil
}

func (d *Durable) endSeg() {
	s := &d.segs[d.head]
	if s.pass {
		d.passRep = true
	}
	d.head++
}

// CommandTable says which commands write, from the server's COMMAND reply.
type CommandTable struct {
	cmds map[string]cmdInfo // lower-case name, or "container|sub"
}

type cmdInfo uint8

const (
	cmdWrite cmdInfo = 1 << iota
	cmdSubs          // a container whose subcommands are listed ("config|set")
)

// NewCommandTable reads a COMMAND reply: a command writes when its flags
// hold "write" or "may_replicate"; EVAL, EVALSHA and FCALL always count as
// writes. A container command (CONFIG, FUNCTION, ...) is classified by its
// subcommand when the reply lists them (Redis 7).
func NewCommandTable(v resp.Value) (*CommandTable, error) {
	if v.Kind != resp.Array && v.Kind != resp.Set {
		return nil, errors.New("durable: COMMAND reply is not an array")
	}
	t := &CommandTable{cmds: map[string]cmdInfo{}}
	var add func(e resp.Value)
	add = func(e resp.Value) {
		if len(e.Elems) < 3 {
			return
		}
		name := strings.ToLower(e.Elems[0].Str)
		var info cmdInfo
		for _, f := range e.Elems[2].Elems {
			if f.Str == "write" || f.Str == "may_replicate" {
				info |= cmdWrite
			}
		}
		if len(e.Elems) >= 10 && len(e.Elems[9].Elems) > 0 {
			info |= cmdSubs
		}
		t.cmds[name] = t.cmds[name]&cmdSubs | info
		if len(e.Elems) >= 10 {
			for _, sub := range e.Elems[9].Elems {
				add(sub)
			}
		}
	}
	for _, e := range v.Elems {
		add(e)
	}
	if len(t.cmds) == 0 {
		return nil, errors.New("durable: COMMAND listed no command")
	}
	for _, s := range []string{"eval", "evalsha", "fcall"} {
		t.cmds[s] |= cmdWrite
	}
	return t, nil
}

// Len is the number of names classified.
func (t *CommandTable) Len() int {
	if t == nil {
		return 0
	}
	return len(t.cmds)
}

// IsWrite classifies r; an unknown command counts as a write, as does
// every command with a nil table.
func (t *CommandTable) IsWrite(r *resp.Request) bool {
	w, _ := t.classify(r)
	return w
}

// classify is IsWrite, and whether the answer depends on the command name
// alone (not a container with subcommands).
func (t *CommandTable) classify(r *resp.Request) (write, byName bool) {
	if t == nil {
		return true, true
	}
	if r.ArgLen(0) > resp.CapturedArgBytes {
		return true, false
	}
	var buf [2*resp.CapturedArgBytes + 1]byte
	name := lower(buf[:0], r.Name())
	info, ok := t.cmds[string(name)]
	if !ok {
		return true, true
	}
	if info&cmdSubs == 0 {
		return info&cmdWrite != 0, true
	}
	if r.Argc > 1 && r.ArgLen(1) <= resp.CapturedArgBytes {
		full := lower(append(name, '|'), r.Arg(1))
		if sub, ok := t.cmds[string(full)]; ok {
			return sub&cmdWrite != 0, false
		}
	}
	return info&cmdWrite != 0, false
}

func lower(dst, b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}
