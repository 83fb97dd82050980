package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A realm that takes tickets (a user's password, an OAuth2 access token,
// sent as they are in AUTHENTICATE) on a WAMP listener without TLS on an
// address that is not loopback, or a gateway port without TLS there that
// takes bearer tokens, API keys or serves the OAuth2 token endpoint:
// check-config says so, one warning line per port, naming the port, the
// realms and the fix (tls, or loopback behind a TLS-terminating proxy),
// and accepts the file. WAMP-CRA and cryptosign send no secret, nor do
// signed gateway requests: no warning. Before, nothing was said
// (deploy/secure.yaml took alice's password on 0.0.0.0:8080 in clear).
func TestCleartextCredentialsWarning(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, cert, key, 1)
	tls := "tls: {cert: " + cert + ", key: " + key + "}"
	pw := mustHash(t, "alice-pw")
	ticket := "  - name: plant\n    users: [{authid: alice, role: r, password: \"" + pw + "\"}]\n"
	cra := "  - name: cra\n    users: [{authid: bob, role: r, secret: bob-secret-123}]\n"
	onlyCRA := "  - name: pwcra\n    authmethods: [wampcra]\n    users: [{authid: alice, role: r, password: \"" + pw + "\"}]\n"
	sign := "  - name: dev\n    users: [{authid: s1, role: r, cryptosign_keys: [\"" + strings.Repeat("ab", 32) + "\"]}]\n"
	oauthRealm := "  - name: o\n    oauth: {clients: [{id: d, public: true, grants: [device_code]}]}\n"
	const noGW = "gateway: {listen: \"off\"}\n"
	listen := func(addrs ...string) string {
		s := "listeners:\n"
		for _, a := range addrs {
			s += "  - {address: \"" + a + "\"}\n"
		}
		return s
	}
	const apiKey = "  api_keys: [{name: k, key: 0123456789abcdef0123, realm: plant, role: r}]\n"
	cases := []struct {
		name, body string
		want       []string // the warning lines' beginnings, in order; none if empty
	}{
		{"ticket on every interface", listen("0.0.0.0:8080") + noGW + "realms:\n" + ticket,
			[]string{`listeners[0] 0.0.0.0:8080: without TLS, realm "plant" takes WAMP tickets`}},
		{"ticket on ::", listen("[::]:8080") + noGW + "realms:\n" + ticket,
			[]string{`listeners[0] [::]:8080: without TLS, realm "plant" takes WAMP tickets`}},
		{"ticket on no host", listen(":8080") + noGW + "realms:\n" + ticket,
			[]string{`listeners[0] :8080: without TLS`}},
		{"ticket on a public IP", listen("192.0.2.7:8080") + noGW + "realms:\n" + ticket,
			[]string{`listeners[0] 192.0.2.7:8080: without TLS`}},
		{"authmethods ticket, two realms, one exposed listener of two", listen("127.0.0.1:8080", "0.0.0.0:8090") + noGW +
			"realms:\n" + ticket + "  - name: second\n    authmethods: [ticket, wampcra]\n    users: [{authid: x, role: r, secret: x-secret-1234}]\n" + sign,
			[]string{`listeners[1] 0.0.0.0:8090: without TLS, realms "plant", "second" take WAMP tickets`}},
		{"oauth realm", listen("0.0.0.0:8080") + noGW + "realms:\n" + oauthRealm,
			[]string{`listeners[0] 0.0.0.0:8080: without TLS, realm "o" takes WAMP tickets`}},
		{"ticket on loopback", listen("127.0.0.1:8080", "localhost:8081", "[::1]:8082") + noGW + "realms:\n" + ticket, nil},
		{"ticket with tls", "listeners:\n  - {address: \"0.0.0.0:8080\", " + tls + "}\n" + noGW + "realms:\n" + ticket, nil},
		{"cryptosign only", listen("0.0.0.0:8080") + noGW + "realms:\n" + sign, nil},
		{"wampcra secret only", listen("0.0.0.0:8080") + noGW + "realms:\n" + cra, nil},
		{"password restricted to wampcra", listen("0.0.0.0:8080") + noGW + "realms:\n" + onlyCRA, nil},
		{"anonymous", listen("0.0.0.0:8080") + noGW + "realms: [{name: realm1}]\n", nil},
		{"gateway API keys", listen("127.0.0.1:8080") + "gateway:\n  listen: 0.0.0.0:8081\n" + apiKey + "realms:\n" + ticket,
			[]string{`gateway.listen 0.0.0.0:8081: without gateway.tls, API keys (gateway.api_keys) cross the network in clear text`}},
		{"gateway OAuth2 endpoints", listen("127.0.0.1:8080") + "gateway: {listen: \"0.0.0.0:8081\"}\nrealms:\n" + oauthRealm,
			[]string{`gateway.listen 0.0.0.0:8081: without gateway.tls, OAuth2 passwords, client secrets and tokens`}},
		{"gateway and listener", listen("0.0.0.0:8080") + "gateway:\n  listen: 0.0.0.0:8081\n" + apiKey + "realms:\n" + ticket,
			[]string{`listeners[0] 0.0.0.0:8080: without TLS`, `gateway.listen 0.0.0.0:8081: without gateway.tls`}},
		{"gateway with tls", listen("127.0.0.1:8080") + "gateway:\n  listen: 0.0.0.0:8081\n  " + tls + "\n" + apiKey + "realms:\n" + ticket, nil},
		{"gateway on loopback", listen("127.0.0.1:8080") + "gateway:\n  listen: 127.0.0.1:8081\n" + apiKey + "realms:\n" + oauthRealm + ticket, nil},
		{"gateway signing keys only", listen("127.0.0.1:8080") + "gateway:\n  listen: 0.0.0.0:8081\n  signing_keys: [{key: k, secret: 0123456789abcdef0123, realm: plant, role: r}]\nrealms:\n" + ticket, nil},
		{"gateway without credentials", listen("127.0.0.1:8080") + "gateway: {listen: \"0.0.0.0:8081\"}\nrealms:\n" + ticket, nil},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", k.body)
			_, e, code := runCLI("check-config", p)
			if code != 0 {
				t.Fatalf("check-config: exit %d: %s", code, e)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(e), "\n") {
				if l != "" && !strings.Contains(l, "security off") { // TestOpenRealmWarning's
					got = append(got, l)
				}
			}
			if len(got) != len(k.want) {
				t.Fatalf("check-config's stderr:\n%s\nwant %d warning lines: %q", e, len(k.want), k.want)
			}
			for i, w := range k.want {
				if !strings.HasPrefix(got[i], "edgewamp: "+p+": warning: "+w) {
					t.Fatalf("warning line %d:\n%s\nwant it to begin %q", i, got[i], w)
				}
				if !strings.Contains(got[i], "bind it to 127.0.0.1 behind a reverse proxy that terminates TLS (a sound setup") ||
					!strings.Contains(got[i], "tls (cert, key)") {
					t.Fatalf("warning line %d does not say how to fix it:\n%s", i, got[i])
				}
			}
		})
	}
}

