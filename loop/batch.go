package loop

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/proto"
)

// Batched WebSocket subprotocols (WAMP Advanced Profile, "Message
// Batching"): wamp.2.json.batched, wamp.2.msgpack.batched and
// wamp.2.cbor.batched carry one or more WAMP messages per WebSocket message.
//
// [WAMP Batching]: Batching with JSON works by serializing each WAMP message
// to JSON as normally, appending the single ASCII control character \30
// (record separator) octet 0x1e to each serialized messages, and packing a
// sequence of such serialized messages into a single WebSocket message.
//
// [WAMP Batching]: Batching with MessagePack works by serializing each WAMP
// message to MessagePack as normally, prepending a 32 bit unsigned integer
// (4 octets in big-endian byte order) with the length of the serialized
// MessagePack message (excluding the 4 octets for the length prefix).
//
// CBOR is framed like MessagePack (it is binary), as other routers do.
//
// A JSON text cannot contain a raw 0x1e (JSON strings escape every control
// character), so splitting at each 0x1e never cuts a message.
//
// Autobahn|Python, the reference client, ends each message of a JSON batch
// with 0x18 instead, and splits the batches it reads at 0x18: its
// serializer writes b'\30', an octal escape (0x18, CAN), for the spec's
// "\30 (record separator) octet 0x1e"; so does Crossbar.io, which uses that
// serializer. A connection takes the separator its peer's first batch (its
// HELLO) ends with, one or the other, and uses it both ways (conn.jsonSep,
// batchSep). 0x18 cannot appear raw in a JSON text either. Before, such a
// client's HELLO was refused as a malformed batch: Autobahn|Python offers
// wamp.2.json.batched before wamp.2.json, and first of all when it has no
// binary serializer installed.

// jsonRecordSep is the octet that ends each message of a JSON batch
// (WAMP spec).
const jsonRecordSep = 0x1e

// autobahnRecordSep is the one Autobahn|Python uses (above).
const autobahnRecordSep = 0x18

// batchSepOf returns the separator of the JSON batch whose messages end
// with it: Autobahn|Python's when batch ends with it, else the spec's.
func batchSepOf(batch []byte) byte {
	if n := len(batch); n > 0 && batch[n-1] == autobahnRecordSep {
		return autobahnRecordSep
	}
	return jsonRecordSep
}

// batchPrefixLen is the size of a binary batch's length prefix.
const batchPrefixLen = 4

// Batch errors; each means: fail the transport.
var (
	// errBatchEmpty: a WebSocket message holding no WAMP message.
	// [WAMP Batching]: Sending a batch of length 0 (no WAMP message) is
	// illegal and a Peer MUST fail the transport upon receiving such a
	// transport message.
	errBatchEmpty = errors.New("loop: batch: empty batch")
	// errBatchEmptyMessage: a zero-length message inside a batch.
	errBatchEmptyMessage = errors.New("loop: batch: empty message in batch")
	// errBatchUnterminated: JSON bytes after the last record separator.
	errBatchUnterminated = errors.New("loop: batch: JSON message not terminated by 0x1E")
	// errBatchTruncated: a length prefix that is cut short or declares more
	// bytes than remain in the batch.
	errBatchTruncated = errors.New("loop: batch: length prefix exceeds the remaining bytes")
)

// batchReader splits one batched WebSocket message into WAMP messages
// without copying or allocating. It is a small value meant to live on the
// caller's stack:
//
//	br := newBatchReader(payload, ser, sep)
//	for {
//		msg, err := br.next()
//		if err != nil { fail the transport }
//		if msg == nil { break }
//		handle(msg)
//	}
//
// Messages alias the batch and are valid as long as it is.
type batchReader struct {
	rest   []byte // bytes not yet split
	binary bool   // length-prefixed (MsgPack, CBOR) rather than terminated by sep (JSON)
	sep    byte   // JSON: the octet that ends each message (jsonRecordSep, autobahnRecordSep)
	count  int    // messages returned so far
}

