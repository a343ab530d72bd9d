package resp

import "math"

// RequestLimits are redis-server's limits on what a client may send, the
// defaults of a Framer: proto-max-bulk-len (512 MiB), a multibulk length up to
// INT_MAX and PROTO_INLINE_MAX_SIZE (64 KiB) for an inline command line.
var RequestLimits = Limits{
	MaxBulk:   512 << 20,
	MaxElems:  math.MaxInt32,
	MaxInline: 64 << 10,
}

// Redis' limits before a client has authenticated (networking.c,
// processMultibulkBuffer, since 6.2.6 / CVE-2021-32675): at most 10 arguments
// and 16 KiB per argument, so that an unauthenticated peer cannot make the
// server allocate.
const (
	PreAuthMaxElems = 10
	PreAuthMaxBulk  = 16 << 10
)

// CapturedArgs is how many leading arguments of each request a Framer keeps
// (the command name and two more: enough for "CLIENT REPLY OFF"), and
// CapturedArgBytes how many bytes of each. No Redis command or subcommand name
// is longer.
const (
	CapturedArgs     = 3
	CapturedArgBytes = 64
)

// The Framer's errors. Each is a *ProtocolError whose text is the one
// redis-server sends before it closes the connection (for ErrExpectedBulk, its
// start: redis adds the byte it got), so a proxy can answer "-ERR " +
// err.Error() as redis would; compare with errors.Is. ErrBulkNotTerminated is
// the Framer's own: redis skips the two bytes after a bulk string unchecked.
var (
	ErrInvalidMultibulkLength = &ProtocolError{Msg: "invalid multibulk length"}
	ErrInvalidBulkLength      = &ProtocolError{Msg: "invalid bulk length"}
	ErrUnauthMultibulkLength  = &ProtocolError{Msg: "unauthenticated multibulk length"}
	ErrUnauthBulkLength       = &ProtocolError{Msg: "unauthenticated bulk length"}
	ErrExpectedBulk           = &ProtocolError{Msg: "expected '$'"}
	ErrBulkNotTerminated      = &ProtocolError{Msg: "bulk string not terminated by CRLF"}
	ErrTooBigInline           = &ProtocolError{Msg: "too big inline request"}
	ErrUnbalancedQuotes       = &ProtocolError{Msg: "unbalanced quotes in request"}
)

// Request describes one complete client request found by a Framer.
type Request struct {
	// Size is the request's length on the wire, all its bytes, including the
	// ones delivered by earlier calls to Next.
	Size int64
	// Argc is the number of arguments, the command name included. It is 0 for
	// the requests redis-server skips without a reply: "*0", a negative
	// multibulk length, an inline line of blanks.
	Argc int64
	// Inline reports a telnet-style command line rather than a multibulk array.
	Inline bool

	args [CapturedArgs][]byte
	lens [CapturedArgs]int64
}

// Empty reports a request that redis-server consumes without replying.
func (r *Request) Empty() bool { return r.Argc == 0 }

// Name is the command name as sent (any case), nil for an empty request.
func (r *Request) Name() []byte { return r.Arg(0) }

// Arg returns the first CapturedArgBytes bytes of argument i (i <
// CapturedArgs; 0 is the name), unescaped for inline requests. The slice
// aliases the buffer given to Next or the Framer's own memory: it is valid
// until the next call to Next or until the caller changes that buffer.
func (r *Request) Arg(i int) []byte {
	if i < 0 || i >= CapturedArgs || int64(i) >= r.Argc {
		return nil
	}
	return r.args[i]
}

// ArgLen is the full length of argument i (i < CapturedArgs), which Arg may
// have cut at CapturedArgBytes; -1 when there is no such argument.
func (r *Request) ArgLen(i int) int64 {
	if i < 0 || i >= CapturedArgs || int64(i) >= r.Argc {
		return -1
	}
	return r.lens[i]
}

// Is reports whether the command name is name, ignoring ASCII case.
func (r *Request) Is(name string) bool { return r.ArgIs(0, name) }

// ArgIs reports whether argument i (i < CapturedArgs) is s, ignoring ASCII
// case: Is("client") && ArgIs(1, "reply") && ArgIs(2, "off").
func (r *Request) ArgIs(i int, s string) bool {
	return r.ArgLen(i) == int64(len(s)) && EqualFold(r.Arg(i), s)
}

