package oauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
)

// login is whom a token is issued to.
type login struct {
	client *clientConf
	sub    string
	roles  []string
	scope  string
	// gid and fam, when set, are the grant id and refresh-token family id
	// to use (the authorization code grant picks them, issues, and then
	// records them on the code, so that a second use of the code can
	// revoke what the first one got).
	gid, fam string
}

// tokenResponse is RFC 6749 §5.1's successful response.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// handleToken is the token endpoint.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	form, oe := readForm(w, r)
	if oe != nil {
		writeError(w, oe)
		return
	}
	gt := form.Get("grant_type")
	grant := gt
	if gt == deviceGrantType {
		grant = GrantDeviceCode
	}
	switch gt {
	case GrantPassword, GrantClientCredentials, GrantRefreshToken, deviceGrantType, GrantAuthorizationCode:
		// The device grant is its URN only (RFC 8628 §3.4): its
		// configuration name, device_code, is no grant type, and was
		// taken for it.
	case "":
		writeError(w, errInvalidRequest("grant_type is required"))
		return
	default:
		writeError(w, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "grant_type " + gt + " is not supported"})
		return
	}
	c, at, oe := s.authClient(r, form)
	if oe != nil {
		writeError(w, oe)
		return
	}
	defer s.done(&at)
	if !c.can(grant) {
		writeError(w, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: "the client may not use grant_type " + gt})
		return
	}
	var resp *tokenResponse
	switch grant {
	case GrantPassword:
		s.done(&at) // checkUser takes its own place for the password
		resp, oe = s.grantPassword(r, c, form.Get("username"), form.Get("password"), form.Get("scope"))
	case GrantClientCredentials:
		resp, oe = s.grantClientCredentials(r.Context(), c, form.Get("scope"))
	case GrantRefreshToken:
		resp, oe = s.grantRefresh(r.Context(), c, form.Get("refresh_token"), form.Get("scope"))
	case GrantDeviceCode:
		resp, oe = s.grantDevice(r.Context(), c, form.Get("device_code"))
	case GrantAuthorizationCode:
		resp, oe = s.grantAuthCode(r.Context(), c, form)
	}
	if oe != nil && oe.unknown && c.Public {
		// A public client's ID is no secret: anyone may send guesses as
		// it. A confidential client's were sent with its secret, and an
		// unknown token there is most often a login ended meanwhile (a
		// backend holding many users' tokens would lock itself out).
		s.guessFailed(r, &at, grant, c.ID, oe.desc)
	}
	if oe != nil {
		writeError(w, oe)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) grantPassword(r *http.Request, c *clientConf, username, password, scope string) (*tokenResponse, *oauthError) {
	sc, oe := grantScope(c, scope)
	if oe != nil {
		return nil, oe
	}
	roles, oe := s.checkUser(r, c.realm.Name, username, password)
	if oe != nil {
		return nil, oe
	}
	return s.respond(r.Context(), &login{client: c, sub: username, roles: roles, scope: sc}, true)
}

func (s *Server) grantClientCredentials(ctx context.Context, c *clientConf, scope string) (*tokenResponse, *oauthError) {
	sc, oe := grantScope(c, scope)
	if oe != nil {
		return nil, oe
	}
	// RFC 6749 §4.4.3: "A refresh token SHOULD NOT be included."
	return s.respond(ctx, &login{client: c, sub: c.ID, roles: c.Roles, scope: sc}, false)
}

