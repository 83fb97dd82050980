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
	if backlog > high {
		if cn.pong == nil {
			cn.pongSince = cn.ls.e.now()
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

// queuePong frames a pong into the pending output.
func (cn *conn) queuePong(payload []byte) {
	if cn.phase == phRaw {
		cn.out = appendRawFrame(cn.buf(), rawPong, payload)
	} else {
		cn.out = appendWSFrame(cn.buf(), ws.OpPong, payload)
	}
	cn.ls.markDirty(cn)
}
