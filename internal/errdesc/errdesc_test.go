package errdesc

import (
	"strings"
	"testing"
)

// TestText: the exact text of each case (oauth's error answers and
// gateway's Bearer challenges show the same); a clean text comes back as
// it is, without allocating.
func TestText(t *testing.T) {
	long := strings.Repeat("g", 300)
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"the client is not allowed this grant", "the client is not allowed this grant"},
		{`scope "x\"y" is not allowed`, `scope 'x/'y' is not allowed`},
		{"C:\\x\x01\x7f", "C:/x??"},
		{"é€😀 ok", "??? ok"},   // one "?" per character, not per byte
		{"\xff\x80\xc3", "??"}, // a lone continuation byte adds none
		{strings.Repeat("a", Max), strings.Repeat("a", Max)},
		{long, long[:Max-3] + "..."},
		{`"` + long, "'" + long[:Max-4] + "..."},
		{strings.Repeat("a", Max-4) + "é" + long, strings.Repeat("a", Max-4) + "?..."}, // cut inside é
		{strings.Repeat("é", 200), strings.Repeat("?", (Max-3+1)/2) + "..."},
	} {
		if got := Text(c.in); got != c.want {
			t.Errorf("Text(%.40q) = %q, want %q", c.in, got, c.want)
		}
		if got := Text(c.in); len(got) > Max {
			t.Errorf("Text(%.40q): %d bytes", c.in, len(got))
		}
	}
	s := "the authorization code is not valid"
	if n := testing.AllocsPerRun(100, func() { _ = Text(s) }); n != 0 {
		t.Errorf("a clean text: %v allocations", n)
	}
}
