package route

import (
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/edgewamp/edgewamp/proto"
)

type sessState uint8

const (
	stNew         sessState = iota // transport open, waiting for HELLO
	stAuthPending                  // HELLO or AUTHENTICATE being checked on a worker
	stChallenged                   // CHALLENGE sent, waiting for AUTHENTICATE
	stEstablished                  // WELCOME sent
	stClosing                      // we sent GOODBYE, waiting for the reply
	stClosed                       // done; the transport is closing
)

// features are the client features that change what the router sends.
type features uint32

const (
	fCallerProgress   features = 1 << iota // caller: progressive_call_results
	fCallerProgInv                         // caller: progressive_call_invocations
	fCalleeProgress                        // callee: progressive_call_results
	fCalleeProgInv                         // callee: progressive_call_invocations (+ canceling)
	fCalleeCancel                          // callee: call_canceling
	fCalleeTimeout                         // callee: call_timeout
	fCalleeRevoke                          // callee: registration_revocation
	fSubscriberRevoke                      // subscriber: subscription_revocation
	fCallerPPT                             // caller: payload_passthru_mode
	fCalleePPT                             // callee: payload_passthru_mode
	fPublisherPPT                          // publisher: payload_passthru_mode
)

// Session is one WAMP session. Its fields are set on its shard's goroutine;
// those marked static are set before the session becomes visible to other
// shards (through the realm tables, under Realm.mu) and never change after,
// so other shards may read them.
type Session struct {
	// Static after WELCOME.
	id           uint64
	realm        *Realm
	shard        *Shard
	peer         Peer
	backlog      BacklogPeer // peer, when it tells its backlog (calleeshare.go)
	ser          proto.Serializer
	authID       string
	authRole     string
	authMethod   string
	authProvider string
	cred         *Credential // withdrawable credential, or nil
	staticCred   string      // credMark of the static credential it logged in with, or ""
	// realmAuth: it logged in with one of the realm's Authenticators
	// (HELLO, not JoinInternal), whose method a reload must still offer.
	realmAuth bool
	// internal: it joined with JoinInternal (the gateway's), which a
	// drain lets join and call (drain.go).
	internal  bool
	feat      features
	transport TransportInfo

	// Owned by shard.
	state    sessState
	attached bool
	join     *joinState
	calls    map[uint64]*outCall // as caller, by CALL request id
	// callsPeak and invsPeak: the most entries calls and invs held
	// since they were last checked (shrinkDue).
	callsPeak, invsPeak int
	// meshCalls counts the calls in calls held by other nodes' callees
	// (Config.MaxMeshCalls).
	meshCalls int
	// callOwn: whose share of Config.MaxCallsTotal calls counts in,
	// fixed at the first CALL until the session leaves (callBudget.ownerOf).
	callOwn    *callOwner
	callOwnSet bool
	// rerouteHeld is the bytes calls keeps to be rerouted: its part of
	// the shard's, at most rerouteShare past the first (reroute.go).
	rerouteHeld int64
	// The session's shares of the mesh's node-wide work (mesh_meta.go):
	// its REGISTERs of single registrations waiting for the claim store,
	// its meta calls and its get_retained subscriptions waiting for the
	// other nodes' answers.
	claims turns[queuedClaim]
	asks   turns[queuedMeta]
	// asksParked: asks' waiting calls wait for the walk budget's debt
	// (nextAsk), in walks' queue.
	asksParked bool
	retains    turns[retainedAsk]
	// retainsParked: retains' waiting gathers wait for the walk budget's
	// debt (nextRetained), in walks' queue.
	retainsParked bool
	// retainsAddrWait: retains' waiting gathers wait for one of the
	// gathers of the session's client address to end (addrGathers.wait).
	retainsAddrWait bool
	// walks is its budget of realm table entries walked (get_retained
	// pattern subscriptions, meta lists), and the requests waiting for it
	// (walkbudget.go).
	walks walkBudget
	// metaWaits are its meta calls waiting for their walk turn or for the
	// other nodes' answers, by CALL request id (meta.go: holdMeta): at
	// most maxMetaWalkWait + maxSessionGathers + maxSessionGatherQueue.
	metaWaits map[uint64]*metaWait
	// ended holds the request ids of the last progressive-invocation
	// calls that ended (answered, canceled, timed out) before the caller
	// sent its final chunk, up to maxEndedProg: chunks still in flight
	// for them are dropped, not taken as new calls. nil while none.
	ended *endedCalls
	invs  map[uint64]*inCall // as callee, by INVOCATION request id
	// share counts invs by caller (session id) while the callee's
	// backlog is, or was lately, past half its mark; nil otherwise
	// (calleeshare.go).
	share  map[uint64]int32
	regs   map[uint64]regRef // registrations it is a callee of
	subs   map[uint64]subRef // subscriptions it is a subscriber of
	subGen uint64            // SUBSCRIBEs that made it a subscriber (subRef.gen)
	// regsPeak and subsPeak: the most entries regs and subs held since
	// they were last checked (shrinkDue).
	regsPeak, subsPeak int
	// subOwner: whose share of Config.MaxSubscriptionBytes and
	// Config.MaxRegistrationBytes the subscriptions and registrations
	// count in, fixed at the first of either (subscriptionOwner).
	subOwner    string
	subOwnerSet bool
	testaments  *[2][]testament // detached, destroyed
	// killPosted: a kill of the session was posted to its shard (or run
	// there), which ends it; further kills post nothing (Shard.kill).
	// Set by any shard.
	killPosted atomic.Bool
	// dropLogged: an event it published was dropped for a subscriber
	// whose serializer cannot carry it (logNotConvertible), or that takes
	// no message as long (logTooBig), and logged. Set by any shard.
	dropLogged [numDropLogs]atomic.Bool
	// testamentOwner: whose share of Config.MaxTestamentBytes the
	// testaments count in, fixed at the first one (retainOwner).
	testamentOwner string
	retainer       *retainer   // who its retained events were published as (asRetainer)
	authz          *authzCache // authorization decisions by action and URI
	recheck        *recheck    // a reload's re-check of what it holds, until done (reload.go)

	// clientAddr is the client address its message being handled comes
	// from, for an in-process peer that carries many clients' requests
	// (ReceiveMessageFrom); owner is its retainOwner (cached once set,
	// unless clientAddr is), retainLogged whether its publisher's share
	// of retained events was found used up and logged, retainFullLogged
	// whether the realm's bound of them was (retainRefused).
	clientAddr       string
	owner            string
	ownerSet         bool
	retainLogged     bool
	retainFullLogged bool
	// msgCred is the credential its message being handled was made with,
	// for an in-process peer that carries the requests of several
	// credentials of one principal (ReceiveMessageWith); credRetainer is
	// the retainer of the last one (asRetainer).
	msgCred      *Credential
	credRetainer *retainer

	// pubSeq counts its publications (publication.seq); wins are its
	// get_retained subscriptions' windows against live events, and the
	// marks they keep; held are the live events held while a window is
	// pending (winPending of them), in order, and winHeldN and winHeld
	// their number and bytes (retwin.go).
	pubSeq     uint32
	wins       map[*subscription]*retWin
	winMarks   int
	winPending int
	held       []heldEvent
	winHeldN   int
	winHeld    int64
	// refusedAt is the fan-out (Shard.deliveries) in which an EVENT was
	// last refused for the session, with refusedErr, the error: its
	// other subscriptions matching that publication are skipped
	// (deliverEvents). Owned by shard.
	refusedAt  uint64
	refusedErr error

	// The wildcard registrations and subscriptions it holds
	// (Config.MaxWildcard*), and the bounds it was told of in the log
	// (wildcardRefused), or that of the subscriptions' bytes (bit 4,
	// subscriptionBytesRefused) or the router's calls in flight (bit 8,
	// callsTotalRefused), or registrations (bit 16, registrationBytesRefused),
	// or the walk's (bit 32, wildcardWalkRefused) or an owner's quarter of
	// the realm's patterns (bit 64, wildcardShareRefused), or a loop's
	// removals waiting (bit 128, removalsRefused).
	wildRegs, wildSubs int
	// singles counts the single registrations in regs (on a mesh, each
	// holds a claim in the mesh's store: MeshClaimShare).
	singles    int
	wildLogged uint8
}

