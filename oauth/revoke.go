package oauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"
)

// handleRevoke is RFC 7009. A refresh token ends its whole login (family),
// and with it the access tokens issued from it; an access token is added to
// the revocation set until it expires. Unknown or invalid tokens get 200
// as §2.2 requires ("invalid tokens do not cause an error response").
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, oe := readForm(w, r)
	if oe != nil {
		writeError(w, oe)
		return
	}
	c, oe := s.authClient(r, form)
	if oe != nil {
		writeError(w, oe)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeError(w, errInvalidRequest("token is required"))
		return
	}
	ctx := r.Context()
	// The hint only orders the attempts; both kinds are recognised by form.
	if rt, ok := parseRefreshToken(tok); ok {
		e, err := s.store.Get(ctx, "rt."+rt.fam)
		if err == nil {
			var f family
			if json.Unmarshal(e.Value, &f) == nil && f.Client == c.ID && (rt.gen < f.Gen || s.refreshMatches(rt, &f)) {
				s.endFamily(ctx, rt.fam, "revoked")
				s.log.Info("oauth: refresh token revoked", "realm", f.Realm, "client", c.ID, "sub", f.Sub)
			}
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	if cl, err := s.verify(tok, s.now(), true); err == nil || errors.Is(err, ErrTokenRevoked) {
		if cl != nil && cl.ClientID != c.ID {
			writeError(w, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: "the token was issued to another client"})
			return
		}
		if cl != nil && cl.GrantID != "" && s.grantRevs.add(cl.GrantID) > maxRevokedPerGrant {
			// The login's access tokens are revoked one by one past the
			// bound: the login goes instead (one entry for all of them).
			if err := s.revoke(ctx, cl.GrantID, s.now().Add(s.cfg.Load().tokenTTL(cl.Audience, s.now())+s.skew)); err != nil {
				writeError(w, s.storeErr(err))
				return
			}
			s.log.Warn("oauth: a login's access tokens were revoked one by one past the bound; the login is revoked", "realm", cl.Audience, "client", c.ID, "sub", cl.Subject, "bound", maxRevokedPerGrant)
		} else if cl != nil {
			if err := s.revoke(ctx, cl.ID, cl.Expiry.Add(s.skew)); err != nil {
				writeError(w, s.storeErr(err))
				return
			}
			s.log.Info("oauth: access token revoked", "realm", cl.Audience, "client", c.ID, "sub", cl.Subject)
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) refreshMatches(rt refreshToken, f *family) bool {
	return rt.gen == f.Gen && secretHashHex(rt.secret) == f.Hash
}

// handleIntrospect is RFC 7662, for confidential clients (resource
// servers) of the token's realm. Refresh tokens are introspected only by
// the client that holds them.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	form, oe := readForm(w, r)
	if oe != nil {
		writeError(w, oe)
		return
	}
	c, oe := s.authClient(r, form)
	if oe != nil {
		writeError(w, oe)
		return
	}
	if c.Public {
		writeError(w, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "introspection is for confidential clients"})
		return
	}
	tok := form.Get("token")
	inactive := map[string]any{"active": false}
	if tok == "" {
		writeError(w, errInvalidRequest("token is required"))
		return
	}
	if _, ok := parseRefreshToken(tok); ok {
		f, ok := s.lookupFamily(r.Context(), tok)
		if !ok || f.Client != c.ID {
			writeJSON(w, http.StatusOK, inactive)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"active": true, "token_type": "refresh_token", "client_id": f.Client, "username": f.Sub, "sub": f.Sub,
			"scope": f.Scope, "exp": f.Exp, "iat": f.Created, "aud": f.Realm, "iss": s.issuer,
		})
		return
	}
	cl, err := s.VerifyAccessToken(tok)
	if err != nil || cl.Audience != c.realm.Name {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active": true, "token_type": "Bearer", "client_id": cl.ClientID, "username": cl.Subject, "sub": cl.Subject,
		"scope": strings.Join(cl.Scopes, " "), "exp": cl.Expiry.Unix(), "iat": cl.IssuedAt.Unix(), "aud": cl.Audience,
		"iss": cl.Issuer, "jti": cl.ID, "roles": cl.Roles,
	})
}

// handleMetadata is RFC 8414's authorization server metadata.
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Load()
	grants := map[string]bool{}
	var scopes []string
	seen := map[string]bool{}
	for _, c := range cfg.clients {
		for g := range c.grants {
			if c.can(g) {
				grants[g] = true
			}
		}
		for _, sc := range c.Scopes {
			if !seen[sc] {
				seen[sc] = true
				scopes = append(scopes, sc)
			}
		}
	}
	var gl []string
	for _, g := range allGrants {
		if grants[g] {
			if g == GrantDeviceCode {
				g = deviceGrantType
			}
			gl = append(gl, g)
		}
	}
	md := map[string]any{
		"issuer":                                s.issuer,
		"token_endpoint":                        s.endpoint("/oauth/token"),
		"jwks_uri":                              s.endpoint("/.well-known/jwks.json"),
		"grant_types_supported":                 gl,
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"revocation_endpoint":                   s.endpoint("/oauth/revoke"),
		"revocation_endpoint_auth_methods_supported":     []string{"client_secret_basic", "client_secret_post", "none"},
		"introspection_endpoint":                         s.endpoint("/oauth/introspect"),
		"introspection_endpoint_auth_methods_supported":  []string{"client_secret_basic", "client_secret_post"},
		"device_authorization_endpoint":                  s.endpoint("/oauth/device_authorization"),
		"authorization_endpoint":                         s.endpoint("/oauth/authorize"),
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": true,
	}
	if len(scopes) > 0 { // a JSON array when present (RFC 8414 §2), never null
		md["scopes_supported"] = scopes
	}
	w.Header().Set("Cache-Control", "max-age=300")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	json.NewEncoder(w).Encode(md)
}

// handleJWKS serves the public keys. Verifiers may cache them briefly; a
// new key is published SyncInterval×2 before it signs, and a verifier that
// meets an unknown kid should refetch.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "max-age="+itoa(int64(max(s.publishAhead/2, time.Second)/time.Second)))
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(s.ring.Load().jwks)
}

// maxRevokedPerGrant bounds the access tokens of one login (one refresh
// token family) revoked one by one. Each revocation is an entry of the
// revocation set until the token would have expired, stored for every
// node and read back by each sync; a client refreshing and revoking in a
// loop added about 2,900 a second (57,520 entries, 45 MB, in 20 s). Past
// the bound the login itself is revoked: every access token it issued or
// will issue is refused, and the refresh token's new access tokens with
// it, which is what revoking them one by one asked for anyway.
const maxRevokedPerGrant = 32

// grantRevocations counts, per login, the access tokens revoked one by one
// on this node. It forgets everything once it holds maxGrantRevLogins
// logins (a count that restarts only delays the collapse by another
// maxRevokedPerGrant revocations).
type grantRevocations struct {
	mu sync.Mutex
	n  map[string]int
}

const maxGrantRevLogins = 1 << 14

func (g *grantRevocations) add(gid string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil || len(g.n) >= maxGrantRevLogins {
		g.n = map[string]int{}
	}
	g.n[gid]++
	return g.n[gid]
}
