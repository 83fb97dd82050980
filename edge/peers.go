package edge

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Peers, heartbeats and the registration directory.
//
// Every node announces itself on ew.b.h every Heartbeat with its boot id
// and its directory version. A node unheard of for PeerTimeout is taken
// for dead: route.MeshNodeDown fails what was exchanged with it, and
// route.MeshSessionsGone, behind the events it sent (sessionsGone),
// announces its sessions' on_leave to this node's subscribers. A node
// whose boot id changed restarted: the old one is dead. A goodbye
// (ew.b.y) removes a node at once.
//
// Each change to a node's own registrations is broadcast on ew.b.d with
// the next version number. A receiver applies a change whose version is
// the next it expects; a gap (NATS is at-most-once), a new node or a
// heartbeat with a version it has not seen makes it ask for the whole
// directory (ew.n.<node>.s, answered on ew.n.<asker>.S) and replace what
// it had. Changes that arrive while that is under way are kept (up to a
// bound) and applied after it. So a lost message costs at most one
// heartbeat of staleness, never a permanent difference.
//
// # Mesh versions
//
// What nodes send each other is private to a release. Heartbeats and
// directory sync answers end with the sender's mesh version (meshVersion);
// the releases before it sent none. A node whose heartbeat or sync answer
// carries another version, or none, is incompatible: it is not a peer
// (if it was taken for one, it is dropped as if it had left: its
// registrations go, calls in flight with it fail), it is not counted
// among the live nodes nor waited for by gathers, and every message from
// it but its heartbeats is dropped and counted (Stats.VersionMismatch).
// Its claims of single registrations stay its own while it is heard
// (claims.go, alive): a procedure stays exclusive across releases. It is
// logged once per node and version, counted in
// Stats.PeersIncompatible, and forgotten when it is silent for
// PeerTimeout or says goodbye; a heartbeat of this node's version (it was
// upgraded) makes it a peer again. Events never cross between versions:
// their subjects carry the version (subject.go). An earlier release takes
// a node of this one for a peer, but refuses its sync answers (it reads
// no trailing version), so it never routes calls to it either.
//
// Until its first heartbeat or sync answer, a node's version is unknown,
// and it is a peer (with no registrations, which only a sync brings).

// meshVersion is the version of what nodes send each other (route
// envelopes, frames, directory, heartbeats, event subjects). Bump it with
// any change a node of the previous release would misread. The releases
// before the handshake were version 1 and announced none.
const meshVersion = 2

// dirKey is one of this node's registrations.
type dirKey struct {
	realm string
	match proto.Match
	uri   string
}

type peer struct {
	idx     route.MeshNode
	name    string
	inbox   string // "ew.n.<name>"
	msgSubj string // "ew.n.<name>.m"
	boot    uint64 // 0 until a heartbeat told it
	slot    uint16
	ver     uint64 // the last directory version applied
	synced  bool
	// everSynced: a sync of its whole directory has completed since
	// this node took it for a peer (applySync's check of the claims).
	everSynced bool
	askedAt    time.Time // a directory sync request is outstanding since
	last       time.Time // last heard of
	// credited is what a stall's credit made last (creditStall): a peer
	// not heard since is credited no further stall.
	credited time.Time
	// spareUntil: a peer not heard since its last credit, at a stall
	// that credited it none, is taken for dead no earlier than (two
	// heartbeats after that waking), once a silence (spared: its
	// credited then).
	spareUntil, spared time.Time
	pending            []delta // directory changes received during a sync
	// parts holds the parts of a directory sync answer received so far
	// (nparts of them, for version partsVer).
	// partsBytes is what those parts took on the wire (maxSyncBytes).
	parts      []route.MeshRealmReg
	nparts     uint64
	partsVer   uint64
	partsBytes int64
	// paced: the answer being read is paced (each part asked for in turn,
	// askPart), and askedAt is when its last part came or was asked.
	paced     bool
	warnedDup bool
	// readsParts: its heartbeats say it reads gather answers sent a part
	// at a time (paced.go).
	readsParts bool
	// partsAgain: they say it acknowledges a part it has again
	// (hbPartsAgain).
	partsAgain bool
	// knows is how many peers it said it knows in its last heartbeat
	// (-1: it has not said), and knowsSet which, as nameHash values (nil
	// when it sent only the count: more than maxHashedPeers). A peer that
	// knows a node this node does not hear from tells it the node exists.
	knows    int
	knowsSet []uint64
	// freshUntil (zero: not fresh): known again after this node took it
	// for dead itself, so nothing exchanged before is left to reset (see
	// peerTable.forgot): the peer's own word that it took this node for
	// dead (after a partition both sides saw) is ignored, once, until then.
	freshUntil time.Time
	// clock is the peer's clock as seen from here, from its heartbeats'
	// stamps: how late its meta queries are (clock.go).
	clock peerClock
	// sent is when its last stamped heartbeat was sent, on this node's
	// clock (clockNow: its stamp and clock's offset), 0 until one came;
	// written by the control dispatcher, read by the claim store
	// (Node.sentSince) through peerView.sent.
	sent atomic.Int64
}

type delta struct {
	ver uint64
	reg route.MeshRealmReg
}

// maxPeers bounds the nodes a node takes for peers at once (peerFor): a
// mesh of more would pay about a million heartbeats each heartbeat
// period, and the session-id slots (route.MaxMeshSlot) are 1,023. A
// variable for tests.
var maxPeers = 1024

// maxKnows bounds the peer count a heartbeat may announce (a larger one
// is taken for none).
const maxKnows = 1 << 16

// maxPendingDeltas bounds the changes kept while a sync is under way.
const maxPendingDeltas = 4096

// peerTable is owned by the control dispatcher; view is its lock-free
// snapshot for the goroutines that send.
type peerTable struct {
	byName map[string]*peer
	next   route.MeshNode
	view   atomic.Pointer[peerView]
	// forgot holds the nodes this node took for dead for their silence,
	// by name: when one is heard again with the same boot, it may not have
	// noticed (its own PeerTimeout had not run out), and still wait for
	// the answers to the calls it had sent here, which this node forgot.
	// It is told (ew.n.<name>.x) and resets its side too.
	forgot map[string]forgotten
	// bad holds the nodes heard speaking another mesh version, by name
	// (at most maxForgotten); logged the version last logged for each
	// name, so that a node is logged once per version.
	bad    map[string]*badPeer
	logged map[string]uint64
	// badView is bad for other goroutines.
	badView atomic.Pointer[badView]
	// unheardSince is when view.unheard last became non-zero (zero: it
	// is 0); unheardWarned, that this spell was logged (checkUnheard).
	unheardSince  time.Time
	unheardWarned bool
	// gone holds the peers dropped in the last goneGrace (dead, restarted
	// or left), by name: a peer's heartbeat may still count them, as each
	// node drops a dead node on its own clock. They offset the peers'
	// counts (publish), so that a node that died is not taken for one
	// this node cannot hear.
	gone      map[string]time.Time
	goneGrace time.Duration
	self      uint64 // nameHash of this node's name
	// twins holds the other nodes heard using this node's name, by boot
	// (at most maxTwins), until they are silent for PeerTimeout or say
	// goodbye; twinView is it for the claim store (claims.go, take);
	// twinLogged is when a name collision was last logged (see
	// heardTwin).
	twins      map[uint64]*twin
	twinView   atomic.Pointer[map[uint64]*twin]
	twinLogged time.Time
	// deadView holds, by name, the last lives (boots, the latest first,
	// at most maxDeadLives) of each node this node saw end (dropPeer: it
	// restarted, was silent for PeerTimeout, left), at most maxForgotten
	// names, for the claim store (claims.go, life): a claim of such a
	// life is a dead node's; one of a life never heard may be a node's
	// that has just started. Copied on write; its slices are never
	// written once stored.
	deadView atomic.Pointer[map[string][]uint64]
}

// twin is another node heard using this node's name (its heartbeats).
type twin struct {
	last atomic.Int64 // when it was last heard, on Node.mono's clock
	// credited: as peer.credited (control dispatcher only).
	credited int64
	// spareUntil (mono) and spared: as peer's; spareUntil is read by
	// the claim store (twinAlive).
	spareUntil atomic.Int64
	spared     int64
}

type badPeer struct {
	ver  uint64 // 0: none announced
	boot uint64
	last time.Time // its last heartbeat
	// credited, spareUntil and spared: as peer's.
	credited, spareUntil, spared time.Time
}

type badView struct {
	list  []IncompatiblePeer // sorted by name
	boots map[string]uint64  // by name
}

// IncompatiblePeer is a node heard speaking another mesh version than
// this node's (Version 0: a release before the version handshake).
type IncompatiblePeer struct {
	Name    string
	Version uint64
}

type forgotten struct {
	boot uint64
	at   time.Time
}

// maxForgotten bounds peerTable.forgot; forgotTTL is how long an entry is
// kept.
const (
	maxForgotten = 4096
	// maxDeadLives bounds the lives of one name deadView keeps.
	maxDeadLives = 16
	forgotTTL    = time.Hour
)

