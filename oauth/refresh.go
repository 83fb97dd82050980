package oauth

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"time"
)

// Refresh tokens. A login (password, device or authorization code grant)
// starts a family: one store record rt.<family id> holding who it is for
// and the SHA-256 of the one refresh token that is currently valid. The
// token the client holds is
//
//	base64url( family id [16] | generation [4, big endian] | secret [32] )
//
// a 256-bit random secret behind a selector; only the secret's hash is
// stored. Every use rotates it: a new secret, generation+1, a fresh
// lifetime, written with a compare-and-swap on the family's revision, so
// that two uses of one token (two nodes, two threads) cannot both win.
//
// Reuse detection (OAuth 2.0 Security BCP §4.14.2): a token of an older
// generation, or of the current generation with a wrong secret, is a
// rotated-out or forged token of a live family, which only a holder of one
// of its tokens could present; the family is revoked, and with it (through
// its grant id) every access token issued from it. A generation newer than
// the record's means the store answered with stale data: the request fails
// as temporarily unavailable, and nothing is revoked.
//
// Families per (realm, client, user) are bounded by Realm.MaxRefreshTokens
// through an index record ru.<hash>; a new login beyond it ends the oldest.
// The index must outlive every family it lists (a revocation of a login by
// its access token finds the family through it, and the bound counts what
// it lists): a login writes it to live as long as its latest family, and a
// refresh whose family would outlive it (family.Idx) writes it again, to
// live two refresh-token lifetimes (so once a lifetime at most).

type family struct {
	Realm   string `json:"realm"`
	Client  string `json:"client"`
	Sub     string `json:"sub"`
	Scope   string `json:"scope,omitempty"`
	Gid     string `json:"gid"`
	Gen     uint32 `json:"gen"`
	Hash    string `json:"hash"` // hex SHA-256 of the current secret
	Exp     int64  `json:"exp"`  // the current token's expiry (unix)
	Created int64  `json:"created"`
	// Idx is how long (unix) the index of its user's families is known to
	// live with this family in it; 0 (an older release's): unknown.
	Idx int64 `json:"idx,omitempty"`
	// ATExp is the latest expiry (unix) of the access tokens issued from
	// the family, by the lifetime of the node that issued each: a
	// revocation of the login lasts at least until then, whatever the
	// revoking node's configuration says. 0 (an older release's): unknown.
	ATExp int64 `json:"at_exp,omitempty"`
}

type famIndex struct {
	Exp  int64    `json:"exp"` // the latest family expiry seen (for garbage collection)
	Fams []famRef `json:"fams"`
	// Ends holds, for each login that the user's logins ended past the
	// bound (indexFamily) with a revocation entry, when that entry
	// expires (unix): the entries still live are counted against
	// maxEndedLogins.
	Ends []int64 `json:"ends,omitempty"`
}

type famRef struct {
	ID      string `json:"id"`
	Exp     int64  `json:"exp"`
	Created int64  `json:"created"`
}

const refreshTokenLen = 16 + 4 + 32

type refreshToken struct {
	fam    string // hex family id
	gen    uint32
	secret []byte
}

