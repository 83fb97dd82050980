package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestSignedNoncesOneKeyCannotFillTheCache: the replay cache of signed
// requests is shared by every signing key; one key's holder sending
// signed requests as fast as it can must not fill it for the others, whose
// requests were then refused as replays (401, counted as failed
// authentications of their addresses) for the timestamp window. The
// flooding key is refused 429 past its share, not as a replay.
func TestSignedNoncesOneKeyCannotFillTheCache(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.SigningKeys = []SigningKey{
			{Key: "flood", Secret: devSecret, Realm: "realm1", AuthID: "flood", Role: "device"},
			{Key: "quiet", Secret: devSecret, Realm: "realm1", AuthID: "quiet", Role: "device"},
		}
	})
	e.gw.nonces.mu.Lock()
	e.gw.nonces.max = 64 // 1<<20, scaled down: a key's share is 4
	e.gw.nonces.mu.Unlock()
	e.register(e.dial("realm1", proto.JSON), "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	})
	const path, body = "/wamp/realm1/call/com.echo", `{}`
	served, refused := 0, 0
	for range 64 {
		resp, out := e.do("POST", signedPath(path, "flood", devSecret, body), body)
		switch resp.StatusCode {
		case http.StatusOK:
			served++
		case http.StatusTooManyRequests:
			refused++
			expectProblem(t, resp, out, http.StatusTooManyRequests, URITooManyRequests)
		default:
			t.Fatalf("flood's signed request %d: %d %s", served+refused+1, resp.StatusCode, out)
		}
	}
	resp, out := e.do("POST", signedPath(path, "quiet", devSecret, body), body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after 64 signed requests of key flood (%d served, %d refused), key quiet's first: %d %s", served, refused, resp.StatusCode, out)
	}
	if served != 4 || refused != 60 {
		t.Fatalf("key flood: %d signed requests served, %d refused; want its share, 4, served", served, refused)
	}
	_, metrics := e.do("GET", "/metrics", "")
	if !strings.Contains(string(metrics), `edgewamp_gateway_refused_total{reason="signed_key"} 60`) {
		t.Fatalf("the refusals are not counted as signed_key")
	}
	// Every key at its share: the cache is full, and a new key's request
	// is refused as busy, not as a replay.
	c := newNonceCache(32)
	exp := time.Now().Add(time.Minute)
	for i := range 32 {
		if r := c.add(fmt.Sprint("k", i/2), fmt.Sprint("n", i), exp); r != nonceOK {
			t.Fatalf("entry %d: %d", i, r)
		}
	}
	if r := c.add("k16", "n32", exp); r != nonceFull {
		t.Fatalf("a full cache answered %d, want nonceFull", r)
	}
	if r := c.add("k0", "n0", exp); r != nonceReplay {
		t.Fatalf("a replay answered %d, want nonceReplay", r)
	}
	// A key at its share gets it back as its entries expire (swept by
	// the second they expire in: once it is over).
	c = newNonceCache(32)
	past := time.Now().Add(-time.Second)
	c.add("k", "a", past)
	c.add("k", "b", past)
	c.now = func() time.Time { return time.Now().Add(time.Second) }
	if r := c.add("k", "c", exp); r != nonceOK {
		t.Fatalf("a key whose entries expired answered %d, want nonceOK", r)
	}
}