func (s *Server) grantRefresh(ctx context.Context, c *clientConf, raw, scope string) (*tokenResponse, *oauthError) {
	if raw == "" {
		return nil, errInvalidRequest("refresh_token is required")
	}
	// The access token is minted before the family moves on: a refresh
	// token is used once, so a failure after the rotation (no signing key
	// active, after the clock stepped back) would leave the client with
	// neither token, and its retry with the old one would be taken for
	// reuse and end the login.
	var sc, at string
	var exp time.Time
	next, oe := s.rotate(ctx, c, raw, scope, func(f *family) *oauthError {
		var oe *oauthError
		if sc, oe = subsetScope(f.Scope, scope); oe != nil {
			return oe
		}
		// A principal this node does not know (or without a role here)
		// is refused, and the login left alone: the node's configuration
		// may lag (a rolling reload that adds the user), and ending the
		// login here revoked it on every node, the WAMP sessions it
		// opened included. Where the user is gone everywhere, the family
		// cannot refresh anywhere and expires.
		l, oe := s.storedLogin(c, f.Realm, f.Sub, nil, true, sc)
		if oe != nil {
			return oe
		}
		// The answer's scope is the token's (RFC 6749 §5.1): cut to what
		// the client may still have, not what the family was granted.
		sc = l.scope
		var err error
		if at, exp, err = s.mint(l, f.Gid); err != nil {
			if errors.Is(err, errTokenTooLong) {
				return s.mintErr(l, err) // the refresh token stays valid
			}
			s.log.Error("oauth: no access token could be signed for a refresh; the refresh token stays valid", "client", c.ID, "err", err)
			return s.storeErr(err)
		}
		f.ATExp = max(f.ATExp, exp.Unix()) // written with the rotation
		return nil
	})
	if oe != nil {
		return nil, oe
	}
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: expiresIn(exp, s.now()), RefreshToken: next, Scope: sc}, nil
}

// storedLogin re-validates what a stored record says about a login (a
// device approval, an authorization code, a refresh-token family) before
// a token is minted from it. The record may come from another node of a
// mesh, an older version or a damaged store, so it is trusted no further
// than the configuration allows now: it must be of the client's realm and
// name a principal that still exists; the roles are those of the record
// that the principal still has (every current role for a family, which
// records none: allRoles); the scope is cut to what the client may have,
// and a scope cut to nothing is refused (invalid_scope). It does not
// block.
func (s *Server) storedLogin(c *clientConf, realm, sub string, recRoles []string, allRoles bool, scope string) (*login, *oauthError) {
	if realm != c.realm.Name || sub == "" {
		s.log.Warn("oauth: a stored grant does not match its client's realm or names no principal: refused", "client", c.ID, "realm", c.realm.Name)
		return nil, errInvalidGrant("the grant is not valid for this client")
	}
	roles, ok := s.users.Roles(realm, sub)
	if !allRoles {
		roles = slices.DeleteFunc(slices.Clone(recRoles), func(r string) bool { return !slices.Contains(roles, r) })
	}
	if !ok || len(roles) == 0 {
		return nil, errInvalidGrant("the user no longer exists or has none of the roles granted")
	}
	var sc []string
	for _, x := range strings.Fields(scope) {
		if c.scopes[x] {
			sc = append(sc, x)
		}
	}
	if len(sc) == 0 && strings.TrimSpace(scope) != "" {
		// Every scope granted was taken from the client (a reload). A
		// token of no scope would be answered without "scope", which RFC
		// 6749 §5.1 reads as the scope requested (for a refresh, the
		// grant's); "scope": "" is read the same way by clients that test
		// the field's truth (oauthlib). Refused instead, the stored grant
		// left alone (a refresh token stays valid, should the scopes come
		// back).
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "none of the scopes granted may be used by this client any more"}
	}
	return &login{client: c, sub: sub, roles: roles, scope: strings.Join(sc, " ")}, nil
}

