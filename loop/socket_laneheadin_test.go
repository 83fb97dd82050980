package loop

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// The once-a-second scan asks laneHeadIn whether an incomplete head has
// become whole (a body's wait, not the header timeout's); it looked for
// CRLF CRLF over the whole buffered head again at each scan, though the
// reads had scanned it already (laneState.scan): every lane connection
// holding an incomplete head of up to the header limit (64 KiB) cost its
// loop that many bytes a second, whatever the reads' resumed scan saved.
// It resumes there too: a head of 60 KiB that the header timeout ends
// after two or three scans is scanned about once.
func TestLaneHeadInScanResumes(t *testing.T) {
	t.Parallel()
	var scanned atomic.Int64
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: reviewLane{bigBody: 16}, IdleTimeout: time.Minute, HeaderTimeout: 2 * time.Second}
		o.MaxHandshake = MaxHandshakeMax
		o.headerScanned = &scanned
	})
	head := []byte("GET /big HTTP/1.1\r\nHost: x\r\n")
	for len(head) < 60<<10 {
		head = append(head, "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"...)
	}
	const conns = 16
	cs := make([]net.Conn, conns)
	for i := range cs {
		cs[i] = dialTCP(t, s.url, 0)
		cs[i].SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := cs[i].Write(head); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
	}
	// The header timeout (2 s) closes each connection at the scan after
	// it, so the scans (two or three) have each asked laneHeadIn first.
	for i, c := range cs {
		c.SetReadDeadline(time.Now().Add(3 * ioTimeout))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("conn %d with an incomplete head: read %d, %v; want it closed at the header timeout", i, n, err)
		}
	}
	got, sent := scanned.Load(), int64(conns*len(head))
	t.Logf("%d head bytes scanned for %d connections' incomplete heads of %d bytes (%d in all)", got, conns, len(head), sent)
	if got > sent+sent/2 {
		t.Fatalf("%d head bytes scanned for %d bytes of incomplete heads; want about one scan of each (at most %d)", got, sent, sent+sent/2)
	}
}
