// Package route is edgewamp's routing core: realms, sessions, the dealer,
// the broker, the meta API, authentication and authorization.
//
// It knows no sockets, no gnet, no NATS and no HTTP: it is pure routing
// logic, testable in memory. It declares the interfaces it needs and other
// packages implement them:
//
//   - [Peer]: where a session's outbound messages go (a loop connection, an
//     in-process gateway session, a mesh link).
//   - [Executor]: runs a function on a shard's goroutine (a gnet event loop).
//   - [Authenticator]: one WAMP authentication method.
//
// # Concurrency model
//
// A Router has a fixed number of shards, one per event loop. A session, its
// pending-call tables and its timers belong to exactly one shard and are
// touched only on that shard's goroutine, so they need no lock. Fields are
// commented "owned by shard" accordingly.
//
// Work for another shard (an INVOCATION for a callee on shard B, the RESULT
// coming back, an EVENT fan-out, a kill) is a task value appended to the
// destination shard's mailbox: one mutex-protected slice per shard, drained
// in batches, with at most one Executor wake-up queued at a time. Payload
// bytes that cross shards are copied once. Tasks between one pair of shards
// keep their order, so progressive results arrive in order.
//
// Registration and subscription tables are realm-wide, read on every call
// and publish and written rarely: they live under the realm's RWMutex with a
// generation counter, and each shard keeps a small lookup cache per realm
// that it drops when the generation changes. Callee and subscriber lists are
// immutable once published and swapped atomically, so the call and publish
// paths take no lock in steady state; both are held in chunks, so that a
// change copies a chunk, not the list (calleeList, subSet).
//
// Meta events (on_join, on_register, on_delete ...) are queued per realm
// in the critical section that makes the change they announce, and
// published from that queue by one shard at a time, each to every shard's
// mailbox, its own included: subscribers get them in the order of the
// changes whichever shards made them (metaorder.go).
//
// Time: Config.Now is the one clock. Timers (call timeouts, HELLO and
// GOODBYE deadlines) sit in a per-shard heap; one router goroutine sleeps
// until the earliest deadline and asks the shards that have due timers to
// run them. The CALL path reads no clock: a call's deadline comes from a
// coarse clock that goroutine refreshes every millisecond while calls
// arrive (see Config.Now).
//
// Authentication runs on a bounded worker pool. The brute-force limiter
// (AuthLimits) is router-wide under its own mutex, taken on the HELLO and
// AUTHENTICATE paths and by the workers when a check ends; counters
// (ShardStats, Router.Stats) are atomics that anyone may read.
//
// Lock order: Router.mu before Realm.mu; a shard's mailbox lock, a
// realm's meta queue lock and the limiter's lock are leaves.
package route
