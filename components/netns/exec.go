package netns

import (
	"fmt"
	"os/exec"
	"runtime"

	vns "github.com/vishvananda/netns"
)

// Start starts cmd inside the network namespace at path ("" keeps the
// caller's) and returns a channel that yields cmd.Wait's result once the
// child has exited. The caller must not call cmd.Wait itself.
//
// The child is forked from a dedicated OS thread that first enters the
// namespace (a child inherits the namespaces of the thread that forks it)
// and then stays alive, locked, until the child is reaped. That is the one
// way this project starts processes in a namespace, chosen over
// `ip netns exec` and `nsenter --net=PATH` because:
//   - it takes any namespace the toolkit can open, named or a container's
//     /proc/PID/ns/net, with no helper binary and with a Go error (not an
//     exit status of a wrapper) when the namespace cannot be entered;
//   - cmd's pid is the program's own pid (no wrapper in between that could
//     fork), so signals, freezes and /proc lookups hit the daemon;
//   - SysProcAttr.Pdeathsig fires when the forking *thread* exits; the
//     runtime destroys threads whenever a goroutine exits while locked (as
//     Do does), so forking from an ordinary goroutine could kill a daemon at
//     a random moment. Here the forking thread lives exactly as long as the
//     child, so Pdeathsig means "when this process dies".
//
// Unlike `ip netns exec`, nothing is remounted: the child sees the host's
// /sys and /etc. No program the project starts reads /sys/class/net.
func Start(path string, cmd *exec.Cmd) (<-chan error, error) {
	var ns *NS
	if path != "" {
		var err error
		if ns, err = Open(path); err != nil {
			return nil, err
		}
	}
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine ends, the runtime destroys
		// the thread, which may be inside a foreign namespace.
		runtime.LockOSThread()
		if ns != nil {
			err := vns.Set(ns.h)
			ns.Close()
			if err != nil {
				started <- fmt.Errorf("netns: enter %s: %w", path, err)
				return
			}
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// Run is Start followed by waiting for the child: cmd.Run inside the
// namespace at path.
func Run(path string, cmd *exec.Cmd) error {
	done, err := Start(path, cmd)
	if err != nil {
		return err
	}
	return <-done
}
