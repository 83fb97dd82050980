package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgewamp/edgewamp/internal/errdesc"
	"github.com/edgewamp/edgewamp/internal/slide"
	"github.com/edgewamp/edgewamp/proto"
)

// Principal is an authenticated HTTP client, as a BearerVerifier returns
// it.
type Principal struct {
	// Realm the token is good for; "" for any realm.
	Realm string
	// AuthID and AuthRole are the WAMP identity the requests act as.
	// Without AuthRole the first of Roles is used.
	AuthID   string
	AuthRole string
	// Roles are every role the principal holds (routes may require one).
	Roles []string
	// Scopes the token grants (routes may require some).
	Scopes []string
	// Expires is the token's expiry; the zero time means none.
	Expires time.Time
	// Claims are the token's claims, for route expressions ($/claims/...).
	Claims map[string]any
	// Token is the verifier's own record of the token (e.g. its parsed
	// claims), for its BearerRevoker; nil if it has none.
	Token any
}

// BearerVerifier checks "Authorization: Bearer" tokens. cmd adapts the
// OAuth2 server's verifier (or a JWKS file's) to it. VerifyBearer must be
// safe for concurrent use; it may take a while on a cache miss (a
// signature check, about 250 µs) but must not make network requests per
// call. An error means the token is not valid (401); its text goes to the
// client in WWW-Authenticate, so it must not contain secrets.
type BearerVerifier interface {
	VerifyBearer(ctx context.Context, token string) (*Principal, error)
}

// ErrBearerUnavailable is what a BearerVerifier returns (wrapped, for
// errors.Is) when it cannot tell whether a token is good for now (its
// issuer's shared state does not answer yet): the request is answered 503
// with Retry-After, and not counted as a failed authentication of its
// address, rather than 401.
var ErrBearerUnavailable = errors.New("gateway: the bearer token's issuer is not ready")

// ErrBearerStale is what a BearerVerifier returns (wrapped, for
// errors.Is) for a token it found genuine (its signature checked, now or
// before) that is no longer good: expired, revoked, or its grant
// withdrawn by a reload. The request is refused 401 all the same, but not
// counted as a failed authentication of its address: such a token is no
// guess, and counted, 30 requests in a minute with tokens that had
// expired or been revoked (a dashboard's polls before it refreshes, the
// browsers of an office behind one address) locked the address out, 429
// for its fresh tokens too. A verifier must not return it where telling
// costs a signature check per request (an expired token it has not kept).
var ErrBearerStale = errors.New("gateway: the bearer token is no longer valid")

// BearerRevoker is implemented by a BearerVerifier whose tokens may stop
// being good before they expire (the router's own OAuth2 server's:
// revoked, or their client, principal or role no longer configured after
// a configuration reload; a JWKS file's: the key that signed them taken
// out of the file). The SSE streams opened with such a token (event
// streams and streamed calls) end, and the retained events published with
// it are dropped, when Server.RevokeBearer (with Router.RevokeRetained or
// RevokeCredentials) names one of its revocation ids, or Server.SetRealms
// runs (a reload), and Withdrawn confirms it. Tokens of a verifier
// without it last until they expire. Both methods must be safe for
// concurrent use and must not block; they are asked once per SSE stream
// when it opens and per retained publication, then on those occasions,
// never per request otherwise.
type BearerRevoker interface {
	// RevocationIDs returns the ids under which p's token may be revoked,
	// or none (its streams are then not watched by the verifier).
	RevocationIDs(p *Principal) []string
	// Withdrawn returns why p's token may no longer be used now ("the
	// token was revoked", "the client was removed", ...), or "" while it
	// may. The text goes to the client.
	Withdrawn(p *Principal) string
}

// BearerRoles is implemented by a BearerRevoker whose principals may lose
// roles after their tokens were issued (the router's own OAuth2 server's:
// a reload may take a role from a user). HeldRoles returns the roles of
// p's token that its principal holds now. When a reload re-checks an open
// SSE stream, its route's auth.roles are matched against them rather than
// against the Principal.Roles of the request that opened it (VerifyBearer
// builds those the same way, for each request). It must be safe for
// concurrent use and must not block.
type BearerRoles interface {
	HeldRoles(p *Principal) []string
}

// who is the outcome of authenticating a request.
type who struct {
	id     identity
	p      *Principal // bearer only
	key    *keyed     // API key and signed only: the key it authenticated with (keys.go)
	roles  []string
	scopes []string
}

// hasRole reports whether the principal holds one of roles.
func (w *who) hasRole(roles []string) bool {
	for _, r := range roles {
		if r == w.id.authrole {
			return true
		}
		for _, x := range w.roles {
			if x == r {
				return true
			}
		}
	}
	return false
}

// credential is what a request presents.
type credential uint8

const (
	credNone credential = iota
	credBearer
	credAPIKey
	credSigned
)

func (g *Server) credentialOf(r *http.Request) credential {
	// Direct lookups with canonical keys: Header.Get would canonicalize
	// (and for a key such as X-API-Key allocate) on every request.
	if h := headerValue(r.Header, "Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return credBearer
		}
	}
	if headerValue(r.Header, g.apiKeyHdr) != "" {
		return credAPIKey
	}
	if q := r.URL.RawQuery; q != "" && strings.Contains(q, "signature=") && r.URL.Query().Has("signature") {
		return credSigned
	}
	return credNone
}

