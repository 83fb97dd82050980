package route

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// defaultSessionLimit is the default of the per-session bounds in Config.
const defaultSessionLimit = 65536

// defaultMeshCalls is the default of Config.MaxMeshCalls: a sixteenth of a
// callee node's default MaxMeshInvocations.
const defaultMeshCalls = 4096

// Defaults of the bounds of wildcard patterns (Config.MaxWildcard*): at
// the realm's bound, in the worst shape, a CALL or PUBLISH to a URI not in
// the shard's cache costs 0.3-0.45 ms of its shard on the 2-CPU test VM
// (BenchmarkWildcardWorstCase; 2.0-2.5 ms at 16,384 patterns, 30 us at
// 1,024).
const (
	defaultWildcardLimit      = 1024
	defaultRealmWildcardLimit = 4096
)

// registration is a procedure URI with a match policy and its callees.
type registration struct {
	id      uint64       // static
	uri     string       // static
	match   proto.Match  // static
	invoke  proto.Invoke // static
	created time.Time    // static
	// maker is whose share of Config.MaxRegistrationBytes counts a
	// wildcard pattern's index (wildcardIndexCost): the session's whose
	// REGISTER made this node's first callee of it, then, when the last
	// of that owner's callees leaves it, the owner of one of this node's
	// callees still holding it (moveRegMaker), until this node's last
	// callee leaves it (another callee shares the index). makerHolds
	// counts maker's callees among this node's. Under Realm.mu.
	maker      string
	makerHolds int
	// walkBy is the owner whose walk (Realm.regWalks) counts the
	// pattern, when walked, and whose count (Realm.wildRegsBy); it moves with maker
	// (movePattern). Under Realm.mu.
	walkBy string
	walked bool
	// replaced: a force_reregister took this registration over (overDone):
	// out of the table, its callees' removals touch only their own
	// records (detachCallee). Under Realm.mu.
	replaced bool

	callees atomic.Pointer[calleeList] // immutable, swapped under Realm.mu
	rr      atomic.Uint64              // round-robin position
	// rrNeed is the round-robin position among the callees that meet a
	// call's need (pickCallee, pickLocalExcept, meshPickProgressive):
	// apart from rr, so that calls of one kind do not skip the other's
	// turns (alternating, each kind took every other turn of one counter).
	rrNeed atomic.Uint64
	seq    uint64 // the last callee's seq (under Realm.mu)
	// remote are the other nodes' callees (mesh only): immutable slice,
	// swapped under Realm.mu.
	remote atomic.Pointer[[]remoteCallee]
	// revokeDue: this node's callees lost a conflict with another node's
	// registration and are revoked if it lasts (meshRevokeDue's timer is
	// set; under Realm.mu). lostAt: when the conflict standing began
	// (zero: none), which the grace runs from.
	revokeDue bool
	lostAt    time.Time
	// wonByRemote: this node's callees of this single registration were
	// revoked for another node's single registration, made first, which
	// the directory still shows (under Realm.mu). That node's claim may
	// not be in the store (it was taken over while that node was taken
	// for dead, and this node gave it back when it revoked its callees),
	// so a REGISTER here is refused by the directory rather than granted
	// by the store (staleRemoteSingle), for the mesh's hold (MeshWonHold)
	// from the revoke, until wonUntil: by then the winner has its claim
	// back in the store, which
	// decides again, so that a standby here takes over at once when the
	// winner unregisters, before the directory shows it. The registration
	// entry goes, and the mark with it, when the other node's
	// registration does.
	wonByRemote bool
	// remoteConflict: this node has no callees of this single
	// registration, and its directory shows another node's single part
	// beside the winner's, a conflict between two other nodes (under
	// Realm.mu). The loser gives back the claim it took over when it
	// revokes its callees, and the winner claims it again only at its
	// next reconcile: until then the store holds no claim for the
	// winner's registration, and a REGISTER here was granted by it (two
	// exclusive registrations standing until this one was revoked a
	// second later). So a conflict that stands, and the mesh's hold after
	// it ended (wonByRemote, wonUntil, as on the loser), are not stale
	// (staleRemoteSingle). Beside wonByRemote, in its padding: the
	// entry grows by nothing.
	remoteConflict bool
	wonUntil       time.Time
}

// callee is one session attached to a registration.
type callee struct {
	s              *Session
	discloseCaller bool
	forwardTimeout bool
	// claimed: a single registration's REGISTER whose mesh claim the
	// store granted (Shard.claimed): another node's entry the directory
	// still shows is stale (staleRemoteSingle).
	claimed bool
	at      int64  // REGISTER time (unix ns), for first/last across a mesh
	seq     uint64 // its place in the registration's calleeList
}

// list returns reg's callees on this node. Any goroutine.
func (reg *registration) list() *calleeList {
	if l := reg.callees.Load(); l != nil {
		return l
	}
	return noCallees
}

// regRef is a registration a session is a callee of, and the seq of its
// callee record there.
type regRef struct {
	reg *registration
	seq uint64
}

// outCall is a call in progress, kept by the caller's shard.
type outCall struct {
	callee    *Session
	reg       *registration
	proc      string // the procedure called, for a pattern registration ("": reg.uri)
	invID     uint64
	due       int64 // timeout deadline (coarse clock, ns); 0 = none
	start     int64 // unix ns of the CALL for a latency sample (counters.go); 0 = not sampled
	recvProg  bool  // caller asked for progressive results
	progInv   bool  // caller is still sending progressive invocation chunks
	canceling bool  // CANCEL (kill) sent on, waiting for the callee
	killDue   bool  // due is the end of that wait (boundKillWait), not the call's timeout
	disclose  bool  // the caller is disclosed: frozen for every chunk of a progressive invocation
	// discloseMe: the CALL asked disclose_me (a call to a callee of this
	// node), for a reroute record made after the call (rerouteReplaced).
	discloseMe bool
	// node is the callee's node when the call went to another node of the
	// mesh (callee is then nil); chunked is set once a further chunk was
	// sent there, and bounces counts the nodes that sent it back.
	node    MeshNode
	chunked bool
	bounces uint8
	// gotProg is set once a progressive result reached the caller; rr,
	// for a call that may be rerouted, holds what rerouting needs (nil
	// once it no longer may: chunked, gotProg). See reroute.go.
	gotProg bool
	rr      *reroute
	// drained is set on the calls in progress when the router began to
	// drain: Drain waits for them (drain.go).
	drained bool
}

// inCall is an invocation in progress, kept by the callee's shard.
type inCall struct {
	caller   *Session
	req      uint64 // the caller's CALL request id
	recvProg bool
	// disclose, for a caller on another node (remote), is set when the
	// caller is disclosed: every chunk of a progressive call invocation
	// names it, as for a caller on this node (tfDisclose on each chunk).
	disclose bool
	// interrupted is set once the callee was sent an INTERRUPT for this
	// invocation (a kill CANCEL's): a later killnowait, timeout or
	// leave of the caller then ends the invocation without a second one.
	// The spec's callee expects at most one INTERRUPT per invocation.
	interrupted bool
	// timed, for a caller on another node, is set when the invocation
	// has a timer of its own here (meshInvExpired).
	timed  bool
	remote *meshOrigin // the caller is on another node (caller is then nil)
	// frozen, for a progressive call invocation, is what of its first
	// INVOCATION's Details the later ones repeat (nil when nothing).
	frozen *frozenInv
}

// frozenInv holds the Details of a progressive call invocation's first
// INVOCATION that its later ones carry too: WAMP Advanced Profile,
// Progressive Call Invocations, "Freezing of Options": "Except for
// progress, items in the Details dictionary of corresponding INVOCATION
// messages shall be based on the initiating progressive CALL only", and
// "any option (besides progress) can be omitted altogether in subsequent
// progressive call invocations". Before, the INVOCATIONs after the first
// lost the procedure of a pattern registration, the forwarded timeout and
// the payload passthru keys of a caller that gave them in its first CALL
// only (as the specification has it): a callee could not tell which
// procedure the chunk was for, nor that its payload was encrypted.
type frozenInv struct {
	proc    string
	timeout uint64
	ppt     [6][]byte // nil entries: not given; hasPPT: any given
	hasPPT  bool
}

// freeze records in ic what the later INVOCATIONs of t's progressive call
// invocation repeat of its first (t, with tfProgress and without
// tfContinue). Off the hot path: progressive call invocations only.
func (ic *inCall) freeze(t *task) {
	fz := frozenInv{proc: t.c.uri, timeout: t.timeout}
	n := 0
	for _, v := range t.c.ppt {
		if v != nil {
			n += len(v)
			fz.hasPPT = true
		}
	}
	if fz.proc == "" && fz.timeout == 0 && !fz.hasPPT {
		return
	}
	if fz.hasPPT {
		buf := make([]byte, 0, n) // t.c may alias the message being handled
		for i, v := range t.c.ppt {
			if v != nil {
				start := len(buf)
				buf = append(buf, v...)
				fz.ppt[i] = buf[start:len(buf):len(buf)]
			}
		}
	}
	ic.frozen = &fz
}

// setFrozen sets on f, the Details of a later INVOCATION of ic's
// progressive call invocation, what its first had (freeze), the payload
// passthru keys from the later chunk c when the first had none (a later
// chunk in the mode reaches only a callee that announced it: callContinue,
// meshChunk).
func (ic *inCall) setFrozen(f *proto.Fields, c *carry) {
	fz := ic.frozen
	if fz == nil {
		c.setPPT(f)
		return
	}
	if fz.proc != "" {
		f.SetString(proto.KeyProcedure, fz.proc)
	}
	if fz.timeout > 0 {
		f.SetUint(proto.KeyTimeout, fz.timeout)
	}
	if !fz.hasPPT {
		c.setPPT(f)
		return
	}
	for i, k := range pptKeys {
		if fz.ppt[i] != nil {
			f.SetStr(k, fz.ppt[i])
		}
	}
}

