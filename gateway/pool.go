package gateway

import (
	"hash/maphash"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// Sessions per identity.
//
// Every HTTP request acts as the principal it authenticated as (realm,
// authid, authrole), so the router's RBAC, caller disclosure and meta API
// see that principal. Opening a WAMP session per request would cost a
// session id, a realm-table write, on_join and on_leave meta events and a
// WELCOME per request; instead the gateway keeps a small pool of sessions
// per principal (at most Limits.SessionsPerIdentity, spread over the
// shards) and multiplexes requests over them (WAMP request ids keep them
// apart). A principal's sessions close after Limits.SessionIdle without a
// request.
//
// What a client with many identities (tokens, API keys) can make the
// gateway hold is bounded: Limits.MaxSessions sessions in all (past it the
// least recently used idle principal's sessions are closed; when every
// principal is busy the request gets 503), Limits.MaxInFlight requests in
// all (503) and Limits.MaxInFlightPerIdentity per principal (429). SSE
// event streams are not requests in flight: they last as long as their
// clients want, and have bounds of their own (Limits.MaxStreams,
// Limits.MaxStreamsPerClient); counted among the requests, a few clients'
// streams held every slot of the principal all anonymous clients share,
// or of the whole gateway. A principal with streams open is busy all the
// same: its sessions are neither evicted nor swept.
//
// Every client without credentials acts as the realm's anonymous principal
// (or a route's fixed one, auth type "none"): one address could take all
// of that principal's MaxInFlightPerIdentity slots (calls to a callee that
// never answers hold theirs for up to MaxCallTimeout), and every other
// anonymous client got 429. Those requests are also counted per client
// address (an IPv4 address, or an IPv6 /64, as the other per-address
// limits): past Limits.MaxInFlightPerAddress the address's requests get
// 429 (edgewamp_gateway_refused_total{reason="address_in_flight"}). The
// table holds the addresses with such requests in flight only (an entry
// goes when its count returns to zero), so at most MaxInFlight entries.
// The address is the connection's: behind a reverse proxy every client
// has the proxy's (the gateway reads no forwarded-for header), and the
// limit should be raised to MaxInFlightPerIdentity, which turns it off.

// identity is who a request acts as.
type identity struct {
	realm    string
	authid   string // "" for anonymous: the router assigns one per session
	authrole string
	method   string // "anonymous", "jwt", "apikey", "signed", "static" (HTTP callees, webhooks), "gateway" (a route's fixed principal)
}

// unauthenticated reports whether id is a principal that requests without
// credentials act as (shared by every such client).
func (id identity) unauthenticated() bool { return id.method == "anonymous" || id.method == "gateway" }

// admission is one request's hold on the in-flight slots: its
// principal's and, for a request without credentials, its address's.
// The zero admission holds nothing.
type admission struct {
	ip     *idPool
	addr   netip.Addr // the client's address (IPv6: its /64) when byAddr
	byAddr bool       // counted in pool.addrs
}

// pool holds the sessions of every principal.
type pool struct {
	g    *Server
	seed maphash.Seed

	mu     sync.Mutex
	ids    map[identity]*idPool // guarded by mu
	pinned map[*sess]struct{}   // HTTP callees' and webhooks' sessions; guarded by mu
	total  int                  // sessions open or opening; guarded by mu
	closed bool                 // guarded by mu

	addrMu sync.Mutex
	addrs  map[netip.Addr]int // unauthenticated requests in flight per client address (> 0); guarded by addrMu

	// retireMu is held through retire, which judges with the keys in
	// force once it holds it: two reloads' retires that ran in the other
	// order than their installs left the older keys' verdict.
	retireMu sync.Mutex
}

// idPool is one principal's sessions.
type idPool struct {
	key      identity
	slots    []*slot // guarded by pool.mu
	next     atomic.Uint64
	inflight atomic.Int64 // requests of this principal now
	streams  atomic.Int64 // SSE event streams of this principal now
	lastUsed atomic.Int64 // nanos (Server.nanos)
	// retired: the keys in force no longer stand for this principal
	// (retire); its sessions close as its last request or stream ends
	// (settle). Set and cleared under pool.mu.
	retired atomic.Bool
}

// slot is one session of a principal, or its opening.
type slot struct {
	s     *sess
	ready chan struct{} // closed when s or err is set
	err   *problem
}

func newPool(g *Server) *pool {
	return &pool{g: g, seed: maphash.MakeSeed(), ids: map[identity]*idPool{}, pinned: map[*sess]struct{}{}, addrs: map[netip.Addr]int{}}
}

// acquire returns a session of principal id for one request from client
// address remote (http.Request.RemoteAddr), and the request's admission,
// to hand to release when the request is done. It opens a session when
// the principal has none yet (waiting for WELCOME). Safe for concurrent
// use.
func (p *pool) acquire(id identity, remote string) (*sess, admission, *problem) {
	a, prob := p.admit(id, remote)
	if prob != nil {
		return nil, admission{}, prob
	}
	s, prob := p.pick(a)
	if prob != nil {
		return nil, admission{}, prob
	}
	return s, a, nil
}

// acquireStream is acquire for an SSE event stream, which the caller has
// admitted within Limits.MaxStreams and MaxStreamsPerClient: it is not
// counted among the requests in flight, only as its principal's stream.
// Release it with releaseStream.
func (p *pool) acquireStream(id identity) (*sess, *idPool, *problem) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, nil, newProblem(503, proto.URISystemShutdown, "the gateway is shutting down")
	}
	ip := p.ids[id]
	if ip == nil {
		if !p.makeRoom() {
			p.mu.Unlock()
			p.g.refused(refusedSessions)
			return nil, nil, tooBusy(503, "the gateway holds as many WAMP sessions as it may, all busy")
		}
		ip = &idPool{key: id, slots: make([]*slot, p.g.opts.Limits.SessionsPerIdentity)}
		p.ids[id] = ip
	}
	if n := ip.streams.Add(1); n > int64(p.g.opts.Limits.MaxStreamsPerIdentity) && !id.unauthenticated() {
		// One principal's streams, from however many addresses, take at
		// most a share of the gateway's (Limits.MaxStreamsPerIdentity).
		ip.streams.Add(-1)
		p.mu.Unlock()
		p.g.refused(refusedStreamsIdentity)
		return nil, nil, tooBusy(429, "too many event streams for this principal")
	}
	p.mu.Unlock()
	s, prob := p.pickFor(ip)
	if prob != nil {
		p.releaseStream(ip)
		return nil, nil, prob
	}
	return s, ip, nil
}

