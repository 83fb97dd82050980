package oauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"net/url"
)

// The login and approval page: one small HTML page (static/page.html) and
// its style sheet, no JavaScript at all. Every response carries a strict
// Content-Security-Policy (nothing but the same-origin style sheet loads;
// forms post only to this server, or to the client's redirect origin for
// the authorization redirect), refuses framing, cuts the link to a
// cross-origin opener (Cross-Origin-Opener-Policy), and is not cached
// (setPageHeaders).
//
// CSRF: a POST must carry a token equal to HMAC(csrf key, cookie) where
// the cookie is a random value set on the GET (SameSite=Strict, HttpOnly,
// Secure and __Host- prefixed under https); the key is shared through the
// store, so a form served by one node posts to any node of a mesh.
// Cross-origin POSTs are also refused outright (net/http's
// CrossOriginProtection, by Sec-Fetch-Site and Origin).

//go:embed static/page.html static/style.css
var staticFS embed.FS

var (
	pageTmpl = template.Must(template.ParseFS(staticFS, "static/page.html"))
	styleCSS = mustRead("static/style.css")
)

func mustRead(name string) []byte {
	b, err := staticFS.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

type pageData struct {
	Title        string
	Kind         string // code, approve, message
	Error        string
	Message      string
	Action       string
	Client       string
	Realm        string
	Scopes       []string
	UserCode     string
	RedirectHost string
	Username     string
	Hidden       []hiddenField
	CSRF         string
	CSS          string

	formOrigin string // an extra form-action origin for the CSP
}

type hiddenField struct{ Name, Value string }

// pageHandler is a handler of the page that returns the page to render,
// or "" after writing a redirect itself.
type pageHandler func(w http.ResponseWriter, r *http.Request) (*pageData, int)

// page wraps a page handler with CSRF checks, security headers and
// rendering.
func (s *Server) page(h pageHandler) http.Handler {
	cop := http.NewCrossOriginProtection()
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				s.render(w, r, &pageData{Title: "Bad request", Kind: "message", Message: "The form could not be read."}, http.StatusBadRequest)
				return
			}
			if !s.checkCSRF(r) {
				s.render(w, r, &pageData{Title: "Form expired", Kind: "message", Message: "This form has expired or was not sent from this page. Go back, reload the page and try again."}, http.StatusForbidden)
				return
			}
		}
		d, status := h(w, r)
		if d != nil {
			s.render(w, r, d, status)
		}
	})
	h2 := cop.Handler(inner)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Also on the answers render does not write: redirects and the
		// cross-origin protection's refusals.
		setPageHeaders(w.Header())
		h2.ServeHTTP(w, r)
	})
}

func (s *Server) csrfCookieName(r *http.Request) string {
	if s.secureCookies(r) {
		return "__Host-oauth_csrf"
	}
	return "oauth_csrf"
}

func (s *Server) secureCookies(r *http.Request) bool {
	return r.TLS != nil || s.base.Scheme == "https"
}

func (s *Server) csrfToken(cookie string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("oauth page\x00"))
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ensureCSRF returns the page's CSRF token, setting the cookie if the
// browser has none.
func (s *Server) ensureCSRF(w http.ResponseWriter, r *http.Request) string {
	name := s.csrfCookieName(r)
	if c, err := r.Cookie(name); err == nil && len(c.Value) == 43 {
		return s.csrfToken(c.Value)
	}
	v := randomToken(32)
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: v, Path: "/", HttpOnly: true, Secure: s.secureCookies(r),
		SameSite: http.SameSiteStrictMode, MaxAge: 3600,
	})
	return s.csrfToken(v)
}

func (s *Server) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(s.csrfCookieName(r))
	if err != nil || c.Value == "" {
		return false
	}
	got := r.PostForm.Get("csrf_token")
	return hmac.Equal([]byte(got), []byte(s.csrfToken(c.Value)))
}

