// Package driver is the one implementation of what redisha-vip does when
// input arrives: it decodes and filters received adverts with the vrrp
// codec, feeds the events to the VRRP core, and carries out the core's
// actions through the injected Network and Hooks, in order. It is
// single-threaded and does no I/O of its own (no sockets, goroutines or
// clock reads): components/vip/daemon implements Network on a raw socket and
// netlink, and sim/vipsim on the simulator's virtual LAN, so both run this
// code.
package driver

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"time"

	"github.com/redisha/redisha/components/vip/core"
	"github.com/redisha/redisha/components/vip/vrrp"
)

// GARPKind says which announcement a SendGARP is.
type GARPKind int

// GARP kinds.
const (
	// GARPAnnounce is the burst of a new (or re-asserting) master.
	GARPAnnounce GARPKind = iota
	// GARPRepeat is the second burst, garp.repeat after the announcement.
	GARPRepeat
	// GARPRefresh is the periodic refresh of a settled master (garp.refresh).
	GARPRefresh
)

// Network is what the driver needs from the interface it runs on.
type Network interface {
	// SendAdvert sends one encoded advert to dst (the VRRP multicast group
	// or a unicast peer).
	SendAdvert(dst netip.Addr, raw []byte) error
	// AddVIPs adds the virtual addresses to the interface.
	AddVIPs() error
	// RemoveVIPs removes the virtual addresses that are present and
	// reports which were.
	RemoveVIPs() (removed []netip.Addr, err error)
	// SendGARP announces the virtual addresses with gratuitous ARP; it must
	// not block the caller for the length of a burst.
	SendGARP(kind GARPKind)
}

// Hooks observe what the driver does; implementations must not block.
type Hooks interface {
	// Advert is called for each advert that passed the filter, before the
	// core sees it.
	Advert(now time.Time, p vrrp.Packet)
	// StateChanged is called after the state went from -> to (notify hooks).
	StateChanged(now time.Time, from, to core.State, reason string, priority uint8)
	// PriorityChanged is called when the effective priority changed.
	PriorityChanged(now time.Time, priority uint8)
}

// Config is what the driver needs besides the core's configuration.
type Config struct {
	Core core.Config
	// VIPs are the addresses listed in our adverts.
	VIPs []netip.Addr
	// Peers are the unicast peers; empty means multicast to 224.0.0.18. In
	// unicast mode adverts from any other source are dropped (reason peer).
	Peers []netip.Addr
	// Auth is the VRRPv2 authentication we send and require (keepalived's
	// auth_type PASS); zero for none and for version 3.
	Auth vrrp.Auth
	// Checksum is the VRRPv3 checksum form we send.
	Checksum vrrp.ChecksumForm
}

// Packet is one received IPv4 packet of protocol 112, as the socket saw it.
type Packet struct {
	// Payload is the VRRP message, IPv4 header stripped.
	Payload  []byte
	Src, Dst netip.Addr
	// TTL is the IPv4 TTL; negative when the kernel did not report it (then
	// it cannot be checked).
	TTL int
}

// Stats are the driver's counters; the daemon exports them to Prometheus.
type Stats struct {
	AdvertsSent     uint64
	AdvertsReceived uint64
	// SendErrors counts adverts that failed to encode or send.
	SendErrors uint64
	// Bad counts dropped packets by reason.
	Bad map[vrrp.Reason]uint64
	// Transitions counts state changes by new state; Since is the last one
	// (or the start).
	Transitions map[core.State]uint64
	Since       time.Time
	// Checks counts tracked check results by track name, [0] passed, [1] failed.
	Checks map[string][2]uint64
}

// TransitionsTotal is the number of state changes.
func (s Stats) TransitionsTotal() int {
	n := uint64(0)
	for _, v := range s.Transitions {
		n += v
	}
	return int(n)
}

// Driver runs one virtual router.
type Driver struct {
	cfg        Config
	core       *core.Core
	net        Network
	hooks      Hooks
	log        *slog.Logger
	dsts       []netip.Addr
	vipSet     map[netip.Addr]bool
	stats      Stats
	lastBadLog map[string]time.Time
}

// New validates cfg and returns a driver whose core is in Initialize; call
// Start next.
func New(cfg Config, now time.Time, network Network, hooks Hooks, log *slog.Logger) (*Driver, error) {
	c, err := core.New(cfg.Core, now)
	if err != nil {
		return nil, err
	}
	if network == nil || hooks == nil || log == nil {
		return nil, errors.New("driver: network, hooks and logger are required")
	}
	if cfg.Auth != (vrrp.Auth{}) && cfg.Core.Version != 2 {
		return nil, errors.New("driver: authentication is VRRPv2 only (RFC 5798 removed it)")
	}
	d := &Driver{cfg: cfg, core: c, net: network, hooks: hooks, log: log, vipSet: map[netip.Addr]bool{},
		lastBadLog: map[string]time.Time{},
		stats: Stats{Bad: map[vrrp.Reason]uint64{}, Transitions: map[core.State]uint64{}, Since: now,
			Checks: map[string][2]uint64{}}}
	d.dsts = cfg.Peers
	if len(d.dsts) == 0 {
		d.dsts = []netip.Addr{vrrp.MulticastGroup}
	}
	for _, a := range cfg.VIPs {
		d.vipSet[a] = true
	}
	return d, nil
}

// Core is the state machine, for reading its state; events go through the
// driver.
func (d *Driver) Core() *core.Core { return d.core }

// State is the core's state.
func (d *Driver) State() core.State { return d.core.State() }

