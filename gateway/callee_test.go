package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// calleeUpstream is an HTTP upstream whose behaviour the test picks per
// procedure (the X-Edgewamp-Procedure header).
type calleeUpstream struct {
	srv      *httptest.Server
	last     atomic.Value // the last request body
	canceled chan string  // procedures whose request context ended before the answer
	inflight atomic.Int64
}

func newCalleeUpstream(t *testing.T) *calleeUpstream {
	u := &calleeUpstream{canceled: make(chan string, 16)}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // then net/http notices the client leaving
		u.last.Store(string(body))
		proc := r.Header.Get("X-Edgewamp-Procedure")
		switch proc {
		case "com.weather", "com.weather.wamp":
			var in struct {
				Args []any `json:"args"`
			}
			json.Unmarshal(body, &in)
			w.Header().Set("Content-Type", "application/json")
			if proc == "com.weather.wamp" {
				w.Write([]byte(`{"args":["sunny"],"kwargs":{"city":` + mustJSON(in.Args[0]) + `}}`))
				return
			}
			w.Write([]byte(`{"city":` + mustJSON(in.Args[0]) + `,"temp":21}`))
		case "com.text":
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("plain words"))
		case "com.problem":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(409)
			w.Write([]byte(`{"title":"Conflict","status":409,"error":"com.example.busy","args":["try later"],"kwargs":{"retry":5}}`))
		case "com.crash":
			w.WriteHeader(500)
			w.Write([]byte("stack trace here"))
		case "com.hang", "com.hang.held":
			u.inflight.Add(1)
			defer u.inflight.Add(-1)
			select {
			case <-r.Context().Done():
				u.canceled <- proc
			case <-time.After(30 * time.Second):
			}
		}
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// waitRegistered calls proc until it is registered.
func waitRegistered(t *testing.T, s *client.Session, proc string) {
	t.Helper()
	waitFor(t, proc+" registered", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := s.Call(ctx, "wamp.registration.match", []any{proc}, nil, nil)
		return err == nil && len(res.Args) > 0 && res.Args[0] != nil
	})
}

