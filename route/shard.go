package route

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
)

// Shard is one event loop's part of the router: the sessions it owns, their
// pending calls and timers, a decoder, an encoder and output buffers. All
// methods except post and Start must be called on the shard's goroutine
// (the Executor's).
type Shard struct {
	r   *Router
	idx int

	exec atomic.Pointer[Executor] // set once by Start (maybe from another goroutine than post's)

	// Mailbox: tasks from other shards and from workers. mbMu is a leaf lock.
	mbMu      sync.Mutex
	mb        []task // guarded by mbMu
	spare     []task // owned by shard: the drained batch, reused
	scheduled atomic.Bool
	drainFn   func() // static: s.drain, made once (a method value passed to Execute is allocated each time)
	// meshBacklog is the bytes of events from other nodes in the mailbox
	// (meshEvent adds, run subtracts): the mesh's dispatcher hands them
	// over without waiting, so a shard slower than another node's
	// publisher would queue without bound.
	meshBacklog atomic.Int64
	// eventBacklog is the same for events from this node's other shards
	// (fanout adds, run subtracts): a publisher's shard does a lookup and
	// a post per publication, the subscribers' shard encodes and writes
	// for each subscriber, so one publisher could outrun a shard holding
	// many subscribers and queue without bound.
	eventBacklog atomic.Int64
	// callBacklog is the same for calls: the payloads of CALLs, chunks of
	// progressive invocations, YIELDs and ERRORs from this node's other
	// shards (sendCall adds, run subtracts). The shard that takes them in
	// only copies them; the shard that sends them on encodes them for the
	// peer, converting them when its serializer differs, which can cost a
	// hundred times more (a CBOR string of control characters becomes JSON
	// escapes six times its size), so a caller or a callee could queue its
	// payloads here without bound.
	callBacklog atomic.Int64
	// removeBacklog is the same for the meta API's removals
	// (wamp.registration.remove_callee, wamp.subscription.remove_subscriber)
	// of this shard's sessions posted by the other shards (postRemoval
	// adds, run subtracts): the session stays a callee (subscriber) until
	// its shard runs the removal, so every removal of it meanwhile was
	// posted again, each with its reason, without bound.
	removeBacklog atomic.Int64
	// removing is the removals counted in removeBacklog, by session and
	// registration (subscription): a repeat of one still waiting posts
	// nothing (postRemoval); each names the owner it counts for.
	// removeMu guards it, removeBy and removeBacklog's changes; a leaf
	// lock.
	removeMu sync.Mutex
	removing map[removeKey]string
	// removeBy is removeBacklog by owner, whose removals they are (the
	// caller's client address or authid, Session.subscriptionOwner; the
	// owner "", the HTTP gateway's sessions, counts in the total only):
	// each at most a quarter of maxRemoveBacklog and no more than it
	// leaves free (removeFits). An owner goes with its last byte.
	removeBy map[string]int64
	// metaPosted is the meta events posted to this shard (metaFanout,
	// tMeta) and not yet delivered: while there are none, the
	// shard delivers the meta events it publishes to its own subscribers
	// inline, still in the order of the realm's queue.
	metaPosted atomic.Int64
	// selfEvents is the events of this shard's publishers it posted to
	// itself, behind meta events waiting in its mailbox, and not yet
	// delivered (fanout, tEvents with tfSelf): while there are any, its
	// publishers' events and meta events for its own subscribers go
	// behind them too. Owned by shard.
	selfEvents int
	// selfCalls is the call tasks (tInvoke, tResult, tInterrupt,
	// tForget) this shard posted to itself and has not run (tfSelfCall):
	// a call's first INVOCATION for a callee of this shard waits behind
	// meta events posted here (queueCall), its caller's on_join among
	// them, and while any waits every call task for this shard's own
	// sessions goes behind it, so that no CANCEL, chunk, INTERRUPT or
	// result overtakes it. Owned by shard.
	selfCalls int

	open    atomic.Int64 // sessions attached (open transports), read by Shutdown
	nextDue atomic.Int64 // earliest timer deadline (unix ns), 0 = none; read by Router.Tick

	// Owned by shard.
	attached map[*Session]struct{} // sessions with an open transport
	// attachedPeak: the most entries attached held since it was last
	// checked (shrinkDue).
	attachedPeak int
	dec          proto.Decoder
	msg          proto.Message
	out          proto.Message // message being built
	// metaArgs: the Arguments of the meta call metaCall is running, as
	// received (aliasing the input), for the procedures that keep a
	// value as its caller encoded it (a testament's payload); zero
	// outside the call.
	metaArgs proto.Raw
	enc      proto.Encoder
	buf      []byte    // output buffer for the message being sent
	evbuf    [4][]byte // per-serializer EVENT encodings during a fan-out
	// deliveries numbers deliverEvents' fan-outs of more than one
	// subscription (Session.refusedAt).
	deliveries uint64
	// fanning: deliverEvents runs, for the publication whose id is fanID.
	// refusedLen: during it, by serializer, the longest EVENT of that
	// publication that a subscriber refused as longer than it accepts
	// (sendEvent): other subscriptions' EVENTs of it are at least that
	// long less eventVaries, and are dropped unencoded for subscribers that
	// accept less. Only its EVENTs are judged or recorded: a window's held
	// events, sent from inside the fan-out (winAdmit's flushHeld), are of
	// other publications, and one refused as too long dropped a later
	// small event for the other subscriptions' subscribers. An id, not a
	// pointer: the publication may be on the publisher's stack. Zero
	// outside deliverEvents.
	fanning    bool
	fanID      uint64
	refusedLen [4]int
	lc         carry             // scratch carry for tasks to this shard (see Shard.carry)
	outPool    freeList[outCall] // free call records (see newOutCall)
	inPool     freeList[inCall]
	timers     timerHeap
	// timerSweepAt is the heap size at which addTimer next drops dead timers.
	timerSweepAt int
	// timersEnded counts the calls with a timer in the heap that ended
	// since its last sweep (callTimersEnded): past half the heap, it is
	// swept without waiting for addTimer.
	timersEnded int
	rng         *rand.Rand
	invSeq      uint64
	closing     bool // shutdown in progress
	// rerouteHeld is the bytes the shard's calls in flight keep to be
	// rerouted (reroute.go), at most maxRerouteHeld.
	rerouteHeld int64
	rrPool      []*reroute // free reroute records (recycleReroute)
	// winPending counts the pending get_retained windows of the shard's
	// sessions (retwin.go): while there are any, every subscription's
	// fan-out here looks at its subscribers' windows.
	winPending int

	// Mesh only: calls sent to other nodes by invocation id, invocations
	// from other nodes' callers by (node, their call id), and the buffer
	// envelopes are encoded in.
	mcalls map[uint64]mcall
	minvs  map[minvKey]minv
	mbuf   []byte
	// mcallsPeak and minvsPeak: the most entries mcalls and minvs held
	// since they were last checked (shrinkDue).
	mcallsPeak, minvsPeak int
	// lostStops are the interrupts of calls to other nodes, ended here,
	// that the mesh refused (meshStop): sent again every stopRetryEvery
	// (tmStops) until the mesh takes them or their node leaves. Owned by
	// the loop.
	lostStops []lostStop
	// lateStops are the interrupts of calls to other nodes without a
	// timeout, ended here, to send again past the peer timeout
	// (echoStop). Owned by the loop.
	lateStops []lateStop
	// stopsArmed is set while a tmStops timer is pending (keepStop,
	// retryStops). Owned by the loop.
	stopsArmed bool
	// strays are the last calls to other nodes whose stray progressive
	// results were answered by an interrupt (strayDue), strayNext the
	// slot the next takes. Owned by the loop.
	strays    [maxStrays]strayMark
	strayNext uint8
	// ended are the last calls to other nodes meshStop ended, with their
	// reasons (endReason), endedNext the slot the next takes. Owned by
	// the loop.
	ended     [maxEnded]endedMark
	endedNext uint8

	// creds indexes the established sessions that hold a withdrawable
	// credential by its ids (credential.go); nil until the first one.
	creds map[string]map[*Session]struct{}

	// A reload's re-check of the sessions whose grants may have changed,
	// walked in turns (reload.go): the sessions left, and whether the
	// next turn is posted. recheckHook (tests) is told each turn's
	// entries and the sessions left; recheckPost (tests), when set, is
	// handed the next turn instead of posting it.
	rechecks      []*recheck
	recheckPosted bool
	recheckHook   func(checked, left int)
	recheckPost   func(next func())

	stats   ShardStats
	traffic trafficCounters // owned by shard; read by Router.Traffic (counters.go)
}

