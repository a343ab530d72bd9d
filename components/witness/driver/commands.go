package driver

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
)

// ErrArity is Redis's wrong-number-of-arguments error text for cmd.
func ErrArity(cmd string) string {
	return fmt.Sprintf("ERR wrong number of arguments for '%s' command", strings.ToLower(cmd))
}

const errNoMaster = "ERR No such master with that name"

// Command runs a client command that needs the core (SENTINEL ..., PUBLISH,
// ROLE) and writes its reply to w, in w's protocol. It returns false, and
// writes nothing, for any other command: connection commands (AUTH, HELLO,
// SUBSCRIBE, ...) are the daemon's. The caller has checked authentication.
// Its replies are never held (ClientCommand with client 0).
func (d *Driver) Command(now time.Time, args []string, w *resp.Writer) bool {
	ok, _ := d.ClientCommand(now, 0, args, w)
	return ok
}

// ClientCommand is Command for a command read on client's connection. A
// non-zero ticket means the reply was held (see IsMasterDownFrom): nothing
// was written to w, and the connection must run no later command until
// HeldReplies.Release has sent the reply with that ticket.
func (d *Driver) ClientCommand(now time.Time, client core.ClientID, args []string, w *resp.Writer) (handled bool, ticket uint64) {
	if len(args) == 0 {
		return false, 0
	}
	switch strings.ToLower(args[0]) {
	case "sentinel":
		ticket = d.sentinel(now, client, args, w)
	case "publish":
		d.publish(now, args, w)
	case "role":
		names := d.core.MasterNames()
		w.Array(2)
		w.Bulk("sentinel")
		w.Array(len(names))
		for _, n := range names {
			w.Bulk(n)
		}
	default:
		return false, 0
	}
	return true, ticket
}

// publish answers a peer's PUBLISH (sentinelPublishCommand): only the hello
// channel is accepted, and the reply is always :1, after the hello's state
// change is stored.
func (d *Driver) publish(now time.Time, args []string, w *resp.Writer) {
	if len(args) != 3 {
		w.Error(ErrArity("publish"))
		return
	}
	if args[1] != core.HelloChannel {
		w.Error("ERR Only HELLO messages are accepted by Sentinel instances.")
		return
	}
	_ = d.HandleHello(now, args[2], ViaPublish)
	w.Int(1)
}

func writeFields(w *resp.Writer, fs []core.Field) {
	w.Map(len(fs))
	for _, f := range fs {
		w.Bulk(f.Name)
		w.Bulk(f.Value)
	}
}

// sentinel runs a SENTINEL subcommand; a non-zero ticket is a held reply.
func (d *Driver) sentinel(now time.Time, client core.ClientID, args []string, w *resp.Writer) uint64 {
	if len(args) < 2 {
		w.Error(ErrArity("sentinel"))
		return 0
	}
	if strings.EqualFold(args[1], "is-master-down-by-addr") {
		return d.isMasterDownCmd(now, client, args, w)
	}
	d.sentinelOther(now, args, w)
	return 0
}

func (d *Driver) sentinelOther(now time.Time, args []string, w *resp.Writer) {
	sub := strings.ToLower(args[1])
	c := d.core
	arity := func(n int) bool {
		if len(args) != n {
			w.Error(ErrArity("sentinel|" + sub))
			return false
		}
		return true
	}
	switch sub {
	case "myid":
		if arity(2) {
			w.Bulk(c.MyID())
		}
	case "masters":
		if !arity(2) {
			return
		}
		names := c.MasterNames()
		w.Array(len(names))
		for _, n := range names {
			f, _ := c.MasterFields(now, n)
			writeFields(w, f)
		}
	case "master":
		if !arity(3) {
			return
		}
		f, ok := c.MasterFields(now, args[2])
		if !ok {
			w.Error(errNoMaster)
			return
		}
		writeFields(w, f)
	case "replicas", "slaves", "sentinels":
		if !arity(3) {
			return
		}
		var list [][]core.Field
		var ok bool
		if sub == "sentinels" {
			list, ok = c.SentinelFields(now, args[2])
		} else {
			list, ok = c.ReplicaFields(now, args[2])
		}
		if !ok {
			w.Error(errNoMaster)
			return
		}
		w.Array(len(list))
		for _, f := range list {
			writeFields(w, f)
		}
	case "get-master-addr-by-name":
		if !arity(3) {
			return
		}
		a, ok := c.MasterAddr(args[2])
		if !ok {
			w.NullArray()
			return
		}
		w.Array(2)
		w.Bulk(a.IP)
		w.Bulk(strconv.Itoa(a.Port))
	case "ckquorum":
		if !arity(3) {
			return
		}
		ok, msg, found := c.CKQuorum(args[2])
		switch {
		case !found:
			w.Error(errNoMaster)
		case ok:
			w.Simple(msg)
		default:
			w.Error(msg)
		}
	case "failover":
		w.Error("ERR redisha-witness never runs a failover; ask one of the redis-sentinel peers")
	case "reset":
		// SENTINEL RESET <pattern>: the number of masters reset, as sentinel.
		if len(args) != 3 {
			w.Error(ErrArity("sentinel|reset"))
			return
		}
		n, acts := d.core.Reset(now, args[2])
		d.apply(now, acts)
		d.persistErr = nil
		w.Int(int64(n))
	case "monitor", "remove", "set", "flushconfig", "config", "simulate-failure", "debug", "info-cache", "pending-scripts":
		w.Error(fmt.Sprintf("ERR SENTINEL %s is not supported by redisha-witness; its masters come from its config file", strings.ToUpper(sub)))
	default:
		w.Error(fmt.Sprintf("ERR unknown subcommand or wrong number of arguments for '%s'. Try SENTINEL HELP.", args[1]))
	}
}

// isMasterDownCmd answers SENTINEL is-master-down-by-addr ip port epoch
// runid: the vote is on disk before the reply is written, or the reply is an
// error. A non-zero ticket: the reply is held, nothing is written.
func (d *Driver) isMasterDownCmd(now time.Time, client core.ClientID, args []string, w *resp.Writer) uint64 {
	if len(args) != 6 {
		w.Error(ErrArity("sentinel|is-master-down-by-addr"))
		return 0
	}
	port, err := strconv.ParseInt(args[3], 10, 64)
	if err != nil {
		w.Error("ERR value is not an integer or out of range")
		return 0
	}
	epoch, err := strconv.ParseUint(args[4], 10, 64)
	if err != nil || epoch > 1<<63-1 {
		w.Error("ERR value is not an integer or out of range")
		return 0
	}
	p := 0
	if port > 0 && port <= 65535 {
		p = int(port)
	}
	rep, ticket, err := d.IsMasterDownFrom(now, client, args[2], p, epoch, args[5])
	if ticket != 0 {
		return ticket
	}
	WriteDownReply(w, rep, err)
	return 0
}

// WriteDownReply writes the reply to is-master-down-by-addr: the
// [down, leader, leader epoch] array, or an error reply when err is set
// (the vote could not be stored).
func WriteDownReply(w *resp.Writer, rep core.IsMasterDownReply, err error) {
	if err != nil {
		w.Error("ERR " + err.Error())
		return
	}
	down := int64(0)
	if rep.Down {
		down = 1
	}
	w.Array(3)
	w.Int(down)
	w.Bulk(rep.Leader)
	w.Int(int64(rep.LeaderEpoch))
}

// InfoSentinel is INFO's "# Sentinel" section.
func (d *Driver) InfoSentinel(now time.Time) string { return d.core.InfoSentinel(now) }
