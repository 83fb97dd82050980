package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// decoyFile is the name, under data_dir, of the secret WAMP-CRA's decoy
// salts are derived from (route.Config.DecoySecret).
const decoyFile = "wampcra-decoy.key"

// decoySize is the length of the decoy secret.
const decoySize = 32

// dataDirProblem says what keeps dir, data_dir, from being the directory
// run makes (MkdirAll) and keeps its state in, or "": it is a directory,
// or does not exist and its nearest existing parent is a directory.
// Before, nothing looked at it before run's mkdir, so check-config and a
// reload took a regular file that run then refused.
func dataDirProblem(dir string) string {
	if dir == "" {
		return ""
	}
	for p := filepath.Clean(dir); ; {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return ""
		case err == nil && p == filepath.Clean(dir):
			return "is not a directory"
		case err == nil:
			return "cannot be made: " + p + " is not a directory"
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return "cannot be used: " + err.Error()
		}
		parent := filepath.Dir(p)
		if parent == p {
			return ""
		}
		p = parent
	}
}

// dataDirTrustProblem says, for data_dir dir, which of its directories
// another user may write (group or others may, or it is not owned by the
// router's user or root), or "": the router trusts what it finds there
// (data_dir/oauth: the OAuth2 signing keys, refresh tokens, revocations;
// data_dir/wampcra-decoy.key; data_dir/mesh: the mesh's JetStream store
// by default, with the shared OAuth2 state), and such a user could plant
// or swap it: a key ring of their own, a decoy secret they know. Before,
// nothing looked: a data_dir another user had made first on a shared path
// was taken, with the files in it. Directories that do not exist yet are
// made 0700 by the router. Root's check (check-config by hand or in the
// package's upgrade, of the service user's /var/lib/edgewamp) takes any
// owner.
func dataDirTrustProblem(dir string) string {
	if dir == "" {
		return ""
	}
	return trustProblem("data_dir", dir, filepath.Join(dir, "oauth"), filepath.Join(dir, "mesh"))
}

// meshStoreDirTrustProblem is dataDirTrustProblem for mesh.store_dir, the
// mesh's JetStream store when it is not data_dir/mesh: the state the mesh
// shares (the OAuth2 signing keys, tokens and revocations, the single
// claims) is as trusted there. Before, only data_dir/mesh was looked at.
func meshStoreDirTrustProblem(dir string) string {
	if dir == "" {
		return ""
	}
	return trustProblem("mesh.store_dir", dir)
}

// trustProblem says which of dirs (the directories of the configuration's
// key) another user may write, or "". Those that do not exist are passed
// by.
func trustProblem(key string, dirs ...string) string {
	euid := uint32(geteuid())
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() {
			continue // dataDirProblem and the start say the rest
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && euid != 0 && st.Uid != euid && st.Uid != 0 {
			return fmt.Sprintf("%s %s is owned by uid %d, not by the router's user (uid %d) or root: that user could plant or replace the state the router trusts (OAuth2 signing keys and tokens, the WAMP-CRA decoy secret); use a directory of the router's user (chown it, mode 0700), or a subdirectory of it that does not exist yet, which the router makes 0700 (where the owner cannot be changed: NFS with all_squash)", key, d, st.Uid, euid)
		}
		if m := fi.Mode().Perm(); m&0o022 != 0 {
			return fmt.Sprintf("%s %s is writable by other users (mode %04o): they could plant or replace the state the router trusts (OAuth2 signing keys and tokens, the WAMP-CRA decoy secret); chmod 0700 it, or name a subdirectory of it that does not exist yet, which the router makes 0700 (where the mode cannot be changed: a Kubernetes emptyDir or fsGroup volume, vfat)", key, d, m)
		}
	}
	return ""
}

// geteuid is os.Geteuid; a test sets another user.
var geteuid = os.Geteuid

// decoySecret returns the secret the router derives the WAMP-CRA
// challenges' salts of authids that are not users from: kept in
// data_dir/wampcra-decoy.key (created once, 0600 in a 0700 directory, as
// the OAuth2 state is), so that a restart does not change them (an
// unknown authid's salt changing while a user's stays would tell which
// authids exist). Without data_dir, nil: the router takes a random one,
// and a restart changes the unknown authids' salts (README says so).
func decoySecret(dataDir string) ([]byte, error) {
	if dataDir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, dataDirError(dataDir, err)
	}
	path := filepath.Join(dataDir, decoyFile)
	for range 2 {
		// As the other secret files: a regular file, opened without
		// waiting, read up to a bound. Before, os.ReadFile: a named pipe
		// there held the start (and a reload's signal goroutine) for ever,
		// and a large file was read whole before its length was refused.
		b, err := readRegularFile(path, 4096)
		if err == nil {
			if len(b) != decoySize {
				return nil, fmt.Errorf("%s: %d bytes, want %d (remove it to have a new one made; the WAMP-CRA salts of authids that are not users then change once)", path, len(b), decoySize)
			}
			return b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		f, err := os.CreateTemp(dataDir, "."+decoyFile+".*") // 0600
		if err != nil {
			return nil, dataDirError(dataDir, err)
		}
		secret := make([]byte, decoySize)
		rand.Read(secret)
		_, err = f.Write(secret)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			// A link, not a rename: a file another process made first
			// stays, and both read it.
			err = os.Link(f.Name(), path)
			if errors.Is(err, fs.ErrExist) {
				err = nil
			}
		}
		os.Remove(f.Name())
		if err != nil {
			return nil, dataDirError(dataDir, err)
		}
	}
	return nil, fmt.Errorf("%s: not readable after it was made", path)
}