type peerView struct {
	subj  map[route.MeshNode]string // node-direct subject by handle
	names []string
	boots map[string]uint64 // by name; 0 until a heartbeat or sync told it
	// unheard is how many nodes its peers' last heartbeats say they know
	// and this node has not heard from (its routes to them still forming,
	// or missing), whose answers its gathers miss (Gather); claimer is a
	// peer that knows one.
	unheard int
	claimer string
	// sent is each peer's peer.sent, by name (Node.sentSince).
	sent map[string]*atomic.Int64
}

func (t *peerTable) init(self string, grace time.Duration) {
	t.self = nameHash(self)
	t.goneGrace = grace
	t.gone = map[string]time.Time{}
	t.byName = map[string]*peer{}
	t.forgot = map[string]forgotten{}
	t.bad = map[string]*badPeer{}
	t.logged = map[string]uint64{}
	t.twins = map[uint64]*twin{}
	t.twinView.Store(&map[uint64]*twin{})
	t.deadView.Store(&map[string][]uint64{})
	t.view.Store(&peerView{subj: map[route.MeshNode]string{}})
}

func (t *peerTable) publish() {
	v := &peerView{subj: make(map[route.MeshNode]string, len(t.byName)), boots: make(map[string]uint64, len(t.byName)), sent: make(map[string]*atomic.Int64, len(t.byName))}
	// The nodes this node knows: its peers, itself, and those it has just
	// dropped (a peer may count them a heartbeat or two longer).
	known := make(map[uint64]bool, len(t.byName)+len(t.gone)+1)
	known[t.self] = true
	for name := range t.byName {
		known[nameHash(name)] = true
	}
	for name := range t.gone {
		known[nameHash(name)] = true
	}
	var unheard map[uint64]bool
	var bySet, byCountPeer string
	byCount := 0 // from the peers that sent a count alone
	for name, p := range t.byName {
		v.subj[p.idx] = p.msgSubj
		v.names = append(v.names, name)
		v.boots[name] = p.boot
		v.sent[name] = &p.sent
		if p.knowsSet == nil {
			if k := p.knows - len(t.byName) - len(t.gone); k > byCount {
				byCount, byCountPeer = k, name
			}
			continue
		}
		for _, h := range p.knowsSet {
			if !known[h] && !unheard[h] {
				if unheard == nil {
					unheard = map[uint64]bool{}
				}
				unheard[h] = true
				bySet = name
			}
		}
	}
	v.unheard, v.claimer = len(unheard), bySet
	if byCount > v.unheard {
		v.unheard, v.claimer = byCount, byCountPeer
	}
	sort.Strings(v.names)
	t.view.Store(v)
}

// maxHashedPeers bounds the peers a heartbeat names (as nameHash values,
// 8 bytes each): past it, it carries their number alone.
const maxHashedPeers = 64

// A heartbeat's peer set, after the count: hbSetList and the count's name
// hashes when the set changed since the sender's last heartbeat, and every
// hbListEvery heartbeats (for a node that missed one: NATS is at most
// once); otherwise hbSetDigest and the set's digest (8 bytes), which tells
// a receiver whether the list it keeps is still the sender's. So a
// heartbeat is 10 bytes longer (the count, the kind, the digest), and a
// list of 64 peers goes once in 10 s
// (at the default heartbeat), not twice a second: an edge node on a
// metered uplink hears every node's heartbeats.
const (
	hbSetDigest = 1
	hbSetList   = 2
	hbListEvery = 20
)

// setDigest is the digest of a set of name hashes (order-free).
func setDigest(set []uint64) uint64 {
	var d uint64
	for _, h := range set {
		d ^= h*0x9E3779B97F4A7C15 + 1
	}
	return d
}

// splitHbSet splits what follows a heartbeat's count c into its peer set,
// kind and body (hbSetList and c hashes, hbSetDigest and the digest; kind
// 0 when there is none: past maxHashedPeers, or from a release before the
// sets), and what follows the set (rest). ok is false when the set is
// malformed.
func splitHbSet(c uint64, b []byte) (kind byte, body, rest []byte, ok bool) {
	if c > maxHashedPeers {
		return 0, nil, b, true
	}
	if len(b) == 0 {
		return 0, nil, nil, true
	}
	size := 8
	switch b[0] {
	case hbSetList:
		size = 8 * int(c)
	case hbSetDigest:
	default:
		return 0, nil, nil, false
	}
	if len(b) < 1+size {
		return 0, nil, nil, false
	}
	return b[0], b[1 : 1+size], b[1+size:], true
}

// heardSet reads the peer set of a heartbeat from name, whose count is c
// (kind and body: splitHbSet): the list it carries, the list kept from
// its earlier heartbeat when the digest still matches it, or nil (the
// count alone). On the control dispatcher.
func (n *Node) heardSet(name string, c uint64, kind byte, body []byte) []uint64 {
	switch kind {
	case hbSetList:
		set := make([]uint64, c)
		for i := range set {
			set[i] = binary.LittleEndian.Uint64(body[8*i:])
		}
		return set
	case hbSetDigest:
		p := n.peers.byName[name]
		if p == nil || p.knowsSet == nil || len(p.knowsSet) != int(c) || setDigest(p.knowsSet) != binary.LittleEndian.Uint64(body) {
			return nil
		}
		return p.knowsSet
	}
	return nil
}

// nameHash is a node name's 64-bit FNV-1a hash, which heartbeats carry.
func nameHash(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return h
}

func (t *peerTable) names() []string { return t.view.Load().names }

// runControl is the control dispatcher: node-to-node messages,
// heartbeats, the directory and gathers, in arrival order: one pump
// moves them from NATS's one channel into one queue (in.go), in order,
// and the dispatcher takes that queue in order; what the queue drops for
// its bound leaves a gap, never a reordering, and it drops no directory
// change for calls (they have a reserve), so a directory change stays
// ahead of the calls that follow it from the same node.
//
// The heartbeat ticker runs between batches. When a tick is due after a
// batch, the dispatcher handles what was queued meanwhile first, so
// that after a long batch (a slow meta query, a large sync) it counts
// the heartbeats that came during it before it looks for silent peers:
// a peer is taken for dead for its silence, not for this node's.
//
// A stall of the whole process (stopped, a paused VM, swap, a throttled
// CPU) stops NATS's goroutines too: what the peers sent meanwhile is still
// in sockets when the dispatcher runs again, and was taken for their
// silence (two idle nodes of a process stopped 3 s took each other for
// dead, 3 of 3 runs). A tick missed by over a heartbeat while the
// dispatcher was idle (it wakes from the select below more than two
// heartbeats after its last tick) is such a stall, and its length is
// credited to every peer (creditStall) before they are judged: a peer is
// taken for dead after PeerTimeout of silence while this node could hear
// it. A tick late for a long batch is not credited: NATS ran meanwhile,
// and the batch's heartbeats are read first. (One clock reading a wake
// of the idle dispatcher: no lock, no allocation.)
func (n *Node) runControl() {
	defer n.wg.Done()
	tick := time.NewTicker(n.opts.Heartbeat)
	defer tick.Stop()
	me := nodeInbox(n.opts.Name) + "."
	var spare []*nats.Msg
	lastTick, stallLogged := time.Now(), time.Time{}
	n.tickAt.Store(n.mono())
	// stalled credits a stall of idle until now (a tick missed by over
	// a heartbeat) to the peers, and reports whether it did.
	stalled := func(now time.Time) bool {
		late := now.Sub(lastTick) - n.opts.Heartbeat
		if late <= n.opts.Heartbeat {
			return false
		}
		n.creditStall(late, now)
		lastTick = now.Add(-n.opts.Heartbeat)
		if now.Sub(stallLogged) >= syncLogEvery {
			stallLogged = now
			n.log.Warn("mesh: this node's process did not run for a while (stopped, paused, swapping or starved of CPU); its peers' silence meanwhile is not held against them", "stalled_for", late.Round(time.Millisecond))
		}
		return true
	}
	// onTick sends a heartbeat and judges the peers.
	onTick := func() {
		lastTick = time.Now()
		n.tickAt.Store(n.mono())
		n.heartbeat()
		n.checkPeers()
	}
	for {
		due := false
		select {
		case <-n.stop:
			return
		case <-tick.C:
			if h := n.testHookTick.Load(); h != nil { // tests only
				(*h)()
			}
			if !stalled(time.Now()) {
				onTick()
				continue
			}
			// What was queued meanwhile is read before the peers are
			// judged, as after a long batch: a peer is credited one
			// stall a silence (creditStall), and one heard meanwhile
			// is not silent.
			due = true
		case <-n.ctlq.wake:
			// The select may take the wake first after a stall (both
			// ready): the tick then comes after the first batch.
			stalled(time.Now())
		}
		for {
			ms := n.ctlq.take(spare)
			if len(ms) == 0 {
				spare = ms
				break
			}
			if h := n.testHookControl.Load(); h != nil { // tests only
				(*h)(ms)
			}
			var cost int64
			for i, m := range ms {
				if i&stopEvery == stopEvery && n.stopped.Load() {
					n.ctlq.done(cost + batchCost(ms[i:]))
					clear(ms)
					return
				}
				cost += msgCost(m)
				n.control(m, me)
			}
			n.ctlq.done(cost)
			clear(ms)
			spare = ms
			if due {
				onTick()
				due = false
			}
			select {
			case <-n.stop:
				return
			case <-tick.C:
				due = true
			default:
			}
		}
		if due {
			onTick()
		}
	}
}