// newBatchReader returns a reader over batch, a whole WebSocket message of
// the batched subprotocol of ser, whose JSON messages end with sep.
func newBatchReader(batch []byte, ser proto.Serializer, sep byte) batchReader {
	return batchReader{rest: batch, binary: ser.Binary(), sep: sep}
}

// next returns the next message, or nil and a nil error after the last one.
// The first call on an empty batch returns errBatchEmpty. After an error the
// reader is exhausted. It never allocates.
func (b *batchReader) next() ([]byte, error) {
	if len(b.rest) == 0 {
		if b.count == 0 {
			b.count = -1 // report the empty batch once
			return nil, errBatchEmpty
		}
		return nil, nil
	}
	var msg []byte
	var err error
	if b.binary {
		msg, err = b.nextBinary()
	} else {
		msg, err = b.nextJSON()
	}
	if err != nil {
		b.rest, b.count = nil, -1
		return nil, err
	}
	b.count++
	return msg, nil
}

// nextJSON splits off the message up to the next record separator.
func (b *batchReader) nextJSON() ([]byte, error) {
	i := bytes.IndexByte(b.rest, b.sep)
	if i < 0 {
		return nil, errBatchUnterminated
	}
	if i == 0 {
		return nil, errBatchEmptyMessage
	}
	msg := b.rest[:i:i]
	b.rest = b.rest[i+1:]
	return msg, nil
}

// nextBinary splits off one length-prefixed message, checking the declared
// length against the bytes that remain.
func (b *batchReader) nextBinary() ([]byte, error) {
	if len(b.rest) < batchPrefixLen {
		return nil, errBatchTruncated
	}
	n := binary.BigEndian.Uint32(b.rest)
	rest := b.rest[batchPrefixLen:]
	if uint64(n) > uint64(len(rest)) {
		return nil, errBatchTruncated
	}
	if n == 0 {
		return nil, errBatchEmptyMessage
	}
	msg := rest[:n:n]
	b.rest = rest[n:]
	return msg, nil
}

