package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// storeKinds are the bundled stores, for tests that run on each: the
// in-memory one, and the on-disk one (whose writes sync to disk, which
// widens the windows between two store operations).
var storeKinds = []struct {
	name string
	open func(t *testing.T, now func() time.Time) Store
}{
	{"MemStore", func(t *testing.T, now func() time.Time) Store { return newMemStore(now) }},
	{"DiskStore", func(t *testing.T, now func() time.Time) Store {
		ds, err := openDiskStore(t.TempDir(), now)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ds.Close() })
		return ds
	}},
}

// beforeCreate is a Store that runs hook once, just before the first
// Create of a key under prefix goes to the store.
type beforeCreate struct {
	Store
	prefix string
	mu     sync.Mutex
	hook   func()
}

func (s *beforeCreate) setHook(f func()) {
	s.mu.Lock()
	s.hook = f
	s.mu.Unlock()
}

func (s *beforeCreate) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	s.mu.Lock()
	f := s.hook
	if f != nil && strings.HasPrefix(key, s.prefix) {
		s.hook = nil
	} else {
		f = nil
	}
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return s.Store.Create(ctx, key, value, ttl)
}

// tokenFrom sends a token request with hc and decodes the answer. Unlike
// e.token it does not fail the test itself, so that other goroutines than
// the test's may use it.
func (e *testEnv) tokenFrom(hc *http.Client, form url.Values) (int, map[string]any, error) {
	req, _ := http.NewRequest("POST", e.url+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var m map[string]any
	err = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m, err
}

// codeRedemption signs bob in for the dashboard and returns the token
// request that redeems the code it got.
func (e *testEnv) codeRedemption(b *browser) url.Values {
	e.t.Helper()
	verifier := oauth2.GenerateVerifier()
	_, q, page := e.authorize(b, e.config("dashboard", "", "read").AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "bob", bobPW, "approve")
	if q.Get("code") == "" {
		e.t.Fatalf("no code: %v %s", q, page)
	}
	return url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "code_verifier": {verifier},
		"redirect_uri": {redirectURI}, "client_id": {"dashboard"}}
}

// oneWinner checks that of two redemptions of one code at most one got
// tokens and the other (or both) invalid_grant, and returns the winner's
// answer, or nil. Both are refused when the second came after the
// first's claim and before its login was made: the first then finds the
// code used a second time, ends what it made, and sends nothing.
func oneWinner(t *testing.T, st [2]int, body [2]map[string]any) map[string]any {
	t.Helper()
	for i := range 2 {
		if st[i] == 200 && st[1-i] == 400 && body[1-i]["error"] == "invalid_grant" {
			return body[i]
		}
	}
	if st == [2]int{400, 400} && body[0]["error"] == "invalid_grant" && body[1]["error"] == "invalid_grant" {
		return nil
	}
	t.Fatalf("two redemptions of one code: %d %v and %d %v, want at most one success, and invalid_grant", st[0], body[0]["error"], st[1], body[1]["error"])
	return nil
}

// A second redemption of an authorization code ends the login the first
// one got, also when it arrives while the first is being answered, and on
// another node sharing the store. The code used to be marked used first
// and the login's refresh-token family created after it: a second
// redemption in between saw the code used, found no family to end, and
// only revoked the grant for one access-token lifetime; the first
// redeemer's family was created after that, and its refresh token went on
// minting valid access tokens for up to 30 days. Here the second
// redemption is sent to node B just before the first one's family is
// written.
func TestAuthorizationCodeReplayDuringRedemptionEndsLogin(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			hs := &beforeCreate{prefix: "rt."}
			a := startEnv(t, func(o *Options) { hs.Store = sk.open(t, o.now); o.Store = hs })
			b := startEnv(t, func(o *Options) { o.Store = hs.Store; o.Issuer = a.url; o.now = a.clock.Now })
			form := a.codeRedemption(newBrowser(t))
			var st [2]int
			var body [2]map[string]any
			var replayErr error
			hs.setHook(func() { st[1], body[1], replayErr = b.tokenFrom(sourceClient(), form) })
			st[0], body[0] = a.token(form, "", "")
			if replayErr != nil {
				t.Fatalf("the second redemption: %v", replayErr)
			}
			// The second came after the first's claim: neither is
			// answered with tokens (before, the first was, and its
			// login was ended by the second).
			if won := oneWinner(t, st, body); won != nil {
				at, rt := won["access_token"].(string), won["refresh_token"].(string)
				refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"dashboard"}}
				for _, n := range []*testEnv{a, b} {
					n.srv.syncOnce(false)
					if _, err := n.srv.VerifyAccessToken(at); err != ErrTokenRevoked {
						t.Errorf("node %s: the winner's access token: %v, want ErrTokenRevoked", n.url, err)
					}
				}
				if st, body := b.token(refresh, "", ""); st != 400 || body["error"] != "invalid_grant" {
					t.Fatalf("the winner's refresh token after the replay: %d %v, want invalid_grant", st, body["error"])
				}
				// Still so once the grant's revocation has expired.
				a.clock.Advance(7 * time.Minute)
				a.srv.syncOnce(false)
				if st, body := a.token(refresh, "", ""); st != 400 || body["error"] != "invalid_grant" {
					t.Fatalf("the winner's refresh token 7 min after the replay: %d %v, want invalid_grant", st, body["error"])
				}
			}
			if es, _ := hs.List(a.ctx(), "rt."); len(es) != 0 {
				t.Errorf("%d refresh-token families left in the store after the replay, want none", len(es))
			}
		})
	}
}