// creditStall moves every peer's last-heard time later by stall, a time
// this node's process did not run (runControl), up to now: their
// heartbeats of that time are still on their way in. A peer is credited
// one stall a silence: one not heard since its last credit is not
// credited again, so that a dispatcher late at every tick (a busy or
// starved host) still takes a dead peer for dead after PeerTimeout, a
// stall and a tick (before, each late tick was credited: a peer killed
// beside a dispatcher 500 ms late at each 100 ms heartbeat was taken for
// dead after 5.6 s, at peer_timeout 1 s); a live one is heard between
// two stalls. The nodes heard under this node's name (twins), and the
// paced answers to a credited peer (pacedTo.creditStall), are credited
// alike. On the control dispatcher.
func (n *Node) creditStall(stall time.Duration, now time.Time) {
	n.stallCredit.Add(int64(stall))
	later := func(t time.Time) time.Time {
		if t = t.Add(stall); t.After(now) {
			return now
		}
		return t
	}
	n.pmu.Lock()
	for _, p := range n.peers.byName {
		if p.last.Equal(p.credited) {
			// Not heard since: no further stall, but a second stall
			// may have come before what it sent was read (a paused
			// VM paused again): it is judged once this node has run
			// two heartbeats, once a silence.
			if !p.spared.Equal(p.credited) {
				p.spared, p.spareUntil = p.credited, now.Add(2*n.opts.Heartbeat)
				n.sparing.Store(true)
			}
			continue
		}
		p.last = later(p.last)
		p.credited = p.last
		// And the paced answers to it (sweepPaced): its
		// acknowledgements of that time are still on their way in.
		if pt := n.paced[p.name]; pt != nil {
			pt.creditStall(later)
		}
	}
	n.pmu.Unlock()
	for _, b := range n.peers.bad {
		if !b.last.Equal(b.credited) {
			b.last = later(b.last)
			b.credited = b.last
		} else if !b.spared.Equal(b.credited) {
			b.spared, b.spareUntil = b.credited, now.Add(2*n.opts.Heartbeat)
		}
	}
	// The nodes under this node's name too (checkTwins): forgotten on
	// waking, a single registration one holds was taken over here
	// (twinAlive) until it was heard again.
	mono := n.mono()
	for _, t := range n.peers.twins {
		if last := t.last.Load(); last != t.credited {
			t.credited = min(last+int64(stall), mono)
			t.last.Store(t.credited)
		} else if t.spared != t.credited {
			t.spared = t.credited
			t.spareUntil.Store(mono + int64(2*n.opts.Heartbeat))
		}
	}
}

// control handles one message of the control subscriptions; me is the
// node's inbox and a dot.
func (n *Node) control(m *nats.Msg, me string) {
	if len(n.peers.bad) > 0 && m.Subject != subjHeartbeat && n.fromIncompatible(m) {
		return
	}
	if strings.HasPrefix(m.Subject, me) {
		n.direct(m, m.Subject[len(me):])
	} else {
		n.broadcast(m)
	}
}

// direct handles a message for this node.
func (n *Node) direct(m *nats.Msg, op string) {
	switch {
	case op == "m":
		p := n.peerFor(m.Reply)
		if p == nil {
			return
		}
		if !isFrame(m.Data) {
			n.r.MeshDeliver(p.idx, m.Data)
			return
		}
		from := p.idx
		if unpackFrame(m.Data, func(env []byte) { n.r.MeshDeliver(from, env) }) != nil {
			n.stats.BadFrames.Add(1)
		}
	case op == "s":
		n.syncRequest(m)
	case op == "S":
		n.applySync(m)
	case op == "x":
		n.onForgotten(m)
	case op == "l":
		// Another node under this node's name asks whether this life
		// runs (claims.go, twinRuns): a claim of this boot is its own.
		if m.Reply != "" && len(m.Data) == 8 && binary.LittleEndian.Uint64(m.Data) == n.boot {
			n.out.push(opPublish, m.Reply, "", bootBytes(n.boot), nil)
		}
	case op == "g":
		n.pacedAck(senderOf(m.Reply), m.Data)
	case strings.HasPrefix(op, "p."):
		n.partAnswered(senderOf(m.Reply), op[2:], m.Data)
	case strings.HasPrefix(op, "a."):
		// "a.<id>", and the query's stamp after it (Gather), which ends
		// with the life of this node that asked: an answer to a query of
		// another life (this node restarted, and a node answered the old
		// life's queries late; gather ids start again at 1 each life) is
		// not an answer to this life's gather of the same id. It used to
		// be taken for it, by the id alone: the answering node counted as
		// answered, its real answer was then ignored, and the caller got
		// the answer to another query (TestGatherAnswerOfAnotherLifeIgnored).
		f := strings.Split(op, ".") // a, id, stamp, wait, boot (queryReply)
		if len(f) != 5 {
			return
		}
		id, err := strconv.ParseUint(f[1], 10, 64)
		boot, err2 := strconv.ParseUint(f[4], 16, 64)
		if err == nil && err2 == nil && boot == n.boot {
			n.answered(id, senderOf(m.Reply), m.Data)
		}
	}
}

// broadcast handles a message every node receives.
func (n *Node) broadcast(m *nats.Msg) {
	switch m.Subject {
	case subjHeartbeat:
		n.onHeartbeat(m)
	case subjDelta:
		n.onDelta(m)
	case subjQuery:
		reply := m.Reply
		p := n.peerFor(reply)
		if p == nil {
			return
		}
		var deadline time.Time
		// A query from the peer's present life (a restarted node's
		// first queries may come before its first heartbeat) is run only
		// while its answer can count (clock.go).
		if stamp, wait, boot, ok := queryStamp(reply[len(p.inbox):]); ok && boot == p.boot {
			local := clockNow()
			deadline = queryDeadline(&p.clock, stamp, wait, local, time.Now())
			p.clock.observe(stamp, local)
		}
		name, inbox, paced := p.name, p.inbox, p.readsParts
		n.r.MeshQuery(m.Data, deadline, func(ans []byte) {
			n.answerQuery(name, inbox, paced, reply, ans)
		})
	case subjBye:
		name := senderOf(m.Reply)
		if name == n.opts.Name && len(m.Data) == 8 {
			n.twinLeft(binary.LittleEndian.Uint64(m.Data))
			return
		}
		if p := n.peers.byName[name]; p != nil && len(m.Data) == 8 && binary.LittleEndian.Uint64(m.Data) == p.boot {
			n.log.Info("mesh: node left", "peer", p.name)
			n.noteLeft(p.name, p.boot)
			n.dropPeer(p)
		}
	}
}

// peerFor returns the peer that sent a message (its Reply field), making
// it known if it is new (its directory is then requested). It returns nil
// for messages that claim to come from this node.
func (n *Node) peerFor(reply string) *peer {
	name := senderOf(reply)
	if name == "" || !validName(name) {
		return nil
	}
	if name == n.opts.Name {
		// Another node under this node's name (NoEcho: never this node's
		// own): its messages cannot be told from this node's, nor
		// answered. Dropped and counted; its heartbeats (heardTwin) log it.
		n.stats.SameName.Add(1)
		return nil
	}
	p := n.peers.byName[name]
	if p == nil && len(n.peers.byName) >= maxPeers {
		// Each name heard makes a peer, and each peer made or dropped
		// costs a walk of them all (publish): messages from ever new
		// names (a misbehaving node, or anything that reaches the mesh's
		// NATS) held the dispatcher for a time that grew with the square
		// of their number (20,000 tiny messages, 5.8 s, during which this
		// node sent no heartbeat and its peers took it for dead). Past
		// maxPeers, a new name's messages are dropped and counted.
		n.stats.PeersRefused.Add(1)
		if now := time.Now(); now.Sub(n.peersLogged) >= syncLogEvery {
			n.peersLogged = now
			n.log.Warn("mesh: messages from more nodes than a mesh may have; those of the nodes past the bound are dropped", "max_peers", maxPeers, "peer", name, "dropped", n.stats.PeersRefused.Load())
		}
		return nil
	}
	if p == nil {
		n.peers.next++
		p = &peer{idx: n.peers.next, name: name, inbox: nodeInbox(name), msgSubj: nodeSubject(name, "m"), knows: -1}
		n.peers.byName[name] = p
		delete(n.peers.gone, name)
		n.peers.publish()
		n.stats.PeersJoined.Add(1)
		n.log.Info("mesh: node joined", "peer", name)
		n.noteRouted(name)
		n.stats.Unknown.Add(1)
		n.askDirectory(p)
		if n.claims != nil {
			// A node that took this one for dead may have taken its
			// claims over; a store node that restarted may have lost
			// them (claims.go, checkHeld).
			n.claims.recheckHeld()
		}
		if f, ok := n.peers.forgot[name]; ok {
			delete(n.peers.forgot, name)
			p.freshUntil = time.Now().Add(2 * n.opts.PeerTimeout)
			var w wr
			w.fixed64(f.boot)
			w.fixed64(n.boot)
			n.out.push(opPublish, nodeSubject(name, "x"), n.inbox, w, nil)
		}
	}
	p.last = time.Now()
	return p
}

