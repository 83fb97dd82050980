// Package loop serves edgewamp's transports, WebSocket and RawSocket, on a
// gnet event loop per core.
//
// It owns the bytes between the socket and the router: the HTTP upgrade and
// the RawSocket handshake, framing (its own parser over gnet's buffer: peek,
// bound the declared length, wait for the whole frame, unmask in place,
// dispatch, discard; frames of 64 KiB or more are gathered in chunks outside
// gnet's buffer, large.go), keepalive, limits and backpressure (pongs
// included, pong.go). Decoded messages go to a route.Shard per loop; a
// connection implements route.Peer.
//
// Accepting: the engine binds its listeners and accepts on a goroutine per
// listener, counting each connection's descriptor, and hands the
// connection to a loop (gnet's EventLoop.Enroll); gnet accepts nothing, since
// an accept error would stop all its loops (accept.go, fdlimit.go).
//
// Concurrency: a connection, its session and its buffers belong to the loop
// it was handed to and are touched only on that loop's goroutine. Work from
// other loops arrives as tasks through the shard's mailbox.
//
// Writing: output is only appended to a connection's pending buffer; it
// reaches the socket in the loop's flush, once per entry point, and a
// write error (which makes gnet close the connection synchronously, inside
// the write) never re-enters the flush nor frees what a walk holds. The
// rules, and how a second send backend slots in, are in flush.go.
//
// TLS: a TLS listener is a plain TCP listener; its connections' records are
// decrypted and encrypted on the loop that owns them, by crypto/tls over a
// non-blocking shim (tls.go), and only the handshake leaves the loop, for
// a goroutine of a bounded pool (tlshs.go). The parsers read the decrypted
// input as they read gnet's buffer (inbound.go); the flush encrypts the
// pending output before the send backend writes it.
//
// Each connection records one close reason, logs it once (rate-limited)
// and counts it; Engine.Stats exports the counters (close.go). The
// deadlines run on Options.Now, which tests drive.
package loop
