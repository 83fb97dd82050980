package client

import (
	"context"
	"fmt"

	"github.com/edgewamp/edgewamp/proto"
)

// request is a pending REGISTER, UNREGISTER, SUBSCRIBE, UNSUBSCRIBE or
// acknowledged PUBLISH. The reader answers it on reply, which never blocks
// (capacity 1, one answer).
type request struct {
	typ   proto.Code    // Static: the request's message type.
	reply chan reply    // Static.
	reg   *Registration // Static: REGISTER's registration, installed by the reader on REGISTERED.
	sub   *Subscription // Static: SUBSCRIBE's subscription, installed by the reader on SUBSCRIBED.
	topic string        // Static: SUBSCRIBE's topic
	match string        // Static: and match policy, which the router's subscription id stands for.
	subID uint64        // Static: UNSUBSCRIBE's subscription id.

	abandoned bool // Guarded by Session.mu: the waiter gave up (its context ended); counted in Session.abandoned.
	// orphan, guarded by Session.mu, is the id of a subscription to this
	// SUBSCRIBE's topic that an abandoned SUBSCRIBE got and nothing uses:
	// the router answers this one with it, else it must be undone (see
	// undoSubscription).
	orphan uint64
}

// reply answers a request: the id of REGISTERED, SUBSCRIBED or PUBLISHED,
// or an error.
type reply struct {
	id  uint64
	err error
}

func newRequest(typ proto.Code) *request {
	return &request{typ: typ, reply: make(chan reply, 1)}
}

// addRequestLocked registers rq under a new request id. Called with mu held
// and the session alive.
func (s *Session) addRequestLocked(rq *request) uint64 {
	id := s.newRequestID()
	s.reqs[id] = rq
	return id
}

// addRequest registers rq, or returns the session's error if it ended.
func (s *Session) addRequest(rq *request) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.lost
	}
	return s.addRequestLocked(rq), nil
}

// roundTrip sends m, the request registered as id, and waits for its
// reply; ctx bounds both (see sendCtx).
func (s *Session) roundTrip(ctx context.Context, m *proto.Message, id uint64, rq *request) (uint64, error) {
	if err := s.sendRequest(ctx, m, id, rq); err != nil {
		return 0, err
	}
	return s.awaitReply(ctx, id, rq)
}

// sendRequest sends m, the request registered as id, waiting for the
// write lock within ctx (sendCtx); on failure it takes the request out.
func (s *Session) sendRequest(ctx context.Context, m *proto.Message, id uint64, rq *request) error {
	m.Request = id
	if err := s.sendCtx(ctx, m); err != nil {
		s.mu.Lock()
		if s.reqs != nil {
			delete(s.reqs, id)
		}
		orphan := rq.orphan
		s.mu.Unlock()
		if orphan != 0 {
			s.undoSubscription(orphan, rq.topic, rq.match)
		}
		return err
	}
	return nil
}

// awaitReply waits for the reply to the request id, sent, within ctx.
func (s *Session) awaitReply(ctx context.Context, id uint64, rq *request) (uint64, error) {
	release := s.holdRoom()
	defer release()
	select {
	case r := <-rq.reply:
		return r.id, r.err
	case <-ctx.Done():
	}
	// The waiter gives up. If the reply is not in yet, a PUBLISH or an
	// UNREGISTER is forgotten (there is nothing to undo: a late answer is
	// ignored as one to an unknown request), and any other request stays
	// pending as abandoned, so that a late REGISTERED or SUBSCRIBED is
	// undone instead of leaving a registration or subscription nobody
	// knows about, and a late UNSUBSCRIBED retires what it dropped. Past
	// maxAbandoned of those the router is not answering: the session
	// ends (ErrTooManyAbandoned), which takes down on the router all it
	// held. If the reply is in (the reader or shutdown took the request
	// out), its answer is on the way and is returned: the operation
	// happened.
	s.mu.Lock()
	_, pending := s.reqs[id]
	over := false
	if pending {
		if rq.typ == proto.CodePublish || rq.typ == proto.CodeUnregister {
			delete(s.reqs, id)
		} else {
			rq.abandoned = true
			s.abandoned++
			over = s.abandoned > maxAbandoned
		}
	}
	s.mu.Unlock()
	if over {
		s.log.Warn("client: too many requests abandoned unanswered; ending the session", "abandoned", maxAbandoned+1)
		s.shutdown(ErrTooManyAbandoned, false)
	}
	if pending {
		return 0, ctx.Err()
	}
	r := <-rq.reply
	return r.id, r.err
}

// maxAbandoned is how many abandoned requests (see roundTrip) a session
// keeps waiting for; one more ends it. A variable for the tests.
var maxAbandoned = 1024

