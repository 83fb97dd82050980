package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgewamp/edgewamp/client"
)

// HTTP scenarios, for the HTTP gateway:
//
//   - httpcall: C clients, each on its own keep-alive connection with one
//     request outstanding, POST {"args":["<payload>"]} to
//     URL/wamp/REALM/call/PROCEDURE; with -callee-url a WAMP callee (in this
//     process) answers with the same arguments. Against a bare net/http
//     handler that returns constant JSON (bench/cmd/httpconst) the same run
//     is the ceiling.
//   - sse: S Server-Sent Events streams on URL/wamp/REALM/events/TOPIC and
//     one publisher POSTing to URL/wamp/REALM/publish/TOPIC at -rate
//     publications/s; each event carries its send time.
//
// The HTTP client is lean (pre-built request bytes, a status line and
// Content-Length parser), so that the tool costs far less per request
// than the server it measures.

// httpConn is one keep-alive HTTP/1.1 connection.
type httpConn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

func dialHTTP(host string, req []byte, timeout time.Duration) (*httpConn, error) {
	c, err := net.DialTimeout("tcp", host, timeout)
	if err != nil {
		return nil, err
	}
	return &httpConn{c: c, br: bufio.NewReaderSize(c, 16<<10), req: req}, nil
}

// roundTrip sends the request and reads the response; it returns the
// status.
func (h *httpConn) roundTrip() (int, error) {
	if _, err := h.c.Write(h.req); err != nil {
		return 0, err
	}
	return h.readResponse()
}

func (h *httpConn) readResponse() (int, error) {
	line, err := h.br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	n := -1
	for {
		line, err = h.br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > 16 && (line[0] == 'C' || line[0] == 'c') && bytes.EqualFold(line[:15], []byte("Content-Length:")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(line[15:])))
		}
	}
	if n < 0 {
		return status, errors.New("response without Content-Length")
	}
	if _, err := h.br.Discard(n); err != nil {
		return 0, err
	}
	return status, nil
}

func postRequest(host, path string, body []byte, extra string) []byte {
	return []byte("POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/json\r\n" + extra +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
}

// httpBase returns host:port of an http:// URL.
func httpBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return "", fmt.Errorf("want an http://host:port URL, not %q", raw)
	}
	host, _, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", err
	}
	if err := loopbackOnly(host); err != nil {
		return "", err
	}
	return u.Host, nil
}

// startCallee registers cfg.Procedure at cfg.CalleeURL, answering with
// the call's arguments.
func startCallee(cfg *Config) (*client.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: cfg.CalleeURL, Realm: cfg.Realm, Serializer: cfg.Ser})
	if err != nil {
		return nil, fmt.Errorf("callee: %w", err)
	}
	if _, err := s.Register(ctx, cfg.Procedure, func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil); err != nil {
		s.Close()
		return nil, fmt.Errorf("callee: %w", err)
	}
	return s, nil
}

