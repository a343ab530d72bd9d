package resp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadValue(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Value
	}{
		{"simple", "+PONG\r\n", Value{Kind: SimpleString, Str: "PONG"}},
		{"error", "-ERR unknown command\r\n", Value{Kind: Error, Str: "ERR unknown command"}},
		{"integer", ":-42\r\n", Value{Kind: Integer, Int: -42}},
		{"bulk", "$5\r\nhe\r\no\r\n", Value{Kind: BulkString, Str: "he\r\no"}},
		{"empty bulk", "$0\r\n\r\n", Value{Kind: BulkString}},
		{"null bulk", "$-1\r\n", Value{Kind: BulkString, Null: true}},
		{"null array", "*-1\r\n", Value{Kind: Array, Null: true}},
		{"resp3 null", "_\r\n", Value{Kind: Null, Null: true}},
		{"double", ",3.25\r\n", Value{Kind: Double, Float: 3.25}},
		{"bool", "#t\r\n", Value{Kind: Boolean, Bool: true}},
		{"bignum", "(-123456789012345678901234567890\r\n", Value{Kind: BigNumber, Str: "-123456789012345678901234567890"}},
		{"verbatim", "=8\r\ntxt:abcd\r\n", Value{Kind: Verbatim, Str: "abcd"}},
		{"blob error", "!3\r\nERR\r\n", Value{Kind: BlobError, Str: "ERR"}},
		{"array", "*2\r\n:1\r\n$1\r\na\r\n", Value{Kind: Array, Elems: []Value{{Kind: Integer, Int: 1}, {Kind: BulkString, Str: "a"}}}},
		{"map", "%1\r\n+k\r\n:2\r\n", Value{Kind: Map, Elems: []Value{{Kind: SimpleString, Str: "k"}, {Kind: Integer, Int: 2}}}},
		{"push", ">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n", Value{Kind: Push, Elems: []Value{{Kind: BulkString, Str: "message"}, {Kind: BulkString, Str: "x"}}}},
		{"attribute skipped", "|1\r\n+ttl\r\n:3\r\n+v\r\n", Value{Kind: SimpleString, Str: "v"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewReader(strings.NewReader(tc.in)).ReadValue()
			require.NoError(t, err)
			if tc.want.Elems == nil && got.Elems != nil && len(got.Elems) == 0 {
				got.Elems = nil
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestReadValueRejectsGarbage(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantEOF bool
	}{
		{"unknown type", "?x\r\n", false},
		{"bare LF", "+OK\n", false},
		{"bad integer", ":12a\r\n", false},
		{"bad bulk length", "$x\r\n", false},
		{"bulk over limit", "$999999999999\r\n", false},
		{"bulk without CRLF", "$1\r\nab\r\n", false},
		{"negative map", "%-1\r\n", false},
		{"bad bool", "#x\r\n", false},
		{"truncated bulk", "$10\r\nabc", true},
		{"truncated array", "*3\r\n:1\r\n", true},
		{"empty line", "\r\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tc.in)).ReadValue()
			require.Error(t, err)
			if tc.wantEOF {
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
			} else {
				var pe *ProtocolError
				assert.True(t, errors.As(err, &pe), "want ProtocolError, got %v", err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	deep := strings.Repeat("*1\r\n", 10) + ":1\r\n"
	_, err := NewReaderLimits(strings.NewReader(deep), Limits{MaxDepth: 5}).ReadValue()
	assert.ErrorContains(t, err, "nesting")

	// A huge announced count must not allocate before the elements arrive.
	_, err = NewReader(strings.NewReader("*16000000\r\n")).ReadValue()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)

	long := "+" + strings.Repeat("a", 100) + "\r\n"
	_, err = NewReaderLimits(strings.NewReader(long), Limits{MaxInline: 10}).ReadValue()
	assert.ErrorContains(t, err, "too big")
}

func TestReadCommand(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want [][]string
	}{
		{"multibulk", "*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n", [][]string{{"PING", "hi"}}},
		{"inline", "PING\r\n", [][]string{{"PING"}}},
		{"inline LF only and blank lines", "\r\n\nINFO replication\n", [][]string{{"INFO", "replication"}}},
		{"haproxy tcp-check", "PING\r\ninfo replication\r\nQUIT\r\n", [][]string{{"PING"}, {"info", "replication"}, {"QUIT"}}},
		{"quotes", `SET "a b" 'c\'d' "\x41\n"` + "\r\n", [][]string{{"SET", "a b", "c'd", "A\n"}}},
		{"pipelined", "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", [][]string{{"PING"}, {"PING"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in))
			for _, want := range tc.want {
				got, err := r.ReadCommand()
				require.NoError(t, err)
				assert.Equal(t, want, got)
			}
			_, err := r.ReadCommand()
			assert.ErrorIs(t, err, io.EOF)
		})
	}
}

func TestReadCommandErrors(t *testing.T) {
	for _, in := range []string{
		"*1\r\n:1\r\n",             // not a bulk string
		"SET \"a\r\n",              // unbalanced quotes
		"SET \"a\"b\r\n",           // closing quote followed by a letter
		"*1\r\n$3\r\nabcd\r\n",     // wrong length
		"*x\r\n",                   // bad count
		"*2\r\n$1\r\na\r\n$-1\r\n", // null argument
	} {
		_, err := NewReader(strings.NewReader(in)).ReadCommand()
		assert.Error(t, err, "%q", in)
	}
}

func TestWriterProtocols(t *testing.T) {
	tests := []struct {
		name  string
		write func(w *Writer)
		resp2 string
		resp3 string
	}{
		{"null", func(w *Writer) { w.Null() }, "$-1\r\n", "_\r\n"},
		{"null array", func(w *Writer) { w.NullArray() }, "*-1\r\n", "_\r\n"},
		{"map", func(w *Writer) { w.Map(1); w.Bulk("k"); w.Int(1) }, "*2\r\n$1\r\nk\r\n:1\r\n", "%1\r\n$1\r\nk\r\n:1\r\n"},
		{"push", func(w *Writer) { w.Push(1); w.Simple("x") }, "*1\r\n+x\r\n", ">1\r\n+x\r\n"},
		{"set", func(w *Writer) { w.Set(0) }, "*0\r\n", "~0\r\n"},
		{"bool", func(w *Writer) { w.Bool(true) }, ":1\r\n", "#t\r\n"},
		{"double", func(w *Writer) { w.Double(1.5) }, "$3\r\n1.5\r\n", ",1.5\r\n"},
		{"inf", func(w *Writer) { w.Double(math.Inf(-1)) }, "$4\r\n-inf\r\n", ",-inf\r\n"},
		{"error", func(w *Writer) { w.Error("ERR x") }, "-ERR x\r\n", "-ERR x\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for proto, want := range map[int]string{2: tc.resp2, 3: tc.resp3} {
				var b bytes.Buffer
				w := NewWriter(&b)
				w.SetProto(proto)
				tc.write(w)
				require.NoError(t, w.Flush())
				assert.Equal(t, want, b.String(), "RESP%d", proto)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	in := "*3\r\n+a\r\n%1\r\n$1\r\nk\r\n,2.5\r\n~1\r\n#f\r\n"
	v, err := NewReader(strings.NewReader(in)).ReadValue()
	require.NoError(t, err)
	var b bytes.Buffer
	w := NewWriter(&b)
	w.SetProto(3)
	w.Value(v)
	require.NoError(t, w.Flush())
	assert.Equal(t, in, b.String())
}

func TestPairs(t *testing.T) {
	v, err := NewReader(strings.NewReader("*4\r\n$4\r\nname\r\n$8\r\nmymaster\r\n$4\r\nport\r\n:6379\r\n")).ReadValue()
	require.NoError(t, err)
	m, err := v.Pairs()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"name": "mymaster", "port": "6379"}, m)

	_, err = Value{Kind: Array, Elems: []Value{{Kind: Integer}}}.Pairs()
	assert.Error(t, err)
	_, err = Value{Kind: Integer}.Pairs()
	assert.Error(t, err)
}

func TestParseInfoFromRealServer(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("testdata", "info-replication-master.txt"))
	require.NoError(t, err)
	info := ParseInfo(string(text))
	assert.Equal(t, "master", info.Get("role"))
	assert.Equal(t, "master", info.Section("Replication")["role"])
	slave := ParseFields(info.Get("slave0"))
	assert.Equal(t, "online", slave["state"])
	assert.NotEmpty(t, slave["offset"])
	assert.Equal(t, "", info.Get("no_such_key"))
}

func TestParseInfoTolerates(t *testing.T) {
	info := ParseInfo("loose:1\r\n# Server\r\nredis_version:7.0.15\r\ngarbage line\r\n:novalue\r\nk:v:w\r\n")
	assert.Equal(t, "1", info[""]["loose"])
	assert.Equal(t, "7.0.15", info.Get("redis_version"))
	assert.Equal(t, "v:w", info.Get("k"))
}

func FuzzReadValue(f *testing.F) {
	addCorpus(f, "replies-*.bin")
	f.Add([]byte("*2\r\n%1\r\n+a\r\n:1\r\n>1\r\n_\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReaderLimits(bytes.NewReader(data), Limits{MaxBulk: 1 << 16, MaxElems: 1 << 10})
		for i := 0; i < 16; i++ {
			v, err := r.ReadValue()
			if err != nil {
				return
			}
			// Whatever decodes must encode and decode to the same value.
			var b bytes.Buffer
			w := NewWriter(&b)
			w.SetProto(3)
			w.Value(v)
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			again, err := NewReader(&b).ReadValue()
			if err != nil {
				t.Fatalf("re-encoded %q does not decode: %v", b.String(), err)
			}
			// RESP3 has one null for every kind, and verbatim strings are
			// handed on as plain bulk strings.
			if again.Null != v.Null || (!v.Null && again.Kind != v.Kind && v.Kind != Verbatim) {
				t.Fatalf("value changed from %+v to %+v", v, again)
			}
		}
	})
}

func FuzzReadCommand(f *testing.F) {
	addCorpus(f, "commands-*.bin")
	f.Add([]byte("SET \"a\\x41\" 'b'\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReaderLimits(bytes.NewReader(data), Limits{MaxBulk: 1 << 16, MaxElems: 1 << 10})
		for i := 0; i < 16; i++ {
			args, err := r.ReadCommand()
			if err != nil {
				return
			}
			if len(args) == 0 {
				t.Fatal("empty command returned without error")
			}
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	addCorpus(f, "info-*.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		info := ParseInfo(string(data))
		for section, kv := range info {
			if strings.ToLower(section) != section {
				t.Fatalf("section %q not lower-case", section)
			}
			for k := range kv {
				if k == "" {
					t.Fatal("empty key")
				}
			}
		}
	})
}

// addCorpus seeds a fuzz target with traffic captured from real redis-server
// and redis-sentinel processes (see testdata/README).
func addCorpus(f *testing.F, glob string) {
	files, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatalf("no seed files testdata/%s", glob)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}
