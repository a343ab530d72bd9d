// Package daemon is the redisha-vip process around components/vip/driver:
// a raw protocol-112 socket for adverts, netlink for the virtual addresses,
// gratuitous ARP, tracked checks, notify hooks, a local HTTP endpoint for
// status and Prometheus metrics, and the one loop goroutine that feeds the
// driver and sleeps until driver.Next().
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redisha/redisha/components/vip/config"
	"github.com/redisha/redisha/components/vip/core"
	"github.com/redisha/redisha/components/vip/driver"
	"github.com/redisha/redisha/components/vip/vrrp"
)

// Status is what GET /status returns.
type Status struct {
	Name                string             `json:"name"`
	State               string             `json:"state"`
	Interface           string             `json:"interface"`
	VRID                int                `json:"vrid"`
	Version             int                `json:"version"`
	Priority            int                `json:"priority"`
	ConfiguredPriority  int                `json:"configured_priority"`
	AdvertIntervalCS    int                `json:"advert_interval_cs"`
	MasterAdverInterval int                `json:"master_adver_interval_cs"`
	Primary             string             `json:"primary_address"`
	Master              string             `json:"master_address,omitempty"`
	MasterPriority      int                `json:"master_priority,omitempty"`
	VIPs                []string           `json:"virtual_addresses"`
	VIPsPresent         []string           `json:"virtual_addresses_present"`
	Since               time.Time          `json:"since"`
	Transitions         int                `json:"transitions"`
	AdvertsSent         uint64             `json:"adverts_sent"`
	AdvertsReceived     uint64             `json:"adverts_received"`
	BadPackets          map[string]uint64  `json:"bad_packets"`
	Tracks              []core.TrackStatus `json:"tracks,omitempty"`
}

var allStates = []core.State{core.Initialize, core.Backup, core.Master, core.Fault}

type metrics struct {
	reg         *prometheus.Registry
	state       *prometheus.GaugeVec
	priority    prometheus.Gauge
	transitions *prometheus.CounterVec
	sent        prometheus.Counter
	received    prometheus.Counter
	bad         *prometheus.CounterVec
	garps       prometheus.Counter
	checks      *prometheus.CounterVec
	// last is the driver's counters as last exported, to add the deltas.
	last     driver.Stats
	lastGARP uint64
}

func newMetrics(name string) *metrics {
	l := prometheus.Labels{"instance_name": name}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "redisha_vip_state", ConstLabels: l,
			Help: "1 for the current VRRP state, 0 for the others."}, []string{"state"}),
		priority: prometheus.NewGauge(prometheus.GaugeOpts{Name: "redisha_vip_priority", ConstLabels: l,
			Help: "Effective VRRP priority (configured plus tracking weights)."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redisha_vip_transitions_total", ConstLabels: l,
			Help: "State transitions by new state."}, []string{"to"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "redisha_vip_adverts_sent_total", ConstLabels: l,
			Help: "VRRP advertisements sent."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "redisha_vip_adverts_received_total", ConstLabels: l,
			Help: "Valid VRRP advertisements received for this virtual router."}),
		bad: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redisha_vip_bad_packets_total", ConstLabels: l,
			Help: "Received packets dropped, by reason."}, []string{"reason"}),
		garps: prometheus.NewCounter(prometheus.CounterOpts{Name: "redisha_vip_garp_sent_total", ConstLabels: l,
			Help: "Gratuitous ARP packets sent."}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redisha_vip_check_results_total", ConstLabels: l,
			Help: "Tracked check results."}, []string{"track", "result"}),
	}
	m.reg.MustRegister(m.state, m.priority, m.transitions, m.sent, m.received, m.bad, m.garps, m.checks)
	for _, s := range allStates {
		m.state.WithLabelValues(s.String())
		m.transitions.WithLabelValues(s.String())
	}
	for _, r := range vrrp.AllReasons {
		m.bad.WithLabelValues(string(r))
	}
	return m
}