// takeRequestLocked takes the request id out of the pending ones, if it
// is there and of type typ (0: any). Called with mu held.
func (s *Session) takeRequestLocked(id uint64, typ proto.Code) *request {
	rq := s.reqs[id]
	if rq == nil || typ != 0 && rq.typ != typ {
		return nil
	}
	delete(s.reqs, id)
	if rq.abandoned {
		s.abandoned--
	}
	return rq
}

// ackType maps a request type to its acknowledgement type.
func ackType(c proto.Code) proto.Code {
	switch c {
	case proto.CodeRegister:
		return proto.CodeRegistered
	case proto.CodeUnregister:
		return proto.CodeUnregistered
	case proto.CodeSubscribe:
		return proto.CodeSubscribed
	case proto.CodeUnsubscribe:
		return proto.CodeUnsubscribed
	case proto.CodePublish:
		return proto.CodePublished
	}
	return 0
}

// onAck answers a pending request with its acknowledgement. REGISTERED and
// SUBSCRIBED install the registration or subscription here, on the reader,
// so that an INVOCATION or EVENT right behind the acknowledgement finds it.
//
// [REGISTERED, REGISTER.Request|id, Registration|id]
// [SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]
// [PUBLISHED, PUBLISH.Request|id, Publication|id]
// [UNREGISTERED, UNREGISTER.Request|id]
// [UNSUBSCRIBED, UNSUBSCRIBE.Request|id]
func (s *Session) onAck(m *proto.Message) {
	var undo *proto.Message
	var undoSubs []uint64
	s.mu.Lock()
	rq := s.reqs[m.Request]
	if rq == nil || ackType(rq.typ) != m.Type {
		s.mu.Unlock()
		return
	}
	s.takeRequestLocked(m.Request, 0)
	if bad := s.reusedIDLocked(m, rq); bad != "" {
		s.mu.Unlock()
		s.violation(bad)
		rq.reply <- reply{err: s.reqErr()}
		return
	}
	switch m.Type {
	case proto.CodeRegistered:
		// A registration is never shared: another REGISTER of the same
		// procedure that the router processed after this one is refused
		// (procedure_already_exists), so an abandoned one is always undone.
		if rq.abandoned {
			undo = &proto.Message{Type: proto.CodeUnregister, Request: s.newRequestID(), ID: m.ID}
			break
		}
		rq.reg.id = m.ID
		rq.reg.active.Store(true)
		s.regs[m.ID] = rq.reg
	case proto.CodeSubscribed:
		if rq.orphan != 0 && (rq.orphan != m.ID || rq.abandoned) {
			undoSubs = append(undoSubs, rq.orphan)
		}
		if rq.abandoned {
			if rq.orphan != m.ID {
				undoSubs = append(undoSubs, m.ID)
			}
			break
		}
		// The router answers a second SUBSCRIBE to the same topic with the
		// same subscription id; each local Subscription gets the events.
		old := s.subs[m.ID]
		rq.sub.id = m.ID
		rq.sub.active.Store(true)
		s.subs[m.ID] = append(old[:len(old):len(old)], rq.sub)
	case proto.CodeUnsubscribed:
		// Unsubscribe (or undoSubscription) took the id's subscriptions
		// out before sending UNSUBSCRIBE, and the router answers in
		// order: a subscription under the id now was installed by a
		// SUBSCRIBED the router sent before it processed the UNSUBSCRIBE
		// (a Subscribe to the same topic in flight), so the router has
		// dropped it too.
		for _, sub := range s.subs[rq.subID] {
			sub.active.Store(false)
		}
		delete(s.subs, rq.subID)
	}
	s.mu.Unlock()
	if undo != nil {
		s.send(undo)
	}
	for _, id := range undoSubs {
		s.undoSubscription(id, rq.topic, rq.match)
	}
	rq.reply <- reply{id: m.ID}
}

// reusedIDLocked returns why the REGISTERED or SUBSCRIBED m, answering
// rq, is a protocol violation, or "": a registration id this session
// holds for a registration (the router never gives a session one
// registration twice: a second REGISTER of the procedure is refused), or
// a subscription id it holds for another topic or match policy (a second
// SUBSCRIBE to the same ones gets the same id). Taken, it would orphan
// the registration holding it (its handler replaced by the new one, its
// Registration never invoked and refused by Unregister; or, abandoned,
// the UNREGISTER undoing it would take down the one holding the id), or
// mix the events of two topics. Called with mu held.
func (s *Session) reusedIDLocked(m *proto.Message, rq *request) string {
	switch m.Type {
	case proto.CodeRegistered:
		if held := s.regs[m.ID]; held != nil {
			return fmt.Sprintf("REGISTERED for %q with registration id %d, which %q holds", rq.reg.procedure, m.ID, held.procedure)
		}
	case proto.CodeSubscribed:
		if held := s.subs[m.ID]; len(held) > 0 && (held[0].topic != rq.topic || held[0].match != rq.match) {
			return fmt.Sprintf("SUBSCRIBED for %q (%s) with subscription id %d, which %q (%s) holds", rq.topic, rq.match, m.ID, held[0].topic, held[0].match)
		}
	}
	return ""
}

