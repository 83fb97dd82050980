package route

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
)

// Realm is one isolated routing domain: its sessions, registrations,
// subscriptions and retained events.
type Realm struct {
	r    *Router
	name string
	cfg  atomic.Pointer[RealmConfig] // swapped by Router.Reload

	mu      sync.RWMutex // guards everything below except the logs' counts and l1
	regs    *table[*registration]
	regByID map[uint64]*registration
	subs    *table[*subscription]
	subByID map[uint64]*subscription
	members map[uint64]*Session // established sessions
	// regByIDPeak, subByIDPeak and membersPeak: the most entries
	// regByID, subByID and members held since they were last checked
	// (shrinkDue).
	regByIDPeak, subByIDPeak, membersPeak int
	// byRole counts the members by authrole (addMember, dropMember), so
	// that wamp.session.count, filtered by roles or not, is a look-up.
	byRole   map[string]int
	retained map[string]*retainedEvent
	// retainedBytes is the size of the retained events (see retain).
	retainedBytes int64
	// lastStamp is the latest of this node's clock retainStamp read, kept
	// from going back (mu, for writing).
	lastStamp int64
	// retainedCreds counts the retained events published with each
	// withdrawable credential id, so that revoking a credential that
	// published none (nearly every revocation) costs no scan of them.
	retainedCreds map[string]int
	// retainedBy is what each publisher's retained events hold, by
	// publisher (Session.retainOwner), within Config.MaxRetainedPerPublisher
	// and MaxRetainedBytesPerPublisher; an entry goes when its events do.
	retainedBy map[string]*retainedShare
	mdir       *meshDir // mesh only: the other nodes' registrations (mesh_dir.go)
	// wildRegs counts the wildcard registrations this node has callees
	// of, wildSubs the wildcard subscriptions: the patterns its sessions
	// put in the tables (Config.MaxRealmWildcard*); wildRegsBy and
	// wildSubsBy count them by owner, each at most a quarter (wildCounts).
	wildRegs, wildSubs     int
	wildRegsBy, wildSubsBy wildCounts
	// regWalks and subWalks: the walk each owner's wildcard patterns
	// make in regs and subs (walkshare.go).
	regWalks, subWalks walkShares
	// leaveSubs counts the subscriptions in subs that match
	// wamp.session.on_leave (mesh only); pres is the record of the other
	// nodes' sessions kept while there are any (mesh_presence.go).
	leaveSubs int
	pres      atomic.Pointer[presence]
	// presGatherAt is when (monoNow) the realm last asked the other nodes
	// for their sessions (queryPresence).
	presGatherAt atomic.Int64
	// drops holds the publication ids of retained events this node
	// dropped whose copies the other nodes are still to be asked to drop
	// (meshDropRetained). Guarded by its mu.
	drops retainedDrops

	// regLog and subLog number and keep the changes to regs and subs,
	// which the shards' caches follow (l1log).
	regLog, subLog l1log
	l1             []l1cache // per shard; l1[i] is owned by shard i

	// meta is the realm's meta events not published yet, in the order
	// of the changes they announce (metaorder.go). Its own lock.
	meta metaQueue
}

// l1cache is a shard's lookup cache for one realm. Reads on the call and
// publish paths hit it without taking Realm.mu. Each of its two maps
// follows the change log of its own table (l1log), so that a change to
// the subscriptions leaves the call cache alone and the other way round,
// and a change drops only the entries it can alter: a change to an exact
// URI that URI's entry, a change to a prefix or wildcard pattern the
// entries whose URI the pattern matches (or, past a bound of work, the
// whole map).
type l1cache struct {
	regs l1map[*registration]   // nil value = no registration (negative cache)
	subs l1map[[]*subscription] // nil/empty = no subscription
	// misses counts the lookups that went to the tables (for the tests).
	misses uint64
}

// l1map is one table's cache on one shard: lookup results by URI, as of
// change seen of the table's log. Owned by the shard.
type l1map[V any] struct {
	seen uint64
	m    map[string]V
	// held is what the results in m weigh (weigh, nil for a map whose
	// results weigh nothing: the registrations', one pointer each).
	held    int
	weigh   func(V) int
	maxHeld int // bound of held (l1SubsBound)
}

