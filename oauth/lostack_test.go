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
	armed atomic.Bool
}

func (s *lostAck) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	n, err := s.Store.Update(ctx, key, value, rev, ttl)
	if err == nil && strings.HasPrefix(key, "rt.") && s.armed.CompareAndSwap(true, false) {
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
