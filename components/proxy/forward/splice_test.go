package forward

import (
	"bytes"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
)

// TestForwardUsesSplice runs a forwarding under strace and requires splice(2)
// to carry the payload: a wrapped conn would silently fall back to read/write.
func TestForwardUsesSplice(t *testing.T) {
	if os.Getenv("PROXY_SPLICE_CHILD") == "1" {
		spliceChild(t)
		return
	}
	testenv.RequireBinary(t, "strace")
	out := filepath.Join(t.TempDir(), "strace")
	cmd := exec.Command("strace", "-f", "-qq", "-e", "trace=splice", "-o", out,
		os.Args[0], "-test.run=^TestForwardUsesSplice$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PROXY_SPLICE_CHILD=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, b)
	}
	trace, _ := os.ReadFile(out)
	moved := 0
	for _, m := range regexp.MustCompile(`splice\(.*\) = (\d+)`).FindAllSubmatch(trace, -1) {
		if string(m[1]) != "0" {
			moved++
		}
	}
	if moved == 0 {
		t.Fatalf("no splice(2) call moved data:\n%.2000s", trace)
	}
	t.Logf("%d splice calls moved data", moved)
}

func spliceChild(t *testing.T) {
	user := forwardToEcho(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	go func() { user.Write(payload); user.CloseWrite() }()
	got, _ := io.ReadAll(user)
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo through forward returned %d bytes, want %d", len(got), len(payload))
	}
}

// Many small writes with pauses in between (request/response sized) all
// arrive, in order, through Forward.
func TestForwardManySmallMessages(t *testing.T) {
	user := forwardToEcho(t)
	defer user.Close()
	rng := rand.New(rand.NewSource(1))
	var sent bytes.Buffer
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 0; i < 3000; i++ {
			msg := make([]byte, 1+rng.Intn(200))
			rng.Read(msg)
			sent.Write(msg)
			user.Write(msg)
			if i%100 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		user.CloseWrite()
	}()
	user.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(user)
	<-wrote
	if err != nil || !bytes.Equal(got, sent.Bytes()) {
		t.Fatalf("echoed %d bytes (err %v), sent %d", len(got), err, sent.Len())
	}
}

// forwardToEcho runs Forward between a client connection, which it returns,
// and an echo backend on loopback: client <-> proxy pair <-> echo.
func forwardToEcho(t *testing.T) *net.TCPConn {
	t.Helper()
	pair := func() (*net.TCPConn, *net.TCPConn) {
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
	user, proxyClientSide := pair()
	proxyBackendSide, backend := pair()
	// The echo hides its conn types so that only Forward can splice.
	go func() { io.Copy(struct{ io.Writer }{backend}, struct{ io.Reader }{backend}); backend.CloseWrite() }()
	go Forward(proxyClientSide, proxyBackendSide)
	return user
}
