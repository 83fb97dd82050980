package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"time"

	"github.com/edgewamp/edgewamp/internal/errdesc"
)

// The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636), for
// browser dashboards and native apps. Only S256 is accepted (RFC 7636
// §4.2's plain method protects nothing against an attacker who sees the
// request), and the redirect URI must match a registered one exactly, but
// for the port of a loopback IP one (RFC 8252 §7.3).
// Codes live a minute, are stored by hash (ac.<SHA-256>), and are redeemed
// once: a second redemption revokes what the first one obtained
// (RFC 6749 §4.1.2).

// authzRequest is a validated authorization request.
type authzRequest struct {
	client        *clientConf
	redirect      string // the effective redirect URI
	redirectGiven bool   // redirect_uri was in the request
	scope         string
	state         string
	challenge     string
}

type codeRec struct {
	Realm         string   `json:"realm"`
	Client        string   `json:"client"`
	Redirect      string   `json:"redirect"`
	RedirectGiven bool     `json:"redirect_given"`
	Scope         string   `json:"scope,omitempty"`
	Challenge     string   `json:"challenge"`
	Sub           string   `json:"sub"`
	Roles         []string `json:"roles"`
	Exp           int64    `json:"exp"`
	Used          bool     `json:"used,omitempty"`
	Gid           string   `json:"gid,omitempty"`
	Fam           string   `json:"fam,omitempty"`
	// Revoked: a second redemption found the code used and ended what the
	// first one got (its family and its grant's access tokens). Later
	// redemptions are refused without doing it again.
	Revoked bool `json:"revoked,omitempty"`
}

// pageError is an authorization request error that must not be redirected
// (unknown client or redirect URI: RFC 6749 §4.1.2.1 "MUST NOT
// automatically redirect the user-agent to the invalid redirection URI").
type pageError string

// parseAuthzRequest validates an authorization request. Errors about the
// client or the redirect URI come back as a pageError; the others as an
// oauthError to redirect with.
func (s *Server) parseAuthzRequest(q url.Values) (*authzRequest, pageError, *oauthError) {
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "code_challenge", "code_challenge_method"} {
		if len(q[k]) > 1 {
			if k == "client_id" || k == "redirect_uri" {
				return nil, pageError("The request repeats " + k + "."), nil
			}
		}
	}
	c := s.cfg.Load().clients[q.Get("client_id")]
	if c == nil {
		return nil, "The application that sent you here is not known to this server (unknown client_id).", nil
	}
	req := &authzRequest{client: c, state: q.Get("state")}
	switch ru := q.Get("redirect_uri"); {
	case ru != "" && (c.redirs[ru] || c.loopRedirs[loopbackKey(ru)]):
		// A loopback IP redirect URI with any port (RFC 8252 §7.3); the
		// code is bound to the URI the request named, port included.
		req.redirect, req.redirectGiven = ru, true
	case ru != "":
		return nil, "The application's redirect address is not registered for it (redirect_uri mismatch).", nil
	case len(c.RedirectURIs) == 1:
		req.redirect = c.RedirectURIs[0]
	default:
		return nil, "The request names no redirect address (redirect_uri), and the application has none or several.", nil
	}
	for _, k := range []string{"response_type", "scope", "state", "code_challenge", "code_challenge_method"} {
		if len(q[k]) > 1 {
			return req, "", errInvalidRequest("parameter " + k + " is repeated")
		}
	}
	if q.Get("response_type") != "code" {
		return req, "", &oauthError{code: "unsupported_response_type", desc: "only response_type=code is supported"}
	}
	if !c.can(GrantAuthorizationCode) {
		return req, "", &oauthError{code: "unauthorized_client", desc: "the client may not use the authorization code grant"}
	}
	if q.Get("code_challenge_method") != "S256" {
		return req, "", errInvalidRequest("PKCE is required, with code_challenge_method=S256")
	}
	req.challenge = q.Get("code_challenge")
	if len(req.challenge) != 43 || !pkceChars(req.challenge) {
		return req, "", errInvalidRequest("code_challenge must be the 43-character base64url SHA-256 of the verifier")
	}
	sc, oe := grantScope(c, q.Get("scope"))
	if oe != nil {
		return req, "", oe
	}
	req.scope = sc
	return req, "", nil
}

