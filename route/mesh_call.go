package route

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// RPC across the nodes of a mesh (see mesh.go). The caller's shard keeps
// its calls to other nodes in mcalls (by invocation id, which is also the
// call id on the wire); the callee's shard keeps the invocations of remote
// callers in minvs (by their node and call id).

// Mesh task kinds (see run).
const (
	tMeshResult       taskKind = iota + 64 // a: call id; b: node; flags; c
	tMeshBounce                            // a: call id; b: node; c.buf: the call envelope (nil: tfBacklogged)
	tMeshChunk                             // a: call id; b: node; flags; c
	tMeshInterrupt                         // a: call id; b: node; mode; c.uri: reason
	tMeshNodeDown                          // b: node: fail and drop everything exchanged with it
	tMeshRevoke                            // s: callee; reg: lost a conflict with another node
	tMeshUnregistered                      // s: callee; a: its UNREGISTER's request; b: its session id
)

// remotePublisher is the identity of a caller or publisher on another
// node.
type remotePublisher struct {
	id               uint64
	authID, authRole string
}

// publisherIdentity returns the publisher's id, authid and authrole, local
// or remote.
func (p *publication) publisherIdentity() (uint64, string, string) {
	if p.remote != nil {
		return p.remote.id, p.remote.authID, p.remote.authRole
	}
	return p.publisher.id, p.publisher.authID, p.publisher.authRole
}

// meshOrigin is the caller on another node of an invocation delivered
// here.
type meshOrigin struct {
	node   MeshNode
	shard  int32  // the caller's shard there (below maxShards; a broken node's larger value is echoed cut to 32 bits)
	callID uint64 // the caller node's id for the call
	caller remotePublisher
	env    []byte        // the call envelope, kept until the invocation is delivered (bounce)
	reg    *registration // set on delivery, for further chunks
	// exclude, for a rerouted call (nil for a first try), are the callees
	// of this node the call was offered to before: its answer unavailable
	// says which callee is next (nextUntried). A pointer, and shard an
	// int32, so that a meshOrigin stays 96 bytes for every call.
	exclude *[]uint64
}

type mcall struct {
	ss  *Session
	req uint64
}

type minvKey struct {
	node   MeshNode
	callID uint64
}

type minv struct {
	ss  *Session
	inv uint64
}

// dropMcall forgets the call to another node of invocation id, mcalls
// replaced by a copy sized for what it holds once it holds fewer than an
// eighth of its peak (shrinkDue: a compare or two on the mesh's per-call
// path). Owned by shard.
func (s *Shard) dropMcall(id uint64) {
	n := len(s.mcalls)
	delete(s.mcalls, id)
	if shrinkDue(&s.mcallsPeak, n, len(s.mcalls)) {
		shrinkMap(&s.mcalls, &s.mcallsPeak)
	}
}

// dropMinv forgets the invocation of another node's call k, as
// dropMcall. Owned by shard.
func (s *Shard) dropMinv(k minvKey) {
	n := len(s.minvs)
	delete(s.minvs, k)
	if shrinkDue(&s.minvsPeak, n, len(s.minvs)) {
		shrinkMap(&s.minvs, &s.minvsPeak)
	}
}

// maxBounces bounds how often a call is sent on after nodes bounced it.
const maxBounces = 3

// remoteCallee is another node's part of a registration.
type remoteCallee struct {
	node        MeshNode
	callees     int
	first, last int64
	// prog is how many of the node's callees take progressive call
	// invocations, -1 when the node did not say (MeshReg.Prog);
	// progFirst and progLast when the first and last of them registered
	// (first and last registrations).
	// ppt, pptFirst and pptLast are the same of its callees that also
	// take payload passthru mode (MeshReg.ProgPPT; prog's when the node
	// said no more). prog and ppt side by side: 72 bytes, not 80.
	prog, ppt           int32
	progFirst, progLast int64
	pptFirst, pptLast   int64
}

// can returns how many of rc's callees take a progressive call
// invocation (in payload passthru mode when ppt), -1 when the node did
// not say, and the REGISTER times of the first and last of them.
func (rc *remoteCallee) can(ppt bool) (n int32, first, last int64) {
	if ppt {
		return rc.ppt, rc.pptFirst, rc.pptLast
	}
	return rc.prog, rc.progFirst, rc.progLast
}

// mayProg reports whether rc may have a callee that takes a progressive
// call invocation (in payload passthru mode when ppt): it has one, or did
// not say.
func (rc *remoteCallee) mayProg(ppt bool) bool {
	n, _, _ := rc.can(ppt)
	return n != 0
}

// progAt returns the REGISTER time by which first (or last) ranks rc for
// a progressive call invocation (in payload passthru mode when ppt): that
// of its first (last) callee that takes one, else, when the node did not
// say, of its first (last).
func (rc *remoteCallee) progAt(first, ppt bool) int64 {
	n, f, l := rc.can(ppt)
	switch {
	case n < 0 && first:
		return rc.first
	case n < 0:
		return rc.last
	case first:
		return f
	}
	return l
}

func (reg *registration) remoteList() []remoteCallee {
	if p := reg.remote.Load(); p != nil {
		return *p
	}
	return nil
}

// meshPick applies reg's invocation policy to the union of local and
// remote callees, leaving out node exclude. It returns the node to send
// the call to, 0 when a local callee is to take it, and ok false when
// there is none.
func (s *Shard) meshPick(reg *registration, rl []remoteCallee, exclude MeshNode) (node MeshNode, ok bool) {
	local := reg.list()
	if s.r.draining.Load() {
		local = noCallees // this node's callees take no new calls (drain.go)
	}
	n := 0
	for _, rc := range rl {
		if rc.node != exclude {
			n++
		}
	}
	if n == 0 {
		return 0, local.len() > 0
	}
	nth := func(k int) MeshNode {
		for _, rc := range rl {
			if rc.node == exclude {
				continue
			}
			if k == 0 {
				return rc.node
			}
			k--
		}
		return 0
	}
	switch reg.invoke {
	case proto.InvokeFirst, proto.InvokeLast:
		first := reg.invoke == proto.InvokeFirst
		var best int64
		if local.len() > 0 {
			best = local.at(0).at
			if !first {
				best = local.at(local.len() - 1).at
			}
		}
		for _, rc := range rl {
			if rc.node == exclude {
				continue
			}
			if node == 0 && local.len() == 0 ||
				first && rc.first < best || !first && rc.last > best {
				node, best = rc.node, rc.first
				if !first {
					best = rc.last
				}
			}
		}
		return node, true
	case proto.InvokeRoundRobin:
		if local.len() > 0 {
			return 0, true
		}
		return nth(int((reg.rr.Add(1) - 1) % uint64(n))), true
	case proto.InvokeRandom:
		if local.len() > 0 {
			return 0, true
		}
		return nth(s.rng.IntN(n)), true
	}
	// single (or a policy this node does not know): local first.
	if local.len() > 0 {
		return 0, true
	}
	return nth(0), true
}

// meshPickProgressive is meshPick for a progressive call invocation (in
// payload passthru mode when ppt: its callee must have announced
// payload_passthru_mode too, MeshReg.ProgPPT): the
// policy picks among the callees that take one, as pickCallee does on one
// node, local first for roundrobin and random; first and last rank a node
// by its first (last) such callee. A node that did not say how many it
// has (MeshReg.Prog) counts as one that may. With none anywhere it is
// meshPick's pick, whose callee refuses the call feature_not_supported.
// Before, the pick knew nothing of the callees' features: a stream sent
// to a node none of whose callees take it failed there
// feature_not_supported while another node's callee could take it (its
// chunks go back to back: the refusal came after the second had gone, too
// late to reroute the call), 3 of 6 streams round robin over two nodes.
func (s *Shard) meshPickProgressive(reg *registration, rl []remoteCallee, ppt bool) (node MeshNode, ok bool) {
	local := reg.list()
	if s.r.draining.Load() {
		local = noCallees // this node's callees take no new calls (drain.go)
	}
	localCan := local.can(ppt)
	n := 0
	for i := range rl {
		if rl[i].mayProg(ppt) {
			n++
		}
	}
	switch {
	case n == 0 && localCan == 0:
		return s.meshPick(reg, rl, 0)
	case n == 0:
		return 0, true
	}
	nth := func(k int) MeshNode {
		for i := range rl {
			if rl[i].mayProg(ppt) {
				if k == 0 {
					return rl[i].node
				}
				k--
			}
		}
		return 0
	}
	switch reg.invoke {
	case proto.InvokeFirst, proto.InvokeLast:
		first := reg.invoke == proto.InvokeFirst
		var best int64
		if localCan > 0 {
			best = local.canFirst(ppt)
			if !first {
				best = local.canLast(ppt)
			}
		}
		for i := range rl {
			rc := &rl[i]
			if !rc.mayProg(ppt) {
				continue
			}
			at := rc.progAt(first, ppt)
			if node == 0 && localCan == 0 || first && at < best || !first && at > best {
				node, best = rc.node, at
			}
		}
		return node, true
	case proto.InvokeRoundRobin:
		if localCan > 0 {
			return 0, true
		}
		return nth(int((reg.rrNeed.Add(1) - 1) % uint64(n))), true // the need's own turns
	case proto.InvokeRandom:
		if localCan > 0 {
			return 0, true
		}
		return nth(s.rng.IntN(n)), true
	}
	return s.meshPick(reg, rl, 0) // single: one callee
}

