package route

import (
	"github.com/edgewamp/edgewamp/proto"
)

// AuthRequest is what an Authenticator sees of a HELLO.
type AuthRequest struct {
	Realm     string
	AuthID    string         // HELLO.Details.authid ("" when absent)
	AuthRole  string         // HELLO.Details.authrole, when the client asks for one
	AuthExtra map[string]any // HELLO.Details.authextra
	Transport TransportInfo

	// decoyKey derives the decoy salts of WAMP-CRA challenges for authids
	// that are not users: the router's (Config.DecoySecret), nil outside a
	// router (processDecoyKey then).
	decoyKey *[32]byte
}

// Identity is an authenticated principal.
type Identity struct {
	AuthID       string
	AuthRole     string
	AuthProvider string
	// AuthExtra is sent to the client in WELCOME.Details.authextra. A
	// "__proto__" key is left out, at any depth (payloads may not hold
	// it: JavaScript clients refuse it), and an AuthExtra that does not
	// encode is left out whole; either is logged at WARN.
	AuthExtra map[string]any
	// Credential, when set, is what the session authenticated with if
	// that can be withdrawn while the session lasts (an OAuth2 access
	// token): the router ends the session when the credential is revoked
	// (Router.RevokeCredentials) or when its Check fails.
	Credential *Credential

	// cred marks the static credential the session authenticated with
	// (credMark), so that a reload that changes or removes it ends the
	// session. Set by this package's authenticators only.
	cred string
}

// Credential is a withdrawable credential a session authenticated with.
// Immutable once handed to the router.
type Credential struct {
	// IDs name the credential for Router.RevokeCredentials (an access
	// token's jti, and the id of the login it was issued from).
	IDs []string
	// Check returns why the credential may no longer hold a session, or
	// "" while it may. The router calls it on the session's shard when the
	// session is established (so that a revocation that arrived while the
	// login was being checked is not missed) and after every
	// configuration reload. It must be fast, must not block, and must be
	// safe for concurrent use. Nil: always valid. A panic in it is
	// recovered: the credential is taken as withdrawn (its session ends),
	// the panic logged at ERROR and counted (Stats.AuthenticatorPanics).
	Check func() string
}

// Authenticator is one authentication method of a realm (ticket, wampcra,
// cryptosign, ...). Its methods run on the router's worker pool, never on an
// event loop, and may take a while (password hashing, signature checks,
// token verification). They must be safe for concurrent use. A panic in
// Challenge or Authenticate is recovered on the worker: that login is
// refused with wamp.error.authentication_failed and counted as a failed
// authentication, and the panic logged at ERROR with the authmethod and
// its stack (its value only when the runtime made it: another may quote
// the credentials); the router goes on (authrecover.go). Method is called
// on the event loops (at each HELLO, and at a reload's re-check of the
// sessions) and must return the same name each time: a panic there skips
// the Authenticator (a login that finds no other of the methods it asked
// for is refused with wamp.error.authentication_failed, a session of its
// method ends at a reload), logged at ERROR. Every recovered panic is
// counted (Stats.AuthenticatorPanics).
type Authenticator interface {
	// Method returns the authmethod name, e.g. "wampcra".
	Method() string
	// Challenge starts an authentication. It returns the CHALLENGE extra
	// for the client and an opaque state handed to Authenticate. A nil
	// extra with a non-nil identity authenticates without a challenge. An
	// error aborts the session (use *AuthError to choose the URI).
	Challenge(req *AuthRequest) (extra map[string]any, state any, id *Identity, err error)
	// Authenticate checks the client's AUTHENTICATE signature and extra.
	// An *AuthError with URI wamp.error.no_such_role says the signature
	// was right and the role refused: it is not counted as a failed
	// authentication (return it only after the secret is checked).
	Authenticate(req *AuthRequest, state any, signature string, extra map[string]any) (*Identity, error)
}

