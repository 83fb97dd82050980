// Package route is edgewamp's routing core: realms, sessions, the dealer,
// the broker, the meta API, authentication and authorization.
//
// It knows no sockets, no gnet, no NATS and no HTTP: it is pure routing logic,
// testable in memory. It declares the interfaces it needs (Peer for a
// session's outbound messages, Executor for a shard's loop, Authenticator)
// and other packages implement them.
package route