// releaseStream ends a stream that acquireStream admitted.
func (p *pool) releaseStream(ip *idPool) {
	ip.lastUsed.Store(p.g.nanos())
	ip.streams.Add(-1)
	p.settle(ip)
}

// busy reports whether a principal has requests or streams in progress
// (its sessions must stay).
func (ip *idPool) busy() bool { return ip.inflight.Load() > 0 || ip.streams.Load() > 0 }

// admit counts one more request of principal id in flight, from client
// address remote (http.Request.RemoteAddr; counted when id is
// unauthenticated), refusing it past the limits, and returns its
// admission. Release it with release. Safe for concurrent use; it never
// blocks.
func (p *pool) admit(id identity, remote string) (admission, *problem) {
	lim := &p.g.opts.Limits
	if n := p.g.inflight.Add(1); n > int64(lim.MaxInFlight) {
		p.g.inflight.Add(-1)
		p.g.refused(refusedInFlight)
		return admission{}, tooBusy(503, "the gateway has too many requests in flight")
	}
	var a admission
	if id.unauthenticated() {
		// Before the principal's count: one address's flood is refused
		// without taking the pool's lock.
		a.addr, a.byAddr = clientAddr(remote), true
		if !p.holdAddr(a.addr) {
			p.g.inflight.Add(-1)
			p.g.refused(refusedAddress)
			return admission{}, tooBusy(429, "too many requests in flight from this address")
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.unadmit(a)
		return admission{}, newProblem(503, proto.URISystemShutdown, "the gateway is shutting down")
	}
	ip := p.ids[id]
	if ip == nil {
		if !p.makeRoom() {
			p.mu.Unlock()
			p.unadmit(a)
			p.g.refused(refusedSessions)
			return admission{}, tooBusy(503, "the gateway holds as many WAMP sessions as it may, all busy")
		}
		ip = &idPool{key: id, slots: make([]*slot, lim.SessionsPerIdentity)}
		p.ids[id] = ip
	}
	if n := ip.inflight.Add(1); n > int64(lim.MaxInFlightPerIdentity) {
		ip.inflight.Add(-1)
		p.mu.Unlock()
		p.unadmit(a)
		p.g.refused(refusedIdentity)
		return admission{}, tooBusy(429, "too many requests in flight for this principal")
	}
	p.mu.Unlock()
	a.ip = ip
	return a, nil
}

// unadmit gives back what admit counted before refusing a request: the
// gateway's slot and the address's.
func (p *pool) unadmit(a admission) {
	if a.byAddr {
		p.releaseAddr(a.addr)
	}
	p.g.inflight.Add(-1)
}

// holdAddr counts one more unauthenticated request of client address a
// in flight, or reports false when it has Limits.MaxInFlightPerAddress.
func (p *pool) holdAddr(a netip.Addr) bool {
	p.addrMu.Lock()
	defer p.addrMu.Unlock()
	n := p.addrs[a]
	if n >= p.g.opts.Limits.MaxInFlightPerAddress {
		return false
	}
	p.addrs[a] = n + 1
	return true
}

// releaseAddr ends one request that holdAddr counted; an address with none
// left leaves the table.
func (p *pool) releaseAddr(a netip.Addr) {
	p.addrMu.Lock()
	if n := p.addrs[a] - 1; n > 0 {
		p.addrs[a] = n
	} else {
		delete(p.addrs, a)
	}
	p.addrMu.Unlock()
}

// addrsInFlight returns the number of client addresses with
// unauthenticated requests in flight.
func (p *pool) addrsInFlight() int {
	p.addrMu.Lock()
	defer p.addrMu.Unlock()
	return len(p.addrs)
}

// local returns an open session of an admitted principal on router shard
// idx, or nil when it has none there (yet): it never blocks, for the
// event loop's HTTP lane (lane.go).
func (p *pool) local(ip *idPool, idx int) *sess {
	n := len(ip.slots)
	start := int(ip.next.Add(1) - 1)
	p.mu.Lock()
	defer p.mu.Unlock()
	for j := range n {
		i := (start + j) % n
		sl := ip.slots[i]
		if sl == nil || p.shardFor(ip.key, i) != idx {
			continue
		}
		if s := readySess(sl); s != nil && !s.dead.Load() {
			return s
		}
	}
	return nil
}

// pick returns a session of an admitted request's principal, opening one
// (and waiting for its WELCOME) when the slot it takes has none; on
// failure it releases the request.
func (p *pool) pick(a admission) (*sess, *problem) {
	s, prob := p.pickFor(a.ip)
	if prob != nil {
		p.release(a)
	}
	return s, prob
}

// pickFor is pick for a principal's pool; the caller gives back what
// admitted it when it fails.
func (p *pool) pickFor(ip *idPool) (*sess, *problem) {
	id := ip.key
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, newProblem(503, proto.URISystemShutdown, "the gateway is shutting down")
	}
	i := int(ip.next.Add(1)-1) % len(ip.slots)
	sl := ip.slots[i]
	opening := false
	if sl == nil || isDead(sl) {
		if sl != nil {
			// The dead session's own end (dropped) will not find its
			// slot any more: count it out here.
			ip.slots[i] = nil
			p.total--
		}
		switch {
		case p.roomFor(ip):
			sl = &slot{ready: make(chan struct{})}
			ip.slots[i] = sl
			p.total++
			opening = true
		case ip.openSlot() != nil:
			sl = ip.openSlot() // at max_sessions: one of its own
		default:
			p.mu.Unlock()
			p.g.refused(refusedSessions)
			return nil, tooBusy(503, "the gateway holds as many WAMP sessions as it may, all busy")
		}
	}
	p.mu.Unlock()
	if opening {
		s, err := p.open(id, p.shardFor(id, i))
		// Under mu, so that closeAll (evict) either finds the slot ready
		// and makes its session leave, or has already taken it away and
		// this sees so: a session that joined while the gateway shut
		// down is not left in the router without a peer.
		p.mu.Lock()
		sl.s, sl.err = s, err
		close(sl.ready)
		orphan := err == nil && (p.closed || ip.slots[i] != sl)
		if err != nil && ip.slots[i] == sl {
			ip.slots[i] = nil
			p.total--
		}
		p.mu.Unlock()
		if orphan {
			s.q.post(s.leave)
			return nil, newProblem(503, proto.URISystemShutdown, "the gateway is shutting down")
		}
	} else {
		<-sl.ready
	}
	if sl.err != nil {
		return nil, sl.err
	}
	return sl.s, nil
}

