package route

import (
	"sync"
	"sync/atomic"
)

// Realm is one isolated routing domain: its sessions, registrations,
// subscriptions and retained events.
type Realm struct {
	r    *Router
	name string
	cfg  atomic.Pointer[RealmConfig] // swapped by Router.Reload

	mu       sync.RWMutex // guards everything below except gen and l1
	regs     *table[*registration]
	regByID  map[uint64]*registration
	subs     *table[*subscription]
	subByID  map[uint64]*subscription
	members  map[uint64]*Session // established sessions
	retained map[string]*retainedEvent
	// retainedBytes is the size of the retained events (see retain).
	retainedBytes int64
	// retainedCreds counts the retained events published with each
	// withdrawable credential id, so that revoking a credential that
	// published none (nearly every revocation) costs no scan of them.
	retainedCreds map[string]int
	mdir          *meshDir // mesh only: the other nodes' registrations (mesh_dir.go)
	// wildRegs counts the wildcard registrations this node has callees
	// of, wildSubs the wildcard subscriptions: the patterns its sessions
	// put in the tables (Config.MaxRealmWildcard*).
	wildRegs, wildSubs int

	gen atomic.Uint64 // bumped on every change to regs or subs
	l1  []l1cache     // per shard; l1[i] is owned by shard i
}

// l1cache is a shard's lookup cache for one realm. Reads on the call and
// publish paths hit it without taking Realm.mu; it is dropped when the
// realm's generation changes.
type l1cache struct {
	gen  uint64
	regs map[string]*registration   // nil value = no registration (negative cache)
	subs map[string][]*subscription // nil/empty = no subscription
}

// l1Max bounds each cache; a full cache is cleared (the working set of URIs
// on an edge router is small; clearing is cheaper than LRU bookkeeping).
const l1Max = 1024

