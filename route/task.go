package route

import (
	"github.com/edgewamp/edgewamp/proto"
)

type taskKind uint8

const (
	tTimers    taskKind = iota + 1 // run due timers
	tShutdown                      // say GOODBYE to every session of the shard
	tInvoke                        // s: callee; peer: caller; a: caller req; b: invocation id; reg; c
	tResult                        // s: caller; a: caller req; b: invocation id; flags; c
	tInterrupt                     // s: callee; b: invocation id; mode; c.uri: reason
	tForget                        // s: callee; b: invocation id: drop the invocation silently
	tEvents                        // pub; subs: fan out to this shard's subscribers
	tKill                          // s: target; c.uri: reason; c.msg: message
	tAuthDone                      // s: joining session; auth
	tAuthSlot                      // s: joining session; auth: the limiter's answer to a queued AUTHENTICATE
	tRemoveReg                     // s: callee; reg; c.uri: reason ("": none); b: its backlog bytes: wamp.registration.remove_callee
	tRemoveSub                     // s: subscriber; subs[0]: its subscription; c.uri: reason; b: its backlog bytes: wamp.subscription.remove_subscriber
	tMeta                          // pub; subs; b: its backlog bytes: a meta event for this shard's subscribers (metaFanout)
	tWalkWake                      // s: first in its owner's line of walks; a: when its turn comes (walkRan)
)

// Task flags.
const (
	tfProgress   uint16 = 1 << iota // a progressive RESULT / INVOCATION chunk
	tfError                         // tResult is an ERROR (c.uri)
	tfContinue                      // tInvoke continues a progressive call invocation
	tfRecvProg                      // tInvoke: the caller asked for progressive results
	tfDisclose                      // tInvoke: disclose the caller
	tfCalleeLeft                    // tResult error because the callee went away
	// tfUnavailable: a tResult error from a callee that answered
	// wamp.error.unavailable, or that was gone when the call reached its
	// shard: the caller's shard may reroute the call (reroute.go).
	tfUnavailable
	// tfBacklogged: a tMeshResult refused for the caller's full backlog
	// of calls: the callee's node is told the call is over; a
	// tMeshBounce refused so (no envelope): the call ends unavailable.
	tfBacklogged
	// tfRoleReroute: a tInvoke from another node whose caller's node
	// reroutes a callee's refusal for its role (ccRoleReroute).
	tfRoleReroute
	// tfFeatureReroute: a tInvoke from another node whose caller's node
	// reroutes a refusal for a feature no callee here has
	// (ccFeatureReroute).
	tfFeatureReroute
	// tfSelf: a tEvents a shard posted to itself, behind meta events
	// waiting there (fanout, Shard.selfEvents).
	tfSelf
	// tfSelfCall: a call task a shard posted to itself (Shard.selfCalls).
	tfSelfCall
	// tfSerRefused: a tResult with tfUnavailable for a call whose payload
	// the callee's serializer cannot carry (no form in it, or converted
	// past MaxConverted): the caller's shard passes by that serializer's
	// callees when it reroutes the call (reroute.noSer).
	tfSerRefused
	// tfReplaced: a tResult with tfUnavailable for a call whose callee
	// lost the registration to a force_reregister before the call
	// reached it: c holds a copy of the call's payload, from which the
	// caller's shard reroutes it when it kept none (rerouteReplaced).
	tfReplaced
)

// task is one unit of work for a shard, passed by value through its
// mailbox. Fields are used per kind (see the constants).
type task struct {
	kind    taskKind
	flags   uint16
	mode    proto.CancelMode
	s       *Session
	peer    *Session
	a, b    uint64
	timeout uint64 // tInvoke: forwarded timeout (ms), 0 = none
	reg     *registration
	pub     *publication
	subs    []*subscription
	c       *carry
	auth    *authResult
}

