package edge

import (
	"encoding/binary"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Paced gather answers. A node answered another node's meta query or
// get_retained with one message, however large: up to 4 MiB of retained
// events, or a session list of a large realm. Over an edge's slow uplink
// such an answer crossed as one burst with the heartbeats and NATS's own
// PONGs behind it, so an answer that took the link longer than about 2 s
// cut it: the edge took the hub for dead, NATS cut the leaf link as stale
// (ping_interval × max_pings_out), the calls across it were reset, and
// the answer never arrived (TestSlowUplinkGetRetainedDelivered: 2,000
// retained events of 1 KiB over 192 KiB/s).
//
// So an answer larger than pacedAlone to a node that reads parts (its
// heartbeats say so: hbPacedAnswers) is held by the answering node
// (heldAnswer) and sent a part of at most pacedPart at a time, at most
// pacedPart bytes in flight to each asking node whatever the number of
// its answers (one part, or several answers smaller than a part, sent
// whole), the next once the asker acknowledges one before (op "g"): at
// most a part is ever ahead of the heartbeats and PONGs on the link. The
// asker's answers take turns. Each answer gets a notice first (a part
// without data), also when its first part goes at once, so the asker
// knows it is coming and how large it is (and waits for it should that
// part be lost), and reserves that much of Options.MaxGathered for
// it (or refuses it: it asks the answerer to drop it, and counts the
// node as not answered).
//
// The asker's gather waits for an answer under way as long as parts keep
// coming from its node (each within pacedWait of the one before), up to
// maxPacedWait from its start; the answerer holds an answer until its
// last part is sent, and drops it when the asker has not acknowledged a
// part for pacedWait, when it is older than maxPacedWait, when the asker
// asks it to (its gather ended), or when the asker is taken for dead.
// A part unacknowledged for four of the asker's recent round trips
// (pacedLost) is taken for lost, it or its acknowledgement, and sent
// again; the asker acknowledges a part it has again (partAnswered).
// It holds at most maxPacedHeld bytes of answers in all, a quarter of
// them (or one answer) and maxPacedAnswers answers for one asking node;
// past those it answers with a refusal (a part of total 0), which the
// asker counts as a node that did not answer (its caller gets a partial
// answer, as for a node that did not answer in time).
//
// Wire: a part goes to the asker's reply subject with "p" for "a"
// (<inbox>.p.<id>.<stamp>.<wait>.<boot>): uvarint total, uvarint offset,
// then the bytes from offset. An acknowledgement goes to the answerer's
// <inbox>.g: a byte (pacedNext, or pacedStop to drop the answer), the
// offset acknowledged (uvarint), then the reply subject's tail after the
// asker's inbox and ".p.". A node of the previous release sends no
// heartbeat flag, so it is answered in one message, as before; and it
// answers in one message, which this node reads as before.

const (
	// hbPacedAnswers is the heartbeat's feature bit saying its sender
	// reads paced gather answers.
	hbPacedAnswers = 1 << 0
	// hbPartsAgain says its sender acknowledges a part it has again
	// (partAnswered), so that a part taken for lost may be sent again
	// (sweepPaced). A node of the previous release reads a part that
	// comes twice as one out of order and drops the whole answer: its
	// parts wait pacedWait for their acknowledgements, as they did.
	hbPartsAgain = 1 << 1

	// maxPacedWait bounds a gather's wait for a paced answer, and how long
	// a node holds one.
	maxPacedWait = 60 * time.Second
	// maxPacedAnswers bounds the answers held for one asking node: as
	// many as it may have gathers in flight.
	maxPacedAnswers = maxGathers
	// pacedAlone is the largest answer sent at once to a node that reads
	// paced answers, whatever is in flight to it; larger ones take their
	// turn. Answers of less than a part each, sent at once, made a burst
	// together (TestSlowUplinkManySmallGetRetainedDelivered: 24 answers of
	// 58 KiB to one edge cut its link).
	pacedAlone = 1 << 10

	pacedNext = 0
	pacedStop = 1
)

// pacedWait is how long an asker waits for the next part of an answer
// under way from a node, and how long the answering node waits for the
// acknowledgement of a part it sent: a part takes a while over a slow
// link, and other answers' parts may go before it.
func (n *Node) pacedWait() time.Duration {
	return max(2*n.opts.PeerTimeout, 4*n.opts.Heartbeat)
}

// maxPacedHeld bounds the bytes of the answers a node holds for paced
// sending: what its outbound queue would take of them at once, three
// quarters of Options.MaxOutbound (48 MiB at the default: held here,
// they are not queued there), and a quarter of that for one asking node,
// which may have any one answer held when it has none. A quarter of
// Options.MaxOutbound refused answers the queue took before pacing
// (TestPacedAnswerPastAskerShareHeldAlone).
func (n *Node) maxPacedHeld() int64 { return n.opts.MaxOutbound - n.opts.MaxOutbound/4 }

// heldAnswer is an answer being sent a part at a time.
type heldAnswer struct {
	tail   string // the reply subject after the asker's inbox and ".p."
	data   []byte
	off    int // the bytes sent
	at     time.Time
	flying bool // a part of it is on its way, unacknowledged
	// partAt is when its part on its way first went (sentTo: where the
	// furthest sent ends): unacknowledged for pacedWait since, it is
	// dropped, and sent again before that (pacedLost). Not its last
	// acknowledgement: the asker's answers take turns, and with a few
	// of them over a slow uplink one's parts are acknowledged further
	// apart than pacedWait, so that a part of it taken for lost dropped
	// the answer (TestPacedLostPartOfAnswerTakingTurnsSentAgain).
	partAt time.Time
	// partCredited is what a stall's credit made partAt last
	// (pacedTo.creditStall): one sending is credited one stall.
	partCredited time.Time
	sentTo       int
	// lostTo is where the furthest of its parts taken for lost ends:
	// Stats.PacedLost counts a part once, however often it goes again.
	lostTo int
}

// pacedTo is what a node holds for one asking node; guarded by Node.pmu.
type pacedTo struct {
	inbox  string
	q      []*heldAnswer // answers with parts to send, in turn
	bytes  int64
	flight []inFlight // the parts on their way, unacknowledged
	// flying is the bytes of flight: at most pacedPart, or one part.
	// Answers of less than a part share its room, so that many small
	// answers do not wait a round trip each (TestPacedSmallAnswersShareThePartInFlight).
	flying int
}

// inFlight is a part on its way to the asker: of h, or of an answer sent
// whole (h no longer held).
type inFlight struct {
	h      *heldAnswer
	end    int // the offset it ends at
	n      int // its bytes
	sentAt time.Time
	// credited is what a stall's credit made sentAt last
	// (pacedTo.creditStall): one sending is credited one stall.
	credited time.Time
	// last is the part's bytes when it is its answer's last (or the
	// answer sent whole), kept to send again (sweepPaced): h lets its
	// answer go once it is sent. At most a part's room of them per
	// asker, and a quarter of maxPacedHeld in all (Node.pacedKept; past
	// it a last part is not kept, nor sent again: before, answers sent
	// whole to 1,000 askers kept 64 MiB beside that bound,
	// TestPacedKeptLastPartsBoundedInAll); a copy unless the answer is
	// that part, so that a last part does not keep its whole answer.
	// total is the answer's length.
	last  []byte
	total int
}

// readsPacedAnswers reports whether a heartbeat's bytes after its peer set
// (splitHbSet) carry the paced answers flag, after the clock stamp.
func readsPacedAnswers(rest []byte) bool { return hbFlags(rest)&hbPacedAnswers != 0 }

// hbFlags returns the feature bits of a heartbeat's bytes after its peer
// set (splitHbSet), after the clock stamp; 0 when it has none.
func hbFlags(rest []byte) uint64 {
	_, k := binary.Uvarint(rest)
	if k <= 0 {
		return 0
	}
	f, k2 := binary.Uvarint(rest[k:])
	if k2 <= 0 {
		return 0
	}
	return f
}

// answerQuery sends a query's answer to reply, the subject of p's gather:
// in its turn, a part at a time, when p reads paced answers and it is
// larger than pacedAlone (holdAnswer), else at once. Safe for concurrent
// use.
func (n *Node) answerQuery(name, inbox string, paced bool, reply string, ans []byte) {
	if paced && len(ans) > pacedAlone && strings.HasPrefix(reply, inbox+".a.") {
		n.holdAnswer(name, inbox, reply[len(inbox)+3:], ans)
		return
	}
	n.out.pushBulk(reply, nodeInbox(n.opts.Name), ans)
}

// holdAnswer holds ans for name's gather of reply tail tail and sends its
// first part, or a notice when the parts of name's other answers on their
// way leave it no room; or refuses it past the bounds.
func (n *Node) holdAnswer(name, inbox, tail string, ans []byte) {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	pt := n.paced[name]
	size := int64(len(ans))
	if n.pacedBytes+size > n.maxPacedHeld() || pt != nil && (pt.bytes+size > n.maxPacedHeld()/4 || len(pt.q) >= maxPacedAnswers) {
		n.stats.PacedRefused.Add(1)
		if now := time.Now(); now.Sub(n.pacedLogAt) >= gatherLogEvery {
			n.pacedLogAt = now
			n.log.Warn("mesh: an answer to another node's meta query or get_retained was not sent: the answers this node holds to send a part at a time would pass their bound (three quarters of mesh.max_outbound, a quarter of that and 1,024 answers per asking node); that node's caller is told this node did not answer", "peer", name, "bytes", size, "held", n.pacedBytes, "refused", n.stats.PacedRefused.Load())
		}
		n.sendPiece(inbox, tail, 0, 0, nil)
		return
	}
	if pt == nil {
		pt = &pacedTo{inbox: inbox}
		n.paced[name] = pt
	}
	n.dropOtherLives(pt, tail)
	h := &heldAnswer{tail: tail, data: ans, at: time.Now()}
	pt.q = append(pt.q, h)
	pt.bytes += size
	n.pacedBytes += size
	// A notice first, even when its first part goes at once: it is
	// coming, how large. Without it a lost first part (an answer of one
	// part, most often) was lost with the answer: the asker, not knowing
	// it was coming, ended its gather at gather_timeout, before the part
	// was taken for lost (TestPacedFirstPartLostSentAgain).
	n.sendPiece(inbox, tail, len(ans), 0, nil)
	n.sendNext(pt)
}

// dropOtherLives drops pt's answers to gathers of another life of the
// asker than tail's (the boot its reply subjects end with): the asker
// restarted, and they are nobody's; the part in flight to the old life
// is never acknowledged. Kept, the new life's answers waited behind them,
// pacedWait for the part in flight, then each old answer's parts in turn
// (TestPacedAnswersOfAnAskersPreviousLifeDropped). Called with pmu held.
func (n *Node) dropOtherLives(pt *pacedTo, tail string) {
	boot := tail[strings.LastIndexByte(tail, '.')+1:]
	for i := 0; i < len(pt.flight); i++ {
		if f := pt.flight[i]; !strings.HasSuffix(f.h.tail, "."+boot) {
			n.landed(pt, i)
			i--
		}
	}
	for _, h := range slices.Clone(pt.q) {
		if !strings.HasSuffix(h.tail, "."+boot) {
			n.stats.PacedDropped.Add(1)
			n.unhold(pt, h)
		}
	}
}

// sendPiece sends a part of an answer: its total, its offset, its bytes.
func (n *Node) sendPiece(inbox, tail string, total, off int, b []byte) error {
	w := make(wr, 0, 2*binary.MaxVarintLen64+len(b))
	w.uv(uint64(total))
	w.uv(uint64(off))
	w = append(w, b...)
	return n.out.pushBulk(inbox+".p."+tail, nodeInbox(n.opts.Name), w)
}

// sendNext sends the next parts of pt's answers, in turn, as far as they
// fit in a part's room beside those on their way (one part when none
// is). Called with pmu held.
func (n *Node) sendNext(pt *pacedTo) {
	for {
		i := slices.IndexFunc(pt.q, func(h *heldAnswer) bool { return !h.flying })
		if i < 0 {
			return
		}
		h := pt.q[i]
		end := min(h.off+pacedPart, len(h.data))
		if len(pt.flight) > 0 && pt.flying+end-h.off > pacedPart {
			return
		}
		err := n.sendPiece(pt.inbox, h.tail, len(h.data), h.off, h.data[h.off:end])
		if err == nil {
			now := time.Now()
			f := inFlight{h: h, end: end, n: end - h.off, sentAt: now}
			if end == len(h.data) && n.pacedKept+int64(end-h.off) <= n.maxPacedHeld()/4 {
				f.last, f.total = h.data[h.off:end], len(h.data)
				if h.off > 0 {
					f.last = slices.Clone(f.last)
				}
				n.pacedKept += int64(len(f.last))
			}
			pt.flight = append(pt.flight, f)
			pt.flying += end - h.off
			if end > h.sentTo { // not sent again
				h.sentTo, h.partAt = end, now
			}
		}
		if err == nil && end < len(h.data) {
			h.off, h.flying = end, true
			pt.q = append(slices.Delete(pt.q, i, i+1), h) // the asker's other answers go next
			continue
		}
		// Sent whole, or the queue refused it: the answer is dropped,
		// and the asker, told it was coming (its notice, which goes
		// first), is told it is not (a part of total 0: the answer lost,
		// for every release that reads parts), as far as the queue takes
		// that. Before, it waited for it in vain pacedWait, longer while
		// this node's other answers' parts kept coming
		// (TestPacedAnswerRefusedByQueueTold).
		if err != nil {
			n.stats.PacedDropped.Add(1)
			n.sendPiece(pt.inbox, h.tail, 0, 0, nil)
		}
		n.unhold(pt, h)
	}
}

// unhold drops h from pt, and its part on its way if it is still held.
// Its bytes go too: a part on its way keeps h (its tail) until it is
// acknowledged, and the last parts of many answers may be on their way
// together, each keeping its whole answer, counted nowhere
// (TestPacedAnswersSentWholeNotKeptByTheirLastPart). Called with pmu
// held.
func (n *Node) unhold(pt *pacedTo, h *heldAnswer) {
	if i := indexHeld(pt.q, h); i >= 0 {
		pt.q = slices.Delete(pt.q, i, i+1)
		if h.flying {
			for j := range pt.flight {
				if pt.flight[j].h == h {
					n.landed(pt, j)
					break
				}
			}
		}
	}
	pt.bytes -= int64(len(h.data))
	n.pacedBytes -= int64(len(h.data))
	h.data = nil
}

// landed forgets pt's part on its way at index i: acknowledged, or given
// up. Called with pmu held.
func (n *Node) landed(pt *pacedTo, i int) {
	f := pt.flight[i]
	f.h.flying = false
	pt.flying -= f.n
	n.pacedKept -= int64(len(f.last))
	pt.flight = slices.Delete(pt.flight, i, i+1)
}

func indexHeld(q []*heldAnswer, h *heldAnswer) int {
	for i, x := range q {
		if x == h {
			return i
		}
	}
	return -1
}

// pacedAck handles an asking node's acknowledgement of a part (op "g"):
// the next part goes, of the asker's answers in turn; or its request to
// drop an answer. Control dispatcher.
func (n *Node) pacedAck(name string, data []byte) {
	if len(data) < 2 {
		return
	}
	kind := data[0]
	off, k := binary.Uvarint(data[1:])
	if k <= 0 {
		return
	}
	tail := string(data[1+k:])
	n.pmu.Lock()
	defer n.pmu.Unlock()
	pt := n.paced[name]
	if pt == nil {
		return
	}
	for i, f := range pt.flight {
		if f.h.tail == tail && (kind == pacedStop || off == uint64(f.end)) {
			if kind == pacedNext {
				rtt := n.pacedRTT[name]
				n.pacedRTT[name] = max(time.Since(f.sentAt), rtt-rtt/8)
			}
			n.landed(pt, i)
			break
		}
	}
	if kind == pacedStop {
		for _, h := range pt.q {
			if h.tail == tail {
				n.unhold(pt, h)
				break
			}
		}
	}
	n.sendNext(pt)
	if len(pt.q) == 0 && len(pt.flight) == 0 {
		delete(n.paced, name)
	}
}

// pacedLost is how long a part on its way to name may go unacknowledged
// before it is taken for lost: four of the asker's recent round trips
// (pacedRTT: the longest of a part to its acknowledgement, an eighth of
// it forgotten at each one, so that small answers' quick ones do not
// soon hide a part's), at least two heartbeats (the sweep's tick) and
// half peer_timeout (raised for slow uplinks), at most half pacedWait,
// and half pacedWait before a first acknowledgement from it: the asker
// waits pacedWait after a notice or part, so a part sent again later
// than that, at the sweep's next tick, came after its gather ended
// (before, with no round trip known, a lost first part was taken for
// lost after pacedWait: TestPacedFirstPartLostSentAgain/first). Called
// with pmu held.
func (n *Node) pacedLost(name string) time.Duration {
	rtt := n.pacedRTT[name]
	if rtt == 0 {
		return n.pacedWait() / 2
	}
	return min(max(4*rtt, 2*n.opts.Heartbeat, n.opts.PeerTimeout/2), n.pacedWait()/2)
}

// sweepPaced drops the answers held for askers that stopped acknowledging
// their parts (for pacedWait) or held longer than maxPacedWait, and those
// of the nodes in gone (taken for dead). A part unacknowledged for
// pacedLost, within pacedWait of its first sending, is taken for lost,
// it or its acknowledgement: sent again (the asker acknowledges a part it
// has again, and asks to drop an answer it has whole), the answer's last
// part or an answer sent whole from inFlight.last, within pacedWait
// (before, those gave their room back only, and a lost last part lost
// the answer: TestPacedLostPartOrAckSentAgain/last). Before, one lost part or acknowledgement held the
// asker's room pacedWait (4 s), its answer then dropped and the asker's
// gather incomplete (TestPacedLostAckStall: none of 300 retained events
// on a LAN). Control dispatcher, each heartbeat.
func (n *Node) sweepPaced(now time.Time) {
	n.pmu.Lock()
	defer n.pmu.Unlock()
	for name := range n.pacedRTT {
		if _, alive := n.peers.byName[name]; !alive {
			delete(n.pacedRTT, name)
		}
	}
	for name, pt := range n.paced {
		p, alive := n.peers.byName[name]
		if alive && now.Before(p.spareUntil) {
			// Spared at a second stall (Node.creditStall), its parts
			// not credited again: judged with it, once what it sent
			// meanwhile is read (TestStalledTwicePacedAnswerNotDropped).
			continue
		}
		again := alive && p.partsAgain
		lost := n.pacedLost(name)
		for i := 0; i < len(pt.flight); i++ {
			f := pt.flight[i]
			if alive && now.Sub(f.sentAt) <= lost {
				continue
			}
			if held := indexHeld(pt.q, f.h) >= 0; !held {
				n.countLost(f)
				if again && f.last != nil && now.Sub(f.h.partAt) <= n.pacedWait() && n.sendPiece(pt.inbox, f.h.tail, f.total, f.end-f.n, f.last) == nil {
					// Its answer's last part: sent again from here (the
					// asker asks to drop it when it has it already).
					pt.flight[i].sentAt = time.Now()
					continue
				}
				n.landed(pt, i)
			} else if again && now.Sub(f.h.partAt) <= n.pacedWait() {
				n.countLost(f)
				f.h.off = f.end - f.n // its part goes again (sendNext)
				n.landed(pt, i)
			} else if !again && alive && now.Sub(f.sentAt) <= n.pacedWait() {
				continue // an asker of the previous release (hbPartsAgain): as before
			} else {
				n.stats.PacedDropped.Add(1)
				n.unhold(pt, f.h) // and its part
			}
			i--
		}
		for _, h := range slices.Clone(pt.q) {
			if !alive || now.Sub(h.at) > maxPacedWait {
				n.stats.PacedDropped.Add(1)
				n.unhold(pt, h)
			}
		}
		n.sendNext(pt)
		if len(pt.q) == 0 && len(pt.flight) == 0 {
			delete(n.paced, name)
		}
	}
}

// creditStall moves the times the parts on their way to this asker went
// (inFlight.sentAt) and their answers' (heldAnswer.partAt) later, by a
// stall of this node's process (Node.creditStall, later), up to now:
// the asker's acknowledgements of that time are still on their way in.
// Before, a node whose process stopped past pacedWait with a part on its
// way dropped the answer on waking, before reading them (a get_retained
// of 300 events after a 3 s stall got none of them:
// TestStalledPacedAnswerNotDropped). Not the answers' start (at):
// maxPacedWait still bounds them. A part's sending is credited one
// stall, as a peer one a silence: a live asker is heard between two
// ticks, so that a dispatcher late at every tick (a busy or starved
// host) credited its parts at each, and a lost part was taken for lost
// about (tick gap / lateness over a heartbeat) times pacedLost late,
// after the asker's gather had ended without it
// (TestLateDispatcherPacedLostPartSentAgain). Called with pmu held.
func (pt *pacedTo) creditStall(later func(time.Time) time.Time) {
	for i := range pt.flight {
		if f := &pt.flight[i]; !f.sentAt.Equal(f.credited) {
			f.sentAt = later(f.sentAt)
			f.credited = f.sentAt
		}
	}
	credit := func(h *heldAnswer) {
		if !h.partAt.Equal(h.partCredited) {
			h.partAt = later(h.partAt)
			h.partCredited = h.partAt
		}
	}
	for _, h := range pt.q {
		credit(h)
	}
	for _, f := range pt.flight {
		if indexHeld(pt.q, f.h) < 0 {
			credit(f.h) // once: partCredited
		}
	}
}

// countLost counts f's part as taken for lost (Stats.PacedLost), unless it
// was before: sent again each pacedLost to an asker that acknowledges
// none, it was counted at each sending (TestPacedLostCountsEachPartOnce).
// Called with pmu held.
func (n *Node) countLost(f inFlight) {
	if f.end > f.h.lostTo {
		f.h.lostTo = f.end
		n.stats.PacedLost.Add(1)
	}
}

// ---------------------------------------------------------------- asking side

// pacedIn is an answer under way to one of this node's gathers.
type pacedIn struct {
	tail  string // the reply subject's tail after this node's inbox and ".p."
	total int
	buf   []byte
	at    time.Time // when its last part (or notice) came
	// dead: its node was taken for dead (pacedPeerLost); the gather no
	// longer waits for it.
	dead bool
}

// parsePartTail reads a part's reply tail (id.stamp.wait.boot) and returns
// the gather id, if it is of this node's present life.
func (n *Node) parsePartTail(tail string) (uint64, bool) {
	f := strings.Split(tail, ".")
	if len(f) != 4 {
		return 0, false
	}
	id, err := strconv.ParseUint(f[0], 10, 64)
	boot, err2 := strconv.ParseUint(f[3], 16, 64)
	return id, err == nil && err2 == nil && boot == n.boot
}

// ackPart acknowledges a part to its answering node (or asks it to drop
// the answer: stop).
func (n *Node) ackPart(from, tail string, stop bool, off int) {
	w := make(wr, 0, 1+binary.MaxVarintLen64+len(tail))
	if stop {
		w = append(w, pacedStop)
	} else {
		w = append(w, pacedNext)
	}
	w.uv(uint64(off))
	w = append(w, tail...)
	n.out.push(opPublish, nodeSubject(from, "g"), n.inbox, w, nil)
}

// partAnswered records a part of node from's paced answer to this node's
// gather (the reply tail tail). Control dispatcher.
func (n *Node) partAnswered(from, tail string, data []byte) {
	id, ok := n.parsePartTail(tail)
	if !ok || from == "" {
		return
	}
	r := rd{b: data}
	total, off := r.uv(), r.uv()
	if r.err != nil {
		return
	}
	body := r.b
	ack, stop := -1, false // what to tell the answerer, once gmu is let go
	defer func() {
		if stop {
			n.ackPart(from, tail, true, 0)
		} else if ack >= 0 {
			n.ackPart(from, tail, false, ack)
		}
	}()
	n.gmu.Lock()
	g := n.gathers[id]
	var pi *pacedIn
	if g != nil {
		pi = g.paced[from]
	}
	switch {
	case g == nil || pi == nil && g.got[from]:
		// Its gather ended (or a part came that no notice began).
		n.gmu.Unlock()
		stop = total > 0
		return
	case pi == nil && total == 0:
		// Refused by the answering node: it did not answer.
		g.got[from] = true
		g.dropped = append(g.dropped, from)
	case total == 0:
		// Dropped by the answering node after its notice (its outbound
		// queue refused a part: counted there, paced_answer_dropped): the
		// answer is lost, not past this node's max_inbound, and the
		// answerer holds nothing more of it to drop. Before, read as a
		// part out of turn: counted gather_full here, and a stop sent back
		// (TestPacedAnswerRefusedByQueueTold).
		delete(g.paced, from)
		n.gBytes -= int64(pi.total)
		g.dropped = append(g.dropped, from)
	case pi == nil && (off != 0 || total > uint64(max(n.opts.MaxGathered-n.gBytes, 0))):
		// Past the bytes this node's gathers may hold (Options.MaxGathered),
		// as for an answer sent whole (answered).
		g.got[from] = true
		g.dropped = append(g.dropped, from)
		n.stats.GatherAnswersDropped.Add(1)
		stop = true
	default:
		if pi == nil {
			g.got[from] = true
			pi = &pacedIn{total: int(total), tail: tail}
			if g.paced == nil {
				g.paced = map[string]*pacedIn{}
			}
			g.paced[from] = pi
			n.gBytes += int64(total) // reserved now: the bound holds for what is under way
		}
		if off < uint64(len(pi.buf)) && total == uint64(pi.total) && off+uint64(len(body)) == uint64(len(pi.buf)) {
			// A part it has, sent again: its acknowledgement was lost
			// (sweepPaced).
			n.gmu.Unlock()
			ack = len(pi.buf)
			return
		}
		if off != uint64(len(pi.buf)) || total != uint64(pi.total) || len(body) > pi.total-len(pi.buf) {
			// Not the part that follows: the answer is lost.
			delete(g.paced, from)
			n.gBytes -= int64(pi.total)
			g.dropped = append(g.dropped, from)
			n.stats.GatherAnswersDropped.Add(1)
			stop = true
			break
		}
		now := time.Now()
		pi.at = now
		n.partAt[from] = now
		if len(body) > 0 {
			if pi.buf == nil {
				pi.buf = make([]byte, 0, pi.total)
			}
			pi.buf = append(pi.buf, body...)
			ack = len(pi.buf)
		}
		if len(pi.buf) < pi.total {
			n.gmu.Unlock()
			return
		}
		// Whole: an answer like any other (gBytes holds its bytes).
		delete(g.paced, from)
		g.answers = append(g.answers, pi.buf)
	}
	n.countAnswer(g, id, from)
}

// endPaced ends g's answers still under way: it gives back their bytes
// (Node.gBytes), asks their nodes to drop them, and returns the nodes.
// Called with gmu held, g out of Node.gathers.
func (n *Node) endPaced(g *gather) []string {
	var names []string
	for name, pi := range g.paced {
		n.gBytes -= int64(pi.total)
		names = append(names, name)
		n.ackPart(name, pi.tail, true, 0)
	}
	g.paced = nil
	sort.Strings(names)
	return names
}

// pacedPeerLost ends the waits of this node's gathers for the answers
// under way from name, taken for dead: as for a node's answer that did
// not come, the gather ends at its timeout, or now when that has passed,
// the answer missing. Before, it waited pacedWait (2 × peer_timeout)
// after the answer's last part, peer_timeout after the node was taken
// for dead (TestPacedGatherEndsWhenAnswererDies). Control dispatcher.
func (n *Node) pacedPeerLost(name string) {
	n.gmu.Lock()
	defer n.gmu.Unlock()
	for _, g := range n.gathers {
		if pi := g.paced[name]; pi != nil && !pi.dead {
			pi.dead = true
			if time.Since(g.began) >= n.opts.GatherTimeout {
				g.due = time.Now()
				g.timer.Reset(0) // it waits for answers under way only
			}
		}
	}
}

// pacedUntil returns until when g waits for its answers under way: the
// last part of each plus pacedWait, at most maxPacedWait after g began;
// zero when none is under way but from nodes taken for dead. Called with
// gmu held.
func (n *Node) pacedUntil(g *gather) time.Time {
	var until time.Time
	for name, pi := range g.paced {
		if pi.dead {
			continue
		}
		// A part of another answer from the same node counts too: the
		// node sends a part's worth at a time, its answers in turn.
		at := pi.at
		if t := n.partAt[name]; t.After(at) {
			at = t
		}
		if t := at.Add(n.pacedWait()); t.After(until) {
			until = t
		}
	}
	if end := g.began.Add(maxPacedWait); until.After(end) {
		until = end
	}
	return until
}
