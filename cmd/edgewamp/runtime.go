package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"
)

// The runtime: block sets the Go runtime's memory limit (GOMEMLIMIT) and
// garbage-collector target (GOGC) from the configuration, so that an
// operator tunes the router for a small board in the file they already
// edit, and a SIGHUP applies a change without a restart.
//
// Defaults, chosen for a 512 MiB board:
//
//   - memory_limit: auto. Half of the memory the process may use: the
//     smaller of half the physical RAM and 90 % of its cgroup's memory.max
//     (when the unit sets MemoryMax=). On a 512 MiB board that is 256 MiB:
//     the other half is left to the kernel, the page cache, systemd,
//     journald, sshd and the board's own application. The limit is soft:
//     the heap may grow up to it before the collector works harder; a
//     router whose live data outgrows it slows down (the collector may
//     take up to half the CPU) instead of pushing the board into swap or
//     the OOM killer. An idle router holds a few MiB, so the limit costs
//     nothing until the board is under real pressure.
//   - gogc: 100, Go's own. On a board with a memory limit a lower GOGC
//     buys little memory (the limit already caps the heap's growth) for
//     more collector CPU, which small ARM cores have least of; see
//     bench/RESULTS.md ("Footprint") for the figures behind this.
//
//   - heap_floor: auto. 16 MiB on a mesh node, none otherwise. GOGC
//     alone lets a small heap grow by only 4 MiB (Go's minimum) before
//     the collector runs again; a mesh node's NATS traffic allocates
//     (a few hundred bytes per message crossing it), and at a live heap of
//     2 MiB it collected every 70-100 ms at 27,000 calls/s across nodes.
//     Each cycle slows the node's calls for a few ms, and that was the
//     mesh's p99: 2.2 ms, 1.1 ms with 16 MiB of headroom
//     (bench/history.md). The floor is headroom, not a target: the
//     collector still runs at the memory limit, and once GOGC's own
//     growth is larger (a live heap above 16 MiB at GOGC 100) the floor
//     no longer matters. A router alone allocates almost nothing per
//     message, and has no use for it.
//
// An explicit GOMEMLIMIT or GOGC in the environment (systemd's
// Environment=) is kept when the configuration leaves the key at its
// default (memory_limit auto, gogc unset).

// runtimeConfig is the runtime: block.
type runtimeConfig struct {
	MemoryLimit memLimit  `yaml:"memory_limit"`
	GOGC        gcPercent `yaml:"gogc"`
	HeapFloor   heapFloor `yaml:"heap_floor"`
}

// heapFloor is "auto" (the zero value), "off", or a size.
type heapFloor struct {
	set   bool
	bytes int64 // 0 for off
}

// autoHeapFloor is heap_floor: auto on a mesh node.
const autoHeapFloor = 16 << 20

func (h *heapFloor) UnmarshalYAML(n *yaml.Node) error {
	v, auto, off, err := autoOffSize(n, "heap_floor", "16MiB")
	switch {
	case err != nil:
		return err
	case auto:
		*h = heapFloor{}
	case off:
		*h = heapFloor{set: true}
	case v > 1<<30:
		return runtimeError("line %d: runtime.heap_floor %s is above 1GiB", n.Line, n.Value)
	default:
		*h = heapFloor{set: true, bytes: int64(v)} // 0 is off too
	}
	return nil
}

// autoOffSize decodes runtime.key: auto (or empty), off, or a size.
func autoOffSize(n *yaml.Node, key, example string) (v int, auto, off bool, err error) {
	if n.Kind != yaml.ScalarNode {
		// A yaml.TypeError: decoding goes on, the file's other errors
		// shown with it (before, "line 6: want auto, off or a size", no
		// key, the last error shown).
		got := map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[n.Kind]
		return 0, false, false, &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: runtime.%s takes auto, off or a size like %q, not %s", n.Line, key, example, cmp.Or(got, "that"))}}
	}
	switch strings.TrimSpace(n.Value) {
	case "auto", "":
		return 0, true, false, nil
	case "off":
		return 0, false, true, nil
	}
	if v, err = parseSize(n.Value); err != nil {
		return 0, false, false, runtimeError("line %d: runtime.%s: want auto, off or a size: %v", n.Line, key, err)
	}
	return v, false, false, nil
}

// runtimeError is a runtime key's refusal as yaml's TypeError, which yaml
// gathers with the file's other errors and decodes on past (as a
// duration's or a size's, keyedError.typeError). Before, these were plain
// errors, which ended the decoding: check-config showed a gogc of 5 or a
// heap_floor over 1GiB alone, every other error of the file unsaid, those
// on the lines before it too.
func runtimeError(format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf(format, args...)}}
}

