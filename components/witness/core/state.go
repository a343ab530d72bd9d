package core

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"time"
)

// State is everything the witness must remember across restarts. The core
// hands it to the driver in an ActPersist action whenever an event changed
// it, ahead of every action that depends on it; the driver writes it
// atomically (with fsync) before replying, so a restart never votes twice in
// one epoch.
type State struct {
	Version      int           `json:"version"`
	MyID         string        `json:"myid"`
	CurrentEpoch uint64        `json:"current_epoch"`
	Masters      []MasterState `json:"masters"`
}

// MasterState is the durable part of one monitored master.
type MasterState struct {
	Name string `json:"name"`
	// Configured is the address the config file gave when this was written:
	// when an operator edits the config file, the config wins over the
	// address learned from hellos.
	Configured  AddrState       `json:"configured"`
	Addr        AddrState       `json:"addr"`
	ConfigEpoch uint64          `json:"config_epoch"`
	Leader      string          `json:"leader,omitempty"`
	LeaderEpoch uint64          `json:"leader_epoch"`
	Replicas    []AddrState     `json:"replicas,omitempty"`
	Sentinels   []SentinelState `json:"sentinels,omitempty"`
}

// AddrState is an address in the state file.
type AddrState struct {
	IP   string `json:"ip"`
	Port int    `json:"port"`
}

// SentinelState is a known peer sentinel.
type SentinelState struct {
	RunID string `json:"runid"`
	IP    string `json:"ip"`
	Port  int    `json:"port"`
}

// StateVersion is the state file format version.
const StateVersion = 1

// State returns a snapshot of the durable state.
func (c *Core) State() State {
	st := State{Version: StateVersion, MyID: c.cfg.MyID, CurrentEpoch: c.currentEpoch}
	for _, name := range c.names {
		m := c.masters[name]
		ms := MasterState{Name: name,
			Configured:  AddrState{m.configuredAddr.IP, m.configuredAddr.Port},
			Addr:        AddrState{m.self.addr.IP, m.self.addr.Port},
			ConfigEpoch: m.configEpoch, Leader: m.leader, LeaderEpoch: m.leaderEpoch}
		for _, k := range sortedKeys(m.replicas) {
			r := m.replicas[k]
			ms.Replicas = append(ms.Replicas, AddrState{r.addr.IP, r.addr.Port})
		}
		for _, k := range sortedKeys(m.sentinels) {
			s := m.sentinels[k]
			ms.Sentinels = append(ms.Sentinels, SentinelState{s.runID, s.addr.IP, s.addr.Port})
		}
		st.Masters = append(st.Masters, ms)
	}
	return st
}

// restore loads a previous run's state. Masters no longer configured are
// dropped; epochs and votes are always kept, because forgetting a vote is the
// one thing that could let us vote twice in an epoch.
func (c *Core) restore(st *State, now time.Time) error {
	if st.Version != 0 && st.Version != StateVersion {
		return fmt.Errorf("witness: state file version %d, this build reads %d", st.Version, StateVersion)
	}
	c.currentEpoch = st.CurrentEpoch
	for _, ms := range st.Masters {
		m := c.masters[ms.Name]
		if m == nil {
			continue
		}
		m.configEpoch = ms.ConfigEpoch
		m.leader = ms.Leader
		m.leaderEpoch = ms.LeaderEpoch
		if ms.LeaderEpoch > c.currentEpoch {
			c.currentEpoch = ms.LeaderEpoch
		}
		if (Addr{ms.Configured.IP, ms.Configured.Port}) != m.configuredAddr {
			continue // operator changed the config: start from the config's address
		}
		learned := Addr{ms.Addr.IP, ms.Addr.Port}
		if learned.IP != "" && learned.Port > 0 {
			m.self = newInstance(KindMaster, learned, now)
		}
		for _, r := range ms.Replicas {
			a := Addr{r.IP, r.Port}
			if a != m.self.addr && a.IP != "" && a.Port > 0 {
				m.replicas[a.String()] = newInstance(KindReplica, a, now)
			}
		}
		for _, s := range ms.Sentinels {
			a := Addr{s.IP, s.Port}
			// The same checks as a hello's, and the same bound: a state file
			// written before they existed may hold forged peers.
			if !ValidRunID(s.RunID) || s.RunID == c.cfg.MyID || !validIP(a.IP) || a.Port <= 0 || a.Port > 65535 ||
				len(m.sentinels) >= c.cfg.MaxPeers {
				continue
			}
			si := newInstance(KindSentinel, a, now)
			si.runID = s.RunID
			si.lastHello = now // silent since the restart at most
			m.sentinels[s.RunID] = si
		}
	}
	return nil
}

// NewRunID returns a fresh 40-hex-char run id read from rnd (crypto/rand
// when nil); tests and the simulator pass a seeded source.
func NewRunID(rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	b := make([]byte, 20)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", fmt.Errorf("witness: run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