// release ends a request that acquire (or admit) admitted.
func (p *pool) release(a admission) {
	a.ip.lastUsed.Store(p.g.nanos())
	a.ip.inflight.Add(-1)
	if a.byAddr {
		p.releaseAddr(a.addr)
	}
	p.g.inflight.Add(-1)
	p.settle(a.ip)
}

// settle closes a retired principal's sessions once it is idle. Safe for
// concurrent use: retire marks the principal before it looks whether it
// is busy, release and releaseStream end its work before they look
// whether it is retired, so one of them closes them.
func (p *pool) settle(ip *idPool) {
	if !ip.retired.Load() || ip.busy() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// retired again under mu: a later reload may have added its key back.
	if p.ids[ip.key] == ip && ip.retired.Load() && !ip.busy() {
		p.evict(ip)
	}
}

// isDead reports whether a slot's session opened and has closed since.
func isDead(sl *slot) bool {
	select {
	case <-sl.ready:
		return sl.s != nil && sl.s.dead.Load()
	default:
		return false
	}
}

// readySess returns a slot's session once it opened, else nil.
func readySess(sl *slot) *sess {
	select {
	case <-sl.ready:
		return sl.s
	default:
		return nil
	}
}

func tooBusy(status int, detail string) *problem {
	uri := proto.URIUnavailable
	if status == 429 {
		uri = URITooManyRequests
	}
	p := newProblem(status, uri, detail)
	p.header = map[string]string{"Retry-After": "1"}
	return p
}

