package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/redisha/redisha/components/vip/config"
)

// checkResult is one outcome of a tracked check.
type checkResult struct {
	name string
	ok   bool
	err  error
}

// runCheck performs one check of t.
func runCheck(ctx context.Context, t config.Track) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout.D())
	defer cancel()
	switch {
	case t.HTTP != "":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.HTTP, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("HTTP status %d", resp.StatusCode)
		}
		return nil
	case t.Process != "":
		if processRunning(t.Process) {
			return nil
		}
		return fmt.Errorf("no process named %q", t.Process)
	default:
		cmd := exec.CommandContext(ctx, t.Command[0], t.Command[1:]...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
}

// processRunning reports whether a process whose name (comm) or executable
// base name equals name exists.
func processRunning(name string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.TrimSpace(string(comm)) == name {
			return true
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && len(cmdline) > 0 {
			argv0, _, _ := strings.Cut(string(cmdline), "\x00")
			if argv0 == name || filepath.Base(argv0) == name {
				return true
			}
		}
	}
	return false
}

// trackLoop runs t every interval, the first time at once, until ctx ends.
func trackLoop(ctx context.Context, t config.Track, out chan<- checkResult) {
	tick := time.NewTicker(t.Interval.D())
	defer tick.Stop()
	for {
		err := runCheck(ctx, t)
		select {
		case out <- checkResult{name: t.Name, ok: err == nil, err: err}:
		case <-ctx.Done():
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// WatchStopping is the line a watched server writes to every watch
// connection when it begins a clean stop (docs/vip.md, "watch").
const WatchStopping = "stopping"

// watchLoop holds a connection to t.Watch. Connected is a passing result;
// the connection ending (the server's process died or closed it: FIN or
// RST), a "stopping" line, or a refused or timed-out connection attempt is
// a failing one, reported at once. After a failure it waits t.Interval
// before dialling again, so a dead server costs one connection attempt per
// interval.
func watchLoop(ctx context.Context, t config.Track, out chan<- checkResult) {
	network, addr, _ := t.WatchAddr() // validated with the config
	report := func(err error) bool {
		select {
		case out <- checkResult{name: t.Name, ok: err == nil, err: err}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	d := net.Dialer{Timeout: t.Timeout.D()}
	for {
		conn, err := d.DialContext(ctx, network, addr)
		if err == nil {
			if !report(nil) {
				conn.Close()
				return
			}
			err = watchConn(ctx, conn)
		}
		if ctx.Err() != nil || !report(err) {
			return
		}
		select {
		case <-time.After(t.Interval.D()):
		case <-ctx.Done():
			return
		}
	}
}

// watchConn reads conn until it ends or the server says it is stopping,
// and returns why the watch failed.
func watchConn(ctx context.Context, conn net.Conn) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReaderSize(conn, 256)
	for {
		line, err := r.ReadSlice('\n')
		if err == nil || errors.Is(err, bufio.ErrBufferFull) {
			if strings.TrimSpace(string(line)) == WatchStopping {
				return errors.New("the watched server is stopping")
			}
			continue // other lines are reserved: ignored
		}
		return fmt.Errorf("watch connection ended: %w", err)
	}
}
