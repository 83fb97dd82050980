package route

import (
	"slices"

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
		s.creds = map[string][]*Session{}
	}
	for _, id := range ss.cred.IDs {
		if id != "" {
			s.creds[id] = append(s.creds[id], ss)
		}
	}
	if ss.cred.Check != nil {
		if why := ss.cred.Check(); why != "" {
			s.r.log.Info("disconnecting a session: its credential was withdrawn", "session", ss.id, "authid", ss.authID, "reason", why)
			s.Goodbye(ss, proto.CloseKilled, why)
		}
	}
}

// releaseCredential takes a leaving session out of the index. Shard
// goroutine.
func (s *Shard) releaseCredential(ss *Session) {
	for _, id := range ss.cred.IDs {
		l := s.creds[id]
		if i := slices.Index(l, ss); i >= 0 {
			l = slices.Delete(l, i, i+1)
		}
		if len(l) == 0 {
			delete(s.creds, id)
		} else {
			s.creds[id] = l
		}
	}
}

// RevokeCredentials ends, with GOODBYE wamp.close.killed and message, every
// session of this router that authenticated with a credential one of whose
// ids is in ids (an access token's jti, or the id of the login a token came
// from). Sessions on other nodes of a mesh are their own router's business
// (each node learns of a revocation through the shared store). Safe for
// concurrent use; it never blocks (the work runs on the shards).
func (r *Router) RevokeCredentials(ids []string, message string) {
	if len(ids) == 0 {
		return
	}
	ids = slices.Clone(ids)
	for _, sh := range r.shards {
		sh.Do(func() { sh.revokeCredentials(ids, message) })
	}
}

// revokeCredentials ends this shard's sessions that hold one of ids.
func (s *Shard) revokeCredentials(ids []string, message string) {
	if len(s.creds) == 0 {
		return
	}
	var victims []*Session
	for _, id := range ids {
		victims = append(victims, s.creds[id]...)
	}
	for _, ss := range victims {
		if ss.state == stEstablished {
			s.r.log.Info("disconnecting a session: its credential was revoked", "session", ss.id, "authid", ss.authID)
			s.Goodbye(ss, proto.CloseKilled, message)
		}
	}
}
