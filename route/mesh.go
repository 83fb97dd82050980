package route

import (
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// # The mesh: what route needs from other routers
//
// A Router alone is a complete WAMP router. Several Routers become one
// router through a Mesh, which package edge implements on an embedded NATS
// server. route never imports edge or NATS: it declares Mesh (what it asks
// of the other nodes) and exposes entry points (the Router.Mesh* methods)
// through which the mesh hands it what other nodes sent. A Router without a
// Mesh pays one nil check on the call and publish paths, nothing else.
//
// # What is shared and what is not
//
// Route keeps only its own sessions. Nothing about a remote session lives
// here: no proxy session per remote caller, callee or subscriber (that
// would cost memory per remote session on every node and a round of state
// replication per join). Instead:
//
//   - Subscriptions are not replicated at all. The node tells the mesh when
//     it gets its first subscription of a (realm, match, URI) and when its
//     last one goes (Subscribe/Unsubscribe); the mesh turns that into NATS
//     interest, so a publication reaches exactly the nodes that have a
//     matching subscription. Every PUBLISH (and meta event, and testament)
//     is handed to Mesh.Publish after the local fan-out; on the receiving
//     node the event is matched against the local tables once and fanned
//     out like a local publication (MeshDeliver). The mesh drops the
//     duplicates NATS delivers for overlapping subscriptions (MeshEventID).
//   - Registrations are replicated as a directory: per node and
//     registration, the policy, the number of callees and the REGISTER
//     times of the earliest and latest of them (MeshReg). Each node tells
//     the mesh about its own (Registered); the mesh gossips them and feeds
//     the other nodes' entries back with MeshRegs. A remote entry is a
//     remote callee inside route's own registration table (one per node,
//     not per session), so the best-match rules for exact, prefix and
//     wildcard registrations, the L1 caches and the invocation policies work
//     on the union of local and remote callees with no lookup elsewhere.
//     Calls travel node to node (Mesh.Send), not through a NATS queue
//     group: the caller's node knows which node holds each call it sent,
//     so it can fail exactly those calls when that node dies, and it
//     applies the invocation policy itself (queue groups have no local
//     preference inside a NATS cluster).
//
// # Invocation policies across nodes
//
//   - single: one callee in the whole mesh (see exclusive registrations).
//   - roundrobin, random: local first. A node with a callee of its own
//     never sends the call away; a node without one rotates (or picks at
//     random) among the nodes that have callees, and that node rotates (or
//     picks) among its own.
//   - first, last: the callee with the earliest (latest) REGISTER time in
//     the mesh, by the callee node's clock (nodes should run NTP; ties go to
//     the local node).
//
// A progressive call invocation is picked among the callees that
// announced progressive_call_invocations, as on one node (pickCallee):
// the directory says how many each node has, and when the first and the
// last of them registered (MeshReg.Prog; in payload passthru mode, of
// those that announced payload_passthru_mode too, MeshReg.ProgPPT), and
// the caller's node picks by the policy among the nodes with one
// (meshPickProgressive; a reroute too, pickUntried); a node that did not
// say (the previous release) counts as one that may have one.
// Its later chunks follow the first to the node it went to, so the pick
// must be right at once: a refusal there comes back after the chunks
// that followed have gone.
//
// # Calls, results and cancels
//
// The caller's shard sends the CALL (raw payload in the caller's
// serializer, caller identity, options that matter to the callee's node)
// to the chosen node and keeps the call in its usual table plus a per-shard
// index by invocation id (mcalls). The callee's node picks a local callee
// by policy and delivers the INVOCATION; an invocation it cannot deliver
// (the callee left, a stale directory) is bounced back whole, and the
// caller's node sends it to another node (a bounced call was never
// delivered, so resending it is safe; a delivered CALL is resent only when
// its callee answered wamp.error.unavailable, which the result envelope
// says, and then by the caller's node to an untried callee: reroute.go).
// YIELDs and ERRORs go back to the caller's node and shard, in order (one
// NATS connection per node, FIFO), and are transcoded there, once, only if
// the caller speaks another serializer. Progressive call invocations send
// further chunks to the node holding the call; CANCEL, timeouts and a
// leaving caller send an interrupt; the callee's node applies the cancel
// mode as the single-node router does (a callee without call canceling
// gets skip semantics and the caller its ERROR at once). Disclosure,
// forward_timeout and pattern details are applied at the callee's node,
// which knows its callee's registration options.
//
// # Nodes that go away
//
// The mesh detects a dead or unreachable node (heartbeats; within a few
// seconds, configurable) and calls MeshNodeDown: the node's directory
// entries leave the tables, every call this node had sent to it fails with
// wamp.error.canceled, and every invocation its callers had made here is
// interrupted (killnowait) or forgotten. Nothing is left pending. Once
// every event the node sent before has been delivered, the mesh calls
// MeshSessionsGone: the node's sessions that did not announce their
// on_leave are announced to this node's subscribers (mesh_presence.go).
//
// # Exclusive registrations
//
// A single registration must be exclusive mesh-wide. The REGISTER is
// answered only once the mesh has claimed the procedure (Mesh.Claim: a
// JetStream KV Create in edge), so two nodes racing for it get one
// REGISTERED and one wamp.error.procedure_already_exists. When the claim
// store is unreachable (a partitioned node), the mesh accepts the claim
// provisionally: the node keeps serving its local clients. Whatever the
// store says, the directory is the final arbiter: when two nodes hold
// incompatible registrations for the same procedure and match (single
// against anything, or two different shared policies), the one whose
// earliest callee registered first wins and the other node revokes its own
// callees (registration revocation, or GOODBYE for a callee that does not
// announce it). Both nodes see both entries and apply the same rule, so on
// heal exactly one side gives way.
//
// # Retained events, the meta API and ids
//
//   - A retained event is kept on the publisher's node and on every node
//     that received it. get_retained gathers the matching retained events
//     of every node (Mesh.Gather, a short deadline) and delivers the newest
//     per topic. The live events of the subscription wait meanwhile, and
//     those the retained events supersede are dropped (retwin.go): the
//     live copy of a retained event may arrive before or after the answer.
//   - wamp.session.*, the subscription meta procedures and the callee
//     lists of registrations scatter-gather (Mesh.Gather): each node answers
//     for its own sessions (MeshQuery) and the caller's node combines the
//     answers. Registration lookups are answered locally (the directory has
//     them). Meta events are ordinary publications and cross the mesh as
//     such; each node announces its own sessions, registrations and
//     subscriptions, but for the on_leave of a node that left without
//     closing its sessions, which every node with a local on_leave
//     subscriber announces to its own (mesh_presence.go).
//   - Session ids stay unique mesh-wide: with a mesh, an id is 43 random
//     bits followed by the node's 10-bit slot (AttachMesh). Registration
//     and subscription ids are derived from (realm, match, URI), so that
//     every node names the same registration or subscription by the same
//     id in the meta API.
//
// # Threading
//
// Mesh methods are called on shard goroutines (under Realm.mu for
// Subscribe, Unsubscribe and Registered, so that the mesh sees the changes
// of one realm in table order) and must never block. The Router.Mesh*
// entry points may be called from any goroutine; they never block either:
// they read tables under Realm.mu and hand the work to shards as tasks.

// MeshNode names another node of the mesh. The mesh assigns them and
// never reuses one, so a handle kept for a node that died never designates
// another node. 0 is no node.
type MeshNode uint32

// Mesh is what a Router needs from the other routers of a mesh. It is
// implemented by package edge. Every method must return without blocking;
// byte slices passed in are valid only during the call.
type Mesh interface {
	// Subscribe tells the mesh that this node has its first subscription
	// of (realm, match, uri); Unsubscribe that its last one went. Called
	// with the realm's lock held.
	Subscribe(realm string, match proto.Match, uri string)
	Unsubscribe(realm string, match proto.Match, uri string)
	// Registered tells the mesh that this node's callees of a registration
	// changed; reg.Callees is 0 when the node has none left. Called with
	// the realm's lock held.
	Registered(realm string, reg MeshReg)
	// Claim asks for the mesh-wide exclusive right to a single
	// registration. done runs exactly once, on any goroutine: nil when the
	// claim is granted, ErrMeshProvisional when it is accepted without
	// the store, ErrMeshClaimed when another node holds it. Release gives
	// a claim back (a provisional one too).
	Claim(realm string, match proto.Match, uri string, done func(error))
	Release(realm string, match proto.Match, uri string)
	// Released calls done once, on any goroutine, when the releases asked
	// for before it have reached the claim store (or the store did not
	// answer them in time); at once when there is nothing to wait for. A
	// node answers an UNREGISTER of its last callee of a single
	// registration after it, so that a REGISTER on another node right
	// after the UNREGISTERED finds the claim given back.
	Released(done func())
	// Publish sends an event envelope for topic in realm to the nodes that
	// subscribed to it.
	Publish(realm string, topic []byte, env []byte) error
	// Send sends an envelope (a call, a chunk, an interrupt, a result) to
	// one node. An error means it was not queued.
	Send(node MeshNode, env []byte) error
	// Gather sends a query envelope to every other live node and calls
	// done once, on any goroutine, with the answers that came back by the
	// mesh's deadline and the nodes whose answers are missing: the names
	// of those it waited for that did not answer in time, and "" when
	// there are nodes it knows exist but has not heard from (its routes
	// to them still forming, or missing). missing is empty when every
	// node answered. It returns an error, and does not call done, when
	// the query cannot be sent.
	Gather(env []byte, done func(answers [][]byte, missing []string)) error
}

// MeshMessageLimit is implemented by a Mesh that carries at most
// MaxMessage bytes in one message (edge: the NATS server's max_payload;
// 0: not known yet). A node's answer to another node's get_retained is
// cut to it (maxRetainedAnswer otherwise): a larger one was refused whole
// by the mesh, and the subscriber got none of that node's retained
// events. Safe for concurrent use.
type MeshMessageLimit interface {
	MaxMessage() int
}

// MeshPeerWindow is implemented by a Mesh that takes a node silent for
// PeerTimeout for dead: an interrupt lost with a link cut shorter than
// that is sent again past it (Shard.echoStop; meshEchoAfter otherwise).
// Read once, at AttachMesh.
type MeshPeerWindow interface {
	PeerTimeout() time.Duration
}

// MeshWonHold is implemented by a Mesh whose claim store a conflict's
// winner claims again at its own pace: WonHold is how long after this
// node lost a conflict of single registrations its directory, not the
// claim store, refuses REGISTERs of the procedure (meshWonHold
// otherwise). Read once, at AttachMesh.
type MeshWonHold interface {
	WonHold() time.Duration
}

// MeshClaimCheck is implemented by a Mesh whose claim store another
// node may take this node's claims over in (while it takes this node for
// dead, or before it hears it again after a heal): CheckClaims asks it
// to check the claims this node holds against the store, and claim again
// those it no longer holds. The router calls it when another node's
// single part of a single registration this node has callees of leaves
// the directory: a conflict's loser gives back, as it revokes its
// callees, the claim it may have taken over, and the store then holds
// none for this node's registration. Called with a realm's lock held:
// it must not block.
type MeshClaimCheck interface {
	CheckClaims()
}

// MeshClaimShare is implemented by a Mesh whose claim store, shared by
// every node, bounds what one session may hold of it: SessionClaims is
// the most single registrations a session holds, or waits to claim, at
// once (read once, at AttachMesh; 0: no bound). Past it a single
// REGISTER is refused wamp.error.unavailable and ClaimShareRefused is
// called (a metric). Before, one session's single registrations filled
// the mesh's claim store, and every node's were refused.
type MeshClaimShare interface {
	SessionClaims() int
	ClaimShareRefused()
}

// MeshEndSender is implemented by a Mesh that keeps room in its bounded
// outbound queue for the small messages that end a call another node
// waits for (SendEnd): an error answering a caller on another node (a
// refusal, or the error that replaces a callee's answer the mesh refused)
// and an INTERRUPT to a callee's node. Sent as any other (Send), such a
// message was refused by the full queue that had refused what it stands
// for: the caller on the other node waited for its timeout, for ever
// without one, or the callee's node held the invocation. Safe for
// concurrent use; it never blocks.
type MeshEndSender interface {
	SendEnd(node MeshNode, env []byte) error
}

// meshSendEnd sends env, a small message that ends a call (MeshEndSender),
// to node, through SendEnd when the mesh has it. Off the per-call path:
// refusals, errors and interrupts only.
func (r *Router) meshSendEnd(node MeshNode, env []byte) error {
	if es, ok := r.mesh.(MeshEndSender); ok {
		return es.SendEnd(node, env)
	}
	return r.mesh.Send(node, env)
}

// MeshReg is one node's part of a registration in the mesh directory.
type MeshReg struct {
	Match  proto.Match
	URI    string
	Invoke proto.Invoke
	// Callees is the number of the node's callees; 0 when it has none.
	Callees int
	// First and Last are the REGISTER times (unix ns, the node's clock) of
	// the node's earliest and latest callee.
	First, Last int64
	// Prog is the part of the node's callees that announced
	// progressive_call_invocations; its Known is false when the node did
	// not say (a node of the previous release, whose callees then may or
	// may not take such calls).
	Prog MeshCapable
	// ProgPPT is the part of them that announced payload_passthru_mode
	// too, which a progressive call invocation in payload passthru mode
	// needs; its Known is false when the node said no more than Prog
	// (the same callees as Prog's, or none said).
	ProgPPT MeshCapable
}

// MeshCapable is the part of a node's callees of a registration that
// can take a call which needs a feature of its callee.
type MeshCapable struct {
	// Known: the node said; the fields below are 0 otherwise.
	Known bool
	// Callees is how many of the node's callees can (0 ≤ Callees ≤
	// MeshReg.Callees).
	Callees int
	// First and Last are the REGISTER times of the earliest and latest of
	// them, for a first or last registration with Callees > 0 (else 0).
	First, Last int64
}

// ErrMeshTooLarge is the error a Mesh returns from Send or Publish for an
// envelope larger than it carries in one message (MeshMessageLimit).
var ErrMeshTooLarge = errors.New("the message is larger than the mesh carries (its NATS max_payload)")

// ErrMeshClaimed is the error of a claim another node holds.
var ErrMeshClaimed = errors.New("route: the procedure is registered on another node")

// ErrMeshProvisional is a claim's answer when the claim store could not
// be asked (a partition, no quorum) and the claim was accepted
// provisionally: the REGISTER succeeds unless the directory shows another
// node's callees of the procedure. A nil answer (the store granted it)
// overrides the directory, which can lag behind the store.
var ErrMeshProvisional = errors.New("route: the claim was accepted provisionally (the claim store did not answer)")

// ErrMeshAttached is returned by AttachMesh when the router already has a
// mesh or already has sessions.
var ErrMeshAttached = errors.New("route: a mesh can only be attached once, before any session")

// MaxMeshSlot is the largest node slot (10 bits).
const MaxMeshSlot = 1023

// MeshSlot returns the session-id slot of a node named name: a stable
// number in [1, MaxMeshSlot]. Nodes whose slots collide still get
// distinct session ids with overwhelming probability (43 random bits), but
// no longer by construction; the mesh warns about it.
func MeshSlot(name string) uint16 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return uint16(h.Sum32()%MaxMeshSlot) + 1
}

