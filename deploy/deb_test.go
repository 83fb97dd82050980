package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// debEntry is one file of a package: mode and owner as dpkg-deb lists
// them.
type debEntry struct{ mode, owner string }

// debContents lists a package's files (dpkg-deb -c).
func debContents(t *testing.T, deb string) map[string]debEntry {
	t.Helper()
	out, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v", err)
	}
	got := map[string]debEntry{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		got[strings.TrimPrefix(strings.TrimSuffix(f[len(f)-1], "/"), ".")] = debEntry{f[0], f[1]}
	}
	return got
}

// The packages hold exactly the expected files, owned by root, with the
// configuration as the one conffile, maintainer scripts, and a control
// file naming the right architecture and no dependency (the binary is
// static). The mesh samples (deploy/mesh) are among the examples: README's
// Mesh section pointed to them, and neither the package nor the tarball
// held them, so an operator with a package had none of a mesh's samples.
func TestDebContents(t *testing.T) {
	dist := fullRelease(t)
	files := map[string]string{
		"/usr/bin/edgewamp":                                            "-rwxr-xr-x",
		"/usr/lib/systemd/system/edgewamp.service":                     "-rw-r--r--",
		"/usr/lib/sysusers.d/edgewamp.conf":                            "-rw-r--r--",
		"/etc/edgewamp/edgewamp.yaml":                                  "-rw-r--r--",
		"/usr/share/doc/edgewamp/copyright":                            "-rw-r--r--",
		"/usr/share/doc/edgewamp/changelog.gz":                         "-rw-r--r--",
		"/usr/share/doc/edgewamp/README.md.gz":                         "-rw-r--r--",
		"/usr/share/doc/edgewamp/examples/small-board.yaml":            "-rw-r--r--",
		"/usr/share/doc/edgewamp/examples/secure.yaml":                 "-rw-r--r--",
		"/usr/share/doc/edgewamp/examples/edgewamp-notify-reload.conf": "-rw-r--r--",
		"/usr/share/doc/edgewamp/examples/mesh/README.md":              "-rw-r--r--",
		"/usr/share/doc/edgewamp/examples/mesh/cluster-node.yaml":      "-rw-r--r--",
		"/usr/share/doc/edgewamp/examples/mesh/hub.yaml":               "-rw-r--r--",
		"/usr/share/doc/edgewamp/examples/mesh/edge-leaf.yaml":         "-rw-r--r--",
		"/usr/share/man/man1/edgewamp.1.gz":                            "-rw-r--r--",
		"/usr/share/lintian/overrides/edgewamp":                        "-rw-r--r--",
	}
	for _, a := range arches {
		t.Run(a.deb, func(t *testing.T) {
			deb := a.debFile(dist, testVersion)
			got := debContents(t, deb)
			var extra []string
			for p, e := range got {
				if e.owner != "root/root" {
					t.Errorf("%s owned by %s", p, e.owner)
				}
				if want, ok := files[p]; ok {
					if e.mode != want {
						t.Errorf("%s: mode %s, want %s", p, e.mode, want)
					}
				} else if !strings.HasPrefix(e.mode, "d") {
					extra = append(extra, p)
				}
			}
			for p := range files {
				if _, ok := got[p]; !ok {
					t.Errorf("missing %s", p)
				}
			}
			if len(extra) > 0 {
				sort.Strings(extra)
				t.Errorf("unexpected files: %v", extra)
			}
			conffiles, err := exec.Command("dpkg-deb", "-I", deb, "conffiles").Output()
			if err != nil || string(conffiles) != "/etc/edgewamp/edgewamp.yaml\n" {
				t.Errorf("conffiles %q (%v)", conffiles, err)
			}
			for field, want := range map[string]string{"Package": "edgewamp", "Version": testVersion, "Architecture": a.deb, "Depends": "", "Pre-Depends": ""} {
				out, _ := exec.Command("dpkg-deb", "-f", deb, field).Output()
				if got := strings.TrimSpace(string(out)); got != want {
					t.Errorf("control %s: %q, want %q", field, got, want)
				}
			}
			out, err := exec.Command("dpkg-deb", "-I", deb).Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{"preinst", "postinst", "prerm", "postrm", "md5sums"} {
				if !strings.Contains(string(out), " "+s+" ") {
					t.Errorf("no %s in the control archive:\n%s", s, out)
				}
			}
		})
	}
}

