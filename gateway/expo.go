package gateway

import (
	"bytes"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// The exposition formats of GET /metrics, written here rather than with
// prometheus/client_golang: the gateway exports figures it reads at scrape
// time (const metrics) and a few histograms, which is a page of code, and
// the client library linked protobuf, go/parser (through its text
// parser's grammar) and database/sql into the binary. Without them the
// release binary is 2.8 MiB smaller and a router touches 1.4 MiB less of
// it at start (bench/history.md). The tests parse the output with
// Prometheus's own text parser.

type metricType uint8

const (
	counterType metricType = iota
	gaugeType
	histogramType
	summaryType
)

func (t metricType) String() string {
	return [...]string{"counter", "gauge", "histogram", "summary"}[t]
}

// expo collects one scrape: metric families in the order first seen, the
// samples of a family together (the formats require it), then writes them.
type expo struct {
	fams  []*family
	index map[string]*family
}

type family struct {
	name, help string
	typ        metricType
	samples    []sample
}

// sample is one line: the family's name plus suffix (_bucket, _sum,
// _count for histograms), label name/value pairs, the value.
type sample struct {
	suffix string
	labels []string
	v      float64
}

func newExpo() *expo { return &expo{index: map[string]*family{}} }

func (e *expo) family(name, help string, t metricType) *family {
	f := e.index[name]
	if f == nil {
		f = &family{name: name, help: help, typ: t}
		e.index[name] = f
		e.fams = append(e.fams, f)
	}
	return f
}

// add appends a counter or gauge sample; labels are name, value pairs.
func (e *expo) add(name, help string, t metricType, v float64, labels ...string) {
	f := e.family(name, help, t)
	f.samples = append(f.samples, sample{labels: labels, v: v})
}

// histogram appends a histogram: counts[i] observations at most bounds[i]
// (not cumulative), counts[len(bounds)] (if present) above every bound.
func (e *expo) histogram(name, help string, bounds []float64, counts []uint64, sum float64, labels ...string) {
	f := e.family(name, help, histogramType)
	var cum uint64
	for i, b := range bounds {
		if i < len(counts) {
			cum += counts[i]
		}
		f.samples = append(f.samples, sample{suffix: "_bucket", labels: withLabel(labels, "le", formatFloat(b, false)), v: float64(cum)})
	}
	for i := len(bounds); i < len(counts); i++ {
		cum += counts[i]
	}
	f.samples = append(f.samples,
		sample{suffix: "_bucket", labels: withLabel(labels, "le", "+Inf"), v: float64(cum)},
		sample{suffix: "_sum", labels: labels, v: sum},
		sample{suffix: "_count", labels: labels, v: float64(cum)})
}

// summary appends a summary: quantile values (quantiles[i] → values[i]),
// the sum and the count of the observations.
func (e *expo) summary(name, help string, quantiles, values []float64, sum float64, count uint64) {
	f := e.family(name, help, summaryType)
	for i, q := range quantiles {
		f.samples = append(f.samples, sample{labels: []string{"quantile", formatFloat(q, false)}, v: values[i]})
	}
	f.samples = append(f.samples,
		sample{suffix: "_sum", v: sum},
		sample{suffix: "_count", v: float64(count)})
}

func withLabel(labels []string, name, value string) []string {
	out := make([]string, 0, len(labels)+2)
	return append(append(out, labels...), name, value)
}

// write renders the families in the Prometheus text format 0.0.4 or, with
// om, OpenMetrics 1.0.0.
func (e *expo) write(b *bytes.Buffer, om bool) {
	for _, f := range e.fams {
		name := f.name
		if om && f.typ == counterType {
			// OpenMetrics names the counter family without _total; its
			// samples keep the suffix.
			name = strings.TrimSuffix(name, "_total")
		}
		b.WriteString("# HELP ")
		b.WriteString(name)
		b.WriteByte(' ')
		escape(b, f.help, om)
		b.WriteString("\n# TYPE ")
		b.WriteString(name)
		b.WriteByte(' ')
		b.WriteString(f.typ.String())
		b.WriteByte('\n')
		for _, s := range f.samples {
			b.WriteString(f.name)
			b.WriteString(s.suffix)
			if len(s.labels) > 0 {
				b.WriteByte('{')
				for i := 0; i+1 < len(s.labels); i += 2 {
					if i > 0 {
						b.WriteByte(',')
					}
					b.WriteString(s.labels[i])
					b.WriteString(`="`)
					escape(b, s.labels[i+1], true)
					b.WriteByte('"')
				}
				b.WriteByte('}')
			}
			b.WriteByte(' ')
			if s.suffix == "_bucket" || s.suffix == "_count" {
				b.WriteString(strconv.FormatUint(uint64(s.v), 10)) // observation counts
			} else {
				b.WriteString(formatFloat(s.v, om))
			}
			b.WriteByte('\n')
		}
	}
	if om {
		b.WriteString("# EOF\n")
	}
}

// escape writes a HELP text (quotes: false, the text format's rule) or a
// label value (quotes: true; OpenMetrics escapes quotes in HELP too).
func escape(b *bytes.Buffer, s string, quotes bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '"' && quotes:
			b.WriteString(`\"`)
		default:
			b.WriteByte(c)
		}
	}
}

// formatFloat renders a value as both formats want it; OpenMetrics wants
// a float's integer values with a decimal point ("1.0").
func formatFloat(v float64, om bool) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if om && !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s
}

// latencyHist is a lock-free latency histogram over durationBuckets.
type latencyHist struct {
	counts [len(durationBuckets) + 1]atomic.Uint64
	sumNs  atomic.Uint64
}

var durationBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

func (h *latencyHist) observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	s := d.Seconds()
	i := 0
	for i < len(durationBuckets) && s > durationBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d))
}

// snapshot reads the counts and the sum. Concurrent observations may land
// between the reads; a scrape tolerates that.
func (h *latencyHist) snapshot() (counts []uint64, sum float64) {
	counts = make([]uint64, len(h.counts))
	for i := range h.counts {
		counts[i] = h.counts[i].Load()
	}
	return counts, time.Duration(h.sumNs.Load()).Seconds()
}
