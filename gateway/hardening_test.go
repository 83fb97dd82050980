package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// redirector answers every request with a redirect to target (307 keeps
// method, body and the custom headers net/http copies).
func redirector(t *testing.T, target string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(s.Close)
	return s
}

// elsewhere records what reaches a host the configuration never named.
type elsewhere struct {
	srv  *httptest.Server
	hits atomic.Int64
	hdr  atomic.Value
}

func newElsewhere(t *testing.T) *elsewhere {
	e := &elsewhere{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.hits.Add(1)
		e.hdr.Store(r.Header.Clone())
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// TestWebhookNoRedirect: a webhook target that answers with a
// redirect must not make the gateway POST the event (its signature and
// the configured secret headers) to another URL.
func TestWebhookNoRedirect(t *testing.T) {
	other := newElsewhere(t)
	// Another host name for the same loopback target: a cross-host redirect.
	target := strings.Replace(other.srv.URL, "127.0.0.1", "localhost", 1) + "/internal"
	red := redirector(t, target)
	e := newEnv(t, func(o *Options) {
		o.Webhooks = []Webhook{{Name: "r", Realm: "realm1", Topic: "com.hook", URL: red.URL,
			Secret: "hook-secret", Headers: map[string]string{"X-Api-Token": "s3cret"}, Retries: -1}}
	})
	pub := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := e.dial("realm1", proto.JSON)
	waitFor(t, "the webhook's subscription", func() bool {
		res, err := sub.Call(ctx, "wamp.subscription.match", []any{"com.hook"}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
	if err := pub.Publish(ctx, "com.hook", []any{"x"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := other.hits.Load(); n != 0 {
		h, _ := other.hdr.Load().(http.Header)
		t.Fatalf("the webhook followed a redirect: %d request(s) reached %s with X-Api-Token %q, signature %q",
			n, target, h.Get("X-Api-Token"), h.Get("X-Edgewamp-Signature"))
	}
}

// TestCalleeNoRedirect: an HTTP callee's upstream that redirects
// must not make the gateway POST the invocation elsewhere.
func TestCalleeNoRedirect(t *testing.T) {
	other := newElsewhere(t)
	target := strings.Replace(other.srv.URL, "127.0.0.1", "localhost", 1) + "/internal"
	red := redirector(t, target)
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.red", URL: red.URL, Headers: map[string]string{"X-Api-Token": "s3cret"}}}
	})
	caller := e.dial("realm1", proto.JSON)
	waitRegistered(t, caller, "com.red")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := caller.Call(ctx, "com.red", []any{"x"}, nil, nil)
	if n := other.hits.Load(); n != 0 {
		t.Fatalf("the callee followed a redirect: %d request(s) reached %s (call: %v)", n, target, err)
	}
	var we *client.Error
	if !errors.As(err, &we) || we.URI != URIUpstream {
		t.Fatalf("a redirect is an upstream error: %v", err)
	}
}

// TestSSEProblemOneLine: an error whose args hold raw newlines
// (JSON whitespace from a pretty-printing upstream) must still be one SSE
// data line, else the client gets a truncated, unparsable problem event.
// The upstream answers once the stream has started (its first keepalive):
// a call failing before is answered as a plain request
// (TestStreamedCallFailingAtOnceAnswersItsStatus).
func TestSSEProblemOneLine(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-release
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(409)
		w.Write([]byte("{\"error\":\"com.example.busy\",\"args\":[\n  \"try later\"\n],\"kwargs\":{\n  \"retry\": 5\n}}"))
	}))
	t.Cleanup(up.Close)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) }) // before up.Close
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.busy", URL: up.URL}}
		o.Limits.SSEKeepalive = 50 * time.Millisecond
	})
	caller := e.dial("realm1", proto.JSON)
	waitRegistered(t, caller, "com.busy")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, sse := e.stream(ctx, "POST", "/wamp/realm1/call/com.busy", `{}`) // its status, at the first keepalive
	once.Do(func() { close(release) })
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want the stream's 200", resp.StatusCode)
	}
	ev, err := sse.next()
	var p problemDoc
	if err != nil || ev.event != "problem" {
		t.Fatalf("event %+v (%v)", ev, err)
	}
	if err := json.Unmarshal([]byte(ev.data), &p); err != nil || p.Error != "com.example.busy" {
		t.Fatalf("the problem event's data is not the problem document: %q (%v)", ev.data, err)
	}
}

