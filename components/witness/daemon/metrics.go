package server

import "github.com/prometheus/client_golang/prometheus"

// metrics holds the counters the driver bumps as things happen; the state
// gauges (epochs, SDOWN/ODOWN, peers) are read from the core at scrape time
// by stateCollector, so an idle witness does no metrics work at all.
type metrics struct {
	events         *prometheus.CounterVec
	eventsDropped  prometheus.Counter
	hellosReceived *prometheus.CounterVec
	hellosSent     prometheus.Counter
	voteRequests   prometheus.Counter
	commands       *prometheus.CounterVec
	protocolErrors prometheus.Counter
	authFailures   prometheus.Counter
	clients        prometheus.Gauge
	persistErrors  prometheus.Counter
	persistSeconds prometheus.Histogram
}

const ns = "redisha_witness"

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_total", Help: "Sentinel events by type."}, []string{"type"}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_dropped_total",
			Help: "Events not delivered to subscribers because the queue was full."}),
		hellosReceived: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "hellos_received_total", Help: "Hello messages received, by result."}, []string{"result"}),
		hellosSent:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "hellos_sent_total", Help: "Hello messages published."}),
		voteRequests:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "vote_requests_total", Help: "is-master-down-by-addr requests asking for a vote."}),
		commands:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "commands_total", Help: "Client commands by name."}, []string{"command"}),
		protocolErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "protocol_errors_total", Help: "Connections closed for malformed RESP."}),
		authFailures:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "auth_failures_total", Help: "Failed AUTH/HELLO AUTH attempts."}),
		clients:        prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connected_clients", Help: "Open client connections."}),
		persistErrors:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "state_persist_errors_total", Help: "Failed state file writes."}),
		persistSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "state_persist_seconds", Help: "State file write+fsync time.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12)}),
	}
	reg.MustRegister(m.events, m.eventsDropped, m.hellosReceived, m.hellosSent, m.voteRequests, m.commands,
		m.protocolErrors, m.authFailures, m.clients, m.persistErrors, m.persistSeconds, stateCollector{s})
	return m
}

var (
	descEpoch       = prometheus.NewDesc(ns+"_current_epoch", "Sentinel current epoch.", nil, nil)
	descTilt        = prometheus.NewDesc(ns+"_tilt", "1 while in TILT mode.", nil, nil)
	descSDown       = prometheus.NewDesc(ns+"_master_sdown", "1 if the master is subjectively down.", []string{"master"}, nil)
	descODown       = prometheus.NewDesc(ns+"_master_odown", "1 if the master is objectively down.", []string{"master"}, nil)
	descConfigEpoch = prometheus.NewDesc(ns+"_master_config_epoch", "Config epoch of the master's current configuration.", []string{"master"}, nil)
	descLeaderEpoch = prometheus.NewDesc(ns+"_master_leader_epoch", "Epoch of the last leader vote.", []string{"master"}, nil)
	descSentinels   = prometheus.NewDesc(ns+"_known_sentinels", "Other sentinels known for the master.", []string{"master"}, nil)
	descReplicas    = prometheus.NewDesc(ns+"_known_replicas", "Replicas known for the master.", []string{"master"}, nil)
)

// stateCollector reads the core's state under the server lock at scrape time.
type stateCollector struct{ s *Server }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEpoch, descTilt, descSDown, descODown, descConfigEpoch, descLeaderEpoch, descSentinels, descReplicas} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	epoch, tilt, status := c.s.core.CurrentEpoch(), c.s.core.Tilt(), c.s.core.Status()
	c.s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(epoch))
	ch <- prometheus.MustNewConstMetric(descTilt, prometheus.GaugeValue, b2f(tilt))
	for _, st := range status {
		ch <- prometheus.MustNewConstMetric(descSDown, prometheus.GaugeValue, b2f(st.SDown), st.Name)
		ch <- prometheus.MustNewConstMetric(descODown, prometheus.GaugeValue, b2f(st.ODown), st.Name)
		ch <- prometheus.MustNewConstMetric(descConfigEpoch, prometheus.GaugeValue, float64(st.ConfigEpoch), st.Name)
		ch <- prometheus.MustNewConstMetric(descLeaderEpoch, prometheus.GaugeValue, float64(st.LeaderEpoch), st.Name)
		ch <- prometheus.MustNewConstMetric(descSentinels, prometheus.GaugeValue, float64(st.Sentinels), st.Name)
		ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(st.Replicas), st.Name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