// reset empties c.
func (c *l1map[V]) reset() {
	clear(c.m)
	c.held = 0
}

// forget drops uri's entry from c.
func (c *l1map[V]) forget(uri string) {
	if c.weigh != nil {
		if v, ok := c.m[uri]; ok {
			c.held -= c.weigh(v)
		}
	}
	delete(c.m, uri)
}

// subsWeight is what a cached subscription lookup holds, in pointers.
func subsWeight(subs []*subscription) int { return cap(subs) }

// l1Max bounds each cache; a full cache is cleared (the working set of URIs
// on an edge router is small; clearing is cheaper than LRU bookkeeping).
const l1Max = 1024

// l1MaxSubs bounds the subscriptions a shard's cache of one realm holds
// in its lookup results (the capacities of its slices, 8 bytes each: 512
// KiB): past it, the cache is cleared before a new result goes in, as
// past l1Max. A topic matches at most one exact subscription, one prefix
// per byte of it and the realm's wildcard patterns (about 8,200 at
// proto.MaxURILen and MaxRealmWildcardSubscriptions' default), so eight
// such topics fit; a usual topic matches a handful. Before, only the
// entries were bounded: one session subscribed to 4,000 prefixes of a
// long topic, publishing to 1,016 topics under it, made its shard's
// cache hold 4.2 million pointers (32 MiB) per realm, in no budget.
const l1MaxSubs = 1 << 16

// l1SubsBound is the bound of a subscription cache's held pointers for a
// realm of at most wild wildcard patterns (Config.MaxRealmWildcardSubscriptions):
// l1MaxSubs, or room for eight of its worst-case topics when the operator
// allows more patterns (a cache that could not keep one hot topic's
// result beside the others' would walk the patterns again at every
// publication of it).
func l1SubsBound(wild int) int {
	return max(l1MaxSubs, 8*(proto.MaxURILen+wild+1))
}

// l1LogSize is how many changes of a table its log keeps: a shard whose
// cache is further behind clears it.
const l1LogSize = 128

// l1ScanMax bounds the pattern checks a shard makes to bring its cache up
// to date (distinct changed patterns × cached URIs); past it, it clears
// the cache rather than scan it. 1,024 checks (one pattern against a full
// cache) take about 35 µs, a tenth of one lookup that walks the realm's
// bound of worst-shape wildcard patterns.
const l1ScanMax = l1Max

// l1log numbers the changes to one table and keeps the last l1LogSize of
// them, for the shards' caches.
type l1log struct {
	// n is the number of changes so far. It is written with Realm.mu held
	// for writing and read without it by the shards (their fast path).
	n atomic.Uint64
	// ring holds change k at ring[k%l1LogSize], for k in
	// (n-l1LogSize, n]. Guarded by Realm.mu.
	ring [l1LogSize]l1change
}

// l1change is one change to a table: the entry (match, uri) was added,
// removed or replaced, or its callees on other nodes changed.
type l1change struct {
	match proto.Match
	uri   string
}

// add logs a change. Call with Realm.mu held for writing, after the table
// changed.
func (l *l1log) add(c l1change) {
	n := l.n.Load() + 1
	l.ring[n%l1LogSize] = c
	l.n.Store(n)
}

func newRealm(r *Router, cfg RealmConfig) *Realm {
	rm := &Realm{
		r:        r,
		name:     cfg.Name,
		regs:     newTable[*registration](),
		regByID:  map[uint64]*registration{},
		subs:     newTable[*subscription](),
		subByID:  map[uint64]*subscription{},
		members:  map[uint64]*Session{},
		byRole:   map[string]int{},
		retained: map[string]*retainedEvent{},
		l1:       make([]l1cache, r.cfg.Shards),
	}
	for i := range rm.l1 {
		rm.l1[i].regs.m = map[string]*registration{}
		rm.l1[i].subs.m = map[string][]*subscription{}
		rm.l1[i].subs.weigh = subsWeight
		rm.l1[i].subs.maxHeld = l1SubsBound(r.cfg.MaxRealmWildcardSubscriptions)
	}
	rm.setConfig(cfg)
	return rm
}

