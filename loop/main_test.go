package loop

import (
	"fmt"
	"os"
	"testing"
)

// TestMain runs the package's tests on the send path EDGEWAMP_TEST_IO_URING
// names (auto, on or off; unset: each engine's Options.IOUring, auto by
// default). make test runs the socket tests once more with off, so that
// both paths pass every test.
func TestMain(m *testing.M) {
	if v := os.Getenv("EDGEWAMP_TEST_IO_URING"); v != "" {
		mode, err := ParseIOUringMode(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "EDGEWAMP_TEST_IO_URING:", err)
			os.Exit(2)
		}
		testIOUring = &mode
	}
	os.Exit(m.Run())
}
