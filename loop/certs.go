package loop

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CertFile is a TLS certificate and its private key, read from PEM files
// and replaced without a restart: Reload reads the files again and, when
// they hold a good pair, swaps it in atomically; handshakes that start
// afterwards present the new certificate, connections already established
// keep theirs. A bad pair is refused and the one in use stays.
//
// A listener uses it through its tls.Config (TLSConfig, or GetCertificate
// in a config of one's own), so any TLS server built on crypto/tls serves
// the rotated certificate: the goroutine bridge of tls.go today, a TLS
// state machine on the event loops tomorrow.
//
// All methods are safe for concurrent use. GetCertificate does not block
// and does not allocate; Reload reads files and blocks while it does.
type CertFile struct {
	certPath, keyPath string // static
	now               func() time.Time

	cur      atomic.Pointer[tls.Certificate]
	reloadMu sync.Mutex // serializes Reload: two reloads never interleave their reads
}

// LoadCertFile reads a PEM certificate (chain) and its private key. It
// fails when either file is missing or unreadable, holds no PEM block of
// the right kind, when the key does not belong to the certificate, or
// when crypto/tls cannot complete a handshake with the pair (servable). An
// expired certificate is loaded (the router starts, clients will refuse
// it): Expired tells the caller, who should warn.
func LoadCertFile(certPath, keyPath string) (*CertFile, error) {
	cf := &CertFile{certPath: certPath, keyPath: keyPath, now: time.Now}
	c, err := cf.read()
	if err != nil {
		return nil, err
	}
	cf.cur.Store(c)
	return cf, nil
}

// ErrCertExpired is returned by Reload for a certificate whose validity
// has ended or not yet begun.
var ErrCertExpired = errors.New("loop: certificate is not valid now")

// Reload reads the files again. When they hold a good pair, it replaces
// the certificate in use and returns nil; otherwise it returns why and the
// certificate in use stays. Reading the same pair again is harmless.
//
// A pair that is not valid by the host's clock is refused when the one in
// use is valid by it, and when it ends before the one in use (an older
// certificate); otherwise it is taken, and Expired tells the caller, who
// should warn. A board without a battery-backed clock starts at 1970 and
// may serve before NTP sets it: every pair is "not yet valid" then, the
// one in use too, and every renewal was refused at SIGHUP, keeping the
// older one.
func (cf *CertFile) Reload() error {
	cf.reloadMu.Lock()
	defer cf.reloadMu.Unlock()
	c, err := cf.read()
	if err != nil {
		return err
	}
	now, leaf, in := cf.now(), c.Leaf, cf.cur.Load().Leaf
	if validAt(leaf, now) {
		cf.cur.Store(c)
		return nil
	}
	valid := fmt.Sprintf("valid %s to %s, the host's clock reads %s", rfc3339(leaf.NotBefore), rfc3339(leaf.NotAfter), rfc3339(now))
	switch {
	case validAt(in, now):
		return fmt.Errorf("%s: %w (%s; the one in use is valid now)", cf.certPath, ErrCertExpired, valid)
	case leaf.NotAfter.Before(in.NotAfter):
		return fmt.Errorf("%s: %w (%s) and ends before the one in use (%s), not valid now either",
			cf.certPath, ErrCertExpired, valid, rfc3339(in.NotAfter))
	}
	cf.cur.Store(c)
	return nil
}

// validAt reports whether the certificate is within its validity period at t.
func validAt(leaf *x509.Certificate, t time.Time) bool {
	return !t.Before(leaf.NotBefore) && !t.After(leaf.NotAfter)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// read loads and checks the pair.
func (cf *CertFile) read() (*tls.Certificate, error) {
	certPEM, err := readPEMFile(cf.certPath)
	if err == nil {
		err = wholePEM(certPEM)
	}
	var keyPEM []byte
	if err == nil {
		keyPEM, err = readPEMFile(cf.keyPath)
		if err == nil && len(bytes.TrimSpace(keyPEM)) == 0 {
			err = fmt.Errorf("key file: %w", ErrPEMCut)
		}
	}
	var c tls.Certificate
	if err == nil {
		c, err = tls.X509KeyPair(certPEM, keyPEM)
	}
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s, key %s: %w", cf.certPath, cf.keyPath, err)
	}
	if c.Leaf == nil { // LoadX509KeyPair sets it since Go 1.23; be explicit
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("TLS certificate %s: %w", cf.certPath, err)
		}
		c.Leaf = leaf
	}
	if err := servable(&c); err != nil {
		return nil, fmt.Errorf("TLS certificate %s, key %s: a TLS 1.3 handshake with this pair fails: %w",
			cf.certPath, cf.keyPath, err)
	}
	return &c, nil
}