// run executes one task on the shard's goroutine.
func (s *Shard) run(t *task) {
	if t.flags&tfSelfCall != 0 {
		s.selfCalls--
	}
	switch t.kind {
	case tTimers:
		s.runTimers()
	case tWalkWake:
		s.walkWake(t.s, int64(t.a))
	case tShutdown:
		s.shutdown()
	case tInvoke:
		if t.c != nil && t.c.queued != 0 { // from another shard: its bytes leave the backlog
			s.callBacklog.Add(-t.c.queued)
		}
		s.deliverInvocation(t)
	case tResult:
		if t.c != nil && t.c.queued != 0 {
			s.callBacklog.Add(-t.c.queued)
		}
		s.deliverResult(t)
	case tInterrupt:
		s.deliverInterrupt(t)
	case tForget:
		t.s.dropInv(t.b)
	case tEvents:
		if t.a != 0 { // from another node: its bytes leave the backlog
			s.meshBacklog.Add(-int64(t.a))
		}
		if t.b != 0 { // from another shard, or this one's (tfSelf)
			s.eventBacklog.Add(-int64(t.b))
		}
		if t.flags&tfSelf != 0 {
			s.selfEvents--
		}
		s.deliverEvents(t.pub, t.subs)
	case tMeta:
		s.metaPosted.Add(-1)
		s.eventBacklog.Add(-int64(t.b))
		s.deliverEvents(t.pub, t.subs)
	case tKill:
		if t.s.state == stEstablished {
			s.Goodbye(t.s, t.c.uri, t.c.msg)
		}
	case tRemoveReg:
		s.removalRun(t)
		s.registrationRemoved(t.s, t.reg, t.c.uri)
	case tRemoveSub:
		s.removalRun(t)
		s.subscriptionRemoved(t.s, t.subs[0], t.c.uri)
	case tAuthDone:
		s.authDone(t.s, t.auth)
	case tAuthSlot:
		s.authSlot(t.s, t.auth)
	case tMeshResult:
		if t.c != nil && t.c.queued != 0 { // from another node: its bytes leave the backlog
			s.callBacklog.Add(-t.c.queued)
		}
		s.meshResult(t)
	case tMeshBounce:
		if t.c != nil && t.c.queued != 0 { // from another node: its bytes leave the backlog
			s.callBacklog.Add(-t.c.queued)
		}
		s.meshBounced(t)
	case tMeshChunk:
		if t.c != nil && t.c.queued != 0 { // its bytes leave the node's backlog of chunks
			s.r.ms.chunkBytes.Add(-t.c.queued)
		}
		s.meshChunk(t)
	case tMeshInterrupt:
		s.meshInterrupt(t)
	case tMeshNodeDown:
		s.meshNodeDown(MeshNode(t.b))
	case tMeshRevoke:
		s.meshRevoke(t.s, t.reg, t.c.uri)
	case tMeshUnregistered:
		if t.s.state == stEstablished && t.s.id == t.b {
			s.sendUnregistered(t.s, t.a)
		}
	}
}

// carry is the part of a message that crosses to another shard: payload,
// a URI and the pass-through keys. Between shards its bytes are a private
// copy; within a shard they alias the decoded message (no copy).
type carry struct {
	buf         []byte // owns args, kwargs and ppt when copied
	args        proto.Raw
	kwargs      proto.Raw
	transparent bool
	uri         string // procedure (INVOCATION) or error URI (ERROR) or close reason
	msg         string // kill message
	// callee is, on a tResult with tfUnavailable from another node, the
	// session id of the callee that answered (reroute.go), and next what
	// its node said of its next untried callee for the call (the result's
	// flags from rsNext up, calleeNext; 0: nothing).
	callee uint64
	next   uint64
	ppt    [6][]byte
	mo     *meshOrigin // tInvoke from another node: the caller there
	// queued is what the carry counts in its destination shard's
	// callBacklog while its task waits in the mailbox (sendCall), or, on
	// a chunk of a progressive invocation from another node, in the node's
	// backlog of chunks (meshState.chunkBytes); 0 when not counted.
	queued int64
}

// pptKeys are the Payload Passthru Mode / E2EE keys forwarded untouched
// from CALL/YIELD/PUBLISH options to INVOCATION/RESULT/EVENT details.
var pptKeys = [6]proto.Key{proto.KeyPPTScheme, proto.KeyPPTSerializer, proto.KeyPPTCipher, proto.KeyPPTKeyID, proto.KeyEncAlgo, proto.KeyEncSerializer}

