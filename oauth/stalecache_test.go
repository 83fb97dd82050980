package oauth

import (
	"errors"
	"net/url"
	"testing"
	"time"
)

// TestStaleTokenCheckedOnce: an access token that has expired, or been
// revoked, before its first check is genuine: its signature is checked
// once and the result kept, so that its further uses are refused from the
// cache. The gateway does not count them as failed authentications (a
// dashboard's polls before it refreshes), so each would otherwise cost a
// signature check, uncounted; before, only tokens checked while good
// were kept.
func TestStaleTokenCheckedOnce(t *testing.T) {
	e := startEnv(t, nil)
	expired, revoked := e.cliToken("alice", alicePW), e.cliToken("bob", bobPW)
	if st, body := e.post("/oauth/revoke", url.Values{"token": {revoked}, "client_id": {"cli"}}, "", ""); st != 200 {
		t.Fatalf("revoke: %d %v", st, body)
	}
	if _, err := e.srv.VerifyAccessToken(revoked); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("revoked token: %v", err)
	}
	e.clock.Advance(DefaultAccessTokenLifetime + time.Second)
	if _, err := e.srv.VerifyAccessToken(expired); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token: %v", err)
	}
	if n := e.srv.cache.len(); n != 2 {
		t.Fatalf("%d tokens cached after checking a revoked and an expired one, want 2 (their next uses checked again)", n)
	}
	if _, err := e.srv.VerifyAccessToken(expired); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired token, from the cache: %v", err)
	}
}
