package loop

// inbound is the read side the framing code consumes (conn.in). gnet.Conn
// satisfies it (Peek returns io.ErrShortBuffer when fewer than n bytes are
// buffered; Peek's slice is valid only until Discard), and so do a TLS
// connection's decrypted input (tlsPlain, tls.go) and the tests' in-memory
// inBuf.
//
// The parsers in this package (wsReader.next, rawReader.next,
// readRawHandshake, handleHTTP) follow one contract, the one of the gnet
// examples: they Peek only as many bytes as the current step needs, never
// Peek(n <= 0), never Discard themselves, and return the number of bytes the
// caller must Discard after it has handled the result. A return of n == 0
// with a nil error means "need more bytes": the input is untouched and the
// call may be repeated once more bytes are buffered.
//
// Beware of gnet's edge cases, which inBuf copies on purpose so that tests
// catch misuse: Peek(n <= 0) returns everything buffered, and Discard(n <= 0)
// discards everything buffered. Never call Discard(0) for "nothing".
type inbound interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	InboundBuffered() int
}