// The same race without a hook: two redemptions of one code sent at once,
// repeated. At most one gets tokens, and its login is ended by the other:
// its refresh token is refused and no family is left in the store (the
// loser deletes the one it made). Before, the winner's login survived in
// 20 of 20 rounds on the disk store.
func TestAuthorizationCodeConcurrentRedemptions(t *testing.T) {
	for _, sk := range storeKinds {
		t.Run(sk.name, func(t *testing.T) {
			e := startEnv(t, func(o *Options) { o.Store = sk.open(t, o.now) })
			br := newBrowser(t)
			const rounds = 20
			alive := 0
			for i := range rounds {
				form := e.codeRedemption(br)
				var st [2]int
				var body [2]map[string]any
				var errs [2]error
				var wg sync.WaitGroup
				for j := range 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						st[j], body[j], errs[j] = e.tokenFrom(sourceClient(), form)
					}()
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatalf("round %d: %v", i, err)
					}
				}
				won := oneWinner(t, st, body)
				if won == nil {
					e.clock.Advance(10 * time.Second)
					continue
				}
				if st, _ := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {won["refresh_token"].(string)}, "client_id": {"dashboard"}}, "", ""); st == 200 {
					alive++
				}
				// bob's next sign-in: one user gets maxCodesPerUser codes in 90 s.
				e.clock.Advance(10 * time.Second)
			}
			if alive > 0 {
				t.Errorf("%d of %d codes redeemed twice at once left the winner's refresh token working", alive, rounds)
			}
			if es, _ := e.store.List(e.ctx(), "rt."); len(es) != 0 {
				t.Errorf("%d refresh-token families left in the store, want none", len(es))
			}
		})
	}
}

// storeWrites is a Store that counts the writes (Create, Update, Delete)
// and, while failing holds a key prefix, fails every operation on keys
// under it.
type storeWrites struct {
	Store
	writes  atomic.Int64
	failing atomic.Pointer[string]
}

var errStoreDown = errors.New("store down (test)")

func (s *storeWrites) down(key string) bool {
	p := s.failing.Load()
	return p != nil && strings.HasPrefix(key, *p)
}

func (s *storeWrites) Get(ctx context.Context, key string) (Entry, error) {
	if s.down(key) {
		return Entry{}, errStoreDown
	}
	return s.Store.Get(ctx, key)
}

func (s *storeWrites) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	s.writes.Add(1)
	if s.down(key) {
		return 0, errStoreDown
	}
	return s.Store.Create(ctx, key, value, ttl)
}

func (s *storeWrites) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	s.writes.Add(1)
	if s.down(key) {
		return 0, errStoreDown
	}
	return s.Store.Update(ctx, key, value, rev, ttl)
}

func (s *storeWrites) Delete(ctx context.Context, key string, rev uint64) error {
	s.writes.Add(1)
	if s.down(key) {
		return errStoreDown
	}
	return s.Store.Delete(ctx, key, rev)
}

