package proto

import (
	"strings"
	"testing"
)

func TestValidURI(t *testing.T) {
	max := strings.Repeat("a.", MaxURILen/2-1) + "ab" // exactly MaxURILen bytes
	tests := []struct {
		uri           string
		loose, strict bool
	}{
		{"", false, false},
		{"a", true, true},
		{"com.myapp.topic1", true, true},
		{"com.myapp.my_topic_2", true, true},
		{"wamp.error.no_such_procedure", true, true},
		{"0.1.2", true, true},
		{"com.MyApp.Topic", true, false},
		{"com.my-app.topic", true, false},
		{"com.myapp.topic$", true, false},
		{"com.myapp/topic", true, false},
		{"com.myäpp.topic", true, false},
		{"com.\U0001F600", true, false},
		{"水.火", true, false},
		{".", false, false},
		{"..", false, false},
		{".com.myapp", false, false},
		{"com.myapp.", false, false},
		{"com..myapp", false, false},
		{"com.my app", false, false},
		{" com.myapp", false, false},
		{"com.myapp\t", false, false},
		{"com.my\napp", false, false},
		{"com.my\rapp", false, false},
		{"com.my\fapp", false, false},
		{"com.my\vapp", false, false},
		{"com.my#app", false, false},
		{"#", false, false},
		{"com.#", false, false},
		// Whitespace beyond ASCII, as the reference peers' \s has it,
		// and control characters (a NUL-led URI has no JSON form).
		{"com.example.add\u00a0", false, false},
		{"com.example\u3000add", false, false},
		{"com.example.\u2028add", false, false},
		{"com.example.add\u0085", false, false},
		{"com.example.add\u200a", false, false},
		{"com.example.add\ufeff", false, false}, // JavaScript's \s has it
		{"\ufeffcom.example.add", false, false},
		{"com.example.add\x1f", false, false},
		{"\x00com.example.error", false, false},
		{"com.ex\x7fample", false, false},
		{"com.\u200bzero_width", true, false}, // not whitespace to Unicode
		{max, true, true},
		{max + "c", false, false},
	}
	for _, tc := range tests {
		if got := ValidURI([]byte(tc.uri), URILoose); got != tc.loose {
			t.Errorf("ValidURI(%q, loose) = %v, want %v", tc.uri, got, tc.loose)
		}
		if got := ValidURI([]byte(tc.uri), URIStrict); got != tc.strict {
			t.Errorf("ValidURI(%q, strict) = %v, want %v", tc.uri, got, tc.strict)
		}
		// An exact pattern follows the URI rules.
		if got := ValidPattern([]byte(tc.uri), URILoose, MatchExact); got != tc.loose {
			t.Errorf("ValidPattern(%q, loose, exact) = %v, want %v", tc.uri, got, tc.loose)
		}
	}
}

