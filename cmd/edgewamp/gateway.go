package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/loop"
)

// The gateway section of the configuration: the embedded HTTP server
// (see gateway/doc.go and README's "HTTP gateway").

type gatewayConfig struct {
	// Listen is host:port; "" or "off" disables the gateway.
	Listen string `yaml:"listen"`
	// EventLoop serves the bridge's calls on the event loops (the HTTP
	// lane) rather than on net/http alone; default true, and off with TLS.
	EventLoop *bool `yaml:"event_loop"`
	// Hosts are the host names requests may name (DNS rebinding; see
	// gateway.Options.Hosts).
	Hosts []string `yaml:"hosts"`
	// TrustedProxies are the reverse proxies in front of the gateway
	// (gateway.Options.TrustedProxies), as listeners[].trusted_proxies.
	TrustedProxies         []string            `yaml:"trusted_proxies"`
	TLS                    *tlsConfig          `yaml:"tls"`
	CallTimeout            duration            `yaml:"call_timeout"`
	MaxCallTimeout         duration            `yaml:"max_call_timeout"`
	ApplicationErrorStatus int                 `yaml:"application_error_status"`
	Errors                 map[string]int      `yaml:"errors"`
	CORS                   *corsConfig         `yaml:"cors"`
	Bearer                 *bearerConfig       `yaml:"bearer"`
	APIKeyHeader           string              `yaml:"api_key_header"`
	APIKeys                []apiKeyConfig      `yaml:"api_keys"`
	SigningKeys            []signingKeyConfig  `yaml:"signing_keys"`
	SignatureMaxSkew       duration            `yaml:"signature_max_skew"`
	Limits                 gatewayLimitsConfig `yaml:"limits"`
	Routes                 []routeConfig       `yaml:"routes"`
	Callees                []calleeConfig      `yaml:"callees"`
	Webhooks               []webhookConfig     `yaml:"webhooks"`
}

type gatewayLimitsConfig struct {
	MaxBody                size     `yaml:"max_body"`
	MaxHeader              size     `yaml:"max_header"`
	ReadHeaderTimeout      duration `yaml:"read_header_timeout"`
	BodyTimeout            duration `yaml:"body_timeout"`
	WriteTimeout           duration `yaml:"write_timeout"`
	IdleTimeout            duration `yaml:"idle_timeout"`
	MaxConnections         int      `yaml:"max_connections"`
	MaxInFlight            int      `yaml:"max_in_flight"`
	MaxInFlightPerIdentity int      `yaml:"max_in_flight_per_identity"`
	MaxInFlightPerAddress  int      `yaml:"max_in_flight_per_address"`
	MaxSessions            int      `yaml:"max_sessions"`
	SessionsPerIdentity    int      `yaml:"sessions_per_identity"`
	SessionIdle            duration `yaml:"session_idle"`
	MaxStreams             int      `yaml:"max_streams"`
	MaxStreamsPerClient    int      `yaml:"max_streams_per_client"`
	MaxStreamsPerIdentity  int      `yaml:"max_streams_per_identity"`
	SSEQueue               int      `yaml:"sse_queue"`
	SSEBuffer              size     `yaml:"sse_buffer"`
	SSEBufferTotal         size     `yaml:"sse_buffer_total"`
	SSEKeepalive           duration `yaml:"sse_keepalive"`
	AuthFailures           int      `yaml:"auth_failures"`
}

type corsConfig struct {
	AllowedOrigins   []string `yaml:"allowed_origins"`
	AllowedHeaders   []string `yaml:"allowed_headers"`
	ExposedHeaders   []string `yaml:"exposed_headers"`
	AllowCredentials bool     `yaml:"allow_credentials"`
	MaxAge           duration `yaml:"max_age"`
}

type bearerConfig struct {
	// JWKSFile is a JSON Web Key Set (the OAuth2 server's public keys).
	JWKSFile string `yaml:"jwks_file"`
	Issuer   string `yaml:"issuer"`
	Audience string `yaml:"audience"`
}

type apiKeyConfig struct {
	Name   string `yaml:"name"`
	Key    string `yaml:"key"`
	KeyEnv string `yaml:"key_env"`
	Realm  string `yaml:"realm"`
	AuthID string `yaml:"authid"`
	Role   string `yaml:"role"`
}

type signingKeyConfig struct {
	Key       string `yaml:"key"`
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secret_env"`
	Realm     string `yaml:"realm"`
	AuthID    string `yaml:"authid"`
	Role      string `yaml:"role"`
}

type routeConfig struct {
	Name        string          `yaml:"name"`
	Summary     string          `yaml:"summary"`
	Method      string          `yaml:"method"`
	Path        string          `yaml:"path"`
	Realm       string          `yaml:"realm"`
	Call        string          `yaml:"call"`
	Publish     string          `yaml:"publish"`
	Args        any             `yaml:"args"`
	Kwargs      any             `yaml:"kwargs"`
	Acknowledge bool            `yaml:"acknowledge"`
	Retain      bool            `yaml:"retain"`
	DiscloseMe  bool            `yaml:"disclose_me"`
	Response    responseConfig  `yaml:"response"`
	Timeout     duration        `yaml:"timeout"`
	Auth        routeAuthConfig `yaml:"auth"`
	AuthID      string          `yaml:"authid"`
	Role        string          `yaml:"role"`
	CORS        *corsConfig     `yaml:"cors"`
	BodyLimit   size            `yaml:"body_limit"`
	Errors      map[string]int  `yaml:"errors"`
}

