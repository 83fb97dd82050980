package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/edgewamp/edgewamp/gateway"
)

// jwksVerifier is the gateway's BearerVerifier for JWT access tokens whose
// issuer publishes a JSON Web Key Set, read from a file at start
// (gateway.bearer.jwks_file; the OAuth2 server will plug in its own
// verifier the same way). Claims: sub is the authid; authrole (or the
// first of roles) the role; roles, scope or scp (each a space-separated
// string or a list) the rest; an audience "wamp:<realm>" binds the token to a realm.
// Access tokens only: OpenID Connect ID tokens are refused (accessToken).
//
// Verifying costs about 250 µs of CPU; verified tokens are cached by their
// SHA-256 until they expire (at most jwtCacheMax), so a client sending the
// same token costs that once. The key set is read again on SIGHUP
// (reloadKeys); the tokens of a key taken out of it are withdrawn
// (BearerRevoker: their retained events and SSE streams end). Safe for
// concurrent use.
type jwksVerifier struct {
	// keys is the key set in use, swapped whole by reloadKeys; a token
	// verified with one that is no longer in use is not cached.
	keys     atomic.Pointer[jwksKeys]
	path     string // gateway.bearer.jwks_file as the router started; static
	issuer   string
	audience string
	// ownIssuer is the issuer of this binary's OAuth2 server, if it runs
	// one: its tokens are that server's to check (oauthBearer), never
	// this verifier's. Set before use; static.
	ownIssuer string

	mu    sync.Mutex
	cache map[[32]byte]*gateway.Principal // guarded by mu
	// early: genuine tokens issued ahead of this clock (iat or nbf past
	// the skew), each with when it may be taken: their uses until then
	// are refused without a signature check. Guarded by mu; at most
	// jwtCacheMax.
	early map[[32]byte]time.Time
}

const jwtCacheMax = 10000

// jwksKeys is a key set as read from the file, with the SHA-256 of the
// file's bytes (a reload of the same bytes changes nothing), and the
// revocation ids of its keys (keyID): byKid by the kid a token names,
// held as a set.
type jwksKeys struct {
	set   jwk.Set
	sum   [32]byte
	byKid map[string]string
	held  map[string]bool
}

// newJWKSKeys is the jwksKeys of set, read from a file of SHA-256 sum.
// A kid names the key the verifier checks its tokens with: the first of
// the file under that kid (jwk.Set.LookupKeyID), whatever other kids it
// is listed under, and only those keys are held. Before, a kid named
// every key listed under it, and none already named under another kid:
// a key rotated by kid reuse (the new key put first, the old one left
// after it) had the new key's tokens recorded under both, so that taking
// the old key out dropped their retained events and ended their streams;
// and a token naming the second kid of a key listed twice had no id, so
// that taking the key out left its events and streams.
func newJWKSKeys(set jwk.Set, sum [32]byte) *jwksKeys {
	ks := &jwksKeys{set: set, sum: sum, byKid: map[string]string{}, held: map[string]bool{}}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if _, ok := ks.byKid[k.KeyID()]; ok {
			continue // never used: the kid's first key verifies its tokens
		}
		id := keyID(k)
		ks.byKid[k.KeyID()] = id
		if id != "" {
			ks.held[id] = true
		}
	}
	return ks
}

// keyID is the revocation id of a key of the file (gateway.BearerRevoker):
// its RFC 7638 thumbprint, which names the key itself (an issuer may give
// a new key the kid of one it withdrew), or "" if it has none.
func keyID(k jwk.Key) string {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return ""
	}
	return "jwks-key:" + base64.RawURLEncoding.EncodeToString(tp)
}

// jwksToken is a verified token's record (gateway.Principal.Token): the
// revocation ids of the keys of the file its signatures name (a compact
// token has one).
type jwksToken struct {
	ids []string
}

func newJWKSVerifier(c *bearerConfig) (*jwksVerifier, error) {
	b, err := readRegularFile(c.JWKSFile, maxKeyFile)
	if err != nil {
		return nil, err
	}
	set, err := parseJWKS(c.JWKSFile, b)
	if err != nil {
		return nil, err
	}
	v := &jwksVerifier{path: c.JWKSFile, issuer: c.Issuer, audience: c.Audience, cache: map[[32]byte]*gateway.Principal{}, early: map[[32]byte]time.Time{}}
	v.keys.Store(newJWKSKeys(set, sha256.Sum256(b)))
	return v, nil
}

