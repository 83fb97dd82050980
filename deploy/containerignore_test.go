package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The image build (deploy/Containerfile, context the repository root) had
// no .dockerignore: docker and podman sent the whole repository as the
// build context, dist/ (every version's tarballs and packages, ~140 MB
// after a few releases) and bench/out included, for an image that copies
// two files. Now .dockerignore keeps only what the Containerfile copies.
//
// The file's patterns applied as docker's build context does
// (moby/patternmatcher: path.Match on each path and its parent
// directories, "!" re-includes, the last matching line wins): every COPY
// source of the Containerfile, for each architecture, is sent; dist/'s
// other artifacts, bench/out, .git and the sources are not.
func TestDockerignoreKeepsOnlyTheImageFiles(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repo, ".dockerignore"))
	if err != nil {
		t.Fatalf("no .dockerignore: the image build sends the whole repository (%v)", err)
	}
	var pats []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			pats = append(pats, l)
		}
	}
	cf, err := os.ReadFile(filepath.Join(repo, "deploy", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	for _, m := range regexp.MustCompile(`(?m)^COPY\s+(\S+)\s`).FindAllStringSubmatch(string(cf), -1) {
		for _, arch := range []string{"amd64", "arm64", "armv7"} {
			sent = append(sent, strings.NewReplacer("${VERSION}", "1.2.3", "${ARCH}", arch).Replace(m[1]))
		}
	}
	if len(sent) < 6 {
		t.Fatalf("the Containerfile's COPY sources: %v", sent)
	}
	for _, p := range sent {
		if ignored(t, pats, p) {
			t.Errorf("%s, which the Containerfile copies, is left out of the build context", p)
		}
	}
	for _, p := range []string{
		"dist/edgewamp-1.2.3-linux-arm64.tar.gz", "dist/edgewamp_1.2.3_arm64.deb", "dist/SHA256SUMS",
		"dist/SHA256SUMS.sig", "bench/out/run1/cpu.prof", ".git/objects/pack/x.pack", "proto/decode.go",
		"deploy/secure.yaml", "node_modules/x/index.js", "edgewamp",
	} {
		if !ignored(t, pats, p) {
			t.Errorf("%s is sent with the build context", p)
		}
	}
}

// ignored reports whether the build context leaves p out under pats.
func ignored(t *testing.T, pats []string, p string) bool {
	t.Helper()
	out := false
	for _, pat := range pats {
		neg := strings.HasPrefix(pat, "!")
		pat = strings.TrimPrefix(pat, "!")
		for q := p; q != "." && q != "/"; q = filepath.Dir(q) {
			ok, err := filepath.Match(pat, q)
			if err != nil {
				t.Fatalf(".dockerignore: bad pattern %q: %v", pat, err)
			}
			if ok {
				out = !neg
				break
			}
		}
	}
	return out
}
