// Command redisha-vip holds virtual IP addresses with VRRP (v3, or v2 beside
// keepalived): `redisha-vip run -c /etc/redisha/vip.yaml`, `redisha-vip status`.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/redisha/redisha/components/vip/config"
	"github.com/redisha/redisha/components/vip/daemon"
)

func main() {
	if err := root().Execute(); err != nil {
		os.Exit(1)
	}
}

func root() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:           "redisha-vip",
		Short:         "VRRP virtual IP manager that interoperates with keepalived",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	cmd.PersistentFlags().StringVarP(&cfgPath, "config", "c", "/etc/redisha/vip.yaml", "configuration file")

	run := &cobra.Command{
		Use:   "run",
		Short: "run the VRRP instance until SIGTERM/SIGINT (then hand over with priority 0)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath)
			if err != nil {
				return err
			}
			log := newLogger(cfg.Log, os.Stderr)
			if os.Geteuid() != 0 {
				log.Warn(daemon.ErrNotRoot.Error())
			}
			d, err := daemon.New(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return d.Run(ctx)
		},
	}

	var addr string
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "print the state of the local instance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				addr = "127.0.0.1:9732"
				if cfg, err := config.Load(cfgPath); err == nil && cfg.Status.Listen != "off" {
					addr = cfg.Status.Listen
				}
			}
			// A wildcard listener is reached on loopback.
			if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return printStatus(cmd.OutOrStdout(), addr, asJSON)
		},
	}
	status.Flags().StringVar(&addr, "addr", "", "status endpoint host:port (default: from the config file)")
	status.Flags().BoolVar(&asJSON, "json", false, "print raw JSON")

	check := &cobra.Command{
		Use:   "check-config",
		Short: "validate the configuration file and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := config.Load(cfgPath); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration OK")
			return nil
		},
	}
	cmd.AddCommand(run, status, check)
	return cmd
}

func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(orDefault(c.Level, "info"))))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func printStatus(w io.Writer, addr string, asJSON bool) error {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + addr + "/status")
	if err != nil {
		return fmt.Errorf("is redisha-vip running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if asJSON {
		_, err = w.Write(body)
		return err
	}
	var s daemon.Status
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("bad status reply: %w", err)
	}
	fmt.Fprintf(w, "%s: %s (priority %d, configured %d) on %s, VRID %d, VRRPv%d, advert %d cs\n",
		s.Name, s.State, s.Priority, s.ConfiguredPriority, s.Interface, s.VRID, s.Version, s.AdvertIntervalCS)
	fmt.Fprintf(w, "  since %s, %d transitions; primary %s\n", s.Since.Format(time.RFC3339), s.Transitions, s.Primary)
	if s.Master != "" {
		fmt.Fprintf(w, "  master %s (priority %d, interval %d cs)\n", s.Master, s.MasterPriority, s.MasterAdverInterval)
	}
	fmt.Fprintf(w, "  VIPs %v, held here: %v\n", s.VIPs, s.VIPsPresent)
	fmt.Fprintf(w, "  adverts sent %d, received %d, bad packets %v\n", s.AdvertsSent, s.AdvertsReceived, s.BadPackets)
	for _, t := range s.Tracks {
		fmt.Fprintf(w, "  track %s: ok=%v weight=%d fault=%v\n", t.Name, t.OK, t.Weight, t.Fault)
	}
	return nil
}
