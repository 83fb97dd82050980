package edge

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// A node killed (SIGKILL, a crash) is taken for dead PeerTimeout after it
// was last heard (2 s by default), but the NATS routes of a cluster to it
// close at once (the kernel ends its sockets). A client with automatic
// reconnection (Autobahn's Component: 0.2 to 1.5 s) is back on another
// node within that gap, and its single REGISTER found the dead node's
// claim held by a live life: refused procedure_already_exists, which
// Autobahn|Python and |JS raise in the application's on_join and do not
// retry, so the procedure stayed unregistered for good. A claim held by a
// peer that was a direct route and has none of the routes it had at its
// join now (by server id: a restarted node's new route is not the old
// life's) is waited for as one of
// a life not heard yet (claims.go, take): granted once the peer is taken
// for dead, refused if its route comes back first or it is still heard
// after PeerTimeout; while its route is still open, for routeCloseGrace
// (claims.go, cutOff), the time this node may take to see it close.
// A leaf-node link counts as a route: a hub sees an edge's link close,
// and an edge its hub's. Peers reached through another node (two edges
// of one hub, an edge below a middle tier) have no link of their own and
// are not judged so: refused until taken for dead, as before.

// noteRouted records whether peer name is a direct route of this node's
// server at its join (its first message came over that route), and the
// server ids of its routes then: NATS gives a server a new id at each
// start, so a route to a node killed and restarted under the same name
// (systemd's Restart= within milliseconds) is told from the old life's.
// Before, routes were looked up by name only: the new life's route,
// up before this node heard that life, was taken for the old one's, and
// a REGISTER racing the kill got only routeCloseGrace. On the control
// dispatcher.
func (n *Node) noteRouted(name string) {
	if n.srv == nil {
		return
	}
	ids := n.routeIDs(name, true, true)
	if len(ids) == 0 {
		return
	}
	n.routedMu.Lock()
	if n.routed == nil {
		n.routed = map[string][]string{}
	}
	n.routed[name] = ids
	n.routedMu.Unlock()
}

// wasRouted reports whether peer name was a direct route when it joined.
// Concurrency-safe.
func (n *Node) wasRouted(name string) bool {
	n.routedMu.Lock()
	defer n.routedMu.Unlock()
	return len(n.routed[name]) > 0
}

// routeLost reports whether peer name was a direct route when it joined
// and this node's server has none of the routes it had then (by server
// id: a route to a new life of the node is not its). Concurrency-safe;
// walks the server's routes (a claim conflict, not a hot path).
func (n *Node) routeLost(name string) bool {
	n.routedMu.Lock()
	had := n.routed[name]
	n.routedMu.Unlock()
	if len(had) == 0 {
		return false
	}
	leaf := slices.ContainsFunc(had, isLeafLink)
	route := slices.ContainsFunc(had, func(id string) bool { return !isLeafLink(id) })
	for _, id := range n.routeIDs(name, route, leaf) {
		if slices.Contains(had, id) {
			return false
		}
	}
	return true
}

// routeIDs returns the server ids of this node's server's routes to the
// server named name (ServerName is the node's name): one, but while a
// restarted node's old route has not closed yet; and, for each leaf-node
// link with that server, leafLink and the link's connection id (Leafz
// names the server, not its id): a leaf node killed and restarted at once
// has a new link, told from its old life's as a route is (before, leaf
// links were told by name only, and its client's REGISTER on the hub
// got only routeCloseGrace). A link that reconnects to a live node gets
// a new id too: its claims are waited for until it is heard since
// (claimStore.reachedOtherwise). It walks the routes, the leaf links, or
// both.
func (n *Node) routeIDs(name string, routes, leafs bool) []string {
	var ids []string
	if routes {
		if rz, err := n.srv.Routez(&server.RoutezOptions{}); err == nil {
			for _, r := range rz.Routes {
				if r.RemoteName == name && !slices.Contains(ids, r.RemoteID) {
					ids = append(ids, r.RemoteID)
				}
			}
		}
	}
	if !leafs {
		return ids
	}
	if lz, err := n.srv.Leafz(&server.LeafzOptions{}); err == nil {
		for _, l := range lz.Leafs {
			if l.Name == name {
				ids = append(ids, leafLink+strconv.FormatUint(l.ID, 10))
			}
		}
	}
	return ids
}

// leafLink prefixes a leaf-node link's connection id among routeIDs
// (a server id has no colon).
const leafLink = "leaf:"

func isLeafLink(id string) bool { return strings.HasPrefix(id, leafLink) }

// A leaf-node link can move: an edge that lists several nodes of a hub
// cluster reconnects to another when its link to one drops, alive all
// along and heard by the first through the second. The first found the
// link it had at the edge's join gone (routeLost), and waited for a live
// node's claims as for a killed one's: each REGISTER of its procedures
// there was refused only after 2 x PeerTimeout (4 s by default), and the
// claim worker walked the leaf links every 100 ms for as long as the
// edge stayed where it moved. A peer whose link is gone but that sent a
// heartbeat since the loss was found (sentSince) reaches this node some
// other way: it is not judged by that link any more (unRoute), as a peer
// reached through another node never was.

// sentSince reports whether life (name, boot) sent a heartbeat more than
// a heartbeat interval after t, by its stamps on this node's clock (how
// long after sending it was handled here does not count: a dispatcher
// that falls behind, a stall, handles a killed node's last heartbeats
// late, their stamps still older than its link's loss). Concurrency-safe.
func (n *Node) sentSince(name, boot string, t time.Time) bool {
	v := n.peers.view.Load()
	b, ok := v.boots[name]
	if !ok || b == 0 || strconv.FormatUint(b, 10) != boot {
		return false
	}
	s := v.sent[name]
	if s == nil {
		return false
	}
	at := s.Load()
	return at != 0 && at > clockNow()-int64(time.Since(t))+int64(n.opts.Heartbeat)
}

// unRoute records peer name's links as they are now: none, it is no
// longer judged by a link (wasRouted). Concurrency-safe.
func (n *Node) unRoute(name string) {
	ids := n.routeIDs(name, true, true)
	n.routedMu.Lock()
	if len(ids) == 0 {
		delete(n.routed, name)
	} else if _, ok := n.routed[name]; ok {
		n.routed[name] = ids
	}
	n.routedMu.Unlock()
}
