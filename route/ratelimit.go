package route

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgewamp/edgewamp/internal/slide"
)

// AuthLimits configures the router's brute-force limiter, which counts
// failed authentications per source address (an IPv4 address, or the /64 of
// an IPv6 one), and within it per authid and realm.
//
// An authid that fails BlockAfter times in one realm from one address is
// locked out of that realm at that address for Lockout: its HELLOs and
// AUTHENTICATEs there get ABORT wamp.error.authentication_denied, while
// the address's other authids, and the authid in other realms, go on
// logging in. So one device behind a NAT with a wrong password locks
// out itself, not the fleet behind the same address. An address whose
// failures, whatever their authids, reach AddressBlockAfter is locked out
// whole (password spraying: one guess for each of many authids), its
// anonymous HELLOs included.
type AuthLimits struct {
	// DelayAfter: past this many failures of one authid from one address
	// within Window, each further failure is answered after a growing
	// delay (half a second more per failure, at most 5 s). Default 3.
	DelayAfter int
	// BlockAfter: this many failures of one authid in one realm from one
	// address within Window lock that authid out of that realm at that
	// address for Lockout.
	// Each AUTHENTICATE reserves its place before its secret is checked:
	// at most BlockAfter, minus the failures so far, are checked at a time
	// for one authid, and the others wait for their turn (or for the
	// lockout, which refuses them unchecked). Default 10.
	BlockAfter int
	// AddressBlockAfter: this many failures from one address within
	// Window, whatever their authids and realms, lock the whole address out for
	// Lockout; likewise at most AddressBlockAfter minus the address's
	// failures are checked at a time. At least BlockAfter. Default 100,
	// or BlockAfter when that is larger.
	AddressBlockAfter int
	// Window is the period over which failures are counted. Default 1m.
	// It slides: the failures of the window before the current one count
	// weighted by the part of it the last Window still covers, so that
	// failures at a window's end and the next one's start add up
	// (package slide).
	Window time.Duration
	// Lockout is how long a locked-out authid or address is refused.
	// Default 5m.
	Lockout time.Duration
	// MaxOpenChallenges bounds the challenge-response authentications in
	// progress per address (from HELLO to WELCOME or ABORT); past it a
	// HELLO that would start one is refused with
	// wamp.error.authentication_denied. Default 1024: a fleet behind one
	// NAT may reconnect all at once, and it stays well below the router-wide
	// queue of pending authentications (Config.AuthQueue, 4096), so that one
	// address cannot take it all.
	MaxOpenChallenges int
	// Exempt networks are never counted nor locked out (a trusted gateway,
	// the loopback of a local bridge).
	Exempt []netip.Prefix
}

// Defaults of AuthLimits.
const (
	DefaultAuthDelayAfter        = 3
	DefaultAuthBlockAfter        = 10
	DefaultAuthAddressBlockAfter = 100
	DefaultAuthWindow            = time.Minute
	DefaultAuthLockout           = 5 * time.Minute
	DefaultAuthMaxOpenChallenges = 1024
)

// withDefaults fills the zero fields and checks the others.
func (l AuthLimits) withDefaults() (AuthLimits, error) {
	var errs []error
	def := func(v *int, d int, name string) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			errs = append(errs, fmt.Errorf("route: auth limits: %s must not be negative", name))
		}
	}
	def(&l.DelayAfter, DefaultAuthDelayAfter, "delay_after")
	def(&l.BlockAfter, DefaultAuthBlockAfter, "block_after")
	def(&l.MaxOpenChallenges, DefaultAuthMaxOpenChallenges, "max_open_challenges")
	def(&l.AddressBlockAfter, max(DefaultAuthAddressBlockAfter, l.BlockAfter), "address_block_after")
	if l.AddressBlockAfter < l.BlockAfter {
		errs = append(errs, errors.New("route: auth limits: address_block_after must be at least block_after"))
	}
	if l.Window <= 0 {
		l.Window = DefaultAuthWindow
	}
	if l.Lockout <= 0 {
		l.Lockout = DefaultAuthLockout
	}
	for _, p := range l.Exempt {
		if !p.IsValid() {
			errs = append(errs, errors.New("route: auth limits: an exempt network is not valid"))
		}
	}
	return l, errors.Join(errs...)
}

