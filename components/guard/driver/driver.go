// Package driver runs the restart guard's core: it asks the sentinels and
// the redis nodes through an injected Transport, turns their replies into the
// core's observations with the project's RESP and INFO parsers, performs the
// core's actions, and sleeps on an injected Clock until the core's Next. It
// opens no sockets and reads no clock of its own.
package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redisha/redisha/components/guard/core"
	"github.com/redisha/redisha/components/resp"
)

// Auth is what a connection sends with AUTH before its commands (nothing
// when Password is empty).
type Auth struct {
	Username string
	Password string
}

// Request is a list of commands for one address, sent on one connection.
type Request struct {
	Addr string
	Auth Auth
	Cmds [][]string
}

// Reply is the answer to one Request.
type Reply struct {
	// Values has one value per command, error replies included; it is
	// complete whenever Err is nil.
	Values []resp.Value
	// Err is a connection or protocol failure.
	Err error
	// Refused is true when the connection was refused (nothing listens).
	Refused bool
}

// Transport sends requests. Do runs all of them concurrently, each on its
// own connection, returns their replies in order, and returns by ctx's
// deadline.
type Transport interface {
	Do(ctx context.Context, reqs []Request) []Reply
}

// Clock is the time source and the one way the driver waits.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t, or early with ctx's error.
	SleepUntil(ctx context.Context, t time.Time) error
}

// Options says whom to ask.
type Options struct {
	MasterName   string
	Self         string   // this node's host:port (never probed)
	Sentinels    []string // host:port of every configured sentinel
	Nodes        []string // host:port of the other redis nodes (replicas the sentinels know are added)
	SentinelAuth Auth
	NodeAuth     Auth
	Log          *slog.Logger // debug lines per round; nil: silent
}

// Run drives c until it decides, and returns the decision. It returns an
// error only when ctx ends first.
func Run(ctx context.Context, c *core.Core, o Options, t Transport, clk Clock) (core.Decision, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	acts := c.Tick(clk.Now())
	for {
		for len(acts) > 0 {
			a := acts[0]
			acts = acts[1:]
			switch a := a.(type) {
			case core.Probe:
				r := Gather(ctx, c.Deadline(), o, t)
				log.Debug("round", "round", summary(r))
				acts = append(acts, c.Observe(clk.Now(), r)...)
			case core.Failover:
				log.Info("asking the sentinels to fail over", "sentinel", a.Sentinel, "master_name", o.MasterName, "why", a.Reason)
				err := failover(ctx, c.Deadline(), o, t, a.Sentinel)
				acts = append(acts, c.FailoverResult(clk.Now(), a.Sentinel, err)...)
			case core.Decide:
				return a.Decision, nil
			}
		}
		if err := clk.SleepUntil(ctx, c.Next()); err != nil {
			return core.Decision{}, err
		}
		acts = c.Tick(clk.Now())
	}
}

func do(ctx context.Context, deadline time.Time, t Transport, reqs []Request) []Reply {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return t.Do(ctx, reqs)
}

