package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestBadInput: malformed, oversize, slow, mis-typed and invalid UTF-8
// requests each get their status and problem document, none reaches the
// callee, and the server keeps serving.
func TestBadInput(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.MaxBody = 4096
		o.Limits.BodyTimeout = 300 * time.Millisecond
	})
	callee := e.dial("realm1", proto.JSON)
	var invoked atomic.Int64
	e.register(callee, "com.echo", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		invoked.Add(1)
		return &client.Result{Args: inv.Args}, nil
	})
	deep := strings.Repeat("[", 150) + strings.Repeat("]", 150)
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		uri                             string
	}{
		{"malformed JSON", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"args":[1,}`, 400, proto.URIInvalidArgument},
		{"truncated JSON", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"args":[1`, 400, proto.URIInvalidArgument},
		{"trailing data", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"args":[1]} {"x":1}`, 400, proto.URIInvalidArgument},
		{"not an object", "POST", "/wamp/realm1/call/com.echo", "application/json", `[1,2]`, 400, proto.URIInvalidArgument},
		{"args not a list", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"args":{"a":1}}`, 400, proto.URIInvalidArgument},
		{"kwargs not a dict", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"kwargs":[1]}`, 400, proto.URIInvalidArgument},
		{"unknown field", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"arsg":[1]}`, 400, proto.URIInvalidArgument},
		{"negative timeout", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"options":{"timeout":-5}}`, 400, proto.URIInvalidArgument},
		{"timeout not a number", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"options":{"timeout":"5s"}}`, 400, proto.URIInvalidArgument},
		{"nested too deep", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"args":` + deep + `}`, 400, proto.URIInvalidArgument},
		{"invalid UTF-8", "POST", "/wamp/realm1/call/com.echo", "application/json", "{\"args\":[\"\xff\xfe\"]}", 400, proto.URIInvalidArgument},
		{"invalid UTF-8 in a key", "POST", "/wamp/realm1/publish/com.t", "application/json", "{\"kwargs\":{\"\xc3\":1}}", 400, proto.URIInvalidArgument},
		{"text/plain", "POST", "/wamp/realm1/call/com.echo", "text/plain", `{"args":[1]}`, 415, URIUnsupportedMediaType},
		{"form", "POST", "/wamp/realm1/publish/com.t", "application/x-www-form-urlencoded", `a=1`, 415, URIUnsupportedMediaType},
		{"latin-1", "POST", "/wamp/realm1/call/com.echo", "application/json; charset=iso-8859-1", `{"args":[1]}`, 415, URIUnsupportedMediaType},
		{"malformed content type", "POST", "/wamp/realm1/call/com.echo", "application/json; charset", `{}`, 415, URIUnsupportedMediaType},
		{"huge body", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"args":["` + strings.Repeat("x", 10000) + `"]}`, 413, proto.URIPayloadSizeExceeded},
		{"wrong method", "GET", "/wamp/realm1/call/com.echo", "", "", 405, URIMethodNotAllowed},
		{"wrong method publish", "PUT", "/wamp/realm1/publish/com.t", "application/json", `{}`, 405, URIMethodNotAllowed},
		{"wrong method events", "POST", "/wamp/realm1/events/com.t", "application/json", `{}`, 405, URIMethodNotAllowed},
		{"unknown path", "GET", "/nope", "", "", 404, URINotFound},
		{"invalid procedure URI", "POST", "/wamp/realm1/call/com..echo", "application/json", `{}`, 400, proto.URIInvalidURI},
		{"invalid topic URI", "POST", "/wamp/realm1/publish/com..t", "application/json", `{}`, 400, proto.URIInvalidURI},
		{"reserved topic", "POST", "/wamp/realm1/publish/wamp.session.on_join", "application/json", `{}`, 400, proto.URIInvalidURI},
		{"unknown realm", "POST", "/wamp/nosuch/call/com.echo", "application/json", `{}`, 404, proto.URINoSuchRealm},
		// A binary string ("\u0000" + base64) with malformed base64, or
		// as a dictionary key, is valid JSON but no WAMP value: the bridge
		// passed it on as it came, so a JSON callee or subscriber got it
		// (Autobahn|Python's serializer and this repository's client drop
		// their connection on it: the callee of com.echo left).
		{"unpadded base64", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"args":["\u0000AQI"]}`, 400, proto.URIInvalidArgument},
		{"bad base64 in kwargs", "POST", "/wamp/realm1/publish/com.t", "application/json", `{"kwargs":{"k":["\u0000!!!!"]}}`, 400, proto.URIInvalidArgument},
		{"binary key", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"kwargs":{"\u0000AQID":1}}`, 400, proto.URIInvalidArgument},
		// An integer beyond 8192 bits, which JSON peers got as it came
		// (Python's json.loads refuses more than 4,300 digits) and others
		// not at all: refused wherever JSON is read.
		{"integer beyond 8192 bits", "POST", "/wamp/realm1/publish/com.t", "application/json", `{"args":[` + strings.Repeat("1", 2468) + `]}`, 400, proto.URIInvalidArgument},
		// So is a dictionary key "__proto__", escaped or not: msgpack5
		// (Autobahn|JS's MsgPack) throws on it, and the peer's process
		// exits.
		{"__proto__ key", "POST", "/wamp/realm1/call/com.echo", "application/json", `{"kwargs":{"__proto__":1}}`, 400, proto.URIInvalidArgument},
		{"escaped __proto__ key in args", "POST", "/wamp/realm1/publish/com.t", "application/json", `{"args":[{"a":{"\u005f_proto__":{}}}]}`, 400, proto.URIInvalidArgument},
		{"bad exclude list", "POST", "/wamp/realm1/publish/com.t", "application/json", `{"options":{"exclude":["x"]}}`, 400, proto.URIInvalidArgument},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, e.base+c.path, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := e.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			expectProblem(t, resp, body, c.status, c.uri)
		})
	}

	t.Run("chunked huge body", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			pw.Write([]byte(`{"args":["`))
			for i := 0; i < 100; i++ {
				if _, err := pw.Write([]byte(strings.Repeat("y", 1024))); err != nil {
					return
				}
			}
			pw.Write([]byte(`"]}`))
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", e.base+"/wamp/realm1/call/com.echo", pr)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		expectProblem(t, resp, body, 413, proto.URIPayloadSizeExceeded)
	})

	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /wamp/realm1/call/com.echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"args\":[")
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		expectProblem(t, resp, body, 408, URIRequestTimeout)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("408 after %v", d)
		}
	})

	t.Run("oversize header", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.base+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("h", 64<<10))
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
	})

	t.Run("garbage request line", func(t *testing.T) {
		c, err := net.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(b), "HTTP/1.1 400") {
			t.Fatalf("answer %q", b)
		}
	})

	if n := invoked.Load(); n != 0 {
		t.Fatalf("bad input reached the callee %d times", n)
	}
	r, body := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":["still here"]}`)
	if r.StatusCode != 200 || !strings.Contains(string(body), "still here") {
		t.Fatalf("after the bad input: %d %s", r.StatusCode, body)
	}
}

