package main

import (
	"crypto/sha256"
	"fmt"
	"slices"
)

// startFiles names the files, besides the configuration, that the router
// reads at start only and trusts, by the key that names them: the
// OAuth2 signing keys (oauth.key_files) and, on a mesh node, the
// certificate authority of the other nodes (mesh.tls.ca) and the node's
// credential (mesh.credentials.nkey_seed_file). A reload reads none of
// them again: their content applies at a restart, as their paths do.
func (c *config) startFiles() map[string]string {
	files := map[string]string{}
	for i, f := range c.OAuth.KeyFiles {
		files[fmt.Sprintf("oauth.key_files[%d]", i)] = f
	}
	if c.Mesh.enabled() {
		if t := c.Mesh.TLS; t != nil && t.CA != "" {
			files["mesh.tls.ca"] = t.CA
		}
		if f := c.Mesh.Credentials.NKeySeedFile; f != "" {
			files["mesh.credentials.nkey_seed_file"] = f
		}
	}
	return files
}

// startFileSums is the SHA-256 of each of c's startFiles as they are now
// (one that cannot be read is left out: the start refuses it, and so does
// a reload's validation for the ones it checks).
func (c *config) startFileSums() map[string][32]byte {
	sums := map[string][32]byte{}
	for key, f := range c.startFiles() {
		if b, err := readRegularFile(f, maxKeyFile); err == nil {
			sums[key] = sha256.Sum256(b)
		}
	}
	return sums
}

// changedStartFiles names, as "key path", the files of running's
// startFiles whose content differs from what the router read at start
// (running.fileSums): a reload does not apply them. Before, a reload
// after one was rewritten in place (an OAuth2 signing key rotated after a
// leak, a mesh CA replaced) said "configuration reloaded" with no word
// that the router went on with the old one: the restart-only warning
// compares the file's settings, and the path had not changed.
func changedStartFiles(running *config) []string {
	var changed []string
	now := running.startFileSums()
	for key, f := range running.startFiles() {
		was, read := running.fileSums[key]
		if is, ok := now[key]; read && ok && is != was {
			changed = append(changed, key+" "+f)
		}
	}
	slices.Sort(changed)
	return changed
}

// goneStartFiles names, as "key path (error)", the files of running's
// startFiles that the router read at start and that cannot be read now
// (removed, made unreadable, replaced by a directory): the router keeps
// what it read, but a restart fails on them. Before, changedStartFiles
// passed them by (it compares what it can read), and a reload after one
// was removed said "configuration reloaded" with no word of the restart
// that would fail; the mesh's files are not checked by a reload's
// validation (mesh: needs a restart), the OAuth2 keys and TLS pairs are,
// and a reload refuses them.
func goneStartFiles(running *config) []string {
	var gone []string
	for key, f := range running.startFiles() {
		if _, read := running.fileSums[key]; !read {
			continue
		}
		if _, err := readRegularFile(f, maxKeyFile); err != nil {
			gone = append(gone, fmt.Sprintf("%s %s (%v)", key, f, err))
		}
	}
	slices.Sort(gone)
	return gone
}
