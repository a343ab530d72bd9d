package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Limits bound what one value may claim, so that a hostile or broken peer cannot
// make the reader allocate without sending the bytes.
type Limits struct {
	MaxBulk   int64 // longest bulk string, like redis' proto-max-bulk-len
	MaxElems  int64 // most elements in one aggregate
	MaxDepth  int   // deepest nesting of aggregates
	MaxInline int   // longest line: inline commands and simple values
}

// DefaultLimits mirror redis-server's own protocol limits.
var DefaultLimits = Limits{
	MaxBulk:   512 << 20,
	MaxElems:  1 << 24,
	MaxDepth:  64,
	MaxInline: 64 << 10,
}

// ProtocolError reports bytes that are not valid RESP. The connection that
// produced it cannot be resynchronised and should be closed.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "Protocol error: " + e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// Reader decodes RESP values and client commands from a byte stream.
type Reader struct {
	br     *bufio.Reader
	limits Limits
}

// NewReader returns a Reader with DefaultLimits.
func NewReader(r io.Reader) *Reader { return NewReaderLimits(r, DefaultLimits) }

// NewReaderLimits returns a Reader that enforces l; zero fields take the defaults.
func NewReaderLimits(r io.Reader, l Limits) *Reader {
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
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 16<<10)
	}
	return &Reader{br: br, limits: l}
}

// Buffered reports how many bytes are already read from the stream but not yet
// decoded; a server uses it to tell a pipelined batch from a lone command.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// ReadValue decodes one RESP2 or RESP3 value.
func (r *Reader) ReadValue() (Value, error) { return r.readValue(0) }

// rawLine reads up to and including the next LF, at most max bytes.
func (r *Reader) rawLine(max int, what string) ([]byte, error) {
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > max {
			return nil, protoErr("too big %s (more than %d bytes)", what, max)
		}
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

// line reads one CRLF-terminated line without its terminator.
func (r *Reader) line() (string, error) {
	buf, err := r.rawLine(r.limits.MaxInline+2, "line")
	if err != nil {
		return "", err
	}
	if len(buf) < 2 || buf[len(buf)-2] != '\r' {
		return "", protoErr("line not terminated by CRLF")
	}
	return string(buf[:len(buf)-2]), nil
}

func (r *Reader) readValue(depth int) (Value, error) {
	if depth > r.limits.MaxDepth {
		return Value{}, protoErr("nesting deeper than %d", r.limits.MaxDepth)
	}
	ln, err := r.line()
	if err != nil {
		return Value{}, err
	}
	if ln == "" {
		return Value{}, protoErr("empty line where a value was expected")
	}
	kind, body := Kind(ln[0]), ln[1:]
	v := Value{Kind: kind}
	switch kind {
	case SimpleString, Error:
		v.Str = body
	case Integer:
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return Value{}, protoErr("invalid integer %q", body)
		}
		v.Int = n
	case BigNumber:
		if !isBigNumber(body) {
			return Value{}, protoErr("invalid big number %q", body)
		}
		v.Str = body
	case Double:
		f, err := parseDouble(body)
		if err != nil {
			return Value{}, err
		}
		v.Float = f
	case Boolean:
		switch body {
		case "t":
			v.Bool = true
		case "f":
		default:
			return Value{}, protoErr("invalid boolean %q", body)
		}
	case Null:
		if body != "" {
			return Value{}, protoErr("invalid null %q", body)
		}
		v.Null = true
	case BulkString, BlobError, Verbatim:
		n, err := r.length(body, r.limits.MaxBulk, "bulk length")
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			if kind != BulkString {
				return Value{}, protoErr("negative %s length", kind)
			}
			v.Null = true
			return v, nil
		}
		s, err := r.bulk(n)
		if err != nil {
			return Value{}, err
		}
		if kind == Verbatim {
			// "txt:" or "mkd:" prefix; callers want the text itself.
			if len(s) < 4 || s[3] != ':' {
				return Value{}, protoErr("verbatim string without a format prefix")
			}
			s = s[4:]
		}
		v.Str = s
	case Array, Set, Push, Map, Attribute:
		n, err := r.length(body, r.limits.MaxElems, "aggregate length")
		if err != nil {
			return Value{}, err
		}
		if n < 0 {
			if kind != Array {
				return Value{}, protoErr("negative %s length", kind)
			}
			v.Null = true
			return v, nil
		}
		count := n
		if kind == Map || kind == Attribute {
			count = 2 * n
		}
		// Grow as elements arrive rather than trusting the announced count.
		v.Elems = make([]Value, 0, min(count, 1024))
		for i := int64(0); i < count; i++ {
			e, err := r.readValue(depth + 1)
			if err != nil {
				return Value{}, unexpected(err)
			}
			v.Elems = append(v.Elems, e)
		}
		if kind == Attribute {
			// An attribute decorates the value that follows it; keep the value.
			next, err := r.readValue(depth + 1)
			return next, unexpected(err)
		}
	default:
		return Value{}, protoErr("unknown type byte %q", ln[0])
	}
	return v, nil
}

