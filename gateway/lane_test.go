package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
)

// Tests of the event loop's HTTP lane (lane.go, loop/lane.go): what it
// serves itself, what it hands to net/http and how, and what a client can
// make it hold. The rest of the package's tests run through it too (and
// once more without it: EDGEWAMP_TEST_GATEWAY_LANE=off).

func laneEnv(t *testing.T, mutate func(*Options)) *env {
	t.Helper()
	e := newEnv(t, mutate)
	if !e.lane {
		t.Skip("the gateway runs without the event loop's HTTP lane (EDGEWAMP_TEST_GATEWAY_LANE=off)")
	}
	return e
}

func (e *env) handOffs() uint64 { return e.eng.Stats().LaneCloses[loop.CloseHandOff] }

// expectHandOffs checks that want connections went to net/http since
// before. The loop counts a connection when it closes its own descriptor,
// which may come after net/http answered on the duplicate.
func (e *env) expectHandOffs(t *testing.T, before, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.handOffs()-before < want && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if d := e.handOffs() - before; d != want {
		t.Fatalf("%d connections handed to net/http, want %d", d, want)
	}
}

// echoCallee registers com.echo, counting its invocations.
func echoCallee(e *env, n *atomic.Int64) {
	callee := e.dial("realm1", proto.MsgPack)
	e.register(callee, "com.echo", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		n.Add(1)
		return &client.Result{Args: inv.Args}, nil
	})
}

// dialGateway opens a raw connection to the gateway's port, closed with
// the test, every read and write due within limit.
func (e *env) dialGateway(t *testing.T, limit time.Duration) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", e.gw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(limit))
	return c
}

// callPost is a raw request for procedure with a body of "{}".
func callPost(procedure string) string {
	return "POST /wamp/realm1/call/" + procedure + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
}

func callRequest(id int, extra string) string {
	body := fmt.Sprintf(`{"args":[%d]}`, id)
	return fmt.Sprintf("POST /wamp/realm1/call/com.echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", extra, len(body), body)
}

// readResponse reads one response and its whole body.
func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// readAnswer reads one response and checks it is the echo of id.
func readAnswer(t *testing.T, br *bufio.Reader, id int) *http.Response {
	t.Helper()
	resp, b := readResponse(t, br)
	want := fmt.Sprintf(`{"args":[%d],"kwargs":{}}`, id)
	if resp.StatusCode != 200 || b != want {
		t.Fatalf("call %d: %d %s, want 200 %s", id, resp.StatusCode, b, want)
	}
	return resp
}

// TestLaneKeepAlive: one keep-alive connection's calls are all served on
// the event loop (none hands the connection over), each with its own
// answer; Connection: close is honoured.
func TestLaneKeepAlive(t *testing.T) {
	e := laneEnv(t, nil)
	var n atomic.Int64
	echoCallee(e, &n)
	before := e.handOffs()
	c := e.dialGateway(t, 20*time.Second)
	br := bufio.NewReader(c)
	for i := range 200 {
		io.WriteString(c, callRequest(i, ""))
		resp := readAnswer(t, br, i)
		if resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", resp.Header)
		}
	}
	e.expectHandOffs(t, before, 0)
	io.WriteString(c, callRequest(999, "Connection: close\r\n"))
	resp := readAnswer(t, br, 999)
	if !resp.Close {
		t.Fatal("no Connection: close in the answer")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the connection stays open after Connection: close: %v", err)
	}
	if got := n.Load(); got != 201 {
		t.Fatalf("%d invocations, want 201", got)
	}
}

// TestLanePipelined: requests sent back to back get their answers in
// order, a request the lane does not serve in the middle included: the
// connection goes to net/http with the bytes the loop had read, after
// the answers the loop owed.
func TestLanePipelined(t *testing.T) {
	e := laneEnv(t, nil)
	var n atomic.Int64
	echoCallee(e, &n)
	before := e.handOffs()
	c := e.dialGateway(t, 20*time.Second)
	var all strings.Builder
	for i := range 5 {
		all.WriteString(callRequest(i, ""))
	}
	all.WriteString("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	for i := 5; i < 10; i++ {
		all.WriteString(callRequest(i, ""))
	}
	io.WriteString(c, all.String())
	br := bufio.NewReader(c)
	for i := range 5 {
		readAnswer(t, br, i)
	}
	resp, b := readResponse(t, br)
	if resp.StatusCode != 200 || !strings.Contains(b, "ok") {
		t.Fatalf("healthz: %d %s", resp.StatusCode, b)
	}
	for i := 5; i < 10; i++ {
		readAnswer(t, br, i) // net/http's from here on
	}
	e.expectHandOffs(t, before, 1)
	if got := n.Load(); got != 10 {
		t.Fatalf("%d invocations, want 10", got)
	}
}