// AuthError is an authentication failure with the ABORT reason to send.
type AuthError struct {
	URI     string // e.g. proto.URIAuthenticationFailed
	Message string // sent as ABORT.Details.message; never include secrets
	// Temporary marks a refusal that says nothing about the credential:
	// the authenticator could not check it now (an access token while its
	// issuer's keys are not loaded yet). It does not count as a failed
	// authentication for the per-address limit.
	Temporary bool
	// Stale marks the refusal of a genuine credential that is no longer
	// good (an access token, its signature checked, that has expired or
	// been revoked): no guess, it does not count as a failed
	// authentication either. Counted, a device reconnecting with its
	// expired token locked its authid out at its address, and the fresh
	// token it got meanwhile was refused too.
	Stale bool
}

func (e *AuthError) Error() string { return e.URI + ": " + e.Message }

// Action is what a session asks to do with a URI.
type Action uint8

// Actions subject to authorization.
const (
	ActionCall Action = iota
	ActionRegister
	ActionPublish
	ActionSubscribe
)

func (a Action) String() string {
	switch a {
	case ActionRegister:
		return "register"
	case ActionPublish:
		return "publish"
	case ActionSubscribe:
		return "subscribe"
	}
	return "call"
}

// Authorizer decides what sessions may do. Authorize must be fast and pure
// for a given configuration: the router caches its answers per session.
// It is asked about concrete URIs (a CALL's, a PUBLISH's, an exact
// REGISTER's or SUBSCRIBE's, each invocation's and event's); a prefix or
// wildcard REGISTER or SUBSCRIBE is asked of AuthorizePattern when the
// Authorizer is a PatternAuthorizer (RBAC is), else of Authorize with the
// pattern as its uri. A panic in Authorize or AuthorizePattern is
// recovered: that request is refused (wamp.error.not_authorized, the
// refusal cached as any answer) and the panic logged at ERROR with its
// stack and counted (Stats.AuthorizerPanics; authrecover.go); the router
// goes on.
type Authorizer interface {
	Authorize(authrole string, action Action, uri string) bool
}

// PatternAuthorizer is an Authorizer that decides pattern REGISTERs and
// SUBSCRIBEs (match prefix or wildcard) as patterns: whether authrole may
// register or subscribe to every URI the pattern matches. Same rules as
// Authorize (fast, pure, cached per session).
type PatternAuthorizer interface {
	Authorizer
	AuthorizePattern(authrole string, action Action, match proto.Match, pattern string) bool
}

// authorize checks an action, with a per-session cache (one map per
// action, keyed by URI, so that a hit costs one map lookup and no
// allocation). Owned by shard: only the session's shard may call it.
func (ss *Session) authorize(a Action, uri []byte) bool {
	az := ss.realm.conf().Authorizer
	if az == nil {
		return true
	}
	c := ss.authz
	if c == nil {
		c = new(authzCache)
		ss.authz = c
	}
	if ok, hit := c.m[a][string(uri)]; hit {
		return ok
	}
	ok := ss.shard.r.askAuthorize(az, ss.realm.name, ss.authRole, a, string(uri))
	c.remember(ss, &c.m[a], &c.mBytes[a], uri, ok)
	return ok
}

// remember keeps decision ok on uri in *m, one of c's maps, whose URIs
// take *mb bytes, within c's bounds, which are the session's (ss), all
// maps together: a longer URI is not kept, and a full cache first drops
// its largest maps (dropLargest) until the URI fits. Past what it holds
// charged (held), the cache charges more first (growAuthz); refused,
// it stays within what it has (and an empty one keeps nothing).
func (c *authzCache) remember(ss *Session, m *map[string]bool, mb *int, uri []byte, ok bool) {
	if len(uri) > maxCachedURI {
		return
	}
	for c.n >= maxCachedDecisions || c.bytes+len(uri) > maxCachedURIBytes || authzCost(c.n+1, c.bytes+len(uri)) > c.held {
		if c.n < maxCachedDecisions && c.bytes+len(uri) <= maxCachedURIBytes && ss.growAuthz(c) {
			continue
		}
		if c.n == 0 {
			return // capped with nothing held: decided each time
		}
		c.dropLargest() // *m may be the one: nil now
	}
	if *m == nil {
		*m = map[string]bool{}
	}
	(*m)[string(uri)] = ok
	*mb += len(uri)
	c.n++
	c.bytes += len(uri)
}

