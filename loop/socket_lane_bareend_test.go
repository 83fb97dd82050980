package loop

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// The lane hands a head holding a bare LF or CR to net/http while it is
// incomplete (9818744), looking only at the bytes new since the last read
// and the one before them (3a09e2b's resumed scan). A line end split
// across two reads must be told right: a CR ending one read and an LF
// starting the next is a CRLF (the lane serves the request), a CR ending
// one read and anything else starting the next is a bare CR, and an LF
// starting a read after no CR a bare LF (both handed over at once, not
// left to wait for the header timeout).
func TestLaneLineEndSplitAcrossReads(t *testing.T) {
	t.Parallel()
	var scanned atomic.Int64
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: reviewLane{bigBody: 16}, IdleTimeout: time.Minute, HeaderTimeout: time.Minute}
		o.headerScanned = &scanned
	})
	for _, tc := range []struct {
		name   string
		parts  []string // each in a read of its own
		served bool
	}{
		{"CR|LF", []string{"GET /big HTTP/1.1\r", "\nHost: x\r", "\n\r\n"}, true},
		{"CRLF|", []string{"GET /big HTTP/1.1\r\n", "Host: x\r\n", "\r\n"}, true},
		{"CRLFCR|LF", []string{"GET /big HTTP/1.1\r\nHost: x\r\n\r", "\n"}, true},
		{"CR|x", []string{"GET /big HTTP/1.1\r", "Host: x\r\n"}, false},
		{"x|LF", []string{"GET /big HTTP/1.1", "\nHost: x\n"}, false},
		{"CRLF|LF", []string{"GET /big HTTP/1.1\r\nHost: x\r\n", "\n"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handed := s.e.Stats().LaneCloses[CloseHandOff]
			c := dialTCP(t, s.url, 0)
			for i, p := range tc.parts {
				before := scanned.Load()
				if _, err := c.Write([]byte(p)); err != nil {
					t.Fatal(err)
				}
				if i < len(tc.parts)-1 {
					// The next part comes in a read of its own.
					eventually(t, ioTimeout, "part "+strconv.Itoa(i+1)+" read", func() bool { return scanned.Load() >= before+int64(len(p)) })
				}
			}
			if tc.served {
				if r := readHTTPResponse(t, newReader(c), c); r.status != 200 {
					t.Fatalf("%q: status %d %q, want the lane's 200", tc.parts, r.status, r.body)
				}
				if got := s.e.Stats().LaneCloses[CloseHandOff]; got != handed {
					t.Fatalf("%q: handed to net/http", tc.parts)
				}
				return
			}
			waitClosed(t, c, ioTimeout) // reviewLane's HandOff closes it
			eventually(t, ioTimeout, "the hand-off counted", func() bool { return s.e.Stats().LaneCloses[CloseHandOff] == handed+1 })
		})
	}
}
