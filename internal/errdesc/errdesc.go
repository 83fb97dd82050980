// Package errdesc writes an error_description: the reason an OAuth2
// endpoint (RFC 6749 §5.2, and §4.1.2.1 for the authorization endpoint's
// redirect) or a Bearer challenge (RFC 6750 §3) gives for a refusal. Both
// allow only %x20-21 / %x23-5B / %x5D-7E: no double quote or backslash
// (even escaped), control or non-ASCII character. oauth's error answers
// and gateway's WWW-Authenticate share it, so the two say a reason alike.
//
// Its functions are safe for concurrent use and do not block.
package errdesc

import (
	"strings"
	"unicode/utf8"
)

// Max bounds an error_description in bytes: some echo what a request
// sent (a refused grant_type, a repeated parameter's name).
const Max = 256

// Text makes s an error_description value. A double quote becomes a
// single one, a backslash a slash, any other character outside the set
// one "?" (per character, not per byte); past Max bytes s is cut to
// Max-3 bytes and "..." ends it. It allocates only when s changes (every
// fixed description is returned as it is).
func Text(s string) string {
	clean := len(s) <= Max
	for i := 0; clean && i < len(s); i++ {
		clean = s[i] >= 0x20 && s[i] <= 0x7e && s[i] != '"' && s[i] != '\\'
	}
	if clean {
		return s
	}
	cut := len(s) > Max
	if cut {
		s = s[:Max-3]
	}
	var b strings.Builder
	b.Grow(len(s) + 3)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			b.WriteByte('\'')
		case c == '\\':
			b.WriteByte('/')
		case c < 0x20 || c > 0x7e:
			if c < 0x80 || utf8.RuneStart(c) {
				b.WriteByte('?') // one per character, not per byte
			}
		default:
			b.WriteByte(c)
		}
	}
	if cut {
		b.WriteString("...")
	}
	return b.String()
}