func (n *Node) onHeartbeat(m *nats.Msg) {
	if len(m.Data) < 8 {
		return
	}
	boot := binary.LittleEndian.Uint64(m.Data)
	rest := m.Data[8:]
	slot, k := binary.Uvarint(rest)
	if k <= 0 {
		return
	}
	ver, k2 := binary.Uvarint(rest[k:])
	if k2 <= 0 {
		return
	}
	// The sender's mesh version: absent before the handshake. Then how
	// many peers it knows and their set (heardSet): absent before they
	// were sent (releases that do not know them ignore the bytes after
	// the version).
	var mv uint64
	knows := -1
	var set []uint64
	var stamp int64
	stamped, readsParts, partsAgain := false, false, false
	if tail := rest[k+k2:]; len(tail) > 0 {
		v, k3 := binary.Uvarint(tail)
		if k3 <= 0 {
			return
		}
		mv = v
		if tail = tail[k3:]; len(tail) > 0 {
			if c, k4 := binary.Uvarint(tail); k4 > 0 && c <= maxKnows {
				knows = int(c)
				if kind, body, rest, ok := splitHbSet(c, tail[k4:]); ok {
					set = n.heardSet(senderOf(m.Reply), c, kind, body)
					stamp, stamped = hbStamp(rest)
					readsParts = readsPacedAnswers(rest)
					partsAgain = hbFlags(rest)&hbPartsAgain != 0
				}
			}
		}
	}
	name := senderOf(m.Reply)
	if name == n.opts.Name {
		n.heardTwin(boot)
		return
	}
	if mv != n.meshVer && n.meshVer != 0 {
		n.exclude(name, mv, boot)
		return
	}
	if b := n.peers.bad[name]; b != nil {
		delete(n.peers.bad, name)
		n.publishBad()
		n.log.Info("mesh: a node now speaks this node's mesh version; it is a peer again", "peer", name, "mesh_version", mv)
	}
	if old := n.peers.byName[name]; old != nil && old.boot != 0 && old.boot != boot {
		n.log.Info("mesh: node restarted", "peer", name)
		n.dropPeer(old)
	}
	p := n.peerFor(m.Reply)
	if p == nil {
		return
	}
	if p.boot != boot {
		p.boot = boot
		n.peers.publish() // the claim store tells a node's lives apart by it
		n.forgetLeft(name, boot)
	}
	if p.knows != knows || !slices.Equal(p.knowsSet, set) {
		p.knows, p.knowsSet = knows, set
		n.peers.publish()
	}
	p.readsParts, p.partsAgain = readsParts, partsAgain
	if stamped {
		p.clock.observe(stamp, clockNow())
		p.sent.Store(stamp + p.clock.base)
	}
	p.slot = uint16(slot)
	if p.slot == n.slot && !p.warnedDup {
		p.warnedDup = true
		n.log.Warn("mesh: another node has this node's session-id slot; session ids stay unique only with high probability (rename one node)", "peer", name, "slot", n.slot)
	}
	if p.synced && ver != p.ver {
		n.askDirectory(p) // a change went missing
	}
}

func (n *Node) onDelta(m *nats.Msg) {
	p := n.peers.byName[senderOf(m.Reply)]
	if p == nil {
		n.peerFor(m.Reply) // new: its directory is on its way
		return
	}
	p.last = time.Now()
	boot, ver, reg, err := readDelta(m.Data)
	if err != nil || (p.boot != 0 && boot != p.boot) {
		return
	}
	switch {
	case !p.synced:
		if len(p.pending) < maxPendingDeltas {
			p.pending = append(p.pending, delta{ver, reg})
		}
	case ver == p.ver+1:
		p.ver = ver
		n.r.MeshUpdate(p.idx, p.name, reg)
	case ver > p.ver+1:
		n.askDirectory(p)
	}
}

// readDelta reads a directory change: the sender's boot, its directory
// version, and the entry with its annex, if any (the previous release
// sends none, and ignores one: it reads no further than the entry).
func readDelta(b []byte) (boot, ver uint64, reg route.MeshRealmReg, err error) {
	r := rd{b: b}
	boot = r.fixed64()
	ver = r.uv()
	reg = r.entry()
	if r.err != nil {
		return 0, 0, reg, r.err
	}
	for len(r.b) > 0 {
		a := r.entry()
		if r.err != nil || a.Match != matchAnnex {
			break
		}
		annex(&reg, a)
	}
	return boot, ver, reg, nil
}

// askDirectory asks p for its whole directory, unless a request is
// outstanding.
func (n *Node) askDirectory(p *peer) {
	if !p.askedAt.IsZero() && time.Since(p.askedAt) < 2*n.opts.Heartbeat {
		return
	}
	p.synced = false
	n.askPart(p, 0, 0)
}

// askPart asks p for part part of its paced directory sync answer of
// version ver (part 0: the first of its present directory). With this
// node's life (boot), which p may not have heard yet: a restart's first
// heartbeats can go before its routes form, and this request comes as
// soon as the node hears p (syncRequest). A node of the previous release
// reads the boot only, and answers with its whole directory at once.
func (n *Node) askPart(p *peer, ver, part uint64) {
	p.askedAt = time.Now()
	w := wr(bootBytes(n.boot))
	w.uv(ver)
	w.uv(part)
	n.out.push(opPublish, nodeSubject(p.name, "s"), nodeInbox(n.opts.Name), w, nil)
}

// syncRequest answers a node's request for this node's directory (op
// "s"). A request that names a life of its sender other than the one
// heard before (a node restarted under its name, whose heartbeats have
// not reached this node yet) first ends the old life, as its heartbeat
// would (onHeartbeat): the messages after the request, its calls among
// them, are the new life's. Before, they were taken for the old life's,
// under its handle, until the new life's heartbeat came: that ended the
// old life, and with it the new life's calls in progress here (their
// callees interrupted, their callers never answered), its directory
// entries too. A request without a life (the previous release) is
// answered as before. Control dispatcher.
func (n *Node) syncRequest(m *nats.Msg) {
	var boot uint64
	if len(m.Data) >= 8 {
		boot = binary.LittleEndian.Uint64(m.Data)
	}
	if name := senderOf(m.Reply); boot != 0 && name != n.opts.Name {
		if old := n.peers.byName[name]; old != nil && old.boot != 0 && old.boot != boot {
			n.log.Info("mesh: node restarted", "peer", name)
			n.dropPeer(old)
		}
	}
	p := n.peerFor(m.Reply)
	if p == nil {
		return
	}
	if boot != 0 && p.boot != boot {
		p.boot = boot
		n.peers.publish() // the claim store tells a node's lives apart by it
	}
	if len(m.Data) > 8 {
		r := rd{b: m.Data[8:]}
		ver, part := r.uv(), r.uv()
		if r.err == nil {
			n.sendPart(p, ver, part)
			return
		}
	}
	n.sendDirectory(p) // the previous release's request
}

// Paced directory sync. A directory sent whole at once crosses a slow
// link as one burst, and everything behind it waits: the heartbeats, and
// NATS's own PONGs, which a leaf link's dialling side waits for
// (ping_interval × max_pings_out). Over an edge's slow uplink a hub's
// directory that takes longer than that to cross never arrived: the edge
// took the hub for dead or NATS cut the link as stale, the edge asked
// again at the next heartbeat, and the hub sent it again, without end
// (TestSlowUplinkDirectorySyncConverges). So a node asks for one part
// at a time, pacedPart bytes each, the next once a part is in: at most a
// part is ever ahead of the heartbeats. The parts come from one encoding
// of the directory (dirSnap) per version, shared by the peers reading it.

// pacedPart bounds a part of a paced answer.
const pacedPart = 64 << 10

// What the byte after a sync answer part's index says: the last part,
// more follow (the previous release's answers, all parts at once), more
// follow and are asked for one at a time.
const (
	syncLast  = 0
	syncMore  = 1
	syncPaced = 2
)

// dirSnap is the directory of version ver, encoded as the parts of a
// paced answer; used is when a part of it was last sent.
type dirSnap struct {
	ver   uint64
	parts [][]byte
	used  time.Time
}

// maxDirSnaps bounds the versions kept for peers still reading them; a
// version unread for dirSnapIdle is dropped first.
const (
	maxDirSnaps = 4
	dirSnapIdle = 10 * time.Second
)

// dropIdleSnaps drops the directory encodings no peer has read for
// dirSnapIdle. Control dispatcher only.
func (n *Node) dropIdleSnaps(now time.Time) {
	keep := n.snaps[:0]
	for _, x := range n.snaps {
		if now.Sub(x.used) < dirSnapIdle {
			keep = append(keep, x)
		}
	}
	clear(n.snaps[len(keep):])
	n.snaps = keep
}