// authLimiter implements AuthLimits. Safe for concurrent use: shards call
// it on the HELLO and AUTHENTICATE paths (cold), workers when a check ends.
//
// It keeps one record per address and one per authid at an address, in
// two tables: an address costs the addresses' table one record whatever
// the authids it tries, so that refusing new addresses (the table full of
// live records) takes a flood from as many addresses as before authids
// were counted. When the authids' table is full, an address's authids
// that have no record of their own share one, kept in the address's
// record (the limits of an address before authids were counted). An
// AUTHENTICATE is checked only while both its authid's record and its
// address's have room; those that wait, wait in their address's record in
// arrival order, and every settle of the address looks through them.
type authLimiter struct {
	lim    AuthLimits   // static
	seed   maphash.Seed // static: for the authids' keys
	maxIDs int          // static: authids with a record of their own (idsMax; tests lower it)
	// maxAddrs is static: the addresses tracked (limiterMax; tests lower it).
	maxAddrs int

	mu      sync.Mutex
	addrs   map[addrKey]*failRec // guarded by mu: the addresses' records
	ids     map[idKey]*failRec   // guarded by mu: the authids' records at addresses
	sweepAt int                  // guarded by mu: size (of both) at which the next operation drops idle records
	// fullSince and fullSweeps (guarded by mu): the sweeps of full tables
	// in the second from fullSince (fullSweepsPerSecond at most).
	fullSince  time.Time
	fullSweeps int
	// sweepVisits counts the records the sweeps have looked at (tests).
	// Guarded by mu.
	sweepVisits int
}

// failRec is one address's or one authid's (at an address) record.
// Guarded by authLimiter.mu.
//
// 48 bytes (a size class of 48), where int counters, time.Time fields and
// the waiting slice inline made 104 (112): times are Unix nanoseconds (0:
// none), counters 32 bits, and the waiting AUTHENTICATEs, which few
// records ever have, are behind a pointer.
type failRec struct {
	fails        slide.Window // failures, over a sliding window of AuthLimits.Window
	blockedUntil int64        // Unix ns
	checking     int32        // AUTHENTICATEs reserved: being checked now
	open         int32        // address: challenge-response authentications in progress
	// q (address): the AUTHENTICATEs waiting for a place (nil: none).
	q *waitQueue
	// shared (address): the record of its authids that have none of their
	// own, the authids' table having been full (nil until then).
	shared *failRec
}

// waitQueue is an address's AUTHENTICATEs waiting for a place, oldest
// first.
type waitQueue struct{ ws []*authWait }

// waiting returns the AUTHENTICATEs waiting at r, oldest first.
func (r *failRec) waiting() []*authWait {
	if r.q == nil {
		return nil
	}
	return r.q.ws
}

// setWaiting sets the AUTHENTICATEs waiting at r, dropping the queue when
// there are none.
func (r *failRec) setWaiting(ws []*authWait) {
	switch {
	case len(ws) == 0:
		r.q = nil
	case r.q == nil:
		r.q = &waitQueue{ws: ws}
	default:
		r.q.ws = ws
	}
}

// authWait is an AUTHENTICATE waiting for its place. fire runs exactly once
// (unless the wait is cancelled first), outside the limiter's lock: granted
// means a place was reserved for it, which settle must release.
type authWait struct {
	fire func(granted bool)
	id   idKey // the authid's record key (set by reserve)
}

// loginKey names the records of a login: its address's and its authid's
// there. The zero value (an in-process session, an exempt network) is not
// limited.
type loginKey struct {
	addr   string  // the address as the limiter counts it (for logs and the work queue); "": not limited
	ak     addrKey // the address's record key
	id     idKey   // the authid's record key at the address, in the realm
	realm  string  // for log lines: the realm, at most 64 bytes of it
	authid string  // for log lines: the authid, at most 64 bytes of it
}