// setConfig installs a realm configuration, applying defaults.
func (rm *Realm) setConfig(cfg RealmConfig) {
	if cfg.AnonymousRole == "" {
		cfg.AnonymousRole = "anonymous"
	}
	if len(cfg.Authenticators) == 0 {
		cfg.Anonymous = true
	}
	rm.cfg.Store(&cfg)
}

// conf returns the realm's current configuration. Safe for concurrent use.
func (rm *Realm) conf() *RealmConfig { return rm.cfg.Load() }

// Name returns the realm's URI.
func (rm *Realm) Name() string { return rm.name }

// lookupReg returns the registration a call to uri is routed to, or nil.
// Called on shard i's goroutine; lock-free when cached.
func (rm *Realm) lookupReg(i int, uri []byte) *registration {
	c := &rm.l1[i]
	if c.regs.seen != rm.regLog.n.Load() {
		catchUp(rm, &rm.regLog, &c.regs)
	}
	if reg, ok := c.regs.m[string(uri)]; ok {
		return reg
	}
	c.misses++
	rm.mu.RLock()
	reg, _ := rm.regs.best(uri)
	rm.mu.RUnlock()
	if len(c.regs.m) >= l1Max {
		clear(c.regs.m)
	}
	c.regs.m[string(uri)] = reg
	return reg
}

// lookupSubs returns the subscriptions matching topic. The slice is shared
// and must not be modified.
func (rm *Realm) lookupSubs(i int, topic []byte) []*subscription {
	subs, _ := rm.lookupSubsFresh(i, topic)
	return subs
}

// lookupSubsFresh is lookupSubs, and reports whether the slice was made
// for this lookup (a miss of shard i's cache), not one the cache held:
// an event handed to other shards with it then holds it alone once the
// cache drops it (fanout counts it). Called on shard i's goroutine;
// lock-free when cached.
func (rm *Realm) lookupSubsFresh(i int, topic []byte) (subs []*subscription, fresh bool) {
	c := &rm.l1[i]
	if c.subs.seen != rm.subLog.n.Load() {
		catchUp(rm, &rm.subLog, &c.subs)
	}
	if subs, ok := c.subs.m[string(topic)]; ok {
		return subs, false
	}
	c.misses++
	rm.mu.RLock()
	subs = rm.subs.matchAll(topic, nil)
	rm.mu.RUnlock()
	if len(c.subs.m) >= l1Max || c.subs.held+cap(subs) > c.subs.maxHeld {
		c.subs.reset()
	}
	c.subs.m[string(topic)] = subs
	c.subs.held += cap(subs)
	return subs, true
}

// catchUp brings a shard's cache c of a table up to the table's log: it
// drops the entries that the changes since c.seen can have altered. Called
// on the shard's goroutine without mu.
//
// Why no entry stays stale: an entry is a lookup made under mu at some
// point after the change c.seen (the lookup reads the table as of a change
// ≥ c.seen). If a later change can alter it, that change is in the log
// after c.seen, so the next catchUp drops the entry (or clears c, when the
// log no longer holds it); the shard runs catchUp before each lookup whose
// load of the log's count shows a change, and a change is counted (under
// mu, with the table) before the router answers the request that made it.
//
// Not inlined: it keeps its 3 KiB of pending changes off the frames of the
// lookups.
//
//go:noinline
func catchUp[V any](rm *Realm, log *l1log, c *l1map[V]) {
	var pend [l1LogSize]l1change
	rm.mu.RLock()
	n := log.n.Load() // stable: writers hold mu
	k := n - c.seen
	if k > l1LogSize {
		rm.mu.RUnlock()
		c.reset()
		c.seen = n
		return
	}
	for j := uint64(1); j <= k; j++ {
		pend[j-1] = log.ring[(c.seen+j)%l1LogSize]
	}
	rm.mu.RUnlock()
	c.seen = n
	c.drop(pend[:k])
}

// l1Patterns bounds the distinct changed patterns a catchUp scans the
// cache for; past it, it clears the cache.
const l1Patterns = 16

