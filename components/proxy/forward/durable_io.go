package forward

import (
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The durable mode's I/O: one read, the decision code (durable.go) turns
// it into pieces, one write (writev when there are several). The plain
// path never comes here: a pair without Options.Durable has dir.dur nil.

// durUp lets the event loop splice a large argument past the durable
// mode's request framer, as Framing does.
type durUp struct{ d *Durable }

func (x durUp) Inspect([]byte) error { return nil } // pumpDurable frames
func (x durUp) Spliceable() int64    { return x.d.Spliceable() }
func (x durUp) Skipped(n int64)      { x.d.Skipped(n) }

// pumpDurable moves one read through the durable mode.
func (d *dir) pumpDurable(scratch []byte) error {
	n, err := d.read(scratch)
	if n == 0 || err != nil {
		return err
	}
	d.moved += int64(n)
	before := d.dur.outstanding
	var pieces [][]byte
	var derr error
	if d.isUp {
		pieces, derr = d.dur.Up(scratch[:n])
	} else {
		pieces, derr = d.dur.Down(scratch[:n])
	}
	if after := d.dur.outstanding; after != before && d.flow.waitLimit > 0 {
		// The deadline runs from the oldest unanswered WAIT (approximately:
		// from now, when an answer leaves others outstanding).
		switch {
		case after == 0:
			d.flow.waitSince.Store(0)
		case before == 0 || after < before:
			d.flow.waitSince.Store(time.Now().UnixNano())
		}
	}
	if err := d.writePieces(pieces); err != nil {
		return err
	}
	if derr != nil {
		return derr
	}
	// Once the connection left the durable mode, this direction is plain
	// forwarding again (and may splice).
	if d.isUp && d.dur.passReq {
		d.dur, d.insp = nil, nil
	} else if !d.isUp && d.dur.passRep {
		d.dur = nil
	}
	return nil
}

// maxIov bounds one writev; more pieces are joined first.
const maxIov = 64

// writePieces writes pieces to dst in order; what dst does not take now
// becomes pending.
func (d *dir) writePieces(pieces [][]byte) error {
	total := 0
	for _, p := range pieces {
		total += len(p)
	}
	if total == 0 {
		return nil
	}
	var w int
	var err error
	switch {
	case len(pieces) == 1:
		w, err = writeFD(d.dst.fd, pieces[0])
	case len(pieces) <= maxIov:
		w, err = writevFD(d.dst.fd, pieces, total)
	default:
		buf := getBuf(total)
		for _, p := range pieces {
			buf = append(buf, p...)
		}
		w, err = writeFD(d.dst.fd, buf)
		if err == nil || err == unix.EAGAIN {
			if w < total {
				d.pendBuf = buf
				d.pending = buf[w:]
			} else {
				putBuf(buf)
			}
			return nil
		}
		putBuf(buf)
		return err
	}
	if err != nil && err != unix.EAGAIN {
		return err
	}
	if w < total {
		buf := getBuf(total - w)
		for _, p := range pieces {
			if w >= len(p) {
				w -= len(p)
				continue
			}
			buf = append(buf, p[w:]...)
			w = 0
		}
		d.pendBuf = buf
		d.pending = buf
	}
	return nil
}

// writevFD writes as much of pieces as fd takes now (at most maxIov
// pieces), as a raw system call like the loop's other I/O.
func writevFD(fd int, pieces [][]byte, total int) (int, error) {
	var iov [maxIov]unix.Iovec
	k := 0
	for _, p := range pieces {
		if len(p) > 0 {
			iov[k].Base = &p[0]
			iov[k].SetLen(len(p))
			k++
		}
	}
	for {
		n, _, e := syscall.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(k))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		// A short writev: the socket is full (the rest becomes pending).
		return int(n), nil
	}
}

// The WAIT deadline sweeper: a pair whose oldest WAIT went unanswered for
// longer than its limit is closed (the master, not the replica, stopped
// answering: WAIT's own timeout covers the replica).
var (
	durableFlows sync.Map // *Flow -> struct{}
	sweepOnce    sync.Once
)

// sweepEvery is the sweeper's period.
const sweepEvery = 50 * time.Millisecond

func watchDurable(f *Flow) {
	durableFlows.Store(f, struct{}{})
	sweepOnce.Do(func() {
		go func() {
			for range time.Tick(sweepEvery) {
				now := time.Now().UnixNano()
				durableFlows.Range(func(k, _ any) bool {
					f := k.(*Flow)
					if since := f.waitSince.Load(); since != 0 && now-since > f.waitLimit {
						f.waitSince.Store(0)
						if f.dstats != nil {
							f.dstats.ClosedStuck.Add(1)
						}
						f.Close()
					}
					return true
				})
			}
		}()
	})
}
