package load

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The matrix report: bench/run-e2e.sh writes, in its output directory,
//
//	machine.txt   "key: value" lines (CPU, kernel, Go, commit, limits)
//	commands.txt  the commands it ran, one per line
//	results.txt   "cfg=ID rep=N RESULT ..." lines
//	profile.txt   syscall counts and profiles (optional, verbatim)
//	events.txt    router crashes, errors in its log (optional, verbatim)
//
// and Report turns them into bench/RESULTS.md: medians per configuration,
// the targets side by side, the CPU figures beside each, and the budgets.

// noisyPct is the other_cpu_pct above which a run counts as disturbed by
// other work on the machine.
const noisyPct = 25

type run struct {
	cfg, target string
	rep         int
	f           map[string]string
}

type cell struct {
	runs  []run
	noisy int
}

// median of a numeric key over a cell's runs ("" when absent). Clean runs
// are preferred: disturbed ones are used only when no run was clean.
func (c *cell) median(k string) (float64, bool) {
	var clean, all []float64
	for _, r := range c.runs {
		v, err := strconv.ParseFloat(r.f[k], 64)
		if err != nil {
			continue
		}
		all = append(all, v)
		if o, err := strconv.ParseFloat(r.f["other_cpu_pct"], 64); err != nil || o <= noisyPct {
			clean = append(clean, v)
		}
	}
	if len(clean) > 0 {
		all = clean
	}
	if len(all) == 0 {
		return 0, false
	}
	sort.Float64s(all)
	n := len(all)
	if n%2 == 1 {
		return all[n/2], true
	}
	return (all[n/2-1] + all[n/2]) / 2, true
}

// sum of a numeric key over all runs.
func (c *cell) sum(k string) (float64, bool) {
	t, ok := 0.0, false
	for _, r := range c.runs {
		if v, err := strconv.ParseFloat(r.f[k], 64); err == nil {
			t += v
			ok = true
		}
	}
	return t, ok
}

// matrix holds the runs by configuration and target, in first-seen order.
type matrix struct {
	cfgs    []string
	targets []string
	cells   map[[2]string]*cell
	errors  []string
}

func readMatrix(path string) (*matrix, error) {
	m := &matrix{cells: map[[2]string]*cell{}}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return m, nil // a run of the profile section only
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seenC, seenT := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		pre, res, ok := strings.Cut(line, "RESULT ")
		if !ok {
			continue
		}
		r := run{f: map[string]string{}}
		for _, kv := range strings.Fields(pre) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "cfg":
				r.cfg = v
			case "rep":
				r.rep, _ = strconv.Atoi(v)
			}
		}
		fm, _ := ParseResult("RESULT " + res)
		r.f = fm
		r.target = fm["target"]
		if e := fm["error"]; e != "" {
			m.errors = append(m.errors, fmt.Sprintf("%s on %s, run %d: %s", r.cfg, r.target, r.rep, strings.ReplaceAll(e, "_", " ")))
		}
		if !seenC[r.cfg] {
			seenC[r.cfg] = true
			m.cfgs = append(m.cfgs, r.cfg)
		}
		if !seenT[r.target] && !isTLSTarget(r.target) { // TLS runs have tables of their own (report_tls.go)
			seenT[r.target] = true
			m.targets = append(m.targets, r.target)
		}
		k := [2]string{r.cfg, r.target}
		c := m.cells[k]
		if c == nil {
			c = &cell{}
			m.cells[k] = c
		}
		c.runs = append(c.runs, r)
		if o, err := strconv.ParseFloat(fm["other_cpu_pct"], 64); err == nil && o > noisyPct {
			c.noisy++
		}
	}
	return m, sc.Err()
}

func (m *matrix) cell(cfg, target string) *cell { return m.cells[[2]string{cfg, target}] }

// first returns a field of the first run of cfg (the configuration's
// parameters are the same in every run).
func (m *matrix) first(cfg, k string) string {
	for _, t := range m.targets {
		if c := m.cell(cfg, t); c != nil && len(c.runs) > 0 {
			return c.runs[0].f[k]
		}
	}
	return ""
}

// has reports whether any run of any configuration has the field k.
func (m *matrix) has(k string) bool {
	for _, c := range m.cells {
		for _, r := range c.runs {
			if _, ok := r.f[k]; ok {
				return true
			}
		}
	}
	return false
}