// addrKey is an address's record key: an IPv4 address (hi 0, lo
// 0xffff<<32 | the address), an IPv6 /64 (hi the prefix, lo 1), or the
// hash of a remote address that is not an IP address (hi, lo 2). Sixteen
// bytes in the map, where a string's header and its bytes cost 40.
type addrKey struct{ hi, lo uint64 }

// idKey is an authid's record key at an address: the address's key and
// a 64-bit hash of the realm and the authid under a seed of this process,
// so that a record costs the same whatever the authid's length, and no
// client can choose authids that share one.
type idKey struct {
	a addrKey
	h uint64
}

// lockKind is what a failure locked out.
type lockKind uint8

const (
	lockNone    lockKind = iota
	lockAuthID           // the authid, at the address
	lockAuthIDs          // the address's authids that share a record (the authids' table was full)
	lockAddress          // the whole address
)

const (
	maxDelay   = 5 * time.Second
	limiterMin = 65536 // records kept before the first sweep of idle ones
	sweepChunk = 1024  // records of each table one sweep looks at, at most
	// fullSweepsPerSecond bounds the sweeps of full tables in a second:
	// 16 chunks of each, under 6 ms of mu a second with 2^19 records in
	// each table (a chunk of each measured at 0.34-0.39 ms).
	fullSweepsPerSecond = 16
	limiterMax          = 1 << 20 // addresses tracked
	idsMax              = 1 << 19 // authids (at an address) with a record of their own
)

func newAuthLimiter(lim AuthLimits) *authLimiter {
	return &authLimiter{lim: lim, seed: maphash.MakeSeed(), maxIDs: idsMax, maxAddrs: limiterMax, addrs: map[addrKey]*failRec{}, ids: map[idKey]*failRec{}, sweepAt: limiterMin}
}

// key returns the record key of a remote address: its IPv4 address, or the
// /64 of an IPv6 one (one host, or one customer, gets a whole /64 and could
// otherwise try from 2^64 addresses). It returns "" (not limited) for an
// empty address (in-process sessions) and for exempt networks.
func (l *authLimiter) key(remote string) string {
	if remote == "" {
		return ""
	}
	h, _, err := net.SplitHostPort(remote)
	if err != nil {
		h = remote
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return h // not an IP address (a Unix socket): limited by its name
	}
	ip = ip.Unmap().WithZone("")
	for _, p := range l.lim.Exempt {
		if p.Contains(ip) {
			return ""
		}
	}
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// login returns the limiter's keys of a login to realm from remote as
// authid ("" when HELLO named none: such logins of one address to one
// realm share one record). An authid's key is a 64-bit hash of the realm
// and the authid under a seed of this process, so that a record costs the
// same whatever their lengths, and no client can choose authids that
// share one. An authid is counted per realm: the same name in two realms
// may be two principals (each realm has its own users), and a user of
// both that fails in one still logs in to the other. Before, an authid's
// failures in realm a locked it out of realm b too, at that address. The
// address's own record counts its failures in every realm.
func (l *authLimiter) login(remote, realm, authid string) loginKey {
	return l.keys(l.key(remote), realm, authid)
}

// keys returns the keys of a login to realm as authid from the address
// whose record key is addr ("": not limited).
func (l *authLimiter) keys(addr, realm, authid string) loginKey {
	if addr == "" {
		return loginKey{}
	}
	ak := l.addrKeyOf(addr)
	var h maphash.Hash
	h.SetSeed(l.seed)
	// The realm's length first: ("ab", "c") and ("a", "bc") differ.
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(realm)))
	h.Write(n[:])
	h.WriteString(realm)
	h.WriteString(authid)
	return loginKey{addr: addr, ak: ak, id: idKey{ak, h.Sum64()}, realm: logCut(realm), authid: logCut(authid)}
}