// The first replay of a used authorization code ends the login it got
// (logging it once); the replays after it get a plain invalid_grant, with
// no further warning and no store write. Found by review: every replay
// logged "authorization code used twice" and ended the family and revoked
// the grant again, for as long as the code's record lived, so whoever
// held a used code (a leaked redirect; a public client's client_id is no
// secret) wrote one warning line and store writes per request: 100
// replays, 100 lines in 20 ms.
func TestOAuthCodeReplayWarningRateLimited(t *testing.T) {
	sw := &storeWrites{}
	env := startEnv(t, func(o *Options) { sw.Store = newMemStore(o.now); o.Store = sw })
	form := env.codeRedemption(newBrowser(t))
	st, body := env.token(form, "", "")
	if st != 200 {
		t.Fatalf("first redemption: %d %v", st, body)
	}
	if st, body := env.token(form, "", ""); st != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("first replay: %d %v", st, body)
	}
	// The first replay ended the login.
	if _, err := env.srv.VerifyAccessToken(body["access_token"].(string)); err != ErrTokenRevoked {
		t.Fatalf("the access token after the first replay: %v, want ErrTokenRevoked", err)
	}
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)}, "client_id": {"dashboard"}}
	if st, b := env.token(refresh, "", ""); st != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("the refresh token after the first replay: %d %v, want invalid_grant", st, b)
	}
	writes := sw.writes.Load()
	const replays = 100
	for range replays {
		if st, body := env.token(form, "", ""); st != 400 || body["error"] != "invalid_grant" {
			t.Fatalf("replay: %d %v", st, body)
		}
	}
	lines := strings.Count(env.logs.String(), "authorization code used twice")
	w := sw.writes.Load() - writes
	t.Logf("%d replays of one used code: %d warning lines, %d store writes after the first replay", replays+1, lines, w)
	if lines != 1 {
		t.Fatalf("%d replays of one used authorization code wrote %d warning lines, want 1", replays+1, lines)
	}
	if w != 0 {
		t.Fatalf("%d replays after the first wrote the store %d times, want 0", replays, w)
	}
}

// A replay that finds the store failing cannot end the login; it leaves
// the code unmarked, so the next replay, once the store is back, tries
// again and ends it (the mark that silences later replays is written only
// once the family is ended and the revocation stored), for the family
// ("rt.") and the revocation ("rv.") each. The retry behaved so before the
// mark too (every replay ended the login again): the test keeps the mark
// from making the known limitation worse. The error line saying the
// login could not be ended is new (before, nothing said so).
func TestAuthorizationCodeReplayStoreFailingRetries(t *testing.T) {
	for _, prefix := range []string{"rt.", "rv."} { // the family; the revocations
		t.Run(prefix, func(t *testing.T) {
			sw := &storeWrites{}
			env := startEnv(t, func(o *Options) { sw.Store = newMemStore(o.now); o.Store = sw })
			form := env.codeRedemption(newBrowser(t))
			st, body := env.token(form, "", "")
			if st != 200 {
				t.Fatalf("first redemption: %d %v", st, body)
			}
			sw.failing.Store(&prefix)
			if st, b := env.token(form, "", ""); st != 400 || b["error"] != "invalid_grant" {
				t.Fatalf("replay with %s failing: %d %v", prefix, st, b)
			}
			sw.failing.Store(nil)
			fams, _ := sw.List(env.ctx(), "rt.")
			revs, _ := sw.List(env.ctx(), "rv.")
			if prefix == "rt." && len(fams) != 1 || prefix == "rv." && len(revs) != 0 {
				t.Fatalf("after the replay with %s failing: %d families, %d revocations stored", prefix, len(fams), len(revs))
			}
			if !strings.Contains(env.logs.String(), "could not be ended") {
				t.Errorf("no error logged for the login the replay could not end")
			}
			if st, b := env.token(form, "", ""); st != 400 || b["error"] != "invalid_grant" {
				t.Fatalf("replay with the store back: %d %v", st, b)
			}
			fams, _ = sw.List(env.ctx(), "rt.")
			revs, _ = sw.List(env.ctx(), "rv.")
			if len(fams) != 0 || len(revs) != 1 {
				t.Fatalf("after the replay with the store back: %d families, %d revocations stored, want 0 and 1", len(fams), len(revs))
			}
			refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {body["refresh_token"].(string)}, "client_id": {"dashboard"}}
			if st, b := env.token(refresh, "", ""); st != 400 || b["error"] != "invalid_grant" {
				t.Fatalf("the refresh token after the replays: %d %v, want invalid_grant", st, b)
			}
			if n := strings.Count(env.logs.String(), "authorization code used twice"); n != 2 {
				t.Fatalf("%d warnings for 2 replays that each had to end the login, want 2", n)
			}
		})
	}
}