// TestJSONWriteTimeout: a client that never reads a large JSON
// answer must not hold the handler (and the answer) past
// Limits.WriteTimeout.
func TestJSONWriteTimeout(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.WriteTimeout = 500 * time.Millisecond
		o.Routes = []Route{{Method: "GET", Path: "/big", Realm: "realm1", Call: "com.big"}}
	})
	callee := e.dial("realm1", proto.JSON)
	big := strings.Repeat("x", 8<<20)
	e.register(callee, "com.big", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{big}}, nil
	})
	c, err := net.Dial("tcp", e.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// Read nothing: the handler must give up on the client (without the
	// write timeout it would wait for it forever). Polled rather than
	// slept: under -race on a loaded machine the 8 MiB call alone can take
	// seconds before the first write.
	rm := e.gw.metrics.route("GET /big")
	deadline := time.Now().Add(30 * time.Second)
	for {
		var done uint64
		for i := range rm.codes {
			done += rm.codes[i].Load()
		}
		if done > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the handler still writes to a client that read nothing for 30 s (write timeout 500 ms)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, err := io.Copy(io.Discard, io.LimitReader(c, 8<<20+1))
	t.Logf("read %d bytes (%v)", n, err)
	if n > 8<<20 {
		t.Fatalf("the gateway kept the answer for a client that read nothing for 6 write timeouts: %d bytes delivered (%v)", n, err)
	}
}

// TestHTTP2SSEIdle: over HTTP/2 an event stream that is idle for
// longer than Limits.WriteTimeout (the default keepalive, 15s, is longer
// than the default write timeout, 10s) must stay open: the next event
// still arrives.
func TestHTTP2SSEIdle(t *testing.T) {
	e, hc := tlsEnv(t, func(o *Options) {
		o.Limits.WriteTimeout = 300 * time.Millisecond
		o.Limits.SSEKeepalive = 30 * time.Second
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+e.gw.Addr().String()+"/wamp/realm1/events/com.idle", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("%d %s", resp.StatusCode, resp.Proto)
	}
	sse := newSSEReader(resp.Body)
	time.Sleep(time.Second) // idle for more than the write timeout
	pub := e.dial("realm1", proto.JSON)
	if err := pub.Publish(ctx, "com.idle", []any{"hello"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	ev, err := sse.next()
	if err != nil || !strings.Contains(ev.data, `"hello"`) {
		t.Fatalf("an idle HTTP/2 event stream lost its next event: %+v (%v)", ev, err)
	}
}

// TestProgressBytesBounded: the progressive results queued for an
// SSE client that does not read are bounded by Limits.SSEBuffer bytes,
// as events are, not only by Limits.SSEQueue results: past it the
// stream is cut (slow reader), never buffered (SSEQueue × the largest
// message: 256 × 16 MiB by default).
func TestProgressBytesBounded(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Limits.SSEBuffer = 256 << 10
		o.Limits.SSEQueue = 4096
	})
	callee := e.dial("realm1", proto.JSON)
	chunk := strings.Repeat("p", 64<<10)
	const n = 600 // ~38 MiB in all, far beyond the socket buffers
	sent := make(chan int, 1)
	e.register(callee, "com.flood", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		i := 0
		for ; i < n; i++ {
			if err := inv.SendProgress([]any{chunk}, nil); err != nil || ctx.Err() != nil {
				break
			}
		}
		sent <- i
		return &client.Result{Args: []any{"done"}}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, sse := e.stream(ctx, "POST", "/wamp/realm1/call/com.flood", `{}`)
	// The client reads nothing while the callee floods (well within
	// the write timeout).
	select {
	case <-sent:
	case <-time.After(30 * time.Second):
		t.Fatal("the callee did not finish")
	}
	time.Sleep(500 * time.Millisecond)
	got := 0
	for {
		ev, err := sse.next()
		if err != nil {
			t.Fatalf("the stream ended without a result or problem after %d progressive results: %v", got, err)
		}
		if ev.event == "progress" {
			got++
			continue
		}
		if ev.event == "result" {
			t.Fatalf("all %d progressive results (%d MiB) were queued for a client that read none", got, got*64>>10)
		}
		if ev.event == "problem" && strings.Contains(ev.data, URISlowReader) {
			return
		}
		t.Fatalf("event %s %s", ev.event, ev.data)
	}
}

// TestPoolDroppedRace: a principal's sessions are killed while
// its requests reopen them: the shard's dropped reads slots whose session
// pick writes without the pool's lock (go test -race).
func TestPoolDroppedRace(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.APIKeys = []APIKey{{Name: "k", Key: "k-key-0123456789abcdef", Realm: "realm1", AuthID: "racer", Role: "anonymous"}}
	})
	admin := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stop := make(chan struct{})
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", e.base+"/wamp/realm1/publish/com.x", nil)
				req.Header.Set("X-API-Key", "k-key-0123456789abcdef")
				if r, err := e.hc.Do(req); err == nil {
					io.Copy(io.Discard, r.Body)
					r.Body.Close()
				}
			}
		}()
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		admin.Call(ctx, "wamp.session.kill_by_authid", []any{"racer"}, nil, nil)
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	for w := 0; w < 4; w++ {
		<-done
	}
}

// The callee and webhook log lines print a URL's scheme, host and port
// only: not its user, password, path or query (TestRunnerLogLinesNameNoURLSecret).
func TestRedactedURL(t *testing.T) {
	for u, want := range map[string]string{
		"https://hook:s3cret@example.com/in":                 "https://example.com",
		"https://hooks.example/services/T000/B000/XXXX":      "https://hooks.example",
		"http://[::1]:8080/rpc?token=s3cret#frag":            "http://[::1]:8080",
		"https://tok3n@hooks.example:8443/in?sig=s3cret&a=b": "https://hooks.example:8443",
	} {
		if g := redactedURL(u); g != want {
			t.Errorf("redactedURL(%q) = %q, want %q", u, g, want)
		}
	}
}
