package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Dry runs of the maintainer scripts on this host: every command that
// would change something (systemd-sysusers, dpkg-statoverride,
// deb-systemd-helper, deb-systemd-invoke, systemctl) is a stub that records
// its arguments, and systemd-detect-virt is a stub that says whether we
// are in a chroot. A private mount namespace (unshare, as root) makes
// /run/systemd/system appear, as on a system booted with systemd, without
// touching the host.

// scriptRun is one dry run.
type scriptRun struct {
	script  string   // postinst, prerm, postrm
	args    []string // as dpkg passes them
	systemd bool     // /run/systemd/system exists
	chroot  bool     // systemd-detect-virt --chroot says yes
	root    string   // DPKG_ROOT
	group   bool     // /etc/group has an edgewamp group (bind-mounted; needs systemd: true)
	user    bool     // /etc/passwd has an edgewamp user, uid 990 (bind-mounted; needs group: true)
	// edgewamp, when set, is the body of a shell script that stands for
	// the package's new /usr/bin/edgewamp (an overlay on /usr/bin; needs
	// systemd: true); it records its calls as the stubs do.
	edgewamp string
	// envFiles and environment are what `systemctl show -p
	// EnvironmentFiles --value` and `-p Environment --value` print for
	// the unit (nothing when empty).
	envFiles, environment string
	// show is what `systemctl show -p NAME --value` prints for other
	// properties (User, Group, SupplementaryGroups: a drop-in's).
	show map[string]string
	// groups are more lines of /etc/group (needs group: true).
	groups string
	// stateDir lays /var/lib out (a tmpfs over it) as systemd does for
	// the unit's StateDirectory= with DynamicUser=yes, after its first
	// start: /var/lib/private (0700 root) holds edgewamp (the user's,
	// 0755), and /var/lib/edgewamp is a symlink to private/edgewamp
	// (needs user: true).
	stateDir bool
	// unit, when set, is the unit installed as
	// /etc/systemd/system/edgewamp.service (a tmpfs over that directory),
	// where check-config looks for it.
	unit string
}

func dryRun(t *testing.T, r scriptRun) []string {
	t.Helper()
	calls, _ := dryRunOutput(t, r)
	return calls
}

