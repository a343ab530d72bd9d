package core

import "time"

// ActionKind says what the driver must do.
type ActionKind uint8

// Action kinds.
const (
	// ActPing: send PING on Target's command link; answer with PingReply or LinkFailed.
	ActPing ActionKind = iota + 1
	// ActInfo: send INFO; answer with InfoReply or LinkFailed.
	ActInfo
	// ActHello: PUBLISH __sentinel__:hello Hello.String() on Target's command
	// link (an empty Hello.IP means: the local IP of that link, as sentinel
	// does without announce-ip); answer with PublishReply or LinkFailed.
	ActHello
	// ActAsk: send SENTINEL is-master-down-by-addr Ask.IP Ask.Port
	// Ask.Epoch Ask.RunID to the sentinel Target; answer with AskReply or LinkFailed.
	ActAsk
	// ActEvent: log Event and publish it to subscribed clients.
	ActEvent
	// ActPersist: write State durably (atomically, with fsync) before doing
	// any action that follows it. It always comes first in an event's
	// actions, so nothing caused by a change can leave before the change is
	// on disk.
	ActPersist
	// ActDownReply: send Down as the reply to the is-master-down-by-addr
	// request that caused it, but only if every ActPersist before it
	// succeeded; otherwise the requester gets an error, never the vote.
	ActDownReply
	// ActProbe: open a fresh command connection to Target and send PING on
	// it, keeping the current connection and its pending commands (a slow
	// link is not a dead one); answer with HandleReply or LinkFailed of
	// ActProbe. The probe's connection is closed after its reply unless an
	// ActAdopt for the same target follows while that reply is handled.
	ActProbe
	// ActAdopt: the probe's connection becomes Target's command link; the
	// old connection is closed and the replies it still owed are dropped
	// (the core has already forgotten those commands).
	ActAdopt
	// ActHold: the reply to the is-master-down-by-addr request that caused
	// it is held back (see IsMasterDownByAddrFrom): it comes later as an
	// ActDownReply with the same Ticket, from a Tick, a PING reply or a
	// link event, by Until at the latest (Next includes it). Like a
	// blocked client in Redis, the requester's connection gets nothing
	// else before it: its later commands wait behind the held reply.
	ActHold
)

// Release says why a held reply was released.
type Release uint8

// Release reasons.
const (
	// ReleaseDown: the witness's own SDOWN fired; the reply is down=1.
	ReleaseDown Release = iota + 1
	// ReleaseAlive: the master proved alive (PONG, LOADING, MASTERDOWN) or
	// its SDOWN clock restarted; the reply is down=0.
	ReleaseAlive
	// ReleaseBound: the hold's bound passed (or TILT began, or the master
	// moved): the reply is the state at that moment.
	ReleaseBound
)

func (r Release) String() string {
	switch r {
	case ReleaseDown:
		return "down"
	case ReleaseAlive:
		return "alive"
	case ReleaseBound:
		return "bound"
	}
	return "none"
}

// AskRequest is a SENTINEL is-master-down-by-addr request the witness sends.
type AskRequest struct {
	IP    string
	Port  int
	Epoch uint64
	RunID string
}

// Level is an event's severity, as sentinel's log levels.
type Level uint8

// Event levels.
const (
	LevelVerbose Level = iota + 1
	LevelNotice
	LevelWarning
)

// Event is what sentinelEvent publishes: Type is the Pub/Sub channel
// ("+sdown", "+switch-master", ...), Msg the payload.
type Event struct {
	Level Level
	Type  string
	Msg   string
}

// Action is one thing the core asks the driver to do. An event method
// returns its actions in the order the driver must carry them out.
type Action struct {
	Kind   ActionKind
	Target Target
	Hello  Hello
	Ask    AskRequest
	Event  Event
	State  *State            // ActPersist
	Down   IsMasterDownReply // ActDownReply
	// Ticket names a held request: set on ActHold and on the ActDownReply
	// that releases it (zero on an immediate reply).
	Ticket uint64
	// Until is an ActHold's bound: the reply is released by then.
	Until time.Time
	// Release is why a held reply was released (ActDownReply with a Ticket).
	Release Release
}

// DownReplyOf returns the immediate reply to the is-master-down-by-addr
// request among acts (not the release of a held one).
func DownReplyOf(acts []Action) (IsMasterDownReply, bool) {
	for _, a := range acts {
		if a.Kind == ActDownReply && a.Ticket == 0 {
			return a.Down, true
		}
	}
	return IsMasterDownReply{}, false
}

// PersistOf returns the state to persist among acts, nil if none.
func PersistOf(acts []Action) *State {
	for _, a := range acts {
		if a.Kind == ActPersist {
			return a.State
		}
	}
	return nil
}