// ShardStats are counters of one shard. The shard and the authentication
// workers add to them atomically; anyone may read them atomically, and
// Router.Stats sums them over the shards.
type ShardStats struct {
	EventsDropped atomic.Uint64 // EVENTs dropped for slow subscribers
	EventsTooBig  atomic.Uint64 // EVENTs dropped as longer than the subscriber accepts
	// EVENTs dropped as not convertible to the subscriber's serializer.
	EventsNotConvertible atomic.Uint64
	// EventsBacklog counts publications not handed to another shard of
	// this node because its queue of events was full (maxEventBacklog).
	EventsBacklog atomic.Uint64
	// EventsSuperseded counts events a get_retained subscriber's window
	// did not deliver (retwin.go): live events that were the retained
	// event it had received or older ones of its publisher, and retained
	// events not sent because newer live ones had gone out first.
	EventsSuperseded atomic.Uint64
	// CallsBacklog counts CALLs, progressive chunks, YIELDs and ERRORs
	// not handed to another shard of this node because its queue of calls
	// was full (maxCallBacklog); the call failed with
	// wamp.error.unavailable.
	CallsBacklog atomic.Uint64
	CallsRefused atomic.Uint64 // INVOCATIONs refused by busy callees
	// CallsShare counts INVOCATIONs refused because their callee was
	// behind and their caller held more than its share of its
	// invocations in flight (calleeshare.go); a call rerouted to another
	// callee for it counts here and in CallsRerouted.
	CallsShare atomic.Uint64
	// CallsNotConvertible counts INVOCATIONs refused because the call's
	// payload could not be converted to the callee's serializer (a NaN
	// for a JSON callee), its caller on this node or another (which
	// reroutes it); before, one from another node was counted nowhere.
	CallsNotConvertible atomic.Uint64
	// CallsTooBig counts INVOCATIONs refused because the message was
	// longer than the callee accepts, its caller on this node or another;
	// before, counted nowhere.
	CallsTooBig atomic.Uint64
	// CallsRerouted counts calls sent to another callee after one answered
	// wamp.error.unavailable; CallsRerouteExhausted, calls that ended with
	// wamp.error.no_available_callee because no untried callee was left
	// (reroute.go).
	CallsRerouted         atomic.Uint64
	CallsRerouteExhausted atomic.Uint64
	ProtocolErrors        atomic.Uint64 // sessions aborted for protocol violations
	AuthFailures          atomic.Uint64 // failed authentications (all methods)
	RetainRefused         atomic.Uint64 // retain on a new topic past the realm's cap
	AuthDenied            atomic.Uint64 // HELLOs and AUTHENTICATEs refused unchecked by the brute-force limiter
	AuthBusy              atomic.Uint64 // logins refused, or dropped from the queue, for a full worker pool
	// Retained events dropped because their publisher may no longer
	// publish them (a reload, a revoked credential).
	RetainedRevoked atomic.Uint64
	// Retained events not kept for their publisher's share of the realm's
	// (retshare.go).
	RetainRefusedPublisher atomic.Uint64
	// wamp.session.add_testament calls refused for Config.MaxTestamentBytes.
	TestamentsRefused atomic.Uint64
	// SUBSCRIBEs refused for Config.MaxSubscriptionBytes.
	SubscriptionsRefused atomic.Uint64
	// REGISTERs refused for Config.MaxRegistrationBytes.
	RegistrationsRefused atomic.Uint64
	// CALLs refused for Config.MaxCallsTotal.
	CallsRefusedTotal atomic.Uint64
	// Authentications by method (index: see AuthMethodName).
	AuthSuccessesBy [NumAuthMethods]atomic.Uint64
	AuthFailuresBy  [NumAuthMethods]atomic.Uint64
}

