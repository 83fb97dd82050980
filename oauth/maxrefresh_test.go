package oauth

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// A user's logins with one client are listed in one store record (the
// index, ru.), which the bound max_refresh_tokens keeps short. A bound
// so high that the record outgrows a store value (64 KiB, about 800
// logins) was accepted, and that user's next login failed 503 ("the
// token store is unavailable") until logins expired, 30 days by default.
// The bound is at most maxMaxRefreshTokens, whose index fits, and a user
// at it still logs in (the oldest login ends).
func TestMaxRefreshTokensBounded(t *testing.T) {
	realms := func(n int) []Realm {
		r := testRealms(t)
		r[0].MaxRefreshTokens = n
		return r
	}
	err := ValidateRealms(realms(1000))
	if err == nil || !strings.Contains(err.Error(), "max_refresh_tokens") {
		t.Fatalf("a realm with 1,000 logins per user and client: %v, want refused", err)
	}
	e := startEnv(t, func(o *Options) { o.Realms = realms(maxMaxRefreshTokens) })
	c := e.srv.cfg.Load().clients["backend"]
	ctx := context.Background()
	// alice at the bound: her logins' families, and the index listing
	// them, as maxMaxRefreshTokens logins left them.
	now := e.clock.Now()
	var idx famIndex
	for i := 0; i < maxMaxRefreshTokens; i++ {
		f := family{Realm: "realm1", Client: "backend", Sub: "alice", Gid: randomToken(16), Gen: 1,
			Hash: secretHashHex(newSecret()), Exp: now.Add(DefaultRefreshTokenLifetime).Unix(), Created: now.Unix() - int64(maxMaxRefreshTokens-i)}
		id := newFamilyID()
		b, _ := json.Marshal(f)
		if _, err := e.store.Create(ctx, "rt."+id, b, DefaultRefreshTokenLifetime); err != nil {
			t.Fatal(err)
		}
		idx.Fams = append(idx.Fams, famRef{ID: id, Exp: f.Exp, Created: f.Created})
		idx.Exp = f.Exp
	}
	key := indexKey("realm1", "backend", "alice")
	if err := e.srv.writeIndex(ctx, key, 0, &idx); err != nil {
		t.Fatalf("alice's index at the bound (%d logins): %v", maxMaxRefreshTokens, err)
	}
	// Her next logins each end the oldest.
	for i := 0; i < 3; i++ {
		if _, _, err := e.srv.newFamily(ctx, &login{client: c, sub: "alice", roles: []string{"user"}}); err != nil {
			t.Fatalf("login %d of alice with backend past the bound %d: %v", i+1, maxMaxRefreshTokens, err)
		}
	}
	idx, _, err = e.srv.readIndex(ctx, key)
	if err != nil || len(idx.Fams) != maxMaxRefreshTokens {
		t.Fatalf("alice's index lists %d logins (%v), want %d", len(idx.Fams), err, maxMaxRefreshTokens)
	}
	if _, err := e.store.Get(ctx, "rt."+idx.Fams[0].ID); err != nil {
		t.Fatalf("the oldest login still listed is gone: %v", err)
	}
}