// TestSlowloris: connections that trickle their headers are closed after
// ReadHeaderTimeout; past MaxConnections new ones get 503 at once (a
// spare connection of net/http's listener, or the event loop's lane),
// health probes excepted; others are served once the slow ones are gone.
func TestSlowloris(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		// Long enough for the 20 slow connections to be set up and the
		// quick client to try while they all hold their slots, on a
		// loaded machine too.
		o.Limits.ReadHeaderTimeout = 2 * time.Second
		o.Limits.MaxConnections = 20
	})
	var slow []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: "))
		slow = append(slow, c)
	}
	if e.lane {
		// The loops count a connection when they open it, after the
		// engine's acceptor hands it over: wait until all 20 hold a slot.
		waitFor(t, "the slow connections opened", func() bool { return e.eng.Stats().LaneConns >= 20 })
	}
	// A client now gets 503 (a spare connection's, or the lane's):
	// every connection slot is held. Health probes are still answered
	// (on the spare connections kept for them).
	quick := &http.Client{Timeout: 200 * time.Millisecond}
	if resp, err := quick.Get(e.base + "/openapi.json"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("served past MaxConnections: %d", resp.StatusCode)
		}
	}
	probe := &http.Client{Timeout: 5 * time.Second}
	if resp, err := probe.Get(e.base + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz past MaxConnections: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// The slow ones are cut; everyone else gets in.
	for _, c := range slow {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("a slowloris connection was not closed: %v", err)
		}
	}
	r, body := e.do("GET", "/healthz", "")
	if r.StatusCode != 200 {
		t.Fatalf("healthz after the slowloris: %d %s", r.StatusCode, body)
	}
}
