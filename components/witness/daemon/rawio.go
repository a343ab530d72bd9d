package daemon

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// quietConn reads and writes a socket with raw non-blocking system calls
// through the connection's syscall.RawConn, and arms a write deadline only
// when a write would block. It exists for the idle footprint (issue 10
// part 4, docs/results/witness.md):
//
//   - Go enters every socket read and write through entersyscall, which
//     wakes the runtime's monitor thread (sysmon) out of its deep sleep
//     whenever the process was idle: a futex wake, a 20 µs nanosleep and a
//     futex wait on a second thread for each of the witness's ~30 wake-ups a
//     second, measured at more than half of its idle CPU. A raw system call
//     on a non-blocking socket cannot block, so it skips that path; the
//     goroutine still parks in the netpoller when the socket is not ready.
//   - A deadline is a runtime timer: moving it on every write leaves a
//     stale heap entry that wakes the process at the old time for nothing.
//     A write of a few hundred bytes to a socket whose send buffer has room
//     completes at once, so the deadline is only armed (and cleared) for the
//     rest of a write that would block: the bound on a stuck peer is the
//     same, the steady state sets no timer.
//
// Read deadlines set on the connection still apply (the poller honours
// them); errors are *net.OpError like the net package's, so errors.Is
// finds io.EOF, syscall.ECONNRESET, net.ErrClosed and
// os.ErrDeadlineExceeded as before.
type quietConn struct {
	net.Conn
	rc           syscall.RawConn
	writeTimeout time.Duration
}

// newQuietConn wraps nc; a connection that is not a socket is returned as
// is. writeTimeout bounds a write that blocks (0: no bound).
func newQuietConn(nc net.Conn, writeTimeout time.Duration) net.Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nc
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nc
	}
	return &quietConn{Conn: nc, rc: rc, writeTimeout: writeTimeout}
}

func (c *quietConn) opErr(op string, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read reads what the socket has, parking in the poller until it has some.
func (c *quietConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, c.opErr("read", err)
	case errno != 0:
		return 0, c.opErr("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

// Write writes all of b. What the socket takes at once is written without
// a deadline; the rest, if any, under writeTimeout.
func (c *quietConn) Write(b []byte) (int, error) {
	done, err := c.write(b, true)
	if err != nil || done == len(b) {
		return done, err
	}
	if c.writeTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		defer c.Conn.SetWriteDeadline(time.Time{})
	}
	n, err := c.write(b[done:], false)
	return done + n, err
}

// write writes b with raw system calls; with once, it stops at the first
// EAGAIN instead of waiting for the socket to drain.
func (c *quietConn) write(b []byte, once bool) (int, error) {
	done := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(b) {
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[done])), uintptr(len(b)-done))
			switch e {
			case 0:
				done += int(n)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return once
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return done, c.opErr("write", err)
	case errno != 0:
		return done, c.opErr("write", errno)
	}
	return done, nil
}