// drop removes the entries that changes can have altered. It reorders
// changes.
func (c *l1map[V]) drop(changes []l1change) {
	// The exact URIs go at once; the distinct patterns are kept at the
	// front of changes.
	np := 0
	for _, ch := range changes {
		if ch.match != proto.MatchPrefix && ch.match != proto.MatchWildcard {
			c.forget(ch.uri) // table.put and table.del's default: exact
			continue
		}
		dup := false
		for _, p := range changes[:np] {
			if p == ch {
				dup = true
				break
			}
		}
		if !dup {
			if np == l1Patterns {
				c.reset()
				return
			}
			changes[np] = ch
			np++
		}
	}
	if np == 0 || len(c.m) == 0 {
		return
	}
	if np*len(c.m) > l1ScanMax {
		c.reset()
		return
	}
	for uri := range c.m {
		for _, p := range changes[:np] {
			if patternMatches(p.match, p.uri, uri) {
				c.forget(uri)
				break
			}
		}
	}
}

// regChanged logs a change to the registration (match, uri): added,
// removed, replaced, or its remote callees changed. Call with mu held for
// writing.
func (rm *Realm) regChanged(match proto.Match, uri string) {
	rm.regLog.add(l1change{match: match, uri: uri})
}

// subChanged logs a change to the subscription (match, uri). Call with mu
// held for writing.
func (rm *Realm) subChanged(match proto.Match, uri string) {
	rm.subLog.add(l1change{match: match, uri: uri})
}

// newID returns a random id not used by any registration or subscription of
// the realm. Call with mu held for writing.
func (rm *Realm) newID() uint64 {
	for {
		id := randomID()
		_, r := rm.regByID[id]
		_, s := rm.subByID[id]
		if !r && !s {
			return id
		}
	}
}

// dropRegID forgets the registration id. Call with mu held for writing.
func (rm *Realm) dropRegID(id uint64) {
	n := len(rm.regByID)
	delete(rm.regByID, id)
	if shrinkDue(&rm.regByIDPeak, n, len(rm.regByID)) {
		shrinkMap(&rm.regByID, &rm.regByIDPeak)
	}
}

// dropSubID forgets the subscription id. Call with mu held for writing.
func (rm *Realm) dropSubID(id uint64) {
	n := len(rm.subByID)
	delete(rm.subByID, id)
	if shrinkDue(&rm.subByIDPeak, n, len(rm.subByID)) {
		shrinkMap(&rm.subByID, &rm.subByIDPeak)
	}
}

// addMember makes ss, established, a member of rm. Call with mu held for
// writing.
func (rm *Realm) addMember(ss *Session) {
	rm.members[ss.id] = ss
	rm.byRole[ss.authRole]++
}

// dropMember takes ss out of rm's members, if it is one. Call with mu
// held for writing.
func (rm *Realm) dropMember(ss *Session) {
	if rm.members[ss.id] != ss {
		return
	}
	n := len(rm.members)
	delete(rm.members, ss.id)
	if shrinkDue(&rm.membersPeak, n, len(rm.members)) {
		shrinkMap(&rm.members, &rm.membersPeak)
	}
	if rm.byRole[ss.authRole]--; rm.byRole[ss.authRole] <= 0 {
		delete(rm.byRole, ss.authRole)
	}
}

// sessionsSnapshot returns the realm's members. Cold path (meta API).
func (rm *Realm) sessionsSnapshot() []*Session {
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	out := make([]*Session, 0, len(rm.members))
	for _, s := range rm.members {
		out = append(out, s)
	}
	return out
}

// maxRetained bounds the topics with a retained event per realm, and
// Config.MaxRetainedBytes their bytes, so that a publisher cannot grow
// router memory without limit by retaining on ever new topics or large
// payloads. Past them, the event is still delivered but not kept, and
// counted; replacing a topic's event within the budget always works.
const maxRetained = 65536

// MaxRetainedTopics is maxRetained for the configuration's checks, and
// DefaultRetainedPerPublisher the default of
// Config.MaxRetainedPerPublisher: a quarter of it.
const (
	MaxRetainedTopics           = maxRetained
	DefaultRetainedPerPublisher = maxRetained / 4
)

