package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/oauth"
)

// The OAuth2 server on the gateway: its endpoints are mounted on the
// gateway's listener (below the issuer's path), and the access tokens it
// issues are the gateway's bearer tokens.

// oauthMounts returns the gateway mounts of the OAuth2 server's endpoints:
// /oauth/ and /.well-known/ below the issuer's path, and /.well-known/ at
// the root for the RFC 8414 metadata of an issuer with a path.
func oauthMounts(srv *oauth.Server) map[string]http.Handler {
	h := srv.Handler()
	base := ""
	if u, err := url.Parse(srv.Issuer()); err == nil {
		base = u.Path
	}
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	m := map[string]http.Handler{base + "/oauth/": h, "/.well-known/": h}
	if base != "" {
		m[base+"/.well-known/"] = h
	}
	return m
}

// oauthBearer adapts the OAuth2 server's verifier to the gateway: the
// token's audience is its realm, its first role the authrole.
type oauthBearer struct{ srv *oauth.Server }

func (v oauthBearer) VerifyBearer(_ context.Context, token string) (*gateway.Principal, error) {
	c, err := v.srv.VerifyAccessToken(token)
	if err != nil {
		switch {
		case errors.Is(err, oauth.ErrTokenExpired):
			return nil, errors.New("the token has expired")
		case errors.Is(err, oauth.ErrTokenRevoked):
			return nil, errors.New("the token was revoked")
		}
		return nil, errors.New("the token is not valid")
	}
	if c.Audience == "" {
		return nil, errors.New("the token names no realm")
	}
	p := &gateway.Principal{Realm: c.Audience, AuthID: c.Subject, Roles: c.Roles, Scopes: c.Scopes, Expires: c.Expiry,
		Claims: map[string]any{"sub": c.Subject, "iss": c.Issuer, "aud": c.Audience, "client_id": c.ClientID, "jti": c.ID}}
	if len(c.Roles) > 0 {
		p.AuthRole = c.Roles[0]
	}
	return p, nil
}
