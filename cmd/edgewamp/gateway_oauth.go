package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/oauth"
)

// The OAuth2 server on the gateway: its endpoints are mounted on the
// gateway's listener (below the issuer's path), and the access tokens it
// issues are the gateway's bearer tokens.

// oauthMounts returns the gateway mounts of the OAuth2 server's endpoints:
// /oauth/ and /.well-known/ below the issuer's path, and /.well-known/ at
// the root for the RFC 8414 metadata of an issuer with a path.
func oauthMounts(o *oauthServer) map[string]http.Handler {
	h := oauthHandler{o}
	m := map[string]http.Handler{}
	for _, p := range oauthMountPatterns(o.opts.Issuer) {
		m[p] = h
	}
	return m
}

// oauthMountPatterns are the gateway patterns the OAuth2 server of issuer
// is mounted at.
func oauthMountPatterns(issuer string) []string {
	base := ""
	if u, err := url.Parse(issuer); err == nil {
		base = u.Path
	}
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	p := []string{base + "/oauth/", "/.well-known/"}
	if base != "" {
		p = append(p, base+"/.well-known/")
	}
	return p
}

// oauthHandler serves the server's endpoints once it runs, and 503
// temporarily_unavailable (RFC 6749 §5.2's code for an overloaded or
// unavailable server) until then: a mesh node whose shared store does not
// answer yet.
type oauthHandler struct{ o *oauthServer }

func (h oauthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if srv := h.o.server(); srv != nil {
		srv.Handler().ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Retry-After", "5")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"the authorization server is starting: the mesh's shared state store does not answer yet"}` + "\n"))
}

// oauthBearer adapts the OAuth2 server's verifier to the gateway: the
// token's audience is its realm, its first role the authrole. A token
// whose client, user or role a reload removed is refused, as the
// router's logins with it are (oauth.Server.StillValid).
type oauthBearer struct{ o *oauthServer }

func (v oauthBearer) VerifyBearer(_ context.Context, token string) (*gateway.Principal, error) {
	srv := v.o.server()
	if srv == nil {
		return nil, errIssuerNotReadyHTTP
	}
	c, err := srv.VerifyAccessToken(token)
	if err != nil {
		switch {
		case errors.Is(err, oauth.ErrTokenExpired):
			return nil, ownRefusal("the token has expired")
		case errors.Is(err, oauth.ErrTokenRevoked):
			return nil, ownRefusal("the token was revoked")
		case errors.Is(err, oauth.ErrTokenAhead):
			return nil, ownRefusal("the token was issued ahead of this server's clock; try again later")
		}
		return nil, errors.New("the token is not valid")
	}
	if c.Audience == "" {
		return nil, ownRefusal("the token names no realm")
	}
	// The scopes a route's auth.scopes is matched against are those of
	// the token's that its client may still have: a reload may have taken
	// some away.
	p := &gateway.Principal{Realm: c.Audience, AuthID: c.Subject, Scopes: srv.HeldScopes(c), Expires: c.Expiry,
		Claims: map[string]any{"sub": c.Subject, "iss": c.Issuer, "aud": c.Audience, "client_id": c.ClientID, "jti": c.ID}, Token: c}
	if len(c.Roles) > 0 {
		p.AuthRole = c.Roles[0]
		// The roles a route's auth.roles is matched against are those of
		// the token's that its principal still holds, not all it was
		// issued with: a reload may have taken some away.
		p.Roles = srv.HeldRoles(c)
		if !slices.Contains(p.Roles, p.AuthRole) {
			if why := v.o.withdrawn(srv, c, p.AuthRole); why != "" {
				return nil, ownRefusal(why)
			}
			// A reload between the two checks gave the role back:
			// refused this once, as the first check found it.
			return nil, ownRefusal("the role was removed")
		}
	}
	return p, nil
}

// ownRefusal is oauthBearer's refusal of a token the OAuth2 server
// verified as its own (signed by its key ring): expired, revoked, or
// withdrawn by a reload. It is final: bearerChain does not try the next
// verifier, which, given the server's public keys as gateway.bearer's
// jwks_file, verified the signature and took the token (its aud is the
// bare realm, no "wamp:<realm>", so on every realm, revoked or not).
type ownRefusal string

func (e ownRefusal) Error() string { return string(e) }

// Unwrap makes it gateway.ErrBearerStale: a token the server verified as
// its own is no guess, and its 401 is not counted against the client's
// address (the check cost a cache lookup after the token's first use).
func (e ownRefusal) Unwrap() error { return gateway.ErrBearerStale }

// errIssuerNotReadyHTTP: the OAuth2 server has not started (a mesh's
// shared store not reachable yet); the gateway answers 503 and does not
// count it against the client's address, as route does not for WAMP
// logins (errIssuerNotReady).
var errIssuerNotReadyHTTP = fmt.Errorf("%w: its shared state (the mesh's store) does not answer yet", gateway.ErrBearerUnavailable)

// RevocationIDs implements gateway.BearerRevoker: the ids under which
// oauth.Options.OnRevoke reports the token of p revoked (its jti, and its
// login's gid or its client's cut-off). None for another issuer's token.
func (v oauthBearer) RevocationIDs(p *gateway.Principal) []string {
	if c, ok := p.Token.(*oauth.Claims); ok {
		return c.RevocationIDs()
	}
	return nil
}

// Withdrawn implements gateway.BearerRevoker.
func (v oauthBearer) Withdrawn(p *gateway.Principal) string {
	c, ok := p.Token.(*oauth.Claims)
	srv := v.o.server()
	if !ok || srv == nil {
		return ""
	}
	return v.o.withdrawn(srv, c, p.AuthRole)
}

// HeldRoles implements gateway.BearerRoles: the roles of p's token that
// its principal still holds (oauth.Server.HeldRoles). Another issuer's
// token keeps the roles it was verified with.
func (v oauthBearer) HeldRoles(p *gateway.Principal) []string {
	c, ok := p.Token.(*oauth.Claims)
	srv := v.o.server()
	if !ok || srv == nil {
		return p.Roles
	}
	return srv.HeldRoles(c)
}

// withdrawn says why a verified token may no longer be used in role, or
// "": revoked, or (after a reload) its client, its user or the role no
// longer configured. StillValid tells the last three apart from a
// revocation only; the configuration tells the client which.
func (o *oauthServer) withdrawn(srv *oauth.Server, c *oauth.Claims, role string) string {
	switch err := srv.StillValid(c, role); {
	case err == nil:
		return ""
	case errors.Is(err, oauth.ErrTokenRevoked):
		return "the token was revoked"
	}
	o.mu.Lock()
	realms := o.opts.Realms
	o.mu.Unlock()
	if !slices.ContainsFunc(realms, func(r oauth.Realm) bool {
		return r.Name == c.Audience && slices.ContainsFunc(r.Clients, func(cl oauth.Client) bool { return cl.ID == c.ClientID })
	}) {
		return "the client was removed"
	}
	if _, ok := o.users.Roles(c.Audience, c.Subject); !ok && c.Subject != c.ClientID {
		return "the user was removed"
	}
	return "the role was removed"
}
