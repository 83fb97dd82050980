package loop

import (
	"cmp"
	"slices"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

// Memory budgets across connections, for input and for output.
//
// Partial inbound messages are the one per-connection buffer a client fills
// at will: a message may be MaxMessage bytes, and the engine waits for the
// whole of it (or reassembles its fragments). The engine keeps the total
// within Options.MaxInboundTotal: after each read, a connection's held bytes
// are brought up to date, and a connection whose partial message grew past
// inboundMinVictim while the total is over budget is closed, or the stale
// holders in its place (shed). Small
// messages, which are never partial after a read, cost no accounting.

// inboundMinVictim: a connection holding less than this is not closed for
// the budget (one such read is within gnet's read buffer anyway).
const inboundMinVictim = 64 << 10

// defaultBudget is a quarter of RAM, within [64 MiB, 4 GiB]: the inbound
// and the outbound budgets' default.
func defaultBudget() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 256 << 20
	}
	return min(max(int64(si.Totalram)*int64(si.Unit)/4, 64<<20), 4<<30)
}

// account brings the connection's held inbound bytes up to date; it runs on
// the connection's loop after its input was parsed.
func (cn *conn) account() {
	buffered := cn.c.InboundBuffered()
	n := int64(buffered + cap(cn.wsr.frag))
	// got is what the peer has sent of its partial input, for stalled:
	// held counts memory (the stash's and a fragment buffer's capacity,
	// which double; a large frame's whole chunks), which does not grow
	// with every byte.
	got := int64(buffered + len(cn.wsr.frag))
	if s := cn.st; s != nil {
		n += int64(s.held())
		got += int64(s.have())
	}
	if cn.tls != nil {
		g, m := cn.tls.held()
		n += int64(m) // the plaintext buffer's capacity, as the fragment buffer's
		got += int64(g)
	}
	if cn.big != nil {
		n += int64(cn.big.held())
		got += int64(cn.big.got)
	}
	if cn.batch != nil {
		n += cn.batch.held() // held, but received whole: not in got
	}
	if got != cn.got {
		if got < cn.got || cn.got == 0 {
			// A message ended (or one began): what is received from
			// here is a new partial message, whose progress counts from
			// now.
			now := cn.ls.e.now()
			cn.progGot, cn.progAt = got, now
			cn.grew(got, now)
		} else if cn.stale != 0 && got-cn.growGot >= stallBytes {
			cn.grew(got, cn.ls.e.now()) // it sends again: not shed
		}
		cn.got = got
	}
	d := n - cn.held
	if d == 0 {
		return
	}
	cn.held = n
	e := cn.ls.e
	if cn.stale != 0 {
		cn.setStale(n)
	}
	total := e.inbound.Add(d)
	if d > 0 && total > e.opts.MaxInboundTotal && n >= inboundMinVictim && cn.phase != phDead {
		if cn.stale == 0 && e.shed(total-e.opts.MaxInboundTotal) {
			return // stale holders go instead
		}
		cn.refuseInbound(errInboundBudget)
	}
}

// refuseInbound closes the connection for the inbound budget (WebSocket
// 1009); the reason is logged once, when it closes (close.go).
func (cn *conn) refuseInbound(why error) {
	cn.ls.e.inboundRefused.Add(1)
	if cn.phase == phWS || cn.phase == phClosing {
		cn.wsFail(ws.StatusMessageTooBig, "router inbound memory budget reached", CloseInboundBudget, why)
		return
	}
	cn.die(CloseInboundBudget, why)
}

// stalled closes, in the scan, a connection whose partial input has not
// grown by stallBytes (received, not held) in stallAfter while the
// engine's held total is past half of MaxInboundTotal (so that the other
// half stays for the messages that arrive). account closed only the
// connection that grows past the budget, with 64 KiB or more: a peer that
// kept partial messages and stopped growing them (a byte now and then
// keeps a session alive), or many connections each holding less than
// 64 KiB (unfinished HTTP upgrades too), filled the budget at no cost to
// themselves, and then the other sessions' large messages were the ones
// refused. To hold the budget now, a peer must keep sending 8 KiB a
// second per connection, and what it holds grows into account's reach.
// The gateway's HTTP lane is left to its own deadlines: a request waiting
// in gnet's buffer behind a slow call cannot grow (the lane reads no more
// meanwhile).
func (cn *conn) stalled(now int64) {
	if cn.held == 0 || cn.phase == phDead || cn.phase == phGone || cn.phase == phLane {
		return
	}
	if cn.got-cn.progGot >= stallBytes || cn.got < cn.progGot {
		cn.progGot, cn.progAt = cn.got, now
		return
	}
	if now-cn.progAt >= int64(stallAfter) {
		cn.refuseInbound(errInboundStalled)
	}
}

