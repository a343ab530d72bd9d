// Command redisha-proxy is a sentinel-aware Redis proxy that never routes to
// two masters. See docs/proxy.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redisha/redisha/components/proxy/config"
	"github.com/redisha/redisha/components/proxy/daemon"
)

func main() {
	fs := flag.NewFlagSet("redisha-proxy", flag.ExitOnError)
	configPath := fs.String("config", "", "YAML configuration file (flags given explicitly override it)")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	listen := fs.String("listen", "", "read-write listener address")
	roListen := fs.String("read-only-listen", "", "read-only listener address (routed to healthy replicas)")
	admin := fs.String("admin", "", "admin HTTP address for /healthz and /metrics")
	masterName := fs.String("master-name", "", "sentinel master name")
	backends := fs.String("backends", "", "comma-separated redis backends ip:port")
	sentinels := fs.String("sentinels", "", "comma-separated sentinels ip:port")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	pprofOn := fs.Bool("admin-pprof", false, "serve /debug/pprof on the admin address")
	fs.Parse(os.Args[1:])

	load := func() (*config.Config, error) {
		cfg := config.DefaultConfig()
		if *configPath != "" {
			c, err := config.LoadConfig(*configPath)
			if err != nil {
				return nil, err
			}
			cfg = *c
		}
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "listen":
				cfg.Listen = *listen
			case "read-only-listen":
				cfg.ReadOnlyListen = *roListen
			case "admin":
				cfg.Admin = *admin
			case "master-name":
				cfg.MasterName = *masterName
			case "backends":
				cfg.Backends = splitList(*backends)
			case "sentinels":
				cfg.Sentinels = splitList(*sentinels)
			case "log-level":
				cfg.Log.Level = *logLevel
			case "admin-pprof":
				cfg.AdminPprof = *pprofOn
			}
		})
		cfg.Derive()
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return &cfg, nil
	}

	cfg, err := load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisha-proxy:", err)
		os.Exit(2)
	}
	if *check {
		fmt.Println("configuration ok")
		return
	}
	level := new(slog.LevelVar)
	level.UnmarshalText([]byte(cfg.Log.Level))
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if cfg.Log.Format == "text" {
		h = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(h)

	p := daemon.New(cfg, log)
	if err := p.Start(); err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	for s := range sig {
		if s == syscall.SIGHUP {
			ncfg, err := load()
			if err == nil {
				err = p.Reload(ncfg)
			}
			if err != nil {
				log.Error("reload rejected; keeping the running configuration", "err", err)
				continue
			}
			level.UnmarshalText([]byte(ncfg.Log.Level))
			continue
		}
		log.Info("signal: draining", "signal", s.String())
		p.Drain(context.Background())
		log.Info("stopped")
		return
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
