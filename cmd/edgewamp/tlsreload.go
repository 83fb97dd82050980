package main

import (
	"errors"
	"log/slog"
	"time"

	"github.com/edgewamp/edgewamp/loop"
)

// reloadCerts re-reads every TLS certificate and key (SIGHUP: the
// listeners', the gateway's and mesh.tls's):
// a good pair replaces the one in use for new handshakes; a bad one
// (unreadable, key not matching, unusable by crypto/tls, not valid by the
// clock while the one in use is) is refused, logged, and the one in use
// stays; one not valid by the clock, taken because the one in use was
// not either, is warned about. It returns the refusals joined, or nil. Established
// connections keep the certificate they were made with.
//
// Each pair is read once its files have not been modified for
// configQuiet (awaitQuietConfig, as the configuration file): a chain
// written in place (cp over it) and read with its last certificate cut
// short parsed as the leaf alone (crypto/tls stops at the first block
// that is not whole PEM), which loads, matches the key and completes a
// handshake, and was served: clients that need the intermediate refused
// every new connection until the next reload. A writer pausing longer
// than configQuiet inside a certificate (a loaded host) left the file
// quiet and cut: the pair is read again until the chain is whole
// (reloadWhole).
func reloadCerts(certs []*loop.CertFile, log *slog.Logger) error {
	var errs []error
	deadline := time.Now().Add(configSettleMax)
	for _, cf := range certs {
		certPath, keyPath := cf.Paths()
		err := reloadWhole(cf, deadline)
		if errors.Is(err, errReloadStopped) {
			// A stop signal: no error, the pairs left are not waited
			// for (reload says so).
			return errors.Join(append(errs, err)...)
		}
		if err != nil {
			in := cf.Certificate().Leaf
			log.Error("SIGHUP: TLS certificate refused; keeping the one in use", "cert", certPath, "key", keyPath, "err", err,
				"in_use_serial", in.SerialNumber.String(), "in_use_not_after", in.NotAfter)
			errs = append(errs, err)
			continue
		}
		leaf := cf.Certificate().Leaf
		if cf.Expired() {
			// Taken: the one it replaced was not valid by the clock
			// either (loop.CertFile.Reload), a host whose clock is not
			// set yet, most likely.
			log.Warn("SIGHUP: TLS certificate reloaded although the host's clock says it is not valid now; the one it replaced was not valid by it either and ended no later: is the clock set (NTP)?",
				"cert", certPath, "serial", leaf.SerialNumber.String(), "subject", leaf.Subject.String(),
				"not_before", leaf.NotBefore, "not_after", leaf.NotAfter, "clock", time.Now().UTC())
			continue
		}
		log.Info("SIGHUP: TLS certificate reloaded", "cert", certPath, "serial", leaf.SerialNumber.String(),
			"subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}
	return errors.Join(errs...)
}

// reloadWhole reloads cf once its files have not been modified for
// configQuiet, and again, configQuiet/4 apart, while the certificate file
// holds a PEM block cut short (loop.ErrPEMCut: its writer paused inside
// it), until deadline; then it returns that error, and the pair in use
// stays.
func reloadWhole(cf *loop.CertFile, deadline time.Time) error {
	certPath, keyPath := cf.Paths()
	for {
		err := awaitQuietConfig(certPath, deadline)
		if err == nil {
			err = awaitQuietConfig(keyPath, deadline)
		}
		if err == nil {
			err = cf.Reload()
		}
		if !errors.Is(err, loop.ErrPEMCut) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(configQuiet / 4)
	}
}

// warnMovedCerts says when the reloaded file names other certificate
// files than the running listeners use: the paths are part of the
// listener, which needs a restart; the old paths were re-read. It loads
// the new pair, and says when the restart would fail on it: before, the
// SIGHUP said only that the paths need a restart, and the restart then
// failed on a typo in them (run does not start with a listener's pair
// that does not load), the router down until the file was fixed.
func warnMovedCerts(cfg *config, certs []*loop.CertFile, log *slog.Logger) {
	i := 0
	for _, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		if i >= len(certs) {
			log.Warn("SIGHUP: a TLS listener was added to the file; it needs a restart", "listener", l.Address)
			warnCertLoads(l, i, log)
			i++
			continue
		}
		if c, k := certs[i].Paths(); c != l.TLS.Cert || k != l.TLS.Key {
			log.Warn("SIGHUP: the file names other TLS files; the running listener re-read its own, the new paths need a restart",
				"listener", l.Address, "running_cert", c, "file_cert", l.TLS.Cert)
			warnCertLoads(l, i, log)
		}
		i++
	}
}

// warnCertLoads loads the pair a reloaded file gives a listener that
// needs a restart to take it, and says when it does not load.
func warnCertLoads(l listenerConfig, i int, log *slog.Logger) {
	if _, err := loop.LoadCertFile(l.TLS.Cert, l.TLS.Key); err != nil {
		log.Error("SIGHUP: the file's TLS files for a listener do not load: a restart would fail until they do (check-config says so too)",
			"listener", l.Address, "tls_listener", i, "err", err)
	}
}