// meshCall sends a CALL to another node when the registration's policy
// picks a callee there. It reports false when the call stays here.
func (s *Shard) meshCall(ss *Session, m *proto.Message, reg *registration, progress bool) bool {
	rl := reg.remoteList()
	if len(rl) == 0 {
		return false
	}
	var node MeshNode
	var ok bool
	if progress {
		node, ok = s.meshPickProgressive(reg, rl, pptMode(&m.Opt))
	} else {
		node, ok = s.meshPick(reg, rl, 0)
	}
	if !ok || node == 0 {
		return false
	}
	if !s.meshCallRoom(ss) {
		if reg.list().len() > 0 && !s.r.draining.Load() {
			return false // a local callee takes it
		}
		s.r.ms.stats.CallsRefused.Add(1)
		msg := "too many calls in flight to other nodes for this session (limit " + strconv.Itoa(s.r.cfg.MaxMeshCalls) + ")"
		if ss.meshCalls < s.r.cfg.MaxMeshCalls {
			msg = "too many calls in flight to other nodes for this client (a quarter of the mesh's max_invocations, " + strconv.Itoa(s.r.cfg.MaxMeshInvocations) + ")"
		}
		s.rejectCall(ss, m.Request, progress, proto.URIUnavailable, msg)
		return true
	}
	oc := s.newOutCall()
	*oc = outCall{reg: reg, node: node, invID: s.nextInvocationID(), recvProg: m.Opt.Bool(proto.KeyReceiveProgress, false), progInv: progress}
	if reg.match != proto.MatchExact {
		oc.proc = string(m.URI)
	}
	timeout := s.callTimeoutOf(m)
	disclose := m.Opt.Bool(proto.KeyDiscloseMe, false) || ss.grants(ActionDiscloseCaller, m.URI)
	ce := callEnv{callID: oc.invID, shard: s.idx, flags: s.callFlags(oc, disclose), timeout: uint64(timeout / time.Millisecond), reg: reg, proc: m.URI}
	c := s.carry(m, false)
	w := appendCall(s.mbuf[:0], &ce, ss, c, nil)
	s.mbuf = keepBuf(w)
	if err := s.r.mesh.Send(node, w); err != nil {
		s.putOutCall(oc)
		s.r.ms.stats.SendFailed.Add(1)
		// rejectCall, not replyError: if this was the first chunk of a
		// progressive call, the caller's further chunks must be dropped as
		// belonging to an ended call, not taken for new calls.
		s.rejectCall(ss, m.Request, progress, meshSendFailure(err), meshUnreachable+err.Error())
		return true
	}
	if rerouteable(reg) {
		oc.rr = s.newReroute(ss, reg, m, c, false, disclose, node, 0)
	}
	if timeout > 0 {
		oc.due = deadlineAfter(s.r.now(), timeout)
		s.addTimer(timer{due: oc.due, kind: tmCall, sess: ss, id: m.Request})
	}
	if ss.calls == nil {
		ss.calls = map[uint64]*outCall{}
	}
	ss.calls[m.Request] = oc
	ss.meshCallAdded()
	s.traffic.callsInFlight++ // counters.go
	s.r.callAdded(ss)
	if s.mcalls == nil {
		s.mcalls = map[uint64]mcall{}
	}
	s.mcalls[oc.invID] = mcall{ss: ss, req: m.Request}
	return true
}

// callFlags returns the call-envelope flags of oc.
func (s *Shard) callFlags(oc *outCall, disclose bool) uint64 {
	flags := uint64(ccRoleReroute | ccFeatureReroute)
	if disclose {
		flags |= ccDisclose
	}
	if oc.recvProg {
		flags |= ccRecvProg
	}
	if oc.progInv {
		flags |= ccProgress
	}
	return flags
}

// rerouteMesh sends the call req of ss, which a callee answered
// wamp.error.unavailable, to node, with the callees of node it was
// already offered to excluded (reroute.go). It reports whether it was
// sent.
func (s *Shard) rerouteMesh(ss *Session, req uint64, oc *outCall, node MeshNode) bool {
	rr := oc.rr
	var ex [maxCallTries]uint64
	exclude := ex[:0]
	for _, t := range rr.tried {
		if t.node == node && t.id != 0 {
			exclude = append(exclude, t.id)
		}
	}
	inv := s.nextInvocationID()
	ce := callEnv{callID: inv, shard: s.idx, flags: s.callFlags(oc, rr.disclose), reg: oc.reg, proc: []byte(rr.proc)}
	if oc.due != 0 {
		ce.timeout = s.timeLeft(oc.due, s.r.now())
	}
	w := appendCall(s.mbuf[:0], &ce, ss, &rr.c, exclude)
	s.mbuf = keepBuf(w)
	if s.r.mesh.Send(node, w) != nil {
		s.r.ms.stats.SendFailed.Add(1)
		return false
	}
	if oc.callee != nil { // from a callee of this node
		oc.callee = nil
		ss.meshCallAdded()
	} else {
		s.dropMcall(oc.invID)
	}
	oc.node, oc.invID, oc.bounces = node, inv, 0
	if s.mcalls == nil {
		s.mcalls = map[uint64]mcall{}
	}
	s.mcalls[inv] = mcall{ss: ss, req: req}
	return true
}

// meshContinue sends a further chunk of a progressive call invocation to
// the node holding the call.
func (s *Shard) meshContinue(ss *Session, oc *outCall, m *proto.Message, progress bool) {
	oc.chunked = true
	s.dropReroute(oc)
	env := appendChunk(s.mbuf[:0], oc.invID, progress, s.carry(m, false))
	s.mbuf = keepBuf(env)
	if err := s.r.mesh.Send(oc.node, env); err != nil {
		s.r.ms.stats.SendFailed.Add(1)
		ss.endCall(m.Request, oc)
		s.replyError(ss, proto.CodeCall, m.Request, meshSendFailure(err), meshUnreachable+err.Error())
		s.meshStop(oc, proto.CancelKillNoWait, proto.URICanceled)
	}
}

// meshStop tells the callee's node that the caller no longer waits. An
// interrupt the mesh refuses (its outbound queue full past the reserve)
// is sent again later (keepStop): the callee's node, which applies no
// timeout of its own to calls from other nodes, held the invocation (one
// of its max_invocations, and its callee working on it) until the callee
// answered or this node left, for ever for a callee that does not answer.
func (s *Shard) meshStop(oc *outCall, mode proto.CancelMode, reason string) {
	s.dropMcall(oc.invID)
	s.ended[s.endedNext%maxEnded] = endedMark{node: oc.node, callID: oc.invID, reason: reason}
	s.endedNext++
	ls := lostStop{node: oc.node, callID: oc.invID, mode: mode, reason: reason}
	if !s.meshSendInterrupt(oc, mode, reason) {
		s.keepStop(ls)
		return
	}
	if reason != proto.URITimeout && (oc.due == 0 || oc.killDue) {
		s.echoStop(ls)
	}
}

// Interrupts of calls without a timeout, sent again. The callee's node
// ends a call from another node 1 s past its caller's timeout
// (meshInvExpired); one without a timeout (nor rpc.call_timeout on the
// caller's node) it held, its callee working on it, until the callee
// answered, for ever for one waiting for its INTERRUPT, when the
// interrupt of its cancel or of its caller's leave was lost on its way
// (a link cut and restored within the peer timeout: NATS is at most
// once; a kill-mode cancel's was sent again 10 s later, killnowait). Such
// an interrupt is sent once more, past the peer timeout and a second
// (echoAfter): the link is back by then, or its node taken for dead and
// the invocation dropped there. A node that no longer holds the
// invocation ignores it (25 bytes). At most maxLostStops a shard wait.

// meshEchoAfter is echoAfter for a Mesh that does not say its peer
// timeout (MeshPeerWindow): edgewamp's default, 2 s, and a second.
const meshEchoAfter = 3 * time.Second

// lateStop is an interrupt to send again at due (Router.now).
type lateStop struct {
	lostStop
	due int64
}

// echoStop keeps ls to send again past the peer timeout (retryStops).
func (s *Shard) echoStop(ls lostStop) {
	if len(s.lateStops) >= maxLostStops {
		s.r.ms.stats.EchoesDropped.Add(1)
		s.r.logStopDropped(ls, false)
		return
	}
	s.lateStops = append(s.lateStops, lateStop{lostStop: ls, due: s.r.now() + int64(s.r.ms.echoAfter)})
	if !s.stopsArmed {
		s.stopsArmed = true
		s.addTimer(timer{due: s.r.now() + int64(stopRetryEvery), kind: tmStops})
	}
}