func newShard(r *Router, idx int) *Shard {
	s := &Shard{r: r, idx: idx, rng: seedRand(), buf: make([]byte, 0, 4096), attached: map[*Session]struct{}{}}
	// Invocation ids start at a random point of the sequence, so that a
	// node's lives do not reuse each other's: a node restarted under its
	// name, before a peer takes its new life's heartbeat, is that node
	// to the peer, which may still hold the earlier life's calls by id.
	s.invSeq = s.rng.Uint64N(invSeqStart)
	s.drainFn = s.drain
	s.enc.MaxConverted = r.cfg.MaxConverted
	return s
}

// Start gives the shard its executor. Call it once, before any session is
// opened on the shard. Until then, tasks posted to the shard are dropped
// (there is no session on it for them to concern).
func (s *Shard) Start(exec Executor) { s.exec.Store(&exec) }

// yieldTurn runs f on the shard's goroutine after the loop's pending I/O
// (Yielder), or as Do does.
func (s *Shard) yieldTurn(f func()) error {
	ex := s.exec.Load()
	if ex == nil {
		return ErrClosed
	}
	if y, ok := (*ex).(Yielder); ok {
		if y.Yield(f) != nil {
			return ErrClosed
		}
		return nil
	}
	if (*ex).Execute(f) != nil {
		return ErrClosed
	}
	return nil
}

