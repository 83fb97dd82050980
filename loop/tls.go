package loop

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// TLS listeners. gnet has no TLS, so each TLS connection is decrypted by a
// pair of goroutines (one per direction) and handed to the event loops as
// the plaintext end of a unix socketpair. Everything after that — framing,
// routing, backpressure, keepalive — is the same code as for plaintext
// connections; only TLS connections cost goroutines. The kernel socket
// buffers between the two ends give natural backpressure in both
// directions.

// tlsDrainTimeout bounds how long a bridge keeps forwarding, once the loop
// has closed a connection, what the loop wrote before closing (a close
// frame, a GOODBYE, the rest of a backlog) to a client that does not take
// it. Without a bound a client that stops reading would hold its bridge
// (two goroutines, the TLS connection and the kernel buffers of both
// sockets) forever, after the loop closed it as a slow consumer.
const tlsDrainTimeout = 5 * time.Second

// tlsShutdownGrace is how long Shutdown lets the remaining TLS connections
// (handshakes, bridges draining) finish once the loops have stopped.
const tlsShutdownGrace = time.Second

// tlsOrigin is the gnet context of an enrolled TLS connection: what OnOpen
// cannot learn from the socketpair, and the TCP connection under the TLS
// one, which the loop's OnClose bounds (loopClosed).
type tlsOrigin struct {
	ln     *listenerState
	remote string
	raw    net.Conn
}

// loopClosed is called on the loop when it has closed the connection: the
// bridge forwards what is left for at most tlsDrainTimeout.
func (o *tlsOrigin) loopClosed() {
	o.raw.SetWriteDeadline(time.Now().Add(tlsDrainTimeout))
}

// trackTLS registers a TLS connection until untrackTLS, so that Shutdown
// can bound it. It reports false once Shutdown has aborted TLS.
func (e *Engine) trackTLS(c net.Conn) bool {
	e.tlsMu.Lock()
	defer e.tlsMu.Unlock()
	if e.tlsAborted {
		return false
	}
	if e.tlsConns == nil {
		e.tlsConns = map[net.Conn]struct{}{}
	}
	e.tlsConns[c] = struct{}{}
	return true
}

func (e *Engine) untrackTLS(c net.Conn) {
	e.tlsMu.Lock()
	delete(e.tlsConns, c)
	e.tlsMu.Unlock()
}

// abortTLS gives every TLS connection left (in its handshake, or a bridge
// still forwarding to a client that does not read) until deadline, and
// refuses new ones.
func (e *Engine) abortTLS(deadline time.Time) {
	e.tlsMu.Lock()
	defer e.tlsMu.Unlock()
	e.tlsAborted = true
	for c := range e.tlsConns {
		c.SetDeadline(deadline)
	}
}

// tlsCount returns the number of TLS connections with a goroutine.
func (e *Engine) tlsCount() int {
	e.tlsMu.Lock()
	defer e.tlsMu.Unlock()
	return len(e.tlsConns)
}

func (e *Engine) startTLS() error {
	for _, ln := range e.lns {
		if ln.cfg.TLS == nil {
			continue
		}
		l, err := net.Listen("tcp", ln.cfg.Addr)
		if err != nil {
			return err
		}
		ln.tln = l
		ln.addr = l.Addr()
		e.tlsWG.Add(1)
		go e.acceptTLS(ln)
	}
	return nil
}

func (e *Engine) acceptTLS(ln *listenerState) {
	defer e.tlsWG.Done()
	for {
		c, err := ln.tln.Accept()
		if err != nil {
			if e.draining.Load() {
				return
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.log.Warn("tls accept", "listener", ln.cfg.Addr, "err", err)
			time.Sleep(50 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		// MaxConns counts a TLS connection from here to the end of its
		// bridge: a handshake in progress holds a goroutine and TLS state
		// for up to HandshakeTimeout. Over the cap there is no polite
		// answer (a 503 would cost a handshake per flooding connection):
		// close at once.
		if ln.conns.Add(1) > int64(ln.cfg.MaxConns) {
			ln.conns.Add(-1)
			c.Close()
			continue
		}
		if !e.takeFDs(fdsPerTLS) {
			ln.conns.Add(-1)
			c.Close()
			continue
		}
		e.tlsWG.Add(1)
		go e.serveTLS(ln, c)
	}
}

// serveTLS completes the TLS handshake, then bridges the connection to an
// event loop through a socketpair.
func (e *Engine) serveTLS(ln *listenerState, raw net.Conn) {
	defer e.tlsWG.Done()
	defer ln.conns.Add(-1) // counted by acceptTLS
	defer e.fds.Add(-fdsPerTLS)
	if !e.trackTLS(raw) {
		raw.Close()
		return
	}
	defer e.untrackTLS(raw)
	tc := tls.Server(raw, ln.cfg.TLS)
	tc.SetDeadline(time.Now().Add(e.opts.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		e.log.Debug("tls handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	// Clear the handshake deadline, unless Shutdown has set its own.
	e.tlsMu.Lock()
	aborted := e.tlsAborted
	if !aborted {
		tc.SetDeadline(time.Time{})
	}
	e.tlsMu.Unlock()
	if aborted {
		raw.Close()
		return
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		e.log.Warn("tls: socketpair", "err", err)
		tc.Close()
		return
	}
	loopSide, err := fdConn(fds[0])
	if err != nil {
		unix.Close(fds[1])
		tc.Close()
		return
	}
	ourSide, err := fdConn(fds[1])
	if err != nil {
		loopSide.Close()
		tc.Close()
		return
	}
	ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), &tlsOrigin{ln: ln, remote: raw.RemoteAddr().String(), raw: raw}), loopSide)
	res, err := e.eng.Register(ctx)
	if err == nil {
		r := <-res
		err = r.Err
	}
	loopSide.Close() // gnet holds a dup of it now
	if err != nil {
		ourSide.Close()
		tc.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { // TLS → loop
		io.Copy(ourSide, tc)
		ourSide.(*net.UnixConn).CloseWrite()
		done <- struct{}{}
	}()
	// loop → TLS
	io.Copy(tc, ourSide)
	tc.CloseWrite()
	tc.Close()
	ourSide.Close()
	<-done
}

// fdConn wraps a socket file descriptor as a *net.UnixConn.
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	return net.FileConn(f)
}
