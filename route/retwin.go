package route

import (
	"hash/maphash"
	"time"
)

// # Retained events against live events (get_retained)
//
// A get_retained SUBSCRIBE delivers the retained events as the
// subscriber's shard reads them, and the live events from the moment the
// subscriber is in the subscription's set. The two race whenever a live
// event is still on its way when the retained one is read:
//
//   - one router: the publisher's shard retains v1 and v2 and hands them to
//     the subscriber's shard as tasks; a SUBSCRIBE that shard runs first
//     gets the retained v2, then v1 and v2 live;
//   - a mesh: the publisher's node answers PUBLISHED once the event is
//     queued for NATS, and answers the subscriber node's gather behind it;
//     the event and the answer then reach the subscriber's node on two
//     dispatchers, in either order;
//   - a pattern subscription whose realm scan waits for the session's walk
//     budget (walkbudget.go), and a mesh gather, deliver the retained events
//     after live ones may have arrived.
//
// Each publication carries its publisher session's id and the number of
// that session's publications so far (publication.src, seq), in the mesh
// envelope too; one publisher's events reach a subscriber in that order
// (one shard runs a session's PUBLISHes, a shard's tasks to another keep
// their order, and so does the mesh from one node to another). seq is 32
// bits and wraps: two are compared as serial numbers, sound while fewer
// than 2^31 publications of a session fall within one window.
// A get_retained SUBSCRIBE that makes the session a subscriber opens a
// window on the subscription for the session (retWin):
//
//   - pending, until its retained events are delivered: the session's live
//     events are held, in order, those of its other subscriptions too, so
//     that events of two topics still reach it in the order they were
//     published (WAMP's ordering guarantee; before, only the window's
//     subscription's were held, and an event published after them on
//     another topic overtook them); at most maxWinHeld bytes and
//     maxWinHeldN events of the session; past either, the held events and
//     the new one are delivered at once, and so are the live events after
//     them (winLive); each pending window remembers the topics of its
//     subscription's that the session was sent a live event of, and of
//     its retained events only those of the other topics are delivered
//     when they come (one of a topic remembered is older than what the
//     subscriber has): before, none was, and a get_retained that took
//     seconds (a mesh answer over a slow uplink, 2,000 retained events)
//     beside a live event every 5 ms delivered none. The topics are
//     remembered by a hash (a collision drops a retained event as
//     superseded), within the session's maxWinMarks; a window that cannot
//     remember one more delivers none of its retained events, as before.
//     With several windows pending, the events are held until the last
//     one's retained events are delivered;
//   - then the retained events are delivered, and for each a mark (topic,
//     src, seq, id) is kept for retFenceTTL: a live event on that topic with
//     the retained event's publication id, or from its publisher with a seq
//     not above it (published before it), is not delivered; the held events
//     go out through the same filter. A later event from that publisher
//     ends the mark (its older events came before it).
//
// So the subscriber gets the retained event once, before the live events
// of the subscription, and no event its publisher published before the
// retained one (within the bounds below and retFenceTTL). Events of other
// publishers are not ordered against it (WAMP orders events per publisher
// only), nor are the router's own (meta events, src 0: matched by id).
//
// A session subscribed already is owed every live event on its way, so
// its get_retained SUBSCRIBE opens no window: it may get the retained
// event, then the same event live and its publisher's older ones. Before,
// it opened one, whose marks dropped the live events the session had been
// subscribed to all along, and the HTTP gateway, whose streams of one
// principal share one subscription and hand a retained event only to the
// stream that asked, lost them for its other streams. Likewise a SUBSCRIBE
// of the session to the subscription while its window is pending (a
// gateway stream opening meanwhile) makes the window keep no marks
// (resubscribed).
//
// The fan-out pays for this only on a subscription with a window open, or
// on a shard with a window pending: subscription.wins and
// Shard.winPending count those, and deliverEvents checks them once per
// subscription and event.

