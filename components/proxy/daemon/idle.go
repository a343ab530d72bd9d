package daemon

import (
	"time"

	"github.com/redisha/redisha/components/proxy/forward"
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
			info, ok := pr.tcpInfo()
			if ok && forward.Idle(info) >= idle {
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
		if info, ok := pr.tcpInfo(); ok {
			add(pr.listener, float64(info.Bytes_received), float64(info.Bytes_acked))
		}
		return false
	})
}