type responseConfig struct {
	Body   string `yaml:"body"`
	Status int    `yaml:"status"`
}

type routeAuthConfig struct {
	Type   string   `yaml:"type"`
	Scopes []string `yaml:"scopes"`
	Roles  []string `yaml:"roles"`
	Keys   []string `yaml:"keys"`
}

type calleeConfig struct {
	Name          string            `yaml:"name"`
	Realm         string            `yaml:"realm"`
	Procedure     string            `yaml:"procedure"`
	Match         string            `yaml:"match"`
	Invoke        string            `yaml:"invoke"`
	URL           string            `yaml:"url"`
	Timeout       duration          `yaml:"timeout"`
	Headers       map[string]string `yaml:"headers"`
	Result        string            `yaml:"result"`
	MaxConcurrent int               `yaml:"max_concurrent"`
	MaxResponse   size              `yaml:"max_response"`
	// MaxInFlightBytes: gateway.Callee.MaxInFlightBytes.
	MaxInFlightBytes size   `yaml:"max_in_flight_bytes"`
	AuthID           string `yaml:"authid"`
	Role             string `yaml:"role"`
}

type webhookConfig struct {
	Name        string            `yaml:"name"`
	Realm       string            `yaml:"realm"`
	Topic       string            `yaml:"topic"`
	Match       string            `yaml:"match"`
	URL         string            `yaml:"url"`
	Timeout     duration          `yaml:"timeout"`
	Queue       int               `yaml:"queue"`
	QueueBytes  size              `yaml:"queue_bytes"`
	Retries     *int              `yaml:"retries"`
	Backoff     duration          `yaml:"backoff"`
	MaxBackoff  duration          `yaml:"max_backoff"`
	Concurrency int               `yaml:"concurrency"`
	Headers     map[string]string `yaml:"headers"`
	Secret      string            `yaml:"secret"`
	SecretEnv   string            `yaml:"secret_env"`
	AuthID      string            `yaml:"authid"`
	Role        string            `yaml:"role"`
	Deliver     string            `yaml:"deliver"`
}

// gatewayOff reports whether the configuration disables the gateway.
// gatewayOnLane reports whether the gateway runs on the event loops' HTTP
// lane (a listener of the loops' own): on, without TLS, event_loop not
// false.
func (c *config) gatewayOnLane() bool {
	g := &c.Gateway
	return !c.gatewayOff() && g.TLS == nil && (g.EventLoop == nil || *g.EventLoop)
}

func (c *config) gatewayOff() bool {
	l := strings.TrimSpace(c.Gateway.Listen)
	return l == "" || l == "off"
}