// pptMode reports whether f, the Options of a CALL, PUBLISH or YIELD (or
// an ERROR's Details), put the message in Payload Passthru Mode: a
// non-empty ppt_scheme ("A Router can recognize that Payload Passthru Mode
// is in use by checking the existence and non-empty value of this
// attribute").
func pptMode(f *proto.Fields) bool { return len(f.Str(proto.KeyPPTScheme)) != 0 }

// pptMode reports whether the carried message was in Payload Passthru
// Mode (pptKeys[0] is ppt_scheme).
func (c *carry) pptMode() bool { return len(c.ppt[0]) != 0 }

// carry returns m's payload and pass-through keys for a task. For another
// shard (cross) they are copied into one allocation; for this shard they
// alias m and live in the shard's scratch carry, valid until the shard
// handles its next message — tasks to the own shard run inline, so that is
// long enough.
func (s *Shard) carry(m *proto.Message, cross bool) *carry {
	if cross {
		return carryOf(m, true)
	}
	c := &s.lc
	*c = carry{transparent: m.Transparent, args: m.Args, kwargs: m.Kwargs}
	for i, k := range pptKeys {
		c.ppt[i] = m.Opt.Str(k)
	}
	return c
}

// carryOf captures m's payload and pass-through keys. With own set the
// bytes are copied into one allocation; else they alias m.
func carryOf(m *proto.Message, own bool) *carry {
	c := &carry{transparent: m.Transparent}
	if !own {
		c.args, c.kwargs = m.Args, m.Kwargs
		for i, k := range pptKeys {
			c.ppt[i] = m.Opt.Str(k)
		}
		return c
	}
	c.own(m)
	return c
}

// own sets c to a copy of m's payload and pass-through keys, in c's
// buffer when it is large enough, else in one allocation.
func (c *carry) own(m *proto.Message) {
	buf := c.buf[:0]
	*c = carry{transparent: m.Transparent}
	if n := payloadLen(m); n > cap(buf) {
		buf = make([]byte, 0, n)
	}
	c.buf = buf
	c.args = c.keep(m.Args)
	c.kwargs = c.keep(m.Kwargs)
	for i, k := range pptKeys {
		if v := m.Opt.Str(k); v != nil {
			start := len(c.buf)
			c.buf = append(c.buf, v...)
			c.ppt[i] = c.buf[start:len(c.buf):len(c.buf)]
		}
	}
}

// payloadLen is the bytes of m that carryOf copies: its payload and its
// pass-through keys.
func payloadLen(m *proto.Message) int {
	n := len(m.Args.B) + len(m.Kwargs.B)
	for _, k := range pptKeys {
		n += len(m.Opt.Str(k))
	}
	return n
}

func (c *carry) keep(r proto.Raw) proto.Raw {
	if r.B == nil {
		return r
	}
	start := len(c.buf)
	c.buf = append(c.buf, r.B...)
	r.B = c.buf[start:len(c.buf):len(c.buf)]
	return r
}

// size is the bytes of c's payload and pass-through keys.
func (c *carry) size() int {
	n := len(c.args.B) + len(c.kwargs.B)
	for _, v := range c.ppt {
		n += len(v)
	}
	return n
}

// ownFrom sets c to a copy of src's payload and pass-through keys, in c's
// buffer when it is large enough, else in one allocation.
func (c *carry) ownFrom(src *carry) {
	buf := c.buf[:0]
	if n := src.size(); n > cap(buf) {
		buf = make([]byte, 0, n)
	}
	*c = carry{transparent: src.transparent, buf: buf}
	c.args = c.keep(src.args)
	c.kwargs = c.keep(src.kwargs)
	for i, v := range src.ppt {
		if v != nil {
			start := len(c.buf)
			c.buf = append(c.buf, v...)
			c.ppt[i] = c.buf[start:len(c.buf):len(c.buf)]
		}
	}
}

// setPPT copies the carried pass-through keys into f.
func (c *carry) setPPT(f *proto.Fields) {
	for i, k := range pptKeys {
		if c.ppt[i] != nil {
			f.SetStr(k, c.ppt[i])
		}
	}
}

// setPayload copies the carried payload into an outgoing message.
func (c *carry) setPayload(m *proto.Message) {
	m.Args, m.Kwargs, m.Transparent = c.args, c.kwargs, c.transparent
}
