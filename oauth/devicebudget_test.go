package oauth

import (
	"net/url"
	"testing"
	"time"
)

// TestDeviceBudgetSlides: the node's budget of device authorizations
// counts over a sliding minute, as the per-address limits do: one, then
// the rest of the budget 59 s later and as many again at 61 s (twice the
// budget within two seconds, from fresh addresses) have at most two of
// the second batch granted. Before, the budget's minute was fixed, from
// its first authorization: the whole second batch was granted, twice the
// budget the node means to keep outstanding. Authorizations at the rate
// the budget allows (one every 7 s against 10 a minute) are never
// refused.
func TestDeviceBudgetSlides(t *testing.T) {
	const budget = 10
	e := startEnv(t, nil)
	e.srv.deviceAuths.max = budget
	authorize := func() int {
		t.Helper()
		e.fresh() // a new address each: the per-address limit stays out of it
		st, body := e.post("/oauth/device_authorization", url.Values{"client_id": {"device"}}, "", "")
		if st != 200 && (st != 429 || body["error"] != "slow_down") {
			t.Fatalf("a device authorization: %d %v", st, body)
		}
		return st
	}
	if st := authorize(); st != 200 {
		t.Fatalf("the first: %d", st)
	}
	e.clock.Advance(59 * time.Second)
	for i := range budget - 1 {
		if st := authorize(); st != 200 {
			t.Fatalf("authorization %d of the first minute: %d", i+2, st)
		}
	}
	e.clock.Advance(2 * time.Second)
	granted := 0
	for range budget {
		if authorize() == 200 {
			granted++
		}
	}
	if granted > 2 {
		t.Fatalf("the budget (%d) within a minute, then as many at the next one's start: %d of the second batch granted, want at most 2", budget, granted)
	}

	// Two minutes on, one every 7 s (8.6 a minute) for almost five minutes:
	// never refused.
	e.clock.Advance(2 * time.Minute)
	for i := range 40 {
		if st := authorize(); st != 200 {
			t.Fatalf("authorization %d at one every 7 s: %d", i+1, st)
		}
		e.clock.Advance(7 * time.Second)
	}
}