// repeatedCredential refuses a request giving Authorization or the API
// key header more than once (repeated). Two direct lookups.
func (g *Server) repeatedCredential(h http.Header) *problem {
	if p := repeated(h, "Authorization"); p != nil {
		return p
	}
	return repeated(h, g.apiKeyHdr)
}

// repeated refuses a header the gateway reads once, key in canonical
// form, when the request gives it more than once (RFC 9110 §5.3: only a
// list may be, and these are none): 400 naming it. The gateway took the
// first, where a proxy or filter in front of it taking the last (or
// joining them) judged another request: two X-API-Key headers were
// served as the first key whatever the second, and Authorization: Basic
// then Authorization: Bearer ran anonymous behind a proxy checking the
// token.
func repeated(h http.Header, key string) *problem {
	if len(h[key]) > 1 {
		return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "the "+key+" header is given more than once")
	}
	return nil
}

// repeatedQuery refuses a query parameter of q the gateway reads once,
// among keys, given more than once, as repeated refuses a header: the
// gateway took the first (url.Values.Get).
func repeatedQuery(q url.Values, keys ...string) *problem {
	for _, k := range keys {
		if len(q[k]) > 1 {
			return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "the query parameter "+strconv.Quote(k)+" is given more than once")
		}
	}
	return nil
}

// headerValue is h.Get(key) for a key already in canonical form.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// authenticate establishes who a request acts as in realm, as auth
// allows, under ac (the realms and keys the request is judged by, loaded
// once for it). body is the request body (signed requests sign it);
// anonymous requests act as anon (a route's fixed principal) or the
// realm's anonymous role. The *who returned is shared: callers must not
// modify it.
func (g *Server) authenticate(ac *access, r *http.Request, realm string, auth *Auth, body []byte, anon *who) (*who, *problem) {
	if auth.Type != "none" {
		if p := g.repeatedCredential(r.Header); p != nil {
			return nil, p
		}
	}
	cred := g.credentialOf(r)
	failed := false // a credential was checked and refused (401)
	ip := ""
	if cred != credNone && auth.Type != "none" && !g.authExempt(r) {
		// Only credentials are checked, and so limited: anonymous requests
		// cost no lookup here; nor are an exempt network's.
		ip = clientIP(r)
		// A request on net/http may wait for its place; one on an event
		// loop's lane (whose context is never done) may not block.
		v, ch := g.limiter.begin(ip, r.Context().Done() != nil)
		if ch != nil {
			v = g.waitPlace(r.Context(), ip, ch)
		}
		switch v {
		case failLocked:
			p := tooBusy(429, "too many failed authentications from this address; try again later")
			p.header["Retry-After"] = strconv.Itoa(int((g.limiter.lockedFor(ip) + time.Second - 1) / time.Second))
			return nil, p
		case failBusy:
			return nil, tooBusy(429, "too many authentications from this address are being checked; try again shortly")
		}
		// Ended when the check ends, counting its failure: until then a
		// reserved place stays taken, so that concurrent requests get no
		// more credentials checked than the address has failures left.
		defer func() { g.limiter.end(ip, v == failReserved, failed) }()
	}
	if auth.Type == "none" {
		cred = credNone
	}
	if p := g.credentialMismatch(cred, auth); p != nil {
		return nil, p
	}
	var w *who
	var p *problem
	switch cred {
	case credBearer:
		w, p = g.bearer(r, realm)
	case credAPIKey:
		w, p = g.apiKey(ac.keys, headerValue(r.Header, g.apiKeyHdr), realm, auth.Keys)
	case credSigned:
		w, p = g.signed(ac.keys, r.URL.Query(), body, realm, auth.Keys)
	default:
		return g.anonymousFor(ac, realm, auth, anon)
	}
	if p != nil {
		if p.status == http.StatusUnauthorized {
			failed = !p.stale // counted by the deferred end, unless no guess
			g.metrics.authResult(cred, false)
		}
		return nil, p
	}
	g.metrics.authResult(cred, true)
	if len(auth.Scopes) > 0 {
		for _, need := range auth.Scopes {
			if !contains(w.scopes, need) {
				p := newProblem(http.StatusForbidden, proto.URINotAuthorized, "the token lacks scope "+strconv.Quote(need))
				p.header = map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope", scope="` + strings.Join(auth.Scopes, " ") + `"`}
				return nil, p
			}
		}
	}
	if len(auth.Roles) > 0 && !w.hasRole(auth.Roles) {
		return nil, newProblem(http.StatusForbidden, proto.URINotAuthorized, "the principal has none of the roles "+strings.Join(auth.Roles, ", "))
	}
	return w, nil
}

