package client

import (
	"fmt"

	"github.com/edgewamp/edgewamp/proto"
)

// readLoop is the session's reader goroutine: it reads, decodes and acts on
// every message until the session ends. It never blocks on user code except
// when the event queue is full (see the package documentation).
func (s *Session) readLoop() {
	defer s.wg.Done()
	s.reader.Store(goid()) // before any Handler starts (Client.Close)
	// A dictionary key "__proto__" (refused by proto: JavaScript peers
	// cannot take it) is taken, so that a message a third-party router
	// passed on holding it costs that message only, not the session:
	// its payload is refused (payloadOf), its Details are taken without
	// the keys (dictWithin).
	dec := proto.Decoder{TakeProtoKey: true}
	var m proto.Message
	for {
		b, err := s.tr.readMsg()
		if err != nil {
			s.shutdown(fmt.Errorf("client: connection lost: %w", err), false)
			return
		}
		if err := dec.Decode(s.ser, b, &m); err != nil {
			s.violation(err.Error())
			return
		}
		s.inLen = len(b)
		s.inProtoDict, s.inProtoPayload = dec.ProtoKey()
		if h := s.onMsg.Load(); h != nil {
			(*h)(&m)
		}
		if !s.handle(&m) {
			return
		}
		// Done with the message (what handlers keep is decoded, copied):
		// a large one's buffers go now, not when the next message comes,
		// which on an idle session could be never.
		m.Reset()
		dec.Release()
		s.tr.release()
	}
}

// handle acts on one message. It returns false when the reader must stop.
func (s *Session) handle(m *proto.Message) bool {
	switch m.Type {
	case proto.CodeResult:
		s.onResult(m)
	case proto.CodeError:
		s.onError(m)
	case proto.CodeInvocation:
		s.onInvocation(m)
	case proto.CodeInterrupt:
		s.onInterrupt(m)
	case proto.CodeEvent:
		return s.onEvent(m)
	case proto.CodeRegistered, proto.CodeSubscribed, proto.CodePublished:
		s.onAck(m)
	case proto.CodeUnregistered, proto.CodeUnsubscribed:
		if m.HasDict && m.Request == 0 {
			s.onRevoked(m)
		} else {
			s.onAck(m)
		}
	case proto.CodeGoodbye:
		s.onGoodbye(m)
		return false
	case proto.CodeAbort:
		s.shutdown(&Error{URI: string(m.URI), Details: s.controlDictOf(m.Dict)}, false)
		return false
	case proto.CodeEventReceived:
		// Not sent to clients; ignored.
	default:
		s.violation(m.Type.String() + " is not a router-to-client message after WELCOME")
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// onGoodbye ends the session on GOODBYE: the reply to ours when closing;
// otherwise the router is ending the session, and it gets
// GOODBYE wamp.close.goodbye_and_out back (WAMP §Session Closing).
//
// [GOODBYE, Details|dict, Reason|uri]
func (s *Session) onGoodbye(m *proto.Message) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		s.shutdown(ErrClosed, true)
		return
	}
	cause := &Error{URI: string(m.URI), Details: s.controlDictOf(m.Dict)}
	s.send(&proto.Message{Type: proto.CodeGoodbye, URI: []byte(proto.CloseGoodbyeAndOut)})
	s.shutdown(cause, true)
}

// onError routes an ERROR reply to the request it answers.
//
// [ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments|list, ArgumentsKw|dict]
func (s *Session) onError(m *proto.Message) {
	if m.ReqType == proto.CodeCall {
		// As a RESULT for no call (onResult), dropped undecoded.
		s.mu.Lock()
		_, ok := s.calls[m.Request]
		s.mu.Unlock()
		if ok {
			s.finishCall(m.Request, nil, s.errorOf(m))
		}
		return
	}
	switch m.ReqType {
	case proto.CodeRegister, proto.CodeUnregister, proto.CodeSubscribe, proto.CodeUnsubscribe, proto.CodePublish:
		var orphan uint64
		s.mu.Lock()
		rq := s.takeRequestLocked(m.Request, m.ReqType)
		if rq != nil {
			orphan = rq.orphan
		}
		s.mu.Unlock()
		if orphan != 0 {
			s.undoSubscription(orphan, rq.topic, rq.match)
		}
		if rq != nil {
			rq.reply <- reply{err: s.errorOf(m)}
		}
	default:
		// ERROR for an INVOCATION or CANCEL we sent: nothing waits for
		// it, and its payload is not decoded for a debug line.
		s.log.Debug("client: router error", "request_type", m.ReqType.String(), "request", m.Request, "error", string(m.URI))
	}
}

// errorOf builds the *Error of an ERROR message. A payload that does not
// decode, or is over the decode budget, is left out.
func (s *Session) errorOf(m *proto.Message) *Error {
	e := &Error{URI: string(m.URI), Details: s.dictOf(m.Dict)}
	args, kwargs, err := s.payloadOf(m, s.decodeBudget(s.inLen))
	if err == nil {
		e.Args, e.Kwargs = args, kwargs
	}
	return e
}