// meshState is what a Router keeps about its mesh. Static after
// AttachMesh, except the counters.
type meshState struct {
	name string // this node's name
	slot uint64 // session-id low bits
	// wonHold is how long the directory refuses a procedure whose
	// conflict this node lost (MeshWonHold, meshWonHold).
	wonHold time.Duration
	// echoAfter is when an interrupt of a call without a timeout is sent
	// again (Shard.echoStop). Static after AttachMesh.
	echoAfter time.Duration
	// sessionClaims bounds a session's single registrations (held, and
	// waiting for the claim store); 0: none. share is the mesh's, told of
	// each refusal (MeshClaimShare).
	sessionClaims int
	share         MeshClaimShare
	// check is told when a conflicting single part leaves (MeshClaimCheck).
	check MeshClaimCheck

	// invs counts invocations from other nodes in flight here; past
	// Config.MaxMeshInvocations new ones are refused.
	invs atomic.Int64

	// live holds the (node, call id) of every call from another node this
	// node took (counted in invs), until it is delivered and ended, or
	// bounced, refused or forgotten: a copy of a call envelope that
	// arrives meanwhile (a link that delivers one twice) is dropped and
	// counted (MeshStats.BadEnvelopes), where it was refused with
	// wamp.error.protocol_violation, which ended the caller's call while
	// its callee served it, or, on another shard, invoked a second callee.
	// Striped by call id. Each entry says which shard the invocation was
	// posted to (place), where its further chunks and its interrupts go,
	// and the cancel mode of an interrupt a shard got for the call before
	// any shard held its invocation (interrupted).
	live [liveStripes]liveSet

	// chunkBytes counts the bytes of chunks of progressive invocations
	// from other nodes that the shard holding their invocation has yet to
	// run (see MeshDeliver); past maxCallBacklog further chunks end their
	// invocation.
	chunkBytes atomic.Int64

	stats MeshStats

	// addrs counts the gathers of this node's sessions by client address
	// (mesh_addrgathers.go).
	addrs addrGathers

	// endedTwice counts the gathers the Mesh both answered and refused
	// (Router.gather).
	endedTwice atomic.Int64
	// asksQueued is the bytes of the gathered meta calls waiting in their
	// sessions for a turn to ask the other nodes (their queries, and
	// askOverhead each), all sessions together (maxQueuedAsks).
	asksQueued atomic.Int64
	// stopsLogged is when logStopDropped last logged (Router.now, ns;
	// 0: never); every shard's.
	stopsLogged atomic.Int64

	// lateLogAt and lateUnlogged space the log lines of late meta
	// queries (lateQuery); shard 0's.
	lateLogAt    time.Time
	lateUnlogged uint64
	// bigLogAt and bigUnlogged space the log lines of answers too
	// large for the mesh (answerQuery); shard 0's.
	bigLogAt    time.Time
	bigUnlogged uint64

	// retainedLogAt and retainedUnlogged space the log lines of
	// get_retained answers cut short (retainedLeftOut); shard 0's.
	retainedLogAt    time.Time
	retainedUnlogged uint64
}