// validateGateway checks the gateway section; errors name their line.
func (c *config) validateGateway(errs *[]error) {
	g := &c.Gateway
	// Before the gateway's being off: a reload installs the file's callees
	// and webhooks on the running gateway even so.
	before := len(*errs)
	c.validateGatewayCounts(errs)
	counted := len(*errs) == before
	c.validateGatewayIdentities(errs)
	if c.gatewayOff() {
		return
	}
	if p := listenAddrProblem(g.Listen); p != "" {
		if _, _, err := net.SplitHostPort(g.Listen); err != nil {
			p += " (or off)"
		}
		c.errAt(errs, fmt.Sprintf("gateway.listen %q %s", g.Listen, p), "gateway", "listen")
	}
	if g.TLS != nil && (g.TLS.Cert == "" || g.TLS.Key == "") {
		c.errAt(errs, "gateway.tls needs both cert and key", "gateway", "tls")
	}
	for i, s := range g.TrustedProxies {
		if msg := proxyListError(fmt.Sprintf("gateway.trusted_proxies[%d]", i), s); msg != "" {
			c.errAt(errs, msg, "gateway", "trusted_proxies", i)
		}
	}
	if g.ApplicationErrorStatus == 0 {
		// gateway.Options' 0 is its default (502), and gateway.Validate
		// checks the other values; the file's default is written out
		// (default.yaml), so its 0 is a status, and not one.
		c.errAt(errs, "gateway.application_error_status: status 0 is not an error status (400-599)", "gateway", "application_error_status")
	}
	if b := g.Bearer; b != nil {
		if b.JWKSFile == "" {
			c.errAt(errs, "gateway.bearer needs jwks_file", "gateway", "bearer")
		} else if _, err := loadJWKS(b.JWKSFile); err != nil {
			c.errAt(errs, "gateway.bearer.jwks_file: "+err.Error(), "gateway", "bearer", "jwks_file")
		}
	}
	for i, k := range g.APIKeys {
		if k.Key != "" && k.KeyEnv != "" {
			c.errAt(errs, "give an API key either inline or from the environment, not both", "gateway", "api_keys", i)
		}
		if k.KeyEnv != "" && os.Getenv(k.KeyEnv) == "" {
			c.errAt(errs, "environment variable "+k.KeyEnv+" is empty", "gateway", "api_keys", i, "key_env")
		}
	}
	for i, k := range g.SigningKeys {
		if k.Secret != "" && k.SecretEnv != "" {
			c.errAt(errs, "give a secret either inline or from the environment, not both", "gateway", "signing_keys", i)
		}
		if k.SecretEnv != "" && os.Getenv(k.SecretEnv) == "" {
			c.errAt(errs, "environment variable "+k.SecretEnv+" is empty", "gateway", "signing_keys", i, "secret_env")
		}
	}
	for i, w := range g.Webhooks {
		if w.SecretEnv != "" && os.Getenv(w.SecretEnv) == "" {
			c.errAt(errs, "environment variable "+w.SecretEnv+" is empty", "gateway", "webhooks", i, "secret_env")
		}
	}
	realms := map[string]bool{}
	for _, r := range c.Realms {
		realms[r.Name] = true
	}
	// A key of a realm that is not configured authenticates nothing: its
	// every request was refused, and check-config said ok (a typo in the
	// realm), where a route's, a callee's or a webhook's was refused.
	realmKnown := func(what, key string, i int, realm string) {
		if realm != "" && !realms[realm] {
			c.errAt(errs, fmt.Sprintf("%s realm %q is not configured", what, realm), "gateway", key, i, "realm")
		}
	}
	for i, k := range g.APIKeys {
		realmKnown("API key", "api_keys", i, k.Realm)
	}
	for i, k := range g.SigningKeys {
		realmKnown("signing key", "signing_keys", i, k.Realm)
	}
	for i, rt := range g.Routes {
		realmKnown("route", "routes", i, rt.Realm)
	}
	c.validateKeyNames(errs)
	c.validateBearerRoutes(errs)
	c.validateAnonymousRoutes(errs)
	c.validateGatewayRoles(errs)
	c.validateRouteKeyRealms(errs)
	c.validateRouteScopes(errs)
	for i, ce := range g.Callees {
		realmKnown("callee", "callees", i, ce.Realm)
	}
	for i, w := range g.Webhooks {
		realmKnown("webhook", "webhooks", i, w.Realm)
	}
	o := c.gatewayOptions(nil)
	if c.oauthEnabled() {
		// The OAuth2 server's endpoints, which run mounts on the gateway:
		// a route at or below them is refused (gateway.New refused it at
		// start, and a reload's Prepare on a gateway that has them; here,
		// check-config and every reload agree with the start).
		o.Mount = map[string]http.Handler{}
		for _, p := range oauthMountPatterns(orDefault(c.OAuth.Issuer, defaultIssuer)) {
			o.Mount[p] = http.NotFoundHandler()
		}
	}
	if !counted {
		// gateway.Validate refuses the same counts (without the file's
		// lines), and before it did, built what they size: a webhook's
		// queue of 2,000,000,000 slots was a 16 GB allocation in
		// check-config, which the race detector's shadow made resident
		// (a CI run's test process killed by the kernel at 24 GB).
		return
	}
	if err := gateway.Validate(o); err != nil {
		for _, e := range unjoin(err) {
			var fe *gateway.FieldError
			if errors.As(e, &fe) {
				c.errAt(errs, fe.Error(), append([]any{"gateway"}, fe.Path...)...)
			} else {
				*errs = append(*errs, e)
			}
		}
	}
}

// validateGatewayIdentities refuses an authid or role that the gateway's
// own configuration names (API keys, signing keys, routes, callees,
// webhooks) and that is not WAMP text (wampText), as the realms' users and
// roles are: the gateway's sessions act as them, and every disclosure,
// meta event and wamp.session.get naming them would fail for JSON peers.
func (c *config) validateGatewayIdentities(errs *[]error) {
	g := &c.Gateway
	check := func(section string, i int, authid, role string) {
		if !wampText(authid) {
			c.errAt(errs, fmt.Sprintf("gateway.%s[%d].authid %q %s", section, i, authid, notWAMPText), "gateway", section, i, "authid")
		}
		if !wampText(role) {
			c.errAt(errs, fmt.Sprintf("gateway.%s[%d].role %q %s", section, i, role, notWAMPText), "gateway", section, i, "role")
		}
	}
	for i, k := range g.APIKeys {
		check("api_keys", i, k.AuthID, k.Role)
	}
	for i, k := range g.SigningKeys {
		check("signing_keys", i, k.AuthID, k.Role)
	}
	for i, r := range g.Routes {
		check("routes", i, r.AuthID, r.Role)
	}
	for i, ce := range g.Callees {
		check("callees", i, ce.AuthID, ce.Role)
	}
	for i, w := range g.Webhooks {
		check("webhooks", i, w.AuthID, w.Role)
	}
}