type retWin struct {
	sub   *subscription
	state winState
	marks map[string]retMark // fenced: by topic, the retained events delivered
	until int64              // fenced: unix ns, when the window ends
	// repeated: the session SUBSCRIBEd to sub again while the window
	// was pending; its retained events keep no marks (resubscribed).
	repeated bool
	// winLive: the hashes of the topics the session was sent a live
	// event of for sub (topicHash), counted in Session.winMarks, and
	// whether one was not remembered (past maxWinMarks).
	live     map[uint64]struct{}
	liveLost bool
}

// heldEvent is a live event held for a session while one of its windows
// is pending (Session.held): an owned copy, the subscription it is for,
// and the session's subscriber of it that it is for (subRef.gen): one
// that left and came back (another session kept the subscription, same
// id) is not owed it.
type heldEvent struct {
	sub *subscription
	p   *publication
	gen uint64
}

type winState uint8

const (
	winPending winState = iota // retained events not delivered yet: live ones are held
	winLive                    // pending, but the held events overflowed and went out: live events go out at once, their topics remembered (live)
	winFenced                  // retained events delivered: marks filter the live ones until until
)

// retMark is a retained event delivered: its publisher session, that
// session's publication count at it, and its publication id; refused,
// whether the subscriber's Send refused its EVENT (slow), so that the
// live copy of it still goes out (fenced).
type retMark struct {
	src, id uint64
	seq     uint32
	refused bool
}

const (
	// retFenceTTL is how long the marks of delivered retained events are
	// kept: events published before them wait in this router (shard
	// mailboxes, the mesh's inbound queues) for far less, but for an
	// overload.
	retFenceTTL = int64(5 * time.Second)
	// A session's windows, and the marks, bytes and events they hold,
	// are bounded: a subscription past them gets no window (a duplicate
	// or an older event may then reach it), a mark past them is not kept,
	// held events past them are delivered (above).
	maxWins     = 4096
	maxWinMarks = 4096
	maxWinHeld  = 1 << 20
	maxWinHeldN = 1024
)

// winOf returns ss's window on sub, or nil.
func (ss *Session) winOf(sub *subscription) *retWin {
	if ss.wins == nil {
		return nil
	}
	return ss.wins[sub]
}

// openWin opens ss's window on sub, pending, for a get_retained
// SUBSCRIBE that made ss a subscriber (none is open then: leaving closes
// it), and drops the session's windows that ended. It returns nil past
// maxWins.
func (s *Shard) openWin(ss *Session, sub *subscription) *retWin {
	now := s.r.now()
	for _, w := range ss.wins {
		if w.state == winFenced && now > w.until {
			s.closeWin(ss, w)
		}
	}
	if w := ss.winOf(sub); w != nil {
		s.setPending(ss, w)
		return w
	}
	if len(ss.wins) >= maxWins {
		return nil
	}
	if ss.wins == nil {
		ss.wins = map[*subscription]*retWin{}
	}
	w := &retWin{sub: sub, state: winFenced} // no marks: made pending below
	ss.wins[sub] = w
	sub.wins.Add(1)
	s.setPending(ss, w)
	return w
}

// setPending makes w pending (its retained events not delivered yet).
func (s *Shard) setPending(ss *Session, w *retWin) {
	if w.state != winPending {
		w.state = winPending
		ss.winPending++
		s.winPending++
	}
}

// setState moves w out of pending to state; the session's held events go
// out when it was the last pending window (flush; else they wait for the
// others).
func (s *Shard) setState(ss *Session, w *retWin, state winState, flush bool) {
	if w.state == winPending {
		ss.winPending--
		s.winPending--
		w.state = state
		if ss.winPending == 0 && flush {
			s.flushHeld(ss)
		}
		return
	}
	w.state = state
}

// closeWin ends w, one of ss's windows (the session's held events go out
// if it was the last pending one).
func (s *Shard) closeWin(ss *Session, w *retWin) {
	delete(ss.wins, w.sub)
	if len(ss.wins) == 0 {
		ss.wins = nil
	}
	w.sub.wins.Add(-1)
	ss.winMarks -= len(w.marks) + len(w.live)
	w.marks, w.live = nil, nil
	s.setState(ss, w, winFenced, true)
}