// Index returns the shard's index.
func (s *Shard) Index() int { return s.idx }

// Stats returns the shard's counters.
func (s *Shard) Stats() *ShardStats { return &s.stats }

// Do runs f on the shard's goroutine soon; the transport then flushes what
// f sent. It is how code outside the event loops (the HTTP gateway's
// in-process sessions, the mesh bridge) touches a shard: Open, Receive,
// ReceiveMessage and Detach must run inside f. Safe for concurrent use; it
// never blocks. It returns ErrClosed when the shard has no executor or its
// executor has stopped (f will not run).
func (s *Shard) Do(f func()) error {
	ex := s.exec.Load()
	if ex == nil || (*ex).Execute(f) != nil {
		return ErrClosed
	}
	return nil
}

// post hands a task to the shard from any goroutine. Tasks from one
// goroutine keep their order. At most one drain is scheduled at a time.
func (s *Shard) post(t task) {
	s.mbMu.Lock()
	s.mb = append(s.mb, t)
	s.mbMu.Unlock()
	if s.scheduled.CompareAndSwap(false, true) {
		ex := s.exec.Load()
		if ex == nil || (*ex).Execute(s.drainFn) != nil {
			// The executor stopped: nothing will run these tasks. Drop
			// them so that their payloads can be collected.
			s.mbMu.Lock()
			s.mb = s.mb[:0]
			s.mbMu.Unlock()
			s.scheduled.Store(false)
		}
	}
}

// send delivers t to the shard that owns dst: inline when that is this
// shard, else through its mailbox.
func (s *Shard) send(dst *Shard, t task) {
	if dst == s {
		if s.selfCalls > 0 && callTask(t.kind) {
			// Behind the call tasks waiting in this shard's own
			// mailbox (selfCalls). Such tasks own their carry.
			t.flags |= tfSelfCall
			s.selfCalls++
			s.post(t)
			return
		}
		s.run(&t)
		return
	}
	dst.post(t)
}

