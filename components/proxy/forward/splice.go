// Package forward is redisha-proxy's data path: event loops that copy bytes
// both ways between client and backend connections (read/write for small
// messages, splice(2) for large ones, see loop.go), and reads the kernel's per-connection counters
// (TCP_INFO) for idle detection and byte metrics without wrapping the
// connections (a wrapped conn would lose the splice path).
package forward

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Why not plain io.Copy: between two *net.TCPConn it does use splice(2), but
// it takes a pipe (two descriptors) for the whole life of the copy, so every
// idle client would pin four extra descriptors and two kernel pipes. This copy
// waits for readability through the runtime poller and borrows a pipe from a
// pool only while bytes are in flight. Payload never enters user space.

type kpipe struct{ r, w int }

var pipePool = sync.Pool{New: func() any {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil
	}
	p := &kpipe{r: fds[0], w: fds[1]}
	// The pool may drop idle pipes at any GC; close them when it does.
	runtime.SetFinalizer(p, func(p *kpipe) { unix.Close(p.r); unix.Close(p.w) })
	return p
}}

func discardPipe(p *kpipe) {
	unix.Close(p.r)
	unix.Close(p.w)
	runtime.SetFinalizer(p, nil)
}

// maxSplice bounds one transfer.
const maxSplice = 1 << 20

var errNoPipe = errors.New("splice: cannot create a pipe")

// spliceCopy copies src to dst until EOF or error, returning bytes moved.
//
// The whole copy runs inside one RawConn.Read call (writes nest inside it),
// which saves the poller's per-call setup on every message. After each
// message it reads again before it waits: HAProxy's "a short read means
// drained" rule would save that system call, but it is wrong here, because a
// FIN that arrived with the data is consumed by the same splice and raises no
// further readiness event, so the half-close would never be forwarded.
func spliceCopy(dst, src *net.TCPConn) (int64, error) {
	srcRC, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	dstRC, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	// The callbacks are built once: a closure per message would allocate and
	// feed the garbage collector.
	var (
		total  int64
		p      *kpipe
		left   int
		m      int64
		werr   error
		result error
		noPipe bool
	)
	writeFn := func(fd uintptr) bool {
		for {
			m, werr = unix.Splice(p.r, nil, int(fd), nil, left, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if werr != unix.EINTR {
				break
			}
		}
		return werr != unix.EAGAIN
	}
	readFn := func(fd uintptr) bool {
		for {
			pv := pipePool.Get()
			if pv == nil {
				noPipe = true
				return true
			}
			p = pv.(*kpipe)
			var n int64
			var rerr error
			for {
				n, rerr = unix.Splice(int(fd), nil, p.w, nil, maxSplice, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if rerr != unix.EINTR {
					break
				}
			}
			if rerr == unix.EAGAIN {
				pipePool.Put(p)
				return false // wait for readability, holding no pipe
			}
			if rerr != nil || n == 0 { // error, or EOF
				pipePool.Put(p)
				result = rerr
				return true
			}
			for left = int(n); left > 0; {
				m, werr = 0, nil
				if err := dstRC.Write(writeFn); err != nil && werr == nil {
					werr = err
				}
				if m > 0 {
					left -= int(m)
					total += m
				}
				if werr != nil {
					discardPipe(p) // it may still hold bytes
					result = werr
					return true
				}
			}
			pipePool.Put(p)
		}
	}
	if err := srcRC.Read(readFn); err != nil {
		return total, err
	}
	if noPipe && total == 0 {
		return io.Copy(struct{ io.Writer }{dst}, struct{ io.Reader }{src})
	}
	return total, result
}

// Forward copies both ways between a client and a backend connection until
// both directions end, then closes both (Start, then wait). When the client
// finishes sending, the backend sees EOF (half-close) and finishes its
// replies (redis closes on EOF). It returns the bytes moved client to
// backend (up) and backend to client (down).
func Forward(client, backend *net.TCPConn) (up, down int64) {
	f, err := Start(client, backend, Options{Done: func(u, d int64) { up, down = u, d }})
	if err != nil {
		return forwardBlocking(client, backend)
	}
	f.Wait()
	return up, down
}

// forwardBlocking is the fallback when the event loop cannot take the pair
// (no descriptor left to duplicate): two goroutines splicing.
func forwardBlocking(client, backend *net.TCPConn) (up, down int64) {
	done := make(chan int64, 1)
	go func() {
		n, _ := spliceCopy(backend, client)
		backend.CloseWrite()
		done <- n
	}()
	down, _ = spliceCopy(client, backend)
	client.Close()
	backend.Close()
	return <-done, down
}