// retainedOverhead is what a retained event costs besides its payload and
// topic: the map entry, the publication, its carry and its publisher's
// identity (measured: 543 bytes of heap per event of a one-byte payload
// on a 9-byte topic; it was counted 256, so Config.MaxRetainedBytes let
// the retained events hold twice it). retainedFilterOverhead is what a
// retained event's black/white lists cost besides their entries
// (pubFilter.size): the pubFilter itself, 344 bytes (an event with an
// eligible list of one id held 887 bytes of heap, counted 277: the
// realm's bound let such events hold 3.2 times it).
const (
	retainedOverhead       = 544
	retainedFilterOverhead = 352
)

// retainedCredOverhead is what a retainer of a message's own credential
// (asRetainer: the HTTP gateway's bearer tokens) holds besides its ids'
// bytes: the retainer, the Credential, its Check and what that keeps (the
// gateway: a copy of the principal), measured at 370 to 420 bytes of
// heap per event of tokens taking turns. It is counted once while any
// retained event keeps the retainer (retainer.holds), in the realm's
// bytes and in the share of the publisher whose event first kept it:
// before, it was not counted, and three tokens of one user taking turns
// filled Config.MaxRetainedBytes with events that held twice it; then it
// was counted with the first event only, and went with it while the
// token's later events still kept it: a token's turn retained on a topic
// of every turn and then on its own held 1.88 times the bound
// (TestRetainedCredentialChargeStaysWhileKept).
const retainedCredOverhead = 416

// credBytes is what a message's own credential that by keeps counts
// while retained events keep it (retainedCredOverhead and its ids), 0
// when by has none of its own.
func (by *retainer) credBytes() int64 {
	if by == nil || !by.own {
		return 0
	}
	n := int64(retainedCredOverhead)
	for _, id := range by.cred.IDs {
		n += int64(len(id)) + 16
	}
	return n
}

// maxRetainedFiltered bounds the retained events with black/white lists
// kept per topic besides its last unrestricted one (retainedEvent.older).
const maxRetainedFiltered = 4

// retainRefusal says why retain did not keep an event.
type retainRefusal uint8

const (
	retainKept retainRefusal = iota
	// retainRealmFull: the realm's bounds (maxRetained topics,
	// Config.MaxRetainedBytes) were reached.
	retainRealmFull
	// retainPublisherFull: the publisher's share of them
	// (Config.MaxRetainedPerPublisher, MaxRetainedBytesPerPublisher).
	retainPublisherFull
)

// retainedShare is what one publisher's retained events hold in a realm
// (Realm.retainedBy): their number and their bytes (as retainedBytes
// counts them).
type retainedShare struct {
	key    string
	events int
	bytes  int64
}

// retainStamp returns the publication time of an event this node is
// about to retain on topic: now (unix ns, the node's clock), or just
// after the latest of the topic's retained events when that one is
// stamped at or after now. The nodes of a mesh keep, and get_retained
// delivers, the newest copy of a topic's retained event by this stamp
// (retainNewer, retainedGathered); an event that replaced another here
// must be the newer one everywhere, whatever the clocks: before, a node
// whose clock was behind the replaced event's stamp (another node's
// clock ahead, or its own stepped back) stamped the replacement older,
// and every get_retained in the mesh, on this node too, delivered the
// replaced event. Each is also later than every stamp it gave before,
// on any topic: a pattern's get_retained delivers the events by their
// stamps (retainedOrder), and after the node's clock stepped back one
// publisher's event on another topic came before those it published
// earlier. Call with mu held for writing.
func (rm *Realm) retainStamp(topic string, now int64) int64 {
	if now <= rm.lastStamp && rm.lastStamp < math.MaxInt64 {
		now = rm.lastStamp + 1
	}
	rm.lastStamp = now // not what a topic's older event adds: another node's clock ahead would carry every later stamp
	for re := rm.retained[topic]; re != nil; re = re.older {
		if at := re.pub.at; at >= now {
			now = at
			if at < math.MaxInt64 {
				now = at + 1
			}
		}
	}
	return now
}

