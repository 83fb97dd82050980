package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEventStreamWithBodyEndsWhenClientLeaves: an event stream's GET
// that carries a body (Content-Length, or chunks) is let go as soon as
// its client closes the connection, as one without a body is. net/http
// watches for a client's going away only once the request's body is read
// to its end, and the event stream's handler never read it: the stream
// (its slot in max_streams and max_streams_per_client, its subscription,
// the events queued to it) stayed until a write failed, two keepalives
// (30 s by default) after the client had gone. A GET route's call had
// the same fault (discardBody); the event streams now read such a body
// to its end first, within body_timeout, as the routes do.
func TestEventStreamWithBodyEndsWhenClientLeaves(t *testing.T) {
	laneFree(t)
	e := newEnv(t, func(o *Options) {
		o.Limits.SSEKeepalive = time.Minute // no write finds the closed connection meanwhile
		o.Limits.BodyTimeout = time.Second
	})
	open := func(req string) (net.Conn, string) {
		t.Helper()
		c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		return c, line
	}
	const head = "GET /wamp/realm1/events/com.streambody HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	for _, body := range []string{
		"",
		"Content-Length: 2\r\n\r\n{}",
		"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
	} {
		if body == "" {
			body = "\r\n"
		}
		c, line := open(head + body)
		if line != "HTTP/1.1 200 OK\r\n" {
			t.Fatalf("%q: %q, want a stream", body, line)
		}
		waitFor(t, "the stream to open", func() bool { return e.gw.streams.Load() == 1 })
		c.Close()
		start := time.Now()
		for e.gw.streams.Load() != 0 {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%q: the stream was still open 10 s after its client closed the connection (sse_keepalive 1m)", body)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A body declared and never sent: 408 once body_timeout passes,
	// no stream opened.
	c, line := open(head + "Content-Length: 5\r\n\r\n{")
	defer c.Close()
	if want := "HTTP/1.1 " + "408 " + http.StatusText(http.StatusRequestTimeout) + "\r\n"; line != want {
		t.Fatalf("a body never sent: %q, want %q", line, want)
	}
	if n := e.gw.streams.Load(); n != 0 {
		t.Fatalf("%d streams open", n)
	}
}