// liveStripes is the number of locks of meshState.live.
const liveStripes = 16

// liveSet is a stripe of meshState.live.
type liveSet struct {
	mu   sync.Mutex
	m    map[minvKey]liveEntry
	peak int // m's peak since its last copy (mapshrink.go); guarded by mu
}

// liveEntry is what meshState.live knows of a call from another node.
type liveEntry struct {
	intr   uint8 // the cancel mode + 1 of an interrupt remembered (interrupted); 0: none
	shard  uint8 // the shard its invocation was posted to, when placed (maxShards is 256)
	placed bool
}

// take records k as a call in flight here; false when it is already
// (a duplicate envelope). Any goroutine.
func (ms *meshState) take(k minvKey) bool {
	ls := &ms.live[k.callID%liveStripes]
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if _, dup := ls.m[k]; dup {
		return false
	}
	if ls.m == nil {
		ls.m = map[minvKey]liveEntry{}
	}
	ls.m[k] = liveEntry{}
	return true
}

// place records that the invocation of k, taken, is posted to shard
// (again, when picked for again on another shard): its further chunks and
// its interrupts go there (shardOf). Any goroutine.
func (ms *meshState) place(k minvKey, shard int) {
	ls := &ms.live[k.callID%liveStripes]
	ls.mu.Lock()
	if e, ok := ls.m[k]; ok {
		e.shard, e.placed = uint8(shard), true
		ls.m[k] = e
	}
	ls.mu.Unlock()
}