// unexpected turns a clean EOF inside a value into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) length(s string, limit int64, what string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < -1 {
		return 0, protoErr("invalid %s %q", what, s)
	}
	if n > limit {
		return 0, protoErr("%s %d over the limit %d", what, n, limit)
	}
	return n, nil
}

func (r *Reader) bulk(n int64) (string, error) {
	var b []byte
	if n <= 64<<10 {
		// Small strings, nearly all of them: one exact allocation.
		b = make([]byte, n+2)
		if _, err := io.ReadFull(r.br, b); err != nil {
			return "", unexpected(err)
		}
	} else {
		// Large ones grow with the bytes that really arrive, so a peer cannot
		// make us allocate by announcing a length it never sends.
		var buf bytes.Buffer
		if _, err := io.CopyN(&buf, r.br, n+2); err != nil {
			return "", unexpected(err)
		}
		b = buf.Bytes()
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return "", protoErr("bulk string not terminated by CRLF")
	}
	return string(b[:n]), nil
}

func parseDouble(s string) (float64, error) {
	switch s {
	case "inf", "+inf":
		return math.Inf(1), nil
	case "-inf":
		return math.Inf(-1), nil
	case "nan", "-nan":
		return math.NaN(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, protoErr("invalid double %q", s)
	}
	return f, nil
}

func isBigNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ReadCommand reads one client command: an array of bulk strings as clients
// send it, or an inline command line as telnet users and some health checkers
// (HAProxy's tcp-check "PING\r\n") send it. Empty inline lines are skipped, as
// redis-server does.
func (r *Reader) ReadCommand() ([]string, error) {
	for {
		b, err := r.br.Peek(1)
		if err != nil {
			return nil, err
		}
		if b[0] == '*' {
			v, err := r.ReadValue()
			if err != nil {
				return nil, err
			}
			if v.Null || len(v.Elems) == 0 {
				continue
			}
			args := make([]string, len(v.Elems))
			for i, e := range v.Elems {
				if e.Kind != BulkString || e.Null {
					return nil, protoErr("expected $, got %q", byte(e.Kind))
				}
				args[i] = e.Str
			}
			return args, nil
		}
		ln, err := r.inlineLine()
		if err != nil {
			return nil, err
		}
		args, err := SplitArgs(ln)
		if err != nil {
			return nil, err
		}
		if len(args) > 0 {
			return args, nil
		}
	}
}

// inlineLine accepts a bare LF as terminator, as redis-server does for inline
// commands.
func (r *Reader) inlineLine() (string, error) {
	buf, err := r.rawLine(r.limits.MaxInline, "inline request")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(buf), "\n"), "\r"), nil
}

// SplitArgs splits an inline command line the way redis' sdssplitargs does:
// spaces separate arguments, double quotes allow \n \r \t \b \a \\ \" and \xHH
// escapes, single quotes allow \'. A closing quote must be followed by a space
// or the end of the line.
func SplitArgs(line string) ([]string, error) {
	var args []string
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i >= len(line) {
			return args, nil
		}
		var cur strings.Builder
		inDouble, inSingle := false, false
		for done := false; !done; {
			if i >= len(line) {
				if inDouble || inSingle {
					return nil, protoErr("unbalanced quotes in request")
				}
				break
			}
			c := line[i]
			switch {
			case inDouble:
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					cur.WriteByte(unhex(line[i+2])<<4 | unhex(line[i+3]))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					cur.WriteByte(unescape(line[i]))
				case c == '"':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return nil, protoErr("unbalanced quotes in request")
					}
					done = true
				default:
					cur.WriteByte(c)
				}
			case inSingle:
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					cur.WriteByte('\'')
				case c == '\'':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return nil, protoErr("unbalanced quotes in request")
					}
					done = true
				default:
					cur.WriteByte(c)
				}
			default:
				switch {
				case isSpace(c):
					done = true
				case c == '"':
					inDouble = true
				case c == '\'':
					inSingle = true
				default:
					cur.WriteByte(c)
				}
			}
			i++
		}
		args = append(args, cur.String())
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}