// undoSubscription takes back a subscription that the router holds for
// this session and no Subscription uses (one a SUBSCRIBE whose waiter
// gave up got): it sends UNSUBSCRIBE, as a request whose UNSUBSCRIBED
// retires whatever is under the id by then (as Unsubscribe's does),
// counted as abandoned (one past maxAbandoned ends the session instead). It
// does nothing when a Subscription is under the id. While a SUBSCRIBE to
// the same topic and match policy is pending, and its waiter has not
// given up, the router answers that one with this same id: the id is
// left to it (its orphan), to be undone only if it ends without taking it.
//
// The write lock is held from the decision to the write, so that a
// SUBSCRIBE registered after the decision goes out after the UNSUBSCRIBE:
// the router does not answer it with the id it is about to drop.
func (s *Session) undoSubscription(id uint64, topic, match string) {
	if s.lockWrite(context.Background()) != nil {
		return // the session ended: what it held went with it
	}
	s.mu.Lock()
	if s.err != nil || len(s.subs[id]) > 0 {
		s.mu.Unlock()
		s.unlockWrite()
		return
	}
	for _, rq := range s.reqs {
		if rq.typ == proto.CodeSubscribe && !rq.abandoned && rq.topic == topic && rq.match == match {
			rq.orphan = id
			s.mu.Unlock()
			s.unlockWrite()
			return
		}
	}
	// Nobody waits for it: it counts among the abandoned requests, as the
	// SUBSCRIBE it undoes did (a router answering SUBSCRIBEs but not
	// UNSUBSCRIBEs made a loop of abandoned Subscribes keep one for each).
	if s.abandoned >= maxAbandoned {
		s.mu.Unlock()
		s.unlockWrite()
		s.log.Warn("client: too many requests abandoned unanswered; ending the session", "abandoned", maxAbandoned+1)
		s.shutdown(ErrTooManyAbandoned, false)
		return
	}
	rq := newRequest(proto.CodeUnsubscribe)
	rq.subID = id
	rq.abandoned = true
	s.abandoned++
	req := s.addRequestLocked(rq)
	s.mu.Unlock()
	s.sendUnlock(&proto.Message{Type: proto.CodeUnsubscribe, Request: req, ID: id})
}

// onRevoked handles a router-initiated UNREGISTERED or UNSUBSCRIBED (WAMP
// Advanced Profile, §Registration Revocation / §Subscription Revocation).
//
// [UNREGISTERED, 0, Details|dict] with Details.registration and .reason
// [UNSUBSCRIBED, 0, Details|dict] with Details.subscription and .reason
//
// One that names nothing the session holds is ignored, and one that
// revokes is logged with its id and reason only: each wrote an INFO line
// with its whole Details, so that a router's revocations of unknown ids
// wrote a line of their Details' size per message (200 of 4 KiB: 0.8 MB
// of log).
func (s *Session) onRevoked(m *proto.Message) {
	d := s.dictOf(m.Dict)
	var revoked *Registration
	var revokedSubs []*Subscription
	var id uint64
	found := false
	reason, _ := d["reason"].(string)
	s.mu.Lock()
	if m.Type == proto.CodeUnregistered {
		id, _ = toUint(d["registration"])
		if r := s.regs[id]; r != nil {
			r.revocation.Store(&reason)
			r.active.Store(false)
			delete(s.regs, id)
			revoked, found = r, true
		}
	} else {
		id, _ = toUint(d["subscription"])
		revokedSubs = s.subs[id] // copy-on-write: not changed once taken out
		for _, sub := range revokedSubs {
			sub.revocation.Store(&reason)
			sub.active.Store(false)
			found = true
		}
		delete(s.subs, id)
	}
	s.mu.Unlock()
	if !found {
		return
	}
	s.log.Info("client: revoked by the router", "type", m.Type.String(), "id", id, "reason", truncate(reason, 256))
	if revoked != nil && s.cfg.onRevoked != nil {
		s.cfg.onRevoked(revoked, reason)
	}
	if len(revokedSubs) > 0 && s.cfg.onSubRevoked != nil {
		s.cfg.onSubRevoked(revokedSubs, reason)
	}
}

// truncate returns s cut to at most n bytes (for a log line).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
