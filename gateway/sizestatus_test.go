package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestPayloadSizeStatusNamesItsSide: wamp.error.payload_size_exceeded was
// 413 whatever was too large, so a callee's answer too large for it (an
// HTTP callee's upstream past max_response, a result past what a peer
// takes) told the HTTP client its request was too large. A call whose
// request the callee cannot take (the router's "longer than the callee
// accepts") is still 413; the callee's own payload_size_exceeded is 502,
// the upstream's answer; a mapping in errors: still decides.
func TestPayloadSizeStatusNamesItsSide(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Routes = []Route{{Name: "mapped", Method: "POST", Path: "/mapped", Realm: "realm1", Call: "com.size.out",
			Errors: map[string]int{proto.URIPayloadSizeExceeded: 507}}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Over RawSocket, whose handshake tells the router the callee's 4 KiB.
	small, err := client.Dial(ctx, client.Config{URL: "rs://" + strings.TrimSuffix(strings.TrimPrefix(e.wamp, "ws://"), "/ws"), Realm: "realm1", Serializer: proto.JSON, MaxMessage: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { small.Close() })
	e.register(small, "com.size.in", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	})
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.size.out", func(context.Context, *client.Invocation) (*client.Result, error) {
		return nil, &client.Error{URI: proto.URIPayloadSizeExceeded, Args: []any{"the upstream's answer exceeds 1024 bytes"}}
	})
	big := `{"args":["` + strings.Repeat("x", 8000) + `"]}`
	if r, b := e.do("POST", "/wamp/realm1/call/com.size.in", big); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a request the callee cannot take: %d %s, want 413", r.StatusCode, b)
	}
	if r, b := e.do("POST", "/wamp/realm1/call/com.size.out", `{"args":[1]}`); r.StatusCode != http.StatusBadGateway ||
		!strings.Contains(string(b), proto.URIPayloadSizeExceeded) {
		t.Errorf("the callee's payload_size_exceeded: %d %s, want 502 naming the error", r.StatusCode, b)
	}
	if r, b := e.do("POST", "/mapped", `{}`); r.StatusCode != 507 {
		t.Errorf("a route mapping payload_size_exceeded to 507: %d %s", r.StatusCode, b)
	}
}
