package loop

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package's tests on the send path EDGEWAMP_TEST_IO_URING
// names (auto, on or off; unset: each engine's Options.IOUring, auto by
// default). make test runs the socket tests once more with off, so that
// both paths pass every test; that run also parks every loop
// (EDGEWAMP_TEST_PARK=on: Options.Park, park.go), so that the loops pass
// every test waiting in epoll_wait and in Go's netpoller.
func TestMain(m *testing.M) {
	if v := os.Getenv("EDGEWAMP_TEST_IO_URING"); v != "" {
		mode, err := ParseIOUringMode(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "EDGEWAMP_TEST_IO_URING:", err)
			os.Exit(2)
		}
		testIOUring = &mode
	}
	switch v := os.Getenv("EDGEWAMP_TEST_PARK"); v {
	case "on":
		testPark = true
	case "", "off":
	default:
		fmt.Fprintln(os.Stderr, "EDGEWAMP_TEST_PARK: on or off, not", v)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
