package oauth

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// handleRevoke is RFC 7009. A refresh token ends its whole login (family),
// and with it the access tokens issued from it; an access token is added to
// the revocation set until it expires. Unknown or invalid tokens get 200
// as §2.2 requires ("invalid tokens do not cause an error response"); a
// token of ours issued to another client, access or refresh, is refused
// with unauthorized_client (§2.1).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	form, oe := readForm(w, r)
	if oe != nil {
		writeError(w, oe)
		return
	}
	c, at, oe := s.authClient(r, form)
	if oe != nil {
		writeError(w, oe)
		return
	}
	defer s.done(&at)
	tok := form.Get("token")
	if tok == "" {
		writeError(w, errInvalidRequest("token is required"))
		return
	}
	ctx := r.Context()
	// The hint only orders the attempts; both kinds are recognised by form.
	if rt, ok := parseRefreshToken(tok); ok {
		e, err := s.store.Get(ctx, "rt."+rt.fam)
		if err != nil && !errors.Is(err, ErrNotFound) {
			// Not found is answered 200; not known, not as if the login
			// had ended (an app's sign-out that did not happen).
			writeError(w, s.storeErr(err))
			return
		}
		// Not found is not counted (as at the token endpoint, rotate):
		// most often a login ended, signed out again (RFC 7009 §2.2).
		if err == nil {
			var f family
			if json.Unmarshal(e.Value, &f) == nil && (rt.gen < f.Gen || s.refreshMatches(rt, &f)) {
				if f.Client != c.ID {
					// As for an access token (RFC 7009 §2.1): refused,
					// not answered as if the login had ended.
					writeError(w, errNotYourToken)
					return
				}
				// The grant first: a failure leaves the family for the
				// client's retry (503 says to try again). Deleted first,
				// the retry found no login and answered 200, the grant
				// revoked on this node alone, and the login's access
				// tokens went on working on the others until they
				// expired.
				// Not tried again (most apps ignore a sign-out's errors),
				// the family is ended by the sync (storeUnstored).
				if err := s.revokeGrantUntil(ctx, f.Realm, f.Gid, f.ATExp); err != nil {
					s.unended.Store(rt.fam, unendedFamily{gid: f.Gid, exp: f.Exp})
					writeError(w, s.storeErr(err))
					return
				}
				if err := s.endFamily(ctx, rt.fam, "revoked"); err != nil {
					s.unended.Store(rt.fam, unendedFamily{gid: f.Gid, exp: f.Exp})
					writeError(w, s.storeErr(err))
					return
				}
				s.log.Info("oauth: refresh token revoked", "realm", f.Realm, "client", c.ID, "sub", f.Sub)
			}
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	cl, err := s.verify(tok, s.now(), true)
	if errors.Is(err, ErrTokenSignature) && s.checkedForgery(tok) {
		// A signature checked for nothing (~100 µs, uncached): counted
		// as a failed attempt of its address, so that a flood of them is
		// refused by authClient's lockout before any check.
		s.guessFailed(r, &at, "access_token", c.ID, "a forged access token (its signature does not verify)")
	}
	if cl == nil || err != nil && !errors.Is(err, ErrTokenRevoked) {
		w.WriteHeader(http.StatusOK) // not a token of ours: nothing to revoke
		return
	}
	if cl.ClientID != c.ID {
		writeError(w, errNotYourToken)
		return
	}
	switch {
	case s.revokedToExpiry(cl):
		// Already refused until it expires (on its own, with its login or
		// by its client's cut-off): nothing to add.
	case cl.GrantID != "" && !s.userRevs.take(revUserKey(cl), maxRevokedPerUser, s.now().Unix(), cl.Expiry.Add(s.skew).Unix()):
		// The user's access tokens with this client are revoked one by
		// one past the bound (across its logins): the token's login goes
		// instead (its refresh token, and one entry for all its access
		// tokens).
		if err := s.endGrant(ctx, cl); err != nil {
			writeError(w, s.storeErr(err))
			return
		}
		s.log.Warn("oauth: a user's access tokens were revoked one by one past the bound; the token's login is revoked", "realm", cl.Audience, "client", c.ID, "sub", cl.Subject, "bound", maxRevokedPerUser)
	case cl.GrantID == "" && !s.clientRevs.take(cutKey(cl.ClientID, cl.Subject), maxRevokedPerClient, s.now().Unix(), cl.Expiry.Add(s.skew).Unix()):
		// A subject's tokens without a login from one client, revoked
		// one by one past the bound (entries still in the set): every
		// such token it was issued so far goes at once (one entry per
		// client and subject, moved on by later ones).
		first, err := s.revokeClient(ctx, cl)
		if err != nil {
			writeError(w, s.storeErr(err))
			return
		}
		if first {
			s.log.Warn("oauth: a subject's access tokens without a login were revoked one by one past the bound; all the client issued to it so far are revoked", "realm", cl.Audience, "client", c.ID, "sub", cl.Subject, "bound", maxRevokedPerClient)
		} else {
			s.log.Info("oauth: access token revoked, with the others the client issued to its subject so far", "realm", cl.Audience, "client", c.ID, "sub", cl.Subject)
		}
	default:
		if err := s.revoke(ctx, cl.ID, cl.Expiry.Add(s.skew)); err != nil {
			// Not stored: its place is given back (kept, failures of a
			// store not answering for a moment filled the bound).
			if cl.GrantID != "" {
				s.userRevs.giveBack(revUserKey(cl), cl.Expiry.Add(s.skew).Unix())
			} else {
				s.clientRevs.giveBack(cutKey(cl.ClientID, cl.Subject), cl.Expiry.Add(s.skew).Unix())
			}
			writeError(w, s.storeErr(err))
			return
		}
		s.log.Info("oauth: access token revoked", "realm", cl.Audience, "client", c.ID, "sub", cl.Subject)
	}
	w.WriteHeader(http.StatusOK)
}

// errNotYourToken refuses to revoke a token issued to another client.
var errNotYourToken = &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", desc: "the token was issued to another client"}

// revokedToExpiry reports whether there is nothing to add to revoke cl:
// it has expired, or its jti, its login (gid) or, without a login, its
// client's cut-off is in the revocation set until it expires. A token
// whose login was revoked for less than the token's lifetime (by a node
// that knows a shorter lifetime: a reload, or a node restarted since) is
// not: revoking it stores its jti.
func (s *Server) revokedToExpiry(cl *Claims) bool {
	if !s.now().Before(cl.Expiry.Add(s.skew)) {
		return true // expired on every node: nothing left to revoke
	}
	exp := cl.Expiry.Unix()
	if v, ok := s.revoked.Load(cl.ID); ok && v.(int64) >= exp && !s.isUnstored(cl.ID) {
		return true
	}
	if cl.GrantID != "" {
		v, ok := s.revoked.Load(cl.GrantID)
		return ok && v.(int64) >= exp && !s.isUnstored(cl.GrantID)
	}
	for _, k := range []string{cutKey(cl.ClientID, cl.Subject), cl.ClientID} {
		if v, ok := s.cuts.Load(k); ok && cl.IssuedAt.Unix() <= v.(clientCut).cut && v.(clientCut).exp >= exp && !s.isUnstored(unstoredCut(k)) {
			return true
		}
	}
	return false
}

// isUnstored reports whether a revocation held here (an id, or a cut-off's
// unstoredCut key) failed to be written to the store: not done for the
// other nodes, so that revoking again writes it.
func (s *Server) isUnstored(k string) bool {
	_, ok := s.unstored.Load(k)
	return ok
}

// endGrant revokes the login an access token came from: its refresh-token
// family, found through its user's index, is deleted (its refresh token
// no longer works, so the login mints nothing more), then its grant id is
// revoked for as long as an access token it issued can live. The grant is
// revoked even when the family could not be deleted (the error is
// returned, joined).
func (s *Server) endGrant(ctx context.Context, cl *Claims) error {
	id, err := s.grantFamily(ctx, cl.Audience, cl.ClientID, cl.Subject, cl.GrantID)
	if err != nil {
		return err
	}
	atExp := cl.Expiry.Unix()
	if id != "" {
		// The family says how long its access tokens live, by the
		// lifetimes of the nodes that issued them (family.ATExp).
		if e, err := s.store.Get(ctx, "rt."+id); err == nil {
			var f family
			if json.Unmarshal(e.Value, &f) == nil {
				atExp = max(atExp, f.ATExp)
			}
		}
		if err := s.store.Delete(ctx, "rt."+id, 0); err != nil && !errors.Is(err, ErrNotFound) {
			// The family lives on (its refresh token works); the grant
			// is revoked all the same, as endFamily does, so that the
			// login's access tokens, the one asked for among them, are
			// refused, and the error says to try again.
			return errors.Join(err, s.revokeGrantUntil(ctx, cl.Audience, cl.GrantID, atExp))
		}
	}
	return s.revokeGrantUntil(ctx, cl.Audience, cl.GrantID, atExp)
}

// grantFamily returns the id of the refresh-token family of (realm,
// client, sub) whose grant id is gid, or "" when there is none (ended,
// expired, or a login without a refresh token). It looks through the
// user's index, at most as many of its newest entries as an honest node
// keeps.
func (s *Server) grantFamily(ctx context.Context, realm, client, sub, gid string) (string, error) {
	e, err := s.store.Get(ctx, indexKey(realm, client, sub))
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var idx famIndex
	if json.Unmarshal(e.Value, &idx) != nil {
		return "", nil
	}
	bound := 2*DefaultMaxRefreshTokens + 8
	if rc := s.cfg.Load().realms[realm]; rc != nil {
		bound = 2*rc.MaxRefreshTokens + 8
	}
	slices.SortStableFunc(idx.Fams, func(a, b famRef) int { return cmp.Compare(b.Created, a.Created) })
	for _, r := range idx.Fams[:min(len(idx.Fams), bound)] {
		fe, err := s.store.Get(ctx, "rt."+r.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		var f family
		if json.Unmarshal(fe.Value, &f) == nil && f.Gid == gid && f.Realm == realm && f.Client == client && f.Sub == sub {
			return r.ID, nil
		}
	}
	return "", nil
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
	c, at, oe := s.authClient(r, form)
	if oe != nil {
		writeError(w, oe)
		return
	}
	defer s.done(&at)
	if c.Public {
		writeError(w, clientErr(r, "introspection is for confidential clients"))
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
		if !ok || f.Client != c.ID || !s.familyUsable(f, c) {
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
	// A token the router refuses since a reload (its client or principal
	// removed, or every role it names taken away: StillValid) is not
	// active; the roles reported are those its principal still holds, the
	// scopes those its client may still have.
	roles := s.HeldRoles(cl)
	if len(roles) == 0 {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"active": true, "token_type": "Bearer", "client_id": cl.ClientID, "username": cl.Subject, "sub": cl.Subject,
		"scope": strings.Join(s.HeldScopes(cl), " "), "exp": cl.Expiry.Unix(), "iat": cl.IssuedAt.Unix(), "aud": cl.Audience,
		"iss": cl.Issuer, "jti": cl.ID, "roles": roles,
	})
}

// familyUsable reports whether a refresh token's family, held by client c,
// could still be refreshed under the current configuration: of c's realm,
// its user still there with a role (what grantRefresh's storedLogin asks).
func (s *Server) familyUsable(f *family, c *clientConf) bool {
	if f.Realm != c.realm.Name || f.Sub == "" || s.users == nil {
		return false
	}
	roles, ok := s.users.Roles(f.Realm, f.Sub)
	return ok && len(roles) > 0
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

// maxRevokedPerUser bounds the access tokens of one user's logins with
// one client (realm, client, sub; tokens with a gid) revoked one by one
// and still in the revocation set. Each such revocation is an entry of the
// set until the token would have expired, stored for every node and read
// back by each sync; a client refreshing and revoking in a loop added
// about 2,900 a second (57,520 entries, 45 MB, in 20 s). Past the bound,
// revoking another of the user's tokens revokes its login instead
// (endGrant): the login's refresh token is ended, so it mints nothing
// more, and every access token it issued is refused by one entry, which
// is what revoking them one by one asked for anyway. (Only revoking the
// grant id let the refresh token go on minting tokens that outlived the
// grant's entry.)
//
// The bound is per user rather than per login: counted per login (gid), a
// user who signed in again started a new count, and 20 logins of 31
// revocations each left 630 entries. Per user, the set holds at most
// maxRevokedPerUser of the user's tokens revoked on their own (per node),
// and past it one entry per login revoked, as logging out of each would
// leave. Ending just the token's login, not all of the user's, keeps the
// user's other sessions with the client (other devices) out of it until
// their own tokens are revoked. The count follows the entries: one whose
// token expired no longer counts, so that a client revoking now and then
// never reaches the bound.
const maxRevokedPerUser = 32

// liveRevocations counts, per key, the access tokens revoked one by one
// on this node whose entries are still in the revocation set: per (realm,
// client, user) for tokens of logins (Server.userRevs, bound
// maxRevokedPerUser), per client for tokens without a login
// (Server.clientRevs, bound maxRevokedPerClient). An entry stops counting
// when its token expires. It forgets everything once it holds maxRevKeys
// keys (a count that restarts only delays the collapse by another bound's
// worth of revocations).
type liveRevocations struct {
	mu sync.Mutex
	m  map[string][]int64 // key → the expiries (unix) of its live entries
}

const maxRevKeys = 1 << 14

// take counts an entry of key's that lives until exp, and reports true;
// or, when key has bound entries live at now, counts nothing and reports
// false.
func (u *liveRevocations) take(key string, bound int, now, exp int64) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil || len(u.m) >= maxRevKeys && u.m[key] == nil {
		u.m = map[string][]int64{}
	}
	live := slices.DeleteFunc(u.m[key], func(e int64) bool { return e <= now })
	if len(live) >= bound {
		u.m[key] = live
		return false
	}
	u.m[key] = append(live, exp)
	return true
}

// giveBack uncounts an entry of key's that take counted until exp (its
// revocation was not stored).
func (u *liveRevocations) giveBack(key string, exp int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if i := slices.Index(u.m[key], exp); i >= 0 {
		u.m[key] = slices.Delete(u.m[key], i, i+1)
	}
}

// revUserKey is the key of a token's user in Server.userRevs.
func revUserKey(cl *Claims) string {
	return cl.Audience + "\x00" + cl.ClientID + "\x00" + cl.Subject
}

// maxRevokedPerClient bounds, likewise, the access tokens without a login
// (client_credentials; password grants of clients without refresh
// tokens) one client issued to one subject (the client itself for
// client_credentials, else the user) revoked one by one and still in the
// revocation set: a confidential client minting and revoking in a loop
// added about 5,400 entries a second (21,756, 36 MB of heap, in 4 s). As
// per user, an entry stops counting when its token expires (counted since
// the process started, 32 sign-outs spread over hours made every later one
// revoke all the client's tokens without a login). Past the bound, every
// such token the client issued to that subject up to now is revoked by one
// record, rv.client.<client id, base64url>.<SHA-256 of the subject, hex>,
// holding the cut-off (an issue time, in seconds) until the longest token
// of the client's realm issued by then has expired; each later revocation
// moves the cut-off on (at most once a second). Tokens issued after it,
// the client's tokens of a login (gid), and the tokens it issued to other
// subjects are not touched. (Counted and cut per client, one user of a
// public client, which anyone may act as, revoking 33 of her own tokens
// revoked every other user's, and kept doing so once a second.)
const maxRevokedPerClient = 32

// aheadRevs prefixes the Server.clientRevs key of a client's tokens
// without a login issued to a subject (cutKey) to count those revoked
// past maxRevokedPerClient by their jti, issued ahead of the revoking
// node's clock by the skew or more (revokeClient). A client ID is
// printable ASCII: no other key starts so.
const aheadRevs = "\x00ahead\x00"

// clientCut is a cut-off in the revocation set (Server.cuts): the tokens
// without a gid the client issued to the subject (or, for a record of an
// older release, to anyone) at or before cut (unix seconds) are revoked;
// the entry lives until exp.
type clientCut struct{ cut, exp int64 }

// cutKey is the Server.cuts and Server.clientRevs key of a client's tokens
// without a login issued to sub. A client ID has no space; the key of an
// older release's per-client record is the client ID alone.
func cutKey(clientID, sub string) string { return clientID + " " + sub }

// clientCutPrefix starts the store key (after "rv.") and the OnRevoke id
// of a cut-off; neither a jti nor a gid (base64url) has a dot or a colon.
const clientCutPrefix = "client."

// cutStoreID is the store key (after "rv.") of the cut-off of clientID's
// tokens issued to sub: at most 7+171+1+64 bytes.
func cutStoreID(clientID, sub string) string {
	return clientCutPrefix + base64.RawURLEncoding.EncodeToString([]byte(clientID)) + "." + hashHex(sub)
}

// ClientRevocationID is the id Options.OnRevoke reports when a per-client
// cut-off (written by an older release) was set or moved on: every access
// token without a login (no GrantID) of that client issued at or before
// the cut-off is revoked. Unlike a jti or a gid it does not revoke every
// token it names: ask StillValid about each (a token issued after the
// cut-off stays valid).
func ClientRevocationID(clientID string) string { return "client:" + clientID }

// subjectRevocationID is the id Options.OnRevoke reports when the cut-off
// of a client's tokens without a login issued to sub was set or moved on;
// as ClientRevocationID, it names tokens only some of which are revoked.
func subjectRevocationID(clientID, sub string) string { return "client:" + cutKey(clientID, sub) }

// IsClientRevocationID reports whether an id OnRevoke reported is a
// cut-off (of a client's tokens without a login, issued to one subject or
// to any) rather than a jti or gid.
func IsClientRevocationID(id string) bool { return strings.HasPrefix(id, "client:") }

// RevocationIDs returns the ids Options.OnRevoke may report for a token:
// its jti, and its gid or, without a gid, the cut-offs of its client's
// tokens (those issued to its subject, and an older release's for all).
func (c *Claims) RevocationIDs() []string {
	if c.GrantID != "" {
		return []string{c.ID, c.GrantID}
	}
	return []string{c.ID, subjectRevocationID(c.ClientID, c.Subject), ClientRevocationID(c.ClientID)}
}

// setCut raises the cut-off of key (cutKey, or a client ID for an older
// release's record) and its expiry in the revocation set to at least cut
// and exp; it reports whether the cut-off moved (tokens were newly
// revoked). Concurrent callers may each see it move: a duplicate OnRevoke
// only re-checks sessions.
func (s *Server) setCut(key string, cut, exp int64) bool {
	old, known := s.cuts.Load(key)
	var o clientCut
	if known {
		o = old.(clientCut)
		if o.cut >= cut && o.exp >= exp {
			return false
		}
	}
	s.cuts.Store(key, clientCut{cut: max(o.cut, cut), exp: max(o.exp, exp)})
	return !known || cut > o.cut
}

// revokeClient revokes every token without a login cl's client issued to
// cl's subject up to now: their cut-off, here at once and in the store
// for the other nodes. first: there was no such cut-off on this node.
func (s *Server) revokeClient(ctx context.Context, cl *Claims) (first bool, err error) {
	now := s.now()
	// At least the token asked about: issued by a node whose clock is
	// ahead of this one's, its iat is after this node's now, and a cut-off
	// at now left it valid (the revocation answered 200).
	cut := max(now.Unix(), cl.IssuedAt.Unix())
	if most := now.Add(s.skew).Unix() - 1; cut > most && s.clientRevs.take(aheadRevs+cutKey(cl.ClientID, cl.Subject), maxRevokedPerClient, now.Unix(), cl.Expiry.Add(s.skew).Unix()) {
		// Issued ahead by the skew or more (revoking takes such a token:
		// a node whose clock leads by minutes issued it, or the clock
		// stepped back since): a cut-off at its iat revoked every token
		// this node issued to the subject until its clock got there
		// (pastCut moves a token's iat the skew ahead at most), on every
		// node. The cut-off stays within the skew, and the token is
		// revoked by its jti: one entry past the bound, itself bounded
		// (unbounded, a client minting on a node whose clock leads and
		// revoking elsewhere in a loop added an entry a revocation, as
		// before the bound); past that bound, the cut-off goes to its
		// iat.
		cut = most
		if err := s.revoke(ctx, cl.ID, cl.Expiry.Add(s.skew)); err != nil {
			// Not stored: the place is given back, as handleRevoke's.
			s.clientRevs.giveBack(aheadRevs+cutKey(cl.ClientID, cl.Subject), cl.Expiry.Add(s.skew).Unix())
			return false, err
		}
	}
	exp := max(now.Add(s.cfg.Load().tokenTTL(cl.Audience, now)+s.skew).Unix(), cl.Expiry.Add(s.skew).Unix())
	ck := cutKey(cl.ClientID, cl.Subject)
	_, had := s.cuts.Load(ck)
	if s.setCut(ck, cut, exp) && s.onRevoke != nil {
		s.onRevoke([]string{subjectRevocationID(cl.ClientID, cl.Subject)})
	}
	// Held here at once; marked unstored until its record is written (as
	// revoke's ids), so that a retry writes it.
	defer func() {
		if err != nil {
			s.unstored.Store(unstoredCut(ck), struct{}{})
		} else {
			s.unstored.Delete(unstoredCut(ck))
		}
	}()
	key := "rv." + cutStoreID(cl.ClientID, cl.Subject)
	ttl := time.Unix(exp, 0).Sub(now) + s.skew
	for range 5 {
		e, err := s.store.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			b, _ := json.Marshal(revRecord{Exp: exp, Client: cl.ClientID, Sub: cl.Subject, Cut: cut})
			if _, err = s.store.Create(ctx, key, b, ttl); !errors.Is(err, ErrExists) {
				return !had, err
			}
			continue
		}
		if err != nil {
			return !had, err
		}
		var r revRecord
		mine := json.Unmarshal(e.Value, &r) == nil && r.Client == cl.ClientID && r.Sub == cl.Subject
		if mine && r.Cut >= cut && r.Exp >= exp {
			return !had, nil // another node got there first
		}
		if mine && r.Exp > now.Unix() {
			cut, exp = max(cut, r.Cut), max(exp, r.Exp)
		}
		b, _ := json.Marshal(revRecord{Exp: exp, Client: cl.ClientID, Sub: cl.Subject, Cut: cut})
		if _, err = s.store.Update(ctx, key, b, e.Revision, time.Unix(exp, 0).Sub(now)+s.skew); err == nil {
			return !had, nil
		}
		if !errors.Is(err, ErrRevision) && !errors.Is(err, ErrNotFound) {
			return !had, err
		}
	}
	return !had, errors.New("oauth: the cut-off's revocation record keeps changing")
}
