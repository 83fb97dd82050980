package oauth

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Grant names, as Realm.Grants and Client.Grants take them. GrantDeviceCode
// is the device authorization grant of RFC 8628, whose grant_type on the
// wire is urn:ietf:params:oauth:grant-type:device_code.
const (
	GrantPassword          = "password"
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
	GrantDeviceCode        = "device_code"
	GrantAuthorizationCode = "authorization_code"
)

// deviceGrantType is the device grant's grant_type (RFC 8628 §3.4).
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

var allGrants = []string{GrantPassword, GrantClientCredentials, GrantRefreshToken, GrantDeviceCode, GrantAuthorizationCode}

// Defaults of the Options and Realm fields left zero.
const (
	DefaultAccessTokenLifetime  = 5 * time.Minute
	DefaultRefreshTokenLifetime = 30 * 24 * time.Hour
	DefaultMaxRefreshTokens     = 10
	DefaultDeviceCodeLifetime   = 10 * time.Minute
	DefaultDevicePollInterval   = 5 * time.Second
	DefaultRotateEvery          = 30 * 24 * time.Hour
	DefaultSyncInterval         = 5 * time.Second
	DefaultCacheSize            = 65536
	authCodeLifetime            = time.Minute
	// maxAccessTokenLifetime bounds Realm.AccessTokenLifetime.
	maxAccessTokenLifetime = 24 * time.Hour
	// maxMaxRefreshTokens bounds Realm.MaxRefreshTokens: a user's logins
	// with one client are listed in one store record (about 80 bytes
	// each), which a store keeps under 64 KiB; past about 800 the next
	// login failed 503 for as long as the logins lived.
	maxMaxRefreshTokens = 500
)

// Options configure a Server. The zero value of every field but Issuer,
// Realms and Users is a sane default.
type Options struct {
	// Issuer is the server's URL (https://host[:port][/path], or http for
	// a loopback or test address): the "iss" claim of every token, the
	// base of every endpoint's URL, and RFC 8414's issuer. Every node of a
	// mesh must use the same issuer. Required.
	Issuer string
	// Realms are the realms the server issues tokens for, with their
	// clients. A client ID is unique across realms (it selects the realm).
	Realms []Realm
	// Users checks resource owners' passwords (password grant, login page).
	// Required when a realm enables password, device_code or
	// authorization_code.
	Users UserStore
	// Store keeps the state; default NewMemStore(). The caller owns it
	// (Close does not close it).
	Store Store
	// Algorithm signs generated keys: "EdDSA" (Ed25519, default) or
	// "ES256" (ECDSA P-256).
	Algorithm string
	// SigningKeys, when set, replace generated keys: the first signs, the
	// others (older keys being rotated out) only verify. Each is an
	// ed25519.PrivateKey or a P-256 *ecdsa.PrivateKey (ParsePrivateKeyPEM
	// reads them). Every node of a mesh must be given the same keys.
	SigningKeys []crypto.Signer
	// RotateEvery is how long a generated key signs before a new one takes
	// over (default 30 days). Old public keys stay in the JWKS until every
	// token they signed has expired.
	RotateEvery time.Duration
	// SyncInterval is how often the server re-reads the shared state that
	// VerifyAccessToken uses without a store round trip (revoked tokens,
	// the key ring) and runs rotation; default 5 s. A revocation made on
	// another node of a mesh is honoured here within this interval.
	SyncInterval time.Duration
	// CacheSize bounds the verified-token cache; default 65536 tokens.
	CacheSize int
	// MaxClockSkew is how far in the future a token's iat may be (clocks
	// of mesh nodes differ); default 30 s. Expiry is never extended.
	MaxClockSkew time.Duration
	// AuthLimits limit failed client, password and user-code attempts per
	// source address (the WAMP authenticators' policy by default).
	AuthLimits AuthLimits
	// Logger receives one line per notable event (never a secret or
	// token); default slog.Default().
	Logger *slog.Logger
	// OnRevoke, when set, is told the ids (access token jti or login
	// gid, as Claims.ID and Claims.GrantID) that became revoked: at once
	// for a revocation made through this server, within SyncInterval for
	// one another node sharing the store made (and, at New, every
	// revocation still in force). cmd ends the WAMP sessions that logged
	// in with them. It is called from handler goroutines and the sync
	// goroutine, possibly concurrently; it must not block.
	OnRevoke func(ids []string)

	now   func() time.Time                           // test seam; default time.Now
	sleep func(ctx context.Context, d time.Duration) // test seam: the rate limiter's delays
}

