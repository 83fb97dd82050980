package route

import (
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Call re-routing (WAMP Advanced Profile §Call Re-Routing, feature
// call_reroute):
//
//	"When the Dealer receives the wamp.error.unavailable message in
//	response to an INVOCATION, it will reroute the CALL to another
//	registration according to the rerouting rules of the
//	invocation_policy of the procedure [...] while assuming that the
//	unavailable registration virtually does not exist."
//	"In case all available registrations of a Procedure responds with a
//	wamp.error.unavailable for a CALL, the Dealer MUST respond with a
//	wamp.error.no_available_callee to the CALLER."
//
// The caller's shard reroutes: it owns the call (outCall) and its timer,
// so a rerouted call keeps its request id, its deadline (counted from the
// CALL, not restarted per try) and its place in the caller's tables; only
// the invocation id changes, so that a late answer of an earlier callee is
// dropped as for an ended call. A call that may be rerouted keeps a copy
// of its payload (reroute.c) from the CALL on: one allocation, only for a
// registration with another policy than single and more than one callee
// (on a mesh, remote callees count) when the CALL arrives. A call to a
// registration with one callee is not copied: a callee that answers it
// unavailable ends it with no_available_callee at once.
//
// Not rerouted (the callee's ERROR reaches the caller as it is): a
// progressive call invocation once a chunk beyond the first went to the
// callee (chunked), a call that has had progressive results (gotProg), a
// call canceled in kill mode (canceling). Only a callee's own ERROR
// wamp.error.unavailable, and a callee found gone when the call reached
// its event loop (on a mesh: a node that sends the call back undelivered,
// meshBounced), reroute, and so does the router's refusal of a call for
// its caller's share of a callee that is behind (calleeshare.go: the
// caller gets wamp.error.unavailable when no callee is left); the
// router's other unavailable refusals (a callee not reading, a full queue
// of an event loop or of the mesh) do not.
//
// Policies (the untried callees take the place of all callees):
// roundrobin picks the next untried one after the rotation's position,
// random one at random, first the earliest registered, last the latest;
// single never reroutes. On a mesh the untried callees of this node come
// first for roundrobin and random, as for a fresh call (meshPick); first
// and last compare REGISTER times across the nodes, and a node counts as
// untried while fewer of its callees were tried than it announced. Another
// node gets the session ids its callees already tried for the call in the
// call envelope, and picks among the others (pickLocalExcept).
//
// For first and last a node is ranked by the REGISTER time of its callee
// the call would take there: its first (last) one, from the directory,
// while none of its callees has had the call. After, by what the node
// said with its callee's unavailable (nextUntried: the time of its next
// untried callee, or none left, which takes the node out of the pick).
// A node that said nothing, one of the previous release or one that sent
// the call back, is ranked by its last (first) callee's time, the latest
// (earliest) its next one may have: exact when one is left untried there,
// else another node's callee may come before the node's next. Before, a
// node was ranked by its first (last) callee's time even once that callee
// had had the call, so that B's second callee came before A's callee
// registered between B's two.

// maxCallTries bounds the callees one call is offered to (the first
// included): past it the caller gets no_available_callee, so that a call
// cannot go round a large shared registration of callees that all refuse
// it. It also bounds reroute.tried and the exclusion list of a call
// envelope.
const maxCallTries = 17

// maxRerouteHeld bounds the bytes a shard's calls in flight keep to be
// rerouted (reroute.c and the record itself). A caller may hold up to
// Config.MaxPendingCalls calls, each up to a message's size: without it,
// calls to a shared registration whose callees do not answer would make
// the router keep all their payloads. Past it a new call is not copied,
// and a callee's wamp.error.unavailable ends it with no_available_callee
// as for a registration with one callee; the call itself goes on.
const maxRerouteHeld = 32 << 20

// rerouteShare is what one session's calls may keep of maxRerouteHeld,
// past its first call kept (a call larger than the share may still be
// rerouted): one session's calls to callees that never answer took the
// whole of it, and no other caller on the shard had a call rerouted.
const rerouteShare = maxRerouteHeld / 16

// reroute is what a call that may be rerouted keeps. Owned by the
// caller's shard.
type reroute struct {
	// c is the CALL's payload and pass-through keys, an own copy; c.uri is
	// the procedure called for a pattern registration ("" for exact).
	c carry
	// proc is the procedure called (the envelope of a call to another
	// node names it even for an exact registration).
	proc string
	// disclose: the caller asked disclose_me or is granted disclosure (a
	// callee's disclose_caller adds to it per callee).
	disclose bool
	// unserved: a callee that had the call answered it unavailable or was
	// gone, not refused for its role; the call then ends
	// no_available_callee, not not_authorized, when no callee is left.
	unserved bool
	// prog: the call is a progressive call invocation, which only the
	// callees that announced progressive_call_invocations take: another
	// node counts as untried while it may have an untried one of those,
	// and first and last rank it by theirs (remoteUntried, remoteAt).
	prog bool
	// ppt: prog, in payload passthru mode: only the callees that announced
	// payload_passthru_mode too take it.
	ppt bool
	// noSer has bit 1<<ser set for each serializer that cannot carry the
	// call's payload (a callee of it refused so: tfSerRefused): its other
	// callees are passed by, each as a try, not given the payload to
	// convert again. Before, a MsgPack caller's NaN to a registration of
	// 17 JSON callees was converted 17 times (~10x the CPU of one call
	// of 1 MiB), each failing alike.
	noSer uint8
	// switched: a force_reregister's registration took the place of the
	// call's (currentReg), whose callee has not had the call, whatever
	// its policy (single too: pickUntried).
	switched bool
	// tried are the callees the call was offered to, in order, at most
	// maxCallTries; triedA holds the first ones (no allocation for them).
	tried  []triedCallee
	triedA [4]triedCallee
	// next is what other nodes said of their next untried callee with
	// their callee's unavailable (first and last; nil until one did). A
	// pointer, so that a record stays 448 bytes for every call.
	next *[]nodeNext
	// cost is what the call counts in its shard's rerouteHeld and in its
	// caller's, by.
	cost int64
	by   *Session
}

// triedCallee is a callee a call was offered to: its node (0: this one)
// and session id.
type triedCallee struct {
	node MeshNode
	id   uint64
}

// nodeNext is what another node said of its next untried callee for a
// call of a first or last registration: none left, or the REGISTER time
// of the one the call would take there.
type nodeNext struct {
	node MeshNode
	none bool
	at   int64
}

// rerouteable reports whether a CALL to reg may be rerouted, and so must
// keep its payload: another policy than single, and another callee than
// the one it goes to.
func rerouteable(reg *registration) bool {
	if reg.invoke == proto.InvokeSingle {
		return false
	}
	n := reg.list().len()
	for _, rc := range reg.remoteList() {
		n += rc.callees
	}
	return n > 1
}

// newReroute returns the reroute state of ss's CALL m (of registration
// reg) that the callee (node, id) takes first, or nil when the shard's
// calls hold maxRerouteHeld bytes already or ss's its share. c is a carry
// of m: an own copy the call may share when keep is set, else one it
// copies.
func (s *Shard) newReroute(ss *Session, reg *registration, m *proto.Message, c *carry, keep, disclose bool, node MeshNode, id uint64) *reroute {
	cost := int64(c.size()+2*len(m.URI)) + 512
	if s.rerouteHeld+cost > maxRerouteHeld || ss.rerouteHeld > 0 && ss.rerouteHeld+cost > rerouteShare {
		return nil
	}
	s.rerouteHeld += cost
	ss.rerouteHeld += cost
	// A record and its payload buffer from the shard's free list, else one
	// allocation for each (none for the bytes when the task's carry is an
	// own copy already).
	var rr *reroute
	if n := len(s.rrPool); n > 0 {
		rr = s.rrPool[n-1]
		s.rrPool = s.rrPool[:n-1]
	} else {
		rr = new(reroute)
	}
	rr.disclose, rr.cost, rr.by = disclose, cost, ss
	if keep {
		rr.c = *c // shares c's bytes, which nobody writes
	} else {
		rr.c.ownFrom(c)
	}
	rr.proc = reg.uri
	if reg.match != proto.MatchExact {
		rr.proc = string(m.URI)
		rr.c.uri = rr.proc
	}
	rr.triedA[0] = triedCallee{node, id}
	rr.tried = rr.triedA[:1]
	return rr
}

// Bounds of the free reroute records a shard keeps, and of the payload
// buffer a kept record may hold.
const (
	reroutePoolMax = 128
	rerouteBufMax  = 4 << 10
)

// recycleReroute is dropReroute for a call that got its final answer from
// its callee: every task that held the record's carry has run (the callee
// answered), so the record and its buffer may serve another call.
func (s *Shard) recycleReroute(oc *outCall) {
	rr := oc.rr
	if rr == nil {
		return
	}
	s.dropReroute(oc)
	if len(s.rrPool) < reroutePoolMax && cap(rr.c.buf) <= rerouteBufMax {
		buf := rr.c.buf[:0]
		*rr = reroute{}
		rr.c.buf = buf
		s.rrPool = append(s.rrPool, rr)
	}
}

// dropReroute releases what oc keeps to be rerouted: the call ended, or
// may no longer be rerouted.
func (s *Shard) dropReroute(oc *outCall) {
	if oc.rr != nil {
		s.rerouteHeld -= oc.rr.cost
		oc.rr.by.rerouteHeld -= oc.rr.cost
		oc.rr = nil
	}
}

func (rr *reroute) triedLocal(id uint64) bool {
	for _, t := range rr.tried {
		if t.node == 0 && t.id == id {
			return true
		}
	}
	return false
}

// triedOn counts the callees of node tried.
func (rr *reroute) triedOn(node MeshNode) int {
	n := 0
	for _, t := range rr.tried {
		if t.node == node {
			n++
		}
	}
	return n
}

// setNext records what node said of its next untried callee (x:
// carry.next), nothing when it said nothing.
func (rr *reroute) setNext(node MeshNode, x uint64) {
	at, none, said := calleeNext(x)
	if !said {
		return
	}
	n := nodeNext{node: node, none: none, at: at}
	if rr.next == nil {
		rr.next = &[]nodeNext{n}
		return
	}
	l := *rr.next
	for i := range l {
		if l[i].node == node {
			l[i] = n
			return
		}
	}
	*rr.next = append(l, n)
}

// forgetNext drops what node said of its next callee: it sent the call
// back undelivered, so that callee is gone.
func (rr *reroute) forgetNext(node MeshNode) {
	if rr.next == nil {
		return
	}
	l := *rr.next
	for i := range l {
		if l[i].node == node {
			*rr.next = append(l[:i], l[i+1:]...)
			return
		}
	}
}

// nextOf returns what node said of its next untried callee, if it did.
func (rr *reroute) nextOf(node MeshNode) (nodeNext, bool) {
	if rr.next == nil {
		return nodeNext{}, false
	}
	for _, n := range *rr.next {
		if n.node == node {
			return n, true
		}
	}
	return nodeNext{}, false
}

// remoteUntried reports whether rc, another node's part of the
// registration, may have a callee rr has not tried: fewer of its callees
// were tried than it announced (for a progressive call invocation, than
// it announced take one), and it did not say it has none left.
func (rr *reroute) remoteUntried(rc remoteCallee) bool {
	callees := rc.callees
	if n, _, _ := rc.can(rr.ppt); rr.prog && n >= 0 {
		callees = int(n) // 0: none of its callees takes the call
	}
	if rr.triedOn(rc.node) >= callees {
		return false
	}
	n, ok := rr.nextOf(rc.node)
	return !ok || !n.none
}

// calleeUnavailable handles a callee's wamp.error.unavailable (t, a
// tResult with tfUnavailable) for the call req of caller ss on its shard.
// It reports true when the call went to another callee; false when t is
// to reach the caller, whose error URI it then sets: no_available_callee
// when no untried callee is left (or the policy is single), or
// unavailable as the callee said when the call may not be rerouted.
func (s *Shard) calleeUnavailable(ss *Session, req uint64, oc *outCall, t *task) bool {
	if t.flags&tfReplaced != 0 {
		s.rerouteReplaced(ss, oc, t)
	}
	if oc.canceling || oc.chunked || oc.gotProg {
		return false
	}
	if rr := oc.rr; rr != nil {
		if !refusalURI(t.c.uri) {
			rr.unserved = true
		}
		if oc.callee != nil {
			rr.tried[len(rr.tried)-1].id = oc.callee.id // the one just asked
			if t.flags&tfSerRefused != 0 {
				rr.noSer |= 1 << oc.callee.ser
			}
		} else {
			rr.tried[len(rr.tried)-1] = triedCallee{oc.node, t.c.callee}
			rr.setNext(oc.node, t.c.next)
		}
		if s.rerouteCall(ss, req, oc) {
			s.stats.CallsRerouted.Add(1)
			return true
		}
	}
	// "In case all available registrations of a Procedure responds with a
	// wamp.error.unavailable for a CALL, the Dealer MUST respond with a
	// wamp.error.no_available_callee": with the last callee's arguments.
	// A callee refused for its role (deliverInvocation, on another node
	// meshDeliverInvocation) leaves the call not_authorized when every
	// callee that had it was refused so: no callee may serve it, which is
	// not unavailability. When one answered unavailable or was gone, the
	// call ends no_available_callee whatever the order of the answers
	// (before, the last answer decided: unavailable then refused ended
	// not_authorized, refused then unavailable no_available_callee).
	if refusalURI(t.c.uri) && (oc.rr == nil || !oc.rr.unserved) {
		return false
	}
	if shareRefused(t) {
		// The router's refusal for the caller's share of a callee that
		// is behind (calleeshare.go), and no other callee took the call:
		// the caller gets it as it is, wamp.error.unavailable, as for a
		// callee not reading; the callee is there.
		return false
	}
	s.stats.CallsRerouteExhausted.Add(1)
	switch t.c.uri {
	case proto.URINotAuthorized:
		// The refusal's text would name the wrong cause.
		t.c.msg = "no callee could take the call: those not refused for their role answered unavailable or were gone"
	case proto.URIFeatureNotSupported:
		t.c.msg = "no callee could take the call: those that announced the feature it needs answered unavailable or were gone"
	case proto.URIPayloadSizeExceeded:
		t.c.msg = "no callee could take the call: those that accept a message this long answered unavailable or were gone"
	case proto.URIInvalidArgument:
		t.c.msg = "no callee could take the call: those that can read its payload in their serializer answered unavailable or were gone"
	}
	t.c.uri = proto.URINoAvailableCallee
	return false
}

// rerouteReplaced makes the reroute record of a call that kept none (a
// registration of one callee when called) from the copy its callee's
// shard handed back (t.c, tfReplaced): a force_reregister took the
// registration over between the call's pick and its arrival there, so
// the call goes on with the registration that holds the procedure now
// (rerouteCall, currentReg), as one kept for a reroute does. Before, the
// caller got wamp.error.no_available_callee though the new callee held
// the procedure. The payload is taken out of t, whose error may reach
// the caller. Within maxRerouteHeld and the caller's share, as
// newReroute, whose disclosure it takes: the caller's (disclose_me, its
// role's grant), to which each callee's disclose_caller adds. Before, it
// kept the first callee's (oc.disclose), and a callee that did not ask
// disclose_caller was told the identity of a caller that did not ask
// either when the callee it replaced had asked. Cold path.
func (s *Shard) rerouteReplaced(ss *Session, oc *outCall, t *task) {
	c := *t.c
	*t.c = carry{uri: c.uri, msg: c.msg}
	if oc.rr != nil || oc.callee == nil {
		return
	}
	proc := oc.reg.uri
	if oc.reg.match != proto.MatchExact {
		proc = oc.proc
	}
	cost := int64(c.size()+2*len(proc)) + 512
	if s.rerouteHeld+cost > maxRerouteHeld || ss.rerouteHeld > 0 && ss.rerouteHeld+cost > rerouteShare {
		return
	}
	s.rerouteHeld += cost
	ss.rerouteHeld += cost
	rr := new(reroute)
	rr.disclose, rr.cost, rr.by = oc.discloseMe || ss.grants(ActionDiscloseCaller, []byte(proc)), cost, ss
	c.uri, c.msg, c.queued = "", "", 0
	rr.c = c
	rr.proc = proc
	if oc.reg.match != proto.MatchExact {
		rr.c.uri = proc
	}
	rr.triedA[0] = triedCallee{0, oc.callee.id}
	rr.tried = rr.triedA[:1]
	oc.rr = rr
}

// refusalURI reports whether uri, in an answer the caller's node may
// reroute, is the router's refusal of a callee (for its role:
// not_authorized; for a feature no callee of a node has, from another
// node: feature_not_supported; on this node, for a message longer than
// the callee accepts: payload_size_exceeded, for a payload its serializer
// cannot carry: invalid_argument) rather than unavailability: a call that
// every callee tried refused so ends with it, not no_available_callee.
func refusalURI(uri string) bool {
	switch uri {
	case proto.URINotAuthorized, proto.URIFeatureNotSupported, proto.URIPayloadSizeExceeded, proto.URIInvalidArgument:
		return true
	}
	return false
}

// rerouteCall offers the call req of ss to an untried callee of its
// registration, and reports whether it did.
func (s *Shard) rerouteCall(ss *Session, req uint64, oc *outCall) bool {
	rr := oc.rr
	if reg := currentReg(ss.realm, oc.reg); reg != oc.reg {
		oc.reg, rr.switched = reg, true
	}
	progress := oc.progInv
	rr.prog = progress
	rr.ppt = progress && rr.c.pptMode()
	for len(rr.tried) < maxCallTries {
		ce, node, ok := s.pickUntried(oc.reg, rr, oc.callee == nil || s.meshCallRoom(ss))
		if !ok {
			return false
		}
		if node != 0 {
			rr.tried = append(rr.tried, triedCallee{node: node}) // id known when it answers
			if s.rerouteMesh(ss, req, oc, node) {
				return true
			}
			continue
		}
		cs := ce.s
		rr.tried = append(rr.tried, triedCallee{id: cs.id})
		if progress && cs.feat&fCalleeProgInv == 0 {
			continue // cannot take the call's chunks
		}
		if cs.feat&fCalleePPT == 0 && rr.c.pptMode() {
			continue // cannot take a call in payload passthru mode
		}
		if rr.noSer&(1<<cs.ser) != 0 {
			continue // its serializer cannot carry the payload
		}
		if cs.shard != s && !cs.shard.callRoom(int64(len(rr.c.buf)+len(rr.c.uri))+callOverhead) {
			s.stats.CallsBacklog.Add(1)
			continue
		}
		s.rerouteLocal(ss, req, oc, ce)
		return true
	}
	return false
}

// currentReg returns the registration of rm that holds reg's procedure
// now: reg, or when a force_reregister replaced it (overDone), or its
// last callee left every node and a new one registered the procedure
// since (a callee that moved to another node of a mesh), the one in its
// place, if any. A call an old callee of a replaced shared
// registration held and answered unavailable goes on among the new
// registration's callees: the replaced one keeps only its old callees,
// which are leaving. Before, it was rerouted within the replaced one,
// and its caller got no_available_callee though the new callee held the
// procedure (TestRerouteAfterForceReregister). Takes rm.mu for reading:
// the reroute path only, no allocation.
func currentReg(rm *Realm, reg *registration) *registration {
	rm.mu.RLock()
	if cur, ok := rm.regs.get(reg.match, reg.uri); ok {
		reg = cur // one registration a (match, URI): another one is reg's successor
	}
	rm.mu.RUnlock()
	return reg
}

// rerouteLocal sends the call req of ss to ce, a callee of this node.
func (s *Shard) rerouteLocal(ss *Session, req uint64, oc *outCall, ce callee) {
	rr := oc.rr
	rr.c.queued = 0 // sendCall counts it anew for another shard
	s.invokeLocal(ss, req, oc, ce, &rr.c, rr.disclose)
}

// invokeLocal sends the call req of ss, whose own copy c holds, to ce, a
// callee of this node (rerouteLocal, bouncedHere).
func (s *Shard) invokeLocal(ss *Session, req uint64, oc *outCall, ce callee, c *carry, disclose bool) {
	if oc.callee == nil { // from another node's callee
		s.dropMcall(oc.invID)
		ss.meshCallEnded()
		oc.node = 0
	}
	cs := ce.s
	oc.callee = cs
	oc.invID = s.nextInvocationID()
	oc.disclose = disclose || ce.discloseCaller
	t := task{kind: tInvoke, s: cs, peer: ss, a: req, b: oc.invID, reg: oc.reg, c: c}
	if oc.recvProg {
		t.flags |= tfRecvProg
	}
	if oc.progInv {
		t.flags |= tfProgress
	}
	if oc.disclose {
		t.flags |= tfDisclose
	}
	if ce.forwardTimeout && cs.feat&fCalleeTimeout != 0 && oc.due != 0 {
		t.timeout = s.timeLeft(oc.due, s.r.coarseNow())
	}
	if s.queueCall(cs.shard, false) {
		t.flags |= tfSelfCall // c is an own copy
	}
	s.sendCall(cs.shard, t)
}

// timeLeft is the rest of a call's timeout for its next callee, in ms (at
// least 1).
func (s *Shard) timeLeft(due, now int64) uint64 {
	if ms := (due - now) / int64(time.Millisecond); ms > 0 {
		return uint64(ms)
	}
	return 1
}

// pickUntried applies reg's invocation policy to its callees that rr has
// not tried: a local callee, or (node != 0) another node with untried
// callees when remote is set. ok is false when there is none.
func (s *Shard) pickUntried(reg *registration, rr *reroute, remote bool) (ce callee, node MeshNode, ok bool) {
	if reg.invoke == proto.InvokeSingle {
		// Its one callee had the call, unless the registration took the
		// place of the call's (rr.switched): the new callee of a
		// force_reregister of the default policy. Before, that call got
		// no_available_callee (TestRerouteAfterForceReregisterSingle).
		if !rr.switched {
			return callee{}, 0, false
		}
		remote = false
	}
	l := reg.list()
	if s.r.draining.Load() {
		l = noCallees // this node's callees take no new calls (drain.go)
	}
	// The callees that can take the call: for a progressive call
	// invocation those that announced progressive_call_invocations, for
	// a call in payload passthru mode those that announced
	// payload_passthru_mode (the list's counts, by chunk: needList).
	// Before, the pick was among all the untried callees, and one that
	// could not take the call used a try (of maxCallTries): a call
	// rerouted from a callee that could, on a registration with more than
	// 16 callees that could not, ended no_available_callee with another
	// that could left untried.
	cl := needListOf(l, needOf(rr.prog, rr.c.pptMode()))
	// Whether a callee of cl is untried: at most len(rr.tried) of them
	// were tried, so the scan ends within that many more. No step of a
	// pick walks the whole registration: it may hold 100,000 callees, and
	// a call picks again after each refusal.
	untried := false
	for i := range cl.n {
		if !rr.triedLocal(cl.at(i).s.id) {
			untried = true
			break
		}
	}
	var rl []remoteCallee
	nodes := 0
	if remote && s.r.mesh != nil {
		rl = reg.remoteList()
		for _, rc := range rl {
			if rr.remoteUntried(rc) {
				nodes++
			}
		}
	}
	if !untried && nodes == 0 {
		return callee{}, 0, false
	}
	switch reg.invoke {
	case proto.InvokeFirst, proto.InvokeLast:
		return s.pickUntriedByTime(cl, rl, rr, reg.invoke == proto.InvokeFirst)
	case proto.InvokeRandom:
		if untried {
			return s.randomUntried(cl, rr), 0, true
		}
		return callee{}, nthNode(rl, rr, s.rng.IntN(nodes)), true
	}
	// roundrobin: the next untried callee from the rotation's position.
	pos := reg.rr.Add(1) - 1
	if untried {
		n := uint64(cl.n)
		for k := uint64(0); k < n; k++ {
			if c := cl.at(int((pos + k) % n)); !rr.triedLocal(c.s.id) {
				return c, 0, true
			}
		}
	}
	return callee{}, nthNode(rl, rr, int(pos%uint64(nodes))), true
}

// pickUntriedByTime picks the untried callee registered first (or last)
// among this node's that can take the call (l, in REGISTER order) and the
// other nodes' (rl).
func (s *Shard) pickUntriedByTime(l needList, rl []remoteCallee, rr *reroute, first bool) (ce callee, node MeshNode, ok bool) {
	var best int64
	for i := range l.n {
		c := l.at(i)
		if !first {
			c = l.at(l.n - 1 - i)
		}
		if !rr.triedLocal(c.s.id) {
			ce, ok, best = c, true, c.at
			break
		}
	}
	for _, rc := range rl {
		if !rr.remoteUntried(rc) {
			continue
		}
		at := rr.remoteAt(rc, first)
		if !ok || first && at < best || !first && at > best {
			ce, node, ok, best = callee{}, rc.node, true, at
		}
	}
	return ce, node, ok
}

// remoteAt returns the REGISTER time by which first (or last) ranks rc's
// untried callees (see the top of this file): its first (last) callee's
// while none of them was tried; after, the one its node said it has next,
// else its last (first) callee's.
func (rr *reroute) remoteAt(rc remoteCallee, first bool) int64 {
	if rr.triedOn(rc.node) > 0 {
		if n, ok := rr.nextOf(rc.node); ok {
			return n.at
		}
		first = !first
	}
	if rr.prog {
		return rc.progAt(first, rr.ppt) // its first (last) callee that takes it
	}
	if first {
		return rc.first
	}
	return rc.last
}

// randomUntried returns a callee of l that rr has not tried, each with
// the same chance; l has one. Where most of l is untried it draws until
// it finds one (twice on average at worst); else (l has at most
// 2·maxCallTries) it counts them.
func (s *Shard) randomUntried(l needList, rr *reroute) callee {
	if l.n > 2*len(rr.tried) {
		for {
			if c := l.at(s.rng.IntN(l.n)); !rr.triedLocal(c.s.id) {
				return c
			}
		}
	}
	untried := 0
	for i := range l.n {
		if !rr.triedLocal(l.at(i).s.id) {
			untried++
		}
	}
	return nthUntried(l, rr, s.rng.IntN(untried))
}

// nthUntried returns the k-th callee of l that rr has not tried.
func nthUntried(l needList, rr *reroute, k int) callee {
	for i := range l.n {
		c := l.at(i)
		if rr.triedLocal(c.s.id) {
			continue
		}
		if k == 0 {
			return c
		}
		k--
	}
	return callee{}
}

// nthNode returns the k-th node of rl with callees rr has not tried.
func nthNode(rl []remoteCallee, rr *reroute, k int) MeshNode {
	for _, rc := range rl {
		if !rr.remoteUntried(rc) {
			continue
		}
		if k == 0 {
			return rc.node
		}
		k--
	}
	return 0
}
