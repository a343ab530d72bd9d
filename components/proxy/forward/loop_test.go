package forward

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestBatchReadsBeforeWrites pins the loop's order (readPass, then
// writePass): requests of two clients that are ready in the same epoll
// batch reach their backends only after both were read, and what one client
// sent in two writes goes to its backend in one write. Likewise for the
// backends' replies. The loop runs by hand on socketpairs, without its
// goroutine: everything is ready before epoll_wait, so nothing depends on
// timing. The backend ends are SOCK_SEQPACKET, so every write the loop makes
// arrives as one record and the test sees the write boundaries.
func TestBatchReadsBeforeWrites(t *testing.T) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	l := newLoop(epfd)

	sockpair := func(typ int) (mine, peer int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fds[0], fds[1]
	}
	type pair struct {
		f                  *Flow
		clientPeer, bePeer int
	}
	var pairs [2]pair
	for i := range pairs {
		cfd, cPeer := sockpair(unix.SOCK_STREAM)
		bfd, bPeer := sockpair(unix.SOCK_SEQPACKET)
		f, err := l.add(cfd, bfd, Options{})
		if err != nil {
			t.Fatal(err)
		}
		pairs[i] = pair{f, cPeer, bPeer}
		defer func() {
			f.finish()
			unix.Close(cPeer)
			unix.Close(bPeer)
		}()
	}
	send := func(fd int, msgs ...string) {
		t.Helper()
		for _, m := range msgs {
			if _, err := unix.Write(fd, []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// records reads what fd has now, one read per record (SOCK_SEQPACKET)
	// or all of it (SOCK_STREAM, one read suffices for these sizes).
	records := func(fd int) []string {
		t.Helper()
		var out []string
		buf := make([]byte, 4096)
		for {
			n, err := unix.Read(fd, buf)
			if err == unix.EAGAIN {
				return out
			}
			if err != nil || n == 0 {
				t.Fatalf("read %d: %d %v", fd, n, err)
			}
			out = append(out, string(buf[:n]))
		}
	}
	unread := func(fd int) int {
		t.Helper()
		n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	batch := func(want int) []unix.EpollEvent {
		t.Helper()
		events := make([]unix.EpollEvent, maxEvents)
		n, err := epollWaitNow(epfd, events)
		if err != nil || n != want {
			t.Fatalf("epoll_wait: %d events (%v), want %d", n, err, want)
		}
		return events[:n]
	}
	equal := func(what string, got []string, want ...string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %q, want %q", what, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s: got %q, want %q", what, got, want)
			}
		}
	}

	// Requests: client 0 sent two, in two writes; client 1 one.
	send(pairs[0].clientPeer, "*1\r\n$4\r\nPING\r\n", "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
	send(pairs[1].clientPeer, "*1\r\n$4\r\nPING\r\n")
	l.readPass(batch(2))
	for i, p := range pairs {
		if n := unread(p.f.c.fd); n != 0 {
			t.Fatalf("client %d: %d bytes left unread by readPass", i, n)
		}
		equal("backend before writePass", records(p.bePeer))
	}
	l.writePass()
	equal("backend 0", records(pairs[0].bePeer), "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
	equal("backend 1", records(pairs[1].bePeer), "*1\r\n$4\r\nPING\r\n")

	// Replies, the other way.
	send(pairs[0].bePeer, "+PONG\r\n")
	send(pairs[1].bePeer, "+PONG\r\n")
	l.readPass(batch(2))
	for i, p := range pairs {
		if n := unread(p.f.b.fd); n != 0 {
			t.Fatalf("backend %d: %d bytes left unread by readPass", i, n)
		}
		equal("client before writePass", records(p.clientPeer))
	}
	l.writePass()
	for _, p := range pairs {
		equal("client", records(p.clientPeer), "+PONG\r\n")
	}
	if len(l.queue) != 0 || l.off != 0 {
		t.Fatalf("writePass left %d queued directions, %d bytes in the batch buffer", len(l.queue), l.off)
	}
	// Nothing more is ready: the pairs' interest is back to reading.
	batch(0)
}

// TestBatchBufferFullWritesFirst: when the batch buffer has no room for
// another read window, what is queued is written before the next read, in
// order, and nothing is lost.
func TestBatchBufferFullWritesFirst(t *testing.T) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	l := newLoop(epfd)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	bfds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.add(fds[0], bfds[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { f.finish(); unix.Close(fds[1]); unix.Close(bfds[1]) }()
	// Fill the batch buffer as if earlier reads of this batch had.
	l.off = batchSize - scratchSize + 1
	other := &dir{flow: &Flow{ended: true}}
	l.queue = append(l.queue, other)
	unix.Write(fds[1], []byte("*1\r\n$4\r\nPING\r\n"))
	events := make([]unix.EpollEvent, maxEvents)
	n, _ := epollWaitNow(epfd, events)
	if n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	l.readPass(events[:n])
	if len(l.queue) != 1 || l.queue[0] != &f.up || l.off != len("*1\r\n$4\r\nPING\r\n") {
		t.Fatalf("after a full batch buffer: queue %d (up first: %v), off %d", len(l.queue), len(l.queue) > 0 && l.queue[0] == &f.up, l.off)
	}
	l.writePass()
	buf := make([]byte, 64)
	if n, err := unix.Read(bfds[1], buf); err != nil || string(buf[:n]) != "*1\r\n$4\r\nPING\r\n" {
		t.Fatalf("backend got %q %v", buf[:max(n, 0)], err)
	}
}
