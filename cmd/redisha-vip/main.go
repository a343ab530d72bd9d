// Command redisha-vip holds virtual IP addresses with VRRP (v3, or v2 beside
// keepalived): `redisha-vip run -c /etc/redisha/vip.yaml`, `redisha-vip
// status`, `redisha-vip check-config -c FILE`, `redisha-vip version`. The
// command line is components/daemonkit's, shared by the three daemons.
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
	"time"

	"github.com/redisha/redisha/components/daemonkit"
	"github.com/redisha/redisha/components/vip/config"
	"github.com/redisha/redisha/components/vip/daemon"
)

func main() { vipDaemon().Main() }

func vipDaemon() *daemonkit.Daemon[config.Config] {
	return &daemonkit.Daemon[config.Config]{
		Name:          "redisha-vip",
		Short:         "VRRP virtual IP manager that interoperates with keepalived",
		Version:       daemonkit.BuildVersion(),
		DefaultConfig: "/etc/redisha/vip.yaml",
		BareRuns:      false, // with no arguments redisha-vip printed help, and still does
		CheckOK:       "configuration OK",
		Load:          config.Load,
		LogSettings:   func(c *config.Config) (string, string) { return c.Log.Level, c.Log.Format },
		Run:           run,
		Status:        status,
	}
}

// run runs the VRRP instance until ctx ends (SIGTERM/SIGINT), then hands
// over with priority 0.
func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		log.Warn(daemon.ErrNotRoot.Error())
	}
	d, err := daemon.New(cfg, log)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// status prints the local instance's state, asking --addr or the config's
// status.listen (a wildcard listener is reached on loopback).
func status(_ context.Context, cfg *config.Config, opts daemonkit.StatusOptions, w io.Writer) error {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:9732"
		if cfg != nil && cfg.Status.Listen != "off" {
			addr = cfg.Status.Listen
		}
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return printStatus(w, addr, opts.JSON)
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