// reloadKeys reads the key set file again (on SIGHUP, as the TLS
// certificates are, once it has not been modified for configQuiet) and,
// when its bytes changed, puts the new set in use and forgets the tokens
// verified so far: a token of a key the file no longer holds is refused
// from then on. Before, the file was read at start only: an issuer's key
// rotation written to it, and a SIGHUP, left every token of the new key
// refused 401 until a restart, and a leaked key taken out of it went on
// being trusted, without a word (the reload read the file, to check it,
// and said "configuration reloaded"). A file that does not load is
// refused and the set in use stays. changed reports a new set in use,
// and removed the revocation ids of the keys it no longer holds (their
// tokens' retained events and SSE streams are the caller's to end).
// Not safe for concurrent use with itself (the signal loop calls it).
func (v *jwksVerifier) reloadKeys(deadline time.Time) (changed bool, kids, removed []string, err error) {
	if err := awaitQuietConfig(v.path, deadline); err != nil {
		return false, nil, nil, err
	}
	b, err := readRegularFile(v.path, maxKeyFile)
	if err != nil {
		return false, nil, nil, err
	}
	sum := sha256.Sum256(b)
	old := v.keys.Load()
	if sum == old.sum {
		return false, nil, nil, nil
	}
	set, err := parseJWKS(v.path, b)
	if err != nil {
		return false, nil, nil, err
	}
	ks := newJWKSKeys(set, sum)
	v.keys.Store(ks)
	v.mu.Lock()
	clear(v.cache)
	clear(v.early)
	v.mu.Unlock()
	for i := 0; i < set.Len(); i++ {
		if k, ok := set.Key(i); ok {
			kids = append(kids, k.KeyID())
		}
	}
	for id := range old.held {
		if !ks.held[id] {
			removed = append(removed, id)
		}
	}
	return true, kids, removed, nil
}

// RevocationIDs implements gateway.BearerRevoker: the ids of the keys
// that signed p's token (keyID). The gateway keeps them with the retained
// events and SSE streams the token makes, so that a reload taking the
// key out of the file ends them (reload: route.Router.RevokeRetained,
// gateway.Server.RevokeBearer). None for another verifier's token.
func (v *jwksVerifier) RevocationIDs(p *gateway.Principal) []string {
	if t, ok := p.Token.(*jwksToken); ok {
		return t.ids
	}
	return nil
}

// Withdrawn implements gateway.BearerRevoker: a token one of whose keys
// the file no longer holds may no longer be used.
func (v *jwksVerifier) Withdrawn(p *gateway.Principal) string {
	t, ok := p.Token.(*jwksToken)
	if !ok {
		return ""
	}
	held := v.keys.Load().held
	for _, id := range t.ids {
		if !held[id] {
			return msgKeyRemoved
		}
	}
	return ""
}

// msgKeyRemoved says why a token of a key taken out of the file is no
// longer good.
const msgKeyRemoved = "the key that signed the token was removed from gateway.bearer.jwks_file"

// loadJWKS reads the public key set of a JWKS file. The configuration's
// validation reads it too, so that check-config and a reload refuse what
// the start refuses (they only stat'ed it).
func loadJWKS(path string) (jwk.Set, error) {
	b, err := readRegularFile(path, maxKeyFile)
	if err != nil {
		return nil, err
	}
	return parseJWKS(path, b)
}

