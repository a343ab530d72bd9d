package daemon

import (
	"io"
	"net"
	"testing"
	"time"
)

// A client that writes and half-closes gets its replies and then EOF: the
// FIN travels through the proxy to redis, which then closes.
func TestHalfCloseForwarded(t *testing.T) {
	a := startRedis(t)
	p := startProxy(t, testConfig([]string{a.addr}, nil))
	waitRoute(t, p, a.addr)
	conn, err := net.DialTCP("tcp", nil, mustResolve(t, p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("SET hc 1\r\nGET hc\r\n"))
	conn.CloseWrite()
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil || string(got) != "+OK\r\n$1\r\n1\r\n" {
		t.Fatalf("got %q, %v; want both replies then EOF", got, err)
	}
}

func mustResolve(t *testing.T, addr string) *net.TCPAddr {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ta
}
