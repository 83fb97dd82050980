package route

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/edgewamp/edgewamp/proto"
)

// # An Authenticator that panics
//
// Authenticators are the embedder's code (cmd's, or a Go program's), run
// on the worker pool's goroutines. A panic there ended the whole router
// process, every session with it, and a peer that found the input that
// makes one panic could do it at will. So the worker recovers it around
// each call: that login is refused (ABORT wamp.error.authentication_failed,
// counted as a failed authentication, as a wrong credential is: a peer
// that provokes it is locked out as a guesser would be), a line is logged
// at ERROR with the realm, authmethod, authid, address and the stack, and
// the worker goes on with the next job. The panic's value is logged only
// when the runtime made it (a runtime.Error: a nil map, an index out of
// range), which quotes no input: another value may quote the credentials
// (a signature, a ticket) the Authenticator was given, and only its type
// is logged.

// errAuthPanicked refuses a login whose Authenticator panicked.
var errAuthPanicked = &AuthError{URI: proto.URIAuthenticationFailed, Message: "the router could not check the authentication (an error in its authenticator)"}

// challenge runs a.Challenge, a panic turned into errAuthPanicked (and
// logged). On a worker.
func (s *Shard) challenge(a Authenticator, req *AuthRequest) (extra map[string]any, st any, id *Identity, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.r.logAuthPanic(a, "Challenge", req, v)
			extra, st, id, err = nil, nil, nil, errAuthPanicked
		}
	}()
	return a.Challenge(req)
}

// checkAuth runs a.Authenticate, a panic turned into errAuthPanicked
// (and logged). On a worker.
func (s *Shard) checkAuth(a Authenticator, req *AuthRequest, st any, sig string, extra map[string]any) (id *Identity, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.r.logAuthPanic(a, "Authenticate", req, v)
			id, err = nil, errAuthPanicked
		}
	}()
	return a.Authenticate(req, st, sig, extra)
}

// logAuthPanic logs, at ERROR, that a's method call panicked with v,
// within the failed-authentication lines' rate (authLogsPerSecond, its
// own count). Any goroutine.
func (r *Router) logAuthPanic(a Authenticator, call string, req *AuthRequest, v any) {
	suppressed, ok := r.panicLogs.take(r.now())
	if !ok {
		return
	}
	r.log.Error("an Authenticator panicked: the login is refused (wamp.error.authentication_failed) and counted as a failed authentication, the router goes on; a bug in the authenticator to fix",
		suppressedAttr([]any{"realm", req.Realm, "authmethod", a.Method(), "call", call, "authid", logCut(req.AuthID),
			"remote", req.Transport.RemoteAddr, "panic", panicWhat(v, "the credentials"), "stack", string(debug.Stack())}, suppressed)...)
}

// panicWhat is what is logged of a panic's value v: the runtime's own
// error (a nil map, an index out of range) quotes no input, another value
// may quote what the code was given (secret): only its type.
func panicWhat(v any, secret string) string {
	if re, ok := v.(runtime.Error); ok {
		return re.Error()
	}
	return fmt.Sprintf("a value of type %T (not logged: it may quote %s)", v, secret)
}

// # An Authorizer that panics
//
// An Authorizer is the embedder's code too, run on the session's shard
// (an event loop) with a URI the peer chose, and on a reload with a
// retained event's topic: a panic there ended the router process as an
// Authenticator's did, at any peer's request (a CALL to the URI that
// makes it panic). So a panic in Authorize or AuthorizePattern is a
// refusal (wamp.error.not_authorized, cached as any decision, so the
// session's next request for the URI does not ask again), logged at
// ERROR within panicLogs' rate. On a cache miss only: the per-call path
// (a cache hit) is unchanged.

// askAuthorize runs az.Authorize, a panic turned into a refusal (and
// logged). Any goroutine.
func (r *Router) askAuthorize(az Authorizer, realm, role string, a Action, uri string) (ok bool) {
	defer r.authzRecover(realm, role, a, uri, &ok)
	return az.Authorize(role, a, uri)
}

// askAuthorizePattern is askAuthorize for pz.AuthorizePattern.
func (r *Router) askAuthorizePattern(pz PatternAuthorizer, realm, role string, a Action, m proto.Match, uri string) (ok bool) {
	defer r.authzRecover(realm, role, a, uri, &ok)
	return pz.AuthorizePattern(role, a, m, uri)
}

// authzRecover, deferred by askAuthorize, turns a panic of the Authorizer
// into a refusal and logs it.
func (r *Router) authzRecover(realm, role string, a Action, uri string, ok *bool) {
	v := recover()
	if v == nil {
		return
	}
	*ok = false
	suppressed, logIt := r.panicLogs.take(r.now())
	if !logIt {
		return
	}
	r.log.Error("an Authorizer panicked: the request is refused (wamp.error.not_authorized), the router goes on; a bug in the authorizer to fix",
		suppressedAttr([]any{"realm", realm, "authrole", role, "action", a.String(), "uri", logCut(uri),
			"panic", panicWhat(v, "the URI"), "stack", string(debug.Stack())}, suppressed)...)
}