// parseJWKS parses b, the JWKS file at path, as loadJWKS does, and
// returns its signing keys (encryption keys, "use": "enc", are left out).
func parseJWKS(path string, b []byte) (jwk.Set, error) {
	set, err := jwk.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: not a JSON Web Key Set: %w", path, err)
	}
	if set.Len() == 0 {
		return nil, fmt.Errorf("%s: the key set is empty", path)
	}
	// The signing keys alone: an encryption key listed before a signing
	// key of its kid was the one the verifier found for that kid
	// (jwk.Set.LookupKeyID takes the first), which verifies nothing, so
	// that every token of the signing key was refused 401.
	sigs := jwk.NewSet()
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if _, ok := k.(interface{ D() []byte }); ok {
			return nil, fmt.Errorf("%s: holds a private key; give the public key set", path)
		}
		// The verifier finds a token's key by the token's kid and takes
		// the algorithm from the key, never from the token: a key without
		// either verified nothing, and every token was refused 401 with
		// nothing saying why (RFC 7517 makes both optional).
		kid := k.KeyID()
		switch {
		case k.KeyType() == jwa.OctetSeq:
			return nil, fmt.Errorf("%s: key %d (kid %q) is a symmetric key, a shared secret; give the issuer's public keys", path, i+1, kid)
		case k.KeyUsage() != "" && k.KeyUsage() != jwk.ForSignature.String():
			continue // an encryption key: not used to verify
		case kid == "":
			return nil, fmt.Errorf(`%s: key %d names no "kid": a token's key is found by its kid; add the kid the issuer's tokens name`, path, i+1)
		case k.Algorithm().String() == "":
			return nil, fmt.Errorf(`%s: key %d (kid %q) names no "alg": a token is verified with the algorithm its key names, never the token's; add it (EdDSA, ES256, RS256, ...)`, path, i+1, kid)
		}
		if alg := k.Algorithm().String(); alg == jwa.NoSignature.String() || strings.HasPrefix(alg, "HS") || !isSignatureAlg(alg) {
			return nil, fmt.Errorf("%s: key %d (kid %q): alg %q is not a public-key signature algorithm", path, i+1, kid, alg)
		}
		sigs.AddKey(k)
	}
	if sigs.Len() == 0 {
		return nil, fmt.Errorf(`%s: the key set has no key to verify signatures with (all are for encryption, "use": "enc")`, path)
	}
	return sigs, nil
}

// isSignatureAlg reports whether alg is a JWS signature algorithm.
func isSignatureAlg(alg string) bool {
	for _, a := range jwa.SignatureAlgorithms() {
		if a.String() == alg {
			return true
		}
	}
	return false
}

var errToken = errors.New("the token is not valid")

// VerifyBearer implements gateway.BearerVerifier.
func (v *jwksVerifier) VerifyBearer(_ context.Context, token string) (*gateway.Principal, error) {
	h := sha256.Sum256([]byte(token))
	v.mu.Lock()
	p := v.cache[h]
	v.mu.Unlock()
	if p != nil {
		if time.Now().Before(p.Expires) {
			return p, nil
		}
		// Kept (a full cache drops expired entries first), so that its
		// next uses cost no signature check: each is refused uncounted
		// (gateway.ErrBearerStale), a genuine token no guess.
		return nil, errTokenExpiredCached
	}
	v.mu.Lock()
	from, early := v.early[h]
	v.mu.Unlock()
	if early && time.Now().Before(from) {
		return nil, errTokenAhead
	}
	// The claims' types first: a registered claim of the wrong type is a
	// malformed token, whether or not jwx would read it as a date that
	// has passed.
	msg, err := jws.Parse([]byte(token))
	if err != nil || len(msg.Signatures()) == 0 || registeredClaimTypes(msg.Payload()) != nil {
		return nil, errToken
	}
	keys := v.keys.Load()
	opts := []jwt.ParseOption{jwt.WithKeySet(keys.set, jws.WithInferAlgorithmFromKey(false)), jwt.WithValidate(true),
		jwt.WithAcceptableSkew(jwtSkew)}
	if v.issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.issuer))
	}
	if v.audience != "" {
		opts = append(opts, jwt.WithAudience(v.audience))
	}
	tok, err := jwt.Parse([]byte(token), opts...)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired()) {
			return nil, errors.New("the token has expired")
		}
		if errors.Is(err, jwt.ErrInvalidIssuedAt()) || errors.Is(err, jwt.ErrTokenNotYetValid()) {
			// Genuine (jwx validates the claims once the signature is
			// checked), issued ahead of this clock: the issuer's clock
			// leads, or this one stepped back. Refused as not valid, it
			// was counted as a forgery: 30 requests of a client with its
			// fresh token locked its address out (429), other clients'
			// good tokens too. Remembered, so that its uses until it may
			// be taken cost no signature check, uncounted.
			if v.ownIssuer != "" && claimsIssuer(token, v.ownIssuer) {
				return nil, errOwnIssuer
			}
			v.rememberEarly(h, keys, usableFrom(msg.Payload()))
			return nil, errTokenAhead
		}
		return nil, errToken
	}
	if tok.Expiration().IsZero() {
		return nil, errors.New("the token has no expiry")
	}
	if v.ownIssuer != "" && sameIssuer(tok.Issuer(), v.ownIssuer) {
		// The OAuth2 server refused it (bearerChain asks it first), or
		// does not answer yet: with the server's keys in jwks_file, this
		// verifier took the token, bound to no realm (its aud is the bare
		// realm), revoked or signed by a key the server no longer has.
		return nil, errOwnIssuer
	}
	if err := accessToken(msg, tok); err != nil {
		return nil, err
	}
	if p, err = principalOf(tok); err != nil {
		return nil, err
	}
	rec := &jwksToken{}
	for _, sig := range msg.Signatures() {
		if id := keys.byKid[sig.ProtectedHeaders().KeyID()]; id != "" && !slices.Contains(rec.ids, id) {
			rec.ids = append(rec.ids, id)
		}
	}
	p.Token = rec
	v.mu.Lock()
	if v.keys.Load() != keys {
		// A reload swapped the key set (and emptied the cache) while
		// this token was verified: it was good under the old set, so it
		// is answered, but not remembered past the reload.
		v.mu.Unlock()
		return p, nil
	}
	if len(v.cache) >= jwtCacheMax {
		now := time.Now()
		for k, x := range v.cache {
			if !now.Before(x.Expires) {
				delete(v.cache, k)
			}
		}
		if len(v.cache) >= jwtCacheMax {
			clear(v.cache)
		}
	}
	v.cache[h] = p
	v.mu.Unlock()
	return p, nil
}

