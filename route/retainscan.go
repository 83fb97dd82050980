package route

import (
	"strconv"

	"github.com/edgewamp/edgewamp/proto"
)

// A get_retained subscription with a prefix or wildcard pattern scans all
// of the realm's retained topics (up to maxRetained) under the realm's
// lock: about a millisecond of the loop for a SUBSCRIBE of a few dozen
// bytes, whether anything matches or not. Pipelined, 2,000 of them from one
// anonymous session held a loops:1 router for 2 s, and every other session
// on the loop waited as long. So each session gets a budget of topics
// scanned: retainedScanRate a second (8 scans of a full realm, a few ms of
// the loop), up to retainedScanBurst at once (one such scan). A scan runs while the session is not in debt and
// charges what it scanned; further ones wait their turn in the session, in
// order, and run when the budget has refilled (their retained events come
// late, none is lost). At most maxRetainedScanWait wait per session; past
// that a SUBSCRIBE with get_retained is refused (wamp.error.unavailable)
// before it changes anything. Exact subscriptions look their topic up and
// are not counted.
const (
	retainedScanRate    = 1 << 19 // topics a second per session
	retainedScanBurst   = maxRetained
	maxRetainedScanWait = 1024
)

// scanBudget is a session's allowance of retained topics scanned.
type scanBudget struct {
	tokens int64 // may go negative: the debt of the last scan
	at     int64 // unix ns of the last refill
	q      []*subscription
	logged bool
}

func (b *scanBudget) refill(now int64) {
	if b.at == 0 {
		b.tokens, b.at = retainedScanBurst, now
		return
	}
	if d := now - b.at; d > 0 {
		b.tokens = min(b.tokens+d*retainedScanRate/1e9, retainedScanBurst)
		b.at = now
	}
}

// retainedScanFull reports whether a SUBSCRIBE with these options must be
// refused: ss has maxRetainedScanWait pattern scans waiting already.
func (s *Shard) retainedScanFull(ss *Session, m *proto.Message, match proto.Match) bool {
	if s.r.mesh != nil || match == proto.MatchExact || !m.Opt.Bool(proto.KeyGetRetained, false) {
		return false
	}
	if len(ss.scans.q) < maxRetainedScanWait {
		return false
	}
	if !ss.scans.logged {
		ss.scans.logged = true
		s.r.log.Warn("get_retained subscriptions refused: too many waiting for their turn to scan the retained events",
			"session", ss.id, "realm", ss.realm.name, "waiting", len(ss.scans.q))
	}
	s.replyError(ss, proto.CodeSubscribe, m.Request, proto.URIUnavailable,
		"too many get_retained pattern subscriptions waiting for this session (limit "+strconv.Itoa(maxRetainedScanWait)+")")
	return true
}

// retainedTurn delivers sub's retained events now if ss's budget allows,
// else queues them for the timer.
func (s *Shard) retainedTurn(ss *Session, sub *subscription) {
	if sub.match == proto.MatchExact {
		s.sendRetained(ss, sub)
		return
	}
	b := &ss.scans
	b.refill(s.r.now())
	if len(b.q) == 0 && b.tokens > 0 {
		b.tokens -= int64(s.sendRetained(ss, sub))
		return
	}
	b.q = append(b.q, sub)
	if len(b.q) == 1 {
		s.armScan(ss)
	}
}

// armScan schedules ss's next waiting scan for when its debt is paid.
func (s *Shard) armScan(ss *Session) {
	wait := int64(0)
	if t := ss.scans.tokens; t <= 0 {
		wait = (1-t)*1e9/retainedScanRate + 1
	}
	s.addTimer(timer{due: s.r.now() + wait, kind: tmRetainedScan, sess: ss})
}

// retainedScanDue runs ss's waiting scans while its budget allows.
func (s *Shard) retainedScanDue(ss *Session) {
	b := &ss.scans
	b.refill(s.r.now())
	for len(b.q) > 0 && b.tokens > 0 {
		sub := b.q[0]
		b.q[0] = nil
		b.q = b.q[1:]
		if ss.subs[sub.id] == sub { // still subscribed
			b.tokens -= int64(s.sendRetained(ss, sub))
		}
	}
	if len(b.q) == 0 {
		b.q = nil
		return
	}
	s.armScan(ss)
}