func runHTTPCall(cfg *Config) (*Result, error) {
	host, err := httpBase(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.CalleeURL != "" {
		s, err := startCallee(cfg)
		if err != nil {
			return nil, err
		}
		defer s.Close()
	}
	body := []byte(`{"args":["` + strings.Repeat("x", cfg.Payload) + `"]}`)
	req := postRequest(host, "/wamp/"+cfg.Realm+"/call/"+cfg.Procedure, body, "")
	conns := make([]*httpConn, cfg.Callers)
	for i := range conns {
		if conns[i], err = dialHTTP(host, req, cfg.Timeout); err != nil {
			return nil, err
		}
		defer conns[i].c.Close()
		if st, err := conns[i].roundTrip(); err != nil || st != 200 {
			return nil, fmt.Errorf("first call: status %d, %v", st, err)
		}
	}
	load := startHTTPLoad(conns)
	time.Sleep(cfg.Warmup)
	cpu := startCPU(cfg.RouterPID)
	t0 := time.Now()
	load.phase.Store(phMeasure)
	time.Sleep(cfg.Duration)
	load.phase.Store(phStop)
	el := time.Since(t0)
	r := &Result{}
	r.Set("scenario", "httpcall")
	r.Set("target", cfg.Label)
	r.Set("clients", cfg.Callers)
	r.Set("payload", cfg.Payload)
	r.Set("duration_s", cfg.Duration.Seconds())
	cpu.stop(r)
	load.finish(r, "calls", el)
	return r, nil
}

// httpLoad is closed-loop HTTP clients: each connection keeps one request
// outstanding, and requests answered 200 while measuring are counted.
type httpLoad struct {
	phase    atomic.Int32 // phWarm, phMeasure, phStop
	ok, errs atomic.Int64
	hist     Hist
	statuses sync.Map // error statuses seen ("io" for a broken connection)
	wg       sync.WaitGroup
}

// startHTTPLoad starts one client per connection, warming up.
func startHTTPLoad(conns []*httpConn) *httpLoad {
	l := &httpLoad{}
	l.phase.Store(phWarm)
	for _, hc := range conns {
		l.wg.Add(1)
		go func(hc *httpConn) {
			defer l.wg.Done()
			for {
				p := l.phase.Load()
				if p == phStop {
					return
				}
				t0 := nowNS()
				st, err := hc.roundTrip()
				if err != nil {
					l.errs.Add(1)
					l.statuses.Store("io", true)
					return
				}
				if p == phMeasure {
					if st != 200 {
						l.errs.Add(1)
						l.statuses.Store(strconv.Itoa(st), true)
						continue
					}
					l.hist.Record(nowNS() - t0)
					l.ok.Add(1)
				}
			}
		}(hc)
	}
	return l
}

// finish waits for the clients (phase already phStop) and records the
// count as name and name_per_s over el, the latency and the errors.
func (l *httpLoad) finish(r *Result, name string, el time.Duration) {
	l.wg.Wait()
	n := l.ok.Load()
	r.Set(name, n)
	r.Set(name+"_per_s", float64(n)/el.Seconds())
	r.setLatency("", &l.hist)
	r.Set("errors", l.errs.Load())
	var sts []string
	l.statuses.Range(func(k, _ any) bool { sts = append(sts, k.(string)); return true })
	r.Set("error_statuses", strings.Join(sts, ","))
}

// runSSE measures the fan-out of events to SSE streams.
func runSSE(cfg *Config) (*Result, error) {
	host, err := httpBase(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Rate <= 0 {
		return nil, errors.New("sse: -rate (publications/s) is required")
	}
	get := []byte("GET /wamp/" + cfg.Realm + "/events/" + cfg.Topic + " HTTP/1.1\r\nHost: " + host + "\r\nAccept: text/event-stream\r\n\r\n")
	var measuring atomic.Bool
	var pubFrom, pubTo atomic.Int64 // the measured window, in nowNS
	var delivered, cut atomic.Int64
	hist := &Hist{}
	streams := make([]net.Conn, 0, cfg.Subscribers)
	var wg sync.WaitGroup
	ready := make(chan error, cfg.Subscribers)
	for i := 0; i < cfg.Subscribers; i++ {
		c, err := net.DialTimeout("tcp", host, cfg.Timeout)
		if err != nil {
			return nil, fmt.Errorf("stream %d: %w", i, err)
		}
		streams = append(streams, c)
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			c.Write(get)
			br := bufio.NewReaderSize(c, 32<<10)
			line, err := br.ReadSlice('\n')
			if err != nil || !bytes.HasPrefix(line, []byte("HTTP/1.1 200")) {
				ready <- fmt.Errorf("stream: %q %v", line, err)
				return
			}
			subscribed := false
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					if measuring.Load() {
						cut.Add(1)
					}
					return
				}
				if !subscribed && bytes.HasPrefix(line, []byte(": subscribed")) {
					subscribed = true
					ready <- nil
					continue
				}
				if !bytes.HasPrefix(line, []byte("data: ")) {
					continue
				}
				i := bytes.Index(line, []byte(`"args":[`))
				if i < 0 {
					continue
				}
				j := i + 8
				k := j
				for k < len(line) && line[k] >= '0' && line[k] <= '9' {
					k++
				}
				ts, _ := strconv.ParseInt(string(line[j:k]), 10, 64)
				if ts >= pubFrom.Load() && ts < pubTo.Load() {
					delivered.Add(1)
					hist.Record(nowNS() - ts)
				}
			}
		}(c)
	}
	defer func() {
		for _, c := range streams {
			c.Close()
		}
		wg.Wait()
	}()
	for i := 0; i < cfg.Subscribers; i++ {
		select {
		case err := <-ready:
			if err != nil {
				return nil, err
			}
		case <-time.After(cfg.Timeout):
			return nil, fmt.Errorf("only %d of %d streams subscribed", i, cfg.Subscribers)
		}
	}
	pubReq := func(ts int64) []byte {
		body := `{"args":[` + strconv.FormatInt(ts, 10) + `,"` + strings.Repeat("x", cfg.Payload) + `"]}`
		return postRequest(host, "/wamp/"+cfg.Realm+"/publish/"+cfg.Topic, []byte(body), "")
	}
	pc, err := dialHTTP(host, nil, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	defer pc.c.Close()
	var published, pubErrs int64
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	pubFrom.Store(1 << 62)
	publish := func(until time.Time, measured bool) {
		next := time.Now()
		for time.Now().Before(until) {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
			pc.req = pubReq(nowNS())
			st, err := pc.roundTrip()
			if err != nil || st != 202 {
				pubErrs++
				if err != nil {
					return
				}
				continue
			}
			if measured {
				published++
			}
		}
	}
	publish(time.Now().Add(cfg.Warmup), false)
	cpu := startCPU(cfg.RouterPID)
	t0 := time.Now()
	pubFrom.Store(nowNS())
	pubTo.Store(1 << 62)
	measuring.Store(true)
	publish(t0.Add(cfg.Duration), true)
	pubTo.Store(nowNS())
	el := time.Since(t0)
	r := &Result{}
	r.Set("scenario", "sse")
	r.Set("target", cfg.Label)
	r.Set("streams", cfg.Subscribers)
	r.Set("payload", cfg.Payload)
	r.Set("target_events_per_s", cfg.Rate*float64(cfg.Subscribers))
	r.Set("duration_s", cfg.Duration.Seconds())
	cpu.stop(r)
	time.Sleep(time.Second) // the last events arrive
	measuring.Store(false)
	n := delivered.Load()
	r.Set("published", published)
	r.Set("delivered", n)
	r.Set("events_per_s", float64(n)/el.Seconds())
	if published > 0 {
		r.Set("delivery_ratio", float64(n)/float64(published*int64(cfg.Subscribers)))
	}
	r.setLatency("", hist)
	r.Set("streams_cut", cut.Load())
	r.Set("publish_errors", pubErrs)
	return r, nil
}