// register handles REGISTER.
func (s *Shard) register(ss *Session, m *proto.Message) {
	if !s.checkRequest(ss, m) {
		return
	}
	match, invoke := m.Opt.Match(), m.Opt.Invoke()
	if !proto.ValidPattern(m.URI, ss.realm.conf().URICheck, match) {
		s.replyError(ss, proto.CodeRegister, m.Request, proto.URIInvalidURI, "invalid procedure URI for match policy "+match.String())
		return
	}
	if tooDeep(m.URI, match) {
		s.replyError(ss, proto.CodeRegister, m.Request, proto.URIInvalidURI, tooDeepMsg)
		return
	}
	if reserved(m.URI) {
		s.replyError(ss, proto.CodeRegister, m.Request, proto.URIInvalidURI, "procedure URIs starting with \"wamp.\" are reserved for the router")
		return
	}
	if p, ok := s.r.inProcessOnly(m.URI); ok {
		if _, in := ss.peer.(InProcessPeer); !in {
			s.replyError(ss, proto.CodeRegister, m.Request, proto.URINotAuthorized, "procedure URIs starting with "+strconv.Quote(p)+" are reserved for the router's HTTP gateway")
			return
		}
	}
	if !ss.authorizePattern(ActionRegister, match, m.URI) {
		s.replyError(ss, proto.CodeRegister, m.Request, proto.URINotAuthorized, "not authorized to register "+strconv.Quote(string(m.URI)))
		return
	}
	uri := string(m.URI)
	// Single registrations waiting for the mesh's claim store count too:
	// without them, REGISTERs sent back to back all passed while the
	// session had none yet (4,160 over the limit at once). Checked again
	// by addCallee (several REGISTERs may wait for their mesh claims at
	// once); here so that no claim is made in vain.
	force := m.Opt.Bool(proto.KeyForceReregister, false)
	if s.registrationsFull(ss, m.Request, match, invoke, uri, len(ss.regs)+ss.claims.busy+len(ss.claims.q), force) {
		return
	}
	ce := callee{s: ss, discloseCaller: m.Opt.Bool(proto.KeyDiscloseCaller, false), forwardTimeout: m.Opt.Bool(proto.KeyForwardTimeout, false), at: s.r.wallNow()}
	if force && s.forceRefusedOnMesh(ss, m.Request, match, uri) {
		return
	}
	if s.r.mesh != nil && invoke == proto.InvokeSingle && (s.singlesFull(ss, m.Request, match, uri) || s.meshClaim(ss, m.Request, match, uri, ce)) {
		return // refused, or REGISTERED or an ERROR once the mesh answers the claim
	}
	s.addCallee(ss, m.Request, match, invoke, uri, ce, force)
}

// addCallee adds ce to the registration (match, uri), creating it, and
// answers the REGISTER request req: REGISTERED, or ERROR when the
// registration exists with another policy or is single, or a bound of
// wildcard registrations is reached. With force (the REGISTER's
// force_reregister) a registration whose callees are all of ss's
// identity is replaced by a new one of ce in the same step
// (forceReregister).
func (s *Shard) addCallee(ss *Session, req uint64, match proto.Match, invoke proto.Invoke, uri string, ce callee, force bool) bool {
	// Authorized again: a REGISTER that waited for the mesh's claim
	// store may have been overtaken by a reload that took the grant away
	// (its re-check sees only the registrations made). Cached: one map
	// lookup for one that did not wait.
	if !ss.authorizePattern(ActionRegister, match, []byte(uri)) {
		s.replyError(ss, proto.CodeRegister, req, proto.URINotAuthorized, "not authorized to register "+strconv.Quote(uri))
		return false
	}
	wild := match == proto.MatchWildcard
	if s.registrationsFull(ss, req, match, invoke, uri, len(ss.regs), force) {
		return false
	}
	rm := ss.realm
	rm.mu.Lock()
	reg, exists := rm.regs.get(match, uri)
	// force_reregister: the registration it takes over, out of the table
	// and its counts until ce is taken (overDone) or refused (unlock).
	var over *overtaken
	if force && exists {
		var full bool
		if over, full = s.takeOver(rm, ss, reg); full {
			rm.mu.Unlock()
			s.removalsRefused(ss, "force_reregister")
			s.replyError(ss, proto.CodeRegister, req, proto.URIUnavailable, msgForceRemovalsFull)
			return false
		}
		if over != nil {
			reg, exists = nil, false
		}
	}
	unlock := func() {
		if over != nil {
			over.putBack(s.r, rm)
		}
		rm.mu.Unlock()
	}
	// A pattern this node's callees do not have yet (on a mesh the entry
	// may exist for other nodes' callees only) counts toward the realm's
	// bound; another callee of a shared one does not.
	newPattern := wild && (!exists || reg.list().len() == 0)
	if exists && !(ce.claimed && staleRemoteSingle(reg)) {
		if errURI, why := registeredAlready(ss, reg, uri, invoke); why != "" {
			unlock()
			s.replyError(ss, proto.CodeRegister, req, errURI, why)
			return false
		}
	}
	if max := s.r.cfg.MaxRealmWildcardRegistrations; newPattern && rm.wildRegs >= max {
		unlock()
		s.wildcardRefused(ss, proto.CodeRegister, req, true, max)
		return false
	}
	var walkBy string // the owner of a wildcard pattern it makes (walkOwner)
	if newPattern {
		// And an owner's quarter of it: the same count by owner (a
		// client's; not the in-process sessions' "", wildShare).
		walkBy = ss.walkOwner()
		if max := s.r.cfg.MaxRealmWildcardRegistrations; rm.wildRegsBy[walkBy] >= wildShare(max) && walkBy != "" {
			unlock()
			s.wildcardShareRefused(ss, proto.CodeRegister, req, walkBy, max)
			return false
		}
	}
	if wild && !exists {
		own := rm.regWalks.past(walkBy, uri)
		if own || rm.regs.wildWalkPast(uri, maxWildcardWalk) {
			unlock()
			s.wildcardWalkRefused(ss, proto.CodeRegister, req, uri, walkBy, own)
			return false
		}
	}
	// The bytes last: a REGISTER refused above charges nothing. Off the
	// call path (REGISTER only). A wildcard pattern's index is charged to
	// the callee that makes it (regCost), not again to each one that
	// shares it (regHoldCost): 600 workers of one address sharing the
	// same 4 patterns were refused past the 500th.
	cost := regHoldCost(uri)
	if newPattern && !over.keepsIndex(ss) {
		cost = regCost(match, uri)
	}
	if !s.r.regBytes.charge(ss.registrationOwner(), cost, s.r.cfg.MaxRegistrationBytes) {
		unlock()
		s.registrationBytesRefused(ss, req)
		return false
	}
	if newPattern {
		rm.wildRegs++
		rm.wildRegsBy.add(walkBy)
	}
	if over != nil {
		s.overDone(rm, over, ss)
	}
	// This node's first callee: on_create (on a mesh the entry may exist
	// for other nodes' callees only; each node announces its own part).
	created := !exists || reg.list().len() == 0
	if !exists {
		reg = &registration{id: rm.entryID('r', match, uri), uri: uri, match: match, invoke: invoke, created: s.r.cfg.Now()}
		rm.regs.put(match, uri, reg)
		rm.regByID[reg.id] = reg
		rm.regChanged(match, uri)
		if wild {
			reg.walkBy, reg.walked = walkBy, rm.regWalks.add(walkBy, uri)
		}
	}
	if newPattern {
		reg.maker, reg.makerHolds = ss.subOwner, 0 // charged its index above
		// Counted to walkBy (wildRegsBy); walked only when made here
		// (not on a mesh entry of other nodes' callees only: then not
		// walked, so walkBy is free to change).
		reg.walkBy = walkBy
	}
	if wild && ss.subOwner == reg.maker {
		reg.makerHolds++
	}
	reg.seq++
	ce.seq = reg.seq
	reg.callees.Store(reg.list().with(ce))
	if s.r.mesh != nil {
		rm.meshLocalChanged(reg)
	}
	// Queued with the change, published after REGISTERED (metaorder.go).
	if created {
		rm.metaPush(metaItem{topic: metaRegOnCreate, sess: ss.id, made: reg})
	}
	rm.metaPush(metaItem{topic: metaRegOnRegister, sess: ss.id, id: reg.id})
	rm.mu.Unlock()
	if over != nil {
		s.removeOvertaken(ss, over)
	}
	if ss.regs == nil {
		ss.regs = map[uint64]regRef{}
	}
	ss.regs[reg.id] = regRef{reg, ce.seq}
	if wild {
		ss.wildRegs++
	}
	if reg.invoke == proto.InvokeSingle {
		ss.singles++
	}

	out := &s.out
	out.Reset()
	out.Type = proto.CodeRegistered
	out.Request = req
	out.ID = reg.id
	s.sendMsg(ss, out, ClassControl)
	s.metaFlush(rm)
	return true
}

func reserved(uri []byte) bool { return len(uri) >= 5 && string(uri[:5]) == "wamp." }

// inProcessOnly returns the prefix of Config.InProcessURIs that uri starts
// with, if any. Any goroutine (the configuration is static).
func (r *Router) inProcessOnly(uri []byte) (string, bool) {
	for _, p := range r.cfg.InProcessURIs {
		if len(uri) >= len(p) && string(uri[:len(p)]) == p {
			return p, true
		}
	}
	return "", false
}

// unregister handles UNREGISTER.
func (s *Shard) unregister(ss *Session, m *proto.Message) {
	if !s.checkRequest(ss, m) {
		return
	}
	reg := ss.regs[m.ID].reg
	if reg == nil {
		s.replyError(ss, proto.CodeUnregister, m.Request, proto.URINoSuchRegistration, "no registration "+strconv.FormatUint(m.ID, 10)+" for this session")
		return
	}
	s.detachCallee(ss, reg)
	if s.r.mesh != nil && reg.invoke == proto.InvokeSingle && reg.list().len() == 0 {
		// This node's claim of the procedure is being given back
		// (meshLocalChanged): answer once the store has it, so that a
		// REGISTER on another node right after the UNREGISTERED (a
		// standby taking over) is not refused for the claim still held.
		s.unregisteredAfterRelease(ss, m.Request)
	} else {
		s.sendUnregistered(ss, m.Request)
	}
	s.metaFlush(ss.realm)
}

// sendUnregistered answers ss's UNREGISTER req.
func (s *Shard) sendUnregistered(ss *Session, req uint64) {
	out := &s.out
	out.Reset()
	out.Type = proto.CodeUnregistered
	out.Request = req
	s.sendMsg(ss, out, ClassControl)
}