// sendPart answers a paced sync request: part part of version ver, or,
// when that is not kept (part 0, or the version was dropped), the first
// part of the present directory, with which the asker starts again.
// Control dispatcher only.
func (n *Node) sendPart(p *peer, ver, part uint64) {
	now := time.Now()
	var s *dirSnap
	if part > 0 {
		for _, x := range n.snaps {
			if x.ver == ver && part < uint64(len(x.parts)) {
				s = x
				break
			}
		}
	}
	if s == nil {
		part = 0
		s = n.snapshot(now)
	}
	s.used = now
	n.out.push(opPublish, nodeSubject(p.name, "S"), nodeInbox(n.opts.Name), s.parts[part], nil)
}

// snapshot returns the present directory's encoding, making it if no
// peer reads it yet. Control dispatcher only.
func (n *Node) snapshot(now time.Time) *dirSnap {
	n.dmu.Lock()
	defer n.dmu.Unlock()
	for _, x := range n.snaps {
		if x.ver == n.dirVer {
			return x
		}
	}
	n.dropIdleSnaps(now)
	if len(n.snaps) >= maxDirSnaps {
		oldest := 0
		for i, x := range n.snaps {
			if x.used.Before(n.snaps[oldest].used) {
				oldest = i
			}
		}
		n.snaps = slices.Delete(n.snaps, oldest, oldest+1)
	}
	s := &dirSnap{ver: n.dirVer}
	n.encodeDirectory(min(pacedPart, n.syncLimit()), syncPaced, func(h wr) bool {
		s.parts = append(s.parts, h)
		return true
	})
	n.snaps = append(n.snaps, s)
	return s
}

// sendDirectory answers a sync request with this node's whole directory,
// in parts of at most syncPart bytes (a directory can be far larger than
// one NATS message: 65,536 registrations per session, URIs up to 4 KiB).
// Each part is boot, version, count and entries, then its index and
// whether more follow; the asker applies the directory once the last part
// is in, and drops the parts of an answer it did not get whole (it asks
// again).
func (n *Node) sendDirectory(p *peer) {
	n.dmu.Lock()
	defer n.dmu.Unlock()
	n.encodeDirectory(min(syncPart, n.syncLimit()), syncMore, func(h wr) bool {
		return n.out.push(opPublish, nodeSubject(p.name, "S"), nodeInbox(n.opts.Name), h, nil) == nil
	})
}

// syncLimit is the most a sync answer part may take: half the NATS
// server's max_payload.
func (n *Node) syncLimit() int {
	if n.nc != nil { // nil: not started (a unit test)
		if mp := int(n.nc.MaxPayload()); mp > 0 {
			return mp / 2
		}
	}
	return syncPart
}

// encodeDirectory encodes the directory as sync answer parts of about
// limit bytes, each handed to emit (which may keep it) until it returns
// false; more is the byte that says more parts follow. Call with dmu
// held.
func (n *Node) encodeDirectory(limit int, more byte, emit func(wr) bool) {
	var w wr
	part, cnt, left := uint64(0), 0, len(n.dir)
	flush := func() bool {
		var h wr
		h.fixed64(n.boot)
		h.uv(n.dirVer)
		h.uv(uint64(cnt))
		h = append(h, w...)
		h.uv(part)
		if left > 0 {
			h = append(h, more)
		} else {
			h = append(h, syncLast)
		}
		if n.meshVer != 0 {
			h.uv(n.meshVer)
		}
		part, cnt, w = part+1, 0, w[:0]
		return emit(h)
	}
	for _, e := range n.dir {
		cnt += w.entry(e) // with its annex, in the same part
		left--
		if len(w) >= limit && left > 0 && !flush() {
			return // the outbound queue is full: the asker asks again
		}
	}
	flush()
}

// syncPart bounds one part of a directory sync answer.
const syncPart = 1 << 20

func (n *Node) applySync(m *nats.Msg) {
	p := n.peerFor(m.Reply)
	if p == nil {
		return
	}
	r := rd{b: m.Data}
	boot := r.fixed64()
	ver := r.uv()
	cnt := r.uv()
	// An entry takes at least minEntry bytes: a count its bytes cannot
	// hold is refused before the slice is made (it was made for up to
	// one entry per byte, 72 bytes of slice per byte received).
	if r.err != nil || cnt > uint64(len(r.b)/minEntry) {
		n.badSync(p, "malformed")
		return
	}
	regs := make([]route.MeshRealmReg, 0, cnt)
	for i := uint64(0); i < cnt && r.err == nil; i++ {
		regs = append(regs, r.entry())
	}
	if r.err != nil {
		n.badSync(p, "malformed")
		return
	}
	regs = foldAnnexes(regs)
	// The part's index and whether more follow (an answer in one part
	// may end there).
	var part, mv uint64
	more, paced := false, false
	if len(r.b) > 0 {
		part = r.uv()
		if r.err != nil || len(r.b) < 1 {
			n.badSync(p, "malformed")
			return
		}
		paced = r.b[0] == syncPaced
		more = r.b[0] == syncMore || paced
		r.b = r.b[1:]
		// Then the sender's mesh version (none before the handshake,
		// whose releases refused a trailing byte: as a node forced to
		// speak as one does).
		if len(r.b) > 0 && n.meshVer == 0 {
			return
		}
		if len(r.b) > 0 {
			mv = r.uv()
			if r.err != nil || len(r.b) != 0 {
				return
			}
		}
	}
	if p.boot != 0 && boot != p.boot {
		return // from an earlier life of the node
	}
	if mv != n.meshVer && n.meshVer != 0 {
		n.exclude(p.name, mv, boot)
		return
	}
	switch {
	case paced && p.paced && p.parts != nil && ver == p.partsVer && part < p.nparts:
		return // asked again (askPart, or askDirectory's first part), and both answers came
	case part == 0:
		p.parts, p.partsVer, p.partsBytes = regs, ver, 0
	case part == p.nparts && ver == p.partsVer && p.parts != nil:
		p.parts = append(p.parts, regs...)
	default:
		p.parts, p.paced = nil, false // a part went missing: wait for the next answer
		return
	}
	// The parts wait here until the last one: at most what a node can
	// send (maxSyncBytes). Before, nothing bounded them: parts that said
	// more followed, without end, were all held.
	if p.partsBytes += int64(len(m.Data)); p.partsBytes > n.maxSyncBytes() {
		p.parts, p.nparts, p.partsBytes, p.paced = nil, 0, 0, false
		n.badSync(p, "larger than 1.25 × max_outbound, the most a node sends")
		return
	}
	p.nparts = part + 1
	if paced && more {
		p.paced = true
		n.askPart(p, ver, part+1)
		return
	}
	if more {
		return
	}
	regs, p.parts, p.nparts, p.partsBytes, p.paced = p.parts, nil, 0, 0, false
	if p.boot == 0 {
		p.boot = boot
		n.peers.publish()
	}
	n.r.MeshSync(p.idx, p.name, regs)
	if n.claims != nil && !p.everSynced {
		// p may have taken a claim of this node over after the check at
		// its join (not having heard this node again yet) and given it
		// back on losing the conflict, before its directory answered:
		// none of its single part ever reached this directory, which
		// checks on its leaving (route.MeshClaimCheck), and the store
		// held no claim for this node's registration until the next
		// join. What p took over before its answer is found now. At
		// its first complete sync only: a later one (a change of p's
		// missed, asked again) checked every claim again whenever any
		// node's single REGISTER had changed the store meanwhile, 201
		// store reads a resync at 200 claims.
		n.claims.recheckHeld()
	}
	p.everSynced = true
	p.ver, p.synced, p.askedAt = ver, true, time.Time{}
	pending := p.pending
	p.pending = nil
	for _, d := range pending {
		switch {
		case d.ver <= p.ver:
		case d.ver == p.ver+1:
			p.ver = d.ver
			n.r.MeshUpdate(p.idx, p.name, d.reg)
		default:
			n.askDirectory(p)
			return
		}
	}
}

// minEntry is the least bytes of an encoded directory entry (wr.entry):
// two lengths, match and policy, callees and two times.
const minEntry = 7

// maxSyncBytes bounds the parts of a peer's directory sync answer held
// until its last part: what a node can send, its parts all queued at once
// in its outbound queue (1.25 × max_outbound, with the directory's
// reserve; sendDirectory). Every node should have the same max_outbound.
func (n *Node) maxSyncBytes() int64 { return n.opts.MaxOutbound + n.opts.MaxOutbound/4 }

// badSync counts a directory sync answer from p dropped as malformed or
// too large (Stats.BadFrames) and logs it, at most every syncLogEvery per
// node. The peer is asked again at its next heartbeat or check
// (checkPeers). Control dispatcher only.
func (n *Node) badSync(p *peer, why string) {
	n.stats.BadFrames.Add(1)
	if now := time.Now(); now.Sub(n.syncLogged) >= syncLogEvery {
		n.syncLogged = now
		n.log.Warn("mesh: dropped a directory sync answer from a node", "peer", p.name, "why", why, "dropped", n.stats.BadFrames.Load())
	}
}

// syncLogEvery spaces the log lines of badSync.
const syncLogEvery = 10 * time.Second

// heartbeat announces this node.
func (n *Node) heartbeat() {
	n.dmu.Lock()
	n.out.push(opPublish, subjHeartbeat, nodeInbox(n.opts.Name), n.heartbeatData(), nil)
	n.dmu.Unlock()
}

