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
	what := fmt.Sprintf("a value of type %T (not logged: it may quote the credentials)", v)
	if re, ok := v.(runtime.Error); ok {
		what = re.Error()
	}
	r.log.Error("an Authenticator panicked: the login is refused (wamp.error.authentication_failed) and counted as a failed authentication, the router goes on; a bug in the authenticator to fix",
		suppressedAttr([]any{"realm", req.Realm, "authmethod", a.Method(), "call", call, "authid", logCut(req.AuthID),
			"remote", req.Transport.RemoteAddr, "panic", what, "stack", string(debug.Stack())}, suppressed)...)
}
