package daemon

import (
	"context"
	"fmt"
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
