// Package driver is the one implementation of "what happens when input
// arrives" for redisha-witness: it turns raw input (a reply read on a link,
// a link error, a hello message, a peer's command) into events of the pure
// core (components/witness/core) and carries out the actions the core
// returns through injected interfaces: Links (commands to Redis nodes and
// peer sentinels), Store (durable state) and Events (log and Pub/Sub).
//
// It owns no goroutines, sockets or clocks: every entry point takes the time
// the input arrived, and the caller (the daemon, or the simulator) serialises
// the calls and sleeps until Next. A vote, or any state change, is stored
// before any reply or command that depends on it; if the store fails, a vote
// request gets an error, never the vote.
package driver

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redisha/redisha/components/resp"
	"github.com/redisha/redisha/components/witness/core"
)

// Links sends commands to the monitored Redis nodes and peer sentinels. The
// outcome of every command sent comes back through HandleReply or
// HandleLinkError, in the order the commands were sent on that link.
type Links interface {
	// Send starts a's command (ActPing, ActInfo, ActHello, ActAsk) on the
	// command link of a.Target, opening the link if needed. An error means
	// it could not even be queued; the driver reports the link failed.
	// ActProbe is a PING on a fresh connection, leaving the command link
	// and its pending commands alone; its outcome comes back as kind
	// ActProbe. ActAdopt comes only while the probe's reply is being
	// handled: the probe's connection replaces the command link, whose
	// pending commands are dropped without a reply or an error.
	Send(a core.Action) error
	// Sync keeps links to exactly these targets: it opens the missing ones
	// (with their hello subscription for Redis nodes) and closes the others.
	Sync(targets []core.Target)
}

// Store writes the durable state; Save returns once it survives a crash.
type Store interface {
	Save(st core.State) error
}

// HeldReplies receives the is-master-down-by-addr replies the core held
// back (core.ActHold; see IsMasterDownFrom) when they are released, from
// whichever driver call released them. Release sends the reply (encoded
// with WriteDownReply in the connection's protocol, or an error reply when
// err is set) on the connection the request came on, then lets that
// connection's later commands run: they waited behind the held reply, as
// behind a blocked client in Redis. It must not call the driver.
type HeldReplies interface {
	Release(ticket uint64, rep core.IsMasterDownReply, err error)
}

// Events receives the sentinel events (+sdown, +switch-master, ...) to log
// and publish to subscribed clients. It must not block.
type Events interface {
	Publish(e core.Event)
}

// Via says where a hello message came from.
type Via uint8

// Hello sources.
const (
	// ViaPubSub: a message on a monitored node's __sentinel__:hello channel.
	ViaPubSub Via = iota + 1
	// ViaPublish: a peer sentinel's PUBLISH __sentinel__:hello on our port.
	ViaPublish
)

// Stats are the driver's counters; the daemon exports them as metrics.
type Stats struct {
	HellosOK            uint64 // hellos processed
	HellosUnknownMaster uint64 // hellos about a master we do not monitor
	HellosMalformed     uint64 // hellos that did not parse or carried a bad run id or address
	HellosRefused       uint64 // hellos from new peers refused because the peer table is full
	HellosSent          uint64 // hellos published (answered, even with an error)
	VoteRequests        uint64 // is-master-down-by-addr asking for a vote
	PersistErrors       uint64 // failed state writes
	Held                uint64 // is-master-down-by-addr replies held for the witness's own SDOWN
	ReleasedDown        uint64 // held replies released down=1 by the witness's SDOWN
	ReleasedAlive       uint64 // held replies released down=0: the master answered
	ReleasedBound       uint64 // held replies released at the bound (or by TILT, or a moved master)
}

// Driver runs one witness core. It is not safe for concurrent use.
type Driver struct {
	core   *core.Core
	links  Links
	store  Store
	events Events
	held   HeldReplies
	log    *slog.Logger
	start  time.Time

	linksGen uint64 // core generation the links were last synced at
	linksSet bool
	stats    Stats
	// persistErr is the first store failure of the actions being applied.
	persistErr error
}

// ErrNotPersisted wraps a store failure that kept a reply from being sent.
var ErrNotPersisted = errors.New("witness could not persist its vote")

// New builds the core from cfg and the state restored from disk (nil on a
// first start) and stores the state once, so that a new run id is durable
// before anyone can learn it. held receives released replies; with nil,
// no reply is ever held. log may be nil.
func New(now time.Time, cfg core.Config, st *core.State, links Links, store Store, events Events, held HeldReplies, log *slog.Logger) (*Driver, error) {
	c, err := core.New(cfg, now, st)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{core: c, links: links, store: store, events: events, held: held, log: log, start: now}
	if err := store.Save(c.State()); err != nil {
		return nil, err
	}
	return d, nil
}

// Core gives read access to the core (views, status). Events must go
// through the driver, so that their actions are carried out.
func (d *Driver) Core() *core.Core { return d.core }

// Stats returns the counters.
func (d *Driver) Stats() Stats { return d.stats }

