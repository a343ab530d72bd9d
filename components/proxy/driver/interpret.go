// Package driver is redisha-proxy's event loop logic around the routing
// core: it turns probe replies and sentinel pub/sub messages (RESP values,
// parsed by components/resp) into core events with the interpreters in
// this file, and carries out the core's actions through the injected
// Prober and Router. It is single-threaded and does no I/O of its own: the
// daemon (components/proxy/daemon) runs it over real sockets, the
// simulator (sim/proxysim) over its virtual network.
package driver

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redisha/redisha/components/proxy/core"
	"github.com/redisha/redisha/components/resp"
)

// HealthFromInfo turns an INFO replication text into a health result.
// A reply without a recognisable role is an error, not a guess.
func HealthFromInfo(at time.Time, backend, text string) core.Health {
	h := core.Health{At: at, Backend: backend}
	info := resp.ParseInfo(text)
	switch role := info.Get("role"); role {
	case "master":
		h.Role = core.RoleMaster
		h.Offset, _ = strconv.ParseInt(info.Get("master_repl_offset"), 10, 64)
	case "slave":
		h.Role = core.RoleReplica
		h.LinkUp = info.Get("master_link_status") == "up"
		h.Offset, _ = strconv.ParseInt(info.Get("slave_repl_offset"), 10, 64)
		if a, ok := core.JoinAddr(info.Get("master_host"), info.Get("master_port")); ok {
			h.MasterAddr = a
		}
	default:
		h.Err = fmt.Sprintf("INFO replication without a known role (role:%q)", truncate(role, 40))
		return h
	}
	h.OK = true
	return h
}

// ViewFromReplies interprets a sentinel's replies to
// SENTINEL MASTER <name> (flat field/value pairs, or a RESP3 map) and
// SENTINEL GET-MASTER-ADDR-BY-NAME <name> (a two-element array).
//
// The epoch comes from SENTINEL MASTER's config-epoch. The address comes
// from GET-MASTER-ADDR-BY-NAME when it is valid, because during the last
// step of a failover the leader already answers the promoted replica there
// (what it announces to its peers) while SENTINEL MASTER still shows the old
// address; otherwise from SENTINEL MASTER's ip and port. Sent together in one
// pipeline, both answers describe the same moment.
func ViewFromReplies(at time.Time, sentinel string, master, addr resp.Value) core.View {
	v := core.View{At: at, Sentinel: sentinel}
	if master.IsError() {
		v.Err = "SENTINEL MASTER: " + truncate(master.Str, 120)
		return v
	}
	fields, err := master.Pairs()
	if err != nil {
		v.Err = "SENTINEL MASTER: " + err.Error()
		return v
	}
	epoch, err := strconv.ParseInt(fields["config-epoch"], 10, 64)
	if err != nil || epoch < 0 {
		v.Err = fmt.Sprintf("SENTINEL MASTER: bad config-epoch %q", truncate(fields["config-epoch"], 40))
		return v
	}
	a, ok := core.JoinAddr(fields["ip"], fields["port"])
	if !ok {
		v.Err = fmt.Sprintf("SENTINEL MASTER: bad address %q %q", truncate(fields["ip"], 60), truncate(fields["port"], 20))
		return v
	}
	if !addr.IsError() && !addr.Null && len(addr.Elems) == 2 && isText(addr.Elems[0]) && isText(addr.Elems[1]) {
		if cur, ok := core.JoinAddr(addr.Elems[0].Str, addr.Elems[1].Str); ok {
			a = cur
		}
	}
	v.OK, v.Addr, v.Epoch = true, a, epoch
	return v
}

// HealthFromReplies interprets a backend's replies to PING and INFO
// replication, sent together in one pipeline.
func HealthFromReplies(at time.Time, backend string, ping, info resp.Value) core.Health {
	switch {
	case ping.IsError():
		return core.Health{At: at, Backend: backend, Err: "PING: " + truncate(ping.Str, 120)}
	case !isText(ping) || ping.Str != "PONG":
		return core.Health{At: at, Backend: backend, Err: fmt.Sprintf("PING answered %q", truncate(ping.Text(), 40))}
	case info.IsError():
		return core.Health{At: at, Backend: backend, Err: "INFO: " + truncate(info.Str, 120)}
	case !isText(info):
		return core.Health{At: at, Backend: backend, Err: fmt.Sprintf("INFO answered a %v", info.Kind)}
	}
	return HealthFromInfo(at, backend, info.Str)
}

// NoticeFromMessage interprets one value read on a PSUBSCRIBE connection.
// ok is false for subscription confirmations and anything malformed.
func NoticeFromMessage(v resp.Value) (channel, payload string, ok bool) {
	if (v.Kind != resp.Array && v.Kind != resp.Push) || len(v.Elems) != 4 {
		return "", "", false
	}
	for _, e := range v.Elems {
		if !isText(e) {
			return "", "", false
		}
	}
	if !strings.EqualFold(v.Elems[0].Str, "pmessage") {
		return "", "", false
	}
	return v.Elems[2].Str, v.Elems[3].Str, true
}

// HelloFromMessage interprets one value read on a SUBSCRIBE
// __sentinel__:hello connection (or a PSUBSCRIBE one matching it): the
// payload of a message on that channel. ok is false for confirmations and
// anything else.
func HelloFromMessage(v resp.Value) (payload string, ok bool) {
	if v.Kind != resp.Array && v.Kind != resp.Push {
		return "", false
	}
	for _, e := range v.Elems {
		if !isText(e) {
			return "", false
		}
	}
	switch {
	case len(v.Elems) == 3 && strings.EqualFold(v.Elems[0].Str, "message") && v.Elems[1].Str == core.HelloChannel:
		return v.Elems[2].Str, true
	case len(v.Elems) == 4 && strings.EqualFold(v.Elems[0].Str, "pmessage") && v.Elems[2].Str == core.HelloChannel:
		return v.Elems[3].Str, true
	}
	return "", false
}

// RunIDFromReply is a sentinel's answer to SENTINEL MYID: its run id, or ""
// when the answer is an error or not a run id.
func RunIDFromReply(v resp.Value) string {
	if !isText(v) || !core.ValidRunID(v.Str) {
		return ""
	}
	return v.Str
}

func isText(v resp.Value) bool {
	return v.Kind == resp.BulkString || v.Kind == resp.SimpleString || v.Kind == resp.Verbatim
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
