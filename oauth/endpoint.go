package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgewamp/edgewamp/internal/errdesc"
)

// oauthError is an error response of RFC 6749 §5.2 (and RFC 8628 §3.5).
type oauthError struct {
	status int
	code   string // error
	desc   string // error_description: for people; never a secret
	basic  bool   // add WWW-Authenticate (every 401 has it too: clientErr)
	retry  time.Duration
	// unknown: a code or token the store does not hold (a guess, or one
	// gone): handleToken counts it as a failed attempt of its address.
	unknown bool
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

// errUnknownGrant is invalid_grant for a code or token the store does
// not hold: counted as a failed attempt (oauthError.unknown).
func errUnknownGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: desc, unknown: true}
}

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: desc}
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: desc}
}

func errServer(desc string) *oauthError {
	return &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: desc}
}

// writeJSON sends a JSON body that must not be cached (tokens, RFC 6749
// §5.1).
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *oauthError) {
	// Every 401 names a scheme (RFC 9110 §15.5.2: "MUST send a
	// WWW-Authenticate header field"): a program that authenticated in
	// the form, or not at all, is told the scheme it may use (RFC 6749
	// §2.3.1 requires servers to support Basic). A browser's request that
	// did not use the Authorization header gets no 401 (clientErr).
	if e.basic || e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth", charset="UTF-8"`)
	}
	if e.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.retry.Round(time.Second)/time.Second)))
	}
	body := map[string]string{"error": e.code}
	if e.desc != "" {
		body["error_description"] = errdesc.Text(e.desc)
	}
	writeJSON(w, e.status, body)
}

// maxForm bounds a request body of the form endpoints.
const maxForm = 16 << 10

// readForm parses an application/x-www-form-urlencoded POST body
// (parameters in the query are ignored) and rejects repeated parameters
// (RFC 6749 §3.1: "Request and response parameters MUST NOT be included
// more than once").
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errInvalidRequest("the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return nil, errInvalidRequest("cannot read the form body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, errInvalidRequest("parameter " + k + " is repeated")
		}
	}
	return r.PostForm, nil
}

// clientErr is a failed client authentication (invalid_client) of r.
// RFC 6749 §5.2: "If the client attempted to authenticate via the
// "Authorization" request header field, the authorization server MUST
// respond with an HTTP 401 (Unauthorized) status code and include the
// "WWW-Authenticate" response header field"; otherwise it "MAY return an
// HTTP 401". A 401 must carry a challenge (RFC 9110 §15.5.2), and a Basic
// challenge answering a browser's script can make the browser ask its
// user for a name and password (Fetch: a 401 to a request not tainted as
// CORS, a page of the issuer's own origin), which are not the user's to
// give. So a request with Origin (a browser's) and no Authorization header
// gets 400 invalid_client, RFC 6749's default error status, without a
// challenge; every other one 401 with the Basic challenge.
func clientErr(r *http.Request, desc string) *oauthError {
	if r.Header.Get("Authorization") == "" && r.Header.Get("Origin") != "" {
		return &oauthError{status: http.StatusBadRequest, code: "invalid_client", desc: desc}
	}
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: desc, basic: true}
}

// refused is the answer to a source that may not try now: locked out, or
// with as many attempts in progress as it has failures left.
func refused(code string, retry time.Duration) *oauthError {
	return &oauthError{status: http.StatusTooManyRequests, code: code, desc: "too many failed authentications from this address; try again later", retry: max(retry, time.Second)}
}

// placeWait is how long a public client's request waits for a place
// held by its address's requests in progress (limiter.beginWait): the
// Retry-After its 429 said before it waited.
const placeWait = time.Second

// attempt is a request's place among its source's attempts
// (limiter.begin), held from authClient by a public client's request.
type attempt struct {
	src  source
	held bool
}

// done gives a held place back, counting nothing (a request served, or
// refused for another reason than a guess): the source's record goes if
// it then holds nothing (limiter.cancel), so that public clients' served
// requests leave no record behind for the sweeps.
func (s *Server) done(at *attempt) {
	if at.held {
		at.held = false
		s.limit.cancel(at.src, s.clock())
	}
}