// Started is the time New was called (INFO's uptime).
func (d *Driver) Started() time.Time { return d.start }

// Next is when Wake must next be called.
func (d *Driver) Next() time.Time { return d.core.Next() }

// Wake runs the core's timer when it is due, then keeps the links in step
// with the core's targets.
func (d *Driver) Wake(now time.Time) {
	if now.Before(d.core.Next()) {
		return
	}
	d.apply(now, d.core.Tick(now))
	if !d.linksSet || d.linksGen != d.core.Generation() {
		d.linksGen, d.linksSet = d.core.Generation(), true
		d.links.Sync(d.core.Targets())
	}
}

// apply carries out acts in order. An ActPersist that fails is remembered in
// d.persistErr so that a reply after it is not sent.
func (d *Driver) apply(now time.Time, acts []core.Action) {
	var failed error // a store failure among these actions
	for len(acts) > 0 {
		a := acts[0]
		acts = acts[1:]
		switch a.Kind {
		case core.ActPersist:
			if err := d.store.Save(*a.State); err != nil {
				d.stats.PersistErrors++
				d.log.Error("persisting state failed", "err", err)
				acts = append(acts, d.core.PersistFailed(now)...)
				if d.persistErr == nil {
					d.persistErr = err
				}
				if failed == nil {
					failed = err
				}
			}
		case core.ActEvent:
			d.events.Publish(a.Event)
		case core.ActDownReply:
			if a.Ticket != 0 {
				d.release(a, failed)
			}
			// An immediate reply is handled by IsMasterDownFrom, which
			// reads it from the actions.
		case core.ActHold:
			d.stats.Held++
			d.log.Debug("is-master-down-by-addr reply held for our own SDOWN", "ticket", a.Ticket, "until", a.Until)
		case core.ActPing, core.ActInfo, core.ActHello, core.ActAsk, core.ActProbe:
			if err := d.links.Send(a); err != nil {
				acts = append(acts, d.core.LinkFailed(now, a.Target, a.Kind)...)
			}
		case core.ActAdopt:
			// The probe's connection is handed over while its reply is being
			// handled (the caller keeps it until HandleReply returns).
			_ = d.links.Send(a)
		}
	}
}

// release hands a held reply to HeldReplies, counted by why it left. Like
// an immediate reply, it is not sent when a state write before it in the
// same actions failed (failed): the requester gets an error.
func (d *Driver) release(a core.Action, failed error) {
	switch a.Release {
	case core.ReleaseDown:
		d.stats.ReleasedDown++
	case core.ReleaseAlive:
		d.stats.ReleasedAlive++
	default:
		d.stats.ReleasedBound++
	}
	d.log.Debug("held is-master-down-by-addr reply released", "ticket", a.Ticket, "why", a.Release.String(), "down", a.Down.Down)
	var err error
	if failed != nil {
		err = fmt.Errorf("%w: %v", ErrNotPersisted, failed)
	}
	if d.held != nil {
		d.held.Release(a.Ticket, a.Down, err)
	}
}

// CommandTimeout is how long a link waits for one reply (or a dial) before
// it gives the connection up. It is not what declares an instance down
// (the core times SDOWN from the first unanswered PING, and probes a late
// link on a fresh connection): it only bounds how long a dead connection
// holds its resources, so it is longer than down-after. The daemon and the
// simulator use the same value.
func CommandTimeout(downAfter time.Duration) time.Duration {
	if downAfter <= 0 {
		downAfter = time.Second
	}
	return 2*downAfter + time.Second
}

// Flush stores a coalesced state change that is not on disk yet; the
// daemon calls it before it stops.
func (d *Driver) Flush(now time.Time) {
	d.apply(now, d.core.Flush(now))
	d.persistErr = nil
}

// HandleLinkError reports that the command kind sent to t failed at the
// transport level (refused, reset, timed out, closed).
func (d *Driver) HandleLinkError(now time.Time, t core.Target, kind core.ActionKind, err error) {
	d.log.Debug("link command failed", "target", t.Addr.String(), "kind", t.Kind.String(), "err", err)
	d.apply(now, d.core.LinkFailed(now, t, kind))
}

// HandleLinkDown reports that one of t's connections (command link or
// hello subscription) was closed, reset or refused while no command was
// waiting on it: the core hears of it now, as sentinel does through
// hiredis, instead of at the next scheduled PING.
func (d *Driver) HandleLinkDown(now time.Time, t core.Target, err error) {
	d.log.Debug("link down", "target", t.Addr.String(), "kind", t.Kind.String(), "err", err)
	d.apply(now, d.core.LinkBroken(now, t))
}