// validateGatewayRoles refuses a role the gateway acts as (an API key's,
// a signing key's, a route's, a callee's or a webhook's role) or a route
// requires (auth.roles) that its realm does not define, when the realm's
// roles are a closed list (security: true): a session of that role may
// do nothing there, so every request with the key, every call through the
// route, the callee's registration and the webhook's subscription were
// refused not_authorized, and check-config said ok (a typo in the role),
// where a user's role was refused already. A realm without security has
// no list: any role may do anything. The message names the key's path.
func (c *config) validateGatewayRoles(errs *[]error) {
	g := &c.Gateway
	byName := map[string]*realmConfig{}
	for i := range c.Realms {
		byName[c.Realms[i].Name] = &c.Realms[i]
	}
	check := func(realm, role, key string, at ...any) {
		r := byName[realm]
		if r == nil || !r.Security || role == "" || slices.ContainsFunc(r.Roles, func(ro roleConfig) bool { return ro.Name == role }) {
			return
		}
		c.errAt(errs, fmt.Sprintf("%s %q is not a role of realm %q, which has security on: it could do nothing there (define the role, or name one of the realm's)", key, role, realm),
			append([]any{"gateway"}, at...)...)
	}
	for i, k := range g.APIKeys {
		check(k.Realm, k.Role, fmt.Sprintf("gateway.api_keys[%d].role", i), "api_keys", i, "role")
	}
	for i, k := range g.SigningKeys {
		check(k.Realm, k.Role, fmt.Sprintf("gateway.signing_keys[%d].role", i), "signing_keys", i, "role")
	}
	// A route's auth.roles are matched against every role a principal
	// holds, an external bearer token's roles claim included, while its
	// session acts as one of them (authrole, or the first): a route that
	// takes tokens of gateway.bearer.jwks_file may require a role of the
	// identity provider's that the realm does not define (admin, with the
	// session acting as operator), as it did before this check.
	externalBearer := g.Bearer != nil && g.Bearer.JWKSFile != ""
	for i, rt := range g.Routes {
		check(rt.Realm, rt.Role, fmt.Sprintf("gateway.routes[%d].role", i), "routes", i, "role")
		if externalBearer && (rt.Auth.Type == "" || rt.Auth.Type == "any" || rt.Auth.Type == "bearer") {
			continue
		}
		for j, ro := range rt.Auth.Roles {
			check(rt.Realm, ro, fmt.Sprintf("gateway.routes[%d].auth.roles[%d]", i, j), "routes", i, "auth", "roles", j)
		}
	}
	for i, ce := range g.Callees {
		check(ce.Realm, ce.Role, fmt.Sprintf("gateway.callees[%d].role", i), "callees", i, "role")
	}
	for i, w := range g.Webhooks {
		check(w.Realm, w.Role, fmt.Sprintf("gateway.webhooks[%d].role", i), "webhooks", i, "role")
	}
}

// validateBearerRoutes refuses a route with auth type bearer on whose
// realm no bearer token would be accepted: the tokens are checked by
// gateway.bearer's JWKS, for any realm, or by the OAuth2 server, each for
// the realm whose oauth: block issued it. With neither, check-config said
// ok and every request to the route was refused 401 (403 "the token is
// for realm" with an oauth: block on another realm). Neither applies at a
// reload (gateway.bearer and a router's first oauth: block need a
// restart), so no source can appear while the file stands.
//
// gateway.bearer's tokens are for any realm, but with an audience
// wamp:<realm>, which every token must name and which binds it to that
// realm: then for that realm only (before, a bearer route on another
// realm passed, and every token was refused 403 "the token is for realm").
func (c *config) validateBearerRoutes(errs *[]error) {
	g := &c.Gateway
	jwksRealm, jwksBound := "", false
	if g.Bearer != nil {
		jwksRealm, jwksBound = strings.CutPrefix(g.Bearer.Audience, "wamp:")
		if !jwksBound {
			return
		}
	}
	issued := c.oauthRealmNames()
	for i, rt := range g.Routes {
		if rt.Auth.Type != "bearer" || rt.Realm != "" && slices.Contains(issued, rt.Realm) || rt.Realm == "" && len(issued) > 0 ||
			jwksBound && rt.Realm == jwksRealm {
			continue
		}
		name := rt.Method + " " + rt.Path
		if rt.Name != "" {
			name = rt.Name + ", " + name
		}
		bound := ""
		if jwksBound {
			bound = fmt.Sprintf("; gateway.bearer.audience %q binds its tokens to realm %q", g.Bearer.Audience, jwksRealm)
		}
		c.errAt(errs, fmt.Sprintf("gateway.routes[%d] (%s) takes only bearer tokens (auth.type bearer), and none would be accepted on realm %q: configure gateway.bearer, or an oauth: block on the realm (every request would be refused)%s", i, name, rt.Realm, bound),
			"gateway", "routes", i, "auth", "type")
	}
}

// validateAnonymousRoutes refuses a route of auth type none without a
// role on a realm that takes no anonymous clients (takesAnonymous): such
// a route acts as the realm's anonymous principal (realmAccess), which
// that realm does not have, so every request to it was refused 401 "this
// realm needs credentials", on a route written to need none, and
// check-config said ok.
func (c *config) validateAnonymousRoutes(errs *[]error) {
	anon := map[string]bool{}
	for i := range c.Realms {
		anon[c.Realms[i].Name] = c.Realms[i].takesAnonymous()
	}
	for i, rt := range c.Gateway.Routes {
		if taken, known := anon[rt.Realm]; rt.Auth.Type != "none" || rt.Role != "" || taken || !known {
			continue // an unknown realm is refused as such (realmKnown)
		}
		name := rt.Method + " " + rt.Path
		if rt.Name != "" {
			name = rt.Name + ", " + name
		}
		c.errAt(errs, fmt.Sprintf("gateway.routes[%d] (%s) has auth type none without a role: it acts as the anonymous principal of realm %q, which takes no anonymous clients (every request would be refused 401); give the route a role (and authid), or list anonymous in the realm's authmethods", i, name, rt.Realm),
			"gateway", "routes", i, "auth", "type")
	}
}

