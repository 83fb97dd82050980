package route

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Config configures a Router. The zero value of every field is a sane
// default, applied by New.
type Config struct {
	// Realms the router serves. At least one is required.
	Realms []RealmConfig
	// Shards is the number of shards, one per event loop. Default 1.
	Shards int
	// CallTimeout is the router-enforced timeout of a call whose caller gave
	// none. 0 means calls without a timeout option never time out.
	CallTimeout time.Duration
	// MaxCallTimeout caps any call's timeout, the caller's included. 0
	// means no cap.
	MaxCallTimeout time.Duration
	// HelloTimeout bounds the time from transport open to WELCOME
	// (authentication included). Default 10s.
	HelloTimeout time.Duration
	// GoodbyeTimeout bounds how long the router waits for a client's
	// GOODBYE reply before closing the transport. Default 3s.
	GoodbyeTimeout time.Duration
	// AuthWorkers is the size of the pool that runs authentication work
	// (hashing, signature checks, token verification) off the event loops.
	// Default 4. The workers serve the logins' addresses in turn
	// (workers.go). Workers hashing on every CPU delay the event loops
	// too (Go's scheduler shares the CPUs): fewer than GOMAXPROCS keeps a
	// CPU for the loops during a storm of logins, at the cost of the
	// logins' own throughput.
	AuthWorkers int
	// AuthQueue bounds pending authentication jobs; past it, new HELLOs are
	// refused. Default 4096.
	AuthQueue int
	// MaxLoginBytes bounds the bytes all logins in progress hold across
	// the router (HELLO's authid, authrole, authmethods and authextra,
	// AUTHENTICATE's signature and extra, kept until the login ends: up to
	// ~11 KiB a login, ~35 KiB with its AUTHENTICATE, and 1,024 logins an
	// address). Past it a HELLO that would start a challenge-response
	// login gets ABORT wamp.error.authentication_failed ("router busy"),
	// even one offering anonymous next (the client retries with its
	// credentials), and an AUTHENTICATE that would hold more gets the
	// same. Default 64 MiB.
	MaxLoginBytes int64
	// MaxPendingCalls, MaxRegistrations and MaxSubscriptions bound what
	// one session may hold (calls in flight as a caller, registrations,
	// subscriptions), so that no session grows router memory without
	// limit. Past them the request gets ERROR wamp.error.unavailable.
	// Default 65536 each.
	MaxPendingCalls  int
	MaxRegistrations int
	MaxSubscriptions int
	// InProcessURIs are URI prefixes under which only sessions of an
	// InProcessPeer (the HTTP gateway's) may register procedures: what
	// they register there stands for the gateway itself (a webhook's
	// delivery lock), and a client that took it first would hold the
	// gateway off. Others' REGISTERs get wamp.error.not_authorized.
	InProcessURIs []string
	// MaxWildcardRegistrations and MaxWildcardSubscriptions bound the
	// wildcard registrations and subscriptions one session may hold
	// (within MaxRegistrations and MaxSubscriptions), default 1024 each;
	// MaxRealmWildcardRegistrations and MaxRealmWildcardSubscriptions
	// bound a realm's wildcard patterns, default 4096 each, of which one
	// owner (Session.walkOwner: a client address or authid) makes at
	// most a quarter (wildCounts). A CALL or
	// PUBLISH to a URI not in the shard's lookup cache walks the
	// wildcard patterns that match it component by component, under the
	// realm's read lock: patterns built to match every component of a
	// URI but the last cost each such CALL a step per pattern (16,384
	// of them: milliseconds of the shard per CALL; see
	// defaultRealmWildcardLimit). Any index of wildcard patterns has such
	// a worst case, so their number is bounded. A
	// session joining a wildcard subscription that exists, or a shared
	// wildcard registration this node already has callees of, adds no
	// pattern and counts only toward its own bound. Past a bound the
	// request gets ERROR wamp.error.unavailable.
	MaxWildcardRegistrations      int
	MaxWildcardSubscriptions      int
	MaxRealmWildcardRegistrations int
	MaxRealmWildcardSubscriptions int
	// MaxMeshInvocations bounds the invocations other nodes of a mesh may
	// have in flight on this node; past it their calls get
	// wamp.error.unavailable. Default 65536.
	MaxMeshInvocations int
	// MaxMeshCalls bounds the calls one session may have in flight to
	// callees on other nodes, and a quarter of MaxMeshInvocations those of
	// one owner (as MaxCallsTotal's quarter: an anonymous session's client
	// address, an authenticated one's authid), so that no one caller takes
	// every slot of a callee node's MaxMeshInvocations. Past either a call
	// goes to a local callee of the registration when it has one, else it
	// gets ERROR wamp.error.unavailable. Default 4096.
	MaxMeshCalls int
	// MaxRetainedBytes bounds the payload bytes of retained events per
	// realm (with at most 65,536 topics). Past it a retained event is
	// delivered but not kept (and the topic's older one is dropped, so no
	// stale event is handed out). Default 64 MiB.
	MaxRetainedBytes int64
	// MaxRetainedPerPublisher and MaxRetainedBytesPerPublisher bound the
	// retained events one publisher keeps in a realm, and their bytes (as
	// MaxRetainedBytes counts them), so that one client cannot take the
	// realm's whole retained store: a publisher is an anonymous session's
	// client address (an IPv4 address or an IPv6 /64), an authenticated
	// session's authid (retshare.go). Past either a retained event is
	// delivered but not kept, as past the realm's bounds. Default a
	// quarter of the realm's: 16,384 events, MaxRetainedBytes / 4;
	// negative: no bound but the realm's.
	MaxRetainedPerPublisher      int
	MaxRetainedBytesPerPublisher int64
	// MaxTestamentBytes bounds the bytes all sessions' testaments hold
	// on the router (a testament's topic, payload and black/white lists,
	// and 160 bytes), and one owner's (retainOwner: an anonymous session's
	// client address, an authenticated session's authid) at most a
	// quarter of it. Past either, wamp.session.add_testament gets ERROR
	// wamp.error.unavailable. Testaments live as long as their sessions:
	// before, one address's 1,024 connections could hold 8 MiB each.
	// Default 64 MiB.
	MaxTestamentBytes int64
	// MaxSubscriptionBytes bounds the bytes all sessions' subscriptions
	// hold on the router, each session's hold of a subscription counted
	// as its topic or pattern and subOverhead bytes, and one owner's (as
	// MaxTestamentBytes: retainOwner, fixed at the session's first
	// subscription; none for an InProcessPeer's, which only the total
	// bounds) at most a quarter of it. Past either, SUBSCRIBE gets ERROR
	// wamp.error.unavailable. Before, MaxSubscriptions alone bounded them:
	// 65,536 subscriptions of 4 KiB URIs, 290 MB of heap, per connection,
	// 1,024 connections per address. The sessions' authorization caches
	// are bounded by as much again, counted apart (authzCache: 8 KiB at a
	// time, 45 KB a session at most; an owner's quarter of it, past which
	// its caches stop growing). Default 1 GiB.
	MaxSubscriptionBytes int64
	// MaxRegistrationBytes bounds the bytes all sessions' registrations
	// hold on the router, each session's hold of a registration (its own
	// or one it joined) counted as its procedure or pattern and
	// regOverhead bytes, and one owner's (as MaxSubscriptionBytes:
	// retainOwner, fixed at the session's first REGISTER; none for an
	// InProcessPeer's, which only the total bounds) at most a quarter of
	// it and less than what is left free. Past either, REGISTER gets
	// ERROR wamp.error.unavailable. Before, MaxRegistrations alone
	// bounded them: 65,536 registrations of 4 KiB URIs per connection,
	// 1,024 connections per address. Default 1 GiB.
	MaxRegistrationBytes int64
	// MaxCallsTotal bounds the calls in flight on the router, every
	// session's as a caller (those to other nodes' callees included), and
	// one owner's (as MaxSubscriptionBytes: retainOwner, an authid's in
	// its realm, fixed at the session's first CALL; none for an
	// InProcessPeer's, which only the total bounds) at most a quarter of
	// it. Past either, CALL gets ERROR
	// wamp.error.unavailable. Before, MaxPendingCalls alone bounded them:
	// a callee that never answers held about 216 bytes per call, 14 MB per
	// session at 65,536, and 1,024 connections per address. Default
	// DefaultCallsTotal.
	MaxCallsTotal int64
	// MaxConverted bounds a message the router builds by converting a
	// payload to the peer's serializer (proto.Encoder.MaxConverted):
	// converting can multiply a payload's length several times (CBOR half
	// floats or JSON escapes of control characters, to JSON), and the
	// message is built whole before the peer can refuse it. Past it an
	// EVENT is dropped (edgewamp_events_dropped_total{reason="too_big"}) and
	// a call fails with wamp.error.payload_size_exceeded. Default 32 MiB
	// (twice the largest inbound message).
	MaxConverted int
	// AuthLimits configures the brute-force limiter of authentications per
	// source address.
	AuthLimits AuthLimits
	// DecoySecret is what the WAMP-CRA challenges of authids that are not
	// users derive their salts from (a salt the same on every attempt for
	// the same authid, like a user's): keep it across restarts (cmd keeps
	// one under data_dir), or a restart changes every unknown authid's
	// salt and not the users', which tells them apart. Not derived from
	// the credentials, so that a reload leaves it (and the salts) as they
	// were. Empty: a random secret for this Router's life.
	DecoySecret []byte
	// Agent is the router's agent string in WELCOME. Default "edgewamp".
	Agent string
	// Logger receives one line per notable event. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock; tests inject a fake. Default time.Now. It must be
	// safe for concurrent use. The transports' deadlines should run on the
	// same clock (cmd passes one function to both).
	//
	// The call path does not read it per message: a CALL's timeout deadline
	// is taken from a coarse clock that the router's timer goroutine
	// refreshes from Now every millisecond while calls with a timeout
	// arrive (and not at all while none do), plus one millisecond. So a
	// call times out between its timeout and a millisecond later; only
	// when the timer goroutine is starved of CPU for longer than that (all
	// cores saturated: up to the scheduler's time slice, 10–20 ms) can the
	// coarse clock lag enough for a deadline to come early. Due timers are
	// checked against Now itself.
	//
	// Durations (timeouts, timers, windows, budgets) are measured with
	// Time.Sub between Now's readings, so time.Now's monotonic clock times
	// them and a step of the system clock moves none; the stamps other
	// nodes compare (retained events', callees' REGISTER times) and the
	// dates shown to clients are Now's wall clock.
	Now func() time.Time

	// manualTimers: no timer goroutine; the test drives Tick itself.
	manualTimers bool
}

