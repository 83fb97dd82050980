package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDataDirOutsideUnitStateDirWarned: a data_dir outside
// /var/lib/edgewamp passed check-config (the unit's ExecStartPre, and the
// operator's by hand) and the start then failed under the systemd unit's
// ProtectSystem=strict, which leaves only /var/lib/edgewamp writable.
// Where the unit is installed, check-config warns, naming the
// ReadWritePaths= line to add; under /var/lib/edgewamp, or without the
// unit (a container), it says nothing.
func TestDataDirOutsideUnitStateDirWarned(t *testing.T) {
	saved, savedWritable := unitFiles, dirWritable
	t.Cleanup(func() { unitFiles, dirWritable = saved, savedWritable })
	underSystemd(t, true)
	// /var/lib/edgewamp as the service's user would have it, whoever runs
	// the test (TestDataDirTheRouterCannotWriteRefused checks the check).
	dirWritable = func(string) error { return nil }
	unit := writeFile(t, "edgewamp.service", "[Service]\nProtectSystem=strict\n")
	outside := filepath.Join(t.TempDir(), "state")
	for _, k := range []struct {
		unit, dir, want string
	}{
		{unit, outside, "warning: data_dir " + outside + " is outside /var/lib/edgewamp, the one directory the systemd unit (ProtectSystem=strict) lets the router write: under it the start fails (read-only file system); add ReadWritePaths=" + outside},
		{unit, "state", "warning: data_dir state is a relative path: the systemd unit runs the router in /"},
		{unit, "/var/lib/edgewamp", ""},
		{unit, "/var/lib/edgewamp/node1", ""},
		{"/nonexistent/edgewamp.service", outside, ""},
	} {
		unitFiles = []string{k.unit}
		o, e, code := runCLI("check-config", writeConfig(t, "data_dir: "+k.dir+"\n"))
		if code != 0 || k.want == "" && strings.Contains(e, "warning") || k.want != "" && !strings.Contains(e, k.want) {
			t.Errorf("check-config, data_dir %s, unit %s: exit %d: %s%s; want %q", k.dir, k.unit, code, o, e, k.want)
		}
	}
}

// TestDataDirInUnitReadWritePathsNotWarned: the warning says to add
// ReadWritePaths= in a drop-in; once the operator has, check-config no
// longer warns (it did, at every check and every upgrade's).
func TestDataDirInUnitReadWritePathsNotWarned(t *testing.T) {
	saved := unitFiles
	t.Cleanup(func() { unitFiles = saved })
	underSystemd(t, true)
	unit := writeFile(t, "edgewamp.service", "[Service]\nProtectSystem=strict\n")
	unitFiles = []string{unit}
	outside := filepath.Join(t.TempDir(), "state")
	other := filepath.Join(t.TempDir(), "other")
	writeFileAt(t, filepath.Join(unit+".d", "override.conf"), "[Service]\nReadWritePaths=-"+other+" "+outside+"\n")
	for _, k := range []struct{ dir, want string }{
		{outside, ""},
		{filepath.Join(outside, "node1"), ""},
		{outside + "x", "warning: data_dir " + outside + "x is outside /var/lib/edgewamp"},
	} {
		o, e, code := runCLI("check-config", writeConfig(t, "data_dir: "+k.dir+"\n"))
		if code != 0 || k.want == "" && strings.Contains(e, "warning") || k.want != "" && !strings.Contains(e, k.want) {
			t.Errorf("check-config, data_dir %s, with ReadWritePaths=%s in a drop-in: exit %d: %s%s; want %q", k.dir, outside, code, o, e, k.want)
		}
	}
}

