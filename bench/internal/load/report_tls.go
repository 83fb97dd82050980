package load

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TLS beside plaintext. bench/run-e2e.sh runs the "tls-*" configurations
// against targets that are the same edgewamp process, started fresh for
// every run: "edgewamp" measured over its plaintext listener and
// "edgewamp-tls" over its TLS listener (wss://, rss://), interleaved run by
// run; with EPOLL=1 the rpc configurations also run on the write(2) twin
// the same way ("edgewamp-epoll" and "edgewamp-tls-epoll", tuning.io_uring
// off), so that TLS is measured on both send paths. The forwarder has no
// TLS, so these rows have their own tables.

// tlsPair is a plaintext target and the TLS target of the same process.
type tlsPair struct{ plain, tls, path string }

var tlsPairs = []tlsPair{
	{"edgewamp", "edgewamp-tls", "default send path"},
	{"edgewamp-epoll", "edgewamp-tls-epoll", "write(2)"},
}

func isTLSCfg(cfg string) bool { return strings.HasPrefix(cfg, "tls-") }

// isTLSTarget reports whether a target is measured over a TLS listener.
func isTLSTarget(t string) bool {
	for _, p := range tlsPairs {
		if t == p.tls {
			return true
		}
	}
	return false
}

// tlsRatio is the median over runs of (TLS value ÷ plaintext value) of the
// same run number.
func (m *matrix) tlsRatio(cfg string, p tlsPair, k string) (float64, bool) {
	return m.pairRatio(cfg, p.tls, p.plain, k)
}

// pair formats a metric as "plaintext / TLS".
func (m *matrix) pair(cfg string, p tlsPair, k string) string {
	var parts []string
	for _, t := range []string{p.plain, p.tls} {
		c := m.cell(cfg, t)
		v, ok := 0.0, false
		if c != nil {
			v, ok = c.median(k)
		}
		if !ok {
			parts = append(parts, "–")
			continue
		}
		parts = append(parts, fmtNum(v))
	}
	return strings.Join(parts, " / ")
}

// pairsOf returns the pairs with both targets measured in cfg.
func (m *matrix) pairsOf(cfg string) []tlsPair {
	var out []tlsPair
	for _, p := range tlsPairs {
		if m.cell(cfg, p.plain) != nil && m.cell(cfg, p.tls) != nil {
			out = append(out, p)
		}
	}
	return out
}

func (m *matrix) tlsCfgs(scenario string) []string {
	var out []string
	for _, c := range m.cfgs {
		if isTLSCfg(c) && m.first(c, "scenario") == scenario {
			out = append(out, c)
		}
	}
	return out
}