// validateRouteKeyRealms refuses a route's auth.keys naming a key of
// another realm than the route's: the gateway judges a key against the
// route's realm, so every request with it was refused 403 ("the API key
// is not valid for realm ..."), and a route whose keys all were served
// nobody, where check-config said ok.
func (c *config) validateRouteKeyRealms(errs *[]error) {
	g := &c.Gateway
	realmOf := map[string]string{}
	for i, k := range g.APIKeys {
		name := k.Name
		if name == "" {
			name = "key" + strconv.Itoa(i)
		}
		realmOf[name] = k.Realm
	}
	for _, k := range g.SigningKeys {
		realmOf[k.Key] = k.Realm
	}
	for i, rt := range g.Routes {
		for j, name := range rt.Auth.Keys {
			if r, ok := realmOf[name]; ok && r != "" && rt.Realm != "" && r != rt.Realm {
				c.errAt(errs, fmt.Sprintf("gateway.routes[%d].auth.keys[%d]: key %q is of realm %q, not the route's realm %q: every request with it would be refused 403", i, j, name, r, rt.Realm),
					"gateway", "routes", i, "auth", "keys", j)
			}
		}
	}
}

// validateRouteScopes refuses a route's auth.scopes entry that is not a
// scope token (RFC 6749 §3.3: 1*( %x21 / %x23-5B / %x5D-7E ), printable
// ASCII without a space, double quote or backslash). A token's scopes
// are split at spaces, so an entry such as "read write" (meant as both)
// was held by no token: every request was refused 403 "the token lacks
// scope", and check-config said ok; a double quote broke the 403's
// WWW-Authenticate header (scope="...").
func (c *config) validateRouteScopes(errs *[]error) {
	for i, rt := range c.Gateway.Routes {
		for j, sc := range rt.Auth.Scopes {
			if !scopeToken(sc) {
				c.errAt(errs, fmt.Sprintf("gateway.routes[%d].auth.scopes[%d] %q is not one scope (printable ASCII without spaces, double quotes or backslashes; list each scope on its own): no token holds it, and every request would be refused 403", i, j, sc),
					"gateway", "routes", i, "auth", "scopes", j)
			}
		}
	}
}

// scopeToken reports whether s is an RFC 6749 §3.3 scope-token.
func scopeToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return s != ""
}

// validateKeyNames refuses two keys of one name: an API key's name (by
// default key<index>, as the gateway names it) and a signing key's id are
// what a route's auth.keys names, and a name shared took every key of it
// (the gateway matches by name), where the operator meant one; its
// messages and logs named the first only. Before, nothing said it.
func (c *config) validateKeyNames(errs *[]error) {
	g := &c.Gateway
	seen := map[string]string{} // name -> the key that has it
	for i, k := range g.APIKeys {
		name, what := k.Name, fmt.Sprintf("gateway.api_keys[%d].name %q", i, k.Name)
		at := []any{"gateway", "api_keys", i, "name"}
		if name == "" {
			name = "key" + strconv.Itoa(i)
			what = fmt.Sprintf("gateway.api_keys[%d] has no name, and its default name %q", i, name)
			at = at[:3]
		}
		if prev, ok := seen[name]; ok {
			c.errAt(errs, fmt.Sprintf("%s is the name of %s too: a route's auth.keys naming it would take both; give each key a name of its own", what, prev), at...)
			continue
		}
		seen[name] = fmt.Sprintf("gateway.api_keys[%d]", i)
	}
	for i, k := range g.SigningKeys {
		if prev, ok := seen[k.Key]; ok && k.Key != "" && strings.HasPrefix(prev, "gateway.api_keys") {
			c.errAt(errs, fmt.Sprintf("gateway.signing_keys[%d].key %q is the name of %s too: a route's auth.keys naming it would take both; give each key a name of its own", i, k.Key, prev),
				"gateway", "signing_keys", i, "key")
		}
	}
}

