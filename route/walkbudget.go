package route

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
)

// Some requests walk a whole realm-wide table for a message of a few dozen
// bytes, whatever they find:
//
//   - a get_retained SUBSCRIBE with a prefix or wildcard pattern scans all
//     of the realm's retained topics (up to maxRetained) under the realm's
//     lock, about a millisecond of the loop at 65,536 whether anything
//     matches or not: pipelined, 2,000 of them from one anonymous session
//     held a loops:1 router for 2 s, and every other session on the loop
//     waited as long;
//   - the meta procedures that list or count the realm's sessions,
//     registrations or subscriptions, or kill by authid or authrole, visit
//     each (and list them in their result): about 15 ms at 100,000
//     registrations, so that 50 pipelined wamp.registration.list calls made
//     a victim's call on the loop wait 0.73 s; and those that list the
//     subscribers of a subscription or the callees of a registration, which
//     may be every session of the realm: 100 pipelined
//     wamp.subscription.list_subscribers of a topic with 10,000 subscribers
//     held the loop 0.32-0.93 s.
//
// So each session gets a budget of such work, in entries walked:
// walkRate a second (8 scans of a full retained realm or 65,536 listed
// entries, a few ms of the loop), up to walkBurst at once. A walk runs
// while the session is not in debt and charges what it walked; further
// ones wait their turn in the session, in order, on a shard timer, and run
// when the budget has refilled (their answers come late; none is lost). At
// most maxWalkWait wait per session (of them maxMetaWalkWait meta calls,
// which hold their arguments as received, decoded when their turn
// comes); past that the request is refused
// with wamp.error.unavailable before it changes anything, logged once per
// session. Exact subscriptions look their topic up, which is not counted;
// the retained events a get_retained SUBSCRIBE sends are, by their bytes
// (retainedBytesPerEntry), exact or pattern; on a mesh the other nodes'
// too, once they are in (chargeRemoteRetained), the session's gathers
// waiting their turn waiting for its debt to be paid (parkRetains).
// On a mesh a pattern get_retained asks every node to scan its retained
// topics (mesh_meta.go): it is charged this node's count, at least
// meshScanMin (the others' counts are not known here), besides the
// gathers' own bounds (16 at a time), which bounded how many at once but
// not how many a second. The meta calls are charged on a mesh as on one
// node, for this node's walk: those answered from this node's tables
// (wamp.registration.list) had no bound at all there, and those gathered
// from every node only the gathers' bounds, which limit how many wait for
// the other nodes, not how many walk this node's tables (each walked
// before it took its turn: 100 pipelined were 100 walks at once). The
// other nodes' walks are charged once their answers are in, by their
// bytes (chargeRemote), and each node asked meshAskCost besides; the
// session's gathers waiting their turn wait for its debt to be paid, and
// so do its new ones.
const (
	walkRate        = 1 << 19 // entries a second per session
	walkBurst       = maxRetained
	maxWalkWait     = 1024
	maxMetaWalkWait = 16
	// metaEntryCost weighs an entry a meta procedure visits against a
	// retained topic scanned: it is listed, put in the result and encoded.
	metaEntryCost = 8
	// meshAskCost is what each node a gathered meta call asks costs,
	// besides its answer (see chargeRemote).
	meshAskCost = 16 * metaEntryCost
	// meshScanMin is the least a pattern get_retained on a mesh is
	// charged: 8 at once, then 64 a second per session, whatever this
	// node retains.
	meshScanMin = walkBurst / 8
	// retainedBytesPerEntry weighs the retained events a get_retained
	// SUBSCRIBE sends (their payload and topic) against the entries
	// walked: one entry per 16 bytes, about the loop's time to encode
	// them for the subscriber (a 4 MiB event, JSON to MsgPack, 3.7-4.7 ms;
	// an entry is ~15 ns). So a session is sent up to 1 MiB of retained
	// events at once (walkBurst), then 8 MiB a second. Before, an exact
	// topic's were not charged at all: a session that repeated a 40-byte
	// get_retained SUBSCRIBE had a 4 MiB retained event encoded again
	// each time, read or not.
	retainedBytesPerEntry = 16
)