// run says it at start; a reload that makes a realm take tickets says it
// then (the listener stays as it started), and a reload that changes
// nothing of it does not say it again. The listener is on every
// interface, port 0, for the second the router runs.
func TestCleartextCredentialsWarningRunAndReload(t *testing.T) {
	pw := mustHash(t, "alice-pw")
	// 127.0.0.3 stands for an address other hosts reach: the test-hook
	// binary takes it so (testhooks.go), and the test listens on
	// loopback only.
	anon := "listeners: [{address: \"127.0.0.3:0\"}]\nrealms: [{name: realm1}]\n"
	withTicket := "listeners: [{address: \"127.0.0.3:0\"}]\nrealms:\n  - name: realm1\n    anonymous: true\n    users: [{authid: alice, role: r, password: \"" + pw + "\"}]\n"
	const warn = `listeners[0] 127.0.0.3:0: without TLS, realm \"realm1\" takes WAMP tickets`
	p := writeFile(t, "c.yaml", withTicket)
	r := launch(t, exec.Command(hookBinary(t), "run", "-config", p))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), `level=WARN msg="`+warn) {
		t.Fatalf("run did not warn at start:\n%s", r.logs())
	}
	reload := func(body string, n int) {
		t.Helper()
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		r.cmd.Process.Signal(syscall.SIGHUP)
		r.waitLog("SIGHUP: configuration reloaded", n)
	}
	reload(anon, 1)
	if n := strings.Count(r.logs(), "clear text"); n != 1 {
		t.Fatalf("%d warnings after a reload to an anonymous realm, want 1 (the start's):\n%s", n, r.logs())
	}
	reload(withTicket, 2)
	if !strings.Contains(r.logs(), `level=WARN msg="SIGHUP: `+warn) {
		t.Fatalf("a reload that makes the realm take tickets did not warn:\n%s", r.logs())
	}
	reload(withTicket, 3)
	if n := strings.Count(r.logs(), "clear text"); n != 2 {
		t.Fatalf("%d warnings after a reload that changed nothing, want 2 (the start's, the second reload's):\n%s", n, r.logs())
	}
}