// A partial message under inbound memory pressure must grow by stallBytes
// every stallAfter (8 KiB a second): a client on a slow link keeps it
// easily; one that holds memory without sending does not.
const (
	stallAfter = 5 * time.Second
	stallBytes = 40 << 10
)

// Past the budget, the connection whose growth took the total over is not
// necessarily the one to close: stale holders, connections whose partial
// input has not grown by stallBytes in stallAfter (what stalled judges,
// but judged whatever the pressure, so that a holder that stopped while
// the total was under half the budget is known as one), go first. A
// connection that grows past the budget is kept when the stale holders
// hold at least the excess (Engine.staleHeld): a shed round then has every
// loop close its stale holders, its longest stalled first (the order is
// per loop, not engine-wide), until the excess is shed (shedNeed).
// Before, the sender was closed (1009) and the
// holders kept the budget until the stall check, which judges them only
// past half the budget, and only stallAfter after the pressure began.
// Meanwhile the total may pass the budget by what the shed holders hold,
// until their closes are done (a loop turn); the connections that are not
// stale still hold at most the budget.

// grew records a sign of growth of the connection's partial input (got
// bytes received at now): it is not stale.
func (cn *conn) grew(got, now int64) {
	cn.growGot, cn.growAt = got, now
	if cn.stale != 0 {
		cn.setStale(0)
	}
}

// setStale counts n held bytes as the connection's stale ones (0: not
// stale) in Engine.staleHeld.
func (cn *conn) setStale(n int64) {
	cn.ls.e.staleHeld.Add(n - cn.stale)
	cn.stale = n
}

// judgeStale runs in the scan: a connection holding partial input that has
// not grown by stallBytes in stallAfter is stale (shed).
func (cn *conn) judgeStale(now int64) {
	if cn.held == 0 || cn.phase == phDead || cn.phase == phGone || cn.phase == phLane {
		if cn.stale != 0 {
			cn.setStale(0)
		}
		return
	}
	if cn.got-cn.growGot >= stallBytes || cn.got < cn.growGot {
		cn.grew(cn.got, now)
		return
	}
	if now-cn.growAt >= int64(stallAfter) {
		cn.setStale(cn.held)
	}
}

// shed reports whether the stale holders can make up for excess bytes over
// the inbound budget, and if so has the loops close them (a shed round;
// one at a time: a round under way takes the growth of the excess since
// its last call, on the loops that have not shed yet). It runs on any
// loop.
func (e *Engine) shed(excess int64) bool {
	if e.staleHeld.Load() < excess {
		return false
	}
	if !e.shedding.CompareAndSwap(false, true) {
		// The round covers the largest excess it was called with: only
		// the growth past it is new. Before, the whole excess was added
		// again, so each growth during a round counted the round's
		// excess once more (two reports of 100 KiB, then 110 KiB, asked
		// for 210 KiB: four holders of 64 KiB closed instead of two). The
		// holders shed stay counted in the total until their closes are
		// done, so the excess is not compared with what is left to shed.
		for {
			prev := e.shedExcess.Load()
			if excess <= prev {
				return true
			}
			if e.shedExcess.CompareAndSwap(prev, excess) {
				e.shedNeed.Add(excess - prev)
				return true
			}
		}
	}
	e.shedRound.Add(1)
	e.shedExcess.Store(excess)
	e.shedNeed.Store(excess)
	loops := e.allLoops()
	e.shedLeft.Store(int32(len(loops)))
	for _, ls := range loops {
		if ls.Execute(ls.shed) != nil {
			e.shedDone() // the engine stops
		}
	}
	return true
}

// shedDone ends a loop's part of a shed round.
func (e *Engine) shedDone() {
	if e.shedLeft.Add(-1) == 0 {
		e.shedNeed.Store(0)
		e.shedExcess.Store(0)
		e.shedding.Store(false)
	}
}

