package oauth

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lostAck is a store whose next armed Update of a refresh-token family is
// written and then reported failed, as a JetStream publish whose ack is
// lost (an edge node's uplink dropping, a Raft commit slower than the
// store's timeout): the write went through, the caller hears a timeout.
type lostAck struct {
	Store
	armed  atomic.Bool
	prefix string // the keys whose Update loses its ack; default "rt."
}

func (s *lostAck) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	n, err := s.Store.Update(ctx, key, value, rev, ttl)
	prefix := s.prefix
	if prefix == "" {
		prefix = "rt."
	}
	if err == nil && strings.HasPrefix(key, prefix) && s.armed.CompareAndSwap(true, false) {
		return 0, errors.New("edge: kv: the mesh's store is unavailable: write: nats: timeout")
	}
	return n, err
}

// A refresh whose rotation was written although the store reported a
// timeout was answered 503, the client kept the token it had, and its
// retry was taken for reuse: the login ended, and with it every session
// and access token of it. The rotation is read back after a failed
// write: found written, the refresh is answered with it.
func TestRefreshRotationWrittenDespiteTimeout(t *testing.T) {
	st := &lostAck{}
	e := startEnv(t, func(o *Options) {
		st.Store = newMemStore(o.now)
		o.Store = st
	})
	cfg := e.config("backend", backendSec, "read")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(), "alice", alicePW)
	if err != nil {
		t.Fatal(err)
	}
	st.armed.Store(true)
	next, err := refreshVia(e, cfg, tok.RefreshToken)
	if err != nil {
		// What the client does: try again with the token it holds.
		_, rerr := refreshVia(e, cfg, tok.RefreshToken)
		t.Fatalf("a refresh whose rotation was written but reported failed: %v; the client's retry: %v", err, rerr)
	}
	if st.armed.Load() {
		t.Fatal("the refresh wrote no rotation")
	}
	if _, err := refreshVia(e, cfg, next.RefreshToken); err != nil {
		t.Fatalf("the refresh token it got: %v", err)
	}
}

// Likewise an authorization code's redemption: the code marked used (and
// the login it made recorded on it) although the store reported a
// timeout was answered 503; the client's retry with the code was taken
// for a second use, which revoked the login made for it (logged as
// "authorization code used twice") and answered invalid_grant, and the
// person had to sign in again. Read back, the redemption is answered.
func TestCodeRedemptionWrittenDespiteTimeout(t *testing.T) {
	st := &lostAck{prefix: "ac."}
	e := startEnv(t, func(o *Options) {
		st.Store = newMemStore(o.now)
		o.Store = st
	})
	form := e.codeRedemption(newBrowser(t))
	st.armed.Store(true)
	code, body := e.token(form, "", "")
	if code != 200 {
		rcode, rbody := e.token(form, "", "")
		t.Fatalf("a redemption whose mark was written but reported failed: %d %v; the client's retry: %d %v", code, body, rcode, rbody)
	}
	if st.armed.Load() {
		t.Fatal("the redemption marked no code")
	}
	if _, err := e.srv.VerifyAccessToken(body["access_token"].(string)); err != nil {
		t.Fatalf("its access token: %v", err)
	}
	if strings.Contains(e.logs.String(), "used twice") {
		t.Fatal("the redemption was taken for a second use")
	}
}
