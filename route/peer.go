package route

import (
	"errors"

	"github.com/edgewamp/edgewamp/proto"
)

// Class tells a Peer what kind of message it is asked to send, so that the
// transport can apply its backpressure policy (DESIGN §4).
type Class uint8

const (
	// ClassControl: session control (WELCOME, ABORT, GOODBYE, CHALLENGE) and
	// replies to SUBSCRIBE/REGISTER/... Never dropped.
	ClassControl Class = iota
	// ClassEvent: an EVENT. May be dropped when the peer is slow.
	ClassEvent
	// ClassInvocation: an INVOCATION or INTERRUPT to a callee. Refused
	// (ErrPeerBusy) when the callee is slow, so the call fails with a WAMP
	// error instead of queueing without bound.
	ClassInvocation
	// ClassResult: a RESULT or ERROR to a caller. Never dropped silently.
	ClassResult
	// ClassProgress: a progressive RESULT to a caller. Refused
	// (ErrPeerBusy) when the caller is slow (loop: half-way from
	// high_water to hard_limit, or large over the output budget): the
	// router then ends that call (ERROR wamp.error.unavailable to the
	// caller, INTERRUPT killnowait to the callee) instead of queueing a
	// stream without bound until the caller's whole session is closed as
	// a slow consumer. A Peer without a policy of its own may treat it as
	// ClassResult.
	ClassProgress
)

// Errors a Peer returns from Send.
var (
	// ErrPeerSlow: an EVENT was dropped because the peer's outbound queue is
	// above its high-water mark.
	ErrPeerSlow = errors.New("route: peer is slow; event dropped")
	// ErrPeerBusy: an INVOCATION (a progressive RESULT) was refused
	// because the callee's (caller's) outbound queue is above its
	// high-water mark.
	ErrPeerBusy = errors.New("route: peer is busy; invocation refused")
	// ErrPeerTooBig: the message is longer than the peer accepts (its
	// RawSocket maximum, or the configured message limit).
	ErrPeerTooBig = errors.New("route: message longer than the peer accepts")
	// ErrPeerClosed: the transport is closed or closing.
	ErrPeerClosed = errors.New("route: peer is closed")
)

// Peer is a session's transport: where its outbound messages go. It is
// implemented by a loop connection, by the gateway's in-process session and by
// the mesh link.
//
// All methods are called only on the goroutine of the shard that owns the
// session.
type Peer interface {
	// Serializer returns the serializer the peer speaks. Static.
	Serializer() proto.Serializer
	// Send hands one encoded WAMP message to the transport. b is valid only
	// during the call: the peer copies it or writes it out before
	// returning. It may return ErrPeerSlow (class Event), ErrPeerBusy
	// (class Invocation or Progress), ErrPeerTooBig or ErrPeerClosed. A peer over its
	// hard limit closes itself and returns ErrPeerClosed.
	Send(b []byte, class Class) error
	// Close ends the transport once what was sent has been flushed. The
	// router calls it after the session's last message (GOODBYE or ABORT).
	// The transport then reports the close back through Shard.Detach.
	Close()
	// Transport describes the transport for the meta API and logs.
	Transport() TransportInfo
}

// RetainedPeer is a Peer told when the retained events of one get_retained
// SUBSCRIBE have all been sent (or none matched). The router may send them
// after it returns from the SUBSCRIBE: when the session's walk budget
// allows (walkbudget.go), or once the other nodes of a mesh have answered
// (mesh_meta.go). An in-process peer that hands a SUBSCRIBE's retained
// events to whoever asked (the HTTP gateway's streams) learns here where
// they end. Called on the session's shard, after the last of them.
type RetainedPeer interface {
	Peer
	RetainedSent(subID uint64)
}

// LimitPeer is a Peer that tells the longest message it accepts (a
// RawSocket client's announced maximum; 0: no limit of its own), so that
// a large EVENT it would refuse as too long (ErrPeerTooBig) is not
// encoded for it first. Called on the session's shard.
type LimitPeer interface {
	Peer
	MaxMessage() int
}

// InProcessPeer is a Peer inside the router's process (the HTTP gateway's
// sessions): only its sessions may register under Config.InProcessURIs.
type InProcessPeer interface {
	Peer
	InProcess()
}

// TransportInfo describes a session's transport.
type TransportInfo struct {
	Type       string // "websocket", "rawsocket", "internal"
	Protocol   string // e.g. "wamp.2.json", "rawsocket.msgpack"
	RemoteAddr string
	TLS        bool
}

// Executor runs functions on a shard's goroutine. It is implemented by a
// gnet event loop (loop) and by a goroutine in tests.
type Executor interface {
	// Execute runs f on the shard's goroutine soon. It is safe for
	// concurrent use and never blocks. It returns an error when the
	// executor has stopped.
	Execute(f func()) error
}

// Yielder is an Executor that can run f after the shard's pending I/O:
// its loop looks at its connections at least once before f runs, so that
// a long task split in turns (a reload's re-check, Shard.reauth) lets
// other sessions' messages in between. Called on the shard's goroutine.
// An Executor that is not a Yielder runs the turns as Execute queues
// them (the tests' executors, which queue every message as a task).
type Yielder interface {
	Yield(f func()) error
}
