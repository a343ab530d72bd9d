package daemon

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redisha/redisha/components/proxy/config"
	"github.com/redisha/redisha/components/proxy/forward"
	"github.com/redisha/redisha/components/resp"
)

// The durable mode (docs/durability.md): the decisions are
// forward.Durable's; this file gives each durable connection what it
// needs from the master: the classification of its commands (COMMAND,
// fetched once per master address) and, under the "async" no-replica
// policy, whether the master has a replica at all.

// durable prepares a durable connection to the master at addr.
func (p *Proxy) durable(cfg *Config, addr string) (*forward.Durable, time.Duration) {
	dc := forward.DurableConfig{
		Replicas:  cfg.DurabilityReplicas,
		TimeoutMs: max(1, cfg.DurabilityTimeout.Milliseconds()),
		Commands:  p.commandTable(cfg, addr),
		Stats:     p.dstats,
	}
	if cfg.DurabilityNoReplica == config.NoReplicaAsync {
		dc.NoReplica = p.replicaWatch(cfg, addr).none.Load
	}
	// WAIT's own timeout covers a replica that stopped acknowledging; the
	// limit covers a master that stopped answering at all.
	return forward.NewDurable(dc), cfg.DurabilityTimeout + max(cfg.DurabilityTimeout, time.Second)
}

// commandTable is the master's COMMAND classification, fetched on the
// first durable connection to it and kept. When it cannot be fetched the
// connection counts every command as a write (correct, slower), and the
// next connection tries again.
func (p *Proxy) commandTable(cfg *Config, addr string) *forward.CommandTable {
	p.durMu.Lock()
	t := p.durCmds[addr]
	p.durMu.Unlock()
	if t != nil {
		return t
	}
	// A burst of first connections (clients reconnecting after a switch)
	// shares one fetch instead of each dialling the master for COMMAND.
	v, _, _ := p.durFetch.Do(addr, func() (any, error) {
		return p.fetchCommandTable(cfg, addr), nil
	})
	t, _ = v.(*forward.CommandTable)
	return t
}

// fetchCommandTable reads COMMAND from the master at addr and keeps it.
func (p *Proxy) fetchCommandTable(cfg *Config, addr string) *forward.CommandTable {
	p.durMu.Lock()
	t := p.durCmds[addr]
	p.durMu.Unlock()
	if t != nil {
		return t
	}
	ctx, cancel := context.WithTimeout(p.ctx, max(cfg.Limits.DialTimeout, 2*time.Second))
	defer cancel()
	c, err := resp.Dial(ctx, addr, resp.DialOptions{DialTimeout: cfg.Limits.DialTimeout, Timeout: 2 * time.Second,
		Username: cfg.Auth.User, Password: cfg.Auth.Password})
	if err == nil {
		var v resp.Value
		if v, err = c.Do(ctx, "COMMAND"); err == nil {
			t, err = forward.NewCommandTable(v)
		}
		c.Close()
	}
	if err != nil {
		p.log.Warn("durability: cannot read the master's COMMAND table: every command counts as a write", "master", addr, "err", err)
		return nil
	}
	p.durMu.Lock()
	p.durCmds[addr] = t
	p.durMu.Unlock()
	p.log.Info("durability: command table read", "master", addr, "commands", t.Len())
	return t
}

// replicaWatch polls a master's INFO replication for the "async"
// no-replica policy: none is true while the master lists no replica in
// state "online" (one that acknowledges, so WAIT could count it).
type replicaWatch struct {
	none atomic.Bool
}

func (p *Proxy) replicaWatch(cfg *Config, addr string) *replicaWatch {
	p.durMu.Lock()
	defer p.durMu.Unlock()
	if w := p.durRepl[addr]; w != nil {
		return w
	}
	w := &replicaWatch{}
	p.durRepl[addr] = w
	// Said once per master, so a log shows which policy is in force.
	p.log.Info("durability: watching the master's replicas (durability_no_replica: async)", "master", addr)
	go p.pollReplicas(w, addr)
	return w
}

// pollReplicas keeps w current while addr is the master the proxy routes
// to. Once the route names another master, addr is a former master: its
// INFO says nothing about where writes go now (restarted as a replica it
// lists no replica of its own, which read as "no replica"), so the watch
// ends. Its connections, if any are left open, fall back to waiting for
// replication (none = false, the refusing side), and a route back to addr
// starts a new watch.
func (p *Proxy) pollReplicas(w *replicaWatch, addr string) {
	var c *resp.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		if m := p.route.Load().Master; m != "" && m != addr {
			w.none.Store(false)
			p.durMu.Lock()
			if p.durRepl[addr] == w {
				delete(p.durRepl, addr)
			}
			p.durMu.Unlock()
			p.log.Info("durability: stopped watching a former master's replicas", "former_master", addr, "master", m)
			return
		}
		cfg := p.cfg.Load()
		ctx, cancel := context.WithTimeout(p.ctx, cfg.Check.Timeout+cfg.Limits.DialTimeout)
		var err error
		if c == nil {
			c, err = resp.Dial(ctx, addr, resp.DialOptions{DialTimeout: cfg.Limits.DialTimeout, Timeout: cfg.Check.Timeout,
				Username: cfg.Auth.User, Password: cfg.Auth.Password})
		}
		var v resp.Value
		if err == nil {
			v, err = c.Do(ctx, "INFO", "replication")
		}
		cancel()
		if err != nil {
			if c != nil {
				c.Close()
				c = nil
			}
			// Unknown: keep the last answer (a master nobody can reach
			// gets no writes through anyway).
		} else {
			none := onlineReplicas(v.Text()) == 0
			if w.none.Swap(none) != none {
				if none {
					p.log.Warn("durability: the master has no online replica: writes are acknowledged asynchronously (durability_no_replica: async)", "master", addr)
				} else {
					p.log.Info("durability: the master has an online replica again: writes wait for replication", "master", addr)
				}
			}
		}
		t := time.NewTimer(cfg.Check.Interval)
		select {
		case <-p.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// onlineReplicas counts INFO replication's "slaveN:...,state=online,..."
// lines.
func onlineReplicas(info string) int {
	n := 0
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "slave") || !strings.Contains(line, ":") {
			continue
		}
		if _, err := strconv.Atoi(strings.TrimPrefix(line[:strings.Index(line, ":")], "slave")); err != nil {
			continue
		}
		if strings.Contains(line, "state=online") {
			n++
		}
	}
	return n
}