// dryRunOutput is dryRun that also returns the script's output.
func dryRunOutput(t *testing.T, r scriptRun) ([]string, string) {
	t.Helper()
	stubs := t.TempDir()
	log := filepath.Join(stubs, "calls.log")
	for _, name := range []string{"systemd-sysusers", "dpkg-statoverride", "deb-systemd-helper", "deb-systemd-invoke", "systemctl", "systemd-detect-virt"} {
		body := fmt.Sprintf("#!/bin/sh\necho \"%s $*\" >>%s\n", name, log)
		switch name {
		case "systemd-detect-virt":
			code := 1
			if r.chroot {
				code = 0
			}
			body = fmt.Sprintf("#!/bin/sh\nexit %d\n", code)
		case "dpkg-statoverride":
			body += "[ \"$1\" = --list ] && exit 1\nexit 0\n" // no override yet
		case "systemctl":
			props := []struct{ name, value string }{{"EnvironmentFiles", r.envFiles}, {"Environment", r.environment}}
			for name, value := range r.show {
				props = append(props, struct{ name, value string }{name, value})
			}
			for _, p := range props {
				if p.value != "" {
					body += fmt.Sprintf("[ \"$1 $2 $3 $4\" = \"show -p %s --value\" ] && printf '%%s\\n' %s\n", p.name, shellQuote(p.value))
				}
			}
		}
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(repo, "deploy", "debian", r.script)
	shell := "exec sh " + script + ` "$@"`
	var cmd *exec.Cmd
	if r.systemd {
		needTool(t, "unshare", "util-linux")
		setup := "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && "
		if r.group {
			group := filepath.Join(stubs, "group")
			if err := os.WriteFile(group, []byte("root:x:0:\nedgewamp:x:990:\n"+r.groups), 0o644); err != nil {
				t.Fatal(err)
			}
			setup += "mount --bind " + group + " /etc/group && "
		}
		if r.user {
			passwd := filepath.Join(stubs, "passwd")
			if err := os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/sh\nedgewamp:x:990:990:edgewamp:/var/lib/edgewamp:/usr/sbin/nologin\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			setup += "mount --bind " + passwd + " /etc/passwd && "
		}
		if r.stateDir {
			setup += "mount -t tmpfs tmpfs /var/lib && mkdir -m 0700 /var/lib/private && mkdir -m 0755 /var/lib/private/edgewamp && " +
				"chown 990:990 /var/lib/private/edgewamp && ln -s private/edgewamp /var/lib/edgewamp && "
		}
		if r.unit != "" {
			unit := filepath.Join(stubs, "edgewamp.service")
			if err := os.WriteFile(unit, []byte(r.unit), 0o644); err != nil {
				t.Fatal(err)
			}
			setup += "mount -t tmpfs -o mode=0755 tmpfs /etc/systemd/system && cp " + unit + " /etc/systemd/system/ && "
		}
		if r.edgewamp != "" {
			bin := t.TempDir()
			body := fmt.Sprintf("#!/bin/sh\necho \"edgewamp $*\" >>%s\n%s", log, r.edgewamp)
			if err := os.WriteFile(filepath.Join(bin, "edgewamp"), []byte(body), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(bin, 0o755); err != nil { // the overlay's /usr/bin: others may run it
				t.Fatal(err)
			}
			setup += "mount -t overlay overlay -o lowerdir=" + bin + ":/usr/bin /usr/bin && "
		}
		cmd = exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c",
			setup + shell, "sh"}, r.args...)...)
	} else {
		if _, err := os.Stat("/run/systemd/system"); err == nil {
			t.Skip("this host runs systemd: the no-systemd case needs a host without it")
		}
		cmd = exec.Command("sh", append([]string{"-c", shell, "sh"}, r.args...)...)
	}
	cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"), "DPKG_ROOT="+r.root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if r.systemd && (strings.Contains(string(out), "unshare") || strings.Contains(string(out), "mount")) {
			t.Skipf("no private mount namespace (with an overlay) here: %s", out)
		}
		t.Fatalf("%s %v: %v\n%s", r.script, r.args, err, out)
	}
	b, _ := os.ReadFile(log)
	var calls []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			calls = append(calls, l)
		}
	}
	return calls, string(out)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func hasCall(calls []string, prefix string) bool {
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

// The new /usr/bin/edgewamp of an upgrade, as the dry runs stand it in:
// one that takes the configuration, one that refuses it.
const (
	acceptingBinary = "[ \"$1\" = check-config ] && echo \"$2: ok\"\nexit 0\n"
	refusingBinary  = "if [ \"$1\" = check-config ]; then echo \"edgewamp: $2:40: realms[0] defines roles without security: true\" >&2; exit 1; fi\nexit 0\n"
)

func TestMaintainerScriptsDryRun(t *testing.T) {
	// The system's /etc/group has no edgewamp group (the stubbed sysusers
	// made none), so no statoverride is attempted unless a case mounts a
	// group file with one.
	cases := []struct {
		name       string
		run        scriptRun
		want, none []string
	}{
		{"fresh install under systemd: enable and start",
			scriptRun{script: "postinst", args: []string{"configure", ""}, systemd: true},
			[]string{"systemd-sysusers edgewamp.conf", "deb-systemd-helper enable edgewamp.service", "systemctl --system daemon-reload", "deb-systemd-invoke start edgewamp.service"},
			[]string{"deb-systemd-invoke restart"}},
		{"with the system group: the configuration becomes root:edgewamp 0640 through a statoverride",
			scriptRun{script: "postinst", args: []string{"configure", ""}, systemd: true, group: true},
			[]string{"dpkg-statoverride --update --add root #990 0640 /etc/edgewamp/edgewamp.yaml"}, nil},
		{"upgrade under systemd: the new binary checks the configuration, restart",
			scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, edgewamp: acceptingBinary},
			[]string{"deb-systemd-helper enable edgewamp.service", "edgewamp check-config /etc/edgewamp/edgewamp.yaml", "deb-systemd-invoke restart edgewamp.service"},
			[]string{"deb-systemd-invoke start"}},
		{"fresh install under systemd: the package's own configuration is not checked",
			scriptRun{script: "postinst", args: []string{"configure", ""}, systemd: true, edgewamp: refusingBinary},
			[]string{"deb-systemd-invoke start edgewamp.service"},
			[]string{"edgewamp check-config"}},
		{"in a chroot: enable, do not start",
			scriptRun{script: "postinst", args: []string{"configure", ""}, systemd: true, chroot: true},
			[]string{"deb-systemd-helper enable edgewamp.service"},
			[]string{"deb-systemd-invoke", "systemctl"}},
		{"without a running systemd: enable, do not start",
			scriptRun{script: "postinst", args: []string{"configure", ""}},
			[]string{"systemd-sysusers edgewamp.conf", "deb-systemd-helper enable edgewamp.service"},
			[]string{"deb-systemd-invoke", "systemctl"}},
		{"into another root: users made there, nothing started",
			scriptRun{script: "postinst", args: []string{"configure", ""}, systemd: true, root: "/nonexistent-root"},
			[]string{"systemd-sysusers --root=/nonexistent-root edgewamp.conf", "deb-systemd-helper enable edgewamp.service"},
			[]string{"deb-systemd-invoke", "systemctl"}},
		{"remove under systemd: stop",
			scriptRun{script: "prerm", args: []string{"remove"}, systemd: true},
			[]string{"deb-systemd-invoke stop edgewamp.service"}, nil},
		{"upgrade: prerm does not stop (postinst restarts)",
			scriptRun{script: "prerm", args: []string{"upgrade", "0.9.1"}, systemd: true},
			nil, []string{"deb-systemd-invoke"}},
		{"removed: mask, daemon-reload",
			scriptRun{script: "postrm", args: []string{"remove"}, systemd: true},
			[]string{"systemctl --system daemon-reload", "deb-systemd-helper mask edgewamp.service"}, nil},
		{"purged: forget enablement",
			scriptRun{script: "postrm", args: []string{"purge"}, root: "/nonexistent-root"},
			[]string{"deb-systemd-helper purge edgewamp.service", "deb-systemd-helper unmask edgewamp.service"},
			[]string{"systemctl", "deb-systemd-invoke"}},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			calls := dryRun(t, k.run)
			for _, w := range k.want {
				if !hasCall(calls, w) {
					t.Errorf("no %q; calls:\n%s", w, strings.Join(calls, "\n"))
				}
			}
			for _, n := range k.none {
				if hasCall(calls, n) {
					t.Errorf("unexpected %q; calls:\n%s", n, strings.Join(calls, "\n"))
				}
			}
		})
	}
}