// meshReleaseWait bounds how long an UNREGISTERED waits for the mesh's
// claim store to take the claim back (unregisteredAfterRelease): the
// store's own bound on one operation.
const meshReleaseWait = time.Second

// unregisteredAfterRelease answers ss's UNREGISTER req once the mesh has
// given the claims released before it back (Mesh.Released), or after
// meshReleaseWait, whichever comes first (tMeshUnregistered). The claim
// store is one round trip away, a few milliseconds: before, the
// UNREGISTERED went at once, and another node's REGISTER sent on reading
// it was refused (procedure_already_exists) 8 times in 20 in a cluster on
// loopback.
func (s *Shard) unregisteredAfterRelease(ss *Session, req uint64) {
	var once atomic.Bool
	answer := func() {
		if once.CompareAndSwap(false, true) {
			s.post(task{kind: tMeshUnregistered, s: ss, a: req, b: ss.id})
		}
	}
	t := time.AfterFunc(meshReleaseWait, answer)
	s.r.mesh.Released(func() {
		t.Stop()
		answer()
	})
}

// detachCallee removes ss from reg, deleting reg when it was the last
// callee. Invocations in flight stay: their results still reach the caller.
// It queues on_unregister, and on_delete when ss was this node's last
// callee of reg, with the change (the caller publishes them, metaFlush):
// on a mesh each node announces its own part of a registration, as it does
// its on_create (register), whether or not other nodes' callees keep the
// table's entry. Before, a node announced on_delete only when the entry
// went, so the node whose callees left first, others remaining elsewhere,
// announced none.
func (s *Shard) detachCallee(ss *Session, reg *registration) {
	ref, had := ss.regs[reg.id]
	n := len(ss.regs)
	delete(ss.regs, reg.id)
	if shrinkDue(&ss.regsPeak, n, len(ss.regs)) {
		shrinkMap(&ss.regs, &ss.regsPeak)
	}
	wild := reg.match == proto.MatchWildcard
	if wild {
		ss.wildRegs--
	}
	if had && ref.reg.invoke == proto.InvokeSingle { // the one counted (addCallee)
		ss.singles--
	}
	rm := ss.realm
	deleted := false
	rm.mu.Lock()
	if had && !ref.reg.replaced { // a replaced one's went at its take-over (takeOver)
		s.r.regBytes.release(ss.subOwner, regHoldCost(ref.reg.uri)) // charged by addCallee
	}
	if reg.replaced {
		// Taken over by a force_reregister (overDone), which did the
		// table's part, its callees' bytes and its meta events: ss's
		// callee record only.
		if ref.reg == reg {
			reg.callees.Store(reg.list().without(ref.seq))
		}
		rm.mu.Unlock()
		return
	}
	old := reg.list()
	l := old
	if ref.reg == reg {
		l = old.without(ref.seq)
	}
	reg.callees.Store(l)
	if wild && l.len() == 0 && old.len() > 0 {
		// The node's last callee of the pattern: its index goes back to
		// whoever made it (addCallee).
		rm.wildRegs--
		rm.wildRegsBy.drop(reg.walkBy)
		s.r.regBytes.release(reg.maker, wildcardIndexCost(reg.match, reg.uri))
		if reg.walked {
			rm.regWalks.drop(reg.walkBy, reg.uri)
			reg.walked = false
		}
	} else if wild && l.len() > 0 && ref.reg == reg && ss.subOwner == reg.maker {
		if reg.makerHolds--; reg.makerHolds <= 0 {
			s.moveRegMaker(rm, reg, l)
		}
	}
	if s.r.mesh != nil {
		rm.meshLocalChanged(reg)
		deleted = l.len() == 0 && old.len() > 0
	} else if l.len() == 0 {
		rm.regs.del(reg.match, reg.uri)
		rm.dropRegID(reg.id)
		rm.regChanged(reg.match, reg.uri)
		deleted = true
	}
	rm.metaPush(metaItem{topic: metaRegOnUnregister, sess: ss.id, id: reg.id})
	if deleted {
		rm.metaPush(metaItem{topic: metaRegOnDelete, sess: ss.id, id: reg.id})
	}
	rm.mu.Unlock()
}

// moveRegMaker counts the wildcard pattern reg's index, whose maker's
// last callee left it, to the owner of one of this node's callees still
// holding it (l, not empty) whose share can take it, as moveMaker does a
// subscription's (when none can, it stays the maker's), with its count
// (wildRegsBy) and walk (regWalks). Under
// Realm.mu; walks the callees (an UNREGISTER or a leave).
func (s *Shard) moveRegMaker(rm *Realm, reg *registration, l *calleeList) {
	owners := func(yield func(string) bool) {
		for c := range l.all() {
			if !yield(c.s.subOwner) {
				return
			}
		}
	}
	max := s.r.cfg.MaxRealmWildcardRegistrations
	fits := func(o string) bool { return patternFits(rm.wildRegsBy, rm.regWalks, max, o, reg.uri, reg.walked) }
	to, holds, moved := moveIndexCharge(&s.r.regBytes, reg.maker, wildcardIndexCost(reg.match, reg.uri), s.r.cfg.MaxRegistrationBytes, owners, fits)
	if !moved {
		reg.makerHolds = 0
		return
	}
	movePattern(&rm.wildRegsBy, &rm.regWalks, reg.walkBy, to, reg.uri, reg.walked)
	reg.walkBy = to
	reg.maker, reg.makerHolds = to, holds
}

// call handles CALL.
func (s *Shard) call(ss *Session, m *proto.Message) {
	if !s.checkRequest(ss, m) {
		return
	}
	if oc := ss.calls[m.Request]; oc != nil {
		if oc.progInv {
			s.callContinue(ss, oc, m)
			return
		}
		s.protocolError(ss, "CALL request id "+strconv.FormatUint(m.Request, 10)+" is already in use by a pending call")
		return
	}
	if ss.metaWaits[m.Request] != nil {
		s.protocolError(ss, "CALL request id "+strconv.FormatUint(m.Request, 10)+" is already in use by a pending meta call")
		return
	}
	progress := m.Opt.Bool(proto.KeyProgress, false)
	if ss.endedProgressive(m.Request, !progress) {
		return // a chunk of a call the caller has had its answer for
	}
	if progress && ss.feat&fCallerProgInv == 0 {
		s.protocolError(ss, "CALL.Options.progress requires the caller to announce progressive_call_invocations")
		return
	}
	if !proto.ValidURI(m.URI, ss.realm.conf().URICheck) {
		s.rejectCall(ss, m.Request, progress, proto.URIInvalidURI, "invalid procedure URI")
		return
	}
	if reserved(m.URI) {
		if _, meta := metaProcs[string(m.URI)]; meta && progress {
			s.rejectCall(ss, m.Request, progress, proto.URIFeatureNotSupported, "meta procedures do not take progressive call invocations")
			return
		}
		if s.metaCall(ss, m) {
			return
		}
	}
	if !ss.authorize(ActionCall, m.URI) {
		s.rejectCall(ss, m.Request, progress, proto.URINotAuthorized, "not authorized to call "+strconv.Quote(string(m.URI)))
		return
	}
	if reserved(m.URI) {
		// Not a meta procedure: no pattern registration ("wamp" prefix,
		// "..get" wildcard) may answer in the router's name.
		s.rejectCall(ss, m.Request, progress, proto.URINoSuchProcedure, "no router procedure "+strconv.Quote(string(m.URI)))
		return
	}
	if max := s.r.cfg.MaxPendingCalls; len(ss.calls) >= max {
		s.rejectCall(ss, m.Request, progress, proto.URIUnavailable, "too many calls in flight for this session (limit "+strconv.Itoa(max)+")")
		return
	}
	if !s.callBudgetRoom(ss) {
		s.callsTotalRefused(ss, m.Request, progress)
		return
	}
	reg := ss.realm.lookupReg(s.idx, m.URI)
	if reg == nil {
		s.rejectCall(ss, m.Request, progress, proto.URINoSuchProcedure, "no callee registered for procedure "+strconv.Quote(string(m.URI)))
		return
	}
	if s.r.draining.Load() {
		s.drainCall(ss, m, reg, progress) // no new invocation here (drain.go)
		return
	}
	if s.r.mesh != nil && s.meshCall(ss, m, reg, progress) {
		return // sent to a callee on another node
	}
	ppt := pptMode(&m.Opt)
	ce, ok := s.pickCallee(reg, needOf(progress, ppt))
	if !ok {
		s.rejectCall(ss, m.Request, progress, proto.URINoSuchProcedure, "no callee registered for procedure "+strconv.Quote(string(m.URI)))
		return
	}
	cs := ce.s
	if progress && cs.feat&fCalleeProgInv == 0 {
		s.rejectCall(ss, m.Request, progress, proto.URIFeatureNotSupported, "the callee does not support progressive call invocations")
		return
	}
	if cs.feat&fCalleePPT == 0 && ppt {
		s.rejectCall(ss, m.Request, progress, proto.URIFeatureNotSupported, msgCalleeNoPPT)
		return
	}
	if cs.shard != s && !cs.shard.callRoom(callCost(m)) {
		s.stats.CallsBacklog.Add(1)
		s.rejectCall(ss, m.Request, progress, proto.URIUnavailable, msgCalleeBacklog)
		return
	}
	oc := s.newOutCall()
	*oc = outCall{callee: cs, reg: reg, invID: s.nextInvocationID(), recvProg: m.Opt.Bool(proto.KeyReceiveProgress, false), progInv: progress, start: s.sampleCall()}
	timeout := s.callTimeoutOf(m)
	if timeout > 0 {
		// The coarse clock may be up to a tick behind: a tick more keeps
		// the deadline from coming early.
		oc.due = deadlineAfter(s.r.coarseNow()+int64(clockTick), timeout)
		s.addTimer(timer{due: oc.due, kind: tmCall, sess: ss, id: m.Request})
	}
	if ss.calls == nil {
		ss.calls = map[uint64]*outCall{}
	}
	ss.calls[m.Request] = oc
	s.traffic.callsInFlight++
	s.r.callAdded(ss)

	queued := s.queueCall(cs.shard, true)
	t := task{kind: tInvoke, s: cs, peer: ss, a: m.Request, b: oc.invID, reg: reg, c: s.carry(m, cs.shard != s || queued)}
	if queued {
		t.flags |= tfSelfCall
	}
	if oc.recvProg {
		t.flags |= tfRecvProg
	}
	if progress {
		t.flags |= tfProgress
	}
	discloseMe := m.Opt.Bool(proto.KeyDiscloseMe, false)
	oc.discloseMe = discloseMe
	if discloseMe || ce.discloseCaller || ss.grants(ActionDiscloseCaller, m.URI) {
		t.flags |= tfDisclose
		oc.disclose = true
	}
	if ce.forwardTimeout && cs.feat&fCalleeTimeout != 0 && timeout > 0 {
		t.timeout = uint64(timeout / time.Millisecond)
	}
	if reg.match != proto.MatchExact {
		t.c.uri = string(m.URI)
		oc.proc = t.c.uri
	}
	if rerouteable(reg) {
		// For another shard t.c is an own copy already, shared with the
		// task (read only); else it aliases m.
		if oc.rr = s.newReroute(ss, reg, m, t.c, cs.shard != s || queued, discloseMe || ss.grants(ActionDiscloseCaller, m.URI), 0, cs.id); oc.rr != nil {
			t.c = &oc.rr.c
		}
	}
	s.sendCall(cs.shard, t)
}

