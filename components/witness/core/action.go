package witness

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

// Action is one thing the core asks the driver to do.
type Action struct {
	Kind   ActionKind
	Target Target
	Hello  Hello
	Ask    AskRequest
	Event  Event
}