// shardOf returns the shard the invocation of k was posted to (place);
// taken is false when k is not a call in flight here (it ended, or was
// bounced, refused or never taken), placed false when it is but was not
// posted yet. Any goroutine.
func (ms *meshState) shardOf(k minvKey) (shard int, taken, placed bool) {
	ls := &ms.live[k.callID%liveStripes]
	ls.mu.Lock()
	e, ok := ls.m[k]
	ls.mu.Unlock()
	return int(e.shard), ok, e.placed
}

// liveGone is liveEntry.intr for a call whose caller's node left the
// mesh (nodeGone).
const liveGone = 0xff

// nodeGone marks every call node's callers made here that is still in
// flight as one whose caller's node left: one not delivered yet (on its
// way to a shard, or picked for again after its callee unregistered) is
// not delivered (meshDeliver reads the mark), where the shards' walk of
// what they hold (meshNodeDown) could come before it reached a shard. It
// walks every stripe under its lock: once per node that leaves, off the
// per-call path. Any goroutine.
func (ms *meshState) nodeGone(node MeshNode) {
	for i := range ms.live {
		ls := &ms.live[i]
		ls.mu.Lock()
		for k, e := range ls.m {
			if k.node == node {
				e.intr = liveGone
				ls.m[k] = e
			}
		}
		ls.mu.Unlock()
	}
}