// maxCallBacklog bounds the bytes of calls from this node's other shards
// waiting for one shard (Shard.callBacklog), as maxEventBacklog does for
// events.
const maxCallBacklog = 32 << 20

// msgCalleeNoPPT is the message of a CALL in Payload Passthru Mode
// refused for a callee that did not announce payload_passthru_mode
// (wamp.error.feature_not_supported: "MUST be treated as APPLICATION
// ERRORS").
const msgCalleeNoPPT = "the callee does not support payload passthru mode (payload_passthru_mode)"

// Messages of the calls refused because a shard's queue of calls is full.
const (
	msgCalleeBacklog = "the callee's event loop is busy: too many calls are waiting for it"
	msgCallerBacklog = "the caller's event loop is busy: too many results are waiting for it"
)

// callCost is what a carry of m (carryOf) holds while its task waits in
// another shard's mailbox: its payload, pass-through keys and URI, and the
// task and carry themselves (callOverhead, so that a flood of empty calls
// is bounded too).
func callCost(m *proto.Message) int64 {
	return int64(payloadLen(m)+len(m.URI)) + callOverhead
}

// callOverhead is what a call, chunk, result or error waiting for a
// shard holds besides its payload (or envelope), URI and message: its
// carry (304 bytes, a 320-byte object) and its task in the shard's
// mailbox (104, in a slice that grows as it fills). Measured (heap of
// live objects, TestMeshResultBacklogCountsWhatResultsHold,
// TestMeshChunkBacklogCountsWhatChunksHold): a result from another node
// of an 18-byte envelope held 433 bytes, an error of 94 (its URI and
// message copied out of it) 529, a chunk of 18 451. They counted their
// envelope and 256 (273, 351 and 275), so the 32 MiB bounds let a stalled
// loop hold ~50 MiB of small ones. A YIELD of ["x"] from another shard of
// the node held 423 bytes and counted 261 (its payload and 256,
// TestShardCallBacklogCountsWhatResultsHold).
const callOverhead = 448

// callRoom reports whether sh, a shard other than the caller's, may take n
// more bytes of calls: at most maxCallBacklog wait for it (one call always
// may). Any goroutine; shards that check at once may each add one.
func (sh *Shard) callRoom(n int64) bool {
	b := sh.callBacklog.Load()
	return b <= 0 || b+n <= maxCallBacklog
}

// sendCall delivers t, a tInvoke or tResult whose carry callRoom admitted,
// to the shard dst like send; for another shard its bytes count in dst's
// callBacklog until it runs.
func (s *Shard) sendCall(dst *Shard, t task) {
	if dst == s {
		if t.flags&tfSelfCall != 0 { // queueCall: its carry is its own
			s.selfCalls++
			s.post(t)
			return
		}
		s.run(&t)
		return
	}
	n := int64(cap(t.c.buf)+len(t.c.uri)+len(t.c.msg)) + callOverhead
	t.c.queued = n
	dst.callBacklog.Add(n)
	dst.post(t)
}

// calleeOf reports whether cs is a callee of reg still: a call picked it
// from reg's list on another shard, or another node, and it may have
// unregistered since (a registration deleted and made anew has another
// id, and another record). Owned by cs's shard.
func (cs *Session) calleeOf(reg *registration) bool {
	return cs.regs[reg.id].reg == reg
}

// mayInvoke reports whether callee cs may still receive an invocation of
// reg for the procedure called (a pattern registration's concrete URI),
// and the URI it checked: a more specific deny under a pattern, or a
// reload that took the grant away since cs registered, keeps the
// invocation from it. Owned by cs's shard.
func (cs *Session) mayInvoke(reg *registration, called string) (string, bool) {
	if cs.realm.conf().Authorizer == nil {
		return called, true
	}
	uri := called
	if reg.match == proto.MatchExact {
		uri = reg.uri
	}
	return uri, cs.mayReceive(ActionRegister, reg.match, []byte(uri))
}

// rejectCall answers a CALL the router refuses. When it is the first chunk
// of a progressive call invocation, the call is remembered as ended, so
// that the chunks already on their way are dropped rather than taken for
// new calls (the final one would otherwise reach a callee on its own).
func (s *Shard) rejectCall(ss *Session, req uint64, progress bool, uri, message string) {
	if progress {
		ss.rememberEnded(req)
	}
	s.replyError(ss, proto.CodeCall, req, uri, message)
}

// callTimeoutOf returns a call's effective router-side timeout: the
// caller's (capped by MaxCallTimeout), or the default.
func (s *Shard) callTimeoutOf(m *proto.Message) time.Duration {
	d := s.r.cfg.CallTimeout
	if m.Opt.Has(proto.KeyTimeout) { // 0 deactivates the timeout (WAMP §Call Timeouts)
		d = 0
	}
	if ms := m.Opt.Uint(proto.KeyTimeout); ms > 0 {
		if ms > uint64(1<<62)/uint64(time.Millisecond) {
			ms = uint64(1<<62) / uint64(time.Millisecond)
		}
		d = time.Duration(ms) * time.Millisecond
	}
	if max := s.r.cfg.MaxCallTimeout; max > 0 && (d == 0 || d > max) {
		d = max
	}
	return d
}

// callContinue routes a further chunk of a progressive call invocation to
// the callee chosen by the first chunk.
func (s *Shard) callContinue(ss *Session, oc *outCall, m *proto.Message) {
	progress := m.Opt.Bool(proto.KeyProgress, false)
	if !progress {
		oc.progInv = false // the final chunk: an ending from here on is not remembered (endCall)
	}
	if ss.recheck != nil && s.endUnauthorizedCall(ss, m.Request, oc) {
		return // a reload took the grant away; its re-check has not come to the call yet
	}
	s.dropReroute(oc) // a callee with more than the first chunk keeps the call
	if oc.callee == nil {
		s.meshContinue(ss, oc, m, progress) // the callee's node checks the mode (meshChunk)
		return
	}
	if oc.callee.feat&fCalleePPT == 0 && pptMode(&m.Opt) {
		// A later chunk in payload passthru mode for a callee that did
		// not announce it (the CALL's first chunk was not in the mode,
		// so it was not refused then): the call fails, and the callee,
		// which has the earlier chunks, is told.
		ss.endCall(m.Request, oc)
		s.replyError(ss, proto.CodeCall, m.Request, proto.URIFeatureNotSupported, msgCalleeNoPPT)
		s.stopInvocation(oc, proto.CancelKillNoWait, proto.URIFeatureNotSupported)
		return
	}
	if oc.callee.shard != s && !oc.callee.shard.callRoom(callCost(m)) {
		// The chunk cannot wait for the callee's shard: the call fails,
		// and the callee, which has the earlier chunks, is told.
		s.stats.CallsBacklog.Add(1)
		ss.endCall(m.Request, oc)
		s.replyError(ss, proto.CodeCall, m.Request, proto.URIUnavailable, msgCalleeBacklog)
		s.stopInvocation(oc, proto.CancelKillNoWait, proto.URIUnavailable)
		return
	}
	oc.chunked = true
	queued := s.queueCall(oc.callee.shard, false)
	t := task{kind: tInvoke, s: oc.callee, peer: ss, a: m.Request, b: oc.invID, reg: oc.reg, flags: tfContinue, c: s.carry(m, oc.callee.shard != s || queued)}
	if queued {
		t.flags |= tfSelfCall
	}
	if progress {
		t.flags |= tfProgress
	}
	if oc.disclose { // options of the initiating CALL hold for every chunk
		t.flags |= tfDisclose
	}
	s.sendCall(oc.callee.shard, t)
}

// pickCallee applies the registration's invocation policy. A call that
// needs a feature of its callee (need: a progressive call invocation, a
// call in payload passthru mode) goes by the policy among the callees that
// announced it, when some but not all did (roundrobin takes turns among
// them, random draws among them, first and last take the first and last
// of them), so that it fails with feature_not_supported only when none
// did; when none did, it is refused for the policy's pick. The counts of
// such callees the list keeps (calleeList.count, by chunk too) make the
// pick O(chunks + calleesPerChunk) whatever the callees without the
// feature. Before, a pick that could not take the call walked the list
// from it, one callee at a time, to the next that could: all of them when
// none could, 0.54 ms of the caller's event loop a CALL on a registration
// of 10,000 such callees and 35 ms at 100,000, for a CALL refused at once
// (no calls_in_flight bound applies); and the callee after a run of
// callees without the feature took every pick that fell in the run
// (roundrobin over two capable callees among ten: 9 calls in 10 to one).
// Calls that need nothing are picked as before.
func (s *Shard) pickCallee(reg *registration, need calleeNeed) (callee, bool) {
	l := reg.list()
	n := l.len()
	if n == 0 {
		return callee{}, false
	}
	if need != 0 && n > 1 {
		if m := l.count(need); m > 0 && m < n {
			return l.nthCan(s.policyPick(reg, m), need)
		}
	}
	i := 0
	if n > 1 {
		switch reg.invoke { // policyPick's, inline on the call path
		case proto.InvokeLast:
			i = n - 1
		case proto.InvokeRoundRobin:
			i = int((reg.rr.Add(1) - 1) % uint64(n))
		case proto.InvokeRandom:
			i = s.rng.IntN(n)
		}
	}
	return l.at(i), true
}

