package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// postrm purge empties and keeps a state directory rm cannot remove
// (TestPostrmPurgeStateOnAMountPoint), and said "emptied, not removed (a
// mount point?)" whatever the reason: a directory that is no mount point,
// holding a file made immutable (chattr +i: "Operation not permitted") or
// a file system mounted inside it ("Device or resource busy"), was
// neither emptied nor a mount point, and the admin was sent to look for a
// mount that was not there. Now postrm says what it found: a mount point
// (emptied), or how many entries are left and rm's own reason.
//
// postrm purge into another root (DPKG_ROOT) on a tmpfs of a private mount
// namespace (chattr works on a tmpfs), its service tools stubbed.
func TestPostrmSaysWhyStateStays(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private mount namespace)")
	}
	needTool(t, "unshare", "util-linux")
	needTool(t, "chattr", "e2fsprogs")
	stubs := t.TempDir()
	for _, name := range []string{"deb-systemd-helper", "dpkg-statoverride"} {
		body := "#!/bin/sh\n[ \"$1\" = --list ] && exit 1\nexit 0\n"
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	postrm := shellQuote(filepath.Join(repo, "deploy", "debian", "postrm"))
	for _, c := range []struct {
		name  string
		setup string   // sh, in $s, the state directory (not a mount point)
		says  []string // in postrm's output
		not   []string // not in it
	}{
		{"a mount point", `mount -t tmpfs tmpfs "$s" && echo k >"$s/store"`,
			[]string{"emptied", "is a mount point"}, []string{"?"}},
		{"an immutable file", `echo k >"$s/store" && echo k >"$s/keep" && chattr +i "$s/keep"`,
			[]string{"not removed", "1 entry left", "Operation not permitted"}, []string{"mount point", "emptied"}},
		{"a mount inside", `mkdir "$s/mesh" && mount -t tmpfs tmpfs "$s/mesh" && echo k >"$s/store"`,
			[]string{"not removed", "1 entry left", "busy"}, []string{"is a mount point", "emptied"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			// The root on a tmpfs of its own (chattr needs a file system
			// that takes it); the immutable flag is cleared before the
			// namespace ends, so that the test's cleanup can remove it.
			script := `set -e; mount -t tmpfs tmpfs "$DPKG_ROOT"; s="$DPKG_ROOT/var/lib/private/edgewamp"; mkdir -p "$s" "$DPKG_ROOT/etc/edgewamp"; ` +
				`ln -s private/edgewamp "$DPKG_ROOT/var/lib/edgewamp"; ` + c.setup + `; set +e; sh ` + postrm + ` purge; echo "postrm exit $?"; ` +
				`[ -e "$s/keep" ] && chattr -i "$s/keep"; true`
			cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"), "DPKG_ROOT="+root)
			out, err := cmd.CombinedOutput()
			o := string(out)
			if err != nil {
				t.Skipf("no private mount namespace (or chattr) here: %v %s", err, o)
			}
			if !strings.Contains(o, "postrm exit 0") {
				t.Fatalf("postrm purge failed:\n%s", o)
			}
			var said string
			for _, l := range strings.Split(o, "\n") {
				if strings.HasPrefix(l, "edgewamp: ") && strings.Contains(l, "var/lib/private/edgewamp") {
					said += l + "\n"
				}
			}
			for _, s := range c.says {
				if !strings.Contains(said, s) {
					t.Errorf("postrm's word on the state directory does not say %q:\n%s", s, o)
				}
			}
			for _, s := range c.not {
				if strings.Contains(said, s) {
					t.Errorf("postrm's word on the state directory says %q:\n%s", s, o)
				}
			}
		})
	}
}
