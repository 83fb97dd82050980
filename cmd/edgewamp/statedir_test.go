package main

import (
	"os"
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
	saved := unitFiles
	t.Cleanup(func() { unitFiles = saved })
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