// policyPick applies reg's invocation policy to the n > 1 callees that
// meet a call's need, in registration order (first and single: the
// first); roundrobin takes the need's own turns (rrNeed). Owned by shard.
func (s *Shard) policyPick(reg *registration, n int) int {
	switch reg.invoke {
	case proto.InvokeLast:
		return n - 1
	case proto.InvokeRoundRobin:
		return int((reg.rrNeed.Add(1) - 1) % uint64(n)) // the need's own turns
	case proto.InvokeRandom:
		return s.rng.IntN(n)
	}
	return 0
}

// deliverInvocation runs on the callee's shard.
func (s *Shard) deliverInvocation(t *task) {
	if t.peer == nil {
		s.meshDeliverInvocation(t) // the caller is on another node
		return
	}
	cs := t.s
	cont := t.flags&tfContinue != 0
	if cs.state != stEstablished {
		if !cont {
			// Rerouted like a callee's wamp.error.unavailable.
			s.send(t.peer.shard, task{kind: tResult, s: t.peer, a: t.a, b: t.b, flags: tfError | tfUnavailable,
				c: &carry{uri: proto.URINoAvailableCallee, msg: "the callee left before the call reached it"}})
		}
		return
	}
	if !cont {
		if !cs.calleeOf(t.reg) {
			// The callee unregistered (UNREGISTER, the meta API's
			// remove_callee, a revocation) after the caller's shard
			// picked it: it must not get an INVOCATION for a
			// registration it no longer holds (Autobahn takes one for a
			// protocol violation). Rerouted as for a callee gone, else
			// no_available_callee.
			c, flags := &carry{}, tfError|tfUnavailable
			if currentReg(cs.realm, t.reg) != t.reg {
				// A force_reregister took the registration over after
				// the caller's shard picked this callee: a copy of the
				// call goes back, for the registration holding the
				// procedure now (rerouteReplaced). Cold path.
				c.ownFrom(t.c)
				flags |= tfReplaced
			}
			c.uri, c.msg = proto.URINoAvailableCallee, "the callee unregistered before the call reached it"
			s.send(t.peer.shard, task{kind: tResult, s: t.peer, a: t.a, b: t.b, flags: flags, c: c})
			return
		}
		if uri, ok := cs.mayInvoke(t.reg, t.c.uri); !ok {
			// Rerouted as for a callee's wamp.error.unavailable: another
			// callee of a shared registration, of another role, may take
			// it (a pattern registration's callees may be granted
			// different parts of it); not_authorized when none does.
			// Before, the call failed at this callee while the next one
			// in turn could serve it (3 of 6 calls, round robin).
			s.send(t.peer.shard, task{kind: tResult, s: t.peer, a: t.a, b: t.b, flags: tfError | tfUnavailable,
				c: &carry{uri: proto.URINotAuthorized, msg: "the callee of the registration matching " + strconv.Quote(uri) + " is not authorized for it"}})
			return
		}
	}
	var ic *inCall
	if cont {
		if ic = cs.invs[t.b]; ic == nil {
			return // the invocation ended meanwhile
		}
	} else {
		if cs.overShare(t.peer.id) {
			// The callee is behind and its queue's upper half is kept for
			// the callers with no more than their share of it
			// (calleeshare.go): rerouted like a callee's
			// wamp.error.unavailable, else the caller gets it.
			s.stats.CallsShare.Add(1)
			s.send(t.peer.shard, task{kind: tResult, s: t.peer, a: t.a, b: t.b, flags: tfError | tfUnavailable,
				c: &carry{uri: proto.URIUnavailable, msg: msgCalleeShare}})
			return
		}
		ic = s.newInCall()
		*ic = inCall{caller: t.peer, req: t.a, recvProg: t.flags&tfRecvProg != 0}
		cs.addInv(t.b, ic)
	}
	if err := s.sendInvocation(t, cs, ic, t.b, t.peer.id, t.peer.authID, t.peer.authRole); err != nil {
		cs.dropInv(t.b)
		s.countRefusedSend(err)
		if err == ErrPeerClosed && !cont {
			// The callee's transport closed (a WebSocket Close frame, a
			// reset found by a write) and its departure (Detach) has not
			// run yet: the call never reached it, and goes on as for a
			// callee found gone above. Before, the caller got
			// wamp.error.canceled "the callee left" though another
			// callee of the shared registration was there.
			s.send(t.peer.shard, task{kind: tResult, s: t.peer, a: t.a, b: t.b, flags: tfError | tfUnavailable,
				c: &carry{uri: proto.URINoAvailableCallee, msg: "the callee left before the call reached it"}})
			return
		}
		uri, why := sendFailure(err, "callee")
		if !cont && (uri == proto.URIPayloadSizeExceeded || uri == proto.URIInvalidArgument) {
			// Longer than this callee accepts (a RawSocket callee's
			// shorter maximum), or than the router builds in its
			// serializer, or with no form in it (a NaN for a JSON
			// callee): another callee of a shared registration may take
			// it, as for a callee's unavailable; the caller gets the
			// refusal when none does (refusalURI). Before, every call the
			// policy gave this callee failed so.
			flags := tfError | tfUnavailable
			if err != ErrPeerTooBig {
				flags |= tfSerRefused // so for every callee of its serializer
			}
			s.send(t.peer.shard, task{kind: tResult, s: t.peer, a: t.a, b: t.b, flags: flags, c: &carry{uri: uri, msg: why}})
			return
		}
		if cont && cs.feat&fCalleeCancel != 0 && !ic.interrupted {
			// The callee has the earlier chunks: it is told the call is
			// over rather than left waiting for the rest.
			s.sendInterrupt(cs, t.b, proto.CancelKillNoWait, uri)
		}
		s.failCall(t.peer, t.a, t.b, uri, why)
	}
}

// sendInvocation sends the callee cs the INVOCATION inv of call t, whose
// caller (on this node or another) is callerID, authID, authRole; it
// counts a refusal by a busy callee. Local and mesh calls both build their
// INVOCATION here, so that an option reaches a callee the same way
// wherever its caller is.
func (s *Shard) sendInvocation(t *task, cs *Session, ic *inCall, inv, callerID uint64, authID, authRole string) error {
	out := &s.out
	out.Reset()
	out.Type = proto.CodeInvocation
	out.Request = inv
	out.ID = t.reg.id
	f := &out.Opt
	cont := t.flags&tfContinue != 0
	if t.c.uri != "" && !cont {
		f.SetString(proto.KeyProcedure, t.c.uri)
	}
	if t.flags&tfDisclose != 0 {
		f.SetUint(proto.KeyCaller, callerID)
		f.SetString(proto.KeyCallerAuthID, authID)
		f.SetString(proto.KeyCallerAuthRole, authRole)
	}
	if ic.recvProg && cs.feat&fCalleeProgress != 0 {
		f.SetBool(proto.KeyReceiveProgress, true)
	}
	if t.timeout > 0 && !cont {
		f.SetUint(proto.KeyTimeout, t.timeout)
	}
	if t.flags&tfProgress != 0 {
		f.SetBool(proto.KeyProgress, true)
	}
	switch {
	case cont:
		ic.setFrozen(f, t.c) // the first chunk's Details hold for every chunk
	case t.flags&tfProgress != 0:
		t.c.setPPT(f)
		ic.freeze(t)
	default:
		t.c.setPPT(f)
	}
	t.c.setPayload(out)
	err := s.sendMsg(cs, out, ClassInvocation)
	if err == ErrPeerBusy {
		s.stats.CallsRefused.Add(1)
	}
	return err
}

// ConvertCallerPrefix starts the message (the first argument) of the
// wamp.error.invalid_argument ERROR a caller gets when the callee's RESULT
// has a payload the caller's serializer cannot carry (a NaN, an infinity,
// a non-string map key or a text string starting with NUL for a JSON
// caller): the callee's doing, which
// the HTTP gateway answers 502. Such an ERROR carries KeyForCaller: a
// callee's text starting so does not.
const ConvertCallerPrefix = "the payload cannot be converted for the caller: "

// KeyForCaller is the Details key (true) of an ERROR the router itself
// sends a caller for an answer of the callee it could not give the caller
// (its payload has no form in the caller's serializer: a message starting
// with ConvertCallerPrefix). As KeyForCallee, only the router's own errors
// get it, so that the HTTP gateway tells the callee's fault (502) from a
// callee's own invalid_argument (400) by the error's structure, not its
// text.
const KeyForCaller = "_edgewamp_for_caller"

// SizeForCallee reports whether message, that of a
// wamp.error.payload_size_exceeded ERROR the router makes, is its own for
// a CALL it could not give the callee (longer than the callee accepts, as
// sent or converted to its serializer; larger than the mesh carries to the
// callee's node; a meta procedure's arguments past their bound): the
// caller's payload is the cause, where any other
// payload_size_exceeded (the callee's own ERROR, its RESULT longer than
// the caller accepts) is the answer's. Such an ERROR carries KeyForCallee,
// which the HTTP gateway answers 413 (the others 502): a callee's text
// cannot match here. It does not allocate.
func SizeForCallee(message string) bool {
	return message == "the message is longer than the callee accepts" ||
		message == "the payload, converted to the callee's serializer, is longer than the router builds" ||
		strings.HasPrefix(message, meshUnreachable) ||
		strings.HasPrefix(message, "the arguments of ") && strings.HasSuffix(message, " are longer than 64 KiB")
}

// KeyForCallee is the Details key (true) of a
// wamp.error.payload_size_exceeded the router itself sends a caller for a
// CALL it could not give the callee (SizeForCallee's messages). Only the
// router's own errors get it: a callee's ERROR keeps none of its Details
// but payload passthru's, so that a peer (the HTTP gateway) tells the
// caller's fault from the answer's by the error's structure, whatever the
// callee wrote in it.
const KeyForCallee = "_edgewamp_for_callee"

// KeyShutdown is the Details key (true) of the wamp.error.canceled the
// router itself sends a caller whose call a router's stop ended (this
// router's, or the callee's node's on a mesh: msgShutdownInProgress), so
// that the HTTP gateway tells a stop (503) from a callee that left or a
// callee's own canceled (409) by the error's structure, not its text.
const KeyShutdown = "_edgewamp_shutdown"