// EqualFold compares b and s ignoring ASCII case, as redis compares command
// names, without converting b to a string.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Framer finds the boundaries of client requests in a byte stream without
// allocating: RESP2/RESP3 multibulk arrays of bulk strings and inline command
// lines, as redis-server's processMultibulkBuffer and processInlineBuffer accept
// them. The stream may arrive in pieces split at any byte: the Framer keeps its
// place between calls, so the caller need not keep the bytes of a request that
// has not ended, and a large argument can be passed on (spliced) without the
// Framer seeing it (Skippable, Skip).
//
// It is as strict as redis-server or stricter, never laxer, so a proxy that
// frames with it cannot fall out of step with the server: it also wants CRLF
// after each bulk string (redis skips two bytes unchecked), and it rejects an
// inline line longer than the limit even when its newline arrived in the same
// read (redis only checks a line still waiting for its newline).
//
// A Framer is not safe for concurrent use. The zero value is not usable; call
// NewFramer.
type Framer struct {
	limits  Limits
	preAuth bool
	err     error
	st      fstate
	req     Request

	// number being parsed: a multibulk or bulk length
	neg    bool
	num    uint64
	digits int
	zero   bool // first digit was 0: only "0" itself is valid

	left     int64 // arguments still to come
	bulkLeft int64 // payload bytes of the current argument still to come
	argi     int64 // index of the current argument

	// capture of the first CapturedArgs arguments: either a window of the
	// current buffer (capStart >= 0) or bytes copied into scratch.
	capStart [CapturedArgs]int
	capLen   [CapturedArgs]int
	scratch  [CapturedArgs][CapturedArgBytes]byte

	// inline tokenizer (redis' sdssplitargs)
	il inlineState
}

type fstate uint8

const (
	fStart fstate = iota
	fCount
	fCountLF
	fBulkHdr
	fBulkLen
	fBulkLF
	fBulkData
	fBulkCR
	fBulkLF2
	fInline
)

// NewFramer returns a Framer enforcing l; zero fields take RequestLimits
// (MaxDepth does not apply to requests).
func NewFramer(l Limits) *Framer {
	if l.MaxBulk <= 0 {
		l.MaxBulk = RequestLimits.MaxBulk
	}
	if l.MaxElems <= 0 {
		l.MaxElems = RequestLimits.MaxElems
	}
	if l.MaxInline <= 0 {
		l.MaxInline = RequestLimits.MaxInline
	}
	return &Framer{limits: l}
}

// SetPreAuth switches redis' pre-authentication limits on or off: while on, a
// multibulk request may have at most PreAuthMaxElems arguments of at most
// PreAuthMaxBulk bytes each. Redis checks them against the state at the moment
// it parses each request, that is after it ran the ones before (an AUTH in the
// same pipeline counts), so a caller that frames ahead of the server switches
// the mode between requests, once it knows the AUTH's outcome.
func (f *Framer) SetPreAuth(on bool) { f.preAuth = on }

// Err returns the error that stopped the Framer, if any. After an error the
// stream cannot be resynchronised; the connection should be closed.
func (f *Framer) Err() error { return f.err }

// InRequest reports whether the bytes consumed so far end inside a request.
func (f *Framer) InRequest() bool { return f.st != fStart }

// Skippable is how many bytes the Framer can be told to Skip rather than be
// shown: the rest of the payload of an argument it does not capture. A proxy
// may splice that many bytes straight to the server.
func (f *Framer) Skippable() int64 {
	if f.err != nil || f.st != fBulkData {
		return 0
	}
	if f.argi < CapturedArgs && int64(f.capLen[f.argi]) < min(f.req.lens[f.argi], CapturedArgBytes) {
		return 0
	}
	return f.bulkLeft
}

// Skip accounts for n payload bytes that went past without being shown to the
// Framer; n must not exceed Skippable.
func (f *Framer) Skip(n int64) {
	if n <= 0 {
		return
	}
	if n > f.Skippable() {
		panic("resp: Framer.Skip beyond Skippable")
	}
	f.bulkLeft -= n
	f.req.Size += n
	if f.bulkLeft == 0 {
		f.st = fBulkCR
	}
}

