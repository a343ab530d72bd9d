package core

import (
	"strconv"
	"strings"
	"time"
)

// The second path to a sentinel's view (Config.HelloViews): every sentinel
// publishes "ip,port,runid,current_epoch,master_name,master_ip,master_port,
// master_config_epoch" on the __sentinel__:hello channel of every Redis node
// it monitors, every 2 s (sentinelSendHello). A proxy that has lost the
// direct link to a sentinel may still hear it there. Anyone allowed to
// PUBLISH on a data node can forge a hello, so a hello counts as the view of
// a configured sentinel only when
//
//   - its announced address is a configured sentinel's and its run id is the
//     one that sentinel gave directly (SENTINEL MYID, View.RunID);
//   - it is dated by when it was heard, and ViewTTL applies;
//   - it corroborates a fresh view heard directly from another configured
//     sentinel (same master address, same config epoch), so it can complete
//     a majority for what some sentinel says directly, never name a master
//     (or an epoch) of its own;
//   - no fresher-epoch hello of the same sentinel is still fresh (a
//     sentinel's config epoch only rises, so an older hello replayed or
//     held up in a frozen node does not replace the newer one);
//   - it was not read right after the proxy itself stalled (hellos read
//     then may have waited in the socket buffer and are older than they
//     look).
//
// Addresses learned from hellos are never probed: a hello whose master
// address is not a backend adds nothing to the probe targets.

// Hello is one announcement heard on a data node's __sentinel__:hello
// channel, received at the event's now.
type Hello struct {
	Via          string // the backend it was heard on
	Sentinel     string // announced sentinel address, "ip:port"
	RunID        string
	CurrentEpoch int64
	MasterName   string
	MasterAddr   string // "ip:port"
	ConfigEpoch  int64
}

// HelloChannel is the channel sentinels announce themselves on.
const HelloChannel = "__sentinel__:hello"

// ParseHello parses a hello payload (exactly eight comma-separated fields,
// ports and epochs numeric, a 40-hex run id). Sentinel itself turns garbage
// into zeros; here a malformed hello is not a hello.
func ParseHello(payload string) (Hello, bool) {
	f := strings.Split(payload, ",")
	if len(f) != 8 {
		return Hello{}, false
	}
	s, ok1 := joinAddr(f[0], f[1])
	m, ok2 := joinAddr(f[5], f[6])
	ce, err1 := strconv.ParseInt(f[3], 10, 64)
	me, err2 := strconv.ParseInt(f[7], 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || ce < 0 || me < 0 || f[4] == "" || !ValidRunID(f[2]) {
		return Hello{}, false
	}
	return Hello{Sentinel: s, RunID: f[2], CurrentEpoch: ce, MasterName: f[4], MasterAddr: m, ConfigEpoch: me}, true
}

// ValidRunID reports whether s is a sentinel run id: 40 hex digits.
func ValidRunID(s string) bool {
	if len(s) != 40 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// HelloStats count hellos by what became of them.
type HelloStats struct {
	Heard      uint64 // every hello handed to the core
	Kept       uint64 // stored as a sentinel's hello view (it counts while corroborated)
	Off        uint64 // HelloViews is off
	OtherName  uint64 // about another master name
	Unknown    uint64 // announced address is no configured sentinel
	NoRunID    uint64 // the sentinel's run id is not known yet (no direct answer to SENTINEL MYID)
	BadRunID   uint64 // run id differs from the one the sentinel gave directly
	OlderEpoch uint64 // a fresher hello of that sentinel has a higher config epoch
	Stalled    uint64 // read right after the proxy stalled
}

// helloQuarantine is how long after a detected stall hellos are not
// believed; stallGap is the least gap between two steps taken for a stall.
func (c *Core) helloQuarantine() time.Duration { return c.cfg.CheckTimeout }
func (c *Core) stallGap() time.Duration        { return c.cfg.CheckInterval + c.cfg.CheckTimeout }

// Hello feeds one hello heard on backend h.Via at now.
func (c *Core) Hello(now time.Time, h Hello) []Action {
	c.advance(now)
	c.hello1(h)
	return c.Tick(now)
}

func (c *Core) hello1(h Hello) {
	st := &c.helloStats
	st.Heard++
	switch {
	case !c.cfg.HelloViews:
		st.Off++
		return
	case h.MasterName != c.cfg.MasterName:
		st.OtherName++
		return
	case !c.isConfiguredSentinel(h.Sentinel):
		st.Unknown++
		return
	}
	id := c.runIDs[h.Sentinel]
	switch {
	case id == "":
		st.NoRunID++
		return
	case !strings.EqualFold(id, h.RunID):
		st.BadRunID++
		return
	case !c.stallAt.IsZero() && c.now.Before(c.stallAt.Add(c.helloQuarantine())):
		st.Stalled++
		return
	}
	v := View{At: c.now, Sentinel: h.Sentinel, OK: true, Addr: h.MasterAddr, Epoch: h.ConfigEpoch, RunID: h.RunID}
	if prev, ok := c.hellos[h.Sentinel]; ok && c.viewFresh(prev) && prev.Epoch > v.Epoch {
		st.OlderEpoch++
		return
	}
	st.Kept++
	c.hellos[h.Sentinel] = v
}

// effView is a configured sentinel's view as it counts: the direct one or
// a corroborated hello, with when it stops counting.
type effView struct {
	View
	until time.Time
	hello bool
}

// effective returns the views that count now, one per configured sentinel
// at most: its fresh direct view, or its corroborated fresh hello view,
// whichever has the higher config epoch (the direct one on a tie).
func (c *Core) effective() []effView {
	out := make([]effView, 0, len(c.cfg.Sentinels))
	for _, s := range c.cfg.Sentinels {
		var e effView
		have := false
		if d, ok := c.views[s]; ok && c.viewFresh(d) {
			e, have = effView{View: d, until: d.At.Add(c.cfg.ViewTTL)}, true
		}
		if c.cfg.HelloViews {
			if h, ok := c.hellos[s]; ok && c.viewFresh(h) && (!have || h.Epoch > e.Epoch) && strings.EqualFold(h.RunID, c.runIDs[s]) {
				if until, ok := c.corroborated(s, h); ok {
					e, have = effView{View: h, until: until, hello: true}, true
				}
			}
		}
		if have {
			out = append(out, e)
		}
	}
	return out
}

// corroborated: a fresh direct view of another configured sentinel names
// the same address at the same config epoch; until is when the hello stops
// counting (its own expiry or its newest corroboration's, the earlier).
func (c *Core) corroborated(s string, h View) (until time.Time, ok bool) {
	var best time.Time
	for _, o := range c.cfg.Sentinels {
		if o == s {
			continue
		}
		d, found := c.views[o]
		if found && c.viewFresh(d) && d.Addr == h.Addr && d.Epoch == h.Epoch && d.At.After(best) {
			best, ok = d.At, true
		}
	}
	if !ok {
		return time.Time{}, false
	}
	if h.At.Before(best) {
		best = h.At
	}
	return best.Add(c.cfg.ViewTTL), true
}
