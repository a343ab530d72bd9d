// Command redisha-witness is a sentinel-protocol voter: it monitors Redis
// masters and votes in redis-sentinel failover elections as a full peer, but
// never runs a failover itself. See docs/witness.md.
//
//	redisha-witness run [--config /etc/redisha/witness.yaml]
//	redisha-witness check-config [--config FILE]
//	redisha-witness status [--config FILE] [--addr HOST:PORT] [--json]
//	redisha-witness version
//
// The command line is components/daemonkit's, shared by the three daemons;
// the old forms (-config FILE, -config FILE -check, no arguments) still
// work, with a deprecation line.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/redisha/redisha/components/daemonkit"
	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/config"
	"github.com/redisha/redisha/components/witness/daemon"
)

func main() {
	reexecOneProc()
	tuneRuntime()
	witnessDaemon().Main()
}

func witnessDaemon() *daemonkit.Daemon[config.File] {
	return &daemonkit.Daemon[config.File]{
		Name:          "redisha-witness",
		Short:         "sentinel-protocol quorum voter for Redis (votes like redis-sentinel, never fails over)",
		Version:       daemonkit.BuildVersion(),
		DefaultConfig: "/etc/redisha/witness.yaml",
		BareRuns:      true, // with no arguments redisha-witness ran with the default config, and still does
		CheckOK:       "config ok",
		Load:          config.Load,
		LogSettings:   func(f *config.File) (string, string) { return f.LogSettings() },
		Run:           run,
		Status:        status,
	}
}

// run runs the witness until ctx ends (SIGTERM/SIGINT).
func run(ctx context.Context, f *config.File, log *slog.Logger) error {
	opts, err := f.Options()
	if err != nil {
		return err
	}
	opts.Logger = log
	return daemon.Run(ctx, opts, f.MetricsListen)
}

// status asks the running witness over its own port (--addr, or the
// config's first bind and port) for INFO sentinel, or with --json for
// SENTINEL MASTERS as JSON objects.
func status(ctx context.Context, f *config.File, opts daemonkit.StatusOptions, w io.Writer) error {
	addr, pass := opts.Addr, ""
	if f != nil {
		pass = f.RequirePass
		if addr == "" {
			host := f.Bind[0]
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				host = "127.0.0.1"
			}
			addr = net.JoinHostPort(host, strconv.Itoa(f.Port))
		}
	}
	if addr == "" {
		addr = "127.0.0.1:26379"
	}
	c, err := resp.Dial(ctx, addr, resp.DialOptions{DialTimeout: 3 * time.Second, Timeout: 3 * time.Second, Password: pass})
	if err != nil {
		return fmt.Errorf("is redisha-witness running? %w", err)
	}
	defer c.Close()
	if !opts.JSON {
		v, err := c.Do(ctx, "INFO", "sentinel")
		if err != nil {
			return err
		}
		_, err = io.WriteString(w, v.Text())
		return err
	}
	v, err := c.Do(ctx, "SENTINEL", "MASTERS")
	if err != nil {
		return err
	}
	var out []map[string]string
	for _, e := range v.Elems {
		m, err := e.Pairs()
		if err != nil {
			return fmt.Errorf("bad SENTINEL MASTERS reply: %w", err)
		}
		out = append(out, m)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