// addrKeyOf returns the record key of the address whose limiter key (as
// key returns it) is s.
func (l *authLimiter) addrKeyOf(s string) addrKey {
	var a netip.Addr
	if p, err := netip.ParsePrefix(s); err == nil {
		a = p.Masked().Addr()
	} else if a, err = netip.ParseAddr(s); err != nil {
		return addrKey{maphash.String(l.seed, s), 2}
	}
	a = a.Unmap()
	b := a.As16()
	if a.Is4() {
		return addrKey{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b[12:]))}
	}
	return addrKey{binary.BigEndian.Uint64(b[:8]), 1}
}

// sweep drops idle records, looking at most at sweepChunk records of each
// table: it runs under mu, on an event loop (open, reserve) or a worker
// (settle), and every loop's next HELLO waits for mu. Before, each sweep
// walked both tables whole, and with them full of live records (a flood
// from a /44's /64s keeps them so) every new address's HELLO swept them
// once a second: 2^19 addresses and 2^19 authids held mu 0.43-0.52 s
// (the shared 2-core VM, without -race), every loop stalled that long.
// Go starts each walk of a map at a random place, so successive chunks
// reach every record. A sweep runs first in an operation that may create
// k's records (one is missing), never while one holds a record it has
// looked up, when the tables have grown by half a chunk since the last
// one (from limiterMin on); when they are full, at each such operation,
// up to fullSweepsPerSecond a second (records that have aged make room
// again as new addresses need it); and again at the next such operation
// while at least half of what a chunk looked at was idle (after a flood
// has aged, the tables make room and shrink a chunk per login). Before,
// full tables were swept at most once a second: a chunk of each since
// the sweep was bounded, so that with fewer than half of their records
// idle, a few hundred places a second were freed, and the rest of the
// second's new addresses were refused while idle records held the room.
// Called with mu held.
func (l *authLimiter) sweep(k loginKey, now time.Time) {
	if l.addrs[k.ak] != nil && l.ids[k.id] != nil {
		return
	}
	full := len(l.addrs) >= l.maxAddrs || len(l.ids) >= l.maxIDs
	if len(l.addrs)+len(l.ids) < l.sweepAt && !(full && l.fullSweep(now)) {
		return
	}
	looked, dropped := 0, 0
	n := 0
	for k, r := range l.ids {
		if n++; n > sweepChunk {
			break
		}
		if r.idle(now, l.lim.Window) {
			delete(l.ids, k)
			dropped++
		}
	}
	looked += min(n, sweepChunk)
	n = 0
	for k, r := range l.addrs {
		if n++; n > sweepChunk {
			break
		}
		if r.idle(now, l.lim.Window) {
			delete(l.addrs, k)
			dropped++
		}
	}
	looked += min(n, sweepChunk)
	l.sweepVisits += looked
	if 2*dropped >= looked && dropped > 0 {
		l.sweepAt = 0 // mostly idle: another chunk at the next operation
	} else {
		l.sweepAt = max(len(l.addrs)+len(l.ids)+sweepChunk/2, limiterMin)
	}
}

// fullSweep reports whether a sweep of full tables may run at now, and
// counts it: at most fullSweepsPerSecond in a second. Called with mu held.
func (l *authLimiter) fullSweep(now time.Time) bool {
	// Out of order by less than a second (callers read the clock
	// before taking mu): the same second.
	if d := now.Sub(l.fullSince); d >= time.Second || d < -time.Second {
		l.fullSince, l.fullSweeps = now, 0
	}
	if l.fullSweeps >= fullSweepsPerSecond {
		return false
	}
	l.fullSweeps++
	return true
}

// addr returns the record of the address whose key is key, creating it
// unless the addresses' table is full of live records (then nil: the
// address is not tracked, and its attempts are refused). Called with mu
// held.
func (l *authLimiter) addr(key addrKey) *failRec {
	if r := l.addrs[key]; r != nil {
		return r
	}
	if len(l.addrs) >= l.maxAddrs {
		return nil
	}
	r := &failRec{}
	l.addrs[key] = r
	return r
}

// idOf returns the record that counts for the authid whose key is id at
// the address whose record is a (nil: none has been made): its own, or
// else its address's shared one (nil if none). Called with mu held.
func (l *authLimiter) idOf(a *failRec, id idKey) *failRec {
	if p := l.ids[id]; p != nil {
		return p
	}
	if a == nil {
		return nil
	}
	return a.shared
}

