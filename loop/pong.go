package loop

import (
	"github.com/gobwas/ws"
)

// Pongs are output like any other and obey the same bounds: a peer that
// sends pings and never reads must not make the router queue pongs without
// limit (an unbounded queue took RSS from 11 MB to 283 MB in 1.5 s).
//
//   - A pong counts toward the connection's backlog (high_water,
//     hard_limit) and, once queued in gnet, toward max_outbound_total,
//     like a message.
//   - Past the high-water mark only the latest ping is answered: its
//     payload waits in conn.pong (counted in the backlog) and replaces the
//     payload of any earlier ping still waiting; it is sent once the
//     backlog is back under the mark (checked when the peer sends
//     anything, and by the once-a-second scan).
//     [RFC6455 §5.5.3]: If an endpoint receives a Ping frame and has not
//     yet sent Pong frame(s) in response to previous Ping frame(s), the
//     endpoint MAY elect to send a Pong frame for only the most recently
//     processed Ping frame.
//     The RawSocket spec asks for one PONG per PING; a peer that does not
//     read its PONGs gets the same treatment (the alternative is to queue
//     without bound, or to close at once).
//   - A pong that would take the backlog past the hard limit closes the
//     connection as a slow consumer, and so does a pong that has waited
//     longer than Options.PingTimeout: the peer's own keepalive, which
//     waits for that pong, has failed by then, just as ours fails when our
//     ping waits that long.
//   - A pong counts in max_outbound_total from the moment it is queued, as
//     Send's output does (budget.go: countPending), and a pong of largeOut
//     bytes or more (a RawSocket PING may carry max_message) that would
//     take the router-wide total past the budget closes the connection as
//     a slow consumer: it can be neither dropped nor shortened, and a
//     waiting pong holds its bytes as well. The marks tighten only for a
//     connection that holds a backlog already, so before, peers that each
//     sent one large PING and read nothing made the router hold a pong of
//     up to hard_limit per connection, past any budget (found by review:
//     12 connections, 4 MiB PINGs, a 1 MiB budget: 48 MiB held).
//   - A waiting pong's buffer is about its own size: a smaller PING that
//     replaces a large one's waiting pong gets a buffer of its own. Before,
//     it took the large one's, so a 1 MiB buffer stayed held behind a
//     1-byte pong, counted by its length in the backlog and the budget.
//   - A RawSocket PING longer than the peer announced it accepts (its
//     handshake's maximum length) closes the connection: its PONG must
//     carry the same payload, and the router must not send the peer a
//     frame longer than that maximum. Before, such a PONG was sent. A
//     PING of exactly the 2^24 a peer announced is answered (pongMax).

// pongKeepMax is the capacity a waiting pong's buffer may keep for a
// smaller pong that replaces it: any WebSocket ping's payload fits.
const pongKeepMax = wsMaxControlPayload

// pongMax is the longest pong a RawSocket peer whose messages are held to
// maxOut may be sent: maxOut, but 2^24 for a peer that announced 2^24
// (conn.rawHandshake caps its messages at 2^24-1, for the Autobahns, which
// misread the X bit; a peer that sends a PING of 2^24, X bit and all,
// reads it, and the RawSocket spec lets it be sent 2^24). Before, such a
// PING closed its connection as a protocol error.
func pongMax(maxOut int) int {
	if maxOut == rawMaxLength-1 {
		return rawMaxLength
	}
	return maxOut
}

// backlog returns the bytes queued for the peer: gnet's outbound buffer,
// an io_uring send being completed, the pending output (plaintext, and
// ciphertext on a TLS connection) and a waiting pong.
func (cn *conn) backlog() int {
	return cn.c.OutboundBuffered() + cn.inflight + len(cn.out) + len(cn.ct) + len(cn.pong)
}

// answerPing answers a WebSocket ping or a RawSocket PING with payload,
// now, or later (only the latest), or closes the connection: see above.
// payload is valid only during the call.
func (cn *conn) answerPing(payload []byte) {
	if cn.maxOut > 0 && len(payload) > pongMax(cn.maxOut) {
		cn.die(CloseProtocol, errPongTooLong)
		return
	}
	backlog := cn.backlog()
	high, hard := cn.marks(backlog)
	if backlog > high && len(cn.out)+len(cn.ct) > 0 && !cn.full {
		cn.spill() // as in Send: offer this iteration's output first
		if cn.phase != phWS && cn.phase != phRaw {
			return
		}
		backlog = cn.backlog()
	}
	if backlog+len(payload) > hard {
		cn.die(CloseSlowConsumer, errBacklogHard)
		return
	}
	if len(payload) >= largeOut && cn.ls.overBudget(len(payload)) {
		cn.die(CloseSlowConsumer, errPongBudget)
		return
	}
	if backlog > high {
		if cn.pong == nil {
			cn.pongSince = cn.ls.e.now()
		}
		if cn.pong == nil || cap(cn.pong) < len(payload) || cap(cn.pong) > max(2*len(payload), pongKeepMax) {
			// A buffer of its own size: a large RawSocket PING's buffer
			// kept for a smaller one's pong would hold its memory where
			// the backlog and the budget count only the pong's length.
			cn.pong = make([]byte, 0, max(len(payload), 8))
		}
		cn.pong = append(cn.pong[:0], payload...)
		cn.ls.e.pongsCoalesced.Add(1)
		return
	}
	if cn.pong != nil { // this ping supersedes the waiting one
		cn.pong = nil
		cn.ls.e.pongsCoalesced.Add(1)
	}
	cn.queuePong(payload)
}

// sendWaitingPong queues the waiting pong once the backlog is under the
// high-water mark, and closes a connection whose pong has waited longer
// than PingTimeout. now is the coarse clock.
func (cn *conn) sendWaitingPong(now int64) {
	if cn.pong == nil || (cn.phase != phWS && cn.phase != phRaw) {
		return
	}
	backlog := cn.c.OutboundBuffered() + len(cn.out) + len(cn.ct)
	if high, _ := cn.marks(backlog); backlog <= high {
		p := cn.pong
		cn.pong = nil
		cn.queuePong(p)
		return
	}
	if now-cn.pongSince > int64(cn.ls.e.opts.PingTimeout) {
		cn.die(CloseSlowConsumer, errPongStalled)
	}
}

// queuePong frames a pong into the pending output, counted in the
// router-wide output budget as Send's output is.
func (cn *conn) queuePong(payload []byte) {
	n0 := len(cn.out)
	if cn.phase == phRaw {
		cn.out = appendRawFrame(cn.buf(), rawPong, payload)
	} else {
		cn.out = appendWSFrame(cn.buf(), ws.OpPong, payload)
	}
	cn.ls.countPending(len(cn.out) - n0)
	cn.ls.markDirty(cn)
}