// markRouterError gives out, the router's own ERROR of uri and message
// for a peer of serializer ser, the Details {KeyForCallee: true} when it
// is one for the callee, {KeyForCaller: true} when it is one for the
// caller, {KeyShutdown: true} for a call a stop ended (off the hot path:
// errors only; out has no other Details).
func markRouterError(out *proto.Message, ser proto.Serializer, uri, message string) {
	key := KeyForCaller
	switch {
	case uri == proto.URIPayloadSizeExceeded && SizeForCallee(message):
		key = KeyForCallee
	case uri == proto.URICanceled && message == msgShutdownInProgress:
		key = KeyShutdown
	case strings.HasPrefix(message, ConvertCallerPrefix):
	default:
		return
	}
	if raw, err := proto.EncodeValue(ser, map[string]any{key: true}); err == nil {
		out.Dict = raw
	}
}

// sendFailure maps a Peer.Send error to the WAMP error a caller gets
// (SizeForCallee knows its payload_size_exceeded messages for a callee).
func sendFailure(err error, who string) (uri, message string) {
	switch err {
	case ErrPeerBusy:
		return proto.URIUnavailable, "the " + who + " is not reading fast enough (outbound queue full)"
	case ErrPeerTooBig:
		return proto.URIPayloadSizeExceeded, "the message is longer than the " + who + " accepts"
	case ErrPeerClosed:
		return proto.URICanceled, "the " + who + " left"
	case proto.ErrTooLarge:
		return proto.URIPayloadSizeExceeded, "the payload, converted to the " + who + "'s serializer, is longer than the router builds"
	}
	if e, ok := err.(*proto.Error); ok {
		return proto.URIInvalidArgument, "the payload cannot be converted for the " + who + ": " + e.Msg()
	}
	return proto.URINetworkFailure, err.Error()
}

// countRefusedSend counts err, sendInvocation's, when the call's payload
// could not be converted to the callee's serializer, or was too long once
// converted (Shard.stats.CallsNotConvertible), or the message was longer
// than the callee accepts (CallsTooBig).
func (s *Shard) countRefusedSend(err error) {
	if _, ok := err.(*proto.Error); ok || err == proto.ErrTooLarge {
		s.stats.CallsNotConvertible.Add(1)
	} else if err == ErrPeerTooBig {
		s.stats.CallsTooBig.Add(1)
	}
}

// failCall sends an error to a caller's shard for the call (req, invID).
func (s *Shard) failCall(caller *Session, req, invID uint64, uri, message string) {
	s.send(caller.shard, task{kind: tResult, s: caller, a: req, b: invID, flags: tfError, c: &carry{uri: uri, msg: message}})
}

// yield handles YIELD from a callee.
func (s *Shard) yield(ss *Session, m *proto.Message) {
	ic := ss.invs[m.Request]
	if ic == nil {
		if m.Request == 0 { // no INVOCATION has id 0: checked off the hot path
			s.checkRequest(ss, m)
		}
		return // canceled, timed out or unknown: discard (WAMP §Call Canceling)
	}
	progress := m.Opt.Bool(proto.KeyProgress, false)
	if progress && !ic.recvProg {
		return // the caller did not ask for progressive results
	}
	if ic.caller == nil {
		s.meshYield(ss, ic, m, progress)
		return
	}
	dst := ic.caller.shard
	if dst != s && !dst.callRoom(callCost(m)) {
		s.callerBacklogged(ss, ic, m.Request, progress)
		return
	}
	queued := s.queueCall(dst, false)
	t := task{kind: tResult, s: ic.caller, a: ic.req, b: m.Request, c: s.carry(m, dst != s || queued)}
	if queued {
		t.flags |= tfSelfCall
	}
	if progress {
		t.flags |= tfProgress
	} else {
		ss.dropInv(m.Request)
		s.putInCall(ic) // t and dst hold what is needed
	}
	s.sendCall(dst, t)
}

// pptRefusedToCaller ends the call req of cs, whose callee answered it
// (RESULT or ERROR, progressive or final) in Payload Passthru Mode while
// cs did not announce payload_passthru_mode: the caller gets ERROR
// wamp.error.feature_not_supported instead of a payload it cannot read,
// and a callee still sending progressive results is interrupted
// (killnowait, reason feature_not_supported) as when the caller's queue
// is full. The specification has the Dealer "respond to the Callee with
// a wamp.error.feature_not_supported error message", but no ERROR
// reaches a callee for its YIELD without breaking real clients:
// Autobahn|Python 22.7 raises ProtocolError on an ERROR for a request it
// has not pending and drops its connection, wampy 8.0.2 aborts its
// session on an ERROR for a request type other than its own requests'. The
// caller, left waiting otherwise, gets the error. On the caller's shard:
// for a callee of another node too.
func (s *Shard) pptRefusedToCaller(cs *Session, req uint64, oc *outCall, progress bool) {
	s.recycleReroute(oc)
	cs.endCall(req, oc)
	if oc.start != 0 {
		s.observeCall(oc.start)
	}
	if progress {
		s.stopInvocation(oc, proto.CancelKillNoWait, proto.URIFeatureNotSupported)
	}
	s.replyError(cs, proto.CodeCall, req, proto.URIFeatureNotSupported, "the callee answered in payload passthru mode, which the caller did not announce (payload_passthru_mode)")
	s.putOutCall(oc)
}

// callerBacklogged ends the invocation inv of callee ss whose YIELD (or
// ERROR) cannot wait for the caller's shard, its queue of calls being
// full: the caller gets wamp.error.unavailable instead of the answer, and
// a callee still sending progressive results is interrupted.
func (s *Shard) callerBacklogged(ss *Session, ic *inCall, inv uint64, progress bool) {
	s.stats.CallsBacklog.Add(1)
	ss.dropInv(inv)
	if progress && ss.feat&fCalleeCancel != 0 && !ic.interrupted {
		s.sendInterrupt(ss, inv, proto.CancelKillNoWait, proto.URIUnavailable)
	}
	s.failCall(ic.caller, ic.req, inv, proto.URIUnavailable, msgCallerBacklog)
	s.putInCall(ic)
}

// invocationError handles ERROR for an INVOCATION.
func (s *Shard) invocationError(ss *Session, m *proto.Message) {
	ic := ss.invs[m.Request]
	if ic == nil {
		if m.Request == 0 {
			s.checkRequest(ss, m)
		}
		return
	}
	if !proto.ValidURI(m.URI, proto.URILoose) {
		s.protocolError(ss, "ERROR has an invalid error URI")
		return
	}
	if ic.caller == nil {
		s.meshInvocationError(ss, ic, m)
		return
	}
	if dst := ic.caller.shard; dst != s && !dst.callRoom(callCost(m)) {
		s.callerBacklogged(ss, ic, m.Request, false)
		return
	}
	ss.dropInv(m.Request)
	queued := s.queueCall(ic.caller.shard, false)
	c := s.carry(m, ic.caller.shard != s || queued)
	c.uri = string(m.URI)
	t := task{kind: tResult, s: ic.caller, a: ic.req, b: m.Request, flags: tfError, c: c}
	if queued {
		t.flags |= tfSelfCall
	}
	if c.uri == proto.URIUnavailable {
		t.flags |= tfUnavailable // the caller's shard may reroute the call
	}
	s.sendCall(ic.caller.shard, t)
}

// deliverResult runs on the caller's shard.
func (s *Shard) deliverResult(t *task) {
	cs := t.s
	if cs.state != stEstablished {
		return
	}
	oc := cs.calls[t.a]
	if oc == nil || oc.invID != t.b {
		return // the call ended meanwhile (canceled, timed out)
	}
	progress := t.flags&tfProgress != 0
	if progress && !oc.recvProg {
		return
	}
	if t.flags&tfUnavailable != 0 && s.calleeUnavailable(cs, t.a, oc, t) {
		return // rerouted (reroute.go)
	}
	if t.c.pptMode() && cs.feat&fCallerPPT == 0 {
		s.pptRefusedToCaller(cs, t.a, oc, progress)
		return
	}
	final := !progress
	if final {
		s.recycleReroute(oc) // the answer of the invocation: it ran
		cs.endCall(t.a, oc)
		if oc.start != 0 {
			s.observeCall(oc.start)
		}
	}
	out := &s.out
	out.Reset()
	if t.flags&tfError != 0 {
		out.Type = proto.CodeError
		out.ReqType = proto.CodeCall
		out.Request = t.a
		out.URI = append(out.URI[:0], t.c.uri...)
		if t.c.msg != "" && !t.c.args.Present() {
			// The router's own error (a callee's comes as its payload).
			s.setMessageArgs(out, cs.ser, t.c.msg)
			markRouterError(out, cs.ser, t.c.uri, t.c.msg)
		} else {
			t.c.setPPT(&out.Opt) // the callee's ERROR's, as for a RESULT
			t.c.setPayload(out)
		}
	} else {
		out.Type = proto.CodeResult
		out.Request = t.a
		if progress {
			out.Opt.SetBool(proto.KeyProgress, true)
			oc.gotProg = true
			s.dropReroute(oc)
		}
		t.c.setPPT(&out.Opt)
		t.c.setPayload(out)
	}
	class := ClassResult
	if progress {
		// Refused past the caller's high-water mark (ErrPeerBusy): the
		// stream ends below, not the caller's session past its hard limit.
		class = ClassProgress
	}
	if err := s.sendMsg(cs, out, class); err != nil && err != ErrPeerClosed {
		uri, why := sendFailure(err, "caller")
		if _, ok := err.(*proto.Error); ok && t.flags&tfError != 0 {
			// The callee's ERROR has a payload the caller's serializer
			// cannot carry (a NaN for a JSON caller): the caller gets
			// the error's URI, its payload replaced by why, not an
			// invalid_argument that blames the caller's own payload.
			uri = string(t.c.uri)
		}
		if progress {
			cs.endCall(t.a, oc)
			s.stopInvocation(oc, proto.CancelKillNoWait, uri)
		}
		s.replyError(cs, proto.CodeCall, t.a, uri, why)
	}
	if final {
		s.putOutCall(oc)
	}
}

