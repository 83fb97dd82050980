package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Config configures Dial. The zero value of every field but URL and Realm
// is a sane default.
type Config struct {
	// URL is the router's address: ws://host:port/path or wss://… for
	// WebSocket; rs://host:port or tcp://host:port for RawSocket over TCP;
	// rss://host:port for RawSocket over TLS.
	URL string
	// Realm is the realm to join.
	Realm string
	// Serializer is the WAMP serializer; proto.JSON when zero.
	Serializer proto.Serializer
	// Batched selects the ".batched" WebSocket subprotocol variant. It is
	// ignored for RawSocket.
	Batched bool

	// AuthID, when set, is sent as HELLO.Details.authid.
	AuthID string
	// AuthMethods is HELLO.Details.authmethods; ["anonymous"] when empty.
	AuthMethods []string
	// AuthRole, when set, is sent as HELLO.Details.authrole.
	AuthRole string
	// AuthExtra, when set, is sent as HELLO.Details.authextra.
	AuthExtra map[string]any
	// OnChallenge answers a CHALLENGE with the AUTHENTICATE signature and
	// extra. It runs on a goroutine of its own, which Dial waits for
	// within its ctx and DialTimeout: once they end Dial returns their
	// error (the connection closed) without waiting for it, and its
	// answer is dropped when it comes. A Client calls it one at a time:
	// a join whose CHALLENGE comes while such a call still runs fails at
	// once, without calling it, and is retried with backoff. An error
	// aborts the join (an ABORT wamp.error.authentication_failed is
	// sent), and so does a panic, returned as an error naming its value
	// (the ABORT says "client error"; under Connect it is also logged at
	// ERROR with its stack, as the Client dials again); the connection is
	// closed either way. A CHALLENGE without OnChallenge aborts the join
	// too, and so does one for a method not in AuthMethods
	// (wamp.error.protocol_violation), without calling it. Under Connect,
	// a request of the Client's own from it (Call, Publish, Register,
	// Subscribe, Session) fails at once with ErrInCallback: the Client
	// has no session, and the join OnChallenge answers is the one that
	// would make it (a Register or Subscribe failing so is not kept:
	// see Client.Register).
	OnChallenge func(method string, extra map[string]any) (signature string, authExtra map[string]any, err error)
	// Agent is HELLO.Details.agent; "edgewamp-client" when empty.
	Agent string

	// TLS configures wss:// and rss://. Nil means the default
	// configuration, with the server name taken from the URL.
	TLS *tls.Config
	// DialTimeout bounds the connect, the transport handshake and the
	// whole join (HELLO to WELCOME); 10s when zero.
	DialTimeout time.Duration
	// WriteTimeout bounds each write to the transport; 10s when zero.
	// With KeepAlive on, a write goes out 16 KiB at a time and it bounds
	// each of those (the time the link takes nothing), so that a large
	// message over a slow link that takes it steadily is not cut. A
	// write that times out ends the session (the stream may be cut
	// mid-message). Writes go out one at a time: a Call, Publish,
	// Register, Subscribe or ProgressiveCall.Send waiting for another's
	// write (stuck on a router that does not read) gives up when its
	// context ends, with the context's error and nothing sent; a write
	// under way is not cut short by a context.
	WriteTimeout time.Duration
	// ReplyTimeout bounds the waits the client does on its own behalf:
	// Close waiting for the router's GOODBYE, and a canceled call waiting
	// for the router's ERROR after CANCEL, each with the wait for its
	// turn to write the GOODBYE or CANCEL; 5s when zero. Close's wait
	// for running handlers before its GOODBYE is half of it at most, and
	// 2.5 s (half of the default) at most.
	ReplyTimeout time.Duration
	// MaxMessage is the largest message the client accepts: the WebSocket
	// read limit, and the RawSocket receive limit announced to the router
	// (rounded down to a power of two in [2^9, 2^24]). 16 MiB when zero.
	MaxMessage int
	// MaxOutgoing is the largest message the client sends. A CALL,
	// PUBLISH, YIELD, ERROR (or any message) longer once encoded fails
	// with ErrMessageTooLarge before anything is written, and the session
	// goes on; a Handler's YIELD or ERROR refused so is replaced by ERROR
	// wamp.error.payload_size_exceeded, so that its caller is answered.
	// WebSocket tells no maximum, and a router closes the connection of a
	// client that sends a longer message than it takes, ending the whole
	// session with every call in flight: set it to the router's maximum
	// (edgewamp's limits.max_message) when that is smaller. Over RawSocket
	// the router's announced limit applies too, whichever is smaller. On a
	// batched WebSocket the frame counts (4 bytes more for MsgPack and
	// CBOR, 1 for JSON). 16 MiB when zero, edgewamp's default
	// limits.max_message; negative lifts the bound (RawSocket's still
	// applies).
	MaxOutgoing int
	// EventQueue is the capacity of the session's event queue; 1024 when
	// zero. Its bytes are bounded by MaxBacklog. See the package
	// documentation for what happens when it is full.
	EventQueue int
	// DecodeRatio bounds the memory a received payload takes once decoded
	// into Go values: the Arguments and ArgumentsKw of an INVOCATION,
	// EVENT, RESULT or ERROR may take at most DecodeRatio times the
	// message's encoded size, plus 64 KiB (an estimate of the heap, see
	// proto.DecodeValueBudget). A message over it is refused (see
	// ErrDecodeBudget). 16 when zero; negative lifts the bound.
	DecodeRatio int
	// MaxBacklog bounds what the client holds for consumers slower than
	// their peers' streams, each message by what it holds decoded (the
	// decode budget's estimate) or its size as received, whichever is
	// more (as received alone, small MsgPack integers held 16 times the
	// bound): the
	// progressive call invocation chunks that the session's invocations hold until their
	// Handlers take them with Invocation.Next, and the progressive results
	// that its calls hold for their CallOptions.OnProgress (those being
	// given included), all of them together (not each invocation's or
	// call's: 16,384 invocations, MaxInvocations, of 16 MiB each). A chunk
	// past it ends its invocation: it is answered ERROR
	// wamp.error.payload_size_exceeded, its Handler's context is canceled
	// (context.Cause ErrBacklog), what it held is dropped and Next returns
	// ErrBacklog. A progressive result past it cancels its call (CANCEL
	// sent, what it held dropped), which fails with ErrBacklog. One chunk
	// or result, whatever its size, is always taken when the session's
	// streams hold none. It bounds the events queued for the session's
	// event handlers too (the one being handled included), beside
	// EventQueue's count, by what they hold decoded (the decode budget's
	// estimate of their Go values, Details included, or their size as
	// received when larger: as received, small MsgPack integers held 16
	// times the bound): past it the reader waits for room, as when the
	// queue is full (see the package documentation), except while an
	// event handler waits for a reply of its own session. 16 MiB when zero;
	// negative lifts the bound.
	MaxBacklog int
	// MaxInvocations bounds the invocations whose Handlers run at once
	// on the session (one goroutine each). An INVOCATION past it is
	// answered ERROR wamp.error.unavailable without starting its Handler:
	// edgewamp then offers the call to another callee of a shared
	// registration, or answers the caller wamp.error.no_available_callee
	// (wamp.error.unavailable itself for a progressive call whose later
	// chunks already reached this callee: such a call is not rerouted).
	// 16384 when zero; negative lifts the bound.
	MaxInvocations int
	// MaxInvocationBytes bounds the invocations whose Handlers run at
	// once by their size as received (a progressive call invocation's
	// first chunk and its later ones while they wait for Invocation.Next,
	// where they count towards MaxBacklog too; a chunk Next returned is
	// the Handler's, no longer counted: before, the chunks waiting did not
	// count here, and a stream's 1.2 MiB of them let a callee bounded to
	// 1 MiB take one more invocation); each by what it holds decoded (the
	// decode budget's estimate, Details included), when more than its
	// size (counted as received, 100 calls of 2 KB of small MsgPack
	// integers held 3.2 MB in a callee bounded to 1 MiB; 16,384 of 4 KiB,
	// 1 GiB within the default):
	// an INVOCATION that would take them past it is refused as one past
	// MaxInvocations (wamp.error.unavailable, no Handler started). One is
	// always taken when no Handler runs. By count alone, callers could
	// make a callee whose handlers take a while hold MaxInvocations
	// messages of the router's largest size (16,384 of 16 MiB; 29 calls
	// of 8 MiB from one caller held 236 MiB). 64 MiB when zero (as
	// edgewamp's gateway.callees[].max_in_flight_bytes); negative lifts
	// the bound.
	MaxInvocationBytes int

	// KeepAlive, when positive, makes the client ping the router (a
	// WebSocket ping or a RawSocket PING, numbered in its payload) this
	// long after its last answer, and end the session when nothing
	// arrives for KeepAlive + KeepAliveTimeout, or when the answer to a
	// ping (its pong, echoing the number) has not come KeepAliveTimeout
	// after the ping was written: a router that died or sits behind a
	// broken link is noticed even when the session is idle, and one that
	// goes on sending but reads nothing (its read side wedged, the link
	// lost one way) too, where any bytes from it counted as its answer.
	// Any bytes count as traffic, also those of a large message that
	// arrives slowly; an answer may come late behind what the router
	// queued before it: while it is late, each KeepAliveTimeout that
	// brings 16 KiB or more waits another (a message arriving slower
	// than that looks dead), up to 64 MiB since the ping. While the
	// client waits for room in its event queue (and so reads nothing)
	// the checks pause. The check does not wait behind a write: a write
	// stuck on a dead link is ended with the session (the connection is
	// closed) within the same bound, not after WriteTimeout; while a
	// write of more than 16 KiB is under way, each 16 KiB the connection
	// takes counts as traffic (a link that takes less than that per
	// KeepAliveTimeout, from a router saying nothing, looks dead), and
	// the answer to a ping written behind it is waited for as silence
	// is, KeepAlive + KeepAliveTimeout from the last 16 KiB taken. Off
	// when zero.
	KeepAlive time.Duration
	// KeepAliveTimeout is how long to wait for the router after a ping;
	// KeepAlive when zero.
	KeepAliveTimeout time.Duration

	// Logger receives the session's few log lines (session end, protocol
	// violations by the router, handler panics). Nil discards them.
	Logger *slog.Logger

	// onRevoked, when set (by a Client), is called on the session's reader
	// with a registration the router revoked and the revocation's reason
	// (empty when it gave none). It must not block.
	onRevoked func(reg *Registration, reason string)
	// onSubRevoked, likewise, is called with the subscriptions (of one
	// id) the router revoked.
	onSubRevoked func(subs []*Subscription, reason string)
	// now, when set (by a test), is the clock the session reads for its
	// durations (see nanos); time.Now when nil.
	now func() time.Time
}