// metaWalks gives the entries the meta procedures that walk a realm table
// (or the subscribers or callees of one entry, up to every session of the
// realm) visit, from their arguments (read under the realm's lock). The
// other meta procedures look one entry up, count without visiting
// (count_subscribers, count_callees).
var metaWalks = map[string]func(rm *Realm, args []any, kwargs map[string]any) int{
	// A count is a look-up by role (Realm.byRole), not a walk: it still
	// waits its turn behind a debt (charged as one listed entry), so that
	// the session's calls are answered in order. Each role of its filter
	// is an entry (roleFilterLen).
	"wamp.session.count": func(_ *Realm, args []any, kwargs map[string]any) int {
		return 1 + roleFilterLen(args, kwargs)
	},
	"wamp.session.list": func(rm *Realm, args []any, kwargs map[string]any) int {
		return len(rm.members) + roleFilterLen(args, kwargs)
	},
	"wamp.session.kill_by_authid":        realmMembers,
	"wamp.session.kill_by_authrole":      realmMembers,
	"wamp.session.kill_all":              realmMembers,
	"wamp.registration.list":             func(rm *Realm, _ []any, _ map[string]any) int { return len(rm.regByID) },
	"wamp.subscription.list":             func(rm *Realm, _ []any, _ map[string]any) int { return len(rm.subByID) },
	"wamp.registration.list_callees":     regCallees,
	"wamp.subscription.list_subscribers": subSubscribers,
	"wamp.subscription.match":            subMatchWalk,
	"wamp.registration.match":            regMatchWalk,
	// They look for one session among the callees (the subscribers on
	// its loop), which may be every session of the realm, and list
	// nothing: each entry counts 1, not metaEntryCost (metaVisits).
	// Before, they were not charged at all.
	"wamp.registration.remove_callee":     regCallees,
	"wamp.subscription.remove_subscriber": subSubscribers,
}

// metaVisits are the procedures of metaWalks that visit their entries
// without listing them: charged one per entry.
var metaVisits = map[string]bool{
	"wamp.registration.remove_callee":     true,
	"wamp.subscription.remove_subscriber": true,
}

func realmMembers(rm *Realm, _ []any, _ map[string]any) int { return len(rm.members) }

// subMatchWalk is what a wamp.subscription.match walks, in listed
// entries: each subscription it lists, and each wildcard node it visits
// as an eighth of one (a retained topic scanned is one entry, a listed
// one metaEntryCost), counted by a walk of the tables that collects
// nothing. It looks its topic up in every index and lists each
// subscription that matches, the wildcard trie along every path the
// topic's components and the empty ones make: one topic may match every
// wildcard pattern of as many components (2,000 listed for a topic of
// 11). It was not charged at all, where wamp.subscription.list of as
// many subscriptions costs 8 entries each (TestSubscriptionMatchWalkBudgeted).
func subMatchWalk(rm *Realm, args []any, _ map[string]any) int {
	uri, ok := argStr(args, 0)
	if !ok {
		return 0
	}
	if !proto.ValidURI([]byte(uri), rm.conf().URICheck) {
		// Answered null without a look-up (metaSubMatch): counted so, not
		// for the listing a valid topic's matches would make (a leading
		// empty component matched by 1,000 wildcard patterns cost 8,000
		// entries and more, and the walk that counted them).
		return 0
	}
	matched, visited := rm.subs.matchCost([]byte(uri))
	return matched + (visited+metaEntryCost-1)/metaEntryCost
}

// regMatchWalk is what a wamp.registration.match walks, in listed
// entries: the registration it finds, and each wildcard node it visits
// as an eighth of one (as subMatchWalk). It finds the registration a
// CALL to its URI would reach, walking the wildcard trie along every
// path the URI's components and the empty ones make until a pattern is
// found: 4,000 wildcard patterns of 15 components, each component the
// URI's or empty and none ending as the URI does, are all visited for a
// match that finds none (1.4 ms against 27 µs for a URI no pattern
// shares). It was not charged at all (TestRegistrationMatchWalkBudgeted).
// A CALL to a URI not in its shard's lookup cache makes the same walk,
// not charged here.
func regMatchWalk(rm *Realm, args []any, _ map[string]any) int {
	uri, ok := argStr(args, 0)
	if !ok {
		return 0
	}
	if !proto.ValidURI([]byte(uri), rm.conf().URICheck) || reserved([]byte(uri)) {
		// Answered null without a look-up (metaRegMatch): one entry, as
		// a URI no pattern shares, not the walk a CALL's look-up of a
		// valid URI makes (an empty last component walked about all of
		// 4,000 wildcard patterns of 15 components, for nothing).
		return 1
	}
	return 1 + (rm.regs.bestCost([]byte(uri))+metaEntryCost-1)/metaEntryCost
}