func writeFileAt(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirOthersMayWriteRefused: data_dir holds what the router trusts
// (the OAuth2 state: its signing keys, refresh tokens and revocations;
// the WAMP-CRA decoy secret), and nothing looked at who may write it: a
// data_dir another user made first (a shared /srv or /tmp path), or one
// left writable by group or others, let that user plant the files (a key
// ring of their own, a decoy secret they know) before the router read
// them, or swap them between restarts. run and check-config took such a
// directory and the secret planted in it. Now data_dir, and its oauth
// directory when it exists, must be the router's user's (or root's) and
// not writable by group or others, or the file is refused, naming the
// directory and what to do.
func TestDataDirOthersMayWriteRefused(t *testing.T) {
	plant := func(t *testing.T, dir string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	base := t.TempDir()
	open := filepath.Join(base, "open")
	plant(t, open, 0o777)
	// The other user's secret, which the router then took.
	writeFileAt(t, filepath.Join(open, decoyFile), strings.Repeat("k", decoySize))
	group := filepath.Join(base, "group")
	plant(t, group, 0o770)
	sub := filepath.Join(base, "sub")
	plant(t, sub, 0o700)
	plant(t, filepath.Join(sub, "oauth"), 0o777)
	good := filepath.Join(base, "good")
	plant(t, good, 0o700)
	cases := []struct{ dir, want string }{
		{open, "data_dir " + open + " is writable by other users"},
		{group, "data_dir " + group + " is writable by other users"},
		{sub, "data_dir " + filepath.Join(sub, "oauth") + " is writable by other users"},
		{good, ""},
		{filepath.Join(good, "new"), ""},
	}
	// Another user's directory: the router runs as a user that is not
	// its owner (geteuid says so; as root, the directory is given away).
	theirs := filepath.Join(base, "theirs")
	plant(t, theirs, 0o700)
	owner := os.Geteuid()
	if owner == 0 {
		owner = 65534
		if err := os.Chown(theirs, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
	saved := geteuid
	t.Cleanup(func() { geteuid = saved })
	cases = append(cases, struct{ dir, want string }{theirs, fmt.Sprintf("data_dir %s is owned by uid %d, not by the router's user (uid %d)", theirs, owner, owner+1)})
	for _, k := range cases {
		geteuid = saved
		if k.dir == theirs {
			geteuid = func() int { return owner + 1 }
		}
		cfg := writeFile(t, "dd.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1, anonymous: true}]\ngateway: {listen: \"off\"}\ndata_dir: "+k.dir+"\n")
		o, e, code := runCLI("check-config", cfg)
		if k.want == "" {
			if code != 0 {
				t.Errorf("check-config, data_dir %s: exit %d: %s%s", k.dir, code, o, e)
			}
			continue
		}
		if code != 1 || !strings.Contains(e, k.want) {
			t.Errorf("check-config, data_dir %s: exit %d: %s%s; want exit 1 and %q", k.dir, code, o, e, k.want)
		}
		if k.dir == open { // the binary: run as it is
			if started, log := runStarts(t, cfg); started || !strings.Contains(log, k.want) {
				t.Errorf("run, data_dir %s: started %v, want refused with %q:\n%s", k.dir, started, k.want, log)
			}
		}
	}

	// Root checks the service user's directory (check-config by hand, or
	// in the package's upgrade): any owner.
	geteuid = func() int { return 0 }
	if o, e, code := runCLI("check-config", writeFile(t, "dd.yaml", "realms: [{name: realm1}]\ngateway: {listen: \"off\"}\ndata_dir: "+theirs+"\n")); code != 0 {
		t.Errorf("check-config as root, data_dir %s of uid %d: exit %d: %s%s", theirs, owner, code, o, e)
	}
}

// TestMeshStoreDirOthersMayWriteRefused: the mesh's JetStream store holds
// the state the mesh shares (the OAuth2 signing keys, tokens and
// revocations of every node, the single claims), and fa40006 refused a
// data_dir/mesh others may write or own, but not the same store named by
// mesh.store_dir (deploy/mesh's configurations do): a mode 0777 one, or
// another user's, passed check-config. Now mesh.store_dir, when the mesh
// is on and the directory exists, is held to data_dir's rule.
func TestMeshStoreDirOthersMayWriteRefused(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "js-open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(base, "js-good")
	if err := os.Mkdir(good, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := func(dir, cluster string) string {
		return writeFile(t, "js.yaml", "realms: [{name: realm1}]\ngateway: {listen: \"off\"}\nmesh:\n  node: n1\n"+cluster+"  store_dir: "+dir+"\n")
	}
	on := "  cluster: {listen: \"127.0.0.1:0\"}\n"
	want := "mesh.store_dir " + open + " is writable by other users"
	if o, e, code := runCLI("check-config", cfg(open, on)); code != 1 || !strings.Contains(e, want) {
		t.Errorf("check-config, mesh.store_dir %s (0777): exit %d: %s%s; want exit 1 and %q", open, code, o, e, want)
	}
	for _, k := range []struct{ dir, cluster string }{
		{good, on},
		{filepath.Join(good, "new"), on},
		{open, ""}, // no mesh: the store is not used
	} {
		if o, e, code := runCLI("check-config", cfg(k.dir, k.cluster)); code != 0 {
			t.Errorf("check-config, mesh.store_dir %s, mesh on %v: exit %d: %s%s", k.dir, k.cluster != "", code, o, e)
		}
	}
}

// TestDrainPastUnitStopTimeoutWarned: shutdown.drain_timeout is taken up
// to 10m, but a stop takes the drain and up to 15 s more (GOODBYE, a mesh
// node's leave), and the systemd unit kills the router after its
// TimeoutStopSec=30s: with `drain_timeout: 60s` every stop and restart
// (an upgrade's included) ended in SIGKILL half-way through the drain,
// calls in progress lost and no GOODBYE, and check-config said ok.
// README says to raise TimeoutStopSec with the drain; where the unit is
// installed check-config now warns when its TimeoutStopSec= (TimeoutSec=,
// a drop-in's included) is below the drain and 15 s, naming the value to
// set.
func TestDrainPastUnitStopTimeoutWarned(t *testing.T) {
	saved := unitFiles
	t.Cleanup(func() { unitFiles = saved })
	underSystemd(t, true)
	dir := t.TempDir()
	unit := filepath.Join(dir, "edgewamp.service")
	if err := os.WriteFile(unit, []byte("[Service]\nKillSignal=SIGTERM\nTimeoutStartSec=30s\nTimeoutStopSec=30s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dropIns := filepath.Join(dir, "edgewamp.service.d")
	if err := os.Mkdir(dropIns, 0o755); err != nil {
		t.Fatal(err)
	}
	want := "warning: shutdown.drain_timeout 60s and up to 15 s more for the sessions' GOODBYE and a mesh node's leave (75s) pass the systemd unit's TimeoutStopSec=30s"
	for _, k := range []struct {
		name, drain, dropIn, want string
	}{
		{"past the unit's", "60s", "", want},
		{"just past", "16s", "", "(31s) pass the systemd unit's TimeoutStopSec=30s"},
		{"the default", "", "", ""},
		{"within", "15s", "", ""},
		{"a drop-in raises it", "60s", "[Service]\nTimeoutStopSec=1min 30s\n", ""},
		{"a drop-in's TimeoutSec=", "60s", "[Service]\nTimeoutSec=2m\n", ""},
		{"a drop-in's too low", "60s", "[Service]\nTimeoutStopSec=45\n", "(75s) pass the systemd unit's TimeoutStopSec=45"},
		{"infinity", "60s", "[Service]\nTimeoutStopSec=infinity\n", ""},
		// The gateway's requests in progress may run 5 s before the
		// GOODBYEs whatever the drain (TestGoodbyeWindowAfterGatewayDrain).
		{"a short drain with the gateway", "1s", "[Service]\nTimeoutStopSec=18\n", "shutdown.drain_timeout 1s (the gateway's requests in progress: 5s) and up to 15 s more for the sessions' GOODBYE and a mesh node's leave (20s) pass the systemd unit's TimeoutStopSec=18"},
		// (The drain's line ends with its closing brace.)
		{"a short drain without the gateway", "1s}\ngateway: {listen: \"off\"", "[Service]\nTimeoutStopSec=18\n", ""},
	} {
		t.Run(k.name, func(t *testing.T) {
			os.Remove(filepath.Join(dropIns, "stop.conf"))
			if k.dropIn != "" {
				if err := os.WriteFile(filepath.Join(dropIns, "stop.conf"), []byte(k.dropIn), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			unitFiles = []string{unit}
			conf := "listeners: [{address: \"127.0.0.1:0\"}]\n"
			if k.drain != "" {
				conf += "shutdown: {drain_timeout: " + k.drain + "}\n"
			}
			o, e, code := runCLI("check-config", writeConfig(t, conf))
			if code != 0 || k.want == "" && strings.Contains(e, "TimeoutStopSec") || k.want != "" && !strings.Contains(e, k.want) {
				t.Errorf("check-config, drain_timeout %q: exit %d: %s%s; want %q", k.drain, code, o, e, k.want)
			}
		})
	}
}

// TestDataDirTheRouterCannotWriteRefused: check-config took a data_dir
// (or mesh.store_dir) its user cannot write, an existing directory of
// root's 0755 (`mkdir /srv/edgewamp` without the chown README asks for)
// or a new one under such a directory (a container's nonroot user and
// data_dir /var/lib/edgewamp), and run then failed at its start ("mkdir
// ...: permission denied"): the unit's ExecStartPre and an upgrade's
// postinst passed a file the start refused. Now check-config says which
// directory this user cannot write. As another user than root (setpriv).
func TestDataDirTheRouterCannotWriteRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (to run check-config as another user)")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("no setpriv")
	}
	base, err := os.MkdirTemp("", "edgewamp-datadir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	rootDir := filepath.Join(base, "root")
	own := filepath.Join(base, "own")
	for _, d := range []string{rootDir, own} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(own, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ key, dir, want string }{
		{"data_dir", rootDir, "data_dir " + rootDir + " cannot be written by this user (uid 65532): " + rootDir + ": permission denied"},
		{"data_dir", filepath.Join(rootDir, "new"), "data_dir " + filepath.Join(rootDir, "new") + " cannot be made by this user (uid 65532): " + rootDir + ": permission denied"},
		{"data_dir", filepath.Join(own, "new"), ""},
		{"store_dir", filepath.Join(rootDir, "js"), "mesh.store_dir " + filepath.Join(rootDir, "js") + " cannot be made by this user (uid 65532)"},
	} {
		conf := "listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: off}\n"
		if c.key == "data_dir" {
			conf += "data_dir: " + c.dir + "\n"
		} else {
			conf += "mesh: {node: n1, leaf: {listen: \"127.0.0.1:0\"}, store_dir: " + c.dir + "}\n"
		}
		p := filepath.Join(base, "c.yaml")
		if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("setpriv", "--reuid=65532", "--regid=65532", "--clear-groups", binPath, "check-config", p).CombinedOutput()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %s: %v %s", c.key, c.dir, err, out)
		case c.want != "" && (err == nil || !strings.Contains(string(out), c.want)):
			t.Errorf("%s %s: %v %s; want a refusal saying %q", c.key, c.dir, err, out, c.want)
		}
	}
}

// TestUnitReadAsSystemdDoes: systemd reads one unit file, /etc's when
// there is one (systemctl edit --full copies the package's there, and the
// package's is then ignored), and then every drop-in of every directory
// sorted by its file name (a same-named one in /etc replacing the
// others). check-config read every unit file in turn, then the drop-ins
// directory by directory: under a full copy without TimeoutStopSec= (90 s,
// systemd's default) the package's 30s still counted, so a drain_timeout
// of 60s was warned of, and the package's ReadWritePaths= hid a data_dir
// the unit cannot write; /etc's 10-local.conf overrode the package's
// 90-vendor.conf, which systemd reads last.
func TestUnitReadAsSystemdDoes(t *testing.T) {
	saved, savedWritable := unitFiles, dirWritable
	t.Cleanup(func() { unitFiles, dirWritable = saved, savedWritable })
	underSystemd(t, true)
	dirWritable = func(string) error { return nil }
	usr, etc := t.TempDir(), t.TempDir()
	pkg := filepath.Join(usr, "edgewamp.service")
	full := filepath.Join(etc, "edgewamp.service")
	srv := filepath.Join(t.TempDir(), "srv")
	writeFileAt(t, pkg, "[Service]\nProtectSystem=strict\nTimeoutStopSec=30s\nReadWritePaths="+srv+"\n")
	const warned = "pass the systemd unit's TimeoutStopSec="
	for _, k := range []struct {
		name    string
		files   map[string]string
		dataDir string
		want    []string // in stderr; "" entries none
		none    []string
	}{
		{"a full copy in /etc replaces the package's", map[string]string{full: "[Service]\nProtectSystem=strict\n"}, srv,
			[]string{"warning: data_dir " + srv + " is outside /var/lib/edgewamp"}, []string{warned}},
		{"drop-ins by name across directories", map[string]string{
			filepath.Join(pkg+".d", "90-vendor.conf"): "[Service]\nTimeoutStopSec=30s\n",
			filepath.Join(full+".d", "10-local.conf"): "[Service]\nTimeoutStopSec=120s\n",
			filepath.Join(full+".d", "50-paths.conf"): "[Service]\nReadWritePaths=/srv/other\n",
			filepath.Join(pkg+".d", "50-paths.conf"):  "[Service]\nReadWritePaths=/srv/hidden\n",
		}, "", []string{warned + "30s"}, nil},
	} {
		t.Run(k.name, func(t *testing.T) {
			for p, b := range k.files {
				writeFileAt(t, p, b)
				t.Cleanup(func() { os.Remove(p) })
			}
			unitFiles = []string{pkg, full}
			conf := "shutdown: {drain_timeout: 60s}\n"
			if k.dataDir != "" {
				conf += "data_dir: " + k.dataDir + "\n"
			}
			o, e, code := runCLI("check-config", writeConfig(t, conf))
			for _, w := range k.want {
				if !strings.Contains(e, w) {
					t.Errorf("want %q: exit %d: %s%s", w, code, o, e)
				}
			}
			for _, n := range k.none {
				if strings.Contains(e, n) {
					t.Errorf("want no %q: exit %d: %s%s", n, code, o, e)
				}
			}
			if rw := unitReadWritePaths(); len(k.files) > 1 && (len(rw) != 2 || rw[0] != srv || rw[1] != "/srv/other") {
				t.Errorf("ReadWritePaths: %q, want the unit's and /etc's 50-paths.conf's, which replaces the package's [%s /srv/other]", rw, srv)
			}
		})
	}
}

// underSystemd makes check-config take systemd for running this machine
// (booted) or not, whatever runs the test, until it ends.
func underSystemd(t *testing.T, booted bool) {
	saved := systemdBooted
	t.Cleanup(func() { systemdBooted = saved })
	systemdBooted = func() bool { return booted }
}

// TestUnitWarningsOnlyUnderSystemd: the warnings about the systemd unit
// (a data_dir outside its StateDirectory=, a drain past its
// TimeoutStopSec=) and the StateDirectory= left to systemd are about a
// unit systemd runs. In a container holding the package (a Debian image
// with the .deb installed, run by docker: no systemd) check-config warned
// of ProtectSystem=strict and of a TimeoutStopSec=30s that nothing
// applies there. Now they need systemd to run the machine, as postinst's
// start of the unit does (/run/systemd/system).
func TestUnitWarningsOnlyUnderSystemd(t *testing.T) {
	saved, savedWritable := unitFiles, dirWritable
	t.Cleanup(func() { unitFiles, dirWritable = saved, savedWritable })
	dirWritable = func(string) error { return nil }
	unitFiles = []string{writeFile(t, "edgewamp.service", "[Service]\nProtectSystem=strict\nStateDirectory=edgewamp\nTimeoutStopSec=30s\n")}
	conf := writeConfig(t, "data_dir: "+filepath.Join(t.TempDir(), "state")+"\nshutdown: {drain_timeout: 60s}\n")
	for _, booted := range []bool{true, false} {
		underSystemd(t, booted)
		o, e, code := runCLI("check-config", conf)
		if got := strings.Count(e, "warning: "); code != 0 || booted && got != 2 || !booted && got != 0 {
			t.Errorf("systemd running: %v: exit %d, %d warnings (want %d): %s%s", booted, code, got, map[bool]int{true: 2}[booted], o, e)
		}
	}
}