// shed closes the loop's stale holders, the longest stalled first, while
// the round has bytes to shed.
func (ls *loopState) shed() {
	defer ls.e.shedDone()
	var st []*conn
	for _, cn := range ls.conns {
		if cn.stale != 0 && cn.phase != phDead {
			st = append(st, cn)
		}
	}
	slices.SortFunc(st, func(a, b *conn) int { return cmp.Compare(a.growAt, b.growAt) })
	for _, cn := range st {
		if ls.e.shedNeed.Load() <= 0 {
			return
		}
		ls.e.shedNeed.Add(-cn.held)
		cn.shedIn = ls.e.shedRound.Load()
		cn.refuseInbound(errInboundShed)
	}
}

// inboundPressed reports whether the engine holds more than half of
// MaxInboundTotal in partial input: the scan then closes the stalled
// holders (stalled).
func (e *Engine) inboundPressed() bool {
	return e.inbound.Load() > e.opts.MaxInboundTotal/2
}

// release returns the connection's held bytes when it closes.
func (cn *conn) release() {
	if cn.stale != 0 {
		cn.setStale(0)
	}
	if cn.held != 0 {
		e := cn.ls.e
		if cn.shedIn != 0 && e.shedding.Load() && e.shedRound.Load() == cn.shedIn {
			// A holder its round shed leaves the total: the excess the
			// round covers shrinks as much, so that a growth after it is
			// new excess in full (Engine.shed). Without this, an excess
			// that fell (the shed holders given back) and grew again
			// within the round was taken as covered: 100 KiB shed as
			// 128, then 122 KiB over the budget added 22 KiB to a need of
			// -28, and nothing more was shed.
			e.shedExcess.Add(-cn.held)
		}
		e.inbound.Add(-cn.held)
		cn.held = 0
	}
}

// Inbound returns the bytes of partial inbound messages the engine holds,
// its budget, and how many connections were closed for it.
func (e *Engine) Inbound() (held, budget int64, refused uint64) {
	return e.inbound.Load(), e.opts.MaxInboundTotal, e.inboundRefused.Load()
}

// Output that peers do not take stays in gnet's outbound buffers, each
// bounded by Options.HardLimit, together by Options.MaxOutboundTotal: a
// connection's queued bytes are counted after each flush and in the scan
// once a second (gnet drains the buffers on its own), so that only
// connections with a backlog cost an atomic add. While the total is over
// budget, Send applies squeezedHighWater and HighWater in place of
// HighWater and HardLimit.
const squeezedHighWater = 16 << 10

// accountOut brings the connection's queued output up to date: gnet's
// outbound buffer and a waiting pong (pong.go).
func (cn *conn) accountOut() {
	n := int64(cn.c.OutboundBuffered() + len(cn.pong))
	if d := n - cn.outHeld; d != 0 {
		cn.outHeld = n
		cn.ls.e.outbound.Add(d)
	}
}

// releaseOut returns the connection's queued output when it closes.
func (cn *conn) releaseOut() {
	if cn.outHeld != 0 {
		cn.ls.e.outbound.Add(-cn.outHeld)
		cn.outHeld = 0
	}
}

// Output a loop produces is in no connection's backlog until the loop's
// flush hands it to the socket or to gnet's buffer (accountOut), and one
// round can produce a great deal of it: a 15 MiB EVENT fanned out to 64
// subscribers is 64 copies of it, 1.5 GB of RSS under a 64 MiB budget
// before this was counted. So the bytes Send appends count in the budget
// from the moment they are appended: each loop adds them to
// Engine.outbound once they reach pendingStep (a shared atomic add per
// message would cost every loop on the fast path), and its flush takes
// them out again, after accountOut has counted what the socket left in
// gnet's buffer. A loop's unshared share is at most pendingStep, so the
// budget holds within loops × pendingStep.
//
// A message of largeOut bytes or more that is refusable (an EVENT, an
// INVOCATION) is refused when it would take the router-wide total past the
// budget, whatever the connection's own backlog: the marks below tighten
// only for connections that hold a backlog already, and a fan-out's every
// copy goes to a connection that holds none yet. Refused events are
// dropped for that subscriber and invocations answered as for a busy
// callee, as past the high-water mark; both are counted
// (edgewamp_outbound_refused_total). Results, errors and control messages
// are never refused: each answers something its peer asked for, once.
const (
	pendingStep = 64 << 10
	largeOut    = 64 << 10
)

// countPending counts n bytes of output appended on the loop.
func (ls *loopState) countPending(n int) {
	ls.pendLocal += int64(n)
	if ls.pendLocal >= pendingStep {
		ls.e.outbound.Add(ls.pendLocal)
		ls.pendShared += ls.pendLocal
		ls.pendLocal = 0
	}
}

