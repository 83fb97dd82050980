package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the OAuth2 authorization server. Create it with New, serve
// Handler on an HTTP listener, verify tokens with VerifyAccessToken, and
// Close it when done. All methods are safe for concurrent use.
type Server struct {
	issuer   string   // static
	base     *url.URL // the issuer, parsed; static
	store    Store    // static
	users    UserStore
	log      *slog.Logger
	now      func() time.Time
	epoch    time.Time // a reading of now at New, clock's origin; static
	epochNs  int64     // its unix time; static
	sleep    func(context.Context, time.Duration)
	alg      string
	skew     time.Duration
	interval time.Duration // sync interval
	node     string        // this server's random id (device polls); static
	// rotateEvery and publishAhead drive generated-key rotation.
	rotateEvery, publishAhead time.Duration

	cfg         atomic.Pointer[config]  // swapped by SetRealms
	ring        atomic.Pointer[keyRing] // swapped by the sync loop
	revoked     sync.Map                // id (jti or gid) → expiry (int64, unix); synced from rv.*
	userRevs    liveRevocations         // access tokens of logins revoked one by one, per user (revoke.go)
	cuts        sync.Map                // cutKey(client, sub) (an older release's: client id) → clientCut; synced from rv.client.*
	clientRevs  liveRevocations         // tokens without a login revoked one by one, per client and subject (revoke.go)
	unstored    sync.Map                // ids of revoked and unstoredCut(keys) of cuts held here whose store write failed → struct{}
	unended     sync.Map                // families of sign-outs the store failed → unendedFamily; ended by the sync (storeUnstored)
	releasing   sync.Map                // authorization codes releaseCode gives back in the background: key → releasingCode
	cache       *tokenCache
	secrets     *secretCache
	limit       *limiter
	issues      *limiter      // device authorizations per source address
	deviceAuths *minuteBudget // device authorizations of this node, all addresses
	deviceRoom  deviceRoom    // whether the store has room for device authorizations (UsageReporter)
	codeRoom    deviceRoom    // whether it has room for authorization codes: quarters 3, set by New
	hashSem     chan struct{} // bounds concurrent password/secret hashing
	csrfKey     []byte        // static after New

	mux     *http.ServeMux
	stop    chan struct{}
	stopped sync.WaitGroup
	once    sync.Once
	syncs   atomic.Uint64 // completed sync rounds (tests)

	onRevoke func(ids []string) // static; may be nil
	syncBad  atomic.Bool        // the last sync round failed (logged once per outage)
	// revSince is the greatest revision of the rv. entries read so far
	// (SinceLister stores); owned by New, then by the sync loop.
	revSince uint64
	revBad   bool // the last read of the revocations failed; owned by the sync loop
	// unstoredBad: storeUnstored's last round failed a write (logged
	// once); owned by the sync loop.
	unstoredBad bool
	// revScan: a full list is under way, read up to revScanAt so far; it
	// goes on from there at the next round when a round's read fails
	// (syncRevoked). Owned as revSince.
	revScan   bool
	revScanAt uint64
}