// HandleReply turns the reply to the command kind sent to t into the core
// event it means (sentinel's reply callbacks).
func (d *Driver) HandleReply(now time.Time, t core.Target, kind core.ActionKind, v resp.Value) {
	var acts []core.Action
	switch kind {
	case core.ActPing:
		// Simple string or error text: only PONG, LOADING and MASTERDOWN
		// prove the instance available, the core decides.
		acts = d.core.PingReply(now, t, strings.TrimSpace(v.Str))
	case core.ActProbe:
		acts = d.core.ProbeReply(now, t, strings.TrimSpace(v.Str))
	case core.ActInfo:
		text := ""
		if !v.IsError() {
			text = v.Text()
		}
		acts = d.core.InfoReply(now, t, text)
	case core.ActHello:
		d.stats.HellosSent++
		acts = d.core.PublishReply(now, t, v.IsError())
	case core.ActAsk:
		valid, down, leader, epoch := parseAsk(v)
		acts = d.core.AskReply(now, t, valid, down, leader, epoch)
	default:
		return
	}
	d.apply(now, acts)
}

// parseAsk reads the [integer, string, integer] reply of
// is-master-down-by-addr; anything else is invalid and ignored by the core.
func parseAsk(v resp.Value) (valid bool, down int64, leader string, epoch int64) {
	if v.IsError() || v.Kind != resp.Array || len(v.Elems) != 3 {
		return false, 0, "", 0
	}
	e := v.Elems
	str := func(x resp.Value) bool {
		return (x.Kind == resp.BulkString || x.Kind == resp.SimpleString || x.Kind == resp.Verbatim) && !x.Null
	}
	if e[0].Kind != resp.Integer || !str(e[1]) || e[2].Kind != resp.Integer {
		return false, 0, "", 0
	}
	return true, e[0].Int, e[1].Str, e[2].Int
}

// HandleHello processes a hello message. The error (malformed, unknown
// master) is counted and returned for logging only: a hello never gets an
// error reply.
func (d *Driver) HandleHello(now time.Time, payload string, via Via) error {
	var acts []core.Action
	var err error
	if via == ViaPubSub {
		acts, err = d.core.HelloFromPubSub(now, payload)
	} else {
		acts, err = d.core.ProcessHello(now, payload)
	}
	// What a hello changes is not a vote: it is stored with the next
	// coalesced write (core.Timing.PersistDelay), so a flood of hellos
	// costs one write.
	d.apply(now, acts)
	d.persistErr = nil
	switch {
	case errors.Is(err, core.ErrUnknownMaster):
		d.stats.HellosUnknownMaster++
	case errors.Is(err, core.ErrPeerTableFull):
		d.stats.HellosRefused++
	case err != nil:
		d.stats.HellosMalformed++
		src := "pubsub"
		if via == ViaPublish {
			src = "publish"
		}
		d.log.Warn("dropped malformed hello", "via", src, "err", err)
	default:
		d.stats.HellosOK++
	}
	return err
}

// IsMasterDown answers SENTINEL is-master-down-by-addr at once (a caller
// that cannot wait: IsMasterDownFrom with client 0).
func (d *Driver) IsMasterDown(now time.Time, ip string, port int, epoch uint64, runID string) (core.IsMasterDownReply, error) {
	rep, _, err := d.IsMasterDownFrom(now, 0, ip, port, epoch, runID)
	return rep, err
}

// IsMasterDownFrom answers SENTINEL is-master-down-by-addr received on
// client's connection. A vote, or an epoch raised by the request, is stored
// before the answer is returned; if it cannot be stored the answer is an
// error wrapping ErrNotPersisted and must be sent as an error reply
// (redis-sentinel ignores it like a missing reply).
//
// A non-zero ticket means the core held the reply (a "*" request while the
// witness's own SDOWN deadline is near): nothing is to be sent now, the
// reply comes through HeldReplies.Release with that ticket, and the
// connection's later commands must wait until it is sent. Client 0, or a
// driver without HeldReplies, is never held.
func (d *Driver) IsMasterDownFrom(now time.Time, client core.ClientID, ip string, port int, epoch uint64, runID string) (core.IsMasterDownReply, uint64, error) {
	if d.held == nil {
		client = 0
	}
	var acts []core.Action
	if port > 0 && port <= 65535 {
		acts = d.core.IsMasterDownByAddrFrom(now, client, ip, port, epoch, runID)
	} else {
		acts = []core.Action{{Kind: core.ActDownReply, Down: core.IsMasterDownReply{Leader: "*"}}}
	}
	d.persistErr = nil
	d.apply(now, acts)
	perr := d.persistErr
	d.persistErr = nil
	for _, a := range acts {
		if a.Kind == core.ActHold {
			return core.IsMasterDownReply{}, a.Ticket, nil
		}
	}
	rep, _ := core.DownReplyOf(acts)
	if perr != nil {
		d.log.Error("vote not persisted; replying with an error", "err", perr)
		return core.IsMasterDownReply{}, 0, fmt.Errorf("%w: %v", ErrNotPersisted, perr)
	}
	if runID != "*" {
		d.stats.VoteRequests++
		d.log.Info("is-master-down-by-addr", "master", fmt.Sprintf("%s:%d", ip, port), "req_epoch", epoch, "candidate", runID,
			"down", rep.Down, "leader", rep.Leader, "leader_epoch", rep.LeaderEpoch)
	}
	return rep, 0, nil
}
