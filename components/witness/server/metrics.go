package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/redisha/redisha/components/witness"
)

type metrics struct {
	currentEpoch   prometheus.Gauge
	tilt           prometheus.Gauge
	sdown          *prometheus.GaugeVec
	odown          *prometheus.GaugeVec
	configEpoch    *prometheus.GaugeVec
	leaderEpoch    *prometheus.GaugeVec
	sentinels      *prometheus.GaugeVec
	replicas       *prometheus.GaugeVec
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

func newMetrics(reg *prometheus.Registry, _ *Server) *metrics {
	const ns = "redisha_witness"
	m := &metrics{
		currentEpoch: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "current_epoch", Help: "Sentinel current epoch."}),
		tilt:         prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "tilt", Help: "1 while in TILT mode."}),
		sdown:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "master_sdown", Help: "1 if the master is subjectively down."}, []string{"master"}),
		odown:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "master_odown", Help: "1 if the master is objectively down."}, []string{"master"}),
		configEpoch:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "master_config_epoch", Help: "Config epoch of the master's current configuration."}, []string{"master"}),
		leaderEpoch:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "master_leader_epoch", Help: "Epoch of the last leader vote."}, []string{"master"}),
		sentinels:    prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "known_sentinels", Help: "Other sentinels known for the master."}, []string{"master"}),
		replicas:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "known_replicas", Help: "Replicas known for the master."}, []string{"master"}),
		events:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_total", Help: "Sentinel events by type."}, []string{"type"}),
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
	reg.MustRegister(m.currentEpoch, m.tilt, m.sdown, m.odown, m.configEpoch, m.leaderEpoch, m.sentinels, m.replicas,
		m.events, m.eventsDropped, m.hellosReceived, m.hellosSent, m.voteRequests, m.commands, m.protocolErrors,
		m.authFailures, m.clients, m.persistErrors, m.persistSeconds)
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) update(c *witness.Core) {
	m.currentEpoch.Set(float64(c.CurrentEpoch()))
	m.tilt.Set(b2f(c.Tilt()))
	for _, st := range c.Status() {
		m.sdown.WithLabelValues(st.Name).Set(b2f(st.SDown))
		m.odown.WithLabelValues(st.Name).Set(b2f(st.ODown))
		m.configEpoch.WithLabelValues(st.Name).Set(float64(st.ConfigEpoch))
		m.leaderEpoch.WithLabelValues(st.Name).Set(float64(st.LeaderEpoch))
		m.sentinels.WithLabelValues(st.Name).Set(float64(st.Sentinels))
		m.replicas.WithLabelValues(st.Name).Set(float64(st.Replicas))
	}
}
