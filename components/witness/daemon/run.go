package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Run starts the witness, serves /metrics on metricsListen ("" disables),
// and stops both when ctx ends. A start-up failure (corrupt state file,
// port in use, a metrics address that cannot be bound) is returned: an
// operator who configured metrics wants to know at start, not from a log
// line.
func Run(ctx context.Context, opts Options, metricsListen string) error {
	var mln net.Listener
	if metricsListen != "" {
		var err error
		if mln, err = net.Listen("tcp", metricsListen); err != nil {
			return fmt.Errorf("witness: metrics_listen: %w", err)
		}
	}
	// A registry, the Go and process collectors included, only when
	// something can scrape it: they keep their own buffers and descriptors.
	reg := opts.Registry
	if reg == nil && metricsListen != "" {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		opts.Registry = reg
	}
	srv, err := Start(opts)
	if err != nil {
		if mln != nil {
			mln.Close()
		}
		return err
	}
	var hs *http.Server
	if metricsListen != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs = &http.Server{Addr: metricsListen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				srv.log.Error("metrics listener failed", "addr", metricsListen, "err", err)
			}
		}()
	}
	<-ctx.Done()
	srv.log.Info("shutting down")
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = hs.Shutdown(sctx)
		cancel()
	}
	return srv.Close()
}
