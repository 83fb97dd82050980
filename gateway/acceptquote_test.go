package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestAcceptQuotedParameterNotSplit: a parameter's value in Accept may be
// a quoted-string holding commas and semicolons (RFC 9110 §5.6.4,
// §12.5.1), which separate nothing there. The gateway split Accept at
// every comma and semicolon: a JSON-only client whose parameter quoted
// ",text/event-stream;q=1" was answered with an event stream, one
// accepting only text/plain whose parameter quoted ",application/json"
// was served JSON where its Accept admits none (406), and a /metrics
// scrape asking for text whose parameter quoted
// ",application/openmetrics-text" got OpenMetrics. They are now read as
// the quoted values they are.
func TestAcceptQuotedParameterNotSplit(t *testing.T) {
	e := newEnv(t, nil)
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.aq.echo", func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{1}}, nil
	})
	const call = "/wamp/realm1/call/com.aq.echo"
	for _, c := range []struct {
		accept string
		status int
		ct     string
	}{
		{`application/json; profile="urn:x,text/event-stream;q=1"`, 200, "application/json"},
		{`application/json; profile="a\",text/event-stream"`, 200, "application/json"},
		{`text/plain; charset="x,application/json;q=1"`, 406, "application/problem+json"},
		{`text/event-stream; x="a;q=0"`, 200, "text/event-stream"},
	} {
		r, b := e.do("POST", call, `{"args":[1]}`, "Accept", c.accept)
		if r.StatusCode != c.status || r.Header.Get("Content-Type") != c.ct {
			t.Errorf("Accept %s: %d %q %.80s; want %d %s", c.accept, r.StatusCode, r.Header.Get("Content-Type"), b, c.status, c.ct)
		}
	}
	r, _ := e.do("GET", "/metrics", "", "Accept", `text/plain; version="0.0.4,application/openmetrics-text;q=1"`)
	if ct := r.Header.Get("Content-Type"); r.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics asking for text with a quoted comma: %d %q, want text/plain", r.StatusCode, ct)
	}
}

// TestAcceptQuotedNoAllocation: acceptsSSE runs on every call (the
// lane's too) and reads a quoted Accept without allocating.
func TestAcceptQuotedNoAllocation(t *testing.T) {
	r, _ := http.NewRequest("POST", "http://x/", nil)
	r.Header.Set("Accept", `application/json; profile="urn:x,text/event-stream;q=1", text/event-stream;q=0.5`)
	if n := testing.AllocsPerRun(100, func() { acceptsSSE(r) }); n != 0 {
		t.Fatalf("acceptsSSE: %v allocations", n)
	}
	if acceptsSSE(r) {
		t.Fatal("acceptsSSE: true for JSON at 1 and a stream at 0.5")
	}
}