// sendLateStops sends the interrupts of lateStops that are due; one the
// mesh refuses joins lostStops.
func (s *Shard) sendLateStops() {
	now, n := s.r.now(), 0
	for _, ls := range s.lateStops {
		if ls.due > now {
			s.lateStops[n] = ls
			n++
			continue
		}
		env := appendInterrupt(s.mbuf[:0], ls.callID, ls.mode, ls.reason)
		s.mbuf = keepBuf(env)
		if s.r.meshSendEnd(ls.node, env) == nil {
			continue
		}
		if len(s.lostStops) >= maxLostStops {
			s.r.ms.stats.StopsDropped.Add(1)
			s.r.logStopDropped(ls.lostStop, true)
			continue
		}
		s.lostStops = append(s.lostStops, ls.lostStop)
	}
	clear(s.lateStops[n:])
	s.lateStops = s.lateStops[:n]
	if n == 0 && cap(s.lateStops) > 64 {
		s.lateStops = nil
	}
}

// lostStop is an interrupt the mesh refused (Shard.lostStops).
type lostStop struct {
	node   MeshNode
	callID uint64
	mode   proto.CancelMode
	reason string // an error URI (a constant)
}

// maxLostStops bounds a shard's lostStops (40 bytes each): past it, a
// refused interrupt is forgotten, as all were before (the callee's node
// then holds the invocation until its callee answers or this node
// leaves); and its lateStops (48 bytes each): past it, an interrupt is
// sent once only. Each such drop is counted (MeshStats.StopsDropped,
// EchoesDropped) and logged (logStopDropped). A variable for tests.
var maxLostStops = 4096

// logStopDropped logs an interrupt dropped for maxLostStops, at most
// once per 10 s router-wide: refused is whether the mesh refused it (a
// lostStop), else only its repeat was not kept (a lateStop). Before,
// both went unsaid and uncounted.
func (r *Router) logStopDropped(ls lostStop, refused bool) {
	now := r.now()
	last := r.ms.stopsLogged.Load()
	if last != 0 && now-last < int64(10*time.Second) || !r.ms.stopsLogged.CompareAndSwap(last, now) {
		return
	}
	if refused {
		r.log.Warn("mesh: an interrupt to another node's callee that the mesh refused (its outbound queue full) was not kept to send again, as many being kept on its loop already: the callee's node holds the invocation until its callee answers, or its caller's timeout and a second pass; logged at most once per 10 s, counted in edgewamp_mesh_messages_dropped_total{reason=\"interrupt_full\"}",
			"kept", maxLostStops, "call_ended", ls.reason)
		return
	}
	r.log.Warn("mesh: the interrupt of a call without a timeout to another node's callee was sent but not kept to send once more past the peer timeout, as many being kept on its loop already: if a link cut lost it, the callee's node holds the invocation until its callee answers; logged at most once per 10 s, counted in edgewamp_mesh_messages_dropped_total{reason=\"interrupt_repeat_full\"}",
		"kept", maxLostStops, "call_ended", ls.reason)
}

// stopRetryEvery is how often a shard sends the interrupts the mesh
// refused again.
const stopRetryEvery = 250 * time.Millisecond

// keepStop keeps ls to send again (retryStops).
func (s *Shard) keepStop(ls lostStop) {
	if len(s.lostStops) >= maxLostStops {
		s.r.ms.stats.StopsDropped.Add(1)
		s.r.logStopDropped(ls, true)
		return
	}
	if !s.stopsArmed {
		// One timer a shard (stopsArmed), also when a node's leave
		// emptied lostStops while it was pending: armed again then, each
		// went on re-arming itself, one more walk of them all every
		// stopRetryEvery for each such leave.
		s.stopsArmed = true
		s.addTimer(timer{due: s.r.now() + int64(stopRetryEvery), kind: tmStops})
	}
	s.lostStops = append(s.lostStops, ls)
}

// retryStops sends the interrupts the mesh refused again, in order for
// each node: once a node refuses one, its later ones wait for the next
// turn with it, and the other nodes' are still sent. Before, the turn
// stopped at the first refusal, so one node whose queue stayed full (a
// slow link, its heartbeats keeping it alive) held back every other
// node's interrupts, their callees holding the invocations meanwhile.
func (s *Shard) retryStops() {
	s.stopsArmed = false
	if len(s.lateStops) > 0 {
		s.sendLateStops()
	}
	var refused []MeshNode // the nodes that refused one this turn (few)
	n := 0
	for _, ls := range s.lostStops {
		if !slices.Contains(refused, ls.node) {
			env := appendInterrupt(s.mbuf[:0], ls.callID, ls.mode, ls.reason)
			s.mbuf = keepBuf(env)
			if s.r.meshSendEnd(ls.node, env) == nil {
				continue
			}
			refused = append(refused, ls.node)
		}
		s.lostStops[n] = ls
		n++
	}
	clear(s.lostStops[n:])
	s.lostStops = s.lostStops[:n]
	if n > 0 || len(s.lateStops) > 0 {
		s.stopsArmed = true
		s.addTimer(timer{due: s.r.now() + int64(stopRetryEvery), kind: tmStops})
	}
	if n == 0 && cap(s.lostStops) > 64 {
		s.lostStops = nil
	}
}

// forgetStops drops the interrupts kept for node, which left the mesh
// (it dropped what its callees had of this node's callers).
func (s *Shard) forgetStops(node MeshNode) {
	s.lostStops = slices.DeleteFunc(s.lostStops, func(ls lostStop) bool { return ls.node == node })
	s.lateStops = slices.DeleteFunc(s.lateStops, func(ls lateStop) bool { return ls.node == node })
}

// meshSendInterrupt sends the callee's node an interrupt of oc, and
// reports whether the mesh queued it.
func (s *Shard) meshSendInterrupt(oc *outCall, mode proto.CancelMode, reason string) bool {
	env := appendInterrupt(s.mbuf[:0], oc.invID, mode, reason)
	s.mbuf = keepBuf(env)
	if s.r.meshSendEnd(oc.node, env) != nil {
		s.r.ms.stats.SendFailed.Add(1)
		return false
	}
	return true
}

// meshCancel handles CANCEL of a call held by another node. The callee's
// node applies the mode (a callee that does not support canceling gets
// skip semantics there, and the caller its ERROR from there).
func (s *Shard) meshCancel(ss *Session, req uint64, oc *outCall, mode proto.CancelMode) {
	if mode == proto.CancelKill {
		if oc.canceling {
			return
		}
		if s.meshSendInterrupt(oc, proto.CancelKill, proto.URICanceled) {
			oc.canceling = true
			s.boundKillWait(ss, req, oc)
			return
		}
		// The mesh refused the INTERRUPT (its outbound queue full): the
		// callee's node cannot be asked for the callee's answer, so the
		// call ends now, as in killnowait. Before, it was marked canceling
		// with nothing sent, and the caller waited for an answer that
		// came only if the callee gave one of its own accord (a second
		// CANCEL in kill mode did nothing).
		mode = proto.CancelKillNoWait
	}
	ss.endCall(req, oc)
	s.replyError(ss, proto.CodeCall, req, proto.URICanceled, "the call was canceled")
	s.meshStop(oc, mode, proto.URICanceled)
}

// meshResult delivers a result, progressive result or error from node
// t.b for the call t.a.
func (s *Shard) meshResult(t *task) {
	mc, ok := s.mcalls[t.a]
	if !ok {
		// The call ended meanwhile. A progressive result says its callee
		// streams on: the interrupt this node sent at the end may have
		// been lost (a link cut and restored within the peer timeout),
		// and the callee's node then held the invocation and its callee
		// streamed across the link into this node, which dropped each
		// result, for ever for an endless stream. It is told again
		// (killnowait, as for a caller gone): a node that no longer
		// holds the invocation ignores it.
		if t.flags&tfProgress != 0 && s.strayDue(MeshNode(t.b), t.a) {
			env := appendInterrupt(s.mbuf[:0], t.a, proto.CancelKillNoWait, s.endReason(MeshNode(t.b), t.a))
			s.mbuf = keepBuf(env)
			if s.r.meshSendEnd(MeshNode(t.b), env) != nil {
				s.r.ms.stats.SendFailed.Add(1)
				s.strayRefused(MeshNode(t.b), t.a)
			}
		}
		return
	}
	oc := mc.ss.calls[mc.req]
	if oc == nil || oc.invID != t.a || oc.node != MeshNode(t.b) {
		return
	}
	if t.flags&tfBacklogged != 0 {
		// As callerBacklogged on one node: a callee still streaming
		// progressive results is told. An interrupt the mesh refuses is
		// kept and sent again (keepStop), as meshStop's are: sent once
		// and forgotten, the callee's node held the invocation (one of
		// its max_invocations) and the callee streamed on into a node
		// that dropped every result, until it ended on its own. A callee
		// that answered for good has ended the invocation on its node:
		// nothing to tell it.
		if t.flags&tfProgress != 0 && !s.meshSendInterrupt(oc, proto.CancelKillNoWait, proto.URIUnavailable) {
			s.keepStop(lostStop{node: oc.node, callID: oc.invID, mode: proto.CancelKillNoWait, reason: proto.URIUnavailable})
		}
		t.flags &^= tfProgress // the error ends the call
	}
	rt := task{kind: tResult, s: mc.ss, a: mc.req, b: t.a, flags: t.flags &^ tfBacklogged, c: t.c}
	s.deliverResult(&rt)
}

