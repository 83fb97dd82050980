package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
}

func dryRun(t *testing.T, r scriptRun) []string {
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
			if err := os.WriteFile(group, []byte("root:x:0:\nedgewamp:x:990:\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			setup += "mount --bind " + group + " /etc/group && "
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
		if r.systemd && strings.Contains(string(out), "unshare") {
			t.Skipf("no private mount namespace here: %s", out)
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
	return calls
}

func hasCall(calls []string, prefix string) bool {
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

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
		{"upgrade under systemd: restart",
			scriptRun{script: "postinst", args: []string{"configure", "0.9.0"}, systemd: true},
			[]string{"deb-systemd-helper enable edgewamp.service", "deb-systemd-invoke restart edgewamp.service"},
			[]string{"deb-systemd-invoke start"}},
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