// export brings the Prometheus metrics up to the driver's counters.
func (m *metrics) export(d *driver.Driver, garps uint64) {
	s := d.Stats()
	m.sent.Add(float64(s.AdvertsSent - m.last.AdvertsSent))
	m.received.Add(float64(s.AdvertsReceived - m.last.AdvertsReceived))
	for r, n := range s.Bad {
		m.bad.WithLabelValues(string(r)).Add(float64(n - m.last.Bad[r]))
	}
	for st, n := range s.Transitions {
		m.transitions.WithLabelValues(st.String()).Add(float64(n - m.last.Transitions[st]))
	}
	for name, n := range s.Checks {
		m.checks.WithLabelValues(name, "ok").Add(float64(n[0] - m.last.Checks[name][0]))
		m.checks.WithLabelValues(name, "fail").Add(float64(n[1] - m.last.Checks[name][1]))
	}
	m.garps.Add(float64(garps - m.lastGARP))
	m.last, m.lastGARP = s, garps
	for _, st := range allStates {
		v := 0.0
		if st == d.State() {
			v = 1
		}
		m.state.WithLabelValues(st.String()).Set(v)
	}
	m.priority.Set(float64(d.Core().Priority()))
}

// Daemon is one running redisha-vip instance.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	vips    []config.VIP
	primary netip.Addr
	addrs   *addrManager
	conn    *vrrpConn
	drv     *driver.Driver
	met     *metrics
	// garpSent counts GARP packets; bursts run in their own goroutines.
	garpSent    atomic.Uint64
	notifyGroup sync.WaitGroup
	// statusReq carries /status requests to the loop goroutine, which answers
	// between two events: a snapshot taken while an event is half applied
	// (VIPs already removed, the state not yet read) would be torn.
	statusReq chan chan Status
}

// New prepares a daemon: it resolves the interface and source address and
// opens the VRRP socket. Stale VIPs a crash may have left are removed when
// Run starts the driver.
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	vips, _ := cfg.VIPs()
	d := &Daemon{cfg: cfg, log: log, vips: vips, met: newMetrics(cfg.Name), statusReq: make(chan chan Status)}
	d.addrs = &addrManager{ifname: cfg.Interface, vips: vips, log: log}
	if d.primary, err = primaryAddr(ifi, cfg.SourceAddress, vips); err != nil {
		return nil, err
	}
	mc, err := cfg.Core(d.primary)
	if err != nil {
		return nil, err
	}
	dc := driver.Config{Core: mc, Auth: cfg.Authentication.Auth()}
	dc.Checksum, _ = vrrp.ParseChecksumForm(cfg.Checksum)
	for _, v := range vips {
		dc.VIPs = append(dc.VIPs, v.Addr)
	}
	for _, p := range cfg.UnicastPeers {
		dc.Peers = append(dc.Peers, netip.MustParseAddr(p))
	}
	if d.drv, err = driver.New(dc, time.Now(), d, d, log); err != nil {
		return nil, err
	}
	if d.conn, err = openVRRP(context.Background(), ifi, d.primary, dc.Peers); err != nil {
		return nil, err
	}
	return d, nil
}

// primaryAddr returns the configured source address (which must be on the
// interface) or the interface's first IPv4 address that is not a VIP.
func primaryAddr(ifi *net.Interface, want string, vips []config.VIP) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	isVIP := map[netip.Addr]bool{}
	for _, v := range vips {
		isVIP[v.Addr] = true
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP.To4())
		if !ok || isVIP[ip] {
			continue
		}
		if want == "" || ip.String() == want {
			return ip, nil
		}
	}
	if want != "" {
		return netip.Addr{}, fmt.Errorf("source_address %s is not on %s", want, ifi.Name)
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no IPv4 address to send adverts from", ifi.Name)
}

// Handler serves /status (JSON) and /metrics, both read through the loop.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		s, ok := d.snapshot(r.Context())
		if !ok {
			http.Error(w, "not running", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s)
	})
	metrics := promhttp.HandlerFor(d.met.reg, promhttp.HandlerOpts{})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		// The snapshot brings the metrics up to date in the loop.
		if _, ok := d.snapshot(r.Context()); !ok {
			http.Error(w, "not running", http.StatusServiceUnavailable)
			return
		}
		metrics.ServeHTTP(w, r)
	})
	return mux
}

