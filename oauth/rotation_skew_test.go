package oauth

import (
	"net/url"
	"testing"
	"time"
)

// A key rotation written by a node whose clock is behind (within
// MaxClockSkew, which the mesh's clocks may differ by) does not make
// another node sign with the new key before the nodes that have not read
// it yet can verify it. The new key's ActiveFrom was the writer's clock
// plus publishAhead (two sync intervals, 10 s by default), so a writer
// 25 s behind published a key that was already active for a node with the
// right time: that node signed with it from its next sync on, and every
// node that had not synced since (up to a sync interval, an edge node
// whose uplink was down for longer) refused the tokens as forged
// (ErrTokenSignature: a gateway 401 and a WAMP authentication_failed,
// both counted as failed logins), as did resource servers whose JWKS copy
// was younger than its max-age. Now the key signs from publishAhead plus
// MaxClockSkew after the writer's clock.
func TestKeyRotationByALaggingClock(t *testing.T) {
	store := newMemStore(time.Now)
	const lag = 25 * time.Second // within the default MaxClockSkew (30 s)
	b := startEnv(t, func(o *Options) { o.Store = store; o.RotateEvery = time.Hour })
	lagging := func() time.Time { return b.clock.Now().Add(-lag) }
	a := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = b.url; o.RotateEvery = time.Hour; o.now = lagging })
	c := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = b.url; o.RotateEvery = time.Hour; o.now = b.clock.Now })
	for _, n := range []*testEnv{a, b, c} {
		n.srv.Close() // no background sync: the test runs each node's rounds
	}
	kid1 := headerOf(t, b.ccToken())["kid"]

	// The rotation is due on every clock; the lagging node A writes it.
	b.clock.Advance(time.Hour + lag)
	a.srv.syncOnce(false)
	if n := len(a.srv.ring.Load().keys); n != 2 {
		t.Fatalf("%d keys after A's rotation, want 2", n)
	}
	// B reads it at once, C not yet (its next round is up to a sync
	// interval away).
	b.srv.syncOnce(false)
	tok := b.ccToken()
	if _, err := c.srv.VerifyAccessToken(tok); err != nil {
		t.Fatalf("a token B signed right after A's rotation (kid %v; the old key is %v), verified by C before C's next sync: %v",
			headerOf(t, tok)["kid"], kid1, err)
	}
	// Once every node has read it and the skew has passed, the new key
	// signs, and every node verifies it.
	c.srv.syncOnce(false)
	b.clock.Advance(2*DefaultSyncInterval + 30*time.Second + time.Second)
	for _, n := range []*testEnv{a, b, c} {
		n.srv.syncOnce(false)
	}
	for _, n := range []*testEnv{a, b} {
		tk := n.ccToken()
		if headerOf(t, tk)["kid"] == kid1 {
			t.Fatal("the new key does not sign once publishAhead and the skew have passed")
		}
		if _, err := c.srv.VerifyAccessToken(tk); err != nil {
			t.Fatal(err)
		}
	}
}

// The first key of a mesh's ring signs at once on every node, a node
// whose clock is behind the one that wrote it (within MaxClockSkew)
// included. It was active from the writer's clock: a node 25 s behind had
// no active key for 25 s, and every token request there failed ("no
// signing key is active", 503) on a fresh mesh, or one whose bucket was
// recreated.
func TestFirstKeyOnALaggingNode(t *testing.T) {
	store := newMemStore(time.Now)
	b := startEnv(t, func(o *Options) { o.Store = store })
	lagging := func() time.Time { return b.clock.Now().Add(-25 * time.Second) }
	a := startEnv(t, func(o *Options) { o.Store = store; o.Issuer = b.url; o.now = lagging })
	cc := url.Values{"grant_type": {"client_credentials"}}
	st, body := a.token(cc, "backend", backendSec)
	if st != 200 {
		t.Fatalf("a token from a node 25 s behind the one that made the key ring: %d %v", st, body)
	}
	if _, err := b.srv.VerifyAccessToken(body["access_token"].(string)); err != nil {
		t.Fatal(err)
	}
}