func TestValidPattern(t *testing.T) {
	long := strings.Repeat("a", MaxURILen)
	tests := []struct {
		uri           string
		m             Match
		loose, strict bool
	}{
		// Wildcard: empty components match any one component.
		{"com..update", MatchWildcard, true, true},
		{"..update", MatchWildcard, true, true},
		{"com.myapp.", MatchWildcard, true, true},
		{".", MatchWildcard, true, true},
		{"..", MatchWildcard, true, true},
		{"com.myapp.update", MatchWildcard, true, true},
		{"com..Update", MatchWildcard, true, false},
		{"", MatchWildcard, false, false},
		{"com.. update", MatchWildcard, false, false},
		{"com..#", MatchWildcard, false, false},
		{long, MatchWildcard, true, true},
		{long + "a", MatchWildcard, false, false},
		// Prefix: a trailing "." or a partial last component, no empty
		// components elsewhere.
		{"com.myapp.", MatchPrefix, true, true},
		{"com.myapp", MatchPrefix, true, true},
		{"com.my", MatchPrefix, true, true},
		{"c", MatchPrefix, true, true},
		{"com.MyApp.", MatchPrefix, true, false},
		{"", MatchPrefix, false, false},
		{".", MatchPrefix, false, false},
		{"com..", MatchPrefix, false, false},
		{"com..myapp", MatchPrefix, false, false},
		{".com", MatchPrefix, false, false},
		{"com.my app.", MatchPrefix, false, false},
		{"com.#.", MatchPrefix, false, false},
		{long, MatchPrefix, true, true},
		{long + ".", MatchPrefix, false, false},
		// Exact: the URI rules.
		{"com..update", MatchExact, false, false},
		{"com.myapp.", MatchExact, false, false},
	}
	for _, tc := range tests {
		if got := ValidPattern([]byte(tc.uri), URILoose, tc.m); got != tc.loose {
			t.Errorf("ValidPattern(%q, loose, %s) = %v, want %v", tc.uri, tc.m, got, tc.loose)
		}
		if got := ValidPattern([]byte(tc.uri), URIStrict, tc.m); got != tc.strict {
			t.Errorf("ValidPattern(%q, strict, %s) = %v, want %v", tc.uri, tc.m, got, tc.strict)
		}
	}
}

func TestMatchWildcardURI(t *testing.T) {
	tests := []struct {
		pattern, uri string
		want         bool
	}{
		{"com..update", "com.myapp.update", true},
		{"com..update", "com.x.update", true},
		{"com..update", "com.myapp.create", false},
		{"com..update", "com.update", false},
		{"com..update", "com.a.b.update", false},
		{"com..update", "org.myapp.update", false},
		{"com..update", "com.myapp.update.x", false},
		{"..", "a.b.c", true},
		{"..", "a.b", false},
		{"..", "a.b.c.d", false},
		{".b.", "a.b.c", true},
		{".b.", "a.bb.c", false},
		{"a.b", "a.b", true},
		{"a.b", "a.bc", false},
		{"a.bc", "a.b", false},
		{"a.b", "ab", false},
		{"com.myapp.", "com.myapp.topic", true},
		{"com.myapp.", "com.myapp", false},
		{".myapp", "com.myapp", true},
		{".myapp", "myapp", false},
		{"com.ü.", "com.ü.x", true},
		{"com.ü.", "com.u.x", false},
		{"", "x", true},
		{"", "x.y", false},
	}
	for _, tc := range tests {
		if got := MatchWildcardURI([]byte(tc.pattern), []byte(tc.uri)); got != tc.want {
			t.Errorf("MatchWildcardURI(%q, %q) = %v, want %v", tc.pattern, tc.uri, got, tc.want)
		}
	}
}

// TestPredefinedURIs checks that every URI constant is a strict URI.
func TestPredefinedURIs(t *testing.T) {
	for _, u := range []string{
		URIInvalidURI, URINoSuchProcedure, URIProcedureAlreadyExists, URIProcedureExistsInvocationPolicyConflict, URINoSuchRegistration,
		URINoSuchSubscription, URIInvalidArgument, URICanceled, URIPayloadSizeExceeded,
		URIProtocolViolation, URINotAuthorized, URIAuthorizationFailed, URINoSuchRealm, URINoSuchRole,
		URINoSuchSession, URINoMatchingAuthMethod, URINoSuchPrincipal, URIAuthenticationDenied,
		URIAuthenticationFailed, URIAuthenticationRequired, URIAuthorizationDenied,
		URIAuthorizationRequired, URITimeout, URIOptionNotAllowed, URIOptionDisallowedDiscloseMe,
		URINetworkFailure, URIUnavailable, URINoAvailableCallee, URIFeatureNotSupported,
		URISystemShutdown, CloseSystemShutdown, CloseCloseRealm, CloseGoodbyeAndOut, CloseNormal,
		CloseKilled,
	} {
		if !ValidURI([]byte(u), URIStrict) {
			t.Errorf("%q is not a strict URI", u)
		}
	}
}