// interrupted records the interrupt mode for k, a call taken here whose
// invocation the shard running the interrupt does not hold (it may be on
// its way to another shard's callee, posted again after its first pick
// unregistered: meshDeliver reads it before delivering). The later mode
// of two wins. It returns the shard the invocation is placed on now, and
// ok false when k is not taken (or not placed). Any goroutine.
func (ms *meshState) interrupted(k minvKey, mode proto.CancelMode) (shard int, ok bool) {
	ls := &ms.live[k.callID%liveStripes]
	ls.mu.Lock()
	defer ls.mu.Unlock()
	e, ok := ls.m[k]
	if !ok {
		return 0, false
	}
	if e.intr != liveGone { // a departed caller's node waits for nothing
		e.intr = uint8(mode) + 1
		ls.m[k] = e
	}
	return int(e.shard), e.placed
}

// interruptOf returns the interrupt recorded for k (interrupted): for
// a call whose caller's node left (nodeGone), killnowait, for no answer
// is to be sent.
func (ms *meshState) interruptOf(k minvKey) (proto.CancelMode, bool) {
	ls := &ms.live[k.callID%liveStripes]
	ls.mu.Lock()
	v := ls.m[k].intr
	ls.mu.Unlock()
	if v == liveGone {
		return proto.CancelKillNoWait, true
	}
	return proto.CancelMode(v - 1), v != 0
}