func TestHTTPCallee(t *testing.T) {
	up := newCalleeUpstream(t)
	e := newEnv(t, func(o *Options) {
		for _, p := range []string{"com.weather", "com.text", "com.problem", "com.crash"} {
			o.Callees = append(o.Callees, Callee{Realm: "realm1", Procedure: p, URL: up.srv.URL})
		}
		o.Callees = append(o.Callees,
			Callee{Realm: "realm1", Procedure: "com.weather.wamp", URL: up.srv.URL, Result: "wamp"},
			Callee{Realm: "realm1", Procedure: "com.hang", URL: up.srv.URL, Timeout: time.Second, MaxConcurrent: 1},
			Callee{Realm: "realm1", Procedure: "com.hang.held", URL: up.srv.URL, Timeout: 30 * time.Second, MaxConcurrent: 1})
	})
	caller := e.dial("realm1", proto.MsgPack)
	for _, p := range []string{"com.weather", "com.weather.wamp", "com.text", "com.problem", "com.crash", "com.hang", "com.hang.held"} {
		waitRegistered(t, caller, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	res, err := caller.Call(ctx, "com.weather", []any{"Basel"}, map[string]any{"units": "C"}, &client.CallOptions{DiscloseMe: true})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := res.Args[0].(map[string]any)
	if m["city"] != "Basel" || m["temp"] != int64(21) {
		t.Fatalf("result %+v", res.Args)
	}
	var sent struct {
		Procedure string         `json:"procedure"`
		Args      []any          `json:"args"`
		Kwargs    map[string]any `json:"kwargs"`
		Details   map[string]any `json:"details"`
	}
	if err := json.Unmarshal([]byte(up.last.Load().(string)), &sent); err != nil || sent.Procedure != "com.weather" ||
		sent.Args[0] != "Basel" || sent.Kwargs["units"] != "C" || sent.Details["caller"] == nil {
		t.Fatalf("upstream got %s (%v)", up.last.Load(), err)
	}

	res, err = caller.Call(ctx, "com.weather.wamp", []any{"Bern"}, nil, nil)
	if err != nil || res.Args[0] != "sunny" || res.Kwargs["city"] != "Bern" {
		t.Fatalf("wamp result: %+v %v", res, err)
	}
	res, err = caller.Call(ctx, "com.text", nil, nil, nil)
	if err != nil || res.Args[0] != "plain words" {
		t.Fatalf("text result: %+v %v", res, err)
	}

	_, err = caller.Call(ctx, "com.problem", nil, nil, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != "com.example.busy" || we.Args[0] != "try later" || we.Kwargs["retry"] != int64(5) {
		t.Fatalf("problem upstream: %v", err)
	}
	_, err = caller.Call(ctx, "com.crash", nil, nil, nil)
	if !errors.As(err, &we) || we.URI != URIUpstream || we.Kwargs["status"] != int64(500) || we.Kwargs["body"] != "stack trace here" {
		t.Fatalf("crashing upstream: %v", err)
	}

	// An upstream that never answers: the callee's timeout fails the call,
	// and the request to the upstream is abandoned. (1 s: the request must
	// reach the upstream before it, on a loaded machine too.)
	start := time.Now()
	_, err = caller.Call(ctx, "com.hang", nil, nil, nil)
	if !errors.As(err, &we) || we.URI != proto.URITimeout {
		t.Fatalf("hanging upstream: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the 1 s timeout took %v", d)
	}
	select {
	case <-up.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not canceled")
	}

	// The upstream saw its request end before the gateway's request
	// goroutine gave its MaxConcurrent slot back: wait for that too, or
	// the next call is refused for the slot the last one still holds.
	waitFor(t, "the callee's slot given back", func() bool { return calleesIdle(e) })
	waitFor(t, "the timed-out upstream request gone", func() bool { return up.inflight.Load() == 0 })

	// MaxConcurrent 1: while one call hangs, the next fails at once. The
	// callee answers wamp.error.unavailable, which the router, with no
	// other callee to reroute the call to, turns into
	// wamp.error.no_available_callee (WAMP call re-routing). The call that
	// holds the slot is com.hang.held's, whose timeout (30 s) leaves the
	// test time: com.hang's timeout had to cover the next call's way to the
	// callee, and on a loaded machine that call found the slot free again.
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	hung := make(chan error, 1)
	go func() {
		_, err := caller.Call(cctx, "com.hang.held", nil, nil, &client.CallOptions{CancelMode: "killnowait", Timeout: 30 * time.Second})
		hung <- err
	}()
	waitFor(t, "the upstream request", func() bool { return up.inflight.Load() == 1 })
	_, err = caller.Call(ctx, "com.hang.held", nil, nil, nil)
	if !errors.As(err, &we) || we.URI != proto.URINoAvailableCallee || len(we.Args) != 1 || we.Args[0] != "the HTTP upstream has too many requests in flight" {
		t.Fatalf("over MaxConcurrent: %v", err)
	}

	// A caller that cancels interrupts the upstream request (canceled once
	// the upstream has it: a request made late is not canceled, it is
	// never made).
	ccancel()
	select {
	case <-up.canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("canceling the call did not cancel the upstream request")
	}
	if err := <-hung; err == nil {
		t.Fatal("the canceled call answered")
	}
	waitFor(t, "the callee's slot given back", func() bool { return calleesIdle(e) })

	// HTTP → WAMP → HTTP through the bridge.
	r, body := e.do("POST", "/wamp/realm1/call/com.weather", `{"args":["Chur"]}`)
	if r.StatusCode != 200 || !strings.Contains(string(body), `"city":"Chur"`) {
		t.Fatalf("bridge to an HTTP callee: %d %s", r.StatusCode, body)
	}
}

// calleesIdle reports whether no HTTP callee of the gateway has a request
// in flight (each has given its MaxConcurrent slot back).
func calleesIdle(e *env) bool {
	for _, c := range e.gw.runners.Load().callees {
		if c.m.inflight.Load() != 0 {
			return false
		}
	}
	return true
}

// TestHTTPCalleeReregisters: a callee whose session the router kills
// registers again.
func TestHTTPCalleeReregisters(t *testing.T) {
	laneFree(t)
	up := newCalleeUpstream(t)
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.weather", URL: up.srv.URL, AuthID: "weather-bridge"}}
	})
	admin := e.dial("realm1", proto.JSON)
	waitRegistered(t, admin, "com.weather")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := admin.Call(ctx, "wamp.session.kill_by_authid", []any{"weather-bridge"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "registered again", func() bool {
		res, err := admin.Call(ctx, "com.weather", []any{"Sion"}, nil, nil)
		return err == nil && res.Args[0].(map[string]any)["city"] == "Sion"
	})
}

// Two HTTP callees share a procedure (invoke first, max_concurrent 1):
// while the first has a request in flight, a call it refuses with
// wamp.error.unavailable is rerouted to the second; with both busy the
// caller gets wamp.error.no_available_callee.
func TestHTTPCalleeRerouted(t *testing.T) {
	laneFree(t)
	up := newCalleeUpstream(t)
	e := newEnv(t, func(o *Options) {
		for range 2 {
			o.Callees = append(o.Callees, Callee{Realm: "realm1", Procedure: "com.hang", Invoke: "first", URL: up.srv.URL, Timeout: 20 * time.Second, MaxConcurrent: 1})
		}
	})
	caller := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, "both callees registered", func() bool {
		res, err := caller.Call(ctx, "wamp.registration.lookup", []any{"com.hang"}, nil, nil)
		if err != nil || len(res.Args) == 0 || res.Args[0] == nil {
			return false
		}
		res, err = caller.Call(ctx, "wamp.registration.count_callees", []any{res.Args[0]}, nil, nil)
		return err == nil && len(res.Args) == 1 && res.Args[0] == int64(2)
	})
	hctx, hcancel := context.WithCancel(ctx)
	hung := make(chan error, 2)
	for i := 1; i <= 2; i++ {
		go func() {
			_, err := caller.Call(hctx, "com.hang", nil, nil, &client.CallOptions{CancelMode: "killnowait"})
			hung <- err
		}()
		// The second call reaches the upstream only by way of the second
		// callee: the first refused it.
		waitFor(t, "upstream requests", func() bool { return up.inflight.Load() == int64(i) })
	}
	_, err := caller.Call(ctx, "com.hang", nil, nil, nil)
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URINoAvailableCallee {
		t.Fatalf("both callees busy: %v, want %s", err, proto.URINoAvailableCallee)
	}
	hcancel()
	<-hung
	<-hung
}

// An upstream that resets its connection in the middle of its answer's
// body: the caller's 502 does not name the upstream's address, as for a
// request that fails (51b2267). Before, it read "read tcp A->B:
// connection reset by peer".
func TestHTTPCalleeCutAnswerHidesUpstream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					c.Close()
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"a\":")
				time.Sleep(50 * time.Millisecond)
				c.(*net.TCPConn).SetLinger(0) // RST
				c.Close()
			}()
		}
	}()
	e := newEnv(t, func(o *Options) {
		o.Callees = []Callee{{Realm: "realm1", Procedure: "com.sec.reset", URL: "http://" + addr + "/rpc"}}
	})
	caller := e.dial("realm1", proto.JSON)
	waitRegistered(t, caller, "com.sec.reset")
	r, body := e.do("POST", "/wamp/realm1/call/com.sec.reset", "{}")
	if r.StatusCode != http.StatusBadGateway || strings.Contains(string(body), addr) || strings.Contains(string(body), "tcp 127.0.0.1") || !strings.Contains(string(body), "cut short") {
		t.Fatalf("%d %s", r.StatusCode, body)
	}
}

