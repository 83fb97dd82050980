package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestGatewayLaneDrainAnswers503: while the gateway drains (SIGTERM, its
// requests in progress finishing, up to 5 s) README says it stops
// accepting: on its own listener (event_loop: false) new connections are
// refused, and a client or load balancer knows its request was not
// taken. On the event loops' HTTP lane (event_loop, the default) the
// loops still accept until the sessions' drain, and every request that
// came meanwhile was handed to net/http, already shut, which closed the
// connection without an answer (EOF after the request was sent): a
// client could not tell whether its publish or call was taken, and
// GET /readyz, which answers 503 "shutting down" to tell a load balancer,
// answered nothing. The lane now answers them 503 with the problem
// wamp.error.system_shutdown and Connection: close.
func TestGatewayLaneDrainAnswers503(t *testing.T) {
	cfg := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1, anonymous: true}]\ngateway: {listen: \"127.0.0.1:0\", event_loop: true}\n")
	g := startGatewayRouter(t, "-config", cfg)
	callee := g.dial("ws://"+g.addr+"/ws", proto.JSON)
	defer callee.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held := make(chan struct{}, 1)
	if _, err := callee.Register(ctx, "com.slow", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		held <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	// A request in progress keeps the gateway draining.
	go func() {
		if resp, err := http.Post(g.base+"/wamp/realm1/call/com.slow", "application/json", strings.NewReader(`{}`)); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not reach the callee")
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	do := func(method, path, body string) (int, string, error) {
		req, _ := http.NewRequest(method, g.base+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, "", err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b), nil
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.waitLog("shutting down", 1)
	// Until the gateway begins its drain, /readyz answers 200.
	deadline := time.Now().Add(4 * time.Second)
	for {
		code, body, err := do("GET", "/readyz", "")
		if err != nil {
			t.Fatalf("GET /readyz while the gateway drains: %v, want 503 (wamp.error.system_shutdown)\n%s", err, lastLines(g.logs(), 5))
		}
		if code != 200 {
			if code != 503 || !strings.Contains(body, proto.URISystemShutdown) {
				t.Fatalf("GET /readyz while the gateway drains: %d %s, want 503 %s", code, body, proto.URISystemShutdown)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("GET /readyz answered 200 for 4 s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, req := range [][3]string{
		{"POST", "/wamp/realm1/publish/com.news", `{"args":[1]}`},
		{"POST", "/wamp/realm1/call/com.slow", `{}`},
	} {
		code, body, err := do(req[0], req[1], req[2])
		if err != nil || code != 503 || !strings.Contains(body, proto.URISystemShutdown) {
			t.Errorf("%s %s while the gateway drains: %d %s %v, want 503 %s", req[0], req[1], code, body, err, proto.URISystemShutdown)
		}
	}
}