// retain stores p as the retained event of a topic, published on this
// node by by (nil: on another node), counted in the share of the
// publisher owner (Session.retainOwner; "": none, an event from another
// node). Call with mu held for writing. An event without black/white
// lists replaces the topic's retained events; one with them is kept
// before them (retainedEvent.older), with at most maxRetainedFiltered
// such events and the last unrestricted one. It reports why, when a
// bound refused it; the topic then has no retained event (an older one
// would be stale), and stale are the publication ids of those dropped
// that this node had published (none: another node's copies), whose
// copies the other nodes of a mesh are to drop.
func (rm *Realm) retain(topic string, p *publication, by *retainer, owner string) (refused retainRefusal, stale []uint64) {
	old := rm.retained[topic]
	// The payload may be in p.c.buf (an owned copy) or elsewhere (a
	// testament's, encoded apart): count whichever is larger. The
	// black/white lists are kept with the event (they apply to later
	// subscribers too) and count as well: a PUBLISH of max_message with an
	// empty payload and a million distinct exclude_authid entries holds
	// 56 MiB of them.
	size := int64(len(topic) + max(cap(p.c.buf), p.c.size()) + retainedOverhead)
	if p.filter != nil {
		size += p.filter.size() + retainedFilterOverhead
	}
	// What p leaves of the topic's events: nothing after an unrestricted
	// one; after a filtered one the newest filtered ones (one fewer than
	// the bound, p being one) and the unrestricted one.
	var keep []*retainedEvent
	if p.filter != nil {
		filtered := 1
		for re := old; re != nil; re = re.older {
			if re.pub.filter == nil {
				keep = append(keep, re)
				break
			}
			if filtered < maxRetainedFiltered {
				keep = append(keep, re)
				filtered++
			}
		}
	}
	// The realm's bytes and the publisher's share once p is kept: what
	// p replaces no longer counts (the publisher's own events replaced
	// free its share, so that it can always replace them).
	// A credential of the message's own (by.own) counts while any event
	// keeps it: from its first (cred) to its last (credLeft).
	var cred int64
	if by != nil && by.holds == 0 {
		cred = by.credBytes()
	}
	total := rm.retainedBytes + size + cred
	var share retainedShare
	if owner != "" {
		if sh := rm.retainedBy[owner]; sh != nil {
			share = *sh
		}
		share.events++
		share.bytes += size + cred
	}
	for re := old; re != nil; re = re.older {
		if !slices.Contains(keep, re) {
			total -= re.size
			if owner != "" && re.share != nil && re.share.key == owner {
				share.events--
				share.bytes -= re.size
			}
			if n := credLeft(old, keep, re, by); n != 0 {
				total -= n
				if owner != "" && re.by.credShare != nil && re.by.credShare == rm.retainedBy[owner] {
					share.bytes -= n
				}
			}
		}
	}
	cfg := &rm.r.cfg
	switch {
	case (old == nil && len(rm.retained) >= maxRetained) || total > cfg.MaxRetainedBytes:
		refused = retainRealmFull
	case owner != "" && (share.events > cfg.MaxRetainedPerPublisher || share.bytes > cfg.MaxRetainedBytesPerPublisher):
		refused = retainPublisherFull
	}
	if refused != retainKept {
		for re := old; re != nil; re = re.older {
			if re.by != nil {
				stale = append(stale, re.pub.id)
			}
		}
		if old != nil {
			rm.unretain(topic, old)
		}
		return refused, stale
	}
	// The new event keeps by, and counts in its publisher's share, before
	// those it replaces give theirs back: one of by's own replaced is not
	// its last, and the last event of a share replaced by its publisher
	// does not take the share (and the credential counted in it) away.
	re := &retainedEvent{pub: p, size: size, by: by}
	if owner != "" {
		sh := rm.retainedBy[owner]
		if sh == nil {
			if rm.retainedBy == nil {
				rm.retainedBy = map[string]*retainedShare{}
			}
			sh = &retainedShare{key: owner}
			rm.retainedBy[owner] = sh
		}
		sh.events++
		sh.bytes += size + cred
		re.share = sh
	}
	if by != nil && by.own {
		if by.holds++; cred != 0 {
			by.credShare = re.share
		}
	}
	for re := old; re != nil; re = re.older {
		if !slices.Contains(keep, re) {
			rm.countCreds(re.by, -1)
			rm.unhold(re.by, false)
			rm.unshare(re)
		}
	}
	rm.countCreds(by, 1)
	// The kept ones are relinked in order (a trimmed filtered one drops
	// out of the chain); readers hold mu for reading.
	for i, re := range keep {
		re.older = nil
		if i > 0 {
			keep[i-1].older = re
		}
	}
	if len(keep) > 0 {
		re.older = keep[0]
	}
	rm.retained[topic] = re
	rm.retainedBytes = total
	return retainKept, nil
}

