package route

import (
	"encoding/binary"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The meta API, retained events and exclusive registrations across the
// nodes of a mesh (see mesh.go).

// metaRetained is the meta query other nodes answer with their retained
// events matching a subscription.
const metaRetained = "edgewamp.mesh.retained"

// maxRetainedAnswer bounds the bytes of retained events one node sends in
// answer to get_retained; past it the rest is left out (counted, and
// logged at most every lateLogEvery: retainedLeftOut).
const maxRetainedAnswer = 4 << 20

// metaRetainedDrop is the meta query that asks the other nodes to drop
// their copies of retained events this node dropped (args: the
// publication ids). A node that does not know it answers nothing.
const metaRetainedDrop = "edgewamp.mesh.retained_drop"

// maxRetainedDrop bounds the ids of one metaRetainedDrop query (9 bytes
// each at most: a query stays well within a NATS message).
const maxRetainedDrop = 16384

// metaCombine combines this node's answer to a meta procedure with the
// other nodes'. local/lerr are the local answer; remote holds the others'
// successful results, rerrs their errors.
type metaCombine func(local []any, lerr *metaErr, remote [][]any, rerrs []*metaErr) ([]any, *metaErr)

// meshMeta lists the meta procedures answered for the whole mesh, with how
// the answers combine. The others are answered from this node's tables
// (registrations are in the directory) or concern the caller's session.
var meshMeta = map[string]metaCombine{
	"wamp.session.count":                  combineSum,
	"wamp.session.list":                   combineConcat,
	"wamp.session.get":                    combineOwned,
	"wamp.session.kill":                   combineOwned,
	"wamp.session.kill_by_authid":         combineKilled,
	"wamp.session.kill_by_authrole":       combineSum,
	"wamp.session.kill_all":               combineSum,
	"wamp.registration.list_callees":      combineConcat,
	"wamp.registration.count_callees":     combineSum,
	"wamp.registration.remove_callee":     combineOwned,
	"wamp.subscription.list":              combineUnionByMatch,
	"wamp.subscription.lookup":            combineFirstNonNil,
	"wamp.subscription.match":             combineUnionIDs,
	"wamp.subscription.get":               combineFirst,
	"wamp.subscription.list_subscribers":  combineConcat,
	"wamp.subscription.count_subscribers": combineSum,
	"wamp.subscription.remove_subscriber": combineOwned,
}

// drainWithdrawn lists the gathered meta procedures a draining node
// answers as if it had none of the registrations, which it withdrew from
// the directory (answerQuery; TestMeshDrainingNodeCalleesWithdrawnFromMeta).
var drainWithdrawn = map[string]bool{
	"wamp.registration.list_callees":  true,
	"wamp.registration.count_callees": true,
}

// meshOwned lists the meta procedures that act on one session, which only
// its node can carry out or refuse: the other nodes are asked only when
// this node answered wamp.error.no_such_session (combineOwned). Session
// ids are unique in the mesh. wamp.session.get and wamp.session.kill used
// to ask every node whatever this one answered: a get or kill of a session
// here waited for the slowest node (up to gather_timeout) and took one of
// the caller's gathers, and when the other nodes could not be asked the
// caller was told wamp.error.unavailable, "try again", for a kill that had
// been done.
var meshOwned = map[string]bool{
	"wamp.session.get":                    true,
	"wamp.session.kill":                   true,
	"wamp.registration.remove_callee":     true,
	"wamp.subscription.remove_subscriber": true,
}

// meshMetaCall answers a meta call for the whole mesh: it asks the other
// nodes with query q (encoded by metaCall, which refuses a call whose
// arguments cannot be) and answers once they have (or the mesh's deadline
// passed). It reports false when the procedure is answered locally.
func (s *Shard) meshMetaCall(ss *Session, req uint64, proc string, q []byte, due int64, args []any, res []any, merr *metaErr) bool {
	comb := meshMeta[proc]
	if comb == nil {
		return false
	}
	if meshOwned[proc] && (merr == nil || merr.uri != proto.URINoSuchSession || s.r.hasSession(sessionArg(proc, args))) {
		// The session is here: this node's answer is the answer. So it
		// is for a session of this node that the caller's realm does
		// not have (another realm's) and for the caller's own, which
		// wamp.session.kill refuses no_such_session ("no other
		// session"): that refusal was taken for "not here" and gathered,
		// the caller waiting for the slowest node, or told unavailable
		// when the other nodes could not be asked. The refusal is the
		// one an unknown id gets once gathered (combineOwned: this
		// node's), so it tells nothing of the other realm.
		return false
	}
	if merr != nil && (merr.uri == proto.URIInvalidArgument || merr.uri == proto.URIInvalidURI) {
		// Refused for its arguments, as every node would refuse it: the
		// answer is this node's. Before, the call was gathered all the
		// same, every node answering the same error, the caller waiting
		// for the slowest with one of its gathers taken.
		return false
	}
	qm := queuedMeta{req: req, proc: proc, target: sessionArg(proc, args), q: q, comb: comb, res: res, merr: merr, wait: s.holdMeta(ss, req, due)}
	if metaVisits[proc] {
		qm.visit = remoteVisit(ss.realm, proc, args, qm.target)
	}
	// In debt, the call waits for it before it asks, as one queued does
	// (nextAsk): it used to ask at once while the session had a turn
	// free, whatever it owed.
	now, queued := false, false
	debt := ss.asks.busy < maxSessionGathers && (len(ss.asks.q) > 0 || s.walkDebt(ss, true))
	if debt || ss.asks.busy >= maxSessionGathers {
		// The node's bound in bytes was checked before this node's part
		// ran (meshMetaFull): a call that did something here (a kill) is
		// queued even if other loops' calls took the room meanwhile, so
		// that it is not refused after the fact. One acting on one
		// session (meshOwned) did nothing here: it is checked now.
		if queued = len(ss.asks.q) < maxSessionGatherQueue && s.r.ms.queueAsk(qm, !meshOwned[proc]); queued {
			ss.asks.q = append(ss.asks.q, qm)
			if debt {
				s.parkAsks(ss)
			}
		}
	} else {
		now = true
	}
	switch {
	case now:
		s.askMesh(ss, qm)
	case !queued && len(ss.asks.q) < maxSessionGatherQueue:
		ss.releaseMeta(req, qm.wait)
		s.refuseQueuedBytes(ss, req)
	case !queued:
		ss.releaseMeta(req, qm.wait)
		s.refuseMetaGather(ss, req)
	}
	return true
}

// meshMetaFull refuses CALL req to proc, and reports true, when proc is
// gathered from every node and ss has maxSessionGathers gathers under way
// and maxSessionGatherQueue waiting, or when the call, whose query to the
// other nodes is q, would wait for a turn and the node's queued meta calls
// leave no room for it (maxQueuedAsks): checked before this node's part
// is run, so that a call refused for a bound costs next to nothing (each
// used to walk the realm's table first: 800 refused
// wamp.subscription.list calls at 20,000 subscriptions held the loop
// 0.76-0.94 s) and does nothing (a kill refused used to kill this node's
// sessions all the same; for the bound in bytes, until
// TestMeshQueuedBytesRefusalKillsNothing). The procedures acting on one
// session (meshOwned) ask the others only when it is not here: they look
// it up first (and meshMetaCall checks the bytes).
func (s *Shard) meshMetaFull(ss *Session, req uint64, proc string, q []byte) bool {
	if s.r.mesh == nil || meshMeta[proc] == nil || meshOwned[proc] {
		return false
	}
	if ss.asks.full(maxSessionGathers, maxSessionGatherQueue) {
		s.refuseMetaGather(ss, req)
		return true
	}
	waits := ss.asks.busy >= maxSessionGathers || len(ss.asks.q) > 0 || s.walkDebt(ss, true)
	if q != nil && waits && s.r.ms.asksQueued.Load()+askCost(queuedMeta{q: q}) > maxQueuedAsks {
		s.refuseQueuedBytes(ss, req)
		return true
	}
	return false
}

// refuseQueuedBytes answers CALL req past maxQueuedAsks.
func (s *Shard) refuseQueuedBytes(ss *Session, req uint64) {
	s.replyError(ss, proto.CodeCall, req, proto.URIUnavailable, "too many bytes of meta calls of this node's sessions waiting for the other nodes (limit "+strconv.FormatInt(maxQueuedAsks>>20, 10)+" MiB); retry later")
}

func (s *Shard) refuseMetaGather(ss *Session, req uint64) {
	s.replyError(ss, proto.CodeCall, req, proto.URIUnavailable, "too many meta calls of this session waiting for the other nodes (limit "+strconv.Itoa(maxSessionGathers+maxSessionGatherQueue)+")")
}

// queuedMeta is a meta call waiting for the other nodes' answers, or for
// its turn to ask them: the query, and this node's part of the answer.
type queuedMeta struct {
	req  uint64
	proc string
	// target is the session the procedure acts on (0: none or not one).
	target uint64
	// visit is what the session's node's walk for a removal (metaVisits)
	// is charged (remoteVisit); 0 for the other procedures.
	visit int64
	q     []byte
	comb  metaCombine
	res   []any
	merr  *metaErr
	// wait holds req in the session's metaWaits until it is answered.
	wait *metaWait
}

// askMesh sends a meta call's query to the other nodes.
func (s *Shard) askMesh(ss *Session, qm queuedMeta) {
	key := s.gatherKey(ss)
	if !s.r.ms.addrs.take(key) {
		ss.releaseMeta(qm.req, qm.wait)
		s.refuseAddrGather(ss, qm.req)
		return
	}
	err := s.r.gather(qm.q, func(answers [][]byte, missing []string) {
		s.r.ms.addrs.done(key)
		s.Do(func() {
			ss.asks.busy--
			dec := decodeAnswers(answers)
			s.chargeRemote(ss, qm, dec, missing)
			s.metaGathered(ss, qm, dec, missing)
			s.nextAsk(ss)
		})
	})
	if err != nil {
		s.r.ms.addrs.done(key)
		// This node's part alone would be a wrong answer for the realm
		// (a count too low, "no such session" for a session elsewhere).
		// What it did (a kill of its own sessions) stays done.
		s.r.log.Debug("mesh: a meta call could not ask the other nodes", "procedure", qm.proc, "err", err)
		ss.releaseMeta(qm.req, qm.wait)
		s.replyError(ss, proto.CodeCall, qm.req, proto.URIUnavailable, "the other nodes of the mesh cannot be asked now ("+err.Error()+"); try again")
		return
	}
	ss.asks.busy++
}

// nextAsk starts the meta calls of ss that waited for a turn, while it
// has turns and its walk budget is not in debt (chargeRemote); in debt,
// they wait for it as a walk does (once, for them all: asksParked).
func (s *Shard) nextAsk(ss *Session) {
	for ss.state == stEstablished {
		if len(ss.asks.q) == 0 || ss.asks.busy >= maxSessionGathers {
			return
		}
		if ss.asksParked {
			return // they wait in the walk queue
		}
		if s.walkDebt(ss, true) {
			s.parkAsks(ss)
			return
		}
		qm, ok := ss.asks.next(maxSessionGathers)
		if !ok {
			return
		}
		s.r.ms.asksQueued.Add(-askCost(qm))
		if qm.wait.canceled {
			continue // not asked
		}
		if !s.metaStillGranted(ss, qm.req, qm.proc) {
			ss.releaseMeta(qm.req, qm.wait)
			continue // not asked
		}
		s.askMesh(ss, qm)
	}
}

// maxQueuedAsks bounds the bytes of the gathered meta calls waiting in
// their sessions for a turn to ask the other nodes (askCost), all
// sessions of the router together; past it such a call is refused
// wamp.error.unavailable, as past its session's maxSessionGatherQueue.
// Each holds its query, up to maxMetaArgs of arguments (extra positional
// arguments included, which the procedures ignore but the query carries):
// a session's 64 held about 4 MiB, in no budget, for as long as its
// gathers were busy (a node answering slowly) or its walk budget in debt,
// and an address may open 1,024 sessions (a role granted a gathered meta
// procedure; TestMeshQueuedMetaCallsBoundedInBytes). A variable for tests.
var maxQueuedAsks int64 = 64 << 20

// askOverhead is what a queued meta call holds besides its query.
const askOverhead = 256

// askCost is what queued meta call qm counts in maxQueuedAsks.
func askCost(qm queuedMeta) int64 { return int64(len(qm.q)) + askOverhead }

// queueAsk counts qm as queued, and reports false, counting nothing, when
// it would pass maxQueuedAsks, unless force (checked before: meshMetaFull;
// other loops' calls at the same moment may then pass the bound by one
// each). Any goroutine.
func (ms *meshState) queueAsk(qm queuedMeta, force bool) bool {
	c := askCost(qm)
	if ms.asksQueued.Add(c) > maxQueuedAsks && !force {
		ms.asksQueued.Add(-c)
		return false
	}
	return true
}

// dropAsks gives back what ss's queued meta calls counted (its session is
// leaving: they are never asked). Owned by shard.
func (s *Shard) dropAsks(ss *Session) {
	if s.r.ms == nil || len(ss.asks.q) == 0 {
		return
	}
	var n int64
	for _, qm := range ss.asks.q {
		n += askCost(qm)
	}
	ss.asks.q = nil
	s.r.ms.asksQueued.Add(-n)
}

// parkAsks has ss's meta calls waiting to ask the other nodes go on once
// its walk debt is paid: one entry in the walk queue for them all.
func (s *Shard) parkAsks(ss *Session) { s.parkUntilPaid(ss, &ss.asksParked, s.nextAsk, true) }

// parkUntilPaid has next(ss) run once ss's walk debt is paid (and its
// owner's, for meta calls: owned), through one entry in the walk queue
// (one timer) however many requests wait behind *parked, which is set
// until then.
func (s *Shard) parkUntilPaid(ss *Session, parked *bool, next func(*Session), owned bool) {
	if *parked {
		return
	}
	*parked = true
	s.turn(ss, walk{owned: owned, run: func() int {
		*parked = false
		next(ss)
		return 0
	}})
}

// chargeRemote charges ss's walk budget for the other nodes' answers to
// its gathered meta call proc (remoteCost), canceled or not: each node
// walked and encoded its part, and this shard decodes and merges them.
// Before, only this node's walk was charged (the others' sizes are not
// known before they answer): a session on a node with small tables made
// the others walk theirs as fast as its 16 gathers came back, with 64 more
// queued that had already had their turn; 100 pipelined
// wamp.subscription.list calls had another node list its 20,000
// subscriptions 80 times at once, and calls canceled at once as many
// times as they were sent. Its queued gathers now wait for the debt to be
// paid (nextAsk), and its next walks too, as on one node.
//
// Each node asked costs meshAskCost besides its answer (a node that did
// not answer in time was asked all the same): a lookup that finds nothing
// (wamp.session.get or kill of an absent session, a subscription.lookup)
// was charged only its answers' few dozen bytes, and one session made
// 14,500 queries a second onto each other node's shard 0; now about
// 4,000 (walkRate/meshAskCost) at most.
func (s *Shard) chargeRemote(ss *Session, qm queuedMeta, answers []answer, missing []string) {
	s.walkCharge(ss, remoteCost(qm.proc, answers, qm.visit)+asked(len(answers), missing)*meshAskCost, true)
}

// answer is a node's answer to a gathered meta call, decoded
// (decodeAnswer), and its size in bytes.
type answer struct {
	res  []any
	err  *metaErr
	ok   bool
	size int
	// visited is what the node says a removal (metaVisits) it carried
	// out visited (answerQuery); -1: not said.
	visited int64
}

// decodeAnswers decodes the answers of a gathered meta call, once, for
// both its charge (chargeRemote) and its result (metaGathered).
func decodeAnswers(raw [][]byte) []answer {
	out := make([]answer, len(raw))
	for i, a := range raw {
		r, rerr, ok, visited := decodeAnswerVisited(a)
		out[i] = answer{res: r, err: rerr, ok: ok, size: len(a), visited: visited}
	}
	return out
}

// asked is the number of nodes a gather asked, as far as its answers
// tell: each answer, and each named node that did not answer in time (it
// was asked), at least one. A node that answered nothing (a get_retained
// of a topic it retains nothing of) is in neither, so that a gather costs
// at least one node's meshAskCost: each other node then answers a session
// at most walkRate/meshAskCost queries a second, however many nodes.
func asked(answers int, missing []string) int64 {
	n := int64(answers)
	for _, m := range missing {
		if m != "" { // "": not heard from, not asked
			n++
		}
	}
	return max(n, 1)
}

// walkCharge takes n entries from ss's walk budget, and its owner's for
// a meta call (owned; refilled first).
func (s *Shard) walkCharge(ss *Session, n int64, owned bool) { s.walkTake(ss, n, owned) }

// remoteCost is what the other nodes' answers to a gathered meta call of
// proc cost in the walk budget's entries: one per byte (a listed id takes
// about 9 bytes of MsgPack and is charged metaEntryCost here), and for the
// procedures whose answer is a number of sessions killed (a kill by
// authid or authrole, kill_all), that number as listed entries; at least
// what the node says it walked (walkedOf), charged as on one node (for
// each entry, metaEntryCost); for the removal procedures (metaVisits), the
// session's node's answer visit besides (remoteVisit). Before, a removal
// naming another node's session that is no callee (subscriber) was charged
// its answers' bytes and meshAskCost alone, and made that node walk a list
// of 2,000 callees 276 times in the walk budget's burst, where one node's
// rule allows 32 (TestMeshRemoteRemoveVisitsCharged).
func remoteCost(proc string, answers []answer, visit int64) int64 {
	var total int64
	for _, a := range answers {
		n := int64(a.size)
		if metaCounts[proc] && a.err == nil && len(a.res) > 0 {
			k := toInt(a.res[0]) // kill_by_authid's: then its list (combineKilled)
			if len(a.res) >= 3 {
				if l, isList := a.res[2].([]any); isList {
					k = max(k, int64(len(l)))
				}
			}
			n += min(max(k, 0), meshReportMax) * metaEntryCost
		}
		if w := walkedOf(proc, a.res); w > 0 {
			n = max(n, w*metaEntryCost)
		}
		if metaVisits[proc] && a.ok && (a.err == nil || a.err.uri != proto.URINoSuchSession && a.err.uri != uriNotAnswered) {
			// The session's node looked for it among the callees
			// (subscribers), a walk of up to every session of the realm
			// there, which its result does not size (meshOwned: handed
			// on whole): charged what the node says it visited when it
			// carried the removal out, else visit (a node of the
			// previous release, or one refusing it: the session is no
			// callee there, a walk of the whole list).
			if a.err == nil && a.visited >= 0 {
				n += a.visited
			} else {
				n += visit
			}
		}
		total += n
	}
	return total
}

// meshReportMax caps each count another node reports in its answer to a
// gathered meta call (what a removal it carried out visited, what a list
// or kill walked, the sessions a kill killed): one session's burst of
// entries, 8 times the estimate charged for a node that does not say
// (meshScanMin). Such a count is charged to the asking session and its
// client's share (walkOwner), which all the client's sessions on this
// node wait for: a hostile or buggy node's 2^53, capped at 2^32 before,
// held every meta call of the client's sessions here 68 minutes (a
// removal) to 9 hours (a list, 8 per entry); now at most half a second
// an answer (TestMeshReportedCountCapped). An honest node of more
// entries than that is charged less than one node would be, as one of
// the previous release is; its answer's bytes are charged besides.
const meshReportMax = walkBurst

// meshRemoveMin is the least the session's node's walk for a
// remove_callee is charged (remoteVisit): callees it may have registered
// that its part of the directory does not show yet.
const meshRemoveMin = 64

// remoteVisit is what the walk of the session's node, the node whose slot
// target's id carries, for removal proc (metaVisits) naming target is
// charged, besides its answer's bytes (remoteCost), when that node does
// not say what it visited (it refused the removal, or is of the previous
// release; one that carried it out says, and is charged that: before, a
// remove_subscriber was charged meshScanMin whatever the subscription,
// and an admin removing 200 stale subscribers of another node had 16
// answered at once with the clock stopped,
// TestMeshRemoteRemoveSubscriberChargedByWalk): for remove_callee,
// the callees of the registration the directory records on that node
// (nodes sharing the slot summed), at least meshRemoveMin, as on one
// node a removal is charged the callees it may visit; meshScanMin, as a
// pattern get_retained's unknown scans are, when this node does not know
// the registration, and for remove_subscriber, whose subscribers no
// node's directory counts. Before, a remove_callee was charged
// meshScanMin whatever the registration: an admin removing 1,000 stale
// callees of other nodes took about 16 s of the walk budget
// (TestMeshRemoteRemoveCalleeChargedByDirectory). Takes the realm's lock.
func remoteVisit(rm *Realm, proc string, args []any, target uint64) int64 {
	id, ok := argID(args, 0)
	if proc != "wamp.registration.remove_callee" || !ok {
		return meshScanMin
	}
	slot := uint16(target & MaxMeshSlot)
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	reg := rm.regByID[id]
	if reg == nil || rm.mdir == nil {
		return meshScanMin
	}
	var n int64
	for _, e := range rm.mdir.byKey[regKey{reg.match, reg.uri}] {
		if MeshSlot(e.name) == slot {
			n += int64(max(e.Callees, 0))
		}
	}
	return max(n, meshRemoveMin)
}

// metaCounts lists the gathered meta procedures whose answer is a number
// of sessions killed. Not wamp.session.count, a look-up on each node
// (Realm.byRole): charged its answers' bytes and the nodes asked, as any
// gather.
var metaCounts = map[string]bool{
	"wamp.session.kill_by_authid":   true,
	"wamp.session.kill_by_authrole": true,
	"wamp.session.kill_all":         true,
}

// walkedReported reports whether a node's answer to a gathered meta call
// of proc says how many entries the node walked for it (answerQuery):
// those that walk a table (metaWalks) and whose combiner reads only the
// first element of each node's result, so that the count, a second
// element, reaches neither the caller nor a node of the previous release
// (which reads the first). Not the procedures acting on one session
// (meshOwned), whose combiner hands on the session's node's result whole.
//
// A node's answer used to tell only what it found: a call that visits
// every session of the realm on each node but lists or kills few or none
// (wamp.session.list filtered by a role nobody has, kill_by_authid or
// kill_by_authrole of an authid or role nobody has) was charged a few
// dozen entries per node, where each had copied and visited all of its
// sessions under the realm's lock on its shard 0, and one node's is
// charged 8 entries a session visited: a session on a node of few
// sessions made another node of 4,000 visit them all 480 times with the
// clock stopped, where the budget allows 34
// (TestMeshRemoteSessionVisitsCharged).
func walkedReported(proc string) bool {
	return metaWalks[proc] != nil && meshMeta[proc] != nil && !meshOwned[proc]
}

// walkedOf returns the entries a node says it walked for its result res
// to a gathered meta call of proc (0: not said, as by a node of the
// previous release), at most meshReportMax.
func walkedOf(proc string, res []any) int64 {
	if len(res) < 2 || !walkedReported(proc) {
		return 0
	}
	return min(max(toInt(res[1]), 0), meshReportMax)
}

// maxSessionGathers bounds one session's meta calls waiting for the other
// nodes. The mesh takes at most 1,024 such queries at a time for the
// whole node (edge), each for up to mesh.gather_timeout: without a share
// per session, one session calling wamp.session.list back to back while a
// node answered slowly kept them all, and every other session's meta calls
// failed with wamp.error.unavailable. Further ones wait their turn in the
// session (a client may well send a few dozen at once), up to
// maxSessionGatherQueue (each holds its query, up to 64 KiB); past that
// they get wamp.error.unavailable.
const (
	maxSessionGathers     = 16
	maxSessionGatherQueue = 64
)

// metaGathered sends the combined answer of a meta call; missing are the
// nodes whose answers the gather went without (Mesh.Gather).
func (s *Shard) metaGathered(ss *Session, qm queuedMeta, answers []answer, missing []string) {
	if ss.state != stEstablished || !ss.releaseMeta(qm.req, qm.wait) {
		return
	}
	req, res, merr := qm.req, qm.res, qm.merr
	var remote [][]any
	var rerrs []*metaErr
	for _, a := range answers {
		switch r, rerr, ok := a.res, a.err, a.ok; {
		case !ok:
		case rerr != nil && rerr.uri == uriNotAnswered:
			missing = append(missing, rerr.msg)
		case rerr != nil:
			rerrs = append(rerrs, rerr)
		default:
			remote = append(remote, r)
		}
	}
	res, merr = qm.comb(res, merr, remote, rerrs)
	if len(missing) > 0 && unsure(qm.target, missing) && (merr != nil && notFound[merr.uri] || merr == nil && nilLookup(qm.proc, res)) {
		// "Not found" is an answer only when every node that could hold
		// it answered.
		merr = &metaErr{proto.URIUnavailable, "not found on the nodes that answered, but " + missingNodes(missing) + " did not answer (within the mesh's gather_timeout, or at all: stopping, not heard from, or an answer past this node's budget for them): try again"}
	}
	if merr != nil {
		s.replyError(ss, proto.CodeCall, req, merr.uri, merr.msg)
		return
	}
	out := &s.out
	out.Reset()
	out.Type = proto.CodeResult
	out.Request = req
	if len(missing) > 0 {
		// A partial answer (a count or list without some nodes' part)
		// says so where a caller can look and none is disturbed: a custom
		// attribute of RESULT.Details; the arguments keep their shape.
		if raw, err := proto.EncodeValue(ss.ser, map[string]any{partialKey: partialDetail(missing)}); err == nil {
			out.HasDict = true
			out.Dict = raw
		}
	}
	if res != nil {
		raw, err := proto.EncodeValue(ss.ser, res)
		if err != nil {
			s.replyError(ss, proto.CodeCall, req, proto.URIInvalidArgument, err.Error())
			return
		}
		out.Args = raw
	}
	if err := s.sendMsg(ss, out, ClassResult); err == ErrPeerTooBig {
		s.replyError(ss, proto.CodeCall, req, proto.URIPayloadSizeExceeded, "the result is longer than this session accepts")
	}
}

// MeshQuery answers a meta query from another node: it runs the
// procedure for this node's own sessions, registrations and subscriptions
// (on shard 0) and calls answer once with the encoded answer (or not at
// all: a get_retained query it does not run, notRun). Safe for
// concurrent use; it never blocks.
//
// deadline (zero: none) is when the asker stops waiting, as far as the
// mesh can tell: a query that gets to shard 0 after it is not run (a kill
// its caller was told had not been done stays undone; a count nobody
// waits for is not counted), except the drop of retained copies, which is
// due whenever it comes. Such a query is answered
// edgewamp.mesh.not_answered (a get_retained one not at all: notRun),
// counted (MeshStats.LateQueries) and logged.
func (r *Router) MeshQuery(env []byte, deadline time.Time, answer func([]byte)) {
	if r.ms == nil {
		return
	}
	realm, proc, args, kwargs, err := decodeQuery(env)
	rm := r.Realm(realm)
	if err != nil || rm == nil {
		if err != nil {
			r.ms.stats.BadEnvelopes.Add(1)
		}
		answer(nil)
		return
	}
	s := r.shards[0]
	run := func() {
		if !deadline.IsZero() && proc != metaRetainedDrop {
			if late := time.Since(deadline); late > 0 {
				s.lateQuery(proc, late)
				r.notRun(proc, answer)
				return
			}
		}
		answer(s.answerQuery(rm, proc, args, kwargs))
	}
	if s.Do(run) != nil {
		// Stopping: no answer, but not "nothing here" either (its
		// sessions may still be there): the asker counts this node
		// among those that did not answer.
		r.notRun(proc, answer)
	}
}

// notRun answers a meta query this node did not run (notAnswered), but
// for get_retained's: a get_retained answer has no form for "not
// answered", and its empty answer says "nothing retained here", which the
// asker took for a whole answer: its gather ended without this node's
// retained events and was not counted incomplete
// (TestLateGetRetainedQueryCountedIncomplete). Unanswered, the asker's
// gather_timeout ends it, the node counted among those that did not
// answer; a late query's asker has at most a fifth of it left to wait
// (queryDeadline).
func (r *Router) notRun(proc string, answer func([]byte)) {
	if proc == metaRetained {
		return
	}
	answer(r.notAnswered(proc))
}

// notAnswered is the answer to a meta query this node did not run: the
// error uriNotAnswered with the node's name, which the asker counts among
// the nodes that did not answer; nothing for get_retained's queries.
func (r *Router) notAnswered(proc string) []byte {
	if proc == metaRetained || proc == metaRetainedDrop {
		return nil
	}
	raw, err := proto.EncodeValue(proto.MsgPack, []any{false, uriNotAnswered, r.ms.name})
	if err != nil {
		return nil
	}
	return raw.B
}

// lateQuery counts a meta query not run for its lateness and logs it, at
// most once per lateLogEvery (with the number since the last line). On
// shard 0.
func (s *Shard) lateQuery(proc string, late time.Duration) {
	ms := s.r.ms
	ms.stats.LateQueries.Add(1)
	ms.lateUnlogged++
	if now := time.Now(); now.Sub(ms.lateLogAt) >= lateLogEvery {
		s.r.log.Warn("mesh: meta queries from other nodes came after their askers had stopped waiting and were not run (this node was stopped, paused or far behind; their callers were answered wamp.error.unavailable)", "queries", ms.lateUnlogged, "procedure", proc, "late_by", late.Round(time.Millisecond))
		ms.lateLogAt, ms.lateUnlogged = now, 0
	}
}

// lateLogEvery spaces the log lines about late meta queries: a node that
// resumes after a stop finds all the queries of its pause at once.
const lateLogEvery = 10 * time.Second

// uriNotAnswered is the error a node answers a meta query with when it
// does not run it (it is stopping, or the query came too late) or its
// answer is larger than the mesh carries (answerQuery); the message is
// the node's name.
const uriNotAnswered = "edgewamp.mesh.not_answered"

// answerQuery runs a meta query for this node. On shard 0.
func (s *Shard) answerQuery(rm *Realm, proc string, args []any, kwargs map[string]any) []byte {
	switch proc {
	case metaRetained:
		return s.answerRetained(rm, args)
	case metaRetainedDrop:
		s.dropRetainedCopies(rm, args)
		return nil
	case metaSessions:
		return s.answerSessions(rm)
	case metaSessionsHeld:
		return s.answerSessionsHeld(rm, args)
	}
	if meshMeta[proc] == nil {
		return nil
	}
	if drainWithdrawn[proc] && s.r.draining.Load() {
		// Its registrations left the directory at the drain's start
		// (meshWithdraw): the other nodes' lookup, get, match and list
		// no longer show them, and no invocation comes to their callees.
		// Their callees were still listed and counted here: a monitor
		// was told a registration had a callee and did not exist.
		raw, err := proto.EncodeValue(proto.MsgPack, []any{false, proto.URINoSuchRegistration, "this node is draining: its registrations are withdrawn from the mesh"})
		if err != nil {
			return nil
		}
		return raw.B
	}
	h := metaProcs[proc]
	// A stand-in for the remote caller: in the realm, on no shard's
	// tables, so that "any other session" means every session here.
	caller := &Session{realm: rm, shard: s, state: stEstablished}
	walked := -1
	if walkedReported(proc) || metaVisits[proc] {
		rm.mu.RLock()
		walked = metaWalks[proc](rm, args, kwargs)
		rm.mu.RUnlock()
	}
	res, merr := h(s, caller, args, kwargs)
	var v []any
	switch {
	case merr != nil:
		v = []any{false, merr.uri, merr.msg}
	case proc == metaKillByAuthID && len(res) == 1:
		// The number killed first, as the previous release answered
		// and reads it (it adds up each node's first element), the
		// walked count second, then the list (combineKilled).
		l, _ := res[0].([]any)
		v = []any{true, []any{len(l), max(walked, 0), res[0]}}
	case metaVisits[proc] && res == nil:
		// A removal carried out here: what it visited, for the caller's
		// charge (remoteCost), in place of its result, which is none.
		// A node of the previous release reads no result from it, as
		// from [true, null].
		v = []any{true, max(walked, 1)}
	case walked >= 0 && len(res) == 1:
		// What this node walked for it, for the caller's charge
		// (walkedReported): a second element of the result.
		v = []any{true, []any{res[0], walked}}
	default:
		v = []any{true, res}
	}
	raw, err := proto.EncodeValue(proto.MsgPack, v)
	if err != nil {
		return nil
	}
	if len(raw.B) > s.r.meshLimit(len(raw.B)) {
		// Larger than the mesh carries in one message: it would be
		// refused whole, and the asker would wait its gather_timeout
		// for it. Not answered instead: the asker marks its answer
		// partial at once, naming this node.
		ms := s.r.ms
		ms.stats.AnswersTooLarge.Add(1)
		ms.bigUnlogged++
		if now := time.Now(); now.Sub(ms.bigLogAt) >= lateLogEvery {
			s.r.log.Warn("mesh: answers to other nodes' meta calls were larger than the mesh carries in one message (the NATS server's max_payload) and were not sent; their callers were told the result is partial", "answers", ms.bigUnlogged, "procedure", proc, "bytes", len(raw.B), "max", s.r.meshLimit(len(raw.B)))
			ms.bigLogAt, ms.bigUnlogged = now, 0
		}
		return s.r.notAnswered(proc)
	}
	return raw.B
}

// meshLimit returns bound, or the largest message the mesh carries
// (MeshMessageLimit) if smaller.
func (r *Router) meshLimit(bound int) int {
	if ml, ok := r.mesh.(MeshMessageLimit); ok {
		if m := ml.MaxMessage(); m > 0 && m < bound {
			return m
		}
	}
	return bound
}

// decodeAnswer returns a remote answer's result, or its error (an error
// URI that is not a valid URI is taken for no answer).
func decodeAnswer(b []byte) ([]any, *metaErr, bool) {
	res, merr, ok, _ := decodeAnswerVisited(b)
	return res, merr, ok
}

// decodeAnswerVisited is decodeAnswer, and what a removal carried out
// said it visited (a number where the result is: answerQuery), -1 for
// none said.
func decodeAnswerVisited(b []byte) ([]any, *metaErr, bool, int64) {
	if len(b) == 0 {
		return nil, nil, false, -1
	}
	v, err := proto.DecodeValue(proto.Raw{Ser: proto.MsgPack, B: b})
	if err != nil {
		return nil, nil, false, -1
	}
	l, _ := v.([]any)
	switch {
	case len(l) == 2 && l[0] == true:
		res, isList := l[1].([]any)
		visited := int64(-1)
		if !isList && l[1] != nil {
			visited = min(max(toInt(l[1]), 0), meshReportMax)
		}
		return res, nil, true, visited
	case len(l) == 3 && l[0] == false:
		uri, _ := l[1].(string)
		msg, _ := l[2].(string)
		if !proto.ValidURI([]byte(uri), proto.URILoose) {
			return nil, nil, false, -1
		}
		return nil, &metaErr{uri, msg}, true, -1
	}
	return nil, nil, false, -1
}

func encodeQuery(realm, proc string, args []any, kwargs map[string]any) ([]byte, error) {
	w := wbuf{envQuery}
	w.str(realm)
	w.str(proc)
	for i, v := range []any{args, kwargs} {
		if i == 0 && args == nil || i == 1 && kwargs == nil {
			w.uv(0)
			continue
		}
		raw, err := proto.EncodeValue(proto.MsgPack, v)
		if err != nil {
			return nil, err
		}
		w.bytes(raw.B)
	}
	return w, nil
}

var errQuery = errors.New("route: malformed mesh query")

func decodeQuery(env []byte) (realm, proc string, args []any, kwargs map[string]any, err error) {
	r := rbuf{b: env}
	if r.byte1() != envQuery {
		return "", "", nil, nil, errQuery
	}
	realm = r.str()
	proc = r.str()
	a := r.bytes()
	k := r.bytes()
	if r.err != nil || len(r.b) != 0 {
		return "", "", nil, nil, errQuery
	}
	if len(a) > 0 {
		v, err := proto.DecodeValue(proto.Raw{Ser: proto.MsgPack, B: a})
		if err != nil {
			return "", "", nil, nil, errQuery
		}
		args, _ = v.([]any)
	}
	if len(k) > 0 {
		v, err := proto.DecodeValue(proto.Raw{Ser: proto.MsgPack, B: k})
		if err != nil {
			return "", "", nil, nil, errQuery
		}
		kwargs, _ = v.(map[string]any)
	}
	return realm, proc, args, kwargs, nil
}

// notFound lists the errors of meshMeta procedures that say what was
// asked for is on no node (as far as the nodes that answered know).
var notFound = map[string]bool{
	proto.URINoSuchSession:      true,
	proto.URINoSuchSubscription: true,
	proto.URINoSuchRegistration: true,
}

// nilLookup reports whether res is the answer of a lookup that found
// nothing (a null result, not an error).
func nilLookup(proc string, res []any) bool {
	return proc == "wamp.subscription.lookup" && (len(res) == 0 || res[0] == nil)
}

// sessionArg returns the id of the session a meta procedure of meshMeta
// acts on, 0 when it acts on none.
func sessionArg(proc string, args []any) uint64 {
	i := -1
	switch proc {
	case "wamp.session.get", "wamp.session.kill":
		i = 0
	case "wamp.registration.remove_callee", "wamp.subscription.remove_subscriber":
		i = 1
	}
	if i < 0 || len(args) <= i {
		return 0
	}
	return uint64(toInt(args[i]))
}

// unsure reports whether a node whose answer is missing may hold what a
// meta call asked for: any such node, but for a session, only the node
// whose slot its id carries (MeshSlot), or a node not heard from ("").
func unsure(target uint64, missing []string) bool {
	if target == 0 {
		return len(missing) > 0
	}
	for _, m := range missing {
		if m == "" || uint64(MeshSlot(m)) == target&MaxMeshSlot {
			return true
		}
	}
	return false
}

// partialKey is the RESULT.Details attribute of a meta call answered
// without some nodes' part (a custom attribute: WAMP reserves names that
// start with "_" for implementations).
const partialKey = "_edgewamp_partial"

// splitMissing splits a gather's missing nodes into the named ones and
// whether there are nodes not heard from ("").
func splitMissing(missing []string) (named []string, unheard bool) {
	for _, m := range missing {
		if m == "" {
			unheard = true
		} else {
			named = append(named, m)
		}
	}
	return named, unheard
}

// partialDetail is partialKey's value: the nodes that did not answer, and
// whether there are nodes this node has not heard from.
func partialDetail(missing []string) map[string]any {
	named, unheard := splitMissing(missing)
	list := make([]any, len(named))
	for i, m := range named {
		list[i] = m
	}
	return map[string]any{"missing": list, "not_heard_from": unheard}
}

// missingNodes names the nodes of missing for an error message (at most
// 8 by name).
func missingNodes(missing []string) string {
	named, unheard := splitMissing(missing)
	var b strings.Builder
	if len(named) > 0 {
		b.WriteString("node")
		if len(named) > 1 {
			b.WriteString("s")
		}
		b.WriteString(" " + strings.Join(named[:min(len(named), 8)], ", "))
		if len(named) > 8 {
			b.WriteString(" and " + strconv.Itoa(len(named)-8) + " more")
		}
	}
	if unheard {
		if b.Len() > 0 {
			b.WriteString(" and ")
		}
		b.WriteString("nodes this node has not heard from yet")
	}
	return b.String()
}

// ---------------------------------------------------------------- combiners

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	case int:
		return int64(x)
	case float64:
		return int64(x)
	}
	return 0
}

