package route

import (
	"sync"

	"github.com/edgewamp/edgewamp/proto"
)

// testament is an event a session asked the router to publish when it
// goes away (WAMP §Testament).
type testament struct {
	topic  string
	args   proto.Raw
	kwargs proto.Raw
	retain bool
	// discloseMe is the publish_options' disclose_me; the role's disclose
	// publisher grant is read when the testament is published, as its
	// publish grant is.
	discloseMe bool
	// lists is the testament's publish_options as a PUBLISH (publishOf),
	// kept when they hold black/white lists, which are read into their
	// sets (filterOf) only when the testament is published, or payload
	// passthru keys (pptKeys), which its EVENT carries as a PUBLISH's
	// does (testamentPPT). Kept as sets,
	// they took 14 times the bytes received, counted nowhere: one session's
	// 128 testaments with 15,900 3-byte authids each (64 KiB of arguments
	// apiece) held 112 MiB for the session's life.
	lists []byte
	// pub is the id add_testament answered, the publication id of the
	// testament's EVENT.
	pub uint64
}

const (
	scopeDetached  = 0
	scopeDestroyed = 1
)

// maxTestaments bounds the testaments one session may hold per scope.
const maxTestaments = 64

// DefaultTestamentBytes is Config.MaxTestamentBytes's default.
const DefaultTestamentBytes = 64 << 20

// testamentOverhead is what a testament is counted for besides its
// topic, payload and lists: its struct (120 bytes) in the session's
// list, whose array grows by doubling, and each piece's allocation. The
// smallest testaments (a 3-byte topic, an empty list) hold 153 bytes of
// heap each, measured (TestTestamentCountedForItsHeap); at 96, less than
// the struct, they held about half again what they were counted for.
const testamentOverhead = 160

// size is what t counts in Config.MaxTestamentBytes.
func (t *testament) size() int64 {
	return int64(len(t.topic)+len(t.args.B)+len(t.kwargs.B)+len(t.lists)) + testamentOverhead
}

// testamentBudget counts the bytes of every session's testaments on the
// router, and each owner's: sessions of every shard add and drop them.
// The subscriptions' bytes (Router.subBytes) are counted the same way.
type testamentBudget struct {
	mu    sync.Mutex
	total int64
	by    map[string]int64 // owner → bytes; an owner goes with its last byte
	// peak: the most entries by held since it was last checked
	// (shrinkDue).
	peak int
}

// charge counts n more bytes of owner's ("" for none but the total),
// unless that passes max, the owner's quarter of it, or what would then be
// left free: owners that take all they may hold at most k/(k+1) of max
// between k of them, and a newcomer gets part of the rest (before, four
// owners at their quarters held all of it; callBudgetRoom for calls).
func (b *testamentBudget) charge(owner string, n, max int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	after := b.total + n
	if after > max || (owner != "" && (b.by[owner]+n > max/4 || b.by[owner]+n > max-after)) {
		return false
	}
	b.total += n
	if owner != "" {
		if b.by == nil {
			b.by = map[string]int64{}
		}
		b.by[owner] += n
	}
	return true
}

// release undoes charge.
func (b *testamentBudget) release(owner string, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.total -= n
	b.dropOwned(owner, n)
	b.mu.Unlock()
}

// restore counts again n bytes of owner's that release gave back while
// they were still held (a force_reregister's take-over refused: putBack),
// whatever the bound: before its release they were counted.
func (b *testamentBudget) restore(owner string, n int64) {
	b.mu.Lock()
	b.total += n
	if owner != "" {
		if b.by == nil {
			b.by = map[string]int64{}
		}
		b.by[owner] += n
	}
	b.mu.Unlock()
}

