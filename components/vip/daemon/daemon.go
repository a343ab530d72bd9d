// Package driver runs the VRRP state machine of package vip against the real
// network: a raw protocol-112 socket for adverts, netlink for the virtual
// addresses, gratuitous ARP, tracked checks, notify hooks, and a local HTTP
// endpoint for status and Prometheus metrics.
package driver

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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redisha/redisha/components/vip"
	"github.com/redisha/redisha/components/vip/config"
	"github.com/redisha/redisha/components/vip/vrrp"
)

// Status is what GET /status returns.
type Status struct {
	Name                string            `json:"name"`
	State               string            `json:"state"`
	Interface           string            `json:"interface"`
	VRID                int               `json:"vrid"`
	Version             int               `json:"version"`
	Priority            int               `json:"priority"`
	ConfiguredPriority  int               `json:"configured_priority"`
	AdvertIntervalCS    int               `json:"advert_interval_cs"`
	MasterAdverInterval int               `json:"master_adver_interval_cs"`
	Primary             string            `json:"primary_address"`
	Master              string            `json:"master_address,omitempty"`
	MasterPriority      int               `json:"master_priority,omitempty"`
	VIPs                []string          `json:"virtual_addresses"`
	VIPsPresent         []string          `json:"virtual_addresses_present"`
	Since               time.Time         `json:"since"`
	Transitions         int               `json:"transitions"`
	AdvertsSent         uint64            `json:"adverts_sent"`
	AdvertsReceived     uint64            `json:"adverts_received"`
	BadPackets          map[string]uint64 `json:"bad_packets"`
	Tracks              []vip.TrackStatus `json:"tracks,omitempty"`
}

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
	for _, s := range []vip.State{vip.Initialize, vip.Backup, vip.Master, vip.Fault} {
		m.state.WithLabelValues(s.String())
		m.transitions.WithLabelValues(s.String())
	}
	for _, r := range vrrp.AllReasons {
		m.bad.WithLabelValues(string(r))
	}
	return m
}

// Daemon is one running redisha-vip instance.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	form    vrrp.ChecksumForm
	vips    []config.VIP
	addrs   *addrManager
	conn    *vrrpConn
	machine *vip.Machine
	met     *metrics

	mu          sync.Mutex // guards status
	status      Status
	badCounts   map[string]uint64
	timer       *time.Timer
	garpCancel  context.CancelFunc
	lastBadLog  map[vrrp.Reason]time.Time
	notifyGroup sync.WaitGroup
	// statusReq carries /status requests to the loop goroutine, which answers
	// between two events: a snapshot taken while apply is half done (VIPs
	// already removed, State not yet updated) would be torn.
	statusReq chan chan Status
}

// New prepares a daemon: it resolves the interface and source address and
// removes stale VIPs a crash may have left (the daemon is not master yet, so
// no configured VIP may be on the interface).
func New(cfg *config.Config, log *slog.Logger) (*Daemon, error) {
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", cfg.Interface, err)
	}
	vips, _ := cfg.VIPs()
	d := &Daemon{cfg: cfg, log: log, vips: vips, met: newMetrics(cfg.Name), badCounts: map[string]uint64{},
		lastBadLog: map[vrrp.Reason]time.Time{}, statusReq: make(chan chan Status)}
	d.form, _ = vrrp.ParseChecksumForm(cfg.Checksum)
	d.addrs = &addrManager{ifname: cfg.Interface, vips: vips, log: log}
	removed, err := d.addrs.remove()
	if err != nil {
		return nil, fmt.Errorf("remove stale VIPs: %w", err)
	}
	if len(removed) > 0 {
		log.Warn("removed stale virtual addresses left by an earlier run", "addresses", fmt.Sprint(removed))
	}
	primary, err := primaryAddr(ifi, cfg.SourceAddress, vips)
	if err != nil {
		return nil, err
	}
	mc, err := cfg.Machine(primary)
	if err != nil {
		return nil, err
	}
	if d.machine, err = vip.New(mc); err != nil {
		return nil, err
	}
	var peers []netip.Addr
	for _, p := range cfg.UnicastPeers {
		peers = append(peers, netip.MustParseAddr(p))
	}
	if d.conn, err = openVRRP(context.Background(), ifi, primary, peers); err != nil {
		return nil, err
	}
	d.status = Status{Name: cfg.Name, Interface: cfg.Interface, VRID: cfg.VRID, Version: cfg.Version,
		ConfiguredPriority: cfg.Priority, AdvertIntervalCS: int(cfg.Interval()), Primary: primary.String()}
	for _, v := range vips {
		d.status.VIPs = append(d.status.VIPs, v.String())
	}
	d.refreshStatus(time.Now())
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

// Handler serves /status (JSON) and /metrics.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		reply := make(chan Status, 1)
		select {
		case d.statusReq <- reply:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(<-reply)
	})
	mux.Handle("/metrics", promhttp.HandlerFor(d.met.reg, promhttp.HandlerOpts{}))
	return mux
}

