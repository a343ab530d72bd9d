package netns

import (
	"context"
	"net"
)

// DialFunc is the shape of net.Dialer.DialContext, which go-redis and most
// clients accept as their dialer.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer returns a DialFunc that connects from inside the namespace at
// path. An empty path dials from the caller's own namespace.
func Dialer(path string) DialFunc {
	var d net.Dialer
	if path == "" {
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := Do(path, func() error {
			var err error
			conn, err = d.DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
}

// Listen opens a stream listener inside the namespace at path.
func Listen(path, network, addr string) (net.Listener, error) {
	var l net.Listener
	err := Do(path, func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// ListenPacket opens a packet socket (UDP, ...) inside the namespace at path.
func ListenPacket(path, network, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := Do(path, func() error {
		var err error
		c, err = net.ListenPacket(network, addr)
		return err
	})
	return c, err
}
