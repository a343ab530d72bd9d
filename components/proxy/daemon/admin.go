package daemon

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (p *Proxy) startAdmin(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", p.healthz)
	mux.HandleFunc("/livez", p.livez)
	mux.HandleFunc("/status", p.status)
	mux.Handle("/metrics", promhttp.HandlerFor(p.metrics.reg, promhttp.HandlerOpts{}))
	if p.cfg.Load().AdminPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	p.lnMu.Lock()
	p.admin, p.adminAddr = srv, ln.Addr().String()
	p.lnMu.Unlock()
	go srv.Serve(ln)
	return nil
}

func (p *Proxy) stopAdmin() {
	p.lnMu.Lock()
	srv := p.admin
	p.admin, p.adminAddr = nil, ""
	p.lnMu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(body)
}

// healthz is 200 while this proxy routes new read-write connections and is
// not draining, 503 otherwise: routing health. It turns 503 while the proxy
// holds traffic during a Redis failover, so it is not what a VIP manager
// should track (/livez, or the watch listener, is).
func (p *Proxy) healthz(w http.ResponseWriter, _ *http.Request) {
	s := p.Snapshot()
	body := struct {
		Status      string   `json:"status"`
		Master      string   `json:"master,omitempty"`
		Reason      string   `json:"reason,omitempty"`
		Draining    bool     `json:"draining"`
		SentinelMaj bool     `json:"sentinel_majority"`
		Epoch       int64    `json:"config_epoch"`
		Connections int64    `json:"connections"`
		Replicas    []string `json:"replicas"`
	}{Master: s.Route.Master, Reason: s.Route.Reason, Draining: p.draining.Load(), SentinelMaj: s.HaveMajority,
		Epoch: s.AgreedEpoch, Connections: p.active.Load(), Replicas: *p.replicas.Load()}
	code := http.StatusOK
	body.Status = "ok"
	if body.Draining || s.Route.Master == "" {
		code, body.Status = http.StatusServiceUnavailable, "unavailable"
	}
	sort.Strings(body.Replicas)
	writeJSON(w, code, body)
}

// live reports whether the process serves its client listener: not
// stopping, the read-write listener open and its last accept successful.
func (p *Proxy) live() (bool, string) {
	if p.stopping.Load() || p.draining.Load() {
		return false, "stopping"
	}
	if e := p.acceptErr.Load(); e != nil {
		return false, "accept: " + *e
	}
	return true, ""
}

// livez is liveness, separate from routing: 200 while the process runs and
// its client listener accepts, even with no route (the proxy holds or
// refuses clients during a Redis failover, which is no reason to move a
// VIP); 503 once it is stopping or cannot accept.
func (p *Proxy) livez(w http.ResponseWriter, _ *http.Request) {
	ok, reason := p.live()
	body := struct {
		Status string `json:"status"`
		Reason string `json:"reason,omitempty"`
		Listen string `json:"listen"`
	}{Status: "alive", Reason: reason, Listen: p.Addr()}
	code := http.StatusOK
	if !ok {
		code, body.Status = http.StatusServiceUnavailable, "stopping"
		if reason != "stopping" {
			body.Status = "not_accepting"
		}
	}
	writeJSON(w, code, body)
}

