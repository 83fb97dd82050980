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
// is logged. The recovery covers the whole of the job's check, the
// decoding of the login's authextra and extra included.
//
// Method runs on the event loops: at each HELLO, for the realm's
// Authenticators until one offers a method the client asked for, and at
// a reload's re-check of the sessions (methodOffered). A panic there
// ended the router process too. It is recovered (authMethod): that
// Authenticator is skipped, as one offering no method the client asked
// for; a login that finds no other is refused with errAuthPanicked, not
// no_matching_auth_method, and a session that logged in with its method
// ends at a reload (its method can no longer be told to be offered).
// The method a login uses is read once, at its HELLO (joinState.method).
//
// Every recovered panic, an Authorizer's too, is counted
// (Stats.AuthenticatorPanics, AuthorizerPanics: on /metrics,
// edgewamp_auth_panics_total{in}).

// errAuthPanicked refuses a login whose Authenticator panicked.
var errAuthPanicked = &AuthError{URI: proto.URIAuthenticationFailed, Message: "the router could not check the authentication (an error in its authenticator)"}

// challenge decodes the HELLO's authextra raw into req and runs
// a.Challenge, a panic in either turned into errAuthPanicked (logged and
// counted). On a worker.
func (s *Shard) challenge(a Authenticator, method string, req *AuthRequest, raw proto.Raw) (res *authResult) {
	defer func() {
		if v := recover(); v != nil {
			s.r.logAuthPanic(method, "Challenge", req, v)
			res = &authResult{challenge: true, err: errAuthPanicked}
		}
	}()
	x, err := decodeDetails(raw, "HELLO.Details.authextra")
	if err != nil {
		return &authResult{challenge: true, err: err}
	}
	req.AuthExtra = x
	extra, st, id, err := a.Challenge(req)
	return &authResult{challenge: true, extra: extra, state: st, id: id, err: err}
}

// checkAuth decodes the HELLO's authextra raw into req and the
// AUTHENTICATE's extra, and runs a.Authenticate, a panic in any turned
// into errAuthPanicked (logged and counted). On a worker.
func (s *Shard) checkAuth(a Authenticator, method string, req *AuthRequest, raw proto.Raw, st any, sig string, extra proto.Raw) (res *authResult) {
	defer func() {
		if v := recover(); v != nil {
			s.r.logAuthPanic(method, "Authenticate", req, v)
			res = &authResult{err: errAuthPanicked}
		}
	}()
	x, err := decodeDetails(raw, "HELLO.Details.authextra")
	var ax map[string]any
	if err == nil {
		ax, err = decodeDetails(extra, "AUTHENTICATE.Extra")
	}
	if err != nil {
		return &authResult{err: err}
	}
	req.AuthExtra = x
	id, err := a.Authenticate(req, st, sig, ax)
	return &authResult{id: id, err: err}
}

// logAuthPanic counts, and logs at ERROR, that the call of an
// Authenticator of method panicked with v, within the
// failed-authentication lines' rate (authLogsPerSecond, its own count).
// Any goroutine.
func (r *Router) logAuthPanic(method, call string, req *AuthRequest, v any) {
	r.authnPanics.Add(1)
	suppressed, ok := r.panicLogs.take(r.now())
	if !ok {
		return
	}
	r.log.Error("an Authenticator panicked: the login is refused (wamp.error.authentication_failed) and counted as a failed authentication, the router goes on; a bug in the authenticator to fix",
		suppressedAttr([]any{"realm", req.Realm, "authmethod", method, "call", call, "authid", logCut(req.AuthID),
			"remote", req.Transport.RemoteAddr, "panic", panicWhat(v, "the credentials"), "stack", string(debug.Stack())}, suppressed)...)
}

// authMethod returns a.Method(); ok is false when it panicked (counted,
// and logged at ERROR within panicLogs' rate). Any goroutine (an event
// loop's: HELLO, a reload's re-check).
func (r *Router) authMethod(a Authenticator, realm string) (method string, ok bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		method, ok = "", false
		r.authnPanics.Add(1)
		suppressed, logIt := r.panicLogs.take(r.now())
		if !logIt {
			return
		}
		r.log.Error("an Authenticator's Method panicked: it is skipped (a login that asked for no other method of the realm is refused, wamp.error.authentication_failed; a session that logged in with it ends at a reload), the router goes on; a bug in the authenticator to fix",
			suppressedAttr([]any{"realm", realm, "authenticator", fmt.Sprintf("%T", a),
				"panic", panicWhat(v, "what the authenticator holds"), "stack", string(debug.Stack())}, suppressed)...)
	}()
	return a.Method(), true
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

// # A Credential.Check that panics
//
// An Identity's Credential.Check is the embedder's code too (the OAuth2
// server's token check), run on the session's shard when the session is
// established, after every reload and at RecheckCredentials. A panic
// there ended the router process. It is recovered (Router.withdrawn): the
// credential is taken as withdrawn, so the session ends (GOODBYE
// wamp.close.killed, errCheckPanicked its reason) and its retained
// events are dropped, as for a revoked token; logged at ERROR within
// panicLogs' rate (the panic's value only when the runtime made it: the
// credential may hold a token), counted as an Authenticator's panic.

// errCheckPanicked is the reason a session ends when its Credential.Check
// panicked.
const errCheckPanicked = "the router could not check the session's credential (an error in its check)"

// logCheckPanic counts, and logs at ERROR, that a Credential.Check
// panicked with v. Any goroutine.
func (r *Router) logCheckPanic(v any) {
	r.authnPanics.Add(1)
	suppressed, ok := r.panicLogs.take(r.now())
	if !ok {
		return
	}
	r.log.Error("a Credential's Check panicked: the credential is taken as withdrawn (its session ends), the router goes on; a bug in the authenticator to fix",
		suppressedAttr([]any{"panic", panicWhat(v, "the credential"), "stack", string(debug.Stack())}, suppressed)...)
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
	r.authzPanics.Add(1)
	suppressed, logIt := r.panicLogs.take(r.now())
	if !logIt {
		return
	}
	r.log.Error("an Authorizer panicked: the request is refused (wamp.error.not_authorized), the router goes on; a bug in the authorizer to fix",
		suppressedAttr([]any{"realm", realm, "authrole", role, "action", a.String(), "uri", logCut(uri),
			"panic", panicWhat(v, "the URI"), "stack", string(debug.Stack())}, suppressed)...)
}