// makeRoom makes sure one more principal may open a session: it closes
// the least recently used idle principal's sessions when the gateway is at
// Limits.MaxSessions. It reports false when every principal is busy.
// Called with mu held.
func (p *pool) makeRoom() bool {
	max := p.g.opts.Limits.MaxSessions
	for p.total+p.g.opts.Limits.SessionsPerIdentity > max {
		if !p.evictIdle(nil) {
			return p.total < max // room for at least the first slot
		}
	}
	return true
}

// evictIdle closes the sessions of the least recently used principal that
// is idle, other than except, and reports whether there was one. Called
// with mu held.
func (p *pool) evictIdle(except *idPool) bool {
	var lru *idPool
	for _, ip := range p.ids {
		if ip == except || ip.busy() {
			continue
		}
		if lru == nil || ip.lastUsed.Load() < lru.lastUsed.Load() {
			lru = ip
		}
	}
	if lru == nil {
		return false
	}
	p.evict(lru)
	return true
}

// roomFor reports whether one more session may open for ip, closing the
// least recently used idle principal's sessions (not ip's) at
// Limits.MaxSessions. admit's makeRoom checks the same before a new
// principal's first request, but the session is counted only here, so
// concurrent first requests of distinct principals all passed it: 48
// API keys at once opened up to 42 sessions against max_sessions 4.
// Called with mu held.
func (p *pool) roomFor(ip *idPool) bool {
	for p.total >= p.g.opts.Limits.MaxSessions {
		if !p.evictIdle(ip) {
			return false
		}
	}
	return true
}

