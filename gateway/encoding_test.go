package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestCompressedBodyUnsupportedMediaType: a body sent with a
// Content-Encoding (gzip), which the gateway does not decode, is refused
// 415 naming the coding (RFC 9110 §15.5.16), not taken as JSON: its
// bytes were read as the document, and the client was told 400 "the body
// is not valid UTF-8", or "malformed JSON", about a body it sent well
// formed. The callee is never called.
func TestCompressedBodyUnsupportedMediaType(t *testing.T) {
	e := newEnv(t, nil)
	calls := make(chan struct{}, 4)
	e.register(e.dial("realm1", proto.JSON), "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		calls <- struct{}{}
		return &client.Result{Args: inv.Args}, nil
	})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"args":[1]}`))
	zw.Close()
	for _, path := range []string{"/wamp/realm1/call/com.echo", "/wamp/realm1/publish/com.t"} {
		req, _ := http.NewRequest("POST", e.base+path, bytes.NewReader(gz.Bytes()))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		expectProblem(t, resp, body, http.StatusUnsupportedMediaType, URIUnsupportedMediaType)
	}
	// identity is no coding at all.
	resp, body := e.do("POST", "/wamp/realm1/call/com.echo", `{"args":[1]}`, "Content-Encoding", "identity")
	if resp.StatusCode != http.StatusOK || string(body) != `{"args":[1],"kwargs":{}}` {
		t.Fatalf("Content-Encoding identity: %d %s", resp.StatusCode, body)
	}
	if n := len(calls); n != 1 {
		t.Fatalf("the callee was called %d times, want once (the identity call)", n)
	}
}