// New validates opts (gathering every error), loads or creates the key
// ring and the CSRF key in the store, and starts the background sync. It
// blocks on the store.
func New(opts Options) (*Server, error) {
	var errs []error
	base, err := checkIssuer(opts.Issuer)
	if err != nil {
		errs = append(errs, err)
	}
	cfg, err := buildConfig(opts.Realms, opts.Users)
	if err != nil {
		errs = append(errs, err)
	}
	if opts.Algorithm == "" {
		opts.Algorithm = "EdDSA"
	}
	if opts.Algorithm != "EdDSA" && opts.Algorithm != "ES256" {
		errs = append(errs, fmt.Errorf("oauth: algorithm %q: want EdDSA or ES256", opts.Algorithm))
	}
	var static *keyRing
	if len(opts.SigningKeys) > 0 {
		if static, err = staticRing(opts.SigningKeys); err != nil {
			errs = append(errs, fmt.Errorf("oauth: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Server{
		issuer: base.String(), base: base, store: opts.Store, users: opts.Users,
		log: opts.Logger, now: opts.now, sleep: opts.sleep, alg: opts.Algorithm,
		skew: opts.MaxClockSkew, interval: opts.SyncInterval, rotateEvery: opts.RotateEvery,
		secrets: newSecretCache(), limit: newLimiter(opts.AuthLimits),
		issues: newLimiter(AuthLimits{DelayAfter: deviceAuthsPerMinute, BlockAfter: deviceAuthsPerMinute,
			Window: time.Minute, Lockout: time.Minute, Exempt: opts.AuthLimits.Exempt}),
		deviceAuths: &minuteBudget{max: deviceAuthsPerNodeMinute},
		codeRoom:    deviceRoom{quarters: 3, what: "authorization codes"},
		hashSem:     make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		stop:        make(chan struct{}), onRevoke: opts.OnRevoke,
		node: randomToken(8),
	}
	if s.store == nil {
		s.store = NewMemStore()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.epoch = s.now()
	s.epochNs = s.epoch.UnixNano()
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	setDur(&s.skew, 30*time.Second)
	setDur(&s.interval, DefaultSyncInterval)
	setDur(&s.rotateEvery, DefaultRotateEvery)
	s.publishAhead = 2 * s.interval
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	s.cache = newTokenCache(opts.CacheSize, s.now)
	s.cfg.Store(cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if static != nil {
		s.ring.Store(static)
	} else {
		ring, err := s.maintainRing(ctx)
		if err != nil {
			return nil, err
		}
		s.ring.Store(ring)
	}
	if s.csrfKey, err = s.loadCSRFKey(ctx); err != nil {
		return nil, err
	}
	if err := s.syncRevoked(ctx, true); err != nil {
		return nil, err
	}
	s.routes()
	s.stopped.Add(1)
	go s.syncLoop()
	return s, nil
}

// SetRealms replaces the realms and clients (a configuration reload). It
// validates first and changes nothing on error. Existing tokens, refresh
// tokens and codes stay valid unless their client is gone.
func (s *Server) SetRealms(realms []Realm) error {
	cfg, err := buildConfig(realms, s.users)
	if err != nil {
		return err
	}
	now := s.now()
	prev := s.cfg.Load()
	cfg.oldTTL, cfg.oldUntil = prev.maxTTL, now.Add(prev.maxTTL)
	if prev.oldUntil.After(now) && prev.oldTTL > cfg.oldTTL {
		cfg.oldTTL, cfg.oldUntil = prev.oldTTL, prev.oldUntil
	}
	s.cfg.Store(cfg)
	return nil
}

// tokenTTL is the longest an access token of realm issued so far can
// still live: its lifetime, or a longer one of a configuration replaced
// less than that long ago.
func (cfg *config) tokenTTL(realm string, now time.Time) time.Duration {
	ttl := cfg.maxTTL
	if rc := cfg.realms[realm]; rc != nil {
		ttl = rc.AccessTokenLifetime
	}
	if cfg.oldUntil.After(now) {
		ttl = max(ttl, cfg.oldTTL)
	}
	return ttl
}

// ValidateRealms checks a realm configuration as New and SetRealms would,
// gathering every error, without starting anything (check-config).
func ValidateRealms(realms []Realm) error {
	_, err := buildConfig(realms, noUsers{})
	return err
}

// noUsers stands in for the user store while validating.
type noUsers struct{}

func (noUsers) Authenticate(string, string, string) ([]string, bool) { return nil, false }
func (noUsers) Roles(string, string) ([]string, bool)                { return nil, false }

// Close stops the background sync. It does not close the store.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.stopped.Wait()
	return nil
}

// Issuer returns the issuer URL.
func (s *Server) Issuer() string { return s.issuer }

// JWKS returns the public key set document (what /.well-known/jwks.json
// serves).
func (s *Server) JWKS() []byte { return s.ring.Load().jwks }

// syncLoop refreshes what VerifyAccessToken reads without the store, and
// collects garbage.
func (s *Server) syncLoop() {
	defer s.stopped.Done()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.syncOnce(n%60 == 0) // garbage collection every 60 rounds (5 min by default)
	}
}

// syncOnce runs one round of the sync loop.
func (s *Server) syncOnce(gc bool) {
	ctx, cancel := context.WithTimeout(context.Background(), s.interval*4)
	defer cancel()
	var ringErr error
	if !s.ring.Load().static {
		var ring *keyRing
		if ring, ringErr = s.maintainRing(ctx); ringErr == nil {
			prev := s.ring.Swap(ring)
			for kid := range prev.byKid {
				if ring.byKid[kid] == nil {
					// A key left the ring: what it verified must not
					// stay verified in the cache.
					s.cache.clear()
					break
				}
			}
		}
	}
	// Revocations are read whatever became of the ring: a node whose ring
	// read fails (a record it cannot decode, a ring that keeps changing)
	// goes on verifying with the ring it has, and skipped them, so that
	// tokens revoked elsewhere kept logging in here. A full list after a
	// failed read: the store may have been replaced meanwhile
	// (syncRevoked).
	revErr := s.syncRevoked(ctx, gc || s.revBad)
	s.revBad = revErr != nil
	if revErr == nil {
		s.storeUnstored(ctx)
	}
	err := errors.Join(ringErr, revErr)
	// A shared store may be out of reach for a while (an edge node whose
	// uplink is down): verification goes on with what was synced last;
	// one line when it starts failing, one when it recovers.
	switch {
	case err != nil && !s.syncBad.Swap(true):
		s.log.Warn("oauth: cannot sync with the state store; verifying with the keys and revocations synced last", "err", err)
	case err == nil && s.syncBad.Swap(false):
		s.log.Info("oauth: state store reachable again")
	}
	if gc && err == nil {
		s.collect(ctx)
	}
	s.syncs.Add(1)
}

// revRecord is rv.<id>: a revoked access token (jti) or grant (gid); or,
// with Client and Sub, rv.client.<client id, base64url>.<SHA-256 of Sub,
// hex> (cutStoreID): the client's tokens without a gid issued to Sub at or
// before Cut (unix seconds); with Client alone (an older release's),
// rv.client.<client id, base64url>: all the client's tokens without a gid
// issued at or before Cut.
type revRecord struct {
	Exp    int64  `json:"exp"`
	Client string `json:"client,omitempty"`
	Sub    string `json:"sub,omitempty"`
	Cut    int64  `json:"cut,omitempty"`
}

// syncRevoked reads the revocation set from the store: new ids are added
// (and ids revoked for longer moved on); ids expired are dropped. With a
// store that lists incrementally (SinceLister) and full false, it reads
// only the entries written since the last sync (revSince), where it
// re-listed every rv. entry each round: a shared store over an edge
// node's uplink answers a List one entry per round trip (0.2 ms on
// loopback, 50 ms over a slow uplink), and 400 entries there already took
// the whole of a round's deadline (4 × SyncInterval), past which the node
// never synced a revocation again.
//
// Nothing needs a full list to drop entries: the set only grows until
// entries expire (a record is rewritten only to revoke for longer, and
// deleted only once expired), and expired ids are dropped by their own
// expiry, which the store's copy cannot make earlier. A full list is read
// at New, after a read of them that failed, and with each garbage
// collection (every 60 rounds): the revisions of a store that was
// recreated, or restored from a backup, start again below the cursor, and
// its entries would otherwise only be seen once new writes passed it.
//
// What a SinceLister returns with an error (the entries it read before
// the round's deadline) is kept, and the next read goes on from it: a
// full list is begun from revision 0 and continued across rounds until
// one completes. Before, a read cut by the round's deadline
// (4 × SyncInterval) was dropped whole and the next round listed all
// again from 0: over an uplink slower than the list needs (1,000 entries
// took 5-7 s of a 6 s round on a loaded host, with the race detector),
// every round failed and the node never synced a revocation again.
// Called by New, then only by the sync loop.
func (s *Server) syncRevoked(ctx context.Context, full bool) error {
	sl, since := s.store.(SinceLister)
	var es []Entry
	var err error
	from := s.revSince
	if since && full && !s.revScan {
		s.revScan, s.revScanAt = true, 0
	}
	if s.revScan {
		from = s.revScanAt
	}
	if since {
		es, err = sl.ListSince(ctx, "rv.", from)
	} else if es, err = s.store.List(ctx, "rv."); err != nil {
		return err
	}
	now := s.now().Unix()
	var fresh []string
	top := from
	for _, e := range es {
		top = max(top, e.Revision)
		var r revRecord
		if json.Unmarshal(e.Value, &r) != nil || r.Exp <= now {
			continue
		}
		id := strings.TrimPrefix(e.Key, "rv.")
		if strings.HasPrefix(id, clientCutPrefix) {
			if r.Client == "" || r.Cut == 0 {
				continue
			}
			key, rid := cutKey(r.Client, r.Sub), subjectRevocationID(r.Client, r.Sub)
			if r.Sub == "" { // an older release's cut-off of all the client's tokens
				key, rid = r.Client, ClientRevocationID(r.Client)
				if id != clientCutPrefix+base64.RawURLEncoding.EncodeToString([]byte(r.Client)) {
					continue
				}
			} else if id != cutStoreID(r.Client, r.Sub) {
				continue
			}
			if s.setCut(key, r.Cut, r.Exp) {
				fresh = append(fresh, rid)
			}
			continue
		}
		if s.raiseRevoked(id, r.Exp) {
			fresh = append(fresh, id)
		}
	}
	switch {
	case !s.revScan:
		s.revSince = top
	case err != nil:
		s.revScanAt = top
	default: // the full list is complete
		s.revScan, s.revSince = false, top
	}
	if len(fresh) > 0 && s.onRevoke != nil {
		s.onRevoke(fresh)
	}
	if err != nil {
		return err
	}
	// An id or cut-off still in the store has an expiry after now here
	// (raised to the store's, which was skipped when not after now): what
	// has expired goes, whether the store still holds it or not.
	s.revoked.Range(func(k, v any) bool {
		if v.(int64) <= now {
			s.revoked.Delete(k)
			s.unstored.Delete(k)
		}
		return true
	})
	s.cuts.Range(func(k, v any) bool {
		if v.(clientCut).exp <= now {
			s.cuts.Delete(k)
			s.unstored.Delete(unstoredCut(k.(string)))
		}
		return true
	})
	return nil
}

// raiseRevoked adds id to the revocation set until exp, or moves its
// expiry on to exp if it was earlier (never back); it reports whether id
// was new to the set.
func (s *Server) raiseRevoked(id string, exp int64) bool {
	for {
		old, known := s.revoked.LoadOrStore(id, exp)
		if !known {
			return true
		}
		if old.(int64) >= exp || s.revoked.CompareAndSwap(id, old, exp) {
			return false
		}
	}
}

// revoke adds an access token id (jti) or a grant id to the revocation
// set, here at once and in the store for the other nodes, until exp. An
// id revoked already keeps the later of the two expiries: a grant revoked
// again by a node that knows a longer token lifetime (a reload, or a node
// restarted since) must stay revoked as long as its tokens can live.
//
// The id is in this node's set at once, whatever the store answers; one
// whose write failed is marked unstored until a write of it succeeds, so
// that a retry of the revocation (revokedToExpiry) writes it rather than
// finding it done: the other nodes never learnt it.
func (s *Server) revoke(ctx context.Context, id string, exp time.Time) error {
	if id == "" {
		return nil
	}
	now := s.now()
	if !exp.After(now) {
		return nil // expired: nothing left to revoke
	}
	if s.raiseRevoked(id, exp.Unix()) && s.onRevoke != nil {
		s.onRevoke([]string{id})
	}
	err := s.storeRevocation(ctx, id, exp, now)
	if err != nil {
		s.unstored.Store(id, struct{}{})
	} else {
		s.unstored.Delete(id)
	}
	return err
}

// storeUnstored writes the revocations of ids held here whose store
// write failed (Server.unstored), at a sync round that reached the store:
// a client answered 503 that does not try again (an app's sign-out whose
// errors it ignores) left them to this node alone, and the other nodes
// took the tokens until they expired (a sign-out's login, kept for the
// retry, refreshed there for as long as it lived). A cut-off's is left to
// its revocation tried again (its record merges with the stored one).
//
// A write the store fails ends the round (the others wait for the next):
// a store answering reads but refusing writes was written every one of
// them at every round, each failing, the round stretched by each. Logged
// once until a round stores them again.
func (s *Server) storeUnstored(ctx context.Context) {
	n := 0
	var failed error
	s.unstored.Range(func(k, _ any) bool {
		id := k.(string)
		if strings.HasPrefix(id, unstoredCut("")) {
			return true
		}
		v, ok := s.revoked.Load(id)
		if ok {
			failed = s.storeRevocation(ctx, id, time.Unix(v.(int64), 0), s.now())
		}
		if failed == nil {
			s.unstored.Delete(id)
			n++
		}
		return failed == nil && ctx.Err() == nil
	})
	if n > 0 {
		s.log.Info("oauth: revocations the store had failed are stored now", "count", n)
	}
	// The families of those sign-outs: refused while their grant is
	// revoked (rotate), they refreshed again once it expired (the access
	// tokens' lifetime), for the refresh lifetime. Ended once their
	// grant's revocation is stored.
	now := s.now().Unix()
	s.unended.Range(func(k, v any) bool {
		u := v.(unendedFamily)
		if failed != nil || u.exp > now && s.isUnstored(u.gid) {
			return failed == nil
		}
		if u.exp <= now {
			s.unended.Delete(k)
		} else if failed = s.endFamily(ctx, k.(string), "revoked"); failed == nil {
			s.unended.Delete(k)
		}
		return failed == nil && ctx.Err() == nil
	})
	switch {
	case failed != nil && !s.unstoredBad:
		s.unstoredBad = true
		s.log.Warn("oauth: cannot store revocations this node holds alone; trying again at each sync", "err", failed)
	case failed == nil && s.unstoredBad:
		s.unstoredBad = false
	}
}

// unendedFamily is a refresh-token family whose sign-out the store failed
// (Server.unended): its grant id, and when it expires (unix).
type unendedFamily struct {
	gid string
	exp int64
}

// unstoredCut is the Server.unstored key of the cut-off of key (cutKey).
func unstoredCut(key string) string { return "\x00cut\x00" + key }

// storeRevocation writes rv.<id> until exp, or moves a stored one's
// expiry on to it.
func (s *Server) storeRevocation(ctx context.Context, id string, exp, now time.Time) error {
	key := "rv." + id
	b, _ := json.Marshal(revRecord{Exp: exp.Unix()})
	ttl := exp.Sub(now) + s.skew
	for range 5 {
		_, err := s.store.Create(ctx, key, b, ttl)
		if !errors.Is(err, ErrExists) {
			return err
		}
		e, err := s.store.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue // expired or collected meanwhile
		}
		if err != nil {
			return err
		}
		var r revRecord
		if json.Unmarshal(e.Value, &r) == nil && r.Client == "" && r.Exp >= exp.Unix() {
			return nil // revoked as long already
		}
		_, err = s.store.Update(ctx, key, b, e.Revision, ttl)
		if err == nil || !errors.Is(err, ErrRevision) && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return errors.New("oauth: the revocation record keeps changing")
}

// collect deletes expired records (each with its revision, so a record
// rewritten meanwhile survives). Every node may run it; stores that apply
// TTLs themselves leave little to do.
func (s *Server) collect(ctx context.Context) {
	now := s.now().Unix()
	sl, since := s.store.(SinceLister)
	for _, p := range []string{"rt.", "ru.", "dc.", "uc.", "ac.", "au.", "da.", "rv."} {
		var es []Entry
		var err error
		if since {
			// In a few round trips rather than one an entry; a stale
			// answer is harmless: each delete names its revision.
			es, err = sl.ListSince(ctx, p, 0)
		} else {
			es, err = s.store.List(ctx, p)
		}
		if err != nil {
			s.log.Warn("oauth: garbage collection failed", "prefix", p, "err", err)
			return
		}
		for _, e := range es {
			var r struct {
				Exp int64 `json:"exp"`
			}
			if json.Unmarshal(e.Value, &r) == nil && r.Exp != 0 && r.Exp+int64(gcGrace/time.Second) < now {
				s.store.Delete(ctx, e.Key, e.Revision)
			}
		}
	}
}

// gcGrace keeps expired records a little longer so that a late poll still
// hears "expired_token" rather than "invalid_grant".
const gcGrace = 10 * time.Minute

// loadCSRFKey reads (or creates) the key of the login page's CSRF tokens,
// shared by the nodes of a mesh so that a form served by one node posts to
// any other.
func (s *Server) loadCSRFKey(ctx context.Context) ([]byte, error) {
	for i := 0; i < 3; i++ {
		e, err := s.store.Get(ctx, "keys.csrf")
		if err == nil && len(e.Value) == 32 {
			return e.Value, nil
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		k := make([]byte, 32)
		rand.Read(k)
		if _, err := s.store.Create(ctx, "keys.csrf", k, 0); err != nil && !errors.Is(err, ErrExists) {
			return nil, err
		}
	}
	return nil, errors.New("oauth: cannot read the CSRF key from the store")
}

// Handler returns the HTTP handler of every endpoint (paths below the
// issuer's path):
//
//	POST /oauth/token                      token endpoint (RFC 6749, 8628, 7636)
//	POST /oauth/device_authorization       device authorization (RFC 8628 §3.1)
//	GET|POST /oauth/device                 the device verification page
//	GET|POST /oauth/authorize              authorization endpoint and its login page
//	POST /oauth/revoke                     revocation (RFC 7009)
//	POST /oauth/introspect                 introspection (RFC 7662)
//	GET /.well-known/oauth-authorization-server   metadata (RFC 8414)
//	GET /.well-known/jwks.json             the public keys
//	GET /oauth/static/style.css            the page's style sheet
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) path(p string) string { return s.base.Path + p }

// endpoint returns the absolute URL of p.
func (s *Server) endpoint(p string) string { return s.issuer + p }

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST "+s.path("/oauth/token"), s.cors(s.handleToken))
	m.HandleFunc("OPTIONS "+s.path("/oauth/token"), s.cors(nil))
	m.HandleFunc("POST "+s.path("/oauth/device_authorization"), s.cors(s.handleDeviceAuthorization))
	m.HandleFunc("OPTIONS "+s.path("/oauth/device_authorization"), s.cors(nil))
	m.HandleFunc("POST "+s.path("/oauth/revoke"), s.cors(s.handleRevoke))
	m.HandleFunc("OPTIONS "+s.path("/oauth/revoke"), s.cors(nil))
	m.HandleFunc("POST "+s.path("/oauth/introspect"), s.knownOriginsOnly(s.handleIntrospect))
	m.Handle("GET "+s.path("/oauth/device"), s.page(s.handleDevicePage))
	m.Handle("POST "+s.path("/oauth/device"), s.page(s.handleDevicePage))
	m.Handle("GET "+s.path("/oauth/authorize"), s.page(s.handleAuthorizePage))
	m.Handle("POST "+s.path("/oauth/authorize"), s.page(s.handleAuthorizePage))
	m.HandleFunc("GET "+s.path("/oauth/static/style.css"), s.handleCSS)
	m.HandleFunc("GET /.well-known/oauth-authorization-server"+s.base.Path, s.handleMetadata)
	m.HandleFunc("GET "+s.path("/.well-known/jwks.json"), s.handleJWKS)
	s.mux = m
}

// cors lets browser apps (public clients with PKCE) call the token,
// device and revocation endpoints from the origins of their registered
// redirect URIs; a nil h answers the preflight only.
func (s *Server) cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && s.cfg.Load().origins[o] {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				w.Header().Set("Access-Control-Allow-Methods", "POST")
				w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				w.Header().Set("Access-Control-Max-Age", "600")
			}
		}
		if h == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.knownOriginsOnly(h)(w, r)
	}
}