// credLeft is what re, one of old's chain that an event of by replaces
// (not in keep), gives back of its credential (credBytes): all of it
// when re is the last of the retained events that keep re.by, counting
// re.by's others in the chain that go with it once (at the first), and
// none when by, the new event's, is re.by. Call with mu held.
func credLeft(old *retainedEvent, keep []*retainedEvent, re *retainedEvent, by *retainer) int64 {
	if re.by == nil || !re.by.own || re.by == by {
		return 0
	}
	going := 0
	for o := old; o != nil; o = o.older {
		if o.by != re.by || slices.Contains(keep, o) {
			continue
		}
		if going == 0 && o != re {
			return 0 // counted at an earlier one of the chain
		}
		going++
	}
	if int(re.by.holds) != going {
		return 0
	}
	return re.by.credBytes()
}

// unhold counts out one retained event keeping by; with its last its
// credential's bytes leave the realm's and, unless counted out already
// (counted: retain's total), its publisher's share. Call with mu held
// for writing.
func (rm *Realm) unhold(by *retainer, uncount bool) {
	if by == nil || !by.own {
		return
	}
	if by.holds--; by.holds > 0 {
		return
	}
	n := by.credBytes()
	if uncount {
		rm.retainedBytes -= n
	}
	if sh := by.credShare; sh != nil {
		sh.bytes -= n
		by.credShare = nil
	}
}

// unshare takes re out of its publisher's share. Call with mu held for
// writing, as re leaves the realm's retained events.
func (rm *Realm) unshare(re *retainedEvent) {
	sh := re.share
	if sh == nil {
		return
	}
	re.share = nil
	sh.events--
	sh.bytes -= re.size
	if sh.events <= 0 {
		delete(rm.retainedBy, sh.key)
	}
}

// unretain drops topic's retained events, re (its newest) and those
// before it. Call with mu held for writing.
func (rm *Realm) unretain(topic string, re *retainedEvent) {
	delete(rm.retained, topic)
	for ; re != nil; re = re.older {
		rm.retainedBytes -= re.size
		rm.countCreds(re.by, -1)
		rm.unhold(re.by, true)
		rm.unshare(re)
	}
}

// unretainOne drops re, one of topic's retained events, and reports
// whether it was there. Call with mu held for writing. It finds re by
// its publication: a chain re-linked meanwhile (retainNewer) holds the
// same events in new entries.
func (rm *Realm) unretainOne(topic string, re *retainedEvent) bool {
	head := rm.retained[topic]
	if head != nil && head.pub == re.pub {
		re = head
		if re.older == nil {
			delete(rm.retained, topic)
		} else {
			rm.retained[topic] = re.older
		}
	} else {
		prev := head
		for prev != nil && (prev.older == nil || prev.older.pub != re.pub) {
			prev = prev.older
		}
		if prev == nil {
			return false
		}
		re = prev.older
		prev.older = re.older
	}
	rm.retainedBytes -= re.size
	rm.countCreds(re.by, -1)
	rm.unhold(re.by, true)
	rm.unshare(re)
	return true
}

// countCreds adds d to the retained events counted for by's credential.
// Call with mu held for writing.
func (rm *Realm) countCreds(by *retainer, d int) {
	if by == nil || by.cred == nil {
		return
	}
	for _, id := range by.cred.IDs {
		if id == "" {
			continue
		}
		if rm.retainedCreds == nil {
			rm.retainedCreds = map[string]int{}
		}
		if rm.retainedCreds[id] += d; rm.retainedCreds[id] <= 0 {
			delete(rm.retainedCreds, id)
		}
	}
}

// retainedWith reports whether a retained event was published with a
// credential that has one of ids.
func (rm *Realm) retainedWith(ids []string) bool {
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	for _, id := range ids {
		if rm.retainedCreds[id] > 0 {
			return true
		}
	}
	return false
}

