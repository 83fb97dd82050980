package route

import "github.com/edgewamp/edgewamp/proto"

// walkShareFrom is the fewest components of a wildcard pattern whose
// patterns can take the index's walk past maxWildcardWalk: a walk of n
// components visits at most 2+4+…+2^n = 2^(n+1)-2 nodes (4,094 at 11).
// Patterns of fewer are never refused for their walk, nor kept in a
// walkShares.
const walkShareFrom = 12

// walkShares keeps each owner's wildcard patterns of walkShareFrom
// components or more (Session.walkOwner: the byte budgets' owner, a
// client address or authid; for the HTTP gateway's sessions the HTTP
// client's address, "" for its webhooks and callees) in an index of
// their own, so that the walk the owner's patterns make
// alone is known: an owner may take it to a quarter of maxWildcardWalk
// (walkShares.past), and since a walk over several owners' patterns is
// at most the sum of their own walks, the others keep three quarters of
// it. Before, one session's 1,024 patterns of 13 components starting
// with a wildcard took the realm's walk to 4,095, and every new pattern
// of 13 components starting with a literal was refused "overlaps too
// many", for every client of the realm. The owner is the maker's (the
// session whose SUBSCRIBE or REGISTER put the pattern in the realm's
// table), kept until the pattern leaves it or the maker's last session
// leaves it to other holders (moveMaker, moveRegMaker: then one of
// theirs, patternFits; a joiner's hold counts nothing: joining adds
// nothing to a walk). Cold path (SUBSCRIBE,
// REGISTER, their undoing and leaves); under Realm.mu. The owner's copy
// holds up to as many trie nodes as the realm's for the same patterns.
type walkShares map[string]*table[struct{}]

// past reports whether owner's own patterns with the wildcard pattern
// uri would let a walk of them pass a quarter of maxWildcardWalk.
func (w walkShares) past(owner, uri string) bool {
	n := components(uri)
	if n < walkShareFrom {
		return false
	}
	if t := w[owner]; t != nil {
		n = t.wildWalkWith(uri)
	}
	return n > maxWildcardWalk/4
}

// add counts the wildcard pattern uri, just put in the realm's table,
// to owner's walk, reporting whether it did (walkShareFrom components
// or more).
func (w *walkShares) add(owner, uri string) bool {
	if components(uri) < walkShareFrom {
		return false
	}
	if *w == nil {
		*w = walkShares{}
	}
	t := (*w)[owner]
	if t == nil {
		t = newTable[struct{}]()
		(*w)[owner] = t
	}
	t.put(proto.MatchWildcard, uri, struct{}{})
	return true
}

// drop takes the wildcard pattern uri, added for owner, off its walk.
func (w walkShares) drop(owner, uri string) {
	if t := w[owner]; t != nil {
		if t.del(proto.MatchWildcard, uri); t.n == 0 {
			delete(w, owner)
		}
	}
}

// wildCounts counts the wildcard patterns each owner (Session.walkOwner,
// the walk's owner, kept in the pattern's walkBy) made among those a
// realm counts toward Config.MaxRealmWildcardSubscriptions (or
// Registrations): an owner may make a quarter of them (wildShare), so
// that four owners are needed to fill the realm. Before, the count was
// the realm's only: four sessions of one address, each at its own bound
// (1,024), took all 4,096, and every other client of the realm was
// refused any new wildcard pattern for as long as they stayed. A join
// makes no pattern and counts nothing; the count follows the walk: the
// maker's, then a holder's (movePattern). Cold path
// (SUBSCRIBE, REGISTER, their undoing and leaves); under Realm.mu.
type wildCounts map[string]int

// wildShare is the most patterns one owner may make among a realm's
// bound of n: a quarter, at least one. The owner "", the sessions inside
// the process without a client's address (the gateway's webhooks and
// HTTP callees, an embedder's), has the realm's whole bound, as before
// the quarters: the operator configures them, no client can make a
// pattern count to it (an event stream counts to its HTTP client), and
// quartered, a realm's 1,025th wildcard webhook was refused for good,
// retrying with an ERROR line each time.
func wildShare(n int) int { return max(1, n/4) }

func (w *wildCounts) add(owner string) {
	if *w == nil {
		*w = wildCounts{}
	}
	(*w)[owner]++
}

func (w wildCounts) drop(owner string) {
	if w[owner]--; w[owner] <= 0 {
		delete(w, owner)
	}
}

// patternFits reports whether owner's quarters can take a wildcard
// pattern uri that another owner counts, held by owner's sessions: its
// count (by, of the realm's max) and, when walked, its walk (walks). A
// holder that cannot is passed over, and when none can the pattern stays
// its maker's (moveIndexCharge): moved past a holder's quarter, two
// colluding owners could fill the realm (one makes a quarter, the other
// joins it, the maker leaves and makes as many again), where four are
// needed.
func patternFits(by wildCounts, walks walkShares, max int, owner, uri string, walked bool) bool {
	return by[owner] < wildShare(max) && !(walked && walks.past(owner, uri))
}

// movePattern counts the wildcard pattern uri to owner to instead of
// from: its count in by and, when walked, its walk in walks.
func movePattern(by *wildCounts, walks *walkShares, from, to, uri string, walked bool) {
	by.drop(from)
	by.add(to)
	if walked {
		walks.drop(from, uri)
		walks.add(to, uri)
	}
}

// walkOwner returns whose share of the wildcard index's walk
// (walkShares) a pattern made by ss's message being handled counts in:
// its subscriptionOwner, or for an in-process peer that carries many
// clients' requests (ReceiveMessageFrom, the HTTP gateway's event
// streams) the client's address, whichever of the gateway's sessions
// and principals carries them. Before, the gateway's sessions were all
// one owner (""), so one HTTP client's 153 event streams of overlapping
// 13-component patterns took its quarter, and every other gateway client
// was refused new patterns of 13 components. Owned by shard; cold path
// (SUBSCRIBE, REGISTER).
func (ss *Session) walkOwner() string {
	if ss.clientAddr != "" {
		return ss.retainOwner() // "address " + its clientKey
	}
	return ss.subscriptionOwner()
}