// pkceChars: RFC 7636 §4.1 unreserved characters [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
func pkceChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// redirectURL builds the redirect back to the client with params, the
// state and the issuer (RFC 9207, against mix-up attacks).
func (s *Server) redirectURL(req *authzRequest, params url.Values) string {
	if req.state != "" {
		params.Set("state", req.state)
	}
	params.Set("iss", s.issuer)
	u, _ := url.Parse(req.redirect)
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// errorRedirect is the redirect carrying an error.
func (s *Server) errorRedirect(req *authzRequest, oe *oauthError) string {
	p := url.Values{"error": {oe.code}}
	if oe.desc != "" {
		p.Set("error_description", errdesc.Text(oe.desc))
	}
	return s.redirectURL(req, p)
}

// newAuthCode stores a code for an approved request. The record may go
// once the code's minute and the clock skew allowed between nodes are
// over: an unused code is of no use after, and kept for the collection
// grace too (11 minutes) a flood of them held seven times as much of a
// shared store. A redemption keeps the record longer (grantAuthCode),
// for a replay to find it used.
func (s *Server) newAuthCode(ctx context.Context, req *authzRequest, sub string, roles []string) (string, error) {
	code := randomToken(32)
	rec := codeRec{
		Realm: req.client.realm.Name, Client: req.client.ID, Redirect: req.redirect, RedirectGiven: req.redirectGiven,
		Scope: req.scope, Challenge: req.challenge, Sub: sub, Roles: roles, Exp: s.now().Add(authCodeLifetime).Unix(),
	}
	b, _ := json.Marshal(rec)
	_, err := s.store.Create(ctx, "ac."+hashHex(code), b, authCodeLifetime+s.skew)
	return code, err
}

// maxCodesPerUser bounds the authorization codes issued to one user of a
// realm (all clients together) within a code's lifetime and the clock
// skew allowed between nodes (90 s by default), redeemed or not: a
// redeemed code's record is kept 11 minutes (for a replay to find it
// used), so freeing the place at redemption would let one account fill
// the store as fast as it redeems. Ten sign-ins in 90 s is more than a
// person makes; an end-to-end test suite signing one user in faster must
// spread over several users.
const maxCodesPerUser = 10

// userCodes is the record (au.<sha256 of realm NUL user>) of the codes
// issued to one user: their expiries. It lives in the store, so that
// the bound holds for the whole mesh whatever the number of nodes.
type userCodes struct {
	Exp   int64   `json:"exp"` // the last code's expiry and the skew: collect's
	Codes []int64 `json:"codes"`
}

// takeCodePlace takes one of the user's maxCodesPerUser places for a new
// authorization code: false when they are all taken, by codes whose
// expiry and the skew allowed have not passed. A place is given back
// only by time. Blocks on the store; an error is the store's.
func (s *Server) takeCodePlace(ctx context.Context, realm, sub string) (bool, error) {
	key := "au." + hashHex(realm+"\x00"+sub)
	for range 4 {
		e, err := s.store.Get(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
		var rec userCodes
		if err == nil {
			json.Unmarshal(e.Value, &rec) // a damaged record counts as empty
		}
		now := s.now()
		live := rec.Codes[:0]
		for _, x := range rec.Codes {
			if now.Before(time.Unix(x, 0).Add(s.skew)) {
				live = append(live, x)
			}
		}
		if len(live) >= maxCodesPerUser {
			return false, nil
		}
		exp := now.Add(authCodeLifetime).Unix()
		rec = userCodes{Exp: time.Unix(exp, 0).Add(s.skew).Unix(), Codes: append(live, exp)}
		b, _ := json.Marshal(rec)
		ttl := authCodeLifetime + s.skew
		if e.Revision == 0 {
			_, err = s.store.Create(ctx, key, b, ttl)
		} else {
			_, err = s.store.Update(ctx, key, b, e.Revision, ttl)
		}
		if errors.Is(err, ErrExists) || errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
			continue // another sign-in of the user's meanwhile: count again
		}
		return err == nil, err
	}
	return false, errStoreConflict
}

// grantAuthCode redeems a code (RFC 6749 §4.1.3, RFC 7636 §4.6).
//
// A redemption claims the code before it makes anything: a write from the
// revision read marks it used, naming the grant id and family id of the
// login it is about to make. Then the refresh-token family is created and
// the access token signed, and the code written once more from the
// claim's revision. A redemption that finds the code used (claimed or
// redeemed) is a second use: it ends the family the code names and
// revokes its grant, and marks the code; if that came before the
// family was made, the first redemption's last write fails, and it
// deletes its family and answers invalid_grant too, so that the login
// never outlives a second use; if after, the second use finds the family
// (its mark, from a revision before the last write, fails, and it ends
// the family again). Making the login first and marking the code after
// let every redemption sent at once make one, indexed among the user's
// logins, which at max_refresh_tokens ended her oldest other login before
// the losers found the code used: n redemptions ended n of her logins.
// A redemption that fails after its claim (no signing key active, the
// store failing) gives the code back unused, for the client to retry
// (releaseCode: tried again in the background while the store fails).
func (s *Server) grantAuthCode(ctx context.Context, c *clientConf, form url.Values) (resp *tokenResponse, oe *oauthError) {
	code, verifier := form.Get("code"), form.Get("code_verifier")
	if code == "" {
		return nil, errInvalidRequest("code is required")
	}
	key := "ac." + hashHex(code)
	var made *login // the login whose family and tokens resp holds, once made
	defer func() {
		if oe != nil && made != nil && made.client.can(GrantRefreshToken) {
			s.store.Delete(context.WithoutCancel(ctx), "rt."+made.fam, 0)
		}
	}()
	for attempt := 0; attempt < 4; attempt++ {
		e, err := s.store.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return nil, errUnknownGrant("unknown or expired authorization code")
		}
		if err != nil {
			return nil, s.storeErr(err)
		}
		var rec codeRec
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return nil, s.malformed(key, err)
		}
		switch {
		case rec.Client != c.ID:
			return nil, errInvalidGrant("the authorization code was issued to another client")
		case rec.Used && rec.Revoked:
			// Ended already, by the first replay: nothing to log or
			// revoke again. Before, every replay of a used code (whoever
			// holds one may send it at will) logged the warning below and
			// wrote the store again, for as long as the record lived.
			return nil, errInvalidGrant("the authorization code was already used")
		case rec.Used && s.releasingHere(key, rec.Gid):
			// Claimed by a login this node never made, still being given
			// back: given back now, and redeemed by this request.
			if err := s.giveBackHere(ctx, key, e.Revision); err != nil {
				return nil, s.storeErr(err)
			}
			continue
		case rec.Used:
			s.log.Warn("oauth: authorization code used twice: revoking what it granted", "realm", rec.Realm, "client", rec.Client, "sub", rec.Sub)
			err := errors.Join(s.endFamily(ctx, rec.Fam, "code reuse"), s.revokeGrant(ctx, rec.Realm, rec.Gid))
			if err != nil {
				// Not marked: the next replay tries again (and logs again).
				s.log.Error("oauth: a reused authorization code's login could not be ended; a later replay of the code tries again", "realm", rec.Realm, "client", rec.Client, "err", err)
				return nil, errInvalidGrant("the authorization code was already used")
			}
			// Marked only once all of it is stored. A failed mark (a
			// concurrent replay marked it, the store failing) leaves the
			// next replay to revoke (and log) again.
			if ttl := time.Unix(rec.Exp, 0).Sub(s.now()) + gcGrace; ttl > 0 {
				rec.Revoked = true
				b, _ := json.Marshal(rec)
				if _, err := s.store.Update(ctx, key, b, e.Revision, ttl); errors.Is(err, ErrRevision) && attempt < 3 {
					// Its redemption wrote the code again meanwhile,
					// its family made: read again, and end that.
					continue
				}
			}
			return nil, errInvalidGrant("the authorization code was already used")
		case s.now().Unix() >= rec.Exp:
			return nil, errInvalidGrant("the authorization code has expired")
		}
		ru := form.Get("redirect_uri")
		badRedirect := (rec.RedirectGiven || ru != "") && ru != rec.Redirect
		sum := sha256.Sum256([]byte(verifier))
		badPKCE := len(verifier) < 43 || len(verifier) > 128 || !pkceChars(verifier) ||
			subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(rec.Challenge)) != 1
		if badRedirect || badPKCE {
			// One attempt per code: a failed one burns it.
			s.store.Delete(ctx, key, e.Revision)
			if badRedirect {
				return nil, errInvalidGrant("redirect_uri does not match the authorization request")
			}
			return nil, errInvalidGrant("code_verifier does not match the code_challenge (PKCE)")
		}
		l, oe := s.storedLogin(c, rec.Realm, rec.Sub, rec.Roles, false, rec.Scope)
		if oe != nil {
			return nil, oe
		}
		l.gid, l.fam = randomToken(16), newFamilyID()
		ttl := time.Until(time.Unix(rec.Exp, 0)) + gcGrace
		claim := rec
		claim.Used, claim.Gid, claim.Fam = true, l.gid, l.fam
		b, _ := json.Marshal(claim)
		rev, err := s.store.Update(ctx, key, b, e.Revision, ttl)
		if err != nil {
			if errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
				continue // claimed or redeemed concurrently: re-read decides
			}
			// A store may fail a write it made (a JetStream ack lost):
			// answered 503, the client's retry with the code was a second
			// use, which ended the login made for it.
			if rev = s.codeMarked(ctx, key, l, e.Revision); rev == 0 {
				return nil, s.storeErr(err)
			}
		}
		// Given back unused when what the code is for cannot be made,
		// whether or not the client still waits (a later write fails if
		// a second use marked the code meanwhile).
		release := func() { s.releaseCode(context.WithoutCancel(ctx), key, l.gid, e.Value, rev, ttl, rec.Exp) }
		made = l
		resp, oe = s.respond(ctx, l, true)
		if oe != nil {
			release()
			return nil, oe // the code unused again: the client may try again
		}
		if _, err := s.store.Update(ctx, key, b, rev, ttl); err != nil {
			if errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
				// Used a second time meanwhile, which revoked the grant
				// and ended the family if it found it: the family goes
				// (deferred), and nothing is sent.
				return nil, errInvalidGrant("the authorization code was already used")
			}
			if s.codeMarked(ctx, key, l, rev) == 0 {
				release()
				return nil, s.storeErr(err)
			}
			s.log.Warn("oauth: the store reported an authorization code's redemption failed, but it was stored: answered with it", "err", err)
		}
		return resp, nil
	}
	return nil, errServer("the authorization code is being used concurrently; try again")
}