// id returns the record that counts for the authid whose key is id at the
// address whose record is a, creating it: its own, or its address's
// shared one while that is in use (so that an authid's places and
// failures are all in one record) or when the authids' table is full of
// live records. Called with mu held.
func (l *authLimiter) id(a *failRec, id idKey, now time.Time) *failRec {
	if p := l.ids[id]; p != nil {
		return p
	}
	if (a.shared == nil || a.shared.idle(now, l.lim.Window)) && len(l.ids) < l.maxIDs {
		p := &failRec{}
		l.ids[id] = p
		return p
	}
	if a.shared == nil {
		a.shared = &failRec{}
	}
	return a.shared
}

// recs returns the records of k's address and authid, creating them
// (nil, nil when the addresses' table is full of live records). Called
// with mu held.
func (l *authLimiter) recs(k loginKey, now time.Time) (a, p *failRec) {
	if a = l.addr(k.ak); a == nil {
		return nil, nil
	}
	return a, l.id(a, k.id, now)
}

// idle reports whether r holds nothing that matters at now.
func (r *failRec) idle(now time.Time, window time.Duration) bool {
	// failures only decreases while none is added: once 0, it stays 0.
	return r.checking == 0 && r.open == 0 && r.q == nil &&
		r.failures(now, window) == 0 && now.UnixNano() >= r.blockedUntil &&
		(r.shared == nil || r.shared.idle(now, window))
}

// failures returns the failures that count at now (slide.Window.Count).
// Before, the windows were fixed, each starting at the first failure
// after the last one ended: nine failures at the end of one and nine at
// the start of the next, 18 in two seconds, locked nothing out at a
// bound of ten.
func (r *failRec) failures(now time.Time, window time.Duration) int {
	return r.fails.Count(now.UnixNano(), window)
}

// locked reports whether r is locked out at now (a nil r is not).
func (r *failRec) locked(now time.Time) bool {
	return r != nil && now.UnixNano() < r.blockedUntil
}

// room reports whether one more AUTHENTICATE may be checked at now under
// the record's bound (BlockAfter for an authid, AddressBlockAfter for an
// address). With none being checked it always may: only a check's settle
// releases waiting ones, so a wait with none in flight would never end.
// That happens when a lockout shorter than the window has ended with the
// bound's failures still in it: one check at a time then, and its failure
// locks out again.
func (r *failRec) room(now time.Time, window time.Duration, bound int) bool {
	return r.checking == 0 || int(r.checking)+r.failures(now, window) < bound
}

// fail counts a failure in r at now; it reports whether it locked r out.
func (r *failRec) fail(now time.Time, lim AuthLimits, bound int) bool {
	ns := now.UnixNano()
	r.fails.Add(ns, lim.Window)
	if r.failures(now, lim.Window) >= bound && ns >= r.blockedUntil {
		r.blockedUntil = ns + int64(lim.Lockout)
		return true
	}
	return false
}

