// Package gateway is edgewamp's embedded HTTP server: the HTTP ↔ WAMP
// bridge and declarative REST routes, Server-Sent Events, the OpenAPI
// document, health and Prometheus metrics (issue 12; in progress, see
// README's feature table).
//
// # Contract with the other packages
//
// gateway imports route and proto only (never loop, edge or oauth).
//
//   - It joins realms as in-process WAMP sessions: its own route.Peer,
//     attached with route.Shard.Open inside route.Shard.Do, fed with
//     route.Shard.ReceiveMessage. No socket, no serializer round trip beyond
//     JSON ⇄ the target peer's codec. Realm RBAC applies unchanged.
//   - Bearer tokens are checked through an interface gateway declares
//     (BearerVerifier); cmd passes oauth's verifier through an adapter.
//   - Other HTTP handlers (oauth's endpoints) are mounted on the gateway's
//     mux by cmd through Options; gateway does not know what they are.
//   - Metrics read counters the router and the loops already keep, through
//     an interface gateway declares and cmd implements over loop and route;
//     nothing on the call path takes a lock or allocates for metrics.
//   - Server: New(Options) (*Server, error), Start() error, Addr(),
//     Shutdown(ctx) error, ErrClosed after it.
package gateway
