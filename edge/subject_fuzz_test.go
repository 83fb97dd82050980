package edge

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/edgewamp/edgewamp/proto"
)

// FuzzSubjects checks the WAMP-to-NATS subject mapping against the NATS
// server's own subject rules (server.IsValidSubject, SubjectMatchesFilter):
// every event subject is a valid literal subject and every interest a
// valid filter; an interest's filter matches the event subject of every
// topic its WAMP subscription matches (a miss would be an event lost
// across nodes: the receiving node only filters what NATS delivers); and
// two different topics, or realms, never share a subject.
func FuzzSubjects(f *testing.F) {
	f.Add("realm1", "com.app.topic", "com.app.", byte(1), "com.app.Topic")
	f.Add("a.b", "com.*.>", "com..>", byte(2), "com.~.>")
	f.Add("r", "x.é.$sys", "x.é", byte(1), "x.\u00e9.$SYS")
	f.Add("~r", "a-b.c_d", "a-b.c_d", byte(0), "a-b.c_D")
	f.Fuzz(func(t *testing.T, realm, topic, pattern string, m byte, other string) {
		root := eventRoot(2)
		match := []proto.Match{proto.MatchExact, proto.MatchPrefix, proto.MatchWildcard}[int(m)%3]
		if realm == "" || !proto.ValidURI([]byte(topic), proto.URILoose) {
			return
		}
		subj := string(eventSubject(nil, root, realm, []byte(topic)))
		if !server.IsValidLiteralSubject(subj) || !strings.HasPrefix(subj, root) {
			t.Fatalf("event subject %q of topic %q (realm %q) is not a valid literal subject under %q", subj, topic, realm, root)
		}
		if proto.ValidURI([]byte(other), proto.URILoose) && other != topic {
			if o := string(eventSubject(nil, root, realm, []byte(other))); o == subj {
				t.Fatalf("topics %q and %q share the subject %q", topic, other, subj)
			}
		}
		if other != "" && other != realm {
			if o := string(eventSubject(nil, root, other, []byte(topic))); o == subj {
				t.Fatalf("realms %q and %q share the subject %q", realm, other, subj)
			}
		}
		if !server.SubjectMatchesFilter(subj, wideSubject(root, realm)) {
			t.Fatalf("event subject %q outside its realm's %q", subj, wideSubject(root, realm))
		}
		if !proto.ValidPattern([]byte(pattern), proto.URILoose, match) {
			return
		}
		filter := interestSubject(root, realm, match, pattern)
		if !server.IsValidSubject(filter) {
			t.Fatalf("interest %q of %v %q is not a valid subject", filter, match, pattern)
		}
		var wamp bool
		switch match {
		case proto.MatchExact:
			wamp = topic == pattern
		case proto.MatchPrefix:
			wamp = strings.HasPrefix(topic, pattern)
		case proto.MatchWildcard:
			wamp = proto.MatchWildcardURI([]byte(pattern), []byte(topic))
		}
		if wamp && !server.SubjectMatchesFilter(subj, filter) {
			t.Fatalf("%v subscription %q matches topic %q, but NATS filter %q does not match %q", match, pattern, topic, filter, subj)
		}
		// A topic the pattern matches by construction, which random
		// topics seldom are: the prefix followed by other, or the
		// wildcard's empty components filled with other.
		derived := pattern
		switch match {
		case proto.MatchPrefix:
			derived = pattern + other
		case proto.MatchWildcard:
			fill := other
			if fill == "" {
				fill = "x"
			}
			derived = strings.ReplaceAll("."+pattern+".", "..", "."+fill+".")
			derived = strings.ReplaceAll(derived, "..", "."+fill+".")
			derived = derived[1 : len(derived)-1]
		}
		if proto.ValidURI([]byte(derived), proto.URILoose) && (match != proto.MatchWildcard || proto.MatchWildcardURI([]byte(pattern), []byte(derived))) {
			if ds := string(eventSubject(nil, root, realm, []byte(derived))); !server.SubjectMatchesFilter(ds, filter) {
				t.Fatalf("%v subscription %q matches topic %q, but NATS filter %q does not match %q", match, pattern, derived, filter, ds)
			}
		}
		if match == proto.MatchExact && !wamp && server.SubjectMatchesFilter(subj, filter) {
			t.Fatalf("exact %q: filter %q matches the subject %q of another topic %q", pattern, filter, subj, topic)
		}
	})
}
