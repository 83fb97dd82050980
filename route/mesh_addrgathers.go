package route

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/edgewamp/edgewamp/proto"
)

// Gathers per client address.
//
// A node takes at most 1,024 gathers at a time (edge's maxGathers; past
// it Gather refuses with edge.ErrBusy), each up to mesh.gather_timeout,
// and a session at most maxSessionGathers (16) of them: so that 64
// sessions from one address held every gather of the node while another
// node answered slowly, and then every other session's gathered meta
// calls were answered wamp.error.unavailable and its get_retained
// SUBSCRIBEs got this node's retained events only (and the node's own
// gathers, a dead node's check and a retained drop, failed too). The
// sessions of one client address (an IPv4 address, an IPv6 /64, as the
// login limiter and the retained share count them; gatherKey)
// now hold at most maxAddrGathers of them, a quarter of the node's; past
// it, a meta call that would ask the other nodes is answered
// wamp.error.unavailable and a get_retained SUBSCRIBE gets this node's
// retained events, as when the node's gathers are all taken. The HTTP
// gateway's in-process sessions are not counted (its own limits bound its
// clients), nor are the networks exempt from the login limiter.
//
// Past it a meta call is refused (the caller is told, and may retry), but
// a get_retained SUBSCRIBE waits: its session's further gathers wait with
// it, in order, until a gather of the address ends and wakes it (wait,
// done), so that devices behind one NAT subscribing with get_retained
// while a node answers slowly each get every node's retained events.
// Before, past the bound each got this node's retained events only,
// without a word (its SUBSCRIBED, and no retained event whose only copy
// was on the slow node: 44 of 300 such devices in
// TestMeshGetRetainedPastAddressBoundWaits). The sessions waiting so are
// at most maxAddrWaiters per address; past it, this node's retained events
// only, as before. A waiting get_retained holds its session's live events
// as any pending one does, within the same bounds.
const maxAddrGathers = 256

// maxAddrWaiters bounds the sessions of one address waiting for one of
// its gathers to end (a wake-up each, dropped when woken).
const maxAddrWaiters = 4096

// addrGathers counts the gathers under way by client address. Any
// goroutine (a gather's answer comes on the mesh's).
type addrGathers struct {
	mu sync.Mutex
	n  map[string]int // guarded by mu; only addresses with gathers
	// waits are the wake-ups of the sessions waiting for a gather of
	// their address to end, in order; guarded by mu; only addresses with
	// waiters.
	waits map[string][]func()
}

// gatherKey returns the client address ss's gathers count against, as
// the login limiter keys it: "" for none (an in-process session, a
// transport without an address, a network of limits.auth_failures.exempt,
// such as a trusted gateway or a local bridge). Owned by shard.
func (s *Shard) gatherKey(ss *Session) string {
	if _, inProcess := ss.peer.(InProcessPeer); inProcess {
		return ""
	}
	return s.r.limiter.key(ss.transport.RemoteAddr)
}

// take counts a gather of key; false, counting nothing, when key has
// maxAddrGathers under way.
func (a *addrGathers) take(key string) bool {
	if key == "" {
		return true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key] >= maxAddrGathers {
		return false
	}
	if a.n == nil {
		a.n = map[string]int{}
	}
	a.n[key]++
	return true
}

// wait counts a gather of key as take does and reports addrTaken; when
// key has maxAddrGathers under way it records wake, to be called (on any
// goroutine, without the lock) once one of them ends, and reports
// addrWaiting; addrRefused, recording nothing, past maxAddrWaiters.
// Taking or recording under one lock, a waiter always has a gather under
// way whose end wakes it.
func (a *addrGathers) wait(key string, wake func()) addrTake {
	if key == "" {
		return addrTaken
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key] < maxAddrGathers {
		if a.n == nil {
			a.n = map[string]int{}
		}
		a.n[key]++
		return addrTaken
	}
	if len(a.waits[key]) >= maxAddrWaiters {
		return addrRefused
	}
	if a.waits == nil {
		a.waits = map[string][]func(){}
	}
	a.waits[key] = append(a.waits[key], wake)
	return addrWaiting
}

