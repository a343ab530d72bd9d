package resp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// framed is what the tests compare of one Request, copied out of the Framer.
type framed struct {
	Size   int64
	Argc   int64
	Inline bool
	Args   []string // the captured arguments (at most CapturedArgs)
	Lens   []int64
}

func (r *Request) snapshot() framed {
	fr := framed{Size: r.Size, Argc: r.Argc, Inline: r.Inline}
	for i := 0; i < CapturedArgs && int64(i) < r.Argc; i++ {
		fr.Args = append(fr.Args, string(r.Arg(i)))
		fr.Lens = append(fr.Lens, r.ArgLen(i))
	}
	return fr
}

// frameChunks feeds the chunks to f in order and returns every request, the
// error that stopped it and the stream offset of the offending byte.
func frameChunks(f *Framer, chunks [][]byte) (reqs []framed, err error, errAt int64) {
	var off int64
	for _, c := range chunks {
		for len(c) > 0 {
			n, req, err := f.Next(c)
			if err != nil {
				return reqs, err, off + int64(n)
			}
			if req != nil {
				reqs = append(reqs, req.snapshot())
			}
			c = c[n:]
			off += int64(n)
		}
	}
	return reqs, nil, -1
}

// splitAt cuts data at the given sorted offsets.
func splitAt(data []byte, cuts []int) [][]byte {
	var out [][]byte
	prev := 0
	for _, c := range cuts {
		if c <= prev || c >= len(data) {
			continue
		}
		out = append(out, data[prev:c])
		prev = c
	}
	return append(out, data[prev:])
}