func combineSum(local []any, lerr *metaErr, remote [][]any, _ []*metaErr) ([]any, *metaErr) {
	var n int64
	ok := lerr == nil
	if ok && len(local) > 0 {
		n = toInt(local[0])
	}
	for _, r := range remote {
		if len(r) > 0 {
			n += toInt(r[0])
			ok = true
		}
	}
	if !ok {
		return nil, lerr
	}
	return []any{n}, nil
}

// metaKillByAuthID is the gathered meta procedure whose answer lists the
// sessions each node killed (combineKilled).
const metaKillByAuthID = "wamp.session.kill_by_authid"

// combineKilled combines wamp.session.kill_by_authid: the session ids
// every node killed, in one list. Another node answers [number killed,
// entries walked, list] (answerQuery): the number first, which a node of
// the previous release adds up (combineSum) as it did the number it
// answered itself; such a node answers the number alone, and its
// sessions are then left out of the list.
func combineKilled(local []any, lerr *metaErr, remote [][]any, _ []*metaErr) ([]any, *metaErr) {
	out := []any{}
	ok := lerr == nil
	if ok && len(local) > 0 {
		out = appendList(out, local[0])
	}
	for _, r := range remote {
		if len(r) > 0 {
			if len(r) >= 3 {
				if _, isList := r[2].([]any); isList {
					out = appendList(out, r[2])
				}
			}
			ok = true
		}
	}
	if !ok {
		return nil, lerr
	}
	return []any{out}, nil
}