type addrTake int

const (
	addrTaken addrTake = iota
	addrWaiting
	addrRefused
)

// done ends a gather take or wait counted, and wakes the first session
// waiting for one of key's gathers to end.
func (a *addrGathers) done(key string) {
	if key == "" {
		return
	}
	a.mu.Lock()
	if a.n[key] <= 1 {
		delete(a.n, key)
	} else {
		a.n[key]--
	}
	wake := a.popWaiter(key)
	a.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// kick wakes the first session waiting for a gather of key if key has
// fewer than maxAddrGathers under way: called by a woken session after
// its turn, so that a wake-up it did not use (it left, it unsubscribed,
// it is in debt) goes to the next one rather than being lost.
func (a *addrGathers) kick(key string) {
	a.mu.Lock()
	var wake func()
	if a.n[key] < maxAddrGathers {
		wake = a.popWaiter(key)
	}
	a.mu.Unlock()
	if wake != nil {
		wake()
	}
}

// popWaiter removes and returns key's first waiter (nil: none). Called
// with mu held.
func (a *addrGathers) popWaiter(key string) func() {
	w := a.waits[key]
	if len(w) == 0 {
		return nil
	}
	wake := w[0]
	w[0] = nil
	if len(w) == 1 {
		delete(a.waits, key)
	} else {
		a.waits[key] = w[1:]
	}
	return wake
}

// errAddrGathers is why a gather was not started: its session's address
// has maxAddrGathers under way.
var errAddrGathers = errors.New("route: too many gathers of this client address under way")

// refuseAddrGather answers meta call req of ss wamp.error.unavailable: its
// address has maxAddrGathers gathers under way.
func (s *Shard) refuseAddrGather(ss *Session, req uint64) {
	s.replyError(ss, proto.CodeCall, req, proto.URIUnavailable, "too many meta calls and get_retained subscriptions of this client address waiting for the other nodes (limit "+strconv.Itoa(maxAddrGathers)+"); retry later")
}

// addrWoken runs on ss's shard when a gather of its address (key) ended
// while its get_retained gathers waited for one: they go on (and wait
// again if another session took the gather), and the wake-up passes on if
// they did not take it.
func (s *Shard) addrWoken(ss *Session, key string) {
	ss.retainsAddrWait = false
	s.nextRetained(ss)
	s.r.ms.addrs.kick(key)
}

// gather asks the other nodes q through the mesh and makes the gather end
// once whatever the Mesh does: by done or by the error it returns,
// whichever comes first (route.Mesh's contract, which edge's Gather broke
// once: a timer ended a gather and ran done while its query was refused,
// and Gather returned the error too). Its callers give back what they hold
// for the gather (its address's slot, its session's count) in either, and
// answer its request in either: before, a gather ended both ways gave them
// back twice (a session's count at -1, another session's gather of the
// address uncounted) and answered a meta call twice (ERROR, then RESULT).
// It returns nil when done came first (the gather ended there, or ends
// soon: its callers count it as under way, and done's work on the shard
// gives it back after their turn). Any goroutine.
func (r *Router) gather(q []byte, done func(answers [][]byte, missing []string)) error {
	var ended atomic.Bool
	err := r.mesh.Gather(q, func(answers [][]byte, missing []string) {
		if ended.CompareAndSwap(false, true) {
			done(answers, missing)
		}
	})
	if err != nil && !ended.CompareAndSwap(false, true) {
		if r.ms.endedTwice.Add(1) == 1 {
			r.log.Error("mesh: a gather was both answered and refused by the mesh (a bug); ended once, by its answers", "err", err)
		}
		return nil
	}
	return err
}
