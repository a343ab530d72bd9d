package server

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness"
)

func writeFields(w *resp.Writer, fs []witness.Field) {
	w.Map(len(fs))
	for _, f := range fs {
		w.Bulk(f.Name)
		w.Bulk(f.Value)
	}
}

const errNoMaster = "ERR No such master with that name"

func (c *clientConn) cmdSentinel(args []string) {
	if len(args) < 2 {
		c.reply(func(w *resp.Writer) { w.Error(errArity("sentinel")) })
		return
	}
	sub := strings.ToLower(args[1])
	s := c.s
	arity := func(n int) bool {
		if len(args) != n {
			c.reply(func(w *resp.Writer) { w.Error(errArity("sentinel|" + sub)) })
			return false
		}
		return true
	}
	switch sub {
	case "myid":
		if arity(2) {
			id := s.MyID()
			c.reply(func(w *resp.Writer) { w.Bulk(id) })
		}
	case "masters":
		if !arity(2) {
			return
		}
		s.mu.Lock()
		now := s.opts.Now()
		var all [][]witness.Field
		for _, n := range s.core.MasterNames() {
			f, _ := s.core.MasterFields(n, now)
			all = append(all, f)
		}
		s.mu.Unlock()
		c.reply(func(w *resp.Writer) {
			w.Array(len(all))
			for _, f := range all {
				writeFields(w, f)
			}
		})
	case "master":
		if !arity(3) {
			return
		}
		s.mu.Lock()
		f, ok := s.core.MasterFields(args[2], s.opts.Now())
		s.mu.Unlock()
		c.reply(func(w *resp.Writer) {
			if !ok {
				w.Error(errNoMaster)
				return
			}
			writeFields(w, f)
		})
	case "replicas", "slaves", "sentinels":
		if !arity(3) {
			return
		}
		s.mu.Lock()
		var list [][]witness.Field
		var ok bool
		if sub == "sentinels" {
			list, ok = s.core.SentinelFields(args[2], s.opts.Now())
		} else {
			list, ok = s.core.ReplicaFields(args[2], s.opts.Now())
		}
		s.mu.Unlock()
		c.reply(func(w *resp.Writer) {
			if !ok {
				w.Error(errNoMaster)
				return
			}
			w.Array(len(list))
			for _, f := range list {
				writeFields(w, f)
			}
		})
	case "get-master-addr-by-name":
		if !arity(3) {
			return
		}
		s.mu.Lock()
		a, ok := s.core.MasterAddr(args[2])
		s.mu.Unlock()
		c.reply(func(w *resp.Writer) {
			if !ok {
				w.NullArray()
				return
			}
			w.Array(2)
			w.Bulk(a.IP)
			w.Bulk(strconv.Itoa(a.Port))
		})
	case "ckquorum":
		if !arity(3) {
			return
		}
		s.mu.Lock()
		ok, msg, found := s.core.CKQuorum(args[2])
		s.mu.Unlock()
		c.reply(func(w *resp.Writer) {
			switch {
			case !found:
				w.Error(errNoMaster)
			case ok:
				w.Simple(msg)
			default:
				w.Error(msg)
			}
		})
	case "is-master-down-by-addr":
		c.cmdIsMasterDown(args)
	case "failover":
		c.reply(func(w *resp.Writer) {
			w.Error("ERR redisha-witness never runs a failover; ask one of the redis-sentinel peers")
		})
	case "monitor", "remove", "set", "reset", "flushconfig", "config", "simulate-failure", "debug", "info-cache", "pending-scripts":
		c.reply(func(w *resp.Writer) {
			w.Error(fmt.Sprintf("ERR SENTINEL %s is not supported by redisha-witness; its masters come from its config file", strings.ToUpper(sub)))
		})
	default:
		c.reply(func(w *resp.Writer) {
			w.Error(fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try SENTINEL HELP.", args[1]))
		})
	}
}

// cmdIsMasterDown answers SENTINEL is-master-down-by-addr ip port epoch runid.
// A vote, or an epoch raised by the request, is on disk before the reply
// leaves; if it cannot be persisted the peer gets an error instead, which
// redis-sentinel ignores like a missing reply.
func (c *clientConn) cmdIsMasterDown(args []string) {
	if len(args) != 6 {
		c.reply(func(w *resp.Writer) { w.Error(errArity("sentinel|is-master-down-by-addr")) })
		return
	}
	port, err := strconv.ParseInt(args[3], 10, 64)
	if err != nil {
		c.reply(func(w *resp.Writer) { w.Error("ERR value is not an integer or out of range") })
		return
	}
	epoch, err := strconv.ParseUint(args[4], 10, 64)
	if err != nil || epoch > 1<<63-1 {
		c.reply(func(w *resp.Writer) { w.Error("ERR value is not an integer or out of range") })
		return
	}
	s := c.s
	s.mu.Lock()
	now := s.opts.Now()
	var rep witness.IsMasterDownReply
	if port > 0 && port <= 65535 {
		rep = s.core.IsMasterDownByAddr(args[2], int(port), epoch, args[5], now)
	} else {
		rep = witness.IsMasterDownReply{Leader: "*"}
	}
	perr := s.persistLocked()
	actions := s.core.Drain()
	for _, a := range actions {
		s.dispatchLocked(a)
	}
	s.mu.Unlock()
	if perr != nil {
		s.log.Error("vote not persisted; replying with an error", "err", perr)
		c.reply(func(w *resp.Writer) { w.Error("ERR witness could not persist its vote: " + perr.Error()) })
		return
	}
	if args[5] != "*" {
		s.metrics.voteRequests.Inc()
		s.log.Info("is-master-down-by-addr", "master", args[2]+":"+args[3], "req_epoch", epoch, "candidate", args[5],
			"down", rep.Down, "leader", rep.Leader, "leader_epoch", rep.LeaderEpoch)
	}
	down := int64(0)
	if rep.Down {
		down = 1
	}
	c.reply(func(w *resp.Writer) {
		w.Array(3)
		w.Int(down)
		w.Bulk(rep.Leader)
		w.Int(int64(rep.LeaderEpoch))
	})
}
