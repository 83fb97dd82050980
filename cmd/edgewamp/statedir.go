package main

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// unitStateDir is the one directory the systemd unit
// (deploy/edgewamp.service: ProtectSystem=strict, StateDirectory=edgewamp)
// lets the router write, besides its private /tmp.
const unitStateDir = "/var/lib/edgewamp"

// unitFiles are where the systemd unit is installed (the package's, a
// tarball's); a test sets its own.
var unitFiles = []string{"/usr/lib/systemd/system/edgewamp.service", "/lib/systemd/system/edgewamp.service", "/etc/systemd/system/edgewamp.service"}

// systemdBooted reports whether systemd runs this machine, as sd_booted(3)
// tells (/run/systemd/system); a test sets another.
var systemdBooted = func() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// unitInstalled reports whether the systemd unit is installed here, and
// systemd runs it: in a container holding the package (no systemd there)
// the unit's ProtectSystem=, StateDirectory= and TimeoutStopSec= do not
// apply, and check-config warned of them.
func unitInstalled() bool {
	if !systemdBooted() {
		return false
	}
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
	var rw []string
	for _, b := range unitContents() {
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

// unitContents returns the installed unit's files as systemd reads them,
// a later setting replacing an earlier one: the one unit file it uses (the
// last of unitFiles that exists: /etc's, which systemctl edit --full
// copies there, replaces the package's), then the drop-ins (unit.d/*.conf
// beside each of unitFiles, /run's and /etc's) sorted by file name across
// the directories, a same-named one of a later directory replacing the
// earlier. Before, every unit file was read in turn and the drop-ins
// directory by directory: the package's TimeoutStopSec=30s still counted
// under a full copy without it (systemd's default is 90s), and /etc's
// 10-local.conf overrode the package's 90-vendor.conf.
func unitContents() [][]byte {
	unit := ""
	for _, u := range unitFiles {
		if _, err := os.Stat(u); err == nil {
			unit = u
		}
	}
	if unit == "" {
		return nil
	}
	base := filepath.Base(unit) + ".d"
	var dirs []string
	for _, u := range unitFiles {
		dirs = append(dirs, u+".d")
	}
	dirs = append(dirs, filepath.Join("/run/systemd/system", base), filepath.Join("/etc/systemd/system", base))
	dropIns := map[string]string{}
	for _, d := range dirs {
		m, _ := filepath.Glob(filepath.Join(d, "*.conf"))
		for _, f := range m {
			dropIns[filepath.Base(f)] = f
		}
	}
	files := []string{unit}
	for _, name := range slices.Sorted(maps.Keys(dropIns)) {
		files = append(files, dropIns[name])
	}
	var out [][]byte
	for _, f := range files {
		if b, err := readRegularFile(f, 1<<20); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// stopMargin is what a stop takes past shutdown.drain_timeout at most:
// GOODBYE to the sessions and the wait for them (10 s), a mesh node's
// leave (5 s) (README, "Commands").
const stopMargin = 15 * time.Second

// stopTimeoutWarnings says, for check-config where the systemd unit is
// installed, when a stop may outlast the unit's TimeoutStopSec= (the
// shipped unit's 30s, or a drop-in's, or TimeoutSec=), after which systemd
// kills the router: shutdown.drain_timeout is taken up to 10m, and with
// 60s every stop and restart (an upgrade's too) ended in SIGKILL in the
// middle of the drain, the calls in progress lost and no GOODBYE sent.
func (c *config) stopTimeoutWarnings() []string {
	if !unitInstalled() {
		return nil
	}
	value := ""
	for _, b := range unitContents() {
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			for _, key := range []string{"TimeoutStopSec=", "TimeoutSec="} {
				if v, ok := strings.CutPrefix(line, key); ok {
					value = strings.TrimSpace(v)
				}
			}
		}
	}
	limit, ok := unitTimespan(value)
	drain, gw := time.Duration(c.Shutdown.DrainTimeout), ""
	need := drain
	if !c.gatewayOff() && drain < gatewayDrainMin {
		// The gateway's requests may run 5 s whatever the drain, and the
		// GOODBYEs' window counts from their end.
		need, gw = gatewayDrainMin, " (the gateway's requests in progress: 5s)"
	}
	need += stopMargin
	if !ok || limit <= 0 || need <= limit {
		return nil
	}
	return []string{fmt.Sprintf("shutdown.drain_timeout %s%s and up to 15 s more for the sessions' GOODBYE and a mesh node's leave (%s) pass the systemd unit's TimeoutStopSec=%s: a stop or restart that takes that long ends in SIGKILL (calls in progress lost, no GOODBYE); raise it in a drop-in (systemctl edit edgewamp): [Service] TimeoutStopSec=%ds",
		seconds(drain), gw, seconds(need), value, int((need+time.Second-1)/time.Second))}
}

// seconds writes d as systemd and the README do, 90s rather than 1m30s.
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// unitTimespan reads a systemd time span ("30", "30s", "1min 30s", "2m",
// "500ms"; systemd.time(7)): false when it cannot, 0 for "infinity" and 0
// (no timeout).
func unitTimespan(v string) (time.Duration, bool) {
	if v == "infinity" {
		return 0, true
	}
	units := map[string]time.Duration{"": time.Second, "us": time.Microsecond, "usec": time.Microsecond,
		"ms": time.Millisecond, "msec": time.Millisecond, "s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
		"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
		"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour, "d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour}
	var total time.Duration
	rest := strings.TrimSpace(v)
	if rest == "" {
		return 0, false
	}
	for rest != "" {
		i := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if i < 0 {
			i = len(rest)
		}
		n, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, false
		}
		rest = strings.TrimLeft(rest[i:], " ")
		j := strings.IndexFunc(rest, func(r rune) bool { return r < 'a' || r > 'z' })
		if j < 0 {
			j = len(rest)
		}
		u, ok := units[rest[:j]]
		if !ok {
			return 0, false
		}
		total += time.Duration(n * float64(u))
		rest = strings.TrimLeft(rest[j:], " ")
	}
	return total, true
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

// writableDirs refuses, for check-config, a data_dir, or the mesh's
// store_dir on a node that keeps the store, that this user cannot write:
// an existing directory (root's 0755: `mkdir /srv/edgewamp` without the
// chown), or a new one whose nearest existing parent it cannot write (a
// container's nonroot user and data_dir /var/lib/edgewamp). validate looks
// at their kind and owners only, and run then failed at its start
// ("mkdir ...: permission denied") where check-config, the unit's
// ExecStartPre and an upgrade's postinst (as the service's user) said ok.
// Where the unit is installed, /var/lib/edgewamp is its StateDirectory=,
// which systemd makes at each start and gives to the unit's user: a
// directory there is left to systemd unless it is a subdirectory that
// exists already (an upgrade's postinst, as the user edgewamp before the
// unit had ever started, refused data_dir /var/lib/edgewamp: "cannot be
// made by this user: /var/lib: permission denied").
func (c *config) writableDirs(errs *[]error) {
	unit := unitInstalled()
	check := func(key, dir string, path ...any) {
		if dir == "" {
			return
		}
		d := filepath.Clean(dir)
		for p := d; ; p = filepath.Dir(p) {
			fi, err := os.Stat(p)
			if err == nil {
				if !fi.IsDir() {
					return // validate says
				}
				if unit && within(d, unitStateDir) && (p == unitStateDir || !within(p, unitStateDir)) {
					return // systemd's StateDirectory= at the start
				}
				if err := dirWritable(p); err != nil {
					verb, hint := "made", "; make it, owned by the router's user"
					if p == d {
						verb, hint = "written", "; chown it to the router's user"
					}
					if errors.Is(err, syscall.EROFS) {
						hint = fmt.Sprintf(" (under the systemd unit, ProtectSystem=strict, only %s is writable: add ReadWritePaths= in a drop-in, systemctl edit edgewamp)", unitStateDir)
					}
					c.errAt(errs, fmt.Sprintf("%s %s cannot be %s by this user (uid %d): %s: %v%s", key, dir, verb, geteuid(), p, err, hint), path...)
				}
				return
			}
			if filepath.Dir(p) == p {
				return
			}
		}
	}
	check("data_dir", c.DataDir, "data_dir")
	if m := &c.Mesh; m.enabled() && m.NatsURL == "" && len(m.Leaf.Remotes) == 0 &&
		(len(m.Cluster.Routes) > 0 || m.Leaf.Listen != "" && m.Cluster.Listen == "") {
		// A node that keeps the store (edge/node.go), in store_dir.
		check("mesh.store_dir", m.StoreDir, "mesh", "store_dir")
	}
}

// dirWritable says whether this user may make and remove entries in the
// directory p (nil), as the kernel would decide; a test sets another.
var dirWritable = func(p string) error {
	return unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK|unix.X_OK, unix.AT_EACCESS)
}
