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

// tlsOrigin is the gnet context of an enrolled TLS connection: what OnOpen
// cannot learn from the socketpair.
type tlsOrigin struct {
	ln     *listenerState
	remote string
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
		e.tlsWG.Add(1)
		go e.serveTLS(ln, c)
	}
}

// serveTLS completes the TLS handshake, then bridges the connection to an
// event loop through a socketpair.
func (e *Engine) serveTLS(ln *listenerState, raw net.Conn) {
	defer e.tlsWG.Done()
	tc := tls.Server(raw, ln.cfg.TLS)
	tc.SetDeadline(time.Now().Add(e.opts.HandshakeTimeout))
	if err := tc.Handshake(); err != nil {
		e.log.Debug("tls handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		raw.Close()
		return
	}
	tc.SetDeadline(time.Time{})
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
	ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), &tlsOrigin{ln: ln, remote: raw.RemoteAddr().String()}), loopSide)
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
