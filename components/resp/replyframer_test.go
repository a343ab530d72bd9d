package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// frameReplies feeds the chunks to f and returns every reply, the error that
// stopped it and the stream offset of the offending byte.
func frameReplies(f *ReplyFramer, chunks [][]byte) (replies []Reply, err error, errAt int64) {
	var off int64
	for _, c := range chunks {
		for len(c) > 0 {
			n, r, err := f.Next(c)
			if err != nil {
				return replies, err, off + int64(n)
			}
			if r != nil {
				replies = append(replies, *r)
			}
			c = c[n:]
			off += int64(n)
		}
	}
	return replies, nil, -1
}

func TestReplyFramer(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Reply
	}{
		{"simple", "+PONG\r\n", []Reply{{Size: 7, Kind: SimpleString}}},
		{"CR inside a simple string", "+a\rb\r\n", []Reply{{Size: 6, Kind: SimpleString}}},
		{"error", "-ERR x\r\n", []Reply{{Size: 8, Kind: Error}}},
		{"integer", ":-42\r\n:+7\r\n:9223372036854775807\r\n", []Reply{
			{Size: 6, Kind: Integer, Int: -42}, {Size: 5, Kind: Integer, Int: 7}, {Size: 22, Kind: Integer, Int: 1<<63 - 1}}},
		{"bulk and nulls", "$5\r\nhe\r\no\r\n$-1\r\n*-1\r\n_\r\n$0\r\n\r\n", []Reply{
			{Size: 11, Kind: BulkString}, {Size: 5, Kind: BulkString, Null: true}, {Size: 5, Kind: Array, Null: true},
			{Size: 3, Kind: Null, Null: true}, {Size: 6, Kind: BulkString}}},
		{"resp3 scalars", ",3.25\r\n#t\r\n(-123\r\n=8\r\ntxt:abcd\r\n!3\r\nERR\r\n", []Reply{
			{Size: 7, Kind: Double}, {Size: 4, Kind: Boolean}, {Size: 7, Kind: BigNumber}, {Size: 14, Kind: Verbatim},
			{Size: 9, Kind: BlobError}}},
		{"nested", "*2\r\n*1\r\n:1\r\n%1\r\n+k\r\n*0\r\n", []Reply{{Size: 24, Kind: Array}}},
		{"empty aggregates", "*0\r\n%0\r\n~0\r\n", []Reply{{Size: 4, Kind: Array}, {Size: 4, Kind: Map}, {Size: 4, Kind: Set}}},
		{"push between replies", "+OK\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nx\r\n:1\r\n", []Reply{
			{Size: 5, Kind: SimpleString}, {Size: 32, Kind: Push}, {Size: 4, Kind: Integer, Int: 1}}},
		{"attribute then value is one reply", "|1\r\n+ttl\r\n:3\r\n:5\r\n", []Reply{{Size: 18, Kind: Integer, Int: 5}}},
		{"attribute inside an array", "*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n", []Reply{{Size: 24, Kind: Array}}},
		{"attribute on an attribute", "|1\r\n|1\r\n+a\r\n+b\r\n+k\r\n+v\r\n>0\r\n", []Reply{{Size: 28, Kind: Push}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err, _ := frameReplies(NewReplyFramer(Limits{}), [][]byte{[]byte(tc.in)})
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			checkRepliesAgainstReader(t, []byte(tc.in), got, Limits{})
			for cut := 1; cut < len(tc.in); cut++ {
				split, err, _ := frameReplies(NewReplyFramer(Limits{}), splitAt([]byte(tc.in), []int{cut}))
				require.NoError(t, err)
				require.Equal(t, tc.want, split, "split at %d", cut)
			}
		})
	}
}