// knownOriginsOnly refuses, before anything is checked or counted, a request
// a browser sent from a page of another origin than the issuer's or a
// registered browser client's (browsers send Origin with every POST):
// a site's no-cors POSTs would otherwise count failed authentications
// against its visitors' addresses, locking their networks out, and time
// the answers to guess passwords through their browsers.
func (s *Server) knownOriginsOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && o != urlOrigin(s.base) && !s.cfg.Load().origins[o] {
			writeError(w, &oauthError{status: http.StatusForbidden, code: "invalid_request", desc: "requests from this origin are not accepted"})
			return
		}
		h(w, r)
	}
}

// acquireHash waits for a slot to hash a password or secret; false when
// the request was cancelled or the wait is too long (overload).
func (s *Server) acquireHash(ctx context.Context) bool {
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case s.hashSem <- struct{}{}:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

func (s *Server) releaseHash() { <-s.hashSem }

// clock returns the time by the monotonic clock, without a monotonic
// reading: New's unix time plus now().Sub(New's reading), which takes the
// monotonic readings when both have one (time.Now's) and the wall clock
// otherwise (the tests' fake clocks, which so drive it as before). The
// limiters' windows and lockouts, the node's minute budget of device
// authorizations and the cache of verified client secrets are durations
// and read it: read as now().UnixNano(), the wall clock, a step of the
// system clock (NTP's first sync on a board without a real-time clock,
// date -s, a VM resumed) forward lifted every lockout and forgot every
// failure in the window, BlockAfter more guesses per step, and a step
// back held every lockout for the step's length
// (TestLoginLockoutIgnoresWallClockSteps). Dates (tokens' exp, codes'
// expiry, the store's records that other nodes read) stay now's.
func (s *Server) clock() time.Time { return time.Unix(0, s.epochNs+int64(s.now().Sub(s.epoch))) }
