// Package testenv holds what the project's tests need from the machine: real
// daemons, root, Docker, network namespaces. Under `make test` a missing piece
// fails the test with the reason, because a silent skip would hide a broken CI;
// only `go test -short` skips, for quick local loops.
package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// missing fails the test, or skips it under -short.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: "+format, args...)
	}
	t.Fatalf(format+" (run `make deps`, or use go test -short to skip)", args...)
}

// RequireRoot needs uid 0: namespaces, raw sockets, nftables.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "this test needs root (network namespaces, raw sockets, firewall rules)")
	}
}

// RequireBinary needs each named program on PATH.
func RequireBinary(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing(t, "this test needs %s on PATH", n)
		}
	}
}

// RequireDocker needs a Docker engine that answers.
func RequireDocker(t testing.TB) {
	t.Helper()
	RequireBinary(t, "docker")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		missing(t, "this test needs a running Docker engine: %s", firstLine(out))
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr joins a host and port.
func Addr(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

func firstLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			return string(b[:i])
		}
	}
	return string(b)
}
