package main

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/oauth"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// OAuth2: the configuration (a top-level oauth: block for the issuer and
// the signing keys, one oauth: block per realm for its clients, grants and
// lifetimes), the oauth.Server built from it, and what the router gets from
// it: WAMP ticket logins with access tokens. The server's HTTP endpoints
// are served on the gateway's listener (oauthServer.srv.Handler()).

// oauthConfig is the top-level oauth: block.
type oauthConfig struct {
	Issuer       string   `yaml:"issuer"`
	Algorithm    string   `yaml:"algorithm"`
	KeyFiles     []string `yaml:"key_files"`
	RotateEvery  duration `yaml:"rotate_every"`
	SyncInterval duration `yaml:"sync_interval"`
	TokenCache   int      `yaml:"token_cache"`
}

// realmOAuthConfig is a realm's oauth: block; present, it turns OAuth2 on
// for the realm.
type realmOAuthConfig struct {
	Grants               []string            `yaml:"grants"`
	AccessTokenLifetime  duration            `yaml:"access_token_lifetime"`
	RefreshTokenLifetime duration            `yaml:"refresh_token_lifetime"`
	MaxRefreshTokens     int                 `yaml:"max_refresh_tokens"`
	DeviceCodeLifetime   duration            `yaml:"device_code_lifetime"`
	DevicePollInterval   duration            `yaml:"device_poll_interval"`
	Clients              []oauthClientConfig `yaml:"clients"`
}

type oauthClientConfig struct {
	ID           string   `yaml:"id"`
	Name         string   `yaml:"name"`
	Public       bool     `yaml:"public"`
	Secret       string   `yaml:"secret"` // the PBKDF2 hash of the secret
	SecretEnv    string   `yaml:"secret_env"`
	Grants       []string `yaml:"grants"`
	RedirectURIs []string `yaml:"redirect_uris"`
	Scopes       []string `yaml:"scopes"`
	Roles        []string `yaml:"roles"`
}

// defaultIssuer is the gateway's default address: set oauth.issuer to the
// URL clients reach the gateway at.
const defaultIssuer = "http://127.0.0.1:8081"

func (c *oauthClientConfig) secret() string {
	if c.SecretEnv != "" {
		return os.Getenv(c.SecretEnv)
	}
	return c.Secret
}

// oauthEnabled reports whether any realm has an oauth: block.
func (c *config) oauthEnabled() bool { return len(c.oauthRealmNames()) > 0 }

// oauthRealmNames names the realms with an oauth: block.
func (c *config) oauthRealmNames() []string {
	var names []string
	for i := range c.Realms {
		if c.Realms[i].OAuth != nil {
			names = append(names, c.Realms[i].Name)
		}
	}
	return names
}

// oauthRealms translates the realms' oauth: blocks.
func (c *config) oauthRealms() []oauth.Realm {
	var out []oauth.Realm
	for i := range c.Realms {
		r := &c.Realms[i]
		if r.OAuth == nil {
			continue
		}
		o := r.OAuth
		or := oauth.Realm{
			Name: r.Name, Grants: o.Grants, MaxRefreshTokens: o.MaxRefreshTokens,
			AccessTokenLifetime: time.Duration(o.AccessTokenLifetime), RefreshTokenLifetime: time.Duration(o.RefreshTokenLifetime),
			DeviceCodeLifetime: time.Duration(o.DeviceCodeLifetime), DevicePollInterval: time.Duration(o.DevicePollInterval),
		}
		for _, cl := range o.Clients {
			or.Clients = append(or.Clients, oauth.Client{
				ID: cl.ID, Name: cl.Name, Public: cl.Public, SecretHash: cl.secret(), Grants: cl.Grants,
				RedirectURIs: cl.RedirectURIs, Scopes: cl.Scopes, Roles: cl.Roles,
			})
		}
		out = append(out, or)
	}
	return out
}