// Next consumes bytes of p, the stream's next bytes, up to the end of the
// first request that ends in p. It returns how many bytes it consumed and,
// when a request ended at p[n-1], that request (valid until the next call;
// see Request.Arg). When no request ends in p, it consumes all of p and
// returns a nil request: the bytes belong to a request still being received.
// An error is returned from then on; n counts the bytes before the offending
// one.
func (f *Framer) Next(p []byte) (n int, req *Request, err error) {
	if f.err != nil {
		return 0, nil, f.err
	}
	i := 0
	for i < len(p) {
		if f.st == fStart {
			f.begin()
			if p[i] != '*' {
				f.st = fInline
				f.req.Inline = true
				f.il = inlineState{}
			} else if k := f.countHeader(p[i:]); k > 0 {
				// Fast path: the whole "*<n>\r\n" is in p.
				i += k
				f.req.Size += int64(k)
				continue
			} else {
				f.st = fCount
				f.req.Size++
				i++
				continue
			}
		}
		switch f.st {
		case fBulkHdr:
			// Fast path: a whole "$<len>\r\n" in p, parsed in one go. Anything
			// else (a header split across buffers, an error) takes the
			// byte-at-a-time path below, which decides the same.
			if k := f.bulkHeader(p[i:]); k > 0 {
				i += k
				f.req.Size += int64(k)
				continue
			}
			c := p[i]
			i++
			f.req.Size++
			if _, err := f.step(c); err != nil {
				return f.fail(i-1, err)
			}
		case fBulkCR:
			if len(p)-i >= 2 && p[i] == '\r' && p[i+1] == '\n' {
				i += 2
				f.req.Size += 2
				if f.endArg() {
					return f.finish(i, p)
				}
				continue
			}
			c := p[i]
			i++
			f.req.Size++
			if _, err := f.step(c); err != nil {
				return f.fail(i-1, err)
			}
		case fInline:
			used, done, err := f.inline(p[i:])
			i += used
			f.req.Size += int64(used)
			if err != nil {
				return f.fail(i, err)
			}
			if done {
				return f.finish(i, p)
			}
		case fBulkData:
			take := min(f.bulkLeft, int64(len(p)-i))
			if f.argi < CapturedArgs {
				f.capture(p, i, int(take))
			}
			i += int(take)
			f.req.Size += take
			f.bulkLeft -= take
			if f.bulkLeft == 0 {
				f.st = fBulkCR
			}
		default:
			c := p[i]
			i++
			f.req.Size++
			done, err := f.step(c)
			if err != nil {
				return f.fail(i-1, err)
			}
			if done {
				return f.finish(i, p)
			}
		}
	}
	// The request goes on in the next buffer, and p may be reused by then:
	// copy what was captured from it.
	for a := range f.capStart {
		if f.capStart[a] >= 0 {
			copy(f.scratch[a][:], p[f.capStart[a]:f.capStart[a]+f.capLen[a]])
			f.capStart[a] = -1
		}
	}
	return len(p), nil, nil
}

// begin resets the per-request state.
func (f *Framer) begin() {
	f.req = Request{}
	f.argi, f.left, f.bulkLeft = 0, 0, 0
	f.resetNum()
	for a := range f.capStart {
		f.capStart[a], f.capLen[a] = -1, 0
	}
}

func (f *Framer) resetNum() { f.neg, f.num, f.digits, f.zero = false, 0, 0, false }

func (f *Framer) fail(n int, err error) (int, *Request, error) {
	f.err = err
	return n, nil, err
}

func (f *Framer) finish(n int, p []byte) (int, *Request, error) {
	for a := 0; a < CapturedArgs && int64(a) < f.req.Argc; a++ {
		if f.capStart[a] >= 0 {
			f.req.args[a] = p[f.capStart[a] : f.capStart[a]+f.capLen[a]]
		} else {
			f.req.args[a] = f.scratch[a][:f.capLen[a]]
		}
	}
	f.st = fStart
	return n, &f.req, nil
}

// capture records take payload bytes of the current argument starting at
// p[i], keeping at most CapturedArgBytes of it.
func (f *Framer) capture(p []byte, i, take int) {
	a := f.argi
	room := CapturedArgBytes - f.capLen[a]
	if room <= 0 {
		return
	}
	k := min(take, room)
	switch {
	case f.capLen[a] == 0:
		// The argument starts here: point into p, copy only if it spans buffers.
		f.capStart[a] = i
		f.capLen[a] = k
	case f.capStart[a] >= 0:
		f.capLen[a] += k // same buffer, contiguous
	default:
		copy(f.scratch[a][f.capLen[a]:], p[i:i+k])
		f.capLen[a] += k
	}
}

