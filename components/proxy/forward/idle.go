package forward

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// TCPInfo reads the kernel's TCP_INFO of c.
func TCPInfo(c *net.TCPConn) (*unix.TCPInfo, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, false
	}
	var info *unix.TCPInfo
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		info, gerr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || gerr != nil {
		return nil, false
	}
	return info, true
}

// IdleFor is how long the connection has neither received nor sent data,
// from the kernel's last_data_recv / last_data_sent.
func IdleFor(c *net.TCPConn) (time.Duration, bool) {
	info, ok := TCPInfo(c)
	if !ok {
		return 0, false
	}
	return Idle(info), true
}

// Idle is how long a connection has neither received nor sent data, from
// its TCP_INFO.
func Idle(info *unix.TCPInfo) time.Duration {
	return time.Duration(min(info.Last_data_recv, info.Last_data_sent)) * time.Millisecond
}
