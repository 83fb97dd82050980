package edge

import (
	"errors"
	"hash/maphash"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Node implements route.Mesh: the router calls these on its shard
// goroutines; none of them blocks (they queue work for the sender).
var (
	_ route.Mesh             = (*Node)(nil)
	_ route.MeshMessageLimit = (*Node)(nil)
)

// Subscribe implements route.Mesh: the node gets NATS interest for the
// subscription's subject (one NATS subscription per distinct subject,
// counted), or, while the realm's distinct subjects on this node pass
// Options.MaxInterest, one for the whole realm (see realmInterest).
func (n *Node) Subscribe(realm string, match proto.Match, uri string) {
	subj := interestSubject(n.evRoot, realm, match, uri)
	n.imu.Lock()
	ri := n.interests[realm]
	if ri == nil {
		ri = &realmInterest{subs: map[string]*interest{}}
		n.interests[realm] = ri
	}
	ent := ri.subs[subj]
	if ent == nil {
		ent = &interest{}
		ri.subs[subj] = ent
		ri.bytes += len(subj)
		ri.comps += subjectComponents(subj)
		switch {
		case ri.wide != nil:
		case len(ri.subs) > n.opts.MaxInterest || ri.bytes > n.maxInterestBytes() || ri.comps > n.maxInterestComponents():
			n.widen(realm, ri)
		default:
			n.out.push(opSubscribe, subj, "", nil, ent)
		}
	}
	ent.n++
	n.imu.Unlock()
}

// Unsubscribe implements route.Mesh.
func (n *Node) Unsubscribe(realm string, match proto.Match, uri string) {
	subj := interestSubject(n.evRoot, realm, match, uri)
	n.imu.Lock()
	defer n.imu.Unlock()
	ri := n.interests[realm]
	if ri == nil {
		return
	}
	ent := ri.subs[subj]
	if ent == nil {
		return
	}
	if ent.n--; ent.n > 0 {
		return
	}
	delete(ri.subs, subj)
	ri.bytes -= len(subj)
	ri.comps -= subjectComponents(subj)
	if ri.wide == nil {
		n.out.push(opUnsubscribe, subj, "", nil, ent)
	} else if len(ri.subs) <= n.opts.MaxInterest/2 && ri.bytes <= n.maxInterestBytes()/2 && ri.comps <= n.maxInterestComponents()/2 {
		n.narrow(realm, ri)
	}
	if len(ri.subs) == 0 && ri.wide == nil {
		delete(n.interests, realm)
	}
}

// realmInterest is this node's NATS interest in the events of one realm.
//
// Every distinct subject a node subscribes to is a subscription in every
// NATS server of the mesh (the route protocol replicates interest): on
// each other node about 1 KiB plus twice or three times the subject, kept
// in the NATS server, out of reach of the router's limits. A client
// subscribing to 65,536 distinct topics (one session's default bound)
// made each other node of a 3-node mesh hold 77 MB more (9.5 KiB per
// subscription with 4 KiB URIs: 620 MB), and its own node 243 MB against
// 38 MB alone; a few sessions more, and every node ran out of memory. So
// past Options.MaxInterest distinct subjects in a realm (or 128 bytes of
// subject each on average), the node takes one subscription to all of the
// realm's events instead ("ew.e2.<realm>.>", logged, Stats.WideRealms):
// the other nodes then hold one entry for the realm, and send this node
// every event of it, which it matches against its own tables (an event
// that matches nothing here is dropped at once). Once they are down to
// half of every bound, it subscribes to the subjects again.
//
// The subjects' components are bounded too, 8 each on average: a NATS
// server keeps a subject in a tree with a level and a node for each of
// its tokens, about 400 bytes each, so a subject of 2,043 one-letter
// components (a 4 KiB topic "x1.a.a.…") held ~790 KiB in every server of
// the mesh, this node's own included, against ~25 KiB for as many bytes
// in two components: 400 exact SUBSCRIBEs of one client, within the
// count and byte bounds, took two nodes' servers 630 MiB, out of reach of
// the router's subscription_bytes (4.4 KiB each there).
type realmInterest struct {
	subs  map[string]*interest // by subject
	bytes int                  // the subjects' bytes
	comps int                  // the subjects' components (subjectComponents)
	wide  *interest            // the realm's every event, while past the bounds; else nil
}

// maxInterestBytes bounds the subject bytes of a realm's interest.
func (n *Node) maxInterestBytes() int { return n.opts.MaxInterest * 128 }

// maxInterestComponents bounds the components of a realm's subjects
// (realmInterest).
func (n *Node) maxInterestComponents() int { return n.opts.MaxInterest * 8 }

// subjectComponents returns the tokens of an interest subject after its
// event root and realm (shared by all of the realm's subjects in a
// server's tree): the URI's components ('>' for a prefix's last).
func subjectComponents(subj string) int {
	return strings.Count(subj, ".") - 2 // "ew.e2.<realm>.": 3 dots, one token after the last
}

// widen replaces the realm's subscriptions by one to all of its events:
// that one first, so that no event falls between them (both are in the
// node's queue group, so NATS delivers each event once meanwhile). Call
// with imu held.
func (n *Node) widen(realm string, ri *realmInterest) {
	ri.wide = &interest{n: 1}
	n.out.push(opSubscribe, wideSubject(n.evRoot, realm), "", nil, ri.wide)
	for subj, ent := range ri.subs {
		n.out.push(opUnsubscribe, subj, "", nil, ent)
	}
	n.stats.WideRealms.Add(1)
	if skipped, ok := n.interestLogDue(); ok {
		n.log.Warn("mesh: this node's subscriptions in a realm passed mesh.max_interest; it now receives every event of the realm from the other nodes",
			"realm", realm, "subjects", len(ri.subs), "subject_bytes", ri.bytes, "subject_components", ri.comps, "max_interest", n.opts.MaxInterest, "changes_unlogged", skipped)
	}
}

// interestLogEvery spaces the log lines about realms widening and
// narrowing: one session that subscribes a few topics past the bound and
// leaves them again, over and over, changes it at will (at the default
// bound and 4 KiB topics, every 513 SUBSCRIBEs and 257 UNSUBSCRIBEs), and
// each change was a line, written on that session's loop under imu.
const interestLogEvery = 10 * time.Second

// interestLogDue reports whether a widening or narrowing may be logged
// now, and how many were not since the last line. One not logged is told
// of by a summary line when the wait is over (the last line may otherwise
// say a realm is wide that has narrowed since). Call with imu held.
func (n *Node) interestLogDue() (skipped int, ok bool) {
	now := time.Now()
	if wait := interestLogEvery - now.Sub(n.iLogAt); !n.iLogAt.IsZero() && wait > 0 {
		n.iUnlogged++
		if n.iSummary == nil {
			n.iSummary = time.AfterFunc(wait, n.interestSummary)
		}
		return 0, false
	}
	skipped = n.iUnlogged
	n.iLogAt, n.iUnlogged = now, 0
	return skipped, true
}

// interestSummary logs the widenings and narrowings interestLogDue did
// not, and the realms wide now.
func (n *Node) interestSummary() {
	n.imu.Lock()
	defer n.imu.Unlock()
	n.iSummary = nil
	if n.iUnlogged == 0 {
		return
	}
	var wide []string
	for realm, ri := range n.interests {
		if ri.wide != nil {
			wide = append(wide, realm)
		}
	}
	sort.Strings(wide)
	if len(wide) > 8 {
		wide = append(wide[:8:8], "…")
	}
	n.log.Info("mesh: realms widened past mesh.max_interest or narrowed back more often than logged",
		"changes_unlogged", n.iUnlogged, "wide_realms", strings.Join(wide, ","), "wide_realms_count", n.stats.WideRealms.Load())
	n.iLogAt, n.iUnlogged = time.Now(), 0
}

// narrow goes back from one subscription to all of the realm's events to
// one per subject: those first. Call with imu held.
func (n *Node) narrow(realm string, ri *realmInterest) {
	for subj, ent := range ri.subs {
		n.out.push(opSubscribe, subj, "", nil, ent)
	}
	n.out.push(opUnsubscribe, wideSubject(n.evRoot, realm), "", nil, ri.wide)
	ri.wide = nil
	n.stats.WideRealms.Add(-1)
	if skipped, ok := n.interestLogDue(); ok {
		n.log.Info("mesh: this node's subscriptions in a realm are back under mesh.max_interest; it receives only the events it subscribed to",
			"realm", realm, "subjects", len(ri.subs), "changes_unlogged", skipped)
	}
}

// Publish implements route.Mesh: the event goes to its subject; NATS
// delivers it to the nodes with interest only.
//
// An event no node has interest in is not queued once the queue holds
// more than a sixteenth of its bound (noInterest): it went into the queue
// regardless, and one client publishing large events to a topic nobody
// subscribes to filled the events' three quarters, so that another
// publisher's events to a topic a session on another node subscribes to
// were dropped (outbound_full), where on one node such publications cost
// nothing (TestUnheardFloodLeavesOthersEvents). Below that the queue is
// not the scarce thing, and the common path takes no lock of the
// server's.
func (n *Node) Publish(realm string, topic []byte, env []byte) error {
	if n.tooLarge(env) {
		return ErrTooLarge
	}
	subj := n.subjects.get(n.evRoot, realm, topic)
	if n.noInterest(subj) {
		n.stats.EventsUnheard.Add(1)
		return nil
	}
	if err := n.out.pushEnv(classBulk, subj, "", env); err != nil {
		n.stats.EventsDropped.Add(1)
		return err
	}
	return nil
}

// noInterest reports whether an event to subj would reach no node, while
// the outbound queue holds more than a sixteenth of its bound: the
// embedded server's account, which holds this node's subscriptions and
// those of every other server's it is linked to (routes, leaf links),
// has none matching. This node's own (NoEcho: never delivered back to
// it) count as interest. With NatsURL the interest is not known here:
// false.
func (n *Node) noInterest(subj string) bool {
	return n.acc != nil && n.out.busy.Load() && !n.acc.SubscriptionInterest(subj)
}

// errNoNode is returned by Send for a node that is gone.
var errNoNode = errors.New("edge: the node left the mesh")

// Send implements route.Mesh: env goes to node's inbox, with this node's
// inbox as the Reply field (how the receiver knows the sender).
func (n *Node) Send(node route.MeshNode, env []byte) error {
	subj := n.peers.view.Load().subj[node]
	if subj == "" {
		return errNoNode
	}
	if n.tooLarge(env) {
		return ErrTooLarge
	}
	return n.out.pushEnv(classRoute, subj, n.inbox, env)
}

// SendEnd implements route.MeshEndSender: Send for a small message that
// ends a call another node waits for (an error for a caller there, an
// INTERRUPT for a callee there), which may use a reserve of an eighth of
// MaxOutbound past the bound that calls and results stop at (classEnd).
// It goes as a lone NATS message, never in a frame: the receiver tells
// it from the calls and results by its bytes (route.MeshEndEnvelope),
// and keeps a reserve for it in its inbound queue (inEnd).
func (n *Node) SendEnd(node route.MeshNode, env []byte) error {
	subj := n.peers.view.Load().subj[node]
	if subj == "" {
		return errNoNode
	}
	if n.tooLarge(env) {
		return ErrTooLarge
	}
	return n.out.pushItem(opPublish, false, classEnd, subj, n.inbox, env, nil)
}

// ErrTooLarge is returned by Send and Publish for an envelope larger
// than the NATS server takes (its max_payload): route.ErrMeshTooLarge,
// which route tells apart.
var ErrTooLarge = route.ErrMeshTooLarge

// MaxMessage implements route.MeshMessageLimit: the largest message the
// NATS server takes (0 before the connection).
func (n *Node) MaxMessage() int { return int(n.maxPayload.Load()) }

// tooLarge reports whether env is larger than the NATS server takes, and
// counts it (Stats.TooLarge). Such an envelope was queued, then refused
// by nats.go in the sender (PublishErrors): lost, and a CALL's caller,
// told nothing, waited for its timeout, or for ever without one. Refused
// here, the caller gets wamp.error.payload_size_exceeded at once
// (route.meshSendFailure). Only with
// NatsURL: the embedded server takes more than a WAMP message can make.
func (n *Node) tooLarge(env []byte) bool {
	if mp := n.maxPayload.Load(); mp > 0 && int64(len(env)) > mp {
		n.stats.TooLarge.Add(1)
		return true
	}
	return false
}

// deliverEvent hands one event envelope to the router unless it is a
// copy already delivered. Event dispatcher only.
func (n *Node) deliverEvent(env []byte) {
	id, ok := route.MeshEventID(env)
	if !ok {
		return
	}
	if n.dedup.seen(id) {
		n.stats.Duplicates.Add(1)
		return
	}
	n.r.MeshDeliver(0, env)
}

// dedupRing remembers the last publication ids seen. It is a safety net:
// NATS delivers an event to a node once however many of its subjects
// match (eventQueue); with a plain subscription per subject it delivered
// one copy per match, which one session's overlapping prefixes made a
// thousand, interleaved with other nodes' events, and this window forgot
// an id before its last copy came. It is bounded, and allocates nothing
// once full.
type dedupRing struct {
	ids  [dedupWindow]uint64
	set  map[uint64]struct{}
	next int
}

const dedupWindow = 4096

func (d *dedupRing) seen(id uint64) bool {
	if d.set == nil {
		d.set = make(map[uint64]struct{}, dedupWindow)
	}
	if _, ok := d.set[id]; ok {
		return true
	}
	if old := d.ids[d.next]; old != 0 {
		delete(d.set, old)
	}
	d.ids[d.next] = id
	d.set[id] = struct{}{}
	d.next = (d.next + 1) % dedupWindow
	return false
}

// subjectCache maps (realm, topic) to its event subject, so that the
// publish path does not rebuild it each time. Every loop reads it at
// once, without a lock: a set-associative table of immutable entries
// (subjectWays per set, the set picked by a seeded hash of the topic),
// each slot an atomic pointer. A miss replaces one entry of its set, one
// not used since the set's last miss (a second chance, as a clock
// does), so a topic published to more often than its set misses stays.
// Bounded in bytes: an entry's topic and subject are at most
// subjectEntryMax bytes (longer ones are built each time, not kept), so
// the table holds at most subjectCacheBytes of them.
//
// It was one map behind a mutex that every loop took on each event, and
// it was cleared whole at 4,096 entries: a client cycling through topics
// made every publisher build its subject again
// (TestSubjectCacheKeepsHotTopicsPastCycling). Before that, a bound in
// entries alone let one client that published once to each of 4,095
// topics near proto.MaxURILen (16 MiB sent, to topics nobody subscribed
// to) make the node hold 43.5 MB of them (57 MiB of heap), counted in no
// budget (TestSubjectCacheBoundedInBytes).
type subjectCache struct {
	slots [subjectSets * subjectWays]atomic.Pointer[subjectEntry]
}

type subjectEntry struct {
	realm, topic, subj string
	used               atomic.Bool // hit since its set's last miss
}

const (
	subjectSets       = 512
	subjectWays       = 4
	subjectEntryMax   = 512 // bytes of an entry's topic and subject
	subjectCacheBytes = subjectSets * subjectWays * subjectEntryMax
)

// subjectSeed seeds the cache's hash: a client cannot pick topics that
// fall in one set.
var subjectSeed = maphash.MakeSeed()

// get returns the event subject of topic in realm. Safe for concurrent
// use; a hit neither locks nor allocates.
func (c *subjectCache) get(root, realm string, topic []byte) string {
	h := maphash.Bytes(subjectSeed, topic)
	set := c.slots[(h%subjectSets)*subjectWays:][:subjectWays]
	for i := range set {
		if e := set[i].Load(); e != nil && e.topic == string(topic) && e.realm == realm {
			if !e.used.Load() {
				e.used.Store(true)
			}
			return e.subj
		}
	}
	s := string(eventSubject(nil, root, realm, topic))
	if len(topic)+len(s) > subjectEntryMax {
		return s
	}
	e := &subjectEntry{realm: realm, topic: string(topic), subj: s}
	for i := range set {
		if set[i].Load() == nil {
			set[i].CompareAndSwap(nil, e) // lost to another loop's miss: not kept
			return s
		}
	}
	for i := range set {
		old := set[i].Load()
		if !old.used.Load() {
			set[i].CompareAndSwap(old, e)
			return s
		}
		old.used.Store(false) // a second chance: replaced at the set's next miss unless used
	}
	set[(h/subjectSets)%subjectWays].Store(e)
	return s
}

// ---------------------------------------------------------------- gathers

// maxGathers bounds the gathers in flight.
const maxGathers = 1024

type gather struct {
	// want holds the nodes whose answers end the gather before its
	// timeout (nil: only the timeout ends it); left counts those not in.
	want    map[string]bool
	left    int
	got     map[string]bool
	answers [][]byte
	dropped []string // nodes whose answers did not fit in Options.MaxGathered
	// paced holds the answers under way a part at a time (paced.go), by
	// node; began is when the gather was sent.
	paced map[string]*pacedIn
	began time.Time
	done  func(answers [][]byte, missing []string)
	timer *time.Timer
	// due is when timer is set to fire (under gmu); stalled, that it
	// fired late once already (a stall of this process, Gather).
	due     time.Time
	stalled bool
	once    sync.Once
}

// expect sets the nodes whose answers end g early (under gmu once g is
// in Node.gathers).
func (g *gather) expect(names []string) {
	g.want = make(map[string]bool, len(names))
	g.left = 0
	for _, name := range names {
		g.want[name] = true
		if !g.got[name] {
			g.left++
		}
	}
}

func (g *gather) finish(missing []string) {
	g.once.Do(func() {
		if g.timer != nil {
			g.timer.Stop()
		}
		g.done(g.answers, missing)
	})
}

// finishGather ends g, out of Node.gathers: with the nodes it waited for
// that did not answer when its timeout ended it, and one "" when there
// are nodes a peer knows that this node has not heard from (route reads a
// missing answer as "not known", never as "not there"). A gather its
// timeout ended without some answers is counted and logged.
func (n *Node) finishGather(g *gather, timedOut bool) {
	n.gmu.Lock()
	var missing []string
	if timedOut {
		missing = g.missing(n.peers.view.Load().names)
	}
	if under := n.endPaced(g); len(under) > 0 {
		missing = append(missing, under...) // their answers not whole in time
	}
	if len(missing) > 0 {
		n.incomplete(missing) // the nodes it waited for
	}
	missing = append(missing, g.dropped...)
	if n.unheard() > 0 {
		// One for them all; not counted here: PeersUnheard and its own
		// warning report them (checkUnheard).
		missing = append(missing, "")
	}
	// route gets the answers now (it decodes them on a shard soon after):
	// they no longer count against the budget.
	n.gBytes -= g.held()
	n.gmu.Unlock()
	g.finish(missing)
}

// held is the bytes of the answers g holds (Node.gBytes).
func (g *gather) held() int64 {
	var b int64
	for _, a := range g.answers {
		b += int64(len(a))
	}
	return b
}

// unheard returns how many nodes this node knows exist and has not heard
// from: those its peers' last heartbeats say they know (peerView.unheard);
// and, in its first PeerTimeout, one when it has routes or
// leaf remotes to dial but has heard from no node yet.
func (n *Node) unheard() int {
	v := n.peers.view.Load()
	if v.unheard > 0 || len(v.names) > 0 {
		return v.unheard
	}
	at := n.startedAt.Load()
	if at != 0 && n.since(at) < n.opts.PeerTimeout && (len(n.opts.Cluster.Routes) > 0 || len(n.opts.Leaf.Remotes) > 0) {
		return 1
	}
	return 0
}

// Gather implements route.Mesh: env goes to every node; done gets the
// answers of the nodes alive when it was sent, or those in by
// GatherTimeout, and the nodes whose answers are missing. Answers of other
// nodes (one that joined meanwhile) are kept but do not stand in for a
// missing one. A node just started may not know all the others yet (their
// heartbeats, its routes still forming): a node just restarted answered
// wamp.session.kill with no_such_session for a session alive elsewhere.
// Its gathers wait until it has heard two rounds of heartbeats, then for
// the nodes it knows by then; and each heartbeat names the peers its
// sender knows, so that a node that does not hear one of them reports the
// gap as a missing answer ("") rather than a whole one (unheard).
func (n *Node) Gather(env []byte, done func(answers [][]byte, missing []string)) error {
	names := n.peers.view.Load().names
	var settle time.Duration
	if at := n.startedAt.Load(); at != 0 {
		settle = 2*n.opts.Heartbeat - n.since(at)
	}
	if len(names) == 0 && settle <= 0 {
		var missing []string
		if n.unheard() > 0 {
			missing = []string{""}
		}
		go done(nil, missing)
		return nil
	}
	g := &gather{got: map[string]bool{}, done: done, began: time.Now()}
	if settle <= 0 {
		g.expect(names)
	}
	n.gmu.Lock()
	if len(n.gathers) >= maxGathers {
		n.gmu.Unlock()
		return ErrBusy
	}
	n.gseq++
	id := n.gseq
	n.gathers[id] = g
	g.due = g.began.Add(n.opts.GatherTimeout)
	g.timer = time.AfterFunc(n.opts.GatherTimeout, func() {
		n.gmu.Lock()
		if n.gathers[id] != g {
			n.gmu.Unlock()
			return // answered in full meanwhile (finish runs once)
		}
		now := time.Now()
		if late := now.Sub(g.due); late >= n.opts.GatherTimeout/4 && !g.stalled {
			// The timer fired late: this process did not run (stopped,
			// paused, swapping, starved of CPU), nor did NATS's
			// goroutines, and the answers that came meanwhile are not
			// read yet (a process stopped 1 s ended 3 of 4 gathers
			// without answers it had). Once, it waits up to another
			// gather_timeout for them.
			g.stalled = true
			d := min(late, n.opts.GatherTimeout)
			g.due = now.Add(d)
			g.timer.Reset(d)
			n.gmu.Unlock()
			return
		}
		if d := time.Until(n.pacedUntil(g)); d > 0 {
			// Answers under way a part at a time, their parts coming:
			// it waits for them (paced.go).
			g.due = now.Add(d)
			g.timer.Reset(d)
			n.gmu.Unlock()
			return
		}
		delete(n.gathers, id)
		n.gmu.Unlock()
		n.finishGather(g, true)
	})
	if settle > 0 && settle < n.opts.GatherTimeout {
		time.AfterFunc(settle, func() {
			n.gmu.Lock()
			if n.gathers[id] != g {
				n.gmu.Unlock()
				return
			}
			g.expect(n.peers.view.Load().names)
			last := g.left == 0 && len(g.paced) == 0
			if last {
				delete(n.gathers, id)
			}
			n.gmu.Unlock()
			if last {
				n.finishGather(g, false)
			}
		})
	}
	n.gmu.Unlock()
	// The reply subject names the gather, then when it was sent by this
	// node's clock, how long it waits and which life of the node asks
	// (queryReply), so that a node that gets it late does not run it
	// (clock.go). Releases before answer to it as to any reply subject.
	reply := n.queryReply(id)
	if h := n.testHookGather.Load(); h != nil { // tests only
		(*h)()
	}
	if err := n.out.pushBulk(subjQuery, reply, env); err != nil {
		n.gmu.Lock()
		mine := n.gathers[id] == g
		if mine {
			delete(n.gathers, id)
		}
		n.gmu.Unlock()
		if !mine {
			// A timer ended it meanwhile (the settle timer, with no node
			// to wait for) and done has run or is running: the gather
			// ends once, by done (the caller gives back what it holds
			// for the gather in either; before, it did so twice).
			return nil
		}
		g.timer.Stop()
		return err
	}
	return nil
}

// gatherLogEvery spaces the log lines about incomplete gathers: a node
// that stops answering leaves every meta query short until the peer
// timeout drops it (or for good, when it is alive but too slow).
const gatherLogEvery = 10 * time.Second

// missing returns the nodes g waited for that have not answered; g's
// nodes are names (the nodes known now) when it was sent before this
// node knew whom to wait for. Called with gmu held.
func (g *gather) missing(names []string) []string {
	want := g.want
	if want == nil {
		// Sent in the node's first heartbeats, before it knew whom to
		// wait for, and not settled before the timeout: the nodes it
		// knows now.
		want = map[string]bool{}
		for _, name := range names {
			want[name] = true
		}
	}
	var missing []string
	for name := range want {
		if !g.got[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	return missing
}

// incomplete counts a gather that its timeout ended without the answers
// of missing, and logs it, at most once per gatherLogEvery, with the
// number of such gathers since the last line. Called with gmu held.
func (n *Node) incomplete(missing []string) {
	n.stats.GathersIncomplete.Add(1)
	n.gMissed++
	now := time.Now()
	if now.Sub(n.gLogAt) < gatherLogEvery {
		return
	}
	named := missing
	if len(named) > 8 {
		named = append(named[:8:8], "…")
	}
	n.log.Warn("mesh: a meta query or get_retained went without some nodes' answers (its caller got a partial answer, or wamp.error.unavailable where the answer would have been \"not found\"); mesh.gather_timeout may be too short for this mesh's load",
		"missing", strings.Join(named, ","), "gather_timeout", n.opts.GatherTimeout, "incomplete_since_last_line", n.gMissed)
	n.gLogAt, n.gMissed = now, 0
}

// countAnswer counts from's answer to g (gather id), whole or its last
// part, and finishes g when it was the last one awaited. n.gmu is held
// on entry and released here.
func (n *Node) countAnswer(g *gather, id uint64, from string) {
	if g.want[from] {
		g.left--
	}
	last := g.want != nil && g.left == 0 && len(g.paced) == 0
	if last {
		delete(n.gathers, id)
	}
	n.gmu.Unlock()
	if last {
		n.finishGather(g, false)
	}
}

// answered records one node's answer to gather id.
func (n *Node) answered(id uint64, from string, data []byte) {
	n.gmu.Lock()
	g := n.gathers[id]
	if g == nil || from == "" || g.got[from] {
		n.gmu.Unlock()
		return
	}
	g.got[from] = true
	switch {
	case len(data) == 0:
	case n.gBytes+int64(len(data)) > n.opts.MaxGathered:
		// The answers held would pass the budget: the node counts as
		// one that did not answer (route says so, rather than "not
		// found").
		g.dropped = append(g.dropped, from)
		n.stats.GatherAnswersDropped.Add(1)
		if now := time.Now(); now.Sub(n.gFullAt) >= gatherLogEvery {
			n.gFullAt = now
			n.log.Warn("mesh: an answer to a meta query or get_retained was dropped: the answers this node's gathers hold would pass mesh.max_inbound (too many large meta calls or get_retained subscriptions at once); the caller is told the node did not answer", "peer", from, "bytes", len(data), "held", n.gBytes)
		}
	default:
		g.answers = append(g.answers, data)
		n.gBytes += int64(len(data))
	}
	n.countAnswer(g, id, from)
}
