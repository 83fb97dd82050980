package route

import (
	"errors"
	"strconv"
	"sync"

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
// Refused rather than queued: a queue would need a wake-up across shards
// when another session of the address ends a gather (its sessions are on
// any shard), which the per-session queues do not have; devices behind
// one NAT meet the bound only while a node answers slowly and more than
// 256 of their meta calls or get_retained SUBSCRIBEs wait for it at once.
const maxAddrGathers = 256

// addrGathers counts the gathers under way by client address. Any
// goroutine (a gather's answer comes on the mesh's).
type addrGathers struct {
	mu sync.Mutex
	n  map[string]int // guarded by mu; only addresses with gathers
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

// done ends a gather take counted.
func (a *addrGathers) done(key string) {
	if key == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n[key] <= 1 {
		delete(a.n, key)
		return
	}
	a.n[key]--
}

// errAddrGathers is why a gather was not started: its session's address
// has maxAddrGathers under way.
var errAddrGathers = errors.New("route: too many gathers of this client address under way")

// refuseAddrGather answers meta call req of ss wamp.error.unavailable: its
// address has maxAddrGathers gathers under way.
func (s *Shard) refuseAddrGather(ss *Session, req uint64) {
	s.replyError(ss, proto.CodeCall, req, proto.URIUnavailable, "too many meta calls and get_retained subscriptions of this client address waiting for the other nodes (limit "+strconv.Itoa(maxAddrGathers)+"); retry later")
}
