package edge

import "github.com/nats-io/nats-server/v2/server"

// A node killed (SIGKILL, a crash) is taken for dead PeerTimeout after it
// was last heard (2 s by default), but the NATS routes of a cluster to it
// close at once (the kernel ends its sockets). A client with automatic
// reconnection (Autobahn's Component: 0.2 to 1.5 s) is back on another
// node within that gap, and its single REGISTER found the dead node's
// claim held by a live life: refused procedure_already_exists, which
// Autobahn|Python and |JS raise in the application's on_join and do not
// retry, so the procedure stayed unregistered for good. A claim held by a
// peer that was a direct route and has none now is waited for as one of
// a life not heard yet (claims.go, take): granted once the peer is taken
// for dead, refused if its route comes back first or it is still heard
// after PeerTimeout; while its route is still open, for routeCloseGrace
// (claims.go, cutOff), the time this node may take to see it close. Peers reached through a hub (leaf nodes) have no
// route of their own and are not judged so.

// noteRouted records whether peer name is a direct route of this node's
// server, at its join (its first message came over that route). On the
// control dispatcher.
func (n *Node) noteRouted(name string) {
	if n.srv == nil || !n.hasRoute(name) {
		return
	}
	n.routedMu.Lock()
	if n.routed == nil {
		n.routed = map[string]bool{}
	}
	n.routed[name] = true
	n.routedMu.Unlock()
}

// wasRouted reports whether peer name was a direct route when it joined.
// Concurrency-safe.
func (n *Node) wasRouted(name string) bool {
	n.routedMu.Lock()
	defer n.routedMu.Unlock()
	return n.routed[name]
}

// routeLost reports whether peer name was a direct route when it joined
// and this node's server has no route to it now. Concurrency-safe; walks
// the server's routes (a claim conflict, not a hot path).
func (n *Node) routeLost(name string) bool {
	return n.wasRouted(name) && !n.hasRoute(name)
}

// hasRoute reports whether this node's server has a route to the server
// named name (ServerName is the node's name).
func (n *Node) hasRoute(name string) bool {
	rz, err := n.srv.Routez(&server.RoutezOptions{})
	if err != nil {
		return false
	}
	for _, r := range rz.Routes {
		if r.RemoteName == name {
			return true
		}
	}
	return false
}