// lintian finds no error and no warning in any of the packages.
func TestDebLintian(t *testing.T) {
	needTool(t, "lintian", "lintian")
	dist := fullRelease(t)
	args := []string{"--fail-on", "error,warning"}
	for _, a := range arches {
		args = append(args, a.debFile(dist, testVersion))
	}
	out, err := exec.Command("lintian", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("lintian: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E:") || strings.HasPrefix(line, "W:") {
			t.Errorf("lintian: %s", line)
		}
	}
}

// scratchRoot is an empty system root for dpkg --root.
type scratchRoot struct {
	t    *testing.T
	dir  string
	path string // PATH for dpkg: stubs of the commands that must not run first
	log  string // what the stubs were asked to do
}

func newScratchRoot(t *testing.T) *scratchRoot {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stubs := t.TempDir()
	r := &scratchRoot{t: t, dir: dir, path: stubs + ":" + os.Getenv("PATH"), log: filepath.Join(stubs, "calls.log")}
	// Starting or stopping a service, or reloading systemd, must never
	// happen when installing into another root: these stubs record any
	// attempt.
	for _, name := range []string{"systemctl", "deb-systemd-invoke"} {
		stub := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >>%s\n", name, r.log)
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// dpkg runs dpkg on the scratch root; the maintainer scripts run without
// chroot with DPKG_ROOT set (--force-script-chrootless).
func (r *scratchRoot) dpkg(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("dpkg", append([]string{"--root=" + r.dir, "--force-script-chrootless", "--log=" + filepath.Join(r.dir, "dpkg.log")}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+r.path, "DEBIAN_FRONTEND=noninteractive")
	cmd.Stdin = nil // a conffile prompt would fail: there must be none
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("dpkg %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (r *scratchRoot) p(path string) string { return filepath.Join(r.dir, path) }

func (r *scratchRoot) read(path string) string {
	r.t.Helper()
	b, err := os.ReadFile(r.p(path))
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func (r *scratchRoot) exists(path string) bool {
	_, err := os.Lstat(r.p(path))
	return err == nil
}

// status returns dpkg's status entry for edgewamp.
func (r *scratchRoot) status() string {
	r.t.Helper()
	cmd := exec.Command("dpkg", "--root="+r.dir, "-s", "edgewamp")
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// noServiceCalls fails when a stub was called.
func (r *scratchRoot) noServiceCalls() {
	r.t.Helper()
	if b, err := os.ReadFile(r.log); err == nil && len(b) > 0 {
		r.t.Fatalf("the maintainer scripts tried to manage a service of the build host:\n%s", b)
	}
}

const wantsLink = "/etc/systemd/system/multi-user.target.wants/edgewamp.service"

// The amd64 package installed into a scratch root: files in place, the
// configuration a conffile readable by root and group edgewamp only, the
// system user made, the service enabled but nothing started; the unit
// verifies; an upgrade keeps a changed configuration and an admin's
// disable; removal keeps the configuration, purge removes it.
func TestDebInstallUpgradePurge(t *testing.T) {
	needTool(t, "systemd-sysusers", "systemd")
	dist := fullRelease(t)
	amd := arches[0]
	r := newScratchRoot(t)
	r.dpkg("-i", amd.debFile(dist, testVersion))
	r.noServiceCalls()

	st := r.status()
	if !strings.Contains(st, "Status: install ok installed") || !strings.Contains(st, "Conffiles:\n /etc/edgewamp/edgewamp.yaml ") {
		t.Fatalf("dpkg status:\n%s", st)
	}
	out, err := exec.Command(r.p("/usr/bin/edgewamp"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "edgewamp "+testVersion+" ") {
		t.Fatalf("installed binary: %v %s", err, out)
	}
	if out, err := exec.Command(r.p("/usr/bin/edgewamp"), "check-config", r.p("/etc/edgewamp/edgewamp.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("installed configuration: %v %s", err, out)
	}
	// The system user and group, from sysusers.d.
	uid := lineField(t, r.read("/etc/passwd"), "edgewamp", 2)
	gid := lineField(t, r.read("/etc/group"), "edgewamp", 2)
	if uid == "" || gid == "" {
		t.Fatalf("no edgewamp user or group:\n%s\n%s", r.read("/etc/passwd"), r.read("/etc/group"))
	}
	checkConfMode(t, r, gid)
	// No statoverride into another root: dpkg-statoverride would have
	// named the build host's group of that gid (the postinst sets the mode
	// itself; the first configure on the device registers the override).
	if r.exists("/var/lib/dpkg/statoverride") && strings.Contains(r.read("/var/lib/dpkg/statoverride"), "edgewamp.yaml") {
		t.Fatalf("statoverride into another root:\n%s", r.read("/var/lib/dpkg/statoverride"))
	}
	if dst, err := os.Readlink(r.p(wantsLink)); err != nil || dst != "/usr/lib/systemd/system/edgewamp.service" {
		t.Fatalf("not enabled: %q %v", dst, err)
	}
	verifyUnit(t, r)

	// Upgrade with a changed configuration: kept, without a prompt (the
	// package's own copy did not change).
	conf := r.read("/etc/edgewamp/edgewamp.yaml") + "# changed by the admin\n"
	if err := os.WriteFile(r.p("/etc/edgewamp/edgewamp.yaml"), []byte(conf), 0o640); err != nil {
		t.Fatal(err)
	}
	up := makeRelease(t, upgradeVersion, "amd64", "upgrade")
	r.dpkg("-i", amd.debFile(up, upgradeVersion))
	r.noServiceCalls()
	if r.read("/etc/edgewamp/edgewamp.yaml") != conf {
		t.Fatal("the upgrade replaced the admin's configuration")
	}
	checkConfMode(t, r, gid)
	if out, _ := exec.Command(r.p("/usr/bin/edgewamp"), "version").Output(); !strings.HasPrefix(string(out), "edgewamp "+upgradeVersion+" ") {
		t.Fatalf("after the upgrade: %s", out)
	}
	if !r.exists(wantsLink) {
		t.Fatal("the upgrade disabled the service")
	}

	// An admin's disable (systemctl disable, here offline into the root)
	// survives an upgrade.
	if out, err := exec.Command("systemctl", "--root="+r.dir, "disable", "edgewamp.service").CombinedOutput(); err != nil {
		t.Fatalf("disable: %v %s", err, out)
	}
	r.dpkg("-i", amd.debFile(dist, testVersion)) // a downgrade is an upgrade to dpkg
	if r.exists(wantsLink) {
		t.Fatal("an upgrade enabled the service the admin disabled")
	}

	// Remove: the configuration stays.
	r.dpkg("-r", "edgewamp")
	r.noServiceCalls()
	if r.exists("/usr/bin/edgewamp") || !r.exists("/etc/edgewamp/edgewamp.yaml") {
		t.Fatal("remove: binary kept or configuration lost")
	}
	if st := r.status(); !strings.Contains(st, "Status: deinstall ok config-files") {
		t.Fatalf("after remove:\n%s", st)
	}
	// Purge: the configuration and the enablement go.
	r.dpkg("-P", "edgewamp")
	if r.exists("/etc/edgewamp") || r.exists(wantsLink) {
		t.Fatal("purge left the configuration or the enablement")
	}
}

// lineField returns field i (0-based) of the colon-separated line whose
// first field is name.
func lineField(t *testing.T, text, name string, i int) string {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		f := strings.Split(l, ":")
		if f[0] == name && len(f) > i {
			return f[i]
		}
	}
	return ""
}

func checkConfMode(t *testing.T, r *scratchRoot, gid string) {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%a %u %g", r.p("/etc/edgewamp/edgewamp.yaml")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "640 0 "+gid {
		t.Fatalf("configuration mode/owner %q, want \"640 0 %s\"", got, gid)
	}
}

// verifyUnit runs systemd-analyze verify on the installed unit, in the
// scratch root (which gets the standard targets and kill for it), with
// the man page the unit's Documentation= names looked up in the package.
func verifyUnit(t *testing.T, r *scratchRoot) {
	t.Helper()
	needTool(t, "systemd-analyze", "systemd")
	// The package ships deploy/edgewamp.service as it is.
	src, err := os.ReadFile(filepath.Join(repo, "deploy", "edgewamp.service"))
	if err != nil {
		t.Fatal(err)
	}
	if r.read("/usr/lib/systemd/system/edgewamp.service") != string(src) {
		t.Fatal("the installed unit differs from deploy/edgewamp.service")
	}
	targets, _ := filepath.Glob("/usr/lib/systemd/system/*.target")
	if len(targets) == 0 {
		targets, _ = filepath.Glob("/lib/systemd/system/*.target")
	}
	for _, tg := range targets {
		b, err := os.ReadFile(tg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(r.p("/usr/lib/systemd/system/"+filepath.Base(tg)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(kill)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(r.p("/bin"), 0o755)
	if err := os.WriteFile(r.p("/bin/kill"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-analyze", "verify", "--root="+r.dir, "/usr/lib/systemd/system/edgewamp.service")
	cmd.Env = append(os.Environ(), "MANPATH="+r.p("/usr/share/man"), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// edgewamp-notify-reload.conf (and the unit's notes, README) said
// "systemd 252 and older refuse the unit with it". They do not: systemd
// 252 ignores Type=notify-reload and ReloadSignal= with a warning and
// keeps the rest of the drop-in, its empty ExecReload= included, so the
// unit loads as Type=notify without any reload command and `systemctl
// reload edgewamp` stops working, with no refusal to tell the admin. The
// drop-in's comment now says so. systemd-analyze verify of this host's
// systemd shows what it does with the drop-in: on 252 or older, the
// warnings the comment quotes; on 253 or later, none about it.
func TestNotifyReloadDropInOnOldSystemd(t *testing.T) {
	dropIn, err := os.ReadFile(filepath.Join(repo, "deploy", "edgewamp-notify-reload.conf"))
	if err != nil {
		t.Fatal(err)
	}
	const ignored = "Failed to parse service type, ignoring: notify-reload"
	if c := string(dropIn); strings.Contains(c, "refuse the unit with it") || !strings.Contains(c, ignored) || !strings.Contains(c, "252 or older") {
		t.Errorf("the drop-in's comment does not say what systemd 252 and older do with it (ignore Type=notify-reload, keep the empty ExecReload=):\n%s", c)
	}
	needTool(t, "systemd-analyze", "systemd")
	out, _ := exec.Command("systemd-analyze", "--version").Output()
	var ver int
	fmt.Sscanf(strings.TrimPrefix(string(out), "systemd "), "%d", &ver)
	if ver == 0 {
		t.Skipf("systemd-analyze --version: %q", out)
	}
	root := t.TempDir()
	for path, b := range map[string][]byte{
		"/usr/lib/systemd/system/edgewamp.service":                  nil,
		"/etc/systemd/system/edgewamp.service.d/notify-reload.conf": dropIn,
	} {
		if b == nil {
			if b, err = os.ReadFile(filepath.Join(repo, "deploy", "edgewamp.service")); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(filepath.Dir(root+path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, "/usr/lib/systemd/system/edgewamp.service")
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	vout, _ := cmd.CombinedOutput()
	v := string(vout)
	t.Logf("systemd %d, systemd-analyze verify with the drop-in:\n%s", ver, v)
	switch {
	case ver <= 252 && !strings.Contains(v, ignored):
		t.Errorf("systemd %d: no %q: the drop-in's comment and README describe what this systemd does not do", ver, ignored)
	case ver >= 253 && (strings.Contains(v, "notify-reload") || strings.Contains(v, "ReloadSignal")):
		t.Errorf("systemd %d does not take the drop-in", ver)
	}
}
