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

// TestCalleeCopyingRouterSizeWordingIs502: the gateway answers 413 to a
// call the router could not give its callee (the request too large for
// it) and 502 to a callee's own payload_size_exceeded. It told them apart
// by the error's text (route.SizeForCallee), so a callee whose ERROR
// copied the router's wording ("the message is longer than the callee
// accepts", the meta API's "the arguments of ... are longer than 64 KiB")
// made its upstream trouble the HTTP client's 413. The router now marks
// its own such errors in their Details, which a callee's ERROR does not
// carry through, and the gateway reads the mark.
func TestCalleeCopyingRouterSizeWordingIs502(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	small, err := client.Dial(ctx, client.Config{URL: "rs://" + strings.TrimSuffix(strings.TrimPrefix(e.wamp, "ws://"), "/ws"), Realm: "realm1", Serializer: proto.JSON, MaxMessage: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { small.Close() })
	e.register(small, "com.sw.small", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	})
	s := e.dial("realm1", proto.JSON)
	for i, text := range []string{"the message is longer than the callee accepts", `the arguments of "x" are longer than 64 KiB`,
		"the payload, converted to the callee's serializer, is longer than the router builds"} {
		uri := "com.sw.copy" + string(rune('a'+i))
		e.register(s, uri, func(context.Context, *client.Invocation) (*client.Result, error) {
			return nil, &client.Error{URI: proto.URIPayloadSizeExceeded, Args: []any{text}}
		})
		if r, b := e.do("POST", "/wamp/realm1/call/"+uri, `{"args":[1]}`); r.StatusCode != http.StatusBadGateway {
			t.Errorf("a callee's payload_size_exceeded worded %q: %d %s, want 502", text, r.StatusCode, b)
		}
	}
	big := `{"args":["` + strings.Repeat("x", 8000) + `"]}`
	if r, b := e.do("POST", "/wamp/realm1/call/com.sw.small", big); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a request the callee cannot take: %d %.200s, want 413", r.StatusCode, b)
	}
	huge := `{"args":[{"x":"` + strings.Repeat("y", 70<<10) + `"}]}`
	if r, b := e.do("POST", "/wamp/realm1/call/wamp.session.count", huge); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a meta call's arguments past 64 KiB: %d %.200s, want 413", r.StatusCode, b)
	}
}