// randomCuts derives up to 16 cut points from seed.
func randomCuts(n int, seed uint64) []int {
	if n < 2 {
		return nil
	}
	rng := rand.New(rand.NewSource(int64(seed)))
	cuts := make([]int, rng.Intn(16)+1)
	for i := range cuts {
		cuts[i] = rng.Intn(n-1) + 1
	}
	for i := 1; i < len(cuts); i++ {
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	return cuts
}

func TestFramerRequests(t *testing.T) {
	long := strings.Repeat("v", 100)
	tests := []struct {
		name string
		in   string
		want []framed
	}{
		{"multibulk", "*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n", []framed{{Size: 22, Argc: 2, Args: []string{"PING", "hi"}, Lens: []int64{4, 2}}}},
		{"pipelined", "*1\r\n$4\r\nping\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", []framed{
			{Size: 14, Argc: 1, Args: []string{"ping"}, Lens: []int64{4}},
			{Size: 26, Argc: 3, Args: []string{"SET", "k", ""}, Lens: []int64{3, 1, 0}},
		}},
		{"binary argument", "*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00*\r\n", []framed{{Size: 24, Argc: 2, Args: []string{"ECHO", "\r\n\x00*"}, Lens: []int64{4, 4}}}},
		{"long argument cut", "*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n" + long + "\r\n$2\r\nEX\r\n", []framed{
			{Size: 136, Argc: 4, Args: []string{"SET", "k", long[:CapturedArgBytes]}, Lens: []int64{3, 1, 100}},
		}},
		{"empty and negative counts", "*0\r\n*-1\r\n*-10\r\n", []framed{{Size: 4}, {Size: 5}, {Size: 6}}},
		{"inline", "PING\r\n", []framed{{Size: 6, Argc: 1, Inline: true, Args: []string{"PING"}, Lens: []int64{4}}}},
		{"inline LF and blanks", "\r\n\n  \t\nINFO replication\n", []framed{
			{Size: 2, Inline: true}, {Size: 1, Inline: true}, {Size: 4, Inline: true},
			{Size: 17, Argc: 2, Inline: true, Args: []string{"INFO", "replication"}, Lens: []int64{4, 11}},
		}},
		{"inline quotes", `SET "a b" 'c\'d' "\x41\n"` + "\r\n", []framed{
			{Size: 27, Argc: 4, Inline: true, Args: []string{"SET", "a b", "c'd"}, Lens: []int64{3, 3, 3}},
		}},
		{"inline CR inside", "ECHO a\rb\r\n", []framed{{Size: 10, Argc: 3, Inline: true, Args: []string{"ECHO", "a", "b"}, Lens: []int64{4, 1, 1}}}},
		{"inline escapes", `"\x4"  "\xzz" '\a' x"y"` + "\n", []framed{
			{Size: 24, Argc: 4, Inline: true, Args: []string{"x4", "xzz", `\a`}, Lens: []int64{2, 3, 2}},
		}},
		{"inline then multibulk", "PING\n*1\r\n$4\r\nPING\r\n", []framed{
			{Size: 5, Argc: 1, Inline: true, Args: []string{"PING"}, Lens: []int64{4}},
			{Size: 14, Argc: 1, Args: []string{"PING"}, Lens: []int64{4}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err, _ := frameChunks(NewFramer(Limits{}), [][]byte{[]byte(tc.in)})
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			checkRequestsAgainstReader(t, []byte(tc.in), got, Limits{})
			// Split at every single byte: the same requests.
			for cut := 1; cut < len(tc.in); cut++ {
				split, err, _ := frameChunks(NewFramer(Limits{}), splitAt([]byte(tc.in), []int{cut}))
				require.NoError(t, err)
				require.Equal(t, tc.want, split, "split at %d", cut)
			}
			// One byte at a time.
			var bytewise [][]byte
			for i := range tc.in {
				bytewise = append(bytewise, []byte{tc.in[i]})
			}
			one, err, _ := frameChunks(NewFramer(Limits{}), bytewise)
			require.NoError(t, err)
			require.Equal(t, tc.want, one)
		})
	}
}

func TestFramerNameHelpers(t *testing.T) {
	f := NewFramer(Limits{})
	_, req, err := f.Next([]byte("*3\r\n$6\r\nclient\r\n$5\r\nReply\r\n$3\r\nOFF\r\n"))
	require.NoError(t, err)
	require.NotNil(t, req)
	assert.True(t, req.Is("CLIENT"))
	assert.True(t, req.ArgIs(1, "reply") && req.ArgIs(2, "off"))
	assert.False(t, req.Is("CLIEN"))
	assert.False(t, req.ArgIs(3, "x"))
	assert.Nil(t, req.Arg(3))
	assert.Equal(t, int64(-1), req.ArgLen(5))
	assert.True(t, EqualFold([]byte("mUlTi"), "MULTI"))
	assert.False(t, EqualFold([]byte("multi"), "exec!"))
	assert.False(t, EqualFold([]byte("["), "{")) // not letters: no folding

	// A long name is cut in Arg but Is compares the full length.
	name := strings.Repeat("a", CapturedArgBytes)
	_, req, err = NewFramer(Limits{}).Next([]byte(fmt.Sprintf("*1\r\n$%d\r\n%sb\r\n", len(name)+1, name)))
	require.NoError(t, err)
	assert.False(t, req.Is(name))
	assert.Equal(t, int64(len(name)+1), req.ArgLen(0))
}

func TestFramerErrors(t *testing.T) {
	tooLongInline := strings.Repeat("a", 64<<10) + "\n"
	tests := []struct {
		name    string
		in      string
		preAuth bool
		want    error
		at      int64 // offset of the offending byte
	}{
		{"count over INT_MAX", "*3000000000\r\n", false, ErrInvalidMultibulkLength, 10},
		{"count with plus", "*+1\r\n", false, ErrInvalidMultibulkLength, 1},
		{"count with leading zero", "*01\r\n", false, ErrInvalidMultibulkLength, 2},
		{"minus zero", "*-0\r\n", false, ErrInvalidMultibulkLength, 2},
		{"empty count", "*\r\n", false, ErrInvalidMultibulkLength, 1},
		{"count CR without LF", "*1\rX", false, ErrInvalidMultibulkLength, 3},
		{"redis: wrong payload header", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", false, ErrExpectedBulk, 20},
		{"redis: negative payload length", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n", false, ErrInvalidBulkLength, 21},
		{"redis: out of range payload length", "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n", false, ErrInvalidBulkLength, 30},
		{"bulk at proto-max-bulk-len + 1", "*1\r\n$536870913\r\n", false, ErrInvalidBulkLength, 13},
		{"bulk without CRLF", "*1\r\n$1\r\nab\r\n", false, ErrBulkNotTerminated, 9},
		{"inline over 64 KiB", tooLongInline, false, ErrTooBigInline, 64 << 10},
		{"inline unbalanced", "SET \"a\r\n", false, ErrUnbalancedQuotes, 7},
		{"inline closing quote then letter", "SET \"a\"b\r\n", false, ErrUnbalancedQuotes, 7},
		{"pre-auth: 11 arguments", "*11\r\n", true, ErrUnauthMultibulkLength, 4},
		{"pre-auth: bulk of 16 KiB + 1", "*1\r\n$16385\r\n", true, ErrUnauthBulkLength, 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFramer(Limits{})
			f.SetPreAuth(tc.preAuth)
			_, err, at := frameChunks(f, [][]byte{[]byte(tc.in)})
			require.ErrorIs(t, err, tc.want)
			var pe *ProtocolError
			assert.True(t, errors.As(err, &pe))
			assert.Equal(t, tc.at, at)
			// Sticky.
			_, _, again := f.Next([]byte("*1\r\n$4\r\nPING\r\n"))
			assert.ErrorIs(t, again, tc.want)
			assert.Equal(t, err, f.Err())
		})
	}

	// The pre-auth limits themselves are allowed, and lifted after AUTH.
	f := NewFramer(Limits{})
	f.SetPreAuth(true)
	ten := "*10\r\n" + strings.Repeat("$1\r\na\r\n", 10)
	maxBulk := "*1\r\n$16384\r\n" + strings.Repeat("b", 16384) + "\r\n"
	reqs, err, _ := frameChunks(f, [][]byte{[]byte(ten + maxBulk)})
	require.NoError(t, err)
	assert.Len(t, reqs, 2)
	f.SetPreAuth(false)
	reqs, err, _ = frameChunks(f, [][]byte{[]byte("*11\r\n" + strings.Repeat("$1\r\na\r\n", 11))})
	require.NoError(t, err)
	assert.Equal(t, int64(11), reqs[0].Argc)

	// An inline line of exactly 64 KiB, LF included, is accepted.
	reqs, err, _ = frameChunks(NewFramer(Limits{}), [][]byte{[]byte(tooLongInline[1:])})
	require.NoError(t, err)
	assert.Len(t, reqs, 1)
}

func TestFramerSkip(t *testing.T) {
	big := strings.Repeat("x", 1000)
	in := []byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n" + big + "\r\n*1\r\n$4\r\nPING\r\n")
	f := NewFramer(Limits{})
	hdr := len("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n")
	n, req, err := f.Next(in[:hdr+10])
	require.NoError(t, err)
	require.Nil(t, req)
	require.Equal(t, hdr+10, n)
	assert.True(t, f.InRequest())
	// The third argument is captured: its first bytes must be seen.
	assert.Equal(t, int64(0), f.Skippable())
	n, req, err = f.Next(in[hdr+10 : hdr+CapturedArgBytes])
	require.NoError(t, err)
	require.Nil(t, req)
	assert.Equal(t, int64(1000-CapturedArgBytes), f.Skippable())
	f.Skip(f.Skippable())
	n, req, err = f.Next(in[hdr+1000:])
	require.NoError(t, err)
	require.NotNil(t, req)
	assert.Equal(t, 2, n)
	assert.Equal(t, int64(hdr+1002), req.Size)
	assert.Equal(t, big[:CapturedArgBytes], string(req.Arg(2)))
	assert.Panics(t, func() { f.Skip(1) })
}

// corpus reads the captured traffic files matching glob.
func corpus(t testing.TB, glob string) map[string][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", glob))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no testdata/%s", glob)
	out := map[string][]byte{}
	for _, p := range files {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		out[filepath.Base(p)] = b
	}
	return out
}

// TestFramerOnRealTraffic frames what redis-cli, redis-benchmark, HAProxy and
// telnet-style clients really sent, whole and split, and checks each request
// against the Reader.
func TestFramerOnRealTraffic(t *testing.T) {
	files := corpus(t, "requests-*.bin")
	for name, b := range corpus(t, "commands-*.bin") {
		files[name] = b
	}
	for name, data := range files {
		t.Run(name, func(t *testing.T) {
			f := NewFramer(Limits{})
			reqs, err, _ := frameChunks(f, [][]byte{data})
			require.NoError(t, err)
			require.NotEmpty(t, reqs)
			assert.False(t, f.InRequest(), "the capture ends on a request boundary")
			checkRequestsAgainstReader(t, data, reqs, Limits{})
			for seed := uint64(0); seed < 50; seed++ {
				split, err, _ := frameChunks(NewFramer(Limits{}), splitAt(data, randomCuts(len(data), seed)))
				require.NoError(t, err)
				require.Equal(t, reqs, split, "seed %d", seed)
			}
		})
	}
}

// checkRequestsAgainstReader parses each framed request alone with the
// Reader, which must read exactly its bytes and the same arguments.
func checkRequestsAgainstReader(t testing.TB, data []byte, reqs []framed, l Limits) {
	var off int64
	var src bytes.Reader
	br := bufio.NewReaderSize(&src, 512)
	for k, rq := range reqs {
		span := data[off : off+rq.Size]
		off += rq.Size
		src.Reset(span)
		br.Reset(&src)
		r := NewReaderLimits(br, l)
		if rq.Argc == 0 {
			_, err := r.ReadCommand()
			if errors.Is(err, io.EOF) {
				continue
			}
			// Redis skips any negative count; the Reader only accepts -1.
			var pe *ProtocolError
			if errors.As(err, &pe) && bytes.HasPrefix(span, []byte("*-")) {
				continue
			}
			t.Fatalf("request %d %q: framed as empty, Reader says %v", k, span, err)
		}
		args, err := r.ReadCommand()
		if err != nil {
			t.Fatalf("request %d %q: framed, but the Reader says %v", k, span, err)
		}
		if int64(len(args)) != rq.Argc {
			t.Fatalf("request %d %q: %d arguments framed, %d read", k, span, rq.Argc, len(args))
		}
		for i := range rq.Args {
			want := args[i]
			if rq.Lens[i] != int64(len(want)) {
				t.Fatalf("request %d %q: argument %d length %d, Reader %d", k, span, i, rq.Lens[i], len(want))
			}
			if len(want) > CapturedArgBytes {
				want = want[:CapturedArgBytes]
			}
			if rq.Args[i] != want {
				t.Fatalf("request %d %q: argument %d %q, Reader %q", k, span, i, rq.Args[i], want)
			}
		}
		if _, err := r.ReadCommand(); !errors.Is(err, io.EOF) {
			t.Fatalf("request %d %q: the Reader found more in the span: %v", k, span, err)
		}
	}
}

// pipeline is redis-benchmark's SET traffic at -P 16, as the proxy sees it.
func pipeline(tb testing.TB) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	for i := 0; i < 16; i++ {
		fmt.Fprintf(w, "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n", i)
	}
	require.NoError(tb, w.Flush())
	return b.Bytes()
}

func TestFramerDoesNotAllocate(t *testing.T) {
	buf := pipeline(t)
	inline := []byte("PING\r\nINFO \"replication\"\r\n")
	f := NewFramer(Limits{})
	allocs := testing.AllocsPerRun(200, func() {
		for _, p := range [][]byte{buf, buf[:100], buf[100:], inline} {
			for len(p) > 0 {
				n, req, err := f.Next(p)
				if err != nil {
					panic(err)
				}
				if req != nil && !req.Is("SET") && !req.Is("PING") && !req.Is("INFO") {
					panic("wrong name")
				}
				p = p[n:]
			}
		}
	})
	assert.Equal(t, 0.0, allocs)
}

func BenchmarkFramer(b *testing.B) {
	buf := pipeline(b)
	f := NewFramer(Limits{})
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		p := buf
		for len(p) > 0 {
			n, req, err := f.Next(p)
			if err != nil {
				b.Fatal(err)
			}
			if req != nil && !req.Is("SET") {
				b.Fatal("wrong name")
			}
			p = p[n:]
		}
	}
}

