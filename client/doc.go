// Package client is a small WAMP v2 client: caller, callee, publisher and
// subscriber over WebSocket (ws://, wss://, plain or batched subprotocols)
// or RawSocket (rs://, tcp://, rss://), with the JSON, MsgPack or CBOR
// serializer. edgewamp's end-to-end tests and load tools use it, and so can
// Go programs on edge devices.
//
//	s, err := client.Dial(ctx, client.Config{URL: "ws://127.0.0.1:8080/ws", Realm: "realm1"})
//	if err != nil { ... }
//	defer s.Close()
//	res, err := s.Call(ctx, "com.example.add", []any{2, 3}, nil, nil)
//
// It implements the Advanced Profile features it announces in HELLO:
// progressive call results and invocations, call canceling, call timeout,
// caller and publisher identification, pattern-based and shared
// registration, pattern-based subscription, publisher exclusion,
// subscriber black/white listing, registration and subscription
// revocation (Registration.Active and Subscription.Active turn false) and
// payload passthru mode (ppt_* keys in
// Options and Details, passed as they are; the payload, binary, is the
// one argument). Messages are encoded and decoded with
// package proto; payloads are generic Go values (see proto.DecodeValue for
// the types a decoded value has: integers are int64, or uint64 above
// MaxInt64, or *big.Int beyond 64 bits, up to 8192 bits: a larger
// *big.Int is not written in JSON or CBOR, the request failing).
//
// # Goroutines
//
// A Session has one reader goroutine, which reads, decodes and acts on
// every message, and one event dispatcher goroutine, which runs event
// handlers. Each invocation of a registered procedure runs its Handler on a
// goroutine of its own, so a slow handler does not hold up the session;
// at most Config.MaxInvocations (16384) at once, past which an
// INVOCATION is refused wamp.error.unavailable (before, callers
// pipelining calls to a slow handler had the client start a goroutine
// for each: 65,536 from one caller session, 238 MB), and at most
// Config.MaxInvocationBytes (64 MiB) of invocations as held, decoded, past
// which one is refused so too (by count alone, 16,384 of 16 MiB).
// There is no goroutine per call: a caller waits on its own goroutine for
// the reader to fill in its reply. Writes are serialized by a lock: any
// goroutine may write, and the transport's control replies (WebSocket
// pong, RawSocket PONG) are written by the reader under the same lock. A
// request waits for the lock within its context (behind a write stuck on
// a router that does not read, it returns the context's error without
// sending anything).
// Close waits for all of these goroutines, so it must not be called from
// a handler of the same session. It cancels running handlers' contexts and
// lets them answer before its GOODBYE, for 2.5 s at most (half of
// Config.ReplyTimeout when that is shorter): a handler that ignores its
// context holds the GOODBYE no longer than that (the session, its
// registrations with it, stays on the router meanwhile), and Close returns
// once it has returned.
//
// # Pending requests and the session's end
//
// Pending calls and requests sit in maps keyed by request id, guarded by
// the session's mutex. Request ids start at 1 and increase by one. When
// the session ends, for whatever reason, every pending request fails with
// the session's error (Err), wrapped with ErrSessionLost (ErrClosed as it
// is after Close: a GOODBYE's *Error is not taken for the router's ERROR
// answer to the request), handler contexts are canceled and Done is
// closed: nothing hangs. A REGISTER, SUBSCRIBE or UNSUBSCRIBE whose
// context ends before its reply stays registered as abandoned, so that a
// late REGISTERED or SUBSCRIBED is undone (UNREGISTER, UNSUBSCRIBE) rather
// than left behind; but not a SUBSCRIBED whose subscription id another
// Subscribe to the same topic is waiting for (the router gives a session
// one subscription per topic and match policy), nor one whose id a
// Subscription already holds. The UNSUBSCRIBE that undoes a late
// SUBSCRIBED waits for its UNSUBSCRIBED as an abandoned request (nobody
// waits for it); the UNREGISTER that undoes a late REGISTERED is not kept.
// At most 1024 abandoned requests are kept waiting: one more ends the session with ErrTooManyAbandoned (a router
// that leaves that many unanswered is not answering; the session's end
// takes down on the router whatever the late answers would have left, which
// dropping the oldest would not). An acknowledged PUBLISH or an UNREGISTER
// whose context ends is forgotten at once: nothing is to be undone, and a
// late answer is ignored. A REGISTERED with a registration id the session
// holds, or a SUBSCRIBED with a subscription id it holds for another topic
// or match policy, is a protocol violation by the router: the session ends
// with ABORT wamp.error.protocol_violation (taken, it would orphan the
// registration holding the id, or mix two topics' events); so is an
// INVOCATION with the request id of a running invocation that is not a
// further chunk of it (its final chunk came, or it names another
// registration).
//
// # Backpressure
//
// Events go through a bounded queue (Config.EventQueue, 1024 by default,
// and Config.MaxBacklog, 16 MiB of events as held, decoded, the one being
// handled included: by count alone, large events to a slow handler held
// up to 1024 of the router's 16 MiB messages, and by their size as
// received, up to 16 times the bound decoded) to the dispatcher, which
// runs handlers one at a time in the order the router sent the events.
// When the queue is full the reader blocks until
// there is room: nothing is dropped, and the router, whose writes to this
// session stall, sees a slow consumer and applies its own policy. While
// the reader is blocked no other message is read either, so an event
// handler that waits for a reply from the same session (a Call, an
// acknowledged Publish, a Subscribe) can deadlock once the queue is full;
// such handlers should hand the work to another goroutine. While such a
// handler waits, the queue is bounded by its count only, not by
// Config.MaxBacklog: full by bytes came after a few large events (with
// 6 MiB events under the default bound, the third stopped the reader,
// and the handler's reply with it, until the handler's context ended). The keepalive
// (Config.KeepAlive) does not count the time the reader is blocked as the
// router's silence. Once Close is called, events are no longer queued or
// delivered, so a full queue does not hold up the GOODBYE exchange.
//
// Progressive call results are queued per call, so that the reader never
// waits on a caller, until the caller's goroutine gives them to
// OnProgress; progressive invocation chunks are queued per invocation,
// so that the reader never waits on a handler, until Invocation.Next
// takes them. All these queues of a session together hold at most
// Config.MaxBacklog (16 MiB): past it the call whose result comes is
// canceled and fails with ErrBacklog, or the invocation whose chunk comes
// ends with ERROR wamp.error.payload_size_exceeded, its handler's context
// canceled (a handler that does not read a caller's stream, say one not
// written for streams, held every chunk the caller sent for as long as
// it ran; an OnProgress slower than its callee, every result). The bound
// was each queue's: a caller could make a callee hold 16 MiB for each of
// its MaxInvocations invocations.
//
// # Decoded payloads
//
// Generic Go values cost far more than their encoding: a MsgPack array of
// empty dictionaries, one byte each, takes 64 times its size decoded, one
// of one-entry dictionaries 88 times. So that a caller cannot make a callee
// (or a publisher a subscriber) hold that many times the largest message it
// accepts, the Arguments and ArgumentsKw of a received INVOCATION, EVENT,
// RESULT or ERROR are decoded within a budget: Config.DecodeRatio (16 by
// default) times the message's encoded size, plus 64 KiB, counted as the
// values are built (an estimate of the heap they take, close to the real
// one: see proto.DecodeValueBudget); decoding stops as soon as it is spent.
// A message over the budget is refused: an INVOCATION is answered ERROR
// wamp.error.invalid_argument (and a running progressive invocation whose
// later chunk it is ends so, its Handler's context canceled), an EVENT is
// dropped and logged (at most one line per 10 s), a RESULT fails the call with ErrDecodeBudget, an
// ERROR loses its payload. A message's Details (a CHALLENGE's Extra) are
// decoded within the budget of their own size: over it they are left out
// (nil) and logged (at most one line per 10 s; a router's 1 MiB of empty dictionaries in a RESULT's
// Details took 67 MiB). Ordinary payloads are far below it (JSON records
// of a few fields take about 12 times their size, text and numbers less);
// what reaches it is large collections of tiny containers or small integers
// in MsgPack or CBOR. A negative DecodeRatio lifts the bound.
//
// A payload holding a dictionary key "__proto__" (which the router
// refuses: JavaScript peers cannot take it; a third-party router may pass
// it on) is refused as one over the budget is, with ErrProtoKey; Details
// are taken without the key, at their top level as below it.
//
// # Lifetimes
//
// Values passed to handlers (Event, Invocation, Result) are owned by the
// receiver and stay valid. The *proto.Message given to an OnMessage hook is
// valid only during the hook.
package client
