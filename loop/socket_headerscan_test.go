package loop

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// A request header arriving a few bytes per read was scanned whole again
// at each read for its end and its line ends, so that the loop's work grew
// with the square of the header: a header dribbled a byte a write at the
// 64 KiB maximum made the loop scan 674 MB (21,298 reads, ~1 s of CPU on
// this machine, more the slower the dribble) for 65 KB received, and one
// at the default 8 KiB 11 MB; a thousand such clients cost every session
// on their loops tens of seconds. The scan resumes where the last one
// stopped: each byte is looked at about once.
func TestHeaderDribbleScannedOnce(t *testing.T) {
	t.Parallel()
	var scanned atomic.Int64
	s := startServer(t, func(o *Options, rc *route.Config) {
		o.MaxHandshake = MaxHandshakeMax
		o.HandshakeTimeout = time.Minute // the dribble, on a loaded machine
		o.headerScanned = &scanned
	})
	h := newHealthy(s)
	req := []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")
	for len(req) < 16<<10 {
		req = append(req, "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"...)
	}
	req = append(req, "\r\n"...)
	c := dialTCP(t, s.url, 0)
	for i := range req {
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write(req[i : i+1]); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if i%8 == 0 {
			time.Sleep(20 * time.Microsecond) // a read now and then of a few bytes
		}
	}
	if r := readHTTPResponse(t, newReader(c), c); r.status != 200 {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	// Each byte once, and the few a resumed scan looks at again (the
	// three before it, for a "\r\n\r\n" across two reads), for each read.
	if got, most := scanned.Load(), int64(4*len(req)); got > most {
		t.Fatalf("%d header bytes scanned for a %d-byte header dribbled a byte a write; want at most %d", got, len(req), most)
	}
	h.check()
}

// The HTTP lane (the gateway's requests on the loops) looked for a
// request head's end over everything buffered at each read, as the
// upgrade's parser did: a head dribbled a byte a write cost its loop the
// square of its length. Its scan resumes too.
func TestLaneHeadDribbleScannedOnce(t *testing.T) {
	t.Parallel()
	var scanned atomic.Int64
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: reviewLane{bigBody: 16}, IdleTimeout: time.Minute, HeaderTimeout: time.Minute}
		o.MaxHandshake = MaxHandshakeMax
		o.headerScanned = &scanned
	})
	req := []byte("GET /big HTTP/1.1\r\nHost: x\r\n")
	for len(req) < 16<<10 {
		req = append(req, "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"...)
	}
	req = append(req, "\r\n"...)
	c := dialTCP(t, s.url, 0)
	for i := range req {
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write(req[i : i+1]); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if i%8 == 0 {
			time.Sleep(20 * time.Microsecond)
		}
	}
	if r := readHTTPResponse(t, newReader(c), c); r.status != 200 {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	if got, most := scanned.Load(), int64(4*len(req)); got > most {
		t.Fatalf("%d head bytes scanned for a %d-byte head dribbled a byte a write; want at most %d", got, len(req), most)
	}
}

// The lane's resumed scan (laneState.scan) looks again at the three bytes
// before a read's new ones: a head whose CRLF CRLF is split 1/3, 2/2 or
// 3/1 across two reads is found, on a keep-alive connection's first head,
// its second, and a second one pipelined behind a whole first one; and the
// scan starts afresh at each head: a short head arriving whole after a
// long one that came in two reads is found.
func TestLaneHeadEndSplitAcrossReads(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: reviewLane{bigBody: 16}, IdleTimeout: time.Minute, HeaderTimeout: time.Minute}
	})
	const head = "GET /big HTTP/1.1\r\nHost: x"
	for _, k := range []int{1, 2, 3} {
		c := dialTCP(t, s.url, 0)
		br := newReader(c)
		send := func(parts ...string) {
			for _, p := range parts {
				c.SetWriteDeadline(time.Now().Add(ioTimeout))
				if _, err := c.Write([]byte(p)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(30 * time.Millisecond) // a read of its own
			}
		}
		first, rest := head+"\r\n\r\n"[:k], "\r\n\r\n"[k:]
		long := head + "\r\nX-Pad: " + strings.Repeat("a", 100)
		for i, parts := range [][]string{{first, rest}, {first, rest}, {head + "\r\n\r\n" + first, rest},
			{long + "\r\n", "\r\n"}, {head + "\r\n\r\n"}} {
			send(parts...)
			answers := 1
			if i == 2 {
				answers = 2 // the pipelined pair
			}
			for range answers {
				if r := readHTTPResponse(t, br, c); r.status != 200 {
					t.Fatalf("split %d/%d, request %d: status %d", k, 4-k, i, r.status)
				}
			}
		}
		c.Close()
	}
}
