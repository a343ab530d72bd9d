// Command redisha-witness is a sentinel-protocol voter: it monitors Redis
// masters and votes in redis-sentinel failover elections as a full peer, but
// never runs a failover itself. See docs/core.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redisha/redisha/components/witness/config"
	"github.com/redisha/redisha/components/witness/daemon"
)

func main() {
	os.Exit(run())
}

func run() int {
	path := flag.String("config", "/etc/redisha/core.yaml", "config file (YAML)")
	check := flag.Bool("check", false, "validate the config file and exit")
	flag.Parse()
	f, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisha-witness:", err)
		return 2
	}
	if *check {
		fmt.Println("config ok")
		return 0
	}
	log := f.Logger(os.Stderr)
	opts, err := f.Options()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisha-witness:", err)
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	opts.Registry = reg
	opts.Logger = log
	srv, err := daemon.Start(opts)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	var hs *http.Server
	if f.MetricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs = &http.Server{Addr: f.MetricsListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener failed", "addr", f.MetricsListen, "err", err)
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	if hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = hs.Shutdown(ctx)
		cancel()
	}
	_ = srv.Close()
	return 0
}