// roleFilterLen is the number of roles in the filter_authroles of a
// wamp.session.count or list (by position or keyword; 0 for none), each
// read into a set and looked up: a filter of 10,159 roles (60 KB) took
// 3-4 ms, on every node of a mesh, charged one entry (count) or the
// realm's sessions (list) whatever its length: one session's burst paid
// for 8,192 such counts, and on a mesh each other node answered 468 of
// them (TestRoleFilterCharged).
func roleFilterLen(args []any, kwargs map[string]any) int {
	var v any
	if len(args) > 0 {
		v = args[0]
	}
	if kv, ok := kwargs["filter_authroles"]; ok && v == nil {
		v = kv
	}
	l, _ := v.([]any)
	return len(l)
}

// regCallees is the number of callees of the registration args name (0:
// none such).
func regCallees(rm *Realm, args []any, _ map[string]any) int {
	if id, ok := argID(args, 0); ok {
		if reg := rm.regByID[id]; reg != nil {
			return reg.list().len()
		}
	}
	return 0
}

// subSubscribers is the number of subscribers here of the subscription
// args name (0: none such).
func subSubscribers(rm *Realm, args []any, _ map[string]any) int {
	if id, ok := argID(args, 0); ok {
		if sub := rm.subByID[id]; sub != nil {
			if set := sub.subscribers(); set != nil {
				return set.n
			}
		}
	}
	return 0
}

// walkBudget is a session's allowance of entries walked, and the walks
// waiting for it.
type walkBudget struct {
	tokens int64 // may go negative: the debt of the last walk
	at     int64 // unix ns of the last refill
	q      []walk
	metas  int // meta calls in q
	logged bool
	// own is the session's owner's share (walkOwnerOf), set at its
	// first walk; nil for none.
	own    *walkOwner
	ownSet bool
	// inLine: the session is in own's line (walkOwner.line), its next
	// walk a meta call's waiting for the share alone. Written by the
	// session's shard under walkOwners.mu, read by the others' under it.
	inLine bool
}

// A session's budget was all there was, and a new session brought a new
// one: 100 sessions opened one after another from one client each listed
// 20,000 subscriptions at once (11.9 ms of the loop each), where one
// session's budget pays for one such list, then about 3 a second. So each
// session's meta calls (their walks here, and on a mesh their gathers'
// charges and turns) also draw on its owner's share, which it leaves as
// it found it when it closes: the sessions of a client (as the subscriptions' and
// calls' shares count them, retainOwner: an anonymous session's client
// address, an IPv4 address or an IPv6 /64; an authenticated session's
// authid in its realm, which the peer cannot renew: the operator gave it
// its credential) together walk at most ownerWalkShare sessions' worth,
// ownerWalkShare times walkRate a second and walkBurst at once. A walk
// runs when neither the session nor its owner is in debt, and is charged
// to both. An owner's share is dropped once it has no session and is
// whole again, so a client that reconnects finds its debt where it left
// it, and a client's share is nobody else's: the sessions of another
// address or authid (a monitor with its own user) walk as before, however
// much this one walks. Within one owner, a session still walks at most
// its own budget, so one busy session leaves its owner's other sessions
// as much again (a monitor listing once a second beside it is answered,
// at most one of its walks late). The HTTP gateway's pooled sessions
// have none (its own limits bound their clients). A get_retained
// SUBSCRIBE's scan and retained events draw on the session's budget
// alone, as before: devices behind one NAT or sharing one authid
// subscribe with get_retained together as they reconnect after an
// outage, and 1,000 of them each scanning a realm of 65,536 retained
// topics would have waited up to a minute for a shared share. Sessions of one owner
// on different shards checking at the same moment may each run one walk
// before either is charged, as callBudgetRoom's bound.
const ownerWalkShare = 2

