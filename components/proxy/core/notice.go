package core

import (
	"strconv"
	"strings"
)

// Effect is what a sentinel notice means for routing.
type Effect int

// Effects of sentinel notices.
const (
	// EffectCheck: something changed around the master; re-check now.
	EffectCheck Effect = iota
	// EffectFence: a failover of OldAddr is past the point of no return
	// (a replica was told, or is about to be told, REPLICAOF NO ONE).
	EffectFence
	// EffectAbort: a failover of OldAddr was abandoned.
	EffectAbort
)

// ParsedNotice is the interpretation of one sentinel pub/sub message.
type ParsedNotice struct {
	Effect  Effect
	Master  string // master name; "" when the message names none (e.g. +new-epoch)
	OldAddr string // the master's address as the message gives it ("ip:port")
	NewAddr string // +switch-master only: the new master address
}

// fenceChannels are failover steps after which writes to the old master may
// be lost: the replica is being promoted or already was.
var fenceChannels = map[string]bool{
	"+failover-state-send-slaveof-noone": true,
	"+failover-state-wait-promotion":     true,
	"+promoted-slave":                    true,
	"+failover-state-reconf-slaves":      true,
	"+failover-end":                      true,
	"+failover-end-for-timeout":          true,
	"+switch-master":                     true,
	"+config-update-from":                true,
}

// ParseNotice interprets a sentinel event message. Payload formats (from
// sentinel.c's sentinelEvent "%@"):
//
//	master <name> <ip> <port>
//	<slave|sentinel> <name> <ip> <port> @ <master> <mip> <mport>
//	(either may carry trailing text, e.g. "+odown ... #quorum 2/2")
//	+switch-master: <master> <oldip> <oldport> <newip> <newport>
//	+new-epoch: <epoch>
//
// ok is false for messages that carry nothing about any master.
func ParseNotice(channel, payload string) (ParsedNotice, bool) {
	f := strings.Fields(payload)
	var p ParsedNotice
	switch {
	case fenceChannels[channel]:
		p.Effect = EffectFence
	case strings.HasPrefix(channel, "-failover-abort"):
		p.Effect = EffectAbort
	default:
		p.Effect = EffectCheck
	}
	switch channel {
	case "+switch-master":
		if len(f) != 5 {
			return ParsedNotice{}, false
		}
		old, ok1 := joinAddr(f[1], f[2])
		nw, ok2 := joinAddr(f[3], f[4])
		if !ok1 || !ok2 {
			return ParsedNotice{}, false
		}
		p.Master, p.OldAddr, p.NewAddr = f[0], old, nw
		return p, true
	case "+new-epoch":
		if len(f) != 1 {
			return ParsedNotice{}, false
		}
		if _, err := strconv.ParseUint(f[0], 10, 64); err != nil {
			return ParsedNotice{}, false
		}
		return ParsedNotice{Effect: EffectCheck}, true
	}
	if at := indexOf(f, "@"); at >= 0 {
		if len(f) < at+4 {
			return ParsedNotice{}, false
		}
		addr, ok := joinAddr(f[at+2], f[at+3])
		if !ok {
			return ParsedNotice{}, false
		}
		p.Master, p.OldAddr = f[at+1], addr
		return p, true
	}
	if len(f) >= 4 && f[0] == "master" {
		addr, ok := joinAddr(f[2], f[3])
		if !ok {
			return ParsedNotice{}, false
		}
		p.Master, p.OldAddr = f[1], addr
		return p, true
	}
	return ParsedNotice{}, false
}

func indexOf(f []string, s string) int {
	for i, x := range f {
		if x == s {
			return i
		}
	}
	return -1
}

// joinAddr validates a port and joins host and port the way the rest of the
// proxy spells backend addresses (net.JoinHostPort's form, without importing
// net into the core). Hosts with brackets, slashes or white space are
// refused, so the result always reads back as the same host and port
// (FuzzParseNotice checks that with net.SplitHostPort).
func joinAddr(host, port string) (string, bool) {
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 || host == "" || strings.ContainsAny(host, "[]/ \t\r\n") {
		return "", false
	}
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]:" + strconv.Itoa(n), true
	}
	return host + ":" + strconv.Itoa(n), true
}

// JoinAddr is joinAddr for drivers that build addresses from sentinel replies.
func JoinAddr(host, port string) (string, bool) { return joinAddr(host, port) }
