package route

import (
	"sort"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The registration directory (see mesh.go): the other nodes' parts of
// each registration, kept per realm under Realm.mu, from which the remote
// callee lists of the registration table are derived.

// MeshRealmReg is a MeshReg with its realm.
type MeshRealmReg struct {
	Realm string
	MeshReg
}

type regKey struct {
	match proto.Match
	uri   string
}

// dirEntry is one node's part of a registration.
type dirEntry struct {
	MeshReg
	name string // the node's name, for ties
}

// meshDir is a realm's directory. Guarded by Realm.mu.
type meshDir struct {
	byKey  map[regKey]map[MeshNode]dirEntry
	byNode map[MeshNode]map[regKey]struct{}
	claims map[regKey]bool // single registrations being claimed here
	// grants are the claims granted while another node's single part
	// stands here, waiting for it to leave (heldGrant); nil when none.
	grants map[regKey]*heldGrant
}

// maxDirEntries bounds the directory entries one node may hold here (per
// realm), so that a misbehaving node cannot grow this node's memory
// without limit; past it, further entries are ignored and counted.
const maxDirEntries = 1 << 20

func (rm *Realm) dir() *meshDir {
	if rm.mdir == nil {
		rm.mdir = &meshDir{byKey: map[regKey]map[MeshNode]dirEntry{}, byNode: map[MeshNode]map[regKey]struct{}{}}
	}
	return rm.mdir
}

// MeshUpdate applies a change of node's part of one registration. name is
// the node's name (it breaks ties between conflicting registrations the
// same way on every node). Safe for concurrent use; it never blocks.
func (r *Router) MeshUpdate(node MeshNode, name string, reg MeshRealmReg) {
	rm := r.Realm(reg.Realm)
	if rm == nil || r.ms == nil {
		return
	}
	rm.mu.Lock()
	rm.dirSet(node, name, reg.MeshReg)
	rm.mu.Unlock()
}

// MeshSync replaces everything node registered: its full directory, for
// every realm. Safe for concurrent use; it never blocks.
func (r *Router) MeshSync(node MeshNode, name string, regs []MeshRealmReg) {
	if r.ms == nil {
		return
	}
	byRealm := map[string][]MeshReg{}
	for _, e := range regs {
		byRealm[e.Realm] = append(byRealm[e.Realm], e.MeshReg)
	}
	for _, rm := range *r.realms.Load() {
		rm.mu.Lock()
		keep := map[regKey]bool{}
		for _, e := range byRealm[rm.name] {
			if e.Callees > 0 {
				keep[regKey{e.Match, e.URI}] = true
			}
		}
		if rm.mdir != nil {
			for k := range rm.mdir.byNode[node] {
				if !keep[k] {
					rm.dirSet(node, name, MeshReg{Match: k.match, URI: k.uri})
				}
			}
		}
		for _, e := range byRealm[rm.name] {
			rm.dirSet(node, name, e)
		}
		rm.mu.Unlock()
		if pr := rm.pres.Load(); pr != nil {
			// A node (re)joining, or one heard again after it was taken
			// for dead: its sessions that joined meanwhile sent their
			// on_join to no one here (mesh_presence.go, regather).
			rm.onShard0(func() { rm.regather(pr) })
		}
	}
}

// meshForget drops node's directory entries in every realm.
func (r *Router) meshForget(node MeshNode) {
	for _, rm := range *r.realms.Load() {
		rm.mu.Lock()
		if rm.mdir != nil {
			for k := range rm.mdir.byNode[node] {
				rm.dirSet(node, "", MeshReg{Match: k.match, URI: k.uri})
			}
			delete(rm.mdir.byNode, node)
		}
		rm.mu.Unlock()
	}
}

// dirSet records node's part of a registration (Callees 0: none) and
// rebuilds it. Call with mu held for writing.
func (rm *Realm) dirSet(node MeshNode, name string, e MeshReg) {
	if e.Match > proto.MatchWildcard || e.URI == "" {
		return
	}
	d := rm.dir()
	k := regKey{e.Match, e.URI}
	single := false // a single part left (below)
	if e.Callees <= 0 {
		if m := d.byKey[k]; m != nil {
			old, ok := m[node]
			if !ok {
				return
			}
			single = old.Invoke == proto.InvokeSingle
			delete(m, node)
			if len(m) == 0 {
				delete(d.byKey, k)
			}
		}
		delete(d.byNode[node], k)
	} else {
		keys := d.byNode[node]
		if keys == nil {
			keys = map[regKey]struct{}{}
			d.byNode[node] = keys
		}
		if _, ok := keys[k]; !ok && len(keys) >= maxDirEntries {
			rm.r.ms.stats.BadEnvelopes.Add(1)
			return
		}
		keys[k] = struct{}{}
		m := d.byKey[k]
		if m == nil {
			m = map[MeshNode]dirEntry{}
			d.byKey[k] = m
		}
		m[node] = dirEntry{MeshReg: e, name: name}
	}
	deleted := rm.meshRebuild(k)
	if d.grants != nil {
		rm.grantsChanged(k)
	}
	if deleted || !single || rm.r.ms.check == nil {
		return
	}
	// Another node's single part left a single registration this node
	// has callees of: a conflict ended. Its loser gave back, as it
	// revoked its callees, the claim it may have taken over of this
	// node's (taking this node for dead, or before hearing it again
	// after a heal, after this node's check of its claims at the join),
	// and the store held none for this node's registration until its
	// next check, another node's join: once the other nodes' hold ended,
	// any node's REGISTER was granted and revoked a second later, again
	// and again. This node checks its claims now, and claims again those
	// the store no longer holds as its own.
	if reg, ok := rm.regs.get(k.match, k.uri); ok && reg.invoke == proto.InvokeSingle && reg.list().len() > 0 {
		rm.r.ms.check.CheckClaims()
	}
}

// meshLocalChanged tells the mesh about this node's callees of reg after
// they changed, and rebuilds reg. It reports whether reg was deleted. Call
// with mu held for writing.
func (rm *Realm) meshLocalChanged(reg *registration) (deleted bool) {
	l := reg.list()
	e := MeshReg{Match: reg.match, URI: reg.uri, Invoke: reg.invoke, Callees: l.len()}
	if rm.r.draining.Load() {
		e.Callees = 0 // withdrawn for the drain (drain.go): stays so
	}
	if n := e.Callees; n > 0 {
		// The list is in REGISTER order, and its first (last) callee is
		// the one this node's first (last) pick takes (pickCallee,
		// nextUntried; meshRebuild ranks the node by it too): its time is
		// what the other nodes compare. Not the earliest and latest found
		// by a walk of the whole list under the lock, which made every
		// REGISTER, UNREGISTER and leave O(callees) on a mesh.
		e.First, e.Last = l.at(0).at, l.at(n-1).at
		// The callees that take progressive call invocations, counted
		// as the list changes (calleeList.prog); their first and last
		// only where the policy ranks by them (progSpan: O(1) unless
		// the callees differ, then a look into the chunks with such a
		// callee).
		e.Prog = MeshCapable{Known: true, Callees: l.prog}
		e.ProgPPT = MeshCapable{Known: true, Callees: l.pt}
		if reg.invoke == proto.InvokeFirst || reg.invoke == proto.InvokeLast {
			e.Prog.First, e.Prog.Last = l.progSpan()
			e.ProgPPT.First, e.ProgPPT.Last = l.canSpan(true)
		}
	}
	rm.r.mesh.Registered(rm.name, e)
	if e.Callees == 0 && reg.invoke == proto.InvokeSingle {
		// Gone, or withdrawn for the drain (meshWithdraw).
		rm.r.mesh.Release(rm.name, reg.match, reg.uri)
	}
	return rm.meshRebuild(regKey{reg.match, reg.uri})
}

// meshRevokeGrace is how long a conflict between this node's callees of
// a registration and another node's earlier, incompatible registration
// must last before this node revokes its own. A directory change can be
// stale when it is read: a node that registered a single procedure and
// unregistered it gives its claim back after both changes went out, and
// another node that registers the procedure then, rightly, may read the
// two changes only after its own REGISTERED (its dispatcher behind, or
// NATS slower than the claim store). It revoked its callees on reading
// the first, as the loser of a conflict that the second ended a moment
// later: the procedure's one holder in the mesh was revoked, or its
// session killed. A conflict that is real (two nodes that registered
// during a partition, or with the claim store unreachable) lasts until
// one side gives way.
const meshRevokeGrace = time.Second

// meshRevokeDue revokes this node's callees of reg if, meshRevokeGrace
// after a conflict was seen, reg is still in the table and still loses
// to another node's incompatible registration (meshLost). Any goroutine.
func (rm *Realm) meshRevokeDue(reg *registration) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	reg.revokeDue = false
	cur, ok := rm.regs.get(reg.match, reg.uri)
	if !ok || cur != reg {
		return
	}
	win, lost := rm.meshLost(reg)
	if !lost {
		return
	}
	// The grace runs from the conflict standing now (lostAt), not from
	// the first this registration had: one that ended, and another that
	// began just before the timer, was revoked at once.
	if reg.lostAt.IsZero() {
		reg.lostAt = time.Now()
	}
	if left := meshRevokeGrace - time.Since(reg.lostAt); left > 0 {
		reg.revokeDue = true
		time.AfterFunc(left, func() { rm.meshRevokeDue(reg) })
		return
	}
	// The reason is the error the callees' REGISTER would have had, had
	// the winner's registration been known: procedure_already_exists
	// against a single one, else the policy conflict's.
	why := &carry{uri: proto.URIProcedureAlreadyExists}
	if win != proto.InvokeSingle {
		why.uri = proto.URIProcedureExistsInvocationPolicyConflict
	} else {
		reg.wonByRemote, reg.wonUntil = true, time.Now().Add(rm.r.ms.wonHold)
	}
	for c := range reg.list().all() {
		c.s.shard.post(task{kind: tMeshRevoke, s: c.s, reg: reg, c: why})
	}
}