// setPageHeaders sets the security headers of every answer of the login
// and approval pages (the pages, their error pages, their redirects and
// the cross-origin refusals):
//
//   - X-Frame-Options DENY (with the CSP's frame-ancestors 'none'): no
//     other site frames the page to have its visitor click on it.
//   - Cross-Origin-Opener-Policy same-origin: a page of another origin
//     that opened the page (window.open) loses its handle on it, and the
//     page's window.opener is null. The opener could otherwise navigate
//     the window the person signs in with to a look-alike page
//     (tabnabbing), or watch it. It also ends popup-style logins that
//     read the result through window.opener across origins: clients use
//     the redirect (RFC 6749 §4.1.2) instead.
//   - Cross-Origin-Resource-Policy same-origin: no other origin loads
//     the page as a resource (an <img>, a no-cors fetch) into its own
//     process, where a side channel could read it.
//   - X-Content-Type-Options nosniff, Referrer-Policy no-referrer (the
//     query carries the client's state and PKCE challenge), and
//     Cache-Control no-store (a page carries a CSRF token).
func setPageHeaders(h http.Header) {
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// render writes the page with its security headers.
func (s *Server) render(w http.ResponseWriter, r *http.Request, d *pageData, status int) {
	if d.Kind == "approve" {
		d.CSRF = s.ensureCSRF(w, r)
	}
	d.CSS = s.path("/oauth/static/style.css")
	formAction := "'self'"
	if d.formOrigin != "" {
		formAction += " " + d.formOrigin
	}
	h := w.Header()
	setPageHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	if err := pageTmpl.Execute(w, d); err != nil {
		s.log.Warn("oauth: page rendering failed", "err", err)
	}
}

func (s *Server) handleCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(styleCSS)
}

// cspSource is the form-action source of a redirect URI: its origin, or
// its scheme for a private-use (native app) scheme.
func cspSource(redirect string) string {
	if o := origin(redirect); o != "" {
		return o
	}
	if u, err := url.Parse(redirect); err == nil && u.Scheme != "" {
		return u.Scheme + ":"
	}
	return ""
}

// handleDevicePage is the verification page of the device flow.
func (s *Server) handleDevicePage(w http.ResponseWriter, r *http.Request) (*pageData, int) {
	action := s.path("/oauth/device")
	codeForm := func(code, msg string, status int) (*pageData, int) {
		return &pageData{Title: "Connect a device", Kind: "code", Action: action, UserCode: code, Error: msg}, status
	}
	raw := r.FormValue("user_code")
	get := r.Method != http.MethodPost // GET, or HEAD (served by the GET route)
	if get && raw == "" {
		return codeForm("", "", http.StatusOK)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); get && (site == "cross-site" || site == "same-site") {
		// Another site's page (an image, a frame, a window it navigates)
		// must not spend its visitor's address's attempts: the code is
		// filled in, and checked when the person continues from here.
		return codeForm(raw, "", http.StatusOK)
	}
	code := normalizeUserCode(raw)
	src := s.limit.source(r)
	// A place held by the address's requests in progress (not by its
	// failures) is waited for, as checkUser does: an office's other
	// browsers refreshing took them, and the code was refused 429.
	if ok, _ := s.limit.beginWait(r.Context(), src, s.clock, placeWait); !ok {
		return codeForm(raw, "Too many failed attempts from your network. Try again in a few minutes.", http.StatusTooManyRequests)
	}
	var key string
	var d *deviceRec
	var rev uint64
	err := ErrNotFound
	if code != "" {
		key, d, rev, err = s.lookupUserCode(r.Context(), code)
	}
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.limit.end(src, s.clock(), false)
			s.storeErr(err)
			return codeForm(raw, "The server cannot check codes right now. Try again shortly.", http.StatusServiceUnavailable)
		}
		s.authFailed(r, src, "user_code", "", "unknown or expired user code")
		return codeForm(raw, "This code is not valid or has expired. Check the code on your device.", http.StatusBadRequest)
	}
	s.limit.end(src, s.clock(), false)
	c := s.cfg.Load().clients[d.Client]
	if c == nil {
		return codeForm(raw, "The device's application is no longer configured.", http.StatusBadRequest)
	}
	approve := &pageData{
		Title: "Approve a device", Kind: "approve", Action: action, Client: c.display, Realm: c.realm.Name,
		Scopes: scopeList(d.Scope), UserCode: displayUserCode(code), Username: r.PostForm.Get("username"),
		Hidden: []hiddenField{{"user_code", displayUserCode(code)}},
	}
	if get {
		return approve, http.StatusOK
	}
	if r.PostForm.Get("action") == "deny" {
		if err := s.decideDevice(r.Context(), key, d, rev, false, "", nil); err != nil {
			return codeForm(raw, "The request changed meanwhile. Enter the code again.", http.StatusConflict)
		}
		return &pageData{Title: "Request denied", Kind: "message", Message: "You denied the device's request. It gets no access."}, http.StatusOK
	}
	roles, oe := s.checkUser(r, c.realm.Name, r.PostForm.Get("username"), r.PostForm.Get("password"))
	if oe != nil {
		approve.Error = pageMessage(oe)
		return approve, oe.status
	}
	if err := s.decideDevice(r.Context(), key, d, rev, true, r.PostForm.Get("username"), roles); err != nil {
		return codeForm(raw, "The request changed meanwhile. Enter the code again.", http.StatusConflict)
	}
	s.log.Info("oauth: device approved", "realm", c.realm.Name, "client", c.ID, "sub", r.PostForm.Get("username"))
	return &pageData{Title: "Device connected", Kind: "message", Message: "Done: " + c.display + " is signed in as " + r.PostForm.Get("username") + ". You can return to your device."}, http.StatusOK
}

