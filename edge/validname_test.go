package edge

import (
	"regexp"
	"strings"
	"testing"
)

// validName takes exactly the names the pattern it replaced took.
func TestValidNameMatchesPattern(t *testing.T) {
	pattern := regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	names := []string{"", "n1", "edge-box_0042-site-north", "a.b", "a*", "a>", "a b", "é", "n1\n", "\nn1", "n1\x00",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65), strings.Repeat("Z9_-", 16), strings.Repeat("Z9_-", 16) + "x"}
	for c := 0; c < 256; c++ {
		names = append(names, string([]byte{byte(c)}), "a"+string([]byte{byte(c)}), string([]byte{byte(c)})+"z")
	}
	for _, name := range names {
		if got, want := validName(name), pattern.MatchString(name); got != want {
			t.Errorf("validName(%q) = %v, the pattern says %v", name, got, want)
		}
	}
}
