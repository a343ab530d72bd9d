package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redisha/redisha/components/witness/core"
	"github.com/redisha/redisha/components/witness/driver"
)

// metrics holds the counters the daemon bumps as things happen; the state
// gauges (epochs, SDOWN/ODOWN, peers) and the driver's counters
// (driver.Stats) are read through the loop at scrape time by stateCollector,
// so an idle witness does no metrics work at all.
type metrics struct {
	events         *prometheus.CounterVec
	eventsDropped  prometheus.Counter
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
		commands:       prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "commands_total", Help: "Client commands by name."}, []string{"command"}),
		protocolErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "protocol_errors_total", Help: "Connections closed for malformed RESP."}),
		authFailures:   prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "auth_failures_total", Help: "Failed AUTH/HELLO AUTH attempts."}),
		clients:        prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "connected_clients", Help: "Open client connections."}),
		persistErrors:  prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "state_persist_errors_total", Help: "Failed state file writes."}),
		persistSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "state_persist_seconds", Help: "State file write+fsync time.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12)}),
	}
	if reg == nil {
		return m // nothing can read them: counted, never registered
	}
	reg.MustRegister(m.events, m.eventsDropped, m.commands,
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
	descHellosRecv  = prometheus.NewDesc(ns+"_hellos_received_total", "Hello messages received, by result.", []string{"result"}, nil)
	descHellosSent  = prometheus.NewDesc(ns+"_hellos_sent_total", "Hello messages published.", nil, nil)
	descVoteReqs    = prometheus.NewDesc(ns+"_vote_requests_total", "is-master-down-by-addr requests asking for a vote.", nil, nil)
	descHeld        = prometheus.NewDesc(ns+"_held_replies_total", "is-master-down-by-addr replies held for the witness's own SDOWN deadline.", nil, nil)
	descReleased    = prometheus.NewDesc(ns+"_held_replies_released_total",
		"Held is-master-down-by-addr replies released, by why: down (own SDOWN), alive (the master answered), bound.", []string{"why"}, nil)
)

// stateCollector reads the core's state and the driver's counters through
// the loop at scrape time.
type stateCollector struct{ s *Server }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEpoch, descTilt, descSDown, descODown, descConfigEpoch, descLeaderEpoch, descSentinels, descReplicas,
		descHellosRecv, descHellosSent, descVoteReqs, descHeld, descReleased} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	var epoch uint64
	var tilt bool
	var status []core.MasterStatus
	var st driver.Stats
	if !c.s.do(func(time.Time) {
		cr := c.s.drv.Core()
		epoch, tilt, status, st = cr.CurrentEpoch(), cr.Tilt(), cr.Status(), c.s.drv.Stats()
	}) {
		return
	}
	ch <- prometheus.MustNewConstMetric(descHellosRecv, prometheus.CounterValue, float64(st.HellosOK), "ok")
	ch <- prometheus.MustNewConstMetric(descHellosRecv, prometheus.CounterValue, float64(st.HellosUnknownMaster), "unknown_master")
	ch <- prometheus.MustNewConstMetric(descHellosRecv, prometheus.CounterValue, float64(st.HellosMalformed), "malformed")
	ch <- prometheus.MustNewConstMetric(descHellosRecv, prometheus.CounterValue, float64(st.HellosRefused), "refused_table_full")
	ch <- prometheus.MustNewConstMetric(descHellosSent, prometheus.CounterValue, float64(st.HellosSent))
	ch <- prometheus.MustNewConstMetric(descVoteReqs, prometheus.CounterValue, float64(st.VoteRequests))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.CounterValue, float64(st.Held))
	ch <- prometheus.MustNewConstMetric(descReleased, prometheus.CounterValue, float64(st.ReleasedDown), "down")
	ch <- prometheus.MustNewConstMetric(descReleased, prometheus.CounterValue, float64(st.ReleasedAlive), "alive")
	ch <- prometheus.MustNewConstMetric(descReleased, prometheus.CounterValue, float64(st.ReleasedBound), "bound")
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