// credentialMismatch refuses a request presenting cred (credNone for a
// route of type none) where auth takes another kind, or none at all;
// nil when cred is one auth may take.
func (g *Server) credentialMismatch(cred credential, auth *Auth) *problem {
	switch auth.Type {
	case "bearer":
		if cred != credBearer {
			return g.unauthorized("a bearer token is required", "")
		}
	case "apikey":
		if cred != credAPIKey {
			return g.unauthorized("an API key is required ("+g.opts.APIKeyHeader+" header)", "")
		}
	case "signed":
		if cred != credSigned {
			return g.unauthorized("a signed request is required (key, timestamp, seq, nonce, signature)", "")
		}
	}
	if len(auth.Keys) > 0 && (cred == credNone || cred == credBearer) {
		// A route's auth.keys name the keys that may use it: a request
		// without credentials or with a bearer token (neither names a
		// key) is refused, whatever the type ("any", the default, takes
		// API keys and signed requests). Before, such a route of type any
		// restricted the keys only, and served requests without
		// credentials as the realm's anonymous role.
		return g.unauthorized("an API key or a signed request of one of the keys "+strings.Join(auth.Keys, ", ")+" is required", "")
	}
	return nil
}

// anonymousFor is the principal a request without credentials acts as in
// realm under ac, as auth allows (anon: a route's fixed principal), or
// its refusal.
func (g *Server) anonymousFor(ac *access, realm string, auth *Auth, anon *who) (*who, *problem) {
	w, p := g.anonymous(ac, realm, anon)
	if p == nil && len(auth.Roles) > 0 && !w.hasRole(auth.Roles) {
		// The route's roles bind anonymous requests too (type "any").
		return nil, g.unauthorized("credentials with one of the roles "+strings.Join(auth.Roles, ", ")+" are required", "")
	}
	return w, p
}

// refuseUnread is, for a request waiting for 100 Continue, the refusal
// that its credential, or its lack of one, decides whatever its body, or
// nil: a request without credentials where realm (anon: the route's
// principal) serves none, or presenting another kind than auth takes.
// It is checked before the body is asked for (authenticate checks the
// request again once it is read, as a signed request's signature covers
// the body). Before, net/http answered 100 Continue at the body's first
// read, before authentication: a client carrying no credential at all
// was asked for its body, and the gateway took max_body (1 MiB) of it
// before its 401. The answer made with the body unread closes the
// connection (bodyWatch). A request whose body is on its way anyway (no
// Expect) is read and authenticated as before, its connection kept. A
// bearer token or API key, which does not cover the body, is checked
// here, once: its principal is returned, and the request is not
// authenticated again (before, any such header, "Bearer x", had the
// body asked for and read before its 401).
func (g *Server) refuseUnread(ac *access, r *http.Request, realm string, auth *Auth, anon *who) (*who, *problem) {
	if !expectsContinue(r) {
		return nil, nil
	}
	cred := g.credentialOf(r)
	if auth.Type == "none" {
		cred = credNone
	}
	if p := g.credentialMismatch(cred, auth); p != nil {
		return nil, p
	}
	switch cred {
	case credBearer, credAPIKey:
		return g.authenticate(ac, r, realm, auth, nil, anon)
	case credSigned:
		return nil, nil // its signature covers the body
	}
	_, p := g.anonymousFor(ac, realm, auth, anon)
	return nil, p
}

// lapsed is the refusal of early, the principal a bearer token was
// authenticated as before its request's body was asked for (refuseUnread,
// bridgeUnread), once that body is read: the token expired or was
// revoked meanwhile (body_timeout, 10 s by default), as the request
// authenticated now would be refused; nil while it holds, and for an API
// key's. Before, such a request was served with its token expired.
func (g *Server) lapsed(early *who) *problem {
	if early == nil || early.p == nil {
		return nil
	}
	if !early.p.Expires.IsZero() && time.Now().After(early.p.Expires) {
		pb := g.unauthorized("the bearer token has expired", "the token has expired")
		pb.stale = true
		return pb
	}
	if rv, ok := g.opts.Bearer.(BearerRevoker); ok {
		if why := rv.Withdrawn(early.p); why != "" {
			return g.unauthorized("the bearer token is not valid: "+why, why)
		}
	}
	return nil
}

// expectsContinue reports whether r's client waits for 100 Continue
// before it sends the body (RFC 9110 §10.1.1), which net/http sends at
// the body's first read. One header lookup.
func expectsContinue(r *http.Request) bool {
	v := headerValue(r.Header, "Expect")
	return v != "" && strings.EqualFold(v, "100-continue")
}