// releaseCode gives a claimed authorization code back unused: its record
// as read before the claim (unused), written from the claim's revision
// rev. A write the store fails is tried again in the background, every
// releaseRetry until the store answers or the code expires (exp, unix):
// left claimed by a login never made, the client's retry, once the store
// answered again, was a second use (invalid_grant, logged as a code used
// twice), the code lost to a store failing for a moment. A write refused
// for its revision is done with: a second use marked the code, or a write
// reported failed was made.
//
// Until then the code is listed in Server.releasing with the claim's grant
// id gid: the client's retry on this node gives it back itself
// (giveBackHere) rather than take it for a second use.
func (s *Server) releaseCode(ctx context.Context, key, gid string, unused []byte, rev uint64, ttl time.Duration, exp int64) {
	done := func() bool {
		_, err := s.store.Update(ctx, key, unused, rev, ttl)
		return err == nil || errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound)
	}
	if done() {
		return
	}
	s.log.Warn("oauth: an authorization code whose redemption failed cannot be given back unused yet: trying again in the background")
	s.releasing.Store(key, releasingCode{gid: gid, unused: unused, ttl: ttl})
	go func() {
		defer s.releasing.Delete(key)
		t := time.NewTicker(releaseRetry)
		defer t.Stop()
		for range authCodeLifetime / releaseRetry {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			if s.now().Unix() >= exp || done() {
				return
			}
		}
	}()
}

