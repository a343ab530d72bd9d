package daemon

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redisha/redisha/components/testenv"
	"github.com/redisha/redisha/components/witness/core"
)

var (
	fuzzOnce sync.Once
	fuzzSrv  *Server
	fuzzErr  error
)

// fuzzServer is one witness shared by all fuzz inputs; its master address is
// the one in the captured real-sentinel traffic (testdata), so the seeds
// reach the vote path.
func fuzzServer() (*Server, error) {
	fuzzOnce.Do(func() {
		dir, err := os.MkdirTemp("", "witness-fuzz")
		if err != nil {
			fuzzErr = err
			return
		}
		fuzzSrv, fuzzErr = Start(Options{
			Core: core.Config{Masters: []core.MasterConfig{{Name: "mymaster",
				Addr: core.Addr{IP: "127.0.0.1", Port: 16479}, Quorum: 2, DownAfter: time.Second}}},
			StatePath: filepath.Join(dir, "state.json"),
		})
	})
	return fuzzSrv, fuzzErr
}

// FuzzCommands sends arbitrary bytes as one client connection. The witness
// must answer or close, never hang or crash, and keep serving PING after.
// Seeds in testdata are real traffic: what redis-sentinel 7.0 sends a peer
// (CLIENT SETNAME, PING, PUBLISH hello, is-master-down-by-addr) and what
// go-redis, redis-cli and redis-py send a sentinel.
func FuzzCommands(f *testing.F) {
	f.Add("PING\r\n")
	f.Add("*2\r\n$4\r\nECHO\r\n$-1\r\n")
	f.Add("*1\r\n$999999999\r\n")
	f.Fuzz(func(t *testing.T, data string) {
		s, err := fuzzServer()
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", itoa(s.Port()))
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write([]byte(data))
			c.(*net.TCPConn).CloseWrite()
		}()
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("witness neither answered nor closed: %v", err)
		}
		if err := testenv.Ping(addr, 3*time.Second); err != nil {
			t.Fatalf("witness stopped serving after %q: %v", data, err)
		}
	})
}