// spilled takes n bytes the socket took early (conn.spill) out of the
// round's pending count: its unshared part first, then its shared part.
// Bytes never counted (a handshake reply) take nothing.
func (ls *loopState) spilled(n int) {
	d := int64(n)
	if x := min(d, ls.pendLocal); x > 0 {
		ls.pendLocal -= x
		d -= x
	}
	if x := min(d, ls.pendShared); x > 0 {
		ls.pendShared -= x
		ls.e.outbound.Add(-x)
	}
}

// pendingFlushed ends the loop's pending count at the end of a flush: the
// connections' leftovers are in their backlogs (accountOut) by then.
func (ls *loopState) pendingFlushed() {
	if ls.pendShared != 0 {
		ls.e.outbound.Add(-ls.pendShared)
		ls.pendShared = 0
	}
	ls.pendLocal = 0
}

// overBudget reports whether n more bytes of output would take the
// router-wide total past the budget. A message larger than the whole
// budget still goes when nothing else is queued.
func (ls *loopState) overBudget(n int) bool {
	t := ls.e.outbound.Load() + ls.pendLocal
	return t > 0 && t+int64(n) > ls.e.opts.MaxOutboundTotal
}

// marks returns the backlog marks in force: Options.HighWater and
// HardLimit, or tighter ones while the router-wide output is over budget.
// The budget is consulted only for a connection that has a backlog.
func (cn *conn) marks(backlog int) (high, hard int) {
	o := &cn.ls.e.opts
	if backlog > squeezedHighWater && cn.ls.e.outbound.Load() > o.MaxOutboundTotal {
		return squeezedHighWater, o.HighWater
	}
	return o.HighWater, o.HardLimit
}

// squeeze closes, in the scan, WebSocket, RawSocket and HTTP lane connections whose
// backlog is past HighWater while out, the router-wide output as the scan
// sees it, is over MaxOutboundTotal: the hard mark in force then (marks),
// which Send applies only when a message comes for the connection. It
// closes the largest backlogs first, until what it closed takes the total
// under the budget: walked in the loop's order, a connection a little past
// high_water was closed and one holding most of the total, after it, kept
// (256 KiB closed, 2 MiB kept, under a 2 MiB budget).
//
// Results are never refused (Send), so a peer that asked for one large
// result (up to max_message) and reads nothing holds it in full whatever
// the budget; and past it, with no further message for it, nothing closed
// it (its keepalive is kept by sending a byte now and then): 8 callers
// that each called once for a 1 MiB result and read nothing held 8 MiB
// under a 2 MiB budget for as long as they stayed.
func (ls *loopState) squeeze(out int64) {
	o := &ls.e.opts
	type held struct {
		cn *conn
		bl int
	}
	var hs []held
	for _, cn := range ls.conns {
		if cn.phase == phDead && cn.abort {
			// Closing, its output to be dropped at the round's end (a
			// scan earlier in this round closed it, or Send did): gone
			// already. Counted, a second scan in the same round (the
			// loop's own and a test's, as CI met under load) closed the
			// next largest too, the first one's output still in the
			// total.
			out -= int64(cn.backlog())
			continue
		}
		// The HTTP lane's too: an answer it queued (a bridge call's
		// result, up to max_message) counts in the total until its client
		// reads it. Passed by, a few clients that asked for large results
		// and read none kept the total past the budget for as long as
		// they stayed, every WAMP connection held to the squeezed marks
		// meanwhile, and the WAMP connections past high_water were the
		// ones closed.
		if cn.phase != phWS && cn.phase != phRaw && cn.phase != phLane {
			continue
		}
		if bl := cn.backlog(); bl > o.HighWater {
			hs = append(hs, held{cn, bl})
		}
	}
	slices.SortFunc(hs, func(a, b held) int { return cmp.Compare(b.bl, a.bl) })
	for _, h := range hs {
		if out <= o.MaxOutboundTotal {
			return
		}
		h.cn.die(CloseSlowConsumer, errBacklogHard)
		out -= int64(h.bl)
	}
}

// overHighWater reports whether the connection's output backlog is past
// its high-water mark.
func (cn *conn) overHighWater() bool {
	bl := cn.backlog()
	high, _ := cn.marks(bl)
	return bl > high
}

// Outbound returns the output queued router-wide (pending output of the
// loops' current rounds included), its budget, and how many large
// messages were refused for it.
func (e *Engine) Outbound() (held, budget int64, refused uint64) {
	return e.outbound.Load(), e.opts.MaxOutboundTotal, e.outRefused.Load()
}