// A realm that takes anonymous clients with security off (RBAC off, as
// the embedded default's realm1) on a WAMP listener other hosts reach:
// check-config and run say so, one line per listener, naming the realms
// and the fix. Before, the quick start's `run -listen 0.0.0.0:8080`
// served the whole meta API (every session's address, kill any) to the
// network without a word.
func TestOpenRealmWarning(t *testing.T) {
	const secure = "  - name: plant\n    security: true\n    anonymous: true\n    roles: [{name: anonymous, permissions: [{uri: com.plant., match: prefix, allow: [call]}]}]\n"
	const withUsers = "  - name: users\n    users: [{authid: s1, role: r, cryptosign_keys: [\"" + "abababababababababababababababababababababababababababababababab" + "\"]}]\n"
	const noGW = "gateway: {listen: \"off\"}\n"
	const warn = `listeners[0] 0.0.0.0:8080: realm "realm1" takes anonymous clients with security off: anyone who reaches the port may call`
	cases := []struct {
		name, body string
		want       []string
	}{
		{"open realm on every interface", "listeners: [{address: \"0.0.0.0:8080\"}]\n" + noGW + "realms: [{name: realm1}]\n", []string{warn}},
		{"two open realms, the second listener exposed", "listeners: [{address: \"127.0.0.1:8080\"}, {address: \"[::]:8090\"}]\n" + noGW + "realms: [{name: a}, {name: b, anonymous: true}]\n" + "",
			[]string{`listeners[1] [::]:8090: realms "a", "b" take anonymous clients with security off`}},
		{"open realm on loopback", "listeners: [{address: \"127.0.0.1:8080\"}, {address: \"[::1]:8081\"}]\n" + noGW + "realms: [{name: realm1}]\n", nil},
		{"security on", "listeners: [{address: \"0.0.0.0:8080\"}]\n" + noGW + "realms:\n" + secure, nil},
		{"no anonymous", "listeners: [{address: \"0.0.0.0:8080\"}]\n" + noGW + "realms:\n" + withUsers, nil},
		// authmethods without anonymous: build enables only those listed,
		// whatever anonymous says (before, both realms were named).
		{"authmethods without anonymous", "listeners: [{address: \"0.0.0.0:8080\"}]\n" + noGW + "realms: [{name: devices, anonymous: true, authmethods: [cryptosign], users: [{authid: s1, role: r, cryptosign_keys: [\"" + strings.Repeat("ab", 32) + "\"]}]}, {name: open, authmethods: [anonymous]}]\n",
			[]string{`listeners[0] 0.0.0.0:8080: realm "open" takes anonymous clients with security off`}},
		{"anonymous off", "listeners: [{address: \"0.0.0.0:8080\"}]\n" + noGW + "realms: [{name: realm1, anonymous: false, users: [{authid: s1, role: r, cryptosign_keys: [\"" + strings.Repeat("ab", 32) + "\"]}]}]\n", nil},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := writeFile(t, "c.yaml", k.body)
			_, e, code := runCLI("check-config", p)
			if code != 0 {
				t.Fatalf("check-config: exit %d: %s", code, e)
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(e), "\n") {
				if strings.Contains(l, "security off") {
					got = append(got, l)
				}
			}
			if len(got) != len(k.want) {
				t.Fatalf("check-config's stderr:\n%s\nwant %d open-realm lines: %q", e, len(k.want), k.want)
			}
			for i, w := range k.want {
				if !strings.HasPrefix(got[i], "edgewamp: "+p+": warning: "+w) || !strings.Contains(got[i], "set security: true with roles") {
					t.Fatalf("line %d:\n%s\nwant it to begin %q and say the fix", i, got[i], w)
				}
			}
		})
	}
	// The quick start: the embedded default, listening where other hosts
	// reach it (127.0.0.3 stands for such an address in the test-hook
	// binary), says it at start.
	r := launch(t, exec.Command(hookBinary(t), "run", "-listen", "127.0.0.3:0", "-gateway-listen", "off"))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), `level=WARN msg="listeners[0] 127.0.0.3:0: realm \"realm1\" takes anonymous clients with security off`) {
		t.Fatalf("run on the embedded default did not warn:\n%s", r.logs())
	}
}