// meshLost reports whether this node's callees of reg lose to another
// node's incompatible registration: the earliest part of the
// registration, local or remote, is another node's, with a policy reg's
// cannot share (as meshRebuild decides); and the winner's policy. Call
// with mu held.
func (rm *Realm) meshLost(reg *registration) (proto.Invoke, bool) {
	local := reg.list()
	if local.len() == 0 || rm.mdir == nil {
		return 0, false
	}
	win := dirEntry{MeshReg: MeshReg{Invoke: reg.invoke, First: local.at(0).at}, name: rm.r.ms.name}
	for _, e := range rm.mdir.byKey[regKey{reg.match, reg.uri}] {
		if precedes(e.First, e.name, win.First, win.name) {
			win = e
		}
	}
	return win.Invoke, win.name != rm.r.ms.name && !compatible(reg.invoke, win.Invoke)
}

// remoteOf returns node's directory entry e as a remote callee of the
// registration table.
func remoteOf(node MeshNode, e dirEntry) remoteCallee {
	rc := remoteCallee{node: node, callees: e.Callees, first: e.First, last: e.Last, prog: -1}
	if p := e.Prog; p.Known {
		rc.prog = int32(min(max(p.Callees, 0), e.Callees))
		rc.progFirst, rc.progLast = p.First, p.Last
	}
	rc.ppt, rc.pptFirst, rc.pptLast = rc.prog, rc.progFirst, rc.progLast
	if p := e.ProgPPT; p.Known {
		rc.ppt = int32(min(max(p.Callees, 0), e.Callees))
		rc.pptFirst, rc.pptLast = p.First, p.Last
	}
	return rc
}