// fmtNum formats a figure for a table: integers with thousands
// separators, small values with up to two decimals.
func fmtNum(v float64) string {
	switch {
	case v >= 1000 || v == float64(int64(v)):
		return thousands(int64(v + 0.5))
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// col is one table column: a metric shown for every target.
type col struct {
	title string
	key   string
	agg   string // "median" (default) or "sum"
	prec  int    // decimals; 0: fmtNum's choice
	ratio bool   // add a column: first target ÷ second target
}

// ratio is the median over runs of (first target's value ÷ second
// target's value) of the same run number: the targets run interleaved, so
// paired runs saw the same machine.
func (m *matrix) ratio(cfg, k string) string {
	if len(m.targets) < 2 {
		return "–"
	}
	v, ok := m.ratioOf(cfg, k, m.targets[0], m.targets[1])
	if !ok {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// ratioOf is the median over runs of (target a's value ÷ target b's value)
// of the same run number.
func (m *matrix) ratioOf(cfg, k, ta, tb string) (float64, bool) {
	a, b := m.cell(cfg, ta), m.cell(cfg, tb)
	if a == nil || b == nil {
		return 0, false
	}
	byRep := map[int]float64{}
	for _, r := range b.runs {
		if v, err := strconv.ParseFloat(r.f[k], 64); err == nil && v != 0 {
			byRep[r.rep] = v
		}
	}
	var rs []float64
	for _, r := range a.runs {
		v, err := strconv.ParseFloat(r.f[k], 64)
		if d, ok := byRep[r.rep]; ok && err == nil {
			rs = append(rs, v/d)
		}
	}
	if len(rs) == 0 {
		return 0, false
	}
	sort.Float64s(rs)
	med := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		med = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	return med, true
}

// side formats a metric for every target as "a / b / c".
func (m *matrix) side(cfg string, c col) string {
	var parts []string
	for _, t := range m.targets {
		cl := m.cell(cfg, t)
		if cl == nil {
			parts = append(parts, "·")
			continue
		}
		var v float64
		var ok bool
		if c.agg == "sum" {
			v, ok = cl.sum(c.key)
		} else {
			v, ok = cl.median(c.key)
		}
		if !ok {
			parts = append(parts, "–")
			continue
		}
		if c.prec > 0 {
			parts = append(parts, strconv.FormatFloat(v, 'f', c.prec, 64))
		} else {
			parts = append(parts, fmtNum(v))
		}
	}
	return strings.Join(parts, " / ")
}

// runsCell says how many runs a configuration had per target and how many
// were disturbed.
func (m *matrix) runsCell(cfg string) string {
	var parts []string
	for _, t := range m.targets {
		cl := m.cell(cfg, t)
		if cl == nil {
			parts = append(parts, "·")
			continue
		}
		s := strconv.Itoa(len(cl.runs))
		if cl.noisy > 0 {
			s += fmt.Sprintf(" (%d noisy)", cl.noisy)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " / ")
}

func (m *matrix) table(w io.Writer, scenario string, label func(cfg string) string, cols []col) {
	var cfgs []string
	for _, c := range m.cfgs {
		if m.first(c, "scenario") == scenario && !isTLSCfg(c) {
			cfgs = append(cfgs, c)
		}
	}
	if len(cfgs) == 0 {
		fmt.Fprintf(w, "(no %s runs)\n\n", scenario)
		return
	}
	fmt.Fprint(w, "| configuration |")
	n := 0
	for _, c := range cols {
		fmt.Fprintf(w, " %s |", c.title)
		n++
		if c.ratio && len(m.targets) > 1 {
			fmt.Fprintf(w, " %s ÷ %s |", m.targets[0], m.targets[1])
			n++
		}
	}
	fmt.Fprint(w, " runs |\n|---|")
	for i := 0; i < n; i++ {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprint(w, "---|\n")
	for _, cfg := range cfgs {
		fmt.Fprintf(w, "| %s |", label(cfg))
		for _, c := range cols {
			fmt.Fprintf(w, " %s |", m.side(cfg, c))
			if c.ratio && len(m.targets) > 1 {
				fmt.Fprintf(w, " %s |", m.ratio(cfg, c.key))
			}
		}
		fmt.Fprintf(w, " %s |\n", m.runsCell(cfg))
	}
	fmt.Fprintln(w)
}

var cpuCols = []col{
	{title: "tool CPU %", key: "tool_cpu_pct"},
	{title: "router CPU %", key: "router_cpu_pct"},
	{title: "other CPU %", key: "other_cpu_pct"},
}

// Report writes RESULTS.md for the run directory dir.
func Report(dir string, w io.Writer) error {
	m, err := readMatrix(filepath.Join(dir, "results.txt"))
	if err != nil {
		return err
	}
	machine := readKV(filepath.Join(dir, "machine.txt"))
	cpuCols := cpuCols
	if m.has("mesh_cpu_pct") { // a mesh under test: its other nodes' CPU
		cpuCols = append(cpuCols[:2:2], col{title: "other nodes CPU %", key: "mesh_cpu_pct"}, cpuCols[2])
	}
	fmt.Fprintln(w, "# End-to-end benchmark results")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated by `bench/run-e2e.sh` (`make bench-e2e`) with `wampbench -report`; the raw")
	fmt.Fprintln(w, "RESULT lines are in `bench/out/` (not committed). Every figure is the median of the runs")
	fmt.Fprintf(w, "of a configuration; runs where other processes used more than %d %% of a CPU\n", noisyPct)
	fmt.Fprintln(w, "(`other_cpu_pct`, from /proc/stat) are counted as noisy and left out of the median when")
	fmt.Fprintln(w, "at least one clean run exists. Cells read **"+strings.Join(m.targets, " / ")+"**.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Machine")
	fmt.Fprintln(w)
	for _, kv := range machine {
		fmt.Fprintf(w, "- %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "## Tables")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Idle sessions (router RSS per session)")
	fmt.Fprintln(w)
	m.table(w, "idle", func(c string) string {
		return fmt.Sprintf("%s, %s sessions", m.first(c, "transport"), thousands(atoi(m.first(c, "sessions"))))
	}, append([]col{
		{title: "KiB/session", key: "kib_per_session", ratio: true},
		{title: "GiB per 1M (extrapolated)", key: "gib_per_1m_sessions"},
		{title: "joined", key: "joined"},
		{title: "failed (all runs)", key: "failed", agg: "sum"},
		{title: "joins/s while connecting", key: "joins_per_s"},
		{title: "router fds after close", key: "router_fds_after"},
	}, cpuCols...))
	fmt.Fprintln(w, "### RPC (closed-loop callers, 1 callee)")
	fmt.Fprintln(w)
	m.table(w, "rpc", func(c string) string {
		tool := ""
		if m.first(c, "driver") == "uring" {
			tool = ", the tool on io_uring (-driver uring)"
		}
		return fmt.Sprintf("%s+%s, %s callers, %s B%s", m.first(c, "transport"), m.first(c, "ser"), m.first(c, "callers"), m.first(c, "payload"), tool)
	}, append([]col{
		{title: "calls/s", key: "calls_per_s", ratio: true},
		{title: "p50 µs", key: "p50_us"},
		{title: "p99 µs", key: "p99_us"},
		{title: "p99.9 µs", key: "p999_us"},
		{title: "errors (all runs)", key: "errors", agg: "sum"},
		{title: "lost (all runs)", key: "lost", agg: "sum"},
		{title: "sessions dropped (all runs)", key: "dropped_sessions", agg: "sum"},
	}, cpuCols...))
	fmt.Fprintln(w, "### PubSub (1 publisher, acknowledge off)")
	fmt.Fprintln(w)
	m.table(w, "pubsub", func(c string) string {
		mode := m.first(c, "mode")
		if mode == "rate" {
			mode = "fixed " + thousands(atoi(m.first(c, "target_events_per_s"))) + " events/s"
		} else {
			mode = "saturation (≤ " + thousands(atoi(m.first(c, "inflight_events"))) + " events in flight)"
		}
		if m.first(c, "driver") == "uring" {
			mode += ", the tool reading through io_uring (-driver uring)"
		}
		return fmt.Sprintf("%s+%s, 1 → %s, %s B, %s", m.first(c, "transport"), m.first(c, "ser"), thousands(atoi(m.first(c, "subscribers"))), m.first(c, "payload"), mode)
	}, append([]col{
		{title: "events delivered/s", key: "events_per_s", ratio: true},
		{title: "delivery ratio", key: "delivery_ratio", prec: 5},
		{title: "p50 µs", key: "p50_us"},
		{title: "p99 µs", key: "p99_us"},
		{title: "p99 to arrival in the socket µs (uring tool)", key: "arrive_p99_us"},
	}, cpuCols...))
	fmt.Fprintln(w, "### Churn (connect, HELLO/WELCOME, GOODBYE, close)")
	fmt.Fprintln(w)
	m.table(w, "churn", func(c string) string {
		return fmt.Sprintf("%s+%s, target %s joins/s, %s workers", m.first(c, "transport"), m.first(c, "ser"), thousands(atoi(m.first(c, "target_joins_per_s"))), m.first(c, "workers"))
	}, append([]col{
		{title: "joins/s", key: "joins_per_s", ratio: true},
		{title: "failures (all runs)", key: "failures", agg: "sum"},
		{title: "join p50 µs", key: "join_p50_us"},
		{title: "join p99 µs", key: "join_p99_us"},
	}, cpuCols...))
	fmt.Fprintln(w, "### Authentication storm (WAMP-CRA, or WAMP-Ticket with OAuth2 access tokens) and one caller's latency")
	fmt.Fprintln(w)
	m.table(w, "authstorm", func(c string) string {
		auth := m.first(c, "auth")
		switch {
		case auth == "", auth == "wampcra":
			auth = "WAMP-CRA"
		case strings.HasPrefix(auth, "jwt-"):
			n := strings.TrimSuffix(strings.TrimPrefix(auth, "jwt-"), "-tokens")
			auth = "JWT tickets (" + n + " distinct tokens)"
		}
		return fmt.Sprintf("%s+%s, %s sessions at once, %s", m.first(c, "transport"), m.first(c, "ser"), thousands(atoi(m.first(c, "storm"))), auth)
	}, append([]col{
		{title: "storm ms", key: "storm_ms", ratio: true},
		{title: "joins/s", key: "joins_per_s"},
		{title: "failed (all runs)", key: "storm_failed", agg: "sum"},
		{title: "caller p99 before µs", key: "base_p99_us"},
		{title: "caller p50 during µs", key: "p50_us"},
		{title: "caller p99 during µs", key: "p99_us"},
		{title: "caller max during µs", key: "max_us"},
	}, cpuCols...))
	fmt.Fprintln(w, "### HTTP gateway: POST /wamp/realm1/call (keep-alive clients, one request outstanding each, 1 WAMP callee), and a bare net/http handler returning constant JSON")
	fmt.Fprintln(w)
	m.table(w, "httpcall", func(c string) string {
		return fmt.Sprintf("%s clients, %s B", m.first(c, "clients"), m.first(c, "payload"))
	}, append([]col{
		{title: "requests/s", key: "calls_per_s"},
		{title: "p50 µs", key: "p50_us"},
		{title: "p99 µs", key: "p99_us"},
		{title: "p99.9 µs", key: "p999_us"},
		{title: "errors (all runs)", key: "errors", agg: "sum"},
	}, cpuCols...))
	fmt.Fprintln(w, "### HTTP gateway: Server-Sent Events fan-out (1 HTTP publisher at a fixed rate)")
	fmt.Fprintln(w)
	m.table(w, "sse", func(c string) string {
		return fmt.Sprintf("1 → %s streams, %s B, target %s events/s", thousands(atoi(m.first(c, "streams"))), m.first(c, "payload"), thousands(atoi(m.first(c, "target_events_per_s"))))
	}, append([]col{
		{title: "events delivered/s", key: "events_per_s"},
		{title: "delivery ratio", key: "delivery_ratio", prec: 5},
		{title: "p50 µs", key: "p50_us"},
		{title: "p99 µs", key: "p99_us"},
		{title: "streams cut (all runs)", key: "streams_cut", agg: "sum"},
	}, cpuCols...))
	fmt.Fprintln(w, "### OAuth2 token issuance: POST /oauth/token grant_type=client_credentials (keep-alive clients, one request outstanding each), one WAMP caller's latency meanwhile; and a bare net/http handler returning constant JSON")
	fmt.Fprintln(w)
	m.table(w, "tokens", func(c string) string {
		return fmt.Sprintf("%s clients, %s", m.first(c, "clients"), m.first(c, "grant"))
	}, append([]col{
		{title: "tokens/s", key: "tokens_per_s"},
		{title: "p50 µs", key: "p50_us"},
		{title: "p99 µs", key: "p99_us"},
		{title: "errors (all runs)", key: "errors", agg: "sum"},
		{title: "caller p99 before µs", key: "base_p99_us"},
		{title: "caller p99 during µs", key: "call_p99_us"},
	}, cpuCols...))
	m.tlsTables(w)
	m.budgets(w)
	m.sendPaths(w)
	if len(m.errors) > 0 {
		fmt.Fprintln(w, "## Runs that failed")
		fmt.Fprintln(w)
		for _, e := range m.errors {
			fmt.Fprintf(w, "- %s\n", e)
		}
		fmt.Fprintln(w)
	}
	for _, f := range []struct{ name, title string }{{"events.txt", "Router events (crashes, errors logged)"}, {"profile.txt", "Where the time goes (profile runs, not part of the medians)"}} {
		if b, err := os.ReadFile(filepath.Join(dir, f.name)); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			fmt.Fprintf(w, "## %s\n\n```\n%s\n```\n\n", f.title, strings.TrimSpace(string(b)))
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "commands.txt")); err == nil {
		fmt.Fprintf(w, "## Exact commands\n\n```\n%s\n```\n", strings.TrimSpace(string(b)))
	}
	return nil
}

func atoi(s string) int64 {
	v, _ := strconv.ParseFloat(s, 64)
	return int64(v)
}

func readKV(path string) [][2]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			out = append(out, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
	}
	return out
}