// TestLaneHandsOver: requests the lane does not serve itself reach
// net/http with their connection, and are answered as net/http answers
// them; the connection keeps working there.
func TestLaneHandsOver(t *testing.T) {
	// The CORS case's origin is allowed: refused ones are answered 403 by
	// net/http (TestCrossOriginActionsRefused).
	e := laneEnv(t, func(o *Options) { o.CORS.AllowedOrigins = []string{"http://elsewhere"} })
	var n atomic.Int64
	echoCallee(e, &n)
	body := `{"args":[7]}`
	cases := []struct {
		name string
		req  string
	}{
		{"chunked body", "POST /wamp/realm1/call/com.echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body)},
		{"Expect: 100-continue", "POST /wamp/realm1/call/com.echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)},
		{"HTTP/1.0", "POST /wamp/realm1/call/com.echo HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)},
		{"a head longer than the loop reads", "POST /wamp/realm1/call/com.echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Pad: " +
			strings.Repeat("p", 10<<10) + fmt.Sprintf("\r\nContent-Length: %d\r\n\r\n%s", len(body), body)},
		{"CORS (Origin)", "POST /wamp/realm1/call/com.echo HTTP/1.1\r\nHost: localhost\r\nOrigin: http://elsewhere\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)},
		{"a path net/http cleans", "POST /wamp/realm1/../realm1/call/com.echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.handOffs()
			c := e.dialGateway(t, 20*time.Second)
			io.WriteString(c, tc.req)
			br := bufio.NewReader(c)
			resp, b := readResponse(t, br)
			if resp.StatusCode == http.StatusContinue {
				resp, b = readResponse(t, br)
			}
			switch {
			case resp.StatusCode == http.StatusMovedPermanently || resp.StatusCode == http.StatusTemporaryRedirect || resp.StatusCode == http.StatusPermanentRedirect:
				// ServeMux redirects an unclean path, as it always has.
			case resp.StatusCode != 200 || b != `{"args":[7],"kwargs":{}}`:
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			e.expectHandOffs(t, before, 1)
			if resp.Close || tc.name == "HTTP/1.0" {
				return
			}
			io.WriteString(c, callRequest(8, ""))
			readAnswer(t, br, 8)
		})
	}
}

// TestLaneClientGone: a client that closes its connection while its call
// runs has the call canceled at the callee, and the gateway holds nothing
// for it afterwards.
func TestLaneClientGone(t *testing.T) {
	e := laneEnv(t, nil)
	started, canceled := hangCallee(t, e)
	for i := range 3 {
		c, err := net.Dial("tcp", e.gw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, callPost("com.hang"))
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d never reached the callee", i)
		}
		c.Close()
		select {
		case <-canceled:
		case <-time.After(10 * time.Second):
			t.Fatalf("call %d not canceled at the callee after its client left", i)
		}
	}
	waitFor(t, "no request in flight", func() bool { return e.gw.inflight.Load() == 0 })
	var n atomic.Int64
	echoCallee(e, &n)
	r, body := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":[1]}`)
	if r.StatusCode != 200 || string(body) != `{"args":[1],"kwargs":{}}` {
		t.Fatalf("after: %d %s", r.StatusCode, body)
	}
}

// TestLaneSlowPathClientGoneCounted499: a client that closes its
// connection while its call runs on the lane's slow path (its principal's
// first call: no session on the loop's shard yet) is counted as one that
// went away (499), as README promises and as the fast path and net/http
// count it, not as the 409 of the wamp.error.canceled its call ended with.
func TestLaneSlowPathClientGoneCounted499(t *testing.T) {
	e := laneEnv(t, nil)
	started, canceled := hangCallee(t, e)
	c := e.dialGateway(t, 10*time.Second)
	io.WriteString(c, callPost("com.hang"))
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the call never reached the callee")
	}
	c.Close()
	select {
	case <-canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the call was not canceled at the callee after its client left")
	}
	if n := e.gw.laneSlowCalls.Load(); n != 1 {
		t.Fatalf("%d calls on the lane's slow path, want 1", n)
	}
	series := func(code string) string {
		return `edgewamp_gateway_requests_total{route="bridge_call",code="` + code + `"}`
	}
	waitFor(t, "the call counted", func() bool {
		return metricValue(t, e, series("499")) != "" || metricValue(t, e, series("409")) != ""
	})
	if v409, v499 := metricValue(t, e, series("409")), metricValue(t, e, series("499")); v409 != "" || v499 != "1" {
		t.Fatalf("bridge_call counted 409: %q, 499: %q; want the client gone (499) once, no 409", v409, v499)
	}
}

// TestLaneConcurrent: many keep-alive clients on both loops, each call
// with its own value, all answered with their own; with one session per
// principal, the loop without one serves its calls through the slow path
// (a goroutine) and the answers still match.
func TestLaneConcurrent(t *testing.T) {
	for _, perID := range []int{2, 1} {
		t.Run(fmt.Sprintf("sessions_per_identity=%d", perID), func(t *testing.T) {
			e := laneEnv(t, func(o *Options) { o.Limits.SessionsPerIdentity = perID })
			var n atomic.Int64
			echoCallee(e, &n)
			const clients, calls = 32, 40
			// Every connection is open before the first call, so that the
			// acceptors' balancing (loop.pickLoop) spreads them over both.
			conns := make([]net.Conn, clients)
			for i := range conns {
				c := e.dialGateway(t, 30*time.Second)
				conns[i] = c
			}
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			for ci, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					br := bufio.NewReader(c)
					for i := range calls {
						id := ci*1000 + i
						io.WriteString(c, callRequest(id, ""))
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							errs <- fmt.Errorf("call %d: %v", id, err)
							return
						}
						b, err := io.ReadAll(resp.Body)
						if want := fmt.Sprintf(`{"args":[%d],"kwargs":{}}`, id); err != nil || resp.StatusCode != 200 || string(b) != want {
							errs <- fmt.Errorf("call %d: %d %s %v, want %s", id, resp.StatusCode, b, err, want)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if got := n.Load(); got != clients*calls {
				t.Fatalf("%d invocations, want %d", got, clients*calls)
			}
			// With one session, the calls of the loop without it all take
			// the slow path.
			if slow := e.gw.laneSlowCalls.Load(); perID == 1 && slow < calls {
				t.Fatalf("%d calls on the slow path", slow)
			}
			waitFor(t, "no request in flight", func() bool { return e.gw.inflight.Load() == 0 })
		})
	}
}

// TestLaneShutdown: Shutdown waits for the calls the lane has in flight,
// which are answered; new requests are no longer served.
func TestLaneShutdown(t *testing.T) {
	e := laneEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	release := make(chan struct{})
	started := make(chan struct{})
	e.register(callee, "com.slow", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		close(started)
		<-release
		return &client.Result{Args: []any{"done"}}, nil
	})
	c := e.dialGateway(t, 20*time.Second)
	io.WriteString(c, callPost("com.slow"))
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- e.gw.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned with a call in flight: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	resp, b := readResponse(t, bufio.NewReader(c))
	if resp.StatusCode != 200 || b != `{"args":["done"],"kwargs":{}}` {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// The next request on that connection is not served: it is answered
	// 503 system_shutdown (the engine still accepts on the lane until its
	// own shutdown), and the connection closes.
	io.WriteString(c, callPost("com.slow"))
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), proto.URISystemShutdown) || !resp.Close {
			t.Fatalf("served after Shutdown: %d %s (close %v)", resp.StatusCode, b, resp.Close)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("the connection stays open after the 503")
		}
	}
}