// tracked reports whether k's address has a record (false when the table
// had no room for it).
func (l *authLimiter) tracked(k loginKey) bool {
	if k.addr == "" {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs[k.ak] != nil
}

// blocked reports whether k's address, or its authid there, is locked
// out at now.
func (l *authLimiter) blocked(k loginKey, now time.Time) bool {
	if k.addr == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.addrs[k.ak]
	return a.locked(now) || l.idOf(a, k.id).locked(now)
}

// addressBlocked reports whether k's whole address is locked out at now
// (not only an authid there): what refuses a HELLO before its method is
// known, an anonymous one included (Shard.hello). An authid's lockout
// refuses that authid's challenge-response logins (open, reserve), not an
// anonymous HELLO that happens to name it or none.
func (l *authLimiter) addressBlocked(k loginKey, now time.Time) bool {
	if k.addr == "" {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs[k.ak].locked(now)
}

// lockOf returns what locks k out at now: its address, its authid there
// (or the authids sharing its address's record), or nothing.
func (l *authLimiter) lockOf(k loginKey, now time.Time) lockKind {
	if k.addr == "" {
		return lockNone
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.addrs[k.ak]
	switch p := l.idOf(a, k.id); {
	case a.locked(now):
		return lockAddress
	case p.locked(now) && a != nil && p == a.shared:
		return lockAuthIDs
	case p.locked(now):
		return lockAuthID
	}
	return lockNone
}

// open counts a challenge-response authentication starting from k's
// address. It returns false, counting nothing, when k is locked out or
// its address has MaxOpenChallenges in progress. Each successful open
// needs one close.
func (l *authLimiter) open(k loginKey, now time.Time) bool {
	if k.addr == "" {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(k, now)
	r := l.addr(k.ak)
	switch {
	case r == nil:
		return false // the table is full of live records: refused, untracked
	case r.locked(now), l.idOf(r, k.id).locked(now), int(r.open) >= l.lim.MaxOpenChallenges:
		return false
	}
	r.open++
	return true
}

// close ends an authentication counted by open.
func (l *authLimiter) close(k loginKey) {
	if k.addr == "" {
		return
	}
	l.mu.Lock()
	if r := l.addrs[k.ak]; r != nil && r.open > 0 {
		r.open--
	}
	l.mu.Unlock()
}

type verdict uint8

const (
	granted   verdict = iota // a place is reserved: check the secret, then settle
	denied                   // locked out: refuse without checking
	queued                   // w fires when a place frees up or the address is locked out
	untracked                // the table has no room for the address: refuse without checking
)

// reserve asks for a place to check one AUTHENTICATE of k. At most
// BlockAfter minus the authid's failures in the window, and
// AddressBlockAfter minus the address's, are checked at a time, so that
// parallel attempts cannot get more secrets checked than the lockouts
// allow. A granted place must be released by settle; a queued w must be
// cancelled if its session goes away before it fires.
func (l *authLimiter) reserve(k loginKey, now time.Time, w *authWait) verdict {
	if k.addr == "" {
		return granted
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(k, now)
	a, p := l.recs(k, now)
	switch {
	case a == nil:
		// The table is full of live records (a flood from 2^20
		// addresses): refused rather than checked without a limit.
		return untracked
	case a.locked(now) || p.locked(now):
		return denied
	case a.room(now, l.lim.Window, l.lim.AddressBlockAfter) && p.room(now, l.lim.Window, l.lim.BlockAfter) && !waits(a.waiting(), k.id):
		a.checking++
		p.checking++
		return granted
	}
	w.id = k.id
	a.setWaiting(append(a.waiting(), w))
	return queued
}

// waits reports whether an AUTHENTICATE of the authid id is among ws: a
// later one of the same authid waits behind it.
func waits(ws []*authWait, id idKey) bool {
	for _, w := range ws {
		if w.id == id {
			return true
		}
	}
	return false
}

// cancel removes a queued w. It returns false when w has fired already (it
// was granted or denied meanwhile).
func (l *authLimiter) cancel(k loginKey, w *authWait) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.addrs[k.ak]
	if r == nil {
		return false
	}
	ws := r.waiting()
	i := slices.Index(ws, w)
	if i < 0 {
		return false
	}
	r.setWaiting(slices.Delete(ws, i, i+1))
	return true
}

// settle ends an attempt of k: reserved releases a place taken by
// reserve, failed counts a failure (a wrong secret, or a failed challenge)
// for the authid and for the address. It returns how long to delay the
// failure's answer, and what it has just locked out. Waiting
// AUTHENTICATEs of the address then get the places free, in arrival
// order, or are refused if they are locked out.
func (l *authLimiter) settle(k loginKey, reserved, failed bool, now time.Time) (delay time.Duration, lock lockKind) {
	if k.addr == "" {
		return 0, lockNone
	}
	type firing struct {
		w  *authWait
		ok bool
	}
	var fire []firing
	l.mu.Lock()
	if failed {
		l.sweep(k, now)
	}
	// A reserved place keeps both records from the sweep, and the authid's
	// is the one reserve took: its own if it has one, else the shared one.
	a := l.addrs[k.ak]
	p := l.idOf(a, k.id)
	if reserved {
		if a != nil && a.checking > 0 {
			a.checking--
		}
		if p != nil && p.checking > 0 {
			p.checking--
		}
	}
	if failed && (a == nil || p == nil || !reserved) {
		if a, p = l.recs(k, now); a == nil {
			l.mu.Unlock()
			return maxDelay, lockNone // full of live records: answer slowly, track no more
		}
	}
	if failed {
		if p.fail(now, l.lim, l.lim.BlockAfter) {
			lock = lockAuthID
			if p == a.shared {
				lock = lockAuthIDs
			}
		}
		if a.fail(now, l.lim, l.lim.AddressBlockAfter) {
			lock = lockAddress
		}
		if pn := p.failures(now, l.lim.Window); pn > l.lim.DelayAfter {
			delay = min(time.Duration(pn-l.lim.DelayAfter)*500*time.Millisecond, maxDelay)
		}
		// Spraying (a guess for each of many authids) is slowed down too:
		// past the address's share of delays (DelayAfter scaled from
		// BlockAfter to AddressBlockAfter, 30 at the defaults), each
		// failure from the address is answered later as well. Only the
		// failing attempt waits: the address's other logins do not.
		if ad, an := l.lim.DelayAfter*l.lim.AddressBlockAfter/l.lim.BlockAfter, a.failures(now, l.lim.Window); an > ad {
			delay = max(delay, min(time.Duration(an-ad)*500*time.Millisecond, maxDelay))
		}
	}
	if a != nil {
		ws := a.waiting()
		kept := ws[:0]
		for _, w := range ws {
			wp := l.id(a, w.id, now)
			switch {
			case a.locked(now), wp.locked(now):
				fire = append(fire, firing{w, false})
			case a.room(now, l.lim.Window, l.lim.AddressBlockAfter) && wp.room(now, l.lim.Window, l.lim.BlockAfter) && !waits(kept, w.id):
				a.checking++
				wp.checking++
				fire = append(fire, firing{w, true})
			default:
				kept = append(kept, w)
			}
		}
		clear(ws[len(kept):])
		a.setWaiting(kept)
	}
	l.mu.Unlock()
	for _, f := range fire {
		f.w.fire(f.ok)
	}
	return delay, lock
}

// logCut returns s cut to its first 64 bytes (at a UTF-8 character's
// start), for a log line: what a client chooses (an authid, a URI) can
// be kilobytes long.
func logCut(s string) string { return logCutN(s, 64) }

// logCutN is logCut to n bytes.
func logCutN(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// authLogsPerSecond bounds the failed-authentication lines, and apart the
// lockout lines, written a second (as the transports' close log does).
const authLogsPerSecond = 20

// lineLimiter lets through at most authLogsPerSecond log lines per second
// of the router's clock, and counts those it left out. Safe for
// concurrent use (shards and workers log failures).
type lineLimiter struct {
	mu         sync.Mutex
	sec        int64  // guarded by mu: the second being counted
	n          int    // guarded by mu: lines in it
	suppressed uint64 // guarded by mu: left out since the last line written
}

// take reports whether a line may be written at now (ns), and how many
// were left out since the last one written.
func (l *lineLimiter) take(now int64) (suppressed uint64, ok bool) {
	return l.takeIn(now, int64(time.Second), authLogsPerSecond)
}

// takeIn is take for at most max lines a window of window ns (one
// limiter is always taken with the same window).
func (l *lineLimiter) takeIn(now, window int64, max int) (suppressed uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec := now / window; sec != l.sec {
		l.sec, l.n = sec, 0
	}
	if l.n >= max {
		l.suppressed++
		return 0, false
	}
	l.n++
	suppressed, l.suppressed = l.suppressed, 0
	return suppressed, true
}

// suppressedAttr appends to args the count of lines left out, when
// there were some.
func suppressedAttr(args []any, suppressed uint64) []any {
	if suppressed > 0 {
		args = append(args, "auth_logs_suppressed", suppressed)
	}
	return args
}
