//go:build !linux

package load

import (
	"errors"
	"net"
)

// uringClient: -driver uring is Linux only.
type uringClient struct{}

type uconn struct{ out []byte }

func (*uconn) wake() {}

func newURingClient(int, bool, func(string, ...any)) (*uringClient, error) {
	return nil, errors.New("-driver uring: io_uring is Linux only")
}

func (*uringClient) add(c net.Conn, _ *sess) error {
	c.Close()
	return errors.New("-driver uring: io_uring is Linux only")
}

func (*uringClient) stop() {}
