package client

import (
	"errors"
	"strings"
)

// Error is a WAMP error: the reason URI and payload of an ERROR reply, an
// ABORT during the join, or a GOODBYE with which the router ended the
// session. A Handler returns an *Error to answer an invocation with a
// specific error URI. A request returns an *Error itself only for the
// router's answer to it: one that fails because the router ended the
// session (GOODBYE or ABORT) returns an error wrapping ErrSessionLost and
// that reason's *Error (errors.As finds it; check errors.Is first).
type Error struct {
	// URI is the error or close reason, e.g. "wamp.error.no_such_procedure"
	// or "wamp.close.system_shutdown".
	URI string
	// Args and Kwargs are the error's Arguments and ArgumentsKw (nil when
	// absent).
	Args   []any
	Kwargs map[string]any
	// Details is the ERROR, ABORT or GOODBYE Details dictionary (nil when
	// empty or absent).
	Details map[string]any
}

// Error implements error. The text is "wamp: <URI>", followed by the
// Details message or the first argument when either is a string.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("wamp: ")
	b.WriteString(e.URI)
	if msg := e.message(); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

func (e *Error) message() string {
	if s, ok := e.Details["message"].(string); ok && s != "" {
		return s
	}
	if len(e.Args) > 0 {
		if s, ok := e.Args[0].(string); ok {
			return s
		}
	}
	return ""
}

// URIRuntimeError is the error URI sent for a Handler that returns an error
// other than *Error (or panics). The error text is the first argument (for
// a panic, the fixed text "handler panic": its value is only logged). The
// URI is the one Autobahn uses for the same case.
const URIRuntimeError = "wamp.error.runtime_error"

// Sentinel errors.
var (
	// ErrClosed is the error of a session ended by Close, and of every
	// request still pending at that moment.
	ErrClosed = errors.New("client: session closed")
	// ErrSessionLost is wrapped by the error of a request whose session
	// ended otherwise than by Close, before its answer or before it was
	// sent: the router's GOODBYE or ABORT, a lost connection, the
	// keepalive, a protocol violation. The error wraps the session's Err
	// too, so that the reason stays readable (errors.As finds the
	// GOODBYE's *Error), but it is no *Error itself: an *Error returned
	// by a request is the router's answer to it.
	ErrSessionLost = errors.New("client: session ended before the answer")
	// ErrMessageTooLarge is returned when a message exceeds the receive
	// limit the router announced (RawSocket) or Config.MaxOutgoing.
	// Nothing was sent, and the session stays usable.
	ErrMessageTooLarge = errors.New("client: message exceeds the router's limit")
	// ErrFinalSent is returned by ProgressiveCall.Send after the final
	// chunk was sent.
	ErrFinalSent = errors.New("client: progressive call already sent its final chunk")
	// ErrCallDone is returned by ProgressiveCall.Send once the call has
	// ended (answered, abandoned or failed with the session); it wraps
	// the call's error, if any.
	ErrCallDone = errors.New("client: progressive call already ended")
	// ErrNotStarted is returned by ProgressiveCall.Result before any chunk
	// was sent.
	ErrNotStarted = errors.New("client: progressive call has not sent a chunk yet")
	// ErrNoProgress is returned by Invocation.SendProgress when the caller
	// did not ask for progressive results.
	ErrNoProgress = errors.New("client: caller did not ask for progressive results")
	// ErrInvocationDone is returned by Invocation.SendProgress after the
	// invocation was answered, and by Invocation.Next once it was
	// answered before its final chunk came.
	ErrInvocationDone = errors.New("client: invocation already answered")
	// ErrNotRegistered is returned by Unregister for a registration that is
	// not (or no longer) active in this session.
	ErrNotRegistered = errors.New("client: registration not active")
	// ErrNotSubscribed is returned by Unsubscribe for a subscription that is
	// not (or no longer) active in this session.
	ErrNotSubscribed = errors.New("client: subscription not active")
	// ErrTooManyAbandoned is the error of a session ended because more
	// than 1024 of its REGISTER, SUBSCRIBE or UNSUBSCRIBE requests were
	// given up by their callers (their context ended) and never answered:
	// each must be remembered to undo a late answer.
	ErrTooManyAbandoned = errors.New("client: too many requests abandoned unanswered by the router")
	// ErrDecodeBudget is the error of a received payload that would take
	// more memory decoded than Config.DecodeRatio allows: a call whose
	// RESULT it is fails with it (wrapped), an INVOCATION is answered
	// wamp.error.invalid_argument, an EVENT is dropped and logged (at most one line per 10 s).
	ErrDecodeBudget = errors.New("client: payload too large once decoded (see Config.DecodeRatio)")
	// ErrProtoKey is the error of a received payload holding a
	// dictionary key "__proto__" (which edgewamp refuses: JavaScript
	// peers cannot take it; a third-party router may pass it on): a call
	// whose RESULT it is fails with it (wrapped), an INVOCATION is
	// answered wamp.error.invalid_argument, an EVENT is dropped and
	// logged (at most one line per 10 s). The session goes on.
	ErrProtoKey = errors.New(`client: payload holds a dictionary key "__proto__"`)
	// ErrBacklog is the context.Cause of a Handler whose invocation's
	// progressive chunks, not taken by Invocation.Next, exceeded
	// Config.MaxBacklog, and what Next returns then; and the error
	// (wrapped) of a call whose progressive results, not yet taken by
	// CallOptions.OnProgress, exceeded it.
	ErrBacklog = errors.New("client: stream backlog exceeds Config.MaxBacklog")
	// ErrNilHandler is returned by Register (a Session's or a Client's)
	// given a nil Handler: nothing is sent.
	ErrNilHandler = errors.New("client: Register needs a non-nil Handler")
	// ErrInCallback is returned by a Client's request (Call, Publish,
	// Register, Subscribe, Session) made from its own
	// ReconnectConfig.OnSession or OnDisconnect or Config.OnChallenge
	// callback while the Client has no session: the callback runs on
	// the goroutine that would dial the next one (OnChallenge on one it
	// waits for), so the request cannot wait for it.
	ErrInCallback = errors.New("client: no session, and a request from the Client's own callback cannot wait for the next: the callback holds up the reconnection")
)
