package loop

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
)

// TLS on the event loops.
//
// A TLS listener is a gnet listener like any other: a TLS connection is one
// descriptor, on the loop that accepted it from accept to close, and once
// its handshake is done no goroutine serves it. Everything after the
// record layer — sniffing, framing, routing, limits, backpressure,
// keepalive — is the plaintext code, reading a buffer of decrypted input
// instead of gnet's buffer.
//
// The handshake runs off the loop. crypto/tls runs a handshake only as one
// blocking call, so each runs on a goroutine (tlshs.go), started once the
// client's ClientHello is whole (in one record or several), at most
// Options.MaxTLSHandshakes at a time; the others wait their turn, their
// bytes held in a bounded buffer. Of those running or waiting, at most
// Options.MaxTLSHandshakesPerAddress come from one client address (an
// IPv4 address, an IPv6 /64): past it a connection is closed when its
// handshake would start, so that one client's stalled handshakes cannot
// take every goroutine and make the others queue. The descriptor stays on
// gnet: OnTraffic moves whole records from gnet's buffer to the handshake
// and wakes its goroutine; what crypto/tls writes is handed to the loop as
// a task and flushed like any output. handshake_timeout, counted from
// accept, covers the TLS handshake and the WebSocket upgrade or RawSocket
// handshake after it: the scan closes a connection that has not finished
// both, and closing ends the handshake's goroutine (its reads and writes
// fail).
//
// Records run on the loop. Once the handshake is done the loop owns the
// tls.Conn, whose transport is a shim (tlsShim) over gnet's buffers: its
// Read hands crypto/tls the next whole record gnet has buffered, or, when
// none is whole, a net.Error whose Timeout() and Temporary() are true.
// crypto/tls leaves the connection usable after such an error: in
// readRecordOrCCS (conn.go, Go 1.26) an error from the transport is kept
// as the connection's permanent error (c.in.setErrorLocked) only when it is
// not a net.Error or its Temporary() is false, and the bytes of a partial
// record already read stay in c.rawInput for the next call
// (TestTLSShimWouldBlockKeepsConnUsable holds that to the toolchain in
// use). tlsRead decrypts into the plaintext buffer (tlsPlain) until no
// whole record is left; the parsers read that buffer. Output is framed in
// plaintext into conn.out like any connection's; conn.flush has it
// encrypted (seal: the tls.Conn's Write, whose records the shim appends to
// conn.ct) and hands the ciphertext to the send backend, conn.write. What
// crypto/tls writes on its own (alerts, a KeyUpdate answer, close_notify)
// goes to conn.ct in the order it was produced.
//
// Bounds: gnet's buffer holds at most one partial record per connection
// (the shim takes whole records only); crypto/tls at most one record
// within a read callback and none between two, but for a handshake
// message not yet whole, which it keeps across callbacks (c.hand: up to
// 64 KiB, a Certificate 256 KiB) and which after the handshake may be at
// most tlsPostHandshakeMax; the plaintext buffer a partial frame shorter
// than largeMin (or an HTTP header within max_handshake) and one 16 KiB
// step; the inbound budget counts them (account), the plaintext buffer by
// its capacity. Between read callbacks a connection's plaintext buffer is
// returned to the loop's pool when empty, and a partial frame is kept in
// a buffer of about its size, not in a pooled one of up to keepMax
// (tlsPlain.release); the input buffers crypto/tls keeps are released by
// tlsTrim (tlstrim.go); its output buffers are pooled by crypto/tls.
//
// Kernel TLS (TCP_ULP "tls") slots in at the two seams, seal and tlsRead,
// in tlsHandshakeDone: when the loop takes the connection over it would
// install the traffic keys and sequence numbers on the socket
// (setsockopt SOL_TLS TLS_TX, TLS_RX) and from then on write plaintext
// (seal becomes the identity; the send backend, conn.write, is unchanged)
// and read plaintext (cn.in becomes gnet's buffer again; records other
// than data — alerts, KeyUpdate — come through recvmsg's control messages,
// which gnet's read path would have to pass on; TX alone needs nothing of
// gnet). crypto/tls does not export the traffic secrets:
// Config.KeyLogWriter hands them over, bound to the connection through a
// per-connection config (GetConfigForClient) — TLS 1.3:
// CLIENT_/SERVER_TRAFFIC_SECRET_0, with the sequence numbers 0 but for the
// session tickets the server sent, which the shim sees written; TLS 1.2:
// the master secret, from which the key block is derived. A KeyUpdate
// would have to be handled on the loop (new keys installed). This VM's
// kernel has no tls module, so none of it is built yet.

