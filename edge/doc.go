// Package edge links edgewamp routers into one mesh over an embedded NATS
// server (issue 11; in progress, see README's feature table).
//
// # Contract with the other packages
//
// edge imports route and proto only (never loop, gateway or oauth).
//
//   - route declares what it needs from a mesh (route.Mesh, in route/mesh.go:
//     told when local interest appears and goes, asked to forward publications
//     and calls that leave the node, given entry points to inject remote
//     events, invocations, results and meta queries). edge implements it; a
//     Router without a Mesh behaves exactly as a single node and pays one
//     nil check per call/publish for it.
//   - Code outside the event loops reaches a shard only through
//     route.Shard.Do; NATS callbacks never block and never touch a shard's
//     state directly.
//   - edge.Node: New(Options) (*Node, error) gathering every validation
//     error, Start() error (non-blocking after the server is ready),
//     Ready() bool (connected to the mesh, for /readyz), Shutdown(ctx) error.
//   - Shared state for other packages (oauth's token store, signing keys)
//     is offered as a small key-value API on top of JetStream KV whose
//     methods use only standard types; cmd adapts it to the interface the
//     consumer declares (oauth.Store). edge never imports the consumer.
package edge