// validateOAuth checks the oauth: blocks (called by validate).
func (c *config) validateOAuth(errs *[]error) {
	o := &c.OAuth
	if o.Issuer != "" && !strings.HasPrefix(o.Issuer, "http://") && !strings.HasPrefix(o.Issuer, "https://") {
		c.errAt(errs, fmt.Sprintf("oauth.issuer %q must be an http(s) URL", o.Issuer), "oauth", "issuer")
	} else if o.Issuer != "" && c.oauthEnabled() {
		// What oauth.New refuses at start (a host, no user info, no
		// query or fragment): before, only the scheme was checked here,
		// so check-config and a reload took an issuer run refused.
		if err := oauth.ValidateIssuer(o.Issuer); err != nil {
			c.errAt(errs, "oauth.issuer: "+strings.TrimPrefix(err.Error(), "oauth: "), "oauth", "issuer")
		}
	}
	switch o.Algorithm {
	case "", "EdDSA", "ES256":
	default:
		c.errAt(errs, fmt.Sprintf("oauth.algorithm must be EdDSA or ES256, not %q", o.Algorithm), "oauth", "algorithm")
	}
	if o.TokenCache < 0 {
		c.errAt(errs, "oauth.token_cache must not be negative", "oauth", "token_cache")
	}
	// Lower bounds (0 is the default): the sync loop ticked at any
	// period, each round re-reading the state with a deadline of 4 periods
	// (sync_interval: 1ms kept an idle router at 78 % of a CPU re-reading
	// oauth.log; on a mesh its rounds missed their deadline, and a new key
	// was published 2 periods before it signed, too soon for the other
	// nodes); a generated key rotated at any period, each kept in the JWKS
	// and the state for as long as its tokens live (rotate_every: 1s, a key
	// a second: 86,400 of them with 24 h tokens).
	if v := time.Duration(o.SyncInterval); v != 0 && v < minOAuthSync {
		c.errAt(errs, fmt.Sprintf("oauth.sync_interval %s is below the minimum %s", v, minOAuthSync), "oauth", "sync_interval")
	}
	if v := time.Duration(o.RotateEvery); v != 0 && v < minOAuthRotate {
		c.errAt(errs, fmt.Sprintf("oauth.rotate_every %s is below the minimum %s", v, strings.TrimSuffix(minOAuthRotate.String(), "0m0s")), "oauth", "rotate_every")
	}
	if !c.oauthEnabled() {
		// Off: nothing of the oauth package runs, not even validation (a
		// plain node holds no memory for it; see footprint_test.go).
		return
	}
	keys := make([]crypto.Signer, len(o.KeyFiles))
	for i, f := range o.KeyFiles {
		k, err := loadKeyFile(f)
		if err != nil {
			c.errAt(errs, fmt.Sprintf("oauth.key_files[%d]: %v", i, err), "oauth", "key_files", i)
			continue
		}
		keys[i] = k
		// The same key twice (one file given twice, or two copies) is
		// refused by oauth.New ("key ... is in the ring twice": a kid is
		// the key's thumbprint); before, only run found it.
		for j, prev := range keys[:i] {
			if prev != nil && samePublicKey(prev, k) {
				c.errAt(errs, fmt.Sprintf("oauth.key_files[%d] is the key of oauth.key_files[%d]; give each key once", i, j), "oauth", "key_files", i)
				break
			}
		}
	}
	for i := range c.Realms {
		r := &c.Realms[i]
		if r.OAuth == nil {
			continue
		}
		if r.OAuth.MaxRefreshTokens < 0 { // the oauth package takes it, as 0, for its default
			c.errAt(errs, fmt.Sprintf("realms[%d].oauth.max_refresh_tokens must not be negative", i), "realms", i, "oauth", "max_refresh_tokens")
		}
		// refresh_token_lifetime: 1ns ended every login at its first
		// refresh; device_poll_interval: 1ns told devices `interval: 0`
		// (RFC 8628 counts whole seconds), so they polled without pause.
		// The access token's lifetime the oauth package bounds (1s..24h).
		access := cmp.Or(time.Duration(r.OAuth.AccessTokenLifetime), oauth.DefaultAccessTokenLifetime)
		c.durationFloors(errs, []durationFloor{
			{r.OAuth.RefreshTokenLifetime, access, "the realm's access_token_lifetime: a refresh token is used once its access token has expired", "", []any{"realms", i, "oauth", "refresh_token_lifetime"}},
			{r.OAuth.DevicePollInterval, time.Second, "a device is told the interval in whole seconds: below one, 0, and it may poll without pause", "", []any{"realms", i, "oauth", "device_poll_interval"}},
		})
		roles := map[string]bool{}
		for _, ro := range r.Roles {
			roles[ro.Name] = true
		}
		for j, cl := range r.OAuth.Clients {
			at := []any{"realms", i, "oauth", "clients", j}
			if cl.Secret != "" && cl.SecretEnv != "" {
				c.errAt(errs, fmt.Sprintf("oauth client %q: give the secret either inline or from the environment, not both", cl.ID), at...)
			}
			if cl.SecretEnv != "" && os.Getenv(cl.SecretEnv) == "" {
				c.errAt(errs, fmt.Sprintf("oauth client %q: environment variable %s is empty", cl.ID, cl.SecretEnv), append(at, "secret_env")...)
			}
			// A secret hash's work is paid by every token request of the
			// client, as a password's by every login (maxIterations); a
			// malformed one is the oauth package's to refuse.
			if h, err := route.ParsePassword(cl.secret()); err == nil && h.Iterations > maxIterations {
				c.errAt(errs, fmt.Sprintf("oauth client %q: secret: %d PBKDF2 iterations; at most %d (make a hash with `edgewamp oauth secret`)", cl.ID, h.Iterations, maxIterations), append(at, "secret")...)
			}
			for _, ro := range cl.Roles {
				if !wampText(ro) {
					c.errAt(errs, fmt.Sprintf("oauth client %q: role %q %s", cl.ID, ro, notWAMPText), append(at, "roles")...)
				}
			}
			if r.Security {
				for _, ro := range cl.Roles {
					if !roles[ro] {
						c.errAt(errs, fmt.Sprintf("oauth client %q has role %q, which realm %q does not define", cl.ID, ro, r.Name), append(at, "roles")...)
					}
				}
			}
			// A client_credentials token's subject is the client's id, a
			// user's token's the user's authid: one name for both would make
			// the two one principal (their sessions, grants by authid, a
			// token's validity after either is removed).
			grants := cl.Grants
			if len(grants) == 0 { // the realm's (all by default), as far as the client's settings allow
				grants = r.OAuth.Grants
			}
			ownTokens := !cl.Public && len(cl.Roles) > 0 && (len(grants) == 0 || slices.Contains(grants, oauth.GrantClientCredentials))
			if ownTokens && slices.ContainsFunc(r.Users, func(u userConfig) bool { return u.AuthID == cl.ID }) {
				c.errAt(errs, fmt.Sprintf("oauth client %q has the authid of a user of realm %q: its client_credentials tokens would name that user; rename one of them", cl.ID, r.Name), append(at, "id")...)
			}
		}
	}
	if err := oauth.ValidateRealms(c.oauthRealms()); err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			c.errAt(errs, e, c.oauthErrPath(e)...)
		}
	}
}