// joinState holds a session's authentication in progress.
type joinState struct {
	realm   *Realm
	req     AuthRequest
	auth    Authenticator
	method  string // auth's Method, read once (authMethod)
	state   any
	methods []string // client's remaining authmethods
	failURI string   // a failure whose ABORT is being delayed
	failMsg string

	// held is what this login holds in the router's Config.MaxLoginBytes
	// (holdLogin), given back by endJoin.
	held int64

	// The brute-force limiter's view (see authLimiter).
	key    loginKey  // limiter keys of the remote address and the authid (zero: not limited)
	opened bool      // counted as an open challenge-response authentication
	wait   *authWait // the AUTHENTICATE waiting for a place to be checked
	sig    string    // that AUTHENTICATE's signature and extra
	extra  proto.Raw

	// authExtra is HELLO.Details.authextra as received (a copy, at most
	// maxAuthDetail bytes). It and AUTHENTICATE.Extra are decoded on the
	// worker, for each Authenticator call, and dropped after it: decoded
	// they grow 50 to 80 times (8 KiB of empty maps is 690 KB of Go
	// values), and a login waiting for its AUTHENTICATE kept them: 1,024
	// logins from one address (max_open_challenges) held 690 MB.
	authExtra proto.Raw
}

// decodeDetails decodes a dictionary a login carries (nil when absent or
// not a dictionary) within maxAuthDecoded; past it, an *AuthError with
// URI protocol_violation naming what, which authDone turns into that
// ABORT (Temporary: not counted as a failed authentication).
func decodeDetails(r proto.Raw, what string) (map[string]any, error) {
	if !r.Present() {
		return nil, nil
	}
	budget := maxAuthDecoded
	v, err := proto.DecodeValueBudget(r, &budget)
	if err == proto.ErrDecodedTooLarge {
		return nil, &AuthError{URI: proto.URIProtocolViolation, Message: what + tooLargeDecoded, Temporary: true}
	}
	if err != nil {
		return nil, nil
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// maxAuthDecoded bounds the Go values HELLO's roles and authextra and
// AUTHENTICATE's Extra are decoded into, each: 8 times their encoded
// bound (maxAuthDetail). Unbounded, 8 KiB of one-byte empty MessagePack
// maps took 690 KB and 1.7 ms to decode, on the event loop for roles and
// on the worker pool for the others, for every HELLO and AUTHENTICATE.
const maxAuthDecoded = 64 << 10

const tooLargeDecoded = " decodes to more than 64 KiB of values"

// ID returns the session id (0 before WELCOME).
func (ss *Session) ID() uint64 { return ss.id }

// Open attaches a new transport to the shard and returns its session, which
// waits for HELLO. Call on the shard's goroutine.
func (s *Shard) Open(p Peer) *Session {
	ss := &Session{shard: s, peer: p, ser: p.Serializer(), transport: p.Transport(), attached: true}
	ss.backlog, _ = p.(BacklogPeer)
	s.open.Add(1)
	s.attached[ss] = struct{}{}
	s.addTimer(timer{due: deadlineAfter(s.r.now(), s.r.cfg.HelloTimeout), kind: tmHello, sess: ss})
	if s.closing {
		s.abort(ss, proto.CloseSystemShutdown, "router is shutting down")
	}
	return ss
}

// Detach tells the shard that a session's transport has closed. The
// session leaves its realm if it had not already. Call on the shard's
// goroutine, once per session.
func (s *Shard) Detach(ss *Session) {
	if !ss.attached {
		return
	}
	ss.attached = false
	s.open.Add(-1)
	n := len(s.attached)
	delete(s.attached, ss)
	if shrinkDue(&s.attachedPeak, n, len(s.attached)) {
		shrinkMap(&s.attached, &s.attachedPeak)
	}
	ss.endJoin()
	if ss.state < stClosing {
		s.leave(ss)
	}
	ss.state = stClosed
}

// Receive handles one encoded message from a session's transport. b is in
// the session's serializer and is valid only during the call. Call on the
// shard's goroutine.
func (s *Shard) Receive(ss *Session, b []byte) {
	if ss.state >= stClosing {
		if ss.state == stClosing && ss.closeReply(s, b) {
			ss.finish()
		}
		return
	}
	m := &s.msg
	if err := s.dec.Decode(ss.ser, b, m); err != nil && !badURIRequest(err, m) {
		if err == proto.ErrBadTimeout && s.badTimeoutCall(ss, m, len(b)) {
			m.Reset()
			s.dec.Release()
			s.doneWithMessage()
			return
		}
		s.protocolError(ss, err.Error())
		return
	}
	s.countIn(m.Type, len(b))
	s.handle(ss, m)
	m.Reset()
	s.dec.Release()
	s.doneWithMessage()
}

// badTimeoutCall answers a new CALL of an established session whose
// timeout is a number out of range (proto.ErrBadTimeout: negative, NaN,
// an infinity, 2^63 ms or more) with ERROR wamp.error.invalid_argument,
// and reports whether it did. The session goes on: before, it ended
// (ABORT wamp.error.protocol_violation), and Autobahn|JS never settled
// the call. A later chunk of a progressive call invocation, whose options
// are the first chunk's (callContinue reads none of its own), is routed
// as if it had no timeout: before, it ended the session. Anything else
// with such a timeout (a request id in use) is still a protocol
// violation, and so is one in payload passthru mode from a caller that
// did not announce it (pptUnannounced, as dispatch checks every CALL;
// before, a later chunk with such a timeout went past that check and
// reached a callee in the mode). The first chunk of a progressive call
// invocation refused so is remembered as ended, as call's refusals are
// (rejectCall), so that the chunks the caller sent behind it are dropped;
// a chunk of an ended one is dropped as call drops it. Before, the next
// chunk was taken for a new call and reached the callee as an INVOCATION
// of its own, starting mid-stream.
func (s *Shard) badTimeoutCall(ss *Session, m *proto.Message, n int) bool {
	if m.Type != proto.CodeCall || ss.state != stEstablished || m.Request == 0 || m.Request > proto.MaxID ||
		ss.metaWaits[m.Request] != nil {
		return false
	}
	oc := ss.calls[m.Request]
	if oc != nil && !oc.progInv {
		return false // the request id is in use
	}
	progress := m.Opt.Bool(proto.KeyProgress, false)
	if oc == nil && progress && ss.feat&fCallerProgInv == 0 {
		return false // a protocol violation, as in call
	}
	s.countIn(m.Type, n)
	if m.Opt.Has(proto.KeyPPTScheme) && s.pptUnannounced(ss, m) {
		return true // the session ended, as dispatch ends it
	}
	if oc != nil {
		s.callContinue(ss, oc, m)
		return true
	}
	if ss.endedProgressive(m.Request, !progress) {
		return true // a chunk of a call the caller has had its answer for
	}
	s.rejectCall(ss, m.Request, progress, proto.URIInvalidArgument, "CALL.Options.timeout must be a non-negative number of milliseconds below 2^63")
	return true
}

// badURIRequest reports whether a decoding error err leaves m a request
// the router answers as one with an invalid URI: a URI that is not UTF-8
// text (proto.ErrBadURIText; m.URI is nil, the rest decoded) in a HELLO
// (ABORT wamp.error.invalid_uri), a REGISTER, SUBSCRIBE, CALL or PUBLISH
// (ERROR wamp.error.invalid_uri, the session going on, as for any invalid
// URI) or a callee's ERROR (protocol violation). Others (GOODBYE's or
// ABORT's reason) are protocol violations here.
func badURIRequest(err error, m *proto.Message) bool {
	if err != proto.ErrBadURIText {
		return false
	}
	switch m.Type {
	case proto.CodeHello, proto.CodeRegister, proto.CodeSubscribe, proto.CodeCall, proto.CodePublish, proto.CodeError:
		return true
	}
	return false
}

// doneWithMessage drops the shard's references into the message it has
// just handled (up to max_message: the loop's assembly buffer, which the
// loop releases when a second passes without a large message, or an
// in-process peer's): the scratch carry of its payload for this shard's
// deliveries and the message built from it. Their contract ends with the
// message anyway (see Shard.carry).
func (s *Shard) doneWithMessage() {
	s.lc = carry{}
	s.out.Reset()
}

// ReceiveMessage is Receive for an already decoded message (in-process
// sessions). m must stay valid during the call only.
func (s *Shard) ReceiveMessage(ss *Session, m *proto.Message) {
	if ss.state >= stClosing {
		if ss.state == stClosing && m.Type == proto.CodeGoodbye {
			ss.finish()
		}
		return
	}
	s.countIn(m.Type, 0)
	if len(m.URI) > 0 && !utf8.Valid(m.URI) {
		// As Receive's decoder does (proto.ErrBadURIText): no URI the
		// router stores or forwards is invalid UTF-8. An in-process
		// peer's comes from elsewhere: the gateway's from a URL path,
		// percent-unescaped (/wamp/realm1/call/com.x%FF), which a
		// prefix registration matched, its MsgPack callee's session
		// ending on the INVOCATION it could not decode.
		if !badURIRequest(proto.ErrBadURIText, m) {
			s.protocolError(ss, proto.ErrBadURIText.Error())
			s.doneWithMessage()
			return
		}
		m.URI = nil
	}
	s.handle(ss, m)
	s.doneWithMessage()
}

// ReceiveMessageFrom is ReceiveMessage for an in-process peer that
// carries the requests of many clients over one session (the HTTP
// gateway's principal without credentials, which every such client
// shares): client is the address the message came from (as
// TransportInfo.RemoteAddr), and a retained event it publishes counts in
// that address's share of the realm's retained events
// (Config.MaxRetainedPerPublisher) instead of the session's, and a
// wildcard pattern its SUBSCRIBE or REGISTER makes in that address's
// share of the wildcard index's walk (Session.walkOwner). "" is
// ReceiveMessage. Call on the shard's goroutine.
func (s *Shard) ReceiveMessageFrom(ss *Session, m *proto.Message, client string) {
	s.ReceiveMessageWith(ss, m, client, nil)
}

// ReceiveMessageWith is ReceiveMessageFrom for a message made with a
// credential of its own, cred (nil: the session's), by an in-process peer
// whose session carries the requests of several credentials of one
// principal (the HTTP gateway's session of a user, shared by each of the
// user's bearer tokens): a retained event it publishes speaks for cred,
// not for the session's credential, so that revoking cred
// (RevokeCredentials, or RecheckCredentials where its Check fails) drops
// it, and revoking another credential of the principal does not. cred is
// not indexed as the session's: its revocation does not end the session.
// Call on the shard's goroutine.
func (s *Shard) ReceiveMessageWith(ss *Session, m *proto.Message, client string, cred *Credential) {
	ss.clientAddr, ss.msgCred = client, cred
	s.ReceiveMessage(ss, m)
	ss.clientAddr, ss.msgCred = "", nil
}

// closeReply reports whether b is the client's GOODBYE reply.
func (ss *Session) closeReply(s *Shard, b []byte) bool {
	var m proto.Message
	if err := s.dec.Decode(ss.ser, b, &m); err != nil {
		return true // garbage while closing: stop waiting
	}
	return m.Type == proto.CodeGoodbye || m.Type == proto.CodeAbort
}

func (s *Shard) handle(ss *Session, m *proto.Message) {
	switch ss.state {
	case stNew:
		switch m.Type {
		case proto.CodeHello:
			s.hello(ss, m)
		case proto.CodeAbort: // the client gave up; no ABORT back
			ss.finish()
		default:
			s.protocolError(ss, "expected HELLO, received "+m.Type.String())
		}
	case stChallenged:
		switch m.Type {
		case proto.CodeAuthenticate:
			s.authenticate(ss, m)
		case proto.CodeAbort:
			ss.finish()
		default:
			s.protocolError(ss, "expected AUTHENTICATE, received "+m.Type.String())
		}
	case stAuthPending:
		if m.Type == proto.CodeAbort {
			ss.finish()
			return
		}
		s.protocolError(ss, "received "+m.Type.String()+" before WELCOME")
	case stEstablished:
		s.dispatch(ss, m)
	}
}

func (s *Shard) dispatch(ss *Session, m *proto.Message) {
	if m.Opt.Has(proto.KeyPPTScheme) && s.pptUnannounced(ss, m) {
		return
	}
	switch m.Type {
	case proto.CodeCall:
		s.call(ss, m)
	case proto.CodeYield:
		s.yield(ss, m)
	case proto.CodePublish:
		s.publish(ss, m)
	case proto.CodeError:
		if m.ReqType != proto.CodeInvocation {
			s.protocolError(ss, "ERROR is only valid as a reply to INVOCATION")
			return
		}
		s.invocationError(ss, m)
	case proto.CodeCancel:
		s.cancel(ss, m)
	case proto.CodeSubscribe:
		s.subscribe(ss, m)
	case proto.CodeUnsubscribe:
		s.unsubscribe(ss, m)
	case proto.CodeRegister:
		s.register(ss, m)
	case proto.CodeUnregister:
		s.unregister(ss, m)
	case proto.CodeGoodbye:
		s.goodbyeFromClient(ss)
	case proto.CodeAbort:
		s.leave(ss)
		ss.finish()
	case proto.CodeEventReceived:
		// Acknowledged event delivery is not implemented; the router does
		// not ask for it, so an acknowledgment is simply ignored.
	case proto.CodeHello:
		s.protocolError(ss, "received HELLO in an established session")
	default:
		s.protocolError(ss, "a router does not accept "+m.Type.String())
	}
}

// checkRequest validates a client request id (WAMP §IDs: [1, 2^53]).
func (s *Shard) checkRequest(ss *Session, m *proto.Message) bool {
	if m.Request == 0 {
		s.protocolError(ss, m.Type.String()+" request id must be in [1, 2^53]")
		return false
	}
	return true
}

// hello handles HELLO: realm, roles, then the first authmethod the realm
// supports, in the client's order.
func (s *Shard) hello(ss *Session, m *proto.Message) {
	if !proto.ValidURI(m.URI, proto.URILoose) {
		s.abortLogged(ss, proto.URIInvalidURI, "HELLO realm is not a valid URI")
		return
	}
	rm := s.r.Realm(string(m.URI))
	if rm == nil {
		s.abortLogged(ss, proto.URINoSuchRealm, "no realm "+strconv.Quote(string(m.URI)))
		return
	}
	// The login keeps authid and authrole until it ends (WAMP-CRA builds
	// its challenge text around them and sends it back in CHALLENGE):
	// bounded, like the details below, before the limiter copies them.
	for _, f := range [...]struct {
		k   proto.Key
		msg string
	}{
		{proto.KeyAuthID, "HELLO.Details.authid is longer than 1 KiB"},
		{proto.KeyAuthRole, "HELLO.Details.authrole is longer than 1 KiB"},
	} {
		if detailLen(&m.Opt, f.k) > MaxAuthIDLen {
			s.protocolError(ss, f.msg)
			return
		}
	}
	// An address locked out is refused whatever the login; an authid
	// locked out there only when its login checks a secret (startChallenge:
	// the limiter's open), not when it joins anonymously. Before, an
	// anonymous HELLO was refused for the lockout of the authid it named,
	// or of "" (the logins naming none, a cryptosign key's): block_after
	// unknown keys locked out every anonymous client of the address, in
	// every realm.
	key := s.r.limiter.login(ss.transport.RemoteAddr, rm.name, m.Opt.String(proto.KeyAuthID))
	if s.r.limiter.addressBlocked(key, s.r.clock()) {
		s.authDenied(ss, s.lockedOut(key))
		return
	}
	roles := m.Opt.Raw(proto.KeyRoles)
	if !roles.Present() {
		s.protocolError(ss, "HELLO.Details.roles is required")
		return
	}
	// Decoded into Go values, these grow 20 to 50 times (a one-byte empty
	// map becomes an interface and a map header), and the login keeps
	// authmethods and authextra: a peer that has not authenticated gets no
	// more than a few KiB of them.
	for _, f := range [...]struct {
		k   proto.Key
		max int
		msg string
	}{
		{proto.KeyRoles, maxAuthDetail, "HELLO.Details.roles is longer than 8 KiB"},
		{proto.KeyAuthExtra, maxAuthDetail, "HELLO.Details.authextra is longer than 8 KiB"},
		{proto.KeyAuthMethods, maxAuthMethods, "HELLO.Details.authmethods is longer than 1 KiB"},
	} {
		if len(m.Opt.Raw(f.k).B) > f.max {
			s.protocolError(ss, f.msg)
			return
		}
	}
	feat, err := parseFeatures(roles)
	if err != nil {
		s.protocolError(ss, "HELLO.Details.roles: "+err.Error())
		return
	}
	ss.feat = feat
	js := &joinState{realm: rm, key: key}
	js.req = AuthRequest{
		Realm:     rm.name,
		AuthID:    m.Opt.String(proto.KeyAuthID),
		AuthRole:  m.Opt.String(proto.KeyAuthRole),
		Transport: ss.transport,
		decoyKey:  s.r.decoyKey,
	}
	js.authExtra = m.Opt.Raw(proto.KeyAuthExtra).Clone()
	for _, b := range m.Opt.Strings(proto.KeyAuthMethods, nil) {
		js.methods = append(js.methods, string(b))
	}
	if len(js.methods) == 0 {
		js.methods = []string{"anonymous"}
	}
	ss.join = js
	s.nextAuthMethod(ss)
}

// nextAuthMethod starts the first of the client's remaining authmethods
// that the realm offers and the brute-force limiter lets start.
//
// A method the limiter refuses for its authid's lockout at the address is
// passed over for the next one the client offered (the WAMP spec has the
// router pick among the offered methods), and a HELLO offering [ticket,
// anonymous] on a realm open to anonymous clients is welcomed
// anonymously, as one offering anonymous alone is (the router names the
// session: it passes for no one). With none left, the ABORT is the
// limiter's refusal. Before, the first refusal ended the login: a device
// configured for both methods, its authid locked out, lost even the
// access anyone has. A refusal for a passing condition (too many
// challenges open at the address, the logins' bytes full, new addresses
// refused) ends the login with its "try again later": welcomed as a
// guest, the device would not retry, and stay one after it passed.
func (s *Shard) nextAuthMethod(ss *Session) {
	js := ss.join
	rm := js.realm
	panicked := false      // an Authenticator's Method panicked (authMethod)
	var refused *AuthError // the limiter's refusal of a method passed over
	for len(js.methods) > 0 {
		method := js.methods[0]
		js.methods = js.methods[1:]
		if method == "anonymous" {
			if !rm.conf().Anonymous {
				continue
			}
			// The router names anonymous sessions, as Crossbar does: an
			// authid from HELLO would let anyone pass for a user in
			// disclosure, the meta API and authid black/white lists.
			id := &Identity{AuthID: anonymousID(), AuthRole: rm.conf().AnonymousRole, AuthProvider: "static"}
			if refused != nil {
				s.logAnonymousFallback(js, refused, id.AuthID)
			}
			s.welcome(ss, rm, id, "anonymous", false)
			return
		}
		for _, a := range rm.conf().Authenticators {
			m, ok := s.r.authMethod(a, rm.name)
			panicked = panicked || !ok
			if !ok || m != method {
				continue
			}
			js.auth, js.method = a, m
			if refused = s.startChallenge(ss, js); refused == nil {
				return
			}
			js.auth, js.method = nil, ""
			if refused != errIDLockedOut {
				// A passing condition (the logins' bytes, the address's
				// open challenges, a flood of new addresses): the
				// client's "try again later", not a guest session it
				// would keep once the condition ends.
				js.methods = nil
			}
			break
		}
	}
	if refused == errLoginsFull {
		s.loginsFull(ss)
		return
	}
	if refused != nil {
		s.authDenied(ss, refused)
		return
	}
	if panicked {
		s.abort(ss, errAuthPanicked.URI, errAuthPanicked.Message)
		return
	}
	s.abortLogged(ss, proto.URINoMatchingAuthMethod, "none of the offered authmethods is allowed on realm "+strconv.Quote(rm.name))
}

// logAnonymousFallback says, at WARN (within the lockout lines' bound
// a second), that a login whose offered method the limiter refused is
// welcomed anonymously as anonid: a device configured with [ticket,
// anonymous] whose authid is locked out runs as a guest. Before, nothing
// said so, and its calls refused as a guest were the only sign.
func (s *Shard) logAnonymousFallback(js *joinState, refused *AuthError, anonid string) {
	suppressed, ok := s.r.lockLogs.take(s.r.now())
	if !ok {
		return
	}
	s.r.log.Warn("welcoming a login anonymously: the method it offered before anonymous was refused unchecked (its authid is locked out in the realm at the address)",
		suppressedAttr([]any{"address", js.key.addr, "realm", js.key.realm, "authid", logCut(js.req.AuthID), "refused", refused.Message, "anonymous_authid", anonid}, suppressed)...)
}

// MaxAuthIDLen bounds HELLO's authid and authrole (bytes, decoded): a
// login keeps both until it ends. A configured user's authid and role
// names are checked against it, so that every user can log in.
const MaxAuthIDLen = 1 << 10

// detailLen returns the length of a string key of f without copying it.
func detailLen(f *proto.Fields, k proto.Key) int {
	if b := f.Str(k); b != nil {
		return len(b)
	}
	return len(f.String(k))
}

// Bounds of what HELLO and AUTHENTICATE may carry that the router decodes
// before the session is authenticated (encoded bytes).
const (
	maxAuthDetail  = 8 << 10 // roles, authextra, AUTHENTICATE.Extra
	maxAuthMethods = 1 << 10
	// maxSignature bounds AUTHENTICATE.Signature, which the login keeps
	// until it is checked: a password, a token (8 KiB at most for the
	// OAuth2 server's), an HMAC or a cryptosign signature.
	maxSignature = 16 << 10
)

// Reasons for refusing an authentication unchecked.
var (
	errLockedOut   = &AuthError{URI: proto.URIAuthenticationDenied, Message: "too many failed authentications from this address; try again later"}
	errIDLockedOut = &AuthError{URI: proto.URIAuthenticationDenied, Message: "too many failed authentications as this authid in this realm from this address; try again later"}
	errTooManyOpen = &AuthError{URI: proto.URIAuthenticationDenied, Message: "too many authentications in progress from this address; try again later"}
	errUntracked   = &AuthError{URI: proto.URIAuthenticationDenied, Message: "the router is refusing authentications from new addresses while too many fail; try again later"}
	// errAuthBusy: the worker pool's queue is full (workers.submit). Not
	// a guess: it counts in Stats.AuthBusy, not as a failure.
	errAuthBusy = &AuthError{URI: proto.URIAuthenticationFailed, Message: "router busy: too many authentications in progress", Temporary: true}
)

// lockedOut returns the ABORT for a login of key that the limiter refuses
// as locked out: the authid's (its address's other authids are not
// refused) or the address's.
func (s *Shard) lockedOut(key loginKey) *AuthError {
	if s.r.limiter.lockOf(key, s.r.clock()) == lockAuthID {
		return errIDLockedOut
	}
	return errLockedOut
}

// authDenied aborts a session the brute-force limiter refuses.
func (s *Shard) authDenied(ss *Session, why *AuthError) {
	s.stats.AuthDenied.Add(1)
	s.abort(ss, why.URI, why.Message)
}

// startChallenge runs Authenticator.Challenge on the worker pool. It
// returns why the brute-force limiter refuses to start it (the session
// left as it was), or nil.
func (s *Shard) startChallenge(ss *Session, js *joinState) *AuthError {
	if !s.r.limiter.open(js.key, s.r.clock()) {
		why := errTooManyOpen
		switch now := s.r.clock(); {
		case s.r.limiter.blocked(js.key, now):
			why = s.lockedOut(js.key)
		case !s.r.limiter.tracked(js.key):
			why = errUntracked
		}
		return why
	}
	if !s.holdLogin(js, loginCost(js)) {
		s.r.limiter.close(js.key)
		return errLoginsFull
	}
	js.opened = true
	ss.state = stAuthPending
	req := js.req
	a, method, key, raw := js.auth, js.method, js.key, js.authExtra
	ok := s.r.auth.submit(authQueue(ss, key), func() {
		res := s.challenge(a, method, &req, raw)
		if res.err != nil {
			s.settleAuth(key, method, false, res)
		}
		s.post(task{kind: tAuthDone, s: ss, auth: res})
	}, func() { s.dropAuth(ss) })
	if !ok {
		s.authBusy(ss)
	}
	return nil
}

// authQueue returns the key a login's work queues under in the worker
// pool, which serves the keys in turn: its address's limiter key (an IPv4
// address, an IPv6 /64), else (an exempt network, an in-process peer) its
// remote address as given.
func authQueue(ss *Session, key loginKey) string {
	if key.addr != "" {
		return key.addr
	}
	return ss.transport.RemoteAddr
}

// authenticate handles AUTHENTICATE: it reserves a place with the
// brute-force limiter, then checks the signature on the worker pool.
func (s *Shard) authenticate(ss *Session, m *proto.Message) {
	if len(m.Dict.B) > maxAuthDetail {
		s.protocolError(ss, "AUTHENTICATE.Extra is longer than 8 KiB")
		return
	}
	if len(m.URI) > maxSignature {
		s.protocolError(ss, "AUTHENTICATE.Signature is longer than 16 KiB")
		return
	}
	js := ss.join
	// A further round's AUTHENTICATE replaces the last one's copies.
	if n := int64(len(m.URI)+len(m.Dict.B)) - int64(len(js.sig)+len(js.extra.B)); n > 0 && !s.holdLogin(js, n) {
		s.loginsFull(ss)
		return
	} else if n < 0 {
		s.r.loginBytes.Add(n)
		js.held += n
	}
	ss.state = stAuthPending
	js.sig = string(m.URI)
	js.extra = m.Dict.Clone()
	w := &authWait{}
	key := js.key
	w.fire = func(ok bool) { s.post(task{kind: tAuthSlot, s: ss, auth: &authResult{slot: w, granted: ok, key: key}}) }
	switch s.r.limiter.reserve(js.key, s.r.clock(), w) {
	case granted:
		s.checkSignature(ss, js)
	case denied:
		s.authDenied(ss, s.lockedOut(js.key))
	case untracked:
		s.authDenied(ss, errUntracked)
	case queued:
		js.wait = w
	}
}

// authSlot handles the limiter's answer to a queued AUTHENTICATE.
func (s *Shard) authSlot(ss *Session, res *authResult) {
	js := ss.join
	if ss.state != stAuthPending || js == nil || js.wait != res.slot {
		// The session went away meanwhile: give back the place.
		if res.granted && res.key.addr != "" {
			s.r.limiter.settle(res.key, true, false, s.r.clock())
		}
		return
	}
	js.wait = nil
	if !res.granted {
		s.authDenied(ss, s.lockedOut(js.key))
		return
	}
	s.checkSignature(ss, js)
}

// checkSignature runs Authenticator.Authenticate on the worker pool for an
// AUTHENTICATE that holds a place with the limiter. The worker settles the
// place, so that it is released even if the session goes away meanwhile.
func (s *Shard) checkSignature(ss *Session, js *joinState) {
	req := js.req
	a, method, st, sig, extra, key, raw := js.auth, js.method, js.state, js.sig, js.extra, js.key, js.authExtra
	ok := s.r.auth.submit(authQueue(ss, key), func() {
		res := s.checkAuth(a, method, &req, raw, st, sig, extra)
		s.settleAuth(key, method, true, res)
		s.post(task{kind: tAuthDone, s: ss, auth: res})
	}, func() {
		s.r.limiter.settle(key, true, false, s.r.clock())
		s.dropAuth(ss)
	})
	if !ok {
		s.r.limiter.settle(key, true, false, s.r.clock())
		s.authBusy(ss)
	}
}

// DefaultMaxLoginBytes is Config.MaxLoginBytes's default.
const DefaultMaxLoginBytes = 64 << 20

// loginOverhead is what a login in progress holds besides the bytes the
// client sent for it (its joinState and AuthRequest, the strings'
// headers): an estimate.
const loginOverhead = 512

// loginCost returns what js holds once its challenge starts: HELLO's
// authid, authrole, authmethods and authextra, and loginOverhead.
func loginCost(js *joinState) int64 {
	n := loginOverhead + len(js.req.AuthID) + len(js.req.AuthRole) + len(js.authExtra.B)
	for _, m := range js.methods {
		n += len(m) + 16
	}
	return int64(n)
}

// holdLogin charges n more bytes to js in the router's MaxLoginBytes. It
// returns false, charging nothing, when they do not fit. Before, the
// logins in progress had no total bound: up to ~11 KiB each (~35 KiB with
// AUTHENTICATE's), 1,024 an address, ~200 MB over the 19,870 connections a
// default node takes.
func (s *Shard) holdLogin(js *joinState, n int64) bool {
	if s.r.loginBytes.Add(n) > s.r.cfg.MaxLoginBytes {
		s.r.loginBytes.Add(-n)
		return false
	}
	js.held += n
	return true
}

// errLoginsFull: the logins in progress hold Config.MaxLoginBytes. Not a
// guess: counted in Stats.AuthBusy, not as a failure.
var errLoginsFull = &AuthError{URI: proto.URIAuthenticationFailed, Message: "router busy: the logins in progress hold too much memory; try again later", Temporary: true}

// loginsFull aborts a login that MaxLoginBytes has no room for.
func (s *Shard) loginsFull(ss *Session) {
	s.stats.AuthBusy.Add(1)
	now := s.r.now()
	if last := s.r.loginsLogged.Load(); (last == 0 || now-last >= int64(10*time.Second)) && s.r.loginsLogged.CompareAndSwap(last, now) {
		s.r.log.Warn("refusing logins: the logins in progress hold the router's bound of their copies (limits.login_bytes: HELLO details, AUTHENTICATE signatures); logged at most once per 10 s, counted in edgewamp_auth_busy_total",
			"bound_bytes", s.r.cfg.MaxLoginBytes)
	}
	s.abort(ss, errLoginsFull.URI, errLoginsFull.Message)
}

// authBusy aborts a login the worker pool had no room for (errAuthBusy),
// or that came after the router closed it.
func (s *Shard) authBusy(ss *Session) {
	if s.r.auth.closed() {
		s.abort(ss, proto.CloseSystemShutdown, "router is shutting down")
		return
	}
	s.stats.AuthBusy.Add(1)
	s.r.logAuthBusy()
	s.abort(ss, errAuthBusy.URI, errAuthBusy.Message)
}

// dropAuth ends a login whose queued job gave way to another address's in
// the full worker pool (workers.submit): counted now, ABORTed on its
// shard. Any goroutine; a reserved place is the caller's to settle.
func (s *Shard) dropAuth(ss *Session) {
	s.stats.AuthBusy.Add(1)
	s.r.logAuthBusy()
	s.post(task{kind: tAuthDone, s: ss, auth: &authResult{busy: true}})
}

// welcomeAuthExtra encodes id.AuthExtra for WELCOME. A "__proto__" key
// (every decoder of proto refuses it, msgpack5 throws on it) failed the
// encoding, and WELCOME went without authextra, unsaid: the key is left
// out, at any depth (withoutProtoKey: a nested one left the whole
// authextra out after d78d611, which cleaned the top level only), and the
// rest sent. What still does not encode is left out whole. Either is
// logged at WARN, at most once per 10 s.
func (r *Router) welcomeAuthExtra(ser proto.Serializer, id *Identity) (proto.Raw, bool) {
	raw, err := proto.EncodeValue(ser, id.AuthExtra)
	if err == nil {
		return raw, true
	}
	budget := maxProtoKeyWalk
	if rest, found := withoutProtoKey(id.AuthExtra, 0, &budget); found {
		if raw, err = proto.EncodeValue(ser, rest); err == nil {
			r.logAuthExtra("leaving the key \"__proto__\" out of an Identity's AuthExtra in WELCOME (JavaScript clients refuse it)", id, nil)
			return raw, true
		}
	}
	r.logAuthExtra("leaving an Identity's AuthExtra out of WELCOME: it does not encode", id, err)
	return proto.Raw{}, false
}

// withoutProtoKey returns a copy of v without any dictionary key
// protoKey, in v's dictionaries (map[string]any, map[string]string) and
// lists ([]any) down to proto.MaxDepth containers (deeper, or cyclic, v
// does not encode anyway: left as it is), and whether it found one; v
// itself is not changed (an embedder's Identity may be shared). It looks
// at *budget containers at most: a map holding itself twice has 2^99
// paths within the depth. Only when the encoding failed: not on the
// per-login path otherwise.
func withoutProtoKey(v any, depth int, budget *int) (any, bool) {
	if depth >= proto.MaxDepth || *budget <= 0 {
		return v, false
	}
	switch x := v.(type) {
	case map[string]any:
		*budget--
		var out map[string]any
		for k, e := range x {
			c, found := withoutProtoKey(e, depth+1, budget)
			if out == nil && (found || k == protoKey) {
				out = make(map[string]any, len(x))
				for k2, e2 := range x {
					if k2 != protoKey {
						out[k2] = e2
					}
				}
			}
			if found && k != protoKey {
				out[k] = c
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	case map[string]string:
		if _, has := x[protoKey]; !has {
			return v, false
		}
		out := make(map[string]string, len(x))
		for k, e := range x {
			if k != protoKey {
				out[k] = e
			}
		}
		return out, true
	case []any:
		*budget--
		var out []any
		for i, e := range x {
			c, found := withoutProtoKey(e, depth+1, budget)
			if found && out == nil {
				out = append([]any(nil), x...)
			}
			if found {
				out[i] = c
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	return v, false
}

// protoKey is the dictionary key proto refuses (see proto.ErrKeyNotString).
const protoKey = "__proto__"

// maxProtoKeyWalk bounds the containers withoutProtoKey looks at for
// one WELCOME (an authextra is a few; past it the key may be left in,
// and the authextra then left out whole).
const maxProtoKeyWalk = 4096

// logAuthExtra logs msg at most once per 10 s.
func (r *Router) logAuthExtra(msg string, id *Identity, err error) {
	now := r.now()
	last := r.extraLogged.Load()
	if last != 0 && now-last < int64(10*time.Second) || !r.extraLogged.CompareAndSwap(last, now) {
		return
	}
	args := []any{"authid", id.AuthID, "authrole", id.AuthRole}
	if err != nil {
		args = append(args, "error", err)
	}
	r.log.Warn(msg+"; logged at most once per 10 s", args...)
}

// logAuthBusy says, at most once per 10 s, that logins are refused for a
// full worker pool. Any goroutine.
func (r *Router) logAuthBusy() {
	now := r.now()
	last := r.busyLogged.Load()
	if last != 0 && now-last < int64(10*time.Second) || !r.busyLogged.CompareAndSwap(last, now) {
		return
	}
	r.log.Warn("refusing logins: the queue of authentication work is full (a login from an address with fewer jobs queued takes the place of the newest job of the address with the most); logged at most once per 10 s, counted in edgewamp_auth_busy_total",
		"queue", r.cfg.AuthQueue, "workers", r.cfg.AuthWorkers)
}

// settleAuth tells the limiter how an attempt of key ended and counts a
// failure. It runs on a worker: a failure counts even when its session
// has gone away meanwhile.
func (s *Shard) settleAuth(key loginKey, method string, reserved bool, res *authResult) {
	failed := res.err != nil || (!res.challenge && res.id == nil)
	// Nothing was checked, or a genuine credential: not a guess. A role
	// refused (no_such_role) is told only once the secret is proved right
	// (this package's authenticators, and the access tokens' verifier):
	// before, each counted, and a client configured with a role its user
	// lacks locked its authid out after block_after reconnections, the
	// user's logins with the right role too. Each is still an ABORT and a
	// log line, within the places reserve gives an authid.
	if ae, ok := res.err.(*AuthError); ok && (ae.Temporary || ae.Stale || ae.URI == proto.URINoSuchRole) {
		failed = false
	}
	var lock lockKind
	res.delay, lock = s.r.limiter.settle(key, reserved, failed, s.r.clock())
	if failed {
		s.stats.AuthFailures.Add(1)
		s.stats.AuthFailuresBy[authMethodIndex(method)].Add(1)
	}
	if lock == lockNone {
		return
	}
	suppressed, ok := s.r.lockLogs.take(s.r.now())
	if !ok {
		return
	}
	switch lim := s.r.limiter.lim; lock {
	case lockAuthID:
		s.r.log.Warn("refusing an authid's authentications from an address for a while, in one realm (the address's other authids, and this one in other realms, are not refused)",
			suppressedAttr([]any{"address", key.addr, "realm", key.realm, "authid", key.authid, "failures", lim.BlockAfter, "for", lim.Lockout}, suppressed)...)
	case lockAuthIDs:
		s.r.log.Warn("refusing the authentications of an address's authids for a while (the limiter's table of authids is full: those without a record of their own share one count)",
			suppressedAttr([]any{"address", key.addr, "realm", key.realm, "authid", key.authid, "failures", lim.BlockAfter, "for", lim.Lockout}, suppressed)...)
	case lockAddress:
		s.r.log.Warn("refusing authentications from an address for a while (failures of many authids)",
			suppressedAttr([]any{"address", key.addr, "failures", lim.AddressBlockAfter, "for", lim.Lockout}, suppressed)...)
	}
}

// authResult is a worker's answer (or the limiter's), run back on the
// session's shard.
type authResult struct {
	challenge bool
	extra     map[string]any
	state     any
	id        *Identity
	err       error
	delay     time.Duration // of a failure's ABORT (limiter)
	// busy: the job gave way to another address's in the full worker
	// pool (dropAuth), and was not run.
	busy bool

	// tAuthSlot: the limiter's answer to a queued AUTHENTICATE.
	slot    *authWait
	granted bool
	key     loginKey
}

func (s *Shard) authDone(ss *Session, res *authResult) {
	if ss.state != stAuthPending || ss.join == nil {
		return // the session went away meanwhile
	}
	if res.busy {
		s.abort(ss, errAuthBusy.URI, errAuthBusy.Message)
		return
	}
	js := ss.join
	if ae, ok := res.err.(*AuthError); ok && ae.URI == proto.URIProtocolViolation {
		s.protocolError(ss, ae.Message) // decodeDetails
		return
	}
	if res.err != nil || (!res.challenge && res.id == nil) {
		uri, msg := proto.URIAuthenticationFailed, "authentication failed"
		if res.err != nil {
			msg = res.err.Error()
		}
		if ae, ok := res.err.(*AuthError); ok {
			uri, msg = ae.URI, ae.Message
		}
		s.authFailed(ss, js, uri, msg, res.delay)
		return
	}
	if res.challenge && res.id == nil {
		js.state = res.state
		ss.state = stChallenged
		out := &s.out
		out.Reset()
		out.Type = proto.CodeChallenge
		out.URI = append(out.URI[:0], js.method...)
		if res.extra != nil {
			raw, err := proto.EncodeValue(ss.ser, res.extra)
			if err != nil {
				s.abort(ss, proto.URIAuthenticationFailed, "cannot encode the challenge")
				return
			}
			out.Dict = raw
		}
		s.sendMsg(ss, out, ClassControl)
		return
	}
	// The login was checked against the configuration of its HELLO: a
	// reload since (which re-checks only established sessions) may have
	// removed the realm, the user or its role.
	if why := identityValid(s.r, js.realm, js.method, res.id.AuthProvider, res.id.AuthID, res.id.AuthRole, res.id.cred, true); why != "" {
		s.abort(ss, proto.URIAuthenticationFailed, why)
		return
	}
	s.welcome(ss, js.realm, res.id, js.method, false)
}

// authFailed logs a failed authentication (counted by settleAuth) and
// aborts the session, after a delay when its address keeps failing.
func (s *Shard) authFailed(ss *Session, js *joinState, uri, msg string, delay time.Duration) {
	// At most authLogsPerSecond lines a second: failures from many
	// addresses are not bounded by the limiter, which counts per address.
	if suppressed, ok := s.r.failLogs.take(s.r.now()); ok {
		s.r.log.Info("authentication failed", suppressedAttr([]any{"realm", js.realm.name, "authid", logCut(js.req.AuthID),
			"authmethod", js.method, "remote", ss.transport.RemoteAddr, "reason", uri, "delay", delay}, suppressed)...)
	}
	if delay <= 0 {
		s.abort(ss, uri, msg)
		return
	}
	js.failURI, js.failMsg = uri, msg
	s.addTimer(timer{due: deadlineAfter(s.r.now(), delay), kind: tmAuthFail, sess: ss})
}

// welcome establishes the session and sends WELCOME. internal is set for
// a session of JoinInternal (the gateway's), which a drain lets join.
func (s *Shard) welcome(ss *Session, rm *Realm, id *Identity, method string, internal bool) {
	sid, err := s.r.newSessionID(ss, internal)
	if err != nil {
		s.abort(ss, proto.CloseSystemShutdown, "router is shutting down")
		return
	}
	ss.id = sid
	ss.realm = rm
	ss.internal = internal
	ss.authID, ss.authRole, ss.authMethod = id.AuthID, id.AuthRole, method
	ss.authProvider = id.AuthProvider
	if ss.authProvider == "" {
		ss.authProvider = "static"
	}
	ss.cred = id.Credential
	ss.staticCred = id.cred
	ss.realmAuth = ss.join != nil && ss.join.auth != nil && method != "anonymous"
	ss.endJoin()
	s.stats.AuthSuccessesBy[authMethodIndex(method)].Add(1)
	ss.state = stEstablished
	rm.mu.Lock()
	rm.addMember(ss)
	rm.mu.Unlock()

	out := &s.out
	out.Reset()
	out.Type = proto.CodeWelcome
	out.ID = sid
	f := &out.Opt
	f.SetString(proto.KeyAgent, s.r.cfg.Agent)
	f.SetString(proto.KeyAuthID, ss.authID)
	f.SetString(proto.KeyAuthRole, ss.authRole)
	f.SetString(proto.KeyAuthMethod, ss.authMethod)
	f.SetString(proto.KeyAuthProvider, ss.authProvider)
	f.SetString(proto.KeyRealm, rm.name)
	f.SetRaw(proto.KeyRoles, s.r.welcome[ss.ser])
	if id.AuthExtra != nil {
		if raw, ok := s.r.welcomeAuthExtra(ss.ser, id); ok {
			f.SetRaw(proto.KeyAuthExtra, raw)
		}
	}
	if s.sendMsg(ss, out, ClassControl) == ErrPeerTooBig {
		// A RawSocket client may accept as little as 512 octets. The
		// compact WELCOME keeps the identity and the roles but announces no
		// feature flags, so a compliant client uses none.
		out.Opt.Reset()
		f.SetString(proto.KeyAuthID, ss.authID)
		f.SetString(proto.KeyAuthRole, ss.authRole)
		f.SetString(proto.KeyAuthMethod, ss.authMethod)
		f.SetRaw(proto.KeyRoles, s.r.welcomeCompact[ss.ser])
		if s.sendMsg(ss, out, ClassControl) == ErrPeerTooBig {
			// Never joined: no on_join was announced, so it leaves
			// without on_leave.
			rm.mu.Lock()
			rm.dropMember(ss)
			rm.mu.Unlock()
			s.r.dropSession(ss)
			ss.state = stAuthPending
			s.abortLogged(ss, proto.URIPayloadSizeExceeded, "WELCOME does not fit in the client's maximum message length")
			return
		}
	}
	s.metaJoin(ss)
	if ss.cred != nil {
		s.holdCredential(ss)
	}
}

// goodbyeFromClient answers a client's GOODBYE and ends the session.
func (s *Shard) goodbyeFromClient(ss *Session) {
	s.sendClose(ss, proto.CodeGoodbye, proto.CloseGoodbyeAndOut, "")
	s.leave(ss)
	ss.finish()
}

// Goodbye ends an established session from the router's side: it sends
// GOODBYE with reason (and message, if any), leaves the realm at once, and
// closes the transport when the client replies or after GoodbyeTimeout.
func (s *Shard) Goodbye(ss *Session, reason, message string) {
	if ss.state != stEstablished {
		if ss.state < stEstablished {
			s.abort(ss, reason, message)
		}
		return
	}
	if !s.sendClose(ss, proto.CodeGoodbye, reason, message) && ss.state == stClosed {
		return // too long even bare: sendMsg closed the session
	}
	s.leave(ss)
	ss.state = stClosing
	s.addTimer(timer{due: deadlineAfter(s.r.now(), s.r.cfg.GoodbyeTimeout), kind: tmGoodbye, sess: ss})
}

// abort sends ABORT and ends the session.
func (s *Shard) abort(ss *Session, reason, message string) {
	if ss.state >= stClosing {
		return
	}
	s.sendClose(ss, proto.CodeAbort, reason, message)
	s.leave(ss)
	ss.finish()
}

// protocolError aborts with wamp.error.protocol_violation (WAMP §Protocol
// Violations).
func (s *Shard) protocolError(ss *Session, message string) {
	s.stats.ProtocolErrors.Add(1)
	s.abortLogged(ss, proto.URIProtocolViolation, message)
}

// ProtocolViolation ends a session for a violation its transport found in
// what the client sent (a RawSocket frame longer than the maximum the
// router announced, which fails the connection): ABORT
// wamp.error.protocol_violation with message, logged and counted as the
// router's own findings are, before the transport closes. The session may
// be waiting for HELLO still (an ABORT is sent then too, as at shutdown).
// Call on the shard's goroutine.
func (s *Shard) ProtocolViolation(ss *Session, message string) { s.protocolError(ss, message) }

// abortLogged is abort for a session the router ends for what its client
// sent (a protocol violation, an unknown realm, a message longer than it
// takes): it logs the ABORT at info with its reason and message, at most
// authLogsPerSecond lines a second (a flood of bad sessions is counted in
// the next line written). Before, it was logged at debug only, and the
// transport's close line ("session_closed") is debug too: an operator saw
// nothing of a real client whose sessions kept ending. Logins refused are
// logged by authFailed and the limiter instead.
func (s *Shard) abortLogged(ss *Session, reason, message string) {
	if ss.state >= stClosing {
		return // as abort
	}
	if suppressed, ok := s.r.abortLogs.take(s.r.now()); ok {
		args := []any{"remote", ss.transport.RemoteAddr, "reason", reason, "message", logCutN(message, maxAbortLogMessage)}
		if ss.id != 0 && ss.realm != nil {
			args = append(args, "session", ss.id, "realm", ss.realm.name, "authid", logCut(ss.authID))
		}
		if suppressed > 0 {
			args = append(args, "abort_logs_suppressed", suppressed)
		}
		s.r.log.Info("session aborted", args...)
	}
	s.abort(ss, reason, message)
}

// maxAbortLogMessage bounds the message of an ABORT in its log line
// (bytes): it may quote what the client sent.
const maxAbortLogMessage = 256

// sendClose sends ABORT or GOODBYE (code) with reason and, if not empty,
// message as details.message, and reports whether it was sent. When the
// message makes it longer than the peer accepts (a RawSocket client may
// announce 512 bytes; the message may quote a realm or authid the client
// sent, or be a kill's text from a meta caller), it goes without it, with
// empty details: the peer must learn why its session ends. Before, the
// transport refused it and the session was closed without it (logged at
// debug), as ece82f9 fixed for ERROR. Only a reason too long itself (a
// kill's, up to 4 KiB) still closes the session without it (sendMsg).
// So does a message that has no form in the peer's serializer (a kill's
// text starting with NUL, sent by a MsgPack or CBOR caller, for a JSON
// peer, which would read it as binary): before, such a GOODBYE was not
// sent at all, the session left its realm and its connection was closed
// goodbye_timeout later without a word.
func (s *Shard) sendClose(ss *Session, code proto.Code, reason, message string) bool {
	out := &s.out
	out.Reset()
	out.Type = code
	out.URI = append(out.URI[:0], reason...)
	if message != "" {
		out.Opt.SetString(proto.KeyMessage, message)
		n, err := s.encodeSend(ss, out, ClassControl)
		if err == nil || err != ErrPeerTooBig && n > 0 {
			return err == nil // sent, or refused by the transport (slow, closed)
		}
		s.r.log.Debug("ABORT or GOODBYE too long for the peer, or its message not encodable for it; sent without its message", "session", ss.id, "type", code.String(), "len", n, "err", err)
		out.Reset()
		out.Type = code
		out.URI = append(out.URI[:0], reason...)
	}
	return s.sendMsg(ss, out, ClassControl) == nil
}

// finish closes the transport. The session must have left its realm.
func (ss *Session) finish() {
	if ss.state == stClosed {
		return
	}
	ss.endJoin()
	ss.state = stClosed
	ss.peer.Close()
}

// endJoin drops the session's authentication in progress, if any, and
// gives back what it held with the brute-force limiter: its open
// challenge and its place in the AUTHENTICATE queue. (A place being
// checked is given back by the worker that checks it.) Owned by shard.
func (ss *Session) endJoin() {
	js := ss.join
	if js == nil {
		return
	}
	ss.join = nil
	l := ss.shard.r.limiter
	if js.wait != nil {
		// If it fired already, authSlot gives back a granted place when it
		// finds the session gone.
		l.cancel(js.key, js.wait)
	}
	if js.opened {
		l.close(js.key)
	}
	if js.held != 0 {
		ss.shard.r.loginBytes.Add(-js.held)
	}
}

// sendMsg encodes m in the session's serializer and sends it. A control
// message longer than the peer accepts (a RawSocket client's maximum) ends
// the session, except WELCOME, which the caller shortens: without it the
// session would be in a state the client does not know.
func (s *Shard) sendMsg(ss *Session, m *proto.Message, class Class) error {
	n, err := s.encodeSend(ss, m, class)
	if err == ErrPeerTooBig && class == ClassControl && m.Type != proto.CodeWelcome {
		s.r.log.Debug("control message too long for the peer; closing", "session", ss.id, "type", m.Type.String(), "len", n)
		if m.Type != proto.CodeAbort && m.Type != proto.CodeGoodbye {
			s.abortLogged(ss, proto.URIPayloadSizeExceeded, "a "+m.Type.String()+" exceeds the client's maximum message length")
		}
		s.leave(ss)
		ss.finish()
	}
	return err
}

// encodeSend is sendMsg without its ending the session: a message too long
// for the peer only returns ErrPeerTooBig, for a caller that can send a
// shorter one instead (sendRevocation). It returns the encoded length (0
// when m could not be encoded for the session).
func (s *Shard) encodeSend(ss *Session, m *proto.Message, class Class) (int, error) {
	b, err := s.enc.Append(s.buf[:0], ss.ser, m)
	if err != nil {
		return 0, err
	}
	err = ss.peer.Send(b, class)
	s.buf = keepBuf(b)
	if err == nil {
		s.countOut(m.Type, len(b))
	}
	return len(b), err
}

// parseFeatures reads the client role features the router acts on. Cold
// path (HELLO).
func parseFeatures(roles proto.Raw) (features, error) {
	budget := maxAuthDecoded
	v, err := proto.DecodeValueBudget(roles, &budget)
	if err == proto.ErrDecodedTooLarge {
		return 0, errf(tooLargeDecoded[1:])
	}
	if err != nil {
		return 0, err
	}
	rm, ok := v.(map[string]any)
	if !ok || len(rm) == 0 {
		return 0, errf("must be a non-empty dictionary")
	}
	// [WAMP Basic Profile, Client: Roles]: "A Client can support any
	// combination of the above roles but must support at least one role",
	// each "a dictionary describing features supported by the peer for
	// that role". Other keys (a role a later version may add) are ignored.
	// Before, a HELLO naming none ({"dealer": {}}) got WELCOME.
	client := false
	for _, role := range [...]string{proto.RoleCaller, proto.RoleCallee, proto.RolePublisher, proto.RoleSubscriber} {
		if _, ok := rm[role].(map[string]any); ok {
			client = true
		}
	}
	if !client {
		return 0, errf("must announce at least one client role (caller, callee, publisher or subscriber) as a dictionary")
	}
	has := func(role, feature string) bool {
		r, _ := rm[role].(map[string]any)
		fs, _ := r["features"].(map[string]any)
		b, _ := fs[feature].(bool)
		return b
	}
	var f features
	if has(proto.RoleCaller, proto.FeatureProgressiveCallResults) {
		f |= fCallerProgress
	}
	if has(proto.RoleCaller, proto.FeatureProgressiveCallInvocations) {
		f |= fCallerProgInv
	}
	if has(proto.RoleCallee, proto.FeatureProgressiveCallResults) {
		f |= fCalleeProgress
	}
	// The specification spells it both ways ("call_cancelling" in the
	// progressive call invocations text); accept either.
	if has(proto.RoleCallee, proto.FeatureCallCanceling) || has(proto.RoleCallee, "call_cancelling") {
		f |= fCalleeCancel
	}
	if has(proto.RoleCallee, proto.FeatureProgressiveCallInvocations) && f&fCalleeCancel != 0 {
		f |= fCalleeProgInv
	}
	if has(proto.RoleCallee, proto.FeatureCallTimeout) {
		f |= fCalleeTimeout
	}
	if has(proto.RoleCallee, "registration_revocation") {
		f |= fCalleeRevoke
	}
	if has(proto.RoleSubscriber, "subscription_revocation") {
		f |= fSubscriberRevoke
	}
	// A subscriber's is not read: an EVENT in Payload Passthru Mode goes
	// to every subscriber ("cannot be recognized at the protocol level
	// [...] and must be covered at the Subscriber side").
	if has(proto.RoleCaller, proto.FeaturePayloadPassthruMode) {
		f |= fCallerPPT
	}
	if has(proto.RoleCallee, proto.FeaturePayloadPassthruMode) {
		f |= fCalleePPT
	}
	if has(proto.RolePublisher, proto.FeaturePayloadPassthruMode) {
		f |= fPublisherPPT
	}
	return f, nil
}

// pptUnannounced aborts ss (wamp.error.protocol_violation) when m, a
// CALL, PUBLISH, YIELD or ERROR in Payload Passthru Mode (a non-empty
// ppt_scheme), comes from a peer that did not announce
// payload_passthru_mode for the role it sends it in (WAMP Advanced
// Profile, Payload Passthru Mode: "MUST be treated as PROTOCOL ERRORS"),
// and reports whether it did. Cold: only for messages with ppt_scheme.
func (s *Shard) pptUnannounced(ss *Session, m *proto.Message) bool {
	if !pptMode(&m.Opt) {
		return false
	}
	var need features
	var role string
	switch m.Type {
	case proto.CodeCall:
		need, role = fCallerPPT, proto.RoleCaller
	case proto.CodePublish:
		need, role = fPublisherPPT, proto.RolePublisher
	case proto.CodeYield, proto.CodeError:
		need, role = fCalleePPT, proto.RoleCallee
	default:
		return false
	}
	if ss.feat&need != 0 {
		return false
	}
	s.protocolError(ss, m.Type.String()+" in payload passthru mode (ppt_scheme) from a "+role+" that did not announce payload_passthru_mode")
	return true
}

type routeErr string

func (e routeErr) Error() string { return string(e) }

func errf(s string) error { return routeErr(s) }

// anonymousID returns a random authid for an anonymous session: 24
// characters of [A-Za-z0-9], about 143 bits, so unique in practice (and
// not guessable, so no anonymous session can be singled out by an authid
// another one chose).
func anonymousID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 24)
	idRand.Lock()
	for i := range b {
		b[i] = alphabet[idRand.r.IntN(len(alphabet))]
	}
	idRand.Unlock()
	return string(b)
}