// flushHeld sends ss the live events held while a window was pending, in
// order, each through its subscription's window if that is fenced; an
// event of a subscription the session left meanwhile is dropped, also
// when it subscribed again since (its UNSUBSCRIBED said no more events
// of it: before, the session got them after its new SUBSCRIBED when
// another session had kept the subscription, its id the same).
func (s *Shard) flushHeld(ss *Session) {
	held := ss.held
	ss.held, ss.winHeld, ss.winHeldN = nil, 0, 0
	if ss.state != stEstablished {
		return
	}
	for _, h := range held {
		sub, p := h.sub, h.p
		if ref := ss.subs[sub.id]; ref.sub != sub || ref.gen != h.gen || !ss.mayReceive(ActionSubscribe, sub.match, p.topic) {
			continue
		}
		w := ss.winOf(sub)
		if w != nil && w.state == winFenced && s.fenced(ss, w, p) {
			continue
		}
		var buf [4][]byte
		if err := s.sendEvent(ss, sub, p, &buf); err == nil && len(buf[ss.ser]) > 0 && w != nil && w.state == winLive {
			w.sentLive(ss, p) // sent (not refused, nor unconvertible)
		}
	}
}

// deliverRetained sends the retained events pubs of ask's subscription to
// ss, then the live events its window held, but those the retained
// events supersede. Marks are kept only for a window that the SUBSCRIBE
// opened (it made ss a subscriber) and that no SUBSCRIBE of ss to the
// subscription followed while it was pending (resubscribed): a
// subscriber already is owed the live events on their way, and may get
// the retained event twice, or an older event of its publisher after it.
// The SUBSCRIBEs merged into ask (ask.more, a subscriber's repeated ones:
// no window) get the same events after it, each then its RetainedSent.
// topics, when not nil, are the events' topics as strings the realm holds
// (its retained map's keys, the subscription's URI), which the marks
// share: as copies, 4,096 marks of 4 KiB topics held 16 MiB per session.
func (s *Shard) deliverRetained(ss *Session, ask retainedAsk, pubs []*publication, topics []string) {
	s.deliverRetainedOnce(ss, ask, pubs, topics)
	again := retainedAsk{sub: ask.sub, gen: ask.gen}
	for i := 0; i < ask.more && ss.state == stEstablished; i++ {
		s.deliverRetainedOnce(ss, again, pubs, topics)
	}
}

// deliverRetainedOnce is deliverRetained for one SUBSCRIBE.
func (s *Shard) deliverRetainedOnce(ss *Session, ask retainedAsk, pubs []*publication, topics []string) {
	sub, w := ask.sub, ask.w
	if rp, ok := ss.peer.(RetainedPeer); ok {
		defer rp.RetainedSent(sub.id)
	}
	if w != nil && ss.winOf(sub) != w {
		w = nil // closed meanwhile (wantsRetained says so when it waited)
	}
	var live map[uint64]struct{} // winLive: the topics not to deliver
	if w != nil && w.state == winLive {
		live = w.live
		if w.liveLost {
			live = nil
			for _, p := range pubs {
				if p.allowed(ss) && ss.mayReceive(ActionSubscribe, sub.match, p.topic) {
					s.stats.EventsSuperseded.Add(1)
				}
			}
			pubs = nil
		}
		// Given back before the marks are kept, which take their place.
		ss.winMarks -= len(w.live)
		w.live, w.liveLost = nil, false
	}
	fence := w != nil && !w.repeated
	for i, p := range pubs {
		if !p.allowed(ss) || !ss.mayReceive(ActionSubscribe, sub.match, p.topic) {
			continue
		}
		if live != nil {
			if _, ok := live[topicHash(p.topic)]; ok {
				s.stats.EventsSuperseded.Add(1) // older than a live event sent
				continue
			}
		}
		var buf [4][]byte
		err := s.sendEvent(ss, sub, p, &buf)
		if !fence || ss.winMarks >= maxWinMarks {
			continue
		}
		if w.marks == nil {
			w.marks = map[string]retMark{}
		}
		if _, ok := w.marks[string(p.topic)]; !ok {
			ss.winMarks++
		}
		key := string(p.topic) // a copy, when the realm's is not at hand
		if topics != nil {
			key = topics[i]
		}
		w.marks[key] = retMark{src: p.src, seq: p.seq, id: p.id, refused: err != nil}
	}
	if w == nil {
		return
	}
	w.until = s.r.now() + retFenceTTL
	s.setState(ss, w, winFenced, true)
	if ss.winOf(sub) == w && len(w.marks) == 0 {
		s.closeWin(ss, w)
		return
	}
	if ss.winOf(sub) == w {
		// The marks go when their time is past, whatever happens: before,
		// only a live event of the subscription or another window of the
		// session did that, so a quiet session kept them for good.
		s.addTimer(timer{due: w.until + 1, kind: tmWin, sess: ss, id: sub.id})
	}
}