// dropLargest drops the map of c that holds the most (its bytes of URIs
// and its decisions), whole, so that its table's memory goes too (a map
// emptied by clear keeps it). Dropping every map instead had a subscriber
// receiving events on more topics than the cache holds (a prefix
// subscription over 300 device topics) decide again, at each refill,
// every CALL and PUBLISH it made, where each action had a cache of its
// own before the bound was the session's. Called on a full cache: some
// map holds a decision.
func (c *authzCache) dropLargest() {
	m, mb := &c.m[0], &c.mBytes[0]
	for i := range c.m {
		if c.mBytes[i]+len(c.m[i]) > *mb+len(*m) {
			m, mb = &c.m[i], &c.mBytes[i]
		}
	}
	for i := range c.pat {
		if c.patBytes[i]+len(c.pat[i]) > *mb+len(*m) {
			m, mb = &c.pat[i], &c.patBytes[i]
		}
	}
	c.n -= len(*m)
	c.bytes -= *mb
	*m, *mb = nil, 0
}

// authorizePattern checks a REGISTER or SUBSCRIBE (a) of uri under match
// m, and the registrations and subscriptions a reload re-checks. An exact
// one is a concrete URI: authorize. A prefix or wildcard one is decided
// as a pattern (PatternAuthorizer), and cached apart from the concrete
// URIs, so that their lookup (CALL, PUBLISH, every invocation and event)
// stays one map lookup keyed by the URI alone. Owned by shard.
func (ss *Session) authorizePattern(a Action, m proto.Match, uri []byte) bool {
	if m == proto.MatchExact {
		return ss.authorize(a, uri)
	}
	az := ss.realm.conf().Authorizer
	if az == nil {
		return true
	}
	pz, asPattern := az.(PatternAuthorizer)
	if !asPattern {
		return ss.authorize(a, uri)
	}
	c := ss.authz
	if c == nil {
		c = new(authzCache)
		ss.authz = c
	}
	i := patternSlot(a, m)
	if ok, hit := c.pat[i][string(uri)]; hit {
		return ok
	}
	ok := ss.shard.r.askAuthorizePattern(pz, ss.realm.name, ss.authRole, a, m, string(uri))
	c.remember(ss, &c.pat[i], &c.patBytes[i], uri, ok)
	return ok
}

// patternSlot is the index in authzCache.pat of a pattern decision:
// register or subscribe (the actions that take patterns), prefix or
// wildcard.
func patternSlot(a Action, m proto.Match) int {
	i := 0
	if a == ActionSubscribe {
		i = 2
	}
	if m == proto.MatchWildcard {
		i++
	}
	return i
}

