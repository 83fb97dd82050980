package main

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// maxKeyFile bounds the key and certificate files the configuration names
// (a JWKS, an OAuth2 signing key, an nkey seed, a CA bundle), far past any
// real one: a CA bundle of every public root is about 220 KiB.
const maxKeyFile = 4 << 20

// readRegularFile reads a file the configuration names (a JWKS, a signing
// key, a CA bundle, an nkey seed): a regular file of at most max bytes.
// It opens it without waiting (O_NONBLOCK) and refuses anything else (a
// named pipe, a device, a directory, a socket), naming what it is. Before,
// these were read with os.ReadFile, also at SIGHUP on the goroutine that
// handles the signals: a named pipe there made open wait for a writer,
// for ever with none, and the SIGTERM after it was never handled, as the
// configuration's own pipe once did (readConfigFile).
func readRegularFile(path string, max int64) ([]byte, error) {
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
		return nil, fmt.Errorf("%s is %s, not a regular file", path, fileKind(fi.Mode()))
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is larger than %s, far more than such a file holds", path, formatSize(max))
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %s, far more than such a file holds", path, formatSize(max))
	}
	return b, nil
}

// fileKind names what a file that is not a regular one is.
func fileKind(m os.FileMode) string {
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