// memLimit is "auto" (the zero value), "off", or a size.
type memLimit struct {
	set   bool  // a value was given other than auto
	bytes int64 // math.MaxInt64 for off
}

func (m *memLimit) UnmarshalYAML(n *yaml.Node) error {
	v, auto, off, err := autoOffSize(n, "memory_limit", "256MiB")
	switch {
	case err != nil:
		return err
	case auto:
		*m = memLimit{}
	case off:
		*m = memLimit{set: true, bytes: math.MaxInt64}
	case v < 16<<20:
		return runtimeError("line %d: runtime.memory_limit %s is below 16MiB: the router would spend its time collecting garbage", n.Line, n.Value)
	default:
		*m = memLimit{set: true, bytes: int64(v)}
	}
	return nil
}

// gcPercent is a GOGC value: a percentage, or "off" (-1). The zero value
// means unset.
type gcPercent struct {
	set     bool
	percent int // -1 for off
}

func (g *gcPercent) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		got := map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[n.Kind]
		return runtimeError("line %d: runtime.gogc takes a percentage like 100, or off, not %s", n.Line, cmp.Or(got, "that"))
	}
	if strings.TrimSpace(n.Value) == "off" {
		*g = gcPercent{set: true, percent: -1}
		return nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(n.Value))
	if err != nil || v < 10 || v > 10000 {
		return runtimeError("line %d: runtime.gogc must be a percentage between 10 and 10000, or off, not %q", n.Line, n.Value)
	}
	*g = gcPercent{set: true, percent: v}
	return nil
}

// validateRuntime checks the combination of the runtime keys.
func (c *config) validateRuntime(errs *[]error) {
	rt := c.Runtime
	if rt.GOGC.set && rt.GOGC.percent < 0 && rt.MemoryLimit.set && rt.MemoryLimit.bytes == math.MaxInt64 {
		c.errAt(errs, "runtime.gogc off needs a runtime.memory_limit (auto or a size), or the heap grows without bound", "runtime", "gogc")
	}
}

// runtimeSettings is what applyRuntime installed, for the log.
type runtimeSettings struct {
	MemoryLimit int64  // bytes; math.MaxInt64 = none
	LimitFrom   string // config, auto, environment
	GOGC        int    // -1 = off
	GOGCFrom    string // config, environment, default
	HeapFloor   int64  // bytes; 0 = none
}

// The runtime's settings as the environment made them, before any
// configuration changed them (a reload that drops a key goes back to these).
var (
	envMemoryLimit = debug.SetMemoryLimit(-1) // -1 queries
	envGCPercent   = readGCPercent()
)

func readGCPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// applyRuntime installs the memory limit, GC percentage and heap floor of
// rt in the Go runtime (mesh: the node runs the mesh, for heap_floor:
// auto). It is called at start and on every reload; it does not block and
// is not safe for concurrent use with itself.
func applyRuntime(rt runtimeConfig, mesh bool) runtimeSettings {
	var s runtimeSettings
	switch {
	case rt.MemoryLimit.set:
		s.MemoryLimit, s.LimitFrom = rt.MemoryLimit.bytes, "config"
	case os.Getenv("GOMEMLIMIT") != "":
		s.MemoryLimit, s.LimitFrom = envMemoryLimit, "environment"
	default:
		s.MemoryLimit, s.LimitFrom = autoMemoryLimit(), "auto"
	}
	debug.SetMemoryLimit(s.MemoryLimit)
	switch {
	case rt.GOGC.set:
		s.GOGC, s.GOGCFrom = rt.GOGC.percent, "config"
		debug.SetGCPercent(s.GOGC)
	case os.Getenv("GOGC") != "":
		s.GOGC, s.GOGCFrom = envGCPercent, "environment"
		debug.SetGCPercent(s.GOGC)
	default:
		s.GOGC, s.GOGCFrom = 100, "default"
		debug.SetGCPercent(100)
	}
	switch {
	case rt.HeapFloor.set:
		s.HeapFloor = rt.HeapFloor.bytes
	case mesh:
		s.HeapFloor = autoHeapFloor
	}
	if s.GOGC < 0 {
		s.HeapFloor = 0 // no percentage to raise
	}
	gcFloor.set(s.GOGC, s.HeapFloor)
	return s
}

