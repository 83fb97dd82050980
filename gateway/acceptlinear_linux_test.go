package gateway

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestCutUnquotedReadsNoFurtherThanItsCut: acceptWeights (acceptsSSE,
// on every call, on the event loops' lane too) and wantsOpenMetrics cut
// Accept part by part with cutUnquoted. It looked for a '"' in all of
// what was left of the header before each cut (c60dc38), so that a
// header of many short parts was read once per part: quadratic, about
// 100 ms of CPU for one 64 KiB `Accept: a,a,a,…` (0.8 ms before c60dc38),
// and 8–17 ms for one at max_header's default 16 KiB, on the loop's
// goroutine for a lane request. Each cut now reads the header only up to
// the separator it cuts at (and, when a quote comes before it, the
// quoted-strings up to the separator outside them). The test puts the
// bytes from 256 past the cut on a page that cannot be read: reading
// them is a fault (a panic here, SetPanicOnFault), not a timing.
func TestCutUnquotedReadsNoFurtherThanItsCut(t *testing.T) {
	ps := os.Getpagesize()
	const slack = 256
	mem, err := unix.Mmap(-1, 0, 2*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Skip("mmap:", err)
	}
	defer unix.Munmap(mem)
	for _, c := range []struct {
		head        string // at the end of the readable page
		sep         byte
		before      string
		quoteBefore bool
	}{
		{"text/html,", ',', "text/html", false},
		{"a,", ',', "a", false},
		{`application/json; profile="urn:x,y;z",`, ',', `application/json; profile="urn:x,y;z"`, true},
		{`v="a\",b";`, ';', `v="a\",b"`, true},
		{"text/plain;", ';', "text/plain", false},
	} {
		// The string is c.head and slack, the last bytes of the first
		// page, then the whole second page (a,a,…,"), made unreadable.
		// The slack, bytes that are neither a separator nor a quote, is
		// for IndexByte, which reads a block (16 to 64 bytes) at a time.
		first := mem[ps-len(c.head)-slack : ps]
		copy(first, c.head)
		for i := len(c.head); i < len(first); i++ {
			first[i] = 'x'
		}
		rest := mem[ps:]
		for i := range rest {
			rest[i] = "a,"[i%2]
		}
		rest[len(rest)-1] = '"'
		if err := unix.Mprotect(mem[ps:], unix.PROT_NONE); err != nil {
			t.Skip("mprotect:", err)
		}
		s := unsafe.String(&first[0], len(first)+ps)
		got, fault := cutGuarded(s, c.sep)
		if err := unix.Mprotect(mem[ps:], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			t.Fatal(err)
		}
		if fault != nil {
			t.Errorf("cutUnquoted(%q + %d bytes + a page of \"a,a,…\\\"\", %q) read the page past its cut: %v", c.head, slack, c.sep, fault)
		} else if got != c.before {
			t.Errorf("cutUnquoted(%q…, %q) = %q, want %q", c.head, c.sep, got, c.before)
		}
	}
	// A whole header of short parts is cut as it was: every part, and
	// what strings.Cut gives where nothing is quoted.
	h := strings.Repeat("a;q=0.5,", 100) + "text/event-stream"
	n := 0
	for v := h; v != ""; n++ {
		part, rest, _ := cutUnquoted(v, ',')
		want, wrest, _ := strings.Cut(v, ",")
		if part != want || rest != wrest {
			t.Fatalf("cut %d: %q %q, want %q %q", n, part, rest, want, wrest)
		}
		v = rest
	}
	if n != 101 {
		t.Fatalf("%d parts, want 101", n)
	}
}

// cutGuarded runs cutUnquoted(s, sep), a fault reading s coming back as
// an error.
func cutGuarded(s string, sep byte) (before string, fault error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			fault = fmt.Errorf("%v", p)
		}
	}()
	before, _, _ = cutUnquoted(s, sep)
	return before, nil
}