// Record layer constants (RFC 8446 §5.1, RFC 5246 §6.2).
const (
	recordHeaderLen     = 5
	recordTypeHandshake = 22
	// handshakeTypeClientHello is the type of the client's first
	// handshake message (RFC 8446 §4).
	handshakeTypeClientHello = 1
	maxPlaintext             = 16384        // TLSPlaintext.length
	maxCiphertext            = 16384 + 2048 // TLSCiphertext.length, TLS 1.2 (1.3: + 256)
)

// tlsHandshakeInMax bounds the handshake bytes a connection may have
// waiting for its handshake goroutine: a client's flights (a ClientHello,
// a certificate chain and Finished) and what it sends right after its
// Finished (an HTTP upgrade request, a RawSocket handshake).
const tlsHandshakeInMax = 32 << 10

// tlsHandshakeReadMax bounds the bytes a handshake hands crypto/tls, the
// client's flights together, record headers included: a ClientHello
// (about 0.5 KiB, 2 KiB with a post-quantum key share; several KiB with
// many session tickets), a TLS 1.2 ClientKeyExchange (under 1 KiB),
// ChangeCipherSpec and Finished, and a client certificate chain when an
// embedder's config asks for one (a few KiB a certificate). crypto/tls
// keeps a handshake message until it is whole (c.hand: up to 64 KiB, a
// Certificate 256 KiB) besides its record buffer, for as long as the
// client takes: a client that sent 60 KiB of a ClientKeyExchange and
// stalled held ~100 KiB, for handshake_timeout, counted nowhere. A
// handshake whose client sends more fails (tls_error); what one holds
// is counted in the inbound budget (tlsHS.holds).
const tlsHandshakeReadMax = 32 << 10

// tlsPostHandshakeMax bounds a handshake message a client sends after the
// handshake, its 4-byte header included: crypto/tls keeps such a message
// (c.hand) until it is whole, up to 64 KiB (a Certificate 256 KiB) per
// connection, across read callbacks. A client has one to send: a TLS 1.3
// KeyUpdate, 5 bytes (the router requests no post-handshake
// authentication, and crypto/tls refuses a TLS 1.2 renegotiation once it
// has the message). A connection whose message announces or holds more is
// closed (tlsRead).
const tlsPostHandshakeMax = 1 << 10

// Close-reason details of the TLS layer.
var (
	errNotTLS           = errors.New("loop: tls: first record is not a TLS handshake record")
	errRawOnTLS         = errors.New("loop: tls: a plaintext RawSocket handshake on a TLS listener (an rs:// client?)")
	errHTTPOnTLS        = errors.New("loop: tls: plaintext HTTP on a TLS listener (a ws:// client?)")
	errTLSRecordTooBig  = errors.New("loop: tls: record longer than the protocol allows")
	errTLSHandshakeFill = errors.New("loop: tls: more than 32 KiB of handshake input waiting")
	errTLSHandshakeLong = errors.New("loop: tls: handshake longer than 32 KiB (the client's flights)")
	errTLSVersion       = errors.New("loop: tls: protocol version below TLS 1.2")
	errTLSPerAddress    = errors.New("loop: tls: too many handshakes in progress from this address")
	errTLSPostHandshake = errors.New("loop: tls: post-handshake handshake message longer than 1 KiB")
)

