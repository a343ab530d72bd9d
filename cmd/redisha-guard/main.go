// Command redisha-guard decides, before redis-server starts on a node, how it
// must start: as the master, as a replica of the master of the sentinels'
// latest configuration, or (after asking the sentinels to fail over to a
// replica that is ahead of this node's persisted data) as that replica's
// replica. It runs as the redis unit's ExecStartPre, writes its decision as
// redis-server arguments or a config fragment, logs one line saying what it
// decided and why, and exits 0 so that redis-server starts right after; it
// never delays a start by more than its bound. See docs/guard.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redisha/redisha/components/daemonkit"
	"github.com/redisha/redisha/components/guard/config"
	"github.com/redisha/redisha/components/guard/core"
	"github.com/redisha/redisha/components/guard/driver"
	"github.com/redisha/redisha/components/guard/probe"
	"github.com/redisha/redisha/components/guard/rdb"
)

// version is set by the build (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command line: `redisha-guard run [--config FILE] [flags]`, and
// check-config and version, through components/daemonkit.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	d := &daemonkit.Daemon[config.Config]{
		Name:     "redisha-guard",
		Short:    "decide how redis-server starts on this node (ExecStartPre), so that a fast restart never wipes a replica",
		Version:  version,
		CheckOK:  "config ok",
		Load:     config.Load,
		Validate: func(c *config.Config) error { return c.Validate() },
		Flags:    config.Flags(),
		LogSettings: func(c *config.Config) (string, string) {
			return c.LogLevel, c.LogFormat
		},
		Run: func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
			return guard(ctx, cfg, log, stdout)
		},
	}
	return d.Execute(ctx, args, stdout, stderr)
}

// guard decides, writes the decision and logs it. An error (interrupted
// before deciding, or the decision could not be written) exits 1, so the
// unit does not start redis-server on a guess.
func guard(ctx context.Context, cfg *config.Config, log *slog.Logger, stdout io.Writer) error {
	opts := cfg.Options()
	opts.Log = log
	clk := probe.Clock{}
	start := clk.Now()
	p, err := persisted(cfg)
	if err != nil {
		// A data file that cannot be read: redis will not load it either.
		// Decide as if the node were empty, which protects the replicas.
		log.Warn("cannot read this node's data file; treating it as empty", "err", err)
		p = core.Persisted{Source: "none"}
	}
	c, err := core.New(cfg.Core(), start, p)
	if err != nil {
		return err
	}
	d, err := driver.Run(ctx, c, opts, probe.Transport{Timeout: cfg.ProbeTimeout}, clk)
	if err != nil {
		return fmt.Errorf("interrupted before deciding; redis-server must not start: %w", err)
	}
	if d.Role == core.Replica && ownAddress(d.Master, cfg.Self) {
		// The sentinels name this very node under another spelling than
		// self: following them would make redis replicate itself. A wrong
		// self also voids the other rules, so start as configured and say so.
		log.Error("the sentinels name this node's own address as master, under another spelling than self; fix self",
			"sentinels_say", d.Master, "self", cfg.Self)
		d = core.Decision{Role: core.KeepConfig, Epoch: -1, Elapsed: d.Elapsed,
			Reason: fmt.Sprintf("the sentinels' master %s is this node (self is configured as %s): misconfigured self, starting as configured", d.Master, cfg.Self)}
	}
	if err := write(cfg, d, stdout); err != nil {
		return fmt.Errorf("cannot write the decision: %w", err)
	}
	attrs := []any{"role", d.Role.String(), "elapsed", d.Elapsed.Round(time.Millisecond)}
	if d.Role == core.Replica {
		attrs = append(attrs, "master", d.Master)
	}
	if d.Epoch >= 0 {
		attrs = append(attrs, "config_epoch", d.Epoch)
	}
	attrs = append(attrs, "failover_asked", d.FailoverAsked, "args", strings.Join(redisArgs(d), " "), "reason", d.Reason)
	if d.BoundReached {
		log.Warn("redisha-guard decided at its bound", attrs...)
	} else {
		log.Info("redisha-guard decided", attrs...)
	}
	return nil
}

// persisted says what redis will load at start: with appendonly yes the AOF
// (redis 7's loadDataFromDisk then ignores the RDB), otherwise the RDB.
func persisted(cfg *config.Config) (core.Persisted, error) {
	if cfg.AppendOnly {
		matches, _ := filepath.Glob(filepath.Join(cfg.AOFDir, "*.manifest"))
		if len(matches) == 0 {
			return core.Persisted{Source: "none"}, nil
		}
		return core.Persisted{Source: "aof"}, nil
	}
	h, err := rdb.ReadFile(cfg.RDB)
	if errors.Is(err, fs.ErrNotExist) {
		return core.Persisted{Source: "none"}, nil
	}
	if err != nil {
		return core.Persisted{}, err
	}
	return core.Persisted{Source: "rdb", HasPosition: h.HasReplication, ReplID: h.ReplID, Offset: h.ReplOffset}, nil
}

// ownAddress reports whether addr is this host's own address with self's
// port: a loopback address or one of the host's interface addresses.
// Hostnames are not resolved (the sentinels report addresses).
func ownAddress(addr, self string) bool {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if _, sp, err := net.SplitHostPort(self); err != nil || sp != p {
		return false
	}
	ip := net.ParseIP(h)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// redisArgs are the redis-server command-line options for a decision.
// Command-line options are applied after the config file, so they override a
// replicaof line that sentinel's CONFIG REWRITE left there.
func redisArgs(d core.Decision) []string {
	switch d.Role {
	case core.Master:
		return []string{"--replicaof", "no", "one"}
	case core.Replica:
		h, p, _ := net.SplitHostPort(d.Master)
		return []string{"--replicaof", h, p}
	}
	return nil
}

func write(cfg *config.Config, d core.Decision, stdout io.Writer) error {
	args := redisArgs(d)
	head := fmt.Sprintf("# redisha-guard %s: %s: %s\n", time.Now().UTC().Format(time.RFC3339), d.Role, oneLine(d.Reason))
	if cfg.WriteEnv != "" {
		if err := atomicWrite(cfg.WriteEnv, head+"REDISHA_GUARD_ARGS="+strings.Join(args, " ")+"\n"); err != nil {
			return err
		}
	}
	if cfg.WriteInclude != "" {
		body := head
		if len(args) > 0 {
			body += strings.TrimPrefix(strings.Join(args, " "), "--") + "\n"
		}
		if err := atomicWrite(cfg.WriteInclude, body); err != nil {
			return err
		}
	}
	if cfg.Print {
		if _, err := fmt.Fprintln(stdout, strings.Join(args, " ")); err != nil {
			return err
		}
	}
	return nil
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

// atomicWrite replaces path in one rename, so redis never reads half a file.
func atomicWrite(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