// snapshot asks the loop goroutine for the status.
func (d *Daemon) snapshot(ctx context.Context) (Status, bool) {
	reply := make(chan Status, 1)
	select {
	case d.statusReq <- reply:
		return <-reply, true
	case <-ctx.Done():
		return Status{}, false
	}
}

// status builds the status; only the loop goroutine calls it.
func (d *Daemon) status() Status {
	c, st := d.drv.Core(), d.drv.Stats()
	s := Status{Name: d.cfg.Name, Interface: d.cfg.Interface, VRID: d.cfg.VRID, Version: d.cfg.Version,
		ConfiguredPriority: d.cfg.Priority, AdvertIntervalCS: int(d.cfg.Interval()), Primary: d.primary.String(),
		State: c.State().String(), Priority: int(c.Priority()), MasterAdverInterval: int(c.MasterAdverInterval()),
		Since: st.Since, Transitions: st.TransitionsTotal(),
		AdvertsSent: st.AdvertsSent, AdvertsReceived: st.AdvertsReceived, BadPackets: map[string]uint64{},
		Tracks: c.Tracks()}
	for _, v := range d.vips {
		s.VIPs = append(s.VIPs, v.String())
	}
	if a, p := c.Master(); a.IsValid() {
		s.Master, s.MasterPriority = a.String(), int(p)
	}
	present, _ := d.addrs.present()
	for _, a := range present {
		s.VIPsPresent = append(s.VIPsPresent, a.String())
	}
	for k, v := range st.Bad {
		s.BadPackets[string(k)] = v
	}
	return s
}

type event struct {
	pkt   *driver.Packet
	check *checkResult
}

// Run runs the daemon until ctx is cancelled, then leaves the group
// gracefully (priority 0 advert, VIPs removed).
func (d *Daemon) Run(ctx context.Context) error {
	defer d.conn.close()
	if d.cfg.Status.Listen != "off" {
		ln, err := net.Listen("tcp", d.cfg.Status.Listen)
		if err != nil {
			return fmt.Errorf("status listener: %w", err)
		}
		srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
	}
	events := make(chan event, 64)
	checks := make(chan checkResult)
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	for _, t := range d.cfg.Track {
		if t.Watch != "" {
			go watchLoop(bg, t, checks)
		} else {
			go trackLoop(bg, t, checks)
		}
	}
	go func() {
		for {
			select {
			case c := <-checks:
				select {
				case events <- event{check: &c}:
				case <-bg.Done():
					return
				}
			case <-bg.Done():
				return
			}
		}
	}()
	readErr := make(chan error, 1)
	go func() {
		for {
			buf := make([]byte, 1500)
			r, err := d.conn.read(buf)
			if err != nil {
				readErr <- err
				return
			}
			select {
			case events <- event{pkt: &r}:
			case <-bg.Done():
				return
			}
		}
	}()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// rearm sets the timer to the driver's next deadline after each event.
	var armed time.Time
	rearm := func() {
		d.met.export(d.drv, d.garpSent.Load())
		next := d.drv.Next()
		if next.Equal(armed) {
			return
		}
		armed = next
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
	}
	vips := make([]string, 0, len(d.vips))
	for _, v := range d.vips {
		vips = append(vips, v.String())
	}
	d.log.Info("starting", "name", d.cfg.Name, "interface", d.cfg.Interface, "vrid", d.cfg.VRID,
		"version", d.cfg.Version, "priority", d.cfg.Priority, "advert_interval", d.cfg.AdvertInterval.D(),
		"primary", d.primary.String(), "vips", fmt.Sprint(vips))
	if err := d.drv.Start(time.Now()); err != nil {
		return err
	}
	rearm()
	for {
		select {
		case <-ctx.Done():
			d.drv.Shutdown(time.Now())
			d.notifyGroup.Wait()
			d.log.Info("stopped")
			return nil
		case err := <-readErr:
			d.drv.Shutdown(time.Now())
			return fmt.Errorf("reading adverts: %w", err)
		case <-timer.C:
			armed = time.Time{}
			d.drv.Wake(time.Now())
		case reply := <-d.statusReq:
			reply <- d.status()
		case ev := <-events:
			now := time.Now()
			if ev.pkt != nil {
				d.drv.HandlePacket(now, *ev.pkt)
			} else {
				c := ev.check
				if !c.ok {
					d.log.Debug("check failed", "track", c.name, "err", c.err)
				}
				d.drv.CheckResult(now, c.name, c.ok)
			}
		}
		rearm()
	}
}

