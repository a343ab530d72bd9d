package daemon

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// watchStopping is the line every watcher gets when the proxy begins a
// clean stop (redisha-vip's watch track reads it, docs/vip.md).
const watchStopping = "stopping\n"

// watchServer is the watch listener (watch_listen): a VIP manager holds a
// connection to it. While the proxy serves, nothing is written; when the
// process dies the kernel closes the connection (FIN, or RST); a clean stop
// writes "stopping" and closes, before the client listeners close.
type watchServer struct {
	ln   net.Listener
	addr string
	log  *slog.Logger

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	stopping bool
}

// startWatch listens on addr ("host:port" or "unix:/path") and serves.
func startWatch(addr string, log *slog.Logger) (*watchServer, error) {
	network, a := "tcp", addr
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, a = "unix", path
		// A socket file left by a proxy that died: remove it if nothing
		// answers on it (a live proxy's socket is not taken over).
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, err := net.DialTimeout("unix", path, 100*time.Millisecond); err == nil {
				c.Close()
			} else {
				os.Remove(path)
			}
		}
	}
	ln, err := net.Listen(network, a)
	if err != nil {
		return nil, err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(true)
	}
	w := &watchServer{ln: ln, addr: ln.Addr().String(), log: log, conns: map[net.Conn]struct{}{}}
	if network == "unix" {
		w.addr = "unix:" + a
	}
	go w.serve()
	return w, nil
}

func (w *watchServer) serve() {
	for {
		c, err := w.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			w.log.Warn("watch accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		w.mu.Lock()
		if w.stopping {
			w.mu.Unlock()
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			io.WriteString(c, watchStopping)
			c.Close()
			continue
		}
		w.conns[c] = struct{}{}
		w.mu.Unlock()
		// Read until the watcher leaves, so its socket is released; what it
		// sends is ignored.
		go func() {
			io.Copy(io.Discard, c)
			w.mu.Lock()
			delete(w.conns, c)
			w.mu.Unlock()
			c.Close()
		}()
	}
}

// closeListener stops accepting; held connections stay.
func (w *watchServer) closeListener() { w.ln.Close() }

// stop stops accepting and ends every watch connection, with the
// "stopping" line first when say is set.
func (w *watchServer) stop(say bool) {
	w.mu.Lock()
	w.stopping = true
	conns := make([]net.Conn, 0, len(w.conns))
	for c := range w.conns {
		conns = append(conns, c)
	}
	w.mu.Unlock()
	w.ln.Close()
	for _, c := range conns {
		if say {
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			io.WriteString(c, watchStopping)
		}
		c.Close()
	}
}

// count is the number of connected watchers.
func (w *watchServer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.conns)
}

// stopWatchers tells every watcher the proxy is stopping (once).
func (p *Proxy) stopWatchers() {
	p.lnMu.Lock()
	ws := append([]*watchServer{}, p.oldWatch...)
	if p.watch != nil {
		ws = append(ws, p.watch)
	}
	p.lnMu.Unlock()
	for _, w := range ws {
		w.stop(true)
	}
}

// watchers is the number of connected watchers and the watch address.
func (p *Proxy) watchers() (n int, addr string) {
	p.lnMu.Lock()
	defer p.lnMu.Unlock()
	for _, w := range p.oldWatch {
		n += w.count()
	}
	if p.watch != nil {
		n += p.watch.count()
		addr = p.watch.addr
	}
	return n, addr
}

// WatchAddr is the watch listener's address ("" when disabled; "unix:/path"
// for a unix socket).
func (p *Proxy) WatchAddr() string {
	_, a := p.watchers()
	return a
}