// endedMark is a call to another node that meshStop ended, and why (an
// error URI, a constant): Shard.ended.
type endedMark struct {
	node   MeshNode
	callID uint64
	reason string
}

// maxEnded is how many of the calls meshStop ended a shard remembers
// (32 bytes each), for the reason of a stray result's interrupt.
const maxEnded = 64

// endReason is the reason a stray result's interrupt gives for callID of
// node: the one its call ended with here, if among the last maxEnded
// meshStop ended (its own interrupt, lost on its way, said it), else
// wamp.error.canceled. Before, it was canceled for every call, also one
// that had timed out. Off the call path (results of calls already ended).
func (s *Shard) endReason(node MeshNode, callID uint64) string {
	for i := range s.ended {
		if m := &s.ended[i]; m.callID == callID && m.node == node && m.reason != "" {
			return m.reason
		}
	}
	return proto.URICanceled
}

// strayMark is a call whose stray progressive result was answered by an
// interrupt (Shard.strays).
type strayMark struct {
	node   MeshNode
	callID uint64
	at     int64 // Router.now
}

// maxStrays is how many calls a shard remembers as interrupted for their
// stray results (Shard.strays).
const maxStrays = 8

// strayDue reports whether a stray progressive result of callID from node
// is to be answered by an interrupt: once per stopRetryEvery for a call
// among the last maxStrays so answered. Each result was: one 25-byte
// interrupt back across the link for every result in flight (12 bytes
// at least), twice the bytes that came, on an edge's uplink, for as long
// as they came. An interrupt lost is sent again at the first result past
// stopRetryEvery. Off the call path (results of calls already ended).
func (s *Shard) strayDue(node MeshNode, callID uint64) bool {
	now := s.r.now()
	for i := range s.strays {
		m := &s.strays[i]
		if m.callID == callID && m.node == node {
			if now-m.at < int64(stopRetryEvery) {
				return false
			}
			m.at = now
			return true
		}
	}
	s.strays[int(s.strayNext)%maxStrays] = strayMark{node: node, callID: callID, at: now}
	s.strayNext++
	return true
}

// strayRefused forgets the mark strayDue just set for callID from node,
// whose interrupt the mesh refused (its outbound queue full), so that the
// call's next stray result is answered again. Before, the refused
// interrupt counted as sent: a callee that streamed a burst and then
// waited for its INTERRUPT was held on its node until its caller's
// timeout and a second, for ever without one.
func (s *Shard) strayRefused(node MeshNode, callID uint64) {
	for i := range s.strays {
		if m := &s.strays[i]; m.callID == callID && m.node == node {
			*m = strayMark{}
			return
		}
	}
}

// meshBounced sends on a call that node t.b sent back undelivered, to
// another node with a callee, or fails it.
func (s *Shard) meshBounced(t *task) {
	mc, ok := s.mcalls[t.a]
	if !ok {
		return
	}
	ss := mc.ss
	oc := ss.calls[mc.req]
	if oc == nil || oc.invID != t.a || oc.node != MeshNode(t.b) {
		return
	}
	if oc.canceling {
		// CANCEL in kill mode reached this shard first: its INTERRUPT went
		// to the node that sent the call back, and no callee had it. Sent
		// on, the call would reach a callee no INTERRUPT ever reaches, the
		// caller waiting on it; it ends here, as the caller asked.
		ss.endCall(mc.req, oc)
		s.replyError(ss, proto.CodeCall, mc.req, proto.URICanceled, "the call was canceled")
		return
	}
	if t.flags&tfBacklogged != 0 {
		// Refused for this shard's full backlog of calls (MeshDeliver):
		// its envelope was dropped, and the shard is too busy to send
		// it on; the caller is told, as for a result refused so.
		ss.endCall(mc.req, oc)
		s.replyError(ss, proto.CodeCall, mc.req, proto.URIUnavailable, msgCallerBacklog)
		return
	}
	if oc.rr != nil {
		// A call that may be rerouted: the node had no callee for it,
		// which counts as one of its callees gone (reroute.go; its entry
		// in rr.tried stays). The call goes on to an untried callee, here
		// or on another node, rather than to any node but this one: that
		// could be a node whose callees already answered unavailable.
		// What the node said of its next callee (if it did) no longer
		// holds: that one is gone.
		oc.rr.forgetNext(oc.node)
		oc.rr.unserved = true
		if s.rerouteCall(ss, mc.req, oc) {
			s.r.ms.stats.Bounced.Add(1)
			s.stats.CallsRerouted.Add(1)
			return
		}
		s.stats.CallsRerouteExhausted.Add(1)
		ss.endCall(mc.req, oc)
		s.replyError(ss, proto.CodeCall, mc.req, proto.URINoAvailableCallee, "no callee could take the call (the callee left before the call reached it)")
		return
	}
	var node MeshNode
	ok = false
	if !oc.chunked && !oc.progInv && oc.bounces < maxBounces {
		oc.reg = currentReg(ss.realm, oc.reg)
		node, ok = s.meshPick(oc.reg, oc.reg.remoteList(), oc.node)
	}
	if ok && node == 0 && s.bouncedHere(ss, mc.req, oc, t.c.buf) {
		return
	}
	if ok && node != 0 {
		env := t.c.buf
		env[0] = envCall
		if oc.due != 0 {
			// The time left, as a rerouted call carries (rerouteMesh):
			// the callee (forward_timeout) is told how long this node
			// still waits. Before, the envelope went on with the timeout
			// it was first sent with, so a callee reached 4 s into a 10 s
			// timeout was told 10 s and interrupted at 6.
			if w, err := withCallTimeout(s.mbuf[:0], env, s.timeLeft(oc.due, s.r.now())); err == nil {
				env = w
				s.mbuf = keepBuf(w)
			}
		}
		if s.r.mesh.Send(node, env) == nil {
			s.r.ms.stats.Bounced.Add(1)
			oc.node = node
			oc.bounces++
			return
		}
		s.r.ms.stats.SendFailed.Add(1)
	}
	ss.endCall(mc.req, oc)
	s.replyError(ss, proto.CodeCall, mc.req, proto.URINoAvailableCallee, "no callee could take the call (the callee left before the call reached it)")
}

// bouncedHere hands the call req of ss, which another node sent back
// undelivered (env, its envelope), to the callee of this node the
// registration's policy picks: one that registered since the call went
// (a callee that moved from that node to this one). It reports false
// when none can take it. Before, such a call (one whose registration had
// a single callee when it was made, so not kept for rerouting) was sent
// to another node only, and ended no_available_callee though this node's
// callee held the procedure
// (TestMeshBouncedCallTakenByCallersNodeCallee). A bounce only: it
// allocates the call's own copy.
func (s *Shard) bouncedHere(ss *Session, req uint64, oc *outCall, env []byte) bool {
	var mc meshCall
	if decodeCall(env, &mc) != nil {
		return false
	}
	ppt := mc.c.pptMode()
	ce, ok := s.pickCallee(oc.reg, needOf(false, ppt))
	if !ok || ppt && ce.s.feat&fCalleePPT == 0 {
		return false
	}
	c := new(carry)
	c.ownFrom(mc.c)
	if oc.reg.match != proto.MatchExact {
		c.uri = string(mc.proc)
	}
	if cs := ce.s; cs.shard != s && !cs.shard.callRoom(int64(len(c.buf)+len(c.uri))+callOverhead) {
		s.stats.CallsBacklog.Add(1)
		return false
	}
	s.invokeLocal(ss, req, oc, ce, c, mc.flags&ccDisclose != 0)
	return true
}

// meshNodeDown fails the calls this shard sent to node and drops the
// invocations node's callers made here.
func (s *Shard) meshNodeDown(node MeshNode) {
	if len(s.lostStops) > 0 || len(s.lateStops) > 0 {
		s.forgetStops(node)
	}
	for id, mc := range s.mcalls {
		oc := mc.ss.calls[mc.req]
		if oc == nil || oc.invID != id {
			s.dropMcall(id)
			continue
		}
		if oc.node != node {
			continue
		}
		mc.ss.endCall(mc.req, oc)
		s.replyError(mc.ss, proto.CodeCall, mc.req, proto.URICanceled, "the callee's router node left the mesh while the call was in progress")
	}
	timed := 0
	for k, mi := range s.minvs {
		if k.node != node {
			continue
		}
		s.dropMinv(k)
		s.r.ms.done(k, true)
		cs := mi.ss
		ic := cs.invs[mi.inv]
		if ic == nil {
			continue
		}
		if ic.timed {
			ic.timed = false
			timed++
		}
		again := ic.interrupted
		cs.dropInv(mi.inv)
		if cs.state == stEstablished && cs.feat&fCalleeCancel != 0 && !again {
			s.sendInterrupt(cs, mi.inv, proto.CancelKillNoWait, proto.URICanceled)
		}
	}
	// Their timers (tmMeshInv) are dead: not counted, they stayed in the
	// heap until due, each holding its callee's session, also once the
	// callee left.
	s.sweepEnded(timed)
}

