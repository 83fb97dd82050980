//go:build !nomesh

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckConfigStoreDirNotADirectory: a mesh.store_dir that is a regular
// file (or under one) was taken by check-config, and run on a hub then
// refused it ("edge: JetStream store: mkdir ...: not a directory"), as
// data_dir's is refused by both (README: data_dir "anything else is
// refused"; store_dir "refused as data_dir is").
func TestCheckConfigStoreDirNotADirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct{ name, storeDir, want string }{
		{"a file", file, `line 4: mesh.store_dir "` + file + `" is not a directory`},
		{"under a file", filepath.Join(file, "sub"), `line 4: mesh.store_dir "` + filepath.Join(file, "sub") + `" cannot be made: ` + file + " is not a directory"},
	} {
		t.Run(k.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(k.name, " ", "_")+".yaml")
			body := "mesh:\n  leaf:\n    listen: 127.0.0.1:0\n  store_dir: \"" + k.storeDir + "\"\n"
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			out, errOut, code := runCLI("check-config", p)
			if code != 1 || !strings.Contains(out+errOut, k.want) {
				t.Fatalf("exit %d, output %q; want exit 1 and %q", code, out+errOut, k.want)
			}
		})
	}
}