// Stats returns a copy of the counters.
func (d *Driver) Stats() Stats {
	s := d.stats
	s.Bad, s.Transitions, s.Checks = maps.Clone(s.Bad), maps.Clone(s.Transitions), maps.Clone(s.Checks)
	return s
}

// Next is when the driver wants Wake (zero: never).
func (d *Driver) Next() time.Time { return d.core.Next() }

// Start removes virtual addresses a crash may have left (we are not master
// yet, so none of ours may be on the interface), then starts the core.
func (d *Driver) Start(now time.Time) error {
	removed, err := d.net.RemoveVIPs()
	if err != nil {
		return fmt.Errorf("remove stale VIPs: %w", err)
	}
	if len(removed) > 0 {
		d.log.Warn("removed stale virtual addresses left by an earlier run", "addresses", fmt.Sprint(removed))
	}
	d.apply(now, d.core.Start(now))
	return nil
}

// Shutdown leaves the group gracefully (a master sends priority 0 and
// removes the addresses).
func (d *Driver) Shutdown(now time.Time) { d.apply(now, d.core.Shutdown(now)) }

// Wake runs the core's time-based rules; early calls do nothing.
func (d *Driver) Wake(now time.Time) { d.apply(now, d.core.Tick(now)) }

// CheckResult feeds one result of the tracked check name.
func (d *Driver) CheckResult(now time.Time, name string, ok bool) {
	c := d.stats.Checks[name]
	if ok {
		c[0]++
	} else {
		c[1]++
	}
	d.stats.Checks[name] = c
	d.apply(now, d.core.CheckResult(now, name, ok))
}

// HandlePacket decodes, checks and applies one received packet. It returns
// why the packet was dropped, nil when the core got it.
func (d *Driver) HandlePacket(now time.Time, r Packet) error {
	p, err := vrrp.Decode(r.Payload, r.Src, r.Dst)
	p.TTL = r.TTL
	if err == nil {
		if r.TTL < 0 { // no TTL from the kernel: cannot check it
			p.TTL = vrrp.TTL
		}
		f := d.core.Filter(len(d.cfg.Peers) > 0)
		f.Peers, f.Auth = d.cfg.Peers, d.cfg.Auth
		err = f.Check(p)
	}
	if err != nil {
		reason := vrrp.ReasonOf(err)
		d.stats.Bad[reason]++
		// Other virtual routers sharing the segment are normal: counted
		// quietly. Others are logged like keepalived's
		// log_rate_limited_error: one line per reason per minute.
		if reason != vrrp.ReasonVRID && d.logDue(now, string(reason)) {
			d.log.Warn("dropped bad VRRP packet", "reason", string(reason), "from", r.Src, "err", err)
		}
		return err
	}
	d.stats.AdvertsReceived++
	if !d.sameVIPs(p.Addresses) && d.logDue(now, "vip_list") {
		d.log.Warn("advert lists other virtual addresses than ours", "from", p.Src, "theirs", fmt.Sprint(p.Addresses))
	}
	d.hooks.Advert(now, p)
	d.apply(now, d.core.Receive(now, p))
	return nil
}

func (d *Driver) logDue(now time.Time, key string) bool {
	if now.Sub(d.lastBadLog[key]) > time.Minute {
		d.lastBadLog[key] = now
		return true
	}
	return false
}

func (d *Driver) sameVIPs(got []netip.Addr) bool {
	if len(got) != len(d.cfg.VIPs) {
		return false
	}
	have := map[netip.Addr]bool{}
	for _, a := range got {
		have[a] = true
	}
	for _, a := range d.cfg.VIPs {
		if !have[a] {
			return false
		}
	}
	return true
}

// apply carries out the core's actions in order.
func (d *Driver) apply(now time.Time, actions []core.Action) {
	for _, a := range actions {
		switch a.Kind {
		case core.SendAdvert:
			d.sendAdvert(a.Priority)
		case core.AddVIPs:
			if err := d.net.AddVIPs(); err != nil {
				d.log.Error("adding virtual addresses", "err", err)
			}
		case core.RemoveVIPs:
			if _, err := d.net.RemoveVIPs(); err != nil {
				d.log.Error("removing virtual addresses", "err", err)
			}
		case core.SendGARP:
			kind := GARPAnnounce
			switch {
			case a.Refresh:
				kind = GARPRefresh
			case a.Repeat:
				kind = GARPRepeat
			}
			d.net.SendGARP(kind)
		case core.PriorityChanged:
			d.log.Info("priority changed", "priority", a.Priority)
			d.hooks.PriorityChanged(now, a.Priority)
		case core.StateChanged:
			d.log.Info("state change", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason,
				"priority", d.core.Priority())
			d.stats.Transitions[a.To]++
			d.stats.Since = now
			d.hooks.StateChanged(now, a.From, a.To, a.Reason, d.core.Priority())
		}
	}
}

func (d *Driver) sendAdvert(prio uint8) {
	c := d.cfg.Core
	a := vrrp.Advert{Version: c.Version, VRID: c.VRID, Priority: prio, Interval: c.Interval, Addresses: d.cfg.VIPs,
		Auth: d.cfg.Auth}
	var errs []error
	for _, dst := range d.dsts {
		b, err := vrrp.Encode(a, c.Primary, dst, d.cfg.Checksum)
		if err == nil {
			err = d.net.SendAdvert(dst, b)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("send advert to %v: %w", dst, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		d.stats.SendErrors++
		d.log.Error("sending advert", "err", err)
		return
	}
	d.stats.AdvertsSent++
}