// jwtSkew is the clock difference taken on a token's dates (jwx's
// acceptable skew).
const jwtSkew = 30 * time.Second

// errTokenAhead refuses a genuine token issued ahead of this server's
// clock (its iat or nbf past the skew): gateway.ErrBearerStale.
var errTokenAhead error = staleErr("the token was issued ahead of this server's clock (its iat or nbf more than 30 s in the future); try again later")

// usableFrom is when a token whose claims are payload (its registered
// dates numbers: registeredClaimTypes) may be taken: its iat and nbf,
// whichever is later, less the skew.
func usableFrom(payload []byte) time.Time {
	var d struct{ Iat, Nbf float64 }
	json.Unmarshal(payload, &d)
	return time.Unix(int64(math.Ceil(max(d.Iat, d.Nbf))), 0).Add(-jwtSkew)
}

// rememberEarly keeps h, a genuine token verified with keys that may be
// taken from from on (or until a reload swaps the key set).
func (v *jwksVerifier) rememberEarly(h [32]byte, keys *jwksKeys, from time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys.Load() != keys {
		return
	}
	if len(v.early) >= jwtCacheMax {
		now := time.Now()
		for k, t := range v.early {
			if !now.Before(t) {
				delete(v.early, k)
			}
		}
		if len(v.early) >= jwtCacheMax {
			clear(v.early)
		}
	}
	v.early[h] = from
}

// errTokenExpiredCached refuses a token verified before that has expired
// since (found in the cache).
var errTokenExpiredCached error = staleErr("the token has expired")

// staleErr is a refusal of a genuine token: gateway.ErrBearerStale.
type staleErr string

func (e staleErr) Error() string { return string(e) }
func (e staleErr) Unwrap() error { return gateway.ErrBearerStale }

var errOwnIssuer = errors.New("the token is not valid (a token of this router's OAuth2 server that the server does not accept)")

// sameIssuer reports whether two issuer URLs name one issuer: scheme and
// host compared without case, the path without a trailing slash (as
// oauth normalizes its issuer).
func sameIssuer(a, b string) bool {
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Host, ub.Host) &&
		strings.TrimSuffix(ua.Path, "/") == strings.TrimSuffix(ub.Path, "/")
}

var (
	errTokenType = errors.New("the token is not an access token: its typ is neither at+jwt nor JWT")
	errIDToken   = errors.New("the token is an OpenID Connect ID token (it carries nonce, at_hash, c_hash or s_hash), not an access token")
)

// idTokenClaims are claims only an OpenID Connect ID token carries (OIDC
// Core §2, §3.3.2.11; FAPI's s_hash). nonce is the first: see
// accessToken for the issuer that copies it into access tokens.
var idTokenClaims = []string{"nonce", "at_hash", "c_hash", "s_hash"}

