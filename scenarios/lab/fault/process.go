package fault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// proc identifies one host process by PID and start time, so a signal is
// never sent to an unrelated process that reused the PID.
type proc struct {
	pid   int
	start string
}

func findProc(ctx context.Context, t Target, daemon string) (proc, error) {
	f, ok := t.(DaemonFinder)
	if !ok {
		return proc{}, fmt.Errorf("%s cannot find daemons (no DaemonFinder)", t.Name())
	}
	pid, err := f.DaemonPID(ctx, daemon)
	if err != nil {
		return proc{}, fmt.Errorf("%s: find %s: %w", t.Name(), daemon, err)
	}
	if pid <= 1 {
		return proc{}, fmt.Errorf("%s: refusing to signal pid %d for %s", t.Name(), pid, daemon)
	}
	start, err := procStart(pid)
	if err != nil {
		return proc{}, fmt.Errorf("%s: %s pid %d: %w", t.Name(), daemon, pid, err)
	}
	return proc{pid: pid, start: start}, nil
}

// procStart returns field 22 (starttime) of /proc/PID/stat.
func procStart(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(b)
	// The command name (field 2) may contain spaces; fields resume after ')'.
	k := strings.LastIndexByte(s, ')')
	if k < 0 {
		return "", errors.New("malformed /proc stat")
	}
	fields := strings.Fields(s[k+1:])
	if len(fields) < 20 {
		return "", errors.New("short /proc stat")
	}
	return fields[19], nil
}

func (p proc) signal(sig syscall.Signal) error {
	start, err := procStart(p.pid)
	if err != nil || start != p.start {
		return fmt.Errorf("pid %d is gone or was reused", p.pid)
	}
	return syscall.Kill(p.pid, sig)
}

func applyCrash(ctx context.Context, _ *Injector, _ int, s Spec, pool map[string]Target) (func(context.Context) (string, error), string, error) {
	t, err := node(pool, s)
	if err != nil {
		return nil, "", err
	}
	if s.Daemon == "" {
		k, ok := t.(Killer)
		if !ok {
			return nil, "", fmt.Errorf("%s cannot be killed (no Killer)", t.Name())
		}
		if err := k.Kill(ctx); err != nil {
			return nil, "", fmt.Errorf("%s: kill: %w", t.Name(), err)
		}
		return func(ctx context.Context) (string, error) {
			return "started " + t.Name(), k.Start(ctx)
		}, "SIGKILL " + t.Name(), nil
	}
	p, err := findProc(ctx, t, s.Daemon)
	if err != nil {
		return nil, "", err
	}
	if err := p.kill(ctx); err != nil {
		return nil, "", fmt.Errorf("%s: SIGKILL %s: %w", t.Name(), s.Daemon, err)
	}
	detail := fmt.Sprintf("SIGKILL %s pid %d on %s", s.Daemon, p.pid, t.Name())
	return func(ctx context.Context) (string, error) { return startDaemon(ctx, t, s.Daemon) }, detail, nil
}

// startDaemon brings a crashed daemon back: by the target's DaemonStarter,
// or by starting the node (which restarts a container whose main process
// the crash ended).
func startDaemon(ctx context.Context, t Target, daemon string) (string, error) {
	if ds, ok := t.(DaemonStarter); ok {
		return "started " + daemon + " on " + t.Name(), ds.StartDaemon(ctx, daemon)
	}
	if k, ok := t.(Killer); ok {
		return "started " + t.Name(), k.Start(ctx)
	}
	return "", fmt.Errorf("%s cannot start %s again (no DaemonStarter or Killer)", t.Name(), daemon)
}

