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
	"os"
	"runtime"
	"sort"
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
		threads int // as applied at start
	)
	return &daemonkit.Daemon[config.Config]{
		Name:          "redisha-proxy",
		Short:         "Sentinel-aware Redis proxy that never routes to two masters",
		Version:       daemonkit.BuildVersion(),
		DefaultConfig: "", // it runs on flags alone
		BareRuns:      true,
		CheckOK:       "configuration ok",
		Load:          config.Load,
		Validate:      config.Finish,
		Flags:         flags(),
		LogSettings:   func(c *config.Config) (string, string) { return c.Log.Level, c.Log.Format },
		Run: func(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
			applyThreads(cfg.Threads, log)
			mu.Lock()
			threads = cfg.Threads
			mu.Unlock()
			p := daemon.New(cfg, log)
			p.Version = daemonkit.BuildVersion()
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
		Reload: func(cfg *config.Config, log *slog.Logger) error {
			mu.Lock()
			p := running
			mu.Unlock()
			if p == nil {
				return errors.New("not running yet")
			}
			if cfg.Threads != threads {
				log.Warn("threads changed: it applies at the next start", "running", threads, "configured", cfg.Threads)
			}
			return p.Reload(cfg)
		},
		Status: status,
	}
}

// applyThreads sets how many cores the Go runtime runs the proxy on
// (GOMAXPROCS), which is also how many event loops forward traffic: n, or
// one per CPU for 0; the GOMAXPROCS environment variable, when set, wins.
// It runs once, before the first loop starts.
func applyThreads(n int, log *slog.Logger) {
	if env := os.Getenv("GOMAXPROCS"); env != "" {
		log.Info("threads from the environment", "GOMAXPROCS", runtime.GOMAXPROCS(0))
		return
	}
	if n > 0 {
		runtime.GOMAXPROCS(n)
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
		str("durable-listen", "durable read-write listener address (always durability: replicated)", func(c *config.Config, v string) { c.DurableListen = v }),
		str("durability", "async or replicated: what an acknowledgement on the read-write listener means", func(c *config.Config, v string) { c.Durability = v }),
		str("admin", "admin HTTP address for /healthz, /livez, /status and /metrics", func(c *config.Config, v string) { c.Admin = v }),
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

// status prints the running proxy's /status, from --addr or the config's
// admin address (a wildcard listener is reached on loopback). It fails
// (exit status 1) when the proxy does not route new connections.
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
	resp, err := client.Get("http://" + addr + "/status")
	if err != nil {
		return fmt.Errorf("is redisha-proxy running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/status: %s", resp.Status)
	}
	var s daemon.StatusDoc
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("bad /status reply: %w", err)
	}
	if opts.JSON {
		if _, err = w.Write(body); err != nil {
			return err
		}
	} else {
		printStatus(w, s)
	}
	if s.Route.Master == "" || s.Draining {
		return errors.New("unavailable")
	}
	return nil
}

func printStatus(w io.Writer, s daemon.StatusDoc) {
	fmt.Fprintf(w, "redisha-proxy %s: %s", s.Version, s.Status)
	if s.Route.Master != "" {
		fmt.Fprintf(w, ", routing to %s", s.Route.Master)
	} else {
		fmt.Fprintf(w, ", not routing (hold %v): %s", s.Route.Hold, s.Route.Reason)
	}
	fmt.Fprintf(w, "\n  live %v; sentinel majority %v at config epoch %d; %d switches; %d connections; %d watchers; draining %v\n",
		s.Live, s.SentinelMajority, s.AgreedEpoch, s.Switches, s.Connections, s.Watchers, s.Draining)
	if s.Fenced != "" {
		fmt.Fprintf(w, "  fenced: %s\n", s.Fenced)
	}
	for _, b := range s.Backends {
		state := "ok"
		if !b.OK {
			state = "failing: " + b.Err
		} else if !b.Fresh {
			state = "stale"
		}
		routed := ""
		if b.Routed {
			routed = " (routed)"
		}
		fmt.Fprintf(w, "  backend  %-21s %-7s %s, checked %dms ago%s\n", b.Addr, b.Role, state, b.AgeMs, routed)
	}
	for _, v := range s.Sentinels {
		switch {
		case !v.Heard:
			fmt.Fprintf(w, "  sentinel %-21s not heard from yet\n", v.Addr)
		case !v.OK:
			fmt.Fprintf(w, "  sentinel %-21s failing: %s (%dms ago)\n", v.Addr, v.Err, v.AgeMs)
		default:
			fmt.Fprintf(w, "  sentinel %-21s names %s at epoch %d, %dms ago (fresh %v)\n", v.Addr, v.Master, v.Epoch, v.AgeMs, v.Fresh)
		}
	}
	keys := make([]string, 0, len(s.Listeners))
	for k := range s.Listeners {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  listener %-10s %s\n", k, s.Listeners[k])
	}
}