// tlsConn is the TLS layer of one connection. Owned by the connection's
// loop, but for hs while a handshake goroutine runs (tlshs.go).
type tlsConn struct {
	cn   *conn
	src  netip.Addr // the client's source, under which its handshake is counted (clientSource); static
	tc   *tls.Conn
	shim tlsShim // tc's transport
	hs   *tlsHS  // the handshake, from the first record until the loop takes over; then nil
	// The ClientHello as it arrives, before its handshake starts
	// (tlsHandshakeIn): its handshake header and the bytes of handshake
	// records received; started once it is whole.
	helloHdr [4]byte
	helloGot int
	started  bool     // hs was handed to the pool
	ready    bool     // the handshake is done: the loop owns tc
	plain    tlsPlain // decrypted input not yet parsed (the connection's inbound)
	pre      []byte   // whole records the handshake received but did not read: read before gnet's buffer
	left     int      // bytes of the record being handed to tc still to hand over
	more     bool     // tc may hold plaintext not yet read (the last Read filled its buffer)
	fin      bool     // close_notify queued
	eof      bool     // the peer's close_notify was read

	fed     bool // records were handed to tc since the last scan
	trimmed bool // tc's input buffers are released (tlstrim.go) and nothing was read since
}

// serverConfig returns the tls.Config a listener serves: the caller's,
// with TLS 1.2 at least and, for listeners that serve WebSocket, ALPN
// "http/1.1" for clients that offer it (browsers offer h2 and http/1.1; an
// answer tells them and proxies which one the upgrade uses). A client
// offering only other protocols gets no ALPN answer rather than a failed
// handshake: RawSocket has no registered protocol ID. A config with its
// own NextProtos or GetConfigForClient keeps its ALPN; a connection that
// its GetConfigForClient lets negotiate less than TLS 1.2 is closed after
// the handshake (tlsHandshakeDone).
func serverConfig(base *tls.Config, tr Transport) *tls.Config {
	cfg := base.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if tr == RawSocketOnly || len(cfg.NextProtos) > 0 || cfg.GetConfigForClient != nil {
		return cfg
	}
	alpn := cfg.Clone()
	alpn.NextProtos = []string{"http/1.1"}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(hello.SupportedProtos, "http/1.1") {
			return alpn, nil
		}
		return nil, nil
	}
	return cfg
}

// newTLSConn sets up the TLS layer of a connection accepted on a TLS
// listener (OnOpen). Nothing runs until the ClientHello is whole.
func newTLSConn(cn *conn, cfg *tls.Config, local, remote net.Addr, src netip.Addr) *tlsConn {
	t := &tlsConn{cn: cn, src: src}
	t.shim = tlsShim{t: t, local: local, remote: remote}
	t.tc = tls.Server(&t.shim, cfg)
	return t
}

// clientSource returns the source a client's handshakes and connections
// are counted under (Options.MaxTLSHandshakesPerAddress,
// MaxConnsPerAddress): its IPv4 address, or the /64 of
// its IPv6 address — one host, or one customer, commonly holds a whole
// /64 and could otherwise take a fresh address for every connection (the
// router's brute-force limiter keys addresses the same way,
// route/ratelimit.go). An IPv4 client of a dual-stack listener, seen as
// ::ffff:a.b.c.d, counts as its IPv4 address: as a /64, every IPv4
// client would share one count. The zero Addr (not counted) for an
// address that is not an IP one.
func clientSource(remote net.Addr) netip.Addr {
	return sourceOf(peerIP(remote))
}

