package route

import (
	"strconv"
	"sync"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// wamp.session.on_leave for the sessions of a node that left the mesh
// without closing them (killed, powered off, cut off: see mesh.go, "Nodes
// that go away").
//
// Each node announces its own sessions' on_join and on_leave, which cross
// the mesh as ordinary events. A node that dies announces nothing more,
// so a presence service subscribed to on_leave on another node kept every
// session of the dead node joined for good. So a node that has local
// subscribers who would get wamp.session.on_leave in a realm (an exact,
// prefix or wildcard subscription matching it: Realm.leaveSubs) keeps the
// other nodes' sessions of that realm (presence: id, authid, authrole),
// and only then:
//
//   - It starts complete: it subscribes to the other nodes'
//     wamp.session.on_join (mesh interest of its own, besides its
//     clients') and gathers their sessions (metaSessions); the on_join and
//     on_leave events that arrive meanwhile are applied too, and a session
//     whose on_leave came during the gather is not taken from an answer
//     written before it left. A gather that went without some node's
//     answer (or could not be sent) is made again, every presenceRetry,
//     until one is whole (at most maxPresenceRounds; then counted in
//     MeshStats.PresenceUntracked, once, and logged).
//   - It follows the on_join and on_leave events from the other nodes
//     (meshEvent), up to maxPresence sessions per realm; past it, or for
//     sessions a node left out of its answer, some on_leave will be
//     missing: counted (MeshStats.PresenceUntracked) and logged at most
//     once per lateLogEvery per realm.
//   - When a node has left (MeshSessionsGone, which the mesh calls once
//     every event that node sent before it left has been handed to
//     MeshDeliver, so that the on_leave it did send are applied first),
//     the sessions kept with that node's slot (the low 10 bits of a
//     session id) are checked with the other nodes (metaSessionsHeld: a
//     node that restarted under the same name, or another node with the
//     same slot, answers for those it has), and each one no node holds is
//     announced to this node's own subscribers (never to the mesh: every
//     node that keeps them announces them to its own), as the node would
//     have: [session, authid, authrole].
//
// The last local subscription that would get on_leave going drops it all
// (the mesh interest in on_join too).

// metaSessions is the meta query other nodes answer with their sessions
// of the realm, as a meta procedure's result (answerQuery's [true,
// result]): [sessions, [[id, authid, authrole], ...]], sessions being how
// many it has (more than the list when it was cut short).
const metaSessions = "edgewamp.mesh.sessions"

// metaSessionsHeld asks the other nodes which of the session ids in args
// are theirs; they answer [true, [[id, ...]]].
const metaSessionsHeld = "edgewamp.mesh.sessions_held"

// maxPresence bounds the other nodes' sessions a node keeps per realm for
// their on_leave, and the sessions one node puts in its answer to a
// metaSessions gather. A variable for tests.
var maxPresence = 65536

// maxPresenceAnswer bounds the bytes of one node's answer to a
// metaSessions gather (authids and roles are up to 4 KiB each).
const maxPresenceAnswer = 4 << 20

// maxHeldQuery bounds the ids of one metaSessionsHeld query.
const maxHeldQuery = 16384

// presenceRetry spaces the gathers of a tracking that did not start
// complete.
var presenceRetry = time.Second

// monoStart is the process's start on the monotonic clock (monoNow).
var monoStart = time.Now()

// monoNow returns the nanoseconds since monoStart plus one (never 0) on
// the monotonic clock, for intervals timed with time.Now rather than
// Config.Now: a step of the system clock does not move them.
func monoNow() int64 { return int64(time.Since(monoStart)) + 1 }

// maxPresenceRounds bounds the gathers a tracking makes to start
// complete (every presenceRetry while some node does not answer).
const maxPresenceRounds = 10

// presenceAnnounceBatch is how many on_leave one turn of shard 0's loop
// announces.
const presenceAnnounceBatch = 256

// remoteSession is what a node keeps of another node's session.
type remoteSession struct {
	authID, authRole string
}

// presence is a realm's record of the other nodes' sessions while it has
// local on_leave subscribers (Realm.pres). A new one replaces it each time
// tracking starts again, so that a gather or check of an earlier tracking
// finds itself out of date (Realm.pres no longer it) and does nothing.
type presence struct {
	mu   sync.Mutex
	sess map[uint64]remoteSession
	// gathering: a metaSessions gather is under way; left holds the
	// sessions whose on_leave came meanwhile, and goneSlots the slots of
	// the nodes that left meanwhile (checked once it is in).
	gathering bool
	left      map[uint64]struct{}
	goneSlots []uint16
	// rounds counts the gathers made.
	rounds int
	// again: a node's directory came while a gather was under way, which
	// may have been sent before that node was heard (regather).
	again bool
	// announced holds the sessions whose on_leave this node announced
	// (presenceChecked), at most maxPresence: a node cut off and taken for
	// dead comes back with its sessions alive, and their own on_leave is
	// then not passed on again (presenceEvent).
	announced map[uint64]struct{}
	// untracked counts the sessions left out since the last log line.
	untracked uint64
	logAt     time.Time
}

// leaveInterest counts a subscription of (match, uri) coming (+1) or
// going (-1) in the realm's tables, and starts or stops the tracking of
// the other nodes' sessions when it is the first or last that would get
// wamp.session.on_leave. Mesh only; call with rm.mu held for writing.
func (rm *Realm) leaveInterest(match proto.Match, uri string, delta int) {
	if !matches(&subscription{uri: uri, match: match}, metaSessionOnLeave) {
		return
	}
	rm.leaveSubs += delta
	switch {
	case delta > 0 && rm.leaveSubs == 1:
		pr := &presence{sess: map[uint64]remoteSession{}}
		rm.pres.Store(pr)
		rm.r.mesh.Subscribe(rm.name, proto.MatchExact, metaSessionOnJoin)
		rm.gatherPresence(pr)
	case delta < 0 && rm.leaveSubs == 0:
		rm.pres.Store(nil)
		rm.r.mesh.Unsubscribe(rm.name, proto.MatchExact, metaSessionOnJoin)
	}
}

// gatherPresence asks the other nodes for their sessions of the realm.
// Never blocks (Mesh.Gather's done runs on another goroutine).
func (rm *Realm) gatherPresence(pr *presence) {
	pr.mu.Lock()
	pr.gathering = true
	pr.left = map[uint64]struct{}{}
	pr.mu.Unlock()
	rm.queryPresence(pr)
}

// queryPresence sends pr's gather, at most one of the realm's per
// presenceRetry: each makes every other node encode up to
// maxPresenceAnswer of its sessions on its shard 0, outside the meta
// calls' walk budget, and a client that subscribed to on_leave and
// unsubscribed in a loop started a tracking, so a gather, at each turn. A
// gather due sooner waits (and is dropped if its tracking is by then).
//
// The interval is on the monotonic clock (monoNow): before, time.Now's
// UnixNano, so that a step of the system clock back by an hour held every
// realm's next presence gather (and the on_leave events it feeds) off
// for that hour.
func (rm *Realm) queryPresence(pr *presence) {
	for {
		now := monoNow()
		last := rm.presGatherAt.Load()
		if wait := last + int64(presenceRetry) - now; last != 0 && wait > 0 {
			time.AfterFunc(time.Duration(wait), func() {
				rm.onShard0(func() {
					if rm.pres.Load() == pr {
						rm.queryPresence(pr)
					}
				})
			})
			return
		}
		if rm.presGatherAt.CompareAndSwap(last, now) {
			break
		}
	}
	q, err := encodeQuery(rm.name, metaSessions, nil, nil)
	if err == nil {
		err = rm.r.gather(q, func(answers [][]byte, missing []string) {
			rm.presenceGathered(pr, answers, missing)
		})
	}
	if err != nil {
		rm.r.log.Warn("mesh: cannot ask the other nodes for their sessions, whose on_leave this node's subscribers would get if their node left; trying again", "realm", rm.name, "err", err)
		rm.presenceGathered(pr, nil, []string{"(not sent)"})
	}
}

// regather gathers the other nodes' sessions again when a node's whole
// directory came (MeshSync: a node joined, or was heard again after it had
// been taken for dead, its link cut for longer than the peer timeout).
// The sessions that joined that node meanwhile announced their on_join
// while this node did not hear it: they were kept by no node here, and
// their on_leave was missing when their node died later. The sessions a
// gather brings are added to those kept (those announced gone excepted),
// at most one gather a presenceRetry (queryPresence). On shard 0.
func (rm *Realm) regather(pr *presence) {
	if rm.pres.Load() != pr {
		return
	}
	pr.mu.Lock()
	busy := pr.gathering
	if busy {
		pr.again = true
	} else {
		pr.rounds = 0 // its own retries, if some node does not answer
	}
	pr.mu.Unlock()
	if !busy {
		rm.gatherPresence(pr)
	}
}

// presenceGathered takes in the other nodes' sessions, and checks the
// sessions of the nodes that left meanwhile. Any goroutine.
func (rm *Realm) presenceGathered(pr *presence, answers [][]byte, missing []string) {
	if rm.pres.Load() != pr {
		return
	}
	var short uint64
	pr.mu.Lock()
	for _, a := range answers {
		l, rerr, ok := decodeAnswer(a)
		if rerr != nil && rerr.uri == uriNotAnswered {
			missing = append(missing, rerr.msg) // too late there (MeshQuery)
		}
		if !ok || rerr != nil || len(l) != 2 {
			continue
		}
		list, _ := l[1].([]any)
		if n := toInt(l[0]); n > int64(len(list)) {
			short += uint64(n) - uint64(len(list))
		}
		for _, e := range list {
			id, rs, ok := remoteSessionOf(e)
			if !ok {
				continue
			}
			_, gone := pr.left[id]
			if _, done := pr.announced[id]; !gone && !done {
				pr.add(rm, id, rs)
			}
		}
	}
	if short > 0 {
		pr.leftOut(rm, short, "a node had more sessions than it tells ("+strconv.Itoa(maxPresence)+" or 4 MiB)")
	}
	pr.gathering = false
	pr.left = nil
	slots := pr.goneSlots
	pr.goneSlots = nil
	pr.rounds++
	again := len(missing) > 0 && pr.rounds < maxPresenceRounds
	regather := pr.again && !again
	pr.again = false
	pr.mu.Unlock()
	for _, slot := range slots {
		rm.presenceGone(pr, slot)
	}
	if regather {
		rm.onShard0(func() { rm.regather(pr) })
	}
	switch {
	case again:
		rm.r.log.Warn("mesh: some nodes did not tell their sessions, whose on_leave this node's subscribers would get if their node left; asking again", "realm", rm.name, "missing", missingNodes(missing), "retry_in", presenceRetry)
		time.AfterFunc(presenceRetry, func() {
			rm.onShard0(func() {
				if rm.pres.Load() == pr {
					rm.gatherPresence(pr)
				}
			})
		})
	case len(missing) > 0:
		rm.r.ms.stats.PresenceUntracked.Add(1)
		rm.r.log.Warn("mesh: some nodes did not tell their sessions after "+strconv.Itoa(maxPresenceRounds)+" gathers; the on_leave of their sessions that joined before will be missing if they leave the mesh without closing them", "realm", rm.name, "missing", missingNodes(missing))
	}
}

// remoteSessionOf reads one [id, authid, authrole] of an answer.
func remoteSessionOf(e any) (uint64, remoteSession, bool) {
	t, _ := e.([]any)
	if len(t) != 3 {
		return 0, remoteSession{}, false
	}
	id, ok := argID(t, 0)
	a, ok1 := t[1].(string)
	r, ok2 := t[2].(string)
	if !ok || !ok1 || !ok2 || id == 0 {
		return 0, remoteSession{}, false
	}
	return id, remoteSession{a, r}, true
}

// add keeps session id, within maxPresence. Call with pr.mu held.
func (pr *presence) add(rm *Realm, id uint64, rs remoteSession) {
	if _, ok := pr.sess[id]; !ok && len(pr.sess) >= maxPresence {
		pr.leftOut(rm, 1, "past "+strconv.Itoa(maxPresence)+" sessions of other nodes in the realm")
		return
	}
	pr.sess[id] = rs
}

// leftOut counts n sessions left out of the tracking (some on_leave will
// be missing) and logs it at most once per lateLogEvery. Call with pr.mu
// held.
func (pr *presence) leftOut(rm *Realm, n uint64, why string) {
	rm.r.ms.stats.PresenceUntracked.Add(n)
	pr.untracked += n
	if now := time.Now(); now.Sub(pr.logAt) >= lateLogEvery {
		rm.r.log.Warn("mesh: sessions of other nodes left out of those whose on_leave this node announces if their node leaves the mesh without closing them; some on_leave will be missing",
			"realm", rm.name, "why", why, "left_out", pr.untracked)
		pr.logAt, pr.untracked = now, 0
	}
}

// presenceEvent applies an on_join or on_leave from another node to the
// realm's tracking, and reports whether the event is to be dropped: the
// on_leave of a session whose on_leave this node announced already (its
// node was cut off and came back; its subscribers were told the session
// had left). Any goroutine (meshEvent).
func (rm *Realm) presenceEvent(pr *presence, p *publication) (drop bool) {
	join := string(p.topic) == metaSessionOnJoin
	if !join && string(p.topic) != metaSessionOnLeave {
		return false
	}
	v, err := proto.DecodeValue(p.c.args)
	args, _ := v.([]any)
	if err != nil || len(args) == 0 {
		return false
	}
	if join {
		d, _ := args[0].(map[string]any)
		id, ok := argID([]any{d["session"]}, 0)
		a, _ := d["authid"].(string)
		r, _ := d["authrole"].(string)
		if !ok || id == 0 {
			return false
		}
		pr.mu.Lock()
		pr.add(rm, id, remoteSession{a, r})
		pr.mu.Unlock()
		return false
	}
	id, ok := argID(args, 0)
	if !ok {
		return false
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	delete(pr.sess, id)
	if pr.gathering && len(pr.left) < maxPresence {
		pr.left[id] = struct{}{}
	}
	if _, done := pr.announced[id]; done {
		delete(pr.announced, id)
		return true
	}
	return false
}

// MeshSessionsGone tells the router that the sessions of a node that
// left the mesh (after MeshNodeDown), whose session-id slot is slot, are
// gone: those it did not announce leaving are announced to this node's
// subscribers of wamp.session.on_leave, once the other nodes have said
// they do not hold them (see above). The mesh calls it once every event
// the node sent before it left has been handed to MeshDeliver. slot 0
// (unknown) does nothing. Safe for concurrent use; it never blocks.
func (r *Router) MeshSessionsGone(node MeshNode, slot uint16) {
	if r.ms == nil || slot == 0 || slot > MaxMeshSlot {
		return
	}
	for _, rm := range *r.realms.Load() {
		if pr := rm.pres.Load(); pr != nil {
			rm.presenceGone(pr, slot)
		}
	}
}

// onShard0 runs f on shard 0, where the Mesh methods are called from
// (mesh.go, Threading); not when the router is stopping.
func (rm *Realm) onShard0(f func()) { rm.r.shards[0].Do(f) }

// presenceGone checks with the other nodes the kept sessions of slot
// (metaSessionsHeld), and announces those no node holds. Any goroutine:
// the checks are sent from shard 0.
func (rm *Realm) presenceGone(pr *presence, slot uint16) {
	pr.mu.Lock()
	if pr.gathering {
		pr.goneSlots = append(pr.goneSlots, slot)
		pr.mu.Unlock()
		return
	}
	var ids []uint64
	for id := range pr.sess {
		if id&MaxMeshSlot == uint64(slot) {
			ids = append(ids, id)
		}
	}
	pr.mu.Unlock()
	if len(ids) > 0 {
		rm.onShard0(func() { rm.askHeld(pr, ids) })
	}
}

// askHeld asks the other nodes which of ids they hold, maxHeldQuery at
// a time; the answers go to presenceChecked. On shard 0.
func (rm *Realm) askHeld(pr *presence, ids []uint64) {
	for len(ids) > 0 {
		part := ids[:min(len(ids), maxHeldQuery)]
		ids = ids[len(part):]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		q, err := encodeQuery(rm.name, metaSessionsHeld, args, nil)
		if err == nil {
			err = rm.r.gather(q, func(answers [][]byte, _ []string) {
				rm.presenceChecked(pr, part, answers)
			})
		}
		if err != nil {
			// The slot's node is gone: what the others could say is
			// only which of these a node of the same slot holds.
			rm.r.log.Warn("mesh: cannot ask the other nodes which sessions of a node that left they hold; announcing their on_leave", "realm", rm.name, "sessions", len(part), "err", err)
			rm.presenceChecked(pr, part, nil)
		}
	}
}

// presenceChecked announces the sessions of ids that are still kept and
// that no answer (to metaSessionsHeld) holds. A node that did not answer
// is taken to hold none (only a node with the gone node's slot can).
func (rm *Realm) presenceChecked(pr *presence, ids []uint64, answers [][]byte) {
	held := map[uint64]bool{}
	for _, a := range answers {
		l, rerr, ok := decodeAnswer(a)
		if !ok || rerr != nil || len(l) != 1 {
			continue
		}
		list, _ := l[0].([]any)
		for i := range list {
			if id, ok := argID(list, i); ok {
				held[id] = true
			}
		}
	}
	if rm.pres.Load() != pr {
		return
	}
	type gone struct {
		id uint64
		rs remoteSession
	}
	var out []gone
	pr.mu.Lock()
	for _, id := range ids {
		if rs, ok := pr.sess[id]; ok && !held[id] {
			delete(pr.sess, id)
			out = append(out, gone{id, rs})
			if pr.announced == nil || len(pr.announced) >= maxPresence {
				// The oldest are most likely of nodes that are gone
				// for good: forgotten all at once, at the bound.
				pr.announced = map[uint64]struct{}{}
			}
			pr.announced[id] = struct{}{}
		}
	}
	pr.mu.Unlock()
	if len(out) == 0 {
		return
	}
	rm.r.ms.stats.PresenceAnnounced.Add(uint64(len(out)))
	rm.r.log.Info("mesh: announcing on_leave for sessions of a node that left the mesh without closing them", "realm", rm.name, "sessions", len(out))
	s := rm.r.shards[0]
	for len(out) > 0 {
		batch := out[:min(len(out), presenceAnnounceBatch)]
		out = out[len(batch):]
		s.Do(func() {
			for _, g := range batch {
				rm.metaPush(metaItem{topic: metaSessionOnLeave, sess: g.id, args: []any{g.id, g.rs.authID, g.rs.authRole}, local: true})
			}
			s.metaFlush(rm)
		})
	}
}

// answerSessions answers metaSessions: this node's sessions of the realm,
// at most maxPresence of them and maxPresenceAnswer bytes (or what the
// mesh carries in one message, MeshMessageLimit, if less), and how many it
// has. On shard 0.
func (s *Shard) answerSessions(rm *Realm) []byte {
	all := rm.sessionsSnapshot()
	list := make([]any, 0, min(len(all), maxPresence))
	// The answer's frame and count take at most 32 bytes; an entry at
	// most its strings and 24 (an array header, an id, two string
	// headers of up to 5 bytes each).
	limit := s.r.meshLimit(maxPresenceAnswer) - 32
	size := 0
	for _, x := range all {
		size += len(x.authID) + len(x.authRole) + 24
		if len(list) >= maxPresence || size > limit {
			break
		}
		list = append(list, []any{x.id, x.authID, x.authRole})
	}
	raw, err := proto.EncodeValue(proto.MsgPack, []any{true, []any{len(all), list}})
	if err != nil {
		return nil
	}
	return raw.B
}

// answerSessionsHeld answers metaSessionsHeld: the ids in args of this
// node's sessions of the realm. On shard 0.
func (s *Shard) answerSessionsHeld(rm *Realm, args []any) []byte {
	held := []uint64{}
	rm.mu.RLock()
	for i := range args {
		if id, ok := argID(args, i); ok && rm.members[id] != nil {
			held = append(held, id)
		}
	}
	rm.mu.RUnlock()
	raw, err := proto.EncodeValue(proto.MsgPack, []any{true, []any{held}})
	if err != nil {
		return nil
	}
	return raw.B
}

// MeshPresence returns how many of the other nodes' sessions of realm
// this node keeps for their on_leave, or -1 when it keeps none (no local
// subscriber would get wamp.session.on_leave) or is still gathering them
// (diagnostics and tests). Safe for concurrent use.
func (r *Router) MeshPresence(realm string) int {
	rm := r.Realm(realm)
	if rm == nil {
		return -1
	}
	pr := rm.pres.Load()
	if pr == nil {
		return -1
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.gathering || pr.rounds == 0 {
		return -1
	}
	return len(pr.sess)
}
