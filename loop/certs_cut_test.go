package loop

import (
	"bytes"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCertFileCutBlockNamesItsLine: a certificate file whose last block
// is not whole and is not being written (a chain assembled by hand, its
// root pasted short), which crypto/tls served without that block before
// 59967ae, is refused at start and by check-config since then; the error
// names the line where that block begins, so that it can be found and
// completed or removed, rather than only asking whether the file is being
// written.
func TestCertFileCutBlockNamesItsLine(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	p := validPair(t, 1)
	cut := append(append([]byte{}, p.cert...), p.cert[:len(p.cert)/2]...)
	writeAtomic(t, certPath, cut)
	writeAtomic(t, keyPath, p.key)
	want := bytes.Count(p.cert, []byte("\n")) + 1 // the cut block's BEGIN line
	_, err := LoadCertFile(certPath, keyPath)
	if !errors.Is(err, ErrPEMCut) {
		t.Fatalf("a cut last block: %v, want ErrPEMCut", err)
	}
	if !strings.Contains(err.Error(), "line "+strconv.Itoa(want)+":") {
		t.Fatalf("a cut last block: %q does not name its line %d", err, want)
	}
}
