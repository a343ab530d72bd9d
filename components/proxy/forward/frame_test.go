package forward

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/testenv"
)

// TestFramingKeepsSpliceForLargeValues: with resp.Framer watching the
// client's requests (the durable mode's hook), every request is framed, the
// bytes arrive intact, and the large value's payload still goes through
// splice(2) (strace): framing does not cost the zero-copy path.
func TestFramingKeepsSpliceForLargeValues(t *testing.T) {
	if os.Getenv("PROXY_FRAMING_CHILD") == "1" {
		framingChild(t)
		return
	}
	testenv.RequireBinary(t, "strace")
	out := filepath.Join(t.TempDir(), "strace")
	cmd := exec.Command("strace", "-f", "-qq", "-e", "trace=splice", "-o", out,
		os.Args[0], "-test.run=^TestFramingKeepsSpliceForLargeValues$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "PROXY_FRAMING_CHILD=1")
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	t.Logf("child: %s", bytes.TrimSpace(b))
	trace, _ := os.ReadFile(out)
	var moved int64
	for _, m := range regexp.MustCompile(`splice\(.*\) = (\d+)`).FindAllSubmatch(trace, -1) {
		n, _ := strconv.ParseInt(string(m[1]), 10, 64)
		moved += n
	}
	// The backend answers 7 bytes, so what was spliced went up: in and out
	// of the pipe, most of the 4 MiB value.
	if moved < 2*3<<20 {
		t.Fatalf("splice(2) moved %d bytes, want most of the 4 MiB value twice:\n%.2000s", moved, trace)
	}
	t.Logf("splice moved %d bytes", moved)
}

func framingChild(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 4<<20)
	var stream bytes.Buffer
	const small = 200
	for i := 0; i < small; i++ {
		fmt.Fprintf(&stream, "*3\r\n$3\r\nSET\r\n$4\r\nk%03d\r\n$1\r\nx\r\n", i)
	}
	fmt.Fprintf(&stream, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n", len(value), value)
	stream.WriteString("PING\r\n")
	for i := 0; i < small; i++ {
		fmt.Fprintf(&stream, "*2\r\n$3\r\nGET\r\n$4\r\nk%03d\r\n", i)
	}
	var names = map[string]int{}
	fr := NewFraming(func(r *resp.Request) error { names[string(r.Name())]++; return nil })

	user, proxyClientSide := tcpPair(t)
	proxyBackendSide, backend := tcpPair(t)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(backend)
		backend.Write([]byte("+DONE\r\n"))
		backend.Close()
		got <- b
	}()
	f, err := Start(proxyClientSide, proxyBackendSide, Options{Up: fr})
	if err != nil {
		t.Fatal(err)
	}
	go func() { user.Write(stream.Bytes()); user.CloseWrite() }()
	reply, _ := bufio.NewReader(user).ReadString('\n')
	f.Wait()
	if b := <-got; !bytes.Equal(b, stream.Bytes()) {
		t.Fatalf("backend got %d bytes, want %d", len(b), stream.Len())
	}
	if reply != "+DONE\r\n" {
		t.Fatalf("reply %q", reply)
	}
	if fr.Requests != 2*small+2 || names["SET"] != small+1 || names["PING"] != 1 || names["GET"] != small {
		t.Fatalf("framed %d requests %v, want %d", fr.Requests, names, 2*small+2)
	}
	t.Logf("framed %d requests", fr.Requests)
}

func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}