// digit accumulates one digit with redis' string2ll rules (no sign but a
// leading '-', no leading zero) and reports whether the number so far is
// still at most max (negative numbers: at most 2^63).
func (f *Framer) digit(c byte, max uint64) bool {
	if f.zero {
		return false // "0" followed by more digits
	}
	if f.digits == 0 && c == '0' {
		if f.neg {
			return false // "-0"
		}
		f.zero = true
	}
	f.digits++
	d := uint64(c - '0')
	if f.num > (math.MaxUint64-d)/10 {
		return false
	}
	f.num = f.num*10 + d
	if f.neg {
		return f.num <= 1<<63
	}
	return f.num <= max
}

// step handles one byte of a multibulk request's header lines and bulk
// terminators.
func (f *Framer) step(c byte) (done bool, err error) {
	switch f.st {
	case fCount:
		switch {
		case c == '-' && f.digits == 0 && !f.neg:
			f.neg = true
		case c >= '0' && c <= '9':
			if !f.digit(c, uint64(f.limits.MaxElems)) {
				return false, ErrInvalidMultibulkLength
			}
		case c == '\r' && f.digits > 0:
			f.st = fCountLF
		default:
			return false, ErrInvalidMultibulkLength
		}
	case fCountLF:
		if c != '\n' {
			return false, ErrInvalidMultibulkLength
		}
		if f.neg || f.num == 0 {
			// Redis skips "*0" and any negative count without a reply.
			return true, nil
		}
		if f.preAuth && f.num > PreAuthMaxElems {
			return false, ErrUnauthMultibulkLength
		}
		f.req.Argc = int64(f.num)
		f.left = int64(f.num)
		f.st = fBulkHdr
	case fBulkHdr:
		if c != '$' {
			return false, ErrExpectedBulk
		}
		f.resetNum()
		f.st = fBulkLen
	case fBulkLen:
		switch {
		case c >= '0' && c <= '9':
			if !f.digit(c, uint64(f.limits.MaxBulk)) {
				return false, ErrInvalidBulkLength
			}
		case c == '\r' && f.digits > 0:
			f.st = fBulkLF
		default:
			// Including '-': a negative length is invalid in a request.
			return false, ErrInvalidBulkLength
		}
	case fBulkLF:
		if c != '\n' {
			return false, ErrInvalidBulkLength
		}
		if f.preAuth && f.num > PreAuthMaxBulk {
			return false, ErrUnauthBulkLength
		}
		f.bulkLeft = int64(f.num)
		if f.argi < CapturedArgs {
			f.req.lens[f.argi] = f.bulkLeft
		}
		f.st = fBulkData
		if f.bulkLeft == 0 {
			f.st = fBulkCR
		}
	case fBulkCR:
		if c != '\r' {
			return false, ErrBulkNotTerminated
		}
		f.st = fBulkLF2
	case fBulkLF2:
		if c != '\n' {
			return false, ErrBulkNotTerminated
		}
		return f.endArg(), nil
	}
	return false, nil
}

// endArg moves past a complete argument and reports whether it was the last.
func (f *Framer) endArg() bool {
	f.argi++
	f.left--
	if f.left == 0 {
		return true
	}
	f.st = fBulkHdr
	return false
}

// countHeader parses a complete, valid, positive "*<n>\r\n" at the start of
// b and returns its length, or 0 to leave b to the byte-at-a-time path.
func (f *Framer) countHeader(b []byte) int {
	n, j := leadingNumber(b)
	if j == 0 || n == 0 || n > f.limits.MaxElems || (f.preAuth && n > PreAuthMaxElems) {
		return 0
	}
	f.req.Argc, f.left = n, n
	f.st = fBulkHdr
	return j
}

// leadingNumber reads "<type byte><digits>\r\n" as string2ll would (no sign,
// no leading zero, at most 11 digits here) and returns the number and the
// header's length, or a length of 0.
func leadingNumber(b []byte) (int64, int) {
	var n int64
	j := 1
	for ; j < len(b) && j < 12; j++ {
		c := b[j]
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int64(c-'0')
	}
	digits := j - 1
	if digits == 0 || (b[1] == '0' && digits > 1) || j+1 >= len(b) || b[j] != '\r' || b[j+1] != '\n' {
		return 0, 0
	}
	return n, j + 2
}