// authExempt reports whether r's client is in Options.AuthFailuresExempt:
// its failed authentications are neither counted nor refused, as
// limits.auth_failures.exempt makes the WAMP and OAuth2 limiters do.
// Before, the gateway's limiter ignored the list, so a trusted service's
// API keys from an exempt network could still be locked out.
func (g *Server) authExempt(r *http.Request) bool {
	if len(g.opts.AuthFailuresExempt) == 0 {
		return false
	}
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(r.RemoteAddr); err != nil {
		return false // a forwarded client without a port has none
	}
	// Unmapped and without its zone, as the WAMP limiter compares it:
	// netip.Prefix.Contains is false for any address with a zone, so a
	// link-local client ([fe80::1%eth0]:port) was never exempt here.
	a = a.Unmap().WithZone("")
	for _, p := range g.opts.AuthFailuresExempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// waitPlace waits for the verdict of a request of ip that begin queued
// (ch), at most failWait or until the request ends.
func (g *Server) waitPlace(ctx context.Context, ip string, ch chan failVerdict) failVerdict {
	t := time.NewTimer(failWait)
	defer t.Stop()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
	case <-t.C:
	}
	return g.limiter.cancel(ip, ch)
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// unauthorized is a 401 with a WWW-Authenticate challenge (RFC 6750 for
// bearer tokens).
func (g *Server) unauthorized(detail, bearerErr string) *problem {
	p := newProblem(http.StatusUnauthorized, proto.URIAuthenticationRequired, detail)
	if g.opts.Bearer != nil && bearerErr != "" {
		p.uri = proto.URIAuthenticationFailed
	}
	p.header = map[string]string{"WWW-Authenticate": g.challenge(bearerErr)}
	return p
}

// challenge is the WWW-Authenticate value of a 401: the bearer scheme
// (with the token's error, when bearerErr says one) and, when API keys
// are configured, their header. Every 401 carries one (RFC 9110 §15.5.2).
func (g *Server) challenge(bearerErr string) string {
	var ch []string
	if g.opts.Bearer != nil {
		c := `Bearer realm="edgewamp"`
		if bearerErr != "" {
			c += `, error="invalid_token", error_description="` + errdesc.Text(bearerErr) + `"`
		}
		ch = append(ch, c)
	}
	if len(g.access.Load().keys.apiKeys) > 0 { // a hint: the keys configured now
		ch = append(ch, `ApiKey header="`+g.opts.APIKeyHeader+`"`)
	}
	if len(ch) == 0 {
		ch = append(ch, `Bearer realm="edgewamp"`)
	}
	return strings.Join(ch, ", ")
}

func (g *Server) anonymous(ac *access, realm string, anon *who) (*who, *problem) {
	if anon != nil && anon.id.authrole != "" {
		return anon, nil
	}
	ra := ac.realm(realm)
	if ra == nil || ra.anon == nil {
		return nil, g.unauthorized("this realm needs credentials", "")
	}
	return ra.anon, nil
}

// anonymousChanged returns why requests without credentials to w's realm
// no longer act as w, an anonymous principal of it (a reload refused
// them, or gave them another role) under ac, or nil.
func (g *Server) anonymousChanged(ac *access, w *who) *problem {
	ra := ac.realm(w.id.realm)
	switch {
	case ra == nil || ra.anon == nil:
		return g.unauthorized("this realm needs credentials", "")
	case ra.anon.id != w.id:
		return newProblem(http.StatusForbidden, proto.URINotAuthorized, "requests without credentials to realm "+strconv.Quote(w.id.realm)+" now act as role "+strconv.Quote(ra.anon.id.authrole))
	}
	return nil
}

func (g *Server) bearer(r *http.Request, realm string) (*who, *problem) {
	if g.opts.Bearer == nil {
		return nil, g.unauthorized("bearer tokens are not accepted here", "")
	}
	tok := strings.TrimSpace(r.Header.Get("Authorization")[7:])
	p, err := g.opts.Bearer.VerifyBearer(r.Context(), tok)
	if errors.Is(err, ErrBearerUnavailable) {
		// Not the token's fault: counted, a client holding a good one
		// (or its whole network) was locked out, and told it was invalid.
		pb := newProblem(http.StatusServiceUnavailable, proto.URIUnavailable, "the bearer token cannot be checked yet: "+err.Error()+"; try again shortly")
		pb.header = map[string]string{"Retry-After": "5"}
		return nil, pb
	}
	if err != nil || p == nil {
		msg := "invalid token"
		if err != nil {
			msg = err.Error()
		}
		pb := g.unauthorized("the bearer token is not valid: "+msg, msg)
		pb.stale = errors.Is(err, ErrBearerStale)
		return nil, pb
	}
	if !p.Expires.IsZero() && time.Now().After(p.Expires) {
		pb := g.unauthorized("the bearer token has expired", "the token has expired")
		pb.stale = true // the verifier took it: genuine
		return nil, pb
	}
	if p.Realm != "" && p.Realm != realm {
		return nil, newProblem(http.StatusForbidden, proto.URINotAuthorized, "the token is for realm "+strconv.Quote(p.Realm))
	}
	role := p.AuthRole
	if role == "" && len(p.Roles) > 0 {
		role = p.Roles[0]
	}
	if p.AuthID == "" || role == "" {
		return nil, g.unauthorized("the bearer token names no principal and role", "no subject or role")
	}
	// The authid and authrole go to WAMP peers (disclosure, the meta
	// API's on_join and wamp.session.get): a string JSON peers cannot be
	// given (one starting with NUL reads as binary in WAMP's JSON, or
	// invalid UTF-8) would be refused there at each use, far from its
	// cause (a disclosing callee's call 400 "cannot be converted", no
	// on_join event). A WAMP login cannot name one (proto refuses a
	// HELLO's text option starting with NUL); a token naming one is
	// refused here, whichever of its roles it is.
	if !wampText(p.AuthID) {
		return nil, g.unauthorized("the bearer token's subject (sub claim, the authid) starts with NUL or is not UTF-8: the router cannot give it to JSON peers", "the sub claim is not a WAMP string (starts with NUL or is not UTF-8)")
	}
	if !wampText(role) || slices.ContainsFunc(p.Roles, func(r string) bool { return !wampText(r) }) {
		return nil, g.unauthorized("a role of the bearer token (authrole or roles claim) starts with NUL or is not UTF-8: the router cannot give it to JSON peers", "a role (authrole or roles claim) is not a WAMP string (starts with NUL or is not UTF-8)")
	}
	return &who{id: identity{realm: realm, authid: p.AuthID, authrole: role, method: "jwt"}, p: p, roles: p.Roles, scopes: p.Scopes}, nil
}

// apiKey looks the key up in kt by its SHA-256, so that the lookup's
// timing says nothing about the keys.
func (g *Server) apiKey(kt *keyTable, key, realm string, allowed []string) (*who, *problem) {
	h := sha256.Sum256([]byte(key))
	k := kt.apiKeys[h]
	if k == nil || (len(allowed) > 0 && !contains(allowed, k.name)) {
		return nil, g.unauthorized("the API key is not valid", "")
	}
	if k.realm != realm {
		return nil, newProblem(http.StatusForbidden, proto.URINotAuthorized, "the API key is not valid for realm "+strconv.Quote(realm))
	}
	return &who{id: k.identity(), key: k}, nil
}

// signed checks a request signed as Crossbar's HTTP bridge signs them:
// query parameters key, timestamp (UTC ISO 8601, e.g.
// 2011-10-14T16:59:51.123Z), seq and nonce (integers) and signature, the
// base64url HMAC-SHA256 under the key's secret of key, timestamp, seq,
// nonce and the body concatenated. Beyond Crossbar, a signature is
// accepted once within the timestamp window, so a captured request cannot
// be replayed. (The replay key is the MAC, not the nonce: seq and nonce
// are concatenated without a separator, so moving digits between them, or
// adding leading zeros, yields another nonce under the same signature.)
//
// The key and its secret come from kt, one table for the whole check.
func (g *Server) signed(kt *keyTable, q map[string][]string, body []byte, realm string, allowed []string) (*who, *problem) {
	get := func(k string) string {
		if v := q[k]; len(v) == 1 {
			return v[0]
		}
		return ""
	}
	key, ts, seq, nonce, sig := get("key"), get("timestamp"), get("seq"), get("nonce"), get("signature")
	if key == "" || ts == "" || seq == "" || nonce == "" || sig == "" {
		return nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "a signed request needs exactly one each of key, timestamp, seq, nonce and signature")
	}
	if _, err := strconv.ParseUint(seq, 10, 63); err != nil {
		return nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "seq must be an integer")
	}
	if _, err := strconv.ParseUint(nonce, 10, 63); err != nil {
		return nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "nonce must be an integer")
	}
	t, err := time.Parse("2006-01-02T15:04:05.999999999Z", ts)
	if err != nil {
		return nil, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "timestamp must be UTC ISO 8601, e.g. 2011-10-14T16:59:51.123Z")
	}
	k := kt.signingKeys[key]
	if k == nil || (len(allowed) > 0 && !contains(allowed, k.name)) {
		return nil, g.unauthorized("unknown signing key", "")
	}
	mac := hmac.New(sha256.New, k.secret)
	mac.Write([]byte(key))
	mac.Write([]byte(ts))
	mac.Write([]byte(seq))
	mac.Write([]byte(nonce))
	mac.Write(body)
	want := mac.Sum(nil)
	got, err := base64.URLEncoding.DecodeString(sig)
	if err != nil {
		got, err = base64.RawURLEncoding.DecodeString(sig)
	}
	if err != nil || !hmac.Equal(got, want) {
		return nil, g.unauthorized("the request signature is not valid", "")
	}
	skew := g.opts.SignatureMaxSkew
	if d := time.Since(t); d > skew || d < -skew {
		return nil, g.unauthorized("the signed request's timestamp is outside the accepted window", "")
	}
	switch g.nonces.add(k.name, key+"\x00"+string(want), t.Add(skew)) {
	case nonceReplay:
		return nil, g.unauthorized("the signed request was already used (a replay)", "")
	case nonceKeyFull:
		g.refused(refusedSignedKey)
		return nil, tooBusy(http.StatusTooManyRequests, "too many signed requests of key "+strconv.Quote(key)+" within the timestamp window (signature_max_skew)")
	case nonceFull:
		g.refused(refusedSigned)
		return nil, tooBusy(http.StatusServiceUnavailable, "the gateway remembers as many signed requests as it may; try again later")
	}
	if k.realm != realm {
		return nil, newProblem(http.StatusForbidden, proto.URINotAuthorized, "the signing key is not valid for realm "+strconv.Quote(realm))
	}
	return &who{id: k.identity(), key: k}, nil
}