// winTimed returns ss's window on its subscription subID whose marks end
// at due (a tmWin timer's), nil when there is none (closed, pending again,
// or given a later end since).
func (ss *Session) winTimed(subID uint64, due int64) *retWin {
	w := ss.winOf(ss.subs[subID].sub)
	if w == nil || w.state != winFenced || w.until+1 != due {
		return nil
	}
	return w
}

// resubscribed notes a SUBSCRIBE of ss to sub, of which it is a
// subscriber already: a window still pending there will keep no marks
// (deliverRetained). The window's marks would drop the live copy of the
// retained event and its publisher's older events, which may have been
// published after this SUBSCRIBE: a session shared by several clients
// (the HTTP gateway's event streams of one principal) may have one that
// did not ask for the retained events and is owed them. A window already
// fenced keeps its marks: they drop only events published before its
// retained events were read, before this SUBSCRIBE.
func (s *Shard) resubscribed(ss *Session, sub *subscription) {
	if w := ss.winOf(sub); w != nil && w.state != winFenced {
		w.repeated = true
	}
}

// fenced reports whether p, a live event for w's subscription, is the
// retained event delivered on its topic or was published before it by
// the same publisher.
func (s *Shard) fenced(ss *Session, w *retWin, p *publication) bool {
	m, ok := w.marks[string(p.topic)]
	if !ok {
		return false
	}
	if p.id == m.id {
		if m.refused {
			// The subscriber has not had it: its retained EVENT was
			// refused (its queue past its mark), and this copy comes
			// after the queue drained. Its publisher's older events came
			// before it: the mark has done its work. Before, the copy
			// was dropped too, and the subscriber never got the event.
			delete(w.marks, string(p.topic))
			ss.winMarks--
			return false
		}
		s.stats.EventsSuperseded.Add(1)
		return true
	}
	if m.src != 0 && p.src == m.src {
		if int32(p.seq-m.seq) <= 0 { // not after it (seq wraps)
			s.stats.EventsSuperseded.Add(1)
			return true
		}
		// Newer, from the same publisher: its older events came first.
		delete(w.marks, string(p.topic))
		ss.winMarks--
	}
	return false
}

