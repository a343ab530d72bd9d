package resp

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
)

// Writer encodes replies in the protocol version the client negotiated. In
// RESP2 the RESP3-only kinds fall back the way redis-server falls back: maps
// become flat arrays, sets and pushes arrays, doubles bulk strings, booleans
// integers and nulls the RESP2 null bulk or null array.
type Writer struct {
	bw    *bufio.Writer
	proto int
	err   error
	num   []byte
}

// NewWriter returns a RESP2 writer.
func NewWriter(w io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 16<<10), proto: 2}
}

// SetProto selects RESP2 or RESP3; anything but 3 means RESP2.
func (w *Writer) SetProto(p int) {
	if p != 3 {
		p = 2
	}
	w.proto = p
}

// Proto is the protocol version in use.
func (w *Writer) Proto() int { return w.proto }

// Flush sends what is buffered and reports the first write error since the
// last Flush.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	err := w.err
	w.err = nil
	return err
}

func (w *Writer) write(s string) {
	if w.err == nil {
		_, w.err = w.bw.WriteString(s)
	}
}

func (w *Writer) header(kind Kind, n int64) {
	if w.err != nil {
		return
	}
	w.num = append(w.num[:0], byte(kind))
	w.num = strconv.AppendInt(w.num, n, 10)
	w.num = append(w.num, '\r', '\n')
	_, w.err = w.bw.Write(w.num)
}

// Simple writes a simple string such as +OK or +PONG.
func (w *Writer) Simple(s string) { w.write("+" + oneLine(s) + "\r\n") }

// Error writes an error reply; s should start with a code such as "ERR".
func (w *Writer) Error(s string) { w.write("-" + oneLine(s) + "\r\n") }

// oneLine keeps a line-framed value on one line, as redis-server does for
// error strings: a CR or LF inside would end the frame early.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// Int writes an integer.
func (w *Writer) Int(n int64) { w.header(Integer, n) }

// Bulk writes a bulk string.
func (w *Writer) Bulk(s string) {
	w.header(BulkString, int64(len(s)))
	w.write(s)
	w.write("\r\n")
}

// BulkBytes writes a bulk string from bytes.
func (w *Writer) BulkBytes(b []byte) { w.Bulk(string(b)) }

// Null writes the null of a missing scalar.
func (w *Writer) Null() {
	if w.proto == 3 {
		w.write("_\r\n")
		return
	}
	w.write("$-1\r\n")
}

// NullArray writes the null of a missing aggregate.
func (w *Writer) NullArray() {
	if w.proto == 3 {
		w.write("_\r\n")
		return
	}
	w.write("*-1\r\n")
}

// Array starts an array of n elements.
func (w *Writer) Array(n int) { w.header(Array, int64(n)) }

// Set starts a set of n elements.
func (w *Writer) Set(n int) {
	if w.proto == 3 {
		w.header(Set, int64(n))
		return
	}
	w.header(Array, int64(n))
}

// Map starts a map of n key/value pairs.
func (w *Writer) Map(n int) {
	if w.proto == 3 {
		w.header(Map, int64(n))
		return
	}
	w.header(Array, 2*int64(n))
}

// Push starts an out-of-band push message of n elements (pub/sub deliveries).
func (w *Writer) Push(n int) {
	if w.proto == 3 {
		w.header(Push, int64(n))
		return
	}
	w.header(Array, int64(n))
}

// Double writes a floating point number.
func (w *Writer) Double(f float64) {
	var s string
	switch {
	case math.IsInf(f, 1):
		s = "inf"
	case math.IsInf(f, -1):
		s = "-inf"
	case math.IsNaN(f):
		s = "nan"
	default:
		s = strconv.FormatFloat(f, 'g', 17, 64)
	}
	if w.proto == 3 {
		w.write("," + s + "\r\n")
		return
	}
	w.Bulk(s)
}

// Bool writes a boolean.
func (w *Writer) Bool(b bool) {
	if w.proto == 3 {
		if b {
			w.write("#t\r\n")
		} else {
			w.write("#f\r\n")
		}
		return
	}
	if b {
		w.Int(1)
	} else {
		w.Int(0)
	}
}

// Value writes a decoded value back in the writer's protocol version.
func (w *Writer) Value(v Value) {
	switch v.Kind {
	case SimpleString:
		w.Simple(v.Str)
	case Error:
		w.Error(v.Str)
	case BlobError:
		if w.proto == 3 {
			w.header(BlobError, int64(len(v.Str)))
			w.write(v.Str + "\r\n")
		} else {
			w.Error(v.Str)
		}
	case Integer:
		w.Int(v.Int)
	case BigNumber:
		if w.proto == 3 {
			w.write("(" + v.Str + "\r\n")
		} else {
			w.Bulk(v.Str)
		}
	case Double:
		w.Double(v.Float)
	case Boolean:
		w.Bool(v.Bool)
	case Null:
		w.Null()
	case BulkString, Verbatim:
		if v.Null {
			w.Null()
		} else {
			w.Bulk(v.Str)
		}
	case Array, Set, Push:
		if v.Null {
			w.NullArray()
			return
		}
		switch v.Kind {
		case Set:
			w.Set(len(v.Elems))
		case Push:
			w.Push(len(v.Elems))
		default:
			w.Array(len(v.Elems))
		}
		for _, e := range v.Elems {
			w.Value(e)
		}
	case Map, Attribute:
		w.Map(len(v.Elems) / 2)
		for _, e := range v.Elems[:len(v.Elems)/2*2] {
			w.Value(e)
		}
	}
}
