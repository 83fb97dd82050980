// Package edge links edgewamp routers into one mesh over an embedded NATS
// server (README.md, "Mesh"; the design of what crosses the mesh is in
// route/mesh.go).
//
// # Contract with the other packages
//
// edge imports route and proto only (never loop, gateway or oauth).
//
//   - route declares what it needs from a mesh (route.Mesh, in route/mesh.go:
//     told when local interest appears and goes, asked to forward
//     publications, calls, results and meta queries that leave the node,
//     given entry points to inject what other nodes sent). edge implements
//     it; a Router without a Mesh behaves exactly as a single node and pays
//     one nil check per call/publish for it.
//   - Code outside the event loops reaches a shard only through
//     route.Shard.Do or the Router.Mesh* entry points, which post tasks;
//     NATS callbacks never block and never touch a shard's state directly.
//   - edge.Node: New(Options) (*Node, error) gathering every validation
//     error, Start() error (non-blocking after the server is ready),
//     Ready() bool (connected to the mesh, for /readyz), Shutdown(ctx) error.
//   - Shared state for other packages (oauth's token store, signing keys):
//     Node.KV binds a key-value bucket on the mesh's JetStream (kv.go:
//     linearizable Get, compare-and-set Create/Update/Delete on revisions,
//     List by prefix, ListSince a revision in batches (kvsince.go: a
//     few round trips, where List takes one an entry), per-entry TTL,
//     R1..R3) whose methods use only
//     standard types; cmd adapts it to the interface the consumer declares
//     (oauth.Store). edge never imports the consumer.
//
// # What a Node runs
//
//   - An embedded nats-server: routes (cluster) and leaf-node links as
//     configured, a client listener on 127.0.0.1 with a random port
//     (DontListen would stop the route listener), JetStream with a domain on
//     cluster nodes and hubs. Or, with Options.NatsURL, nothing: the node
//     joins a NATS deployment the user runs.
//   - One in-process nats.go connection (NoEcho: a node never receives what
//     it published).
//   - The sender goroutine: the only one that publishes. The router's
//     shards queue what they send (outq, bounded), so an event loop never
//     waits on NATS. It packs the route envelopes queued back to back for
//     one subject into one NATS message (frame.go); the dispatchers unpack
//     them in order.
//   - The pumps: two goroutines that move what NATS delivers, the events
//     and the rest, into two queues that share one budget in bytes
//     (Options.MaxInbound; past a message's share of it, it is dropped,
//     counted), so that NATS's reader never waits and a dispatcher that
//     does not keep up holds no more than the budget and its reserves
//     (in.go).
//   - The control dispatcher: node-to-node messages (route envelopes,
//     directory syncs, gather answers) and broadcasts (heartbeats, directory
//     changes, gather queries, goodbyes), in arrival order.
//   - The event dispatcher: it drains the event queue, dropping any copy
//     of an event already delivered, by publication id (in.go; NATS
//     delivers each event once to the node: its event subscriptions are
//     queue subscriptions in a group of its own, subject.go).
//   - The claim worker: JetStream KV operations for single registrations,
//     off every other goroutine. (Node.KV buckets are driven by their
//     callers' goroutines, which block on them.)
//
// # Subjects, peers and failures
//
// subject.go maps WAMP onto NATS subjects; peers.go keeps the peer table
// (heartbeats, PeerTimeout, restarts seen by a new boot id) and the
// registration directory (versioned changes, resync on any gap); claims.go
// the exclusive registrations; mesh.go the route.Mesh methods, the event
// dispatcher and gathers.
package edge