// accessToken returns why a verified token (raw, parsed as tok) is not an
// access token, or nil. An ID token says who signed in to a client (its
// aud is that client), not what its bearer may do; with roles in it and
// no gateway.bearer.audience (no aud check), one was taken as an access
// token. Taken: typ at+jwt or application/at+jwt (RFC 9068 §2.1), and,
// for the issuers that do not type their access tokens (most IdPs before
// RFC 9068), JWT, application/jwt or none, unless the token carries an
// ID token's claims. Refused: any other typ (an issuer's typed ID, logout
// or event tokens). Only protected headers are read (of msg, the token's
// JWS): an unprotected one can be changed by anyone holding the token.
// Runs on a cache miss only.
func accessToken(msg *jws.Message, tok jwt.Token) error {
	typed := true // every signature's header says at+jwt
	for _, sig := range msg.Signatures() {
		switch typ := sig.ProtectedHeaders().Type(); {
		case strings.EqualFold(typ, "at+jwt"), strings.EqualFold(typ, "application/at+jwt"):
		case typ == "", strings.EqualFold(typ, "JWT"), strings.EqualFold(typ, "application/jwt"):
			typed = false
		default:
			return errTokenType
		}
	}
	if !typed {
		claims := idTokenClaims
		// Keycloak (to 24, and later with its "nonce backwards
		// compatible" mapper) copies the authorization request's nonce
		// into its access tokens (keycloak#26893), as keycloak-js asks
		// by default; it marks them with the claim typ "Bearer" (its ID
		// tokens say "ID", and carry at_hash). Refusing its nonce refused
		// every access token of such a single-page app.
		switch kt, _ := tok.Get("typ"); {
		case kt == "ID":
			return errIDToken
		case kt == "Bearer":
			claims = claims[1:]
		}
		for _, c := range claims {
			if _, ok := tok.Get(c); ok {
				return errIDToken
			}
		}
	}
	return nil
}

// registeredClaimTypes returns errToken when a registered claim of the
// JWT claims set payload (RFC 7519 §4.1) is not of its JSON type: exp,
// nbf and iat NumericDates (numbers), iss, sub and jti strings, aud a
// string or an array of strings. jwx reads a date written as a string (a
// number in quotes, or an RFC 3339 date) as that date: a token whose exp
// was "<in an hour>", "99999999999" or "2099-01-01T00:00:00Z" was
// accepted until then, though no conforming issuer writes one (the
// router's OAuth2 server would not take it). Runs on a cache miss only,
// before the signature check (a payload is at most the request's head).
func registeredClaimTypes(payload []byte) error {
	var c map[string]json.RawMessage
	if json.Unmarshal(payload, &c) != nil {
		return errToken
	}
	for k, v := range c {
		ok := true
		switch k {
		case "exp", "nbf", "iat":
			ok = jsonKind(v) == '0'
		case "iss", "sub", "jti":
			ok = jsonKind(v) == '"'
		case "aud":
			switch jsonKind(v) {
			case '"':
			case '[':
				var l []json.RawMessage
				ok = json.Unmarshal(v, &l) == nil
				for _, x := range l {
					ok = ok && jsonKind(x) == '"'
				}
			default:
				ok = false
			}
		}
		if !ok {
			return errToken
		}
	}
	return nil
}

// jsonKind is the kind of the JSON value v: '"' a string, '[' an array,
// '{' an object, '0' a number, 't' a boolean, 'n' null.
func jsonKind(v json.RawMessage) byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return 0
	}
	switch c := v[0]; {
	case c == '-' || c >= '0' && c <= '9':
		return '0'
	case c == 'f':
		return 't'
	default:
		return c
	}
}

var errTokenRealms = errors.New(`the token names more than one realm, or an empty one (aud "wamp:<realm>"): a token is bound to one realm`)