// walkOwners are the owners' shares of walk budget (walkOwner), shared by
// the shards.
type walkOwners struct {
	mu sync.Mutex
	by map[string]*walkOwner // guarded by mu
	// idle are the shares of by without a session, in debt when their
	// last left: dropped once whole (sweep). Guarded by mu.
	idle   []*walkOwner
	swept  int64 // when idle was last swept (Router.now); guarded by mu
	byPeak int   // shrinkDue's peak of by; guarded by mu
	// wakes counts walksDue's runs (a session's waiting walks looked
	// at), for the tests.
	wakes atomic.Int64
}

// walkOwner is one owner's share of walk budget: ownerWalkShare sessions'
// worth, drawn on by all its sessions. Guarded by walkOwners.mu.
type walkOwner struct {
	key      string // static
	tokens   int64  // may go negative, as walkBudget.tokens
	at       int64
	sessions int  // sessions holding it (walkBudget.own)
	idle     bool // in walkOwners.idle
	// line holds the sessions waiting for the share (their own budgets
	// whole enough), in the order they came to wait: only the first is
	// timed for the moment its debt is paid (armWalk), and no other
	// session of the owner walks on the share before it (walkReady).
	// Before, each waiting session was timed for that same moment: all
	// woke, one walked (whichever its loop reached first) and the rest
	// were timed again, n waiting sessions about n²/2 wake-ups
	// (TestWalkShareLineWakesFirstOnly). A session leaving the line
	// before its turn (walkOwners.leave) stays in it, skipped (first);
	// one whose own budget is in debt when its turn comes passes it on
	// and comes back at the end once paid (armWalk, pass).
	line []*Session
}

// first returns the first session in o's line, dropping those that left
// it; nil for none. Under walkOwners.mu.
func (o *walkOwner) first() *Session {
	for len(o.line) > 0 && !o.line[0].walks.inLine {
		o.line[0] = nil
		o.line = o.line[1:]
	}
	if len(o.line) == 0 {
		o.line = nil
		return nil
	}
	return o.line[0]
}

// pass takes ss out of o's line, and returns the session first then
// with the moment to time it for (the share's debt paid) when ss was
// first; nil else. Under walkOwners.mu.
func (o *walkOwner) pass(ss *Session, now int64) (next *Session, due int64) {
	if o.first() != ss {
		// Not first (only the first is timed, so not expected): out of
		// the line now, so that it does not keep this place when it
		// comes back.
		ss.walks.inLine = false
		if i := slices.Index(o.line, ss); i >= 0 {
			o.line = slices.Delete(o.line, i, i+1)
		}
		return nil, 0
	}
	ss.walks.inLine = false
	if next = o.first(); next != nil {
		due = now + o.wait(now)
	}
	return next, due
}

// wait returns how long until o is not in debt (refilled first). Under
// walkOwners.mu.
func (o *walkOwner) wait(now int64) int64 {
	o.refill(now)
	if t := o.tokens; t <= 0 {
		return (1-t)*1e9/(walkRate*ownerWalkShare) + 1
	}
	return 0
}

func (o *walkOwner) refill(now int64) {
	if d := now - o.at; d > 0 {
		o.tokens = min(o.tokens+d*walkRate*ownerWalkShare/1e9, walkBurst*ownerWalkShare)
		o.at = now
	}
}

// join returns owner key's share, made whole if it has none, with one
// more session holding it.
func (w *walkOwners) join(key string, now int64) *walkOwner {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sweep(now)
	o := w.by[key]
	if o == nil {
		if w.by == nil {
			w.by = map[string]*walkOwner{}
		}
		o = &walkOwner{key: key, tokens: walkBurst * ownerWalkShare, at: now}
		w.by[key] = o
	}
	o.sessions++
	return o
}