// Gather asks every sentinel, then every node: the configured ones and the
// replicas the sentinels list.
func Gather(ctx context.Context, deadline time.Time, o Options, t Transport) core.Round {
	var r core.Round
	reqs := make([]Request, len(o.Sentinels))
	for i, s := range o.Sentinels {
		reqs[i] = Request{Addr: s, Auth: o.SentinelAuth, Cmds: [][]string{
			{"SENTINEL", "GET-MASTER-ADDR-BY-NAME", o.MasterName},
			{"SENTINEL", "MASTER", o.MasterName},
			{"SENTINEL", "REPLICAS", o.MasterName},
		}}
	}
	nodes := map[string]bool{}
	for _, n := range o.Nodes {
		nodes[n] = true
	}
	for i, rep := range do(ctx, deadline, t, reqs) {
		obs, replicas := SentinelObs(o.Sentinels[i], rep)
		r.Sentinels = append(r.Sentinels, obs)
		for _, a := range replicas {
			nodes[a] = true
		}
	}
	delete(nodes, o.Self)
	addrs := make([]string, 0, len(nodes))
	for a := range nodes {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	reqs = reqs[:0]
	for _, a := range addrs {
		reqs = append(reqs, Request{Addr: a, Auth: o.NodeAuth, Cmds: [][]string{{"INFO", "replication"}}})
	}
	if len(reqs) > 0 {
		for i, rep := range do(ctx, deadline, t, reqs) {
			r.Nodes = append(r.Nodes, NodeObs(addrs[i], rep))
		}
	}
	return r
}

func failover(ctx context.Context, deadline time.Time, o Options, t Transport, sentinel string) error {
	rep := do(ctx, deadline, t, []Request{{Addr: sentinel, Auth: o.SentinelAuth,
		Cmds: [][]string{{"SENTINEL", "FAILOVER", o.MasterName}}}})[0]
	if rep.Err != nil {
		return rep.Err
	}
	if v := rep.Values[0]; v.IsError() {
		return errors.New(v.Str)
	}
	return nil
}

// SentinelObs turns a sentinel's replies to GET-MASTER-ADDR-BY-NAME, MASTER
// and REPLICAS into an observation and the replicas' addresses.
func SentinelObs(addr string, rep Reply) (core.SentinelObs, []string) {
	obs := core.SentinelObs{Addr: addr, Err: rep.Err, Refused: rep.Refused}
	if rep.Err != nil {
		return obs, nil
	}
	if len(rep.Values) != 3 {
		obs.Err = fmt.Errorf("%d replies to 3 commands", len(rep.Values))
		return obs, nil
	}
	byName, master, replicas := rep.Values[0], rep.Values[1], rep.Values[2]
	if master.IsError() {
		if strings.Contains(strings.ToLower(master.Str), "no such master") {
			return obs, nil // answered: it monitors no such name
		}
		obs.Err = fmt.Errorf("SENTINEL MASTER: %s", master.Str)
		return obs, nil
	}
	if byName.IsError() || byName.Null || len(byName.Elems) != 2 {
		obs.Err = fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME: unexpected %s %q", byName.Kind, byName.Str)
		return obs, nil
	}
	fields, err := master.Pairs()
	if err != nil {
		obs.Err = fmt.Errorf("SENTINEL MASTER: %w", err)
		return obs, nil
	}
	epoch, err := strconv.ParseInt(fields["config-epoch"], 10, 64)
	if err != nil {
		obs.Err = fmt.Errorf("SENTINEL MASTER: config-epoch %q", fields["config-epoch"])
		return obs, nil
	}
	obs.Known = true
	obs.Master = net.JoinHostPort(byName.Elems[0].Text(), byName.Elems[1].Text())
	obs.Epoch = epoch
	for _, f := range strings.Split(fields["flags"], ",") {
		if f == "failover_in_progress" {
			obs.FailoverInProgress = true
		}
	}
	var addrs []string
	if !replicas.IsError() {
		for _, e := range replicas.Elems {
			if p, err := e.Pairs(); err == nil && p["ip"] != "" && p["port"] != "" {
				addrs = append(addrs, net.JoinHostPort(p["ip"], p["port"]))
			}
		}
	}
	return obs, addrs
}

// NodeObs turns a node's INFO replication reply into an observation.
func NodeObs(addr string, rep Reply) core.NodeObs {
	obs := core.NodeObs{Addr: addr, Err: rep.Err, Refused: rep.Refused, SecondOffset: -1}
	if rep.Err != nil {
		return obs
	}
	if len(rep.Values) != 1 {
		obs.Err = fmt.Errorf("%d replies to 1 command", len(rep.Values))
		return obs
	}
	v := rep.Values[0]
	if v.IsError() {
		obs.Err = fmt.Errorf("INFO: %s", v.Str)
		return obs
	}
	info := resp.ParseInfo(v.Text())
	obs.Role = info.Get("role")
	obs.ReplID = info.Get("master_replid")
	obs.ReplID2 = info.Get("master_replid2")
	off, err := strconv.ParseInt(info.Get("master_repl_offset"), 10, 64)
	if err != nil || obs.Role == "" {
		obs.Err = fmt.Errorf("INFO replication without role or master_repl_offset")
		return obs
	}
	obs.Offset = off
	if s, err := strconv.ParseInt(info.Get("second_repl_offset"), 10, 64); err == nil {
		obs.SecondOffset = s
	}
	return obs
}

func summary(r core.Round) string {
	var parts []string
	for _, s := range r.Sentinels {
		switch {
		case s.Err != nil:
			parts = append(parts, fmt.Sprintf("%s: %v", s.Addr, s.Err))
		case !s.Known:
			parts = append(parts, s.Addr+": unknown master")
		default:
			parts = append(parts, fmt.Sprintf("%s: %s@%d", s.Addr, s.Master, s.Epoch))
		}
	}
	for _, n := range r.Nodes {
		if n.Err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", n.Addr, n.Err))
		} else {
			parts = append(parts, fmt.Sprintf("%s: %s %.8s:%d", n.Addr, n.Role, n.ReplID, n.Offset))
		}
	}
	return strings.Join(parts, "; ")
}
