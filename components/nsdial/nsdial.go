// Package nsdial opens sockets inside another network namespace. The lab's
// client namespace and the tests' namespaces use it so that workload traffic
// really leaves from a separate host that partitions can cut off.
package nsdial

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a fresh OS thread switched into the network namespace at
// nsPath (e.g. /var/run/netns/NAME or /proc/PID/ns/net). Sockets created by fn
// stay in that namespace for their whole life. The thread is never switched
// back: it ends with fn, so no goroutine can ever inherit the foreign namespace.
func Do(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Exiting while locked makes the runtime destroy this thread.
		runtime.LockOSThread()
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			errc <- fmt.Errorf("nsdial: open netns %s: %w", nsPath, err)
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("nsdial: enter netns %s: %w", nsPath, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// DialFunc is the shape of net.Dialer.DialContext, which go-redis and most
// clients accept as their dialer.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer returns a DialFunc that connects from inside the namespace at nsPath.
// An empty nsPath dials from the caller's own namespace.
func Dialer(nsPath string) DialFunc {
	var d net.Dialer
	if nsPath == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := Do(nsPath, func() error {
			var err error
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}

// Listen opens a listener inside the namespace at nsPath.
func Listen(nsPath, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(nsPath, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}
