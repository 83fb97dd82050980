package main

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// TestPasswdStdinBounded: passwd read the first line of stdin without a
// bound (`edgewamp passwd < /dev/zero` grew it until memory ran out; a
// binary file given by mistake was hashed whole as a password). A line
// past 4 KiB is refused; one of 4 KiB is hashed.
func TestPasswdStdinBounded(t *testing.T) {
	for _, n := range []int{1 << 20, 4096} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			w.Write(bytes.Repeat([]byte{'a'}, n)) // no newline
			w.Close()
		}()
		var e strings.Builder
		code := cmdPasswd([]string{"-iterations", "1000"}, r, io.Discard, &e)
		r.Close()
		if n > 4096 && (code != 1 || !strings.Contains(e.String(), "longer than 4096 bytes")) || n <= 4096 && code != 0 {
			t.Fatalf("passwd with a line of %d bytes on stdin: exit %d %s", n, code, e.String())
		}
	}
}