// Defaults.
const (
	defaultDialTimeout  = 10 * time.Second
	defaultWriteTimeout = 10 * time.Second
	defaultReplyTimeout = 5 * time.Second
	defaultMaxMessage   = 16 << 20
	defaultEventQueue   = 1024
	defaultDecodeRatio  = 16
	defaultMaxBacklog   = 16 << 20
	defaultMaxInvs      = 16384
	defaultMaxInvBytes  = 64 << 20
	defaultAgent        = "edgewamp-client"
)

// transportKind is the transport a URL selects.
type transportKind uint8

const (
	kindWebSocket transportKind = iota + 1
	kindRawSocket
)

// endpoint is a parsed Config.URL.
type endpoint struct {
	kind transportKind
	tls  bool
	addr string // host:port, for RawSocket
	host string // host without port, the TLS server name for RawSocket
	url  string // the full URL, for WebSocket
}

// normalize returns cfg with defaults applied and its URL parsed.
func (cfg Config) normalize() (Config, endpoint, error) {
	var errs []error
	if cfg.Realm == "" {
		errs = append(errs, errors.New("client: Config.Realm is empty"))
	}
	if cfg.Serializer == 0 {
		cfg.Serializer = proto.JSON
	}
	if !cfg.Serializer.Valid() {
		errs = append(errs, fmt.Errorf("client: Config.Serializer %d is not JSON, MsgPack or CBOR", cfg.Serializer))
	}
	if len(cfg.AuthMethods) == 0 {
		cfg.AuthMethods = []string{"anonymous"}
	}
	if cfg.Agent == "" {
		cfg.Agent = defaultAgent
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.ReplyTimeout <= 0 {
		cfg.ReplyTimeout = defaultReplyTimeout
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = defaultMaxMessage
	}
	if cfg.MaxOutgoing == 0 {
		cfg.MaxOutgoing = defaultMaxMessage
	}
	if cfg.EventQueue <= 0 {
		cfg.EventQueue = defaultEventQueue
	}
	if cfg.DecodeRatio == 0 {
		cfg.DecodeRatio = defaultDecodeRatio
	}
	if cfg.MaxInvocations == 0 {
		cfg.MaxInvocations = defaultMaxInvs
	}
	if cfg.MaxInvocationBytes == 0 {
		cfg.MaxInvocationBytes = defaultMaxInvBytes
	}
	if cfg.MaxBacklog == 0 {
		cfg.MaxBacklog = defaultMaxBacklog
	}
	if cfg.KeepAlive > 0 && cfg.KeepAliveTimeout <= 0 {
		cfg.KeepAliveTimeout = cfg.KeepAlive
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ep, err := parseURL(cfg.URL)
	if err != nil {
		errs = append(errs, err)
	}
	return cfg, ep, errors.Join(errs...)
}

func parseURL(s string) (endpoint, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("client: Config.URL: %w", err)
	}
	var ep endpoint
	switch u.Scheme {
	case "ws":
		ep = endpoint{kind: kindWebSocket, url: s}
	case "wss":
		ep = endpoint{kind: kindWebSocket, tls: true, url: s}
	case "rs", "tcp":
		ep = endpoint{kind: kindRawSocket}
	case "rss":
		ep = endpoint{kind: kindRawSocket, tls: true}
	default:
		return endpoint{}, fmt.Errorf("client: Config.URL %q: scheme must be ws, wss, rs, tcp or rss", s)
	}
	if u.Host == "" {
		return endpoint{}, fmt.Errorf("client: Config.URL %q has no host", s)
	}
	host, port := u.Hostname(), ""
	if u.Port() != "" || strings.HasSuffix(u.Host, ":") {
		// A port no dial can use is refused here, before dialing, and so
		// by Connect at once: 99999, 0, an empty one (dialled as 0), a
		// colon too many were taken, and a Client dialled them in every
		// round for ever, logged as a router that is down.
		if host, port, err = net.SplitHostPort(u.Host); err != nil {
			return endpoint{}, fmt.Errorf("client: Config.URL %q: %w", s, err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return endpoint{}, fmt.Errorf("client: Config.URL %q: the port must be 1 to 65535", s)
		}
	}
	if ep.kind == kindRawSocket {
		if port == "" {
			return endpoint{}, fmt.Errorf("client: Config.URL %q: RawSocket needs host:port", s)
		}
		ep.addr, ep.host = u.Host, host
	}
	return ep, nil
}

// rawSocketExponent returns the RawSocket length exponent L announced for a
// receive limit of max bytes, 2^(9+L) <= max, and the limit it stands for.
func rawSocketExponent(max int) (l byte, limit int) {
	l = 15
	for l > 0 && 1<<(9+int(l)) > max {
		l--
	}
	return l, 1 << (9 + int(l))
}