// done forgets k (take), and takes it out of invs when counted there.
// Any goroutine.
func (ms *meshState) done(k minvKey, counted bool) {
	ls := &ms.live[k.callID%liveStripes]
	ls.mu.Lock()
	n := len(ls.m)
	delete(ls.m, k)
	if shrinkDue(&ls.peak, n, len(ls.m)) {
		// A peak of calls from other nodes grew the stripe's table,
		// which Go never shrinks: 32,768 calls, all but 8 ended, left
		// the 16 stripes 1,706 KiB (TestMeshLiveTableShrinksAfterPeak).
		// A compare a delete; the copy, under the stripe's lock, at
		// most once per eighth of the peak's deletes. A stripe's
		// floor is its share of a table's (mapShrinkMin): with the
		// whole floor each, a peak under 16,384 calls shrank none,
		// and 16,000 left 853 KiB
		// (TestMeshLiveTableShrinksAfterPeakUnderStripeMinimum).
		shrinkMapFrom(&ls.m, &ls.peak, mapShrinkMin/liveStripes)
	}
	ls.mu.Unlock()
	if counted {
		ms.invs.Add(-1)
	}
}

// liveCount returns how many calls from other nodes this node holds as
// taken (live): delivered or on their way to a shard. Any goroutine; it
// takes each stripe's lock in turn.
func (ms *meshState) liveCount() int {
	n := 0
	for i := range ms.live {
		ls := &ms.live[i]
		ls.mu.Lock()
		n += len(ls.m)
		ls.mu.Unlock()
	}
	return n
}