// callTask reports whether a task of kind k is part of a call's exchange
// between caller and callee (selfCalls).
func callTask(k taskKind) bool {
	return k == tInvoke || k == tResult || k == tInterrupt || k == tForget
}

// queueCall reports whether a call task for dst, a CALL's first
// INVOCATION when first, must go through this shard's mailbox though dst
// is this shard: while call tasks wait there (selfCalls), and for a first
// INVOCATION also while meta events posted to this shard wait (a caller's
// on_join for this shard's subscribers among them, metaorder.go; the
// callee may be one). The caller then gives the task an own carry and
// tfSelfCall. Before, an INVOCATION to a callee of the caller's own loop
// was delivered inline, ahead of the caller's on_join (TestOnJoinBeforeInvocationSameLoop).
// Hot path: two compares and, for a first INVOCATION, an atomic load.
func (s *Shard) queueCall(dst *Shard, first bool) bool {
	return dst == s && (s.selfCalls > 0 || first && (s.selfEvents > 0 || s.metaPosted.Load() > 0))
}

// drain runs the queued tasks. It runs on the shard's goroutine.
func (s *Shard) drain() {
	s.scheduled.Store(false)
	s.mbMu.Lock()
	batch := s.mb
	s.mb = s.spare[:0]
	s.mbMu.Unlock()
	for i := range batch {
		s.run(&batch[i])
		batch[i] = task{} // drop references
	}
	s.spare = keepTasks(batch)
}

// maxKeptTasks is the capacity of a drained batch of tasks a shard keeps
// for reuse whatever it held (keepTasks): 416 KiB.
const maxKeptTasks = 4096

// keepTasks returns the drained batch b emptied for reuse as the next
// mailbox, or nil when it is larger than maxKeptTasks and was at most a
// quarter full. The mailbox and the batch swap at each drain, so they
// took the capacity of the largest backlogs the shard had (104 bytes a
// task) and kept it for good: 60,000 events queued for a stalled loop,
// within its event backlog, left a 68,529-task array, 6.8 MiB, held
// after they were delivered, counted nowhere; the shard's three backlogs
// (events from its node and from others, calls) at their bounds are
// ~200,000 small tasks, ~20 MiB an array
// (TestShardMailboxShrinksAfterBacklog). A batch near its capacity (a
// backlog still being worked through) is kept.
func keepTasks(b []task) []task {
	if cap(b) > maxKeptTasks && len(b) <= cap(b)/4 {
		return nil
	}
	return b[:0]
}

// kickTimers schedules a timer run on the shard's goroutine.
func (s *Shard) kickTimers() {
	s.nextDue.Store(0) // re-armed by runTimers
	s.post(task{kind: tTimers})
}

// timer is one scheduled deadline. Timers are cancelled lazily: when one
// fires, its handler checks that the thing it was for still exists and still
// has this deadline.
type timer struct {
	due  int64
	kind timerKind
	sess *Session
	id   uint64
}

type timerKind uint8

const (
	tmCall     timerKind = iota + 1 // call timeout: id = caller request id
	tmHello                         // HELLO/authentication timeout
	tmGoodbye                       // waiting for the client's GOODBYE reply
	tmAuthFail                      // a delayed ABORT after a failed authentication
	tmWalk                          // requests waiting for the session's walk budget (walkbudget.go)
	tmMeta                          // a waiting meta call's timeout: id = its request id (meta.go)
	tmWin                           // the end of a window's marks of delivered retained events: id = its subscription's id (retwin.go)
	tmStops                         // send the interrupts the mesh refused again (lostStops); no session
	tmMeshInv                       // the end of a call from another node held here: id = its invocation id (meshInvExpired)
)

