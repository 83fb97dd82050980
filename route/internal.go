package route

import (
	"strconv"

	"github.com/edgewamp/edgewamp/proto"
)

// In-process sessions: a peer that lives in the router's own process (the
// HTTP gateway, a mesh bridge) and has authenticated its principal itself
// joins a realm without HELLO and the WAMP authentication exchange.

// JoinOptions describes an in-process session's join.
type JoinOptions struct {
	// Realm is the realm to join.
	Realm string
	// Identity is the principal the session acts as. An empty AuthID gets
	// a random one (as an anonymous session's); an anonymous join without
	// an AuthRole gets the realm's anonymous role. AuthProvider defaults
	// to "internal". The realm's authorizer sees AuthRole, as for any
	// session.
	Identity Identity
	// AuthMethod is the method the caller authenticated the principal
	// with, for WELCOME, the meta API and reload checks: "anonymous" makes
	// the session leave when the realm stops allowing anonymous sessions,
	// or gives them another role (SIGHUP), as WebSocket ones do. Default
	// "internal".
	AuthMethod string
	// Client features the peer implements (WAMP §Advanced Profile):
	// progressive call results as a caller and as a callee, call canceling
	// and call timeout as a callee.
	CallerProgress bool
	CalleeProgress bool
	CalleeCancel   bool
	CalleeTimeout  bool
	// SubscriberRevoke: the peer handles a router-initiated UNSUBSCRIBED
	// (subscription_revocation: a reload's revocation,
	// wamp.subscription.remove_subscriber); without it the router takes
	// the subscription away without telling the peer.
	SubscriberRevoke bool
	// CalleeRevoke: the peer handles a router-initiated UNREGISTERED
	// (registration_revocation: a reload's revocation,
	// wamp.registration.remove_callee, a registration conflict lost to
	// another node of a mesh); without it the router takes the
	// registration away without telling the peer (and ends the session on
	// a mesh conflict, so that it does not go on believing it serves the
	// procedure).
	CalleeRevoke bool
}

// JoinInternal establishes ss, a session opened with Open whose peer has
// already authenticated its principal, in a realm: the session gets an id,
// joins the realm's members and is sent WELCOME (so that the peer learns
// its session id), and on_join is announced, exactly as after a HELLO and
// an authentication. Realm RBAC applies to it unchanged. Call on the
// shard's goroutine (inside Shard.Do), once, before any other message of
// the session. It returns a *AuthError (no_such_realm,
// authentication_denied, system_shutdown) and aborts the session when it
// cannot join; the peer then sees ABORT and Close.
func (s *Shard) JoinInternal(ss *Session, o JoinOptions) error {
	if ss.state != stNew {
		return &AuthError{URI: proto.URIProtocolViolation, Message: "JoinInternal on a session that is not new"}
	}
	rm := s.r.Realm(o.Realm)
	if rm == nil {
		err := &AuthError{URI: proto.URINoSuchRealm, Message: "no realm " + strconv.Quote(o.Realm)}
		s.abort(ss, err.URI, err.Message)
		return err
	}
	if o.AuthMethod == "anonymous" && !rm.conf().Anonymous {
		err := &AuthError{URI: proto.URIAuthenticationDenied, Message: "realm " + strconv.Quote(o.Realm) + " does not allow anonymous sessions"}
		s.abort(ss, err.URI, err.Message)
		return err
	}
	if s.closing {
		return &AuthError{URI: proto.CloseSystemShutdown, Message: "router is shutting down"} // Open aborted it already
	}
	var f features
	if o.CallerProgress {
		f |= fCallerProgress
	}
	if o.CalleeProgress {
		f |= fCalleeProgress
	}
	if o.CalleeCancel {
		f |= fCalleeCancel
	}
	if o.CalleeTimeout {
		f |= fCalleeTimeout
	}
	if o.SubscriberRevoke {
		f |= fSubscriberRevoke
	}
	if o.CalleeRevoke {
		f |= fCalleeRevoke
	}
	ss.feat = f
	id := o.Identity
	if id.AuthID == "" {
		id.AuthID = anonymousID()
	}
	if id.AuthRole == "" && o.AuthMethod == "anonymous" {
		id.AuthRole = rm.conf().AnonymousRole
	}
	if id.AuthProvider == "" {
		id.AuthProvider = "internal"
	}
	method := o.AuthMethod
	if method == "" {
		method = "internal"
	}
	s.welcome(ss, rm, &id, method, true)
	if ss.state != stEstablished {
		return &AuthError{URI: proto.CloseSystemShutdown, Message: "router is shutting down"}
	}
	return nil
}

// Established reports whether the session has joined a realm and not left
// it. Call on the session's shard goroutine.
func (ss *Session) Established() bool { return ss.state == stEstablished }