// ErrPEMCut is returned for a certificate file holding a PEM block that is
// not whole, or for an empty certificate or key file: one cut short, most
// likely, by a writer still writing it (an empty file: opened with O_TRUNC,
// not written yet).
var ErrPEMCut = errors.New("loop: the file is empty or holds a PEM block that is not whole (being written? if not, complete or remove that block)")

// wholePEM reports ErrPEMCut when b holds a PEM block that pem.Decode
// cannot read. crypto/tls stops at such a block and takes the certificates
// before it: a chain written in place (cp over it) and read with its last
// certificate cut short loaded as its leaf alone, which matches the key
// and completes a handshake, and was served: clients that need the
// intermediate refused every new connection. An empty file is one too:
// cat and cp truncate it, then write it whole, and a writer descheduled
// between the two had it refused, the renewal lost until the next reload.
func wholePEM(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return ErrPEMCut
	}
	all := b
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
	}
	// The line of the block, for a file that is not being written (a
	// chain assembled by hand whose last block is short), which is
	// refused at start and by check-config too.
	if i := bytes.Index(b, []byte("-----BEGIN")); i >= 0 {
		line := bytes.Count(all[:len(all)-len(b)+i], []byte("\n")) + 1
		return fmt.Errorf("the certificate file's line %d: %w", line, ErrPEMCut)
	}
	return nil
}

// servable reports why crypto/tls cannot complete a TLS 1.3 handshake
// with the pair, or nil: it runs one in memory, as server with the pair
// against a client that checks nothing. A listener negotiates TLS 1.3 with
// every client that offers it (all current ones, the project's Go client
// included), so a pair that fails there fails them all.
// tls.X509KeyPair checks that the key belongs to the certificate, not that
// crypto/tls can sign with it: a P-224 key ("unsupported certificate
// curve" in TLS 1.3, though TLS 1.2 takes it) or an RSA key under 1,024
// bits (Go refuses to sign with one) loads, and every handshake then
// failed: Reload took such a pair, logged it as reloaded, and the listener
// refused every new client until the next good SIGHUP. A handshake costs
// about a millisecond, at start and at SIGHUP only.
//
// The handshake sends the leaf alone; the rest of the chain is checked
// here for the shape of a certificate (RFC 5280: a SEQUENCE of the
// tbsCertificate, the signature algorithm and the signature, nothing
// after it), which is what every client's parser needs: crypto/tls sends
// the chain as it is, and what is inside is for each client to judge. Go's
// x509 parser was used before, and it refuses what other clients take: a
// negative serial number (which OpenSSL makes; Go 1.23 on) and a key on a
// curve Go does not know (brainpoolP256r1, which OpenSSL's, Python's and
// Java's clients verify): such chains, served before, were refused at
// start and on SIGHUP.
func servable(c *tls.Certificate) error {
	for i, der := range c.Certificate[1:] {
		if err := certShaped(der); err != nil {
			return fmt.Errorf("certificate %d of the chain: %w", i+2, err)
		}
	}
	leaf := *c
	leaf.Certificate = c.Certificate[:1]
	return trialHandshake(&leaf, tls.VersionTLS13)
}

// errNotCertificate: a chain element without a certificate's shape.
var errNotCertificate = errors.New("loop: not an X.509 certificate (a SEQUENCE of tbsCertificate, signatureAlgorithm, signatureValue)")

// certShaped reports whether der has a certificate's outer shape.
func certShaped(der []byte) error {
	var c struct {
		TBS asn1.RawValue
		Alg asn1.RawValue
		Sig asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &c)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %v", errNotCertificate, err)
	case len(rest) > 0, c.TBS.Class != asn1.ClassUniversal || c.TBS.Tag != asn1.TagSequence || !c.TBS.IsCompound,
		c.Alg.Class != asn1.ClassUniversal || c.Alg.Tag != asn1.TagSequence || !c.Alg.IsCompound:
		return errNotCertificate
	}
	return nil
}

