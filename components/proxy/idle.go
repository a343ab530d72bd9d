package proxy

import (
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// reapIdle closes client connections idle in both directions for longer than
// limits.idle_timeout. Activity is read from the kernel's TCP_INFO
// (last_data_recv / last_data_sent) rather than from deadlines, because
// resetting deadlines per read would need a wrapped conn and lose splice.
func (p *Proxy) reapIdle() {
	for {
		idle := p.cfg.Load().Limits.IdleTimeout
		every := time.Second
		if idle > 0 && idle/4 < every {
			every = max(idle/4, 10*time.Millisecond)
		}
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(every):
		}
		if idle <= 0 {
			continue
		}
		p.reg.each(func(pr *pair) bool {
			d, ok := idleFor(pr.client)
			if ok && d >= idle {
				p.metrics.idleClosed.Inc()
				return true
			}
			return false
		})
	}
}

// liveBytes reports, per open connection, the bytes the kernel received from
// the client and the bytes the client acknowledged.
func (p *Proxy) liveBytes(add func(listener string, up, down float64)) {
	p.reg.each(func(pr *pair) bool {
		if info, ok := tcpInfo(pr.client); ok {
			add(pr.listener, float64(info.Bytes_received), float64(info.Bytes_acked))
		}
		return false
	})
}

func tcpInfo(c *net.TCPConn) (*unix.TCPInfo, bool) {
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

// idleFor is how long the connection has neither received nor sent data.
func idleFor(c *net.TCPConn) (time.Duration, bool) {
	info, ok := tcpInfo(c)
	if !ok {
		return 0, false
	}
	last := min(info.Last_data_recv, info.Last_data_sent)
	return time.Duration(last) * time.Millisecond, true
}
