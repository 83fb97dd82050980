package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func parseText(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus's parser refuses the exposition: %v\n%s", err, body)
	}
	return fams
}

// The text format as Prometheus's own parser reads it: families whose
// samples were added interleaved come out whole, label values and help
// texts with quotes, backslashes and newlines survive, histograms are
// cumulative with +Inf, _sum and _count.
func TestExpositionTextFormat(t *testing.T) {
	e := newExpo()
	odd := "a \"quoted\" back\\slash\nnew line, ünïcode"
	e.add("x_requests_total", "Requests.\nSecond \\ line.", counterType, 3, "route", "r1")
	e.histogram("x_seconds", "Latency.", []float64{0.1, 1}, []uint64{2, 3, 4}, 7.5, "route", "r1")
	e.add("x_requests_total", "Requests.\nSecond \\ line.", counterType, 5, "route", odd)
	e.histogram("x_seconds", "Latency.", []float64{0.1, 1}, []uint64{1, 0}, 0.05, "route", "r2")
	e.add("x_temperature", "A gauge.", gaugeType, -2.5)
	e.add("x_big", "A large value.", gaugeType, 1e21)
	var b bytes.Buffer
	e.write(&b, false)
	fams := parseText(t, b.Bytes())

	f := fams["x_requests_total"]
	if f == nil || f.GetType() != dto.MetricType_COUNTER || len(f.Metric) != 2 {
		t.Fatalf("counter family: %v", f)
	}
	if f.GetHelp() != "Requests.\nSecond \\ line." {
		t.Errorf("help %q", f.GetHelp())
	}
	if got := f.Metric[1].Label[0].GetValue(); got != odd || f.Metric[1].Counter.GetValue() != 5 {
		t.Errorf("label value %q = %v, want %q = 5", got, f.Metric[1].Counter.GetValue(), odd)
	}
	h := fams["x_seconds"]
	if h == nil || h.GetType() != dto.MetricType_HISTOGRAM || len(h.Metric) != 2 {
		t.Fatalf("histogram family: %v", h)
	}
	hm := h.Metric[0].Histogram
	if hm.GetSampleCount() != 9 || hm.GetSampleSum() != 7.5 {
		t.Errorf("histogram count %d sum %v, want 9 and 7.5", hm.GetSampleCount(), hm.GetSampleSum())
	}
	var cum []uint64
	for _, bk := range hm.Bucket {
		cum = append(cum, bk.GetCumulativeCount())
	}
	if len(cum) < 2 || cum[0] != 2 || cum[1] != 5 {
		t.Errorf("buckets %v, want 2, 5 (cumulative)", cum)
	}
	if c := h.Metric[1].Histogram.GetSampleCount(); c != 1 {
		t.Errorf("second histogram count %d, without an overflow bucket", c)
	}
	if v := fams["x_temperature"].Metric[0].Gauge.GetValue(); v != -2.5 {
		t.Errorf("gauge %v", v)
	}
	if v := fams["x_big"].Metric[0].Gauge.GetValue(); v != 1e21 {
		t.Errorf("large gauge %v", v)
	}
}