// validateGatewayCounts refuses negative counts in the gateway section:
// the gateway package would take them, as 0, for its default (10000
// connections for -1), and elsewhere the file's negative numbers are
// refused. 0 is the default (README), and a webhook's retries: 0 none.
func (c *config) validateGatewayCounts(errs *[]error) {
	g := &c.Gateway
	l := &g.Limits
	for _, f := range []struct {
		v    int
		name string
	}{{l.MaxConnections, "max_connections"}, {l.MaxInFlight, "max_in_flight"}, {l.MaxInFlightPerIdentity, "max_in_flight_per_identity"},
		{l.MaxInFlightPerAddress, "max_in_flight_per_address"}, {l.MaxSessions, "max_sessions"}, {l.SessionsPerIdentity, "sessions_per_identity"},
		{l.MaxStreams, "max_streams"}, {l.MaxStreamsPerClient, "max_streams_per_client"},
		{l.MaxStreamsPerIdentity, "max_streams_per_identity"}, {l.SSEQueue, "sse_queue"}, {l.AuthFailures, "auth_failures"}} {
		if f.v < 0 {
			c.errAt(errs, "gateway.limits."+f.name+" must not be negative", "gateway", "limits", f.name)
		}
	}
	// An event stream's keepalive ticks at this period: below a second
	// (sse_keepalive: 1ns) each stream wrote comment lines as fast as its
	// client read them, 1.75 MB/s to one curl, and check-config said ok.
	if v := time.Duration(l.SSEKeepalive); v != 0 && v < minSSEKeepalive {
		c.errAt(errs, fmt.Sprintf("gateway.limits.sse_keepalive %s is below the minimum %s", v, minSSEKeepalive), "gateway", "limits", "sse_keepalive")
	}
	// As the WAMP listeners' timers (validate): below a second an HTTP
	// timeout ends requests at once (read_header_timeout: 1ns failed
	// every request, write_timeout: 1ns every answer), and WAMP counts a
	// call's timeout in milliseconds. 0 is the default.
	const http1s = "an HTTP request or answer takes round trips"
	const wampMS = "WAMP counts a call's timeout in milliseconds"
	const upstream = "an HTTP request to the upstream takes a round trip; 1ns failed every one"
	const maxAge = "Access-Control-Max-Age counts whole seconds: below one it said 0, a preflight before every request"
	floors := []durationFloor{
		{l.ReadHeaderTimeout, time.Second, http1s, "", []any{"gateway", "limits", "read_header_timeout"}},
		{l.BodyTimeout, time.Second, http1s, "", []any{"gateway", "limits", "body_timeout"}},
		{l.WriteTimeout, time.Second, http1s, "", []any{"gateway", "limits", "write_timeout"}},
		{l.IdleTimeout, time.Second, http1s, "", []any{"gateway", "limits", "idle_timeout"}},
		{l.SessionIdle, time.Second, "the gateway's pooled sessions are looked at once a second", "", []any{"gateway", "limits", "session_idle"}},
		{g.CallTimeout, time.Millisecond, wampMS, "", []any{"gateway", "call_timeout"}},
		{g.MaxCallTimeout, time.Millisecond, wampMS, "", []any{"gateway", "max_call_timeout"}},
		// 1ns refused every signed request as outside the window.
		{g.SignatureMaxSkew, time.Second, "a signed request's timestamp is as old as its trip at the least; 1ns refused every one", "",
			[]any{"gateway", "signature_max_skew"}},
	}
	if g.CORS != nil {
		floors = append(floors, durationFloor{g.CORS.MaxAge, time.Second, maxAge, "", []any{"gateway", "cors", "max_age"}})
	}
	for i, rt := range g.Routes {
		floors = append(floors, durationFloor{rt.Timeout, time.Millisecond, wampMS, "the gateway's call_timeout", []any{"gateway", "routes", i, "timeout"}})
		if rt.CORS != nil {
			floors = append(floors, durationFloor{rt.CORS.MaxAge, time.Second, maxAge, "", []any{"gateway", "routes", i, "cors", "max_age"}})
		}
	}
	for i, ce := range g.Callees {
		floors = append(floors, durationFloor{ce.Timeout, time.Millisecond, upstream, "the gateway's call_timeout", []any{"gateway", "callees", i, "timeout"}})
	}
	// backoff: 1ns made a webhook's retries of a failed post within
	// microseconds, into the failure; max_backoff bounds every wait, the
	// backoff's too, so its floor is the backoff's (a sub-second one, quick
	// retries to a consumer nearby, cuts a Retry-After short, as asked).
	for i, w := range g.Webhooks {
		floors = append(floors,
			durationFloor{w.Timeout, time.Millisecond, upstream, "its default", []any{"gateway", "webhooks", i, "timeout"}},
			durationFloor{w.Backoff, minWebhookBackoff, "below it a failed post's retries come at once, into the same failure", "", []any{"gateway", "webhooks", i, "backoff"}},
			durationFloor{w.MaxBackoff, minWebhookBackoff, "it bounds every wait between retries: below it a failed post's retries come at once, into the same failure", "", []any{"gateway", "webhooks", i, "max_backoff"}})
	}
	c.durationFloors(errs, floors)
	if l.SSEQueue > maxSSEQueue {
		c.errAt(errs, fmt.Sprintf("gateway.limits.sse_queue is at most %d (frames; each event stream and streamed call allocates its queue whole when it opens)", maxSSEQueue),
			"gateway", "limits", "sse_queue")
	}
	// Without a maximum, check-config took 1GiB, and net/http read heads
	// that long, holding each whole (four 64 MiB heads held 410 MB).
	if l.MaxHeader > gateway.MaxHeaderMax {
		c.errAt(errs, fmt.Sprintf("gateway.limits.max_header %d bytes is above the maximum, %d bytes (64KiB): the gateway holds a request's head whole while it reads it", l.MaxHeader, gateway.MaxHeaderMax),
			"gateway", "limits", "max_header")
	}
	// As max_header: 4GiB passed, and one client's 511 MiB of body held
	// 1.5 GB (a route's body_limit, gateway.Validate's, names its line).
	if l.MaxBody > gateway.MaxBodyMax {
		c.errAt(errs, fmt.Sprintf("gateway.limits.max_body %d bytes is above the maximum, %d bytes (16MiB, the largest WAMP message): the gateway reads a body whole", l.MaxBody, gateway.MaxBodyMax),
			"gateway", "limits", "max_body")
	}
	for i, ce := range g.Callees {
		if ce.MaxConcurrent < 0 {
			c.errAt(errs, fmt.Sprintf("gateway.callees[%d].max_concurrent must not be negative", i), "gateway", "callees", i, "max_concurrent")
		}
	}
	for i, w := range g.Webhooks {
		retries := 0
		if w.Retries != nil {
			retries = *w.Retries
		}
		for _, f := range []struct {
			v    int
			name string
		}{{w.Queue, "queue"}, {retries, "retries"}, {w.Concurrency, "concurrency"}} {
			if f.v < 0 {
				c.errAt(errs, fmt.Sprintf("gateway.webhooks[%d].%s must not be negative", i, f.name), "gateway", "webhooks", i, f.name)
			}
		}
		if w.Queue > maxWebhookQueue {
			c.errAt(errs, fmt.Sprintf("gateway.webhooks[%d].queue is at most %d (events; the queue is allocated whole when the webhook starts)", i, maxWebhookQueue),
				"gateway", "webhooks", i, "queue")
		}
		if w.Concurrency > maxWebhookConcurrency {
			c.errAt(errs, fmt.Sprintf("gateway.webhooks[%d].concurrency is at most %d (deliveries in progress, each a goroutine started with the webhook)", i, maxWebhookConcurrency),
				"gateway", "webhooks", i, "concurrency")
		}
	}
}