// Realm is one realm's OAuth2 configuration.
type Realm struct {
	// Name is the realm URI: the "aud" claim of its tokens.
	Name string
	// Clients may obtain tokens for this realm.
	Clients []Client
	// Grants enabled in the realm; default all five (GrantPassword, ...).
	Grants []string
	// AccessTokenLifetime; default 5 min.
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime is how long a refresh token stays valid unused;
	// each use returns a new one with a fresh lifetime. Default 30 days.
	RefreshTokenLifetime time.Duration
	// MaxRefreshTokens bounds the live refresh tokens (logins) per user and
	// client; a new login beyond it ends the oldest. Default 10, at most
	// 500.
	MaxRefreshTokens int
	// DeviceCodeLifetime; default 10 min.
	DeviceCodeLifetime time.Duration
	// DevicePollInterval is the minimum polling interval a device is
	// given; default 5 s (RFC 8628 §3.5 adds 5 s on each slow_down).
	DevicePollInterval time.Duration
}

// Client is an OAuth2 client of one realm.
type Client struct {
	// ID is the client_id, unique across realms.
	ID string
	// Name is shown on the approval page; default the ID.
	Name string
	// SecretHash is the hash of a confidential client's secret, in the
	// form pbkdf2-sha256$ITERATIONS$KEYLEN$SALT$KEY (the same as users'
	// passwords; `edgewamp passwd` and HashSecret make one). Empty for a
	// public client.
	SecretHash string
	// Public marks a client without a secret (a device, a browser app, a
	// CLI). It must be set explicitly, so that a forgotten secret is an
	// error rather than a public client.
	Public bool
	// Grants the client may use; default the realm's, except
	// client_credentials for a public client. refresh_token here means the
	// client receives refresh tokens.
	Grants []string
	// RedirectURIs the authorization code grant may redirect to (exact
	// match).
	RedirectURIs []string
	// Scopes the client may ask for; a request without scope gets them
	// all.
	Scopes []string
	// Roles are the roles of the client's own tokens (client_credentials,
	// whose subject is the client ID).
	Roles []string
}

// UserStore checks resource owners. cmd adapts the realms' user lists (the
// same PBKDF2 hashes as WAMP ticket and WAMP-CRA) to it. Implementations
// must be safe for concurrent use.
type UserStore interface {
	// Authenticate checks a user's password and returns the user's roles.
	// It returns ok false for an unknown user and for a wrong password
	// alike, taking about as long for both, so that names cannot be
	// probed. It may take tens of milliseconds (password hashing); the
	// Server bounds how many run at once.
	Authenticate(realm, authid, password string) (roles []string, ok bool)
	// Roles returns a user's current roles, or ok false when the user no
	// longer exists. It must be fast (called on every refresh).
	Roles(realm, authid string) (roles []string, ok bool)
}

// config is the validated, immutable configuration (swapped by SetRealms).
type config struct {
	realms  map[string]*realmConf
	clients map[string]*clientConf
	maxTTL  time.Duration // longest access-token lifetime of any realm
	// oldTTL is the longest access-token lifetime of the configurations
	// replaced before, until oldUntil: tokens they issued may live that
	// long (a reload that shortens lifetimes does not shorten them).
	oldTTL   time.Duration
	oldUntil time.Time
	origins  map[string]bool
}

type realmConf struct {
	Realm
	grants map[string]bool
}

type clientConf struct {
	Client
	realm  *realmConf
	secret *secretHash
	grants map[string]bool
	scopes map[string]bool
	redirs map[string]bool
	// loopRedirs are the registered loopback IP redirect URIs without
	// their port (loopbackKey): RFC 8252 §7.3, any port matches.
	loopRedirs map[string]bool
	display    string
}

func (c *clientConf) can(grant string) bool { return c.grants[grant] && c.realm.grants[grant] }