// oauthErrPath finds the key an error of oauth.ValidateRealms is about,
// by the realm, client and setting it names, so that the error names that
// key's line: before, every one named the line of realms:. It falls back
// to the realm's oauth: block, then to realms:.
func (c *config) oauthErrPath(e string) []any {
	for i := range c.Realms {
		r := &c.Realms[i]
		if r.OAuth == nil || !strings.Contains(e, fmt.Sprintf("realm %q", r.Name)) {
			continue
		}
		at := []any{"realms", i, "oauth"}
		key := ""
		switch {
		case strings.Contains(e, "access token lifetime"):
			key = "access_token_lifetime"
		case strings.Contains(e, "max_refresh_tokens"):
			key = "max_refresh_tokens"
		case strings.Contains(e, "device poll interval"):
			key = "device_poll_interval"
		case strings.Contains(e, "unknown grant"):
			key = "grants"
		}
		for j, cl := range r.OAuth.Clients {
			if key == "" && strings.Contains(e, fmt.Sprintf("client %q", cl.ID)) {
				at = append(at, "clients", j)
				break
			}
		}
		for _, p := range [][]any{append(at, key), at, at[:2]} {
			if c.line(p...) > 0 {
				return p
			}
		}
		return at
	}
	return []any{"realms"}
}

