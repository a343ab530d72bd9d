package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Field is one name/value pair of a SENTINEL MASTER/REPLICAS/SENTINELS reply.
// Values are strings because redis-sentinel sends every value as a bulk string.
type Field struct{ Name, Value string }

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// MasterNames returns the monitored master names, sorted.
func (c *Core) MasterNames() []string { return append([]string(nil), c.names...) }

// MasterAddr answers SENTINEL get-master-addr-by-name: the address of the
// configuration with the highest config epoch seen (a hello with a greater
// config epoch moves it before any client can ask).
func (c *Core) MasterAddr(name string) (Addr, bool) {
	m := c.masters[name]
	if m == nil {
		return Addr{}, false
	}
	return m.self.addr, true
}

// MasterFields answers SENTINEL MASTER name with sentinel's field names and order.
func (c *Core) MasterFields(now time.Time, name string) ([]Field, bool) {
	m := c.masters[name]
	if m == nil {
		return nil, false
	}
	return c.fields(m, m.self, now), true
}

// ReplicaFields answers SENTINEL REPLICAS name.
func (c *Core) ReplicaFields(now time.Time, name string) ([][]Field, bool) {
	m := c.masters[name]
	if m == nil {
		return nil, false
	}
	var out [][]Field
	for _, k := range sortedKeys(m.replicas) {
		out = append(out, c.fields(m, m.replicas[k], now))
	}
	return out, true
}

// SentinelFields answers SENTINEL SENTINELS name.
func (c *Core) SentinelFields(now time.Time, name string) ([][]Field, bool) {
	m := c.masters[name]
	if m == nil {
		return nil, false
	}
	var out [][]Field
	for _, k := range sortedKeys(m.sentinels) {
		out = append(out, c.fields(m, m.sentinels[k], now))
	}
	return out, true
}

// fields mirrors addReplySentinelRedisInstance.
func (c *Core) fields(m *master, ri *instance, now time.Time) []Field {
	name := ri.name()
	if ri.kind == KindMaster {
		name = m.cfg.Name
	}
	var flags []string
	if ri.sdown {
		flags = append(flags, "s_down")
	}
	if ri.kind == KindMaster && m.odown {
		flags = append(flags, "o_down")
	}
	flags = append(flags, ri.kind.String())
	if !ri.link.connected {
		flags = append(flags, "disconnected")
	}
	if ri.kind == KindSentinel && ri.masterDown {
		flags = append(flags, "master_down")
	}
	f := []Field{
		{"name", name},
		{"ip", ri.addr.IP},
		{"port", strconv.Itoa(ri.addr.Port)},
		{"runid", ri.runID},
		{"flags", strings.Join(flags, ",")},
		{"link-pending-commands", strconv.Itoa(ri.link.pending())},
		{"link-refcount", "1"},
	}
	lastPingSent := "0"
	if !ri.link.actPing.IsZero() {
		lastPingSent = ms(now.Sub(ri.link.actPing))
	}
	f = append(f,
		Field{"last-ping-sent", lastPingSent},
		Field{"last-ok-ping-reply", ms(now.Sub(ri.link.lastAvail))},
		Field{"last-ping-reply", ms(now.Sub(ri.link.lastPong))})
	if ri.sdown {
		f = append(f, Field{"s-down-time", ms(now.Sub(ri.sdownSince))})
	}
	if ri.kind == KindMaster && m.odown {
		f = append(f, Field{"o-down-time", ms(now.Sub(m.odownSince))})
	}
	f = append(f, Field{"down-after-milliseconds", ms(m.cfg.DownAfter)})
	if ri.kind != KindSentinel {
		refresh := "0"
		if !ri.infoRefresh.IsZero() {
			refresh = ms(now.Sub(ri.infoRefresh))
		}
		f = append(f,
			Field{"info-refresh", refresh},
			Field{"role-reported", roleName(ri.roleReported)},
			Field{"role-reported-time", ms(now.Sub(ri.roleReportedTime))})
	}
	switch ri.kind {
	case KindMaster:
		f = append(f,
			Field{"config-epoch", strconv.FormatUint(m.configEpoch, 10)},
			Field{"num-slaves", strconv.Itoa(len(m.replicas))},
			Field{"num-other-sentinels", strconv.Itoa(len(m.sentinels))},
			Field{"quorum", strconv.Itoa(m.cfg.Quorum)},
			Field{"failover-timeout", ms(m.cfg.FailoverTimeout)},
			Field{"parallel-syncs", strconv.Itoa(m.cfg.ParallelSyncs)})
	case KindReplica:
		status := "err"
		if ri.slaveLinkUp {
			status = "ok"
		}
		host := ri.slaveMasterHost
		if host == "" {
			host = "?"
		}
		f = append(f,
			Field{"master-link-down-time", strconv.FormatInt(ri.masterLinkDownTime, 10)},
			Field{"master-link-status", status},
			Field{"master-host", host},
			Field{"master-port", strconv.Itoa(ri.slaveMasterPort)},
			Field{"slave-priority", strconv.Itoa(ri.slavePriority)},
			Field{"slave-repl-offset", strconv.FormatUint(ri.slaveReplOffset, 10)},
			Field{"replica-announced", strconv.Itoa(ri.replicaAnnounced)})
	case KindSentinel:
		leader := ri.leader
		if leader == "" {
			leader = "?"
		}
		f = append(f,
			Field{"last-hello-message", ms(now.Sub(ri.lastHello))},
			Field{"voted-leader", leader},
			Field{"voted-leader-epoch", strconv.FormatUint(ri.leaderEpoch, 10)})
	}
	return f
}