// heartbeatData is a heartbeat: boot id, session-id slot, directory
// version, mesh version, the number of peers this node knows and, up to
// maxHashedPeers, their set (hbSetList, hbSetDigest). Called with dmu
// held.
func (n *Node) heartbeatData() wr {
	var w wr
	w.fixed64(n.boot)
	w.uv(uint64(n.slot))
	w.uv(n.dirVer)
	if n.meshVer != 0 {
		w.uv(n.meshVer)
		names := n.peers.view.Load().names
		w.uv(uint64(len(names)))
		if len(names) <= maxHashedPeers {
			set := make([]uint64, len(names))
			for i, name := range names {
				set[i] = nameHash(name)
			}
			d := setDigest(set)
			if d != n.hbDigest || n.hbSince >= hbListEvery-1 || !n.hbSent {
				w = append(w, hbSetList)
				for _, h := range set {
					w.fixed64(h)
				}
				n.hbDigest, n.hbSince, n.hbSent = d, 0, true
			} else {
				w = append(w, hbSetDigest)
				w.fixed64(d)
				n.hbSince++
			}
		}
		// Then its clock (clock.go): releases before it stop reading
		// after the set; and last what it reads (hbPacedAnswers,
		// hbPartsAgain), which releases before it do not read.
		w.uv(uint64(clockNow()))
		w.uv(hbPacedAnswers | hbPartsAgain)
	}
	return w
}

// hbStamp returns the clock stamp that follows a heartbeat's peer set
// (rest: splitHbSet), if it has one.
func hbStamp(rest []byte) (int64, bool) {
	v, k := binary.Uvarint(rest)
	if k <= 0 || v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}

// checkPeers takes the nodes unheard of for PeerTimeout for dead, and
// repeats directory requests that went unanswered.
func (n *Node) checkPeers() {
	now := time.Now()
	for name, f := range n.peers.forgot {
		if now.Sub(f.at) > forgotTTL {
			delete(n.peers.forgot, name)
		}
	}
	gone := false
	for name, b := range n.peers.bad {
		if now.Sub(b.last) > n.opts.PeerTimeout && !now.Before(b.spareUntil) {
			delete(n.peers.bad, name)
			gone = true
		}
	}
	if gone {
		n.publishBad()
	}
	n.checkTwins(now)
	n.dropIdleSnaps(now)
	n.sweepPaced(now)
	n.gmu.Lock()
	for name, at := range n.partAt {
		if now.Sub(at) > maxPacedWait {
			delete(n.partAt, name)
		}
	}
	n.gmu.Unlock()
	spared := false
	for _, p := range n.peers.byName {
		if now.Sub(p.last) > n.opts.PeerTimeout {
			if now.Before(p.spareUntil) {
				spared = true // judged at a later tick (creditStall)
				continue
			}
			n.log.Warn("mesh: node unreachable; taking it for dead", "peer", p.name, "silent_for", now.Sub(p.last).Round(time.Millisecond))
			n.dropPeer(p)
			if p.boot != 0 {
				if len(n.peers.forgot) >= maxForgotten {
					clear(n.peers.forgot)
				}
				n.peers.forgot[p.name] = forgotten{boot: p.boot, at: now}
			}
			continue
		}
		switch {
		case p.synced:
		case p.paced && p.parts != nil:
			// A paced answer under way: its next part is asked again
			// once none came for a peer timeout (a request or part
			// lost); a part takes a while to cross a slow link.
			if now.Sub(p.askedAt) >= max(2*n.opts.Heartbeat, n.opts.PeerTimeout) {
				n.askPart(p, p.partsVer, p.nparts)
			}
		case now.Sub(p.askedAt) >= 2*n.opts.Heartbeat:
			n.askDirectory(p)
		}
	}
	if !spared && n.sparing.Load() {
		n.sparing.Store(false) // every spared peer judged
	}
	n.checkUnheard(now)
}

// checkUnheard publishes how many nodes its peers name that this node
// does not hear (Stats.PeersUnheard), and warns when that lasts
// PeerTimeout: NATS
// routes are not transitive, so two nodes that both reach a third but not
// each other exchange nothing, and each misses the other's sessions,
// registrations and answers while the third sees a whole mesh. Once per
// such spell; an info line when it ends. On the control dispatcher.
func (n *Node) checkUnheard(now time.Time) {
	expired := false
	for name, at := range n.peers.gone {
		if now.Sub(at) >= n.peers.goneGrace {
			delete(n.peers.gone, name)
			expired = true
		}
	}
	if expired {
		n.peers.publish()
	}
	v := n.peers.view.Load()
	n.stats.PeersUnheard.Store(int64(v.unheard))
	switch {
	case v.unheard == 0:
		if n.peers.unheardWarned {
			n.log.Info("mesh: this node hears from every node its peers know again")
		}
		n.peers.unheardSince, n.peers.unheardWarned = time.Time{}, false
	case n.peers.unheardSince.IsZero():
		n.peers.unheardSince = now
	case !n.peers.unheardWarned && now.Sub(n.peers.unheardSince) >= n.opts.PeerTimeout:
		n.peers.unheardWarned = true
		n.log.Warn("mesh: a peer knows nodes this node does not hear from: the NATS routes between nodes are incomplete (every node must reach every other's cluster address, or its advertise address); meta answers here are partial and \"not found\" answers say unavailable until they form",
			"peer", v.claimer, "unheard", v.unheard, "peers", strings.Join(v.names, ","), "for", now.Sub(n.peers.unheardSince).Round(time.Millisecond))
	}
}

// onForgotten handles a peer's word that it took this node for dead
// (ew.n.<this>.x: this node's boot as it knew it, and its own): it
// forgot the invocations this node's callers had made there, so this
// node drops it too (its calls there fail now rather than never) and
// starts afresh with it.
func (n *Node) onForgotten(m *nats.Msg) {
	r := rd{b: m.Data}
	me, boot := r.fixed64(), r.fixed64()
	p := n.peers.byName[senderOf(m.Reply)]
	if r.err != nil || me != n.boot || p == nil || p.boot != 0 && p.boot != boot {
		return
	}
	if until := p.freshUntil; !until.IsZero() {
		// Both sides took each other for dead: this is the peer's half of
		// it, and there is nothing left to reset. Later words count.
		p.freshUntil = time.Time{}
		if time.Now().Before(until) {
			return
		}
	}
	n.log.Warn("mesh: a node had taken this one for dead; resetting what was exchanged with it", "peer", p.name)
	n.dropPeer(p)
	n.peerFor(m.Reply)
}

// exclude makes the node name, heard speaking mesh version ver (0: none),
// incompatible: dropped if it was a peer, its further messages dropped
// and counted (see "Mesh versions"). Control dispatcher only.
func (n *Node) exclude(name string, ver, boot uint64) {
	if name == "" || name == n.opts.Name || !validName(name) {
		return
	}
	if p := n.peers.byName[name]; p != nil {
		n.dropPeer(p)
	}
	b := n.peers.bad[name]
	if b == nil {
		if len(n.peers.bad) >= maxForgotten {
			return // its messages then go on as from an unknown node
		}
		b = &badPeer{ver: ver}
		n.peers.bad[name] = b
		n.publishBad()
	} else if b.ver != ver {
		b.ver = ver
		n.publishBad()
	}
	b.boot, b.last = boot, time.Now()
	if v, ok := n.peers.logged[name]; ok && v == ver {
		return
	}
	if len(n.peers.logged) >= maxForgotten {
		clear(n.peers.logged)
	}
	n.peers.logged[name] = ver
	var theirs any = ver
	if ver == 0 {
		theirs = "none (a release before the version handshake)"
	}
	n.log.Error("mesh: a node speaks another mesh version (another edgewamp release); it is not used as a peer and what it sends is dropped until every node runs one release",
		"peer", name, "peer_mesh_version", theirs, "mesh_version", n.meshVer)
}

// fromIncompatible reports whether m comes from an incompatible node,
// counting it; a goodbye from one forgets it. Control dispatcher only.
func (n *Node) fromIncompatible(m *nats.Msg) bool {
	name := senderOf(m.Reply)
	b := n.peers.bad[name]
	if b == nil {
		return false
	}
	if m.Subject == subjBye {
		if len(m.Data) == 8 && binary.LittleEndian.Uint64(m.Data) == b.boot {
			delete(n.peers.bad, name)
			n.publishBad()
		}
		return true
	}
	n.stats.VersionMismatch.Add(1)
	return true
}

// publishBad publishes the incompatible nodes for other goroutines.
func (n *Node) publishBad() {
	v := &badView{list: make([]IncompatiblePeer, 0, len(n.peers.bad)), boots: make(map[string]uint64, len(n.peers.bad))}
	for name, b := range n.peers.bad {
		v.list = append(v.list, IncompatiblePeer{Name: name, Version: b.ver})
		v.boots[name] = b.boot
	}
	sort.Slice(v.list, func(i, j int) bool { return v.list[i].Name < v.list[j].Name })
	n.peers.badView.Store(v)
	n.stats.PeersIncompatible.Store(int64(len(v.list)))
}