// tlsHandshakeIn moves the whole records gnet has buffered to the
// handshake, starting it once they hold the whole ClientHello (which may
// span records: a client that sent part of one costs no goroutine). It
// runs in OnTraffic until the handshake is done.
func (cn *conn) tlsHandshakeIn() {
	t := cn.tls
	in := cn.wire() // the stash ahead of gnet's buffer, or gnet's buffer
	if t.hs == nil {
		if err := notTLS(in); err != nil {
			// A plaintext client on a TLS port, an SSL 2 hello. Closed,
			// before any goroutine, as soon as its first byte says so: a
			// RawSocket handshake (4 bytes, then the client waits for
			// the reply) waited for handshake_timeout when a record
			// header's 5 bytes were awaited first. An HTTP client (a
			// ws:// one) is told why first, as Go's net/http tells it,
			// on what was read: before, it saw only the end of the
			// connection. The others unanswered.
			if err == errHTTPOnTLS {
				cn.queueCT(httpOnTLSReply)
			}
			cn.die(CloseTLS, err)
			return
		}
	}
	for {
		hdr, err := in.Peek(recordHeaderLen)
		if err != nil {
			break
		}
		body := int(hdr[3])<<8 | int(hdr[4])
		if t.hs == nil && (hdr[1] != 3 || body > maxPlaintext) {
			cn.die(CloseTLS, errNotTLS) // not a ClientHello's record
			return
		}
		if body > maxCiphertext {
			cn.die(CloseTLS, errTLSRecordTooBig)
			return
		}
		n := recordHeaderLen + body
		if in.InboundBuffered() < n {
			break
		}
		if t.hs == nil {
			t.hs = newTLSHS(t)
		}
		rec, err := in.Peek(n)
		if err != nil {
			break
		}
		if !t.hs.push(rec) {
			cn.die(CloseTLS, errTLSHandshakeFill)
			return
		}
		if !t.started {
			t.helloIn(rec)
		}
		in.Discard(n)
	}
	if t.hs != nil && !t.started && t.helloWhole() {
		t.started = true
		switch cn.ls.e.tlsPool.start(t.hs) {
		case tlsStopped:
			cn.die(CloseShutdown, nil)
		case tlsSrcIsFull:
			// Closed unanswered, as past max_connections: an alert would
			// tell the client nothing it can act on. (tlsConn.close
			// closes the handshake that never started.)
			cn.die(CloseTLSPerAddress, errTLSPerAddress)
		}
	}
}

// httpOnTLSReply answers plaintext HTTP on a TLS listener: what Go's
// net/http answers (and so its clients, and curl, show), then the close.
var httpOnTLSReply = []byte("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")

// notTLS returns why the first bytes a client sent on a TLS listener
// cannot start a TLS handshake record, naming the plaintext protocols a
// misdirected client speaks (a ws:// or rs:// client given the TLS port),
// or nil while they may (nothing buffered, or a handshake record's type).
func notTLS(in inbound) error {
	b, err := in.Peek(min(in.InboundBuffered(), maxMethodLen+1))
	switch {
	case err != nil || len(b) == 0 || b[0] == recordTypeHandshake:
		return nil
	case b[0] == rawMagic:
		return errRawOnTLS
	case methodPrefixOK(b):
		return errHTTPOnTLS
	}
	return errNotTLS
}

// helloIn counts a record received before the handshake started (a whole
// one, its header included) towards the ClientHello.
func (t *tlsConn) helloIn(rec []byte) {
	if rec[0] != recordTypeHandshake {
		t.helloGot = -1 // not a ClientHello's: crypto/tls refuses it (an alert)
		return
	}
	if t.helloGot < 0 {
		return
	}
	body := rec[recordHeaderLen:]
	for len(body) > 0 && t.helloGot < len(t.helloHdr) {
		t.helloHdr[t.helloGot] = body[0]
		t.helloGot++
		body = body[1:]
	}
	t.helloGot += len(body)
}

// helloWhole reports whether the records received hold the whole first
// handshake message (the ClientHello), or something crypto/tls will
// refuse at once (another message, another record type). A ClientHello
// longer than the handshake input a connection may have waiting
// (tlsHandshakeInMax) closes its connection before it is whole.
func (t *tlsConn) helloWhole() bool {
	switch {
	case t.helloGot < 0:
		return true
	case t.helloGot < len(t.helloHdr):
		return false
	case t.helloHdr[0] != handshakeTypeClientHello:
		return true
	}
	need := len(t.helloHdr) + (int(t.helloHdr[1])<<16 | int(t.helloHdr[2])<<8 | int(t.helloHdr[3]))
	return t.helloGot >= need
}

