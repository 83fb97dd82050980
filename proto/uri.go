package proto

// URI validation (WAMP §URIs). A URI is a string of components separated by
// ".". Loose URIs allow any characters in a component except whitespace
// (Unicode's, and U+FEFF, which JavaScript's \s has), "." and "#", and here
// control characters; strict URIs allow only [0-9a-z_]. Pattern URIs used
// for wildcard matching may have empty components ("com..update"), and
// prefix patterns may end in "." or be a partial last component.

import (
	"unicode"
	"unicode/utf8"
)

// URIMode selects a validation rule.
type URIMode uint8

// URI validation rules.
const (
	URILoose  URIMode = iota // ([^\s.#]+\.)*[^\s.#]+
	URIStrict                // ([0-9a-z_]+\.)*[0-9a-z_]+
)

// MaxURILen bounds a URI's length. Far above any real URI; it bounds what a
// peer can make the router store in its tables.
const MaxURILen = 4096

// ValidURI reports whether u is a valid URI under mode, with no empty
// components. Used for topics of PUBLISH, procedures of CALL, exact
// registrations and subscriptions, error URIs and realms.
func ValidURI(u []byte, mode URIMode) bool {
	return validURI(u, mode, false)
}

// ValidPattern reports whether u is a valid URI for a pattern-based
// subscription or registration: wildcard patterns may have empty components;
// prefix patterns may be empty-component free, end with ".", or end with a
// partial component (matching is on the string prefix).
func ValidPattern(u []byte, mode URIMode, m Match) bool {
	switch m {
	case MatchWildcard:
		return validURI(u, mode, true)
	case MatchPrefix:
		if len(u) == 0 || len(u) > MaxURILen {
			return false
		}
		if u[len(u)-1] == '.' {
			return validURI(u[:len(u)-1], mode, false)
		}
		return validURI(u, mode, false)
	}
	return validURI(u, mode, false)
}

func validURI(u []byte, mode URIMode, emptyOK bool) bool {
	if len(u) == 0 || len(u) > MaxURILen {
		return false
	}
	compLen := 0
	for i := 0; i < len(u); i++ {
		c := u[i]
		if c == '.' {
			if compLen == 0 && !emptyOK {
				return false
			}
			compLen = 0
			continue
		}
		if c >= utf8.RuneSelf && mode == URILoose {
			// Whitespace beyond ASCII is whitespace too, as the spec's
			// \s means to the reference peers (Python's and
			// JavaScript's regular expressions): "add\u00a0" is not a
			// second "add". JavaScript's \s also has U+FEFF (the byte
			// order mark), which unicode.IsSpace has not. The decoders
			// have checked the UTF-8.
			r, n := utf8.DecodeRune(u[i:])
			if unicode.IsSpace(r) || r == '\ufeff' {
				return false
			}
			i += n - 1
		} else if !uriChar(c, mode) {
			return false
		}
		compLen++
	}
	return compLen > 0 || emptyOK
}

// uriChar reports whether the ASCII byte c may be in a URI's component.
// Loose URIs refuse whitespace, "#" and every control character: a URI
// starting with NUL has no JSON form (JSON reads such a string as
// binary), so an ERROR or meta event naming it could reach no JSON peer.
func uriChar(c byte, mode URIMode) bool {
	if mode == URIStrict {
		return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
	}
	return c > ' ' && c != '#' && c != 0x7f
}

// MatchWildcardURI reports whether uri matches the wildcard pattern p: the
// same number of components, and every non-empty component of p equal to
// the one in uri.
func MatchWildcardURI(p, uri []byte) bool {
	for {
		pi := indexDot(p)
		ui := indexDot(uri)
		pc, uc := p, uri
		if pi >= 0 {
			pc = p[:pi]
		}
		if ui >= 0 {
			uc = uri[:ui]
		}
		if len(pc) > 0 && string(pc) != string(uc) {
			return false
		}
		if (pi < 0) != (ui < 0) {
			return false
		}
		if pi < 0 {
			return true
		}
		p, uri = p[pi+1:], uri[ui+1:]
	}
}

func indexDot(b []byte) int {
	for i, c := range b {
		if c == '.' {
			return i
		}
	}
	return -1
}