// TestHTTPCalleeMalformedBinaryResult: an HTTP upstream's JSON answer
// holding a binary string ("\u0000" + base64) with unpadded base64 went
// to the caller as it came; a JSON caller (Autobahn|Python, this
// repository's client) could not decode it and dropped its connection.
// It is now an unusable answer (URIUpstream), and the caller's session
// goes on.
func TestHTTPCalleeMalformedBinaryResult(t *testing.T) {
	laneFree(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("X-Edgewamp-Procedure") == "com.bin.wamp" {
			w.Write([]byte(`{"args":["\u0000AQI"]}`))
			return
		}
		w.Write([]byte(`"\u0000AQI"`))
	}))
	t.Cleanup(up.Close)
	e := newEnv(t, func(o *Options) {
		o.Callees = append(o.Callees, Callee{Realm: "realm1", Procedure: "com.bin", URL: up.URL},
			Callee{Realm: "realm1", Procedure: "com.bin.wamp", URL: up.URL, Result: "wamp"})
	})
	caller := e.dial("realm1", proto.JSON)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, p := range []string{"com.bin", "com.bin.wamp"} {
		waitRegistered(t, caller, p)
		_, err := caller.Call(ctx, p, nil, nil, nil)
		var we *client.Error
		if !errors.As(err, &we) || we.URI != URIUpstream {
			t.Fatalf("%s: %v, want %s", p, err, URIUpstream)
		}
	}
	if _, err := caller.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatalf("the caller's session after the answers: %v", err)
	}
}