// compatible reports whether callees registered with policies a and b may
// share a registration.
func compatible(a, b proto.Invoke) bool { return a == b && a != proto.InvokeSingle }

// precedes orders the parts of conflicting registrations: the earliest
// first callee wins; ties go to the smaller node name.
func precedes(firstA int64, nameA string, firstB int64, nameB string) bool {
	if firstA != firstB {
		return firstA < firstB
	}
	return nameA < nameB
}

// meshRebuild derives the registration (match, uri) from this node's
// callees and the directory: which policy holds (on a conflict, the part
// that registered first), which remote nodes take part, whether the local
// callees lost and must be revoked. It creates, updates or deletes the
// table entry and reports whether it deleted it. Call with mu held for
// writing.
func (rm *Realm) meshRebuild(k regKey) (deleted bool) {
	var entries map[MeshNode]dirEntry
	if rm.mdir != nil {
		entries = rm.mdir.byKey[k]
	}
	reg, exists := rm.regs.get(k.match, k.uri)
	local := noCallees
	if exists {
		local = reg.list()
	}
	// The winner: the earliest part, local or remote.
	self := rm.r.ms.name
	var win dirEntry
	have := false
	if local.len() > 0 {
		win = dirEntry{MeshReg: MeshReg{Invoke: reg.invoke, First: local.at(0).at}, name: self}
		have = true
	}
	for _, e := range entries {
		if !have || precedes(e.First, e.name, win.First, win.name) {
			win, have = e, true
		}
	}
	var rl []remoteCallee
	conflict := false // between other nodes' single parts (registration.remoteConflict)
	if exists && (local.len() == 0 || win.name == self) {
		reg.lostAt = time.Time{} // no conflict lost standing
	}
	switch {
	case local.len() > 0 && win.name != self:
		if !compatible(reg.invoke, win.Invoke) {
			// This node lost: its callees are revoked, and the
			// registration rebuilt for the winner once they are gone, if
			// the conflict lasts meshRevokeGrace from now (meshRevokeDue).
			if reg.lostAt.IsZero() {
				reg.lostAt = time.Now()
			}
			if !reg.revokeDue {
				reg.revokeDue = true
				time.AfterFunc(meshRevokeGrace, func() { rm.meshRevokeDue(reg) })
			}
		} else {
			reg.lostAt = time.Time{}
		}
		fallthrough
	case local.len() > 0:
		for n, e := range entries {
			if compatible(reg.invoke, e.Invoke) {
				rl = append(rl, remoteOf(n, e))
			}
		}
	default:
		for n, e := range entries {
			if n == 0 {
				continue
			}
			if e.name == win.name || compatible(win.Invoke, e.Invoke) {
				rl = append(rl, remoteOf(n, e))
			} else if win.Invoke == proto.InvokeSingle && e.Invoke == proto.InvokeSingle {
				conflict = true
			}
		}
		if exists && len(rl) > 0 && reg.invoke != win.Invoke {
			// The winning policy changed: a new registration (same id).
			rm.regs.del(reg.match, reg.uri)
			rm.dropRegID(reg.id)
			exists = false
		}
	}
	// In registration order (as callees of one node are), so that a
	// roundrobin across nodes starts with the node that registered first.
	sort.Slice(rl, func(i, j int) bool {
		if rl[i].first != rl[j].first {
			return rl[i].first < rl[j].first
		}
		return rl[i].node < rl[j].node
	})
	switch {
	case len(rl) == 0 && local.len() == 0:
		if exists {
			rm.regs.del(reg.match, reg.uri)
			rm.dropRegID(reg.id)
			deleted = true
		}
		rm.regChanged(k.match, k.uri)
		return deleted
	case !exists:
		reg = &registration{id: rm.entryID('r', k.match, k.uri), uri: k.uri, match: k.match, invoke: win.Invoke, created: rm.r.cfg.Now()}
		reg.callees.Store(noCallees)
		rm.regs.put(k.match, k.uri, reg)
		rm.regByID[reg.id] = reg
	}
	if len(rl) == 0 {
		reg.remote.Store(nil)
	} else {
		reg.remote.Store(&rl)
	}
	switch {
	case conflict:
		reg.remoteConflict = true
	case reg.remoteConflict:
		// The loser's part is gone: the winner claims the procedure
		// back within the mesh's hold, as on the loser (meshRevokeDue).
		reg.remoteConflict = false
		reg.wonByRemote, reg.wonUntil = true, time.Now().Add(rm.r.ms.wonHold)
	}
	rm.regChanged(k.match, k.uri)
	return false
}
