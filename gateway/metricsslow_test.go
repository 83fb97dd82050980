package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMetricsScrapesNotHeldBySlowReaders: four scrapes run at once
// (maxScrapes), and a scrape held its place until its answer was
// written, each 64 KiB piece within write_timeout: four connections that
// asked for /metrics and read nothing (or a trickle) made every other
// scrape, Prometheus's, 503 for as long as they liked. The place now
// bounds the collection only; the answer is written after it, counted in
// the SSE total as a large call result is.
func TestMetricsScrapesNotHeldBySlowReaders(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.WriteTimeout = time.Minute // the blocked writes last the test
	})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	var cs []net.Conn
	for i := range maxScrapes + 2 {
		c, err := d.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		cs = append(cs, c)
		waitWithin(t, 5*time.Second, "the gateway's end of the connection", func() bool { return gatewayEnd(c) >= 0 })
		shrinkGatewaySendBuffer(t, c, 4096)
		if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		waitWithin(t, 5*time.Second, fmt.Sprintf("scrape %d answered or refused", i), func() bool {
			lbl := e.gw.metrics.route("metrics")
			return scrapeHandlers()+int(lbl.codes[200].Load()+lbl.codes[503].Load()) == i+1
		})
	}
	time.Sleep(200 * time.Millisecond)
	r, body := e.do("GET", "/metrics", "")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("a scrape while %d clients read none of theirs: %d %s (%d scrapes held)", maxScrapes+2, r.StatusCode, body, e.gw.metrics.scrapes.Load())
	}
	// What the unread answers hold is in the SSE total, for its reaper.
	if n := e.gw.sse.bytes.Load(); n <= 0 {
		t.Fatalf("%d unread scrapes: %d bytes counted in sse_buffer_total", scrapeHandlers(), n)
	}
	for _, c := range cs {
		c.Close()
	}
	waitFor(t, "the unread answers' writes ended and their bytes given back", func() bool {
		return scrapeHandlers() == 0 && e.gw.sse.bytes.Load() == 0
	})
}

// scrapeHandlers counts the /metrics handlers running.
func scrapeHandlers() int {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "(*metrics).handler.func") {
			n++
		}
	}
	return n
}
