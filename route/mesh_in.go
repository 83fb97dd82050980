package route

import (
	"strconv"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// MeshDeliver hands the router an envelope another node sent: an event
// (from is then irrelevant), a call, a chunk, an interrupt, a result or a
// bounced call. env belongs to the router from then on (it is not copied;
// the caller must not reuse it). Safe for concurrent use; it never blocks:
// the work goes to the shards as tasks. Envelopes that do not decode are
// counted (MeshStats.BadEnvelopes) and dropped.
func (r *Router) MeshDeliver(from MeshNode, env []byte) {
	if r.ms == nil || len(env) == 0 {
		return
	}
	switch env[0] {
	case envEvent:
		r.meshEvent(env)
	case envCall:
		r.meshInvoke(from, env)
	case envBounce:
		callID, shard, ok := peekCall(env)
		if !ok || shard >= len(r.shards) {
			r.ms.stats.BadEnvelopes.Add(1)
			return
		}
		// The bounce waits for the caller's shard holding the whole call
		// envelope: it counts in that shard's backlog of calls
		// (maxCallBacklog), as a result does. Past it the envelope is
		// dropped and the call, if still in flight, ends with
		// wamp.error.unavailable (meshBounced). Before, bounces were
		// posted uncharged: 40 MiB of them held for a stalled loop
		// counted nothing (TestMeshBounceBacklogCounted).
		sh := r.shards[shard]
		t := task{kind: tMeshBounce, a: callID, b: uint64(from)}
		cost := int64(len(env)) + callOverhead
		if !sh.callRoom(cost) {
			sh.stats.CallsBacklog.Add(1)
			t.flags = tfBacklogged
			sh.post(t)
			return
		}
		t.c = &carry{buf: env, queued: cost}
		sh.callBacklog.Add(cost)
		sh.post(t)
	case envResult:
		mr, err := decodeResult(env)
		if err != nil || mr.shard >= len(r.shards) {
			r.ms.stats.BadEnvelopes.Add(1)
			return
		}
		t := task{kind: tMeshResult, a: mr.callID, b: uint64(from), c: mr.c}
		if mr.flags&rsProgress != 0 {
			t.flags |= tfProgress
		}
		if mr.flags&rsError != 0 {
			t.flags |= tfError
			if mr.flags&rsUnavailable != 0 {
				t.flags |= tfUnavailable
			}
		}
		// The result waits for the caller's shard holding its envelope:
		// it counts in that shard's backlog of calls (maxCallBacklog).
		// Past it the caller gets wamp.error.unavailable instead, which
		// ends the call there; what the callee sends later is dropped as
		// for a call that ended.
		sh := r.shards[mr.shard]
		cost := int64(len(env)+len(mr.c.uri)+len(mr.c.msg)) + callOverhead
		if !sh.callRoom(cost) {
			sh.stats.CallsBacklog.Add(1)
			// Whether it was a progressive result rides along: its
			// callee, still streaming, is then interrupted (meshResult).
			t.flags = tfError | tfBacklogged | t.flags&tfProgress
			t.c = &carry{uri: proto.URIUnavailable, msg: msgCallerBacklog}
			sh.post(t)
			return
		}
		t.c.queued = cost
		sh.callBacklog.Add(cost)
		sh.post(t)
	case envChunk:
		callID, progress, c, err := decodeChunk(env)
		if err != nil {
			r.ms.stats.BadEnvelopes.Add(1)
			return
		}
		t := task{kind: tMeshChunk, a: callID, b: uint64(from), c: c}
		if progress {
			t.flags |= tfProgress
		}
		// The chunk goes to the shard its invocation was posted to
		// (meshState.place), and waits for it holding its envelope: it
		// counts in the node's backlog of chunks from other nodes until
		// that shard ran it. Past maxCallBacklog the shard holding the
		// invocation ends it instead: the callee is interrupted and the
		// caller gets wamp.error.unavailable, as for a chunk that cannot
		// wait for the callee's loop on one node. A chunk of a call not
		// in flight here (ended, bounced, refused) is dropped. Before,
		// each chunk was offered to every shard: one task in each
		// mailbox (104 bytes) and one run on each loop, for one charge.
		sh, ok := r.meshShardOf(minvKey{from, callID})
		if !ok {
			return
		}
		cost := int64(len(env)) + callOverhead
		if b := r.ms.chunkBytes.Load(); b > 0 && b+cost > maxCallBacklog {
			t.flags = tfError // refused; no payload
			t.c = nil
		} else {
			c.queued = cost
			r.ms.chunkBytes.Add(cost)
		}
		sh.post(t)
	case envInterrupt:
		callID, mode, reason, err := decodeInterrupt(env)
		if err != nil {
			r.ms.stats.BadEnvelopes.Add(1)
			return
		}
		// Remembered for the call's delivery at once (meshDeliver reads
		// it: a call not delivered yet is not, whichever shard it waits
		// for), and sent to the shard the invocation was posted to, which
		// applies it to a delivered one. A call not in flight here has
		// nothing to interrupt. Before, it was offered to every shard, one
		// task and one run on each loop, and remembered by the first that
		// did not hold the invocation.
		if i, placed := r.ms.interrupted(minvKey{from, callID}, mode); placed && i < len(r.shards) {
			r.shards[i].post(task{kind: tMeshInterrupt, a: callID, b: uint64(from), mode: mode, c: &carry{uri: reason}})
		}
	default:
		r.ms.stats.BadEnvelopes.Add(1)
	}
}

// meshShardOf returns the shard the invocation of k was posted to, and ok
// false when there is none (not taken, or not posted yet). Any goroutine.
func (r *Router) meshShardOf(k minvKey) (*Shard, bool) {
	i, taken, placed := r.ms.shardOf(k)
	if !taken || !placed || i >= len(r.shards) {
		return nil, false
	}
	return r.shards[i], true
}

// MeshNodeDown tells the router that node left the mesh (it died, it was
// cut off, or it shut down): its registrations leave the tables, the calls
// sent to it fail with wamp.error.canceled and the invocations its callers
// made here are interrupted or forgotten. The on_leave of its sessions
// wait for MeshSessionsGone. Safe for concurrent use; it never blocks.
func (r *Router) MeshNodeDown(node MeshNode) {
	if r.ms == nil || node == 0 {
		return
	}
	r.meshForget(node)
	// The calls of node's callers still on their way to a shard are not
	// delivered, before the shards drop those they hold: a call posted to
	// a shard after that shard's walk (picked for again after its callee
	// unregistered) was delivered, and held until its callee answered.
	r.ms.nodeGone(node)
	for _, sh := range r.shards {
		sh.post(task{kind: tMeshNodeDown, b: uint64(node)})
	}
}

// meshPublish sends a publication to the other nodes, after the local
// fan-out. retain asks them to keep it for get_retained.
func (s *Shard) meshPublish(rm *Realm, p *publication, retain bool) {
	live := p.retained
	p.retained = retain
	env := appendEvent(s.mbuf[:0], rm.name, p)
	p.retained = live
	s.mbuf = keepBuf(env)
	if s.r.mesh.Publish(rm.name, p.topic, env) != nil {
		s.r.ms.stats.SendFailed.Add(1)
	}
}

// meshEvent fans an event from another node out to this node's
// subscribers, and keeps it when it is to be retained. Any goroutine.
func (r *Router) meshEvent(env []byte) {
	realm, p, err := decodeEvent(env)
	if err != nil {
		r.ms.stats.BadEnvelopes.Add(1)
		return
	}
	rm := r.Realm(realm)
	if rm == nil {
		return
	}
	p.c.buf = env // counts the payload in the retained budget
	if pr := rm.pres.Load(); pr != nil && rm.presenceEvent(pr, p) {
		return // announced here already
	}
	if p.retained {
		kept := *p
		kept.excludeMe = false
		rm.mu.Lock()
		ok, stale := rm.retainNewer(string(p.topic), &kept)
		var topics int
		var held int64
		if !ok {
			topics, held = len(rm.retained), rm.retainedBytes
		}
		rm.mu.Unlock()
		if !ok {
			r.shards[0].stats.RetainRefused.Add(1)
			r.logMeshRetainRefused(rm, p, topics, held)
		}
		if len(stale) > 0 {
			// This node's own events the refusal dropped: the other
			// nodes drop their copies, as for a refused PUBLISH.
			s := r.shards[0]
			if s.Do(func() { s.meshDropRetained(rm, stale) }) != nil {
				s.meshDropRetained(rm, stale)
			}
		}
		p.retained = false
	}
	rm.mu.RLock()
	subs := rm.subs.matchAll(p.topic, nil)
	rm.mu.RUnlock()
	if len(subs) == 0 {
		return
	}
	var present [maxShards]bool
	markShards(&present, subs)
	// What the event holds while it waits (meshEventCost), computed once.
	n := meshEventCost(env, p, subs)
	for i, sh := range r.shards {
		if !present[i] {
			continue
		}
		// At most maxMeshBacklog bytes of events wait for a shard (one
		// event always may): beyond, the event is dropped for that
		// shard's subscribers and counted, as NATS drops for a slow
		// consumer. Events are at most once across the mesh.
		if b := sh.meshBacklog.Load(); b > 0 && b+n > maxMeshBacklog {
			r.ms.stats.EventsOverflow.Add(1)
			continue
		}
		sh.meshBacklog.Add(n)
		sh.post(task{kind: tEvents, pub: p, subs: subs, a: uint64(n)})
	}
}

// logMeshRetainRefused logs a retained event from another node that this
// node delivered but did not keep, its realm's retained events at their
// bound (topics and bytes, read with the refusal): it was counted only,
// where a local publisher's is logged (retainRefused), so a node
// configured with a smaller bound than its peers' stopped keeping their
// devices' last values without a line. There is no local session to log
// once for: at most once per 10 s. Any goroutine; cold path.
func (r *Router) logMeshRetainRefused(rm *Realm, p *publication, topics int, held int64) {
	now := r.now()
	last := r.meshRetainLogged.Load()
	if last != 0 && now-last < int64(10*time.Second) || !r.meshRetainLogged.CompareAndSwap(last, now) {
		return
	}
	id, authid := p.src, "" // the identity travels only when disclosed
	if p.remote != nil {
		id, authid = p.remote.id, p.remote.authID
	}
	r.log.Warn("retained event from another node delivered but not kept here, and its topic's older retained events dropped here: the realm's retained events on this node are at their bound (limits.retained_bytes, or "+strconv.Itoa(maxRetained)+" topics; the other nodes may allow more); logged at most once per 10 s, counted in edgewamp_retain_refused_total{reason=\"realm_full\"}",
		"realm", rm.name, "topic", logCut(string(p.topic)), "publisher", id, "publisher_authid", logCut(authid),
		"topics", topics, "bytes", held, "max_bytes", r.cfg.MaxRetainedBytes)
}

// maxMeshBacklog bounds the bytes of events from other nodes waiting for
// one shard (Shard.meshBacklog).
const maxMeshBacklog = 32 << 20

// subRefSize is what one entry of a list of matched subscriptions holds
// (a pointer).
const subRefSize = 8

// meshEventCost is what the event p, decoded from env, counts in a
// shard's backlog of events from other nodes while it waits there: its
// envelope (the payload, topic and identity p points into), the sets its
// black/white lists were read into, the list of the subscriptions its
// topic matched (subs, looked up for this event alone), and
// eventOverhead. It counted the envelope alone, and a list of small
// ids, one or two bytes each in the envelope, is 16 to 32 bytes each once
// read: 32 MiB of envelopes held 290 MiB (16 KB of envelope and a 256 KiB
// set per event), or 510 MiB of empty events, for a loop that did not
// keep up; then the list of subscriptions was left in the overhead, and
// an event matching 1,023 wildcard subscriptions held ~8.5 KiB counted as
// ~0.55 (TestMeshEventBacklogCountsMatchedSubscriptions). Events from
// another shard count the same (publication.cost, and their list when
// it was looked up for them, subsCost). Reads lengths and capacities only; it
// does not allocate.
func meshEventCost(env []byte, p *publication, subs []*subscription) int64 {
	n := int64(len(env)) + eventOverhead + subsCost(subs)
	if p.filter != nil {
		n += p.filter.size()
	}
	return n
}

// retainNewer keeps p as topic's retained event unless the ones kept are
// newer (events from several nodes may arrive in any order). Call with
// mu held for writing.
//
// An event older than the newest one kept may still belong in the
// topic's chain (Realm.retain): an event without black/white lists
// published before one with them is the value the others get. It was
// dropped as older than the chain's head: a node that received
// another's filtered event before an earlier unrestricted one held the
// filtered one alone, where the nodes that received them in order held
// both, and get_retained there gave the subscribers the filtered event
// left out nothing (or, with the earlier one's node gone, nothing
// anywhere) (TestMeshRetainedOlderUnrestrictedBehindFiltered). Such an
// event is now put in its place: the chain's events and it are retained
// again oldest first, as a node receiving them in order retains them (at
// most maxRetainedFiltered+2 events, and only for an event that arrives
// out of order). A bound that refuses p, or one of the events retained
// again after it, drops the topic's events as a refusal does: it reports
// whether p is kept, and stale, the publication ids of this node's own
// events dropped, whose copies the other nodes are to drop
// (TestMeshRetainedRelinkRefusalDropsCopies).
func (rm *Realm) retainNewer(topic string, p *publication) (ok bool, stale []uint64) {
	old := rm.retained[topic]
	if old == nil || !retainedAfter(old.pub, p) {
		why, stale := rm.retain(topic, p, nil, "")
		return why == retainKept, stale
	}
	// Each event's share is read before unretain takes it out of it: this
	// node's own events are retained again in their publishers' shares
	// (TestMeshRetainedRelinkKeepsLocalShare).
	type kept struct {
		re    *retainedEvent
		owner string
	}
	chain := make([]kept, 0, maxRetainedFiltered+1)
	for re := old; re != nil; re = re.older {
		if re.pub.id == p.id {
			return true, nil // a copy of one kept
		}
		k := kept{re: re}
		if re.share != nil {
			k.owner = re.share.key
		}
		chain = append(chain, k)
	}
	if tail := chain[len(chain)-1].re; tail.pub.filter == nil && !retainedAfter(p, tail.pub) {
		return true, nil // no newer than the value every subscriber gets
	}
	rm.unretain(topic, old)
	ok, placed := true, false
	for i := len(chain) - 1; i >= 0; i-- {
		re := chain[i].re
		if !placed && retainedAfter(re.pub, p) {
			why, dropped := rm.retain(topic, p, nil, "")
			ok, placed, stale = why == retainKept, true, append(stale, dropped...)
		}
		why, dropped := rm.retain(topic, re.pub, re.by, chain[i].owner)
		stale = append(stale, dropped...)
		if why != retainKept {
			ok = ok && !placed // p, placed before it, is dropped with the chain
			if re.by != nil {
				stale = append(stale, re.pub.id) // kept here before
			}
		}
	}
	return ok, stale
}

// retainedAfter reports whether the retained event p is newer than q:
// published later (at), or, at the same time, with the higher
// publication id. Two nodes can stamp two events of a topic alike: each
// stamps its own just after the newest it holds (retainStamp), and with
// both clocks at one tick (coarse, or behind that event) both are its
// time + 1 ns; each node then kept the other's copy, as no older than
// its own, and get_retained gave a's subscribers b's event and b's a's.
// The ids order such ties the same way on every node.
func retainedAfter(p, q *publication) bool {
	return p.at > q.at || p.at == q.at && p.id > q.id
}

// meshRevoke takes ss off reg after its node lost a registration conflict
// with another node (revokeRegistration), for reason: procedure_already_exists,
// or procedure_exists_with_different_invocation_policy when the winner is
// a shared registration (meshRevokeDue).
func (s *Shard) meshRevoke(ss *Session, reg *registration, reason string) {
	if ss.state != stEstablished || ss.regs[reg.id].reg != reg {
		return
	}
	s.r.ms.stats.Revoked.Add(1)
	s.r.log.Warn("mesh: revoking a registration that conflicts with one on another node",
		"session", ss.id, "procedure", reg.uri, "match", reg.match.String(), "invoke", reg.invoke.String())
	if ss.feat&fCalleeRevoke == 0 {
		// The client would not know it no longer serves its procedure.
		s.Goodbye(ss, proto.CloseKilled, "procedure "+reg.uri+" is registered on another node of the mesh ("+reason+")")
		return
	}
	s.revokeRegistration(ss, reg, reason)
}

// sendRevocation tells ss that the router took it off a registration or
// subscription (code UNREGISTERED or UNSUBSCRIBED with request 0): the
// Details name it (key "registration" or "subscription") and the reason
// (left out when "": a meta API removal without one). A reason that makes
// the message longer than the peer takes (a RawSocket client's maximum,
// 512 bytes at the least, against a meta caller's reason of up to 4 KiB)
// is left out rather than the session ended, as sendMsg ends it for a
// control message too long.
func (s *Shard) sendRevocation(ss *Session, code proto.Code, key string, id uint64, reason string) {
	d := map[string]any{key: id}
	if reason != "" {
		d["reason"] = reason
		if _, err := s.encodeSend(ss, revocation(&s.out, ss.ser, code, d), ClassControl); err != ErrPeerTooBig {
			return
		}
		s.r.log.Debug("revocation reason too long for the peer; sent without it", "session", ss.id, "type", code.String(), key, id, "len", len(reason))
		delete(d, "reason")
	}
	s.sendMsg(ss, revocation(&s.out, ss.ser, code, d), ClassControl)
}

// revocation sets out to the revocation code with Details d.
func revocation(out *proto.Message, ser proto.Serializer, code proto.Code, d map[string]any) *proto.Message {
	out.Reset()
	out.Type = code
	out.HasDict = true
	if raw, err := proto.EncodeValue(ser, d); err == nil {
		out.Dict = raw
	}
	return out
}

// revokeRegistration takes ss off reg without its asking, and tells it
// with a REGISTRATION revocation (UNREGISTERED with the reason) when the
// callee announced the feature.
func (s *Shard) revokeRegistration(ss *Session, reg *registration, reason string) {
	s.detachCallee(ss, reg)
	if ss.feat&fCalleeRevoke != 0 {
		s.sendRevocation(ss, proto.CodeUnregistered, "registration", reg.id, reason)
	}
	s.metaFlush(ss.realm)
}

// MeshCallees returns the other nodes that have callees of the exact
// registration uri in realm (diagnostics and tests). Safe for concurrent
// use.
func (r *Router) MeshCallees(realm, uri string) []MeshNode {
	rm := r.Realm(realm)
	if rm == nil {
		return nil
	}
	rm.mu.RLock()
	reg, _ := rm.regs.get(proto.MatchExact, uri)
	rm.mu.RUnlock()
	if reg == nil {
		return nil
	}
	var out []MeshNode
	for _, rc := range reg.remoteList() {
		out = append(out, rc.node)
	}
	return out
}

// MeshPending returns the number of calls this node has sent to other
// nodes and of invocations other nodes' callers have here, still in
// flight (diagnostics and tests). The invocations are every call from
// another node this node took and has not ended: delivered to a callee,
// or still waiting in a shard's queue (one picked for again after its
// callee unregistered, posted to another shard), and never fewer than
// those counted against Config.MaxMeshInvocations. It asks every shard
// and blocks until they answer (at most a few seconds); -1 when one did
// not answer.
func (r *Router) MeshPending() int {
	if r.ms == nil {
		return 0
	}
	calls, held := 0, 0
	for _, sh := range r.shards {
		ch := make(chan [2]int, 1)
		if sh.Do(func() { ch <- [2]int{len(sh.mcalls), len(sh.minvs)} }) != nil {
			continue
		}
		select {
		case n := <-ch:
			calls += n[0]
			held += n[1]
		case <-time.After(5 * time.Second):
			return -1
		}
	}
	// The shards hold what was delivered; the node's records of the calls
	// it took (live) and of its count (invs) also have those on their way
	// to a shard, which the shards' answers, one after the other, can miss.
	// Before, only the shards were asked: 0 with a slot taken.
	invs := max(held, r.ms.liveCount(), int(r.ms.invs.Load()))
	return calls + invs
}