// handleAuthorizePage is the authorization endpoint: it shows the request
// and a sign-in form (GET), and on approval redirects back with a code.
func (s *Server) handleAuthorizePage(w http.ResponseWriter, r *http.Request) (*pageData, int) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.PostForm
	}
	req, perr, oe := s.parseAuthzRequest(q)
	if perr != "" {
		return &pageData{Title: "Invalid request", Kind: "message", Message: string(perr)}, http.StatusBadRequest
	}
	if oe != nil {
		http.Redirect(w, r, s.errorRedirect(req, oe), http.StatusSeeOther)
		return nil, 0
	}
	c := req.client
	d := &pageData{
		Title: "Sign in to " + c.realm.Name, Kind: "approve", Action: s.path("/oauth/authorize"), Client: c.display,
		Realm: c.realm.Name, Scopes: scopeList(req.scope), Username: r.PostForm.Get("username"),
		formOrigin: cspSource(req.redirect),
	}
	if u, err := url.Parse(req.redirect); err == nil {
		d.RedirectHost = u.Host
		if d.RedirectHost == "" {
			d.RedirectHost = u.Scheme + ":"
		}
	}
	for _, k := range []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"} {
		if v := q.Get(k); v != "" {
			d.Hidden = append(d.Hidden, hiddenField{k, v})
		}
	}
	if r.Method == http.MethodGet {
		return d, http.StatusOK
	}
	if r.PostForm.Get("action") == "deny" {
		http.Redirect(w, r, s.errorRedirect(req, &oauthError{code: "access_denied", desc: "the user denied the request"}), http.StatusSeeOther)
		return nil, 0
	}
	username := r.PostForm.Get("username")
	roles, oe := s.checkUser(r, c.realm.Name, username, r.PostForm.Get("password"))
	if oe != nil {
		d.Error = pageMessage(oe)
		return d, oe.status
	}
	if !s.codeRoom.ok(r.Context(), s.store, s.log) {
		d.Error = "The server cannot take more sign-ins right now. Try again shortly."
		return d, http.StatusServiceUnavailable
	}
	switch ok, err := s.takeCodePlace(r.Context(), c.realm.Name, username); {
	case err != nil:
		s.storeErr(err)
		d.Error = "The server cannot complete the sign-in right now. Try again shortly."
		return d, http.StatusServiceUnavailable
	case !ok:
		// RFC 6749 §4.1.2.1, to the client: temporarily_unavailable, not
		// access_denied, which would tell it the user refused; the place
		// comes back within a minute and a half.
		s.log.Info("oauth: authorization refused: the user has too many codes outstanding", "realm", c.realm.Name, "client", c.ID, "sub", username, "max", maxCodesPerUser)
		http.Redirect(w, r, s.errorRedirect(req, &oauthError{code: "temporarily_unavailable",
			desc: "too many recent sign-ins of this user; try again in a minute or two"}), http.StatusSeeOther)
		return nil, 0
	}
	code, err := s.newAuthCode(r.Context(), req, username, roles)
	if err != nil {
		s.storeErr(err)
		d.Error = "The server cannot complete the sign-in right now. Try again shortly."
		return d, http.StatusServiceUnavailable
	}
	s.log.Info("oauth: authorization approved", "realm", c.realm.Name, "client", c.ID, "sub", username)
	http.Redirect(w, r, s.redirectURL(req, url.Values{"code": {code}}), http.StatusSeeOther)
	return nil, 0
}

// pageMessage turns a sign-in error into a sentence for the page.
func pageMessage(oe *oauthError) string {
	switch {
	case oe.status == http.StatusTooManyRequests:
		return "Too many failed sign-ins from your network. Try again in a few minutes."
	case oe.code == "invalid_request":
		return "Enter your user name and password."
	case oe.code == "temporarily_unavailable":
		return "The server is busy. Try again shortly."
	}
	return "Wrong user name or password."
}
