package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// oauthError is an error response of RFC 6749 §5.2 (and RFC 8628 §3.5).
type oauthError struct {
	status int
	code   string // error
	desc   string // error_description: for people; never a secret
	basic  bool   // the client used HTTP Basic: add WWW-Authenticate
	retry  time.Duration
}

func (e *oauthError) Error() string { return e.code + ": " + e.desc }

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
	if e.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth", charset="UTF-8"`)
	}
	if e.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.retry.Round(time.Second)/time.Second)))
	}
	body := map[string]string{"error": e.code}
	if e.desc != "" {
		body["error_description"] = e.desc
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

// authClient authenticates the client of a token, device, revocation or
// introspection request: HTTP Basic (client_secret_basic, with the
// form-urlencoded ID and secret of RFC 6749 §2.3.1), form parameters
// (client_secret_post), or a public client's client_id alone. Failures are
// rate-limited per source address.
func (s *Server) authClient(r *http.Request, form url.Values) (*clientConf, *oauthError) {
	key := addrKey(r)
	now := s.now()
	if blocked, until := s.limit.blocked(key, now); blocked {
		return nil, &oauthError{status: http.StatusTooManyRequests, code: "invalid_client", desc: "too many failed authentications from this address; try again later", retry: until.Sub(now)}
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, errInvalidRequest("malformed HTTP Basic credentials")
		}
		if form.Get("client_secret") != "" || (form.Has("client_id") && form.Get("client_id") != id) {
			return nil, errInvalidRequest("use one client authentication method")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "client authentication is required", basic: true}
	}
	fail := func(desc string) (*clientConf, *oauthError) {
		s.authFailed(r, "client", id, desc)
		return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "client authentication failed", basic: basic}
	}
	c := s.cfg.Load().clients[id]
	switch {
	case c == nil:
		return fail("unknown client")
	case c.Public && secret != "":
		return fail("a public client has no secret")
	case c.Public:
		return c, nil
	case secret == "":
		return fail("no client secret")
	}
	k := secretKey(c, secret)
	if s.secrets.hit(k, now) {
		return c, nil
	}
	if !s.acquireHash(r.Context()) {
		return nil, errServer("the server is busy; try again")
	}
	ok := c.secret.verify(secret)
	s.releaseHash()
	if !ok {
		return fail("wrong client secret")
	}
	s.secrets.add(k, now)
	return c, nil
}

// authFailed counts a failed authentication of the request's address,
// logs it (never the secret) and sleeps the limiter's delay. what is
// "client", "user" or "user_code".
func (s *Server) authFailed(r *http.Request, what, id, reason string) {
	key := addrKey(r)
	delay, blocked := s.limit.fail(key, s.now())
	s.log.Info("oauth: authentication failed", "what", what, "id", id, "reason", reason, "remote", r.RemoteAddr, "delay", delay)
	if blocked {
		s.log.Warn("oauth: refusing authentications from an address for a while", "remote", key, "for", blockFor)
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
// the hashing semaphore and rate-limited per address.
func (s *Server) checkUser(r *http.Request, realm, username, password string) ([]string, *oauthError) {
	now := s.now()
	if blocked, until := s.limit.blocked(addrKey(r), now); blocked {
		return nil, &oauthError{status: http.StatusTooManyRequests, code: "invalid_grant", desc: "too many failed authentications from this address; try again later", retry: until.Sub(now)}
	}
	if username == "" || password == "" {
		return nil, errInvalidRequest("username and password are required")
	}
	if !s.acquireHash(r.Context()) {
		return nil, errServer("the server is busy; try again")
	}
	roles, ok := s.users.Authenticate(realm, username, password)
	s.releaseHash()
	if !ok || len(roles) == 0 {
		s.authFailed(r, "user", username, "wrong username or password")
		return nil, errInvalidGrant("wrong username or password")
	}
	return roles, nil
}

// grantScope decides the scope of a token: the requested scopes if the
// client may have them all, every scope it may have when none is
// requested.
func grantScope(c *clientConf, requested string) (string, *oauthError) {
	if requested == "" {
		out := make([]string, 0, len(c.Scopes))
		for _, sc := range c.Scopes {
			out = append(out, sc)
		}
		return strings.Join(out, " "), nil
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
	return strings.Join(out, " "), nil
}

// subsetScope checks that requested (on refresh) is within granted
// (RFC 6749 §6: "MUST NOT include any scope not originally granted").
func subsetScope(granted, requested string) (string, *oauthError) {
	if requested == "" {
		return granted, nil
	}
	have := map[string]bool{}
	for _, sc := range strings.Fields(granted) {
		have[sc] = true
	}
	for _, sc := range strings.Fields(requested) {
		if !have[sc] {
			return "", &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "scope " + strconv.Quote(sc) + " was not granted"}
		}
	}
	return strings.Join(strings.Fields(requested), " "), nil
}

var errStoreConflict = errors.New("oauth: store keeps changing")