// nonceCache remembers signed requests' nonces until their timestamps
// leave the window. It holds at most max entries, and at most max/16 of
// one signing key (nonceShare); a key at its share, or the cache full of
// live ones, has its new signed requests refused (a key holder flooding).
// Before, the share was the whole cache: one key's holder signing
// requests as fast as it could filled it, and every other key's signed
// requests were refused as replays (401, counted as failed
// authentications of their addresses) until the window passed.
//
// Expired entries are dropped by the second they expire in (byExp), each
// request looking at most at sweepChunk of them: every signed request
// takes mu, on net/http or on an event loop's lane (the bridge's calls).
// Before, they were found by walking the whole cache, at each doubling
// and at a bound once a second: 100-125 ms at its 2^20 entries (127 ms
// for the walk at 2^19; the shared 2-core VM, without -race), a loop's
// other connections stalled meanwhile, and one key holder at its share
// had the others' requests walk the cache once a second. byExp costs a
// string header an entry; exp held as Unix ns (8 bytes, not a 24-byte
// time.Time) pays for it.
type nonceCache struct {
	mu     sync.Mutex
	seen   map[string]nonceEntry // guarded by mu
	perKey map[string]int        // entries by signing key; guarded by mu
	// byExp holds the keys of seen by the second (Unix) their entries
	// expire in; next is the first second not swept yet. Guarded by mu.
	byExp map[int64][]string
	next  int64
	max   int              // guarded by mu (tests lower it)
	now   func() time.Time // the clock (time.Now; tests move it); guarded by mu
	// sweepVisits counts the entries and seconds the sweeps have looked
	// at (tests). Guarded by mu.
	sweepVisits int
}