// RealmConfig configures one realm.
type RealmConfig struct {
	// Name is the realm URI clients join.
	Name string
	// Anonymous allows the anonymous authmethod. When no Authenticators are
	// configured, anonymous is allowed regardless.
	Anonymous bool
	// AnonymousRole is the authrole of anonymous sessions. Default
	// "anonymous".
	AnonymousRole string
	// Authenticators are the realm's other authmethods, tried in the
	// client's HELLO order.
	Authenticators []Authenticator
	// Authorizer decides what sessions may do. nil allows everything
	// (security off) and discloses nobody unasked.
	Authorizer Authorizer
	// Users is the realm's static user store, used on reload to disconnect
	// sessions whose user was removed or lost its role. May be nil.
	Users *Users
	// URICheck is the URI validation rule. Default loose.
	URICheck proto.URIMode
}

// ErrClosed is returned by Router methods after Shutdown.
var ErrClosed = errors.New("route: router closed")

// Router is a WAMP router core: realms and shards. Create it with New, give
// each shard its Executor with Shard(i).Start, and feed it transports through
// the shards.
type Router struct {
	cfg    Config
	log    *slog.Logger
	shards []*Shard
	realms atomic.Pointer[map[string]*Realm] // copy-on-write; written under mu

	mu       sync.Mutex          // guards sessions and closing
	sessions map[uint64]*Session // every session with an id, router-wide
	// sessionsPeak: the most entries sessions held since it was last
	// checked (shrinkDue). Guarded by mu.
	sessionsPeak int
	closing      bool
	// draining is set by Drain: this router's callees take no new
	// invocations and new sessions are refused (drain.go).
	draining atomic.Bool
	// drainClosed is set once what was in progress at the drain's start
	// has ended: the router takes no new call (drain.go).
	drainClosed atomic.Bool

	auth    *workers
	limiter *authLimiter
	// testaments counts the bytes testaments hold (Config.MaxTestamentBytes).
	testaments testamentBudget
	// subBytes counts the bytes subscriptions hold
	// (Config.MaxSubscriptionBytes).
	subBytes testamentBudget
	// revoking queues the revocations' walks of the retained events
	// (queueRevokeRetained).
	revoking retainedRevocations
	// authzBytes counts the bytes the sessions' authorization caches are
	// charged for (authzCache), bounded as subBytes is, apart from it: a
	// cache is capped, never a SUBSCRIBE refused for it.
	authzBytes testamentBudget
	// regBytes counts the bytes registrations hold
	// (Config.MaxRegistrationBytes).
	regBytes testamentBudget
	// calls counts the calls in flight (Config.MaxCallsTotal).
	calls callBudget
	// walkOwners holds each client's share of walk budget, which its
	// sessions draw on besides their own (walkbudget.go).
	walkOwners walkOwners
	// loginBytes is what the logins in progress hold (joinState.held),
	// within Config.MaxLoginBytes. Shards add and release.
	loginBytes atomic.Int64
	// loginsLogged is when logLoginBytes last logged (Config.Now, ns).
	loginsLogged atomic.Int64
	// busyLogged is when logAuthBusy last logged (Config.Now, ns; 0:
	// never).
	busyLogged atomic.Int64
	// extraLogged is when logAuthExtra last logged (as busyLogged).
	extraLogged atomic.Int64
	// dropLogged is when logNotConvertible and logTooBig last logged an
	// event whose publisher is not on this node (dropLogDue).
	dropLogged [numDropLogs]atomic.Int64
	// dropLogs bounds, router-wide, the lines dropLogDue allows once per
	// publishing session (dropLogsPer10s a 10 s window).
	dropLogs lineLimiter
	// meshRetainLogged is when logMeshRetainRefused last logged.
	meshRetainLogged atomic.Int64
	// failLogs, lockLogs and panicLogs bound the failed-authentication,
	// lockout and panicking-Authenticator log lines (authrecover.go).
	failLogs, lockLogs, panicLogs lineLimiter
	// abortLogs bounds the lines of sessions aborted for what their
	// clients sent (Shard.abortLogged).
	abortLogs lineLimiter
	// authnPanics and authzPanics count the panics recovered in
	// Authenticators (and the rest of a login's check) and Authorizers
	// (authrecover.go; Stats).
	authnPanics, authzPanics atomic.Uint64
	// decoyKey derives WAMP-CRA decoy salts (Config.DecoySecret); static,
	// a reload keeps it.
	decoyKey *[32]byte

	mesh Mesh       // nil alone; static after AttachMesh (before any session)
	ms   *meshState // nil alone

	// epoch is Config.Now's reading at New, and epochNs its unix ns: the
	// timers' clock (now) is epochNs plus the time since epoch. Static
	// after New.
	epoch   time.Time
	epochNs int64

	// The coarse clock of the call path (see Config.Now and coarseNow).
	clockNs   atomic.Int64 // last reading of now; written by the timer goroutine
	clockLive atomic.Bool  // the timer goroutine refreshes clockNs every clockTick
	clockRead atomic.Bool  // clockNs was read (or wanted) since the last refresh

	kick           chan struct{} // a shard armed an earlier deadline, or wants the clock
	stopTimers     chan struct{}
	timersDone     chan struct{}
	timerBeat      atomic.Uint64 // advanced by timerLoop on each iteration (health.go)
	closeOnce      sync.Once
	welcome        [4]proto.Raw // WELCOME roles dict per serializer
	welcomeCompact [4]proto.Raw // the roles without feature flags, for tiny RawSocket limits
}

