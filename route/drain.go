package route

import (
	"context"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// # The drain before a stop
//
// WAMP has no "go away, but finish what you started": a GOODBYE ends a
// session and every call it has in progress. A router that said GOODBYE
// to every session at once on SIGTERM failed every call in flight on it
// within a millisecond: its callers got wamp.close.system_shutdown, the
// callers on other nodes wamp.error.canceled ("the callee left while the
// call was in progress"), and every rolling restart failed the calls
// running on the node restarted. Drain comes first:
//
//   - The node's registrations leave the mesh directory (the other nodes
//     stop sending it calls; a call already on its way is sent back
//     undelivered and goes to another node: meshBounce), and the claims
//     of its single ones are given back (meshWithdraw).
//   - Its callees take no new invocation: a call from a caller of this
//     node goes to a callee on another node when the registration has
//     one, else it is refused wamp.error.no_available_callee ("the router
//     is shutting down"); a rerouted call skips them too.
//   - New sessions are refused (ABORT wamp.close.system_shutdown); the
//     transports stopped accepting before. The gateway's (JoinInternal)
//     may still join: its requests in progress may need one, and its
//     HTTP callees' sessions are reopened as any callee's.
//   - What is in progress runs on: invocations held by this node's
//     callees (for callers here or on other nodes), and the calls this
//     node's callers made before the drain began. Calls this node's
//     callers make during the drain go to other nodes.
//   - Once none of what was in progress at the drain's start is left, the
//     router takes no new call at all (refused no_available_callee, "it
//     takes no new calls": the caller knows it was not made and may make
//     it again elsewhere), but the gateway's (its HTTP requests in
//     progress, which it lets finish), and waits for the calls its
//     callers made during the drain. Drain returns once none is left, or when its context
//     ends. Waiting for every call from the start instead would let a
//     caller that calls without a pause keep the drain to its deadline,
//     and not waiting for them lost them: their callers got the GOODBYE
//     while their callees ran on, the results dropped.
//   - Publications and subscriptions are untouched: events are delivered
//     here and across the mesh until the sessions end.
//
// Shutdown then says GOODBYE to every session; a call still in progress
// is answered wamp.error.canceled, saying the router shut down.
//
// Cost on the call path: one atomic load and branch where a CALL picks a
// callee (Shard.call), and where a call from another node does
// (meshInvokeTask, meshPick); the rest runs only while draining.

// msgDraining is the message of a call refused because its only callees
// are on a router that drains.
const msgDraining = "the router is shutting down: its callees take no new calls"

// msgDrainClosed is the message of a call refused at the drain's end,
// while the calls made during the drain end.
const msgDrainClosed = "the router is shutting down: it takes no new calls"

// msgShutdownInProgress is the message of a call that was still in
// progress when the router shut down (the callee's, or the caller's,
// session ended by its GOODBYE).
const msgShutdownInProgress = "the callee's router shut down while the call was in progress"

// drainPoll is how often Drain counts what is left.
const drainPoll = 20 * time.Millisecond

// Draining reports whether Drain has been called. Safe for concurrent use.
func (r *Router) Draining() bool { return r.draining.Load() }

// Drain prepares a stop: it withdraws this router's registrations from
// the mesh, stops giving its callees new invocations and refuses new
// sessions, then waits until no invocation of its callees and no call its
// callers made before Drain is in progress, or until ctx is done (it then
// returns ctx's error). Sessions stay open: Shutdown ends them. Calling
// it again only waits. Safe for concurrent use; it blocks.
func (r *Router) Drain(ctx context.Context) error {
	if !r.draining.Swap(true) {
		r.meshWithdraw()
		// Mark the calls in progress: those the drain waits for.
		for _, s := range r.shards {
			sh := s
			_ = sh.Do(sh.drainMark)
		}
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		if r.drainPending(ctx) == 0 {
			if r.drainClosed.Swap(true) {
				return nil
			}
			// What was in progress at the start has ended: take no new
			// call, and wait for those made during the drain. A CALL
			// read before this is counted once its shard has it.
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// DrainPending returns the number of calls and invocations a Drain would
// still wait for (0 when nothing is in progress, or no Drain was called),
// or -1 when ctx ended before every shard answered. Safe for concurrent
// use; it blocks until the shards answered (cold path: status lines).
func (r *Router) DrainPending(ctx context.Context) int {
	if !r.draining.Load() {
		return 0
	}
	return r.drainPending(ctx)
}

// drainPending counts on each shard's goroutine what the drain waits for.
func (r *Router) drainPending(ctx context.Context) int {
	res := make(chan int, len(r.shards))
	asked := 0
	n := 0
	for _, s := range r.shards {
		sh := s
		// Calls between shards, still in a mailbox, are in progress too.
		if sh.callBacklog.Load() > 0 {
			n++
		}
		if sh.Do(func() { res <- sh.drainCount() }) == nil {
			asked++
		}
	}
	for ; asked > 0; asked-- {
		select {
		case c := <-res:
			n += c
		case <-ctx.Done():
			return -1
		}
	}
	return n
}

// drainMark marks the calls of the shard's sessions in progress now: the
// drain waits for them. Owned by shard.
func (s *Shard) drainMark() {
	for ss := range s.attached {
		for _, oc := range ss.calls {
			oc.drained = true
		}
	}
}

// drainCount counts the shard's invocations in progress and its marked
// calls, or all its calls once the drain takes no new one. Owned by
// shard; O(sessions), off the call path.
func (s *Shard) drainCount() int {
	n := 0
	all := s.r.drainClosed.Load()
	for ss := range s.attached {
		if ss.state != stEstablished {
			continue
		}
		n += len(ss.invs)
		if all {
			n += len(ss.calls)
			continue
		}
		for _, oc := range ss.calls {
			if oc.drained {
				n++
			}
		}
	}
	return n
}

// drainCall routes a CALL while the router drains: to a callee on
// another node when its registration has one there, else refused. Owned
// by shard.
func (s *Shard) drainCall(ss *Session, m *proto.Message, reg *registration, progress bool) {
	if s.r.drainClosed.Load() && !ss.internal {
		// The gateway's sessions (JoinInternal) are exempt: the gateway
		// takes no new HTTP request while the router drains, and lets
		// those it took before finish (a CALL made once its body is in,
		// its credentials checked or its pooled session opened); their
		// calls go on to other nodes and are counted as every call now.
		// Before, such a request got 503 no_available_callee.
		s.rejectCall(ss, m.Request, progress, proto.URINoAvailableCallee, msgDrainClosed)
		return
	}
	if s.r.mesh != nil && s.meshCall(ss, m, reg, progress) {
		return
	}
	s.rejectCall(ss, m.Request, progress, proto.URINoAvailableCallee, msgDraining)
}

// meshWithdraw tells the mesh that this node has no callee left for any
// of its registrations (meshLocalChanged says so too from now on), so
// that the other nodes route their calls elsewhere, and gives back the
// claims of its single registrations (meshLocalChanged too, for those
// made during the drain): a callee that reconnects to another node
// during the drain registers there at once. Before, the claims stayed
// until the GOODBYE, and its REGISTER waited or was refused
// procedure_already_exists. No call reaches two callees: this node gives
// its callees no new invocation from now on, and a call already on its
// way here is sent back to its node, which picks another (meshBounce).
// The claim is given back after the withdrawal was queued, so that a
// node that takes it has, in the mesh's order, heard the withdrawal
// first (a conflict seen before it waits meshRevokeGrace). Releasing
// twice is harmless: the mesh gives back only a claim it holds.
func (r *Router) meshWithdraw() {
	if r.mesh == nil {
		return
	}
	for _, rm := range *r.realms.Load() {
		rm.mu.Lock()
		for _, reg := range rm.regByID {
			if reg.list().len() > 0 {
				r.mesh.Registered(rm.name, MeshReg{Match: reg.match, URI: reg.uri, Invoke: reg.invoke})
				if reg.invoke == proto.InvokeSingle {
					r.mesh.Release(rm.name, reg.match, reg.uri)
				}
			}
		}
		rm.mu.Unlock()
	}
}

// calleeLeftMsg is the message a caller gets when its callee left with
// the call in progress. Owned by shard.
func (s *Shard) calleeLeftMsg() string {
	if s.closing {
		return msgShutdownInProgress
	}
	return "the callee left while the call was in progress"
}
