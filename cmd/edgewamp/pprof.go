package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// The -pprof server's bounds. It served with http.Serve, which has no
// timeout and takes every connection: one that sent nothing stayed for
// ever, each a descriptor and a goroutine, outside the connections'
// budget and in the descriptors the open-file limit keeps for the rest of
// the process (loop's fdReserve, 64: the gateway, NATS, JetStream's and
// the OAuth2 state's files), which a few dozen idle connections took. A
// profiling tool makes one request at a time and sends it at once.
const (
	pprofMaxConns      = 8
	pprofHeaderTimeout = 2 * time.Second
)

// servePprof serves the runtime profiles on addr, on a goroutine of its
// own (the event loops never touch it). It is off unless -pprof is given.
// At most pprofMaxConns connections are held (the others wait in the
// kernel's backlog), and one whose request's header has not come within
// pprofHeaderTimeout, or idle that long between requests, is closed.
func servePprof(addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "address", ln.Addr().String())
	if h, _, _ := net.SplitHostPort(addr); !loopbackHost(h) {
		// The profiles take no credential: a goroutine dump (stop the
		// world), a CPU profile or a trace of any length, the command
		// line (credentials in mesh URLs), for whoever reaches it.
		log.Warn("pprof: listening on an address that is not loopback: anyone who reaches it can read the process's profiles and command line and make it profile or trace itself, without a credential; use 127.0.0.1 (or ::1) and an SSH tunnel", "address", addr)
	}
	var h http.Handler = mux
	h = webPageGuard{next: h}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: pprofHeaderTimeout, IdleTimeout: pprofHeaderTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go srv.Serve(&limitListener{Listener: ln, slots: make(chan struct{}, pprofMaxConns)})
	return nil
}

// webPageGuard refuses (403) the requests of web pages. On loopback the
// profiles were open to any page in a browser on the router's host, or on
// an operator's machine with an SSH tunnel to it: a name its attacker
// then points at 127.0.0.1 (DNS rebinding) made the answers the page's own
// (the command line, with credentials in mesh URLs; goroutine dumps), and
// any page could start a CPU profile or a trace of any length with an
// <img>, without reading the answer. Browsers say where a request comes
// from (an Origin header on a page's fetch or form, Sec-Fetch-Site on
// every request since 2020-2023), and a rebound name stays in Host:
// go tool pprof, curl and a browser's own navigation send neither and
// name the address they dial. A request that arrives on a loopback
// address (the gateway's rule) must name an IP address, localhost or a
// name under .localhost in Host; on other addresses (warned of) a host
// name is the operator's way in.
type webPageGuard struct {
	next http.Handler
}

func (g webPageGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	site := r.Header.Get("Sec-Fetch-Site")
	la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if r.Header.Get("Origin") != "" || (site != "" && site != "none" && site != "same-origin") ||
		(isLoopbackAddr(la) && !localHostName(r.Host)) {
		http.Error(w, "pprof: refused: a request from a web page, or naming a host other than an IP address or localhost", http.StatusForbidden)
		return
	}
	g.next.ServeHTTP(w, r)
}

// localHostName reports whether hostport, a request's Host, names an IP
// address, localhost or a name under .localhost (which browsers resolve to
// loopback themselves).
func localHostName(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
		return true
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// isLoopbackAddr reports whether a is a loopback TCP address.
func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// limitListener holds at most cap(slots) accepted connections at once.
type limitListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, free: func() { <-l.slots }}, nil
}

// slotConn gives its slot back when it is first closed.
type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}
