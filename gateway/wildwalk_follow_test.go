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

// A wildcard pattern an HTTP client's event stream made counts in that
// client's address's quarters of the realm's patterns and walk
// (Session.walkOwner). When its streams closed while a WAMP session of
// another address held the pattern, the pattern's index bytes moved to
// that session's owner, but its count and walk stayed the HTTP client's
// for as long as the WAMP session held it: the client was refused new
// patterns of its length ("this client's") with none of its own open.
// They now follow the holder with the bytes.
func TestSSEWildcardWalkFollowsHolder(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := addrClient(t, "127.0.0.2")

	// 127.0.0.2 opens event streams of the shape until refused.
	shape := walkLockShape()
	var made []string
	var open []*http.Response
	refused := ""
	for _, p := range shape {
		resp, body := openEvents(t, ctx, a, e.base, p)
		if resp.StatusCode == http.StatusOK {
			made, open = append(made, p), append(open, resp)
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "this client's") {
			t.Fatalf("127.0.0.2's stream %d of %q: %d %s", len(made), p, resp.StatusCode, body)
		}
		refused = p
		break
	}
	if refused == "" {
		t.Fatalf("127.0.0.2 opened all %d streams", len(made))
	}
	// A WAMP session of 127.0.0.1 joins them all.
	w := e.dial("realm1", proto.JSON)
	for _, p := range made {
		if _, err := w.Subscribe(ctx, p, func(*client.Event) {}, &client.SubscribeOptions{Match: "wildcard"}); err != nil {
			t.Fatalf("the WAMP session joining %q: %v", p, err)
		}
	}
	// 127.0.0.2's streams close; the WAMP session holds the patterns.
	for _, resp := range open {
		resp.Body.Close()
	}
	var status int
	var body string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var resp *http.Response
		resp, body = openEvents(t, ctx, a, e.base, refused)
		if status = resp.StatusCode; status == http.StatusOK {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Logf("127.0.0.2 opened %d streams, closed them (a WAMP session of 127.0.0.1 holding their patterns), then asked again for the one refused: %d %s", len(made), status, body)
	if status != http.StatusOK {
		t.Fatalf("127.0.0.2, with no stream open, was refused the pattern its quarter refused while a WAMP session of 127.0.0.1 held its %d patterns: %d %s", len(made), status, body)
	}
}
