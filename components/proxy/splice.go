package proxy

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
// waits for readability through the runtime poller first and borrows a pipe
// from a pool only while bytes are in flight. Payload still never enters user
// space.

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

// maxSplice bounds one transfer; a default pipe holds 64 KiB anyway.
const maxSplice = 1 << 20

var errNoPipe = errors.New("splice: cannot create a pipe")

// spliceCopy copies src to dst until EOF or error, returning bytes moved.
func spliceCopy(dst, src *net.TCPConn) (int64, error) {
	srcRC, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	dstRC, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	// The callbacks are built once: a closure per chunk would allocate on
	// every message and feed the garbage collector.
	var (
		total int64
		p     *kpipe
		n     int64
		left  int
		m     int64
		serr  error
	)
	readFn := func(fd uintptr) bool {
		pv := pipePool.Get()
		if pv == nil {
			serr = errNoPipe
			return true
		}
		p = pv.(*kpipe)
		for {
			n, serr = unix.Splice(int(fd), nil, p.w, nil, maxSplice, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if serr != unix.EINTR {
				break
			}
		}
		if serr == unix.EAGAIN {
			pipePool.Put(p)
			p = nil
			return false // wait for readability without holding a pipe
		}
		return true
	}
	writeFn := func(fd uintptr) bool {
		for {
			m, serr = unix.Splice(p.r, nil, int(fd), nil, left, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
			if serr != unix.EINTR {
				break
			}
		}
		return serr != unix.EAGAIN
	}
	for {
		p, n, serr = nil, 0, nil
		rerr := srcRC.Read(readFn)
		if rerr == nil {
			rerr = serr
		}
		if rerr != nil || n == 0 {
			if p != nil {
				pipePool.Put(p)
			}
			if rerr == errNoPipe && total == 0 {
				return io.Copy(struct{ io.Writer }{dst}, struct{ io.Reader }{src})
			}
			return total, rerr // n == 0: EOF
		}
		left = int(n)
		var werr error
		for left > 0 && werr == nil {
			m, serr = 0, nil
			werr = dstRC.Write(writeFn)
			if werr == nil {
				werr = serr
			}
			if m > 0 {
				left -= int(m)
				total += m
			}
		}
		if werr != nil {
			// The pipe may still hold bytes: never return it to the pool.
			unix.Close(p.r)
			unix.Close(p.w)
			runtime.SetFinalizer(p, nil)
			return total, werr
		}
		pipePool.Put(p)
	}
}
