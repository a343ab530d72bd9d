package core

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
)

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
}

// DownReplyOf returns the is-master-down-by-addr reply among acts.
func DownReplyOf(acts []Action) (IsMasterDownReply, bool) {
	for _, a := range acts {
		if a.Kind == ActDownReply {
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