// FuzzFramer: no panic; the same stream split anywhere frames the same; every
// request framed is read identically by the Reader; the pre-auth mode only
// ever stops earlier.
func FuzzFramer(f *testing.F) {
	for _, glob := range []string{"requests-*.bin", "commands-*.bin"} {
		files, _ := filepath.Glob(filepath.Join("testdata", glob))
		if len(files) == 0 {
			f.Fatalf("no seed files testdata/%s", glob)
		}
		for i, p := range files {
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, uint64(i))
		}
	}
	f.Add([]byte("*-5\r\nSET \"a\\x41\" 'b'\r\n*0\r\n"), uint64(7))
	limits := Limits{MaxBulk: 1 << 16, MaxElems: 1 << 10}
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		if len(data) > maxFuzzInput {
			data = data[:maxFuzzInput] // a prefix of a long capture is seed enough
		}
		whole, werr, wat := frameChunks(NewFramer(limits), [][]byte{data})
		split, serr, sat := frameChunks(NewFramer(limits), splitAt(data, randomCuts(len(data), seed)))
		if !equalFramed(whole, split) || werr != serr || wat != sat {
			t.Fatalf("whole: %v %v@%d\nsplit: %v %v@%d", whole, werr, wat, split, serr, sat)
		}
		checkRequestsAgainstReader(t, data, whole, limits)

		pa := NewFramer(limits)
		pa.SetPreAuth(true)
		pre, _, _ := frameChunks(pa, [][]byte{data})
		if len(pre) > len(whole) || !equalFramed(pre, whole[:len(pre)]) {
			t.Fatalf("pre-auth framing differs: %v vs %v", pre, whole)
		}
		for _, rq := range pre {
			if !rq.Inline && rq.Argc > PreAuthMaxElems {
				t.Fatalf("pre-auth accepted %d arguments", rq.Argc)
			}
			for _, l := range rq.Lens {
				if !rq.Inline && l > PreAuthMaxBulk {
					t.Fatalf("pre-auth accepted a %d-byte argument", l)
				}
			}
		}
	})
}

// maxFuzzInput keeps each fuzz execution short: long inputs make the
// mutator slow without finding more.
const maxFuzzInput = 4 << 10

func equalFramed(a, b []framed) bool {
	return reflect.DeepEqual(a, b) || (len(a) == 0 && len(b) == 0)
}

// TestFramerKeepsNoBuffer: the caller may reuse a buffer once Next returned
// without a request; the arguments captured from it survive.
func TestFramerKeepsNoBuffer(t *testing.T) {
	f := NewFramer(Limits{})
	buf := []byte("*3\r\n$6\r\nCLIENT\r\n$5\r\nRE")
	n, req, err := f.Next(buf)
	require.NoError(t, err)
	require.Nil(t, req)
	require.Equal(t, len(buf), n)
	for i := range buf {
		buf[i] = 'X'
	}
	buf = append(buf[:0], "PLY\r\n$3\r\nOFF\r\n"...)
	_, req, err = f.Next(buf)
	require.NoError(t, err)
	require.NotNil(t, req)
	assert.True(t, req.Is("client") && req.ArgIs(1, "reply") && req.ArgIs(2, "off"))
	assert.Equal(t, int64(len("*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n")), req.Size)
}