// winAdmit reports whether p, a live event for sub that ss receives, is
// to be sent to ss now; else ss's windows held or dropped it. It returns
// sub's window too when that is winLive, which remembers p's topic once
// p is sent (deliverChunkWin): a live event the session refused (slow,
// longer than it accepts) did not supersede the retained one, and before
// it was remembered all the same, so that the subscriber got neither
// (TestMeshRetainedWindowLiveEventRefusedKeepsRetained). Called in
// deliverEvents: a flush of the held events encodes into buffers of its
// own. *held is the owned copy of p that the sessions of this delivery
// hold (made by the first that holds it; read-only once made).
//
// One copy for all: each session held a copy of its own, so one PUBLISH
// of 1 MiB to a topic of 48 sessions with a window pending grew the heap
// by 47 MiB (a mebibyte per session, in no router-wide budget: one
// address's 1,024 connections, a gibibyte, for as long as their windows
// wait, which a session's walk budget debt makes minutes).
func (s *Shard) winAdmit(ss *Session, sub *subscription, p *publication, held **publication) (bool, *retWin) {
	if ss.winPending > 0 {
		// What the held copy costs: p's own cost() counts no payload
		// when the publisher is on this shard (p points into its
		// PUBLISH), and 1,024 held events of 16 MiB passed the 1 MiB
		// bound. Counted whole for each session holding it (its bound
		// says how much it may keep waiting), though it is shared.
		n := p.ownCost()
		if ss.winHeld+n <= maxWinHeld && ss.winHeldN < maxWinHeldN {
			if *held == nil {
				*held = p.own()
			}
			ss.held = append(ss.held, heldEvent{sub, *held, ss.subs[sub.id].gen})
			ss.winHeld += n
			ss.winHeldN++
			return false, nil
		}
		// Too much to hold: what is held goes out now, then p, and the
		// live events after it as they come; the retained events of the
		// pending windows will, but those of the topics sent live
		// meanwhile, older by then (winLive).
		saved := s.evbuf
		s.evbuf = [4][]byte{}
		for _, w := range ss.wins {
			if w.state == winPending {
				s.setState(ss, w, winLive, false)
			}
		}
		s.flushHeld(ss)
		s.evbuf = saved
	}
	w := ss.winOf(sub)
	if w == nil || w.state == winPending {
		return true, nil
	}
	if w.state == winLive {
		return true, w
	}
	if s.r.now() > w.until {
		s.closeWin(ss, w)
		return true, nil
	}
	ok := !s.fenced(ss, w, p)
	if len(w.marks) == 0 {
		s.closeWin(ss, w)
	}
	return ok, nil
}

// sentLive notes that ss is sent p, a live event of w's subscription,
// while w is winLive: a retained event of p's topic is older than it.
func (w *retWin) sentLive(ss *Session, p *publication) {
	if w.liveLost {
		return
	}
	h := topicHash(p.topic)
	if _, ok := w.live[h]; ok {
		return
	}
	if ss.winMarks >= maxWinMarks {
		w.liveLost = true
		return
	}
	if w.live == nil {
		w.live = map[uint64]struct{}{}
	}
	w.live[h] = struct{}{}
	ss.winMarks++
}

// topicHash is the hash a winLive window remembers a topic by, keyed per
// process (strSetSeed), so that a peer cannot choose topics that collide.
func topicHash(topic []byte) uint64 { return maphash.Bytes(strSetSeed, topic) }

// deliverChunkWin is deliverChunk for a subscription on which some
// session has a window open: a copy with one more check per subscriber,
// kept apart because that check in deliverChunk itself cost the fan-out
// to 100 subscribers 5.8 % (BenchmarkPublishFanout/subs=100, 12
// interleaved runs of 2 s: medians 668 → 707 ns).
func (s *Shard) deliverChunkWin(c []*Session, sub *subscription, p *publication, enc *[4][]byte, d uint64, held **publication) {
	for _, ss := range c {
		if ss.state != stEstablished || !p.allowed(ss) || !ss.mayReceive(ActionSubscribe, sub.match, p.topic) {
			continue
		}
		var live *retWin
		if ss.wins != nil {
			ok, w := s.winAdmit(ss, sub, p, held)
			if !ok {
				continue
			}
			live = w
		}
		if d != 0 && ss.refusedAt == d {
			s.countRefused(ss.refusedErr)
			continue
		}
		err := s.sendEvent(ss, sub, p, enc)
		if err != nil && d != 0 {
			ss.refusedAt, ss.refusedErr = d, err
		}
		if live != nil && err == nil && len(enc[ss.ser]) > 0 {
			live.sentLive(ss, p) // sent (not refused, nor unconvertible)
		}
	}
}

// publisherSeq numbers a publication of ss (publication.seq).
func (ss *Session) publisherSeq() uint32 {
	ss.pubSeq++
	return ss.pubSeq
}