// minSSEKeepalive is the least gateway.limits.sse_keepalive.
const minSSEKeepalive = time.Second

// minWebhookBackoff is the least gateway.webhooks[].backoff: its five
// retries then take 310 ms at the least.
const minWebhookBackoff = 10 * time.Millisecond

// The most that gateway.limits.sse_queue, gateway.webhooks[].queue and
// .concurrency may be: the gateway's (gateway.MaxSSEQueue), checked here
// too so that the refusal names the file's line.
const (
	maxSSEQueue           = gateway.MaxSSEQueue
	maxWebhookQueue       = gateway.MaxWebhookQueue
	maxWebhookConcurrency = gateway.MaxWebhookConcurrency
)

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

// gatewayOptions builds the gateway's options (without the router, the
// verifier, the statistics and TLS, which serve adds).
func (c *config) gatewayOptions(log *slog.Logger) gateway.Options {
	g := &c.Gateway
	o := gateway.Options{
		Addr:                   g.Listen,
		Hosts:                  g.Hosts,
		TrustedProxies:         networks(g.TrustedProxies),
		AuthFailuresExempt:     networks(c.Limits.AuthFailures.Exempt),
		Realms:                 c.realmAccess(),
		APIKeyHeader:           g.APIKeyHeader,
		SignatureMaxSkew:       time.Duration(g.SignatureMaxSkew),
		Errors:                 g.Errors,
		ApplicationErrorStatus: g.ApplicationErrorStatus,
		CallTimeout:            time.Duration(g.CallTimeout),
		MaxCallTimeout:         time.Duration(g.MaxCallTimeout),
		Logger:                 log,
	}
	if g.CORS != nil {
		o.CORS = *g.CORS.build()
	}
	l := &g.Limits
	o.Limits = gateway.Limits{
		MaxBody: int(l.MaxBody), MaxHeader: int(l.MaxHeader), ReadHeaderTimeout: time.Duration(l.ReadHeaderTimeout),
		BodyTimeout: time.Duration(l.BodyTimeout), WriteTimeout: time.Duration(l.WriteTimeout), IdleTimeout: time.Duration(l.IdleTimeout),
		MaxConnections: l.MaxConnections, MaxInFlight: l.MaxInFlight, MaxInFlightPerIdentity: l.MaxInFlightPerIdentity,
		MaxInFlightPerAddress: l.MaxInFlightPerAddress, MaxSessions: l.MaxSessions, SessionsPerIdentity: l.SessionsPerIdentity, SessionIdle: time.Duration(l.SessionIdle),
		MaxStreams: l.MaxStreams, MaxStreamsPerClient: l.MaxStreamsPerClient, MaxStreamsPerIdentity: l.MaxStreamsPerIdentity, SSEQueue: l.SSEQueue, SSEBuffer: int(l.SSEBuffer), SSEBufferTotal: int64(l.SSEBufferTotal),
		SSEKeepalive: time.Duration(l.SSEKeepalive), AuthFailures: l.AuthFailures,
	}
	for _, k := range g.APIKeys {
		key := k.Key
		if k.KeyEnv != "" {
			key = os.Getenv(k.KeyEnv)
		}
		o.APIKeys = append(o.APIKeys, gateway.APIKey{Name: k.Name, Key: key, Realm: k.Realm, AuthID: k.AuthID, Role: k.Role})
	}
	for _, k := range g.SigningKeys {
		secret := k.Secret
		if k.SecretEnv != "" {
			secret = os.Getenv(k.SecretEnv)
		}
		o.SigningKeys = append(o.SigningKeys, gateway.SigningKey{Key: k.Key, Secret: secret, Realm: k.Realm, AuthID: k.AuthID, Role: k.Role})
	}
	for _, r := range g.Routes {
		rt := gateway.Route{Name: r.Name, Summary: r.Summary, Method: r.Method, Path: r.Path, Realm: r.Realm, Call: r.Call, Publish: r.Publish,
			Args: r.Args, Kwargs: r.Kwargs, Acknowledge: r.Acknowledge, Retain: r.Retain, DiscloseMe: r.DiscloseMe,
			Response: gateway.Response{Body: r.Response.Body, Status: r.Response.Status}, Timeout: time.Duration(r.Timeout),
			Auth:   gateway.Auth{Type: r.Auth.Type, Scopes: r.Auth.Scopes, Roles: r.Auth.Roles, Keys: r.Auth.Keys},
			AuthID: r.AuthID, Role: r.Role, BodyLimit: int(r.BodyLimit), Errors: r.Errors}
		if r.CORS != nil {
			rt.CORS = r.CORS.build()
		}
		o.Routes = append(o.Routes, rt)
	}
	for _, ce := range g.Callees {
		o.Callees = append(o.Callees, gateway.Callee{Name: ce.Name, Realm: ce.Realm, Procedure: ce.Procedure, Match: ce.Match, Invoke: ce.Invoke, URL: ce.URL,
			Timeout: time.Duration(ce.Timeout), Headers: ce.Headers, Result: ce.Result, MaxConcurrent: ce.MaxConcurrent,
			MaxResponse: int(ce.MaxResponse), MaxInFlightBytes: int(ce.MaxInFlightBytes), AuthID: ce.AuthID, Role: ce.Role})
	}
	for _, w := range g.Webhooks {
		secret := w.Secret
		if w.SecretEnv != "" {
			secret = os.Getenv(w.SecretEnv)
		}
		wh := gateway.Webhook{Name: w.Name, Realm: w.Realm, Topic: w.Topic, Match: w.Match, URL: w.URL, Timeout: time.Duration(w.Timeout),
			Queue: w.Queue, QueueBytes: int(w.QueueBytes), Backoff: time.Duration(w.Backoff), MaxBackoff: time.Duration(w.MaxBackoff), Concurrency: w.Concurrency,
			Headers: w.Headers, Secret: secret, AuthID: w.AuthID, Role: w.Role, Deliver: w.Deliver}
		if w.Retries != nil {
			wh.Retries = *w.Retries
			if wh.Retries == 0 {
				wh.Retries = -1 // none
			}
		}
		o.Webhooks = append(o.Webhooks, wh)
	}
	return o
}