func TestReplyFramerErrors(t *testing.T) {
	for _, in := range []string{
		"?x\r\n", "+OK\n", ":12a\r\n", ":\r\n", "$x\r\n", "$999999999999\r\n", "$1\r\nab\r\n",
		"%-1\r\n", "!-1\r\n", "#x\r\n", "#tt\r\n", "_x\r\n", "(\r\n", "(1-\r\n", "=3\r\nabc\r\n",
		"=5\r\nabcde\r\n", "\r\n", ":99999999999999999999\r\n", "*-2\r\n", ":1\r\r\n",
	} {
		f := NewReplyFramer(Limits{})
		_, err, _ := frameReplies(f, [][]byte{[]byte(in)})
		var pe *ProtocolError
		assert.True(t, errors.As(err, &pe), "%q: want a ProtocolError, got %v", in, err)
		_, _, again := f.Next([]byte("+OK\r\n"))
		assert.Equal(t, err, again, "%q: the error is sticky", in)
		// The Reader rejects them too.
		_, rerr := NewReader(strings.NewReader(in)).ReadValue()
		assert.Error(t, rerr, "%q", in)
	}

	deep := strings.Repeat("*1\r\n", 10) + ":1\r\n"
	_, err, _ := frameReplies(NewReplyFramer(Limits{MaxDepth: 5}), [][]byte{[]byte(deep)})
	assert.ErrorContains(t, err, "nesting")
	_, err, _ = frameReplies(NewReplyFramer(Limits{MaxDepth: 10}), [][]byte{[]byte(deep)})
	assert.NoError(t, err)

	long := "+" + strings.Repeat("a", 100) + "\r\n"
	_, err, _ = frameReplies(NewReplyFramer(Limits{MaxInline: 10}), [][]byte{[]byte(long)})
	assert.ErrorContains(t, err, "too big")
	_, err, _ = frameReplies(NewReplyFramer(Limits{MaxInline: 101}), [][]byte{[]byte(long)})
	assert.NoError(t, err, "the type byte and the text fit in MaxInline, as in the Reader")
	_, err = NewReaderLimits(strings.NewReader(long), Limits{MaxInline: 101}).ReadValue()
	assert.NoError(t, err)
	_, err = NewReaderLimits(strings.NewReader(long), Limits{MaxInline: 100}).ReadValue()
	assert.Error(t, err)
}

func TestReplyFramerCountAndSkip(t *testing.T) {
	f := NewReplyFramer(Limits{})
	n, err := f.Count([]byte("+OK\r\n:1\r\n$3\r\nab"))
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	assert.True(t, f.InReply())
	assert.Equal(t, int64(1), f.Skippable())
	f.Skip(1)
	n, err = f.Count([]byte("\r\n"))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.False(t, f.InReply())
	assert.Panics(t, func() { f.Skip(1) })
}

// TestReplyFramerOnRealTraffic frames what redis-server and redis-sentinel
// really sent (RESP2, RESP3, pushes, every DEBUG PROTOCOL type), whole and
// split, against the Reader.
func TestReplyFramerOnRealTraffic(t *testing.T) {
	for name, data := range corpus(t, "replies-*.bin") {
		t.Run(name, func(t *testing.T) {
			f := NewReplyFramer(Limits{})
			replies, err, _ := frameReplies(f, [][]byte{data})
			require.NoError(t, err)
			require.NotEmpty(t, replies)
			assert.False(t, f.InReply(), "the capture ends on a reply boundary")
			checkRepliesAgainstReader(t, data, replies, Limits{})
			checkReaderAgainstReplies(t, data, replies, Limits{})
			for seed := uint64(0); seed < 50; seed++ {
				split, err, _ := frameReplies(NewReplyFramer(Limits{}), splitAt(data, randomCuts(len(data), seed)))
				require.NoError(t, err)
				require.Equal(t, replies, split, "seed %d", seed)
			}
		})
	}
	// The captured RESP3 session has attributes and pushes in it.
	replies, _, _ := frameReplies(NewReplyFramer(Limits{}), [][]byte{corpus(t, "replies-redis-resp3-push.bin")["replies-redis-resp3-push.bin"]})
	pushes := 0
	for _, r := range replies {
		if r.IsPush() {
			pushes++
		}
	}
	assert.GreaterOrEqual(t, pushes, 4, "DEBUG PROTOCOL push, invalidate, two subscribe confirmations, message")
}