// bulkHeader parses a complete, valid "$<len>\r\n" at the start of b and
// returns its length, or 0 to leave b to the byte-at-a-time path.
func (f *Framer) bulkHeader(b []byte) int {
	if len(b) < 4 || b[0] != '$' {
		return 0
	}
	n, j := leadingNumber(b)
	if j == 0 || n > f.limits.MaxBulk || (f.preAuth && n > PreAuthMaxBulk) {
		return 0
	}
	f.bulkLeft = n
	if f.argi < CapturedArgs {
		f.req.lens[f.argi] = n
	}
	f.st = fBulkData
	if n == 0 {
		f.st = fBulkCR
	}
	return j
}

// inlineState is redis' sdssplitargs (and SplitArgs) as a byte-at-a-time
// machine, so an inline line split across reads needs no buffer.
type inlineState struct {
	mode      imode
	pendingCR bool // a CR that ends the line if LF follows
	h1        byte // first hex digit of a \xHH escape
}

type imode uint8

const (
	iBetween    imode = iota // between arguments
	iToken                   // in an unquoted argument
	iDouble                  // inside "..."
	iDoubleEsc               // after \ inside "..."
	iDoubleX                 // after \x inside "..."
	iDoubleX1                // after \xH inside "..."
	iSingle                  // inside '...'
	iSingleEsc               // after \ inside '...'
	iAfterClose              // right after a closing quote
)

// inline consumes bytes of an inline command line up to and including its LF.
func (f *Framer) inline(p []byte) (used int, done bool, err error) {
	for j, c := range p {
		if f.req.Size+int64(j)+1 > int64(f.limits.MaxInline) {
			return j, false, ErrTooBigInline
		}
		if c == '\n' {
			// One CR before the LF belongs to the terminator.
			f.il.pendingCR = false
			switch f.il.mode {
			case iBetween, iToken, iAfterClose:
				return j + 1, true, nil
			}
			return j, false, ErrUnbalancedQuotes
		}
		if f.il.pendingCR {
			f.il.pendingCR = false
			if err := f.lineByte('\r'); err != nil {
				return j, false, err
			}
		}
		if c == '\r' {
			f.il.pendingCR = true
			continue
		}
		if err := f.lineByte(c); err != nil {
			return j, false, err
		}
	}
	return len(p), false, nil
}

// lineByte feeds one byte of the line (terminator excluded) to the tokenizer.
func (f *Framer) lineByte(c byte) error {
	il := &f.il
	for {
		switch il.mode {
		case iBetween:
			if isSpace(c) {
				return nil
			}
			f.req.Argc++
			il.mode = iToken
			continue
		case iToken:
			switch {
			case isSpace(c):
				il.mode = iBetween
			case c == '"':
				il.mode = iDouble
			case c == '\'':
				il.mode = iSingle
			default:
				f.emit(c)
			}
		case iDouble:
			switch c {
			case '\\':
				il.mode = iDoubleEsc
			case '"':
				il.mode = iAfterClose
			default:
				f.emit(c)
			}
		case iDoubleEsc:
			if c == 'x' {
				il.mode = iDoubleX
				return nil
			}
			f.emit(unescape(c))
			il.mode = iDouble
		case iDoubleX:
			if isHex(c) {
				il.h1, il.mode = c, iDoubleX1
				return nil
			}
			// Not \xHH: the backslash escaped a plain 'x'.
			f.emit('x')
			il.mode = iDouble
			continue
		case iDoubleX1:
			if isHex(c) {
				f.emit(unhex(il.h1)<<4 | unhex(c))
				il.mode = iDouble
				return nil
			}
			f.emit('x')
			f.emit(il.h1)
			il.mode = iDouble
			continue
		case iSingle:
			switch c {
			case '\\':
				il.mode = iSingleEsc
			case '\'':
				il.mode = iAfterClose
			default:
				f.emit(c)
			}
		case iSingleEsc:
			il.mode = iSingle
			if c == '\'' {
				f.emit('\'')
				return nil
			}
			f.emit('\\')
			continue
		case iAfterClose:
			// A closing quote must be followed by a blank or the end.
			if !isSpace(c) {
				return ErrUnbalancedQuotes
			}
			il.mode = iBetween
		}
		return nil
	}
}

// emit appends one unescaped byte to the current inline argument.
func (f *Framer) emit(c byte) {
	a := f.req.Argc - 1
	if a >= CapturedArgs {
		return
	}
	f.req.lens[a]++
	if f.capLen[a] < CapturedArgBytes {
		f.scratch[a][f.capLen[a]] = c
		f.capLen[a]++
	}
}