// openSlot returns one of ip's slots that holds a session or is opening
// one, or nil. Called with the pool's mu held.
func (ip *idPool) openSlot() *slot {
	for _, sl := range ip.slots {
		if sl != nil && !isDead(sl) {
			return sl
		}
	}
	return nil
}

// evict closes a principal's sessions. Called with mu held.
func (p *pool) evict(ip *idPool) {
	delete(p.ids, ip.key)
	for i, sl := range ip.slots {
		if sl == nil {
			continue
		}
		ip.slots[i] = nil
		p.total--
		if s := readySess(sl); s != nil {
			s.q.post(s.leave)
		}
	}
}

// dropped forgets a session that closed. Called on the session's shard
// goroutine (sess.end); mu is a leaf lock.
func (p *pool) dropped(s *sess) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ip := p.ids[s.key]
	if ip == nil {
		return
	}
	for i, sl := range ip.slots {
		// readySess: pick writes sl.s without mu, before closing ready.
		if sl != nil && readySess(sl) == s {
			ip.slots[i] = nil
			p.total--
		}
	}
}

// shardFor spreads a principal's sessions over the shards.
func (p *pool) shardFor(id identity, i int) int {
	var h maphash.Hash
	h.SetSeed(p.seed)
	h.WriteString(id.realm)
	h.WriteString(id.authid)
	h.WriteString(id.authrole)
	return int((h.Sum64() + uint64(i)) % uint64(len(p.g.queues)))
}

// open opens and joins a pooled session of principal id on shard idx.
func (p *pool) open(id identity, idx int) (*sess, *problem) {
	s := &sess{g: p.g, q: p.g.queues[idx], key: id}
	s.lastUsed.Store(p.g.nanos())
	// The principals' sessions hold the SSE streams' subscriptions: told
	// when the router takes one away (a reload's revocation, the meta
	// API's remove_subscriber), their streams end (sess.revoked) instead
	// of staying open with no events.
	return s, p.join(s, route.JoinOptions{CallerProgress: true, SubscriberRevoke: true})
}

