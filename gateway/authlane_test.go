package gateway

import "testing"

// A credential checked without a place (a request on an event loop's
// lane, which may not wait, while the address's places are taken) has its
// failure counted also when the checks that held the places end first:
// they succeeded, the address's record was dropped as holding nothing,
// and the lane's failure, ending later, found no record and was lost.
// Before places were reserved (1b94fe9), every failure made its record.
func TestAuthFailureUnreservedCountedAfterPlacesFreed(t *testing.T) {
	const limit = 3
	l := newFailLimiter(limit)
	const ip = "192.0.2.9"
	for range limit {
		if v, ch := l.begin(ip, true); v != failReserved || ch != nil {
			t.Fatalf("begin with places free: %v", v)
		}
	}
	if v, _ := l.begin(ip, false); v != failUnreserved {
		t.Fatalf("a lane request with every place taken: %v, want unreserved", v)
	}
	for range limit {
		l.end(ip, true, false) // good credentials
	}
	l.end(ip, false, true) // the lane's guess failed
	l.mu.Lock()
	w, ok := l.byAddr[ip]
	now := l.clock()
	l.mu.Unlock()
	if !ok || w.failures(now) != 1 {
		t.Fatalf("the lane request's failure was not counted (record %v, %+v)", ok, w)
	}
}
