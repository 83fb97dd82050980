package loop

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Reload refused every pair that was not valid by the router's clock, even
// when the pair in use was not valid by it either: a board that starts at
// 1970 (no RTC, NTP not yet synced) refused every renewed certificate at
// SIGHUP, keeping one just as "invalid". Now a pair that is not valid now
// is refused only when the one in use is, or when it ends before the one
// in use (an older certificate); otherwise it is taken, and Expired says
// so for the caller's log line.
func TestCertFileReloadWhenClockDisagreesWithBoth(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	now := time.Now()
	inUse := newPEMPair(t, 1, now.Add(-time.Hour), now.Add(30*24*time.Hour))
	inUse.install(t, certPath, keyPath)
	cf, err := LoadCertFile(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}

	// The clock is at 1970: neither the pair in use nor the renewal is
	// valid by it. The renewal is taken.
	cf.now = func() time.Time { return time.Unix(60, 0) }
	renewed := newPEMPair(t, 2, now.Add(-time.Minute), now.Add(90*24*time.Hour))
	renewed.install(t, certPath, keyPath)
	if err := cf.Reload(); err != nil || servedSerial(t, cf) != 2 {
		t.Fatalf("clock at 1970, pair in use not valid by it either: renewal refused: %v (serial %d in use)", err, servedSerial(t, cf))
	}
	if !cf.Expired() {
		t.Fatal("the pair taken is not valid at 1970: Expired says it is")
	}
	// An older pair than the one in use is still refused.
	older := newPEMPair(t, 3, now.Add(-2*time.Hour), now.Add(10*24*time.Hour))
	older.install(t, certPath, keyPath)
	if err := cf.Reload(); !errors.Is(err, ErrCertExpired) || !strings.Contains(err.Error(), "ends before") || servedSerial(t, cf) != 2 {
		t.Fatalf("clock at 1970, a pair ending before the one in use: %v (serial %d in use)", err, servedSerial(t, cf))
	}

	// The clock is right: the pair in use is valid; one that is not yet
	// valid is refused, saying why.
	cf.now = time.Now
	future := newPEMPair(t, 4, now.Add(24*time.Hour), now.Add(200*24*time.Hour))
	future.install(t, certPath, keyPath)
	err = cf.Reload()
	if !errors.Is(err, ErrCertExpired) || !strings.Contains(err.Error(), "the one in use is") || servedSerial(t, cf) != 2 {
		t.Fatalf("a pair not yet valid while the one in use is: %v (serial %d in use)", err, servedSerial(t, cf))
	}
	t.Logf("refused: %v", err)
}