// principalOf is the principal of a verified access token. Its realm is
// the one its audiences name as wamp:<realm>; a token naming several (or
// the empty realm, which would bind it to none) is refused: before, the
// last one listed bound it, so the order of the list chose the realm, and
// wamp: listed last left it good on every realm.
func principalOf(tok jwt.Token) (*gateway.Principal, error) {
	pc := tok.PrivateClaims()
	p := &gateway.Principal{AuthID: tok.Subject(), Expires: tok.Expiration(), Claims: map[string]any{}}
	for k, x := range pc {
		p.Claims[k] = x
	}
	p.Claims["sub"] = tok.Subject()
	p.Claims["iss"] = tok.Issuer()
	for _, a := range tok.Audience() {
		if r, ok := strings.CutPrefix(a, "wamp:"); ok {
			if r == "" || p.Realm != "" && p.Realm != r {
				return nil, errTokenRealms
			}
			p.Realm = r
		}
	}
	p.AuthRole, _ = pc["authrole"].(string)
	p.Roles = strList(pc["roles"])
	if p.AuthRole == "" && len(p.Roles) > 0 {
		p.AuthRole = p.Roles[0]
	}
	if p.AuthRole != "" && !contains(p.Roles, p.AuthRole) {
		p.Roles = append(p.Roles, p.AuthRole)
	}
	if sc, ok := pc["scope"]; ok {
		p.Scopes = scopeList(sc)
	} else {
		p.Scopes = scopeList(pc["scp"])
	}
	return p, nil
}

// scopeList reads a token's scope or scp claim in either form issuers
// write it: a space-separated string (RFC 9068 §2.2.3; Keycloak, Auth0,
// and Microsoft Entra ID's scp) or a list (Okta's scp, Spring
// Authorization Server's scope). Only scope as a string and scp as a list
// were read before: an Entra ID or Spring token was held to have no
// scope, and refused 403 by every route with auth.scopes.
func scopeList(v any) []string {
	if s, ok := v.(string); ok {
		return strings.Fields(s)
	}
	return strList(v)
}

func strList(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// bearerChain tries each verifier in turn (the OAuth2 server's tokens,
// then a JWKS file's); the first that accepts the token wins, and the
// OAuth2 server's refusal of a token of its own ends the search
// (ownRefusal), as any verifier's of a genuine token no longer good
// (gateway.ErrBearerStale) does.
type bearerChain []gateway.BearerVerifier

func (c bearerChain) VerifyBearer(ctx context.Context, token string) (*gateway.Principal, error) {
	var first error
	for _, v := range c {
		p, err := v.VerifyBearer(ctx, token)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, gateway.ErrBearerUnavailable) {
			// The OAuth2 server cannot check tokens yet (its shared
			// state does not answer). A token claiming its issuer is its
			// to judge: 503, final (the JWKS verifier refuses the
			// server's tokens anyway). One that does not cannot be its:
			// the next verifier's answer stands. Before, every token the
			// JWKS verifier refused was answered 503, uncounted, for as
			// long as the state did not answer: an IdP token that had
			// expired was told to try again, and forgeries of the IdP's
			// tokens, a signature check each, were never counted.
			if o, ok := v.(oauthBearer); !ok || claimsIssuer(token, o.o.opts.Issuer) {
				return nil, err
			}
			continue
		}
		var own ownRefusal
		if errors.As(err, &own) || errors.Is(err, gateway.ErrBearerStale) {
			// Final: a verifier took the token for genuine (its
			// signature checked) and refuses it as no longer good. An
			// earlier verifier's "not valid" (the OAuth2 server's, for
			// a token of the JWKS's issuer) would be counted against
			// the client's address, as a forgery.
			return nil, err
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// claimsIssuer reports whether token's payload, read without checking
// its signature, names issuer as its iss (sameIssuer). Only to tell whose
// a token may be, never to take it.
func claimsIssuer(token, issuer string) bool {
	_, rest, ok := strings.Cut(token, ".")
	payload, _, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return false
	}
	var c struct {
		Iss string `json:"iss"`
	}
	return json.Unmarshal(b, &c) == nil && c.Iss != "" && sameIssuer(c.Iss, issuer)
}

// RevocationIDs implements gateway.BearerRevoker for the verifiers that
// do.
func (c bearerChain) RevocationIDs(p *gateway.Principal) []string {
	for _, v := range c {
		if rv, ok := v.(gateway.BearerRevoker); ok {
			if ids := rv.RevocationIDs(p); len(ids) > 0 {
				return ids
			}
		}
	}
	return nil
}

// Withdrawn implements gateway.BearerRevoker: asked of the verifier that
// names p's revocation ids.
func (c bearerChain) Withdrawn(p *gateway.Principal) string {
	for _, v := range c {
		if rv, ok := v.(gateway.BearerRevoker); ok && len(rv.RevocationIDs(p)) > 0 {
			return rv.Withdrawn(p)
		}
	}
	return ""
}
