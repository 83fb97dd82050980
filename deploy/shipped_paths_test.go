package deploy

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The files the package and the tarball ship (the deploy/ files
// release.sh installs) name no repository path: installed, they sit in
// /etc/edgewamp, /usr/lib/systemd/system, /usr/share/doc/edgewamp/examples
// (mesh/ beside them) or the tarball's top directory and mesh/, where a
// "deploy/mesh/README.md" or "deploy/edgewamp.service" does not exist.
// Before, the mesh samples, edgewamp.yaml and secure.yaml pointed to
// deploy/ paths (and edgewamp.yaml to cmd/edgewamp/default.yaml); they now
// name a file beside them, an installed path or a README section.
func TestShippedFilesNameNoRepositoryPaths(t *testing.T) {
	script, err := os.ReadFile("release.sh")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range regexp.MustCompile(`deploy/[A-Za-z0-9_./-]+`).FindAllString(string(script), -1) {
		seen[strings.TrimPrefix(p, "deploy/")] = true
	}
	var shipped []string
	for p := range seen {
		shipped = append(shipped, p)
	}
	sort.Strings(shipped)
	if len(shipped) < 10 || !seen["mesh/README.md"] || !seen["edgewamp.yaml"] {
		t.Fatalf("release.sh's deploy/ files: %v, want the samples, the unit and the package's files", shipped)
	}
	repoPath := regexp.MustCompile(`\b(deploy|cmd)/[A-Za-z0-9_./-]*`)
	for _, p := range shipped {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("release.sh ships %s: %v", p, err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := repoPath.FindString(line); m != "" {
				t.Errorf("%s:%d names %s, a repository path missing where it is installed: %s", p, i+1, m, strings.TrimSpace(line))
			}
		}
	}
}