// releasingCode is a claimed authorization code releaseCode gives back
// in the background (Server.releasing): the claim's grant id, the code's
// record unused, and its TTL.
type releasingCode struct {
	gid    string
	unused []byte
	ttl    time.Duration
}

// releasingHere reports whether this node's releaseCode is still giving
// back the code at key claimed by grant gid (a login never made). Without
// it, the client's retry once the store answered again, before the next
// background try (up to releaseRetry later), took the claim for a second
// use: invalid_grant, a WARN of a code used twice, the code lost.
func (s *Server) releasingHere(key, gid string) bool {
	v, ok := s.releasing.Load(key)
	return ok && v.(releasingCode).gid == gid
}

// giveBackHere writes the code at key unused (releasingHere) from
// revision rev; a write refused for its revision (or the code gone) is
// left to the redemption's read again.
func (s *Server) giveBackHere(ctx context.Context, key string, rev uint64) error {
	v, ok := s.releasing.Load(key)
	if !ok {
		return nil
	}
	r := v.(releasingCode)
	_, err := s.store.Update(ctx, key, r.unused, rev, r.ttl)
	if errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// releaseRetry is how often releaseCode tries again.
const releaseRetry = 250 * time.Millisecond

// codeMarked returns the revision of the code at key when it is marked
// used by the login made, in a revision after after (0 if not), read back
// after a write that marks it failed.
func (s *Server) codeMarked(ctx context.Context, key string, made *login, after uint64) uint64 {
	e, err := s.store.Get(ctx, key)
	if err != nil || e.Revision <= after {
		return 0
	}
	var rec codeRec
	if json.Unmarshal(e.Value, &rec) == nil && rec.Used && !rec.Revoked && rec.Gid == made.gid && rec.Fam == made.fam {
		return e.Revision
	}
	return 0
}