// An upgrade through the package restarted the service (postinst:
// deb-systemd-invoke restart) whatever the new binary thought of the
// configuration in place: README ("What this release refuses that the
// previous one took") tells the operator to run check-config with the new
// binary before the restart, but with apt the new binary arrives and the
// restart follows in one step; the unit's ExecStartPre then refused the
// file and the router, which was serving, stayed down until someone
// edited it. Now postinst runs the new binary's check-config first and,
// on a refusal, leaves the running router alone (it goes on from the old
// binary's inode) and says why and what to do.
//
// A dry run of postinst configure (an upgrade from 0.9.0) under a running
// systemd, where /usr/bin/edgewamp (an overlay in a private mount
// namespace) refuses the configuration as the new release would.
func TestPostinstUpgradeKeepsRouterOnRefusedConfig(t *testing.T) {
	calls, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, edgewamp: refusingBinary})
	t.Logf("postinst output:\n%s\ncalls:\n%s", out, strings.Join(calls, "\n"))
	if !hasCall(calls, "edgewamp check-config /etc/edgewamp/edgewamp.yaml") {
		t.Errorf("the new binary did not check the configuration")
	}
	if hasCall(calls, "deb-systemd-invoke restart") || hasCall(calls, "deb-systemd-invoke start") {
		t.Errorf("the upgrade's postinst restarts the running router into a configuration the new binary refuses (ExecStartPre fails, the service stays down)")
	}
	if !hasCall(calls, "deb-systemd-helper enable edgewamp.service") {
		t.Errorf("the refusal skipped the enablement too")
	}
	for _, want := range []string{"realms[0] defines roles without security: true", "not restarted", "systemctl restart edgewamp", "What this release refuses"} {
		if !strings.Contains(out, want) {
			t.Errorf("postinst's output does not say %q:\n%s", want, out)
		}
	}
}

// postinst's check of the configuration on an upgrade gave the new binary
// the unit's EnvironmentFile= by sourcing it with sh, as root: a file in
// systemd's format is not a shell script, so a secret holding a shell
// character (`$`, `;`, `&`, a quote, a space: what a password generator
// writes) reached check-config changed, empty or not at all, or made the
// shell run part of it as a command, and the check failed ("environment
// variable ... is empty", "Syntax error: Unterminated quoted string"):
// postinst then did not restart the service and told the admin that the
// new release refuses a configuration it takes. Environment= also
// overrode the files, where systemd lets the files override it. Now the
// files are read as systemd reads them (systemd.exec(5),
// "EnvironmentFile="), nothing in them is run, and they come after
// Environment=.
//
// A dry run of an upgrade's postinst whose new binary prints the values
// it was given.
func TestPostinstUpgradeReadsEnvironmentFileAsSystemd(t *testing.T) {
	dir := t.TempDir()
	pwned := filepath.Join(dir, "pwned")
	env := filepath.Join(dir, "edgewamp.env")
	lines := []string{
		"# the mesh token and the dashboard's secret",
		"; a comment systemd skips too",
		"EDGEWAMP_MESH_TOKEN=s3cr$t;x&y'z",
		`EDGEWAMP_DASHBOARD_SECRET="quoted \"q\" \$HOME \w"`,
		"  SPACED = value with  spaces   ",
		"SINGLE='a \"b\" \\c'",
		"CONT=one\\",
		"two",
		"OVERRIDDEN=from the file",
		"RUN=1;touch " + pwned,
		"no assignment here",
		"EMPTY=",
	}
	if err := os.WriteFile(env, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := []string{"EDGEWAMP_MESH_TOKEN", "EDGEWAMP_DASHBOARD_SECRET", "SPACED", "SINGLE", "CONT", "OVERRIDDEN", "RUN", "EMPTY", "FROM_UNIT"}
	binary := "if [ \"$1\" = check-config ]; then\n"
	for _, v := range vars {
		binary += fmt.Sprintf("printf 'got %s=[%%s]\\n' \"${%s-unset}\"\n", v, v)
	}
	binary += "exit 1\nfi\nexit 0\n"
	_, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, edgewamp: binary,
		envFiles:    env + " (ignore_errors=no)\n" + filepath.Join(dir, "missing.env") + " (ignore_errors=yes)",
		environment: "FROM_UNIT=unit OVERRIDDEN=from-Environment"})
	want := map[string]string{
		"EDGEWAMP_MESH_TOKEN":       "s3cr$t;x&y'z",
		"EDGEWAMP_DASHBOARD_SECRET": `quoted "q" $HOME \w`,
		"SPACED":                    "value with  spaces",
		"SINGLE":                    `a "b" \c`,
		"CONT":                      "onetwo",
		"OVERRIDDEN":                "from the file",
		"RUN":                       "1;touch " + pwned,
		"EMPTY":                     "",
		"FROM_UNIT":                 "unit",
	}
	for _, v := range vars {
		if line := fmt.Sprintf("got %s=[%s]", v, want[v]); !strings.Contains(out, line) {
			t.Errorf("check-config was not given %s as systemd gives it to the unit: want %q", v, line)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("postinst ran part of the environment file as a command (as root): %s exists", pwned)
	}
	if t.Failed() {
		t.Logf("postinst output:\n%s", out)
	}
}