// TestHTTPCalleeTextAnswerStartingWithNUL: TestHTTPCalleeMalformedBinaryResult
// made a JSON answer holding a malformed binary string an unusable answer,
// but the other ways an upstream's bytes become a string of the result or
// error were not checked: a 2xx body that is not JSON (one string
// argument), an error status's body (kwargs.body) and a problem document's
// "detail" (args). Each starting with NUL reached the JSON caller as
// "\u0000...", a binary string with malformed base64, which its client
// could not decode: it dropped its session (found by the gateway streams
// review, whose TestReviewHTTPCalleeTextAnswerMalformedBinary this is). The
// text answer is now unusable (edgewamp.error.upstream), and the error's
// texts have the NUL replaced with U+FFFD, as invalid UTF-8 is.
func TestHTTPCalleeTextAnswerStartingWithNUL(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("X-Edgewamp-Procedure") {
		case "com.bin.text":
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("\x00AQI"))
		case "com.bin.status":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(500)
			w.Write([]byte("\x00AQI"))
		case "com.bin.detail":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(409)
			w.Write([]byte(`{"error":"com.example.busy","detail":"\u0000AQI"}`))
		}
	}))
	t.Cleanup(up.Close)
	procs := []string{"com.bin.text", "com.bin.status", "com.bin.detail"}
	e := newEnv(t, func(o *Options) {
		for _, p := range procs {
			o.Callees = append(o.Callees, Callee{Realm: "realm1", Procedure: p, URL: up.URL})
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	var broke []string
	errs := map[string]*client.Error{}
	for _, p := range procs {
		caller := e.dial("realm1", proto.JSON)
		waitRegistered(t, caller, p)
		_, err := caller.Call(ctx, p, nil, nil, nil)
		_, err2 := caller.Call(ctx, "wamp.session.count", nil, nil, nil)
		var we *client.Error
		if err2 != nil || !errors.As(err, &we) {
			broke = append(broke, fmt.Sprintf("%s (call: %v; next call: %v)", p, err, err2))
			continue
		}
		errs[p] = we
	}
	if len(broke) > 0 {
		t.Fatalf("%d of %d upstream answers dropped the JSON caller's session: %s", len(broke), len(procs), strings.Join(broke, "; "))
	}
	if we := errs["com.bin.text"]; we.URI != URIUpstream || len(we.Args) != 1 || !strings.Contains(fmt.Sprint(we.Args[0]), "starting with NUL") {
		t.Errorf("text answer: %s %v, want %s naming the NUL", we.URI, we.Args, URIUpstream)
	}
	if we := errs["com.bin.status"]; we.URI != URIUpstream || we.Kwargs["body"] != "\uFFFDAQI" {
		t.Errorf("error status: %s %v, want %s with body \"\uFFFDAQI\"", we.URI, we.Kwargs, URIUpstream)
	}
	if we := errs["com.bin.detail"]; we.URI != "com.example.busy" || len(we.Args) != 1 || we.Args[0] != "\uFFFDAQI" {
		t.Errorf("problem document: %s %v, want com.example.busy [\"\uFFFDAQI\"]", we.URI, we.Args)
	}
}
