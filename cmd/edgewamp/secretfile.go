package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// inlineSecrets names the keys of the configuration that hold a secret
// in clear (not a PBKDF2 hash, which an OAuth2 client's secret is): a
// WAMP-CRA secret, a user's password hash where its realm takes WAMP-CRA
// (takesCRA), an API key, a signing key's or a webhook's secret, the
// mesh token, an nkey seed.
func (c *config) inlineSecrets() []string {
	var keys []string
	for i, r := range c.Realms {
		for j, u := range r.Users {
			if u.Secret != "" {
				keys = append(keys, fmt.Sprintf("realms[%d].users[%d].secret", i, j))
			}
			if u.Password != "" && r.takesCRA() {
				keys = append(keys, fmt.Sprintf("realms[%d].users[%d].password", i, j))
			}
		}
	}
	g := &c.Gateway
	for i, k := range g.APIKeys {
		if k.Key != "" {
			keys = append(keys, fmt.Sprintf("gateway.api_keys[%d].key", i))
		}
	}
	for i, k := range g.SigningKeys {
		if k.Secret != "" {
			keys = append(keys, fmt.Sprintf("gateway.signing_keys[%d].secret", i))
		}
	}
	for i, w := range g.Webhooks {
		if w.Secret != "" {
			keys = append(keys, fmt.Sprintf("gateway.webhooks[%d].secret", i))
		}
	}
	if c.Mesh.Credentials.Token != "" {
		keys = append(keys, "mesh.credentials.token")
	}
	if c.Mesh.Credentials.NKeySeed != "" {
		keys = append(keys, "mesh.credentials.nkey_seed")
	}
	// A user part in a NATS URL is a credential (a user and password, or
	// a token), and so is a credential header the gateway sends upstream.
	// nats_url is a list, as edge reads it (before, it was taken for one
	// URL, and a credential in any URL but the first was missed).
	if slices.ContainsFunc(splitList(c.Mesh.NatsURL), urlCredential) {
		keys = append(keys, "mesh.nats_url")
	}
	for i, u := range c.Mesh.Cluster.Routes {
		if urlCredential(u) {
			keys = append(keys, fmt.Sprintf("mesh.cluster.routes[%d]", i))
		}
	}
	for i, u := range c.Mesh.Leaf.Remotes {
		if urlCredential(u) {
			keys = append(keys, fmt.Sprintf("mesh.leaf.remotes[%d]", i))
		}
	}
	// An upstream URL's user part too: net/http sends it as Basic
	// credentials (before, only the header form was warned of).
	for i, ce := range g.Callees {
		if urlCredential(ce.URL) {
			keys = append(keys, fmt.Sprintf("gateway.callees[%d].url", i))
		}
		keys = append(keys, credentialHeaders(fmt.Sprintf("gateway.callees[%d].headers", i), ce.Headers)...)
	}
	for i, w := range g.Webhooks {
		if urlCredential(w.URL) {
			keys = append(keys, fmt.Sprintf("gateway.webhooks[%d].url", i))
		}
		keys = append(keys, credentialHeaders(fmt.Sprintf("gateway.webhooks[%d].headers", i), w.Headers)...)
	}
	return keys
}

// urlCredential reports whether the URL s carries a user part (NATS
// takes nats://user:password@host, and nats://token@host; net/http sends
// http://user:password@host's as Basic credentials).
func urlCredential(s string) bool {
	u, err := url.Parse(strings.TrimSpace(s))
	return err == nil && u.User != nil
}

// credentialHeaders names, under at, the headers of h that carry a
// credential by their name: Authorization, Proxy-Authorization, Cookie,
// and any whose name says key, token, secret, password, auth, signature
// or credential (X-Api-Key, X-Auth-Token).
func credentialHeaders(at string, h map[string]string) []string {
	var keys []string
	for name, v := range h {
		n := strings.ToLower(name)
		if v == "" {
			continue
		}
		if n == "cookie" || slices.ContainsFunc([]string{"auth", "key", "token", "secret", "password", "signature", "credential"}, func(w string) bool { return strings.Contains(n, w) }) {
			keys = append(keys, at+"."+name)
		}
	}
	slices.Sort(keys)
	return keys
}

// secretFileWarning says, when the configuration file at path holds
// secrets in clear and every local user may read it, which: "" otherwise
// (no file, the embedded default, a pipe, no such secret, or a file
// others cannot read). Before, nothing said it: a file installed 0644
// (the default umask's, or the tarball's instructions for a system
// without the edgewamp user) gave every account of the machine the API
// keys and the mesh token.
func (c *config) secretFileWarning(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o004 == 0 {
		return ""
	}
	keys := c.inlineSecrets()
	if len(keys) == 0 {
		return ""
	}
	more := ""
	if len(keys) > 4 {
		keys, more = keys[:4], fmt.Sprintf(" and %d more", len(keys)-4)
	}
	return fmt.Sprintf("%s is readable by every local user (mode %04o) and holds secrets in clear (%s%s): make it readable by the router only (chmod o-r; the package installs it root:edgewamp 0640), or take them from the environment (password_env, secret_env, key_env, token_env, nkey_seed_file)",
		path, fi.Mode().Perm(), strings.Join(keys, ", "), more)
}