// CKQuorum answers SENTINEL CKQUORUM like sentinelIsQuorumReachable: ok, and
// the reply line (a status for ok, an error text otherwise).
func (c *Core) CKQuorum(name string) (bool, string, bool) {
	m := c.masters[name]
	if m == nil {
		return false, "", false
	}
	usable := 1
	for _, s := range m.sentinels {
		if !s.sdown {
			usable++
		}
	}
	voters := len(m.sentinels) + 1
	noQuorum := usable < m.cfg.Quorum
	noAuth := usable < voters/2+1
	if !noQuorum && !noAuth {
		return true, fmt.Sprintf("OK %d usable Sentinels. Quorum and failover authorization can be reached", usable), true
	}
	e := fmt.Sprintf("NOQUORUM %d usable Sentinels. ", usable)
	if noQuorum {
		e += "Not enough available Sentinels to reach the specified quorum for this master"
	}
	if noAuth {
		if noQuorum {
			e += ". "
		}
		e += "Not enough available Sentinels to reach the majority and authorize a failover"
	}
	return false, e, true
}

// InfoSentinel renders the "# Sentinel" INFO section.
func (c *Core) InfoSentinel(now time.Time) string {
	var b strings.Builder
	tilt, since := 0, int64(-1)
	if c.tilt {
		tilt, since = 1, int64(now.Sub(c.tiltSince)/time.Second)
	}
	fmt.Fprintf(&b, "# Sentinel\r\nsentinel_masters:%d\r\nsentinel_tilt:%d\r\nsentinel_tilt_since_seconds:%d\r\n"+
		"sentinel_running_scripts:0\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:0\r\n",
		len(c.names), tilt, since)
	for i, name := range c.names {
		m := c.masters[name]
		status := "ok"
		if m.odown {
			status = "odown"
		} else if m.self.sdown {
			status = "sdown"
		}
		fmt.Fprintf(&b, "master%d:name=%s,status=%s,address=%s,slaves=%d,sentinels=%d\r\n",
			i, name, status, m.self.addr.String(), len(m.replicas), len(m.sentinels)+1)
	}
	return b.String()
}

// MasterStatus is a compact view for metrics.
type MasterStatus struct {
	Name        string
	Addr        Addr
	SDown       bool
	ODown       bool
	ConfigEpoch uint64
	LeaderEpoch uint64
	Replicas    int
	Sentinels   int
}

// Status returns a compact view of every master, for metrics and logs.
func (c *Core) Status() []MasterStatus {
	var out []MasterStatus
	for _, name := range c.names {
		m := c.masters[name]
		out = append(out, MasterStatus{Name: name, Addr: m.self.addr, SDown: m.self.sdown, ODown: m.odown,
			ConfigEpoch: m.configEpoch, LeaderEpoch: m.leaderEpoch, Replicas: len(m.replicas), Sentinels: len(m.sentinels)})
	}
	return out
}
