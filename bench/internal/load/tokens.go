package load

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"time"
)

// The tokens scenario, for the OAuth2 authorization server on the HTTP
// gateway: C keep-alive HTTP clients, each with one request outstanding,
// POST grant_type=client_credentials to URL/oauth/token with HTTP Basic
// client authentication (-client-id, -client-secret), for -duration; every
// answer must be 200 with an access token. With -callee-url (the router's
// WAMP URL) one WAMP caller keeps calling an echo callee there, alone
// first (its baseline) and then during the issuance: its p99 shows what
// issuing tokens costs the router's WAMP traffic. Against a bare net/http
// handler (bench/cmd/httpconst) the same run is the ceiling of the HTTP
// side.

// formRequest is a POST of an application/x-www-form-urlencoded body.
func formRequest(host, path, body, extra string) []byte {
	return []byte("POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/x-www-form-urlencoded\r\n" + extra +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

// tokenRequest is the client_credentials request of cfg's client.
func tokenRequest(cfg *Config, host string) []byte {
	basic := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(cfg.ClientID) + ":" + url.QueryEscape(cfg.ClientSecret)))
	return formRequest(host, "/oauth/token", "grant_type=client_credentials", "Authorization: Basic "+basic+"\r\n")
}

// wampCaller is one caller against an echo callee (authstorm's pair),
// whose latency is recorded into the histogram set with measure.
type wampCaller struct {
	run   *rpcRun
	close func()
}

func startWAMPCaller(cfg *Config, wsURL string) (*wampCaller, error) {
	ep, err := newEndpoint(wsURL, cfg.Ser, cfg.Realm, "", "")
	if err != nil {
		return nil, err
	}
	rc := *cfg
	rc.Callers, rc.Callees = 1, 1
	run, err := newRPCRun(&rc, ep)
	if err != nil {
		return nil, err
	}
	lc, err := newLoopClient(cfg.Loops)
	if err != nil {
		return nil, err
	}
	ss := newSessionSet(&rc, ep, lc)
	trE, trC := newTracker(1), newTracker(1)
	if err := ss.open([]role{&callee{run: run, tr: trE}}, trE, false); err != nil {
		ss.close()
		return nil, fmt.Errorf("callee: %w", err)
	}
	if err := ss.open([]role{&caller{run: run, tr: trC}}, trC, true); err != nil {
		ss.close()
		return nil, fmt.Errorf("caller: %w", err)
	}
	run.phase.Store(phWarm)
	ss.wakeAll()
	return &wampCaller{run: run, close: func() { run.phase.Store(phStop); ss.close() }}, nil
}

// measure records the caller's latencies into h (nil: none).
func (w *wampCaller) measure(h *Hist) {
	w.run.hist.Store(h)
	if h != nil {
		w.run.phase.Store(phMeasure)
	}
}

func runTokens(cfg *Config) (*Result, error) {
	host, err := httpBase(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("tokens needs -client-id and -client-secret (a confidential client with the client_credentials grant)")
	}
	req := tokenRequest(cfg, host)
	conns := make([]*httpConn, cfg.Callers)
	for i := range conns {
		if conns[i], err = dialHTTP(host, req, cfg.Timeout); err != nil {
			return nil, err
		}
		defer conns[i].c.Close()
		// The first request of each client: its answer must be a token
		// (this also fills the server's verified-secret cache, as a fleet
		// of devices asking again and again does).
		if st, err := conns[i].roundTrip(); err != nil || st != 200 {
			return nil, fmt.Errorf("first token request: status %d, %v (is %s/oauth/token an OAuth2 token endpoint, and the client's secret right?)", st, err, cfg.URL)
		}
	}
	var wc *wampCaller
	var before, during Hist
	if cfg.CalleeURL != "" {
		// The WAMP caller's loop never waits while it calls, so on one
		// processor (the tool pinned to one CPU) the HTTP clients'
		// goroutines ran only when Go preempted it, every 10 ms: every
		// token request took 10.2 ms, against a bare net/http handler too
		// (1,579 requests/s instead of 30,552). A second processor lets
		// the kernel share the CPU between the two instead.
		if p := runtime.GOMAXPROCS(0); p < 2 {
			runtime.GOMAXPROCS(2)
			defer runtime.GOMAXPROCS(p)
		}
		if wc, err = startWAMPCaller(cfg, cfg.CalleeURL); err != nil {
			return nil, err
		}
		defer wc.close()
		time.Sleep(cfg.Warmup)
		wc.measure(&before)
		time.Sleep(min(cfg.Duration, 2*time.Second))
		wc.measure(nil)
	}
	load := startHTTPLoad(conns)
	time.Sleep(cfg.Warmup)
	cpu := startCPU(cfg.RouterPID)
	t0 := time.Now()
	load.phase.Store(phMeasure)
	if wc != nil {
		wc.measure(&during)
	}
	time.Sleep(cfg.Duration)
	load.phase.Store(phStop)
	el := time.Since(t0)
	if wc != nil {
		wc.measure(nil)
	}
	r := &Result{}
	r.Set("scenario", "tokens")
	r.Set("target", cfg.Label)
	r.Set("clients", cfg.Callers)
	r.Set("grant", "client_credentials")
	r.Set("duration_s", cfg.Duration.Seconds())
	cpu.stop(r)
	load.finish(r, "tokens", el)
	if wc != nil {
		r.Set("base_calls", before.Count())
		r.Set("base_p99_us", us(before.Quantile(0.99)))
		r.Set("calls_during", during.Count())
		r.Set("call_p50_us", us(during.Quantile(0.5)))
		r.Set("call_p99_us", us(during.Quantile(0.99)))
		ne, byURI := wc.run.errorCount()
		r.Set("caller_errors", ne)
		r.Set("errors_by_uri", byURI)
	}
	moveCPU(r)
	return r, nil
}