// secretWarnings is what run says of the files every local user may read
// (secretFileWarning of the configuration file at path, then
// keyFileWarnings) or write (writableWarnings): at start, and at a reload
// that changes it.
func (c *config) secretWarnings(path string) []string {
	var out []string
	if w := c.secretFileWarning(path); w != "" {
		out = append(out, w)
	}
	out = append(out, c.keyFileWarnings()...)
	return append(out, c.writableWarnings(path)...)
}

// keyFileWarnings says, for each private key file the configuration names
// (the listeners', the gateway's and mesh.tls's TLS keys, the OAuth2
// signing keys, the mesh's nkey seed file) that every local user may
// read, which: with it anyone on the machine can impersonate the router
// to its clients, sign access tokens, or join the mesh. Before, nothing
// said it. Files that cannot be read (check-config and run refuse them)
// are left to their errors.
func (c *config) keyFileWarnings() []string {
	type keyFile struct{ key, path string }
	var files []keyFile
	for i, l := range c.Listeners {
		if l.TLS != nil {
			files = append(files, keyFile{fmt.Sprintf("listeners[%d].tls.key", i), l.TLS.Key})
		}
	}
	if t := c.Gateway.TLS; t != nil && !c.gatewayOff() {
		files = append(files, keyFile{"gateway.tls.key", t.Key})
	}
	if c.Mesh.enabled() {
		if t := c.Mesh.TLS; t != nil {
			files = append(files, keyFile{"mesh.tls.key", t.Key})
		}
		if f := c.Mesh.Credentials.NKeySeedFile; f != "" {
			files = append(files, keyFile{"mesh.credentials.nkey_seed_file", f})
		}
	}
	if c.oauthEnabled() {
		for i, f := range c.OAuth.KeyFiles {
			files = append(files, keyFile{fmt.Sprintf("oauth.key_files[%d]", i), f})
		}
	}
	var out []string
	for _, f := range files {
		fi, err := os.Stat(f.path)
		if f.path == "" || err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o004 == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s is readable by every local user (mode %04o): it is a private key; make it readable by the router only (chmod o-r; README: install -o root -g edgewamp -m 0640)",
			f.key, f.path, fi.Mode().Perm()))
	}
	// The WAMP-CRA decoy secret the router made 0600 in data_dir (a copy
	// or a restore may have widened it): with it a local user can tell
	// which authids are users from their salts. Before, nothing said it.
	if c.DataDir != "" {
		p := filepath.Join(c.DataDir, decoyFile)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o004 != 0 {
			out = append(out, fmt.Sprintf("%s is readable by every local user (mode %04o): it is the WAMP-CRA decoy secret, with which anyone on the machine can tell which authids are users; chmod 0600 it (as the router made it)",
				p, fi.Mode().Perm()))
		}
	}
	return out
}

// writableWarnings says, for the configuration file at path and each file
// it names whose content the router trusts (TLS certificates and keys,
// gateway.bearer.jwks_file, oauth.key_files, mesh.tls's files, the nkey
// seed), that every local user may write, which: anyone on the machine
// could then give themselves a user or a role (at the next SIGHUP or
// restart), add a key to the JWKS and sign bearer tokens the gateway
// takes, or replace the router's certificate. Before, nothing said it: a
// file made 0666 (or 0646) to "fix" a permission error went unsaid, though
// its readable secrets were warned of.
func (c *config) writableWarnings(path string) []string {
	type file struct{ key, path string }
	files := []file{{"the configuration file", path}}
	for i, l := range c.Listeners {
		if l.TLS != nil {
			files = append(files, file{fmt.Sprintf("listeners[%d].tls.cert", i), l.TLS.Cert}, file{fmt.Sprintf("listeners[%d].tls.key", i), l.TLS.Key})
		}
	}
	if !c.gatewayOff() {
		if t := c.Gateway.TLS; t != nil {
			files = append(files, file{"gateway.tls.cert", t.Cert}, file{"gateway.tls.key", t.Key})
		}
		if b := c.Gateway.Bearer; b != nil {
			files = append(files, file{"gateway.bearer.jwks_file", b.JWKSFile})
		}
	}
	if c.Mesh.enabled() {
		if t := c.Mesh.TLS; t != nil {
			files = append(files, file{"mesh.tls.cert", t.Cert}, file{"mesh.tls.key", t.Key}, file{"mesh.tls.ca", t.CA})
		}
		files = append(files, file{"mesh.credentials.nkey_seed_file", c.Mesh.Credentials.NKeySeedFile})
	}
	if c.oauthEnabled() {
		for i, f := range c.OAuth.KeyFiles {
			files = append(files, file{fmt.Sprintf("oauth.key_files[%d]", i), f})
		}
	}
	var out []string
	for _, f := range files {
		if f.path == "" {
			continue
		}
		fi, err := os.Stat(f.path)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o002 == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s is writable by every local user (mode %04o): anyone on the machine can change what the router trusts (its users and roles, keys, certificates); make it writable by root only (chmod o-w)",
			f.key, f.path, fi.Mode().Perm()))
	}
	return out
}

// takesCRA reports whether the realm takes WAMP-CRA (named in its
// authmethods, or by default: build offers it with a password or a
// secret). A user's password hash is then a secret in clear: salted
// WAMP-CRA's shared secret is the key the hash holds, and whoever reads
// it logs in as the user without the password. Before, a hash was never
// counted, and a configuration every local user could read (README's
// tarball install without the edgewamp user) drew no warning while any
// local account could log in as its users.
func (r *realmConfig) takesCRA() bool {
	return len(r.AuthMethods) == 0 || slices.Contains(r.AuthMethods, "wampcra")
}