// postinst's check of the configuration on an upgrade ran the new
// binary's check-config as root, while the unit runs it (ExecStartPre) and
// the router as the user edgewamp: a file only root can read (the
// configuration itself made 0600 root, a TLS key, a secret's *_file)
// passed postinst, which restarted the service, and ExecStartPre then
// refused it: the router, which was serving, stayed down, the very case
// the check is there for. Now check-config runs as the user edgewamp
// (setpriv, its groups as the unit gives them) when that user exists, with
// the unit's environment still.
//
// A dry run of an upgrade's postinst with an edgewamp user (uid 990) whose
// new binary says who runs it (and refuses, so that postinst prints it).
func TestPostinstChecksConfigAsServiceUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private mount namespace, a change of user)")
	}
	needTool(t, "setpriv", "util-linux")
	binary := "if [ \"$1\" = check-config ]; then echo \"check-config as uid $(id -u) gid $(id -g), FROM_UNIT=${FROM_UNIT-unset}\" >&2; exit 1; fi\nexit 0\n"
	_, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, group: true, user: true,
		edgewamp: binary, environment: "FROM_UNIT=unit"})
	if !strings.Contains(out, "check-config as uid 990 gid 990, FROM_UNIT=unit") {
		t.Errorf("the new binary did not check the configuration as the unit's user edgewamp (uid 990, gid 990) with the unit's environment:\n%s", out)
	}
}

// The unit's user and groups are what systemd gives it, a drop-in's
// included (systemctl edit edgewamp: SupplementaryGroups=ssl-cert for a
// TLS key kept as Debian keeps them, root:ssl-cert 0640 under
// /etc/ssl/private; User=root; another user). c506cae's check ran as
// edgewamp with its /etc/group groups only: a configuration the router
// reads fine under such a drop-in was refused, and the upgrade left the
// previous release running with a false "the new release refuses".
// postinst now asks systemctl for User=, Group= and SupplementaryGroups=.
func TestPostinstChecksConfigAsTheUnitsUserAndGroups(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private mount namespace, a change of user)")
	}
	needTool(t, "setpriv", "util-linux")
	binary := "if [ \"$1\" = check-config ]; then echo \"check-config as uid $(id -u) gid $(id -g) groups $(id -G)\" >&2; exit 1; fi\nexit 0\n"
	for _, c := range []struct {
		name string
		show map[string]string
		want string
	}{
		{"shipped unit", map[string]string{"User": "edgewamp", "Group": "edgewamp"}, "check-config as uid 990 gid 990 groups 990\n"},
		{"nothing shown", nil, "check-config as uid 990 gid 990 groups 990\n"},
		{"SupplementaryGroups", map[string]string{"User": "edgewamp", "Group": "edgewamp", "SupplementaryGroups": "ssl-cert video"}, "check-config as uid 990 gid 990 groups 990 991 992\n"},
		{"User=root", map[string]string{"User": "root", "Group": "edgewamp"}, "check-config as uid 0 gid 990 groups 990\n"},
		{"User= only", map[string]string{"User": "edgewamp"}, "check-config as uid 990 gid 990 groups 990\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, group: true, user: true,
				groups: "ssl-cert:x:991:\nvideo:x:992:\n", show: c.show, edgewamp: binary})
			if !strings.Contains(out, c.want) {
				t.Errorf("want %q in postinst's output:\n%s", strings.TrimSpace(c.want), out)
			}
		})
	}
}

// The shipped unit has DynamicUser=yes (for a tarball install without the
// edgewamp user), and with it systemd keeps StateDirectory= in
// /var/lib/private/edgewamp, /var/lib/private being 0700 root, with
// /var/lib/edgewamp a symlink to it, whether or not the user is static;
// only in the unit's own mount namespace is /var/lib/private an empty
// tmpfs holding the service's directory. postinst's check of the
// configuration on an upgrade ran check-config as the user edgewamp on
// the host, where it cannot reach /var/lib/edgewamp: a data_dir there
// (README, "Upgrading": "with data_dir there") or a mesh.store_dir there
// (deploy/mesh/cluster-node.yaml's /var/lib/edgewamp/jetstream) was
// refused with "stat /var/lib/edgewamp: permission denied", and every
// upgrade of such a router left the previous release running with a false
// "the new release refuses". Now postinst runs the check with the unit's
// view of /var/lib/private.
//
// A dry run of an upgrade's postinst with the edgewamp user (uid 990) and
// /var/lib as systemd lays it out after the first start, whose new binary
// is the real one checking the configuration in question.
func TestPostinstChecksConfigWithTheUnitsStateDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private mount namespace, a change of user)")
	}
	needTool(t, "setpriv", "util-linux")
	bin := nativeBinary(t)
	dir := openDir(t)
	cluster, err := os.ReadFile(filepath.Join(repo, "deploy", "mesh", "cluster-node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cluster), "store_dir: /var/lib/edgewamp/") {
		t.Fatal("cluster-node.yaml no longer keeps its store under /var/lib/edgewamp: this test no longer tests it")
	}
	for _, c := range []struct{ name, config string }{
		{"data_dir", "listeners:\n  - address: 127.0.0.1:8080\ndata_dir: /var/lib/edgewamp\n"},
		{"cluster-node.yaml", string(cluster)},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := filepath.Join(dir, strings.TrimSuffix(c.name, ".yaml")+".yaml")
			if err := os.WriteFile(conf, []byte(c.config), 0o644); err != nil {
				t.Fatal(err)
			}
			binary := fmt.Sprintf("[ \"$1\" = check-config ] && exec %s check-config %s\nexit 0\n", shellQuote(bin), shellQuote(conf))
			calls, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, group: true, user: true,
				stateDir: true, edgewamp: binary, environment: "EDGEWAMP_MESH_TOKEN=sample-mesh-token"})
			if !hasCall(calls, "deb-systemd-invoke restart edgewamp.service") || strings.Contains(out, "refuses") {
				t.Errorf("the upgrade did not restart a router whose configuration the unit takes:\n%s\ncalls:\n%s", out, strings.Join(calls, "\n"))
			}
		})
	}
}

