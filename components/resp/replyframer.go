package resp

import (
	"bytes"
	"math"
)

// Reply describes one complete server reply found by a ReplyFramer.
type Reply struct {
	// Size is the reply's length on the wire, including bytes delivered by
	// earlier calls to Next and any attributes in front of the value.
	Size int64
	// Kind is the type of the top-level value, attributes skipped: Push for an
	// out-of-band RESP3 push, Error or BlobError for an error reply.
	Kind Kind
	// Int is the value of an Integer reply (WAIT's replica count).
	Int int64
	// Null reports $-1, *-1 or _.
	Null bool
}

// IsPush reports a RESP3 push frame, which answers no request.
func (r *Reply) IsPush() bool { return r.Kind == Push }

// IsError reports an error reply of either protocol version.
func (r *Reply) IsError() bool { return r.Kind == Error || r.Kind == BlobError }

// ReplyFramer finds the boundaries of server replies in a byte stream without
// allocating: every RESP2 and RESP3 type, nested aggregates, push frames and
// attributes (an attribute and the value it decorates are one reply). Like
// Framer it keeps its place between calls, so the stream may be split at any
// byte, and bulk payloads can be skipped (Skippable, Skip).
//
// It enforces the same Limits as Reader and checks what framing depends on:
// type bytes, lengths, CRLF terminators, nesting, the syntax of integers,
// booleans, nulls and big numbers, and the "txt:" prefix of verbatim strings.
// It does not check the text of doubles, which it passes over like a simple
// string; the Reader does.
type ReplyFramer struct {
	limits Limits
	err    error
	st     rstate
	kind   Kind // of the line being read
	reply  Reply
	stack  []rframe // open aggregates; never grows past MaxDepth+1

	lineLen int    // bytes of the current line so far, type byte included
	neg     bool   // number being parsed
	num     uint64 //
	digits  int
	signed  bool // a sign was seen
	body    int  // bytes of a line's body so far (booleans, nulls, big numbers)

	bulkLeft int64 // payload bytes still to come
	bulkPos  int64 // payload bytes seen of a verbatim string (prefix check)
	top      bool  // the value being read is the reply's own (not an element)
}

type rframe struct {
	left int64 // values still to come in this aggregate
	attr bool  // an attribute: its pairs, then the value it decorates
}

type rstate uint8

const (
	rStart  rstate = iota // a value's type byte
	rText                 // simple string, error, double: anything to LF
	rNumber               // integer or length digits
	rBody                 // boolean, null, big number
	rLF                   // the LF after a CR
	rData                 // bulk payload
	rDataCR
	rDataLF
)

