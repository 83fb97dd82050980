package load

import (
	"fmt"
	"io"
	"strings"
)

// The send paths side by side (issue 15): run-e2e.sh runs each router
// twice in the rpc and pubsub sections, on its default path (io_uring
// where available: "edgewamp", "wampfwd") and with io_uring off (write(2):
// "edgewamp-epoll", "wampfwd-epoll"), interleaved run by run.

// epollSuffix names the write(2) twin of a target.
const epollSuffix = "-epoll"

// sendPaths writes the io_uring ÷ write(2) tables when the matrix has
// twins.
func (m *matrix) sendPaths(w io.Writer) {
	var pairs [][2]string
	has := map[string]bool{}
	for _, t := range m.targets {
		has[t] = true
	}
	for _, t := range m.targets {
		if !strings.HasSuffix(t, epollSuffix) && has[t+epollSuffix] && !isTLSTarget(t) {
			pairs = append(pairs, [2]string{t, t + epollSuffix})
		}
	}
	rows := 0
	for _, cfg := range m.cfgs {
		if sc := m.first(cfg, "scenario"); (sc == "rpc" || sc == "pubsub") && !isTLSCfg(cfg) {
			rows++
		}
	}
	if len(pairs) == 0 || rows == 0 { // a TLS-only run has its own tables
		return
	}
	fmt.Fprintln(w, "## Send path: io_uring ÷ write(2) (issue 15)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each router on its default send path (`tuning.io_uring: auto`, io_uring on this kernel; the")
	fmt.Fprintln(w, "forwarder's `-io-uring auto`) and with io_uring off (write(2): the `-epoll` targets), run by")
	fmt.Fprintln(w, "run in the same sitting. Ratios are medians of per-run ratios (each io_uring run against")
	fmt.Fprintln(w, "the write(2) run of the same round). Router CPU per message: router CPU ÷ messages")
	fmt.Fprintln(w, "delivered (events, or calls), in µs.")
	fmt.Fprintln(w)
	fmt.Fprint(w, "| configuration |")
	for _, p := range pairs {
		fmt.Fprintf(w, " %s: rate io_uring / write(2) | ÷ | p50 µs | p99 µs | router CPU %% | router CPU µs per message |", p[0])
	}
	fmt.Fprint(w, "\n|---|")
	for range pairs {
		fmt.Fprint(w, "---|---|---|---|---|---|")
	}
	fmt.Fprintln(w)
	for _, cfg := range m.cfgs {
		sc := m.first(cfg, "scenario")
		if sc != "rpc" && sc != "pubsub" || isTLSCfg(cfg) { // TLS has its own tables (report_tls.go)
			continue
		}
		if m.cell(cfg, pairs[0][1]) == nil {
			continue
		}
		fmt.Fprintf(w, "| %s |", m.label(cfg))
		for _, p := range pairs {
			key := rateKey(sc)
			a, b := m.cell(cfg, p[0]), m.cell(cfg, p[1])
			fmt.Fprintf(w, " %s | %s | %s | %s | %s | %s |", pair(a, b, key), m.ratioCell(cfg, key, p[0], p[1]),
				pair(a, b, "p50_us"), pair(a, b, "p99_us"), pair(a, b, "router_cpu_pct"), cpuPer(a, b, key))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
	m.sendPathTargets(w, pairs[0])
}

// label is the configuration's name as the tables give it.
func (m *matrix) label(cfg string) string {
	switch m.first(cfg, "scenario") {
	case "rpc":
		tool := ""
		if m.first(cfg, "driver") == "uring" {
			tool = ", tool on io_uring"
		}
		return fmt.Sprintf("rpc %s+%s, %s callers, %s B%s", m.first(cfg, "transport"), m.first(cfg, "ser"), m.first(cfg, "callers"), m.first(cfg, "payload"), tool)
	case "pubsub":
		mode := "saturation"
		if m.first(cfg, "mode") == "rate" {
			mode = "fixed " + thousands(atoi(m.first(cfg, "target_events_per_s"))) + " events/s"
		}
		if m.first(cfg, "driver") == "uring" {
			mode += ", tool on io_uring"
		}
		return fmt.Sprintf("pubsub %s+%s, 1 → %s, %s B, %s", m.first(cfg, "transport"), m.first(cfg, "ser"), thousands(atoi(m.first(cfg, "subscribers"))), m.first(cfg, "payload"), mode)
	}
	return cfg
}

func rateKey(scenario string) string {
	if scenario == "rpc" {
		return "calls_per_s"
	}
	return "events_per_s"
}

func pair(a, b *cell, k string) string {
	f := func(c *cell) string {
		if c == nil {
			return "·"
		}
		v, ok := c.median(k)
		if !ok {
			return "–"
		}
		return fmtNum(v)
	}
	return f(a) + " / " + f(b)
}

func (m *matrix) ratioCell(cfg, k, a, b string) string {
	v, ok := m.ratioOf(cfg, k, a, b)
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

// cpuPer is router CPU time per message (µs): router_cpu_pct ÷ rate.
func cpuPer(a, b *cell, rateK string) string {
	f := func(c *cell) string {
		if c == nil {
			return "·"
		}
		cpu, ok1 := c.median("router_cpu_pct")
		rate, ok2 := c.median(rateK)
		if !ok1 || !ok2 || rate <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f", cpu*1e4/rate)
	}
	return f(a) + " / " + f(b)
}

// sendPathTargets checks issue 15's targets for the pair (io_uring
// target, its write(2) twin).
func (m *matrix) sendPathTargets(w io.Writer, p [2]string) {
	type target struct {
		name  string
		want  map[string]string
		check func(cfg string) (string, bool)
	}
	ratio := func(key, label string, min float64) func(cfg string) (string, bool) {
		return func(cfg string) (string, bool) {
			v, ok := m.ratioOf(cfg, key, p[0], p[1])
			if !ok {
				return "not measured", false
			}
			return fmt.Sprintf("%.2f× (%s %s)", v, label, pair(m.cell(cfg, p[0]), m.cell(cfg, p[1]), key)), v >= min
		}
	}
	fixedP99 := func(cfg string) (string, bool) {
		c := m.cell(cfg, p[0])
		v, _ := c.median("p99_us")
		p50, _ := c.median("p50_us")
		return fmt.Sprintf("p99 %s µs, p50 %s µs (write(2): %s, %s); %s", fmtNum(v), fmtNum(p50),
			pairOne(m.cell(cfg, p[1]), "p99_us"), pairOne(m.cell(cfg, p[1]), "p50_us"), bound(c)), v <= 5000
	}
	arriveP99 := func(cfg string) (string, bool) {
		c := m.cell(cfg, p[0])
		v, ok := c.median("arrive_p99_us")
		if !ok {
			return "no arrival timestamps in these runs", false
		}
		p50, _ := c.median("arrive_p50_us")
		return fmt.Sprintf("p99 %s µs, p50 %s µs (write(2): %s, %s)", fmtNum(v), fmtNum(p50),
			pairOne(m.cell(cfg, p[1]), "arrive_p99_us"), pairOne(m.cell(cfg, p[1]), "arrive_p50_us")), v <= 5000
	}
	targets := []target{
		{"pubsub 1 → 1,000, 64 B, fixed 100,000 events/s: p99 ≤ 5 ms on io_uring",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "rate"},
			fixedP99},
		{"the same, the load tool reading through io_uring (-driver uring)",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "rate", "driver": "uring"},
			fixedP99},
		{"the same, timed to when the kernel put each event in the subscriber's socket (the router's fan-out, without the one tool's reading of 1,000 sessions on one CPU)",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "rate", "driver": "uring"},
			arriveP99},
		{"pubsub 1 → 1,000, 64 B, saturation: ≥ 1.5× the write(2) path",
			map[string]string{"scenario": "pubsub", "subscribers": "1000", "payload": "64", "mode": "saturation"},
			ratio("events_per_s", "events/s", 1.5)},
		{"rpc, 128 callers, 64 B: ≥ 1.2× the write(2) path",
			map[string]string{"scenario": "rpc", "callers": "128", "payload": "64"},
			ratio("calls_per_s", "calls/s", 1.2)},
		{"the same, the load tool on io_uring (-driver uring)",
			map[string]string{"scenario": "rpc", "callers": "128", "payload": "64", "driver": "uring"},
			ratio("calls_per_s", "calls/s", 1.2)},
		{"rpc, 1 caller, 64 B: latency not worse (p50 and p99 within 5 % of write(2)'s)",
			map[string]string{"scenario": "rpc", "callers": "1", "payload": "64"},
			func(cfg string) (string, bool) {
				r50, ok1 := m.ratioOf(cfg, "p50_us", p[0], p[1])
				r99, ok2 := m.ratioOf(cfg, "p99_us", p[0], p[1])
				if !ok1 || !ok2 {
					return "not measured", false
				}
				return fmt.Sprintf("p50 %.2f×, p99 %.2f× (p50 %s µs, p99 %s µs)", r50, r99,
					pair(m.cell(cfg, p[0]), m.cell(cfg, p[1]), "p50_us"), pair(m.cell(cfg, p[0]), m.cell(cfg, p[1]), "p99_us")), r50 <= 1.05 && r99 <= 1.05
			}},
	}
	fmt.Fprintf(w, "Issue 15's targets (%s on io_uring ÷ %s):\n\n", p[0], p[1])
	fmt.Fprintln(w, "| target | measured | met? |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, t := range targets {
		cfg := m.find(t.want)
		if cfg == "" || m.cell(cfg, p[0]) == nil || m.cell(cfg, p[1]) == nil {
			fmt.Fprintf(w, "| %s | not measured | – |\n", t.name)
			continue
		}
		fig, met := t.check(cfg)
		verdict := "**yes**"
		if !met {
			verdict = "**NO**"
		}
		fmt.Fprintf(w, "| %s | %s | %s |\n", t.name, fig, verdict)
	}
	fmt.Fprintln(w)
}

func pairOne(c *cell, k string) string {
	if c == nil {
		return "·"
	}
	v, ok := c.median(k)
	if !ok {
		return "–"
	}
	return fmtNum(v)
}
