package daemon

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/proxy/driver"
	"github.com/redisha/redisha/components/proxy/forward"
)

// metrics are the proxy's Prometheus series. Byte counts never come from
// wrapping a connection (that would lose the kernel's splice path): closed
// connections contribute their copy's return values, open ones the kernel's
// TCP_INFO counters of the client socket, read at scrape time.
type metrics struct {
	reg            *prometheus.Registry
	active         *prometheus.GaugeVec
	accepted       *prometheus.CounterVec
	refused        *prometheus.CounterVec
	bytes          *bytesCollector
	switchovers    prometheus.CounterFunc
	closedOnSwitch prometheus.CounterFunc
	// stats reads the driver's counters as last published by the loop.
	stats          func() driver.Stats
	idleClosed     prometheus.Counter
	backendUp      *prometheus.GaugeVec
	backendRole    *prometheus.GaugeVec
	backendRouted  *prometheus.GaugeVec
	sentinelsFresh prometheus.Gauge
	majority       prometheus.Gauge
	routable       prometheus.Gauge
	provisional    prometheus.Gauge
	fastPath       atomic.Value // core.FastPathStats of the last snapshot observed
	// durable is the durable mode's counters (set by New).
	durable *forward.DurableStats
}

func newMetrics() *metrics {

	m := &metrics{
		reg: prometheus.NewRegistry(),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "connections_active",
			Help: "Client connections currently forwarded."}, []string{"listener"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_total",
			Help: "Client connections forwarded to a backend."}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_refused_total",
			Help: "Client connections refused, by reason."}, []string{"listener", "reason"}),
		bytes: &bytesCollector{desc: prometheus.NewDesc(ns+"_bytes_total",
			"Bytes forwarded (closed connections exactly, open ones from TCP_INFO).", []string{"listener", "direction"}, nil),
			last: map[[2]string]float64{}, closed: map[[2]string]float64{}},
		stats: func() driver.Stats { return driver.Stats{} },
		idleClosed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "connections_idle_closed_total",
			Help: "Client connections closed by the idle timeout."}),
		backendUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "backend_up",
			Help: "1 when the backend's last health check succeeded and is fresh."}, []string{"backend"}),
		backendRole: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "backend_role",
			Help: "1 for the role the backend last reported."}, []string{"backend", "role"}),
		backendRouted: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "backend_routed",
			Help: "1 for the backend new read-write connections go to."}, []string{"backend"}),
		sentinelsFresh: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "sentinels_answering",
			Help: "Configured sentinels with a fresh view."}),
		majority: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "sentinel_majority",
			Help: "1 when a majority of configured sentinels agree at the highest epoch."}),
		routable: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "route_available",
			Help: "1 when new read-write connections are routed, 0 when held or refused."}),
		provisional: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "route_provisional",
			Help: "1 while the route is provisional (the promotion fast path's, no sentinel majority names it yet)."}),
	}
	m.switchovers = prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "switchovers_total",
		Help: "Times the routed master changed."}, func() float64 { return float64(m.stats().Switchovers) })
	m.closedOnSwitch = prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "connections_closed_on_switch_total",
		Help: "Client connections closed because their master was deposed or fenced."}, func() float64 { return float64(m.stats().ClosedOnSwitch) })
	// The fast path's outcomes are the core's counts (Snapshot().FastPath),
	// as last published.
	for _, c := range []struct {
		name, help string
		n          func(core.FastPathStats) uint64
	}{
		{"fast_path_routed_total", "Provisional routes set by the promotion fast path (routing.promotion_fast_path).",
			func(f core.FastPathStats) uint64 { return f.Routed }},
		{"fast_path_confirmed_total", "Provisional routes confirmed by a sentinel majority view.",
			func(f core.FastPathStats) uint64 { return f.Confirmed }},
		{"fast_path_withdrawn_total", "Provisional routes withdrawn (unconfirmed within the bound, a conflicting majority, an abort, a demotion).",
			func(f core.FastPathStats) uint64 { return f.Withdrawn }},
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: c.name, Help: c.help},
			func() float64 {
				f, _ := m.fastPath.Load().(core.FastPathStats)
				return float64(c.n(f))
			}))
	}
	m.reg.MustRegister(&durableCollector{m: m})
	m.reg.MustRegister(m.active, m.accepted, m.refused, m.bytes, m.switchovers, m.closedOnSwitch, m.idleClosed,
		m.backendUp, m.backendRole, m.backendRouted, m.sentinelsFresh, m.majority, m.routable, m.provisional,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(s core.Snapshot) {
	m.backendUp.Reset()
	m.backendRole.Reset()
	m.backendRouted.Reset()
	for _, b := range s.Backends {
		up := 0.0
		if b.OK && b.Fresh {
			up = 1
			m.backendRole.WithLabelValues(b.Addr, string(b.Role)).Set(1)
		}
		m.backendUp.WithLabelValues(b.Addr).Set(up)
		routed := 0.0
		if b.Addr == s.Route.Master {
			routed = 1
		}
		m.backendRouted.WithLabelValues(b.Addr).Set(routed)
	}
	m.sentinelsFresh.Set(float64(s.SentinelsFresh))
	m.majority.Set(b2f(s.HaveMajority))
	m.routable.Set(b2f(s.Route.Master != ""))
	m.provisional.Set(b2f(s.Provisional != ""))
	m.fastPath.Store(s.FastPath)
}

// bytesCollector sums closed connections' copied bytes with open
// connections' kernel counters. A connection's share can shrink slightly when
// it closes (bytes received but not yet forwarded), so each series is held
// monotonic.
type bytesCollector struct {
	desc   *prometheus.Desc
	live   func(add func(listener string, up, down float64))
	mu     sync.Mutex
	closed map[[2]string]float64
	last   map[[2]string]float64
}

func (b *bytesCollector) add(listener string, up, down int64) {
	b.mu.Lock()
	b.closed[[2]string{listener, "client_to_backend"}] += float64(up)
	b.closed[[2]string{listener, "backend_to_client"}] += float64(down)
	b.mu.Unlock()
}

func (b *bytesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *bytesCollector) Collect(ch chan<- prometheus.Metric) {
	sum := map[[2]string]float64{}
	if b.live != nil {
		b.live(func(l string, up, down float64) {
			sum[[2]string{l, "client_to_backend"}] += up
			sum[[2]string{l, "backend_to_client"}] += down
		})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, v := range b.closed {
		sum[k] += v
	}
	for k, v := range sum {
		v = max(v, b.last[k])
		b.last[k] = v
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.CounterValue, v, k[0], k[1])
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// durableCollector exposes forward.DurableStats (atomics updated by the
// event loops) at scrape time.
type durableCollector struct{ m *metrics }

const ns = "redisha_proxy"

var (
	durWaits = prometheus.NewDesc(ns+"_durable_waits_total",
		"WAIT commands the durable mode appended to batches holding a write.", nil, nil)
	durHeld = prometheus.NewDesc(ns+"_durable_acknowledged_batches_total",
		"Write batches whose replies were released after WAIT counted enough replicas.", nil, nil)
	durAsync = prometheus.NewDesc(ns+"_durable_async_acks_total",
		"Write batches acknowledged without replication because the master had no replica (durability_no_replica: async).", nil, nil)
	durErrRel = prometheus.NewDesc(ns+"_durable_error_releases_total",
		"Batches whose WAIT fell short but whose replies were all errors, released as they were (nothing acknowledged).", nil, nil)
	durPass = prometheus.NewDesc(ns+"_durable_passthrough_total",
		"Durable connections that left the durable mode (passed through unreplicated from then on), by reason.", []string{"reason"}, nil)
	durClosed = prometheus.NewDesc(ns+"_durable_closed_total",
		"Durable connections closed instead of acknowledging (an indeterminate outcome for the client), by reason.", []string{"reason"}, nil)
)

func (c *durableCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{durWaits, durHeld, durAsync, durErrRel, durPass, durClosed} {
		ch <- d
	}
}

func (c *durableCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.m.durable
	if s == nil {
		return
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(durWaits, s.Waits.Load())
	counter(durHeld, s.Held.Load())
	counter(durAsync, s.AsyncAcks.Load())
	counter(durErrRel, s.ErrorRelease.Load())
	counter(durPass, s.PassSubscribe.Load(), "subscribe")
	counter(durPass, s.PassMonitor.Load(), "monitor")
	counter(durPass, s.PassClientReply.Load(), "client_reply")
	counter(durPass, s.PassSync.Load(), "sync")
	counter(durClosed, s.ClosedShort.Load(), "not_replicated")
	counter(durClosed, s.ClosedError.Load(), "wait_error")
	counter(durClosed, s.ClosedStuck.Load(), "wait_unanswered")
	counter(durClosed, s.ClosedHeldLimit.Load(), "held_limit")
	counter(durClosed, s.ClosedDesync.Load(), "desync")
	counter(durClosed, s.ClosedMulti.Load(), "multi_refused")
}
