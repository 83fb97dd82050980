//go:build !linux

package uring

import (
	"errors"
	"time"
)

var errNotLinux = errors.New("io_uring: only on Linux")

// Ring is an io_uring instance; on this system there is none: New fails.
type Ring struct {
	// Timeout: see the Linux implementation.
	Timeout time.Duration
}

// Completion is the outcome of one send (see the Linux implementation).
type Completion struct {
	Tag uint64
	Res int32
}

// Err returns Res as an error (nil when Res ≥ 0).
func (c Completion) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return errors.New("io_uring: send failed")
}

// DefaultEntries is the ring size the loops use.
const DefaultEntries = 1024

// New fails: io_uring is Linux only.
func New(int) (*Ring, error) { return nil, errNotLinux }

// Probe fails: io_uring is Linux only.
func Probe() error { return errNotLinux }

// Close does nothing.
func (*Ring) Close() error { return nil }

// Cap returns 0.
func (*Ring) Cap() int { return 0 }

// Queued returns 0.
func (*Ring) Queued() int { return 0 }

// Stalls returns 0.
func (*Ring) Stalls() uint64 { return 0 }

// Enters returns 0.
func (*Ring) Enters() uint64 { return 0 }

// Err reports that there is no ring.
func (*Ring) Err() error { return errNotLinux }

// Send queues nothing.
func (*Ring) Send(int, []byte, uint64) bool { return false }

// Recv queues nothing.
func (*Ring) Recv(int, []byte, uint64) bool { return false }

// Submit returns nothing.
func (*Ring) Submit() ([]Completion, error) { return nil, errNotLinux }
