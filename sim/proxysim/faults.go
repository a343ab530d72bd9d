package proxysim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redisha/redisha/sim"
)

// schedule draws the faults and returns when the run ends: the fault phase,
// then a whole network long enough for sentinels to converge (down
// detection, vote, promotion, hellos, +convert-to-slave) and the proxy to
// follow.
func (m *model) schedule(r *rand.Rand) time.Time {
	w := m.w
	phase := m.opt.FaultPhase
	sim.Windows(r, phase, m.opt.MaxFaults, 20*time.Second, func(start, end time.Duration) { m.fault(r, start, end) })
	w.At(sim.Epoch.Add(phase), func() {
		w.Logf("fault phase over: heal the network, thaw and restart everything")
		w.Net.Heal()
		for _, n := range w.Nodes() {
			w.Thaw(n)
			if n.State() == sim.Down {
				m.restart(n.Name)
			}
		}
		m.faultChanged()
	})
	return sim.Epoch.Add(phase + 45*time.Second)
}

func (m *model) fault(r *rand.Rand, start, end time.Duration) {
	w := m.w
	at := func(d time.Duration, fn func()) {
		w.At(sim.Epoch.Add(d), func() { fn(); m.faultChanged() })
	}
	desc := func(format string, args ...any) {
		m.res.Schedule = append(m.res.Schedule, fmt.Sprintf("%7.3fs-%7.3fs ", start.Seconds(), end.Seconds())+fmt.Sprintf(format, args...))
	}
	// Most node faults hit whichever node is master when the fault begins:
	// that is where failovers, fencing and returning old masters come from.
	fixed := m.nodes[r.IntN(len(m.nodes))]
	hitMaster := r.IntN(3) != 0
	node := &redisNode{name: fixed.name}
	if hitMaster {
		node.name = "the master"
	}
	resolve := func() *redisNode {
		if hitMaster {
			for _, n := range m.nodes {
				if n.master {
					return n
				}
			}
		}
		return fixed
	}
	sent := m.sentinels[r.IntN(len(m.sentinels))]
	kinds := []string{"crash-node", "crash-node", "freeze-node", "rogue", "isolate-node", "node-from-sentinels",
		"proxy-from-sentinels", "proxy-from-node", "split-sentinels", "crash-sentinel", "freeze-sentinel",
		"freeze-proxy", "restart-proxy", "reload-proxy", "lossy", "slow"}
	if m.opt.Witness {
		kinds = append(kinds, "crash-witness", "crash-witness")
	}
	switch kind := kinds[r.IntN(len(kinds))]; kind {
	case "crash-node":
		desc("crash %s (restarts with the role it had)", node.name)
		var n *redisNode
		at(start, func() { n = resolve(); w.Logf("crash %s", n.name); w.Crash(n.node); m.witnessSawCrash() })
		at(end, func() { m.restart(n.name) })
	case "freeze-node":
		desc("freeze %s", node.name)
		var n *redisNode
		at(start, func() { n = resolve(); w.Freeze(n.node) })
		at(end, func() { w.Thaw(n.node) })
	case "rogue":
		node := fixed
		desc("%s claims master on its own (REPLICAOF NO ONE by hand)", node.name)
		at(start, func() {
			if !node.master {
				node.master, node.follows = true, ""
				w.Logf("%s: rogue REPLICAOF NO ONE", node.name)
				m.groundChanged()
			}
		})
	case "isolate-node":
		desc("partition %s from everyone", node.name)
		m.cut(at, start, end, resolve, func(n *redisNode) ([]string, []string) { return []string{n.name}, m.allBut(n.name) })
	case "node-from-sentinels":
		desc("partition %s from the sentinels (the proxy still reaches it)", node.name)
		m.cut(at, start, end, resolve, func(n *redisNode) ([]string, []string) { return []string{n.name}, m.sentinelNames() })
	case "proxy-from-sentinels":
		n := 1 + r.IntN(3)
		names := m.sentinelNames()
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		desc("partition the proxy from %v", names[:n])
		m.cut(at, start, end, nil, func(*redisNode) ([]string, []string) { return []string{proxyName}, names[:n] })
	case "proxy-from-node":
		desc("partition the proxy from %s", node.name)
		m.cut(at, start, end, resolve, func(n *redisNode) ([]string, []string) { return []string{proxyName}, []string{n.name} })
	case "split-sentinels":
		desc("partition %s from the other sentinels", sent.name)
		var others []string
		for _, s := range m.sentinels {
			if s != sent {
				others = append(others, s.name)
			}
		}
		m.cut(at, start, end, nil, func(*redisNode) ([]string, []string) { return []string{sent.name}, others })
	case "crash-sentinel":
		desc("crash %s (keeps its config file)", sent.name)
		at(start, func() { w.Crash(sent.node); m.witnessSawCrash() })
		at(end, func() { m.restart(sent.name) })
	case "crash-witness":
		desc("crash the witness s3 (restarts from its state file)")
		s3 := m.sentinels[2]
		at(start, func() { w.Crash(s3.node) })
		at(end, func() { m.restart(s3.name) })
	case "freeze-sentinel":
		desc("freeze %s", sent.name)
		at(start, func() { w.Freeze(sent.node) })
		at(end, func() { w.Thaw(sent.node) })
	case "freeze-proxy":
		desc("freeze the proxy")
		at(start, func() { w.Freeze(m.px.node) })
		at(end, func() { w.Thaw(m.px.node) })
	case "restart-proxy":
		desc("restart the proxy")
		at(start, func() { w.Crash(m.px.node); m.restart(proxyName) })
	case "reload-proxy":
		desc("reload the proxy's configuration (SIGHUP, unchanged)")
		at(start, func() {
			if m.px.node.State() != sim.Up {
				return
			}
			w.Logf("proxy: reload")
			if err := m.px.drv.Reconfigure(w.Now(), m.px.cfg.CoreConfig(), false); err != nil {
				panic(fmt.Sprintf("proxysim: reload: %v", err))
			}
			m.stepped()
		})
	case "lossy", "slow":
		all := w.Nodes()
		a := all[r.IntN(len(all))].Name
		b := all[r.IntN(len(all))].Name
		for b == a {
			b = all[r.IntN(len(all))].Name
		}
		var change func(*sim.Link)
		if kind == "lossy" {
			loss := 0.1 + 0.8*r.Float64()
			change = func(l *sim.Link) { l.Loss = loss }
		} else {
			d := time.Duration(r.IntN(300)) * time.Millisecond
			j := time.Duration(r.IntN(400)) * time.Millisecond
			change = func(l *sim.Link) { l.Delay, l.Jitter = d, j }
		}
		desc("%s link %s<->%s", kind, a, b)
		var lift func()
		at(start, func() {
			lift = w.Net.Between(a, b, true, change)
			w.Logf("net: %s %s<->%s", kind, a, b)
		})
		at(end, func() { lift(); w.Logf("net: %s %s<->%s lifted", kind, a, b) })
	}
}