// applyRestart restarts a node or one daemon in one step; its undo does
// nothing, as there is nothing left to revert.
func applyRestart(ctx context.Context, _ *Injector, _ int, s Spec, pool map[string]Target) (func(context.Context) (string, error), string, error) {
	t, err := node(pool, s)
	if err != nil {
		return nil, "", err
	}
	noop := func(context.Context) (string, error) { return "nothing to undo", nil }
	if s.Daemon != "" {
		p, err := findProc(ctx, t, s.Daemon)
		if err != nil {
			return nil, "", err
		}
		if err := p.kill(ctx); err != nil {
			return nil, "", fmt.Errorf("%s: SIGKILL %s: %w", t.Name(), s.Daemon, err)
		}
		d, err := startDaemon(ctx, t, s.Daemon)
		return noop, fmt.Sprintf("SIGKILL %s pid %d, %s", s.Daemon, p.pid, d), err
	}
	if r, ok := t.(Restarter); ok {
		return noop, "restarted " + t.Name(), r.Restart(ctx)
	}
	k, ok := t.(Killer)
	if !ok {
		return nil, "", fmt.Errorf("%s cannot be restarted (no Restarter or Killer)", t.Name())
	}
	if err := k.Kill(ctx); err != nil {
		return nil, "", fmt.Errorf("%s: kill: %w", t.Name(), err)
	}
	return noop, "killed and started " + t.Name(), k.Start(ctx)
}

func applyFreezeNode(ctx context.Context, _ *Injector, _ int, s Spec, pool map[string]Target) (func(context.Context) (string, error), string, error) {
	t, err := node(pool, s)
	if err != nil {
		return nil, "", err
	}
	p, ok := t.(Pauser)
	if !ok {
		return nil, "", fmt.Errorf("%s cannot be frozen (no Pauser)", t.Name())
	}
	if err := p.Pause(ctx); err != nil {
		return nil, "", fmt.Errorf("%s: pause: %w", t.Name(), err)
	}
	return func(ctx context.Context) (string, error) {
		return "thawed " + t.Name(), p.Unpause(ctx)
	}, "froze " + t.Name() + " (cgroup freezer)", nil
}

// applyFreezeProcess stops one daemon with SIGSTOP: its sockets stay open
// and the kernel keeps completing TCP handshakes into its backlog, but it
// answers nothing until SIGCONT.
func applyFreezeProcess(ctx context.Context, _ *Injector, _ int, s Spec, pool map[string]Target) (func(context.Context) (string, error), string, error) {
	t, err := node(pool, s)
	if err != nil {
		return nil, "", err
	}
	if s.Daemon == "" {
		return nil, "", errors.New("freeze-process needs a daemon")
	}
	p, err := findProc(ctx, t, s.Daemon)
	if err != nil {
		return nil, "", err
	}
	if err := p.signal(syscall.SIGSTOP); err != nil {
		return nil, "", fmt.Errorf("%s: SIGSTOP %s: %w", t.Name(), s.Daemon, err)
	}
	// Signals are delivered asynchronously: report the freeze only once the
	// process really stopped, so the event's time is the fault's time.
	if err := p.waitStopped(ctx, true); err != nil {
		_ = p.signal(syscall.SIGCONT)
		return nil, "", fmt.Errorf("%s: %s did not stop: %w", t.Name(), s.Daemon, err)
	}
	detail := fmt.Sprintf("SIGSTOP %s pid %d on %s", s.Daemon, p.pid, t.Name())
	return func(ctx context.Context) (string, error) {
		detail := fmt.Sprintf("SIGCONT %s pid %d", s.Daemon, p.pid)
		if err := p.signal(syscall.SIGCONT); err != nil {
			return detail, err
		}
		return detail, p.waitStopped(ctx, false)
	}, detail, nil
}

// kill sends SIGKILL and waits until the process is dead (a zombie or
// gone), so its ports are free when something starts it again.
func (p proc) kill(ctx context.Context) error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
		if err != nil {
			return nil // reaped
		}
		s := string(b)
		if k := strings.LastIndexByte(s, ')'); k >= 0 && k+2 < len(s) && (s[k+2] == 'Z' || s[k+2] == 'X') {
			return nil
		}
		if start, err := procStart(p.pid); err != nil || start != p.start {
			return nil // gone, pid reused
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still alive after SIGKILL", p.pid)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// waitStopped polls /proc until the process is (or is no longer) stopped.
func (p proc) waitStopped(ctx context.Context, stopped bool) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
		if err != nil {
			return err
		}
		s := string(b)
		k := strings.LastIndexByte(s, ')')
		if k < 0 || k+2 >= len(s) {
			return errors.New("malformed /proc stat")
		}
		state := s[k+2]
		if (state == 'T' || state == 't') == stopped {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still in state %c", p.pid, state)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