// OpenMetrics: counter families named without _total, integer values with
// a decimal point, bucket counts as integers, quotes escaped in HELP, and
// # EOF at the end.
func TestExpositionOpenMetrics(t *testing.T) {
	e := newExpo()
	e.add("x_requests_total", `Say "hi".`, counterType, 3, "route", "r1")
	e.histogram("x_seconds", "Latency.", []float64{0.5}, []uint64{2, 1}, 1.25)
	e.add("x_ratio", "A gauge.", gaugeType, 0.5)
	var b bytes.Buffer
	e.write(&b, true)
	want := `# HELP x_requests Say \"hi\".
# TYPE x_requests counter
x_requests_total{route="r1"} 3.0
# HELP x_seconds Latency.
# TYPE x_seconds histogram
x_seconds_bucket{le="0.5"} 2
x_seconds_bucket{le="+Inf"} 3
x_seconds_sum 1.25
x_seconds_count 3
# HELP x_ratio A gauge.
# TYPE x_ratio gauge
x_ratio 0.5
# EOF
`
	if b.String() != want {
		t.Errorf("OpenMetrics exposition:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWantsOpenMetrics(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                         false,
		"text/plain;version=0.0.4": false,
		"*/*":                      false,
		"application/openmetrics-text; version=1.0.0": true,
		// Prometheus 2's scrape header.
		"application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2": true,
		"application/openmetrics-text;q=0.1, text/plain;q=0.5": false,
		"application/openmetrics-text;q=0":                     false,
	} {
		if got := wantsOpenMetrics(accept); got != want {
			t.Errorf("wantsOpenMetrics(%q) = %v", accept, got)
		}
	}
}

// blockingStats holds every scrape in Stats until released.
type blockingStats struct {
	in      chan struct{}
	release chan struct{}
}

func (s blockingStats) Stats(ctx context.Context) (*Stats, error) {
	s.in <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return &Stats{Connections: Gauge{7, true}}, nil
}

// The handler: HEAD has the headers and no body; gzip when asked, which
// decodes to what Prometheus parses; past maxScrapes at once a scrape gets
// 503 and the others complete.
func TestMetricsHandlerServing(t *testing.T) {
	laneFree(t)
	bs := blockingStats{in: make(chan struct{}, maxScrapes+1), release: make(chan struct{})}
	e := newEnv(t, func(o *Options) { o.Stats = bs })

	var wg sync.WaitGroup
	codes := make(chan int, maxScrapes)
	for i := 0; i < maxScrapes; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _ := e.do("GET", "/metrics", "")
			codes <- r.StatusCode
		}()
	}
	for i := 0; i < maxScrapes; i++ {
		select {
		case <-bs.in:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d scrapes reached Stats, want %d", i, maxScrapes)
		}
	}
	if r, body := e.do("GET", "/metrics", ""); r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("scrape past %d at once: %d %s", maxScrapes, r.StatusCode, body)
	}
	close(bs.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("a held scrape ended with %d", c)
		}
	}

	r, body := e.do("HEAD", "/metrics", "")
	if r.StatusCode != 200 || len(body) != 0 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("HEAD: %d %q %d bytes", r.StatusCode, r.Header.Get("Content-Type"), len(body))
	}
	r, body = e.do("GET", "/metrics", "", "Accept-Encoding", "gzip")
	if r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Accept-Encoding gzip: Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	fams := parseText(t, plain)
	if f := fams["edgewamp_connections"]; f == nil || f.Metric[0].Gauge.GetValue() != 7 {
		t.Errorf("edgewamp_connections from Stats: %v", f)
	}
	if r, _ := e.do("POST", "/metrics", "{}"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", r.StatusCode)
	}
}

