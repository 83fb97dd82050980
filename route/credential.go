package route

import (
	"slices"
	"sync"

	"github.com/edgewamp/edgewamp/proto"
)

// Withdrawable credentials (Identity.Credential): a session that logged in
// with an OAuth2 access token ends when the token, or the login it came
// from, is revoked, not only when it reconnects. Each shard indexes its own
// sessions by credential id; RevokeCredentials asks every shard to look its
// ids up, so a revocation costs one task per shard and a map lookup per
// id, whatever the number of sessions.

// holdCredential indexes an established session by its credential's ids,
// then checks the credential once more: a revocation that reached the
// shard while the login was being verified (before the session was
// indexed) is caught here. Shard goroutine.
func (s *Shard) holdCredential(ss *Session) {
	if s.creds == nil {
		s.creds = map[string]map[*Session]struct{}{}
	}
	for _, id := range ss.cred.IDs {
		if id == "" {
			continue
		}
		set := s.creds[id]
		if set == nil {
			set = map[*Session]struct{}{}
			s.creds[id] = set
		}
		set[ss] = struct{}{}
	}
	if ss.cred.Check != nil {
		if why := s.r.withdrawn(ss.cred); why != "" {
			s.r.log.Info("disconnecting a session: its credential was withdrawn", "session", ss.id, "authid", ss.authID, "reason", why)
			s.revoke(ss, why)
		}
	}
}

// releaseCredential takes a leaving session out of the index, in constant
// time however many sessions share the credential (a fleet logging in
// with one token). Shard goroutine.
func (s *Shard) releaseCredential(ss *Session) {
	for _, id := range ss.cred.IDs {
		if set := s.creds[id]; set != nil {
			delete(set, ss)
			if len(set) == 0 {
				delete(s.creds, id)
			}
		}
	}
}

// RevokeCredentials ends, with GOODBYE wamp.close.killed and message, every
// session of this router that authenticated with a credential one of whose
// ids is in ids (an access token's jti, or the id of the login a token came
// from), and drops the retained events published with such a credential,
// by those sessions or by others that have left: like their testaments,
// they would go on speaking for the identity taken away. Sessions on other
// nodes of a mesh are their own router's business (each node learns of a
// revocation through the shared store). Safe for concurrent use; it never
// blocks (the work runs on the shards).
func (r *Router) RevokeCredentials(ids []string, message string) {
	if len(ids) == 0 {
		return
	}
	ids = slices.Clone(ids)
	// The retained events once every shard has ended its sessions: a
	// session not yet ended could retain one more. Off the loops, as a
	// reload's (revokeRetained).
	r.onEveryShard(func(s *Shard) { s.revokeCredentials(ids, message, false) },
		func(s *Shard) { s.queueRevokeRetained(ids, false) })
}

// RecheckCredentials is RevokeCredentials for ids that name a group of
// credentials only some of which are withdrawn (an OAuth2 client's access
// tokens issued up to a cut-off): of the sessions and retained events
// whose credential has one of ids, it ends and drops those whose
// credential's Check now fails, with Check's reason. Safe for concurrent
// use; it never blocks.
func (r *Router) RecheckCredentials(ids []string) {
	if len(ids) == 0 {
		return
	}
	ids = slices.Clone(ids)
	r.onEveryShard(func(s *Shard) { s.revokeCredentials(ids, "", true) },
		func(s *Shard) { s.queueRevokeRetained(ids, true) })
}

// RevokeRetained is RevokeCredentials for the retained events alone: it
// drops those published with a credential that has one of ids, and
// leaves the sessions to the embedder (the HTTP gateway closes a
// principal's pooled sessions as their requests end). Safe for
// concurrent use; it never blocks.
func (r *Router) RevokeRetained(ids []string) {
	if len(ids) == 0 {
		return
	}
	ids = slices.Clone(ids)
	r.onEveryShard(func(*Shard) {}, func(s *Shard) { s.queueRevokeRetained(ids, false) })
}

// withdrawn is why cred may no longer hold a session, "" while it may.
// A panic in its Check (the embedder's code, on an event loop) takes it
// as withdrawn (errCheckPanicked), logged and counted
// (authrecover.go). Any goroutine.
func (r *Router) withdrawn(cred *Credential) (why string) {
	if cred == nil || cred.Check == nil {
		return ""
	}
	defer func() {
		if v := recover(); v != nil {
			r.logCheckPanic(v)
			why = errCheckPanicked
		}
	}()
	return cred.Check()
}

// testHookRevokeRetained, set by tests only, runs in revokeRetained before
// it walks a realm's retained events.
var testHookRevokeRetained func()

