package route

import (
	"bytes"
	"iter"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// subscription is a topic URI with a match policy and its subscribers.
type subscription struct {
	id      uint64      // static
	uri     string      // static
	match   proto.Match // static
	created time.Time   // static
	// maker is whose share of Config.MaxSubscriptionBytes counts a
	// wildcard pattern's index (wildcardIndexCost): the session's whose
	// SUBSCRIBE made it, then, when the last of that owner's sessions
	// leaves it, an owner of a session still holding it (moveMaker),
	// until the pattern goes with its last subscriber (a join shares the
	// index). makerHolds counts maker's sessions among the subscribers.
	// Under Realm.mu.
	maker      string
	makerHolds int
	// walkBy is the owner whose walk (Realm.subWalks) counts the
	// pattern, when walked, and whose count (Realm.wildSubsBy); it moves with maker
	// (movePattern). Under Realm.mu.
	walkBy string
	walked bool

	set atomic.Pointer[subSet] // immutable, swapped under Realm.mu
	// wins counts the sessions with a window open on the subscription
	// (retwin.go): the fan-out looks at them only when it is not 0.
	wins atomic.Int32
}

// subSet is a subscription's subscribers grouped by shard, so that a
// fan-out sends one task per shard and each shard walks only its own.
//
// A set is never changed once published (readers walk it without a lock);
// a change makes a new one. Each shard's subscribers are held in chunks of
// at most subChunk, none empty, so that a change copies the shard's list
// of chunks and one or two chunks, not every subscriber: on a topic with
// 20,000 subscribers, one SUBSCRIBE and one UNSUBSCRIBE copied 336 KB.
//
// Each subscriber's place in its shard's chunks (subPos) is kept in its
// session's table (subRef), so that a removal finds it without a walk:
// the shard's last subscriber takes the removed one's place, and its
// session's table is told (same shard: a shard's chunks hold its own
// sessions only). Only the shard's last chunk ever shrinks, and an
// addition appends to it, so no other place moves. Before, an UNSUBSCRIBE
// or leave walked the shard's subscribers under the realm's write lock,
// and so did every SUBSCRIBE (has: a duplicate answered from the set).
type subSet struct {
	byShard [][][]*Session // per shard, its chunks
	n       int
}

// all yields the set's subscribers. Cold path (moveMaker).
func (st *subSet) all() iter.Seq[*Session] {
	return func(yield func(*Session) bool) {
		for _, chunks := range st.byShard {
			for _, ch := range chunks {
				for _, x := range ch {
					if !yield(x) {
						return
					}
				}
			}
		}
	}
}

// subChunk is the most subscribers of one chunk of a subSet.
const subChunk = 256

// subPos is a subscriber's place in its shard's chunks of a subSet: chunk
// j, index k.
type subPos struct{ j, k int32 }

// subRef is a subscription a session is a subscriber of, its place in
// the subscription's set, and which of the session's SUBSCRIBEs made it a
// subscriber (Session.subGen: a get_retained SUBSCRIBE still waiting for
// its retained events is for this subscriber, not for one that left and
// came back, wantsRetained). Owned by the session's shard.
type subRef struct {
	sub *subscription
	at  subPos
	gen uint64
}

func (sub *subscription) subscribers() *subSet { return sub.set.Load() }

// with returns a copy of set with s added (s must not be in it), and its
// place.
func (set *subSet) with(s *Session, shards int) (*subSet, subPos) {
	n := &subSet{byShard: make([][][]*Session, shards), n: 1}
	if set != nil {
		copy(n.byShard, set.byShard)
		n.n = set.n + 1
	}
	i := s.shard.idx
	cs := append([][]*Session(nil), n.byShard[i]...)
	if last := len(cs) - 1; last >= 0 && len(cs[last]) < subChunk {
		// The full slice expression makes append copy: the old chunk
		// stays as the readers of the old set see it.
		cs[last] = append(cs[last][:len(cs[last]):len(cs[last])], s)
	} else {
		cs = append(cs, []*Session{s})
	}
	n.byShard[i] = cs
	last := len(cs) - 1
	return n, subPos{int32(last), int32(len(cs[last]) - 1)}
}

// without returns a copy of set with s, at its place at, removed; set
// itself when s is not in it. The last subscriber of the shard's last
// chunk takes s's place: moved, nil when s was that one, and place, the
// one s had and moved has now.
func (set *subSet) without(s *Session, at subPos) (n *subSet, moved *Session, place subPos) {
	i := s.shard.idx
	cs := set.byShard[i]
	j, k := int(at.j), int(at.k)
	if j >= len(cs) || k >= len(cs[j]) || cs[j][k] != s {
		// Not where its table says: a walk (not expected).
		found, ok := set.find(s)
		if !ok {
			return set, nil, subPos{}
		}
		j, k = int(found.j), int(found.k)
	}
	place = subPos{int32(j), int32(k)}
	n = &subSet{byShard: make([][][]*Session, len(set.byShard)), n: set.n - 1}
	copy(n.byShard, set.byShard)
	ncs := append([][]*Session(nil), cs...)
	last := len(ncs) - 1
	lc := ncs[last]
	if j != last {
		c := append([]*Session(nil), ncs[j]...)
		moved = lc[len(lc)-1]
		c[k] = moved
		ncs[j] = c
		// Shorter, sharing the old chunk's array: never appended to in
		// place (with copies), so the old set's readers see it whole.
		lc = lc[: len(lc)-1 : len(lc)-1]
	} else {
		c := make([]*Session, len(lc)-1)
		copy(c, lc[:len(lc)-1])
		if k != len(lc)-1 {
			moved = lc[len(lc)-1]
			c[k] = moved
		}
		lc = c
	}
	if len(lc) == 0 {
		ncs = ncs[:last]
	} else {
		ncs[last] = lc
	}
	n.byShard[i] = ncs
	return n, moved, place
}

// find returns the place of s in set (a walk of its shard's subscribers:
// for the meta API, and a fallback).
func (set *subSet) find(s *Session) (subPos, bool) {
	if set == nil {
		return subPos{}, false
	}
	for j, c := range set.byShard[s.shard.idx] {
		for k, x := range c {
			if x == s {
				return subPos{int32(j), int32(k)}, true
			}
		}
	}
	return subPos{}, false
}

// has reports whether s is a subscriber of set (a walk: for the meta API;
// the broker asks the session's own table).
func (set *subSet) has(s *Session) bool {
	_, ok := set.find(s)
	return ok
}

// publication is one PUBLISH being delivered. Within the publisher's shard
// it aliases the decoded message; what crosses shards is an owned copy
// (own), shared read-only by every destination shard.
type publication struct {
	id        uint64
	topic     []byte
	c         *carry
	publisher *Session
	excludeMe bool
	disclose  bool
	retained  bool
	// seq counts the publisher session's publications up to this one
	// (it wraps: compared within a short window, retwin.go); src is that
	// session's id, 0 for the router's own events. One publisher's events
	// reach a subscriber in seq order.
	seq    uint32
	src    uint64
	filter *pubFilter // nil when the publisher gave no black/white lists
	// Mesh only: remote is the publisher's identity when it is on another
	// node (publisher is then nil), at the publication time of a retained
	// event (unix ns; the newest wins across nodes).
	remote *remotePublisher
	at     int64
}

// pubFilter holds PUBLISH black and white lists (WAMP §Subscriber
// Black- and Whitelisting). Each given eligible list narrows the receivers;
// each exclude list removes from them. The lists are kept as sets of their
// distinct entries, read without collecting them first: a PUBLISH of
// max_message may hold millions of one-byte entries, which as []string
// took 200 times its size, and which every subscriber was checked against
// one by one.
type pubFilter struct {
	exclude, eligible                           idSet
	excludeAuthID, excludeAuthRole              strSet
	eligibleAuthID, eligibleAuthRole            strSet
	hasEligible, hasEligAuthID, hasEligAuthRole bool
}

// size is the bytes f holds (for the shards' event backlog and the
// realm's retained bytes): its arrays' capacities, read without a walk of
// the entries (it is asked for each held copy of an event, winAdmit).
func (f *pubFilter) size() int64 {
	n := f.exclude.size() + f.eligible.size()
	for _, set := range [...]*strSet{&f.excludeAuthID, &f.excludeAuthRole, &f.eligibleAuthID, &f.eligibleAuthRole} {
		n += set.size()
	}
	return n
}

// hasLists reports whether f holds a black or white list.
func hasLists(f *proto.Fields) bool {
	for _, k := range [...]proto.Key{proto.KeyExclude, proto.KeyEligible, proto.KeyExcludeAuthID, proto.KeyExcludeAuthRole, proto.KeyEligibleAuthID, proto.KeyEligibleAuthRole} {
		if f.Has(k) {
			return true
		}
	}
	return false
}

// testHookFilterOf, set by tests only, is called by filterOf with the
// number of list entries it read and the steps its id sets took to build
// (idSet.add).
var testHookFilterOf func(entries, steps int)

// filterOf reads f's black and white lists into a pubFilter (nil when it
// has none). Its cost is in the lists' entries: the publish paths build it
// only when it can matter (an event delivered here, retained, or sent to
// other nodes), not for a PUBLISH to a topic no one subscribed to.
func filterOf(f *proto.Fields) *pubFilter {
	if !hasLists(f) {
		return nil
	}
	fl := &pubFilter{
		hasEligible:     f.Has(proto.KeyEligible),
		hasEligAuthID:   f.Has(proto.KeyEligibleAuthID),
		hasEligAuthRole: f.Has(proto.KeyEligibleAuthRole),
	}
	var s1, s2 int
	fl.exclude, s1 = idSetOf(f, proto.KeyExclude)
	fl.eligible, s2 = idSetOf(f, proto.KeyEligible)
	f.EachString(proto.KeyExcludeAuthID, fl.excludeAuthID.add)
	f.EachString(proto.KeyExcludeAuthRole, fl.excludeAuthRole.add)
	f.EachString(proto.KeyEligibleAuthID, fl.eligibleAuthID.add)
	f.EachString(proto.KeyEligibleAuthRole, fl.eligibleAuthRole.add)
	if h := testHookFilterOf; h != nil {
		n := 0
		for _, k := range [...]proto.Key{proto.KeyExclude, proto.KeyEligible} {
			f.EachID(k, func(uint64) { n++ })
		}
		for _, k := range [...]proto.Key{proto.KeyExcludeAuthID, proto.KeyExcludeAuthRole, proto.KeyEligibleAuthID, proto.KeyEligibleAuthRole} {
			f.EachString(k, func([]byte) { n++ })
		}
		h(n, s1+s2)
	}
	return fl
}

// allowed reports whether ss receives p.
func (p *publication) allowed(ss *Session) bool {
	if p.excludeMe && ss == p.publisher {
		return false
	}
	f := p.filter
	if f == nil {
		return true
	}
	if f.hasEligible && !f.eligible.has(ss.id) {
		return false
	}
	if f.hasEligAuthID && !f.eligibleAuthID.has(ss.authID) {
		return false
	}
	if f.hasEligAuthRole && !f.eligibleAuthRole.has(ss.authRole) {
		return false
	}
	return !f.exclude.has(ss.id) && !f.excludeAuthID.has(ss.authID) && !f.excludeAuthRole.has(ss.authRole)
}

// own returns a copy of p that owns its bytes and may cross shards.
func (p *publication) own() *publication {
	c := *p
	c.topic = append([]byte(nil), p.topic...)
	cc := &carry{transparent: p.c.transparent, uri: p.c.uri}
	cc.buf = make([]byte, 0, p.c.size())
	cc.args = cc.keep(p.c.args)
	cc.kwargs = cc.keep(p.c.kwargs)
	for i, v := range p.c.ppt {
		if v != nil {
			start := len(cc.buf)
			cc.buf = append(cc.buf, v...)
			cc.ppt[i] = cc.buf[start:len(cc.buf):len(cc.buf)]
		}
	}
	c.c = cc
	return &c
}

// ownRetained is own for the copy a realm retains (Realm.retain): its
// topic is kept in the array that holds its payload, which retain counts
// (by its capacity) besides the topic of its map key. own's topic, an
// array of its own, was held and counted nowhere: an event on a 4 KiB
// topic held two copies of it and was counted for one, so retained events
// on long topics held twice limits.retained_bytes. Not on the publication
// path: for a retained event only (one allocation, as own's topic was).
func (p *publication) ownRetained() *publication {
	c := *p
	cc := &carry{transparent: p.c.transparent, uri: p.c.uri}
	cc.buf = make([]byte, 0, len(p.topic)+p.c.size())
	cc.buf = append(cc.buf, p.topic...)
	c.topic = cc.buf[:len(p.topic):len(p.topic)]
	cc.args = cc.keep(p.c.args)
	cc.kwargs = cc.keep(p.c.kwargs)
	for i, v := range p.c.ppt {
		if v != nil {
			start := len(cc.buf)
			cc.buf = append(cc.buf, v...)
			cc.ppt[i] = cc.buf[start:len(cc.buf):len(cc.buf)]
		}
	}
	c.c = cc
	return &c
}

// subscribe handles SUBSCRIBE.
func (s *Shard) subscribe(ss *Session, m *proto.Message) {
	if !s.checkRequest(ss, m) {
		return
	}
	match := m.Opt.Match()
	rm := ss.realm
	if !proto.ValidPattern(m.URI, rm.conf().URICheck, match) {
		s.replyError(ss, proto.CodeSubscribe, m.Request, proto.URIInvalidURI, "invalid topic URI for match policy "+match.String())
		return
	}
	if tooDeep(m.URI, match) {
		s.replyError(ss, proto.CodeSubscribe, m.Request, proto.URIInvalidURI, tooDeepMsg)
		return
	}
	if !ss.authorizePattern(ActionSubscribe, match, m.URI) {
		s.replyError(ss, proto.CodeSubscribe, m.Request, proto.URINotAuthorized, "not authorized to subscribe to "+strconv.Quote(string(m.URI)))
		return
	}
	wild := match == proto.MatchWildcard
	if s.retainedScanFull(ss, m, match) {
		return
	}
	uri := string(m.URI)
	var walkBy string // the owner of a wildcard pattern it makes (walkOwner)
	rm.mu.Lock()
	sub, exists := rm.subs.get(match, uri)
	// The session's bounds are for a subscription it does not have yet:
	// a SUBSCRIBE to one it has adds nothing and is answered SUBSCRIBED
	// with its id (before, at the bound it was refused as one too many).
	adding := !exists || ss.subs[sub.id].sub != sub
	if adding {
		if max := s.r.cfg.MaxSubscriptions; len(ss.subs) >= max {
			rm.mu.Unlock()
			s.replyError(ss, proto.CodeSubscribe, m.Request, proto.URIUnavailable, "too many subscriptions for this session (limit "+strconv.Itoa(max)+")")
			return
		}
		if max := s.r.cfg.MaxWildcardSubscriptions; wild && ss.wildSubs >= max {
			rm.mu.Unlock()
			s.wildcardRefused(ss, proto.CodeSubscribe, m.Request, false, max)
			return
		}
	}
	if !exists {
		// Only a new pattern counts toward the realm's bound: joining
		// one adds nothing for a PUBLISH to walk.
		if max := s.r.cfg.MaxRealmWildcardSubscriptions; wild && rm.wildSubs >= max {
			rm.mu.Unlock()
			s.wildcardRefused(ss, proto.CodeSubscribe, m.Request, true, max)
			return
		}
		if wild {
			// And an owner's quarter of it: the same count by owner (a
			// client's; not the in-process sessions' "", wildShare).
			walkBy = ss.walkOwner()
			if max := s.r.cfg.MaxRealmWildcardSubscriptions; rm.wildSubsBy[walkBy] >= wildShare(max) && walkBy != "" {
				rm.mu.Unlock()
				s.wildcardShareRefused(ss, proto.CodeSubscribe, m.Request, walkBy, max)
				return
			}
			own := rm.subWalks.past(walkBy, uri)
			if own || rm.subs.wildWalkPast(uri, maxWildcardWalk) {
				rm.mu.Unlock()
				s.wildcardWalkRefused(ss, proto.CodeSubscribe, m.Request, uri, walkBy, own)
				return
			}
		}
	}
	// The bytes last: a SUBSCRIBE refused above charges nothing. A
	// wildcard pattern's index is charged to the session that makes it
	// (subCost), not again to each one that joins it (subHoldCost): 600
	// devices of one address joining the same 4 patterns were refused
	// past the 533rd.
	cost := subHoldCost(uri)
	if !exists {
		cost = subCost(match, uri)
	}
	if adding && !s.r.subBytes.charge(ss.subscriptionOwner(), cost, s.r.cfg.MaxSubscriptionBytes) {
		rm.mu.Unlock()
		s.subscriptionBytesRefused(ss, m.Request)
		return
	}
	if !exists {
		sub = &subscription{id: rm.entryID('s', match, uri), uri: uri, match: match, created: s.r.cfg.Now()}
		if wild {
			sub.maker = ss.subOwner // charged its index above
			sub.walkBy, sub.walked = walkBy, rm.subWalks.add(walkBy, uri)
		}
		rm.subs.put(match, uri, sub)
		rm.subByID[sub.id] = sub
		rm.subChanged(match, uri)
		if wild {
			rm.wildSubs++
			rm.wildSubsBy.add(walkBy)
		}
		if s.r.mesh != nil {
			s.r.mesh.Subscribe(rm.name, match, uri)
			rm.leaveInterest(match, uri, 1)
		}
	}
	// The session's own table, not a walk of the subscribers: a
	// duplicate SUBSCRIBE walked them all under the realm's write lock.
	added := ss.subs[sub.id].sub != sub
	if added {
		set, at := sub.subscribers().with(ss, len(s.r.shards))
		sub.set.Store(set)
		if ss.subs == nil {
			ss.subs = map[uint64]subRef{}
		}
		ss.subGen++
		ss.subs[sub.id] = subRef{sub, at, ss.subGen}
		if wild && ss.subOwner == sub.maker {
			sub.makerHolds++
		}
	}
	// Queued with the change, published after SUBSCRIBED (metaorder.go).
	if !exists {
		rm.metaPush(metaItem{topic: metaSubOnCreate, sess: ss.id, made: sub})
	}
	if added {
		rm.metaPush(metaItem{topic: metaSubOnSubscribe, sess: ss.id, id: sub.id})
	}
	rm.mu.Unlock()
	if added && wild {
		ss.wildSubs++
	}
	if !added {
		// Subscribed already: what the session is owed since then
		// stands, whatever window its first SUBSCRIBE opened.
		s.resubscribed(ss, sub)
	}

	out := &s.out
	out.Reset()
	out.Type = proto.CodeSubscribed
	out.Request = m.Request
	out.ID = sub.id
	s.sendMsg(ss, out, ClassControl)
	s.metaFlush(rm)
	if m.Opt.Bool(proto.KeyGetRetained, false) {
		// A window only for a new subscriber: a subscriber already is
		// owed the live events on their way, the retained one's copy
		// and its publisher's older ones included (retwin.go).
		var w *retWin
		if added {
			w = s.openWin(ss, sub)
		}
		s.retainedTurn(ss, retainedAsk{sub: sub, w: w, gen: ss.subs[sub.id].gen})
	}
}

// sendRetained delivers the retained events matching sub to ss (WAMP
// §Event Retention), and returns what retainedTurn charges for it: the
// retained topics it looked at, and the bytes of the events it sent
// (retainedBytesPerEntry). Cold path: for a pattern it scans the realm's
// retained topics.
func (s *Shard) sendRetained(ss *Session, ask retainedAsk) (scanned int) {
	rm, sub := ss.realm, ask.sub
	var pubs []*publication
	var topics []string // theirs as the realm holds them, for the marks
	rm.mu.RLock()
	scanned = 1
	// Per topic the newest retained event ss would have received
	// (retainedEvent.older).
	if sub.match == proto.MatchExact {
		if p := rm.retained[sub.uri].forSession(ss); p != nil {
			pubs = append(pubs, p)
			topics = append(topics, sub.uri)
		}
	} else {
		scanned = max(len(rm.retained), 1)
		for topic, re := range rm.retained {
			if matches(sub, topic) {
				if p := re.forSession(ss); p != nil {
					pubs = append(pubs, p)
					topics = append(topics, topic)
				}
			}
		}
	}
	rm.mu.RUnlock()
	if len(pubs) > 1 {
		sort.Sort(retainedOrder{pubs, topics})
	}
	s.deliverRetained(ss, ask, pubs, topics)
	// Not for the HTTP gateway's sessions, which every stream of a
	// principal (of the anonymous one, every client without credentials)
	// shares: its own limits bound its streams.
	if _, inProcess := ss.peer.(InProcessPeer); !inProcess {
		for _, p := range pubs {
			scanned += (p.c.size() + len(p.topic)) / retainedBytesPerEntry
		}
	}
	return scanned
}

// retainedOrder sorts a pattern's retained events (and their topics,
// when not nil) oldest first: by their publication stamps (publication.at),
// and one publisher's of the same stamp by its publication count (seq; a
// stamp is the publisher node's clock, which may repeat). They went in the
// order of the realm's map, a new one at each SUBSCRIBE, so that one
// publisher's retained events on two topics came in either order (20 of
// 20 subscribers of 8 topics got them out of order). Cold path: a
// get_retained SUBSCRIBE, charged for its events.
type retainedOrder struct {
	pubs   []*publication
	topics []string
}

func (o retainedOrder) Len() int { return len(o.pubs) }

func (o retainedOrder) Less(i, j int) bool {
	a, b := o.pubs[i], o.pubs[j]
	if a.at != b.at {
		return a.at < b.at
	}
	if a.src != b.src {
		return a.src < b.src // of one stamp, others' are not ordered
	}
	return int32(a.seq-b.seq) < 0
}

func (o retainedOrder) Swap(i, j int) {
	o.pubs[i], o.pubs[j] = o.pubs[j], o.pubs[i]
	if o.topics != nil {
		o.topics[i], o.topics[j] = o.topics[j], o.topics[i]
	}
}

func matches(sub *subscription, topic string) bool {
	switch sub.match {
	case proto.MatchPrefix:
		return len(topic) >= len(sub.uri) && topic[:len(sub.uri)] == sub.uri
	case proto.MatchWildcard:
		return proto.MatchWildcardURI([]byte(sub.uri), []byte(topic))
	}
	return topic == sub.uri
}

// unsubscribe handles UNSUBSCRIBE.
func (s *Shard) unsubscribe(ss *Session, m *proto.Message) {
	if !s.checkRequest(ss, m) {
		return
	}
	sub := ss.subs[m.ID].sub
	if sub == nil {
		s.replyError(ss, proto.CodeUnsubscribe, m.Request, proto.URINoSuchSubscription, "no subscription "+strconv.FormatUint(m.ID, 10)+" for this session")
		return
	}
	s.detachSubscriber(ss, sub)
	out := &s.out
	out.Reset()
	out.Type = proto.CodeUnsubscribed
	out.Request = m.Request
	s.sendMsg(ss, out, ClassControl)
	s.metaFlush(ss.realm)
}

// revokeSubscription takes ss off sub without its asking (a reload took
// the grant away, or wamp.subscription.remove_subscriber) the way an
// UNSUBSCRIBE would, the mesh interest included, and tells it with a
// SUBSCRIPTION revocation (UNSUBSCRIBED with request 0 and the reason,
// WAMP Advanced Profile) when the subscriber announced the feature.
// Others are not told (the Broker MUST NOT send it to them).
func (s *Shard) revokeSubscription(ss *Session, sub *subscription, reason string) {
	s.detachSubscriber(ss, sub)
	if ss.feat&fSubscriberRevoke != 0 {
		s.sendRevocation(ss, proto.CodeUnsubscribed, "subscription", sub.id, reason)
	}
	s.metaFlush(ss.realm)
}

// detachSubscriber takes ss off sub, deleting sub when it was the last
// subscriber, and queues on_unsubscribe, and on_delete with the
// deletion, with the change (the caller publishes them, metaFlush).
func (s *Shard) detachSubscriber(ss *Session, sub *subscription) {
	ref := ss.subs[sub.id]
	n := len(ss.subs)
	delete(ss.subs, sub.id)
	if shrinkDue(&ss.subsPeak, n, len(ss.subs)) {
		shrinkMap(&ss.subs, &ss.subsPeak)
	}
	s.r.subBytes.release(ss.subOwner, subHoldCost(sub.uri))
	if w := ss.winOf(sub); w != nil {
		s.closeWin(ss, w)
	}
	wild := sub.match == proto.MatchWildcard
	if wild {
		ss.wildSubs--
	}
	rm := ss.realm
	deleted := false
	rm.mu.Lock()
	var at subPos
	if ref.sub == sub {
		at = ref.at
	}
	set, moved, place := sub.subscribers().without(ss, at)
	sub.set.Store(set)
	if moved != nil {
		// It took ss's place (where it was found, should the table have
		// been wrong); a session of this shard, so its table is this
		// shard's to write.
		if r, ok := moved.subs[sub.id]; ok && r.sub == sub {
			moved.subs[sub.id] = subRef{sub, place, r.gen}
		}
	}
	if wild && set.n > 0 && ref.sub == sub && ss.subOwner == sub.maker {
		if sub.makerHolds--; sub.makerHolds <= 0 {
			s.moveMaker(rm, sub, set)
		}
	}
	if set.n == 0 {
		rm.subs.del(sub.match, sub.uri)
		rm.dropSubID(sub.id)
		rm.subChanged(sub.match, sub.uri)
		if wild {
			rm.wildSubs--
			rm.wildSubsBy.drop(sub.walkBy)
			s.r.subBytes.release(sub.maker, wildcardIndexCost(sub.match, sub.uri)) // charged by subscribe
			if sub.walked {
				rm.subWalks.drop(sub.walkBy, sub.uri)
				sub.walked = false
			}
		}
		deleted = true
		if s.r.mesh != nil {
			s.r.mesh.Unsubscribe(rm.name, sub.match, sub.uri)
			rm.leaveInterest(sub.match, sub.uri, -1)
		}
	}
	rm.metaPush(metaItem{topic: metaSubOnUnsubscribe, sess: ss.id, id: sub.id})
	if deleted {
		rm.metaPush(metaItem{topic: metaSubOnDelete, sess: ss.id, id: sub.id})
	}
	rm.mu.Unlock()
}

// moveMaker counts the wildcard pattern sub's index, whose maker's last
// session left it, to the owner of one of its subscribers (set, not
// empty) whose share can take it (moveIndexCharge); when none can, it
// stays the maker's, as it did before for as long as any other owner
// held the pattern (a joiner held the maker's share hostage: 215,424 of
// its 262,144 bytes for 44 patterns it no longer held), until the pattern
// goes or a session of the maker's joins and leaves it again. The
// pattern's count among the realm's (wildSubsBy) and its walk
// (subWalks) go with the index, to an owner whose
// quarters can take them too (patternFits): they stayed the maker's, so
// that one session joining an address's 1,024 patterns kept it refused
// any new one after it left them. Under Realm.mu; reads other shards'
// sessions' subOwner, fixed before they subscribed. Walks the
// subscribers (an UNSUBSCRIBE or a leave of the maker's last session,
// not a PUBLISH).
func (s *Shard) moveMaker(rm *Realm, sub *subscription, set *subSet) {
	owners := func(yield func(string) bool) {
		for x := range set.all() {
			if !yield(x.subOwner) {
				return
			}
		}
	}
	// A pattern an HTTP client's event stream made (walkBy its address,
	// maker "": the gateway's sessions) goes too: no session of the
	// gateway holds it, so neither does that client.
	max := s.r.cfg.MaxRealmWildcardSubscriptions
	fits := func(o string) bool { return patternFits(rm.wildSubsBy, rm.subWalks, max, o, sub.uri, sub.walked) }
	to, holds, moved := moveIndexCharge(&s.r.subBytes, sub.maker, wildcardIndexCost(sub.match, sub.uri), s.r.cfg.MaxSubscriptionBytes, owners, fits)
	if !moved {
		sub.makerHolds = 0
		return
	}
	movePattern(&rm.wildSubsBy, &rm.subWalks, sub.walkBy, to, sub.uri, sub.walked)
	sub.walkBy = to
	sub.maker, sub.makerHolds = to, holds
}

// moveIndexCharge moves a wildcard pattern's index charge (cost, in b,
// whose share is max) from maker to the owner of one of the pattern's
// holders (owners, walked twice) whose share can take it
// (testamentBudget.move) and that fits (its quarters of the realm's
// patterns and walk, patternFits), the first one that can; an owner that
// cannot is tried once. It returns the new
// maker and how many holders are its, or moved false when no one could
// take it (the charge stays the maker's). Never to the HTTP gateway's
// sessions (the owner "", bounded by the total only): any HTTP client can
// make the gateway join a pattern (an event stream with match=wildcard),
// so an address could make patterns up to its quarter, have the gateway
// join them, leave them and make as many again, round after round (766 KB
// of a 1 MiB budget after three, the maker counted 0). Shared by
// subscriptions (moveMaker) and registrations (moveRegMaker).
func moveIndexCharge(b *testamentBudget, maker string, cost, max int64, owners iter.Seq[string], fits func(string) bool) (to string, holds int, moved bool) {
	var tried map[string]bool // owners that could not take it
	for o := range owners {
		if o == "" || o == maker || tried[o] {
			continue
		}
		if fits(o) && b.move(maker, o, cost, max) {
			to, moved = o, true
			break
		}
		if tried == nil {
			tried = map[string]bool{}
		}
		tried[o] = true
	}
	if !moved {
		return "", 0, false
	}
	for o := range owners {
		if o == to {
			holds++
		}
	}
	return to, holds, true
}

// publish handles PUBLISH.
func (s *Shard) publish(ss *Session, m *proto.Message) {
	if !s.checkRequest(ss, m) {
		return
	}
	ack := m.Opt.Bool(proto.KeyAcknowledge, false)
	rm := ss.realm
	fail := func(uri, msg string) {
		if ack { // WAMP: errors for PUBLISH are sent only when acknowledge is set
			s.replyError(ss, proto.CodePublish, m.Request, uri, msg)
		}
	}
	if !proto.ValidURI(m.URI, rm.conf().URICheck) {
		fail(proto.URIInvalidURI, "invalid topic URI")
		return
	}
	if reserved(m.URI) {
		fail(proto.URIInvalidURI, "topic URIs starting with \"wamp.\" are reserved for the router")
		return
	}
	if !ss.authorize(ActionPublish, m.URI) {
		fail(proto.URINotAuthorized, "not authorized to publish to "+strconv.Quote(string(m.URI)))
		return
	}
	p := publication{
		id:        s.rng.Uint64N(proto.MaxID) + 1,
		topic:     m.URI,
		c:         s.carry(m, false),
		publisher: ss,
		excludeMe: m.Opt.Bool(proto.KeyExcludeMe, true),
		disclose:  m.Opt.Bool(proto.KeyDiscloseMe, false) || ss.grants(ActionDisclosePublisher, m.URI),
		src:       ss.id,
		seq:       ss.publisherSeq(),
	}
	// The black/white lists are read only when they can matter (filterOf:
	// their cost is in their entries, millions in one PUBLISH).
	lists := hasLists(&m.Opt)
	retain := m.Opt.Bool(proto.KeyRetain, false)
	var stale []uint64
	if retain {
		if lists {
			p.filter = filterOf(&m.Opt)
		}
		kept := p.ownRetained()
		kept.excludeMe = false // a retained event goes to later subscribers, the publisher too
		kept.retained = true
		// It outlives the publisher: keep who published, for disclosure,
		// not the Session (one retained topic per left session would
		// otherwise pin every session a peer ever had).
		kept.publisher = nil
		kept.remote = &remotePublisher{id: ss.id, authID: ss.authID, authRole: ss.authRole}
		rm.mu.Lock()
		p.at = rm.retainStamp(string(m.URI), s.r.wallNow())
		kept.at = p.at
		why, old := rm.retain(string(m.URI), kept, ss.asRetainer(), ss.retainOwner())
		rm.mu.Unlock()
		if why != retainKept {
			s.retainRefused(ss, rm, why, string(m.URI))
			retain, stale = false, old
		}
	}
	// Looked up after the event is retained: a get_retained SUBSCRIBE that
	// creates the subscription meanwhile finds this event retained, or
	// is found here and gets it live (not neither: it would keep the
	// previous retained event as the topic's last).
	subs, fresh := rm.lookupSubsFresh(s.idx, m.URI)
	if lists && p.filter == nil && (len(subs) > 0 || s.r.mesh != nil) {
		p.filter = filterOf(&m.Opt)
	}
	if len(subs) > 0 {
		s.fanout(&p, subs, fresh)
	}
	if s.r.mesh != nil {
		// Retained on the other nodes only if here: a copy of an event
		// this node refused went on being handed out there, and no reload
		// here could drop it (nothing here recorded it).
		s.meshPublish(rm, &p, retain)
		if len(stale) > 0 {
			s.meshDropRetained(rm, stale)
		}
	}
	if ack {
		out := &s.out
		out.Reset()
		out.Type = proto.CodePublished
		out.Request = m.Request
		out.ID = p.id
		s.sendMsg(ss, out, ClassControl)
	}
}

// markShards sets present[i] for every shard i with a subscriber of
// subs. (fanout, on every publication's path, keeps this loop inline.)
func markShards(present *[maxShards]bool, subs []*subscription) {
	for _, sub := range subs {
		if set := sub.subscribers(); set != nil {
			for i, l := range set.byShard {
				if len(l) > 0 {
					present[i] = true
				}
			}
		}
	}
}

// fanout delivers p to the subscribers of subs: this shard's directly,
// every other shard's through one task per shard carrying one shared copy.
// fresh says subs was looked up for p (lookupSubsFresh): each task then
// counts it too (subsCost).
func (s *Shard) fanout(p *publication, subs []*subscription, fresh bool) {
	var present [maxShards]bool
	for _, sub := range subs {
		set := sub.subscribers()
		if set == nil {
			continue
		}
		for i, l := range set.byShard {
			if len(l) > 0 {
				present[i] = true
			}
		}
	}
	var owned *publication
	var n int64
	for i, sh := range s.r.shards {
		if !present[i] || sh == s {
			continue
		}
		if owned == nil {
			owned, n = p.ownFor(subs, fresh)
		}
		s.postEvents(sh, owned, subs, n, 0)
	}
	if present[s.idx] {
		if s.metaPosted.Load() == 0 && s.selfEvents == 0 {
			s.deliverEvents(p, subs)
			return
		}
		// Meta events posted to this shard wait in its mailbox (a
		// session's on_join among them, posted behind another loop's):
		// delivered inline, p would overtake them. It waits behind
		// them, and the publisher's later events behind it (selfEvents).
		// TestOnJoinBeforeFirstEventWithMetaEventsPosted.
		if owned == nil {
			owned, n = p.ownFor(subs, fresh)
		}
		if s.postEvents(s, owned, subs, n, tfSelf) {
			s.selfEvents++
		}
	}
}

// ownFor returns the copy of p that events for shards hold while they
// wait, and its cost: with the list subs when it was made for p (fresh).
func (p *publication) ownFor(subs []*subscription, fresh bool) (*publication, int64) {
	owned := p.own()
	n := owned.cost()
	if fresh {
		n += subsCost(subs)
	}
	return owned, n
}

// postEvents posts owned for the subscribers of subs on sh, counted n in
// its backlog, and reports whether it did: at most maxEventBacklog bytes
// of events wait for a shard (one event always may); beyond, the event is
// dropped for that shard's subscribers and counted, as for a slow
// subscriber.
func (s *Shard) postEvents(sh *Shard, owned *publication, subs []*subscription, n int64, flags uint16) bool {
	if b := sh.eventBacklog.Load(); b > 0 && b+n > maxEventBacklog {
		s.stats.EventsBacklog.Add(1)
		return false
	}
	sh.eventBacklog.Add(n)
	sh.post(task{kind: tEvents, flags: flags, pub: owned, subs: subs, b: uint64(n)})
	return true
}

// subsCost is what a list of matched subscriptions holds, for an event
// that pins it while it waits for a shard: 8 bytes a subscription (its
// capacity's), up to the realm's 4,096 wildcard patterns and the topic's
// prefixes. An event for another shard counts it when the list was made
// for it (a miss of its shard's cache, fanout's fresh): the cache, cleared
// past l1Max topics, stops holding it while the event waits. It counted
// nothing of it: with 512 wildcard subscriptions matching every topic
// a.b.c.d.e.f.g.h.i.<n>, an event to a new topic held ~5.3 KiB and
// counted ~0.5 (TestShardEventBacklogCountsMatchedSubscriptions), and the
// 32 MiB bound let a stalled loop hold ~10 times that. A list the cache
// held already is counted by the event that made it, while that one
// waits; the others sharing it do not count it again (the cache's own
// bound holds it).
func subsCost(subs []*subscription) int64 { return int64(cap(subs)) * subRefSize }

// maxEventBacklog bounds the bytes of events from this node's other shards
// waiting for one shard (Shard.eventBacklog).
const maxEventBacklog = 32 << 20

// ownCost is the cost() of the copy own() makes, whether p's payload is
// an own copy already or still points into the PUBLISH.
func (p *publication) ownCost() int64 {
	n := int64(p.c.size()+len(p.topic)) + eventOverhead
	if p.filter != nil {
		n += p.filter.size()
	}
	return n
}

// cost is what an owned copy of p holds while it waits in a mailbox: its
// payload and topic, and the task and copy themselves (eventOverhead, so
// that a flood of empty events is bounded too). A black/white list is
// shared by the copies and counted in each.
func (p *publication) cost() int64 {
	n := int64(cap(p.c.buf)+cap(p.topic)) + eventOverhead
	if p.filter != nil {
		n += p.filter.size()
	}
	return n
}

// eventOverhead is what an event waiting for a shard holds besides its
// payload, topic, black/white lists and matched subscriptions: the
// publication (88 bytes, a 96-byte object), its carry (304, a 320-byte
// object) and the task in the shard's mailbox (104, in a slice that grows
// as it fills). Measured: 537 bytes of heap per empty event from another
// shard of the node (topic included, TestShardEventBacklogCountsWhatEventsHold),
// 538 per empty event from another node (a 30-byte envelope included,
// TestMeshEventBacklogCountsWhatEventsHold). It was 256 for events from
// another shard, so a small one held 537 bytes and counted 261, and the
// 32 MiB bound let a stalled loop hold ~66 MiB of them.
const eventOverhead = 512

// maxShards bounds Config.Shards (fan-out bookkeeping uses fixed arrays).
const maxShards = 256

// deliverChunk sends p to the subscribers of sub in chunk c (a loop of its
// own: nested in deliverEvents' loop over chunks, it kept more of its state
// in memory across sendEvent, 3 % of a fan-out to 100 subscribers).
//
// d is the fan-out's number when it is of several subscriptions
// (Shard.deliveries), 0 when of one: a session an EVENT of the fan-out
// was refused for is marked with it, and skipped for its other
// subscriptions.
func (s *Shard) deliverChunk(c []*Session, sub *subscription, p *publication, enc *[4][]byte, d uint64) {
	for _, ss := range c {
		if ss.state != stEstablished || !p.allowed(ss) || !ss.mayReceive(ActionSubscribe, sub.match, p.topic) {
			continue
		}
		if d != 0 && ss.refusedAt == d {
			s.countRefused(ss.refusedErr)
			continue
		}
		if err := s.sendEvent(ss, sub, p, enc); err != nil && d != 0 {
			ss.refusedAt, ss.refusedErr = d, err
		}
	}
}

// deliverEvents sends p to this shard's subscribers of subs. Each
// subscription's EVENT is encoded once per serializer.
//
// A session may hold many subscriptions that match one topic (every
// prefix of a long topic, wildcard patterns): each gets its own EVENT,
// encoded anew, since the subscription id and details differ. Once one of
// them was refused (the subscriber is slow, or it does not accept that
// length), the event is dropped for the session's other subscriptions
// without being encoded again: a 15 MiB PUBLISH to one stalled session
// with 2,000 such subscriptions used to cost the loop 2,000 encodings of
// it (3.5 s of CPU; 12.6 s, and 94 MB each, when converted from CBOR to
// JSON). Likewise a payload that cannot be converted to a serializer is
// not tried again for the other subscriptions.
//
// The sessions refused are marked in their own fields (Session.refusedAt),
// not a set: a set of 4,000 slow subscribers each matched by two
// subscriptions was a map of 4,000 entries built for every publication
// and left to the collector (past 1,024 it was not kept): 436 KB and 47
// allocations per PUBLISH (measured).
func (s *Shard) deliverEvents(p *publication, subs []*subscription) {
	var d uint64          // 0: one subscription, nothing to skip
	var failed [4][]byte  // encFailed or encTooLarge by serializer
	var held *publication // the copy of p that get_retained windows hold (winAdmit)
	s.fanning, s.fanID = true, p.id
	for _, sub := range subs {
		set := sub.subscribers()
		if set == nil || len(set.byShard[s.idx]) == 0 {
			continue
		}
		if d == 0 && len(subs) > 1 {
			s.deliveries++
			d = s.deliveries
		}
		var enc [4][]byte
		for i, f := range failed {
			if f != nil {
				enc[i] = f
			}
		}
		if sub.wins.Load() == 0 && s.winPending == 0 {
			for _, c := range set.byShard[s.idx] {
				s.deliverChunk(c, sub, p, &enc, d)
			}
		} else {
			for _, c := range set.byShard[s.idx] {
				s.deliverChunkWin(c, sub, p, &enc, d, &held)
			}
		}
		for i, b := range enc {
			if b != nil && len(b) == 0 {
				failed[i] = b
			}
		}
	}
	s.fanning, s.refusedLen = false, [4]int{}
	for i, b := range s.evbuf {
		s.evbuf[i] = keepBuf(b)
	}
}

// encFailed marks, in deliverEvents' enc, a serializer the EVENT could not
// be encoded for (nil: not encoded yet); encTooLarge one it grew too long
// for when converted (proto.ErrTooLarge). Both are empty; the capacity
// tells them apart.
var (
	encFailed   = []byte{}
	encTooLarge = make([]byte, 0, 1)
)

// testHookEventEncodeFailed, set by tests only, runs after each encoding of
// an EVENT that failed.
var testHookEventEncodeFailed func()

// sendEvent sends one EVENT, encoding it for ss's serializer unless enc
// already holds that encoding for this subscription. It returns the
// error of a Send that ss refused (slow, closed, the EVENT longer than it
// accepts), counted; nil when it was sent or could not be converted.
func (s *Shard) sendEvent(ss *Session, sub *subscription, p *publication, enc *[4][]byte) error {
	ser := ss.ser
	b := enc[ser]
	if b != nil && len(b) == 0 { // encFailed, encTooLarge
		if cap(b) == cap(encTooLarge) {
			s.stats.EventsTooBig.Add(1)
		} else {
			s.stats.EventsNotConvertible.Add(1)
		}
		return nil
	}
	if b == nil {
		if ss.backlog != nil && p.c.size() >= slowCheckMin {
			// Not encoded for a subscriber whose Send would refuse it
			// (BacklogPeer: past its mark, as Send judges after offering
			// the socket what it holds): each subscription's EVENT is
			// encoded apart, so a large PUBLISH matching many stalled
			// sessions' distinct patterns was encoded, a copy of the
			// payload or a conversion each, only to be dropped.
			if q, h := ss.backlog.Backlog(); h > 0 && q > h {
				s.stats.EventsDropped.Add(1)
				return ErrPeerSlow
			}
		}
		if p.c.size() >= slowCheckMin && p.c.longerThanMax(ss) {
			s.stats.EventsTooBig.Add(1)
			s.logTooBig(ss, p, p.c.size())
			return ErrPeerTooBig
		}
		if n := s.refusedLen[ser]; n > 0 && p.id == s.fanID && acceptsLess(ss, n-6*len(p.topic)-eventVaries) {
			// Another subscription's EVENT of this serializer was refused
			// as too long by a subscriber taking less than this one's
			// EVENT will be: not converted again only to be refused (8
			// sessions, each with its own pattern matching the topic,
			// had a payload growing past them converted 8 times).
			s.stats.EventsTooBig.Add(1)
			s.logTooBig(ss, p, n)
			return ErrPeerTooBig
		}
		out := &s.out
		out.Reset()
		out.Type = proto.CodeEvent
		out.ID = sub.id
		out.ID2 = p.id
		f := &out.Opt
		if p.disclose {
			id, authid, authrole := p.publisherIdentity()
			f.SetUint(proto.KeyPublisher, id)
			f.SetString(proto.KeyPublisherAuthID, authid)
			f.SetString(proto.KeyPublisherAuthRole, authrole)
		}
		if sub.match != proto.MatchExact {
			f.SetStr(proto.KeyTopic, p.topic)
		}
		if p.retained {
			f.SetBool(proto.KeyRetained, true)
		}
		p.c.setPPT(f)
		p.c.setPayload(out)
		var err error
		s.evbuf[ser], err = s.enc.Append(s.evbuf[ser][:0], ser, out)
		if err != nil {
			// Cannot be converted for this serializer: not tried again for
			// the subscription's other subscribers of it.
			if err == proto.ErrTooLarge {
				enc[ser] = encTooLarge
				s.stats.EventsTooBig.Add(1)
				s.logTooBig(ss, p, 0)
			} else {
				enc[ser] = encFailed
				s.stats.EventsNotConvertible.Add(1)
				s.logNotConvertible(ss, p, err)
			}
			if h := testHookEventEncodeFailed; h != nil {
				h()
			}
			return nil
		}
		b = s.evbuf[ser]
		enc[ser] = b
	}
	err := ss.peer.Send(b, ClassEvent)
	if err == nil {
		s.countOut(proto.CodeEvent, len(b))
	} else if err == ErrPeerTooBig {
		s.logTooBig(ss, p, len(b))
		if s.fanning && p.id == s.fanID && len(b) >= slowCheckMin {
			s.refusedLen[ser] = max(s.refusedLen[ser], len(b))
		}
	}
	s.countRefused(err)
	return err
}

// logNotConvertible logs that p was dropped for ss, whose serializer
// cannot carry its payload (err, the transcoder's reason): it was counted
// only (not_convertible), and the publisher's acknowledged PUBLISH gets
// PUBLISHED, so nothing told which publisher's events the subscribers of
// a serializer stopped getting. Logged once per publishing session (any
// shard may find it: Session.convertLogged), and at most once per 10 s
// for publishers not on this node and retained events (Router.
// convertLogged). Cold path: a conversion that failed, once per
// publication, shard and serializer (deliverEvents' failed).
func (s *Shard) logNotConvertible(ss *Session, p *publication, err error) {
	suppressed, ok := dropLogDue(s.r, p, dropNotConvertible)
	if !ok {
		return
	}
	id, authid, authrole := p.logIdentity()
	s.r.log.Warn("event not delivered to the subscribers whose serializer cannot carry its payload; the publisher's acknowledged PUBLISH got PUBLISHED, and the other subscribers the event; "+dropLogHow(p)+", counted in edgewamp_events_dropped_total{reason=\"not_convertible\"}",
		"realm", ss.realm.name, "topic", logCut(string(p.topic)), "serializer", ss.ser.String(),
		"publisher", id, "publisher_authid", logCut(authid), "publisher_authrole", logCut(authrole),
		"retained", p.retained, "error", err, "drop_logs_suppressed", suppressed)
}

// logTooBig logs that p was dropped for ss, whose peer takes no message as
// long as its EVENT (n bytes once encoded, 0 when its conversion stopped at
// the router's bound, twice max_message): a RawSocket client's announced
// maximum, which a payload converted for its serializer may outgrow (a
// CBOR half float is up to 24 bytes of JSON). It was counted only
// (too_big), and the publisher's acknowledged PUBLISH got PUBLISHED: a
// subscriber silently missed the events that grew past it. Limited as
// logNotConvertible, with its own flags. Cold path: an EVENT refused.
func (s *Shard) logTooBig(ss *Session, p *publication, n int) {
	suppressed, ok := dropLogDue(s.r, p, dropTooBig)
	if !ok {
		return
	}
	lim := 0
	if lp, ok := ss.peer.(LimitPeer); ok {
		lim = lp.MaxMessage()
	}
	id, authid, authrole := p.logIdentity()
	s.r.log.Warn("event not delivered to a subscriber: longer than it accepts (its RawSocket maximum), its payload possibly grown by the conversion to its serializer; the publisher's acknowledged PUBLISH got PUBLISHED, and the other subscribers the event; "+dropLogHow(p)+", counted in edgewamp_events_dropped_total{reason=\"too_big\"}",
		"realm", ss.realm.name, "topic", logCut(string(p.topic)), "serializer", ss.ser.String(),
		"subscriber", ss.id, "len", n, "max", lim, "payload_len", p.c.size(),
		"publisher", id, "publisher_authid", logCut(authid), "publisher_authrole", logCut(authrole),
		"retained", p.retained, "drop_logs_suppressed", suppressed)
}

// Kinds of event drops logged per publisher (Session.dropLogged,
// Router.dropLogged).
const (
	dropNotConvertible = iota
	dropTooBig
	numDropLogs
)

// dropLogDue reports whether an event of p dropped for kind may be logged
// now: once per publishing session (any shard may find it), and at most
// once per 10 s for publishers not on this node and retained events.
//
// The once-per-session lines are also bounded router-wide, at most
// dropLogsPer10s a 10 s window, the rest counted and the count given on
// the next line written (suppressed): a client looping connect, publish,
// leave wrote ~700 B of log a session without end.
func dropLogDue(r *Router, p *publication, kind int) (suppressed uint64, ok bool) {
	if pub := p.publisher; pub != nil {
		f := &pub.dropLogged[kind]
		if f.Load() || !f.CompareAndSwap(false, true) {
			return 0, false
		}
		return r.dropLogs.takeIn(r.now(), int64(10*time.Second), dropLogsPer10s)
	}
	now := r.now()
	at := &r.dropLogged[kind]
	last := at.Load()
	return 0, (last == 0 || now-last >= int64(10*time.Second)) && at.CompareAndSwap(last, now)
}

// dropLogsPer10s bounds the once-per-session drop lines router-wide.
const dropLogsPer10s = 10

// dropLogHow says how often dropLogDue logs for p.
func dropLogHow(p *publication) string {
	if p.publisher == nil {
		return "logged at most once per 10 s for publishers on other nodes and retained events"
	}
	return "logged once per publishing session"
}

// logIdentity is the publisher's identity for a log line: another node's
// publisher's travels only when disclosed.
func (p *publication) logIdentity() (id uint64, authid, authrole string) {
	if p.publisher != nil || p.remote != nil {
		return p.publisherIdentity()
	}
	return p.src, "", ""
}

// longerThanMax reports whether an EVENT carrying c is certainly longer
// than ss's peer accepts (LimitPeer): its payload alone is, and goes into
// the EVENT as it is (in ss's serializer, not to be normalized). A
// payload to convert may shrink (JSON's whitespace, base64 binaries): it
// is encoded, and Send judges it.
func (c *carry) longerThanMax(ss *Session) bool {
	lp, ok := ss.peer.(LimitPeer)
	if !ok {
		return false
	}
	max := lp.MaxMessage()
	if max <= 0 || c.size() <= max {
		return false
	}
	for _, r := range [2]proto.Raw{c.args, c.kwargs} {
		if r.Present() && (r.Ser != ss.ser || r.Normalize) {
			return false
		}
	}
	return true
}

// eventVaries bounds, beside the topic (counted 6 bytes a byte: JSON's
// escapes), by how much two EVENTs of one publication in one serializer
// differ in length: the subscription id (at most 9 bytes in MsgPack and
// CBOR, 16 digits in JSON) and the topic option's key and heads, present
// for pattern subscriptions only.
const eventVaries = 48

// acceptsLess reports whether ss's peer takes no message of n bytes
// (LimitPeer).
func acceptsLess(ss *Session, n int) bool {
	lp, ok := ss.peer.(LimitPeer)
	if !ok {
		return false
	}
	max := lp.MaxMessage()
	return max > 0 && max < n
}

// slowCheckMin is the payload from which sendEvent asks a subscriber's
// backlog before it encodes an EVENT for it: a smaller one costs less to
// encode than the question (and Send refuses it as cheaply).
const slowCheckMin = 64 << 10

// countRefused counts an EVENT a subscriber's Send refused with err.
func (s *Shard) countRefused(err error) {
	switch err {
	case ErrPeerSlow:
		s.stats.EventsDropped.Add(1)
	case ErrPeerTooBig:
		s.stats.EventsTooBig.Add(1)
	}
}

// maxWildcardComponents bounds the components of a wildcard pattern. The
// table indexes a wildcard pattern in a trie with a node and a map of its
// children per component, about 270 bytes each: a pattern of proto.MaxURILen
// made of one-letter components cost ~540 KiB, so that one session's
// wildcard_subscriptions (1,024 patterns, 4 MiB of SUBSCRIBEs) took the
// router to 630 MB and the realm's bound of 4,096 to 2.5 GB. At 64
// components a pattern costs at most ~17 KiB, the realm's 4,096 of each
// kind ~140 MB. Exact and prefix URIs are kept whole, not by component.
const maxWildcardComponents = 64

// maxWildcardWalk bounds the nodes of the wildcard index one PUBLISH or
// CALL to a URI no loop has looked up walks (wnode.walk, a bound that
// holds for any URI): wildcard patterns that overlap one another (each
// component either a literal or a wildcard over the same components)
// make one walk follow every way they share. 4,096 patterns (the realm's
// bound) whose 12 first components were each "a" or empty made a URI
// a.a.…a.c walk 8,190 nodes and find nothing (0.95–1.9 ms a PUBLISH or
// CALL on the loaded 2-CPU test VM, medians), 4,096 of 64 components
// (12 such, then "a"s) ~217,000 (39–44 ms). A SUBSCRIBE or REGISTER
// whose pattern would take it past it is refused (wildcardWalkRefused,
// table.wildWalkPast: not one that adds nothing to a walk other nodes'
// registrations took past it already), and so is one that would take
// its owner's own patterns' walk past a quarter of it (walkShares: one
// session could shut every other client out of a component count): of
// those shapes, from 16 addresses, 982 and 72 patterns are taken and a
// walk costs 0.07–0.32 ms there (BenchmarkWildcardWorstCase; a bound of
// 1,024 nodes, ~20 µs, would refuse a
// topic's 2,000 matching patterns, which TestSubscriptionMatchWalkBudgeted
// holds). Patterns that do not overlap add nothing to it: a literal
// component's children are looked up by it, one only, so a walk visits
// at most the costliest of them.
const maxWildcardWalk = 4096

var tooDeepMsg = "wildcard patterns may have at most " + strconv.Itoa(maxWildcardComponents) + " components"

// tooDeep reports whether uri, of match policy m, is a wildcard pattern
// of more than maxWildcardComponents components.
func tooDeep(uri []byte, m proto.Match) bool {
	return m == proto.MatchWildcard && bytes.Count(uri, []byte{'.'}) >= maxWildcardComponents
}

// wildcardRefused answers a REGISTER or SUBSCRIBE (code) past a bound of
// wildcard patterns: the session's own, or the realm's (realm). The first
// refusal of each kind is logged for the session, not the others: a
// client that retries (or a script that loops) must not flood the log.
func (s *Shard) wildcardRefused(ss *Session, code proto.Code, req uint64, realm bool, max int) {
	kind, bit := "subscriptions", uint8(1)
	if code == proto.CodeRegister {
		kind, bit = "registrations", 2
	}
	scope := "for this session"
	if realm {
		scope = "in realm " + strconv.Quote(ss.realm.name)
	}
	if ss.wildLogged&bit == 0 {
		ss.wildLogged |= bit
		s.r.log.Warn("refusing wildcard "+kind+": too many "+scope+" (logged once per session)", "session", ss.id,
			"authid", ss.authID, "authrole", ss.authRole, "remote", ss.transport.RemoteAddr, "limit", max)
	}
	s.replyError(ss, code, req, proto.URIUnavailable, "too many wildcard "+kind+" "+scope+" (limit "+strconv.Itoa(max)+")")
}

// wildcardShareRefused answers a REGISTER or SUBSCRIBE (code) of a new
// wildcard pattern whose owner (Session.walkOwner) made its quarter of
// the realm's bound max (wildCounts); the first refusal is logged for
// the session.
func (s *Shard) wildcardShareRefused(ss *Session, code proto.Code, req uint64, owner string, max int) {
	kind := "subscriptions"
	if code == proto.CodeRegister {
		kind = "registrations"
	}
	share := strconv.Itoa(wildShare(max))
	if ss.wildLogged&64 == 0 {
		ss.wildLogged |= 64
		s.r.log.Warn("refusing wildcard "+kind+": too many of this client's in realm "+strconv.Quote(ss.realm.name)+" (a quarter of the realm's; logged once per session)",
			"session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "remote", ss.transport.RemoteAddr, "owner", logCut(owner), "limit", share)
	}
	s.replyError(ss, code, req, proto.URIUnavailable, "too many of this client's (address or authid) wildcard "+kind+" in realm "+strconv.Quote(ss.realm.name)+
		" (limit "+share+", a quarter of the realm's "+strconv.Itoa(max)+")")
}

// wildcardWalkRefused answers a REGISTER or SUBSCRIBE (code) of the
// wildcard pattern uri that would let one CALL or PUBLISH walk more than
// maxWildcardWalk nodes of the realm's index; the first refusal is
// logged for the session.
func (s *Shard) wildcardWalkRefused(ss *Session, code proto.Code, req uint64, uri, owner string, own bool) {
	kind := "subscriptions"
	if code == proto.CodeRegister {
		kind = "registrations"
	}
	whose, bound := "other", maxWildcardWalk
	if own {
		// Its owner's share (walkShares): a quarter.
		whose, bound = "of this client's (address or authid) other", maxWildcardWalk/4
	}
	if ss.wildLogged&32 == 0 {
		ss.wildLogged |= 32
		s.r.log.Warn("refusing wildcard "+kind+" that overlap too many "+whose+" ones: a URI matching them would be checked against more than "+strconv.Itoa(bound)+" of their components (logged once per session)",
			"session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "remote", ss.transport.RemoteAddr, "owner", logCut(owner), "pattern", logCut(uri))
	}
	s.replyError(ss, code, req, proto.URIUnavailable, "wildcard pattern overlaps too many "+whose+" wildcard "+kind+" in realm "+strconv.Quote(ss.realm.name)+
		": a URI would be checked against more than "+strconv.Itoa(bound)+" of their components")
}

// DefaultSubscriptionBytes is Config.MaxSubscriptionBytes's default.
const DefaultSubscriptionBytes = 1 << 30

// subOverhead is what a session's hold of a subscription is counted for
// besides its URI: the subscription, the index entries and the session's
// table entry. Measured (TestSubscriptionCountsWhatItHolds) at 280-380
// bytes of heap per new subscription of one session besides its URI, the
// maps' growth making the spread (exact, prefix and wildcard alike; 4,460
// bytes each with 4 KiB URIs), and 60-100 for joining one; it was 256.
const subOverhead = 384

// subCost is what a session's SUBSCRIBE that makes the subscription to
// uri, of match policy m, counts in Config.MaxSubscriptionBytes: its hold
// (subHoldCost) and a wildcard pattern's trie nodes (wildcardIndexCost),
// which stay counted to its owner (subscription.maker) while that owner
// holds the pattern, then to another holder's (moveMaker).
func subCost(m proto.Match, uri string) int64 {
	return subHoldCost(uri) + wildcardIndexCost(m, uri)
}

// subHoldCost is what a session's hold of a subscription to uri counts in
// Config.MaxSubscriptionBytes, its own or one it joined; given back when
// it leaves the subscription.
func subHoldCost(uri string) int64 { return int64(len(uri)) + subOverhead }

// subscriptionOwner returns whose share of Config.MaxSubscriptionBytes
// (and Config.MaxRegistrationBytes) ss's subscriptions (registrations)
// count in, fixed at its first SUBSCRIBE or REGISTER: as the
// retained share's publisher (retainOwner); none for an InProcessPeer's
// session (the HTTP gateway's, shared by its clients, bounded by the
// gateway's own limits), which only the total bounds. Owned by shard.
func (ss *Session) subscriptionOwner() string {
	if !ss.subOwnerSet {
		ss.subOwnerSet = true
		if _, inProcess := ss.peer.(InProcessPeer); !inProcess {
			ss.subOwner = ss.retainOwner()
		}
	}
	return ss.subOwner
}

// subscriptionBytesRefused answers a SUBSCRIBE past
// Config.MaxSubscriptionBytes, counted; the first refusal of a session is
// logged (a client that retries must not flood the log).
func (s *Shard) subscriptionBytesRefused(ss *Session, req uint64) {
	s.stats.SubscriptionsRefused.Add(1)
	if ss.wildLogged&4 == 0 {
		ss.wildLogged |= 4
		s.r.log.Warn("refusing subscriptions: the router holds as many subscriptions' bytes as it takes, or this client as many as it may (a quarter of them, and less than the router has left free; limits.subscription_bytes; logged once per session)",
			"session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "remote", ss.transport.RemoteAddr, "owner", logCut(ss.subOwner), "limit", s.r.cfg.MaxSubscriptionBytes)
	}
	s.replyError(ss, proto.CodeSubscribe, req, proto.URIUnavailable, "the router holds as many subscriptions as it takes (limits.subscription_bytes), or this client address or authid as many as it may: a quarter of it, and less than the router has left free")
}

// leaveBroker removes a leaving session from its subscriptions.
func (s *Shard) leaveBroker(ss *Session) {
	for _, ref := range ss.subs {
		s.detachSubscriber(ss, ref.sub)
		s.metaFlush(ss.realm)
	}
}
