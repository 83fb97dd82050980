package main

import (
	"os"

	"github.com/edgewamp/edgewamp/loop"
)

// maxKeyFile bounds the key and certificate files the configuration names
// (a JWKS, an OAuth2 signing key, an nkey seed, a CA bundle), far past any
// real one: a CA bundle of every public root is about 220 KiB.
const maxKeyFile = 4 << 20

// readRegularFile reads a file the configuration names (a JWKS, a signing
// key, a CA bundle, an nkey seed) as loop reads the listeners' certificates
// (loop.ReadRegularFile): a regular file of at most max bytes, opened
// without waiting. Before, these were read with os.ReadFile, also at
// SIGHUP on the goroutine that handles the signals: a named pipe there
// made open wait for a writer, for ever with none, and the SIGTERM after
// it was never handled, as the configuration's own pipe once did
// (readConfigFile).
func readRegularFile(path string, max int64) ([]byte, error) { return loop.ReadRegularFile(path, max) }

// fileKind names what a file that is not a regular one is.
func fileKind(m os.FileMode) string { return loop.FileKind(m) }
