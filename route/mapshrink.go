package route

// # Tables a peer can grow and empty
//
// Go maps never shrink: a map keeps the table of the most entries it ever
// held, whatever it holds now. The tables that a peer fills and empties
// at will kept the size of their peak, counted in no bound: a session's
// calls in flight and a callee's invocations for the session's life (a
// table of 16,384 calls held 577 KiB once they were answered, one of
// 65,536 2.3 MiB; four callers that each had 16,384 calls in flight to
// one callee, all answered but one each, left 3.5 MiB held:
// TestSessionCallTablesShrinkAfterPeak), and every session may do it; a
// session's subscriptions and registrations, and the realm's by id and
// by URI, for the session's and the realm's (65,536 subscriptions made
// and dropped by one session left 10.8 MiB, as many registrations 9.1:
// TestSessionSubscriptionTablesShrinkAfterPeak); the router's, realms'
// and shards' tables of sessions for the router's (32,768 sessions that
// joined and left left 3.5 MiB: TestSessionTablesShrinkAfterCrowdLeaves),
// and the budgets' tables of owners (as many owners' sessions, each
// subscribed and having called once, left 3.5 MiB:
// TestBudgetOwnerTablesShrinkAfterCrowdLeaves).
//
// So such a table records its peak, the most entries it held since it was
// last checked, where an entry is deleted (the peak of a count is always
// followed by a delete, or by the map's end), and is replaced by a copy
// sized for what it holds once it holds fewer than an eighth of a peak of
// at least mapShrinkMin entries. The copy costs what it copies, at most
// an eighth of the deletes since the peak; nothing is added where entries
// are added, and a delete pays a compare or two (shrinkDue).

// mapShrinkMin is the peak below which a map is never replaced: a map of
// 1,024 small entries holds ~36 KiB.
const mapShrinkMin = 1024

// shrinkDue records in *peak a map's entries before a delete (before),
// and reports whether the map, holding after entries now, is due for
// shrinkMap: it holds fewer than an eighth of its peak. Called where an
// entry of a table a peer can grow is deleted:
//
//	n := len(m)
//	delete(m, k)
//	if shrinkDue(&peak, n, len(m)) {
//		shrinkMap(&m, &peak)
//	}
func shrinkDue(peak *int, before, after int) bool {
	if before > *peak {
		*peak = before
		return false
	}
	return after < *peak>>3
}

// shrinkMap replaces *m with a copy sized for what it holds (never nil)
// if its peak (*peak) was at least mapShrinkMin entries;
// the peak starts again from what it holds. Off the per-entry path:
// called at most once per eighth of the peak's deletes.
func shrinkMap[K comparable, V any](m *map[K]V, peak *int) {
	shrinkMapFrom(m, peak, mapShrinkMin)
}

// shrinkMapFrom is shrinkMap for a map that is one of several stripes of
// a table: it is replaced if its peak was at least least entries (the
// table's mapShrinkMin divided among its stripes).
func shrinkMapFrom[K comparable, V any](m *map[K]V, peak *int, least int) {
	big := *peak >= least
	*peak = len(*m)
	if !big {
		return
	}
	c := make(map[K]V, len(*m))
	for k, v := range *m {
		c[k] = v
	}
	*m = c
}
