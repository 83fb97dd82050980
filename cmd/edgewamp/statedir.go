package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// unitStateDir is the one directory the systemd unit
// (deploy/edgewamp.service: ProtectSystem=strict, StateDirectory=edgewamp)
// lets the router write, besides its private /tmp.
const unitStateDir = "/var/lib/edgewamp"

// unitFiles are where the systemd unit is installed (the package's, a
// tarball's); a test sets its own.
var unitFiles = []string{"/usr/lib/systemd/system/edgewamp.service", "/lib/systemd/system/edgewamp.service", "/etc/systemd/system/edgewamp.service"}

// unitInstalled reports whether the systemd unit is installed here.
func unitInstalled() bool {
	for _, f := range unitFiles {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}

// stateDirWarnings says, for check-config on a machine where the systemd
// unit is installed, which directory the router writes (data_dir,
// mesh.store_dir) lies outside /var/lib/edgewamp: under the unit's
// ProtectSystem=strict everything else is read-only (and /tmp private to
// the service, emptied at each restart), so the file passed check-config
// and the start then failed ("read-only file system"). The unit needs
// ReadWritePaths= for it, in a drop-in.
func (c *config) stateDirWarnings() []string {
	if !unitInstalled() {
		return nil
	}
	var out []string
	rw := unitReadWritePaths()
	say := func(key, dir string) {
		if dir == "" {
			return
		}
		d := filepath.Clean(dir)
		if within(d, unitStateDir) || slices.ContainsFunc(rw, func(p string) bool { return within(d, p) }) {
			return
		}
		if !filepath.IsAbs(d) {
			out = append(out, fmt.Sprintf("%s %s is a relative path: the systemd unit runs the router in /, read-only under its ProtectSystem=strict, so the start fails there (read-only file system); give an absolute path under %s", key, dir, unitStateDir))
			return
		}
		out = append(out, fmt.Sprintf("%s %s is outside %s, the one directory the systemd unit (ProtectSystem=strict) lets the router write: under it the start fails (read-only file system); add ReadWritePaths=%s to the unit in a drop-in (systemctl edit edgewamp), or use a directory under %s",
			key, dir, unitStateDir, d, unitStateDir))
	}
	say("data_dir", c.DataDir)
	if c.Mesh.enabled() {
		say("mesh.store_dir", c.Mesh.StoreDir)
	}
	return out
}

// within reports whether the clean path d is dir or under it.
func within(d, dir string) bool {
	return d == dir || strings.HasPrefix(d, strings.TrimSuffix(dir, "/")+"/")
}

// unitReadWritePaths returns the ReadWritePaths= the installed unit and
// its drop-ins (unit.d/*.conf, and /etc's and /run's) give, which the
// warnings tell the operator to add: once added, a directory under one is
// writable and not warned of (it was, at every check-config and every
// upgrade's). An empty ReadWritePaths= resets the list, as systemd reads
// it; a "-" or "+" before a path is dropped.
func unitReadWritePaths() []string {
	var files []string
	for _, u := range unitFiles {
		if _, err := os.Stat(u); err != nil {
			continue
		}
		files = append(files, u)
		base := filepath.Base(u) + ".d"
		for _, d := range []string{u + ".d", filepath.Join("/etc/systemd/system", base), filepath.Join("/run/systemd/system", base)} {
			m, _ := filepath.Glob(filepath.Join(d, "*.conf"))
			files = append(files, m...)
		}
	}
	var rw []string
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		b, err := readRegularFile(f, 1<<20)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			v, ok := strings.CutPrefix(strings.TrimSpace(line), "ReadWritePaths=")
			if !ok {
				continue
			}
			if strings.TrimSpace(v) == "" {
				rw = nil
				continue
			}
			for _, p := range strings.Fields(v) {
				if p = strings.TrimLeft(p, "-+"); filepath.IsAbs(p) {
					rw = append(rw, filepath.Clean(p))
				}
			}
		}
	}
	return rw
}

// dataDirError wraps an error of writing data_dir; a read-only file
// system, which is what the systemd unit makes of a data_dir outside
// /var/lib/edgewamp, says what to add.
func dataDirError(dir string, err error) error {
	if errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("data_dir: %w (under the systemd unit, ProtectSystem=strict, only %s is writable: add ReadWritePaths=%s in a drop-in, systemctl edit edgewamp)", err, unitStateDir, filepath.Clean(dir))
	}
	return fmt.Errorf("data_dir: %w", err)
}
