package loop

import (
	"strings"
	"testing"
)

// A HEAD of the health path is answered as its GET is, without the body
// ([RFC9110 §9.3.2]: The HEAD method is identical to GET except that the
// server MUST NOT send content in the response; [§9.1]: All
// general-purpose servers MUST support the methods GET and HEAD).
// Orchestrators' checks often send HEAD (HAProxy's `http-check send meth
// HEAD`, `curl -I`, GNU `wget --spider`); before, it got 405 and the check
// took a healthy router for down.
func TestHealthzHeadAnswered(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	c := dialTCP(t, s.url, 0)
	c.Write([]byte("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	got := waitClosed(t, c, ioTimeout)
	hdr, body, _ := strings.Cut(string(got), "\r\n\r\n")
	if !strings.HasPrefix(hdr, "HTTP/1.1 200 ") || !strings.Contains(hdr, "\r\nContent-Length: 2") || body != "" {
		t.Fatalf("HEAD /healthz answered %q", got)
	}
}