// move counts n bytes charged to from to owner to instead, when to's
// share can take them as charge would (a quarter of max, and no more than
// max leaves free): they are held already (a wildcard pattern's index
// whose maker left it, to's sessions holding it still). Otherwise it
// moves nothing and reports false: before, they were moved whatever to's
// share held, so that owners who made patterns up to their quarter and
// left them to a colluding joiner could make as many again (three
// addresses held 967,673 of 1 MiB, the joiner 2.8 quarters, where k
// owners hold at most k/(k+1) of it). The total does not change.
func (b *testamentBudget) move(from, to string, n, max int64) bool {
	if n == 0 || from == to {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if to != "" && (b.by[to]+n > max/4 || b.by[to]+n > max-b.total) {
		return false
	}
	b.dropOwned(from, n)
	if to != "" {
		if b.by == nil {
			b.by = map[string]int64{}
		}
		b.by[to] += n
	}
	return true
}

// dropOwned takes n bytes off owner's count. Under b.mu.
func (b *testamentBudget) dropOwned(owner string, n int64) {
	if owner == "" {
		return
	}
	if b.by[owner] -= n; b.by[owner] <= 0 {
		k := len(b.by)
		delete(b.by, owner)
		if shrinkDue(&b.peak, k, len(b.by)) {
			shrinkMap(&b.by, &b.peak)
		}
	}
}

// dropTestaments lets ss's testaments of scope go (all for scope -1),
// their bytes out of the router's count. Owned by shard.
func (s *Shard) dropTestaments(ss *Session, scope int) {
	if ss.testaments == nil {
		return
	}
	var n int64
	for sc := range ss.testaments {
		if scope >= 0 && sc != scope {
			continue
		}
		for i := range ss.testaments[sc] {
			n += ss.testaments[sc][i].size()
		}
		ss.testaments[sc] = nil
	}
	if scope < 0 {
		ss.testaments = nil
	}
	s.r.testaments.release(ss.testamentOwner, n)
}

// testamentScope reads the scope argument of the testament procedures,
// args[i] or kwargs["scope"] (metaOptArg).
func testamentScope(args []any, i int, kwargs map[string]any) (int, *metaErr) {
	v, err := metaOptArg(args, i, kwargs, "scope")
	if err != nil {
		return 0, err
	}
	switch v {
	case nil, "destroyed":
		return scopeDestroyed, nil
	case "detached":
		return scopeDetached, nil
	}
	return 0, badArg("scope must be \"detached\" or \"destroyed\"")
}

// metaAddTestament implements wamp.session.add_testament(topic, args,
// kwargs, publish_options?, scope?). It answers an id, as Crossbar.io does
// (an int, "pub_id"), the publication id the testament's EVENT will have;
// it answered nothing, and a client that kept or logged the id got None.
func metaAddTestament(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
	topic, ok := argStr(args, 0)
	if !ok || !proto.ValidURI([]byte(topic), ss.realm.conf().URICheck) || reserved([]byte(topic)) {
		return nil, &metaErr{proto.URIInvalidURI, "wamp.session.add_testament needs a valid topic URI as its first argument"}
	}
	if !ss.authorize(ActionPublish, []byte(topic)) {
		return nil, &metaErr{proto.URINotAuthorized, "not authorized to publish to " + topic}
	}
	scope, err := testamentScope(args, 4, kwargs)
	if err != nil {
		return nil, err
	}
	po, err := metaOptArg(args, 3, kwargs, "publish_options")
	if err != nil {
		return nil, err
	}
	t := testament{topic: topic}
	if len(args) > 1 && args[1] != nil {
		if _, ok := args[1].([]any); !ok {
			return nil, badArg("testament args must be a list")
		}
		raw, e := s.testamentValue(args, 1)
		if e != nil {
			return nil, badArg(e.Error())
		}
		t.args = raw
	}
	if len(args) > 2 && args[2] != nil {
		if _, ok := args[2].(map[string]any); !ok {
			return nil, badArg("testament kwargs must be a dictionary")
		}
		raw, e := s.testamentValue(args, 2)
		if e != nil {
			return nil, badArg(e.Error())
		}
		t.kwargs = raw
	}
	if po != nil {
		po, ok := po.(map[string]any)
		if !ok {
			return nil, badArg("publish_options must be a dictionary")
		}
		// Read as PUBLISH options would be, and refused as they would be:
		// dropping options that do not decode would drop the black/white
		// lists with them and publish to every subscriber.
		raw, e := proto.EncodeValue(metaSer, po)
		if e != nil {
			return nil, badArg("publish_options: " + e.Error())
		}
		b := publishOf(raw)
		m, e := proto.Decode(metaSer, b)
		if e != nil {
			return nil, badArg("publish_options: " + e.Error())
		}
		t.retain = m.Opt.Bool(proto.KeyRetain, false)
		t.discloseMe = m.Opt.Bool(proto.KeyDiscloseMe, false)
		// Payload Passthru Mode: checked against the session's
		// announcement as a PUBLISH's (which would be ABORTed), and
		// passed on to the EVENT. The keys were dropped: an end-to-end
		// encrypted testament's EVENT reached its subscribers without the
		// scheme, cipher and key id they read it with.
		if pptMode(&m.Opt) && ss.feat&fPublisherPPT == 0 {
			return nil, badArg("publish_options in payload passthru mode (ppt_scheme) need a publisher that announced payload_passthru_mode")
		}
		if hasLists(&m.Opt) || hasPPT(&m.Opt) {
			t.lists = b
		}
	}
	if ss.testaments == nil {
		ss.testaments = &[2][]testament{}
		ss.testamentOwner = ss.retainOwner()
	}
	if len(ss.testaments[scope]) >= maxTestaments {
		return nil, badArg("too many testaments for this session")
	}
	if !s.r.testaments.charge(ss.testamentOwner, t.size(), s.r.cfg.MaxTestamentBytes) {
		s.stats.TestamentsRefused.Add(1)
		return nil, &metaErr{proto.URIUnavailable, "the router holds as many testaments' bytes as it takes (limits.testament_bytes), or this client address or authid as many as it may: a quarter of it, and less than the router has left free"}
	}
	t.pub = s.rng.Uint64N(proto.MaxID) + 1
	ss.testaments[scope] = append(ss.testaments[scope], t)
	return []any{t.pub}, nil
}

// testamentValue returns a testament's Arguments (i = 1) or ArgumentsKw
// (i = 2), args[i] of the call, as the caller encoded it (a copy): JSON
// and CBOR carry integers beyond MsgPack's range, which encoding the
// decoded value in metaSer turned into float64s (and dropped CBOR's tags
// and undefined), where a PUBLISH of the same payload reaches subscribers
// exact. Encoded in metaSer only when the call's raw Arguments are not at
// hand.
func (s *Shard) testamentValue(args []any, i int) (proto.Raw, error) {
	if r, ok := proto.ListElement(s.metaArgs, i); ok {
		return r.Clone(), nil
	}
	return proto.EncodeValue(metaSer, args[i])
}

// publishOf wraps an options dict into a PUBLISH message so the normal
// option decoder validates it (a testament keeps it: no spare capacity).
func publishOf(opts proto.Raw) []byte {
	b := make([]byte, 0, 3+len(opts.B)+2)
	b = append(b, 0x94, byte(proto.CodePublish), 0x01)
	b = append(b, opts.B...)
	return append(b, 0xa1, 'x')
}

// metaFlushTestaments implements wamp.session.flush_testaments(scope?):
// it drops the session's testaments of scope and answers how many, as
// Crossbar.io does ("returns: Number of flushed testament events"); it
// answered nothing.
func metaFlushTestaments(s *Shard, ss *Session, args []any, kwargs map[string]any) ([]any, *metaErr) {
	scope, err := testamentScope(args, 0, kwargs)
	if err != nil {
		return nil, err
	}
	n := 0
	if ss.testaments != nil {
		n = len(ss.testaments[scope])
	}
	s.dropTestaments(ss, scope)
	return []any{n}, nil
}

// publishTestaments publishes a leaving session's testaments: detached
// scope first, then destroyed (WAMP §Testament: a router without session
// resumption sends both, in that order).
func (s *Shard) publishTestaments(ss *Session) {
	if ss.testaments == nil {
		return
	}
	rm := ss.realm
	for _, scope := range [2]int{scopeDetached, scopeDestroyed} {
		for _, t := range ss.testaments[scope] {
			// Authorized when added, and again now: a reload may have
			// taken the grant away since.
			if !ss.authorize(ActionPublish, []byte(t.topic)) {
				continue
			}
			p := &publication{id: t.pub, topic: []byte(t.topic),
				c: &carry{args: t.args, kwargs: t.kwargs}, src: ss.id, seq: ss.publisherSeq()}
			if !testamentPPT(p, &t) {
				continue
			}
			// The lists are read into sets only when they can matter, as a
			// PUBLISH's are: retained, or (below) delivered or sent on.
			if t.retain && !s.testamentFilter(p, &t) {
				continue
			}
			// Disclosed as the session's PUBLISH would be. The identity is
			// kept with the event (as a retained event's is), not read
			// from the leaving Session when the event is delivered on
			// another shard, retained, or sent to other nodes.
			if t.discloseMe || ss.grants(ActionDisclosePublisher, p.topic) {
				p.disclose = true
				p.remote = &remotePublisher{id: ss.id, authID: ss.authID, authRole: ss.authRole}
			}
			retain, stale := t.retain, []uint64(nil)
			if retain {
				// A copy holding its topic with its payload, as a
				// PUBLISH's (ownRetained): retain counts both.
				kept := p.ownRetained()
				kept.retained = true
				rm.mu.Lock()
				p.at = rm.retainStamp(t.topic, s.r.wallNow())
				kept.at = p.at
				why, old := rm.retain(t.topic, kept, ss.asRetainer(), ss.retainOwner())
				rm.mu.Unlock()
				if why != retainKept {
					s.retainRefused(ss, rm, why, t.topic)
					retain, stale = false, old
				}
			}
			subs, fresh := rm.lookupSubsFresh(s.idx, p.topic)
			if p.filter == nil && (len(subs) > 0 || s.r.mesh != nil) && !s.testamentFilter(p, &t) {
				continue
			}
			if len(subs) > 0 {
				s.fanout(p, subs, fresh)
			}
			if s.r.mesh != nil {
				s.meshPublish(rm, p, retain) // as a PUBLISH: retained elsewhere only if here
				if len(stale) > 0 {
					s.meshDropRetained(rm, stale)
				}
			}
		}
	}
	s.dropTestaments(ss, -1)
}

// hasPPT reports whether f holds a payload passthru key (pptKeys).
func hasPPT(f *proto.Fields) bool {
	for _, k := range pptKeys {
		if f.Has(k) {
			return true
		}
	}
	return false
}

// testamentPPT sets p's payload passthru keys from t's publish_options,
// if they have any: copied into p's carry, not sharing t.lists, which a
// retained testament would then keep whole, its lists' bytes uncounted.
// It reports false when they cannot be read (they were when t was added:
// t is then not published, as testamentFilter).
func testamentPPT(p *publication, t *testament) bool {
	if t.lists == nil {
		return true
	}
	m, err := proto.Decode(metaSer, t.lists)
	if err != nil {
		return false
	}
	n := 0
	for _, k := range pptKeys {
		n += len(m.Opt.Str(k))
	}
	buf := make([]byte, 0, n) // one array: appends below never move it
	for i, k := range pptKeys {
		if v := m.Opt.Str(k); v != nil {
			start := len(buf)
			buf = append(buf, v...)
			p.c.ppt[i] = buf[start:len(buf):len(buf)]
		}
	}
	p.c.buf = buf
	return true
}

// testamentFilter sets p's filter from t's black/white lists, if it has
// any. It reports false when they cannot be read (they were when t was
// added: t is then not published, rather than published without them).
func (s *Shard) testamentFilter(p *publication, t *testament) bool {
	if t.lists == nil {
		return true
	}
	m, err := proto.Decode(metaSer, t.lists)
	if err != nil {
		return false
	}
	p.filter = filterOf(&m.Opt)
	return true
}