var (
	nativeOnce sync.Once
	nativeBin  string
	nativeErr  error
)

// nativeBinary builds ./cmd/edgewamp for this host once per test run, into
// a directory every user may enter, and returns its path.
func nativeBinary(t *testing.T) string {
	t.Helper()
	nativeOnce.Do(func() {
		dir := filepath.Join(workDir, "native")
		if nativeErr = os.MkdirAll(dir, 0o755); nativeErr != nil {
			return
		}
		// workDir is 0700: others may not pass it.
		if nativeErr = os.Chmod(workDir, 0o755); nativeErr != nil {
			return
		}
		p := filepath.Join(dir, "edgewamp")
		cmd := exec.Command("go", "build", "-trimpath", "-o", p, "./cmd/edgewamp")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			nativeErr = fmt.Errorf("%v\n%s", err, out)
			return
		}
		nativeBin = p
	})
	if nativeErr != nil {
		t.Fatalf("building edgewamp: %v", nativeErr)
	}
	return nativeBin
}

// openDir is a temporary directory every user may read, and its parents.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "edgewamp-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The armhf package holds a GOARM=7 binary (README: "not the ARMv6 Pi 1 and
// Zero"), but dpkg installs it on any armhf system, Raspberry Pi OS on a
// Pi Zero or Pi 1 (ARMv6) included: there the binary dies at once with
// SIGILL (qemu-arm -cpu arm1176: "Illegal instruction", status 132),
// postinst's start fails quietly (|| true), and the unit's Restart=on-failure
// starts it again every 2 s, each start a crash. preinst now refuses the
// install on an ARM CPU older than ARMv7, saying why, before anything is
// unpacked; into another root (an image built elsewhere) it cannot tell the
// target's CPU and lets it be.
func TestPreinstRefusesCPUsBelowARMv7(t *testing.T) {
	for _, c := range []struct {
		machine, root string
		refused       bool
	}{
		{"armv6l", "", true},
		{"armv5tel", "", true},
		{"armv7l", "", false},
		{"armv8l", "", false},
		{"aarch64", "", false},
		{"x86_64", "", false},
		{"armv6l", "/nonexistent-root", false},
	} {
		t.Run(c.machine+c.root, func(t *testing.T) {
			cmd := exec.Command("sh", filepath.Join(repo, "deploy", "debian", "preinst"), "install")
			stubs := t.TempDir()
			uname := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = -m ] && { echo %s; exit 0; }\nexec /bin/uname \"$@\"\n", shellQuote(c.machine))
			if err := os.WriteFile(filepath.Join(stubs, "uname"), []byte(uname), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"), "DPKG_ROOT="+c.root)
			out, err := cmd.CombinedOutput()
			switch {
			case c.refused && err == nil:
				t.Errorf("preinst install on %s: accepted; the binary cannot run there", c.machine)
			case c.refused && !strings.Contains(string(out), "ARMv7"):
				t.Errorf("preinst's refusal does not say why:\n%s", out)
			case !c.refused && err != nil:
				t.Errorf("preinst install on %s (DPKG_ROOT %q): %v\n%s", c.machine, c.root, err, out)
			}
		})
	}
}