func (s *Shard) sendInterrupt(cs *Session, inv uint64, mode proto.CancelMode, reason string) {
	out := &s.out
	out.Reset()
	out.Type = proto.CodeInterrupt
	out.Request = inv
	out.Opt.SetString(proto.KeyMode, mode.String())
	if reason != "" {
		out.Opt.SetString(proto.KeyReason, reason)
	}
	s.sendMsg(cs, out, ClassControl)
}

// ---------------------------------------------------------------- callee side

// meshOriginSize is what a call from another node's meshOrigin holds
// (its struct).
const meshOriginSize = 96

// meshCallCost is what a call from another node, of envelope env, holds
// while it waits for its callee's shard: the envelope, its carry and task
// (callOverhead) and the caller's origin. It counted the envelope and
// 256: a call of a 42-byte envelope held 601 bytes (its entry among the
// calls in flight included) and counted 297, so the 32 MiB bound let a
// stalled loop hold ~65 MiB of small calls
// (TestMeshCallBacklogCountsWhatCallsHold).
func meshCallCost(env []byte) int64 {
	return int64(len(env)) + callOverhead + meshOriginSize
}

// meshInvoke takes a call envelope from node from: it picks a local callee
// by the registration's policy and hands the invocation to its shard, or
// bounces the call when there is none. Any goroutine.
func (r *Router) meshInvoke(from MeshNode, env []byte) {
	if t, ok := r.meshInvokeTask(from, env, nil, false); ok {
		t.s.shard.post(t)
	}
}

// meshInvokeTask is meshInvoke's pick: the invocation task for the callee
// it picked, and ok false when there was none (the call was bounced or
// refused then). With only set (a shard, which calls it), the callee is
// one of only's, and the task is to be run there at once: it is not
// counted in the shard's backlog of calls. held is set for a call picked
// for again (meshDeliver), whose entry in meshState.live it keeps: with
// any interrupt remembered there.
func (r *Router) meshInvokeTask(from MeshNode, env []byte, only *Shard, held bool) (task, bool) {
	var mc meshCall
	if err := decodeCall(env, &mc); err != nil { // not for held: it decoded before
		r.ms.stats.BadEnvelopes.Add(1)
		return task{}, false
	}
	// A copy of a call in flight here is dropped before anything else:
	// bounced, it would have the caller's node send the call on to
	// another node; refused, end it at its caller; delivered, run twice.
	key := minvKey{from, mc.callID}
	if !held && !r.ms.take(key) {
		r.ms.stats.BadEnvelopes.Add(1)
		return task{}, false
	}
	rm := (*r.realms.Load())[string(mc.realm)]
	if rm == nil || r.draining.Load() {
		// Draining: this node's callees take no new calls; the caller's
		// node sends it to another (drain.go).
		r.ms.done(key, false)
		r.meshBounce(from, env)
		return task{}, false
	}
	rm.mu.RLock()
	reg, _ := rm.regs.getBytes(mc.match, mc.regURI)
	rm.mu.RUnlock()
	if reg == nil {
		r.ms.done(key, false)
		r.meshBounce(from, env)
		return task{}, false
	}
	// A call in payload passthru mode, or with progressive invocations,
	// goes to a callee that can take it when this node has one (a
	// rerouted call skips the others, as on one node: rerouteCall); with
	// none, the policy's pick answers feature_not_supported.
	ce, ok := pickLocalExcept(reg, mc.exclude, needOf(mc.flags&ccProgress != 0, mc.c.pptMode()), only)
	if !ok {
		r.ms.done(key, false)
		r.meshBounce(from, env)
		return task{}, false
	}
	if r.ms.invs.Add(1) > int64(r.cfg.MaxMeshInvocations) {
		r.ms.done(key, true)
		r.ms.stats.Refused.Add(1)
		r.meshReplyError(from, mc.shard, mc.callID, proto.URIUnavailable, "too many calls from other nodes in flight on the callee's node")
		return task{}, false
	}
	cs := ce.s
	// The call waits for the callee's shard holding its envelope, its
	// carry and its caller's origin (meshCallCost): it counts in that
	// shard's backlog of calls, as calls from this node's other shards do
	// (maxCallBacklog).
	if only == nil {
		cost := meshCallCost(env)
		if !cs.shard.callRoom(cost) {
			r.ms.done(key, true)
			cs.shard.stats.CallsBacklog.Add(1)
			r.meshReplyError(from, mc.shard, mc.callID, proto.URIUnavailable, msgCalleeBacklog)
			return task{}, false
		}
		mc.c.queued = cost
		cs.shard.callBacklog.Add(cost)
	}
	// a: how long the caller's node waits for the call (ms, 0 for ever),
	// for the invocation's bound here (meshInvExpired).
	t := task{kind: tInvoke, s: cs, reg: reg, c: mc.c, a: mc.timeout}
	if mc.flags&ccRecvProg != 0 {
		t.flags |= tfRecvProg
	}
	if mc.flags&ccProgress != 0 {
		t.flags |= tfProgress
	}
	if mc.flags&ccRoleReroute != 0 {
		t.flags |= tfRoleReroute
	}
	if mc.flags&ccFeatureReroute != 0 {
		t.flags |= tfFeatureReroute
	}
	caller := remotePublisher{id: mc.callerID}
	if mc.flags&ccDisclose != 0 || ce.discloseCaller {
		t.flags |= tfDisclose
		// Only a disclosed caller's identity is read (sendInvocation).
		caller.authID, caller.authRole = string(mc.authID), string(mc.authRole)
	}
	if ce.forwardTimeout && cs.feat&fCalleeTimeout != 0 {
		t.timeout = mc.timeout
	}
	mc.c.mo = &meshOrigin{node: from, callID: mc.callID, shard: int32(mc.shard), caller: caller, env: env}
	if len(mc.exclude) > 0 {
		ex := mc.exclude // its own allocation, only for a rerouted call
		mc.c.mo.exclude = &ex
	}
	if reg.match != proto.MatchExact {
		mc.c.uri = string(mc.proc)
	}
	// Its further chunks and interrupts go to this shard only
	// (MeshDeliver): one more stripe lock a call from another node.
	r.ms.place(key, cs.shard.idx)
	return t, true
}

// pickLocal applies reg's policy to its local callees only. Any goroutine.
func pickLocal(reg *registration) (callee, bool) {
	l := reg.list()
	switch n := l.len(); {
	case n == 0:
		return callee{}, false
	case n == 1:
		return l.at(0), true
	default:
		return l.at(policyIndex(reg, n)), true
	}
}

// policyIndex applies reg's invocation policy to n > 0 candidates in
// registration order (first and single: the first). Any goroutine.
func policyIndex(reg *registration, n int) int {
	switch reg.invoke {
	case proto.InvokeLast:
		return n - 1
	case proto.InvokeRoundRobin:
		return int((reg.rr.Add(1) - 1) % uint64(n))
	case proto.InvokeRandom:
		return randN(n)
	}
	return 0
}

// pickLocalExcept is pickLocal for a rerouted call: reg's local callees
// but those in exclude (session ids, at most maxCallTries-1) take the
// place of all of them; and, with need, those that meet it when there are
// any (a call in payload passthru mode, or with progressive invocations,
// goes to a callee that announced the feature). With only set, the
// callees of other shards are left out too. Any goroutine.
//
// The callees that meet need are found from the list's counts, by chunk
// (needList, as pickCallee and pickUntried do), and the policy steps over
// the excluded ones only: O(len(exclude) · (chunks + calleesPerChunk)) at
// most, where it walked the whole list twice (a count, then the k-th), on
// every such CALL from another node. Roundrobin takes the next callee
// left from the rotation's position, as pickUntried does.
func pickLocalExcept(reg *registration, exclude []uint64, need calleeNeed, only *Shard) (callee, bool) {
	if len(exclude) == 0 && need == 0 && only == nil {
		return pickLocal(reg)
	}
	l := reg.list()
	if only != nil {
		// A progressive call invocation picked for again on its shard
		// (meshDeliver: its callee unregistered), once a call at most:
		// the list keeps no count by shard, so this walks it.
		return pickOnShard(reg, l, exclude, need, only)
	}
	if need != 0 {
		if c, ok := pickLeft(reg, needListOf(l, need), exclude, &reg.rrNeed); ok {
			return c, true
		}
	}
	return pickLeft(reg, needListOf(l, 0), exclude, &reg.rr)
}