type event struct {
	pkt   *received
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
		go trackLoop(bg, t, checks)
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

	d.timer = time.NewTimer(time.Hour)
	d.timer.Stop()
	d.log.Info("starting", "name", d.cfg.Name, "interface", d.cfg.Interface, "vrid", d.cfg.VRID,
		"version", d.cfg.Version, "priority", d.cfg.Priority, "advert_interval", d.cfg.AdvertInterval.D(),
		"primary", d.status.Primary, "vips", fmt.Sprint(d.status.VIPs))
	d.apply(time.Now(), d.machine.Start(time.Now()))
	for {
		select {
		case <-ctx.Done():
			now := time.Now()
			d.apply(now, d.machine.Shutdown(now))
			if d.garpCancel != nil {
				d.garpCancel()
			}
			d.notifyGroup.Wait()
			d.log.Info("stopped")
			return nil
		case err := <-readErr:
			now := time.Now()
			d.apply(now, d.machine.Shutdown(now))
			return fmt.Errorf("reading adverts: %w", err)
		case <-d.timer.C:
			now := time.Now()
			d.apply(now, d.machine.Timer(now))
		case reply := <-d.statusReq:
			d.refreshStatus(time.Now())
			d.mu.Lock()
			s := d.status
			s.VIPs = append([]string(nil), s.VIPs...)
			s.VIPsPresent = append([]string(nil), s.VIPsPresent...)
			d.mu.Unlock()
			reply <- s
		case ev := <-events:
			now := time.Now()
			if ev.pkt != nil {
				d.handlePacket(now, *ev.pkt)
			} else {
				c := ev.check
				res := "ok"
				if !c.ok {
					res = "fail"
					d.log.Debug("check failed", "track", c.name, "err", c.err)
				}
				d.met.checks.WithLabelValues(c.name, res).Inc()
				d.apply(now, d.machine.CheckResult(now, c.name, c.ok))
			}
		}
	}
}

func (d *Daemon) handlePacket(now time.Time, r received) {
	p, err := vrrp.Decode(r.payload, r.src, r.dst)
	p.TTL = r.ttl
	if err == nil {
		if r.ttl < 0 { // no TTL from the kernel: cannot check it
			p.TTL = vrrp.TTL
		}
		err = d.machine.Filter(!d.conn.mcast).Check(p)
	}
	if err != nil {
		reason := vrrp.ReasonOf(err)
		if reason == vrrp.ReasonVRID {
			// Other virtual routers share the segment: normal, count quietly.
			d.countBad(reason)
			return
		}
		d.countBad(reason)
		// Rate-limited like keepalived's log_rate_limited_error: one line per
		// reason per minute.
		if now.Sub(d.lastBadLog[reason]) > time.Minute {
			d.lastBadLog[reason] = now
			d.log.Warn("dropped bad VRRP packet", "reason", string(reason), "from", r.src, "err", err)
		}
		return
	}
	d.met.received.Inc()
	d.mu.Lock()
	d.status.AdvertsReceived++
	d.mu.Unlock()
	if len(p.Addresses) != len(d.vips) || !sameVIPs(p.Addresses, d.vips) {
		if now.Sub(d.lastBadLog["vip_list"]) > time.Minute {
			d.lastBadLog["vip_list"] = now
			d.log.Warn("advert lists other virtual addresses than ours", "from", p.Src, "theirs", fmt.Sprint(p.Addresses))
		}
	}
	d.apply(now, d.machine.Receive(now, p))
}

func sameVIPs(got []netip.Addr, want []config.VIP) bool {
	have := map[netip.Addr]bool{}
	for _, a := range got {
		have[a] = true
	}
	for _, v := range want {
		if !have[v.Addr] {
			return false
		}
	}
	return true
}

func (d *Daemon) countBad(r vrrp.Reason) {
	d.met.bad.WithLabelValues(string(r)).Inc()
	d.mu.Lock()
	d.badCounts[string(r)]++
	d.mu.Unlock()
}

func (d *Daemon) apply(now time.Time, actions []vip.Action) {
	for _, a := range actions {
		switch a.Kind {
		case vip.SendAdvert:
			d.sendAdvert(a.Priority)
		case vip.AddVIPs:
			if err := d.addrs.add(); err != nil {
				d.log.Error("adding virtual addresses", "err", err)
			}
		case vip.RemoveVIPs:
			if d.garpCancel != nil {
				d.garpCancel()
				d.garpCancel = nil
			}
			if _, err := d.addrs.remove(); err != nil {
				d.log.Error("removing virtual addresses", "err", err)
			}
		case vip.SendGARP:
			if a.Refresh {
				d.refreshGARP()
			} else {
				d.startGARP()
			}
		case vip.ArmTimer:
			d.timer.Reset(max(time.Until(a.At), 0))
		case vip.StopTimer:
			d.timer.Stop()
		case vip.PriorityChanged:
			d.log.Info("priority changed", "priority", a.Priority)
		case vip.StateChanged:
			d.log.Info("state change", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason,
				"priority", d.machine.Priority())
			d.met.transitions.WithLabelValues(a.To.String()).Inc()
			d.mu.Lock()
			d.status.Transitions++
			d.status.Since = now
			d.mu.Unlock()
			d.notify(a.To)
		}
	}
	d.refreshStatus(now)
}