// splitBatch checks that batch, a whole WebSocket message of the batched
// subprotocol of ser, is well formed, and only then calls fn for each of its
// messages in order, so a malformed batch dispatches nothing. It stops at
// and returns the first error of fn. msg aliases batch. Two cheap passes;
// splitBatch itself does not allocate (fn does not escape, so a closure
// literal passed as fn stays on the caller's stack).
func splitBatch(batch []byte, ser proto.Serializer, sep byte, fn func(msg []byte) error) error {
	if err := checkBatch(batch, ser, sep); err != nil {
		return err
	}
	br := newBatchReader(batch, ser, sep)
	for {
		msg, _ := br.next()
		if msg == nil {
			return nil
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

// checkBatch reports whether batch, a whole WebSocket message of the
// batched subprotocol of ser, is well formed (the first of splitBatch's
// passes).
func checkBatch(batch []byte, ser proto.Serializer, sep byte) error {
	check := newBatchReader(batch, ser, sep)
	for {
		msg, err := check.next()
		if err != nil {
			return err
		}
		if msg == nil {
			return nil
		}
	}
}

// batchedLen returns the size of an n-octet message in batched form.
func batchedLen(ser proto.Serializer, n int) int {
	if ser.Binary() {
		return batchPrefixLen + n
	}
	return n + 1
}

// appendBatched appends msg, one encoded WAMP message, to dst in the
// batched form of ser: with sep after it for JSON, after a 4-octet
// big-endian length for MsgPack and CBOR. Appending several builds a batch
// of several messages; a WebSocket message must hold at least one. It
// allocates only if dst must grow. msg must be shorter than 4 GiB.
func appendBatched(dst []byte, ser proto.Serializer, sep byte, msg []byte) []byte {
	if ser.Binary() {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
		return append(dst, msg...)
	}
	dst = append(dst, msg...)
	return append(dst, sep)
}

// batchSep returns the separator of the connection's JSON batches, the
// one its peer's first batch ended with (jsonRecordSep until then).
func (cn *conn) batchSep() byte {
	if cn.jsonSep == 0 {
		return jsonRecordSep
	}
	return cn.jsonSep
}

// A batch is routed a turn at a time. One WebSocket message of a batched
// subprotocol may be max_message bytes (16 MiB by default): about 760,000
// small PUBLISHes, which the loop routed in one read callback, while every
// other session of the loop waited (0.45-0.85 s for a caller on the loop;
// found by review). The same bytes sent one message per frame are read
// 64 KiB at a time (gnet's read buffer), between the other sockets'
// events. So a batch is checked whole (a malformed batch still routes
// nothing), then routed batchTurn bytes of it at a time:
//
//   - deliverBatch routes it in the read callback, a turn at a time, for as
//     long as nothing else waits for the loop: no other socket has an event
//     for gnet (gnetBusy: its epoll descriptor, asked without waiting, as
//     park.go does) and no task is queued (tasksWaiting). A lone batch
//     costs what it did before: no copy, no task.
//   - Otherwise the rest waits in conn.batch, in the connection's own
//     buffer (the loop's assembly buffer, taken over, for a large message;
//     else a copy), and counts in the inbound budget (conn.account) until
//     it is routed. Meanwhile its later input is taken out of gnet's
//     buffer as it arrives (behindBatch): a large frame is gathered into
//     chunks as usual, and each whole message (a large one once whole) is
//     checked and queued behind the batch (heldBatch.next, counted in the
//     budget too), routed after it in turns the same way, so that its
//     messages stay in order and a large frame is gathered whatever
//     precedes it (left in gnet's buffer behind a small frame, it grew the
//     buffer by steps). A ping is answered at once; a Close frame and a
//     framing error wait in gnet's buffer for their turn, and nothing
//     behind them is parsed.
//   - runBatches, a task on the loop, routes the next turn of each waiting
//     connection in turn order, flushing the output between turns, and
//     more turns while nothing else waits. When a socket has an event, it
//     stops and is queued again after the loop's next callback (parkAfter:
//     batchesAfterCallback), so that gnet polls in between: gnet runs the
//     tasks queued while it runs tasks in the same round, before it polls,
//     so a task that queued itself again would never let the sockets in.
//     When only tasks wait, it queues itself behind them. The scan queues
//     it too, should no callback come. Each run routes one turn at least,
//     so a busy loop does not starve a batch either.
//   - A session that ends within a batch (its GOODBYE, an ABORT, a close by
//     the router) routes none of the rest; it is dropped, and the
//     connection's held bytes go back to the budget (release).
//   - A connection the peer closes while the rest waits (EOF, a reset, a
//     close_notify, a FIN after a Close frame) keeps its session: the
//     whole messages still buffered are queued behind the batch
//     (takeRest: up to a Close frame), and the rest and the queue are
//     routed in their turns as above, counted in the budget meanwhile;
//     then the session leaves and the close is logged and counted
//     (leaveAfterBatch). It costs the loop what it would have cost had the
//     peer stayed. The engine's shutdown drops the rest.
//   - Once the batch and the messages queued behind it are routed,
//     continueBatch parses the input that waited (a failure found behind
//     the batch first: heldBatch.fail).
//
// What a connection can make the loop do while others wait is thus about
// what 64 KiB of frames makes it do.
const batchTurn = 64 << 10

// heldBatch is the rest of a batched message waiting for its turn (owned
// by the connection's loop).
type heldBatch struct {
	buf []byte      // the message (counted in conn.held)
	big bool        // buf is a loop's assembly buffer (large.go), given back when done
	br  batchReader // the messages left, in buf
	// next holds the whole messages received behind it (each a batch,
	// checked), in order and in batched form, routed once buf is done;
	// fail is a failure found behind them, applied then (failBehind).
	next []byte
	fail error
	// gone: the peer closed the connection while the rest waited; the
	// session leaves, and the close is logged and counted, once the rest
	// is routed or the session ends (ended: the router closed it).
	gone, ended bool
	prev        phase // the connection's phase when it closed
}

// deliverBatch checks and routes one batched message, its first turn now
// and the rest later (see above). p is valid only during the call.
func (cn *conn) deliverBatch(p []byte) {
	if cn.jsonSep == 0 {
		// The peer's first batch (its HELLO) says which separator it
		// uses, before the router sends it anything (see the top).
		cn.jsonSep = batchSepOf(p)
	}
	// The whole batch is checked before any of its messages is routed, so
	// a malformed batch has no partial effect.
	if err := checkBatch(p, cn.ser, cn.jsonSep); err != nil {
		cn.wsFail(ws.StatusProtocolError, "bad batch", CloseProtocol, errBadBatch)
		return
	}
	br := newBatchReader(p, cn.ser, cn.jsonSep)
	ls := cn.ls
	for {
		if !cn.routeBatch(&br) {
			return
		}
		if ls.gnetBusy(cn) || ls.tasksWaiting() {
			break
		}
	}
	hb := &heldBatch{br: br}
	if cap(ls.bigBuf) > 0 && &ls.bigBuf[:1][0] == &p[0] {
		// A large message, in the loop's assembly buffer: the connection
		// takes it over (the next large frame gets a new one).
		hb.buf, hb.big = ls.bigBuf, true
		ls.bigBuf = nil
	} else {
		// In gnet's buffer, the fragments' buffer or TLS plaintext.
		hb.buf = append([]byte(nil), br.rest...)
		hb.br.rest = hb.buf
	}
	cn.batch = hb
	ls.batches = append(ls.batches, cn)
	ls.queueBatches()
}

// behindBatch takes the input behind a batch still being routed out of
// gnet's buffer (or the TLS plaintext), so that it does not grow there
// while the batch waits: a large frame is gathered into chunks as it
// arrives (large.go), as when no batch waits, and a whole message is
// queued behind the batch (queueBehind), to be routed after it in order,
// whatever came before it. A ping is answered at once while the WebSocket
// is open. A Close frame waits for its turn (continueBatch): nothing behind
// it is parsed. A framing error (a frame over max_message, a reserved
// opcode ...) is kept for its turn (heldBatch.fail), as an error found in a
// message is, and what the peer sends after it is discarded as it comes:
// the connection fails at that point whatever follows, and left in gnet's
// buffer it grew there by steps (a frame announcing more than max_message
// and its payload streamed behind it).
func (cn *conn) behindBatch() bool {
	hb := cn.batch
	if hb.fail != nil {
		cn.in.Discard(cn.in.InboundBuffered())
		return false
	}
	var h wsHeader
	if err := cn.wsr.header(cn.in, &h); err != nil {
		hb.fail = err
		cn.in.Discard(cn.in.InboundBuffered())
		return false
	}
	if h.size == 0 || h.op == ws.OpClose {
		return false
	}
	ev, n, err := cn.wsr.next(cn.in)
	switch {
	case err != nil:
		hb.fail = err
		cn.in.Discard(cn.in.InboundBuffered())
		return false
	case n == 0:
		return !hb.gone && cn.adopt() // a partial frame at the close is dropped
	}
	switch ev.kind {
	case wsMessage:
		cn.queueBehind(ev.payload, ev.op == ws.OpText)
	case wsPing:
		if !hb.gone && cn.phase == phWS { // nothing after our Close frame (phClosing)
			cn.answerPing(ev.payload)
		}
	}
	cn.in.Discard(n)
	return hb.fail == nil && cn.phase == phWS
}

// queueBehind queues p, a whole message received behind the connection's
// batch, to be routed after it: checked now, as deliver checks one (a
// wrong frame type or a malformed batch fails the connection in its turn,
// and stops the parse), and copied, in batched form already, into next,
// which counts in the inbound budget (account).
func (cn *conn) queueBehind(p []byte, text bool) {
	hb := cn.batch
	switch {
	case text != (cn.ser == proto.JSON):
		hb.fail = errWrongFrameType
	case checkBatch(p, cn.ser, cn.batchSep()) != nil:
		hb.fail = errBadBatch
	default:
		hb.next = append(hb.next, p...)
	}
}

// failBehind fails the connection for err, found behind its batch and
// kept for its turn (heldBatch.fail).
func (cn *conn) failBehind(err error) {
	switch err {
	case errWrongFrameType:
		cn.wsFail(ws.StatusUnsupportedData, "wrong frame type for the subprotocol", CloseProtocol, errWrongFrameType)
	case errBadBatch:
		cn.wsFail(ws.StatusProtocolError, "bad batch", CloseProtocol, errBadBatch)
	default:
		cn.frameError(err)
	}
}

// routeBatch routes the messages of br in order, a turn's worth at most
// (the message that crosses batchTurn bytes is the last), while the
// session lasts. It reports whether messages are left for another turn.
func (cn *conn) routeBatch(br *batchReader) bool {
	stop := len(br.rest) - batchTurn
	for len(br.rest) > 0 && cn.routing() {
		if len(br.rest) <= stop {
			return true
		}
		msg, _ := br.next() // checked whole: no error
		cn.ls.shard.Receive(cn.sess, msg)
	}
	return false
}

// routing reports whether the connection's session takes its messages:
// while the WebSocket is open, and after the peer closed it while a batch
// waited, until the session ends (heldBatch.gone).
func (cn *conn) routing() bool {
	return cn.phase == phWS || cn.batch != nil && cn.batch.gone && !cn.batch.ended
}

// continueBatch routes the next turn of the connection's batch, then the
// messages queued behind it, and once they are done parses the input that
// waited behind them (a failure found there first). A connection the peer
// closed meanwhile ends once they are routed (leaveAfterBatch).
func (cn *conn) continueBatch() {
	hb := cn.batch
	if hb == nil {
		return // closed meanwhile
	}
	if hb.gone && cn.ls.e.draining.Load() {
		hb.ended = true // the router stops: the rest is dropped
	}
	if cn.routeBatch(&hb.br) {
		now := cn.ls.e.now()
		cn.progGot, cn.progAt = cn.got, now // not stalled (budget.go): the router is the one reading
		cn.grew(cn.got, now)
		cn.ls.batches = append(cn.ls.batches, cn)
		return
	}
	if len(hb.next) > 0 && cn.routing() {
		// The messages received behind it, checked already, are the
		// next batch, routed in turns the same way.
		cn.giveBack(hb)
		hb.buf, hb.big, hb.next = hb.next, false, nil
		hb.br = newBatchReader(hb.buf, cn.ser, cn.batchSep())
		cn.ls.batches = append(cn.ls.batches, cn)
		if !hb.gone {
			cn.account()
		}
		return
	}
	if hb.gone {
		cn.leaveAfterBatch()
		return
	}
	fail := hb.fail
	cn.dropBatch()
	switch {
	case cn.phase != phWS && cn.phase != phClosing:
	case fail != nil:
		cn.failBehind(fail)
	case cn.tls != nil:
		cn.tlsTraffic()
	default:
		cn.parse()
	}
	cn.account()
}

// dropBatch lets go of the connection's batch.
func (cn *conn) dropBatch() {
	if hb := cn.batch; hb != nil {
		cn.batch = nil
		cn.giveBack(hb)
	}
}

// giveBack gives a batch's taken-over assembly buffer back to the loop
// when it is larger than the loop's.
func (cn *conn) giveBack(hb *heldBatch) {
	if ls := cn.ls; hb.big && cap(hb.buf) > cap(ls.bigBuf) {
		ls.bigBuf, ls.bigUsed = hb.buf, true
	}
}

// held returns the bytes the batch holds (counted in the inbound budget).
func (hb *heldBatch) held() int64 { return int64(cap(hb.buf) + cap(hb.next)) }

// takeRest runs as the peer's close reaches a connection whose batch
// waits (closed): the whole messages the peer sent before it closed, still
// in gnet's buffer or the TLS plaintext, are queued behind the batch, to
// be routed after it. A partial frame is dropped, and what follows a
// Close frame or a framing error.
func (cn *conn) takeRest() {
	cn.batch.gone = true
	if cn.big == nil {
		for cn.behindBatch() {
		}
	}
}

// leaveAfterBatch ends a connection the peer closed while its batch
// waited, once the batch and the messages behind it are routed or its
// session ended: its held bytes go back to the budget, its session leaves
// its realm, and its close is logged and counted (closed's end).
func (cn *conn) leaveAfterBatch() {
	prev := cn.batch.prev
	cn.dropBatch()
	cn.release()
	cn.leave(prev)
}

// queueBatches queues runBatches unless it is queued or waits for a
// callback.
func (ls *loopState) queueBatches() {
	if len(ls.batches) == 0 || ls.batchQueued || ls.batchWait {
		return
	}
	ls.batchQueued = true
	if ls.Execute(ls.batchFn) != nil {
		ls.batchQueued = false // the loop stops: its connections close
	}
}

// batchesAfterCallback queues runBatches after a callback of the loop, if
// it waits for one.
func (ls *loopState) batchesAfterCallback() {
	if ls.batchWait {
		ls.batchWait = false
		ls.queueBatches()
	}
}

// runBatches routes the waiting batches a turn at a time, in turn order:
// one turn at least, more while gnet has no event waiting (see above).
func (ls *loopState) runBatches() {
	for first := true; len(ls.batches) > 0; first = false {
		if !first {
			ls.flush()
			if ls.gnetBusy(nil) {
				ls.batchQueued, ls.batchWait = false, true
				return
			}
			if ls.tasksWaiting() {
				if ls.Execute(ls.batchFn) != nil {
					ls.batchQueued = false
				}
				return
			}
		}
		cn := ls.batches[0]
		n := copy(ls.batches, ls.batches[1:])
		ls.batches[n] = nil
		ls.batches = ls.batches[:n]
		cn.continueBatch()
	}
	ls.batchQueued = false
	if cap(ls.batches) > 64 {
		ls.batches = nil
	}
}

// findGnetPoller finds gnet's epoll descriptor and eventfd for gnetBusy
// (park.go: gnetPoller); without them a batch is routed without yielding.
func (ls *loopState) findGnetPoller() {
	ls.gnetEpfd = -1
	if pk := ls.parker; pk != nil {
		ls.gnetEpfd, ls.gnetEfd, ls.gnetQueues = pk.epfd, pk.efd, pk.queues
		return
	}
	var pk parker
	if gnetPoller(ls.el, &pk) == nil {
		ls.gnetEpfd, ls.gnetEfd, ls.gnetQueues = pk.epfd, pk.efd, pk.queues
	}
}

// gnetBusy reports whether gnet has events to hand to the loop's callbacks:
// a socket's event other than writable (gnet writes its buffer then, and
// calls nothing of ours), but except's (its own input, which waits for its
// batch anyway). gnet's eventfd is not one: it only announces tasks
// (tasksWaiting). Sockets are level-triggered: gnet's next wait reports
// them again.
func (ls *loopState) gnetBusy(except *conn) bool {
	if ls.gnetEpfd < 0 {
		return false
	}
	n, err := unix.EpollWait(ls.gnetEpfd, ls.gnetEvents[:], 0)
	if err != nil {
		return false
	}
	busy := false
	for _, ev := range ls.gnetEvents[:n] {
		switch fd := int(ev.Fd); {
		case fd == ls.gnetEfd:
			// Its edge is consumed, and gnet may not have seen it: in a
			// read callback, the eventfd write of a task queued from
			// another goroutine (which also set gnet's wakeupCall flag,
			// so that no later task writes it again) would otherwise be
			// lost, and the loop would sleep with tasks queued. Write
			// it again (gnet never reads it: each write is an edge).
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			_, _ = unix.Write(ls.gnetEfd, one[:])
		case ev.Events&^unix.EPOLLOUT != 0 && (except == nil || fd != except.c.Fd()):
			busy = true
		}
	}
	return busy
}

// tasksWaiting reports whether tasks wait for the loop: in gnet's queues,
// or in the inbox of a parking loop (park.go).
func (ls *loopState) tasksWaiting() bool {
	if pk := ls.parker; pk != nil && pk.pending() {
		return true
	}
	for _, q := range ls.gnetQueues {
		if q != nil && !(*q).IsEmpty() {
			return true
		}
	}
	return false
}