// openPinned opens a session that is never evicted (HTTP callee, webhook
// subscriber), outside the principals' pools, with onInv handling its
// INVOCATIONs and onClose told when it ends. It counts toward
// MaxSessions.
//
// The session announces registration_revocation and
// subscription_revocation: onRevoke (when set) is told, on the shard's
// goroutine, when the router takes its registration or subscription
// away, with the reason.
func (p *pool) openPinned(id identity, idx int, onInv func(*sess, *proto.Message), onClose func(*sess, string), onRevoke func(*sess, string)) (*sess, *problem) {
	s := &sess{g: p.g, q: p.g.queues[idx], key: id, onInv: onInv, onRevoke: onRevoke}
	s.onClose = func(s *sess, why string) {
		p.mu.Lock()
		if _, ok := p.pinned[s]; ok {
			delete(p.pinned, s)
			p.total--
		}
		p.mu.Unlock()
		if onClose != nil {
			onClose(s, why)
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, newProblem(503, proto.URISystemShutdown, "the gateway is shutting down")
	}
	p.total++
	p.pinned[s] = struct{}{}
	p.mu.Unlock()
	if err := p.join(s, route.JoinOptions{CalleeCancel: true, CalleeTimeout: true, CalleeRevoke: true, SubscriberRevoke: true}); err != nil {
		p.mu.Lock()
		if _, ok := p.pinned[s]; ok { // not closed through onClose
			delete(p.pinned, s)
			p.total--
		}
		p.mu.Unlock()
		return nil, err
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		// closeAll ran while it joined: its leave may have run before
		// the session was open (and done nothing).
		s.q.post(s.leave)
		return nil, newProblem(503, proto.URISystemShutdown, "the gateway is shutting down")
	}
	return s, nil
}

// join opens s on its shard and joins it as s.key (one round trip through
// the shard; it blocks until WELCOME). It fails with the router's reason.
func (p *pool) join(s *sess, jo route.JoinOptions) *problem {
	id, q := s.key, s.q
	jo.Realm = id.realm
	jo.Identity = route.Identity{AuthID: id.authid, AuthRole: id.authrole, AuthProvider: providerOf(id.method), Credential: keyCredential(id)}
	jo.AuthMethod = id.method
	done := make(chan error, 1)
	err := q.post(func() {
		s.rs = q.shard.Open(s)
		if s.closed {
			done <- errSessionGone
			return
		}
		done <- q.shard.JoinInternal(s.rs, jo)
	})
	if err != nil {
		return newProblem(503, proto.URISystemShutdown, "the router is not running")
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case err = <-done:
	case <-t.C:
		// The event loop did not run the job in time: give up on this
		// session; when the job runs, it leaves at once.
		q.post(s.leave)
		return newProblem(503, proto.URIUnavailable, "the router did not open a session in time")
	}
	if err == nil {
		return nil
	}
	if ae, ok := err.(*route.AuthError); ok {
		st := 503
		switch ae.URI {
		case proto.URINoSuchRealm:
			st = 404
		case proto.URIAuthenticationDenied:
			st = 401
		}
		return newProblem(st, ae.URI, ae.Message)
	}
	return newProblem(503, proto.URISystemShutdown, "the router is shutting down")
}

func providerOf(method string) string {
	switch method {
	case "jwt":
		return "jwt"
	case "anonymous":
		return "static"
	}
	return "gateway"
}

// sweep closes the sessions of principals idle for longer than
// Limits.SessionIdle at now (nanos: the monotonic clock, so that a step
// of the system clock neither closes every pooled session, forward, nor
// keeps idle ones for the step's length, back). The server's janitor
// goroutine calls it.
func (p *pool) sweep(now int64) {
	idle := p.g.opts.Limits.SessionIdle
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ip := range p.ids {
		if ip.busy() {
			continue
		}
		if now-ip.lastUsed.Load() > int64(idle) {
			p.evict(ip)
		}
	}
}

// retire closes the sessions of the idle principals that authenticated
// with an API key or a signing key and that no key in force (keys, read
// once retireMu is held: a reload's, installed before it calls retire)
// stands for any more: a key removed, or given another principal. No new
// request can reach them (the pool is keyed by principal); closed now,
// they leave the router's session list at the reload rather than
// SessionIdle later. Busy ones go as their last request or stream ends
// (settle): before, they stayed until the sweep found them idle for
// SessionIdle (60 s), a request in flight at the reload sufficing. A
// principal retired busy whose key a later reload adds back is no longer
// retired: before, its sessions closed at the end of its request.
func (p *pool) retire(keys func() *keyTable) {
	p.retireMu.Lock()
	defer p.retireMu.Unlock()
	kt := keys()
	p.mu.Lock()
	ids := map[identity]*idPool{}
	for id, ip := range p.ids {
		if id.method == "apikey" || id.method == "signed" {
			ids[id] = ip
		}
	}
	all := maps.Clone(ids)
	p.mu.Unlock()
	kt.standsFor(ids) // outside mu: up to every key of the table
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, ip := range all {
		if p.ids[id] != ip {
			continue
		}
		if _, gone := ids[id]; !gone {
			ip.retired.Store(false) // a key stands for it (again)
			continue
		}
		ip.retired.Store(true) // before busy: see settle
		if !ip.busy() {
			p.evict(ip)
		}
	}
}

// closeAll closes every session (Shutdown) and refuses new ones.
func (p *pool) closeAll() {
	p.mu.Lock()
	p.closed = true
	for _, ip := range p.ids {
		p.evict(ip)
	}
	var pinned []*sess
	for s := range p.pinned {
		pinned = append(pinned, s)
	}
	p.mu.Unlock()
	for _, s := range pinned {
		s.q.post(s.leave)
	}
}

// leftWhy says why the gateway left one of its sessions (sess.leave),
// for what still waited on it. Cold path.
func (p *pool) leftWhy() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "the gateway is shutting down"
	}
	return "the gateway closed it"
}

// sessions returns the number of sessions open or opening.
func (p *pool) sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}
