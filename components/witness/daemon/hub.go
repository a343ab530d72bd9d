package daemon

import "sync"

// hub delivers sentinel events to subscribed clients. Publishing never blocks
// the core: events go through a queue to one delivery goroutine, and a client
// too slow to take a message within the write deadline is disconnected.
type hub struct {
	s     *Server
	mu    sync.Mutex
	subs  map[*clientConn]struct{}
	queue chan [2]string
}

func newHub(s *Server) *hub {
	h := &hub{s: s, subs: map[*clientConn]struct{}{}, queue: make(chan [2]string, 4096)}
	s.wg.Add(1)
	go h.run()
	return h
}

func (h *hub) publish(channel, msg string) {
	select {
	case h.queue <- [2]string{channel, msg}:
	default:
		h.s.metrics.eventsDropped.Inc()
	}
}

func (h *hub) add(c *clientConn) {
	h.mu.Lock()
	h.subs[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(c *clientConn) {
	h.mu.Lock()
	delete(h.subs, c)
	h.mu.Unlock()
}

func (h *hub) run() {
	defer h.s.wg.Done()
	for {
		select {
		case <-h.s.ctx.Done():
			return
		case ev := <-h.queue:
			h.mu.Lock()
			subs := make([]*clientConn, 0, len(h.subs))
			for c := range h.subs {
				subs = append(subs, c)
			}
			h.mu.Unlock()
			for _, c := range subs {
				c.deliver(ev[0], ev[1])
			}
		}
	}
}

// globMatch implements Redis's stringmatch for PSUBSCRIBE patterns:
// '*', '?', '[...]' with ranges and '^' negation, and '\' escapes.
func globMatch(pattern, s string) bool {
	for len(pattern) > 0 {
		switch pattern[0] {
		case '*':
			for len(pattern) > 1 && pattern[1] == '*' {
				pattern = pattern[1:]
			}
			if len(pattern) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if globMatch(pattern[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			s = s[1:]
			pattern = pattern[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			p := pattern[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			match := false
			for len(p) > 0 && p[0] != ']' {
				switch {
				case p[0] == '\\' && len(p) >= 2:
					if p[1] == s[0] {
						match = true
					}
					p = p[2:]
				case len(p) >= 3 && p[1] == '-':
					lo, hi := p[0], p[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					if s[0] >= lo && s[0] <= hi {
						match = true
					}
					p = p[3:]
				default:
					if p[0] == s[0] {
						match = true
					}
					p = p[1:]
				}
			}
			if len(p) > 0 {
				p = p[1:] // skip ']'
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
			pattern = p
		case '\\':
			if len(pattern) >= 2 {
				pattern = pattern[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || s[0] != pattern[0] {
				return false
			}
			s = s[1:]
			pattern = pattern[1:]
		}
	}
	return len(s) == 0
}