// pickLeft applies reg's policy to the callees of cl that are not in
// exclude: first and last scan from their end, roundrobin from the
// rotation's position rr (reg.rrNeed among the callees that meet a need,
// so that calls of one kind do not take the other's turns; reg.rr else),
// each within len(exclude)+1 callees; random draws
// until it finds one (twice on average at worst) while cl has more than
// twice as many callees as exclude, else counts them.
func pickLeft(reg *registration, cl needList, exclude []uint64, rr *atomic.Uint64) (callee, bool) {
	n := cl.n
	if n == 0 {
		return callee{}, false
	}
	left := func(c callee) bool { return !slices.Contains(exclude, c.s.id) }
	switch reg.invoke {
	case proto.InvokeRandom:
		if n > 2*len(exclude) {
			for {
				if c := cl.at(randN(n)); left(c) {
					return c, true
				}
			}
		}
		m := 0
		for i := range n {
			if left(cl.at(i)) {
				m++
			}
		}
		if m == 0 {
			return callee{}, false
		}
		k := randN(m)
		for i := range n {
			if c := cl.at(i); left(c) {
				if k == 0 {
					return c, true
				}
				k--
			}
		}
		return callee{}, false
	case proto.InvokeRoundRobin:
		pos := int((rr.Add(1) - 1) % uint64(n))
		for k := range min(n, len(exclude)+1) {
			if c := cl.at((pos + k) % n); left(c) {
				return c, true
			}
		}
		return callee{}, false
	}
	last := reg.invoke == proto.InvokeLast
	for k := range min(n, len(exclude)+1) {
		i := k
		if last {
			i = n - 1 - k
		}
		if c := cl.at(i); left(c) {
			return c, true
		}
	}
	return callee{}, false
}

// pickOnShard is pickLocalExcept for the callees of shard only: a walk.
func pickOnShard(reg *registration, l *calleeList, exclude []uint64, need calleeNeed, only *Shard) (callee, bool) {
	out := func(c callee) bool { return c.s.shard != only || slices.Contains(exclude, c.s.id) }
	pick := func(ok func(callee) bool) (callee, bool) {
		n := 0
		for c := range l.all() {
			if ok(c) {
				n++
			}
		}
		if n == 0 {
			return callee{}, false
		}
		k := policyIndex(reg, n)
		for c := range l.all() {
			if !ok(c) {
				continue
			}
			if k == 0 {
				return c, true
			}
			k--
		}
		return callee{}, false
	}
	if need != 0 {
		if c, ok := pick(func(c callee) bool { return !out(c) && c.meets(need) }); ok {
			return c, true
		}
	}
	return pick(func(c callee) bool { return !out(c) })
}

// randN returns a random int in [0, n). Safe for concurrent use.
func randN(n int) int { return rand.IntN(n) }

// meshBounce sends a call envelope back to its caller's node undelivered.
// When the mesh refuses it (the whole call: its outbound queue full), a
// small error takes its place (meshSendEnd, within the queue's reserve
// for the messages that end a call): unavailable, as from a callee of
// this node gone, with none untried here, which the caller's node
// reroutes as it would the bounce when the call may be rerouted, else
// ends no_available_callee, as a bounce with no other node to go to.
// Before, the refused bounce was only counted, and the caller waited for
// its timeout, for ever without one.
func (r *Router) meshBounce(from MeshNode, env []byte) {
	env[0] = envBounce
	if r.mesh.Send(from, env) == nil {
		return
	}
	r.ms.stats.SendFailed.Add(1)
	callID, shard, ok := peekCall(env)
	if !ok {
		return
	}
	w := appendResult(nil, shard, callID, rsError|rsUnavailable|nextBits(0, false), 0, proto.URIUnavailable, "the callee's node has no callee for the call now and could not send it back", nil)
	if r.meshSendEnd(from, w) != nil {
		r.ms.stats.SendFailed.Add(1)
	}
}

// meshReplyError answers a remote call with an error. Any goroutine.
func (r *Router) meshReplyError(node MeshNode, shard int, callID uint64, uri, msg string) {
	env := appendResult(nil, shard, callID, rsError, 0, uri, msg, nil)
	if r.meshSendEnd(node, env) != nil {
		r.ms.stats.SendFailed.Add(1)
	}
}

// meshDeliverInvocation runs on the callee's shard for an invocation whose
// caller is on another node.
func (s *Shard) meshDeliverInvocation(t *task) { s.meshDeliver(t, false) }

// meshDeliver is meshDeliverInvocation; repicked is set for an invocation
// given another callee of this shard after its first pick unregistered.
func (s *Shard) meshDeliver(t *task, repicked bool) {
	cs, mo := t.s, t.c.mo
	key := minvKey{mo.node, mo.callID} // taken by meshInvoke
	if mode, ok := s.r.ms.interruptOf(key); ok {
		// Its caller's CANCEL, timeout or leave, or its caller's node's
		// departure (nodeGone: no answer then), came before the
		// invocation reached a shard that holds it (its first pick
		// unregistered, and the call was posted to another shard's
		// callee, which had the interrupt already): not delivered. Before,
		// the callee got the INVOCATION and never an INTERRUPT, and the
		// node held the invocation until the callee answered. A caller
		// that waits for the answer (kill) gets canceled, also when this
		// callee would be refused the call, or has left, or unregistered
		// (read after the refusals, the interrupt gave way to them: a
		// canceled caller got the refusal).
		s.r.ms.done(key, true)
		if mode == proto.CancelKill {
			s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, proto.URICanceled, "the call was canceled")
		}
		return
	}
	if cs.state != stEstablished {
		s.r.ms.done(key, true)
		s.r.meshBounce(mo.node, mo.env) // not delivered: another node may take it
		return
	}
	if !cs.calleeOf(t.reg) {
		// The callee unregistered after meshInvoke picked it: no
		// INVOCATION for a registration it no longer holds. The call is
		// picked for again, among the registration's callees now (its
		// list no longer has this one), and bounced when none is left.
		// Not bounced at once: the caller's node would count it as one
		// of this node's callees tried, and with the directory's count
		// already down by this one, give up on the others here. The
		// call keeps its entry in meshState.live, and so an interrupt a
		// shard remembered for it: given back and taken again, the entry
		// lost it, and the new pick's shard delivered the INVOCATION when
		// it ran it before this shard ran its own copy of the interrupt.
		s.r.ms.invs.Add(-1) // counted again by the new pick
		if t.flags&tfProgress == 0 {
			if nt, ok := s.r.meshInvokeTask(mo.node, mo.env, nil, true); ok {
				nt.s.shard.post(nt)
			}
			return
		}
		if repicked {
			// Picked on this shard for a second time, and gone again: as
			// when this shard has no other callee (below), back to its
			// caller's node. Posted to another shard's callee, as a call
			// without chunks is, it came after the chunks this shard
			// holds, which this shard then dropped: the callee got the
			// first chunk and the later ones without those between, and
			// waited for ever when the final one was among them. (Not
			// reached today: the second pick and this delivery are one
			// turn of this shard.)
			s.r.ms.done(key, false)
			s.r.meshBounce(mo.node, mo.env)
			return
		}
		// A progressive call invocation: its further chunks came to this
		// shard (MeshDeliver, meshState.place) and are behind this task.
		// Posted to another shard's callee, the invocation would come
		// after the chunks this shard drops,
		// and the callee got the first chunk and the later ones without
		// those between. It goes to a callee of this shard at once, or
		// back to its caller's node (which sends it on if the caller sent
		// no further chunk yet, else fails it: no callee has them).
		if nt, ok := s.r.meshInvokeTask(mo.node, mo.env, s, true); ok {
			s.meshDeliver(&nt, true)
		}
		return
	}
	if uri, ok := cs.mayInvoke(t.reg, t.c.uri); !ok {
		s.r.ms.done(key, true)
		msg := "the callee of the registration matching " + strconv.Quote(uri) + " is not authorized for it"
		if t.flags&tfRoleReroute == 0 {
			// A caller's node of the previous release: it would take the
			// answer below for the callee's unavailable, and end the call
			// no_available_callee. The call fails, as that release has it.
			s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, proto.URINotAuthorized, msg)
			return
		}
		// Answered as a callee's wamp.error.unavailable, so that the
		// caller's node offers the call to another callee, here, there or
		// on another node, that may take it (as deliverInvocation on one
		// node), and fails it not_authorized when every callee that had
		// it was refused so. Before, the call failed here while another
		// callee could serve it (3 of 6 calls, round robin over two
		// nodes).
		env := appendResult(s.mbuf[:0], int(mo.shard), mo.callID, unavailableFlags(t.reg, mo, cs.id), cs.id, proto.URINotAuthorized, msg, nil)
		s.mbuf = keepBuf(env)
		if s.r.meshSendEnd(mo.node, env) != nil {
			s.r.ms.stats.SendFailed.Add(1)
		}
		return
	}
	if t.flags&tfProgress != 0 && cs.feat&fCalleeProgInv == 0 {
		s.r.ms.done(key, true)
		s.meshFeatureRefused(t, cs, "the callee does not support progressive call invocations")
		return
	}
	if cs.feat&fCalleePPT == 0 && t.c.pptMode() {
		s.r.ms.done(key, true)
		s.meshFeatureRefused(t, cs, msgCalleeNoPPT)
		return
	}
	if cs.overShare(mo.caller.id) {
		// As on one node (deliverInvocation): the remote session is one
		// caller; its node reroutes the call like a callee's
		// wamp.error.unavailable, else its caller gets it.
		s.r.ms.done(key, true)
		s.stats.CallsShare.Add(1)
		env := appendResult(s.mbuf[:0], int(mo.shard), mo.callID, unavailableFlags(t.reg, mo, cs.id), cs.id, proto.URIUnavailable, msgCalleeShare, nil)
		s.mbuf = keepBuf(env)
		if s.r.meshSendEnd(mo.node, env) != nil {
			s.r.ms.stats.SendFailed.Add(1)
		}
		return
	}
	mo.env = nil // delivered from here on: never bounced
	mo.reg = t.reg
	inv := s.nextInvocationID()
	ic := s.newInCall()
	*ic = inCall{remote: mo, recvProg: t.flags&tfRecvProg != 0, disclose: t.flags&tfDisclose != 0}
	cs.addInv(inv, ic)
	if s.minvs == nil {
		s.minvs = map[minvKey]minv{}
	}
	s.minvs[key] = minv{ss: cs, inv: inv}
	if t.a > 0 {
		// The caller's node ends the call at its timeout and sends its
		// interrupt then; one lost on its way (a link cut and restored
		// within the peer timeout: NATS is at most once) left the
		// invocation held here, and the callee working on it, until the
		// callee answered: for ever for one waiting for its INTERRUPT.
		ic.timed = true
		s.addTimer(timer{due: deadlineAfter(s.r.coarseNow(), meshInvBound(t.a)), kind: tmMeshInv, sess: cs, id: inv})
	}
	if err := s.sendInvocation(t, cs, ic, inv, mo.caller.id, mo.caller.authID, mo.caller.authRole); err != nil {
		s.meshEndInvocation(cs, inv, ic)
		s.countRefusedSend(err)
		uri, why := sendFailure(err, "callee")
		switch {
		case err == ErrPeerClosed:
			// As on one node (deliverInvocation): the callee's transport
			// closed before its departure ran, the call never reached it,
			// and goes on as for a callee gone.
			uri, why = proto.URINoAvailableCallee, "the callee left before the call reached it"
		case (uri == proto.URIPayloadSizeExceeded || uri == proto.URIInvalidArgument) && t.flags&tfRoleReroute != 0:
			// Longer than this callee accepts, or with no form in its
			// serializer: another callee may take it (refusalURI on the
			// caller's node, which ends the call with it when none
			// does). A node of a release that reroutes no refusal gets
			// the plain error, as before.
		default:
			s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, uri, why)
			return
		}
		// Before, the caller's node got the plain error (canceled "the
		// callee left", payload_size_exceeded, invalid_argument), and a
		// call another callee of the shared registration could take
		// failed so.
		flags := unavailableFlags(t.reg, mo, cs.id)
		if err != ErrPeerClosed && err != ErrPeerTooBig {
			flags = unconvertibleFlags(t.reg, mo, cs)
		}
		env := appendResult(s.mbuf[:0], int(mo.shard), mo.callID, flags, cs.id, uri, why, nil)
		s.mbuf = keepBuf(env)
		if s.r.meshSendEnd(mo.node, env) != nil {
			s.r.ms.stats.SendFailed.Add(1)
		}
	}
}