// IncompatiblePeers returns the nodes this node hears speaking another
// mesh version (another edgewamp release), which it does not use as
// peers, sorted by name. Safe for concurrent use.
func (n *Node) IncompatiblePeers() []IncompatiblePeer {
	if v := n.peers.badView.Load(); v != nil {
		return v.list
	}
	return nil
}

func (n *Node) dropPeer(p *peer) {
	delete(n.peers.byName, p.name)
	n.routedMu.Lock()
	delete(n.routed, p.name)
	n.routedMu.Unlock()
	if p.boot != 0 {
		old := *n.peers.deadView.Load()
		dead := make(map[string][]uint64, len(old)+1)
		if _, ok := old[p.name]; ok || len(old) < maxForgotten {
			for name, b := range old {
				dead[name] = b
			}
		}
		// Every life seen to end, not the last only: a node that
		// restarted twice left claims of its first life, which were
		// then of a life "not heard" and waited for peer_timeout each.
		prev := old[p.name]
		lives := make([]uint64, 0, min(len(prev)+1, maxDeadLives))
		lives = append(lives, p.boot)
		lives = append(lives, prev[:min(len(prev), maxDeadLives-1)]...)
		dead[p.name] = lives
		n.peers.deadView.Store(&dead)
	}
	if len(n.peers.gone) < maxForgotten {
		n.peers.gone[p.name] = time.Now()
	}
	n.peers.publish()
	n.stats.PeersLost.Add(1)
	n.r.MeshNodeDown(p.idx)
	n.sessionsGone(p)
	if n.claims != nil {
		n.claims.peerLost(p.name)
	}
	n.pacedPeerLost(p.name)
}

// Registered implements route.Mesh: this node's callees of a registration
// changed. The change is broadcast with the next directory version.
func (n *Node) Registered(realm string, reg route.MeshReg) {
	k := dirKey{realm, reg.Match, reg.URI}
	if n.opts.testNoAnnex {
		reg.Prog, reg.ProgPPT = route.MeshCapable{}, route.MeshCapable{}
	}
	e := route.MeshRealmReg{Realm: realm, MeshReg: reg}
	var w wr
	n.dmu.Lock()
	if reg.Callees <= 0 {
		delete(n.dir, k)
	} else {
		n.dir[k] = e
	}
	n.dirVer++
	w.fixed64(n.boot)
	w.uv(n.dirVer)
	w.entry(e)
	n.out.push(opPublish, subjDelta, nodeInbox(n.opts.Name), w, nil)
	n.dmu.Unlock()
}

// ---------------------------------------------------------------- encoding

type wr []byte

func (w *wr) uv(v uint64)      { *w = binary.AppendUvarint(*w, v) }
func (w *wr) sv(v int64)       { *w = binary.AppendVarint(*w, v) }
func (w *wr) fixed64(v uint64) { *w = binary.LittleEndian.AppendUint64(*w, v) }
func (w *wr) str(s string)     { w.uv(uint64(len(s))); *w = append(*w, s...) }

// entry writes e, and after it its annex when it has one: it returns the
// entries written (a sync answer counts them).
func (w *wr) entry(e route.MeshRealmReg) int {
	w.str(e.Realm)
	*w = append(*w, byte(e.Match), byte(e.Invoke))
	w.str(e.URI)
	w.uv(uint64(e.Callees))
	w.sv(e.First)
	w.sv(e.Last)
	p, pt := e.Prog, e.ProgPPT
	if e.Callees <= 0 || !p.Known {
		return 1
	}
	np := min(max(p.Callees, 0), e.Callees)
	nt := np // the same callees as p's, unless said otherwise
	if pt.Known {
		nt = min(max(pt.Callees, 0), np)
	}
	if np == e.Callees && nt == np { // all of them can: no annex (see Annexes)
		return 1
	}
	w.capsAnnex(e, np, nt)
	return 2
}

// capsAnnex writes after e the annex (annexCaps) saying that np of its
// callees take progressive call invocations, nt of those in payload
// passthru mode too, and, for a first or last registration, when the
// first (last) of each registered.
func (w *wr) capsAnnex(e route.MeshRealmReg, np, nt int) {
	w.str("")
	*w = append(*w, matchAnnex, annexCaps)
	w.str("")
	w.uv(uint64(np)*uint64(e.Callees+1) + uint64(nt))
	var dp, dt uint64 // in units of the entry's span (annexShifts)
	if np > 0 && ranksByTime(e.Invoke) {
		first := e.Invoke == proto.InvokeFirst
		span := annexSpan(e)
		sp, st := annexShifts(span)
		pAt, tAt := e.Prog.First-e.First, e.ProgPPT.First-e.Prog.First
		if !first {
			pAt, tAt = e.Last-e.Prog.Last, e.Prog.Last-e.ProgPPT.Last
		}
		d := clampSpan(pAt, span)
		dp = d >> sp
		if nt > 0 && nt < np {
			// Rounded down from p's time as read back, so that the time
			// read for these callees is never before (first) or after
			// (last) the time read for p's.
			dt = clampSpan(tAt+int64(d-dp<<sp), span) >> st
		}
	}
	*w = binary.AppendUvarint(*w, dp) // in the slots of an entry's times:
	*w = binary.AppendUvarint(*w, dt) // the previous release reads them so
}

// annexSpan returns the span of e's REGISTER times, in which the times an
// annex carries lie (0 when they are out of order).
func annexSpan(e route.MeshRealmReg) uint64 {
	if e.Last <= e.First {
		return 0
	}
	return uint64(e.Last - e.First)
}

// clampSpan returns d within [0, span].
func clampSpan(d int64, span uint64) uint64 {
	if d <= 0 {
		return 0
	}
	return min(uint64(d), span)
}

// annexBits bound the times an annexCaps carries: the first (last)
// callee that takes progressive call invocations, and the one of those
// that takes them in payload passthru mode too.
const annexBits, annexPPTBits = 21, 14

// annexShifts returns the units (as shifts of a nanosecond) of the times
// an annexCaps carries for an entry whose times span span nanoseconds:
// nanoseconds while the span fits annexBits (annexPPTBits), else the
// power of two that makes it fit: at most 3 (2) bytes each, whatever the
// registration times.
func annexShifts(span uint64) (sp, st uint) {
	n := uint(bits.Len64(span))
	if n > annexBits {
		sp = n - annexBits
	}
	if n > annexPPTBits {
		st = n - annexPPTBits
	}
	return sp, st
}

// ranksByTime reports whether policy v picks by REGISTER times, so that
// an annex carries the times of its callees (first, last).
func ranksByTime(v proto.Invoke) bool { return v == proto.InvokeFirst || v == proto.InvokeLast }

// Annexes
//
// What a directory entry says beyond the fields of the first release
// rides in an annex: an entry of its own on the wire, right after the one
// it adds to (in a sync answer, counted among the part's entries; in a
// change, after the entry, where the previous release ignores trailing
// bytes), with the match byte matchAnnex, an empty realm and URI, its
// kind in the policy byte and its values in callees, first and last. The
// first release reads it as an entry and drops it (route ignores an
// entry whose match is not exact, prefix or wildcard, and one without a
// URI), so a node of this release and one of that release are still
// peers (the mesh version is the same); a node that sends no annex is one
// of that release, and route takes what the annex would have said as
// unknown. A reader drops an annex of a kind it does not know, and one
// with no entry before it.
//
// An annex says only what the pick needs, in as few bytes as it can
// (sync answers are bounded by 1.25 × max_outbound, and a node may have
// 1,048,576 entries in a realm): none when every callee of the entry
// takes progressive call invocations, in payload passthru mode too,
// which route's pick treats as it treats a node that did not say (it
// may: ranked by the entry's own first and last); else one annexCaps.
//
// annexCaps carries in its callees the count of the entry's callees that
// take progressive call invocations (np) and of those that take them in
// payload passthru mode too (nt), as np × (callees + 1) + nt; and, for a
// first (last) registration, in its first and last (as unsigned varints)
// when the first (last) of the np callees registered, as its distance
// from the entry's first (last), and that of the first (last) of the nt
// callees from it, when they are not the same callees (0 < nt < np).
// These are in nanoseconds while the entry's span of times fits 21 (14)
// bits, else in the power of two of nanoseconds that makes it fit,
// rounded down: each time read lies between the entry's first and last,
// in the order the callees registered, at most span ÷ 2^20 (2^13) before
// (first) or after (last) the true one; the time a policy does not rank
// by is not carried (read as the entry's own). At most 4 + 1 + 3 + 2
// bytes with up to ten callees, for any registration times.
//
// Before, the annexes annexProg and annexProgPPT (still read, from nodes
// of the previous release) carried both times of each whole, as
// nanoseconds from the entry's first and last, each annex of its own: a
// sync of 1,048,576 registrations each with a callee that takes
// progressive call invocations and one that does not, a day apart, was
// 93.3 MB (89 bytes an entry), and 89.1 MB a millisecond apart, past
// the 83.9 MB bound. A node of the previous release does not know
// annexCaps and drops it: it sees such an entry of this release as one
// of a node that did not say (as it sees the first release's), and may
// send this node a progressive call invocation none of its callees
// takes, which this node refuses as a callee's unavailable
// (feature_not_supported), rerouted by the caller's node while the
// caller has sent no second chunk.
const (
	matchAnnex = 0xFF
	// annexProg: the entry's callees that announced
	// progressive_call_invocations (route.MeshReg.Prog): how many, and
	// the REGISTER times of the first and last of them, as deltas.
	// Written by the previous release when not all of them did; read.
	annexProg = 1
	// annexProgPPT: the same of those that announced
	// payload_passthru_mode too (route.MeshReg.ProgPPT), for a
	// progressive call invocation in payload passthru mode. Written by
	// the previous release when they are not the same callees as
	// annexProg's; read.
	annexProgPPT = 3
	// annexCaps: both, in one annex (see above). Written when not every
	// callee takes progressive call invocations in payload passthru
	// mode.
	annexCaps = 4
)