// StatusDoc is /status: the routing state, every backend and configured
// sentinel as the core last saw them, the listeners and counters.
type StatusDoc struct {
	Version string `json:"version"`
	// Status is "routing", "holding" (a decision is pending), "refusing"
	// or "stopping".
	Status string `json:"status"`
	Live   bool   `json:"live"` // what /livez says
	Route  struct {
		Master string `json:"master"`
		Hold   bool   `json:"hold"`
		Reason string `json:"reason,omitempty"`
	} `json:"route"`
	Agreed           string           `json:"agreed,omitempty"` // the sentinel majority's master
	AgreedEpoch      int64            `json:"config_epoch"`
	SentinelMajority bool             `json:"sentinel_majority"`
	Fenced           string           `json:"fenced,omitempty"`
	Switches         int              `json:"switches"`
	Backends         []BackendStatus  `json:"backends"`
	Sentinels        []SentinelStatus `json:"sentinels"`
	// HelloViews is routing.hello_views; SentinelsViaHello counts the
	// sentinels whose view counts now through a hello on the data nodes,
	// and Hellos what became of every hello heard (docs/proxy.md).
	HelloViews        bool         `json:"hello_views"`
	SentinelsViaHello int          `json:"sentinels_via_hello"`
	Hellos            *HelloCounts `json:"hellos,omitempty"`
	// PromotionFastPath is routing.promotion_fast_path. Provisional is the
	// master of a provisional route (one no sentinel majority names yet),
	// ProvisionalEpoch the failover epoch it was set for and
	// ProvisionalUntil when it is withdrawn unless a majority confirms it;
	// FastPath counts the fast path's outcomes (docs/proxy.md).
	PromotionFastPath bool              `json:"promotion_fast_path"`
	Provisional       string            `json:"provisional,omitempty"`
	ProvisionalEpoch  int64             `json:"provisional_epoch,omitempty"`
	ProvisionalUntil  time.Time         `json:"provisional_until,omitzero"`
	FastPath          *FastPathCounts   `json:"fast_path,omitempty"`
	Replicas          []string          `json:"replicas"`
	Listeners         map[string]string `json:"listeners"` // read_write, read_only, admin, watch
	Connections       int64             `json:"connections"`
	Watchers          int               `json:"watchers"`
	Draining          bool              `json:"draining"`
	Now               time.Time         `json:"now"`
}

// BackendStatus is one backend in /status.
type BackendStatus struct {
	Addr       string    `json:"addr"`
	Role       string    `json:"role,omitempty"`
	OK         bool      `json:"ok"`
	Fresh      bool      `json:"fresh"`
	LinkUp     bool      `json:"link_up,omitempty"`
	Offset     int64     `json:"offset"`
	Err        string    `json:"err,omitempty"`
	LastHealth time.Time `json:"last_health"` // when the last result's probe was sent
	AgeMs      int64     `json:"age_ms"`
	Routed     bool      `json:"routed"`
}

// SentinelStatus is one configured sentinel's view in /status.
type SentinelStatus struct {
	Addr     string    `json:"addr"`
	Heard    bool      `json:"heard"`
	OK       bool      `json:"ok"`
	Fresh    bool      `json:"fresh"` // the view counts toward the majority
	Master   string    `json:"master,omitempty"`
	Epoch    int64     `json:"config_epoch"`
	Err      string    `json:"err,omitempty"`
	LastView time.Time `json:"last_view,omitzero"`
	AgeMs    int64     `json:"age_ms,omitempty"`
	// RunID is the run id the sentinel gave directly (SENTINEL MYID); the
	// Hello* fields describe its last kept hello view, and ViaHello says
	// it counts toward the majority through that hello now.
	RunID       string    `json:"run_id,omitempty"`
	HelloMaster string    `json:"hello_master,omitempty"`
	HelloEpoch  int64     `json:"hello_config_epoch,omitempty"`
	HelloAt     time.Time `json:"hello_at,omitzero"`
	HelloAgeMs  int64     `json:"hello_age_ms,omitempty"`
	HelloFresh  bool      `json:"hello_fresh,omitempty"`
	ViaHello    bool      `json:"via_hello,omitempty"`
}

// HelloCounts is core.HelloStats in /status: every hello heard, and why
// those that do not count were set aside.
type HelloCounts struct {
	Heard      uint64 `json:"heard"`
	Kept       uint64 `json:"kept"`
	Off        uint64 `json:"off"`
	OtherName  uint64 `json:"other_name"`
	Unknown    uint64 `json:"unknown_sentinel"`
	NoRunID    uint64 `json:"no_run_id_yet"`
	BadRunID   uint64 `json:"bad_run_id"`
	OlderEpoch uint64 `json:"older_epoch"`
	Stalled    uint64 `json:"after_stall"`
}

// FastPathCounts is core.FastPathStats in /status: provisional routes set,
// confirmed by a sentinel majority, and withdrawn.
type FastPathCounts struct {
	Routed    uint64 `json:"routed"`
	Confirmed uint64 `json:"confirmed"`
	Withdrawn uint64 `json:"withdrawn"`
}