// TestLaneSlowReader: a client that pipelines calls with large answers
// and reads none for a while makes the loop stop reading its requests
// (its answers do not pile up in the router); once it reads, every answer
// arrives, in order.
func TestLaneSlowReader(t *testing.T) {
	e := laneEnv(t, nil)
	callee := e.dial("realm1", proto.MsgPack)
	big := strings.Repeat("b", 512<<10)
	var n atomic.Int64
	e.register(callee, "com.big", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		n.Add(1)
		return &client.Result{Args: []any{inv.Args[0], big}}, nil
	})
	c := e.dialGateway(t, 90*time.Second) // 24 MiB under -race on a busy machine: 30 s was short once
	const calls = 48                      // 24 MiB of answers: more than the sockets hold
	var all strings.Builder
	for i := range calls {
		body := fmt.Sprintf(`{"args":[%d]}`, i)
		fmt.Fprintf(&all, "POST /wamp/realm1/call/com.big HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	io.WriteString(c, all.String())
	time.Sleep(1500 * time.Millisecond)
	held, _, _ := e.eng.Outbound()
	if got := n.Load(); got >= calls {
		t.Fatalf("all %d calls made while the client read nothing", got)
	}
	if held > 1<<20 {
		t.Fatalf("the router holds %d bytes of answers for a client that does not read", held)
	}
	br := bufio.NewReaderSize(c, 64<<10)
	for i := range calls {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		var got struct{ Args []any }
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(got.Args) != 2 || got.Args[0] != float64(i) || got.Args[1] != big {
			t.Fatalf("answer %d: %d %v", i, resp.StatusCode, err)
		}
	}
}

// TestLaneReadAhead: a client that sends far more than one request ahead
// of its answers is cut off; the router and other clients are unaffected.
func TestLaneReadAhead(t *testing.T) {
	e := laneEnv(t, nil)
	callee := e.dial("realm1", proto.JSON)
	e.register(callee, "com.hang", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	var n atomic.Int64
	echoCallee(e, &n)
	before := e.eng.Stats().LaneCloses[loop.CloseTooBig]
	c := e.dialGateway(t, 30*time.Second)
	io.WriteString(c, callPost("com.hang"))
	req := callRequest(1, "")
	chunk := strings.Repeat(req, (64<<10)/len(req))
	var werr error
	for sent := 0; sent < 8<<20 && werr == nil; sent += len(chunk) {
		_, werr = io.WriteString(c, chunk)
	}
	if werr == nil {
		// Everything went into socket buffers; the router must still
		// close the connection.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("the connection was not closed: %v", err)
		}
	}
	waitFor(t, "a close for reading too far ahead", func() bool { return e.eng.Stats().LaneCloses[loop.CloseTooBig] > before })
	if got := n.Load(); got != 0 {
		t.Fatalf("%d pipelined calls made behind a pending one", got)
	}
	r, body := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":[5]}`)
	if r.StatusCode != 200 || string(body) != `{"args":[5],"kwargs":{}}` {
		t.Fatalf("another client: %d %s", r.StatusCode, body)
	}
}

// TestLanePanic: a panic in the lane's code while the request holds its
// principal's in-flight slot answers 500 on that connection and closes
// it, and gives the slot back: with one request in flight allowed per
// principal, the next call is served, and Shutdown does not wait for the
// request that panicked.
func TestLanePanic(t *testing.T) {
	e := laneEnv(t, func(o *Options) { o.Limits.MaxInFlightPerIdentity = 1 })
	var n atomic.Int64
	echoCallee(e, &n)
	var fired atomic.Bool
	hook := func() {
		if fired.CompareAndSwap(false, true) {
			panic("test: a lane panic after admission")
		}
	}
	testHookLaneAdmitted.Store(&hook)
	t.Cleanup(func() { testHookLaneAdmitted.Store(nil) })

	c := e.dialGateway(t, 10*time.Second)
	io.WriteString(c, callRequest(1, ""))
	br := bufio.NewReader(c)
	resp, b := readResponse(t, br)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(b, "edgewamp.error.internal") {
		t.Fatalf("%d %s, want 500 edgewamp.error.internal", resp.StatusCode, b)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("the connection stays open after the panic: %v", err)
	}
	if !fired.Load() {
		t.Fatal("the hook did not run: the request was not served on the lane")
	}
	c2 := e.dialGateway(t, 10*time.Second)
	io.WriteString(c2, callRequest(2, ""))
	readAnswer(t, bufio.NewReader(c2), 2)
	if got := n.Load(); got != 1 {
		t.Fatalf("%d invocations, want 1 (the call that panicked is never routed)", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a request's in-flight slot was never given back: %d held)", err, e.gw.inflight.Load())
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
}

// hangCallee registers com.hang, whose invocations run until they are
// canceled; each one's start and cancellation are sent on the channels.
func hangCallee(t *testing.T, e *env) (started, canceled chan struct{}) {
	t.Helper()
	callee := e.dial("realm1", proto.JSON)
	started, canceled = make(chan struct{}, 16), make(chan struct{}, 16)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := callee.Register(ctx, "com.hang", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		started <- struct{}{}
		<-ctx.Done()
		canceled <- struct{}{}
		return nil, ctx.Err()
	}, &client.RegisterOptions{}); err != nil {
		t.Fatal(err)
	}
	return started, canceled
}
