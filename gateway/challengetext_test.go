package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// quotingVerifier refuses every token with a reason that quotes.
type quotingVerifier struct{}

// After the token's first byte, the rest of it ends the reason.
func (quotingVerifier) VerifyBearer(_ context.Context, tok string) (*Principal, error) {
	return nil, errors.New(`the token names more than one realm (aud "wamp:<realm>"), C:\x` + "\x01é" + tok[1:])
}

// The error_description of a Bearer challenge holds only the characters
// RFC 6750 §3 allows (%x20-21 / %x23-5B / %x5D-7E: no double quote or
// backslash, though a quoted-string could carry them escaped). A
// verifier's reason was put in with strconv.Quote: `\"` pairs for the
// JWKS verifier's refusal of a token naming two realms, `\x01` and `\u00e9`
// escapes for other characters, all outside the set.
func TestBearerChallengeDescriptionCharacters(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Bearer = quotingVerifier{} })
	const reason = `the token names more than one realm (aud 'wamp:<realm>'), C:/x??`
	for _, c := range []struct{ tok, want string }{
		{"x", reason},
		// Past 256 bytes the text is cut (253 bytes and "...").
		{"x" + strings.Repeat("g", 300), reason + strings.Repeat("g", 253-len(reason)-1) + "..."},
	} {
		challengeDescription(t, e, c.tok, c.want)
	}
}

func challengeDescription(t *testing.T, e *env, tok, want string) {
	t.Helper()
	r, _ := e.do("POST", "/wamp/realm1/publish/com.t", `{}`, "Authorization", "Bearer "+tok)
	if r.StatusCode != 401 {
		t.Fatalf("refused token: %d", r.StatusCode)
	}
	ch := r.Header.Get("WWW-Authenticate")
	_, desc, ok := strings.Cut(ch, `error_description="`)
	if !ok {
		t.Fatalf("WWW-Authenticate %q has no error_description", ch)
	}
	desc, _, ok = strings.Cut(desc, `"`)
	if !ok {
		t.Fatalf("WWW-Authenticate %q: error_description not closed", ch)
	}
	for i := 0; i < len(desc); i++ {
		if c := desc[i]; c < 0x20 || c > 0x7e || c == '\\' {
			t.Fatalf("WWW-Authenticate %q: error_description has %q, outside RFC 6750 §3's set", ch, c)
		}
	}
	if !strings.Contains(desc, "more than one realm") {
		t.Fatalf("WWW-Authenticate %q: the reason is lost", ch)
	}
	// The exact text (internal/errdesc writes it, as for the OAuth2 endpoints).
	if desc != want {
		t.Fatalf("error_description %q, want %q", desc, want)
	}
}