// timerHeap is a min-heap of timers by deadline: container/heap's
// algorithm on the concrete type, because heap.Push and heap.Pop box each
// timer in an interface (one allocation per CALL with a timeout).
type timerHeap []timer

// push adds t.
func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	h.up(len(*h) - 1)
}

// pop removes and returns the earliest timer; h must not be empty.
func (h *timerHeap) pop() timer {
	old := *h
	n := len(old) - 1
	t := old[0]
	old[0] = old[n]
	old[n] = timer{} // drop the session reference
	*h = old[:n]
	h.down(0)
	return t
}

// init restores the heap order of the whole slice.
func (h timerHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h timerHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if h[i].due <= h[j].due {
			return
		}
		h[i], h[j] = h[j], h[i]
		j = i
	}
}

func (h timerHeap) down(i int) {
	n := len(h)
	for {
		j := 2*i + 1
		if j >= n {
			return
		}
		if r := j + 1; r < n && h[r].due < h[j].due {
			j = r
		}
		if h[i].due <= h[j].due {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

// addTimer schedules a timer. Owned by shard.
//
// Most timers are dead long before they are due (a call answered in
// microseconds under a 60 s timeout, a HELLO timeout once WELCOME is sent)
// and would otherwise sit in the heap until then, holding their session:
// at 50k calls/s that is millions of entries. So when the heap has doubled
// since it was last swept, the dead ones are dropped, which keeps it within
// twice the live timers (plus timerSweepMin) at O(1) amortized cost.
func (s *Shard) addTimer(t timer) {
	if len(s.timers) >= s.timerSweepAt {
		s.sweepTimers()
	}
	s.timers.push(t)
	s.armNext()
}

// timerSweepMin is the heap size below which dead timers are left to fire.
const timerSweepMin = 4096

func (s *Shard) sweepTimers() {
	live := s.timers[:0]
	for _, t := range s.timers {
		if t.live() {
			live = append(live, t)
		}
	}
	clear(s.timers[len(live):])
	if c := cap(live); c > 4*timerSweepMin && c > 4*len(live) {
		// The array of a peak long gone (32 bytes a timer: 2 MiB for a
		// caller's 65,536 calls) is given back.
		live = append(make(timerHeap, 0, max(2*len(live), timerSweepMin)), live...)
	}
	s.timers = live
	s.timers.init()
	s.timerSweepAt = max(2*len(live), timerSweepMin)
	s.timersEnded = 0
}

// callTimersEnded records that n calls with a timer ended (their timers
// dead in the heap) and sweeps the heap once the calls so ended since its
// last sweep are half of it. addTimer's sweep alone waited for the heap
// to double: the dead timers of a caller that made many calls with long
// timeouts and left held its session (its calls table at its peak) and
// the heap's array until as many new timers came, for good when none
// came. O(1) amortized: a sweep costs what half the heap's ends paid for.
// Owned by shard; on the call path a compare and an add.
func (s *Shard) callTimersEnded(n int) {
	s.timersEnded += n
	if len(s.timers) >= timerSweepMin && 2*s.timersEnded >= len(s.timers) {
		s.sweepTimers()
	}
}

// sweepEnded records that n more timers are dead (a session's calls at
// its departure, the invocations of a node that left) and sweeps the
// heap once the timers ended since its last sweep are half of it, here
// also below timerSweepMin (callTimersEnded's floor, which keeps sweeps
// of small heaps off the call path): else the timers of callers that
// left with calls whose timeouts never come due, or of a callee's
// invocations from other nodes (tmMeshInv, their caller's timeout and a
// second), held them for good or until due, up to 4,095 a shard, each
// with its session. Amortized as callTimersEnded's: the ended timers
// counted pay for the sweep. Off the call path.
func (s *Shard) sweepEnded(n int) {
	s.timersEnded += n
	if s.timersEnded > 0 && 2*s.timersEnded >= len(s.timers) {
		s.sweepTimers()
	}
}

// live reports whether the timer still has something to do: what it was
// set for still exists and still has this deadline.
func (t *timer) live() bool {
	ss := t.sess
	switch t.kind {
	case tmCall:
		oc := ss.calls[t.id]
		return oc != nil && oc.due == t.due && ss.state == stEstablished
	case tmHello:
		return ss.state < stEstablished
	case tmGoodbye:
		return ss.state == stClosing
	case tmAuthFail:
		js := ss.join
		return js != nil && js.failURI != "" && ss.state == stAuthPending
	case tmWalk:
		return ss.state == stEstablished && len(ss.walks.q) > 0
	case tmMeta:
		w := ss.metaWaits[t.id]
		return w != nil && w.due == t.due && ss.state == stEstablished
	case tmWin:
		return ss.state == stEstablished && ss.winTimed(t.id, t.due) != nil
	case tmStops:
		return true // the shard's, not a session's (retryStops)
	case tmMeshInv:
		ic := ss.invs[t.id] // invocation ids are never reused on a shard
		return ic != nil && ic.remote != nil && ss.state == stEstablished
	}
	return false
}

func (s *Shard) armNext() {
	if len(s.timers) == 0 {
		s.nextDue.Store(0)
		return
	}
	due := s.timers[0].due
	if old := s.nextDue.Swap(due); old == 0 || due < old {
		s.r.wakeTimers()
	}
}

// runTimers fires every due timer.
func (s *Shard) runTimers() {
	now := s.r.now()
	for len(s.timers) > 0 && s.timers[0].due <= now {
		t := s.timers.pop()
		if !t.live() {
			continue
		}
		switch t.kind {
		case tmCall:
			s.callTimeout(t)
		case tmHello:
			if t.sess.state == stNew {
				s.abort(t.sess, proto.URIProtocolViolation, "no HELLO within the HELLO timeout")
			} else {
				s.abort(t.sess, proto.URIAuthenticationFailed, "authentication did not complete within the HELLO timeout")
			}
		case tmGoodbye:
			t.sess.finish()
		case tmAuthFail:
			s.abort(t.sess, t.sess.join.failURI, t.sess.join.failMsg)
		case tmWalk:
			s.walksDue(t.sess)
		case tmMeta:
			s.metaTimeout(t.sess, t.id)
		case tmWin:
			s.closeWin(t.sess, t.sess.winTimed(t.id, t.due))
		case tmStops:
			s.retryStops()
		case tmMeshInv:
			s.meshInvExpired(t.sess, t.id)
		}
	}
	s.armNext()
}

// invSeqStart bounds the random start of a shard's sequence of
// invocation ids (newShard): 2^44 places, times at most maxShards, stays
// below proto.MaxID.
const invSeqStart = 1 << 44

// nextInvocationID returns an INVOCATION request id unique router-wide: a
// per-shard sequence with the shard index in the low bits, so that the
// caller's shard can choose it without coordination.
func (s *Shard) nextInvocationID() uint64 {
	s.invSeq++
	n := uint64(len(s.r.shards))
	id := s.invSeq*n + uint64(s.idx) + 1
	if id > proto.MaxID {
		s.invSeq = 1
		id = n + uint64(s.idx) + 1
	}
	return id
}

// sessions returns the shard's attached sessions (a snapshot, so that the
// caller may close them while iterating).
func (s *Shard) sessions() map[*Session]struct{} {
	c := make(map[*Session]struct{}, len(s.attached))
	for ss := range s.attached {
		c[ss] = struct{}{}
	}
	return c
}

// maxKeptBuf bounds an encoding buffer a shard keeps between messages: one
// large message (up to max_message, or several times that once
// transcoded) must not leave every shard holding its size for good.
const maxKeptBuf = 256 << 10

// keepBuf returns b emptied for reuse, or nil when it is larger than a
// shard keeps (peers copy what they are sent).
func keepBuf(b []byte) []byte {
	if cap(b) > maxKeptBuf {
		return nil
	}
	return b[:0]
}