// MeshStats are the mesh counters of a Router.
type MeshStats struct {
	// Refused counts invocations from other nodes refused because too many
	// were in flight.
	Refused atomic.Uint64
	// CallsRefused counts this node's sessions' calls refused because the
	// session had Config.MaxMeshCalls in flight to other nodes.
	CallsRefused atomic.Uint64
	// SendFailed counts envelopes the mesh would not queue (its outbound
	// budget was full): events dropped, calls failed with
	// wamp.error.unavailable.
	SendFailed atomic.Uint64
	// Bounced counts calls another node sent back undelivered and that were
	// sent on to another node (or, a call that may be rerouted, to a
	// callee of this node: reroute.go).
	Bounced atomic.Uint64
	// Revoked counts callees revoked to resolve a registration conflict
	// between nodes.
	Revoked atomic.Uint64
	// BadEnvelopes counts envelopes from other nodes that did not decode.
	BadEnvelopes atomic.Uint64
	// LateQueries counts meta queries from other nodes not run because
	// they came after their askers had stopped waiting (Router.MeshQuery).
	LateQueries atomic.Uint64
	// EventsOverflow counts events from other nodes dropped for a shard
	// whose queue of them was full (maxMeshBacklog: the shard's
	// subscribers did not keep up with the publishers elsewhere).
	EventsOverflow atomic.Uint64
	// RetainedLeftOut counts this node's retained events left out of its
	// answers to other nodes' get_retained gathers because an answer
	// holds at most maxRetainedAnswer bytes.
	RetainedLeftOut atomic.Uint64
	// AnswersTooLarge counts this node's answers to other nodes' meta
	// calls (wamp.session.list, the subscription and callee lists) larger
	// than the mesh carries in one message (MeshMessageLimit): answered
	// edgewamp.mesh.not_answered instead, so that the asker's result says
	// it is partial.
	AnswersTooLarge atomic.Uint64
	// PresenceUntracked counts other nodes' sessions left out of those
	// whose on_leave this node announces when their node leaves without
	// closing them (past maxPresence in a realm, or past what a node puts
	// in its answer), and trackings that could not start complete
	// (mesh_presence.go).
	PresenceUntracked atomic.Uint64
	// PresenceAnnounced counts the on_leave this node announced to its
	// subscribers for sessions of nodes that left the mesh.
	PresenceAnnounced atomic.Uint64
	// InvocationsExpired counts invocations from other nodes' callers
	// ended here past their caller's timeout (and a grace), their
	// caller's node's interrupt lost on its way (a link cut).
	InvocationsExpired atomic.Uint64
	// StopsDropped counts interrupts of calls to other nodes' callees
	// the mesh refused (its outbound queue full) and that were not kept
	// to send again: a shard kept maxLostStops already. The callee's
	// node holds the invocation until its callee answers or its caller's
	// timeout and a second pass (for ever for a call without a timeout
	// whose callee waits for its INTERRUPT).
	StopsDropped atomic.Uint64
	// EchoesDropped counts interrupts of calls without a timeout sent
	// but not kept to send once more past the peer timeout (Shard.
	// echoStop): a shard kept maxLostStops already. One of them lost
	// with a link cut leaves its invocation held, as StopsDropped.
	EchoesDropped atomic.Uint64
}

// AttachMesh joins the router to a mesh as the node name (unique in the
// mesh). slot (1..MaxMeshSlot) is the node's session-id slot (see
// MeshSlot). Call it once, after New and before any transport opens a
// session.
func (r *Router) AttachMesh(m Mesh, name string, slot uint16) error {
	if m == nil || name == "" || slot == 0 || slot > MaxMeshSlot {
		return errors.New("route: AttachMesh needs a mesh, a node name and a slot in [1, 1023]")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mesh != nil || len(r.sessions) > 0 {
		return ErrMeshAttached
	}
	r.ms = &meshState{name: name, slot: uint64(slot), wonHold: meshWonHold}
	if h, ok := m.(MeshWonHold); ok && h.WonHold() > 0 {
		r.ms.wonHold = h.WonHold()
	}
	r.ms.echoAfter = meshEchoAfter
	if w, ok := m.(MeshPeerWindow); ok && w.PeerTimeout() > 0 {
		r.ms.echoAfter = w.PeerTimeout() + meshInvGrace
	}
	if cc, ok := m.(MeshClaimCheck); ok {
		r.ms.check = cc
	}
	if cs, ok := m.(MeshClaimShare); ok && cs.SessionClaims() > 0 {
		r.ms.sessionClaims, r.ms.share = cs.SessionClaims(), cs
	}
	r.mesh = m
	return nil
}

// MeshStats returns the router's mesh counters (nil without a mesh).
func (r *Router) MeshStats() *MeshStats {
	if r.ms == nil {
		return nil
	}
	return &r.ms.stats
}

// sessionIDCandidate draws a session id: random in [1, 2^53] alone, 43
// random bits and the node's slot in a mesh.
func (r *Router) sessionIDCandidate() uint64 {
	if r.ms == nil {
		return randomID()
	}
	return (randomID()-1)>>10<<10 | r.ms.slot
}

// entryID returns the id of a new registration (kind 'r') or
// subscription ('s'). Alone, ids are random; in a mesh they are derived
// from (realm, kind, match, uri) so that every node gives the same entry
// the same id, and random only in the unlikely case of a collision. Call
// with rm.mu held for writing.
func (rm *Realm) entryID(kind byte, match proto.Match, uri string) uint64 {
	if rm.r.ms == nil {
		return rm.newID()
	}
	h := fnv.New64a()
	h.Write([]byte(rm.name))
	h.Write([]byte{0, kind, byte(match), 0})
	h.Write([]byte(uri))
	id := h.Sum64()%proto.MaxID + 1
	_, r := rm.regByID[id]
	_, s := rm.subByID[id]
	if r || s {
		return rm.newID()
	}
	return id
}