// annex reads what a, an annex (matchAnnex), says of the entry before
// it into e; false for an annex it does not know.
func annex(e *route.MeshRealmReg, a route.MeshRealmReg) bool {
	if a.Realm != "" || a.URI != "" {
		return false
	}
	if a.Invoke == annexCaps {
		return readCaps(e, a)
	}
	if a.Invoke != annexProg && a.Invoke != annexProgPPT {
		return false
	}
	p := route.MeshCapable{Known: true, Callees: a.Callees}
	if p.Callees > 0 && ranksByTime(e.Invoke) {
		p.First, p.Last = e.First+a.First, e.Last-a.Last
	}
	if a.Invoke == annexProg {
		e.Prog = p
	} else {
		e.ProgPPT = p
	}
	return true
}

// readCaps reads an annexCaps a into e (see Annexes): Prog is left
// unknown when all of e's callees take progressive call invocations, and
// ProgPPT when those that take them in payload passthru mode are the same
// callees, as when their annexes were left out.
func readCaps(e *route.MeshRealmReg, a route.MeshRealmReg) bool {
	if e.Callees <= 0 || a.Callees < 0 {
		return false
	}
	c := uint64(e.Callees) + 1
	np, nt := uint64(a.Callees)/c, uint64(a.Callees)%c
	if np > uint64(e.Callees) || nt > np {
		return false
	}
	// The times were written as unsigned varints: read back so.
	dp, dt := zigzag(a.First), zigzag(a.Last)
	p := route.MeshCapable{Known: true, Callees: int(np)}
	t := route.MeshCapable{Known: true, Callees: int(nt)}
	if np > 0 && ranksByTime(e.Invoke) {
		span := annexSpan(*e)
		sp, st := annexShifts(span)
		dp = min(dp<<sp, span)
		dt = min(dt<<st, span-dp)
		if e.Invoke == proto.InvokeFirst {
			p.First, p.Last = e.First+int64(dp), e.Last
		} else {
			p.First, p.Last = e.First, e.Last-int64(dp)
		}
		if nt > 0 {
			t.First, t.Last = p.First, p.Last
			if nt < np && e.Invoke == proto.InvokeFirst {
				t.First += int64(dt)
			} else if nt < np {
				t.Last -= int64(dt)
			}
		}
	}
	if np < uint64(e.Callees) {
		e.Prog = p
	}
	if nt != np {
		e.ProgPPT = t
	}
	return true
}

// zigzag returns the unsigned varint value whose bytes binary.Varint
// read as v.
func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// foldAnnexes returns regs, as a sync answer's part lists them, with each
// annex read into the entry before it and dropped. In place.
func foldAnnexes(regs []route.MeshRealmReg) []route.MeshRealmReg {
	out := regs[:0]
	for _, e := range regs {
		if e.Match != matchAnnex {
			out = append(out, e)
			continue
		}
		if len(out) > 0 {
			annex(&out[len(out)-1], e)
		}
	}
	return out
}

var errShort = errors.New("edge: malformed mesh message")

type rd struct {
	b   []byte
	err error
}

func (r *rd) fail() { r.err, r.b = errShort, nil }

func (r *rd) uv() uint64 {
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *rd) sv() int64 {
	v, k := binary.Varint(r.b)
	if k <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *rd) fixed64() uint64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *rd) str() string {
	l := r.uv()
	if r.err != nil || l > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:l])
	r.b = r.b[l:]
	return s
}

func (r *rd) entry() route.MeshRealmReg {
	var e route.MeshRealmReg
	e.Realm = r.str()
	if len(r.b) < 2 {
		r.fail()
		return e
	}
	e.Match, e.Invoke = proto.Match(r.b[0]), proto.Invoke(r.b[1])
	r.b = r.b[2:]
	e.URI = r.str()
	e.Callees = int(r.uv())
	e.First = r.sv()
	e.Last = r.sv()
	return e
}

// Two nodes under one name
//
// mesh.node defaults to the host name, so machines cloned from one image
// may share it. Each node then hears heartbeats under its own name from
// another boot (NoEcho: never its own). It drops everything else such a
// node sends (it cannot be told from this node, nor answered: Stats.
// SameName), and remembers its boot and when it was last heard (twins):
// the claim store takes the claims written under this node's name by a
// boot heard within PeerTimeout for that other node's, alive, and refuses
// them (claims.go, take), where it took any claim under its own name for
// its own earlier life's and both nodes held a single registration. A
// claim under this node's name from a boot not heard (a crashed life of
// this node) is still taken over. It is logged (an error naming the
// other boot) when first heard, then at most every twinLogEvery while it
// lasts; Stats.PeersSameName is how many such nodes are heard now.

// maxTwins bounds peerTable.twins; twinLogEvery is how often a name
// collision that lasts is logged again.
const (
	maxTwins     = 64
	twinLogEvery = 30 * time.Second
)

// heardTwin records a heartbeat of another node under this node's name,
// of boot boot. Control dispatcher only.
func (n *Node) heardTwin(boot uint64) {
	if boot == n.boot {
		return // not another node's
	}
	t := n.peers.twins[boot]
	if t == nil {
		if len(n.peers.twins) >= maxTwins {
			return
		}
		t = &twin{}
		t.last.Store(n.mono())
		n.peers.twins[boot] = t
		n.publishTwins()
		n.logTwins(time.Now(), boot)
		return
	}
	t.last.Store(n.mono())
}

// twinLeft forgets the node under this node's name of boot boot, which
// said goodbye (it gave back its claims). Control dispatcher only.
func (n *Node) twinLeft(boot uint64) {
	if _, ok := n.peers.twins[boot]; ok {
		delete(n.peers.twins, boot)
		n.publishTwins()
		n.log.Info("mesh: the other node that used this node's name left", "node", n.opts.Name, "other_boot", boot)
	}
}

// checkTwins forgets the nodes under this node's name silent for
// PeerTimeout, and logs again those still heard, at most every
// twinLogEvery. Control dispatcher only.
func (n *Node) checkTwins(now time.Time) {
	if len(n.peers.twins) == 0 {
		return
	}
	for boot, t := range n.peers.twins {
		if n.since(t.last.Load()) > n.opts.PeerTimeout && n.mono() >= t.spareUntil.Load() {
			delete(n.peers.twins, boot)
			n.publishTwins()
			n.log.Info("mesh: the other node that used this node's name is no longer heard", "node", n.opts.Name, "other_boot", boot)
		}
	}
	if len(n.peers.twins) > 0 {
		n.logTwins(now, 0)
	}
}

// logTwins logs the nodes heard under this node's name (first among them
// boot, unless 0), unless it did less than twinLogEvery ago. Control
// dispatcher only.
func (n *Node) logTwins(now time.Time, boot uint64) {
	if !n.peers.twinLogged.IsZero() && now.Sub(n.peers.twinLogged) < twinLogEvery {
		return
	}
	n.peers.twinLogged = now
	boots := make([]uint64, 0, len(n.peers.twins))
	if boot != 0 {
		boots = append(boots, boot)
	}
	for b := range n.peers.twins {
		if b != boot {
			boots = append(boots, b)
		}
	}
	n.log.Error("mesh: another node uses this node's name; node names must be unique (set mesh.node): what it sends is dropped, the other nodes cannot tell the two apart, and a single registration it holds is refused here while it is heard",
		"node", n.opts.Name, "boot", n.boot, "other_boots", boots, "dropped", n.stats.SameName.Load())
}

// publishTwins publishes peerTable.twins for the claim store.
func (n *Node) publishTwins() {
	m := make(map[uint64]*twin, len(n.peers.twins))
	for b, t := range n.peers.twins {
		m[b] = t
	}
	n.peers.twinView.Store(&m)
	n.stats.PeersSameName.Store(int64(len(m)))
}

// twinAlive reports whether boot (as a claim holds it: decimal) is that
// of another node under this node's name heard within PeerTimeout. Safe
// for concurrent use.
func (n *Node) twinAlive(boot string) bool {
	b, err := strconv.ParseUint(boot, 10, 64)
	if err != nil {
		return false
	}
	t := (*n.peers.twinView.Load())[b]
	return t != nil && (n.since(t.last.Load()) <= n.opts.PeerTimeout || n.mono() < t.spareUntil.Load())
}