// tlsTakeOut moves what the handshake goroutine wrote to the connection's
// pending ciphertext. It runs on the loop, in a task the goroutine queued.
func (cn *conn) tlsTakeOut() {
	if cn.phase == phGone || cn.tls.hs == nil {
		return
	}
	if out := cn.tls.hs.takeOut(); len(out) > 0 {
		cn.queueCT(out)
	}
}

// tlsHandshakeDone runs on the loop, in the task the handshake goroutine
// queued when Handshake returned: the loop takes the tls.Conn over, or
// closes the connection.
func (cn *conn) tlsHandshakeDone() {
	if cn.phase == phGone {
		return
	}
	t := cn.tls
	cn.tlsTakeOut()
	if cn.phase != phTLS {
		return // dying already (the inbound budget, shutdown): closed after its output
	}
	hs := t.hs
	if err := hs.result(); err != nil {
		cn.die(CloseTLS, err) // an alert crypto/tls wrote, if any, is flushed first
		return
	}
	// The goroutine is done with tc: the loop owns it from here.
	t.pre, t.left = hs.rest()
	t.hs, t.shim.hs = nil, nil
	t.ready = true
	t.trimmed = tlsTrim(t.tc) // the ClientHello's buffers
	if t.tc.ConnectionState().Version < tls.VersionTLS12 {
		cn.die(CloseTLS, errTLSVersion) // a caller's own GetConfigForClient may allow it
		return
	}
	cn.phase = phDetect
	cn.in = &t.plain
	cn.lastRead = cn.ls.e.now()
	cn.traffic() // the client may have sent its first bytes with its Finished
	cn.account()
}

// tlsTraffic decrypts and parses until no whole record is left (gnet does
// not call OnTraffic again for bytes it has buffered) or the connection
// dies.
func (cn *conn) tlsTraffic() {
	t := cn.tls
	for {
		got, eof := cn.tlsRead()
		cn.parse()
		t.eof = t.eof || eof
		if t.eof && cn.batch == nil {
			// The peer's close_notify: what it sent before it was parsed
			// above, as the bytes before a FIN are on a plaintext
			// connection. Behind a batch still being routed it waits for
			// the batch and what was queued behind it (batch.go:
			// continueBatch parses again).
			cn.die(ClosePeer, nil)
		}
		if !got || cn.phase >= phDead {
			break
		}
	}
	t.plain.release(cn.ls)
}

// tlsReadStep is how much decrypted input tlsRead adds before the parsers
// run (tlsTraffic alternates them until no record is left): a frame of
// largeMin bytes or more is taken out of the buffer once its header is
// there (large.go), so the buffer holds at most a smaller partial frame
// and one step.
const tlsReadStep = maxPlaintext

// tlsRead decrypts whole records into the plaintext buffer until none is
// left or it added tlsReadStep bytes. It reports whether it decrypted
// anything. A TLS error (a bad record, an alert, a renegotiation
// attempt) closes the connection after what crypto/tls wrote in answer;
// the peer's close_notify is reported as eof, for the caller to close the
// connection (as closed by the peer) once it has parsed what came before.
//
// tc.Read is called only when it has something to return: a whole record
// to read, or the rest of the last one's plaintext (a Read that filled p
// may have left some). A call that finds nothing costs crypto/tls an
// allocation (its atLeastReader) and, after tlsTrim, its input buffer.
func (cn *conn) tlsRead() (got, eof bool) {
	t := cn.tls
	target := t.plain.InboundBuffered() + tlsReadStep
	for t.plain.InboundBuffered() < target && (t.more || t.recordReady()) {
		p := t.plain.space(cn.ls)
		n, err := t.tc.Read(p)
		t.plain.commit(n)
		got = got || n > 0
		t.more = n == len(p)
		if err == nil {
			continue
		}
		if err != errWouldBlock {
			if errors.Is(err, io.EOF) {
				eof = true
			} else {
				cn.die(CloseTLS, err)
			}
		} else if b, a := tlsHandPending(t.tc); max(b, a) > tlsPostHandshakeMax {
			// Read stops with would-block in the middle of a handshake
			// message, which crypto/tls keeps until it is whole.
			cn.die(CloseTLS, errTLSPostHandshake)
		}
		break
	}
	// What crypto/tls wrote on its own while reading (the answer to a
	// TLS 1.3 KeyUpdate that asks for one) passes neither Send nor
	// answerPing: it obeys the hard limit here, as a pong does. A peer
	// that never reads and sends 15 KeyUpdates to a byte of data (which
	// resets crypto/tls's count of them) held megabytes before.
	if len(cn.ct) > 0 && cn.phase < phDead {
		bl := cn.backlog()
		if _, hard := cn.marks(bl); bl > hard {
			cn.die(CloseSlowConsumer, errBacklogHard)
		}
	}
	return got, eof
}

