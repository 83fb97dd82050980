// Package loop serves edgewamp's transports, WebSocket and RawSocket, on a
// gnet event loop per core.
//
// It owns the bytes between the socket and the router: the HTTP upgrade and
// the RawSocket handshake, framing (its own parser over gnet's buffer: peek,
// bound the declared length, wait for the whole frame, unmask in place,
// dispatch, discard), keepalive, limits and backpressure. Decoded messages go
// to a route.Shard per loop; a connection implements route.Peer.
//
// Concurrency: a connection, its session and its buffers belong to the loop
// that accepted it and are touched only on that loop's goroutine. Work from
// other loops arrives as tasks through the shard's mailbox.
package loop