// authClient authenticates the client of a token, device, revocation or
// introspection request: HTTP Basic (client_secret_basic, with the
// form-urlencoded ID and secret of RFC 6749 §2.3.1), form parameters
// (client_secret_post), or a public client's client_id alone. Failures are
// limited per source address (AuthLimits).
//
// A public client's request (nothing secret to check) takes a place among
// its source's attempts all the same, held until the handler ends it
// (Server.done) or counts what it sent as a guess (guessFailed): the code
// or token it sends may be a guess, found out only after a store read or a
// signature check. Before, such requests took none, and guesses sent at
// once from one address all passed the lockout check, each read (up to
// the address's requests in flight) before the first was counted.
func (s *Server) authClient(r *http.Request, form url.Values) (*clientConf, attempt, *oauthError) {
	src := s.limit.source(r)
	now := s.clock()
	if blocked, until := s.limit.blocked(src, now); blocked {
		return nil, attempt{}, refused("invalid_client", until.Sub(now))
	}
	id, secret, basic := r.BasicAuth()
	if !basic && basicScheme(r.Header.Get("Authorization")) {
		// net/http reads a Basic header that does not decode (not
		// base64, no colon) as none: the form's credentials were taken
		// instead, two methods in one request (RFC 6749 §2.3: "MUST NOT").
		return nil, attempt{}, errBasicMalformed
	}
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, attempt{}, errBasicMalformed
		}
		if form.Get("client_secret") != "" || (form.Has("client_id") && form.Get("client_id") != id) {
			return nil, attempt{}, errInvalidRequest("use one client authentication method")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, attempt{}, clientErr(r, "client authentication is required")
	}
	c := s.cfg.Load().clients[id]
	if c != nil && c.Public && secret == "" {
		// Nothing secret to check; a place held all the same (above),
		// waited for while the address's others are held by requests in
		// progress (limiter.beginWait), so that a NAT's honest requests
		// at once are served rather than refused.
		if ok, retry := s.limit.beginWait(r.Context(), src, s.clock, placeWait); !ok {
			// Not locked out (above): its places are taken, by failures
			// or by requests in progress.
			oe := refused("invalid_client", retry)
			oe.desc = "too many requests in progress, or failed authentications, from this address; try again later"
			return nil, attempt{}, oe
		}
		return c, attempt{src: src, held: true}, nil
	}
	if c != nil && !c.Public && secret != "" && s.secrets.hit(secretKey(c, secret), now) {
		return c, attempt{}, nil // this secret verified recently (a wrong one is never cached)
	}
	// Everything else checks (or refuses) a credential: it takes a place
	// among the source's attempts first, waited for while they are held
	// by requests in progress (a public client's browsers on the same
	// NAT), not taken by failures.
	if ok, retry := s.limit.beginWait(r.Context(), src, s.clock, placeWait); !ok {
		return nil, attempt{}, refused("invalid_client", retry)
	}
	fail := func(desc string) (*clientConf, attempt, *oauthError) {
		s.authFailed(r, src, "client", id, desc)
		return nil, attempt{}, clientErr(r, "client authentication failed")
	}
	switch {
	case c == nil:
		return fail("unknown client")
	case c.Public:
		return fail("a public client has no secret")
	case secret == "":
		return fail("no client secret")
	}
	if !s.acquireHash(r.Context()) {
		s.limit.end(src, s.clock(), false)
		return nil, attempt{}, errServer("the server is busy; try again")
	}
	ok := c.secret.verify(secret)
	s.releaseHash()
	if !ok {
		return fail("wrong client secret")
	}
	s.limit.end(src, s.clock(), false)
	s.secrets.add(secretKey(c, secret), now)
	return c, attempt{}, nil
}

// errBasicMalformed refuses a request whose Authorization header is a
// Basic one that does not decode: a failed client authentication through
// the header, 401 with the challenge (RFC 6749 §5.2), checked before
// anything else and not counted (no secret was tried).
var errBasicMalformed = &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "malformed HTTP Basic credentials", basic: true}

// basicScheme reports whether an Authorization header value names the
// Basic scheme (case-insensitive, RFC 9110 §11.1).
func basicScheme(h string) bool {
	scheme, _, _ := strings.Cut(strings.TrimLeft(h, " "), " ")
	return strings.EqualFold(scheme, "Basic")
}

// authFailed ends a failed attempt of src: counts it, logs it (never the
// secret) and sleeps the limiter's delay. what is "client", "user" or
// "user_code".
//
// id (a client_id from the form or HTTP Basic, of up to the form's 16 KiB;
// a username) is the caller's to choose and is not known to be anyone's:
// the line keeps its first 64 bytes, as route's authentication lines keep
// an authid's.
func (s *Server) authFailed(r *http.Request, src source, what, id, reason string) {
	delay, blocked := s.limit.end(src, s.clock(), true)
	s.failed(r, src, what, id, reason, delay, blocked)
}

