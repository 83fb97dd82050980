package gateway

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestFreedConnectionNotRefused: with every connection max_connections
// allows taken, the listener waited for the next connection on a spare
// slot (939dda3); a connection that came after an ordinary one closed
// still got that spare slot, and every request on it but a health probe
// 503 "maximum connection count reached" with room to serve it.
func TestFreedConnectionNotRefused(t *testing.T) {
	const n = 4
	e := newEnv(t, func(o *Options) { o.Limits.MaxConnections = n })
	ll := e.gw.ln.(*limitListener)
	conns := make([]interface{ Close() error }, 0, n)
	for i := 0; i < n; i++ {
		// An Expect header: net/http serves it (the lane hands it
		// over) and keeps the connection idle.
		c := e.dialGateway(t, 20*time.Second)
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || r.StatusCode != 200 || r.Close {
			t.Fatalf("connection %d: %v %v", i, r, err)
		}
		conns = append(conns, c)
	}
	waitFor(t, "every connection taken", func() bool { return len(ll.sem) == n && len(ll.spare) > 0 })
	conns[0].Close()
	waitFor(t, "a connection's slot given back", func() bool { return len(ll.sem) < n })
	hc := &http.Client{Timeout: 4 * time.Second}
	r, err := hc.Post(e.base+"/wamp/realm1/publish/com.freed", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode >= 300 {
		t.Fatalf("a publication with a connection free: %d", r.StatusCode)
	}
}