// retainedRevocations are the revocations whose retained events are
// still to be dropped (revokeRetained), walked one at a time: those that
// come while a walk runs wait for it and are walked together.
type retainedRevocations struct {
	mu      sync.Mutex
	running bool
	// ids are revoked; rechecks are revoked where the credential's Check
	// fails (RecheckCredentials).
	ids, rechecks map[string]bool
}

// queueRevokeRetained has the retained events published with a
// credential that has one of ids (with recheck, and whose Check fails)
// dropped off the event loops (revokeRetained): on a goroutine started
// here, s's (the shard that ended the credential's sessions last) when
// no walk runs, else by the one running, once its walk ends, with the
// others that came meanwhile. Before, each revocation had a goroutine
// walking at once: a burst of revocations of tokens that retained (a
// client revoking its own) ran that many walks at once, each copying
// every retained event of the realm (1.5 MB and 3-11 ms of a core at
// 65,536 topics).
func (s *Shard) queueRevokeRetained(ids []string, recheck bool) {
	q := &s.r.revoking
	q.mu.Lock()
	to := &q.ids
	if recheck {
		to = &q.rechecks
	}
	if *to == nil {
		*to = map[string]bool{}
	}
	for _, id := range ids {
		if id != "" {
			(*to)[id] = true
		}
	}
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go s.revokeRetainedQueued()
	}
}

// revokeRetainedQueued walks what queueRevokeRetained queued until none
// is left.
func (s *Shard) revokeRetainedQueued() {
	q := &s.r.revoking
	for {
		q.mu.Lock()
		ids, rechecks := q.ids, q.rechecks
		q.ids, q.rechecks = nil, nil
		if len(ids)+len(rechecks) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		s.revokeRetained(ids, rechecks)
	}
}

// revokeRetained drops the retained events published with a credential
// that has one of ids, or one of rechecks and whose Check fails. It runs
// off the event loops (revokeRetainedQueued), s being the shard that
// ended the credential's sessions last (the mesh's part runs on it,
// retainedDropped), as a reload's re-check does (reauthRetained): the
// walk copies every retained event of the realm, 3-11 ms at 65,536
// retained topics, which that shard's loop spent at every revocation of
// a token that had retained one (a client able to get tokens, log in,
// retain and revoke its own tokens could make one loop spend them over
// and over), its sessions' messages waiting.
func (s *Shard) revokeRetained(ids, rechecks map[string]bool) {
	all := make([]string, 0, len(ids)+len(rechecks))
	for id := range ids {
		all = append(all, id)
	}
	for id := range rechecks {
		all = append(all, id)
	}
	for _, rm := range *s.r.realms.Load() {
		if !rm.retainedWith(all) {
			continue
		}
		if h := testHookRevokeRetained; h != nil {
			h()
		}
		n, topic, _, pubs := rm.dropRetained(func(_ string, re *retainedEvent) string {
			if re.by == nil || re.by.cred == nil {
				return ""
			}
			recheck := false
			for _, id := range re.by.cred.IDs {
				if ids[id] {
					return "revoked"
				}
				recheck = recheck || rechecks[id]
			}
			if recheck && s.r.withdrawn(re.by.cred) != "" {
				return "revoked"
			}
			return ""
		})
		s.retainedDropped(rm, n, pubs, "dropped retained events: the credential they were published with was revoked", "topic", topic)
	}
}

// revokeCredentials ends this shard's sessions that hold one of ids (with
// recheck, those whose Check fails, with its reason as the message).
func (s *Shard) revokeCredentials(ids []string, message string, recheck bool) {
	if len(s.creds) == 0 {
		return
	}
	// Collected first: Goodbye takes each session out of the index.
	var victims []*Session
	for _, id := range ids {
		for ss := range s.creds[id] {
			victims = append(victims, ss)
		}
	}
	for _, ss := range victims {
		if ss.state != stEstablished {
			continue
		}
		msg := message
		if recheck {
			if msg = s.r.withdrawn(ss.cred); msg == "" {
				continue
			}
		}
		s.r.log.Info("disconnecting a session: its credential was revoked", "session", ss.id, "authid", ss.authID)
		s.revoke(ss, msg)
	}
}

// revoke ends a session whose identity is no longer valid (its credential
// withdrawn, its user or role removed by a reload) with GOODBYE
// wamp.close.killed. Its testaments are dropped: published, they would
// act once more as the identity just taken away. Shard goroutine.
func (s *Shard) revoke(ss *Session, message string) {
	s.dropTestaments(ss, -1)
	s.Goodbye(ss, proto.CloseKilled, message)
}