// leave lets leaving session ss's share go: dropped with its last session
// if whole, else kept until it is (sweep), and drops ss's waiting walks.
// Owned by ss's shard.
func (w *walkOwners) leave(ss *Session, now int64) {
	// Its waiting walks never run now (walksDue, tmWalk's live): dropped
	// with what they hold (a meta call's arguments as received), which
	// stayed as long as its place in its owner's line (first skips it)
	// or a timer held the session
	// (TestWalkShareLineLeftSessionsReleased).
	ss.walks.q, ss.walks.metas = nil, 0
	o := ss.walks.own
	ss.walks.own, ss.walks.ownSet = nil, false
	if o == nil {
		return
	}
	w.mu.Lock()
	var next *Session
	var due int64
	if ss.walks.inLine {
		wasFirst := o.first() == ss
		ss.walks.inLine = false
		if wasFirst {
			if next = o.first(); next != nil {
				due = now + o.wait(now)
			}
		}
	}
	defer func() {
		w.mu.Unlock()
		if next != nil {
			ss.shard.wakeWalk(next, due)
		}
	}()
	if o.sessions--; o.sessions == 0 {
		o.refill(now)
		if o.tokens >= walkBurst*ownerWalkShare {
			w.drop(o)
		} else if !o.idle {
			o.idle = true
			w.idle = append(w.idle, o)
		}
	}
	w.sweep(now)
}

// sweep drops the shares without a session that are whole again, at most
// once a second: each is in debt by at most about one walk when its last
// session leaves (a list of 100,000 entries is paid in under a second),
// so idle holds the owners that left in debt in the last seconds. Under
// mu.
func (w *walkOwners) sweep(now int64) {
	if len(w.idle) == 0 || now-w.swept < 1e9 {
		return
	}
	w.swept = now
	keep := w.idle[:0]
	for _, o := range w.idle {
		if o.sessions > 0 {
			o.idle = false
			continue
		}
		o.refill(now)
		if o.tokens >= walkBurst*ownerWalkShare {
			o.idle = false
			w.drop(o)
			continue
		}
		keep = append(keep, o)
	}
	clear(w.idle[len(keep):])
	w.idle = keep
}

// drop deletes o from by, unless its key names another share by now: a
// share dropped at its last session's leave stays in idle until the sweep,
// by which time a later session of its owner may have made a new one
// (before, the sweep deleted that one, and the owner's next session made
// yet another while it was in debt: TestWalkShareSweptOnceDropped). Under
// mu.
func (w *walkOwners) drop(o *walkOwner) {
	if w.by[o.key] != o {
		return
	}
	n := len(w.by)
	delete(w.by, o.key)
	if shrinkDue(&w.byPeak, n, len(w.by)) {
		shrinkMap(&w.by, &w.byPeak)
	}
}

// walkOwnerOf returns ss's owner's share, fixed at its first walk; nil for
// an InProcessPeer's session (the HTTP gateway's, carrying many clients)
// or one without an owner. Owned by ss's shard.
func (s *Shard) walkOwnerOf(ss *Session) *walkOwner {
	b := &ss.walks
	if b.ownSet {
		return b.own
	}
	if ss.state != stEstablished {
		return nil // left (walkOwners.leave): holds none again
	}
	b.ownSet = true
	if _, inProcess := ss.peer.(InProcessPeer); inProcess {
		return nil
	}
	if key := ss.retainOwner(); key != "" {
		b.own = s.r.walkOwners.join(key, s.r.now())
	}
	return b.own
}

// walkReady refills ss's walk budget, and its owner's for a meta call
// (owned), and reports whether neither is in debt. Owned by ss's shard.
func (s *Shard) walkReady(ss *Session, owned bool) bool {
	now := s.r.now()
	b := &ss.walks
	b.refill(now)
	if b.tokens <= 0 {
		return false
	}
	if !owned {
		return true
	}
	o := s.walkOwnerOf(ss)
	if o == nil {
		return true
	}
	w := &s.r.walkOwners
	w.mu.Lock()
	o.refill(now)
	ok := o.tokens > 0
	if ok {
		f := o.first()
		ok = f == nil || f == ss
	}
	w.mu.Unlock()
	return ok
}