// New validates cfg and returns a Router. It starts the authentication
// worker pool; Shutdown stops it.
func New(cfg Config) (*Router, error) {
	var errs []error
	if len(cfg.Realms) == 0 {
		errs = append(errs, errors.New("route: at least one realm is required"))
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 1
	}
	if cfg.Shards > maxShards {
		errs = append(errs, fmt.Errorf("route: at most %d shards", maxShards))
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.GoodbyeTimeout <= 0 {
		cfg.GoodbyeTimeout = 3 * time.Second
	}
	if cfg.MaxCallTimeout > 0 && cfg.CallTimeout > cfg.MaxCallTimeout {
		errs = append(errs, fmt.Errorf("route: call timeout %v exceeds the maximum %v", cfg.CallTimeout, cfg.MaxCallTimeout))
	}
	if cfg.AuthWorkers <= 0 {
		cfg.AuthWorkers = 4
	}
	if cfg.MaxLoginBytes <= 0 {
		cfg.MaxLoginBytes = DefaultMaxLoginBytes
	}
	if cfg.AuthQueue <= 0 {
		cfg.AuthQueue = 4096
	}
	for _, p := range []*int{&cfg.MaxPendingCalls, &cfg.MaxRegistrations, &cfg.MaxSubscriptions} {
		if *p <= 0 {
			*p = defaultSessionLimit
		}
	}
	for _, p := range []*int{&cfg.MaxWildcardRegistrations, &cfg.MaxWildcardSubscriptions} {
		if *p <= 0 {
			*p = defaultWildcardLimit
		}
	}
	for _, p := range []*int{&cfg.MaxRealmWildcardRegistrations, &cfg.MaxRealmWildcardSubscriptions} {
		if *p <= 0 {
			*p = defaultRealmWildcardLimit
		}
	}
	if cfg.MaxMeshInvocations <= 0 {
		cfg.MaxMeshInvocations = defaultSessionLimit
	}
	if cfg.MaxMeshCalls <= 0 {
		cfg.MaxMeshCalls = defaultMeshCalls
	}
	if cfg.MaxRetainedBytes <= 0 {
		cfg.MaxRetainedBytes = 64 << 20
	}
	switch {
	case cfg.MaxRetainedPerPublisher == 0:
		cfg.MaxRetainedPerPublisher = DefaultRetainedPerPublisher
	case cfg.MaxRetainedPerPublisher < 0 || cfg.MaxRetainedPerPublisher > maxRetained:
		cfg.MaxRetainedPerPublisher = maxRetained
	}
	switch {
	case cfg.MaxRetainedBytesPerPublisher == 0:
		cfg.MaxRetainedBytesPerPublisher = cfg.MaxRetainedBytes / 4
	case cfg.MaxRetainedBytesPerPublisher < 0 || cfg.MaxRetainedBytesPerPublisher > cfg.MaxRetainedBytes:
		cfg.MaxRetainedBytesPerPublisher = cfg.MaxRetainedBytes
	}
	if cfg.MaxTestamentBytes <= 0 {
		cfg.MaxTestamentBytes = DefaultTestamentBytes
	}
	if cfg.MaxSubscriptionBytes <= 0 {
		cfg.MaxSubscriptionBytes = DefaultSubscriptionBytes
	}
	if cfg.MaxRegistrationBytes <= 0 {
		cfg.MaxRegistrationBytes = DefaultRegistrationBytes
	}
	if cfg.MaxCallsTotal <= 0 {
		cfg.MaxCallsTotal = DefaultCallsTotal
	}
	if cfg.MaxConverted <= 0 {
		cfg.MaxConverted = 32 << 20
	}
	if cfg.Agent == "" {
		cfg.Agent = "edgewamp"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lim, err := cfg.AuthLimits.withDefaults()
	if err != nil {
		errs = append(errs, err)
	}
	cfg.AuthLimits = lim
	r := &Router{cfg: cfg, log: cfg.Logger, sessions: map[uint64]*Session{}, limiter: newAuthLimiter(lim)}
	r.epoch = cfg.Now()
	r.epochNs = r.epoch.UnixNano()
	r.decoyKey = decoyKeyFrom(cfg.DecoySecret)
	realms := map[string]*Realm{}
	for i := range cfg.Realms {
		rc := cfg.Realms[i]
		if !proto.ValidURI([]byte(rc.Name), proto.URILoose) {
			errs = append(errs, fmt.Errorf("route: realm %q is not a valid URI", rc.Name))
			continue
		}
		if _, dup := realms[rc.Name]; dup {
			errs = append(errs, fmt.Errorf("route: realm %q is configured twice", rc.Name))
			continue
		}
		realms[rc.Name] = newRealm(r, rc)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.realms.Store(&realms)
	for i := 0; i < cfg.Shards; i++ {
		r.shards = append(r.shards, newShard(r, i))
	}
	for _, ser := range [...]proto.Serializer{proto.JSON, proto.MsgPack, proto.CBOR} {
		raw, err := proto.EncodeValue(ser, routerRoles())
		if err != nil {
			return nil, err
		}
		r.welcome[ser] = raw
		compact, err := proto.EncodeValue(ser, map[string]any{proto.RoleBroker: map[string]any{}, proto.RoleDealer: map[string]any{}})
		if err != nil {
			return nil, err
		}
		r.welcomeCompact[ser] = compact
	}
	r.auth = newWorkers(cfg.AuthWorkers, cfg.AuthQueue)
	r.kick = make(chan struct{}, 1)
	r.stopTimers = make(chan struct{})
	r.timersDone = make(chan struct{})
	if cfg.manualTimers {
		close(r.timersDone)
	} else {
		go r.timerLoop()
	}
	return r, nil
}

// Shard returns shard i (0 ≤ i < Shards).
func (r *Router) Shard(i int) *Shard { return r.shards[i] }

// Shards returns the number of shards.
func (r *Router) Shards() int { return len(r.shards) }

// Realm returns the realm named name, or nil.
func (r *Router) Realm(name string) *Realm { return (*r.realms.Load())[name] }

// now returns the clock of the router's durations, in nanoseconds on the
// scale of unix time at New: every timer (call timeouts, HELLO, GOODBYE,
// authentication delays), budget refill, window and log limiter reads it.
// It is the time since New by time.Time.Sub, which takes the monotonic
// readings of time.Now (a fake clock without them is taken as it reads,
// as before), added to New's unix time. Before, it was Config.Now's
// UnixNano, the wall clock: a step of the system clock (NTP's first sync
// on a board without a real-time clock, date -s, a VM resumed) moved every
// deadline by the step, so that a step forward failed every pending call
// with wamp.error.timeout and aborted every session waiting for its HELLO
// at the next tick, and a step back held them all off for its length
// (TestTimersIgnoreWallClockSteps). Values that are dates, compared with
// other nodes' or shown to clients, read wallNow.
func (r *Router) now() int64 { return r.epochNs + int64(r.cfg.Now().Sub(r.epoch)) }

// clock returns now as a time.Time (without a monotonic reading), for the
// login limiter, whose windows and lockouts are durations: before, it was
// given Config.Now, and its UnixNano stepped with the wall clock, so that
// a step forward lifted every lockout and forgot every failure in the
// window, and a step back held every lockout for the step's length
// (TestLoginLockoutIgnoresWallClockSteps). Not on the per-message path.
func (r *Router) clock() time.Time { return time.Unix(0, r.now()) }

// wallNow returns Config.Now in unix nanoseconds, the wall clock: for the
// stamps other nodes compare with theirs (a retained event's publication
// time, retainStamp; a callee's REGISTER time, which orders the mesh's
// first and last callees), never for a duration.
func (r *Router) wallNow() int64 { return r.cfg.Now().UnixNano() }

// deadlineAfter returns the deadline d after t (now's nanoseconds), saturating at
// the largest int64: a timeout of a few million hours (a Config's, meant
// as "practically never") must not wrap past the year 2262 into a
// deadline already gone.
func deadlineAfter(t int64, d time.Duration) int64 {
	if d > 0 && t > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return t + int64(d)
}

// clockTick is the refresh period of the coarse clock while it is in use.
const clockTick = time.Millisecond

// coarseNow returns the time on now's scale for a CALL's deadline
// without reading the clock: the coarse clock, refreshed every clockTick by
// the timer goroutine while it is being read. When it is asleep (no call
// in the last tick), it reads Config.Now once and wakes it. Safe for
// concurrent use; it never blocks and allocates nothing.
func (r *Router) coarseNow() int64 {
	if r.clockLive.Load() {
		if !r.clockRead.Load() {
			r.clockRead.Store(true)
		}
		return r.clockNs.Load()
	}
	if !r.clockRead.Load() {
		r.clockRead.Store(true)
		r.wakeTimers()
	}
	return r.now()
}

// refreshClock runs on the timer goroutine after each Tick. It refreshes
// the coarse clock and keeps it live while it was read since the last
// refresh, and lets it sleep otherwise. It reports whether the clock is
// live (the goroutine must wake again within clockTick).
func (r *Router) refreshClock() bool {
	if r.clockRead.Swap(false) {
		r.clockNs.Store(r.now())
		r.clockLive.Store(true)
		return true
	}
	r.clockLive.Store(false)
	return false
}

// timerLoop is the router's one timer goroutine: it sleeps until the
// earliest deadline any shard has armed (or a shard arms an earlier one) and
// then asks the shards with due timers to run them, on their own
// goroutines. While the coarse clock is in use it also wakes every
// clockTick to refresh it.
func (r *Router) timerLoop() {
	defer close(r.timersDone)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.timerBeat.Add(1)
		wait := r.Tick(time.Minute)
		if r.refreshClock() && wait > clockTick {
			wait = clockTick
		}
		t.Reset(wait)
		select {
		case <-r.stopTimers:
			return
		case <-r.kick:
		case <-t.C:
		}
	}
}

// Tick asks every shard with a due timer to run it and returns how long
// until the next deadline (at most max). The timer goroutine calls it;
// tests with a fake clock call it by hand.
func (r *Router) Tick(max time.Duration) time.Duration {
	now := r.now()
	next := now + int64(max)
	for _, s := range r.shards {
		d := s.nextDue.Load()
		if d == 0 {
			continue
		}
		if d <= now {
			s.kickTimers()
			continue
		}
		if d < next {
			next = d
		}
	}
	wait := time.Duration(next - now)
	if wait < 100*time.Microsecond {
		wait = 100 * time.Microsecond
	}
	return wait
}

// wakeTimers tells the timer goroutine that a shard armed an earlier
// deadline. It never blocks.
func (r *Router) wakeTimers() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Close stops the router's goroutines (timer, workers) without saying
// GOODBYE to anyone; Shutdown does both. Safe to call more than once.
// Call it once the transports have stopped: the logins queued for the
// workers are dropped, and a session still waiting for one would get no
// answer.
func (r *Router) Close() {
	r.closeOnce.Do(func() {
		close(r.stopTimers)
		<-r.timersDone
		r.auth.stop()
	})
}

// newSessionID draws a random session id in [1, 2^53] that no live session
// has, and registers s under it. While the router drains only internal
// sessions (JoinInternal: the gateway's) may join: the gateway has stopped
// taking new HTTP requests, and those it took before may need a pooled
// session to finish; its callees reopen theirs.
func (r *Router) newSessionID(s *Session, internal bool) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing || (r.draining.Load() && !internal) {
		return 0, ErrClosed
	}
	for {
		id := r.sessionIDCandidate()
		if _, taken := r.sessions[id]; !taken {
			r.sessions[id] = s
			return id, nil
		}
	}
}

func (r *Router) dropSession(s *Session) {
	r.mu.Lock()
	if r.sessions[s.id] == s {
		n := len(r.sessions)
		delete(r.sessions, s.id)
		if shrinkDue(&r.sessionsPeak, n, len(r.sessions)) {
			shrinkMap(&r.sessions, &r.sessionsPeak)
		}
	}
	r.mu.Unlock()
}

// hasSession reports whether a session of this router (any realm, joined
// or joining) has id. It takes r.mu: for meta calls, not the call path.
func (r *Router) hasSession(id uint64) bool {
	r.mu.Lock()
	_, ok := r.sessions[id]
	r.mu.Unlock()
	return ok
}

// SessionCount returns the number of sessions that have an id (joined or
// joining), router-wide.
func (r *Router) SessionCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Shutdown says GOODBYE wamp.close.system_shutdown to every session, waits
// until they are gone or ctx is done, and stops the worker pool. The
// transports must keep running until it returns (they deliver the GOODBYE
// replies); afterwards the Router accepts no new sessions.
func (r *Router) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	r.mu.Unlock()
	for _, s := range r.shards {
		sh := s
		sh.post(task{kind: tShutdown})
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		open := 0
		for _, s := range r.shards {
			open += int(s.open.Load())
		}
		if open == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-tick.C:
		}
	}
	r.Close()
	return err
}