// build makes the gateway's policy. The origins are taken as a browser
// sends its Origin (canonicalOrigin, as websocket.allowed_origins are): an
// entry with its scheme's default port ("https://app.example:443"), which
// check-config took, never matched a browser's Origin, which leaves it out,
// and every request from the page was refused 403.
func (cc *corsConfig) build() *gateway.CORS {
	var origins []string
	for _, o := range cc.AllowedOrigins {
		origins = append(origins, canonicalOrigin(o))
	}
	return &gateway.CORS{AllowedOrigins: origins, AllowedHeaders: cc.AllowedHeaders, ExposedHeaders: cc.ExposedHeaders,
		AllowCredentials: cc.AllowCredentials, MaxAge: time.Duration(cc.MaxAge)}
}

// realmAccess says which realms serve the bridge endpoints, to whom:
// requests without credentials act as the anonymous role of a realm that
// takes anonymous WAMP clients (takesAnonymous: its authmethods, when it
// lists them), not of one whose anonymous key alone says so.
func (c *config) realmAccess() []gateway.RealmAccess {
	var out []gateway.RealmAccess
	for _, r := range c.Realms {
		ra := gateway.RealmAccess{Name: r.Name, Bridge: r.HTTPBridge == nil || *r.HTTPBridge, Security: r.Security,
			Anonymous: r.takesAnonymous(), AnonymousRole: r.anonymousRole()}
		for _, ro := range r.Roles {
			if ro.HTTPBridge {
				ra.BridgeRoles = append(ra.BridgeRoles, ro.Name)
			}
		}
		out = append(out, ra)
	}
	return out
}

// bridgedRealms counts the realms whose bridge endpoints are served.
func bridgedRealms(rs []gateway.RealmAccess) int {
	n := 0
	for _, r := range rs {
		if r.Bridge {
			n++
		}
	}
	return n
}

// laneAdapter is the event loops' loop.Lane: the gateway, which it
// reaches once built (before the loops start).
type laneAdapter struct {
	gw *gateway.Server
}

func (a *laneAdapter) Serve(r *http.Request, body []byte, w loop.LaneWriter) bool {
	return a.gw.ServeLane(r, body, w)
}

func (a *laneAdapter) HandOff(c net.Conn) { a.gw.HandOff(c) }

// laneOptions adds the gateway's port to the event loops' listeners as an
// HTTP lane (loop.HTTPLane) when the gateway is on, plaintext, and
// gateway.event_loop is not false; it returns the lane, or nil.
func (c *config) laneOptions(lo *loop.Options, log *slog.Logger) *laneAdapter {
	g := &c.Gateway
	if !c.gatewayOnLane() {
		return nil
	}
	l := gateway.DefaultedLimits(c.gatewayOptions(log).Limits)
	a := &laneAdapter{}
	lo.Listeners = append(lo.Listeners, loop.Listener{Addr: g.Listen, Transport: loop.HTTPLane, MaxConns: l.MaxConnections})
	lo.Lane = loop.LaneConfig{Lane: a, MaxBody: l.MaxBody, MaxHeader: l.MaxHeader, HeaderTimeout: l.ReadHeaderTimeout, IdleTimeout: l.IdleTimeout}
	return a
}