// nonceEntry is a remembered signed request: until when (Unix ns), and
// of which key (the configuration's name, shared).
type nonceEntry struct {
	exp int64
	key string
}

// nonceResult is nonceCache.add's answer.
type nonceResult uint8

const (
	nonceOK      nonceResult = iota
	nonceReplay              // seen within its window
	nonceKeyFull             // the key holds its share of the cache
	nonceFull                // the cache is full of live entries
)

// nonceShare is the part of the cache one signing key may hold: 65,536
// signed requests in the timestamp window at the default (110 to 220 a
// second sustained with signature_max_skew 5m: an entry lives until its
// timestamp plus the skew, and a timestamp may lead the clock by the
// skew).
func nonceShare(n int) int { return max(n/16, 1) }

func newNonceCache(max int) *nonceCache {
	return &nonceCache{seen: map[string]nonceEntry{}, perKey: map[string]int{}, byExp: map[int64][]string{}, max: max, now: time.Now}
}

// add records a nonce k of signing key owner valid until exp.
func (c *nonceCache) add(owner, k string, exp time.Time) nonceResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	ns := now.UnixNano()
	c.expire(now.Unix(), ns)
	e, ok := c.seen[k]
	if ok && ns < e.exp {
		return nonceReplay
	}
	switch {
	case c.perKey[owner] >= nonceShare(c.max):
		return nonceKeyFull
	case len(c.seen) >= c.max:
		return nonceFull
	}
	if ok { // expired within a second not swept yet
		c.forget(e.key)
	}
	c.seen[k] = nonceEntry{exp: exp.UnixNano(), key: owner}
	c.perKey[owner]++
	sec := max(exp.Unix(), c.next) // an expiry in a second swept already (one just past): the next
	c.byExp[sec] = append(c.byExp[sec], k)
	return nonceOK
}

// expire drops the entries that expired in the seconds before nowSec,
// looking at most at sweepChunk entries and seconds; the rest waits for
// the next request (after a quiet spell the backlog goes a chunk a
// request, each request adding one entry). An entry named in a second's
// list but still live (added again since, with a later expiry) is kept:
// its later second names it too. Called with mu held.
func (c *nonceCache) expire(nowSec, ns int64) {
	if c.next == 0 || nowSec < c.next {
		// The first request, or the clock stepped back: from now on (a
		// second already swept holds nothing any more).
		c.next = nowSec
	}
	budget := sweepChunk
	for c.next < nowSec && budget > 0 {
		keys, ok := c.byExp[c.next]
		if !ok {
			budget--
			c.sweepVisits++
			if len(c.byExp) == 0 {
				c.next = nowSec
			} else if nowSec-c.next > int64(len(c.byExp)) {
				// Many empty seconds (a quiet spell, or a clock step):
				// go to the earliest listed, at the cost of a walk of
				// the seconds listed (fewer than the empty ones).
				first := nowSec
				for sec := range c.byExp {
					first = min(first, sec)
				}
				budget -= len(c.byExp)
				c.sweepVisits += len(c.byExp)
				c.next = first
			} else {
				c.next++
			}
			continue
		}
		n := min(len(keys), budget)
		for _, k := range keys[:n] {
			if e, ok := c.seen[k]; ok && e.exp <= ns {
				delete(c.seen, k)
				c.forget(e.key)
			}
		}
		budget -= n
		c.sweepVisits += n
		if n < len(keys) {
			clear(keys[:n])
			c.byExp[c.next] = keys[n:]
			return
		}
		delete(c.byExp, c.next)
		c.next++
	}
}