// authzCache is a session's cache of authorization decisions: per
// action, by URI; at most maxCachedDecisions URIs of at most maxCachedURI
// bytes, and maxCachedURIBytes of them, in all its maps together. Each
// event is checked against its subscriber's cache by its topic, and a
// publisher sending to 256 distinct 4 KiB topics under a pattern that many
// sessions subscribe to made each of them hold 1 MiB of it; a longer URI
// is decided each time (one RBAC lookup). The decisions on prefix and
// wildcard REGISTERs and SUBSCRIBEs (authorizePattern) are kept in pat,
// apart from the concrete URIs. The bounds were per map before: a session
// whose role may do nothing, sending 256 short CALLs, PUBLISHes,
// SUBSCRIBEs and REGISTERs (exact, prefix, wildcard) that were all
// refused, held 142 KB of decisions (eight full maps), and an address may
// open max_connections_per_address (1,024) sessions. A full cache drops
// its largest maps (dropLargest).
//
// Its memory (up to 44 KB of heap with 32-byte URIs, measured; 27 KB
// with short ones) was in no budget: an address's 1,024 sessions held up
// to 45 MB of it, uncounted. It is charged to the session's owner's share
// of a budget of Config.MaxSubscriptionBytes of its own (Router.authzBytes;
// subscriptionOwner: an address, an authid, as for its subscriptions),
// apart from the subscriptions' budget, so that a cache never takes an
// owner's subscriptions' room (sharing it, a NAT of 92 devices using 300
// URIs each had its SUBSCRIBEs refused at small-board.yaml's 16 MiB;
// TestSmallBoardNATOfDevicesSubscribes), authzChargeStep at a time as it
// grows (a lock on the budget at most six times a cache, on a miss,
// never on a hit), estimated by authzCost; what it holds charged (held)
// is kept when it drops maps, and given back when the session leaves or
// a reload drops the cache (dropAuthz). A charge refused (the owner's
// quarter, or the total, used up) caps the cache at what it holds
// charged for the rest of its life (capped: no further try, so no lock
// on each miss): its decisions are still right, more of them asked of
// the Authorizer.
type authzCache struct {
	m   [numActions]map[string]bool
	pat [4]map[string]bool

	mBytes   [numActions]int // bytes of URIs kept in each map of m
	patBytes [4]int          // and of pat
	n, bytes int             // decisions and bytes of URIs kept, in all the maps

	held   int  // bytes charged to the owner's share of Router.authzBytes
	capped bool // a charge was refused: held is the bound
}

const (
	maxCachedDecisions = 512
	maxCachedURI       = 256
	maxCachedURIBytes  = 16 << 10

	// authzEntryCost is what a cached decision costs besides its URI:
	// its map slot (24 bytes, tables at 44-87 % load) and the maps'
	// groups and headers. Measured: 512 decisions on 32-byte URIs, 43,920
	// bytes of heap a session (54 besides each URI); 300 on 44-byte ones,
	// 28,227 (50).
	authzEntryCost = 56
	// authzChargeStep is how much the cache charges at a time.
	authzChargeStep = 8 << 10
)

// authzCost is what a cache of n decisions on URIs of b bytes is counted
// for (at most 45,056 bytes).
func authzCost(n, b int) int { return b + n*authzEntryCost }

// growAuthz charges authzChargeStep more of ss's owner's share of
// Router.authzBytes for its authorization cache c, and reports
// whether it did; refused, c is capped. Nothing is charged for a session
// that is not established (its leave has given back what its cache held,
// dropAuthz). Owned by shard.
func (ss *Session) growAuthz(c *authzCache) bool {
	if c.capped || ss.state != stEstablished {
		return false
	}
	r := ss.shard.r
	if !r.authzBytes.charge(ss.subscriptionOwner(), authzChargeStep, r.cfg.MaxSubscriptionBytes) {
		c.capped = true
		return false
	}
	c.held += authzChargeStep
	return true
}

// dropAuthz drops ss's authorization cache and gives back what it held
// charged. Owned by shard.
func (ss *Session) dropAuthz() {
	c := ss.authz
	if c == nil {
		return
	}
	ss.authz = nil
	ss.shard.r.authzBytes.release(ss.subOwner, int64(c.held))
}

// mayReceive reports whether ss may receive a message for the concrete URI
// uri through a subscription (ActionSubscribe) or registration
// (ActionRegister). Authorizing a SUBSCRIBE or REGISTER checks only its
// pattern; a more specific deny under it (e.g. "app.secret." under a
// granted "app.") must still keep that URI's events and invocations away
// from the session. Exact ones are checked too: a reload may have taken
// the grant away since (the answer is cached, so this is one map lookup).
// Owned by shard.
func (ss *Session) mayReceive(a Action, m proto.Match, uri []byte) bool {
	if ss.realm.conf().Authorizer == nil {
		return true
	}
	return ss.authorize(a, uri)
}