func (d *Daemon) sendAdvert(prio uint8) {
	a := vrrp.Advert{Version: d.cfg.Version, VRID: uint8(d.cfg.VRID), Priority: prio, Interval: d.cfg.Interval()}
	for _, v := range d.vips {
		a.Addresses = append(a.Addresses, v.Addr)
	}
	if err := d.conn.send(a, d.form); err != nil {
		d.log.Error("sending advert", "err", err)
		return
	}
	d.met.sent.Inc()
	d.mu.Lock()
	d.status.AdvertsSent++
	d.mu.Unlock()
}

// startGARP sends a burst now and, if configured, another after Repeat; a
// later RemoveVIPs cancels what is pending.
func (d *Daemon) startGARP() {
	if d.garpCancel != nil {
		d.garpCancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.garpCancel = cancel
	burst := func() {
		n, err := garp(d.cfg.Interface, d.vips, d.cfg.GARP.Count, d.cfg.GARP.Delay.D())
		d.met.garps.Add(float64(n))
		if err != nil {
			d.log.Error("gratuitous ARP", "err", err)
		}
	}
	go func() {
		burst()
		if r := d.cfg.GARP.Repeat.D(); r > 0 {
			select {
			case <-time.After(r):
				burst()
			case <-ctx.Done():
			}
		}
	}()
}

// refreshGARP sends the periodic refresh: garp.refresh_repeat GARPs per
// address, leaving a pending repeat burst of startGARP in place.
func (d *Daemon) refreshGARP() {
	go func() {
		n, err := garp(d.cfg.Interface, d.vips, d.cfg.GARP.RefreshRepeat, d.cfg.GARP.Delay.D())
		d.met.garps.Add(float64(n))
		if err != nil {
			d.log.Error("gratuitous ARP refresh", "err", err)
		}
	}()
}

func (d *Daemon) refreshStatus(now time.Time) {
	present, _ := d.addrs.present()
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.status
	s.State = d.machine.State().String()
	s.Priority = int(d.machine.Priority())
	s.MasterAdverInterval = int(d.machine.MasterAdverInterval())
	if a, p := d.machine.Master(); a.IsValid() {
		s.Master, s.MasterPriority = a.String(), int(p)
	}
	s.VIPsPresent = s.VIPsPresent[:0]
	for _, a := range present {
		s.VIPsPresent = append(s.VIPsPresent, a.String())
	}
	s.BadPackets = map[string]uint64{}
	for k, v := range d.badCounts {
		s.BadPackets[k] = v
	}
	s.Tracks = d.machine.Tracks()
	if s.Since.IsZero() {
		s.Since = now
	}
	for _, st := range []vip.State{vip.Initialize, vip.Backup, vip.Master, vip.Fault} {
		v := 0.0
		if st == d.machine.State() {
			v = 1
		}
		d.met.state.WithLabelValues(st.String()).Set(v)
	}
	d.met.priority.Set(float64(d.machine.Priority()))
}

// notify runs the hooks for state s asynchronously, with a timeout; their
// environment carries REDISHA_VIP_NAME, _STATE and _PRIORITY.
func (d *Daemon) notify(s vip.State) {
	var cmds [][]string
	switch s {
	case vip.Master:
		cmds = append(cmds, d.cfg.Notify.Master)
	case vip.Backup:
		cmds = append(cmds, d.cfg.Notify.Backup)
	case vip.Fault:
		cmds = append(cmds, d.cfg.Notify.Fault)
	case vip.Initialize:
		cmds = append(cmds, d.cfg.Notify.Stop)
	}
	prio := strconv.Itoa(int(d.machine.Priority()))
	if len(d.cfg.Notify.Any) > 0 {
		cmds = append(cmds, append(append([]string{}, d.cfg.Notify.Any...), d.cfg.Name, s.String(), prio))
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
			cmd.Env = append(os.Environ(), "REDISHA_VIP_NAME="+d.cfg.Name, "REDISHA_VIP_STATE="+s.String(),
				"REDISHA_VIP_PRIORITY="+prio)
			if out, err := cmd.CombinedOutput(); err != nil {
				d.log.Error("notify hook failed", "cmd", fmt.Sprint(argv), "err", err, "output", string(out))
			}
		}()
	}
}

// ErrNotRoot explains the capabilities redisha-vip needs.
var ErrNotRoot = errors.New("redisha-vip needs CAP_NET_RAW and CAP_NET_ADMIN (run as root or via the systemd unit)")