// maxSerScan bounds the callees unconvertibleFlags looks at past those
// the call tried.
const maxSerScan = 64

// unconvertibleFlags is unavailableFlags for the call mo of reg whose
// payload callee's serializer cannot carry (no form in it, or too long
// once converted): no callee of this node of that serializer can either
// (reroute.noSer, on the caller's node, which does not know them), so
// this node says it has no callee left for the call when every untried
// one here is of that serializer (of the first maxSerScan looked at past
// those tried; else as unavailableFlags). Before, the caller's node
// offered the call here again for each of them, each converting the
// payload and failing alike (TestMeshUnconvertibleCallNotRetriedPerCallee:
// a NaN from a MsgPack caller to four JSON callees of a first
// registration, rerouted four times a call).
func unconvertibleFlags(reg *registration, mo *meshOrigin, callee *Session) uint64 {
	var exclude []uint64
	if mo.exclude != nil {
		exclude = *mo.exclude
	}
	l := reg.list()
	for i := range l.len() {
		if i >= len(exclude)+maxSerScan {
			return unavailableFlags(reg, mo, callee.id)
		}
		c := l.at(i)
		if c.s.id != callee.id && c.s.ser != callee.ser && !slices.Contains(exclude, c.s.id) {
			return unavailableFlags(reg, mo, callee.id) // one that may take it
		}
	}
	return rsError | rsUnavailable | nextBits(0, false)
}

// meshFeatureRefused answers the call of t, which no callee of this node
// can take (meshInvokeTask's pick prefers one that can), cs the one
// picked: feature_not_supported, as a refusal the caller's node reroutes
// to another node's callee when it says it does (tfFeatureReroute), with
// no untried callee left here (rsNext, none). Before, the caller got
// feature_not_supported whenever the policy's pick of a node fell on one
// without such a callee, although another node's could take the call, as
// a pick on one node never does (pickCallee): every call of a first or
// last registration whose first (last) callee's node had none.
func (s *Shard) meshFeatureRefused(t *task, cs *Session, msg string) {
	mo := t.c.mo
	if t.flags&tfFeatureReroute == 0 {
		s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, proto.URIFeatureNotSupported, msg)
		return
	}
	env := appendResult(s.mbuf[:0], int(mo.shard), mo.callID, rsError|rsUnavailable|nextBits(0, false), cs.id, proto.URIFeatureNotSupported, msg, nil)
	s.mbuf = keepBuf(env)
	if s.r.meshSendEnd(mo.node, env) != nil {
		s.r.ms.stats.SendFailed.Add(1)
	}
}

// meshInvGrace is how long past its caller's timeout a call from another
// node is held here (meshInvExpired): the caller's node's own interrupt,
// sent at the timeout, comes first when it is not lost.
const meshInvGrace = time.Second

// meshInvBound is how long an invocation from another node whose caller's
// node waits ms milliseconds for it is held here at most.
func meshInvBound(ms uint64) time.Duration {
	const most = uint64(1<<62) / uint64(time.Millisecond) // a broken node's value
	return time.Duration(min(ms, most))*time.Millisecond + meshInvGrace
}

// meshInvExpired ends the invocation inv of callee ss, from a caller on
// another node, whose caller's node stopped waiting for it over
// meshInvGrace ago (its timeout): that node's interrupt was lost on its
// way. The callee is interrupted (killnowait) and the caller's node told
// (the call is over there: it drops the error). Before, the invocation
// was held (one of max_invocations, and one of the callee's) until the
// callee answered: for ever for a callee waiting for its INTERRUPT.
func (s *Shard) meshInvExpired(ss *Session, inv uint64) {
	ic := ss.invs[inv] // live() checked it is a remote caller's
	ic.timed = false   // its timer is out of the heap
	s.r.ms.stats.InvocationsExpired.Add(1)
	mo := ic.remote
	s.meshEndInvocation(ss, inv, ic)
	if ss.feat&fCalleeCancel != 0 && !ic.interrupted {
		s.sendInterrupt(ss, inv, proto.CancelKillNoWait, proto.URITimeout)
	}
	s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, proto.URITimeout, "the call timed out")
}

// meshEndInvocation forgets an invocation of a remote caller.
func (s *Shard) meshEndInvocation(cs *Session, inv uint64, ic *inCall) {
	if ic.timed {
		ic.timed = false
		s.callTimersEnded(1) // its timer is dead in the heap (timer.live)
	}
	cs.dropInv(inv)
	key := minvKey{ic.remote.node, ic.remote.callID}
	if _, ok := s.minvs[key]; ok {
		s.dropMinv(key)
		s.r.ms.done(key, true)
	}
}

// meshChunk delivers a further chunk of a progressive call invocation,
// if this shard holds the invocation (chunks go to the shard it was
// posted to: MeshDeliver).
func (s *Shard) meshChunk(t *task) {
	mi, ok := s.minvs[minvKey{MeshNode(t.b), t.a}]
	if !ok {
		return
	}
	cs := mi.ss
	if cs.state != stEstablished || cs.invs[mi.inv] == nil {
		return
	}
	if t.flags&tfError != 0 {
		// The node's backlog of chunks was full (MeshDeliver): the call
		// fails at its caller, and the callee, which has the earlier
		// chunks, is told.
		ic := cs.invs[mi.inv]
		mo := ic.remote
		s.stats.CallsBacklog.Add(1)
		s.meshEndInvocation(cs, mi.inv, ic)
		if cs.feat&fCalleeCancel != 0 && !ic.interrupted {
			s.sendInterrupt(cs, mi.inv, proto.CancelKillNoWait, proto.URIUnavailable)
		}
		s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, proto.URIUnavailable, msgCalleeBacklog)
		return
	}
	if t.c.pptMode() && cs.feat&fCalleePPT == 0 {
		// A later chunk in payload passthru mode for a callee that did
		// not announce it (the first chunk was not in the mode): the call
		// fails as on one node (callContinue).
		ic := cs.invs[mi.inv]
		mo := ic.remote
		s.meshEndInvocation(cs, mi.inv, ic)
		if cs.feat&fCalleeCancel != 0 && !ic.interrupted {
			s.sendInterrupt(cs, mi.inv, proto.CancelKillNoWait, proto.URIFeatureNotSupported)
		}
		s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, proto.URIFeatureNotSupported, msgCalleeNoPPT)
		return
	}
	ic := cs.invs[mi.inv]
	out := &s.out
	out.Reset()
	out.Type = proto.CodeInvocation
	out.Request = mi.inv
	out.ID = ic.remote.reg.id
	// The options of the initiating CALL hold for every chunk, as for a
	// caller on this node (sendInvocation): before, the chunks after the
	// first came with neither the disclosed caller nor receive_progress.
	if ic.disclose {
		out.Opt.SetUint(proto.KeyCaller, ic.remote.caller.id)
		out.Opt.SetString(proto.KeyCallerAuthID, ic.remote.caller.authID)
		out.Opt.SetString(proto.KeyCallerAuthRole, ic.remote.caller.authRole)
	}
	if ic.recvProg && cs.feat&fCalleeProgress != 0 {
		out.Opt.SetBool(proto.KeyReceiveProgress, true)
	}
	if t.flags&tfProgress != 0 {
		out.Opt.SetBool(proto.KeyProgress, true)
	}
	ic.setFrozen(&out.Opt, t.c) // the first chunk's procedure, timeout and ppt_* keys
	t.c.setPayload(out)
	if err := s.sendMsg(cs, out, ClassInvocation); err != nil {
		// As on one node (deliverInvocation): the call fails at its
		// caller, and the callee, which has the earlier chunks, is told.
		mo := ic.remote
		s.meshEndInvocation(cs, mi.inv, ic)
		uri, why := sendFailure(err, "callee")
		if cs.feat&fCalleeCancel != 0 {
			s.sendInterrupt(cs, mi.inv, proto.CancelKillNoWait, uri)
		}
		s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, uri, why)
	}
}

