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
	h := &hub{s: s, subs: map[*clientConn]struct{}{}, queue: make(chan [2]string, 256)}
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
