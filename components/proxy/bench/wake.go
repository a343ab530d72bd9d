package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wakeProbe measures what waking a sleeping core costs the core that wakes
// it, on this machine: a thread on writerCPU writes a small request to a TCP
// socket every gap while the reader, on readerCPU, either sleeps in
// epoll_wait between requests (its core goes idle, and every write must wake
// it) or polls the socket without sleeping. It returns the writer's own CPU
// time per write in both cases, medians of alternating trials.
//
// On loopback the writer's core runs the receive path of the reader's
// socket, including the wake-up, so the difference is charged to it. A proxy
// that sleeps more often per request (it is idle more, because it is
// cheaper) therefore takes that much more from the core its clients and
// redis-server share: that is how the pinned placement's P1 cells can go
// slower behind a proxy that spends less CPU per request.
func wakeProbe(writerCPU, readerCPU int) (asleep, polling time.Duration, err error) {
	const writes, gap, trials = 20000, 30 * time.Microsecond, 3
	var sleeps, polls []float64
	for t := 0; t < trials; t++ {
		for _, poll := range []bool{false, true} {
			d, err := wakeTrial(writerCPU, readerCPU, writes, gap, poll)
			if err != nil {
				return 0, 0, err
			}
			if poll {
				polls = append(polls, float64(d))
			} else {
				sleeps = append(sleeps, float64(d))
			}
		}
	}
	return time.Duration(median(sleeps)), time.Duration(median(polls)), nil
}

// wakeTrial is one trial of wakeProbe: the writer's CPU time per write.
func wakeTrial(writerCPU, readerCPU, writes int, gap time.Duration, poll bool) (time.Duration, error) {
	sp, err := newSocketPair()
	if err != nil {
		return 0, err
	}
	defer sp.close()
	w, r := sp.w, sp.r
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return 0, err
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, r, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r)}); err != nil {
		return 0, err
	}
	msg := []byte("*1\r\n$4\r\nPING\r\n")
	want := writes * len(msg)
	ready, done := make(chan error, 1), make(chan struct{})
	go func() {
		// The reader stays on its own thread and core. It waits in
		// epoll_wait as a raw system call, so that the sleep is the
		// thread's and not the Go scheduler's (a parked goroutine would
		// also wake other threads); the 10 ms timeout keeps it preemptible.
		runtime.LockOSThread()
		defer close(done)
		err := pin(readerCPU)
		ready <- err
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		ev := make([]unix.EpollEvent, 1)
		for got := 0; got < want; {
			if !poll {
				syscall.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&ev[0])), 1, 10, 0, 0)
			}
			n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(r), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			switch {
			case e == unix.EAGAIN || e == unix.EINTR:
			case e != 0 || n == 0:
				return // the writer gave up and shut its end
			default:
				got += int(n)
			}
		}
	}()
	if err := <-ready; err != nil {
		return 0, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := pin(writerCPU); err != nil {
		unix.Shutdown(w, unix.SHUT_WR)
		<-done
		return 0, err
	}
	time.Sleep(20 * time.Millisecond) // let the reader settle into its first wait
	var spent time.Duration
	for i := 0; i < writes; i++ {
		for t := time.Now(); time.Since(t) < gap; {
		}
		before := threadCPU()
		if _, err := unix.Write(w, msg); err != nil {
			unix.Shutdown(w, unix.SHUT_WR)
			<-done
			return 0, err
		}
		spent += threadCPU() - before
	}
	<-done
	return spent / time.Duration(writes), nil
}

// socketPair is a connected loopback TCP pair, held as the files
// TCPConn.File duplicates: w blocks (a write never fails for a full
// buffer), r does not.
type socketPair struct {
	files [2]*os.File
	w, r  int
}

func newSocketPair() (*socketPair, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer a.Close()
	b := <-accepted
	if b == nil {
		return nil, fmt.Errorf("wake probe: accept failed")
	}
	defer b.Close()
	sp := &socketPair{}
	for i, c := range []net.Conn{a, b} {
		if sp.files[i], err = c.(*net.TCPConn).File(); err != nil {
			sp.close()
			return nil, err
		}
	}
	// Fd puts a descriptor in blocking mode, once.
	sp.w, sp.r = int(sp.files[0].Fd()), int(sp.files[1].Fd())
	if err := unix.SetNonblock(sp.r, true); err != nil {
		sp.close()
		return nil, err
	}
	return sp, nil
}

func (sp *socketPair) close() {
	for _, f := range sp.files {
		if f != nil {
			f.Close()
		}
	}
}

// pin binds the calling thread to one CPU.
func pin(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

// firstCPU is the first CPU of a taskset list ("0", "1-3", "0,2").
func firstCPU(list string) (int, error) {
	head := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == '-' })
	if len(head) == 0 {
		return 0, fmt.Errorf("empty CPU list")
	}
	return strconv.Atoi(head[0])
}
