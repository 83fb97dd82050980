package oauth

import (
	"net/netip"
	"testing"
)

// A client whose address carries an IPv6 zone (a link-local peer:
// net/http's RemoteAddr is then [fe80::1%eth0]:port) is exempt when its
// network is in AuthLimits.Exempt, as the WAMP limiter has it (it drops
// the zone). Before, netip.Prefix.Contains is false for any address with
// a zone: such a client, exempt on WAMP, was counted and blocked by the
// token endpoint.
func TestLimiterExemptZonedAddress(t *testing.T) {
	l := newLimiter(AuthLimits{Exempt: []netip.Prefix{netip.MustParsePrefix("fe80::/10")}})
	for _, ra := range []string{"[fe80::1%eth0]:4711", "fe80::1%eth0", "[fe80::1]:4711"} {
		if src := l.sourceOf(ra); src.key != (srcKey{}) {
			t.Errorf("%s: not exempt in fe80::/10 (key %v)", ra, src.key)
		}
	}
	if src := l.sourceOf("[2001:db8::1%eth0]:4711"); src.key == (srcKey{}) {
		t.Error("2001:db8::1 (zoned) exempt in fe80::/10")
	}
}