// StatusNow assembles /status.
func (p *Proxy) StatusNow() StatusDoc {
	now := time.Now()
	s := p.Snapshot()
	d := StatusDoc{Version: p.Version, Agreed: s.Agreed, AgreedEpoch: s.AgreedEpoch, SentinelMajority: s.HaveMajority,
		Fenced: s.Fenced, Switches: s.Switches, Connections: p.active.Load(), Draining: p.draining.Load(), Now: now,
		Backends: []BackendStatus{}, Sentinels: []SentinelStatus{}}
	d.Route.Master, d.Route.Hold, d.Route.Reason = s.Route.Master, s.Route.Hold, s.Route.Reason
	d.Live, _ = p.live()
	switch {
	case d.Draining || p.stopping.Load():
		d.Status = "stopping"
	case s.Route.Master != "":
		d.Status = "routing"
	case s.Route.Hold:
		d.Status = "holding"
	default:
		d.Status = "refusing"
	}
	for _, b := range s.Backends {
		d.Backends = append(d.Backends, BackendStatus{Addr: b.Addr, Role: string(b.Role), OK: b.OK, Fresh: b.Fresh, LinkUp: b.LinkUp,
			Offset: b.Offset, Err: b.Err, LastHealth: b.At, AgeMs: now.Sub(b.At).Milliseconds(), Routed: b.Addr == s.Route.Master})
	}
	for _, v := range s.Sentinels {
		st := SentinelStatus{Addr: v.Addr, Heard: v.Heard, OK: v.OK, Fresh: v.Fresh, Master: v.Master, Epoch: v.Epoch, Err: v.Err}
		if v.Heard {
			st.LastView, st.AgeMs = v.At, now.Sub(v.At).Milliseconds()
		}
		st.RunID, st.ViaHello = v.RunID, v.ViaHello
		if v.HelloHeard {
			st.HelloMaster, st.HelloEpoch, st.HelloFresh = v.HelloMaster, v.HelloEpoch, v.HelloFresh
			st.HelloAt, st.HelloAgeMs = v.HelloAt, now.Sub(v.HelloAt).Milliseconds()
		}
		d.Sentinels = append(d.Sentinels, st)
	}
	d.HelloViews, d.SentinelsViaHello = s.HelloViews, s.SentinelsViaHello
	if s.HelloViews {
		h := s.Hellos
		d.Hellos = &HelloCounts{Heard: h.Heard, Kept: h.Kept, Off: h.Off, OtherName: h.OtherName, Unknown: h.Unknown,
			NoRunID: h.NoRunID, BadRunID: h.BadRunID, OlderEpoch: h.OlderEpoch, Stalled: h.Stalled}
	}
	d.PromotionFastPath = s.PromotionFastPath
	d.Provisional, d.ProvisionalEpoch, d.ProvisionalUntil = s.Provisional, s.ProvisionalEpoch, s.ProvisionalUntil
	if f := s.FastPath; s.PromotionFastPath || f.Routed > 0 {
		// Also after a reload turned the key off: the counts stay.
		d.FastPath = &FastPathCounts{Routed: f.Routed, Confirmed: f.Confirmed, Withdrawn: f.Withdrawn}
	}
	d.Replicas = append([]string{}, *p.replicas.Load()...)
	sort.Strings(d.Replicas)
	d.Listeners = map[string]string{"read_write": p.Addr()}
	if a := p.ReadOnlyAddr(); a != "" {
		d.Listeners["read_only"] = a
	}
	if a := p.DurableAddr(); a != "" {
		d.Listeners["durable"] = a
	}
	if a := p.AdminAddr(); a != "" {
		d.Listeners["admin"] = a
	}
	d.Watchers, d.Listeners["watch"] = p.watchers()
	if d.Listeners["watch"] == "" {
		delete(d.Listeners, "watch")
	}
	return d
}

// status serves /status (always 200: it describes, it does not judge).
func (p *Proxy) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, p.StatusNow())
}
