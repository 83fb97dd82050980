package oauth

import (
	"context"
	"errors"
	"time"
)

// Store keeps the server's state: refresh-token families, device codes,
// authorization codes, revoked token ids, the signing key ring and the CSRF
// key. It is a small key-value API whose primitives map one to one onto a
// JetStream KV bucket (Get, Create, Update with an expected revision,
// Delete with an expected revision, keys by prefix), so that every node of
// a mesh can share one store; NewMemStore and OpenDiskStore implement it
// for a single node, and the storetest package checks any implementation
// against the semantics below (storetest.Run).
//
// # Keys
//
// A key is 1 to 255 bytes of [A-Za-z0-9_=-] tokens joined by single dots
// (no leading, trailing or double dot): a valid NATS KV key and a valid
// file-name-free string. oauth uses these prefixes:
//
//	rt.<family id, hex>      a refresh-token family (one per login)
//	ru.<sha256 hex>          the families of one (realm, client, user)
//	dc.<sha256 hex>          a device code (RFC 8628), by the code's hash
//	uc.<user code>           a device code's user code → the code's hash
//	ac.<sha256 hex>          an authorization code, by the code's hash
//	au.<sha256 hex>          the expiries of the codes of one (realm, user)
//	da.<sha256 hex>          the device authorizations of one source address
//	                         over the last minute (shared stores only)
//	rv.<token or grant id>   a revoked access token (jti) or grant (gid)
//	rv.client.<client id, base64url>  a client's cut-off: its tokens
//	                         without a gid issued up to then are revoked
//	keys.ring                the signing key ring (private keys, JSON)
//	keys.csrf                the key of the login page's CSRF tokens
//
// # Semantics oauth relies on
//
//   - Linearizable per key: a Get, Update or Delete that starts after a
//     write returned sees that write (or a later one), on every node. (A
//     JetStream adapter must not read from a lagging replica: disable
//     direct gets or use the leader.) oauth survives a stale Get, treating
//     it as a conflict or a temporary failure, but never as proof of a
//     reused refresh token.
//   - Revisions: every successful Create or Update returns the entry's new
//     revision, a number > 0 that differs from every revision the key had
//     before (a stream sequence number qualifies). oauth only compares
//     revisions for equality.
//   - Create fails with ErrExists when the key holds a live entry; a
//     deleted or expired key may be created again.
//   - Update(key, value, rev, ttl) succeeds only when the key's current
//     revision is rev; otherwise it fails with ErrRevision (for an absent
//     key ErrNotFound or ErrRevision: oauth treats both as "changed").
//   - Delete(key, rev): rev 0 deletes unconditionally and succeeds on an
//     absent key; rev > 0 deletes only when the current revision is rev,
//     else ErrRevision (ErrNotFound or ErrRevision when absent).
//   - Get returns ErrNotFound for an absent, deleted or expired key.
//   - List(prefix) returns the live entries whose keys start with prefix
//     (which ends with a dot), in any order. It need not be a consistent
//     snapshot: entries written or deleted meanwhile may or may not appear.
//   - TTL: ttl > 0 allows the store to forget the entry once ttl has
//     passed since this write, never earlier; ttl == 0 keeps it until it is
//     deleted. It is only a hint for garbage collection: every value oauth
//     writes carries its own expiry, expired records are treated as absent,
//     and the server deletes them itself (Delete with their revision) from
//     time to time, so a store may ignore ttl, or apply it only to Create
//     (JetStream's per-message TTL), and stay correct.
//   - Values are opaque bytes up to 64 KiB (JSON written by oauth). The
//     store must not alter them; a Get may return a slice the caller keeps
//     (implementations copy).
//   - Every method is safe for concurrent use by many goroutines and, for a
//     shared store, many nodes. Methods may block on I/O and honour ctx.
//   - Errors other than the three sentinels (I/O, timeouts) are passed to
//     the HTTP client as a server error (HTTP 500/503) and logged.
type Store interface {
	// Get returns the entry of key, or ErrNotFound.
	Get(ctx context.Context, key string) (Entry, error)
	// Create stores value under a new key, or fails with ErrExists.
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) (rev uint64, err error)
	// Update replaces the value of key if its revision is still rev.
	Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (newRev uint64, err error)
	// Delete removes key; with rev > 0 only if its revision is still rev.
	Delete(ctx context.Context, key string, rev uint64) error
	// List returns the live entries under prefix (which ends with ".").
	List(ctx context.Context, prefix string) ([]Entry, error)
}

// SinceLister is an optional interface of a Store whose List costs a
// round trip per entry (a shared store reached over a network): the
// server then reads its revocation set incrementally, each sync asking
// only for the entries written since the greatest revision it was given,
// and lists everything in a few round trips when it must (at start, after
// a failed sync, and with its garbage collection). edge's JetStream bucket
// implements it (a batched read through a consumer).
//
// ListSince(prefix, rev) returns the live entries under prefix whose
// revision is greater than rev, and needs a store whose revisions go on
// increasing across all keys, in the order the writes became visible
// (stream sequence numbers qualify), so that the result holds every live
// entry of the prefix whose revision lies between rev and the greatest
// revision in it: an entry it leaves out (written meanwhile, or not yet
// seen by the replica that answered) has a greater revision than every
// entry it returns, and comes with the next call from that revision.
// Deleted entries are not reported. It need not be linearizable (a
// replica may answer, behind the latest writes), and may return the
// entries in any order. With an error it may return entries too (what it
// read before it failed, its deadline passed), under the same rule: the
// server keeps them and goes on from the greatest revision among them.
type SinceLister interface {
	ListSince(ctx context.Context, prefix string, rev uint64) ([]Entry, error)
}

// UsageReporter is an optional interface of a Store bounded in bytes for
// all its records together (edge's JetStream bucket, shared by every node
// of a mesh: 64 MiB). Usage returns the bytes the records take and the
// bound (0 or less: none). The server then issues device authorizations,
// which need no secret and store two records each for the code's
// lifetime, only while the store is less than half full: each node's own
// budget (deviceAuthsPerNodeMinute) summed over a mesh of ten or more
// nodes filled the shared bucket, and every write of every node (logins,
// refreshes, revocations) failed until the codes expired. Authorization
// codes are issued only while it is less than three quarters full (one
// signed-in user's sign-ins filled it the same way).
type UsageReporter interface {
	Usage(ctx context.Context) (used, limit int64, err error)
}

// Entry is one key's value and revision.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
}

// Store errors. Implementations return these (possibly wrapped, for
// errors.Is) for the conditions the Store contract names.
var (
	ErrNotFound = errors.New("oauth: store: no such key")
	ErrExists   = errors.New("oauth: store: key exists")
	ErrRevision = errors.New("oauth: store: revision mismatch")
)

// ValidKey reports whether key follows the Store key syntax. Stores may
// use it to refuse bad keys; oauth only ever builds valid ones.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > 255 {
		return false
	}
	prevDot := true // a leading dot is as bad as a double one
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
			continue
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '=':
		default:
			return false
		}
		prevDot = false
	}
	return !prevDot
}

// validPrefix reports whether prefix is a List prefix: a valid key
// followed by a dot.
func validPrefix(prefix string) bool {
	return len(prefix) > 1 && prefix[len(prefix)-1] == '.' && ValidKey(prefix[:len(prefix)-1])
}

// errBadKey is returned by the bundled stores for a key outside the syntax.
var errBadKey = errors.New("oauth: store: invalid key")

// maxValue is the largest value the bundled stores accept.
const maxValue = 64 << 10