// checkRepliesAgainstReader reads each framed reply alone with the Reader,
// which must read exactly its bytes (or reject the text of a double, which
// the framer does not check).
func checkRepliesAgainstReader(t testing.TB, data []byte, replies []Reply, l Limits) {
	var off int64
	var src bytes.Reader
	br := bufio.NewReaderSize(&src, 512)
	for k, rp := range replies {
		span := data[off : off+rp.Size]
		off += rp.Size
		src.Reset(span)
		br.Reset(&src)
		r := NewReaderLimits(br, l)
		v, err := r.ReadValue()
		if err != nil {
			if strings.Contains(err.Error(), "invalid double") {
				continue
			}
			t.Fatalf("reply %d %q: framed, but the Reader says %v", k, span, err)
		}
		if v.Kind != rp.Kind && !(v.Kind == Verbatim && rp.Kind == Verbatim) {
			t.Fatalf("reply %d %q: kind %s framed, %s read", k, span, rp.Kind, v.Kind)
		}
		if v.Kind == Integer && v.Int != rp.Int {
			t.Fatalf("reply %d %q: integer %d framed, %d read", k, span, rp.Int, v.Int)
		}
		if v.Null != rp.Null {
			t.Fatalf("reply %d %q: null %v framed, %v read", k, span, rp.Null, v.Null)
		}
		if _, err := r.ReadValue(); !errors.Is(err, io.EOF) {
			t.Fatalf("reply %d %q: the Reader found more in the span: %v", k, span, err)
		}
	}
}

// checkReaderAgainstReplies reads the whole stream with the Reader: every
// value it reads must end where a framed reply ends, so the framer never
// rejects or cuts differently what the Reader accepts.
func checkReaderAgainstReplies(t testing.TB, data []byte, replies []Reply, l Limits) {
	src := bytes.NewReader(data)
	r := NewReaderLimits(src, l)
	var off int64
	for k := 0; ; k++ {
		_, err := r.ReadValue()
		if err != nil {
			return
		}
		consumed := int64(len(data)) - int64(src.Len()) - int64(r.Buffered())
		if k >= len(replies) {
			t.Fatalf("the Reader read value %d ending at %d; the framer found only %d replies", k, consumed, len(replies))
		}
		off += replies[k].Size
		if consumed != off {
			t.Fatalf("value %d: the Reader ends it at %d, the framer at %d", k, consumed, off)
		}
	}
}

func TestReplyFramerDoesNotAllocate(t *testing.T) {
	data := corpus(t, "replies-redis-resp3-push.bin")["replies-redis-resp3-push.bin"]
	f := NewReplyFramer(Limits{})
	allocs := testing.AllocsPerRun(200, func() {
		for _, p := range [][]byte{data[:100], data[100:]} {
			if _, err := f.Count(p); err != nil {
				panic(err)
			}
		}
	})
	assert.Equal(t, 0.0, allocs)
}

func BenchmarkReplyFramer(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "replies-redis-benchmark.bin"))
	require.NoError(b, err)
	f := NewReplyFramer(Limits{})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Count(data); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzReplyFramer: no panic; the same stream split anywhere frames the same;
// every framed reply is read identically by the Reader, and every value the
// Reader reads ends on a framed boundary.
func FuzzReplyFramer(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "replies-*.bin"))
	if len(files) == 0 {
		f.Fatal("no seed files testdata/replies-*.bin")
	}
	for i, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(i))
	}
	f.Add([]byte("|1\r\n+a\r\n>1\r\n_\r\n*2\r\n%1\r\n+a\r\n:1\r\n=5\r\ntxt:x\r\n"), uint64(3))
	limits := Limits{MaxBulk: 1 << 16, MaxElems: 1 << 10, MaxDepth: 8, MaxInline: 1 << 10}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		if len(data) > maxFuzzInput {
			data = data[:maxFuzzInput]
		}
		whole, werr, wat := frameReplies(NewReplyFramer(limits), [][]byte{data})
		split, serr, sat := frameReplies(NewReplyFramer(limits), splitAt(data, randomCuts(len(data), seed)))
		if !reflect.DeepEqual(whole, split) || fmt.Sprint(werr) != fmt.Sprint(serr) || wat != sat {
			t.Fatalf("whole: %v %v@%d\nsplit: %v %v@%d", whole, werr, wat, split, serr, sat)
		}
		checkRepliesAgainstReader(t, data, whole, limits)
		checkReaderAgainstReplies(t, data, whole, limits)
	})
}