func combineConcat(local []any, lerr *metaErr, remote [][]any, _ []*metaErr) ([]any, *metaErr) {
	out := []any{}
	ok := lerr == nil
	if ok && len(local) > 0 {
		out = appendList(out, local[0])
	}
	for _, r := range remote {
		if len(r) > 0 {
			out = appendList(out, r[0])
			ok = true
		}
	}
	if !ok {
		return nil, lerr
	}
	return []any{out}, nil
}

func appendList(out []any, v any) []any {
	switch l := v.(type) {
	case []any:
		return append(out, l...)
	case []uint64:
		for _, x := range l {
			out = append(out, x)
		}
	}
	return out
}

func combineFirst(local []any, lerr *metaErr, remote [][]any, _ []*metaErr) ([]any, *metaErr) {
	if lerr == nil {
		return local, nil
	}
	if len(remote) > 0 {
		return remote[0], nil
	}
	return nil, lerr
}

// combineOwned combines the answers to a procedure of meshOwned: this
// node answered wamp.error.no_such_session, so the answer is that of the
// session's node, a success or its error (the other nodes answer
// no_such_session too); no_such_session when no node has the session.
func combineOwned(local []any, lerr *metaErr, remote [][]any, rerrs []*metaErr) ([]any, *metaErr) {
	if lerr == nil {
		return local, nil
	}
	if len(remote) > 0 {
		return remote[0], nil
	}
	for _, e := range rerrs {
		if e.uri != proto.URINoSuchSession {
			return nil, e
		}
	}
	return nil, lerr
}

