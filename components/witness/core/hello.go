package core

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// HelloChannel is the Pub/Sub channel sentinels announce themselves on, both
// on the monitored Redis nodes and (via a fake PUBLISH) on each other.
const HelloChannel = "__sentinel__:hello"

// Hello is one sentinel announcement. On the wire it is exactly eight
// comma-separated fields:
//
//	sentinel_ip,sentinel_port,sentinel_runid,current_epoch,
//	master_name,master_ip,master_port,master_config_epoch
type Hello struct {
	IP                string
	Port              int
	RunID             string
	CurrentEpoch      uint64
	MasterName        string
	MasterIP          string
	MasterPort        int
	MasterConfigEpoch uint64
}

// String renders the hello exactly as sentinelSendHello formats it.
func (h Hello) String() string {
	return fmt.Sprintf("%s,%d,%s,%d,%s,%s,%d,%d", h.IP, h.Port, h.RunID, h.CurrentEpoch,
		h.MasterName, h.MasterIP, h.MasterPort, h.MasterConfigEpoch)
}

// ErrHelloFields is returned for a hello that does not split into 8 fields.
var ErrHelloFields = errors.New("hello: want exactly 8 comma-separated fields")

// ParseHello parses a hello payload. redis-sentinel itself uses atoi/strtoull
// and silently turns garbage into zeros; we reject it instead, because a
// garbled hello must never move a master address or an epoch.
func ParseHello(s string) (Hello, error) {
	f := strings.Split(s, ",")
	if len(f) != 8 {
		return Hello{}, fmt.Errorf("%w (got %d)", ErrHelloFields, len(f))
	}
	var h Hello
	var err error
	h.IP = f[0]
	if h.Port, err = parsePort(f[1]); err != nil {
		return Hello{}, fmt.Errorf("hello: sentinel port: %w", err)
	}
	h.RunID = f[2]
	if h.CurrentEpoch, err = strconv.ParseUint(f[3], 10, 64); err != nil {
		return Hello{}, fmt.Errorf("hello: current epoch %q is not an unsigned integer", f[3])
	}
	h.MasterName = f[4]
	h.MasterIP = f[5]
	if h.MasterPort, err = parsePort(f[6]); err != nil {
		return Hello{}, fmt.Errorf("hello: master port: %w", err)
	}
	if h.MasterConfigEpoch, err = strconv.ParseUint(f[7], 10, 64); err != nil {
		return Hello{}, fmt.Errorf("hello: master config epoch %q is not an unsigned integer", f[7])
	}
	// Sentinel without resolve-hostnames announces IP addresses and 40-hex
	// run ids; anything else is forged or broken, and the witness would
	// otherwise keep it and dial it.
	switch {
	case !validIP(h.IP):
		return Hello{}, fmt.Errorf("hello: sentinel ip %q is not an IP address", h.IP)
	case !ValidRunID(h.RunID):
		return Hello{}, fmt.Errorf("hello: run id %q is not 40 hex characters", h.RunID)
	case h.MasterName == "":
		return Hello{}, errors.New("hello: empty master name")
	case !validIP(h.MasterIP):
		return Hello{}, fmt.Errorf("hello: master ip %q is not an IP address", h.MasterIP)
	}
	return h, nil
}

// validIP reports whether s is an IPv4 or IPv6 address as sentinel writes
// them (no zone, no brackets).
func validIP(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	return p, nil
}