// The Go runtime's and the process's figures are this process's.
func TestProcessAndGoMetrics(t *testing.T) {
	read := func() map[string]*dto.MetricFamily {
		e := newExpo()
		collectGo(e)
		collectProcess(e)
		var b bytes.Buffer
		e.write(&b, false)
		return parseText(t, b.Bytes())
	}
	gauge := func(f map[string]*dto.MetricFamily, name string) float64 {
		t.Helper()
		fam := f[name]
		if fam == nil || len(fam.Metric) != 1 {
			t.Fatalf("no %s", name)
		}
		if fam.Metric[0].Counter != nil {
			return fam.Metric[0].Counter.GetValue()
		}
		return fam.Metric[0].Gauge.GetValue()
	}
	// Other tests' connections may still be closing in the background
	// (idle keep-alive connections, servers shutting down): each
	// descriptor check gets a few tries, and must hold in one of them.
	var before, after map[string]*dto.MetricFamily
	var fdErr string
	for try := 0; try < 5; try++ {
		before = read()
		var files []*os.File
		for i := 0; i < 20; i++ {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		after = read()
		ents, err := os.ReadDir("/proc/self/fd")
		for _, f := range files {
			f.Close()
		}
		fdErr = ""
		if n := gauge(after, "process_open_fds"); err == nil && (n < float64(len(ents))-3 || n > float64(len(ents))+3) {
			fdErr = fmt.Sprintf("process_open_fds %v, /proc/self/fd lists %d", n, len(ents))
		}
		if d := gauge(after, "process_open_fds") - gauge(before, "process_open_fds"); d < 20 || d > 25 {
			fdErr = fmt.Sprintf("process_open_fds rose by %v after opening 20 files", d)
		}
		if fdErr == "" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fdErr != "" {
		t.Error(fdErr)
	}
	runtime.GC()
	blocks := make([][]byte, 0, 64)
	for i := 0; i < 64; i++ {
		blocks = append(blocks, make([]byte, 1<<20))
	}
	after = read()
	if d := gauge(after, "go_memstats_alloc_bytes_total") - gauge(before, "go_memstats_alloc_bytes_total"); d < 64<<20 {
		t.Errorf("go_memstats_alloc_bytes_total rose by %v after allocating 64 MiB", d)
	}
	runtimeKeep(blocks)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var rssKiB float64
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			rssKiB, _ = strconv.ParseFloat(f[1], 64)
		}
	}
	if rss := gauge(after, "process_resident_memory_bytes"); rss < rssKiB*1024*0.8 || rss > rssKiB*1024*1.25 {
		t.Errorf("process_resident_memory_bytes %v, /proc/self/status VmRSS %v KiB", rss, rssKiB)
	}
	if st := gauge(after, "process_start_time_seconds"); st > float64(time.Now().Unix())+1 || st < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("process_start_time_seconds %v, now %d", st, time.Now().Unix())
	}
	if d := gauge(after, "go_gc_cycles_total") - gauge(before, "go_gc_cycles_total"); d < 1 {
		t.Errorf("go_gc_cycles_total rose by %v across runtime.GC()", d)
	}
	gcs := func(f map[string]*dto.MetricFamily) *dto.Summary {
		t.Helper()
		fam := f["go_gc_duration_seconds"]
		if fam == nil || fam.GetType() != dto.MetricType_SUMMARY || len(fam.Metric) != 1 {
			t.Fatalf("go_gc_duration_seconds: %v", fam)
		}
		return fam.Metric[0].Summary
	}
	sb, sa := gcs(before), gcs(after)
	if sa.GetSampleCount() < sb.GetSampleCount()+2 || sa.GetSampleSum() <= sb.GetSampleSum() {
		t.Errorf("go_gc_duration_seconds: count %d → %d, sum %v → %v across runtime.GC() (two pauses a cycle)",
			sb.GetSampleCount(), sa.GetSampleCount(), sb.GetSampleSum(), sa.GetSampleSum())
	}
	qs := sa.GetQuantile()
	if len(qs) != 5 || qs[0].GetQuantile() != 0 || qs[4].GetQuantile() != 1 || qs[4].GetValue() <= 0 {
		t.Fatalf("go_gc_duration_seconds quantiles: %v", qs)
	}
	for i := 1; i < len(qs); i++ {
		if qs[i].GetValue() < qs[i-1].GetValue() {
			t.Errorf("go_gc_duration_seconds quantiles not in order: %v", qs)
		}
	}
	if g := gauge(after, "go_goroutines"); g < 1 {
		t.Errorf("go_goroutines %v", g)
	}
	if n := gauge(after, "process_max_fds"); n < 64 {
		t.Errorf("process_max_fds %v", n)
	}
	if gauge(after, "process_cpu_seconds_total") < 0 {
		t.Error("negative CPU time")
	}
}

var keep [][]byte

func runtimeKeep(b [][]byte) { keep = b; keep = nil }

func TestHistQuantiles(t *testing.T) {
	h := &rtmetrics.Float64Histogram{Buckets: []float64{0, 1, 2, 3, math.Inf(1)}, Counts: []uint64{1, 1, 1, 1}}
	n, v := histQuantiles(h, []float64{0, 0.5, 0.75, 1})
	if n != 4 || fmt.Sprint(v) != "[1 2 3 3]" {
		t.Errorf("histQuantiles = %d %v, want 4 [1 2 3 3] (the last bucket is unbounded: its lower bound)", n, v)
	}
	if n, v := histQuantiles(&rtmetrics.Float64Histogram{Buckets: []float64{0, 1}, Counts: []uint64{0}}, []float64{0.5}); n != 0 || v[0] != 0 {
		t.Errorf("empty histogram: %d %v", n, v)
	}
}