// walkTake charges n entries walked to ss's budget, and its owner's for a
// meta call (owned). Owned by ss's shard.
func (s *Shard) walkTake(ss *Session, n int64, owned bool) {
	if n <= 0 {
		return
	}
	now := s.r.now()
	b := &ss.walks
	b.refill(now)
	b.tokens -= n
	if !owned {
		return
	}
	if o := s.walkOwnerOf(ss); o != nil {
		w := &s.r.walkOwners
		w.mu.Lock()
		o.refill(now)
		o.tokens -= n
		w.mu.Unlock()
	}
}

// walkWait returns how long until neither ss's budget nor, for a meta
// call (owned), its owner's is in debt (refilled first). Owned by ss's
// shard.
func (s *Shard) walkWait(ss *Session, owned bool) int64 {
	now := s.r.now()
	ss.walks.refill(now)
	wait := int64(0)
	if t := ss.walks.tokens; t <= 0 {
		wait = (1-t)*1e9/walkRate + 1
	}
	if o := ss.walks.own; o != nil && owned {
		w := &s.r.walkOwners
		w.mu.Lock()
		o.refill(now)
		t := o.tokens
		w.mu.Unlock()
		if t <= 0 {
			wait = max(wait, (1-t)*1e9/(walkRate*ownerWalkShare)+1)
		}
	}
	return wait
}

// walkRan charges n entries a walk of ss walked (walkTake), and when it
// was a meta call's (owned) lets the next session in its owner's line
// have its turn: ss leaves the line if it was first, and the session
// first then is timed for the moment the share's debt is paid. Owned by
// ss's shard.
func (s *Shard) walkRan(ss *Session, n int64, owned bool) {
	o := ss.walks.own
	if !owned || o == nil {
		s.walkTake(ss, n, owned)
		return
	}
	now := s.r.now()
	b := &ss.walks
	b.refill(now)
	b.tokens -= max(n, 0)
	w := &s.r.walkOwners
	w.mu.Lock()
	o.refill(now)
	o.tokens -= max(n, 0)
	var next *Session
	var due int64
	if b.inLine && o.first() == ss {
		b.inLine = false
		o.line[0] = nil
		o.line = o.line[1:]
	}
	if b.inLine {
		next = nil // still waiting its turn behind others: they are timed
	} else if next = o.first(); next != nil {
		due = now + o.wait(now)
	}
	w.mu.Unlock()
	if next != nil {
		s.wakeWalk(next, due)
	}
}

// wakeWalk times ss, first in its owner's line, for due: on this shard if
// ss is its, else through its shard's mailbox (tWalkWake).
func (s *Shard) wakeWalk(ss *Session, due int64) {
	if ss.shard == s {
		s.walkWake(ss, due)
		return
	}
	ss.shard.post(task{kind: tWalkWake, s: ss, a: uint64(due)})
}

// walkWake times ss's waiting walks for due, if it still has some. Owned
// by ss's shard.
func (s *Shard) walkWake(ss *Session, due int64) {
	if ss.state == stEstablished && len(ss.walks.q) > 0 {
		s.addTimer(timer{due: due, kind: tmWalk, sess: ss})
	}
}

// walk is a waiting request: run does it, if it still has to be done, and
// returns the entries it walked.
type walk struct {
	run  func() int
	meta bool
	// owned: it waits for, and is charged to, the owner's share too (a
	// meta call's walks: walkOwner).
	owned bool
}

func (b *walkBudget) refill(now int64) {
	if b.at == 0 {
		b.tokens, b.at = walkBurst, now
		return
	}
	if d := now - b.at; d > 0 {
		b.tokens = min(b.tokens+d*walkRate/1e9, walkBurst)
		b.at = now
	}
}

// walkFull reports whether ss may not queue one more walk (of a meta call
// when meta), and then refuses request req of type typ.
func (s *Shard) walkFull(ss *Session, typ proto.Code, req uint64, meta bool) bool {
	b := &ss.walks
	if len(b.q) < maxWalkWait && (!meta || b.metas < maxMetaWalkWait) {
		return false
	}
	if !b.logged {
		b.logged = true
		s.r.log.Warn("requests refused: too many waiting for their turn to walk the realm's tables (get_retained pattern subscriptions, meta lists)",
			"session", ss.id, "realm", ss.realm.name, "waiting", len(b.q))
	}
	limit := maxWalkWait
	if meta {
		limit = maxMetaWalkWait
	}
	s.replyError(ss, typ, req, proto.URIUnavailable,
		"too many requests that walk the realm's tables waiting for this session (limit "+strconv.Itoa(limit)+"); retry later")
	return true
}