// endCall removes an ended call. A progressive-invocation call whose
// caller has not sent its final chunk is remembered, so that the chunks
// still on their way are dropped (endedProgressive).
func (ss *Session) endCall(req uint64, oc *outCall) {
	n := len(ss.calls)
	delete(ss.calls, req)
	if shrinkDue(&ss.callsPeak, n, len(ss.calls)) {
		shrinkMap(&ss.calls, &ss.callsPeak)
	}
	ss.shard.traffic.callsInFlight--
	ss.shard.r.callsEnded(ss, 1)
	ss.shard.dropReroute(oc)
	if oc.due != 0 {
		ss.shard.callTimersEnded(1)
	}
	if oc.callee == nil {
		ss.shard.dropMcall(oc.invID)
		ss.meshCallEnded()
	}
	if oc.progInv {
		ss.rememberEnded(req)
	}
}

// procedure returns the procedure called.
func (oc *outCall) procedure() string {
	if oc.proc != "" {
		return oc.proc
	}
	return oc.reg.uri
}

// maxEndedProg bounds the ended progressive-invocation calls a session
// remembers (Session.ended): as many of its streams may end at once (a
// callee leaving, a burst of timeouts) and still have chunks on their way
// when the caller has its ERRORs. It was 8: a late chunk of the ninth
// stream back was taken for a new call, and reached a callee as an
// INVOCATION of its own, starting mid-stream. About 40 bytes each at
// most, held only while some are remembered.
const maxEndedProg = 1024

// endedCalls is the set of remembered ended calls, oldest first in ring
// (which may still hold ids forgotten since: they are skipped).
type endedCalls struct {
	ids  map[uint64]int // each with its place in ring
	ring []uint64
	next int // the oldest, once ring is full
}

// rememberEnded records req as a progressive-invocation call that ended
// before its final chunk (see endedProgressive); past maxEndedProg the
// oldest is forgotten.
func (ss *Session) rememberEnded(req uint64) {
	e := ss.ended
	if e == nil {
		e = &endedCalls{ids: map[uint64]int{}}
		ss.ended = e
	}
	if _, ok := e.ids[req]; ok {
		return
	}
	if len(e.ring) < maxEndedProg {
		e.ids[req] = len(e.ring)
		e.ring = append(e.ring, req)
		return
	}
	// The oldest place's id is forgotten only if that place is still its
	// own: an id forgotten by its final chunk and remembered again since
	// (a client that reuses request ids) has a newer place.
	if old := e.ring[e.next]; e.ids[old] == e.next {
		delete(e.ids, old)
	}
	e.ids[req] = e.next
	e.ring[e.next] = req
	e.next = (e.next + 1) % maxEndedProg
}

// endedProgressive reports whether req is a progressive-invocation call
// that has ended; a final chunk (last) also forgets it.
func (ss *Session) endedProgressive(req uint64, last bool) bool {
	e := ss.ended
	if e == nil {
		return false
	}
	if _, ok := e.ids[req]; !ok {
		return false
	}
	if last {
		delete(e.ids, req)
		if len(e.ids) == 0 {
			ss.ended = nil // the ring's stale ids with it
		}
	}
	return true
}

// cancel handles CANCEL (WAMP §Call Canceling).
func (s *Shard) cancel(ss *Session, m *proto.Message) {
	oc := ss.calls[m.Request]
	if oc == nil {
		if m.Request == 0 { // no CALL has id 0 (call refuses it)
			s.checkRequest(ss, m)
			return
		}
		s.cancelMeta(ss, m.Request) // a meta call waiting, else already answered
		return
	}
	mode := m.Opt.CancelMode(proto.CancelKillNoWait)
	if oc.callee == nil {
		s.meshCancel(ss, m.Request, oc, mode)
		return
	}
	if oc.callee.feat&fCalleeCancel == 0 {
		mode = proto.CancelSkip // callees that do not announce canceling
	}
	if mode == proto.CancelKill {
		if !oc.canceling {
			oc.canceling = true
			s.send(oc.callee.shard, task{kind: tInterrupt, s: oc.callee, b: oc.invID, mode: proto.CancelKill, c: &carry{uri: proto.URICanceled}})
			s.boundKillWait(ss, m.Request, oc)
		}
		return
	}
	ss.endCall(m.Request, oc)
	s.replyError(ss, proto.CodeCall, m.Request, proto.URICanceled, "the call was canceled")
	s.stopInvocation(oc, mode, proto.URICanceled)
}

// stopInvocation tells the callee's shard that the caller no longer waits:
// INTERRUPT when the callee supports canceling (and mode is not skip), else
// just forget the invocation.
func (s *Shard) stopInvocation(oc *outCall, mode proto.CancelMode, reason string) {
	if oc.callee == nil {
		s.meshStop(oc, mode, reason)
		return
	}
	if mode != proto.CancelSkip && oc.callee.feat&fCalleeCancel != 0 {
		s.send(oc.callee.shard, task{kind: tInterrupt, s: oc.callee, b: oc.invID, mode: proto.CancelKillNoWait, c: &carry{uri: reason}})
		return
	}
	s.send(oc.callee.shard, task{kind: tForget, s: oc.callee, b: oc.invID})
}

// deliverInterrupt runs on the callee's shard.
func (s *Shard) deliverInterrupt(t *task) {
	cs := t.s
	ic := cs.invs[t.b]
	if cs.state != stEstablished || ic == nil {
		return
	}
	again := ic.interrupted
	ic.interrupted = true
	if t.mode == proto.CancelKillNoWait {
		cs.dropInv(t.b) // any answer is discarded
	}
	if again {
		return // at most one INTERRUPT per invocation
	}
	out := &s.out
	out.Reset()
	out.Type = proto.CodeInterrupt
	out.Request = t.b
	out.Opt.SetString(proto.KeyMode, t.mode.String())
	if t.c != nil && t.c.uri != "" {
		out.Opt.SetString(proto.KeyReason, t.c.uri)
	}
	s.sendMsg(cs, out, ClassControl)
}

// killWait bounds how long a call canceled in kill mode waits for its
// callee's answer to the INTERRUPT (boundKillWait).
const killWait = 10 * time.Second

// boundKillWait gives the call req of ss, just canceled in kill mode, a
// deadline killWait away, unless its own timeout comes first: past it the
// call ends as in killnowait (callTimeout), the caller getting
// wamp.error.canceled. WAMP has the Dealer wait for the callee's answer,
// but a callee that never gives one (Autobahn|Python 22.7.1 does not
// answer INTERRUPT) held the call for as long as the caller's session
// lasted, counted in its calls_in_flight and calls_in_flight_total, while
// the caller had given up on it (the Go client after its ReplyTimeout).
// Off the call path: a CANCEL's.
func (s *Shard) boundKillWait(ss *Session, req uint64, oc *outCall) {
	due := deadlineAfter(s.r.coarseNow()+int64(clockTick), killWait)
	old := oc.due
	if old != 0 && old <= due {
		return // its timeout ends it first
	}
	oc.due, oc.killDue = due, true
	if old != 0 {
		s.callTimersEnded(1) // its timeout's timer is dead from here (timer.live)
	}
	s.addTimer(timer{due: due, kind: tmCall, sess: ss, id: req})
}

// callTimeout fires a call's router-side timeout (WAMP §Call Timeouts:
// dealer-initiated, killnowait when the callee supports canceling, else
// skip), or the end of a kill-mode cancel's wait (boundKillWait).
func (s *Shard) callTimeout(tm timer) {
	ss := tm.sess
	oc := ss.calls[tm.id] // live() checked it is this call
	oc.due = 0            // its timer is out of the heap (callTimersEnded)
	ss.endCall(tm.id, oc)
	if oc.killDue {
		// The callee was sent INTERRUPT (kill) and has not answered: the
		// invocation is dropped without a second one (inCall.interrupted).
		s.replyError(ss, proto.CodeCall, tm.id, proto.URICanceled, "the call was canceled; its callee did not answer the interrupt within "+killWait.String())
		s.stopInvocation(oc, proto.CancelKillNoWait, proto.URICanceled)
		return
	}
	s.replyError(ss, proto.CodeCall, tm.id, proto.URITimeout, "the call timed out")
	s.stopInvocation(oc, proto.CancelKillNoWait, proto.URITimeout)
}

// leaveDealer ends a leaving session's calls and invocations and removes
// it from its registrations.
func (s *Shard) leaveDealer(ss *Session) {
	ss.metaWaits = nil
	s.r.callsEnded(ss, int64(len(ss.calls)))
	timed := 0
	for req, oc := range ss.calls {
		delete(ss.calls, req)
		s.traffic.callsInFlight--
		s.dropReroute(oc)
		if oc.callee == nil {
			ss.meshCallEnded()
		}
		if oc.due != 0 {
			timed++
		}
		s.stopInvocation(oc, proto.CancelKillNoWait, proto.URICanceled)
	}
	ss.share = nil
	s.r.calls.dropCallOwner(ss)
	for inv, ic := range ss.invs {
		delete(ss.invs, inv)
		if ic.caller == nil {
			s.meshCalleeLeft(ss, inv, ic) // its timer counted ended (meshEndInvocation)
			continue
		}
		s.send(ic.caller.shard, task{kind: tResult, s: ic.caller, a: ic.req, b: inv, flags: tfError | tfCalleeLeft,
			c: &carry{uri: proto.URICanceled, msg: s.calleeLeftMsg()}})
	}
	// The timers of its calls, and of its invocations from other nodes'
	// callers (tmMeshInv), hold ss: swept once the ended are half the
	// heap, here also below timerSweepMin (sweepEnded).
	s.sweepEnded(timed)
	for _, ref := range ss.regs {
		s.detachCallee(ss, ref.reg)
		s.metaFlush(ss.realm)
	}
}

// replyError sends ERROR for a request, with a human-readable message as
// its first argument (what Crossbar and Autobahn users expect to see).
// When the message makes the ERROR longer than the peer accepts (it may
// quote a URI of up to 4 KiB, a RawSocket client may take 512 bytes), the
// ERROR goes without it: the request must be answered. Before, it was
// dropped, and the client waited for an answer that never came.
func (s *Shard) replyError(ss *Session, reqType proto.Code, req uint64, uri, message string) {
	out := &s.out
	out.Reset()
	out.Type = proto.CodeError
	out.ReqType = reqType
	out.Request = req
	out.URI = append(out.URI[:0], uri...)
	if message != "" {
		s.setMessageArgs(out, ss.ser, message)
		markRouterError(out, ss.ser, uri, message)
	}
	if s.sendMsg(ss, out, ClassResult) == ErrPeerTooBig && message != "" {
		out.Args = proto.Raw{}
		s.sendMsg(ss, out, ClassResult)
	}
}