func combineFirstNonNil(local []any, lerr *metaErr, remote [][]any, _ []*metaErr) ([]any, *metaErr) {
	if lerr == nil && len(local) > 0 && local[0] != nil {
		return local, nil
	}
	for _, r := range remote {
		if len(r) > 0 && r[0] != nil {
			return r, nil
		}
	}
	return local, lerr
}

// combineUnionIDs combines wamp.subscription.match: the union of the
// nodes' ids, null when none. When this node refused the call (no topic
// URI) and no node answered it, the refusal is the answer, as on one node;
// it used to be dropped with the others' and the call answered null, "no
// subscription matches", for a call that named no topic.
func combineUnionIDs(local []any, lerr *metaErr, remote [][]any, _ []*metaErr) ([]any, *metaErr) {
	if lerr != nil && len(remote) == 0 {
		return nil, lerr
	}
	var parts [][]any
	if lerr == nil {
		parts = append(parts, local)
	}
	return unionIDs(append(parts, remote...)), nil
}

// unionIDs returns the union of the id lists that are the first element of
// each of parts, as match's result: [ids], or [null] when there are none.
func unionIDs(parts [][]any) []any {
	seen := map[uint64]bool{}
	ids := []uint64{}
	add := func(v any) {
		var l []any
		switch x := v.(type) {
		case []any:
			l = x
		case []uint64:
			for _, id := range x {
				l = append(l, id)
			}
		}
		for _, e := range l {
			id := uint64(toInt(e))
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	for _, p := range parts {
		if len(p) > 0 {
			add(p[0])
		}
	}
	if len(ids) == 0 {
		return []any{nil}
	}
	return []any{ids}
}

func combineUnionByMatch(local []any, lerr *metaErr, remote [][]any, _ []*metaErr) ([]any, *metaErr) {
	var parts [][]any
	if lerr == nil {
		parts = append(parts, local)
	}
	parts = append(parts, remote...)
	out := map[string]any{}
	for _, m := range []string{"exact", "prefix", "wildcard"} {
		var lists [][]any
		for _, p := range parts {
			if len(p) == 0 {
				continue
			}
			if d, ok := p[0].(map[string]any); ok {
				lists = append(lists, []any{d[m]})
			}
		}
		u := unionIDs(lists)
		if u[0] == nil {
			out[m] = []uint64{}
		} else {
			out[m] = u[0]
		}
	}
	return []any{out}, nil
}

// ---------------------------------------------------------------- retained events

// meshRetained delivers the retained events matching sub, from every
// node: this node's and the others' (gathered), the newest per topic.
//
// A session has at most maxSessionGathers of these gathers waiting, as for
// its meta calls; the gathers of its further subscriptions wait their turn
// in the session (a subscriber may subscribe to many topics with
// get_retained at once, and each must get its events), so that one session
// cannot hold every gather of the node.
//
// The queue holds at most one request per subscription, window and
// subscriber (a SUBSCRIBE get_retained repeated while its request waits
// is answered by that one gather: counted in the request, retainedAsk.more,
// each SUBSCRIBE gets the retained events and its RetainedSent), and
// requests whose subscription or window went away are dropped before it
// grows past the session's subscriptions and maxSessionGatherQueue: so it
// is bounded by them. Before, the repeated SUBSCRIBE was not counted: the
// HTTP gateway's second event stream of a principal asking for one
// subscription's retained events while its session's gathers were busy got
// neither them nor their end, waited for them for good, and the next
// stream's went to it (TestMeshRetainedMergedAsksEachAnswered). Before, its comment
// said so but nothing did: a session that subscribed with get_retained
// and unsubscribed in a loop while its gathers were busy (a slow peer
// holds them up to gather_timeout) queued one request per pair, each
// holding its forgotten subscription and URI (2,000 pairs of 4 KiB
// topics: 7.9 MB), and one that repeated a SUBSCRIBE queued a mesh-wide
// gather per repetition.
// maxMergedAsks bounds the SUBSCRIBEs merged into one queued get_retained
// ask (retainedAsk.more): one answered gather delivers to each of them in
// one turn of the loop.
const maxMergedAsks = 64

func (s *Shard) meshRetained(ss *Session, ask retainedAsk) {
	t := &ss.retains
	limit := len(ss.subs) + maxSessionGatherQueue
	// In debt for the retained events the other nodes sent it
	// (chargeRemoteRetained), the session asks them again once it is
	// paid: it waits its turn as if its gathers were all busy.
	debt := t.busy < maxSessionGathers && s.walkDebt(ss, false)
	// Waiting for a gather of its address to end (addrGathers.wait),
	// the session's further gathers wait behind it, in order.
	blocked := debt || ss.retainsAddrWait
	if t.busy >= maxSessionGathers || blocked {
		if i := slices.IndexFunc(t.q, ask.same); i >= 0 {
			if t.q[i].more+1+ask.more <= maxMergedAsks {
				t.q[i].more += 1 + ask.more // each gets its delivery (deliverRetained)
				return
			}
			// Past maxMergedAsks the repetition gets this node's retained
			// events, and its end, in its turn in the walk budget, as an
			// exact get_retained SUBSCRIBE does on one node: delivering
			// thousands of merged asks at once when the gather answers
			// would hold the loop. They used to be sent at once, charged
			// nothing, in debt or not: while another node answered
			// slowly, a session repeating the SUBSCRIBE of a topic with a
			// 128 KiB event retained here had it sent 79 times of 160
			// with the clock stopped (TestMeshRetainedPastMergesCharged;
			// the budget allows 9).
			s.turn(ss, walk{run: func() int {
				if !ss.wantsRetained(ask) { // unsubscribed while it waited
					return 0
				}
				return s.sendRetained(ss, ask)
			}})
			return
		}
		if len(t.q) >= limit {
			t.q = slices.DeleteFunc(t.q, func(a retainedAsk) bool { return !ss.wantsRetained(a) })
		}
	}
	now, queued := t.take(ask, maxSessionGathers, limit)
	if blocked && now {
		if now, queued = false, len(t.q) < limit; queued {
			t.q = append(t.q, ask)
			if debt {
				s.parkRetains(ss)
			}
		}
	}
	switch {
	case !now && !queued:
		s.walkCharge(ss, int64(s.sendRetained(ss, ask)), false) // never, by the above; this node's only
		return
	case !now:
		return
	}
	sub := ask.sub
	key := s.gatherKey(ss)
	q, err := encodeQuery(ss.realm.name, metaRetained, []any{int64(sub.match), sub.uri}, nil)
	if err == nil {
		switch s.r.ms.addrs.wait(key, func() { s.Do(func() { s.addrWoken(ss, key) }) }) {
		case addrWaiting:
			// Its turn comes when one of the address's gathers ends.
			t.q = slices.Insert(t.q, 0, ask)
			ss.retainsAddrWait = true
			return
		case addrRefused:
			err = errAddrGathers
		}
	}
	if err == nil {
		err = s.r.gather(q, func(answers [][]byte, missing []string) {
			s.r.ms.addrs.done(key)
			s.Do(func() {
				ss.retains.busy--
				s.chargeRemoteRetained(ss, answers, missing)
				s.retainedGathered(ss, ask, answers)
				s.nextRetained(ss)
			})
		})
		if err != nil {
			s.r.ms.addrs.done(key)
		}
	}
	if err != nil {
		// This node's only (the node's or the address's gathers are all
		// taken), charged as on one node.
		s.walkCharge(ss, int64(s.sendRetained(ss, ask)), false)
		return
	}
	ss.retains.busy++
}

// nextRetained starts the gathers of ss's subscriptions that waited for a
// turn, while it has turns and its walk budget is not in debt
// (chargeRemoteRetained); in debt, they wait for it as a walk does (once,
// for them all: parkRetains).
func (s *Shard) nextRetained(ss *Session) {
	for ss.state == stEstablished {
		if len(ss.retains.q) == 0 || ss.retains.busy >= maxSessionGathers || ss.retainsParked || ss.retainsAddrWait {
			return
		}
		if s.walkDebt(ss, false) {
			s.parkRetains(ss)
			return
		}
		ask, ok := ss.retains.next(maxSessionGathers)
		if !ok {
			return
		}
		if ss.wantsRetained(ask) { // still subscribed
			s.meshRetained(ss, ask)
		}
	}
}

// parkRetains has ss's get_retained gathers waiting for its walk debt go
// on once it is paid: one entry in the walk queue for them all, so one
// timer however many wait.
func (s *Shard) parkRetains(ss *Session) {
	s.parkUntilPaid(ss, &ss.retainsParked, s.nextRetained, false)
}

// walkDebt reports whether ss's walk budget, or for a meta call (owned)
// its owner's, is in debt (refilled first).
func (s *Shard) walkDebt(ss *Session, owned bool) bool { return !s.walkReady(ss, owned) }

// chargeRemoteRetained charges ss's walk budget for the retained events
// the other nodes sent in answer to one of its get_retained SUBSCRIBEs,
// by their bytes (retainedBytesPerEntry), as this node's are on one node,
// whether the subscription still wants them or not (the other nodes
// encoded and sent them all the same). Before, they were charged to
// nobody: a session that repeated a 40-byte get_retained SUBSCRIBE of an
// exact topic had another node send it its 1 MiB retained event 446
// times in 3 s (149 MiB/s across the mesh), 16 gathers at a time.
//
// Each node asked costs meshAskCost besides, as for a gathered meta call
// (chargeRemote): an exact topic retained nowhere has empty answers, and
// a session repeating its get_retained SUBSCRIBE had every other node
// answer a query per SUBSCRIBE, charged nothing (3,200 with the clock
// stopped in TestMeshExactGetRetainedOfNothingCharged; now 544 at most).
//
// The HTTP gateway's sessions are charged the nodes asked but not the
// bytes, as this node's retained events are not charged to them
// (chargeLocalRetained, sendRetained): every event stream of a principal
// shares one, and the gateway's own limits bound its streams. Before,
// they were: a pooled session whose streams asked for a 64 KiB event
// retained on another node was in debt after 16 of them, and the next
// streams waited for it (TestMeshInProcessGetRetainedNotChargedForBytes).
// The nodes asked stay charged, as for the same session's gathered meta
// calls: they bound the queries its streams make the other nodes answer
// (a stream opened and closed in a loop).
func (s *Shard) chargeRemoteRetained(ss *Session, answers [][]byte, missing []string) {
	if ss.state != stEstablished {
		return
	}
	var n int64
	if _, inProcess := ss.peer.(InProcessPeer); !inProcess {
		for _, a := range answers {
			n += int64(len(a))
		}
	}
	s.walkCharge(ss, n/retainedBytesPerEntry+asked(len(answers), missing)*meshAskCost, false)
}

// retainedGathered merges the gathered retained events with this node's
// and delivers them, if ss is still subscribed (wantsRetained).
func (s *Shard) retainedGathered(ss *Session, ask retainedAsk, answers [][]byte) {
	if ss.state != stEstablished || !ss.wantsRetained(ask) {
		return
	}
	sub := ask.sub
	// Per topic the newest event ss would have received, of this node's
	// and the others' (each sends every event a topic keeps: the
	// unrestricted one and those with black/white lists before it).
	newest := map[string]*publication{}
	for _, p := range s.localRetained(ss.realm, sub) {
		if old := newest[string(p.topic)]; p.allowed(ss) && (old == nil || retainedAfter(p, old)) {
			newest[string(p.topic)] = p
		}
	}
	s.chargeLocalRetained(ss, newest)
	for _, a := range answers {
		r := rbuf{b: a}
		for r.err == nil && len(r.b) > 0 {
			env := r.bytes()
			_, p, err := decodeEvent(env)
			if err != nil || !matches(sub, string(p.topic)) {
				continue
			}
			p.retained = true
			if old := newest[string(p.topic)]; p.allowed(ss) && (old == nil || retainedAfter(p, old)) {
				newest[string(p.topic)] = p
			}
		}
	}
	pubs := make([]*publication, 0, len(newest))
	for _, p := range newest {
		pubs = append(pubs, p)
	}
	sort.Sort(retainedOrder{pubs: pubs}) // oldest first, as on one node
	s.chargeMergedRetained(ss, ask, pubs)
	s.deliverRetained(ss, ask, pubs, nil)
}

// chargeMergedRetained charges ss's walk budget for the deliveries of pubs
// to the SUBSCRIBEs merged into ask (ask.more), by their bytes, each as
// the first delivery is (chargeLocalRetained, chargeRemoteRetained); not
// the HTTP gateway's sessions, as there. Before, a gather was charged once
// however many SUBSCRIBEs it delivered to: a session that repeated the
// get_retained SUBSCRIBE of a topic with a 128 KiB event retained here 65
// times whenever nothing of it waited, on a healthy mesh, was sent 3,575
// of them in one second of the budget, which allows 72
// (TestMeshMergedGetRetainedChargedPerDelivery).
func (s *Shard) chargeMergedRetained(ss *Session, ask retainedAsk, pubs []*publication) {
	if ask.more == 0 {
		return
	}
	if _, inProcess := ss.peer.(InProcessPeer); inProcess {
		return
	}
	var n int64
	for _, p := range pubs {
		n += int64(p.c.size() + len(p.topic))
	}
	s.walkCharge(ss, n/retainedBytesPerEntry*int64(ask.more), false)
}

// chargeLocalRetained charges ss's walk budget for this node's retained
// events a mesh get_retained delivers (pubs, by topic), by their bytes, as
// sendRetained does on one node (and not for the HTTP gateway's sessions,
// as there). Before, only the other nodes' were charged (their answers'
// bytes): a session repeating a get_retained SUBSCRIBE of a topic with a
// 512 KiB event retained on its own node had it encoded and sent once per
// SUBSCRIBE (20 of 20 with the clock stopped; 3 now, the burst's 1 MiB).
func (s *Shard) chargeLocalRetained(ss *Session, pubs map[string]*publication) {
	if _, inProcess := ss.peer.(InProcessPeer); inProcess {
		return
	}
	var n int64
	for _, p := range pubs {
		n += int64(p.c.size() + len(p.topic))
	}
	s.walkCharge(ss, n/retainedBytesPerEntry, false)
}

// localRetained returns this node's retained events matching sub: every
// event a topic keeps (retainedEvent.older), newest first, for the
// subscriber's node to pick the newest it would have received.
func (s *Shard) localRetained(rm *Realm, sub *subscription) []*publication {
	var pubs []*publication
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	if sub.match == proto.MatchExact {
		for re := rm.retained[sub.uri]; re != nil; re = re.older {
			pubs = append(pubs, re.pub)
		}
		return pubs
	}
	for topic, head := range rm.retained {
		if matches(sub, topic) {
			for re := head; re != nil; re = re.older {
				pubs = append(pubs, re.pub)
			}
		}
	}
	return pubs
}

// answerRetained encodes this node's retained events matching the
// subscription in args ([match, uri]) as event envelopes.
func (s *Shard) answerRetained(rm *Realm, args []any) []byte {
	if len(args) != 2 {
		return nil
	}
	uri, _ := args[1].(string)
	match := proto.Match(toInt(args[0]))
	if match > proto.MatchWildcard || uri == "" {
		return nil
	}
	sub := &subscription{uri: uri, match: match}
	limit := s.r.meshLimit(maxRetainedAnswer)
	var w wbuf
	pubs := s.localRetained(rm, sub)
	for i, p := range pubs {
		env := appendEvent(nil, rm.name, p)
		if len(w)+binary.MaxVarintLen64+len(env) > limit {
			s.retainedLeftOut(rm, uri, len(pubs)-i)
			break
		}
		w.bytes(env)
	}
	return w
}

// retainedLeftOut counts the retained events left out of a get_retained
// answer for its size (MeshStats.RetainedLeftOut) and logs it, at most once
// per lateLogEvery (with the number of answers since the last line), with
// the subscription's URI cut to 64 bytes. A gather is one SUBSCRIBE of a
// client on another node, so that each line used to be the client's to
// ask for, with its URI of up to 4 KiB. On shard 0.
func (s *Shard) retainedLeftOut(rm *Realm, uri string, n int) {
	ms := s.r.ms
	ms.stats.RetainedLeftOut.Add(uint64(n))
	ms.retainedUnlogged++
	if now := time.Now(); now.Sub(ms.retainedLogAt) >= lateLogEvery {
		uri = logCut(uri) // the URI is the client's to choose
		s.r.log.Warn("mesh: retained events left out of a get_retained answer (too many bytes: 4 MiB per node and answer)",
			"realm", rm.name, "uri", uri, "left_out", n, "answers", ms.retainedUnlogged)
		ms.retainedLogAt, ms.retainedUnlogged = now, 0
	}
}

// meshDropRetained asks the other nodes to drop their copies of the
// retained events of rm with the publication ids ids, which this node,
// their publisher's, dropped: a copy would otherwise be handed out on
// their get_retained, and on this node's (a gather takes the newest per
// topic), as if nothing had been dropped. A node that is down or cut off
// meanwhile keeps its copy (logged when the query cannot be sent).
//
// Each query makes every other node scan all of the realm's retained
// events (dropRetainedCopies), and a PUBLISH refused its retained place
// for a bound drops the topic's earlier event: a publisher at its share
// taking turns with another on one topic made one query per PUBLISH pair,
// a scan of up to 65,536 topics on every other node for each. So at most
// one query is sent per dropRetainedDelay and realm (the first at once),
// those due meanwhile gathered into the next (at once past
// maxRetainedDrop ids).
func (s *Shard) meshDropRetained(rm *Realm, ids []uint64) {
	d := &rm.drops
	d.mu.Lock()
	d.ids = append(d.ids, ids...)
	var send []uint64
	now := time.Now()
	switch since := now.Sub(d.sentAt); {
	case len(d.ids) >= maxRetainedDrop || !d.armed && since >= dropRetainedDelay:
		send, d.ids, d.sentAt = d.ids, nil, now
	case !d.armed:
		d.armed = true
		time.AfterFunc(dropRetainedDelay-since, func() {
			if s.Do(func() { s.flushRetainedDrops(rm) }) != nil {
				s.flushRetainedDrops(rm) // stopping: as reload does (retainedRevoked)
			}
		})
	}
	d.mu.Unlock()
	s.sendRetainedDrops(rm, send)
}

// flushRetainedDrops sends the ids meshDropRetained gathered for rm.
func (s *Shard) flushRetainedDrops(rm *Realm) {
	d := &rm.drops
	d.mu.Lock()
	ids := d.ids
	d.ids, d.armed, d.sentAt = nil, false, time.Now()
	d.mu.Unlock()
	s.sendRetainedDrops(rm, ids)
}

// retainedDrops are a realm's ids waiting for meshDropRetained's query.
type retainedDrops struct {
	mu     sync.Mutex
	ids    []uint64
	armed  bool      // a flush is due
	sentAt time.Time // the last query
}

// dropRetainedDelay is the least time between two of a realm's
// meshDropRetained queries. A variable for tests.
var dropRetainedDelay = 100 * time.Millisecond

// sendRetainedDrops sends the queries of meshDropRetained.
func (s *Shard) sendRetainedDrops(rm *Realm, ids []uint64) {
	for len(ids) > 0 {
		part := ids[:min(len(ids), maxRetainedDrop)]
		ids = ids[len(part):]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		q, err := encodeQuery(rm.name, metaRetainedDrop, args, nil)
		if err == nil {
			err = s.r.gather(q, func([][]byte, []string) {})
		}
		if err != nil {
			s.r.log.Warn("mesh: cannot ask the other nodes to drop their copies of dropped retained events", "realm", rm.name, "count", len(part), "err", err)
		}
	}
}

// dropRetainedCopies drops this node's copies (events published on other
// nodes) of the retained events with the publication ids in args.
func (s *Shard) dropRetainedCopies(rm *Realm, args []any) {
	ids := make(map[uint64]bool, len(args))
	for _, a := range args {
		if id := toInt(a); id > 0 {
			ids[uint64(id)] = true
		}
	}
	if len(ids) == 0 {
		return
	}
	n, topic, _, _ := rm.dropRetained(func(_ string, re *retainedEvent) string {
		if re.by == nil && ids[re.pub.id] {
			return "dropped by its publisher's node"
		}
		return ""
	})
	if n > 0 {
		s.stats.RetainedRevoked.Add(uint64(n))
		s.r.log.Info("dropped copies of retained events their publisher's node dropped", "realm", rm.name, "count", n, "topic", topic)
	}
}

// ---------------------------------------------------------------- exclusive registrations

// maxSessionClaims bounds one session's REGISTERs of single registrations
// waiting for the claim store. The mesh's claim worker takes at most 1,024
// claims at a time for the whole node (edge): without a share per
// session, one session sending REGISTERs back to back kept it full, and
// every other session's REGISTER of a single registration failed with
// wamp.error.unavailable. Further ones wait their turn in the session (a
// callee commonly registers all its procedures at once), up to
// maxSessionClaimQueue; past that they get wamp.error.unavailable.
const (
	maxSessionClaims     = 64
	maxSessionClaimQueue = 4096
)

// meshClaim claims a single registration mesh-wide before registering it.
// It reports false when the normal path should answer (the registration
// is already in the tables: it refuses).
func (s *Shard) meshClaim(ss *Session, req uint64, match proto.Match, uri string, ce callee) bool {
	switch now, queued := ss.claims.take(queuedClaim{req: req, match: match, uri: uri, ce: ce}, maxSessionClaims, maxSessionClaimQueue); {
	case queued:
		return true
	case !now:
		s.replyError(ss, proto.CodeRegister, req, proto.URIUnavailable, "too many registrations of this session waiting for the mesh's claim store (limit "+strconv.Itoa(maxSessionClaims+maxSessionClaimQueue)+")")
		return true
	}
	rm := ss.realm
	k := regKey{match, uri}
	rm.mu.Lock()
	reg, exists := rm.regs.get(match, uri)
	held := exists && wonHeld(reg)
	if exists && !held && !staleRemoteSingle(reg) {
		rm.mu.Unlock()
		return false // addCallee answers
	}
	d := rm.dir()
	if d.claims[k] {
		rm.mu.Unlock()
		s.replyError(ss, proto.CodeRegister, req, proto.URIProcedureAlreadyExists, "procedure "+uri+" is being registered by another session")
		return true
	}
	if d.claims == nil {
		d.claims = map[regKey]bool{}
	}
	d.claims[k] = true
	ss.claims.busy++
	if held {
		// Not asked of the store while the winner's part is shown
		// (wonHeld): asked once it leaves, refused if it stays.
		rm.holdLocked(&heldGrant{s: s, ss: ss, req: req, match: match, uri: uri, ce: ce, unclaimed: true})
		rm.mu.Unlock()
		return true
	}
	rm.mu.Unlock()
	s.r.mesh.Claim(rm.name, match, uri, func(err error) {
		if s.Do(func() { s.claimed(ss, req, match, uri, ce, err) }) != nil && (err == nil || errors.Is(err, ErrMeshProvisional)) {
			s.r.mesh.Release(rm.name, match, uri)
		}
	})
	return true
}

// turns is one session's share of work the mesh does for the whole node
// (claims, gathers): at most max of its requests are under way (busy,
// counted by the caller when one starts and ends), the others wait their
// turn in order, at most wait of them. Owned by the session's shard.
type turns[T any] struct {
	busy int
	q    []T
}

// take reports whether x may start now; else x is queued, unless wait
// requests already are (then both are false).
func (t *turns[T]) take(x T, max, wait int) (now, queued bool) {
	switch {
	case t.busy < max:
		return true, false
	case len(t.q) >= wait:
		return false, false
	}
	t.q = append(t.q, x)
	return false, true
}

// full reports whether take would refuse one more request.
func (t *turns[T]) full(max, wait int) bool { return t.busy >= max && len(t.q) >= wait }

// next returns the first waiting request when a turn is free.
func (t *turns[T]) next(max int) (T, bool) {
	var zero T
	if len(t.q) == 0 || t.busy >= max {
		return zero, false
	}
	x := t.q[0]
	t.q[0] = zero
	t.q = t.q[1:]
	if len(t.q) == 0 {
		t.q = nil // let the grown array go
	}
	return x, true
}

// queuedClaim is a REGISTER of a single registration waiting for its turn
// to be claimed (maxSessionClaims).
type queuedClaim struct {
	req   uint64
	match proto.Match
	uri   string
	ce    callee
}

// nextClaim goes on with the REGISTERs of ss that waited for a turn, while
// it has turns: each is taken as if it had just arrived (the procedure
// may have been registered meanwhile).
func (s *Shard) nextClaim(ss *Session) {
	for ss.state == stEstablished {
		c, ok := ss.claims.next(maxSessionClaims)
		if !ok {
			return
		}
		if !s.meshClaim(ss, c.req, c.match, c.uri, c.ce) {
			s.addCallee(ss, c.req, c.match, proto.InvokeSingle, c.uri, c.ce, false)
		}
	}
}

// claimed completes a REGISTER once its claim is answered.
func (s *Shard) claimed(ss *Session, req uint64, match proto.Match, uri string, ce callee, err error) {
	if err == nil && ss.state == stEstablished && ss.realm.holdGrant(s, ss, req, match, uri, ce) {
		return // answered once the other node's part leaves, or refused (heldGrant)
	}
	s.claimDone(ss, req, match, uri, ce, err)
}

// A claim the store granted while this node's directory shows another
// node's single registration of the procedure, with callees (a standby's
// REGISTER that overtook the winner's UNREGISTER in the directory, or the
// store's gap after a conflict: the loser gave back the claim it had
// taken over, and the winner has not claimed it back yet). The REGISTER
// is answered once that part leaves the directory, within
// meshRevokeGrace: a part still shown then would have revoked this
// node's callee (it registered first), and the REGISTER is refused
// procedure_already_exists, the claim given back. Before, it was
// REGISTERED at once: a node that never saw the conflict (its sync of
// the loser's directory came after the loser revoked, or it joined
// after) held a second exclusive registration of a procedure that stands
// until the directory revoked it a second later. The claim stays marked
// (meshDir.claims) meanwhile, and the session's turn (claims.busy) taken.
//
// A REGISTER in the mesh's hold after a conflict of single registrations
// (wonHeld: this node lost it, or saw it between two other nodes) is
// held the same way before its claim (unclaimed), and asked of the store
// only once the winner's part leaves: the store may hold no claim for the
// winner's registration then (the winner claims it back within the
// hold), and the REGISTER is not granted from that gap, nor takes the
// key the winner claims back. Before, it was refused at once: a standby
// whose REGISTER overtook the winner's UNREGISTER in this node's
// directory within the hold was refused procedure_already_exists though
// nobody held the procedure.
type heldGrant struct {
	s         *Shard
	ss        *Session
	req       uint64
	match     proto.Match
	uri       string
	ce        callee
	unclaimed bool
}

// wonHeld reports whether reg is in the mesh's hold after a conflict of
// single registrations (registration.wonByRemote, remoteConflict) with
// the winner's part shown here. Call with rm.mu held.
func wonHeld(reg *registration) bool {
	return remoteSingleStands(reg) && (reg.remoteConflict || reg.wonByRemote && time.Now().Before(reg.wonUntil))
}

// remoteSingleStands reports whether reg is another node's single
// registration with callees, none of this node's. Call with rm.mu held.
func remoteSingleStands(reg *registration) bool {
	if reg.invoke != proto.InvokeSingle || reg.list().len() > 0 {
		return false
	}
	rl := reg.remote.Load()
	return rl != nil && len(*rl) > 0
}

// holdGrant holds a claim the store granted (heldGrant) while the
// directory shows another node's single part of it, and reports whether
// it did. Shard goroutine.
func (rm *Realm) holdGrant(s *Shard, ss *Session, req uint64, match proto.Match, uri string, ce callee) bool {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if reg, ok := rm.regs.get(match, uri); !ok || !remoteSingleStands(reg) {
		return false
	}
	rm.holdLocked(&heldGrant{s: s, ss: ss, req: req, match: match, uri: uri, ce: ce})
	return true
}

// holdLocked holds g until the other node's part of its procedure leaves
// the directory, meshRevokeGrace at most. Call with mu held for writing.
func (rm *Realm) holdLocked(g *heldGrant) {
	k := regKey{g.match, g.uri}
	d := rm.dir()
	if d.grants == nil {
		d.grants = map[regKey]*heldGrant{}
	}
	d.grants[k] = g // one at a time: the key stays in d.claims
	time.AfterFunc(meshRevokeGrace, func() {
		rm.mu.Lock()
		defer rm.mu.Unlock()
		if rm.mdir != nil && rm.mdir.grants[k] == g {
			rm.settleGrant(k, g)
		}
	})
}

// grantsChanged settles the held grant of k, if any, once the directory
// no longer shows another node's single part of it. Call with mu held
// for writing, after a directory change of k.
func (rm *Realm) grantsChanged(k regKey) {
	g := rm.mdir.grants[k]
	if g == nil {
		return
	}
	if reg, ok := rm.regs.get(k.match, k.uri); ok && remoteSingleStands(reg) {
		return
	}
	rm.settleGrant(k, g)
}

// settleGrant ends g's wait: its shard answers it (grantSettled). Call
// with mu held.
func (rm *Realm) settleGrant(k regKey, g *heldGrant) {
	delete(rm.mdir.grants, k)
	if len(rm.mdir.grants) == 0 {
		rm.mdir.grants = nil
	}
	if g.s.Do(func() { g.s.grantSettled(g) }) != nil && !g.unclaimed {
		rm.r.mesh.Release(rm.name, g.match, g.uri)
	}
}

// grantSettled answers a held grant: REGISTERED when the other node's
// part left the directory, else refused and the claim given back.
func (s *Shard) grantSettled(g *heldGrant) {
	rm := g.ss.realm
	rm.mu.Lock()
	reg, ok := rm.regs.get(g.match, g.uri)
	stands := ok && remoteSingleStands(reg)
	if g.unclaimed {
		delete(rm.dir().claims, regKey{g.match, g.uri})
	}
	rm.mu.Unlock()
	if g.unclaimed {
		g.ss.claims.busy--
		defer s.nextClaim(g.ss)
		switch {
		case g.ss.state != stEstablished:
		case stands:
			s.replyError(g.ss, proto.CodeRegister, g.req, proto.URIProcedureAlreadyExists, "procedure "+strconv.Quote(g.uri)+" is already registered")
		case !s.meshClaim(g.ss, g.req, g.match, g.uri, g.ce):
			s.addCallee(g.ss, g.req, g.match, proto.InvokeSingle, g.uri, g.ce, false)
		}
		return
	}
	if stands && g.ss.state == stEstablished {
		s.r.mesh.Release(rm.name, g.match, g.uri)
		s.claimDone(g.ss, g.req, g.match, g.uri, g.ce, ErrMeshClaimed)
		return
	}
	s.claimDone(g.ss, g.req, g.match, g.uri, g.ce, nil)
}

// claimDone completes a REGISTER once its claim is answered (and, granted,
// not held: heldGrant).
func (s *Shard) claimDone(ss *Session, req uint64, match proto.Match, uri string, ce callee, err error) {
	ss.claims.busy--
	defer s.nextClaim(ss)
	rm := ss.realm
	rm.mu.Lock()
	delete(rm.dir().claims, regKey{match, uri})
	rm.mu.Unlock()
	provisional := errors.Is(err, ErrMeshProvisional)
	if ss.state != stEstablished {
		if err == nil || provisional {
			s.r.mesh.Release(rm.name, match, uri)
		}
		return
	}
	switch {
	case errors.Is(err, ErrMeshClaimed):
		s.replyError(ss, proto.CodeRegister, req, proto.URIProcedureAlreadyExists, "procedure "+uri+" is registered on another node of the mesh")
	case err != nil && !provisional:
		s.replyError(ss, proto.CodeRegister, req, proto.URIUnavailable, "the mesh could not claim the procedure: "+err.Error())
	default:
		// Granted by the store: it, not a directory entry that may lag
		// behind it, says the procedure is free. Provisional: the
		// directory is all there is to go by.
		ce.claimed = !provisional
		if !s.addCallee(ss, req, match, proto.InvokeSingle, uri, ce, false) {
			s.r.mesh.Release(rm.name, match, uri)
		}
	}
}