// respond issues an access token, and a refresh token when the client may
// have one and withRefresh.
func (s *Server) respond(ctx context.Context, l *login, withRefresh bool) (*tokenResponse, *oauthError) {
	resp := &tokenResponse{TokenType: "Bearer", Scope: l.scope}
	refresh := withRefresh && l.client.can(GrantRefreshToken)
	if refresh && l.gid == "" {
		lg := *l
		lg.gid = randomToken(16) // newFamily's, picked here
		l = &lg
	}
	// The access token is signed before the family is made: one that
	// cannot be (too long to verify, errTokenTooLong) leaves nothing. Made
	// first, the family was indexed among the user's logins, and at
	// max_refresh_tokens that ended the user's oldest live login, then
	// the family was deleted: each refused attempt ended another device.
	at, exp, err := s.mint(l, l.gid)
	if err != nil {
		return nil, s.mintErr(l, err)
	}
	if refresh {
		rt, _, err := s.newFamily(ctx, l)
		if tm := (*tooManyLogins)(nil); errors.As(err, &tm) {
			return nil, tm.oauthErr()
		}
		if err != nil {
			return nil, s.storeErr(err)
		}
		resp.RefreshToken = rt
	}
	resp.AccessToken, resp.ExpiresIn = at, expiresIn(exp, s.now())
	s.log.Debug("oauth: token issued", "realm", l.client.realm.Name, "client", l.client.ID, "sub", l.sub, "refresh", resp.RefreshToken != "")
	return resp, nil
}

// mint signs an access token for a login.
func (s *Server) mint(l *login, gid string) (string, time.Time, error) {
	now := s.now()
	// exp is whole seconds: rounded up, so that the token lives its
	// lifetime at least. Truncated, one issued at x.999 s lived up to a
	// second less than its expires_in said (a 1 s token, a millisecond).
	exp := now.Add(l.client.realm.AccessTokenLifetime)
	if t := exp.Truncate(time.Second); t.Before(exp) {
		exp = t.Add(time.Second)
	}
	iat := now.Unix()
	if gid == "" {
		iat = s.pastCut(l.client.ID, l.sub, iat)
	}
	tok, err := s.issue(&jwtClaims{
		Iss: s.issuer, Sub: l.sub, Aud: audience(l.client.realm.Name),
		Exp: exp.Unix(), Iat: iat, Jti: randomToken(16),
		Scope: l.scope, Roles: l.roles, ClientID: l.client.ID, Gid: gid,
	})
	return tok, exp, err
}

// pastCut returns the iat of a token without a login the client issues
// to sub now (iat, unix): past the cut-off of the client's tokens to sub
// when that is at or after now. A cut-off covers the token it was asked
// to revoke (revokeClient), whose iat, by the clock of a node ahead of
// this one, may be up to the skew past this node's now: a token issued
// here after the revocation, with this clock's iat, fell under it and
// was refused as revoked, on every node, for as long as the clocks
// differ. Its iat is moved to the second after the cut-off (no further
// than the skew ahead, which every node takes), its expiry is not.
func (s *Server) pastCut(client, sub string, iat int64) int64 {
	cut := int64(-1)
	for _, k := range []string{cutKey(client, sub), client} {
		if v, ok := s.cuts.Load(k); ok {
			cut = max(cut, v.(clientCut).cut)
		}
	}
	if cut < iat {
		return iat
	}
	return min(cut+1, iat+int64(s.skew/time.Second))
}

// mintErr answers a failure to mint l's access token: a token too long
// for the server to verify is a 400 invalid_scope (fewer scopes may fit;
// the log names the client), anything else a store failure.
func (s *Server) mintErr(l *login, err error) *oauthError {
	if !errors.Is(err, errTokenTooLong) {
		return s.storeErr(err)
	}
	s.log.Error("oauth: an access token would be too long for the server to verify (its scopes and roles): not issued", "realm", l.client.realm.Name, "client", l.client.ID, "err", err)
	return &oauthError{status: http.StatusBadRequest, code: "invalid_scope", desc: "the access token would be too long (over 8 KiB): ask for fewer scopes"}
}

// expiresIn is a token's expires_in: whole seconds it lives at least
// (rounded down).
func expiresIn(exp, now time.Time) int {
	return int(exp.Sub(now) / time.Second)
}

// scopeList splits a scope string.
func scopeList(s string) []string { return strings.Fields(s) }