// cut partitions two groups from start to end; sides names them when the
// fault begins (with the node resolve picks then, if any).
func (m *model) cut(at func(time.Duration, func()), start, end time.Duration, resolve func() *redisNode,
	sides func(*redisNode) ([]string, []string)) {
	var lift func()
	at(start, func() {
		var n *redisNode
		if resolve != nil {
			n = resolve()
		}
		lift = m.w.Net.Partition(sides(n))
	})
	at(end, func() { lift(); m.w.Logf("net: partition lifted") })
}

func (m *model) allBut(name string) []string {
	var out []string
	for _, n := range m.w.Nodes() {
		if n.Name != name {
			out = append(out, n.Name)
		}
	}
	return out
}

func (m *model) sentinelNames() []string {
	var out []string
	for _, s := range m.sentinels {
		out = append(out, s.name)
	}
	return out
}

// restart brings a crashed process back: a Redis node with its old role, a
// sentinel with its saved configuration, the proxy from scratch.
func (m *model) restart(name string) {
	n := m.w.Node(name)
	if n.State() != sim.Down {
		return
	}
	m.w.Restart(n)
	switch {
	case name == proxyName:
		m.startProxy()
	default:
		for _, s := range m.sentinels {
			if s.name == name {
				m.sentinelStart(s)
			}
		}
	}
	m.groundChanged()
}
