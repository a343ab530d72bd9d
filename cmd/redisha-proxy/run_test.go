package main

import (
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// lockedLog is the binary's stderr; exec copies into it from its own
// goroutine while the test reads it.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// running is a proxy binary started by startProcess.
type running struct {
	cmd    *exec.Cmd
	logs   *lockedLog
	exited chan error
}

// startProcess starts bin with args, its stderr in logs, killed when the
// test ends (and when the test binary dies) and its logs shown if the test
// failed.
func startProcess(t *testing.T, bin string, args ...string) *running {
	t.Helper()
	p := &running{cmd: exec.Command(bin, args...), logs: &lockedLog{}, exited: make(chan error, 1)}
	p.cmd.Stderr = p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("proxy logs:\n%s", p.logs.String())
		}
	})
	return p
}

// startProxy starts bin with args (startProcess) and waits until its admin
// /healthz answers 200.
func startProxy(t *testing.T, admin, what, bin string, args ...string) *running {
	t.Helper()
	p := startProcess(t, bin, args...)
	waitFor(t, what, func() bool {
		r, err := http.Get("http://" + admin + "/healthz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	return p
}