// trialHandshake runs a handshake of version v over a socket pair, bounded
// by a deadline, and returns why it failed: the error of the side that
// found the fault (the other one's is the alert it received, or the pair
// closed). A socket pair, not net.Pipe, which buffers nothing: a client
// that refuses the server's Certificate message while the server still
// writes its flight would wait for the deadline to send its alert.
func trialHandshake(c *tls.Certificate, v uint16) error {
	sc, cc, err := socketPair()
	if err != nil {
		return err
	}
	defer sc.Close()
	defer cc.Close()
	deadline := time.Now().Add(10 * time.Second)
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	srv := tls.Server(sc, &tls.Config{
		Certificates:           []tls.Certificate{*c},
		MinVersion:             v,
		MaxVersion:             v,
		SessionTicketsDisabled: true, // nothing written after the server's Finished
	})
	cli := tls.Client(cc, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v})
	serr, cerr := make(chan error, 1), make(chan error, 1)
	go func() {
		err := srv.Handshake()
		if err != nil {
			sc.Close() // after its alert: the client reads it, then the end
		}
		serr <- err
	}()
	go func() {
		err := cli.Handshake()
		if err != nil {
			cc.Close()
		}
		cerr <- err
	}()
	se, ce := <-serr, <-cerr
	switch {
	case se != nil && !remoteTLSError(se):
		return se
	case ce != nil && !remoteTLSError(ce):
		return ce
	case se != nil:
		return se
	}
	return ce
}

// remoteTLSError reports whether err is an alert crypto/tls received.
func remoteTLSError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// socketPair returns the two ends of a connected Unix stream socket pair.
func socketPair() (net.Conn, net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "tls-trial")
		conns[i], err = net.FileConn(f) // a duplicate of fd
		f.Close()
		if err != nil {
			if i == 1 {
				conns[0].Close()
			} else {
				unix.Close(fds[1])
			}
			return nil, nil, err
		}
	}
	return conns[0], conns[1], nil
}

// maxPEMFile bounds a certificate (chain) or key file, far past any real
// one (a chain of a few certificates takes a few KiB).
const maxPEMFile = 1 << 20

// readPEMFile reads a certificate or key file (ReadRegularFile, at most
// maxPEMFile bytes): Reload runs on whatever goroutine asks (cmd's, the
// one that handles the signals), and tls.LoadX509KeyPair's os.ReadFile of
// a named pipe without a writer waited for ever in open, the router's
// stop with it.
func readPEMFile(path string) ([]byte, error) { return ReadRegularFile(path, maxPEMFile) }

// ReadRegularFile reads a regular file of at most max bytes, opened
// without waiting (O_NONBLOCK): anything else (a named pipe, a device, a
// directory, a socket) is refused, naming what it is, as is a larger
// file. For files read again while the router runs (at SIGHUP), where an
// open that waits for a pipe's writer would block the caller for ever.
func ReadRegularFile(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %s, not a regular file", path, FileKind(fi.Mode()))
	}
	tooLarge := fmt.Errorf("%s is larger than %d bytes, far more than such a file holds", path, max)
	if fi.Size() > max {
		return nil, tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, tooLarge
	}
	return b, nil
}

// FileKind names what a file that is not a regular one is.
func FileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// Certificate returns the certificate in use.
func (cf *CertFile) Certificate() *tls.Certificate { return cf.cur.Load() }

// Expired reports whether the certificate in use is outside its validity
// period now.
func (cf *CertFile) Expired() bool { return !validAt(cf.cur.Load().Leaf, cf.now()) }

// Paths returns the certificate and key file names.
func (cf *CertFile) Paths() (cert, key string) { return cf.certPath, cf.keyPath }

// GetCertificate is a tls.Config.GetCertificate that returns the
// certificate in use, whatever the client asked for.
func (cf *CertFile) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return cf.cur.Load(), nil
}

// TLSConfig returns a server configuration (TLS 1.2 or later) that serves
// the certificate in use at each handshake.
func (cf *CertFile) TLSConfig() *tls.Config {
	return &tls.Config{GetCertificate: cf.GetCertificate, MinVersion: tls.VersionTLS12}
}