// queueCT appends ciphertext to the connection's pending output.
func (cn *conn) queueCT(b []byte) {
	if cn.phase == phGone {
		return
	}
	if cn.ct == nil {
		cn.ct = cn.ls.getBuf()
	}
	cn.ct = append(cn.ct, b...)
	cn.ls.markDirty(cn)
}

// seal encrypts the pending plaintext output into the pending ciphertext
// and, for a dying connection, adds close_notify. It runs on the loop,
// from the flush and spill (flush.go); before the handshake is done there
// is no plaintext output.
func (cn *conn) seal() {
	t := cn.tls
	if !t.ready {
		return
	}
	if len(cn.out) > 0 {
		// The records come back through the shim's Write (queueCT). Write
		// fails only once the connection failed (an alert was sent): the
		// connection is closed after what was written.
		if _, err := t.tc.Write(cn.out); err != nil {
			cn.die(CloseTLS, err)
		}
	}
	if cn.out != nil {
		cn.ls.putBuf(cn.out)
		cn.out = nil
	}
	if cn.phase == phDead && !t.fin && cn.reason != CloseTLS { // no close_notify after a fatal alert
		t.fin = true
		t.tc.CloseWrite() // close_notify, through the shim
	}
}

// idle runs in the scan, once a second: a connection that received no
// record for a whole scan period gets crypto/tls's input buffers released
// (tlsTrim), and so does one that did, when they are over tlsTrimActive.
func (t *tlsConn) idle() {
	if t.ready && !t.trimmed && (!t.fed || tlsBuffered(t.tc) > tlsTrimActive) {
		t.trimmed = tlsTrim(t.tc)
	}
	t.fed = false
}

// tlsTrimActive is the most crypto/tls's input buffers may hold on a
// connection that keeps sending records (idle): what records of a few KiB
// grow them to (a Go client's first 128 KiB go in records of about
// 1.2 KiB). A full-size record grows the record buffer to about 18 KiB,
// which crypto/tls keeps for the connection's life: before, it was
// released only once a whole scan period passed without a record, and a
// client that sent one large record and then a small one every second
// kept it for as long as it chatted, counted in no budget. Released, it
// is grown again by the next large record, an allocation per such
// connection per second at most.
const tlsTrimActive = 8 << 10

// held returns, for the budget (account), the bytes of inbound data the
// TLS layer holds (got: decrypted input, records kept from the handshake,
// the handshake's input (tlsHS.holds), and a partial post-handshake
// message in crypto/tls, at most tlsPostHandshakeMax) and the memory they
// take (mem: the same, but the plaintext buffer's capacity for its
// bytes, as account counts a fragment buffer's). (A partial record is
// counted with the connection's stash, stash.go.)
func (t *tlsConn) held() (got, mem int) {
	n := len(t.pre)
	if t.ready {
		hand, _ := tlsHandPending(t.tc)
		n += hand
	}
	got, mem = n+t.plain.InboundBuffered(), n+t.plain.held()
	if t.hs != nil {
		g, m := t.hs.holds()
		got += g
		mem += m
	}
	return got, mem
}

// close releases the TLS layer of a connection that is gone (conn.closed):
// it ends the handshake, if one is running or waiting, and returns the
// buffers.
func (t *tlsConn) close(ls *loopState) {
	if t.hs != nil {
		ls.e.tlsPool.cancel(t.hs)
		t.hs.close()
	}
	t.plain.drop(ls)
	t.pre = nil
}
