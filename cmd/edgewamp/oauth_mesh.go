//go:build !nomesh

package main

import (
	"context"
	"errors"
	"time"

	"github.com/edgewamp/edgewamp/edge"
	"github.com/edgewamp/edgewamp/oauth"
)

// The OAuth2 server's state in a mesh: oauth.Store over the mesh's shared
// key-value bucket (edge.KV, bucket edgewamp_oauth), so that a token
// issued on one node refreshes, revokes and verifies on every other, and
// the whole mesh signs with one key ring.

// meshOAuthStore returns what binds the OAuth2 bucket of node (a started
// edge.Node).
func meshOAuthStore(node meshNode) func(context.Context) (oauth.Store, error) {
	n := node.(*edge.Node)
	return func(ctx context.Context) (oauth.Store, error) {
		kv, err := n.KV(ctx, edge.KVOptions{Name: "oauth"})
		if err != nil {
			return nil, err
		}
		return kvStore{kv}, nil
	}
}

// kvStore adapts edge.KV to oauth.Store: the two contracts match one to
// one (linearizable per key, stream sequences as revisions, CAS Update,
// Delete of one revision, List by prefix, TTL never early); only the
// error sentinels are translated. Safe for concurrent use; every method
// blocks on the mesh (at most edge.KVOptions.Timeout).
type kvStore struct{ kv *edge.KV }

var (
	_ oauth.Store         = kvStore{}
	_ oauth.SinceLister   = kvStore{}
	_ oauth.UsageReporter = kvStore{}
)

// storeErr translates edge's sentinels into oauth's; anything else (the
// store unavailable) passes as it is, for a 503.
func storeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, edge.ErrKVNotFound):
		return oauth.ErrNotFound
	case errors.Is(err, edge.ErrKVExists):
		return oauth.ErrExists
	case errors.Is(err, edge.ErrKVRevision):
		return oauth.ErrRevision
	}
	return err
}

func (s kvStore) Get(ctx context.Context, key string) (oauth.Entry, error) {
	v, rev, err := s.kv.Get(ctx, key)
	if err != nil {
		return oauth.Entry{}, storeErr(err)
	}
	return oauth.Entry{Key: key, Value: v, Revision: rev}, nil
}

func (s kvStore) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	rev, err := s.kv.Create(ctx, key, value, ttl)
	return rev, storeErr(err)
}

func (s kvStore) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	n, err := s.kv.Update(ctx, key, value, rev, ttl)
	return n, storeErr(err)
}

func (s kvStore) Delete(ctx context.Context, key string, rev uint64) error {
	return storeErr(s.kv.Delete(ctx, key, rev))
}

func (s kvStore) List(ctx context.Context, prefix string) ([]oauth.Entry, error) {
	return entries(s.kv.List(ctx, prefix))
}

// ListSince lists in a few round trips whatever the number of entries
// (edge.KV.ListSince), where List takes one an entry: oauth's revocation
// sync and garbage collection use it.
// With an error it returns what was read before it, which oauth keeps.
func (s kvStore) ListSince(ctx context.Context, prefix string, rev uint64) ([]oauth.Entry, error) {
	es, err := s.kv.ListSince(ctx, prefix, rev)
	out, _ := entries(es, nil)
	return out, storeErr(err)
}

// Usage reports the bucket's fill (edge.KV.Usage): oauth keeps its device
// authorizations, which anyone may ask for, to half of it, and its
// authorization codes to three quarters.
func (s kvStore) Usage(ctx context.Context) (used, limit int64, err error) {
	return s.kv.Usage(ctx)
}

func entries(es []edge.KVEntry, err error) ([]oauth.Entry, error) {
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]oauth.Entry, len(es))
	for i, e := range es {
		out[i] = oauth.Entry{Key: e.Key, Value: e.Value, Revision: e.Revision}
	}
	return out, nil
}
