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
	mdir          *meshDir // mesh only: the other nodes' registrations (mesh_dir.go)

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
// topic: the map entry, the publication and its carry.
const retainedOverhead = 256

// retain stores the retained event of a topic. Call with mu held for
// writing. It reports false when a cap refused it; the topic then has no
// retained event (an older one would be stale).
func (rm *Realm) retain(topic string, p *publication) bool {
	old := rm.retained[topic]
	// The payload may be in p.c.buf (an owned copy) or elsewhere (a
	// testament's, encoded apart): count whichever is larger.
	size := int64(len(topic) + max(cap(p.c.buf), p.c.payloadLen()) + retainedOverhead)
	total := rm.retainedBytes + size
	if old != nil {
		total -= old.size
	}
	if (old == nil && len(rm.retained) >= maxRetained) || total > rm.r.cfg.MaxRetainedBytes {
		if old != nil {
			delete(rm.retained, topic)
			rm.retainedBytes -= old.size
		}
		return false
	}
	rm.retained[topic] = &retainedEvent{pub: p, size: size}
	rm.retainedBytes = total
	return true
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
	size int64 // counted in Realm.retainedBytes
}
