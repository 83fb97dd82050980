package loop

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
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
// the right kind, or when the key does not belong to the certificate. An
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

// Reload reads the files again. When they hold a good pair that is valid
// now, it replaces the certificate in use and returns nil; otherwise it
// returns why and the certificate in use stays. Reading the same pair
// again is harmless.
func (cf *CertFile) Reload() error {
	cf.reloadMu.Lock()
	defer cf.reloadMu.Unlock()
	c, err := cf.read()
	if err != nil {
		return err
	}
	if now := cf.now(); now.Before(c.Leaf.NotBefore) || now.After(c.Leaf.NotAfter) {
		return fmt.Errorf("%s: %w (valid %s to %s)", cf.certPath, ErrCertExpired,
			c.Leaf.NotBefore.UTC().Format(time.RFC3339), c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	cf.cur.Store(c)
	return nil
}

// read loads and checks the pair.
func (cf *CertFile) read() (*tls.Certificate, error) {
	certPEM, err := readPEMFile(cf.certPath)
	var keyPEM []byte
	if err == nil {
		keyPEM, err = readPEMFile(cf.keyPath)
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
	return &c, nil
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
func (cf *CertFile) Expired() bool {
	leaf, now := cf.cur.Load().Leaf, cf.now()
	return now.Before(leaf.NotBefore) || now.After(leaf.NotAfter)
}

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