// systemd takes a wildcard in EnvironmentFile= (systemd.exec(5): "an
// absolute filename or wildcard expression"; glob(3), the matches in
// order), and `systemctl show -p EnvironmentFiles` prints the pattern as
// written. postinst's check of the configuration on an upgrade read each
// entry as one file name, so a drop-in's
// EnvironmentFile=/etc/edgewamp/env.d/*.env gave check-config none of the
// secrets the unit gets: it refused the configuration ("environment
// variable ... is empty"), and the upgrade left the previous release
// running with a false "the new release refuses". Now postinst expands
// the pattern as systemd does, the matches in order, a later file
// overriding an earlier one.
//
// A dry run of an upgrade's postinst whose new binary prints the values
// it was given.
func TestPostinstUpgradeReadsEnvironmentFileWildcard(t *testing.T) {
	dir := t.TempDir()
	envd := filepath.Join(dir, "env d") // a space in the path, which systemd takes
	if err := os.Mkdir(envd, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"10-mesh.env":  "EDGEWAMP_MESH_TOKEN=mesh-token\nORDER=first\n",
		"20-dash.env":  "EDGEWAMP_DASHBOARD_SECRET=dash secret\nORDER=second\n",
		"README":       "NOT_AN_ENV_FILE=read\n",
		"30-later.env": "LATER=yes\n",
	} {
		if err := os.WriteFile(filepath.Join(envd, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	vars := []string{"EDGEWAMP_MESH_TOKEN", "EDGEWAMP_DASHBOARD_SECRET", "ORDER", "LATER", "NOT_AN_ENV_FILE"}
	binary := "if [ \"$1\" = check-config ]; then\n"
	for _, v := range vars {
		binary += fmt.Sprintf("printf 'got %s=[%%s]\\n' \"${%s-unset}\"\n", v, v)
	}
	binary += "exit 1\nfi\nexit 0\n"
	_, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, edgewamp: binary,
		envFiles: filepath.Join(envd, "*.env") + " (ignore_errors=no)\n" + filepath.Join(dir, "none-*.env") + " (ignore_errors=yes)"})
	want := map[string]string{
		"EDGEWAMP_MESH_TOKEN":       "mesh-token",
		"EDGEWAMP_DASHBOARD_SECRET": "dash secret",
		"ORDER":                     "second",
		"LATER":                     "yes",
		"NOT_AN_ENV_FILE":           "unset",
	}
	for _, v := range vars {
		if line := fmt.Sprintf("got %s=[%s]", v, want[v]); !strings.Contains(out, line) {
			t.Errorf("check-config was not given %s as systemd gives it to the unit: want %q", v, line)
		}
	}
	if t.Failed() {
		t.Logf("postinst output:\n%s", out)
	}
}

// execShow is how `systemctl show -p ExecStartPre --value` (ExecStart=)
// prints one command of the unit.
func execShow(argv string) string {
	return "{ path=/usr/bin/edgewamp ; argv[]=" + argv + " ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
}

// README says to change the unit with a drop-in (systemctl edit
// edgewamp), and one may point the service at another file: ExecStartPre=
// and ExecStart= naming /etc/edgewamp/site.yaml, the packaged
// edgewamp.yaml left as shipped or deleted. postinst's check on an upgrade
// still checked /etc/edgewamp/edgewamp.yaml: the file the unit reads was
// never checked (a site.yaml the new release refuses was restarted into,
// ExecStartPre then refusing it: the service down, the very case the check
// is there for), and a deleted edgewamp.yaml was refused ("no such file"),
// leaving the previous release running with a false "the new release
// refuses /etc/edgewamp/edgewamp.yaml". Now postinst checks the file the
// unit names, as systemctl shows the unit.
//
// Dry runs of an upgrade's postinst whose new binary takes site.yaml
// alone (edgewamp.yaml deleted) or refuses it.
func TestPostinstChecksTheFileTheUnitNames(t *testing.T) {
	const site = "/etc/edgewamp/site.yaml"
	takesSite := "if [ \"$1\" = check-config ]; then [ \"$2\" = " + site + " ] && { echo \"$2: ok\"; exit 0; }; echo \"edgewamp: $2: open $2: no such file or directory\" >&2; exit 1; fi\nexit 0\n"
	for _, c := range []struct {
		name    string
		show    map[string]string
		binary  string
		restart bool
		says    string
	}{
		{"ExecStartPre and ExecStart name site.yaml", map[string]string{
			"ExecStartPre": execShow("/usr/bin/edgewamp check-config " + site),
			"ExecStart":    execShow("/usr/bin/edgewamp run -config " + site + " -log-format json"),
		}, takesSite, true, ""},
		{"ExecStart alone with --config FILE joined", map[string]string{
			"ExecStart": execShow("/usr/bin/edgewamp run -log-format json --config=" + site),
		}, takesSite, true, ""},
		{"site.yaml refused", map[string]string{
			"ExecStartPre": execShow("/usr/bin/edgewamp check-config " + site),
		}, "if [ \"$1\" = check-config ]; then [ \"$2\" = " + site + " ] || exit 0; echo \"edgewamp: $2:3: bad\" >&2; exit 1; fi\nexit 0\n",
			false, "the new release refuses " + site + ":"},
		{"a variable: the packaged file", map[string]string{
			"ExecStartPre": execShow("/usr/bin/edgewamp check-config ${CONF}"),
		}, acceptingBinary, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, show: c.show, edgewamp: c.binary})
			if got := hasCall(calls, "deb-systemd-invoke restart edgewamp.service"); got != c.restart {
				t.Errorf("restarted: %v, want %v", got, c.restart)
			}
			if c.says != "" && !strings.Contains(out, c.says) {
				t.Errorf("postinst's output does not say %q", c.says)
			}
			if t.Failed() {
				t.Logf("postinst output:\n%s\ncalls:\n%s", out, strings.Join(calls, "\n"))
			}
		})
	}
}