// retainedScanFull reports whether a SUBSCRIBE with these options must be
// refused: ss has maxWalkWait walks waiting already. An exact
// get_retained SUBSCRIBE waits its turn too (its retained events are
// charged by their bytes); on a mesh it gathers, within the gathers' own
// bounds, and past them may wait its turn as well (meshRetained).
func (s *Shard) retainedScanFull(ss *Session, m *proto.Message, match proto.Match) bool {
	if !m.Opt.Bool(proto.KeyGetRetained, false) {
		return false
	}
	return s.walkFull(ss, proto.CodeSubscribe, m.Request, false)
}

// turn runs w now if ss's budget allows, else queues it for the timer.
func (s *Shard) turn(ss *Session, w walk) (now bool) {
	b := &ss.walks
	if len(b.q) == 0 && s.walkReady(ss, w.owned) {
		s.walkRan(ss, int64(w.run()), w.owned)
		return true
	}
	b.q = append(b.q, w)
	if w.meta {
		b.metas++
	}
	if len(b.q) == 1 {
		s.armWalk(ss)
	}
	return false
}

// retainedTurn delivers the retained events of ask's subscription within
// ss's budget: this node's, or on a mesh every node's (see above).
func (s *Shard) retainedTurn(ss *Session, ask retainedAsk) {
	mesh := s.r.mesh != nil
	sub := ask.sub
	if sub.match == proto.MatchExact && mesh {
		s.meshRetained(ss, ask)
		return
	}
	// An exact subscription's retained events go through the budget too,
	// charged by their bytes (sendRetained): at once while the session
	// is not in debt, as before.
	s.turn(ss, walk{run: func() int {
		if !ss.wantsRetained(ask) { // unsubscribed while it waited
			return 0
		}
		if !mesh {
			return s.sendRetained(ss, ask)
		}
		rm := ss.realm
		rm.mu.RLock()
		n := len(rm.retained)
		rm.mu.RUnlock()
		s.meshRetained(ss, ask)
		return max(n, meshScanMin)
	}})
}

// retainedAsk is a get_retained SUBSCRIBE whose retained events are still
// to be delivered (its scan waiting its turn, or on a mesh its gather):
// the subscription, the window the SUBSCRIBE opened on it (nil when the
// session was a subscriber already, or past maxWins), and the session's
// subscriber it is for (subRef.gen); on a mesh, more counts the further
// SUBSCRIBEs merged into it while it waited for a gather (meshRetained),
// each owed the retained events and their end as well.
type retainedAsk struct {
	sub  *subscription
	w    *retWin
	gen  uint64
	more int
}

// same reports whether a is b's SUBSCRIBE again: the same subscription,
// window and subscriber (a subscriber already opens no window, so that
// its repeated get_retained SUBSCRIBEs are all alike).
func (a retainedAsk) same(b retainedAsk) bool {
	return a.sub == b.sub && a.w == b.w && a.gen == b.gen
}

// wantsRetained reports whether ss still waits for ask's retained events:
// it is still the subscriber the SUBSCRIBE was for, and the window that
// SUBSCRIBE opened, if any, is still open. Leaving the subscription
// closes the window; a SUBSCRIBE since, to the same subscription when
// other sessions kept it, makes another subscriber (another gen) and did
// not ask for these events (it has its own scan if it asked). Before, a
// SUBSCRIBE without get_retained after an UNSUBSCRIBE got the retained
// events of the scan still waiting, and one with it got them twice.
func (ss *Session) wantsRetained(ask retainedAsk) bool {
	ref := ss.subs[ask.sub.id]
	return ref.sub == ask.sub && ref.gen == ask.gen && (ask.w == nil || ss.winOf(ask.sub) == ask.w)
}

