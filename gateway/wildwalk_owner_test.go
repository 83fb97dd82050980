package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// walkLockShape returns the 1,024 wildcard patterns of 13 components
// that start with a wildcard, then 10 components each "a" or a wildcard,
// then "b.z" (route's lockOutShape): alone they would take the realm's
// walk of 13 components to 4,095.
func walkLockShape() []string {
	l := make([]string, 1024)
	for i := range l {
		comps := make([]string, 13)
		for j := 0; j < 10; j++ {
			if i&(1<<j) == 0 {
				comps[1+j] = "a"
			}
		}
		comps[11], comps[12] = "b", "z"
		l[i] = strings.Join(comps, ".")
	}
	return l
}

// openEvents opens an event stream of the wildcard pattern from hc with
// the headers hdr (name, value, …). An open stream's response is
// returned with its body unread (closed at the test's end); a refused
// one's body is read and closed.
func openEvents(t *testing.T, ctx context.Context, hc *http.Client, base, pattern string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/wamp/realm1/events/"+pattern+"?match=wildcard", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET events of %q: %v", pattern, err)
	}
	if resp.StatusCode == http.StatusOK {
		t.Cleanup(func() { resp.Body.Close() })
		return resp, ""
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// The HTTP gateway's pooled sessions were one owner of the wildcard
// index's walk (route's walkShares, the owner ""), so one HTTP client's
// event streams of overlapping 13-component patterns took that owner's
// quarter, and every other gateway client, whatever its address or
// principal, was then refused any new pattern of 13 components ("this
// client's") for as long as the streams stayed open. Each HTTP client's
// patterns now count to its own address (the key of
// MaxStreamsPerClient), whichever pooled session or principal carries
// them, as an anonymous WAMP session's of that address do.
func TestSSEWildcardWalkOwnerPerClient(t *testing.T) {
	laneFree(t)
	const key = "walk-key-0123456789abcdef"
	e := newEnv(t, func(o *Options) {
		o.APIKeys = []APIKey{{Name: "k", Key: key, Realm: "realm1", AuthID: "svc", Role: "r"}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, b := addrClient(t, "127.0.0.2"), addrClient(t, "127.0.0.3")

	// 127.0.0.2 opens event streams of the shape until refused.
	shape := walkLockShape()
	taken := 0
	var refusal string
	var open []*http.Response
	for _, p := range shape {
		resp, body := openEvents(t, ctx, a, e.base, p)
		if resp.StatusCode == http.StatusOK {
			taken++
			open = append(open, resp)
			continue
		}
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "this client's") {
			t.Fatalf("127.0.0.2's stream %d of %q: %d %s", taken, p, resp.StatusCode, body)
		}
		refusal = body
		break
	}
	if refusal == "" {
		t.Fatalf("127.0.0.2 opened all %d streams", taken)
	}
	t.Logf("127.0.0.2 opened %d streams, then: %s", taken, refusal)
	if taken > 160 {
		t.Fatalf("127.0.0.2 opened %d streams of the shape, past its quarter of the walk (154)", taken)
	}
	// Nor does it get more as another principal (other pooled sessions).
	if resp, body := openEvents(t, ctx, a, e.base, shape[taken+1], "X-API-Key", key); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "this client's") {
		t.Fatalf("127.0.0.2's stream as another principal past its quarter: %d %s", resp.StatusCode, body)
	}

	// Another address, anonymous and with a key, is served.
	for i, c := range []struct {
		pattern string
		hdr     []string
	}{
		{"com.x..status.a.b.c.d.e.f.g.h.i", nil},
		{"com.y.z.status.a.b.c.d.e.f.g.h.", []string{"X-API-Key", key}},
	} {
		if resp, body := openEvents(t, ctx, b, e.base, c.pattern, c.hdr...); resp.StatusCode != http.StatusOK {
			t.Fatalf("127.0.0.3's stream %d of %q while 127.0.0.2 holds %d: %d %s", i, c.pattern, taken, resp.StatusCode, body)
		}
	}
	// A WAMP client and an HTTP client of one address (127.0.0.1) share
	// a quarter: the WAMP session's patterns of the shape take it, then
	// the HTTP client's stream is refused.
	w := e.dial("realm1", proto.JSON)
	next, wamp := taken+2, 0
	for ; next < len(shape); next++ {
		if _, err := w.Subscribe(ctx, shape[next], func(*client.Event) {}, &client.SubscribeOptions{Match: "wildcard"}); err != nil {
			if !strings.Contains(err.Error(), "this client's") {
				t.Fatalf("the WAMP session's subscription %d of the shape: %v", wamp, err)
			}
			break
		}
		wamp++
	}
	t.Logf("a WAMP session of 127.0.0.1 subscribed %d more of the shape", wamp)
	if resp, body := openEvents(t, ctx, e.hc, e.base, shape[next+1]); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "this client's") {
		t.Fatalf("127.0.0.1's stream once its WAMP session took its quarter: %d %s", resp.StatusCode, body)
	}

	// Its streams closed, 127.0.0.2's patterns go, and its share with
	// them.
	for _, resp := range open {
		resp.Body.Close()
	}
	waitFor(t, "127.0.0.2's share free again", func() bool {
		resp, _ := openEvents(t, ctx, a, e.base, shape[len(shape)-1])
		if resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			return true
		}
		return false
	})
}