// postrm purge removed the state with `rm -rf /var/lib/edgewamp
// /var/lib/private/edgewamp`: where that directory is a mount point (the
// state on a disk of its own, mounted where systemd keeps the unit's
// StateDirectory= with DynamicUser=yes), rm emptied it, failed to remove
// it ("Device or resource busy"), and under set -e postrm failed: dpkg
// reported the purge failed, left the package unpurged, and every later
// purge failed the same way. Now a directory that cannot be removed is
// emptied and kept, with a word, and the purge goes on.
//
// postrm purge into another root (DPKG_ROOT, its service tools stubbed),
// in a private mount namespace where a tmpfs is mounted at
// var/lib/private/edgewamp and var/lib/edgewamp is the symlink to it.
func TestPostrmPurgeStateOnAMountPoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private mount namespace)")
	}
	needTool(t, "unshare", "util-linux")
	root := t.TempDir()
	priv := filepath.Join(root, "var", "lib", "private", "edgewamp")
	if err := os.MkdirAll(priv, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("private/edgewamp", filepath.Join(root, "var", "lib", "edgewamp")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc", "edgewamp"), 0o755); err != nil {
		t.Fatal(err)
	}
	stubs := t.TempDir()
	for _, name := range []string{"deb-systemd-helper", "dpkg-statoverride"} {
		body := "#!/bin/sh\n[ \"$1\" = --list ] && exit 1\nexit 0\n"
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := "mount -t tmpfs tmpfs " + shellQuote(priv) + " && mkdir " + shellQuote(priv+"/mesh") + " && echo k >" + shellQuote(priv+"/mesh/store") +
		" && echo k >" + shellQuote(priv+"/.hidden") + " && sh " + shellQuote(filepath.Join(repo, "deploy", "debian", "postrm")) + " purge" +
		"; echo \"postrm exit $?\"; ls -A " + shellQuote(priv) + "; echo listed"
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+stubs+":"+os.Getenv("PATH"), "DPKG_ROOT="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Skipf("no private mount namespace here: %v %s", err, out)
	}
	o := string(out)
	if !strings.Contains(o, "postrm exit 0") {
		t.Errorf("postrm purge failed with the state on a mount point (dpkg cannot purge the package):\n%s", o)
	}
	if !strings.Contains(o, "\nlisted") || strings.Contains(o, "store") || strings.Contains(o, ".hidden") {
		t.Errorf("the mounted state was not emptied:\n%s", o)
	}
	if _, err := os.Lstat(filepath.Join(root, "var", "lib", "edgewamp")); err == nil {
		t.Errorf("the StateDirectory= symlink var/lib/edgewamp was left")
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "edgewamp")); err == nil {
		t.Errorf("purge left etc/edgewamp")
	}
}

// postinst's check of the configuration on an upgrade exported every
// variable of the unit's Environment= and EnvironmentFile=s into its own
// shell, as root, before it ran getent, setpriv, unshare, mount and
// mktemp: a PATH= or TMPDIR= meant for the service (a drop-in's
// Environment=PATH=/opt/edgewamp/bin, an env file's TMPDIR) changed what
// postinst ran. With the service's PATH, setpriv was not found and the
// check quietly ran as root only (a file only root can read passed, and
// ExecStartPre then refused it); with a TMPDIR the unit has but the host
// lacks, mktemp failed and the check lost the unit's view of its state
// directory. The unit's variables now reach the check alone, as systemd
// gives them to ExecStartPre.
//
// Dry runs of an upgrade's postinst with the edgewamp user and /var/lib
// as systemd lays it out, whose new binary says who runs it, with which
// PATH and TMPDIR, and whether it can write its state directory.
func TestPostinstUnitEnvironmentReachesOnlyTheCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private mount namespace, a change of user)")
	}
	needTool(t, "setpriv", "util-linux")
	dir := t.TempDir()
	binary := "if [ \"$1\" = check-config ]; then\n" +
		"w=no; [ -w /var/lib/edgewamp/. ] && w=yes\n" +
		"sizes=; [ -z \"${A+x}\" ] || sizes=\" sizes ${#A} ${#B} ${#C}\"\n" +
		"echo \"check-config as uid $(/usr/bin/id -u) PATH=$PATH TMPDIR=${TMPDIR-unset} state writable=$w$sizes\" >&2; exit 1\nfi\nexit 0\n"
	for _, c := range []struct{ name, file, environment, want string }{
		{"PATH in an EnvironmentFile", "PATH=/opt/edgewamp/bin\n", "",
			"check-config as uid 990 PATH=/opt/edgewamp/bin TMPDIR=unset state writable=yes"},
		{"TMPDIR in an EnvironmentFile", "TMPDIR=/nonexistent-tmp\n", "",
			"TMPDIR=/nonexistent-tmp state writable=yes"},
		{"PATH in Environment=", "", "PATH=/opt/edgewamp/bin",
			"check-config as uid 990 PATH=/opt/edgewamp/bin TMPDIR=unset state writable=yes"},
		// Three values of 60,000 bytes (PEM bundles, say): each fits in
		// an environment string (Linux takes 128 KiB), all three in one
		// do not (execve: "Argument list too long").
		{"large values", "A=" + strings.Repeat("a", 60000) + "\nB=" + strings.Repeat("b", 60000) + "\nC=" + strings.Repeat("c", 60000) + "\nPATH=/opt/edgewamp/bin\n", "",
			"check-config as uid 990 PATH=/opt/edgewamp/bin TMPDIR=unset state writable=yes sizes 60000 60000 60000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, group: true, user: true,
				stateDir: true, edgewamp: binary, environment: c.environment}
			if c.file != "" {
				env := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".env")
				if err := os.WriteFile(env, []byte(c.file), 0o600); err != nil {
					t.Fatal(err)
				}
				r.envFiles = env + " (ignore_errors=no)"
			}
			_, out := dryRunOutput(t, r)
			if !strings.Contains(out, c.want) {
				t.Errorf("want %q in postinst's output (the unit's variables given to the check alone, not to postinst's own commands):\n%s", c.want, out)
			}
		})
	}
}