// meshInterrupt applies a remote caller's CANCEL, timeout or leave to an
// invocation this shard holds (interrupts go to the shard it was posted
// to: MeshDeliver).
func (s *Shard) meshInterrupt(t *task) {
	key := minvKey{MeshNode(t.b), t.a}
	mi, ok := s.minvs[key]
	if !ok {
		// Not delivered yet: remembered for the delivery (meshDeliver).
		// When the invocation was posted to another shard meanwhile
		// (picked for again after its callee unregistered), that shard
		// may have delivered it before the interrupt was remembered: the
		// interrupt follows it there (the shard then finds it held, or
		// finds it not delivered, or no longer in flight).
		if sh, placed := s.r.ms.interrupted(key, t.mode); placed && sh != s.idx && sh < len(s.r.shards) {
			s.r.shards[sh].post(*t)
		}
		return
	}
	cs := mi.ss
	ic := cs.invs[mi.inv]
	if ic == nil {
		s.dropMinv(key)
		s.r.ms.done(key, true)
		return
	}
	canInterrupt := cs.state == stEstablished && cs.feat&fCalleeCancel != 0
	again := ic.interrupted // at most one INTERRUPT per invocation
	switch {
	case t.mode == proto.CancelKill && canInterrupt:
		if !again {
			ic.interrupted = true
			s.sendInterrupt(cs, mi.inv, proto.CancelKill, t.c.uri)
		}
		return // the callee answers, and the answer goes back
	case t.mode == proto.CancelKill:
		// No canceling at the callee: skip semantics, the caller gets its
		// ERROR now.
		s.meshEndInvocation(cs, mi.inv, ic)
		s.r.meshReplyError(ic.remote.node, int(ic.remote.shard), ic.remote.callID, proto.URICanceled, "the call was canceled")
	case t.mode == proto.CancelKillNoWait && canInterrupt:
		s.meshEndInvocation(cs, mi.inv, ic)
		if !again {
			s.sendInterrupt(cs, mi.inv, proto.CancelKillNoWait, t.c.uri)
		}
	default:
		s.meshEndInvocation(cs, mi.inv, ic)
	}
}

// meshYield sends a callee's YIELD back to the caller's node.
func (s *Shard) meshYield(ss *Session, ic *inCall, m *proto.Message, progress bool) {
	mo := ic.remote
	var f uint64
	if progress {
		f = rsProgress
	}
	env := appendResult(s.mbuf[:0], int(mo.shard), mo.callID, f, 0, "", "", s.carry(m, false))
	s.mbuf = keepBuf(env)
	if err := s.r.mesh.Send(mo.node, env); err != nil {
		s.r.ms.stats.SendFailed.Add(1)
		s.meshResultLost(mo, err)
		if progress {
			// The call is over at its caller (meshResultLost): as on one
			// node when a progressive result cannot reach its caller
			// (callerBacklogged, deliverResult), the invocation ends here
			// and the callee, still streaming, is interrupted. Before, this
			// node kept it (in max_invocations) and the callee streamed
			// on, each result dropped at the caller's node, until it ended
			// the stream by itself: an endless one, never.
			s.meshEndInvocation(ss, m.Request, ic)
			if ss.feat&fCalleeCancel != 0 && !ic.interrupted {
				s.sendInterrupt(ss, m.Request, proto.CancelKillNoWait, meshSendFailure(err))
			}
			s.putInCall(ic)
			return
		}
	}
	if !progress {
		s.meshEndInvocation(ss, m.Request, ic)
		s.putInCall(ic)
	}
}

// meshInvocationError sends a callee's ERROR back to the caller's node.
func (s *Shard) meshInvocationError(ss *Session, ic *inCall, m *proto.Message) {
	mo := ic.remote
	var f uint64 = rsError
	if string(m.URI) == proto.URIUnavailable {
		f = unavailableFlags(mo.reg, mo, ss.id) // the caller's node may reroute the call
	}
	env := appendResult(s.mbuf[:0], int(mo.shard), mo.callID, f, ss.id, string(m.URI), "", s.carry(m, false))
	s.mbuf = keepBuf(env)
	if err := s.r.mesh.Send(mo.node, env); err != nil {
		s.r.ms.stats.SendFailed.Add(1)
		s.meshResultLost(mo, err)
	}
	s.meshEndInvocation(ss, m.Request, ic)
}

// meshResultLost answers the caller of mo with an error (without payload)
// in place of a callee's YIELD or ERROR the mesh refused (err): too large
// for it (ErrMeshTooLarge: wamp.error.payload_size_exceeded, as for a
// caller on one node), or its outbound queue full (wamp.error.unavailable).
// Before, the answer was dropped and the caller waited for its timeout, for
// ever without one. After a progressive result, the callee's further
// results for the call are dropped on the caller's node, the call being
// over there.
func (s *Shard) meshResultLost(mo *meshOrigin, err error) {
	s.r.meshReplyError(mo.node, int(mo.shard), mo.callID, meshSendFailure(err), "the callee's answer could not be sent to the caller's node: "+err.Error())
}

// meshUnreachable starts the message of the ERROR a caller gets when its
// CALL (or a chunk of it) could not be sent to the callee's node
// (SizeForCallee knows it: with payload_size_exceeded, the call was too
// large for the mesh).
const meshUnreachable = "the callee's node cannot be reached now: "

// meshSendFailure is the error URI for a message of a call the mesh
// refused with err: wamp.error.payload_size_exceeded for one too large
// for it (ErrMeshTooLarge), as for a message too large for a peer on one
// node; wamp.error.unavailable otherwise (its outbound queue full, the
// node gone).
func meshSendFailure(err error) string {
	if errors.Is(err, ErrMeshTooLarge) {
		return proto.URIPayloadSizeExceeded
	}
	return proto.URIUnavailable
}

// unavailableFlags returns the result flags of an answer the caller's
// node may reroute, from callee of reg, for the call mo: rsError and
// rsUnavailable, and for first and last which callee of this node is
// next (the caller's node compares its REGISTER time with other nodes').
func unavailableFlags(reg *registration, mo *meshOrigin, callee uint64) uint64 {
	f := uint64(rsError | rsUnavailable)
	if reg.invoke == proto.InvokeFirst || reg.invoke == proto.InvokeLast {
		var exclude []uint64
		if mo.exclude != nil {
			exclude = *mo.exclude
		}
		f |= nextBits(nextUntried(reg, exclude, callee))
	}
	return f
}

// nextUntried returns the REGISTER time of the callee of reg (first or
// last) that a call goes to next on this node once its callees in
// exclude and answered have had it, the one pickLocalExcept would pick:
// the earliest registered for first, the latest for last; ok is false
// when none is left. The scan ends within len(exclude)+2 callees.
func nextUntried(reg *registration, exclude []uint64, answered uint64) (at int64, ok bool) {
	l := reg.list()
	for i := range l.len() {
		c := l.at(i)
		if reg.invoke == proto.InvokeLast {
			c = l.at(l.len() - 1 - i)
		}
		if c.s.id != answered && !slices.Contains(exclude, c.s.id) {
			return c.at, true
		}
	}
	return 0, false
}

// meshCalleeLeft fails an invocation of a remote caller whose callee left.
func (s *Shard) meshCalleeLeft(ss *Session, inv uint64, ic *inCall) {
	s.meshEndInvocation(ss, inv, ic)
	s.r.meshReplyError(ic.remote.node, int(ic.remote.shard), ic.remote.callID, proto.URICanceled, s.calleeLeftMsg())
}
