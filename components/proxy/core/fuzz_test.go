package core

import (
	"net"
	"testing"
	"time"
)

func FuzzParseNotice(f *testing.F) {
	f.Add("+switch-master", "m 127.0.0.1 6379 127.0.0.1 6380")
	f.Add("+promoted-slave", "slave 127.0.0.1:6380 127.0.0.1 6380 @ m 127.0.0.1 6379")
	f.Add("+odown", "master m 127.0.0.1 6379 #quorum 2/2")
	f.Add("+new-epoch", "12")
	f.Fuzz(func(t *testing.T, channel, payload string) {
		p, ok := ParseNotice(channel, payload)
		if !ok {
			return
		}
		for _, a := range []string{p.OldAddr, p.NewAddr} {
			if a == "" {
				continue
			}
			h, p, err := net.SplitHostPort(a)
			if err != nil {
				t.Fatalf("bad address %q from %q %q", a, channel, payload)
			}
			if back, ok := joinAddr(h, p); !ok || back != a || net.JoinHostPort(h, p) != a {
				t.Fatalf("address %q from %q %q does not read back (%q)", a, channel, payload, back)
			}
		}
	})
}

// FuzzCoreSafety drives the core with arbitrary event sequences and checks
// the routing rule after every step: the routed node's freshest health says
// role:master, and whenever a majority of configured sentinels agrees at the
// highest epoch, nothing else is routed.
func FuzzCoreSafety(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 10, 2, 11, 2, 30, 5, 3})
	f.Add([]byte{0, 0, 1, 0, 10, 0, 11, 0, 12, 0, 40, 1, 20, 9, 13, 1, 14, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		nodes := []string{A, B, C}
		cfg := Config{MasterName: "m", Sentinels: sentinels3, Backends: nodes[:2],
			NoMajorityGrace: 300 * time.Millisecond, HealthTTL: time.Second, ViewTTL: time.Second, FenceTimeout: 2 * time.Second}
		if len(data) > 0 && data[0]%4 == 0 {
			cfg.Sentinels = nil
		}
		c, err := New(rulesOnly(cfg), t0)
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		health := map[string]Health{}
		views := map[string]View{}
		for i := 0; i+1 < len(data); i += 2 {
			op, arg := data[i], data[i+1]
			now = now.Add(time.Duration(arg%8) * 50 * time.Millisecond)
			var ev any
			switch op % 6 {
			case 0, 1: // health
				n := nodes[arg%3]
				h := Health{At: now, Backend: n}
				switch (arg / 3) % 3 {
				case 0:
					h.OK, h.Role = true, RoleMaster
				case 1:
					h.OK, h.Role, h.LinkUp = true, RoleReplica, true
				default:
					h.Err = "down"
				}
				health[n] = h
				ev = h
			case 2, 3: // view
				s := []string{"s1", "s2", "s3", "rogue"}[arg%4]
				v := View{At: now, Sentinel: s, OK: arg&16 == 0, Addr: nodes[(arg/4)%3], Epoch: int64(arg/32) % 4}
				if !v.OK {
					v.Err = "timeout"
				}
				views[s] = v
				ev = v
			case 4: // notice
				chans := []string{"+switch-master", "+failover-state-send-slaveof-noone", "-failover-abort-no-good-slave", "+odown", "+new-epoch"}
				ch := chans[arg%5]
				old, nw := nodes[(arg/5)%3], nodes[(arg/15)%3]
				oh, op, _ := net.SplitHostPort(old)
				nh, np, _ := net.SplitHostPort(nw)
				payload := "slave " + nw + " " + nh + " " + np + " @ m " + oh + " " + op
				switch ch {
				case "+switch-master":
					payload = "m " + oh + " " + op + " " + nh + " " + np
				case "+new-epoch":
					payload = "3"
				}
				ev = noticeAt{now, Notice{Sentinel: "s1", Channel: ch, Payload: payload}}
			default:
				ev = tickAt(now)
			}
			feed(c, ev)
			m := c.Route().Master
			if m == "" {
				continue
			}
			h, ok := health[m]
			if !ok || !h.OK || h.Role != RoleMaster || now.Sub(h.At) > cfg.HealthTTL {
				t.Fatalf("step %d: routed to %s whose freshest health is %+v", i/2, m, h)
			}
			if len(cfg.Sentinels) == 0 {
				continue
			}
			// oracle: majority at the highest fresh epoch among configured sentinels
			top := int64(-1)
			for _, s := range cfg.Sentinels {
				if v, ok := views[s]; ok && v.OK && now.Sub(v.At) <= cfg.ViewTTL && v.Epoch > top {
					top = v.Epoch
				}
			}
			count := map[string]int{}
			for _, s := range cfg.Sentinels {
				if v, ok := views[s]; ok && v.OK && now.Sub(v.At) <= cfg.ViewTTL && v.Epoch == top {
					count[v.Addr]++
				}
			}
			for addr, n := range count {
				if n >= cfg.Quorum() && addr != m {
					t.Fatalf("step %d: majority names %s at epoch %d but route is %s", i/2, addr, top, m)
				}
			}
		}
	})
}