// forget counts one entry of key out. Called with mu held.
func (c *nonceCache) forget(key string) {
	if n := c.perKey[key] - 1; n > 0 {
		c.perKey[key] = n
	} else {
		delete(c.perKey, key)
	}
}

// failLimiter counts failed authentications per client address (IPv6 by
// /64): past Limits.AuthFailures in a minute (a sliding one,
// failWindowLen), the address's requests get
// 429 without their credentials being checked (a token-guessing flood
// costs no signature checks). Each request with a credential reserves its
// place before the check (begin) and releases it after (end): at most
// AuthFailures, minus the address's failures so far, are checked at a
// time, as the WAMP and OAuth2 limiters do; the others wait for a place
// in arrival order (at most failWait; an address's lockout refuses them
// unchecked). Before, the failures were only counted as the checks ended,
// so one address's concurrent requests were all checked: as many guesses
// as it could have requests in flight. It holds at most maxTracked
// addresses; while it is full of live records, a new address is not
// counted (as before). Safe for concurrent use.
type failLimiter struct {
	mu     sync.Mutex
	byAddr map[string]failWindow // guarded by mu; by value: a request of an address without a record allocates none
	limit  int                   // static
	now    func() time.Time      // guarded by mu (read under it): the clock (time.Now; tests move it)
	origin time.Time             // guarded by mu: the limiter's times are since it, monotonic (ns)
	max    int                   // the records held at most (maxTracked); static (tests lower it before use)
	// sweepAt is the table's size at which a new address sweeps it,
	// sweptAt the last sweep (clock); sweepVisits counts the records the
	// sweeps have looked at (tests). Guarded by mu.
	sweepAt     int
	sweptAt     int64
	sweepVisits int
}

// failWindow is an address's record. Guarded by failLimiter.mu.
type failWindow struct {
	fails    slide.Window       // failures, over a sliding minute
	checking int                // credentials being checked now (reserved by begin or granted to a waiter)
	waiting  []chan failVerdict // requests waiting for a place, oldest first; each channel has room for its one verdict
}

// failWindowLen is the window failLimiter counts failures over. It
// slides (package slide): the failures of the minute before the current
// one count weighted by the part of it the last minute still covers.
// Before, the minute was fixed, starting at an address's first failure
// after the last one ended: limit−1 failures at its end and limit−1 at
// the next one's start, twice the limit within two seconds, were all
// checked.
const failWindowLen = time.Minute

const (
	maxTracked = 65536
	// failWaiters bounds the requests of one address waiting for a place
	// (more are answered 429 at once), failWait how long each waits.
	failWaiters = 1024
	failWait    = 5 * time.Second
	// sweepChunk bounds the records one sweep looks at; the table is
	// swept from sweepMin records on.
	sweepChunk = 1024
	sweepMin   = 4096
)

func newFailLimiter(limit int) *failLimiter {
	return &failLimiter{byAddr: map[string]failWindow{}, limit: limit, now: time.Now, origin: time.Now(), max: maxTracked, sweepAt: sweepMin}
}

// clock returns the time now, in the limiter's nanoseconds: since origin,
// by the monotonic clock, so that a step of the wall clock neither
// forgets failures nor counts them twice. Called with mu held.
func (l *failLimiter) clock() int64 {
	return int64(l.now().Sub(l.origin))
}

// failVerdict is what failLimiter.begin (or a wait) answers.
type failVerdict uint8

const (
	failReserved   failVerdict = iota // a place is reserved: check, then end(addr, true, failed)
	failUnreserved                    // check without a place (untracked address, or a request that may not wait), then end(addr, false, failed)
	failLocked                        // locked out: 429 unchecked
	failBusy                          // no place free, none waited for: 429 unchecked
)

// failures returns w's failures that count at now (failLimiter.clock).
func (w *failWindow) failures(now int64) int {
	return w.fails.Count(now, failWindowLen)
}

// begin asks for a place to check one credential of addr. When none is
// free and wait is true, it returns failBusy with a channel on which the
// verdict comes (failReserved or failLocked); the caller must receive it,
// or give up its turn with cancel. A request that may not wait (one served
// on an event loop, which must not block: one check at a time per loop)
// is checked unreserved instead, its failure still counted.
func (l *failLimiter) begin(addr string, wait bool) (failVerdict, chan failVerdict) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock()
	w, ok := l.byAddr[addr]
	if !ok {
		full := len(l.byAddr) >= l.max
		if len(l.byAddr) >= l.sweepAt || full && now-l.sweptAt >= int64(time.Second) {
			l.sweep(now)
			full = len(l.byAddr) >= l.max
		}
		if full {
			return failUnreserved, nil // full of live records: count no more addresses
		}
	}
	n := w.failures(now)
	switch {
	case n >= l.limit:
		return failLocked, nil
	case n+w.checking < l.limit && len(w.waiting) == 0:
		w.checking++
		l.byAddr[addr] = w
		return failReserved, nil
	case !wait:
		if !ok {
			l.byAddr[addr] = w // counts its failure
		}
		return failUnreserved, nil
	case len(w.waiting) >= failWaiters:
		return failBusy, nil
	}
	ch := make(chan failVerdict, 1)
	w.waiting = append(w.waiting, ch)
	l.byAddr[addr] = w
	return failBusy, ch
}