// buildConfig validates the realms, gathering every error.
func buildConfig(realms []Realm, users UserStore) (*config, error) {
	var errs []error
	cfg := &config{realms: map[string]*realmConf{}, clients: map[string]*clientConf{}, origins: map[string]bool{}}
	for _, r := range realms {
		if r.Name == "" {
			errs = append(errs, errors.New("oauth: a realm needs a name"))
			continue
		}
		if cfg.realms[r.Name] != nil {
			errs = append(errs, fmt.Errorf("oauth: realm %q is configured twice", r.Name))
			continue
		}
		rc := &realmConf{Realm: r, grants: map[string]bool{}}
		rc.Grants = orDefault(rc.Grants, allGrants)
		for _, g := range rc.Grants {
			if !slices.Contains(allGrants, g) {
				errs = append(errs, fmt.Errorf("oauth: realm %q: unknown grant %q (want %s)", r.Name, g, strings.Join(allGrants, ", ")))
			}
			rc.grants[g] = true
		}
		setDur(&rc.AccessTokenLifetime, DefaultAccessTokenLifetime)
		setDur(&rc.RefreshTokenLifetime, DefaultRefreshTokenLifetime)
		setDur(&rc.DeviceCodeLifetime, DefaultDeviceCodeLifetime)
		setDur(&rc.DevicePollInterval, DefaultDevicePollInterval)
		if rc.MaxRefreshTokens <= 0 {
			rc.MaxRefreshTokens = DefaultMaxRefreshTokens
		}
		if rc.MaxRefreshTokens > maxMaxRefreshTokens {
			errs = append(errs, fmt.Errorf("oauth: realm %q: max_refresh_tokens %d is above %d (a user's logins with one client are listed in one store record, which must stay under 64 KiB)", r.Name, rc.MaxRefreshTokens, maxMaxRefreshTokens))
		}
		if rc.AccessTokenLifetime < time.Second || rc.AccessTokenLifetime > maxAccessTokenLifetime {
			errs = append(errs, fmt.Errorf("oauth: realm %q: access token lifetime %v is outside 1s..24h", r.Name, rc.AccessTokenLifetime))
		}
		if rc.DevicePollInterval > rc.DeviceCodeLifetime/2 {
			errs = append(errs, fmt.Errorf("oauth: realm %q: device poll interval %v leaves no room in the device code lifetime %v", r.Name, rc.DevicePollInterval, rc.DeviceCodeLifetime))
		}
		if users == nil && (rc.grants[GrantPassword] || rc.grants[GrantDeviceCode] || rc.grants[GrantAuthorizationCode]) && len(r.Clients) > 0 {
			errs = append(errs, fmt.Errorf("oauth: realm %q enables user grants but the server has no user store", r.Name))
		}
		cfg.maxTTL = max(cfg.maxTTL, rc.AccessTokenLifetime)
		cfg.realms[r.Name] = rc
		for _, c := range r.Clients {
			cc, cerrs := buildClient(rc, c)
			errs = append(errs, cerrs...)
			if cc == nil {
				continue
			}
			if o := cfg.clients[c.ID]; o != nil {
				errs = append(errs, fmt.Errorf("oauth: client %q is defined twice (realms %q and %q)", c.ID, o.realm.Name, r.Name))
				continue
			}
			cfg.clients[c.ID] = cc
			if cc.can(GrantAuthorizationCode) {
				for u := range cc.redirs {
					if o := origin(u); o != "" {
						cfg.origins[o] = true
					}
				}
			}
		}
	}
	return cfg, errors.Join(errs...)
}