func newRealm(r *Router, cfg RealmConfig) *Realm {
	rm := &Realm{
		r:        r,
		name:     cfg.Name,
		regs:     newTable[*registration](),
		regByID:  map[uint64]*registration{},
		subs:     newTable[*subscription](),
		subByID:  map[uint64]*subscription{},
		members:  map[uint64]*Session{},
		retained: map[string]*retainedEvent{},
		l1:       make([]l1cache, r.cfg.Shards),
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

// cache returns shard i's cache, reset if stale.
func (rm *Realm) cache(i int) *l1cache {
	c := &rm.l1[i]
	if g := rm.gen.Load(); c.gen != g || c.regs == nil {
		c.gen = g
		c.regs = map[string]*registration{}
		c.subs = map[string][]*subscription{}
	}
	return c
}

// lookupReg returns the registration a call to uri is routed to, or nil.
// Called on shard i's goroutine; lock-free when cached.
func (rm *Realm) lookupReg(i int, uri []byte) *registration {
	c := rm.cache(i)
	if reg, ok := c.regs[string(uri)]; ok {
		return reg
	}
	rm.mu.RLock()
	reg, _ := rm.regs.best(uri)
	rm.mu.RUnlock()
	if len(c.regs) >= l1Max {
		clear(c.regs)
	}
	c.regs[string(uri)] = reg
	return reg
}

// lookupSubs returns the subscriptions matching topic. The slice is shared
// and must not be modified.
func (rm *Realm) lookupSubs(i int, topic []byte) []*subscription {
	c := rm.cache(i)
	if subs, ok := c.subs[string(topic)]; ok {
		return subs
	}
	rm.mu.RLock()
	subs := rm.subs.matchAll(topic, nil)
	rm.mu.RUnlock()
	if len(c.subs) >= l1Max {
		clear(c.subs)
	}
	c.subs[string(topic)] = subs
	return subs
}

// changed marks the tables modified. Call with mu held for writing.
func (rm *Realm) changed() { rm.gen.Add(1) }

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

// retainedOverhead is what a retained event costs besides its payload and
// topic: the map entry, the publication and its carry (its publisher's
// identity is shared by the events of a session).
const retainedOverhead = 256

// retain stores the retained event of a topic, published on this node by
// by (nil: on another node). Call with mu held for writing. It reports
// false when a cap refused it; the topic then has no retained event (an
// older one would be stale).
func (rm *Realm) retain(topic string, p *publication, by *retainer) bool {
	old := rm.retained[topic]
	// The payload may be in p.c.buf (an owned copy) or elsewhere (a
	// testament's, encoded apart): count whichever is larger. The
	// black/white lists are kept with the event (they apply to later
	// subscribers too) and count as well: a PUBLISH of max_message with an
	// empty payload and a million distinct exclude_authid entries holds
	// 56 MiB of them.
	size := int64(len(topic) + max(cap(p.c.buf), p.c.payloadLen()) + retainedOverhead)
	if p.filter != nil {
		size += p.filter.size()
	}
	total := rm.retainedBytes + size
	if old != nil {
		total -= old.size
	}
	if (old == nil && len(rm.retained) >= maxRetained) || total > rm.r.cfg.MaxRetainedBytes {
		if old != nil {
			rm.unretain(topic, old)
		}
		return false
	}
	if old != nil {
		rm.countCreds(old.by, -1)
	}
	rm.countCreds(by, 1)
	rm.retained[topic] = &retainedEvent{pub: p, size: size, by: by}
	rm.retainedBytes = total
	return true
}

// unretain drops re, topic's retained event. Call with mu held for
// writing.
func (rm *Realm) unretain(topic string, re *retainedEvent) {
	delete(rm.retained, topic)
	rm.retainedBytes -= re.size
	rm.countCreds(re.by, -1)
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

// payloadLen is the bytes of the carried payload and pass-through keys.
func (c *carry) payloadLen() int {
	n := len(c.args.B) + len(c.kwargs.B)
	for _, v := range c.ppt {
		n += len(v)
	}
	return n
}

// retainedEvent is the last event published with retain=true on a topic.
type retainedEvent struct {
	pub  *publication
	size int64     // counted in Realm.retainedBytes
	by   *retainer // nil: published on another node of the mesh
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
	cred                                       *Credential
}

// asRetainer returns the identity ss retains events as. Owned by shard.
func (ss *Session) asRetainer() *retainer {
	if ss.retainer == nil {
		ss.retainer = &retainer{session: ss.id, authID: ss.authID, authRole: ss.authRole, authMethod: ss.authMethod,
			authProvider: ss.authProvider, staticCred: ss.staticCred, cred: ss.cred}
	}
	return ss.retainer
}

// dropRetained drops the retained events for which drop returns a reason.
// drop is called without the realm's lock (it may take its time over
// 65,536 topics while calls and publications go on); an event replaced
// meanwhile stays. It returns the number dropped, the first one's topic and
// reason, and their publication ids (for the other nodes of a mesh).
func (rm *Realm) dropRetained(drop func(topic string, re *retainedEvent) string) (n int, topic, why string, ids []uint64) {
	rm.mu.RLock()
	all := make(map[string]*retainedEvent, len(rm.retained))
	for t, re := range rm.retained {
		all[t] = re
	}
	rm.mu.RUnlock()
	type dropped struct {
		re  *retainedEvent
		why string
	}
	var gone map[string]dropped
	for t, re := range all {
		if w := drop(t, re); w != "" {
			if gone == nil {
				gone = map[string]dropped{}
			}
			gone[t] = dropped{re, w}
		}
	}
	if len(gone) == 0 {
		return 0, "", "", nil
	}
	rm.mu.Lock()
	for t, d := range gone {
		if rm.retained[t] == d.re {
			rm.unretain(t, d.re)
			if n == 0 {
				topic, why = t, d.why
			}
			n++
			ids = append(ids, d.re.pub.id)
		}
	}
	rm.mu.Unlock()
	return n, topic, why, ids
}