// logAttrs renders s for a log line.
func (s runtimeSettings) logAttrs() []any {
	limit := "off"
	if s.MemoryLimit != math.MaxInt64 {
		limit = formatSize(s.MemoryLimit)
	}
	gogc := "off"
	if s.GOGC >= 0 {
		gogc = strconv.Itoa(s.GOGC)
	}
	floor := "off"
	if s.HeapFloor > 0 {
		floor = formatSize(s.HeapFloor)
	}
	return []any{slog.String("memory_limit", limit), slog.String("memory_limit_from", s.LimitFrom),
		slog.String("gogc", gogc), slog.String("gogc_from", s.GOGCFrom), slog.String("heap_floor", floor)}
}

// autoMemoryLimit is the default memory limit: half the physical RAM, or
// 90 % of the cgroup's memory limit when that is lower.
func autoMemoryLimit() int64 {
	limit := int64(math.MaxInt64)
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		limit = int64(si.Totalram) * int64(si.Unit) / 2
	}
	if cg := cgroupMemoryMax(); cg > 0 && cg/10*9 < limit {
		limit = cg / 10 * 9
	}
	return limit
}

// cgroupMemoryMax returns the memory limit of the process's cgroup (v2
// memory.max, else v1 memory.limit_in_bytes), or 0 when there is none.
func cgroupMemoryMax() int64 { return cgroupMemoryMaxIn("") }

// cgroupMemoryMaxIn is cgroupMemoryMax with every path under root (""
// for the real files; tests pass a directory of fake ones).
//
// The cgroup's directory is found as Go's runtime finds the CPU limit's:
// /proc/self/cgroup names the cgroup's path from the root of its
// hierarchy; /proc/self/mountinfo says where that hierarchy is mounted
// and which part of it (the mount's root). The path is taken relative to
// the mount's root; when it is not under it (a container without a
// cgroup namespace, whose /sys/fs/cgroup/memory is its own cgroup
// mounted at its root, while /proc/self/cgroup names /docker/<id>), the
// mount's root is the cgroup's directory. Before, the path was joined
// onto /sys/fs/cgroup(/memory), which in such a container on a cgroup
// v1 host names no file: the limit was missed, and memory_limit: auto
// was half the host's RAM. Without mountinfo, the usual mount points are
// assumed.
func cgroupMemoryMaxIn(root string) int64 {
	data, err := os.ReadFile(root + "/proc/self/cgroup")
	if err != nil {
		return 0
	}
	mounts, _ := os.ReadFile(root + "/proc/self/mountinfo")
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		// v2: "0::/system.slice/edgewamp.service"; v1: "4:memory:/path".
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var v2 bool
		var dir, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2, dir, file = true, "/sys/fs/cgroup", "memory.max"
		case strings.Contains(","+parts[1]+",", ",memory,"):
			dir, file = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
		default:
			continue
		}
		if d, ok := cgroupDir(string(mounts), parts[2], v2); ok {
			dir = d
		} else {
			dir += parts[2]
		}
		if v := readLimitFile(root + strings.TrimSuffix(dir, "/") + "/" + file); v > 0 {
			return v
		}
	}
	return 0
}

// cgroupDir finds the directory of the cgroup at path (as
// /proc/self/cgroup names it) from a mountinfo: under a mount of its
// hierarchy (cgroup2 for v2, a v1 one with the memory controller) whose
// root holds the path, else the root of the last such mount (the cgroup
// is not under it: a container's own, mounted at its root). A mount
// hidden by a later one on the same mount point is passed over. ok is
// false when there is no such mount.
func cgroupDir(mountinfo, path string, v2 bool) (dir string, ok bool) {
	lines := strings.Split(mountinfo, "\n")
	seen := map[string]bool{}
	for i := len(lines) - 1; i >= 0; i-- {
		// 36 35 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
		pre, post, found := strings.Cut(lines[i], " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !found || len(f) < 5 || len(g) < 3 {
			continue
		}
		point, mroot := unescapeMountinfo(f[4]), unescapeMountinfo(f[3])
		if seen[point] {
			continue // hidden by a later mount
		}
		seen[point] = true
		if v2 && g[0] != "cgroup2" || !v2 && (g[0] != "cgroup" || !strings.Contains(","+g[2]+",", ",memory,")) {
			continue
		}
		switch {
		case mroot == "/":
			return point + path, true
		case path == mroot:
			return point, true
		case strings.HasPrefix(path, mroot+"/"):
			return point + path[len(mroot):], true
		}
		if !ok {
			dir, ok = point, true
		}
	}
	return dir, ok
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// readLimitFile reads a cgroup limit: 0 for "max", a missing file, or a
// value too large to be a real limit (v1 writes a huge number for none).
func readLimitFile(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || v <= 0 || v >= 1<<60 {
		return 0
	}
	return v
}

// formatSize renders a byte count in the config's units.
func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n >= 1<<20:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}