// runsPair says how many runs each side had.
func (m *matrix) runsPair(cfg string, p tlsPair) string {
	var parts []string
	for _, t := range []string{p.plain, p.tls} {
		c := m.cell(cfg, t)
		if c == nil {
			parts = append(parts, "·")
			continue
		}
		s := strconv.Itoa(len(c.runs))
		if c.noisy > 0 {
			s += fmt.Sprintf(" (%d noisy)", c.noisy)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " / ")
}

// ratioText is the TLS ÷ plaintext ratio of key, or "–".
func (m *matrix) ratioText(cfg string, p tlsPair, key string) string {
	if v, ok := m.tlsRatio(cfg, p, key); ok {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return "–"
}

// sumPair is key summed over every run of both sides of p.
func (m *matrix) sumPair(cfg string, p tlsPair, key string) float64 {
	total := 0.0
	for _, t := range []string{p.plain, p.tls} {
		v, _ := m.cell(cfg, t).sum(key)
		total += v
	}
	return total
}

func (m *matrix) tlsTables(w io.Writer) {
	idle, rpc := m.tlsCfgs("idle"), m.tlsCfgs("rpc")
	if len(idle)+len(rpc) == 0 {
		return
	}
	fmt.Fprintln(w, "### TLS beside plaintext (the same edgewamp process, its plaintext and TLS listeners, runs interleaved)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Cells read **plaintext / TLS**; the ratio is TLS ÷ plaintext of the same run, median over runs.")
	fmt.Fprintln(w, "Send path: the router's default (`tuning.io_uring: auto`: io_uring where the kernel has it), or write(2) (the `-epoll` twin, io_uring off).")
	fmt.Fprintln(w)
	if len(idle) > 0 {
		fmt.Fprintln(w, "| idle sessions | send path | KiB/session | TLS ÷ plaintext | router descriptors per session | joins/s while connecting | failed (all runs) | runs |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
		for _, c := range idle {
			for _, p := range m.pairsOf(c) {
				fmt.Fprintf(w, "| %s, %s sessions | %s | %s | %s | %s | %s | %d | %s |\n", m.tlsLabel(c, p), thousands(atoi(m.first(c, "sessions"))), p.path,
					m.pair(c, p, "kib_per_session"), m.ratioText(c, p, "kib_per_session"), m.pair(c, p, "fds_per_session"), m.pair(c, p, "joins_per_s"),
					int(m.sumPair(c, p, "failed")), m.runsPair(c, p))
			}
		}
		fmt.Fprintln(w)
	}
	if len(rpc) > 0 {
		fmt.Fprintln(w, "| rpc (closed-loop callers, 1 callee) | send path | calls/s | TLS ÷ plaintext | p50 µs | p99 µs | errors (all runs) | router CPU % | tool CPU % | other CPU % | runs |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
		for _, c := range rpc {
			for _, p := range m.pairsOf(c) {
				fmt.Fprintf(w, "| %s+%s, %s callers, %s B | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s |\n", m.tlsLabel(c, p), m.first(c, "ser"),
					m.first(c, "callers"), m.first(c, "payload"), p.path, m.pair(c, p, "calls_per_s"), m.ratioText(c, p, "calls_per_s"), m.pair(c, p, "p50_us"),
					m.pair(c, p, "p99_us"), int(m.sumPair(c, p, "errors")), m.pair(c, p, "router_cpu_pct"), m.pair(c, p, "tool_cpu_pct"), m.pair(c, p, "other_cpu_pct"),
					m.runsPair(c, p))
			}
		}
		fmt.Fprintln(w)
	}
}

// tlsLabel names a TLS configuration's transport pair, e.g. "rs/rss".
func (m *matrix) tlsLabel(cfg string, p tlsPair) string {
	var a, b string
	if c := m.cell(cfg, p.plain); c != nil && len(c.runs) > 0 {
		a = c.runs[0].f["transport"]
	}
	if c := m.cell(cfg, p.tls); c != nil && len(c.runs) > 0 {
		b = c.runs[0].f["transport"]
	}
	return a + "/" + b
}

// tlsBudgets are issue 16's: an idle TLS session costs at most 8 KiB of
// router RSS, RPC over TLS keeps 0.7 of plaintext's throughput (on each
// send path measured), and a TLS connection holds one descriptor.
func (m *matrix) tlsBudgets(w io.Writer) {
	var idle string
	for _, c := range m.tlsCfgs("idle") {
		idle = c // the largest is last
	}
	row := func(name, figure string, met, measured bool, bound string) {
		verdict := "**yes**"
		switch {
		case !measured:
			figure, verdict = "not measured", "–"
		case !met:
			verdict = "**NO**"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, figure, verdict, bound)
	}
	def := tlsPairs[0]
	tc := m.cell(idle, def.tls)
	pc := m.cell(idle, def.plain)
	if tc != nil && pc != nil {
		v, _ := tc.median("kib_per_session")
		p, _ := pc.median("kib_per_session")
		fd, _ := tc.median("fds_per_session")
		row("TLS idle: ≤ 8 KiB router RSS per idle TLS session", fmt.Sprintf("%.2f KiB/session (plaintext, same run: %.2f)", v, p), v <= 8, true,
			fmt.Sprintf("%s TLS sessions; RSS %s KiB before connecting, %s KiB with them", thousands(atoi(m.first(idle, "sessions"))),
				fmtNum(medOr(tc, "router_rss_base_kib")), fmtNum(medOr(tc, "router_rss_kib"))))
		row("TLS: 1 descriptor per TLS connection", fmt.Sprintf("%.3f router descriptors per session", fd), fd < 1.01, true, "open descriptors of the router process, before and with the sessions")
	} else {
		row("TLS idle: ≤ 8 KiB router RSS per idle TLS session", "", false, false, "–")
		row("TLS: 1 descriptor per TLS connection", "", false, false, "–")
	}
	for i, p := range tlsPairs {
		name := fmt.Sprintf("TLS rpc, 16 callers, 64 B, %s: ≥ 0.7× plaintext calls/s", p.path)
		var rpc string
		for _, c := range m.tlsCfgs("rpc") {
			if m.first(c, "callers") == "16" && m.first(c, "payload") == "64" && m.cell(c, p.tls) != nil {
				rpc = c
				break
			}
		}
		if r, ok := m.tlsRatio(rpc, p, "calls_per_s"); ok {
			row(name, fmt.Sprintf("%.2f× (%s calls/s)", r, m.pair(rpc, p, "calls_per_s")), r >= 0.7, true, "TLS run: "+bound(m.cell(rpc, p.tls)))
		} else if i == 0 {
			row(name, "", false, false, "–")
		}
	}
}

func medOr(c *cell, k string) float64 { v, _ := c.median(k); return v }