// metaTurn answers meta call m, which walks a realm table, within ss's
// budget, charged for this node's entries; args and kwargs are its
// arguments, decoded. On a mesh a call gathered from every node that
// finds the session's gathers full when its turn comes is refused then,
// before it walks (meshMetaFull), and costs nothing.
//
// A call that waits holds its arguments as received (a copy, at most
// maxMetaArgs), decoded again when its turn comes: decoded they are up to
// 50 times larger (18 times for 64 KiB of empty dictionaries), and a
// session's 16 waiting calls held 18.8 MB so.
func (s *Shard) metaTurn(ss *Session, m *proto.Message, proc string, h metaFn, args []any, kwargs map[string]any, q []byte, due int64) {
	req := m.Request
	if s.walkFull(ss, proto.CodeCall, req, true) {
		return
	}
	w := s.holdMeta(ss, req, due)
	var rawArgs, rawKwargs proto.Raw // set while it waits
	waited := false
	now := s.turn(ss, walk{meta: true, owned: true, run: func() int {
		if !ss.releaseMeta(req, w) {
			return 0 // canceled while it waited
		}
		if waited && !s.metaStillGranted(ss, req, proc) {
			return 0
		}
		if waited {
			var err *metaErr
			if args, kwargs, err = decodeMetaArgs(rawArgs, rawKwargs, proc); err != nil {
				s.replyError(ss, proto.CodeCall, req, err.uri, err.msg) // decoded once already: not expected
				return 1
			}
			rawArgs, rawKwargs = proto.Raw{}, proto.Raw{}
		}
		if s.meshMetaFull(ss, req, proc, q) {
			return 0
		}
		rm := ss.realm
		rm.mu.RLock()
		n := metaWalks[proc](rm, args, kwargs)
		rm.mu.RUnlock()
		s.runMeta(ss, req, proc, h, args, kwargs, q, due)
		if metaVisits[proc] {
			return max(n, 1)
		}
		return max(n, 1) * metaEntryCost
	}})
	if !now {
		waited = true
		rawArgs, rawKwargs = m.Args.Clone(), m.Kwargs.Clone()
		args, kwargs = nil, nil
	}
}

// armWalk schedules ss's next waiting walk for when its debt is paid: a
// meta call's that waits for its owner's share alone (ss's budget not in
// debt) puts ss in the owner's line, and only the first there is timed
// (walkOwner.line; the others when their turn comes, walkRan).
func (s *Shard) armWalk(ss *Session) {
	b := &ss.walks
	now := s.r.now()
	b.refill(now)
	o := b.own
	w := &s.r.walkOwners
	if !b.q[0].owned || o == nil || b.tokens <= 0 {
		if b.inLine {
			// Its own budget in debt while it waited (on a mesh the
			// other nodes' answers to its gathers are charged as they
			// come: chargeRemote, chargeRemoteRetained): it passes its
			// turn on, and takes its place again at the end once its
			// debt is paid. Before, it kept its place first, timed for
			// its own debt, and every other session of its owner waited
			// behind it with the share whole
			// (TestMeshWalkLineFirstInOwnDebtPassesTurn).
			w.mu.Lock()
			next, due := o.pass(ss, now)
			w.mu.Unlock()
			if next != nil {
				s.wakeWalk(next, due)
			}
		}
		s.addTimer(timer{due: now + s.walkWait(ss, b.q[0].owned), kind: tmWalk, sess: ss})
		return
	}
	w.mu.Lock()
	if !b.inLine {
		b.inLine = true
		o.line = append(o.line, ss)
	}
	first := o.first() == ss
	wait := o.wait(now)
	w.mu.Unlock()
	if first {
		s.addTimer(timer{due: now + wait, kind: tmWalk, sess: ss})
	}
}

// walksDue runs ss's waiting walks while its budget allows.
func (s *Shard) walksDue(ss *Session) {
	s.r.walkOwners.wakes.Add(1)
	b := &ss.walks
	for len(b.q) > 0 && ss.state == stEstablished && s.walkReady(ss, b.q[0].owned) {
		w := b.q[0]
		b.q[0] = walk{}
		b.q = b.q[1:]
		if w.meta {
			b.metas--
		}
		s.walkRan(ss, int64(w.run()), w.owned)
	}
	if len(b.q) == 0 {
		b.q = nil
		return
	}
	if ss.state == stEstablished {
		s.armWalk(ss)
	}
}
