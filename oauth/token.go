package oauth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jws"
)

// Claims are the verified claims of an access token. Immutable: a Claims
// returned by VerifyAccessToken may be shared by many callers.
type Claims struct {
	Issuer   string
	Subject  string // the authid
	Audience string // the realm
	Expiry   time.Time
	IssuedAt time.Time
	ID       string   // jti
	Scopes   []string // from the space-separated scope claim
	Roles    []string // the first is the default authrole
	ClientID string
	GrantID  string // the login (refresh-token family) the token came from, if any
}

// HasScope reports whether the token carries scope s.
func (c *Claims) HasScope(s string) bool {
	for _, x := range c.Scopes {
		if x == s {
			return true
		}
	}
	return false
}

// HasRole reports whether role is one of the token's roles.
func (c *Claims) HasRole(role string) bool {
	for _, x := range c.Roles {
		if x == role {
			return true
		}
	}
	return false
}

// jwtClaims is the JWT payload (RFC 7519, with the RFC 9068 claims of a
// JWT access token: iss, exp, aud, sub, client_id, iat, jti, scope).
type jwtClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      audience `json:"aud"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
	Jti      string   `json:"jti"`
	Scope    string   `json:"scope,omitempty"`
	Roles    []string `json:"roles"`
	ClientID string   `json:"client_id"`
	Gid      string   `json:"gid,omitempty"`
}

// audience is "aud": a string, or an array with one string (RFC 7519 §4.1.3
// allows both; ours is always one realm).
type audience string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = audience(s)
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil || len(l) != 1 {
		return errors.New("aud must be one string")
	}
	*a = audience(l[0])
	return nil
}

// Errors of VerifyAccessToken.
var (
	ErrTokenMalformed = errors.New("oauth: token is not a JWT access token")
	ErrTokenSignature = errors.New("oauth: token signature is invalid or its key is unknown")
	ErrTokenClaims    = errors.New("oauth: token claims are invalid (issuer, type, or a missing claim)")
	ErrTokenExpired   = errors.New("oauth: token has expired")
	ErrTokenRevoked   = errors.New("oauth: token has been revoked")
	// ErrTokenAhead: a genuine token (its signature checked) issued ahead
	// of this server's clock by more than the skew allowed (the clock
	// stepped back since, or a node whose clock leads issued it); it is
	// taken once the clock reaches its iat. No guess: callers do not
	// count it as a failed authentication, as they do not count an
	// expired one (before, it was ErrTokenClaims, counted as a forgery).
	ErrTokenAhead = errors.New("oauth: token was issued ahead of this server's clock (iat in the future); try again later")
)

// maxTokenLen bounds what VerifyAccessToken parses; ours are ~500 bytes.
const maxTokenLen = 8 << 10

// jwsHeader is the protected header we accept.
type jwsHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
	Jku  json.RawMessage `json:"jku"`
	Jwk  json.RawMessage `json:"jwk"`
	X5u  json.RawMessage `json:"x5u"`
}

// issue signs an access token.
func (s *Server) issue(c *jwtClaims) (string, error) {
	ring := s.ring.Load()
	k := ring.signer(s.now())
	if k == nil {
		return "", errors.New("oauth: no signing key is active")
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	h := jws.NewHeaders()
	h.Set(jws.KeyIDKey, k.kid)
	h.Set(jws.TypeKey, "at+jwt")
	tok, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		return "", err
	}
	if len(tok) > maxTokenLen {
		// VerifyAccessToken refuses it as malformed, a failed login
		// counted against the client's address: not issued.
		return "", fmt.Errorf("%w: %d bytes", errTokenTooLong, len(tok))
	}
	return string(tok), nil
}

// errTokenTooLong: the access token would be longer than
// VerifyAccessToken takes (maxTokenLen), its scopes or roles too many.
var errTokenTooLong = errors.New("oauth: the access token would be too long to verify")

// VerifyAccessToken checks an access token this server (or another node
// sharing its key ring) issued: signature by a key of the ring (the header
// names it by kid, with its algorithm; "none" and unknown keys fail), type
// at+jwt, issuer, expiry, and revocation of its jti or grant. It does not
// check the audience (the realm): the caller does, with the realm it
// serves.
//
// It is pure CPU (no store or network access: revocations and keys are
// synchronised in the background every Options.SyncInterval), safe for
// concurrent use, and cached: a token verified once costs a SHA-256 and two
// map lookups until it expires or is revoked. A miss costs one signature
// verification (~100 µs) and allocates. The returned Claims must not be
// modified.
func (s *Server) VerifyAccessToken(token string) (*Claims, error) {
	if len(token) > maxTokenLen {
		return nil, ErrTokenMalformed
	}
	now := s.now()
	key := sha256.Sum256([]byte(token))
	if c := s.cache.get(key); c != nil {
		if c.IssuedAt.After(now.Add(s.skew)) {
			return nil, ErrTokenAhead
		}
		if !now.Before(c.Expiry) {
			return nil, ErrTokenExpired
		}
		if s.isRevoked(c) {
			return nil, ErrTokenRevoked
		}
		return c, nil
	}
	ring := s.ring.Load()
	c, err := s.verify(token, now, false)
	if c != nil && s.ring.Load() == ring { // else it may have been verified by a key that left
		// An expired, revoked or ahead one too (genuine, its signature
		// checked): its next uses are refused from the cache, at no
		// signature check, as the gateway does not count them as
		// failures (an ahead one is taken from it once the clock
		// reaches its iat).
		s.cache.put(key, c)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// verify checks a token without the cache. With revoking, an expired
// (but otherwise valid) token passes, and so does one issued ahead of now
// by more than the skew: revocation uses it. A revoked token comes back
// with its claims and ErrTokenRevoked (revocation may still have to
// record it on its own), an expired one with its claims and
// ErrTokenExpired, one issued ahead with its claims and ErrTokenAhead.
//
// A token issued ahead (the system clock stepped back since, or a node
// whose clock leads by more than the skew issued it) is refused at a
// login until the clock reaches its iat, and then taken: refused at
// revocation too, its revocation was answered 200 and stored nothing,
// and once the clock caught up the token signed out was taken again
// until it expired.
func (s *Server) verify(token string, now time.Time, revoking bool) (*Claims, error) {
	k, err := s.keyFor(token)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify([]byte(token), jws.WithKey(k.alg, k.pub))
	if err != nil {
		return nil, ErrTokenSignature
	}
	var jc jwtClaims
	if err := json.Unmarshal(payload, &jc); err != nil {
		return nil, ErrTokenMalformed
	}
	if jc.Iss != s.issuer || jc.Sub == "" || jc.Aud == "" || jc.Jti == "" || jc.Exp == 0 || jc.Iat == 0 {
		return nil, ErrTokenClaims
	}
	if !dateInRange(jc.Exp) || !dateInRange(jc.Iat) {
		return nil, ErrTokenMalformed
	}
	c := &Claims{
		Issuer: jc.Iss, Subject: jc.Sub, Audience: string(jc.Aud),
		Expiry: time.Unix(jc.Exp, 0), IssuedAt: time.Unix(jc.Iat, 0),
		ID: jc.Jti, Roles: jc.Roles, ClientID: jc.ClientID, GrantID: jc.Gid,
	}
	if jc.Scope != "" {
		c.Scopes = strings.Fields(jc.Scope)
	}
	if !revoking && c.IssuedAt.After(now.Add(s.skew)) {
		// With its claims: cached, so that its next uses cost no
		// signature check (they are not counted as failures), and
		// taken from the cache once the clock reaches its iat.
		return c, ErrTokenAhead
	}
	if !revoking && !now.Before(c.Expiry) {
		return c, ErrTokenExpired
	}
	if s.isRevoked(c) {
		return c, ErrTokenRevoked
	}
	return c, nil
}

// lastDate is 9999-12-31T23:59:59Z (unix), the last date RFC 3339 writes.
const lastDate = 253402300799

// dateInRange reports whether a token's iat or exp (unix seconds) is a
// date after 1970 and by lastDate. Past it, time.Unix of a value near the
// largest int64 overflows the Time's own count and reads as a date long
// past: a token whose iat said "the end of time" was taken as issued
// then, and one whose exp said a year past 9999 lived for ever. No
// server writes either; a float (1e300) does not decode into the claims.
func dateInRange(t int64) bool { return t > 0 && t <= lastDate }

// keyFor reads token's JWS header and returns the ring's key that checks
// it: ErrTokenMalformed for no JWS, ErrTokenSignature for a key the ring
// does not hold (or one the token would bring), an algorithm not the
// key's or "none", ErrTokenClaims for a type not at+jwt.
func (s *Server) keyFor(token string) (*sigKey, error) {
	hdr, _, ok := strings.Cut(token, ".")
	if !ok || strings.Count(token, ".") != 2 {
		return nil, ErrTokenMalformed
	}
	hb, err := base64.RawURLEncoding.DecodeString(hdr)
	if err != nil {
		return nil, ErrTokenMalformed
	}
	var h jwsHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, ErrTokenMalformed
	}
	if h.Crit != nil || h.Jku != nil || h.Jwk != nil || h.X5u != nil {
		return nil, ErrTokenSignature // keys come from our ring, never from the token
	}
	k := s.ring.Load().byKid[h.Kid]
	if k == nil || h.Alg != string(k.alg) {
		return nil, ErrTokenSignature // also "none", and an algorithm that is not the key's
	}
	if !strings.EqualFold(h.Typ, "at+jwt") && !strings.EqualFold(h.Typ, "application/at+jwt") {
		return nil, ErrTokenClaims
	}
	return k, nil
}

// checkedForgery reports whether token, which verify refused
// ErrTokenSignature, had its signature checked (and failed it): it names a
// key of the ring, with its algorithm and type. Such a token is forged or
// damaged, never one we issued, where one naming a key the ring does not
// hold may be ours from a key gone (and cost no check).
func (s *Server) checkedForgery(token string) bool {
	_, err := s.keyFor(token)
	return err == nil
}

// isRevoked checks the token's jti and grant, or without a grant the
// cut-off of its client's tokens issued to its subject (and an older
// release's cut-off of all the client's), against the revocation set.
func (s *Server) isRevoked(c *Claims) bool {
	if _, ok := s.revoked.Load(c.ID); ok {
		return true
	}
	if c.GrantID != "" {
		_, ok := s.revoked.Load(c.GrantID)
		return ok
	}
	if v, ok := s.cuts.Load(cutKey(c.ClientID, c.Subject)); ok && c.IssuedAt.Unix() <= v.(clientCut).cut {
		return true
	}
	v, ok := s.cuts.Load(c.ClientID)
	return ok && c.IssuedAt.Unix() <= v.(clientCut).cut
}

// ErrGrantWithdrawn is StillValid's answer for a token whose realm no
// longer enables OAuth2, whose client is gone, or whose principal no
// longer exists or holds the role.
var ErrGrantWithdrawn = errors.New("oauth: the token's client, principal or role is no longer configured")

// StillValid reports whether a verified token may still hold what it
// opened (a WAMP session that logged in with it, in role) under the
// current configuration and revocations: nil; ErrTokenRevoked when its jti
// or its login was revoked; ErrGrantWithdrawn when its realm no longer
// enables OAuth2, its client is no longer configured there, or its
// principal (a user of the realm, else the client itself for
// client_credentials tokens) no longer exists or holds role. Expiry is
// not checked: a session outlives the token it logged in with. Pure CPU
// (two map lookups and the user store's Roles), safe for concurrent use.
func (s *Server) StillValid(c *Claims, role string) error {
	if s.isRevoked(c) {
		return ErrTokenRevoked
	}
	if g := s.grantOf(c); g.client == nil || !g.holds(c, role) {
		return ErrGrantWithdrawn
	}
	return nil
}

// HeldRoles returns the roles of a verified token that StillValid accepts
// (those its principal still holds under the current configuration), in
// the token's order; none when it is revoked, its client no longer
// configured in its realm or its principal gone. What a token's holder
// may do by role (a gateway route's auth.roles, introspection's roles)
// is judged by these, not by the roles written into it. Like StillValid,
// it does not check expiry, and calls the user store's Roles once.
func (s *Server) HeldRoles(c *Claims) []string {
	if s.isRevoked(c) {
		return nil
	}
	g := s.grantOf(c)
	if g.client == nil {
		return nil
	}
	var held []string
	for _, r := range c.Roles {
		if g.holds(c, r) {
			held = append(held, r)
		}
	}
	return held
}

// HeldScopes returns the scopes of a verified token that its client may
// still ask for under the current configuration (Client.Scopes), in the
// token's order; none when its client is no longer configured in its
// realm. What a token's holder may do by scope (a gateway route's
// auth.scopes, introspection's scope) is judged by these, not by the
// scopes written into it: a reload that takes a scope from a client takes
// it from the client's tokens at once, as a role taken from a user
// (HeldRoles). It does not check expiry or revocation, and does not
// allocate when every scope is held.
func (s *Server) HeldScopes(c *Claims) []string {
	cl := s.cfg.Load().clients[c.ClientID]
	if cl == nil || cl.realm.Name != c.Audience {
		return nil
	}
	for i, sc := range c.Scopes {
		if !cl.scopes[sc] {
			held := slices.Clone(c.Scopes[:i])
			for _, x := range c.Scopes[i+1:] {
				if cl.scopes[x] {
					held = append(held, x)
				}
			}
			return held
		}
	}
	return c.Scopes
}

// grant is what the current configuration says of a token's grant: its
// client (nil when no longer configured in the token's realm) and its
// user's roles (userOK false when the user store does not know it).
type grant struct {
	client    *clientConf
	userRoles []string
	userOK    bool
}

func (s *Server) grantOf(c *Claims) grant {
	cl := s.cfg.Load().clients[c.ClientID]
	if cl == nil || cl.realm.Name != c.Audience {
		return grant{}
	}
	g := grant{client: cl}
	if s.users != nil {
		g.userRoles, g.userOK = s.users.Roles(c.Audience, c.Subject)
	}
	return g
}

// holds reports whether c's principal holds role: its user, or the
// client itself for client_credentials tokens.
func (g grant) holds(c *Claims, role string) bool {
	return g.userOK && slices.Contains(g.userRoles, role) || c.Subject == g.client.ID && slices.Contains(g.client.Roles, role)
}

// tokenCache maps SHA-256(token) to its verified Claims. Sharded by the
// hash's first byte so that concurrent verifications rarely share a lock;
// bounded: a full shard first drops expired entries, then a quarter of the
// others (in map order, i.e. at random). Safe for concurrent use.
type tokenCache struct {
	shards [16]cacheShard
	per    int // entries per shard; static
	now    func() time.Time
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[[32]byte]*Claims // guarded by mu
}

func newTokenCache(size int, now func() time.Time) *tokenCache {
	tc := &tokenCache{per: max(size/16, 1), now: now}
	for i := range tc.shards {
		tc.shards[i].m = map[[32]byte]*Claims{}
	}
	return tc
}

func (tc *tokenCache) get(k [32]byte) *Claims {
	sh := &tc.shards[k[0]&15]
	sh.mu.RLock()
	c := sh.m[k]
	sh.mu.RUnlock()
	return c
}

func (tc *tokenCache) put(k [32]byte, c *Claims) {
	sh := &tc.shards[k[0]&15]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(sh.m) >= tc.per {
		now := tc.now()
		for k, c := range sh.m {
			if !now.Before(c.Expiry) {
				delete(sh.m, k)
			}
		}
		for k := range sh.m {
			if len(sh.m) < tc.per*3/4 {
				break
			}
			delete(sh.m, k)
		}
	}
	sh.m[k] = c
}

// len returns the number of cached tokens (tests).
func (tc *tokenCache) len() int {
	n := 0
	for i := range tc.shards {
		tc.shards[i].mu.RLock()
		n += len(tc.shards[i].m)
		tc.shards[i].mu.RUnlock()
	}
	return n
}

// clear drops every entry (a key left the ring).
func (tc *tokenCache) clear() {
	for i := range tc.shards {
		tc.shards[i].mu.Lock()
		clear(tc.shards[i].m)
		tc.shards[i].mu.Unlock()
	}
}
