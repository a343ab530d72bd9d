// Command redisha-proxy is a sentinel-aware Redis proxy that never routes to
// two masters (docs/proxy.md): `redisha-proxy run --config FILE`,
// `check-config`, `status`, `version`. The command line is
// components/daemonkit's, shared by the three daemons; the old Go-flag forms
// (`-config F`, `-check-config`, `-listen A`, ...) still work, with one
// deprecation line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/redisha/redisha/components/daemonkit"
	"github.com/redisha/redisha/components/proxy/config"
	"github.com/redisha/redisha/components/proxy/daemon"
)

func main() { proxyDaemon().Main() }

func proxyDaemon() *daemonkit.Daemon[config.Config] {
	var (
		mu      sync.Mutex
		running *daemon.Proxy
	)
	return &daemonkit.Daemon[config.Config]{
		Name:          "redisha-proxy",
		Short:         "Sentinel-aware Redis proxy that never routes to two masters",
		Version:       version(),
		DefaultConfig: "", // it runs on flags alone
		BareRuns:      true,
		CheckOK:       "configuration ok",
		Load:          config.Load,
		Validate:      config.Finish,
		Flags:         flags(),
		LogSettings:   func(c *config.Config) (string, string) { return c.Log.Level, c.Log.Format },
		Run: func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
			p := daemon.New(cfg, log)
			if err := p.Start(); err != nil {
				return err
			}
			mu.Lock()
			running = p
			mu.Unlock()
			<-ctx.Done()
			log.Info("signal: draining")
			p.Drain(context.Background())
			log.Info("stopped")
			return nil
		},
		Reload: func(cfg *config.Config, _ *slog.Logger) error {
			mu.Lock()
			p := running
			mu.Unlock()
			if p == nil {
				return errors.New("not running yet")
			}
			return p.Reload(cfg)
		},
		Status: status,
	}
}

// flags are the command-line overrides of config keys; given explicitly,
// they win over the file, on every load (reloads included).
func flags() []daemonkit.Flag[config.Config] {
	str := func(name, usage string, set func(c *config.Config, v string)) daemonkit.Flag[config.Config] {
		return daemonkit.Flag[config.Config]{Name: name, Usage: usage,
			Apply: func(c *config.Config, v string) error { set(c, v); return nil }}
	}
	return []daemonkit.Flag[config.Config]{
		str("listen", "read-write listener address", func(c *config.Config, v string) { c.Listen = v }),
		str("read-only-listen", "read-only listener address (routed to healthy replicas)", func(c *config.Config, v string) { c.ReadOnlyListen = v }),
		str("admin", "admin HTTP address for /healthz and /metrics", func(c *config.Config, v string) { c.Admin = v }),
		str("master-name", "sentinel master name", func(c *config.Config, v string) { c.MasterName = v }),
		str("backends", "comma-separated redis backends ip:port", func(c *config.Config, v string) { c.Backends = splitList(v) }),
		str("sentinels", "comma-separated sentinels ip:port", func(c *config.Config, v string) { c.Sentinels = splitList(v) }),
		str("log-level", "debug, info, warn or error", func(c *config.Config, v string) { c.Log.Level = v }),
		{Name: "admin-pprof", Usage: "serve /debug/pprof on the admin address", Bool: true,
			Apply: func(c *config.Config, v string) error {
				c.AdminPprof = v == "" || v == "true" || v == "1"
				return nil
			}},
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// status prints the running proxy's /healthz, from --addr or the config's
// admin address (a wildcard listener is reached on loopback).
func status(_ context.Context, cfg *config.Config, opts daemonkit.StatusOptions, w io.Writer) error {
	addr := opts.Addr
	if addr == "" && cfg != nil {
		addr = cfg.Admin
	}
	if addr == "" {
		return errors.New("no admin address: give --addr or a config with admin")
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		return fmt.Errorf("is redisha-proxy running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if opts.JSON {
		_, err = w.Write(body)
		return err
	}
	var s struct {
		Status      string   `json:"status"`
		Master      string   `json:"master"`
		Reason      string   `json:"reason"`
		Draining    bool     `json:"draining"`
		Majority    bool     `json:"sentinel_majority"`
		Epoch       int64    `json:"config_epoch"`
		Connections int64    `json:"connections"`
		Replicas    []string `json:"replicas"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("bad /healthz reply: %w", err)
	}
	fmt.Fprintf(w, "redisha-proxy: %s", s.Status)
	if s.Master != "" {
		fmt.Fprintf(w, ", routing to %s", s.Master)
	} else {
		fmt.Fprintf(w, ", not routing: %s", s.Reason)
	}
	fmt.Fprintf(w, "\n  sentinel majority %v at config epoch %d; %d connections; replicas %v; draining %v\n",
		s.Majority, s.Epoch, s.Connections, s.Replicas, s.Draining)
	if s.Status != "ok" {
		return errors.New("unavailable")
	}
	return nil
}
