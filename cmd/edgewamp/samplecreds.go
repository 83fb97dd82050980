package main

import (
	"fmt"
	"strings"

	"github.com/edgewamp/edgewamp/route"
)

// samplePasswordKeys are the keys of the PBKDF2 hashes the samples
// publish (deploy/secure.yaml and README's copy of it), with the password
// or client secret each is the hash of: alice's password, the historian
// client's secret. TestSampleCredentialsWarned keeps the list in step
// with deploy/secure.yaml.
var samplePasswordKeys = map[string]string{
	"oTRavZt7KyAcaGvuUOAkwfpO3YtgDVJzmtS1agwFseU=": "change-me-alice",
	"6aPPgWqqot6wTmZC0O8n6nCx9hlt1THfF4r/ETLiAUY=": "change-me-historian",
}

// samplePrefix starts every credential the samples name in clear
// (EDGEWAMP_DASHBOARD_SECRET=change-me-dashboard in deploy/secure.yaml's
// header, the mesh samples' tokens).
const samplePrefix = "change-me"

// samplePassword returns the published password hash is the hash of, or
// "" when it is none of the samples'.
func samplePassword(hash string) string {
	p, err := route.ParsePassword(hash)
	if err != nil {
		return ""
	}
	return samplePasswordKeys[p.Key]
}

// sampleCredentialWarnings says, one line each, which users' passwords
// and WAMP-CRA secrets and which OAuth2 clients' secrets are the ones the
// samples publish: deploy/secure.yaml is README's "complete, copyable
// example", and a copy that kept them (its comment says to replace them)
// let anyone log in as its alice, with the roles operator and admin (the
// whole meta API: list every session, end any), or take tokens as its
// historian client, and nothing said so. check-config, run and a reload
// say them; nil when there is none. A warning, not a refusal: the sample
// itself is checked with them.
func (c *config) sampleCredentialWarnings() []string {
	var out []string
	for i, r := range c.Realms {
		for j, u := range r.Users {
			at := fmt.Sprintf("realms[%d].users[%d] (realm %q, authid %q)", i, j, r.Name, u.AuthID)
			if pw := samplePassword(u.password()); pw != "" {
				out = append(out, fmt.Sprintf("%s: the password is the published sample's (%q): anyone can log in with it; make one with `edgewamp passwd`", at, pw))
			}
			if s := u.secret(); strings.HasPrefix(s, samplePrefix) {
				out = append(out, fmt.Sprintf("%s: the WAMP-CRA secret starts with %q, as the published samples' do: replace it with a secret of your own", at, samplePrefix))
			}
		}
		if r.OAuth == nil {
			continue
		}
		for j, cl := range r.OAuth.Clients {
			if pw := samplePassword(cl.secret()); pw != "" {
				out = append(out, fmt.Sprintf("realms[%d].oauth.clients[%d] (realm %q, client %q): the secret is the published sample's (%q): anyone can take tokens as this client; make one with `edgewamp oauth secret`", i, j, r.Name, cl.ID, pw))
			}
		}
	}
	return out
}
