// Package netns is the project's one toolkit for Linux network namespaces.
// Tests (components/testenv), the lab (scenarios/lab) and the fault
// injector (scenarios/lab/fault) create, enter and wire namespaces only
// through it:
//
//   - Create/Delete a named namespace (a bind mount under Dir, the same
//     place iproute2 uses, so `ip netns list` shows them);
//   - Open one by name, path or pid (a Docker container's is /proc/PID/ns/net);
//   - Do runs a Go function inside one on a locked OS thread that dies
//     afterwards, so no other goroutine ever inherits the namespace;
//   - Dialer/Listen/ListenPacket open sockets inside one (a socket stays in
//     the namespace it was created in for its whole life);
//   - Start/Run start a child process inside one (see exec.go for why it is
//     a fork from a thread inside the namespace and not `ip netns exec` or
//     nsenter);
//   - Handle gives a netlink handle for one; AddBridge and AddVeth wire
//     namespaces to a bridge with addresses;
//   - AllowBridgeForward lets a bridge's traffic past dockerd's FORWARD policy.
//
// Partitions and other per-namespace packet filters are in the filter
// sub-package.
package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	vns "github.com/vishvananda/netns"
)

// Dir is where named namespaces live (iproute2's directory; /var/run is a
// symlink to /run on every current distribution).
const Dir = "/var/run/netns"

// NamedPath is the file of the named namespace.
func NamedPath(name string) string { return filepath.Join(Dir, name) }

// PidPath is the network namespace file of process pid, e.g. a Docker
// container's init. It names a different namespace once the pid is reused.
func PidPath(pid int) string { return "/proc/" + strconv.Itoa(pid) + "/ns/net" }

// PathOf turns a name or a path into a path: anything starting with "/" is
// taken as a path already, "" stays "" (the caller's own namespace).
func PathOf(nameOrPath string) string {
	if nameOrPath == "" || strings.HasPrefix(nameOrPath, "/") {
		return nameOrPath
	}
	return NamedPath(nameOrPath)
}

// Create makes a new named namespace with its loopback up. It fails if the
// name is taken.
func Create(name string) error {
	if name == "" || strings.ContainsRune(name, '/') {
		return fmt.Errorf("netns: bad namespace name %q", name)
	}
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	// vishvananda/netns.NewNamed unshares the calling thread into the new
	// namespace: do it on a locked thread that exits afterwards.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime destroys the thread
		h, err := vns.NewNamed(name)
		if err != nil {
			errc <- err
			return
		}
		h.Close()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		// NewNamed leaves its mount point behind when the mount fails.
		if !errors.Is(err, fs.ErrExist) {
			_ = os.Remove(NamedPath(name))
		}
		return fmt.Errorf("netns: create %s: %w", name, err)
	}
	h, err := Handle(NamedPath(name))
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("netns: %s: loopback up: %w", name, err)
	}
	return nil
}

// Delete removes the named namespace; a missing one is not an error. The
// namespace itself lives on while a process or an open handle still uses it.
func Delete(name string) error {
	if _, err := os.Lstat(NamedPath(name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := vns.DeleteNamed(name); err != nil {
		// An unmounted leftover file (a crash between create and mount).
		if rmErr := os.Remove(NamedPath(name)); rmErr == nil || errors.Is(rmErr, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("netns: delete %s: %w", name, err)
	}
	return nil
}

// Names lists the named namespaces, sorted.
func Names() ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out, nil
}

// NS is an open network namespace. Holding it keeps the namespace alive
// and addressable even after its name is deleted or its process exits.
type NS struct {
	h    vns.NsHandle
	path string
}

// Open opens the namespace at path (a named one's file, /proc/PID/ns/net, ...).
func Open(path string) (*NS, error) {
	h, err := vns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("netns: open %s: %w", path, err)
	}
	return &NS{h: h, path: path}, nil
}

// OpenName opens a named namespace.
func OpenName(name string) (*NS, error) { return Open(NamedPath(name)) }

// OpenPid opens the network namespace of process pid (e.g. a container's init).
func OpenPid(pid int) (*NS, error) { return Open(PidPath(pid)) }

// Fd is the namespace's file descriptor, valid until Close.
func (n *NS) Fd() int { return int(n.h) }

// Path is the path it was opened from.
func (n *NS) Path() string { return n.path }

// Close releases the handle.
func (n *NS) Close() error { return n.h.Close() }

// Do runs fn inside the namespace; see the package function Do.
func (n *NS) Do(fn func() error) error { return do(n.h, n.path, fn) }

// Handle returns a netlink handle whose requests act inside the namespace.
// Close it when done.
func (n *NS) Handle() (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(n.h)
	if err != nil {
		return nil, fmt.Errorf("netns: netlink in %s: %w", n.path, err)
	}
	return h, nil
}

// Handle returns a netlink handle inside the namespace at path ("" is the
// caller's). Close it when done.
func Handle(path string) (*netlink.Handle, error) {
	if path == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("netns: netlink: %w", err)
		}
		return h, nil
	}
	ns, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close() // the handle's sockets keep the namespace
	return ns.Handle()
}

// Do runs fn on a fresh OS thread switched into the network namespace at
// path ("" runs fn right here). Sockets created by fn stay in that
// namespace for their whole life. The thread is never switched back: it
// ends with fn, so no goroutine can ever inherit the foreign namespace.
// Goroutines fn starts run on other threads, in the caller's namespace.
func Do(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	ns, err := Open(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(fn)
}

func do(h vns.NsHandle, path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Exiting while locked makes the runtime destroy this thread.
		runtime.LockOSThread()
		if err := vns.Set(h); err != nil {
			errc <- fmt.Errorf("netns: enter %s: %w", path, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}