func buildClient(rc *realmConf, c Client) (*clientConf, []error) {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("oauth: realm %q: client %q: "+format, append([]any{rc.Name, c.ID}, a...)...))
	}
	if c.ID == "" || !validClientID(c.ID) {
		errs = append(errs, fmt.Errorf("oauth: realm %q: client ID %q must be 1-128 printable ASCII characters without spaces", rc.Name, c.ID))
		return nil, errs
	}
	cc := &clientConf{Client: c, realm: rc, grants: map[string]bool{}, scopes: map[string]bool{}, redirs: map[string]bool{}, display: c.Name}
	if cc.display == "" {
		cc.display = c.ID
	}
	switch {
	case c.Public && c.SecretHash != "":
		bad("a public client has no secret")
	case !c.Public && c.SecretHash == "":
		bad("needs a secret hash (or public: true)")
	case !c.Public:
		h, err := parseSecretHash(c.SecretHash)
		if err != nil {
			bad("secret: %v", err)
		}
		cc.secret = h
	}
	grants := c.Grants
	if len(grants) == 0 {
		// By default a client gets the realm's grants that its settings
		// allow: client_credentials only for a confidential client with
		// roles, authorization_code only with redirect URIs.
		for _, g := range rc.Grants {
			switch {
			case g == GrantClientCredentials && (c.Public || len(c.Roles) == 0):
			case g == GrantAuthorizationCode && len(c.RedirectURIs) == 0:
			default:
				grants = append(grants, g)
			}
		}
	}
	for _, g := range grants {
		if !slices.Contains(allGrants, g) {
			bad("unknown grant %q", g)
		}
		cc.grants[g] = true
	}
	if c.Public && cc.grants[GrantClientCredentials] {
		bad("a public client cannot use client_credentials")
	}
	if cc.grants[GrantClientCredentials] && len(c.Roles) == 0 {
		bad("client_credentials needs roles (the roles of the client's own tokens)")
	}
	for _, s := range c.Scopes {
		if !validScopeToken(s) {
			bad("scope %q is not a valid scope token", s)
		}
		cc.scopes[s] = true
	}
	for _, u := range c.RedirectURIs {
		if err := checkRedirectURI(u); err != nil {
			bad("redirect URI %q: %v", u, err)
		}
		cc.redirs[u] = true
		if k := loopbackKey(u); k != "" {
			if cc.loopRedirs == nil {
				cc.loopRedirs = map[string]bool{}
			}
			cc.loopRedirs[k] = true
		}
	}
	if cc.grants[GrantAuthorizationCode] && len(c.RedirectURIs) == 0 {
		bad("authorization_code needs redirect_uris")
	}
	return cc, errs
}

// checkRedirectURI accepts absolute URIs without a fragment: https, http
// on a loopback host, or a private-use scheme (RFC 8252 §7.1, native apps).
func checkRedirectURI(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case !u.IsAbs():
		return errors.New("must be absolute")
	case u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("must not have a fragment")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return errors.New("http is allowed only for loopback hosts; use https")
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host == "":
		return errors.New("needs a host")
	}
	return nil
}

// loopbackKey returns an http redirect URI on a loopback IP address
// (127.0.0.0/8, [::1]) without its port, or "" for any other URI. RFC
// 8252 §7.3: "The authorization server MUST allow any port to be
// specified at the time of the request for loopback IP redirect URIs", a
// native app listening on a port the system gives it at each sign-in;
// matched exactly, every such app was refused. The rest (path, query)
// still matches exactly; a host name, localhost too (§8.3: NOT
// RECOMMENDED), and user info do not qualify.
func loopbackKey(s string) string {
	rest, ok := strings.CutPrefix(s, "http://")
	if !ok {
		return ""
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	host := rest[:end]
	if i := strings.LastIndexByte(host, ':'); i >= 0 && i > strings.LastIndexByte(host, ']') {
		port := host[i+1:]
		for j := 0; j < len(port); j++ {
			if port[j] < '0' || port[j] > '9' {
				return ""
			}
		}
		if len(port) > 5 {
			return ""
		}
		host = host[:i]
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if ip == nil || !ip.IsLoopback() || strings.Contains(host, "[") != (ip.To4() == nil) {
		return ""
	}
	return "http://" + host + rest[end:]
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// origin returns the origin of an http(s) URL as a browser sends it in
// Origin, or "".
func origin(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return urlOrigin(u)
}

// urlOrigin is the ASCII serialization of an http(s) URL's origin (RFC
// 6454 §6.2), what a browser's Origin header holds: scheme and host in
// lower case, the port only when it is not the scheme's default. Built
// from the URL as written, "https://Dash.Example:443/cb" was an origin no
// browser sends, and its app's requests were refused 403.
func urlOrigin(u *url.URL) string {
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

func validClientID(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validScopeToken: RFC 6749 §3.3, scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func setDur(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func orDefault(s, def []string) []string {
	if len(s) == 0 {
		return def
	}
	return s
}

// ValidateIssuer checks an issuer URL as New does (check-config, and a
// reload, which must refuse what a start would).
func ValidateIssuer(issuer string) error {
	_, err := checkIssuer(issuer)
	return err
}

// checkIssuer validates Options.Issuer (RFC 8414 §2: https, no query or
// fragment; http is allowed for loopback and test addresses).
func checkIssuer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return nil, errors.New("oauth: an issuer URL is required")
	case err != nil:
		return nil, fmt.Errorf("oauth: issuer: %w", err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("oauth: issuer %q must be an http(s) URL with a host", s)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("oauth: issuer %q must not have a query, fragment or user info", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}