// cancel gives up the turn of ch, a wait begin started: it returns
// failBusy if ch was still waiting, else the verdict ch was given
// (failReserved: the place is the caller's, to end).
func (l *failLimiter) cancel(addr string, ch chan failVerdict) failVerdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.byAddr[addr]; ok {
		if i := slices.Index(w.waiting, ch); i >= 0 {
			w.waiting = slices.Delete(w.waiting, i, i+1)
			if w.idle(l.clock()) {
				delete(l.byAddr, addr)
			} else {
				l.byAddr[addr] = w
			}
			return failBusy
		}
	}
	return <-ch // given already: buffered
}

// end ends a check begin allowed, releasing its place if reserved and
// counting a failure if failed; the places free go to the waiting
// requests in arrival order, or, the address locked out, they are all
// refused. A record left with nothing to count (a success, no failures in
// the window) is dropped, so that addresses whose credentials are good
// cost no record.
func (l *failLimiter) end(addr string, reserved, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.byAddr[addr]
	if !ok && (!failed || len(l.byAddr) >= l.max) {
		// A failure makes its record, as begin would: a check without a
		// place (a lane's) can end after the checks that held the places,
		// which dropped the record as holding nothing, and its failure
		// was lost.
		return
	}
	if reserved && w.checking > 0 {
		w.checking--
	}
	now := l.clock()
	if failed {
		w.fails.Add(now, failWindowLen)
	}
	for len(w.waiting) > 0 {
		n := w.failures(now)
		if n >= l.limit {
			for _, ch := range w.waiting {
				ch <- failLocked
			}
			clear(w.waiting)
			w.waiting = nil
			break
		}
		if n+w.checking >= l.limit {
			break
		}
		w.checking++
		w.waiting[0] <- failReserved
		w.waiting[0] = nil
		w.waiting = w.waiting[1:]
	}
	if len(w.waiting) == 0 {
		w.waiting = nil
	}
	if w.idle(now) {
		delete(l.byAddr, addr)
	} else {
		l.byAddr[addr] = w
	}
}

// lockedFor returns how long addr stays locked out if it fails no more
// (slide.Window.Wait: until its failures over the last minute fall below
// the limit), at least a second: a locked-out request's Retry-After.
// Before, it was 1 s whatever the wait, up to a minute and more; a
// client honouring it retried up to 60 times for nothing. Safe for
// concurrent use.
func (l *failLimiter) lockedFor(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.byAddr[addr]
	return max(w.fails.Wait(l.clock(), failWindowLen, l.limit), time.Second)
}

// sweep drops idle records, looking at most at sweepChunk of them: it
// runs under mu, in the begin of a request with a credential from an
// address without a record, on net/http or on an event loop's lane (the
// bridge's calls), and every other request with a credential waits for
// mu. Before, a new address at a full table walked it whole, with no cap:
// full of live records (one failure from each /64 of a /48 keeps it so),
// each new address's request held mu 1.6-1.8 ms (measured on the shared
// 2-core VM), its loop's other connections waiting that long. Go starts
// each walk of a map at a random place, so successive chunks reach every
// record. It runs when the table has grown by half a chunk since the last
// sweep (from sweepMin records on); when it is full, at most once a second
// (records that have aged make room again); and again at the next new
// address while at least half of what the last chunk looked at was idle
// (after a flood has aged, the table makes room at once and shrinks a
// chunk per new address). Called with mu held.
func (l *failLimiter) sweep(now int64) {
	looked, dropped := 0, 0
	for a, x := range l.byAddr {
		if looked == sweepChunk {
			break
		}
		looked++
		if x.idle(now) {
			delete(l.byAddr, a)
			dropped++
		}
	}
	l.sweepVisits += looked
	if dropped > 0 && 2*dropped >= looked {
		l.sweepAt = 0 // mostly idle: another chunk at the next new address
	} else {
		l.sweepAt = max(len(l.byAddr)+sweepChunk/2, sweepMin)
	}
	l.sweptAt = now
}

// idle reports whether w holds nothing that matters at now.
func (w *failWindow) idle(now int64) bool {
	return w.checking == 0 && len(w.waiting) == 0 && w.failures(now) == 0
}

// clientAddr is clientIP as a map key that costs no allocation (the
// event loop's lane counts every anonymous call by it): the address of
// remote (an http.Request's RemoteAddr), an IPv4-mapped IPv6 address as
// its IPv4 address, an IPv6 address reduced to its /64. A remote address
// that does not parse (not IP) is the zero Addr: such clients share one
// count.
func clientAddr(remote string) netip.Addr {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remote); err != nil {
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64) // drops the zone too
		return p.Addr()
	}
	return a
}

// clientIP returns the request's remote address, IPv6 reduced to its /64.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// wampText reports whether s is a string the router can write to every
// peer: UTF-8, and not starting with NUL (which WAMP's JSON reads as a
// binary string; proto's writer refuses it, ErrNotJSONable).
func wampText(s string) bool {
	return utf8.ValidString(s) && (s == "" || s[0] != 0)
}
