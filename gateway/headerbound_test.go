package gateway

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/loop"
)

// Limits.MaxHeader (gateway.limits.max_header, "request header bytes
// (431 beyond)") is the bound of a request's head, request line and
// final CRLF included: a head of that many bytes is served, one byte
// more is 431. Before, net/http, which reads 4 KiB past MaxHeaderBytes
// before it answers 431 (its bufio slop), served heads of MaxHeader +
// 4096 bytes (20 KiB under the default 16 KiB), and the event loop's
// lane, which hands net/http the heads longer than limits.max_handshake
// (8 KiB), served heads up to that whatever a smaller MaxHeader said. A
// bridge call (the lane's when its head is short enough) and the health
// check (net/http's) are tried, at a MaxHeader below the lane's 8 KiB
// and at the default.
func TestMaxHeaderBoundExact(t *testing.T) {
	for _, max := range []int{6000, 0} {
		e := newEnvLoop(t, nil, func(lo *loop.Options) { lo.MaxHandshake = 8 << 10 }, func(o *Options) { o.Limits.MaxHeader = max })
		if max == 0 {
			max = 16 << 10
		}
		for _, kind := range []string{"call", "healthz"} {
			for _, size := range []int{max, max + 1} {
				code := headOfSize(t, e, kind, size)
				if size <= max && code == http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("max_header %d: a %s head of %d bytes answered 431", max, kind, size)
				}
				if size > max && code != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("max_header %d: a %s head of %d bytes answered %d, want 431", max, kind, size, code)
				}
			}
		}
	}
}

// headOfSize sends a request whose head (request line, headers, final
// CRLF) is size bytes long and returns its answer's status.
func headOfSize(t *testing.T, e *env, kind string, size int) int {
	t.Helper()
	var head string
	switch kind {
	case "call":
		head = "POST /wamp/realm1/call/com.nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 0\r\nX-Pad: %s\r\n\r\n"
	default:
		head = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: %s\r\n\r\n"
	}
	pad := size - len(head) + 2
	head = strings.Replace(head, "%s", strings.Repeat("p", pad), 1)
	if len(head) != size {
		t.Fatalf("head of %d bytes, want %d", len(head), size)
	}
	c, err := net.Dial("tcp", e.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(head)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s head of %d bytes: no answer: %v", kind, size, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Over TLS net/http bounds HTTP/2's header lists by MaxHeaderBytes too
// (plus 320 bytes), so the gateway does not take its 4 KiB of HTTP/1.1
// slop off there: at max_header 8 KiB an HTTP/2 request with 7,000 bytes
// of headers is served (with the slop taken off, its bound would be
// 4,416 bytes).
func TestMaxHeaderOverHTTP2(t *testing.T) {
	laneFree(t)
	e, hc := tlsEnv(t, func(o *Options) { o.Limits.MaxHeader = 8 << 10 })
	req, _ := http.NewRequest("GET", "https://"+e.gw.Addr().String()+"/healthz", nil)
	req.Header.Set("X-Pad", strings.Repeat("p", 7000))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("HTTP/2 request with 7,000 bytes of headers at max_header 8 KiB: %d %s", resp.StatusCode, resp.Proto)
	}
}

// Limits.MaxHeader has a maximum, MaxHeaderMax (64 KiB, as the event
// loops' limits.max_handshake): net/http holds a request's head whole
// while it reads it, about 1.6 times its bytes. Before, any bound was
// taken: at 1 GiB four clients' 64 MiB heads (each one header line
// short of its end) held 410 MB of the router's memory, and
// max_connections (10,000) of them would hold whatever they sent within
// read_header_timeout.
func TestMaxHeaderHasMaximum(t *testing.T) {
	for _, mh := range []int{MaxHeaderMax + 1, 1 << 30} {
		err := Validate(Options{Addr: "127.0.0.1:0", Limits: Limits{MaxHeader: mh}})
		if err == nil || !strings.Contains(err.Error(), "gateway.limits.max_header: ") || !strings.Contains(err.Error(), "65536") {
			t.Errorf("MaxHeader %d: Validate said %v; want a refusal naming limits.max_header and its maximum", mh, err)
		}
	}
	if err := Validate(Options{Addr: "127.0.0.1:0", Limits: Limits{MaxHeader: MaxHeaderMax}}); err != nil {
		t.Errorf("MaxHeader at MaxHeaderMax: %v", err)
	}
}

// Limits.MaxBody and a route's BodyLimit have a maximum, MaxBodyMax (16
// MiB, the largest WAMP message: a body is one message's payload, and a
// callee's answer, bounded by MaxBody too, another's): the gateway reads a
// body whole, growing its buffer by doubling. Before, any bound was
// taken: at 4 GiB one client's 511 MiB of body took the router from 23 MB
// to 1.5 GB resident.
func TestMaxBodyHasMaximum(t *testing.T) {
	for _, o := range []Options{
		{Addr: "127.0.0.1:0", Limits: Limits{MaxBody: MaxBodyMax + 1}},
		{Addr: "127.0.0.1:0", Limits: Limits{MaxBody: 4 << 30}},
		{Addr: "127.0.0.1:0", Routes: []Route{{Method: "POST", Path: "/p", Realm: "realm1", Publish: "com.x", BodyLimit: 4 << 30}}},
	} {
		err := Validate(o)
		if err == nil || !strings.Contains(err.Error(), "16777216") {
			t.Errorf("MaxBody %d, route body_limit %v: Validate said %v; want a refusal naming the maximum", o.Limits.MaxBody, o.Routes, err)
		}
	}
	if err := Validate(Options{Addr: "127.0.0.1:0", Limits: Limits{MaxBody: MaxBodyMax},
		Routes: []Route{{Method: "POST", Path: "/p", Realm: "realm1", Publish: "com.x", BodyLimit: MaxBodyMax}}}); err != nil {
		t.Errorf("MaxBody and BodyLimit at MaxBodyMax: %v", err)
	}
}

// A callee's MaxResponse has the same maximum, MaxBodyMax: the gateway
// reads the upstream's answer whole (io.ReadAll up to MaxResponse), and an
// answer longer than the largest WAMP message cannot become the callee's
// YIELD anyway. MaxBody's maximum bounded a callee's answer only by its
// default: a callee's own max_response of 4 GiB was taken.
func TestCalleeMaxResponseHasMaximum(t *testing.T) {
	ce := Callee{Realm: "realm1", Procedure: "com.up", URL: "http://127.0.0.1:1/"}
	for _, n := range []int{MaxBodyMax + 1, 4 << 30} {
		c := ce
		c.MaxResponse = n
		err := Validate(Options{Addr: "127.0.0.1:0", Callees: []Callee{c}})
		if err == nil || !strings.Contains(err.Error(), "callees[0].max_response") || !strings.Contains(err.Error(), "16777216") {
			t.Errorf("MaxResponse %d: Validate said %v; want a refusal naming callees[0].max_response and the maximum", n, err)
		}
	}
	ce.MaxResponse = MaxBodyMax
	if err := Validate(Options{Addr: "127.0.0.1:0", Callees: []Callee{ce}}); err != nil {
		t.Errorf("MaxResponse at MaxBodyMax: %v", err)
	}
}