func (t refreshToken) String() string {
	b := make([]byte, 0, refreshTokenLen)
	id, _ := hex.DecodeString(t.fam)
	b = append(b, id...)
	b = binary.BigEndian.AppendUint32(b, t.gen)
	b = append(b, t.secret...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseRefreshToken(s string) (refreshToken, bool) {
	if len(s) != base64.RawURLEncoding.EncodedLen(refreshTokenLen) {
		return refreshToken{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != refreshTokenLen {
		return refreshToken{}, false
	}
	return refreshToken{fam: hex.EncodeToString(b[:16]), gen: binary.BigEndian.Uint32(b[16:20]), secret: b[20:]}, true
}

func newFamilyID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func secretHashHex(secret []byte) string {
	h := sha256.Sum256(secret)
	return hex.EncodeToString(h[:])
}

func newSecret() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// indexKey is the ru. key of a (realm, client, user).
func indexKey(realm, client, sub string) string {
	h := sha256.New()
	for _, s := range []string{realm, client, sub} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "ru." + hex.EncodeToString(h.Sum(nil))
}

// newFamily starts a refresh-token family for a login and returns its
// first token and grant id.
func (s *Server) newFamily(ctx context.Context, l *login) (string, string, error) {
	now := s.now()
	rc := l.client.realm
	tok := refreshToken{fam: l.fam, gen: 1, secret: newSecret()}
	if tok.fam == "" {
		tok.fam = newFamilyID()
	}
	gid := l.gid
	if gid == "" {
		gid = randomToken(16)
	}
	f := family{
		Realm: rc.Name, Client: l.client.ID, Sub: l.sub, Scope: l.scope, Gid: gid,
		Gen: 1, Hash: secretHashHex(tok.secret), Exp: now.Add(rc.RefreshTokenLifetime).Unix(), Created: now.Unix(),
		// The login's first access token is minted next (respond), by
		// this clock at most a second later.
		ATExp: now.Add(rc.AccessTokenLifetime).Unix() + 1,
	}
	idx, err := s.indexFamily(ctx, rc, l.client.ID, l.sub, famRef{ID: tok.fam, Exp: f.Exp, Created: f.Created})
	if err != nil {
		return "", "", err
	}
	f.Idx = idx
	b, _ := json.Marshal(f)
	if _, err := s.store.Create(ctx, "rt."+tok.fam, b, rc.RefreshTokenLifetime); err != nil {
		return "", "", err
	}
	return tok.String(), f.Gid, nil
}

// readIndex reads a user's index of families (an empty one when there is
// none or it does not decode) and its entry (revision 0 when absent).
func (s *Server) readIndex(ctx context.Context, key string) (famIndex, Entry, error) {
	var idx famIndex
	e, err := s.store.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return idx, Entry{}, nil
	case err != nil:
		return idx, Entry{}, err
	}
	if json.Unmarshal(e.Value, &idx) != nil {
		idx = famIndex{}
	}
	return idx, e, nil
}

// indexFamily adds a family to its user's index, ending the oldest
// families beyond the realm's bound. It returns the index's expiry (unix):
// the latest of its families' (keepIndexed moves it on).
func (s *Server) indexFamily(ctx context.Context, rc *realmConf, client, sub string, ref famRef) (int64, error) {
	key := indexKey(rc.Name, client, sub)
	for attempt := 0; attempt < 8; attempt++ {
		idx, e, err := s.readIndex(ctx, key)
		if err != nil {
			return 0, err
		}
		// Honest nodes keep the index within the bound; a longer one (a
		// damaged record) is cut to its newest entries before each is
		// looked up.
		if bound := 2*rc.MaxRefreshTokens + 8; len(idx.Fams) > bound {
			slices.SortStableFunc(idx.Fams, func(a, b famRef) int { return cmp.Compare(a.Created, b.Created) })
			idx.Fams = idx.Fams[len(idx.Fams)-bound:]
		}
		live := s.pruneIndex(ctx, idx.Fams)
		if len(live) >= rc.MaxRefreshTokens {
			// At the bound, logins that ended before they expired (logged
			// out, revoked, ended for reuse) are found and dropped, so
			// that they do not count: counted, they made the new login
			// end a live one, the user's other device.
			live = s.dropEnded(ctx, live)
		}
		var evict []famRef
		for len(live) >= rc.MaxRefreshTokens {
			evict, live = append(evict, live[0]), live[1:]
		}
		ends, err := s.endings(ctx, rc, evict)
		if err != nil {
			return 0, err
		}
		ends, later, err := s.countEnds(rc, &idx, ends)
		if err != nil {
			s.log.Info("oauth: a user's logins with one client ended too many of her others lately: login refused", "realm", rc.Name, "client", client, "sub", sub, "bound", max(rc.MaxRefreshTokens, maxEndedLogins))
			return 0, err
		}
		if len(later) > 0 {
			// More to end than the bound has room for (a reload lowered
			// max_refresh_tokens): those stay listed, the oldest, for
			// the next logins to end.
			keep := evict[:0:0]
			for _, r := range evict {
				if slices.Contains(later, r.ID) {
					keep = append(keep, r)
				}
			}
			live = append(keep, live...)
		}
		idx.Fams = append(live, ref)
		for _, f := range idx.Fams {
			idx.Exp = max(idx.Exp, f.Exp)
		}
		if err := s.writeIndex(ctx, key, e.Revision, &idx); err != nil {
			if errors.Is(err, errIndexChanged) {
				continue
			}
			return 0, err
		}
		for _, x := range ends {
			s.log.Info("oauth: too many logins for one user and client: ending the oldest", "realm", rc.Name, "client", client, "sub", sub)
			if x.until == 0 {
				// No access token of it may live: the family alone
				// goes, at the revision read (a refresh meanwhile
				// minted one: ended as any other).
				if err := s.store.Delete(ctx, "rt."+x.id, x.rev); !errors.Is(err, ErrRevision) {
					continue
				}
			}
			s.endFamily(ctx, x.id, "evicted")
		}
		return idx.Exp, nil
	}
	return 0, errStoreConflict
}

// maxEndedLogins bounds the revocation entries one user's logins with one
// client may add by ending her older logins past Realm.MaxRefreshTokens
// (indexFamily): each such login whose access tokens may still live is
// revoked by an entry of the revocation set (its grant id), stored for
// every node until those tokens expire (5.5 min by default). Unbounded,
// one account signing in in a loop (~57 password logins a second) kept
// ~18,800 entries on every node, each ending another of her logins. Past
// max(MaxRefreshTokens, maxEndedLogins) entries still live, counted in her
// index (so for all the nodes sharing the store), a login that would end
// a login with live access tokens is refused (tooManyLogins) and ends
// nothing: the entries are what make an ended login's access tokens stop
// working, so they cannot be left out. A login whose access tokens have
// all expired ends without an entry, and is not counted.
const maxEndedLogins = 32

// ending is a login indexFamily ends: its family id, the family's
// revision as read, and until when (unix) its revocation entry lives, 0
// for none (no access token of it may live).
type ending struct {
	id    string
	rev   uint64
	until int64
}

// endings reads the families of evict and says how each is ended (a
// family gone already is left out). An error is the store's.
func (s *Server) endings(ctx context.Context, rc *realmConf, evict []famRef) ([]ending, error) {
	now := s.now()
	var out []ending
	for _, r := range evict {
		e, err := s.store.Get(ctx, "rt."+r.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var f family
		json.Unmarshal(e.Value, &f) // one that does not decode has no grant id: no entry (endFamily)
		x := ending{id: r.ID, rev: e.Revision}
		// ATExp 0 (an older release's family): its tokens' expiry unknown.
		if f.Gid != "" && (f.ATExp == 0 || now.Before(time.Unix(f.ATExp, 0).Add(s.skew))) {
			x.until = s.grantUntil(rc.Name, f.ATExp, now).Unix()
		}
		out = append(out, x)
	}
	return out, nil
}

// countEnds adds to idx.Ends the revocation entries of the ends it
// returns, the oldest as many as the bound (maxEndedLogins) has room
// for, and the ids of the others (later: not ended now), or
// tooManyLogins when it has room for none of those that need one. Ends
// needing no entry are all returned. Entries that expired are dropped
// first, and so are those past the longest an entry can live (a damaged
// record). Ending fewer than asked keeps the user more logins than the
// realm's bound for a while; refusing the login instead refused every
// one, for as long as the logins past a lowered max_refresh_tokens kept
// refreshing.
func (s *Server) countEnds(rc *realmConf, idx *famIndex, ends []ending) (taken []ending, later []string, err error) {
	now := s.now()
	most := now.Add(maxAccessTokenLifetime + s.skew).Unix()
	idx.Ends = slices.DeleteFunc(idx.Ends, func(x int64) bool { return x <= now.Unix() || x > most })
	room := max(rc.MaxRefreshTokens, maxEndedLogins) - len(idx.Ends)
	entries := 0
	for _, x := range ends {
		switch {
		case x.until == 0:
			taken = append(taken, x)
		case room > entries:
			taken = append(taken, x)
			idx.Ends = append(idx.Ends, x.until)
			entries++
		default:
			later = append(later, x.id)
		}
	}
	if len(later) > 0 && entries == 0 {
		// No room (the bound is at least 32: Ends is not empty).
		return nil, nil, &tooManyLogins{retry: time.Unix(slices.Min(idx.Ends), 0).Sub(now)}
	}
	return taken, later, nil
}

// tooManyLogins refuses a login that would end another one past
// maxEndedLogins: retry is when the oldest entry counted expires.
type tooManyLogins struct{ retry time.Duration }

func (e *tooManyLogins) Error() string {
	return "oauth: too many of the user's logins with this client ended others lately"
}

// oauthErr is the answer to the refused login: 429 temporarily_unavailable
// with a Retry-After.
func (e *tooManyLogins) oauthErr() *oauthError {
	return &oauthError{status: http.StatusTooManyRequests, code: "temporarily_unavailable",
		desc: "too many logins of this user with this client lately, each ending another; try again later", retry: max(e.retry, time.Second)}
}

// indexUntil is how long (unix) a user's index that a refresh writes
// again lives: two refresh-token lifetimes, so that the family, refreshed
// within one lifetime from then on without writing it, is still listed
// when it expires.
func indexUntil(rc *realmConf, now time.Time) int64 {
	return now.Unix() + 2*int64(rc.RefreshTokenLifetime/time.Second)
}

// errIndexChanged: the index was written meanwhile; read it again.
var errIndexChanged = errors.New("oauth: the index changed")

// writeIndex stores a user's index (rev 0: creates it) with a TTL until
// its expiry.
func (s *Server) writeIndex(ctx context.Context, key string, rev uint64, idx *famIndex) error {
	b, _ := json.Marshal(idx)
	ttl := ttlUntil(idx.Exp, s.now())
	var err error
	if rev == 0 {
		_, err = s.store.Create(ctx, key, b, ttl)
	} else {
		_, err = s.store.Update(ctx, key, b, rev, ttl)
	}
	if errors.Is(err, ErrExists) || errors.Is(err, ErrRevision) || (rev != 0 && errors.Is(err, ErrNotFound)) {
		return errIndexChanged
	}
	return err
}

// ttlUntil is the store TTL of a record that expires at exp (unix): at
// least a second, and at most half the largest Duration (146 years), which
// a store may still round up (edge.KV to whole seconds) without wrapping.
func ttlUntil(exp int64, now time.Time) time.Duration {
	const most = math.MaxInt64 / 2
	secs := exp - now.Unix()
	switch {
	case secs < 1:
		return time.Second
	case secs > most/int64(time.Second):
		return most
	}
	return time.Duration(secs) * time.Second
}

// keepIndexed writes family id, whose token now expires at famExp, into
// its user's index again, with the index's expiry moved on to two
// lifetimes from now: a family in use outlived the index written at its
// login (the index lived one lifetime from the user's last new login), so
// that the bound no longer counted it and a revocation of its login by an
// access token (endGrant) did not find it. A family missing from the index
// (an expired index, or one an older release wrote) is added back; the
// next login applies the bound. It returns the index's expiry.
func (s *Server) keepIndexed(ctx context.Context, rc *realmConf, f *family, id string, famExp int64) (int64, error) {
	key := indexKey(f.Realm, f.Client, f.Sub)
	for attempt := 0; attempt < 8; attempt++ {
		idx, e, err := s.readIndex(ctx, key)
		if err != nil {
			return 0, err
		}
		listed := false
		for i := range idx.Fams {
			if idx.Fams[i].ID == id {
				idx.Fams[i].Exp, listed = max(idx.Fams[i].Exp, famExp), true
			}
		}
		if !listed {
			idx.Fams = append(idx.Fams, famRef{ID: id, Exp: famExp, Created: f.Created})
		}
		idx.Exp = max(idx.Exp, indexUntil(rc, s.now()), famExp)
		if err := s.writeIndex(ctx, key, e.Revision, &idx); err != nil {
			if errors.Is(err, errIndexChanged) {
				continue
			}
			return 0, err
		}
		return idx.Exp, nil
	}
	return 0, errStoreConflict
}

// pruneIndex drops families that have ended, oldest first. An entry whose
// recorded expiry passed is checked against its family (a used family
// lives longer than its first expiry).
func (s *Server) pruneIndex(ctx context.Context, refs []famRef) []famRef {
	now := s.now().Unix()
	out := refs[:0:0]
	for _, r := range refs {
		if r.Exp <= now {
			e, err := s.store.Get(ctx, "rt."+r.ID)
			if err != nil {
				continue
			}
			var f family
			if json.Unmarshal(e.Value, &f) != nil || f.Exp <= now {
				continue
			}
			r.Exp = f.Exp
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b famRef) int { return cmp.Compare(a.Created, b.Created) })
	return out
}

// dropEnded drops the families of refs that are no longer stored (one
// store read each; a read that fails keeps the entry).
func (s *Server) dropEnded(ctx context.Context, refs []famRef) []famRef {
	return slices.DeleteFunc(refs, func(r famRef) bool {
		_, err := s.store.Get(ctx, "rt."+r.ID)
		return errors.Is(err, ErrNotFound)
	})
}

// endFamily deletes a family and revokes the access tokens issued from it.
//
// It returns the store's error when the family could not be read, deleted
// or its grant revoked (a family that is not there is no error: ended
// already, or never made); callers that only end what they can ignore it.
func (s *Server) endFamily(ctx context.Context, id, why string) error {
	e, err := s.store.Get(ctx, "rt."+id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var f family
	json.Unmarshal(e.Value, &f)
	if err := s.store.Delete(ctx, "rt."+id, 0); err != nil && !errors.Is(err, ErrNotFound) {
		return errors.Join(err, s.revokeGrantUntil(ctx, f.Realm, f.Gid, f.ATExp))
	}
	err = s.revokeGrantUntil(ctx, f.Realm, f.Gid, f.ATExp)
	s.log.Debug("oauth: refresh token family ended", "realm", f.Realm, "client", f.Client, "sub", f.Sub, "why", why)
	return err
}

// revokeGrant revokes every access token of a grant until the longest an
// access token of the realm can live. A failure is logged, and returned.
func (s *Server) revokeGrant(ctx context.Context, realm, gid string) error {
	return s.revokeGrantUntil(ctx, realm, gid, 0)
}

// revokeGrantUntil is revokeGrant for a grant whose access tokens are
// known to expire by atExp (unix; 0: unknown): the revocation lasts until
// then too. Another node may give the realm's tokens a longer lifetime
// than this one's configuration (a rolling reload): revoked until this
// node's lifetime only, a login's longer-lived access tokens verified
// again once the revocation expired.
func (s *Server) revokeGrantUntil(ctx context.Context, realm, gid string, atExp int64) error {
	err := s.revoke(ctx, gid, s.grantUntil(realm, atExp, s.now()))
	if err != nil {
		s.log.Warn("oauth: cannot store a revocation", "err", err)
	}
	return err
}

// grantUntil is how long the revocation of a grant of realm whose access
// tokens are known to expire by atExp (unix; 0: unknown) lasts, revoked at
// now (revokeGrantUntil).
func (s *Server) grantUntil(realm string, atExp int64, now time.Time) time.Time {
	until := now.Add(s.cfg.Load().tokenTTL(realm, now) + s.skew)
	// A token lives 24 h at most (buildConfig): a record saying longer
	// (damaged) keeps the revocation no longer than that.
	atExp = min(atExp, now.Add(maxAccessTokenLifetime).Unix())
	if t := time.Unix(atExp, 0).Add(s.skew); t.After(until) {
		until = t
	}
	return until
}

// errReuse is a reused refresh token (its family has been revoked).
var errReuse = errInvalidGrant("the refresh token was already used: its login has been revoked")

// rotate checks a refresh token presented by client c, has issue make what
// the response needs from the family (the access token), and only then
// rotates the family and returns the new refresh token. A request for a
// scope the family was not granted, and any failure of issue, is refused
// before rotation, so that it does not consume the token (the client never
// sees a new one). issue may run more than once (a concurrent use makes
// the rotation start over).
func (s *Server) rotate(ctx context.Context, c *clientConf, raw, scope string, issue func(f *family) *oauthError) (string, *oauthError) {
	tok, ok := parseRefreshToken(raw)
	if !ok {
		return "", errInvalidGrant("unknown refresh token") // not counted: see below
	}
	key := "rt." + tok.fam
	for attempt := 0; attempt < 4; attempt++ {
		e, err := s.store.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			// Not counted as a failed attempt (errUnknownGrant): a login
			// ended (expired, its record gone with the store's TTL, or
			// signed out) reads so too, and a NAT's users coming back
			// after the refresh lifetime locked their address out, every
			// login there refused. A guess is 48 random bytes, hopeless:
			// its cost is this read.
			return "", errInvalidGrant("unknown, expired or revoked refresh token")
		}
		if err != nil {
			return "", s.storeErr(err)
		}
		var f family
		if err := json.Unmarshal(e.Value, &f); err != nil {
			return "", s.malformed(key, err)
		}
		now := s.now()
		hashOK := subtle.ConstantTimeCompare([]byte(secretHashHex(tok.secret)), []byte(f.Hash)) == 1
		switch {
		case f.Client != c.ID:
			return "", errInvalidGrant("the refresh token was issued to another client")
		case tok.gen > f.Gen:
			// The store is behind the write that issued this token.
			time.Sleep(50 * time.Millisecond)
			continue
		case tok.gen < f.Gen || !hashOK:
			s.log.Warn("oauth: refresh token reuse: revoking its login", "realm", f.Realm, "client", f.Client, "sub", f.Sub)
			s.endFamily(ctx, tok.fam, "reuse")
			return "", errReuse
		case now.Unix() >= f.Exp:
			s.store.Delete(ctx, key, e.Revision)
			return "", errInvalidGrant("the refresh token has expired")
		case s.grantRevoked(f.Gid):
			// Its login was revoked (a sign-out whose family the store
			// kept for the client's retry, an end whose delete failed):
			// its access tokens are refused, so it mints none.
			s.endFamily(ctx, tok.fam, "revoked")
			return "", errInvalidGrant("unknown, expired or revoked refresh token")
		}
		if _, oe := subsetScope(f.Scope, scope); oe != nil {
			return "", oe
		}
		if oe := issue(&f); oe != nil {
			return "", oe // before the update: the refresh token stays valid
		}
		next := refreshToken{fam: tok.fam, gen: f.Gen + 1, secret: newSecret()}
		f.Gen, f.Hash = next.gen, secretHashHex(next.secret)
		f.Exp = now.Add(c.realm.RefreshTokenLifetime).Unix()
		if f.Idx < f.Exp {
			// The family would outlive its user's index: written again
			// (once a lifetime), before the rotation. A failure leaves
			// Idx as it was, for the next refresh to try again.
			if x, err := s.keepIndexed(ctx, c.realm, &f, tok.fam, f.Exp); err == nil {
				f.Idx = x
			} else {
				s.log.Warn("oauth: cannot keep a login in its user's index; the next refresh tries again", "realm", f.Realm, "client", f.Client, "err", err)
			}
		}
		b, _ := json.Marshal(f)
		_, err = s.store.Update(ctx, key, b, e.Revision, c.realm.RefreshTokenLifetime)
		if errors.Is(err, ErrRevision) || errors.Is(err, ErrNotFound) {
			continue // someone else used or revoked it meanwhile: re-read decides
		}
		if err != nil {
			if !s.rotationStored(ctx, key, next) {
				return "", s.storeErr(err)
			}
			s.log.Warn("oauth: the store reported a refresh's rotation failed, but it was stored: answered with it", "err", err)
		}
		return next.String(), nil
	}
	return "", errServer("the refresh token is being used concurrently; try again")
}

// grantRevoked reports whether this node holds grant id gid revoked.
func (s *Server) grantRevoked(gid string) bool {
	if gid == "" {
		return false
	}
	v, ok := s.revoked.Load(gid)
	return ok && v.(int64) > s.now().Unix()
}

// rotationStored reports whether the family at key holds the rotation to
// next, read back after its write failed: a store may fail a write it
// made (a JetStream publish whose ack was lost, its Raft commit slower
// than the store's timeout). Answered 503, the client kept the token it
// had, and its retry was taken for reuse, ending the login; the rotation
// found stored is answered instead. A read that fails too says no.
func (s *Server) rotationStored(ctx context.Context, key string, next refreshToken) bool {
	e, err := s.store.Get(ctx, key)
	if err != nil {
		return false
	}
	var f family
	return json.Unmarshal(e.Value, &f) == nil && f.Gen == next.gen &&
		subtle.ConstantTimeCompare([]byte(f.Hash), []byte(secretHashHex(next.secret))) == 1
}

// lookupFamily returns the family of a refresh token if the token is its
// current one (introspection, revocation).
func (s *Server) lookupFamily(ctx context.Context, raw string) (*family, bool) {
	tok, ok := parseRefreshToken(raw)
	if !ok {
		return nil, false
	}
	e, err := s.store.Get(ctx, "rt."+tok.fam)
	if err != nil {
		return nil, false
	}
	var f family
	if json.Unmarshal(e.Value, &f) != nil {
		return nil, false
	}
	if tok.gen != f.Gen || subtle.ConstantTimeCompare([]byte(secretHashHex(tok.secret)), []byte(f.Hash)) != 1 || s.now().Unix() >= f.Exp {
		return nil, false
	}
	return &f, true
}

// malformed refuses a grant whose store record does not decode: written
// by a damaged store or another version, it is trusted for nothing; the
// record is left for its writer or for its expiry.
func (s *Server) malformed(key string, err error) *oauthError {
	s.log.Warn("oauth: a state record does not decode: the grant is refused", "kind", key[:3], "err", err)
	return errInvalidGrant("unknown, expired or revoked grant")
}

// storeErr logs a store failure and makes it a 503.
func (s *Server) storeErr(err error) *oauthError {
	s.log.Error("oauth: store failure", "err", err)
	return errServer("the token store is unavailable; try again")
}
