// Package gateway is edgewamp's embedded HTTP server: the HTTP ↔ WAMP
// bridge and declarative REST routes, Server-Sent Events, HTTP callees
// and webhook subscribers, the OpenAPI document, health and Prometheus
// metrics.
//
// # Endpoints
//
//	POST /wamp/{realm}/call/{procedure}    call (Accept: text/event-stream for progressive results)
//	POST /wamp/{realm}/publish/{topic}     publish
//	GET  /wamp/{realm}/events/{topic}      follow a topic as Server-Sent Events (?match=prefix|wildcard)
//	<configured routes>                    method + path pattern → call or publish (routes.go, expr.go; a reload replaces them: reload.go)
//	GET  /openapi.json                     OpenAPI 3.1 of all of the above
//	GET  /metrics                          Prometheus
//	GET  /healthz, /readyz                 liveness, readiness
//	<Options.Mount>                        handlers cmd mounts (the OAuth2 server's /oauth/, /.well-known/)
//
// Errors are RFC 9457 problem documents carrying the WAMP error URI, args
// and kwargs (problem.go has the status table).
//
// # Contract with the other packages
//
// gateway imports route and proto only (never loop, edge or oauth).
//
//   - It joins realms as in-process WAMP sessions: its own route.Peer
//     (sess), attached with route.Shard.Open and route.Shard.JoinInternal
//     inside route.Shard.Do, fed with route.Shard.ReceiveMessage. No
//     socket and no serializer round trip beyond JSON ⇄ the other peer's
//     codec: HTTP request JSON goes to JSON callees as it came, and JSON
//     results go back to HTTP clients byte for byte. Each request acts as
//     the principal it authenticated as (realm, authid, authrole), so
//     realm RBAC applies unchanged; a principal's requests share a small,
//     bounded pool of sessions (pool.go says why, and what bounds it).
//   - Bearer tokens are checked through BearerVerifier, which gateway
//     declares; cmd adapts oauth's verifier (or a JWKS file's) to it. API
//     keys and Crossbar-style signed requests are configured here (and
//     replaced by SetAccess).
//   - Other HTTP handlers are mounted by cmd through Options.Mount;
//     gateway does not know what they are.
//   - Metrics read the counters the router and the loops keep through
//     StatsSource, which gateway declares and cmd implements over loop and
//     route; nothing on the call path takes a lock or allocates for them.
//   - Server: New(Options) (*Server, error), Start() error, Addr(),
//     Prepare and Apply (a configuration reload: Prepare checks and builds
//     the realms' bridge access, the API and signing keys, the routes, the
//     HTTP callees and the webhooks before the router takes the reload,
//     cmd refusing the reload on its error; Apply, after the verifier's
//     and the router's, installs the first three as one snapshot,
//     reload.go, keys.go, lets the HTTP callees and webhooks the router
//     removed register and subscribe again, revoke.go, ends the SSE
//     streams the new configuration no longer authorizes, grant.go, and
//     adds, removes and replaces the callees and webhooks by name,
//     runners.go), SetAccess (the same keeping the routes),
//     SetRealms (keeping the keys and routes too), ValidateKeys (keys
//     alone, without a server), RevokeBearer (cmd
//     calls it from the OAuth2 server's revocations: the SSE streams of
//     revoked tokens end, for a verifier that implements BearerRevoker;
//     a reload matches a stream's route auth.roles against the roles
//     its principal holds now, for one that implements BearerRoles),
//     Shutdown(ctx) error, ErrClosed after it.
//   - The event loops' HTTP lane (lane.go): StartLane(addr) instead of
//     Start when a loop.HTTPLane listener serves the port; ServeLane and
//     HandOff are loop.Lane's methods (cmd adapts the LaneWriter type, so
//     that gateway does not depend on loop's types).
//
// # Concurrency
//
// HTTP requests run on net/http's goroutines, or, for bridge calls served
// by the HTTP lane, on the event loop of the request's connection, which is
// the goroutine of the shard of the session used (lane.go). Others reach a
// session's shard
// only through shardQ, a per-shard mailbox drained inside one Shard.Do
// (a burst of requests costs one event-loop wake-up). State marked "owned
// by shard" (a session's pending calls, subscriptions, invocations) is
// touched only there; the router calls the session's Send and Close
// there too, and Send never blocks: it hands results and events to the
// HTTP side through bounded channels, cutting a reader that does not keep
// up. The pool's and the limits' maps are guarded by leaf mutexes.
//
// # What a client can make the gateway hold
//
// Every resource is bounded (Options.Limits): connections (MaxConnections;
// more wait in the kernel's backlog), header bytes and time (MaxHeader,
// ReadHeaderTimeout: slowloris), body bytes and time (MaxBody or a
// route's BodyLimit → 413, BodyTimeout → 408, for every request's body,
// read or not: bodyWatch), requests in flight (in all
// → 503, per principal → 429, requests without credentials per client
// address → 429; SSE streams are not requests),
// WAMP sessions (MaxSessions; idle
// principals' sessions are closed first), SSE streams (in all → 503, per
// client address → 429), each stream's queue (SSEQueue frames and
// SSEBuffer bytes; a slower reader is cut) and each write (WriteTimeout),
// failed authentications per address (AuthFailures a minute → 429 without
// checking credentials; concurrent checks reserve their place and the
// others wait, so no more are checked than the failures left),
// signed-request nonces, HTTP callees' requests in
// flight (MaxConcurrent → wamp.error.unavailable) and webhooks' queues
// (Queue events and QueueBytes bytes; drops are counted).
package gateway