// setMessageArgs sets out.Args to [message].
func (s *Shard) setMessageArgs(out *proto.Message, ser proto.Serializer, message string) {
	raw, err := proto.EncodeValue(ser, []any{message})
	if err == nil {
		out.Args = raw
	}
}

// Free lists of call records, per shard. Only the common ends (the final
// RESULT or YIELD) recycle; rarer ends (cancel, timeout, leave) leave the
// record to the garbage collector. Owned by shard.
const callPoolMax = 1024

type freeList[T any] struct{ free []*T }

func (f *freeList[T]) get() *T {
	if n := len(f.free); n > 0 {
		x := f.free[n-1]
		f.free = f.free[:n-1]
		return x
	}
	return new(T)
}

// put zeroes x and keeps it for reuse.
func (f *freeList[T]) put(x *T) {
	if len(f.free) < callPoolMax {
		var zero T
		*x = zero
		f.free = append(f.free, x)
	}
}

func (s *Shard) newOutCall() *outCall   { return s.outPool.get() }
func (s *Shard) putOutCall(oc *outCall) { s.outPool.put(oc) }
func (s *Shard) newInCall() *inCall     { return s.inPool.get() }
func (s *Shard) putInCall(ic *inCall)   { s.inPool.put(ic) }

// staleRemoteSingle reports whether reg is a single registration of other
// nodes' callees only, as the directory has it: the mesh's claim store,
// not the directory, decides whether it is still held. The directory
// can lag behind the store: a node that unregistered the procedure has
// its claim back in the store before its directory change (Callees 0)
// is read everywhere, and a standby that registers on another node on
// reading the UNREGISTERED was refused procedure_already_exists for the
// entry still shown. Not while a conflict between other nodes' single
// parts stands, nor for the mesh's hold after (remoteConflict), nor after
// this node's own lost one (wonByRemote). Call with rm.mu held.
func staleRemoteSingle(reg *registration) bool {
	return reg.invoke == proto.InvokeSingle && reg.list().len() == 0 && !reg.remoteConflict &&
		(!reg.wonByRemote || !time.Now().Before(reg.wonUntil))
}

// meshWonHold is the default of how long after this node lost a conflict of single
// registrations (registration.wonByRemote) its directory, not the claim
// store, refuses REGISTERs of the procedure: the winner, which this node
// took for dead and took the claim of, claims it again at its next
// reconcile after this node gave it back (edge's reconcileEvery, 2 s,
// each try bounded by claimTimeout, 1 s): two reconcile periods and a
// try. Past it the store holds the winner's claim and answers for it,
// and a standby registering as soon as the winner unregistered is not
// refused for a directory that lags. A Mesh that reconciles at another
// pace says its own (MeshWonHold).
const meshWonHold = 5 * time.Second

// registeredAlready says why a REGISTER of reg's procedure uri with
// invoke by ss is refused, with the error to refuse it with
// (procedure_already_exists, or
// procedure_exists_with_different_invocation_policy against a shared
// registration of another policy), or "", "" when it may be added.
// Called with the realm's lock held.
func registeredAlready(ss *Session, reg *registration, uri string, invoke proto.Invoke) (errURI, why string) {
	switch {
	case reg.invoke == proto.InvokeSingle:
		return proto.URIProcedureAlreadyExists, "procedure " + strconv.Quote(uri) + " is already registered"
	case reg.invoke != invoke:
		// A shared registration of another policy: the error Crossbar.io,
		// Bondy and nexus answer, which Autobahn names
		// PROCEDURE_EXISTS_INVOCATION_POLICY_CONFLICT (before,
		// procedure_already_exists).
		return proto.URIProcedureExistsInvocationPolicyConflict, "procedure " + strconv.Quote(uri) + " is registered with invocation policy " + reg.invoke.String() + ", not " + invoke.String()
	case ss.regs[reg.id].reg == reg:
		// The session's own table, not a walk of the callees.
		return proto.URIProcedureAlreadyExists, "this session already registered " + strconv.Quote(uri)
	}
	return "", ""
}

// registrationsFull refuses a REGISTER when ss, holding n registrations,
// is at Config.MaxRegistrations, or at MaxWildcardRegistrations for a
// wildcard, and reports whether it did. A REGISTER that would be refused
// procedure_already_exists anyway (the session's own, or a single one), or
// for its policy, is answered so, as below the bounds: before, at the bound a duplicate got
// wamp.error.unavailable, as if one more registration were the matter.
// One with force (force_reregister) that would take the registration
// over (takeOver) gets the bound's error: below it, it would be one more
// registration of the session (before, procedure_already_exists).
func (s *Shard) registrationsFull(ss *Session, req uint64, match proto.Match, invoke proto.Invoke, uri string, n int, force bool) bool {
	full := n >= s.r.cfg.MaxRegistrations
	wildFull := match == proto.MatchWildcard && ss.wildRegs >= s.r.cfg.MaxWildcardRegistrations
	if !full && !wildFull {
		return false
	}
	errURI, why := s.refusedAnyway(ss, match, invoke, uri, force)
	switch {
	case why != "":
		s.replyError(ss, proto.CodeRegister, req, errURI, why)
	case full:
		s.tooManyRegistrations(ss, req)
	default:
		s.wildcardRefused(ss, proto.CodeRegister, req, false, s.r.cfg.MaxWildcardRegistrations)
	}
	return true
}

// refusedAnyway returns the error a REGISTER of (match, uri) with
// invoke (and force_reregister, force) gets below the bounds (the
// procedure registered, or being claimed), which it gets at them too; ""
// when it would be taken, or would take the registration over
// (takeOver's test).
func (s *Shard) refusedAnyway(ss *Session, match proto.Match, invoke proto.Invoke, uri string, force bool) (errURI, why string) {
	rm := ss.realm
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	if reg, ok := rm.regs.get(match, uri); ok {
		if l := reg.list(); force && s.r.mesh == nil && l.len() > 0 && sameIdentity(ss, l) {
			return "", ""
		}
		return registeredAlready(ss, reg, uri, invoke)
	} else if invoke == proto.InvokeSingle && rm.mdir != nil && rm.mdir.claims[regKey{match, uri}] {
		return proto.URIProcedureAlreadyExists, "procedure " + uri + " is being registered by another session" // as meshClaim says
	}
	return "", ""
}

// singlesFull refuses, on a mesh, a single REGISTER of a session that
// holds (or waits to claim) its share of the mesh's claim store
// (MeshClaimShare), and reports whether it did. Off the call path: a
// REGISTER's.
func (s *Shard) singlesFull(ss *Session, req uint64, match proto.Match, uri string) bool {
	max := s.r.ms.sessionClaims
	if max <= 0 || ss.singles+ss.claims.busy+len(ss.claims.q) < max {
		return false
	}
	if errURI, why := s.refusedAnyway(ss, match, proto.InvokeSingle, uri, false); why != "" {
		s.replyError(ss, proto.CodeRegister, req, errURI, why)
		return true
	}
	s.r.ms.share.ClaimShareRefused()
	s.replyError(ss, proto.CodeRegister, req, proto.URIUnavailable, "too many single registrations for this session on this mesh node (limit "+strconv.Itoa(max)+": its share of the mesh's claim store)")
	return true
}

// tooManyRegistrations refuses a REGISTER past Config.MaxRegistrations.
func (s *Shard) tooManyRegistrations(ss *Session, req uint64) {
	s.replyError(ss, proto.CodeRegister, req, proto.URIUnavailable, "too many registrations for this session (limit "+strconv.Itoa(s.r.cfg.MaxRegistrations)+")")
}

// DefaultRegistrationBytes is Config.MaxRegistrationBytes's default.
const DefaultRegistrationBytes = 1 << 30

// regOverhead is what a session's hold of a registration is counted for
// besides its URI: the registration, its callee list, the index entries
// and the session's table entry (TestRegistrationBytesCountWhatTheyHold).
const regOverhead = 512

// regCost is what a REGISTER that makes this node's first callee of the
// registration of uri, of match policy m, counts in
// Config.MaxRegistrationBytes: its hold (regHoldCost) and a wildcard
// pattern's trie nodes (wildcardIndexCost).
func regCost(m proto.Match, uri string) int64 {
	return regHoldCost(uri) + wildcardIndexCost(m, uri)
}

// regHoldCost is what a session's hold of a registration of uri counts in
// Config.MaxRegistrationBytes, as the callee that made it or one sharing
// it; given back when it leaves it. The callee that makes a wildcard
// pattern (this node's first) is counted its index too (regCost,
// registration.maker) while its owner holds it, then another holder's
// owner (moveRegMaker), until this node's last callee leaves it.
func regHoldCost(uri string) int64 { return int64(len(uri)) + regOverhead }

// registrationOwner returns whose share of Config.MaxRegistrationBytes
// ss's registrations count in: the subscriptions' owner (retainOwner,
// none for an InProcessPeer's session, the HTTP gateway's, which only the
// total bounds), one record for both. Owned by shard.
func (ss *Session) registrationOwner() string { return ss.subscriptionOwner() }

// registrationBytesRefused answers a REGISTER past
// Config.MaxRegistrationBytes, counted; the first refusal of a session is
// logged (a client that retries must not flood the log).
func (s *Shard) registrationBytesRefused(ss *Session, req uint64) {
	s.stats.RegistrationsRefused.Add(1)
	if ss.wildLogged&16 == 0 {
		ss.wildLogged |= 16
		s.r.log.Warn("refusing registrations: the router holds as many registrations' bytes as it takes, or this client as many as it may (a quarter of them, and less than the router has left free; limits.registration_bytes; logged once per session)",
			"session", ss.id, "authid", ss.authID, "authrole", ss.authRole, "remote", ss.transport.RemoteAddr, "owner", logCut(ss.subOwner), "limit", s.r.cfg.MaxRegistrationBytes)
	}
	s.replyError(ss, proto.CodeRegister, req, proto.URIUnavailable, "the router holds as many registrations as it takes (limits.registration_bytes), or this client address or authid as many as it may: a quarter of it, and less than the router has left free")
}