// retainedEvent is the last event published with retain=true on a topic
// (Realm.retained), or one before it (older).
type retainedEvent struct {
	pub  *publication
	size int64     // counted in Realm.retainedBytes
	by   *retainer // nil: published on another node of the mesh
	// share is its publisher's share (Realm.retainedBy) it counts in;
	// nil: none (another node's copy, an in-process session without a
	// client address).
	share *retainedShare
	// older is the topic's retained event before this one when this one
	// has black/white lists (pub.filter): WAMP's Event Retention has the
	// Broker send a subscriber "the most recent Retained Event that they
	// would have received", so an event for a few does not hide the last
	// value from the others. A topic's chain holds at most
	// maxRetainedFiltered events with lists, newest first, and at most one
	// without, last. Read and changed with Realm.mu held.
	older *retainedEvent
}

// forSession returns the newest of re's chain that ss would have
// received, nil when none.
func (re *retainedEvent) forSession(ss *Session) *publication {
	for ; re != nil; re = re.older {
		if re.pub.allowed(ss) {
			return re.pub
		}
	}
	return nil
}

// retainer is the identity a retained event was published as on this
// node, as its session logged in: a retained event goes on speaking for
// its publisher after the session has gone, so a reload asks again, as it
// asks a session, whether that identity may still be in the realm and
// publish to the topic (reload.go), and revoking its credential drops it
// (RevokeCredentials). One per session, shared by the events it retains.
type retainer struct {
	session                                    uint64
	authID, authRole, authMethod, authProvider string
	staticCred                                 string
	realmAuth                                  bool
	// own: its cred is a message's own (asRetainer), counted while
	// retained events keep it: holds of them, in the realm's bytes and
	// in credShare, the share of the first (credBytes). Realm's mu.
	own       bool
	holds     int32
	cred      *Credential
	credShare *retainedShare
}

// asRetainer returns the identity ss retains events as: for a message
// made with a credential of its own (ReceiveMessageWith), ss's identity
// with that credential, shared by the events of one credential published
// in a row (a retainer, 104 bytes, for each other). Owned by shard.
func (ss *Session) asRetainer() *retainer {
	if ss.retainer == nil {
		ss.retainer = &retainer{session: ss.id, authID: ss.authID, authRole: ss.authRole, authMethod: ss.authMethod,
			authProvider: ss.authProvider, staticCred: ss.staticCred, realmAuth: ss.realmAuth, cred: ss.cred}
	}
	c := ss.msgCred
	if c == nil {
		return ss.retainer
	}
	if r := ss.credRetainer; r != nil && (r.cred == c || len(c.IDs) > 0 && slices.Equal(r.cred.IDs, c.IDs)) {
		return r
	}
	r := *ss.retainer
	r.cred, r.own = c, true
	ss.credRetainer = &r
	return &r
}

// dropRetained drops the retained events for which drop returns a reason.
// drop is called without the realm's lock (it may take its time over
// 65,536 topics while calls and publications go on) for each event a
// topic keeps (retainedEvent.older); an event replaced meanwhile stays. It
// returns the number dropped, the first one's topic and reason, and their
// publication ids (for the other nodes of a mesh).
func (rm *Realm) dropRetained(drop func(topic string, re *retainedEvent) string) (n int, topic, why string, ids []uint64) {
	type kept struct {
		topic string
		re    *retainedEvent
	}
	rm.mu.RLock()
	all := make([]kept, 0, len(rm.retained))
	for t, head := range rm.retained {
		for re := head; re != nil; re = re.older {
			all = append(all, kept{t, re})
		}
	}
	rm.mu.RUnlock()
	type dropped struct {
		kept
		why string
	}
	var gone []dropped
	for _, k := range all {
		if w := drop(k.topic, k.re); w != "" {
			gone = append(gone, dropped{k, w})
		}
	}
	if len(gone) == 0 {
		return 0, "", "", nil
	}
	rm.mu.Lock()
	for _, d := range gone {
		if rm.unretainOne(d.topic, d.re) {
			if n == 0 {
				topic, why = d.topic, d.why
			}
			n++
			ids = append(ids, d.re.pub.id)
		}
	}
	rm.mu.Unlock()
	return n, topic, why, ids
}
