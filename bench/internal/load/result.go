package load

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is one run's machine-readable summary: ordered key=value pairs
// printed as a single "RESULT ..." line.
type Result struct {
	keys []string
	vals map[string]string
}

// Set adds or replaces a key; values are formatted compactly (floats with
// up to 3 decimals, durations in their unit).
func (r *Result) Set(k string, v any) {
	if r.vals == nil {
		r.vals = map[string]string{}
	}
	if _, ok := r.vals[k]; !ok {
		r.keys = append(r.keys, k)
	}
	var s string
	switch x := v.(type) {
	case float64:
		s = strconv.FormatFloat(x, 'f', 3, 64)
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
		if s == "" || s == "-" {
			s = "0"
		}
	case string:
		s = strings.ReplaceAll(x, " ", "_")
		if s == "" {
			s = "-"
		}
	default:
		s = fmt.Sprint(x)
	}
	r.vals[k] = s
}

// Get returns a key's value ("" if unset).
func (r *Result) Get(k string) string { return r.vals[k] }

// String is the RESULT line.
func (r *Result) String() string {
	var b strings.Builder
	b.WriteString("RESULT")
	for _, k := range r.keys {
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(r.vals[k])
	}
	return b.String()
}

// ParseResult reads a RESULT line back (for tests and the matrix script).
func ParseResult(line string) (map[string]string, bool) {
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "RESULT" {
		return nil, false
	}
	m := map[string]string{}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m, true
}

// us formats nanoseconds as microseconds with one decimal.
func us(ns int64) float64 { return float64(ns/100) / 10 }

// setLatency adds p50/p99/p999/max (µs) of h under a prefix.
func (r *Result) setLatency(prefix string, h *Hist) {
	r.Set(prefix+"p50_us", us(h.Quantile(0.50)))
	r.Set(prefix+"p99_us", us(h.Quantile(0.99)))
	r.Set(prefix+"p999_us", us(h.Quantile(0.999)))
	r.Set(prefix+"max_us", us(h.Max()))
}

// cpuNS returns this process's CPU time (user + system).
func cpuNS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// cpuMeter measures CPU use over a window: the tool's own (getrusage, plus
// what workers report) and, with a pid, the router's (/proc/PID/stat).
//
// It also reports other_cpu_pct: the machine's busy CPU time (/proc/stat)
// that is neither the tool's nor the router's, in percent of one CPU. On a
// shared machine that is the noise in the figures.
type cpuMeter struct {
	pid                    int
	t0                     time.Time
	self0, router0, total0 int64
	extraNS                int64 // CPU of worker processes in the window
	mesh                   []int // the other nodes of a mesh (MeshPIDs)
	mesh0                  []int64
}

// meshPIDs are the other router processes of a mesh under test (wampbench
// -mesh-pids): their CPU is reported as mesh_cpu_pct, not as noise.
var meshPIDs []int

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, t0: time.Now(), self0: cpuNS(), total0: machineBusyNS()}
	if pid > 0 {
		m.router0 = procCPU(pid)
	}
	for _, p := range meshPIDs {
		m.mesh = append(m.mesh, p)
		m.mesh0 = append(m.mesh0, procCPU(p))
	}
	return m
}

// machineBusyNS returns all CPUs' non-idle time from /proc/stat, or -1.
func machineBusyNS() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return busy * int64(time.Second/clkTck)
}

// stop sets tool_cpu_pct (and router_cpu_pct) for the window so far.
func (m *cpuMeter) stop(r *Result) {
	wall := time.Since(m.t0)
	if wall <= 0 {
		return
	}
	self := cpuNS() - m.self0 + m.extraNS
	r.Set("tool_cpu_pct", 100*float64(self)/float64(wall))
	other := int64(-1)
	if t := machineBusyNS(); t >= 0 && m.total0 >= 0 {
		other = t - m.total0 - self
	}
	if m.pid > 0 {
		if c := procCPU(m.pid); c >= 0 && m.router0 >= 0 {
			r.Set("router_cpu_pct", 100*float64(c-m.router0)/float64(wall))
			other -= c - m.router0
		}
	}
	if len(m.mesh) > 0 {
		var sum int64
		for i, p := range m.mesh {
			if c := procCPU(p); c >= 0 && m.mesh0[i] >= 0 {
				sum += c - m.mesh0[i]
			}
		}
		r.Set("mesh_cpu_pct", 100*float64(sum)/float64(wall))
		other -= sum
	}
	if other >= 0 || m.total0 >= 0 {
		r.Set("other_cpu_pct", 100*float64(max(other, 0))/float64(wall))
	}
}

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

// procCPU returns a process's CPU time in ns from /proc/PID/stat (10 ms
// resolution), or -1.
func procCPU(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return (ut + st) * int64(time.Second/clkTck)
}

// procRSS returns a process's VmRSS in KiB, or -1.
func procRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// procFDs returns the number of open files of a process, or -1.
func procFDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// countsString formats a map of counts as "k:v,k:v" sorted by key ("-"
// when empty).
func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s:%d", k, m[k])
	}
	return b.String()
}

// SetMeshPIDs sets the other router processes of a mesh under test; their
// CPU is reported as mesh_cpu_pct. Call before a run.
func SetMeshPIDs(pids []int) { meshPIDs = pids }

// MeshPIDs returns them.
func MeshPIDs() []int { return meshPIDs }
