package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// postinst's reader of the unit's EnvironmentFile= (env_file) appended
// each character of a value to the value, a copy of the whole value each
// time in mawk (Debian's awk), and gathered the file into one string line
// by line, another copy of all of it per line: a 2 MB value (a bundled
// certificate, a JWKS) took 355 s, and postinst with it; a file of many
// short lines, as long. Now the file is read a line at a time and a value
// kept as runs of its line: linear.
//
// env_file, taken from postinst as it is, run on 2 MiB values unquoted
// and single-quoted, on 64 and 128 KiB ones full of escapes, and on a file of
// 20,000 assignments: each must finish within a
// deadline a hundred times what it needs (about 0.1 s here), and give the
// values back exactly.
func TestPostinstEnvFileLinear(t *testing.T) {
	script, err := os.ReadFile(filepath.Join(repo, "deploy", "debian", "postinst"))
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(script, []byte("\nenv_file() {\n"))
	end := bytes.Index(script[start+1:], []byte("\n}\n"))
	if start < 0 || end < 0 {
		t.Fatal("postinst has no env_file function")
	}
	fn := string(script[start+1 : start+1+end+3])

	big := strings.Repeat("0123456789abcdef", 2<<20/16)   // 2 MiB
	withQuote := strings.Repeat("a'b\"c$d\\e", 128<<10/9) // a byte in 9 escaped: slower per byte in awk
	var many strings.Builder
	var manyWant strings.Builder
	for i := 0; i < 20000; i++ {
		many.WriteString("K=value\n")
		manyWant.WriteString("export K='value'\n")
	}
	cases := []struct {
		name, file, want string
	}{
		{"unquoted", "K=" + big + "  \n", "export K='" + big + "'\n"},
		{"single", "K='" + big + "'\n", "export K='" + big + "'\n"},
		{"double with escapes", "K=\"" + strings.ReplaceAll(strings.ReplaceAll(withQuote, `\`, `\\`), `"`, `\"`) + "\"\n",
			"export K='" + strings.ReplaceAll(withQuote, "'", `'\''`) + "'\n"},
		{"escapes unquoted", "K=" + strings.Repeat(`\x`, 64<<10) + "\n", "export K='" + strings.Repeat("x", 64<<10) + "'\n"},
		{"many lines", many.String(), manyWant.String()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := filepath.Join(t.TempDir(), "edgewamp.env")
			if err := os.WriteFile(env, []byte(c.file), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "sh", "-c", fn+"\nenv_file \"$1\"", "sh", env)
			cmd.WaitDelay = time.Second
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("env_file did not read a %d-byte file within 20 s", len(c.file))
			}
			if err != nil {
				t.Fatalf("env_file: %v\n%s", err, stderr.String())
			}
			if got := out.String(); got != c.want {
				n := 0
				for n < len(got) && n < len(c.want) && got[n] == c.want[n] {
					n++
				}
				t.Fatalf("env_file's output (%d bytes) differs from what systemd reads (%d bytes) at byte %d: %.40q", len(got), len(c.want), n, got[n:])
			}
		})
	}
}
