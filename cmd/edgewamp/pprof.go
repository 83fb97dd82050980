package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: pprofHeaderTimeout, IdleTimeout: pprofHeaderTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go srv.Serve(&limitListener{Listener: ln, slots: make(chan struct{}, pprofMaxConns)})
	return nil
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