// The least oauth.sync_interval and oauth.rotate_every.
const (
	minOAuthSync   = 100 * time.Millisecond
	minOAuthRotate = time.Hour
)

// samePublicKey reports whether a and b are one key.
func samePublicKey(a, b crypto.Signer) bool {
	pa, ok := a.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b.Public())
}

func loadKeyFile(path string) (crypto.Signer, error) {
	b, err := readRegularFile(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	return oauth.ParsePrivateKeyPEM(b)
}

// oauthServer is the OAuth2 server of a router and where its state lives:
// in memory, under data_dir/oauth, or (with a mesh) in the mesh's shared
// key-value bucket. With a mesh the server starts once the bucket answers
// (JetStream electing its leaders, an edge node waiting for its uplink):
// until then its endpoints answer 503 and WAMP logins with tokens are
// refused as temporarily unavailable. Safe for concurrent use.
type oauthServer struct {
	srv   atomic.Pointer[oauth.Server] // nil until started
	users *oauthUsers
	mu    sync.Mutex    // guards opts.Realms (reload) against a server starting
	opts  oauth.Options // built by newOAuth; Realms guarded by mu
	log   *slog.Logger
	// onRevoke ends the WAMP sessions of revoked tokens (the router's
	// RevokeCredentials); set by serve before start.
	onRevoke func(ids []string)

	disk *oauth.DiskStore // data_dir without a mesh; nil otherwise
	keys string
	stop chan struct{}
	done chan struct{} // closed when the background start ended (startShared)
	// stopCtx is canceled by close: the background start's store calls
	// end with it.
	stopCtx    context.Context
	cancelStop context.CancelFunc
	once       sync.Once
}

// closeWait bounds how long close waits for a background start in
// progress (oauth.New on the shared store, which may wait up to 30 s for
// a store that takes requests and does not answer): the start then
// closes the server it made itself.
const closeWait = time.Second

// newOAuth prepares the OAuth2 server when a realm enables it, or returns
// nil. It reads the key files; the server itself starts with start or
// startShared.
func (c *config) newOAuth(log *slog.Logger) (*oauthServer, error) {
	if !c.oauthEnabled() {
		return nil, nil
	}
	o := &oauthServer{users: &oauthUsers{}, log: log, keys: keysFrom(c), stop: make(chan struct{})}
	o.stopCtx, o.cancelStop = context.WithCancel(context.Background())
	o.opts = oauth.Options{
		Issuer: orDefault(c.OAuth.Issuer, defaultIssuer), Realms: c.oauthRealms(), Users: o.users,
		Algorithm: c.OAuth.Algorithm, RotateEvery: time.Duration(c.OAuth.RotateEvery),
		SyncInterval: time.Duration(c.OAuth.SyncInterval), CacheSize: c.OAuth.TokenCache, Logger: log,
		OnRevoke: func(ids []string) {
			if o.onRevoke != nil {
				o.onRevoke(ids)
			}
		},
	}
	// The WAMP authenticators' brute-force policy, with counts of its own.
	al := c.authLimits()
	o.opts.AuthLimits = oauth.AuthLimits{DelayAfter: al.DelayAfter, BlockAfter: al.BlockAfter, Window: al.Window, Lockout: al.Lockout, Exempt: al.Exempt}
	for _, f := range c.OAuth.KeyFiles {
		k, err := loadKeyFile(f)
		if err != nil {
			return nil, fmt.Errorf("oauth key file %s: %w", f, err)
		}
		o.opts.SigningKeys = append(o.opts.SigningKeys, k)
	}
	return o, nil
}

// startOAuth builds and starts the OAuth2 server of a router without a
// mesh (nil when no realm enables it): its state lives under
// data_dir/oauth when data_dir is set, else in memory.
func (c *config) startOAuth(log *slog.Logger) (*oauthServer, error) {
	o, err := c.newOAuth(log)
	if o == nil || err != nil {
		return nil, err
	}
	if err := o.start(c.DataDir); err != nil {
		return nil, err
	}
	return o, nil
}

// start starts the server on a single node's state: data_dir/oauth when
// dataDir is set, else memory. It blocks on the store.
func (o *oauthServer) start(dataDir string) error {
	opts := o.opts
	state := "memory (lost on restart: set data_dir)"
	if dataDir != "" {
		s, err := oauth.OpenDiskStore(filepath.Join(dataDir, "oauth"))
		if err != nil {
			return err
		}
		o.disk, opts.Store = s, s
		state = filepath.Join(dataDir, "oauth")
		if n := s.TornBytes(); n > 0 {
			o.log.Warn("oauth: the state's last record was incomplete (a crash or power loss while it was written) and was cut off: the change it held (a token issued, refreshed or revoked at that moment) is lost",
				"path", filepath.Join(state, "oauth.log"), "bytes", n)
		}
	}
	srv, err := oauth.New(opts)
	if err != nil {
		o.close()
		return err
	}
	o.srv.Store(srv)
	o.log.Info("oauth: authorization server ready", "issuer", srv.Issuer(), "state", state, "keys", o.keys)
	return nil
}

// startShared starts the server in the background on the mesh's shared
// store, which open binds; it retries every 2 s until the store answers
// or close is called. close does not wait for a try in progress (a
// store that takes the requests and does not answer held each for 10 s,
// and the router's stop with it): open's context ends with close, and a
// server made after close is closed here.
func (o *oauthServer) startShared(open func(context.Context) (oauth.Store, error)) {
	o.done = make(chan struct{})
	go func() {
		defer close(o.done)
		for warned := false; ; {
			ctx, cancel := context.WithTimeout(o.stopCtx, 10*time.Second)
			store, err := open(ctx)
			cancel()
			var srv *oauth.Server
			if err == nil {
				o.mu.Lock()
				opts := o.opts
				o.mu.Unlock()
				opts.Store = store
				srv, err = oauth.New(opts)
			}
			if err == nil {
				// Under mu, which close takes to close stop: a server
				// stored here is one close sees, or close came first
				// and it is closed here.
				o.mu.Lock()
				select {
				case <-o.stop:
					o.mu.Unlock()
					srv.Close()
					return
				default:
				}
				srv.SetRealms(o.opts.Realms) // the latest, in case a reload came while it started
				o.srv.Store(srv)
				o.mu.Unlock()
				o.log.Info("oauth: authorization server ready", "issuer", srv.Issuer(), "state", "the mesh's shared store", "keys", o.keys)
				return
			}
			select {
			case <-o.stop:
				return // the stop ended the try: nothing to say
			default:
			}
			if !warned {
				o.log.Warn("oauth: waiting for the mesh's shared state store (JetStream); token endpoints answer 503 and token logins are refused until it answers", "err", err)
				warned = true
			} else {
				o.log.Debug("oauth: the mesh's shared state store does not answer yet", "err", err)
			}
			select {
			case <-o.stop:
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
}

// server returns the running server, or nil before it started.
func (o *oauthServer) server() *oauth.Server {
	if o == nil {
		return nil
	}
	return o.srv.Load()
}

func keysFrom(c *config) string {
	if len(c.OAuth.KeyFiles) > 0 {
		return "files"
	}
	return "generated"
}

// close stops the server (and its background start) and closes its
// store. Idempotent.
func (o *oauthServer) close() {
	if o == nil {
		return
	}
	o.once.Do(func() {
		o.mu.Lock()
		close(o.stop)
		o.mu.Unlock()
		o.cancelStop()
		if o.done != nil {
			t := time.NewTimer(closeWait)
			select {
			case <-o.done:
			case <-t.C: // the start closes what it makes
			}
			t.Stop()
		}
		if srv := o.srv.Load(); srv != nil {
			srv.Close()
		}
		if o.disk != nil {
			o.disk.Close()
		}
	})
}

// reload installs new clients (SIGHUP). Issuer and key changes need a
// restart, and so does turning OAuth2 on: without a server (o nil) the
// realms' oauth: blocks are left for the restart (reloadConfig warns,
// naming them) and the rest of the file applies.
func (o *oauthServer) reload(c *config, realms []route.RealmConfig) error {
	if o == nil {
		return nil
	}
	next := c.oauthRealms()
	o.mu.Lock()
	defer o.mu.Unlock()
	if srv := o.server(); srv != nil {
		if err := srv.SetRealms(next); err != nil {
			return err
		}
	} else if err := oauth.ValidateRealms(next); err != nil {
		return err
	}
	o.opts.Realms = next // a server still starting (mesh) starts with these
	o.users.set(realms)
	return nil
}

// oauthUsers is oauth.UserStore over the realms' static users (the same
// PBKDF2 hashes as WAMP ticket and WAMP-CRA). Swapped on reload.
type oauthUsers struct {
	m atomic.Pointer[map[string]*route.Users]
	// router is the router whose decoy key picks the work a refusal of
	// an authid without a password costs (route.Router.VerifyDecoy): what
	// a wrong WAMP ticket for it costs in the realm. Set once the router
	// is made, before the server starts.
	router atomic.Pointer[route.Router]
}

func (u *oauthUsers) set(realms []route.RealmConfig) {
	m := make(map[string]*route.Users, len(realms))
	for _, rc := range realms {
		m[rc.Name] = rc.Users
	}
	u.m.Store(&m)
}

// users returns realm's user store, or nil.
func (u *oauthUsers) users(realm string) *route.Users {
	m := u.m.Load()
	if m == nil {
		return nil
	}
	return (*m)[realm]
}

func (u *oauthUsers) lookup(realm, authid string) *route.User {
	m := u.m.Load()
	if m == nil {
		return nil
	}
	return (*m)[realm].Lookup(authid)
}

// Authenticate implements oauth.UserStore.
func (u *oauthUsers) Authenticate(realm, authid, password string) ([]string, bool) {
	x := u.lookup(realm, authid)
	if x == nil || x.Password == nil {
		// What a wrong WAMP ticket for authid costs in realm: the work its
		// WAMP-CRA challenge names. Before, the work most users' hashes
		// have, for every authid: a refusal here told a user of other
		// iterations from every stranger.
		u.router.Load().VerifyDecoy(u.users(realm), realm, authid, password)
		return nil, false
	}
	if !x.Password.Verify(password) {
		return nil, false
	}
	return slices.Clone(x.Roles), true
}

// Roles implements oauth.UserStore.
func (u *oauthUsers) Roles(realm, authid string) ([]string, bool) {
	x := u.lookup(realm, authid)
	if x == nil {
		return nil, false
	}
	return slices.Clone(x.Roles), true
}

// tokenVerifier turns access tokens into WAMP identities: route's
// TokenVerifier for route.TicketAuth.
type tokenVerifier struct{ o *oauthServer }

// VerifyTicket implements route.TokenVerifier.
func (v tokenVerifier) VerifyTicket(req *route.AuthRequest, ticket string) (*route.Identity, error) {
	return v.verify(req.Realm, req.AuthID, req.AuthRole, ticket)
}

// errIssuerNotReady refuses token logins while the server has not started
// (a mesh's shared store not reachable yet); it is not counted against
// the client's address.
var errIssuerNotReady = &route.AuthError{URI: proto.URIAuthenticationFailed, Temporary: true,
	Message: "the access token issuer is not ready (its shared state is not reachable yet); try again later"}

// verify checks an access token for a HELLO: signed by our key ring, not
// expired or revoked, for this realm (aud), for the HELLO's authid if it
// names one (sub), with the requested authrole among its roles (else its
// first role). The ABORT reasons: a token that does not verify (malformed,
// tampered, unknown key, alg none, wrong issuer or type) fails like a wrong
// password, wamp.error.authentication_failed; a genuine token that may not
// be used here (expired, revoked, another realm or principal, its client
// or principal no longer configured or no longer holding the role: a
// reload withdrew its grant) is wamp.error.authentication_denied; a role the token lacks is
// wamp.error.no_such_role. The expired, revoked and withdrawn ones are
// not counted as failed authentications (route.AuthError.Stale): no guess;
// nor is no_such_role (route counts none: the token was verified).
//
// The identity carries the token as the session's credential: the
// session ends when the token or its login is revoked (oauth's OnRevoke,
// the router's RevokeCredentials) or, at a reload, when its client or
// principal is no longer configured or has lost the session's role. It
// does not end when the token expires: a token opens a session, it does
// not lease it.
func (v tokenVerifier) verify(realm, authid, authrole, ticket string) (*route.Identity, error) {
	srv := v.o.server()
	if srv == nil {
		return nil, errIssuerNotReady
	}
	c, err := srv.VerifyAccessToken(ticket)
	switch {
	case err == nil:
	case errors.Is(err, oauth.ErrTokenExpired):
		return nil, &route.AuthError{URI: proto.URIAuthenticationDenied, Message: "the access token has expired", Stale: true}
	case errors.Is(err, oauth.ErrTokenRevoked):
		return nil, &route.AuthError{URI: proto.URIAuthenticationDenied, Message: "the access token has been revoked", Stale: true}
	case errors.Is(err, oauth.ErrTokenAhead):
		return nil, &route.AuthError{URI: proto.URIAuthenticationDenied, Message: "the access token was issued ahead of this router's clock; try again later", Stale: true}
	default:
		return nil, &route.AuthError{URI: proto.URIAuthenticationFailed, Message: "invalid access token"}
	}
	if c.Audience != realm {
		return nil, &route.AuthError{URI: proto.URIAuthenticationDenied, Message: "the access token is for another realm"}
	}
	if authid != "" && authid != c.Subject {
		return nil, &route.AuthError{URI: proto.URIAuthenticationDenied, Message: "the access token is for another principal"}
	}
	role := authrole
	switch {
	case len(c.Roles) == 0:
		return nil, &route.AuthError{URI: proto.URINoSuchRole, Message: "the access token carries no role"}
	case role == "":
		role = c.Roles[0]
	case !c.HasRole(role):
		return nil, &route.AuthError{URI: proto.URINoSuchRole, Message: "principal " + strconv.Quote(c.Subject) + " may not take role " + strconv.Quote(role)}
	}
	// A genuine token whose grant a reload withdrew (its client or
	// principal removed, or the role taken from them) is refused here,
	// as a revoked one is, not welcomed and then ended by the session's
	// Check; the Check stays for a reload or revocation that lands
	// between this and the WELCOME (holdCredential).
	switch err := srv.StillValid(c, role); {
	case err == nil:
	case errors.Is(err, oauth.ErrTokenRevoked):
		return nil, &route.AuthError{URI: proto.URIAuthenticationDenied, Message: "the access token has been revoked", Stale: true}
	default:
		return nil, &route.AuthError{URI: proto.URIAuthenticationDenied, Message: msgGrantWithdrawn(role), Stale: true}
	}
	cred := &route.Credential{IDs: c.RevocationIDs(), Check: func() string {
		switch err := srv.StillValid(c, role); {
		case err == nil:
			return ""
		case errors.Is(err, oauth.ErrTokenRevoked):
			return msgTokenRevoked
		}
		return msgGrantWithdrawn(role)
	}}
	return &route.Identity{AuthID: c.Subject, AuthRole: role, AuthProvider: "jwt", Credential: cred}, nil
}

// msgGrantWithdrawn says why a token whose grant a reload withdrew is
// refused, or its session ended.
func msgGrantWithdrawn(role string) string {
	return "the access token's client or principal is no longer configured, or no longer has role " + role
}

// endRevokedSessions ends the sessions that logged in with the tokens or
// logins ids names (oauth's OnRevoke), and, for a client's cut-off (its
// tokens without a login issued up to then), those of the client's
// sessions whose token it covers (the others' Check still passes).
func endRevokedSessions(r *route.Router, ids []string) {
	var toks, cuts []string
	for _, id := range ids {
		if oauth.IsClientRevocationID(id) {
			cuts = append(cuts, id)
		} else {
			toks = append(toks, id)
		}
	}
	r.RevokeCredentials(toks, msgTokenRevoked)
	r.RecheckCredentials(cuts)
}

// msgTokenRevoked is the GOODBYE message of a session whose token (or the
// login it came from) was revoked.
const msgTokenRevoked = "the access token, or the login it came from, was revoked"

// cmdOAuth runs the oauth helpers:
//
//	edgewamp oauth secret [-iterations N]   a new client secret and its hash
//	edgewamp oauth keygen [-alg EdDSA|ES256] a signing key file (PEM) on stdout
func cmdOAuth(args []string, stdout, stderr io.Writer) int {
	const use = "usage: edgewamp oauth secret [-iterations N] | edgewamp oauth keygen [-alg EdDSA|ES256]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, use)
		return 2
	}
	fs := flag.NewFlagSet("oauth "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, use)
		return 0
	case "secret":
		iterations := fs.Int("iterations", route.DefaultIterations, "PBKDF2 iterations of the hash")
		if code, ok := parseFlags(fs, "edgewamp oauth secret [-iterations N]", args[1:], stdout, stderr); !ok {
			return code
		}
		if code, ok := noArgs(fs, "oauth secret", stderr); !ok {
			return code
		}
		if *iterations < 1000 || *iterations > maxIterations {
			fmt.Fprintf(stderr, "edgewamp oauth secret: use from 1000 to %d iterations\n", maxIterations)
			return 2
		}
		secret := oauth.NewClientSecret()
		h, err := oauth.HashSecret(secret, *iterations)
		if err != nil {
			fmt.Fprintf(stderr, "edgewamp oauth secret: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "# for the client (keep it secret): its client_secret\nclient_secret: %s\n", secret)
		fmt.Fprintf(stdout, "# for the router config, under the client in realms[].oauth.clients:\nsecret: %q\n", h)
		return 0
	case "keygen":
		alg := fs.String("alg", "EdDSA", "EdDSA (Ed25519) or ES256 (ECDSA P-256)")
		if code, ok := parseFlags(fs, "edgewamp oauth keygen [-alg EdDSA|ES256] > key.pem", args[1:], stdout, stderr); !ok {
			return code
		}
		if code, ok := noArgs(fs, "oauth keygen", stderr); !ok {
			return code
		}
		pem, err := oauth.GenerateKeyPEM(*alg)
		if err != nil {
			fmt.Fprintf(stderr, "edgewamp oauth keygen: %v\n", err)
			return 2
		}
		stdout.Write(pem)
		return 0
	}
	fmt.Fprintf(stderr, "edgewamp oauth: unknown command %q\n%s\n", args[0], use)
	return 2
}
