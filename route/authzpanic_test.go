package route

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// boomAuthz is an embedder's Authorizer with a bug: it panics (a nil map
// written) on the URI com.boom, which any peer may send.
type boomAuthz struct{}

func (boomAuthz) Authorize(role string, a Action, uri string) bool {
	if strings.HasPrefix(uri, "com.boom") {
		var m map[string]int
		//lint:ignore SA5000 the runtime's own panic is what the test provokes
		m[uri]++
	}
	return true
}

// An embedder's Authorizer that panics on a peer's URI refuses that
// request (wamp.error.not_authorized), and only it. Before, the panic on
// the session's shard (an event loop) ended the whole router process, as
// a panicking Authenticator's did (6268a7f).
func TestAuthorizerPanicRefusesRequest(t *testing.T) {
	logs := &lockedBuf{}
	e := newEnv(t, 1, func(c *Config) {
		c.Realms[0].Authorizer = boomAuthz{}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	c := e.join(proto.JSON)
	for range 2 {
		req := c.call("com.boom", nil, nil, nil)
		c.expectError(proto.CodeCall, req, proto.URINotAuthorized)
	}
	sub := c.nextReq()
	c.send(&proto.Message{Type: proto.CodeSubscribe, Request: sub, Dict: c.opts(map[string]any{"match": "prefix"}), URI: []byte("com.boom.")})
	c.expectError(proto.CodeSubscribe, sub, proto.URINotAuthorized)
	// The session and the router go on.
	req := c.call("com.nobody", nil, nil, nil)
	c.expectError(proto.CodeCall, req, proto.URINoSuchProcedure)
	// One ERROR line a decision: the refusal is cached as any decision.
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "an Authorizer panicked") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "uri=com.boom") || !strings.Contains(lines[0], "assignment to entry in nil map") {
		t.Fatalf("%d ERROR lines of a panicking Authorizer, want 2 (the CALL's, the SUBSCRIBE's):\n%s", len(lines), strings.Join(lines, "\n"))
	}
}