// seedRand returns a PCG seeded from crypto/rand.
func seedRand() *rand.Rand {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])))
}

// idRand draws session ids and anonymous authids. ChaCha8, not PCG (the
// shards' publication ids and load balancing): every session sees its
// own id, and a generator whose state can be worked out from its outputs
// would let a peer predict other sessions' anonymous authids.
var idRand = struct {
	sync.Mutex
	r *rand.Rand
}{r: func() *rand.Rand {
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	return rand.New(rand.NewChaCha8(seed))
}()}

// randomID returns a random id in [1, 2^53] (WAMP §IDs: global scope ids
// MUST be drawn randomly from a uniform distribution).
func randomID() uint64 {
	idRand.Lock()
	v := idRand.r.Uint64N(proto.MaxID) + 1
	idRand.Unlock()
	return v
}

// routerRoles is the WELCOME.Details.roles announcement: exactly the
// features implemented.
func routerRoles() map[string]any {
	on := func(names ...string) map[string]any {
		f := map[string]any{}
		for _, n := range names {
			f[n] = true
		}
		return map[string]any{"features": f}
	}
	return map[string]any{
		proto.RoleBroker: on(
			proto.FeaturePublisherIdentification,
			proto.FeaturePublisherExclusion,
			proto.FeatureSubscriberBlackWhiteListing,
			proto.FeaturePatternBasedSubscription,
			proto.FeatureSubscriptionMetaAPI,
			proto.FeatureSessionMetaAPI,
			proto.FeatureEventRetention,
			proto.FeaturePayloadPassthruMode,
			"subscription_revocation", // a reload's (reload.go)
		),
		proto.RoleDealer: on(
			proto.FeatureProgressiveCallResults,
			proto.FeatureProgressiveCallInvocations,
			proto.FeatureCallTimeout,
			proto.FeatureCallCanceling,
			proto.FeatureCallReroute, // reroute.go
			proto.FeatureCallerIdentification,
			proto.FeaturePatternBasedRegistration,
			proto.FeatureSharedRegistration,
			proto.FeatureRegistrationMetaAPI,
			proto.FeatureSessionMetaAPI,
			proto.FeatureTestamentMetaAPI,
			proto.FeaturePayloadPassthruMode,
			"registration_revocation", // a reload's, and a mesh conflict's
		),
	}
}