// SendAdvert implements driver.Network.
func (d *Daemon) SendAdvert(dst netip.Addr, raw []byte) error { return d.conn.send(dst, raw) }

// AddVIPs implements driver.Network.
func (d *Daemon) AddVIPs() error { return d.addrs.add() }

// RemoveVIPs implements driver.Network.
func (d *Daemon) RemoveVIPs() ([]netip.Addr, error) { return d.addrs.remove() }

// SendGARP implements driver.Network: a burst of garp.count GARPs per
// address (garp.refresh_repeat for a refresh), garp.delay apart, sent in the
// background so the loop goes on.
func (d *Daemon) SendGARP(kind driver.GARPKind) {
	count, what := d.cfg.GARP.Count, "gratuitous ARP"
	if kind == driver.GARPRefresh {
		count, what = d.cfg.GARP.RefreshRepeat, "gratuitous ARP refresh"
	}
	go func() {
		n, err := garp(d.cfg.Interface, d.vips, count, d.cfg.GARP.Delay.D())
		d.garpSent.Add(uint64(n))
		if err != nil {
			d.log.Error(what, "err", err)
		}
	}()
}

// Advert implements driver.Hooks.
func (d *Daemon) Advert(time.Time, vrrp.Packet) {}

// PriorityChanged implements driver.Hooks.
func (d *Daemon) PriorityChanged(time.Time, uint8) {}

// StateChanged implements driver.Hooks: it runs the notify hooks for state
// to asynchronously, with a timeout; their environment carries
// REDISHA_VIP_NAME, _STATE and _PRIORITY.
func (d *Daemon) StateChanged(_ time.Time, _, to core.State, _ string, priority uint8) {
	var cmds [][]string
	switch to {
	case core.Master:
		cmds = append(cmds, d.cfg.Notify.Master)
	case core.Backup:
		cmds = append(cmds, d.cfg.Notify.Backup)
	case core.Fault:
		cmds = append(cmds, d.cfg.Notify.Fault)
	case core.Initialize:
		cmds = append(cmds, d.cfg.Notify.Stop)
	}
	prio := strconv.Itoa(int(priority))
	if len(d.cfg.Notify.Any) > 0 {
		cmds = append(cmds, append(append([]string{}, d.cfg.Notify.Any...), d.cfg.Name, to.String(), prio))
	}
	for _, argv := range cmds {
		if len(argv) == 0 {
			continue
		}
		d.notifyGroup.Add(1)
		go func() {
			defer d.notifyGroup.Done()
			ctx, cancel := context.WithTimeout(context.Background(), d.cfg.Notify.Timeout.D())
			defer cancel()
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), "REDISHA_VIP_NAME="+d.cfg.Name, "REDISHA_VIP_STATE="+to.String(),
				"REDISHA_VIP_PRIORITY="+prio)
			if out, err := cmd.CombinedOutput(); err != nil {
				d.log.Error("notify hook failed", "cmd", fmt.Sprint(argv), "err", err, "output", string(out))
			}
		}()
	}
}

// ErrNotRoot explains the capabilities redisha-vip needs.
var ErrNotRoot = errors.New("redisha-vip needs CAP_NET_RAW and CAP_NET_ADMIN (run as root or via the systemd unit)")
