package route

// SessionShard returns the index of the shard that owns the established
// session id of realm, or -1 (for the tests of package route_test, which
// run the router on real event loops).
func SessionShard(r *Router, realm string, id uint64) int {
	rm := r.Realm(realm)
	if rm == nil {
		return -1
	}
	rm.mu.RLock()
	defer rm.mu.RUnlock()
	if ss := rm.members[id]; ss != nil {
		return ss.shard.idx
	}
	return -1
}

// WalkShares returns the owners' shares of walk budget r holds: those
// its sessions hold, and all of them (for the tests of package
// route_test).
func WalkShares(r *Router) (held, all int) {
	w := &r.walkOwners
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, o := range w.by {
		if o.sessions > 0 {
			held++
		}
	}
	return held, len(w.by)
}

// WalkWakes returns how many times r's shards have looked at a session's
// waiting walks (walksDue runs), for the tests of package route_test.
func WalkWakes(r *Router) int64 { return r.walkOwners.wakes.Load() }

// WalkLine returns how many sessions wait in r's owners' lines for their
// share of walk budget (walkOwner.line), for the tests of package
// route_test.
func WalkLine(r *Router) int {
	w := &r.walkOwners
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, o := range w.by {
		for _, ss := range o.line {
			if ss.walks.inLine {
				n++
			}
		}
	}
	return n
}