// guessFailed counts a request that named a code or token the store does
// not hold as a failed attempt of its source, as authFailed does a wrong
// secret, so that guesses from one address lock it out before they cost a
// store read each: a public client's request ends the place it holds
// (at), a confidential client's (which holds none: its secret checked,
// it is not held back) is counted without one.
//
// A request holding its place (at, a public client's) ends it, counted.
func (s *Server) guessFailed(r *http.Request, at *attempt, what, id, reason string) {
	if at.held {
		at.held = false
		s.authFailed(r, at.src, what, id, reason)
		return
	}
	src := s.limit.source(r)
	delay, blocked := s.limit.fail(src, s.clock())
	s.failed(r, src, what, id, reason, delay, blocked)
}

// failed logs a counted failure and sleeps its delay (authFailed).
func (s *Server) failed(r *http.Request, src source, what, id, reason string, delay time.Duration, blocked bool) {
	if len(id) > 64 {
		i := 64 // at a UTF-8 character's start, as route's logCut
		for i > 0 && !utf8.RuneStart(id[i]) {
			i--
		}
		id = id[:i]
	}
	s.log.Info("oauth: authentication failed", "what", what, "id", id, "reason", reason, "remote", src.remote, "delay", delay)
	if blocked {
		s.log.Warn("oauth: refusing authentications from an address for a while", "remote", src.key, "for", s.limit.lim.Lockout)
	}
	if delay > 0 {
		s.sleep(r.Context(), delay)
	}
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// checkUser authenticates a resource owner with the UserStore, bounded by
// the hashing semaphore and limited per source address.
func (s *Server) checkUser(r *http.Request, realm, username, password string) ([]string, *oauthError) {
	if username == "" || password == "" {
		return nil, errInvalidRequest("username and password are required")
	}
	src := s.limit.source(r)
	// A place held by the address's requests in progress (its public
	// clients' since 76168da: an office's other browsers refreshing) is
	// waited for, as authClient does, where a sign-in was refused 429
	// "too many failed" at once with nothing failed; failures refuse at
	// once, and no more than the threshold are checked at a time.
	if ok, retry := s.limit.beginWait(r.Context(), src, s.clock, placeWait); !ok {
		return nil, refused("invalid_grant", retry)
	}
	if !s.acquireHash(r.Context()) {
		s.limit.end(src, s.clock(), false)
		return nil, errServer("the server is busy; try again")
	}
	roles, ok := s.users.Authenticate(realm, username, password)
	s.releaseHash()
	if !ok || len(roles) == 0 {
		s.authFailed(r, src, "user", username, "wrong username or password")
		return nil, errInvalidGrant("wrong username or password")
	}
	s.limit.end(src, s.clock(), false)
	return roles, nil
}

// grantScope decides the scope of a token: the requested scopes if the
// client may have them all, every scope it may have when none is
// requested (absent or empty: RFC 6749 §3.1, "Parameters sent without a
// value MUST be treated as if they were omitted"). A scope of spaces only
// is refused: §3.3's grammar needs one scope-token at least; it issued a
// token of no scope before.
func grantScope(c *clientConf, requested string) (string, *oauthError) {
	if requested == "" {
		return strings.Join(c.Scopes, " "), nil
	}
	var out []string
	seen := map[string]bool{}
	for _, sc := range strings.Split(requested, " ") {
		if sc == "" {
			continue
		}
		if !c.scopes[sc] {
			return "", &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "scope " + strconv.Quote(sc) + " is not allowed for this client"}
		}
		if !seen[sc] {
			seen[sc] = true
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return "", errBlankScope
	}
	return strings.Join(out, " "), nil
}

var errBlankScope = &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "the scope names no scope (RFC 6749 §3.3); leave it out for every scope the client may have"}

// subsetScope checks that requested (on refresh) is within granted
// (RFC 6749 §6: "MUST NOT include any scope not originally granted").
// requested is read as grantScope reads it: tokens separated by spaces,
// each taken once. Before, strings.Fields split it at tabs and other
// Unicode spaces too, which the grants refuse, and kept repeats ("write
// read read" was issued as such).
func subsetScope(granted, requested string) (string, *oauthError) {
	if requested == "" {
		return granted, nil
	}
	have := map[string]bool{}
	for _, sc := range strings.Fields(granted) {
		have[sc] = true
	}
	var out []string
	for _, sc := range strings.Split(requested, " ") {
		if sc == "" || slices.Contains(out, sc) {
			continue
		}
		if !have[sc] {
			return "", &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "scope " + strconv.Quote(sc) + " was not granted"}
		}
		out = append(out, sc)
	}
	if len(out) == 0 {
		return "", errBlankScope // as grantScope; it narrowed the token to no scope before
	}
	return strings.Join(out, " "), nil
}

var errStoreConflict = errors.New("oauth: store keeps changing")