// check-config refuses a data_dir its user cannot write or make (cbb3d91),
// and an upgrade's postinst runs it as the unit's user: on a machine where
// the unit has not started yet (installed, not started; the state removed
// by hand), /var/lib/edgewamp does not exist, the user edgewamp cannot make
// it under root's /var/lib, and check-config refused a data_dir there
// ("cannot be made by this user (uid 990): /var/lib: permission denied"),
// so postinst told the admin that the new release refuses a configuration
// the unit starts fine: systemd makes StateDirectory= at each start and
// gives it to the unit's user. Now check-config, where the unit is
// installed, leaves the unit's state directory (and what does not exist
// under it yet) to systemd.
//
// A dry run of an upgrade's postinst with the edgewamp user, the unit
// installed, no /var/lib/edgewamp, and the real binary checking
// README's data_dir.
func TestPostinstTakesStateDirectorySystemdMakes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a private mount namespace, a change of user)")
	}
	needTool(t, "setpriv", "util-linux")
	if _, err := os.Lstat("/var/lib/edgewamp"); err == nil {
		t.Skip("/var/lib/edgewamp exists on this host")
	}
	unit, err := os.ReadFile(filepath.Join(repo, "deploy", "edgewamp.service"))
	if err != nil {
		t.Fatal(err)
	}
	bin := nativeBinary(t)
	dir := openDir(t)
	for _, c := range []struct{ name, config string }{
		{"data_dir", "listeners:\n  - address: 127.0.0.1:8080\ndata_dir: /var/lib/edgewamp\n"},
		{"data_dir under it", "listeners:\n  - address: 127.0.0.1:8080\ndata_dir: /var/lib/edgewamp/data\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			if err := os.WriteFile(conf, []byte(c.config), 0o644); err != nil {
				t.Fatal(err)
			}
			binary := fmt.Sprintf("[ \"$1\" = check-config ] && exec %s check-config %s\nexit 0\n", shellQuote(bin), shellQuote(conf))
			calls, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, group: true, user: true,
				unit: string(unit), edgewamp: binary})
			if !hasCall(calls, "deb-systemd-invoke restart edgewamp.service") || strings.Contains(out, "refuses") {
				t.Errorf("the upgrade did not restart a router whose state directory systemd makes at its start:\n%s\ncalls:\n%s", out, strings.Join(calls, "\n"))
			}
		})
	}
}

// A unit that names its configuration through a variable of its
// environment (Debian's way: EnvironmentFile=-/etc/default/edgewamp with
// CONF=/etc/edgewamp/site.yaml, and ExecStartPre=/usr/bin/edgewamp
// check-config ${CONF}): systemd expands it at the start, and systemctl
// show prints it as written. 90fa3c3's postinst then checked the package's
// /etc/edgewamp/edgewamp.yaml, not the file the unit reads: deleted, it
// was refused ("no such file") and the upgrade left undone with a false
// "the new release refuses /etc/edgewamp/edgewamp.yaml"; kept as shipped,
// it passed while site.yaml went unchecked. Now a FILE that is one
// variable, $NAME or ${NAME}, is looked up in the unit's environment
// (Environment=, then the EnvironmentFile=s), as systemd would.
func TestPostinstChecksTheFileAUnitVariableNames(t *testing.T) {
	const site = "/etc/edgewamp/site.yaml"
	takesSite := "if [ \"$1\" = check-config ]; then [ \"$2\" = " + site + " ] && { echo \"$2: ok\"; exit 0; }; echo \"edgewamp: $2: open $2: no such file or directory\" >&2; exit 1; fi\nexit 0\n"
	env := filepath.Join(t.TempDir(), "edgewamp")
	if err := os.WriteFile(env, []byte("# /etc/default/edgewamp\nCONF="+site+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name        string
		show        map[string]string
		environment string
	}{
		{"braced variable in ExecStartPre, from an EnvironmentFile", map[string]string{
			"ExecStartPre": execShow("/usr/bin/edgewamp check-config ${CONF}"),
		}, ""},
		{"plain variable in ExecStart, from Environment=", map[string]string{
			"ExecStart": execShow("/usr/bin/edgewamp run -config $SITE -log-format json"),
		}, "SITE=" + site},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true, show: c.show,
				envFiles: env + " (ignore_errors=yes)", environment: c.environment, edgewamp: takesSite})
			if !hasCall(calls, "edgewamp check-config "+site) || !hasCall(calls, "deb-systemd-invoke restart edgewamp.service") {
				t.Errorf("the upgrade did not check %s, the file the unit's variable names, and restart:\n%s\ncalls:\n%s", site, out, strings.Join(calls, "\n"))
			}
		})
	}
}

// systemctl show prints a command's arguments unquoted
// (systemd/systemd#40079): ExecStartPre=/usr/bin/edgewamp check-config
// "/etc/edgewamp/my site.yaml" is shown as `argv[]=/usr/bin/edgewamp
// check-config /etc/edgewamp/my site.yaml`, which 90fa3c3's postinst read
// as four words, not `check-config FILE`: it checked the package's
// /etc/edgewamp/edgewamp.yaml instead (deleted: "the new release refuses",
// no restart). check-config takes one argument, so the rest of the line
// after it is the file.
func TestPostinstChecksAFileWithASpaceTheUnitNames(t *testing.T) {
	const site = "/etc/edgewamp/my site.yaml"
	takes := "if [ \"$1\" = check-config ]; then [ \"$2\" = \"" + site + "\" ] && { echo \"$2: ok\"; exit 0; }; echo \"edgewamp: $2: no such file or directory\" >&2; exit 1; fi\nexit 0\n"
	calls, out := dryRunOutput(t, scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true,
		show: map[string]string{"ExecStartPre": execShow("/usr/bin/edgewamp check-config " + site)}, edgewamp: takes})
	if !hasCall(calls, "edgewamp check-config "+site) || !hasCall(calls, "deb-systemd-invoke restart edgewamp.service") {
		t.Errorf("the upgrade did not check %q, the file the unit names, and restart:\n%s\ncalls:\n%s", site, out, strings.Join(calls, "\n"))
	}
}