// NewReplyFramer returns a ReplyFramer enforcing l; zero fields take
// DefaultLimits.
func NewReplyFramer(l Limits) *ReplyFramer {
	if l.MaxBulk <= 0 {
		l.MaxBulk = DefaultLimits.MaxBulk
	}
	if l.MaxElems <= 0 {
		l.MaxElems = DefaultLimits.MaxElems
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxInline <= 0 {
		l.MaxInline = DefaultLimits.MaxInline
	}
	return &ReplyFramer{limits: l, stack: make([]rframe, 0, l.MaxDepth+1)}
}

// Err returns the error that stopped the framer, if any.
func (f *ReplyFramer) Err() error { return f.err }

// InReply reports whether the bytes consumed so far end inside a reply.
func (f *ReplyFramer) InReply() bool { return f.st != rStart || len(f.stack) > 0 }

// Skippable is how many payload bytes of the current bulk value the framer
// can be told to Skip rather than be shown.
func (f *ReplyFramer) Skippable() int64 {
	if f.err != nil || f.st != rData || (f.kind == Verbatim && f.bulkPos < 4) {
		return 0
	}
	return f.bulkLeft
}

// Skip accounts for n payload bytes that went past unseen; n must not exceed
// Skippable.
func (f *ReplyFramer) Skip(n int64) {
	if n <= 0 {
		return
	}
	if n > f.Skippable() {
		panic("resp: ReplyFramer.Skip beyond Skippable")
	}
	f.bulkLeft -= n
	f.bulkPos += n
	f.reply.Size += n
	if f.bulkLeft == 0 {
		f.st = rDataCR
	}
}

// Count consumes all of p and returns how many replies ended in it.
func (f *ReplyFramer) Count(p []byte) (int, error) {
	count := 0
	for len(p) > 0 {
		n, r, err := f.Next(p)
		if err != nil {
			return count, err
		}
		if r != nil {
			count++
		}
		p = p[n:]
	}
	return count, nil
}

// Next consumes bytes of p up to the end of the first reply that ends in p,
// and returns how many it consumed and that reply (valid until the next
// call), or all of p and nil when no reply ends in it. After an error the
// stream cannot be resynchronised; n counts the bytes before the offending
// one.
func (f *ReplyFramer) Next(p []byte) (n int, r *Reply, err error) {
	if f.err != nil {
		return 0, nil, f.err
	}
	i := 0
	for i < len(p) {
		switch f.st {
		case rText:
			// Bulk of the line: find its LF in one call.
			k := bytes.IndexByte(p[i:], '\n')
			if k < 0 {
				k = len(p) - i
			}
			// The line, its LF included, may not exceed the Reader's limit.
			if f.lineLen+k+1 > f.limits.MaxInline+2 {
				return f.fail(i, protoErr("too big line (more than %d bytes)", f.limits.MaxInline+2))
			}
			if k > 0 {
				f.signed = p[i+k-1] == '\r' // reused: last byte was CR
				f.lineLen += k
				f.reply.Size += int64(k)
				i += k
			}
			if i == len(p) {
				continue
			}
			// p[i] is the LF.
			if !f.signed || f.lineLen < 2 {
				return f.fail(i, protoErr("line not terminated by CRLF"))
			}
			i++
			f.reply.Size++
			if f.valueDone() {
				return f.finish(i)
			}
		case rData:
			take := min(f.bulkLeft, int64(len(p)-i))
			if f.kind == Verbatim && f.bulkPos < 4 {
				for j := int64(0); j < take && f.bulkPos+j < 4; j++ {
					if f.bulkPos+j == 3 && p[i+int(j)] != ':' {
						return f.fail(i+int(j), protoErr("verbatim string without a format prefix"))
					}
				}
			}
			i += int(take)
			f.reply.Size += take
			f.bulkLeft -= take
			f.bulkPos += take
			if f.bulkLeft == 0 {
				f.st = rDataCR
			}
		default:
			if f.st == rStart && len(f.stack) == 0 {
				f.reply = Reply{} // a new reply begins
			}
			if f.st == rStart {
				// Fast path: a whole number header or integer in p.
				if k := f.numberLine(p[i:]); k > 0 {
					i += k
					f.reply.Size += int64(k)
					done, err := f.lineDone()
					if err != nil {
						return f.fail(i-1, err) // the LF, as the slow path says
					}
					if done {
						return f.finish(i)
					}
					continue
				}
			}
			c := p[i]
			i++
			f.reply.Size++
			done, err := f.step(c)
			if err != nil {
				return f.fail(i-1, err)
			}
			if done {
				return f.finish(i)
			}
		}
	}
	return len(p), nil, nil
}

func (f *ReplyFramer) fail(n int, err error) (int, *Reply, error) {
	f.err = err
	return n, nil, err
}

func (f *ReplyFramer) finish(n int) (int, *Reply, error) {
	f.st = rStart
	return n, &f.reply, nil
}

// line bytes count against MaxInline like the Reader's lines (CRLF included).
func (f *ReplyFramer) lineByte() error {
	f.lineLen++
	if f.lineLen > f.limits.MaxInline+2 {
		return protoErr("too big line (more than %d bytes)", f.limits.MaxInline+2)
	}
	return nil
}

func (f *ReplyFramer) step(c byte) (done bool, err error) {
	if f.st != rStart && f.st != rDataCR && f.st != rDataLF {
		if err := f.lineByte(); err != nil {
			return false, err
		}
	}
	switch f.st {
	case rStart:
		return f.start(c)
	case rNumber:
		switch {
		case (c == '-' || c == '+') && !f.signed && f.digits == 0:
			f.signed, f.neg = true, c == '-'
		case c >= '0' && c <= '9':
			d := uint64(c - '0')
			if f.num > (math.MaxUint64-d)/10 {
				return false, f.badNumber()
			}
			f.num = f.num*10 + d
			f.digits++
			if !f.numberFits() {
				return false, f.badNumber()
			}
		case c == '\r' && f.digits > 0:
			f.st = rLF
		default:
			return false, f.badNumber()
		}
	case rBody:
		ok := false
		switch f.kind {
		case Boolean:
			ok = f.body == 0 && (c == 't' || c == 'f')
		case BigNumber:
			// isBigNumber: an optional '-', an optional '+', digits.
			switch {
			case c == '-':
				ok = f.body == 0
				f.signed = true
			case c == '+':
				ok = f.body == 0 || (f.body == 1 && f.signed)
			case c >= '0' && c <= '9':
				ok = true
				f.digits++
			}
		}
		if c == '\r' {
			switch f.kind {
			case Boolean:
				ok = f.body == 1
			case BigNumber:
				ok = f.digits > 0
			case Null:
				ok = f.body == 0
			}
			if !ok {
				return false, protoErr("invalid %s", f.kind)
			}
			f.st = rLF
			return false, nil
		}
		if !ok {
			return false, protoErr("invalid %s", f.kind)
		}
		f.body++
	case rLF:
		if c != '\n' {
			return false, protoErr("line not terminated by CRLF")
		}
		return f.lineDone()
	case rDataCR:
		if c != '\r' {
			return false, protoErr("bulk string not terminated by CRLF")
		}
		f.st = rDataLF
	case rDataLF:
		if c != '\n' {
			return false, protoErr("bulk string not terminated by CRLF")
		}
		return f.valueDone(), nil
	}
	return false, nil
}

// numberLine parses a complete, valid "<type>[-]<digits>\r\n" of a numeric
// kind at the start of b into the line state, and returns its length; 0
// leaves b to the byte-at-a-time path, which decides everything else.
func (f *ReplyFramer) numberLine(b []byte) int {
	if len(b) < 4 || len(f.stack) > f.limits.MaxDepth {
		return 0
	}
	switch Kind(b[0]) {
	case Integer, BulkString, BlobError, Verbatim, Array, Set, Push, Map, Attribute:
	default:
		return 0
	}
	j, neg := 1, false
	if b[1] == '-' {
		j, neg = 2, true
	}
	var n uint64
	start := j
	for ; j < len(b) && j-start < 18; j++ {
		c := b[j]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + uint64(c-'0')
	}
	if j == start || j+1 >= len(b) || b[j] != '\r' || b[j+1] != '\n' || j+2 > f.limits.MaxInline+2 {
		return 0
	}
	f.kind = Kind(b[0])
	f.lineLen = j + 2
	f.neg, f.num, f.digits, f.signed, f.body = neg, n, j-start, neg, 0
	f.top = f.isTop()
	if !f.numberFits() {
		return 0
	}
	if f.top && f.kind != Attribute {
		f.reply.Kind = f.kind
	}
	return j + 2
}

// numberFits checks the digits so far against the kind's limit, as early as
// the answer is known.
func (f *ReplyFramer) numberFits() bool {
	switch f.kind {
	case Integer:
		if f.neg {
			return f.num <= 1<<63
		}
		return f.num <= math.MaxInt64
	case BulkString, BlobError, Verbatim:
		if f.neg {
			return f.num <= 1
		}
		return f.num <= uint64(f.limits.MaxBulk)
	}
	if f.neg {
		return f.num <= 1
	}
	return f.num <= uint64(f.limits.MaxElems)
}

func (f *ReplyFramer) badNumber() error {
	if f.kind == Integer {
		return protoErr("invalid integer")
	}
	return protoErr("invalid or too large %s length", f.kind)
}

// start reads a value's type byte.
func (f *ReplyFramer) start(c byte) (bool, error) {
	if len(f.stack) > f.limits.MaxDepth {
		return false, protoErr("nesting deeper than %d", f.limits.MaxDepth)
	}
	f.kind = Kind(c)
	f.lineLen = 1
	f.neg, f.num, f.digits, f.signed, f.body = false, 0, 0, false, 0
	f.top = f.isTop()
	switch f.kind {
	case SimpleString, Error, Double:
		f.signed = false // "last byte was CR" in rText
		f.st = rText
	case Integer, BulkString, BlobError, Verbatim, Array, Set, Push, Map, Attribute:
		f.st = rNumber
	case Boolean, Null, BigNumber:
		f.st = rBody
	default:
		return false, protoErr("unknown type byte %q", c)
	}
	if f.top && f.kind != Attribute {
		f.reply.Kind = f.kind
	}
	return false, nil
}

// isTop reports whether a value starting now is the reply itself: nothing is
// open but attributes waiting for the value they decorate.
func (f *ReplyFramer) isTop() bool {
	for _, fr := range f.stack {
		if !fr.attr || fr.left != 1 {
			return false
		}
	}
	return true
}

// lineDone acts on a complete header or scalar line.
func (f *ReplyFramer) lineDone() (bool, error) {
	switch f.kind {
	case Integer:
		if f.top {
			f.reply.Int = int64(f.num)
			if f.neg {
				f.reply.Int = int64(-f.num)
			}
		}
		return f.valueDone(), nil
	case Null:
		if f.top {
			f.reply.Null = true
		}
		return f.valueDone(), nil
	case Boolean, BigNumber:
		return f.valueDone(), nil
	case BulkString, BlobError, Verbatim:
		if f.neg && f.num == 1 {
			if f.kind != BulkString {
				return false, protoErr("negative %s length", f.kind)
			}
			if f.top {
				f.reply.Null = true
			}
			return f.valueDone(), nil
		}
		if f.kind == Verbatim && f.num < 4 {
			return false, protoErr("verbatim string without a format prefix")
		}
		f.bulkLeft, f.bulkPos = int64(f.num), 0
		f.st = rData
		if f.bulkLeft == 0 {
			f.st = rDataCR
		}
		return false, nil
	}
	// Aggregates.
	if f.neg && f.num == 1 {
		if f.kind != Array {
			return false, protoErr("negative %s length", f.kind)
		}
		if f.top {
			f.reply.Null = true
		}
		return f.valueDone(), nil
	}
	n := int64(f.num)
	switch f.kind {
	case Map:
		n *= 2
	case Attribute:
		n = 2*n + 1 // its pairs, then the value it decorates
	}
	if n == 0 {
		return f.valueDone(), nil
	}
	f.stack = append(f.stack, rframe{left: n, attr: f.kind == Attribute})
	f.st = rStart
	return false, nil
}

// valueDone closes a complete value and every aggregate it completes; it
// reports whether that completed the reply.
func (f *ReplyFramer) valueDone() bool {
	f.st = rStart
	for len(f.stack) > 0 {
		top := &f.stack[len(f.stack)-1]
		top.left--
		if top.left > 0 {
			return false
		}
		f.stack = f.stack[:len(f.stack)-1]
	}
	return true
}
