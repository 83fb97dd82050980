package edge

import (
	"encoding/base32"
	"strconv"
	"strings"

	"github.com/edgewamp/edgewamp/proto"
)

// NATS subjects of the mesh. Every subject starts with "ew." and a
// second token that says what it carries, so the spaces never overlap:
//
//	ew.e<v>.<realm>.<uri tokens...> events (one token per URI component;
//	                               <v> is the mesh version, meshVersion)
//	ew.n.<node>.m                  route envelopes for one node (calls, results, chunks, interrupts)
//	ew.n.<node>.s / .S             directory sync request / reply
//	ew.n.<node>.a.<id>             answers to one of the node's gathers
//	ew.n.<node>.p.<id> / .g        parts of a paced answer to its gathers / their acknowledgements (paced.go)
//	ew.b.h / .d / .q / .y          broadcast: heartbeat, directory change, gather query, goodbye
//
// A WAMP URI component that is a plain NATS token ([A-Za-z0-9_-]+) is used
// as is; anything else (NATS wildcards '*' and '>', a leading '$',
// non-ASCII, '~') becomes '~' followed by the base32hex (lower case, no
// padding) of its bytes, which is reversible and cannot be mistaken for a
// plain token. The realm is one token by the same rule.
//
// The events' subjects carry the mesh version (ew.e2. for version 2; the
// releases before the version handshake used ew.e.), so that NATS never
// delivers events between nodes of releases whose envelopes differ: a
// node subscribes, and publishes, in its own version's space only.
//
// WAMP matching maps onto NATS interest like this: an exact topic is its
// tokens; a wildcard pattern's empty components are '*' (the same
// semantics); a prefix is a string prefix, not a token prefix
// ("com.a.b" matches "com.a.bc"), so a prefix subscription takes the
// parent of its last, possibly partial, component with '>', and the
// receiving node filters with its own tables; so does a subscription of
// more than maxInterestDepth components, which takes its first
// maxInterestDepth-1 with '>'. Overlapping subscriptions
// deliver one copy between them: they are queue subscriptions in one
// group of the node's own (eventQueue); the node still drops any
// duplicate by publication id.

const subjRoot = "ew."

// eventRoot is the prefix of the event subjects of mesh version v; 0 is
// a release before the version handshake.
func eventRoot(v uint64) string {
	if v == 0 {
		return subjRoot + "e."
	}
	return subjRoot + "e" + strconv.FormatUint(v, 10) + "."
}

var b32 = base32.HexEncoding.WithPadding(base32.NoPadding)

func plainToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// appendToken appends one subject token for s.
func appendToken(b []byte, s string) []byte {
	if plainToken(s) {
		return append(b, s...)
	}
	b = append(b, '~')
	n := len(b)
	b = append(b, make([]byte, b32.EncodedLen(len(s)))...)
	b32.Encode(b[n:], []byte(s))
	for i := n; i < len(b); i++ {
		if c := b[i]; c >= 'A' && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return b
}

// eventSubject is the subject a publication to topic in realm goes to;
// root is the node's eventRoot.
func eventSubject(dst []byte, root, realm string, topic []byte) []byte {
	dst = append(dst, root...)
	dst = appendToken(dst, realm)
	rest := string(topic)
	for {
		dst = append(dst, '.')
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			return appendToken(dst, rest)
		}
		dst = appendToken(dst, rest[:i])
		rest = rest[i+1:]
	}
}

// maxInterestDepth bounds the tokens of an interest subject after its
// realm. A NATS server keeps a subscribed subject in a tree with a level
// and a node for each token (about 400 bytes each, allocated and freed
// at each SUB and UNSUB), in every server of the mesh: a 4 KiB topic of
// 2,043 one-letter components held ~790 KiB in each, and a client that
// subscribed and unsubscribed it in a loop cost each server ~2 ms of CPU
// per round (the router's own work a few µs). A deeper subscription takes
// the subject of its first maxInterestDepth-1 components and '>': NATS
// brings the node the events of every topic under them, and the node
// matches them against its own tables, as it does a prefix's (the
// publishers' subjects are unchanged).
const maxInterestDepth = 16

// interestSubject is the subject a node subscribes to for a subscription
// (realm, match, uri); root is the node's eventRoot.
func interestSubject(root, realm string, match proto.Match, uri string) string {
	b := []byte(root)
	b = appendToken(b, realm)
	comps := strings.Split(uri, ".")
	if match == proto.MatchPrefix {
		comps = comps[:len(comps)-1] // the parent of the last (possibly partial) component, then '>'
	}
	if match == proto.MatchPrefix || len(comps) > maxInterestDepth {
		if len(comps) > maxInterestDepth-1 {
			comps = comps[:maxInterestDepth-1]
		}
		for _, c := range comps {
			b = append(b, '.')
			if c == "" && match == proto.MatchWildcard {
				b = append(b, '*')
			} else {
				b = appendToken(b, c)
			}
		}
		return string(append(b, ".>"...))
	}
	switch match {
	case proto.MatchWildcard:
		for _, c := range comps {
			b = append(b, '.')
			if c == "" {
				b = append(b, '*')
			} else {
				b = appendToken(b, c)
			}
		}
		return string(b)
	}
	for _, c := range comps {
		b = append(b, '.')
		b = appendToken(b, c)
	}
	return string(b)
}

// eventQueue is the queue group of a node's event subscriptions: one per
// node and life of it (boot, random per process start), so that it has no
// member but that node's subscriptions. NATS merges the groups of one
// name that a subject matches into one (nats-server's sublist: a match
// gathers the queue subscriptions of every matching subject by queue
// name) and hands a message to one member of each group, on its server
// or across a route or leaf link (the origin server picks one member,
// the receiving server delivers to one local member of the groups the
// message names). So a node gets each event once, however many of its
// subjects match it; with plain subscriptions it got one copy per
// matching subject, which one session's overlapping prefixes (one at
// every level of a deep topic) made a thousand, for the duplicate filter
// to drop after they had filled the node's queues.
//
// The name is short, with no node name in it: a message routed to a
// server names every group it is for on its protocol line (bounded by
// 16 times max_control_line), one per node reached through that server.
func eventQueue(boot uint64) string {
	return subjRoot + "q." + strconv.FormatUint(boot, 36)
}

// wideSubject is the subject of all the events of a realm.
func wideSubject(root, realm string) string {
	return string(appendToken([]byte(root), realm)) + ".>"
}

func nodeSubject(node, op string) string { return subjRoot + "n." + node + "." + op }

// nodeInbox is the prefix of a node's subjects; it is also the Reply
// field of everything the node sends, which is how a receiver knows the
// sender.
func nodeInbox(node string) string { return subjRoot + "n." + node }

// senderOf returns the node name in a Reply field "ew.n.<node>".
func senderOf(reply string) string {
	const p = subjRoot + "n."
	if !strings.HasPrefix(reply, p) {
		return ""
	}
	name := reply[len(p):]
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[:i]
	}
	return name
}

const (
	subjHeartbeat = subjRoot + "b.h"
	subjDelta     = subjRoot + "b.d"
	subjQuery     = subjRoot + "b.q"
	subjBye       = subjRoot + "b.y"
	subjBroadcast = subjRoot + "b.>"
)
