package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	if h, ok := hashes.Load(pw); ok {
		return h.(string)
	}
	p, err := route.HashPassword(pw, 1000)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := hashes.LoadOrStore(pw, p.String())
	return h.(string)
}

// hashes keeps one hash per password for the test process: a reload with
// another hash, even of the same password, ends the sessions that logged
// in with it (the credential changed), and the reload tests rewrite their
// configuration with the users they keep.
var hashes sync.Map

// secureConfig is a realm with users of every kind and RBAC.
func secureConfig(t *testing.T, pub ed25519.PublicKey, withBob bool) string {
	bob := ""
	if withBob {
		bob = "      - authid: bob\n        role: user\n        secret: bob-secret\n"
	}
	return `listeners: [{address: "127.0.0.1:0"}]
realms:
  - name: realm1
    security: true
    users:
      - authid: alice
        roles: [user, admin]
        password: "` + mustHash(t, "alice-pw") + `"
` + bob + `      - authid: sensor1
        role: device
        cryptosign_keys: ["` + hex.EncodeToString(pub) + `"]
    roles:
      - name: user
        permissions:
          - {uri: com.example., match: prefix, allow: [call, register, subscribe, publish]}
      - name: admin
        permissions:
          - {uri: "", match: prefix, allow: [call, register, subscribe, publish], disclose: [caller]}
      - name: device
        permissions:
          - {uri: com.example..reading, match: wildcard, allow: [publish]}
`
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecureRealmEndToEnd(t *testing.T) {
	seed := make([]byte, 32)
	seed[3] = 9
	key := ed25519.NewKeyFromSeed(seed)
	path := writeFile(t, "secure.yaml", secureConfig(t, key.Public().(ed25519.PublicKey), true))
	r := startRouter(t, "-config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(cfg client.Config) (*client.Session, error) {
		cfg.URL, cfg.Realm = "ws://"+r.addr+"/ws", "realm1"
		return client.Dial(ctx, cfg)
	}
	// anonymous is off once users are configured
	if _, err := dial(client.Config{}); err == nil || !strings.Contains(err.Error(), proto.URINoMatchingAuthMethod) {
		t.Fatalf("anonymous: %v", err)
	}
	alice, err := dial(client.Config{AuthID: "alice", AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "alice-pw", nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if d := alice.Details(); d["authrole"] != "user" || d["authmethod"] != "ticket" {
		t.Fatalf("alice %v", d)
	}
	if _, err := alice.Register(ctx, "com.example.echo", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	var we *client.Error
	if _, err := alice.Register(ctx, "org.other", func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }, nil); !errors.As(err, &we) || we.URI != proto.URINotAuthorized {
		t.Fatalf("unauthorized register: %v", err)
	}
	bob, err := dial(client.Config{AuthID: "bob", AuthMethods: []string{"wampcra"},
		OnChallenge: func(_ string, extra map[string]any) (string, map[string]any, error) {
			return craSign("bob-secret", extra["challenge"].(string)), nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := bob.Call(ctx, "com.example.echo", []any{"hi"}, nil, nil); err != nil || res.Args[0] != "hi" {
		t.Fatalf("bob call: %v %v", res, err)
	}
	if err := bob.Publish(ctx, "com.example.news", []any{"bob's"}, nil, &client.PublishOptions{Acknowledge: true, Retain: true}); err != nil {
		t.Fatal(err)
	}
	sensor, err := dial(client.Config{AuthMethods: []string{"cryptosign"}, AuthExtra: map[string]any{"pubkey": hex.EncodeToString(key.Public().(ed25519.PublicKey))},
		OnChallenge: func(_ string, extra map[string]any) (string, map[string]any, error) {
			ch, _ := hex.DecodeString(extra["challenge"].(string))
			return hex.EncodeToString(append(ed25519.Sign(key, ch), ch...)), nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sensor.Close()
	if d := sensor.Details(); d["authid"] != "sensor1" || d["authrole"] != "device" {
		t.Fatalf("sensor %v", d)
	}
	if err := sensor.Publish(ctx, "com.example.s1.reading", []any{21.5}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	if err := sensor.Publish(ctx, "com.example.s1.config", nil, nil, &client.PublishOptions{Acknowledge: true}); !errors.As(err, &we) || we.URI != proto.URINotAuthorized {
		t.Fatalf("device publish outside its grant: %v", err)
	}
	// Wrong secrets get the right URI.
	if _, err := dial(client.Config{AuthID: "alice", AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return "nope", nil, nil }}); err == nil || !strings.Contains(err.Error(), proto.URIAuthenticationFailed) {
		t.Fatalf("wrong ticket: %v", err)
	}

	// SIGHUP with bob removed: bob is disconnected, alice stays.
	if err := os.WriteFile(path, []byte(secureConfig(t, key.Public().(ed25519.PublicKey), false)), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	select {
	case <-bob.Done():
		if !errors.As(bob.Err(), &we) || we.URI != proto.CloseKilled {
			t.Fatalf("bob ended with %v", bob.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("bob not disconnected after reload\n%s", r.logs())
	}
	if _, err := alice.Call(ctx, "com.example.echo", []any{1}, nil, nil); err != nil {
		t.Fatalf("alice after reload: %v", err)
	}
	// bob's retained event went with him, counted.
	gw := &gwRouter{router: r, base: "http://" + r.gw, hc: &http.Client{Timeout: 10 * time.Second}}
	meshEventually(t, 10*time.Second, func() error {
		if v := metricValue(scrape(t, gw), "edgewamp_retained_revoked_total"); v != 1 {
			return fmt.Errorf("edgewamp_retained_revoked_total = %v, want 1", v)
		}
		return nil
	})
	// A broken config is refused and the running one stays.
	os.WriteFile(path, []byte("realms: [{name: \"bad realm\"}]\n"), 0o600)
	r.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.logs(), "configuration refused") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(r.logs(), "configuration refused") {
		t.Fatalf("no refusal logged:\n%s", r.logs())
	}
	if _, err := alice.Call(ctx, "com.example.echo", []any{1}, nil, nil); err != nil {
		t.Fatalf("alice after a refused reload: %v", err)
	}
	for _, secret := range []string{"alice-pw", "bob-secret"} {
		if strings.Contains(r.logs(), secret) {
			t.Fatalf("a secret appears in the logs")
		}
	}
}

func craSign(secret, challenge string) string {
	return route.CRASignature(secret, challenge)
}

func TestSecurityConfigErrors(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"unknown role", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    security: true\n    users:\n      - {authid: a, role: ghost, secret: s}\n", `user "a" has role "ghost", which realm "r" does not define`},
		{"bad password", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: a, role: x, password: plaintext}\n", `line 5: user "a": password: password hash must start with pbkdf2-sha256$`},
		{"bad key", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: a, role: x, cryptosign_keys: [abc]}\n", `cryptosign_keys[0]: an Ed25519 public key is 32 hex-encoded bytes`},
		{"no credential", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: a, role: x}\n", `user "a" has no credential`},
		{"bad action", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    roles:\n      - name: x\n        permissions:\n          - {uri: a, allow: [delete]}\n", `line 7: role "x": unknown action "delete"`},
		{"bad match", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    roles:\n      - name: x\n        permissions:\n          - {uri: a, match: regex}\n", `match must be exact, prefix or wildcard`},
		{"anonymous role undefined", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    security: true\n    anonymous: true\n", `allows anonymous sessions with role "anonymous", which it does not define`},
		{"empty env", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: a, role: x, secret_env: EDGEWAMP_TEST_UNSET_VAR}\n", `environment variable EDGEWAMP_TEST_UNSET_VAR is empty`},
		{"unknown method", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    authmethods: [kerberos]\n", `unknown authmethod "kerberos"`},
		// HELLO may carry at most route.MaxAuthIDLen bytes of authid and authrole.
		{"long authid", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: " + strings.Repeat("a", 1025) + ", role: x, secret: s}\n", `realms[0].users[0]: authid is longer than 1024 bytes`},
		// A hash's PBKDF2 work is bounded: every login attempt for the
		// user, and for unknown authids when most users have it, costs it.
		{"huge iterations", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: a, role: x, password: \"pbkdf2-sha256$2000000000$32$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}\n",
			`line 5: user "a": password: 2000000000 PBKDF2 iterations; at most 10000000`},
		{"long role", "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: a, role: " + strings.Repeat("x", 1025) + ", secret: s}\n", `user "a": a role name is longer than 1024 bytes`},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			_, e, code := runCLI("check-config", writeFile(t, "c.yaml", k.body))
			if code != 1 || !strings.Contains(e, k.want) {
				t.Fatalf("exit %d: %s\nwant %q", code, e, k.want)
			}
			if strings.Contains(e, "plaintext") {
				t.Fatal("the secret was echoed in the error")
			}
		})
	}
	t.Setenv("EDGEWAMP_TEST_SECRET", "from-env")
	ok := "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: a, role: x, secret_env: EDGEWAMP_TEST_SECRET}\n"
	if _, e, code := runCLI("check-config", writeFile(t, "ok.yaml", ok)); code != 0 {
		t.Fatalf("env secret: %s", e)
	}
}

// TestRolesWithoutSecurityRefused: a realm whose roles restrict its
// anonymous role but which leaves out `security: true` is refused, by
// check-config and run, naming the realm and the key to set. Before, its
// roles were silently ignored: check-config said ok, run logged nothing,
// and the realm ran with no authorization at all (here an anonymous
// session, granted only call on com., ended the others with
// wamp.session.kill_all).
func TestRolesWithoutSecurityRefused(t *testing.T) {
	cfg := "realms:\n  - name: realm1\n    anonymous: true\n    roles:\n      - name: anonymous\n        permissions:\n" +
		"          - {uri: com., match: prefix, allow: [call]}\n"
	path := writeFile(t, "c.yaml", cfg)
	const want = `line 4: realm "realm1" defines roles but security is off: set security: true`
	if _, e, code := runCLI("check-config", path); code != 1 || !strings.Contains(e, want) {
		t.Fatalf("check-config: exit %d: %s\nwant 1 and %q", code, e, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "run", "-config", path, "-listen", "127.0.0.1:0", "-gateway-listen", "off").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), "defines roles but security is off") {
		t.Fatalf("run: %v\n%s", err, out)
	}
	// With security on, the same roles are valid.
	if _, e, code := runCLI("check-config", writeFile(t, "on.yaml", strings.Replace(cfg, "anonymous: true\n", "anonymous: true\n    security: true\n", 1))); code != 0 {
		t.Fatalf("the roles with security on: exit %d: %s", code, e)
	}
}

// TestEmptySecretEnvOneError: a user whose secret_env is unset gets one
// error naming the variable, not a second one saying that the user has
// no credential (deploy/secure.yaml checked without its variable).
func TestEmptySecretEnvOneError(t *testing.T) {
	body := "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n    users:\n      - {authid: a, role: x, secret_env: EDGEWAMP_TEST_UNSET_VAR}\n"
	_, e, code := runCLI("check-config", writeFile(t, "c.yaml", body))
	if code != 1 || !strings.Contains(e, "environment variable EDGEWAMP_TEST_UNSET_VAR is empty") || strings.Contains(e, "no credential") {
		t.Fatalf("exit %d: %s", code, e)
	}
}

func TestPasswdAndKeygen(t *testing.T) {
	in := writeFile(t, "pw", "correct horse\n")
	f, _ := os.Open(in)
	defer f.Close()
	var o, e strings.Builder
	if code := cmdPasswd([]string{"-iterations", "2000"}, f, &o, &e); code != 0 {
		t.Fatalf("passwd: %d %s", code, e.String())
	}
	var e2 strings.Builder
	if code := cmdPasswd([]string{"-iterations", "100000000"}, f, io.Discard, &e2); code != 2 || !strings.Contains(e2.String(), "use from 1000 to 10000000 iterations") {
		t.Fatalf("passwd -iterations 100000000: exit %d %s", code, e2.String())
	}
	if _, e, code := runCLI("oauth", "secret", "-iterations", "100000000"); code != 2 || !strings.Contains(e, "use from 1000 to 10000000 iterations") {
		t.Fatalf("oauth secret -iterations 100000000: exit %d %s", code, e)
	}
	m := regexp.MustCompile(`password: "([^"]+)"`).FindStringSubmatch(o.String())
	if m == nil {
		t.Fatalf("output %q", o.String())
	}
	p, err := route.ParsePassword(m[1])
	if err != nil || p.Iterations != 2000 || !p.Verify("correct horse") || p.Verify("correct horse\n") {
		t.Fatalf("hash %q: %v", m[1], err)
	}
	out, _, code := runCLI("keygen")
	if code != 0 {
		t.Fatal("keygen failed")
	}
	priv := regexp.MustCompile(`private_key: ([0-9a-f]{64})`).FindStringSubmatch(out)
	pub := regexp.MustCompile(`cryptosign_keys: \["([0-9a-f]{64})"\]`).FindStringSubmatch(out)
	if priv == nil || pub == nil {
		t.Fatalf("keygen output %q", out)
	}
	seed, _ := hex.DecodeString(priv[1])
	if got := hex.EncodeToString(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)); got != pub[1] {
		t.Fatal("the public key does not belong to the private key")
	}
}

// The sample configurations shipped in deploy/ and deploy/mesh/ are
// valid (given the secrets they take from the environment).
func TestDeploySamplesValid(t *testing.T) {
	t.Setenv("EDGEWAMP_DASHBOARD_SECRET", "sample")
	t.Setenv("EDGEWAMP_MESH_TOKEN", "sample")
	files, _ := filepath.Glob("../../deploy/*.yaml")
	mesh, _ := filepath.Glob("../../deploy/mesh/*.yaml")
	files = append(files, mesh...)
	if len(files) == 0 || len(mesh) == 0 {
		t.Fatal("no sample configs found")
	}
	// hub.yaml and edge-leaf.yaml name the TLS files an operator makes
	// (deploy/mesh/README.md, "TLS"): made here.
	pki := newMeshPKI(t)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := writeFile(t, filepath.Base(f), pki.withPKI(t, string(b), strings.TrimSuffix(filepath.Base(f), ".yaml")))
		_, e, code := runCLI("check-config", p)
		if code != 0 {
			t.Errorf("%s: %s", f, e)
		}
		// No sample sends WAMP tickets or the gateway's credentials in
		// clear text (cleartextWarnings): secure.yaml took alice's
		// password and OAuth2 tokens on 0.0.0.0:8080 without TLS.
		// (cluster-node.yaml's mesh token warning is its own, on purpose.)
		// secure.yaml warns of its own published credentials, on purpose
		// (d3c4397: a copy that keeps them is told): those lines only.
		rest := e
		if filepath.Base(f) == "secure.yaml" {
			var kept []string
			published := 0
			for _, l := range strings.Split(e, "\n") {
				if strings.Contains(l, "the published sample's") {
					published++
					continue
				}
				kept = append(kept, l)
			}
			if published == 0 {
				t.Errorf("%s: no warning of its published credentials:\n%s", f, e)
			}
			rest = strings.Join(kept, "\n")
		}
		if strings.Contains(rest, "warning: listeners[") || strings.Contains(rest, "warning: gateway.listen") ||
			filepath.Base(f) == "secure.yaml" && strings.Contains(rest, "warning") {
			t.Errorf("%s warns:\n%s", f, rest)
		}
	}
}

// README's excerpt of deploy/secure.yaml (Security) is the file's text:
// it was an older version of it, presented as the file.
func TestREADMESecureExcerpt(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile("../../deploy/secure.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "[`deploy/secure.yaml`](deploy/secure.yaml)")
	if !ok {
		t.Fatal("README does not show deploy/secure.yaml")
	}
	intro, rest, _ := strings.Cut(after, "```yaml\n")
	block, _, _ := strings.Cut(rest, "```\n")
	if !strings.Contains(intro, "excerpt") || block == "" || !strings.Contains(string(file), block) {
		t.Fatalf("README's block after deploy/secure.yaml is not an excerpt of the file, said to be one:\n%s```yaml\n%s", intro, block)
	}
}

// The packaged single-node configurations (deploy/edgewamp.yaml, installed
// as /etc/edgewamp/edgewamp.yaml, and small-board.yaml, both listening on
// every interface) let
// anonymous clients route calls and events but not end other sessions,
// nor remove their registrations and subscriptions, through the meta API:
// before, any client reaching the port could call wamp.session.kill_all
// and disconnect everyone.
//
// Nor do they let them read the meta API at all, wamp.session.count
// aside: before, the grant on every URI ("") left its read side open, and
// any anonymous client on the network listed every session and read each
// one's IP address and port, authid and authrole (wamp.session.list,
// wamp.session.get, every wamp.session.on_join event), and every
// registration and subscription.
func TestDeploySampleRefusesSessionKill(t *testing.T) {
	for _, f := range []string{"edgewamp.yaml", "small-board.yaml"} {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			testSampleRefusesSessionKill(t, "../../deploy/"+f)
		})
	}
	// The mesh samples listen on every interface too, and on a mesh the
	// meta API reaches every node's sessions. Their realms, run here
	// without their mesh block (whose peers are other hosts).
	mesh, _ := filepath.Glob("../../deploy/mesh/*.yaml")
	if len(mesh) == 0 {
		t.Fatal("no mesh samples")
	}
	for _, f := range mesh {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			i := strings.Index(s, "\nmesh:\n")
			if i < 0 {
				t.Fatalf("%s has no mesh block", f)
			}
			end := len(s)
			if j := regexp.MustCompile(`\n[a-z_]+:`).FindStringIndex(s[i+len("\nmesh:\n"):]); j != nil {
				end = i + len("\nmesh:\n") + j[0]
			}
			testSampleRefusesSessionKill(t, writeFile(t, "node.yaml", s[:i+1]+s[end:]))
		})
	}
}

func testSampleRefusesSessionKill(t *testing.T, config string) {
	r := startRouter(t, "-config", config)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	victim := r.dial("ws://"+r.addr+"/ws", proto.JSON)
	callee := r.dial("rs://"+r.addr, proto.MsgPack)
	reg, err := callee.Register(ctx, "com.example.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan *client.Event, 4)
	sub, err := victim.Subscribe(ctx, "com.example.news", func(e *client.Event) { events <- e }, nil)
	if err != nil {
		t.Fatal(err)
	}
	attacker := r.dial("ws://"+r.addr+"/ws", proto.JSON)
	for _, proc := range []string{"wamp.session.kill_all", "wamp.session.kill", "wamp.session.kill_by_authrole", "wamp.registration.remove_callee", "wamp.subscription.remove_subscriber",
		"wamp.session.get", "wamp.session.list", "wamp.registration.list", "wamp.registration.list_callees", "wamp.subscription.list",
		"wamp.subscription.lookup", "wamp.subscription.list_subscribers"} {
		args := []any{}
		switch proc {
		case "wamp.session.kill", "wamp.session.get":
			args = []any{victim.ID()}
		case "wamp.session.kill_by_authrole":
			args = []any{"anonymous"}
		case "wamp.registration.remove_callee":
			args = []any{reg.ID(), callee.ID()}
		case "wamp.subscription.remove_subscriber":
			args = []any{sub.ID(), victim.ID()}
		case "wamp.registration.list_callees":
			args = []any{reg.ID()}
		case "wamp.subscription.lookup":
			args = []any{"com.example.news"}
		case "wamp.subscription.list_subscribers":
			args = []any{sub.ID()}
		}
		if res, err := attacker.Call(ctx, proc, args, nil, nil); wampURI(err) != proto.URINotAuthorized {
			t.Fatalf("%s from an anonymous session: %v %v, want %s", proc, res, err, proto.URINotAuthorized)
		}
	}
	if _, err := attacker.Subscribe(ctx, "wamp.session.on_join", func(*client.Event) {}, nil); wampURI(err) != proto.URINotAuthorized {
		t.Fatalf("subscribing to wamp.session.on_join from an anonymous session: %v, want %s", err, proto.URINotAuthorized)
	}
	res, err := victim.Call(ctx, "com.example.echo", []any{"still here"}, nil, nil)
	if err != nil || len(res.Args) != 1 || res.Args[0] != "still here" {
		t.Fatalf("the victim's call after the attempts: %v %v", res, err)
	}
	if err := attacker.Publish(ctx, "com.example.news", []any{"still subscribed"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if len(e.Args) != 1 || e.Args[0] != "still subscribed" {
			t.Fatalf("the victim's event: %v", e.Args)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the victim's subscription did not survive the attempts")
	}
	// wamp.session.count stays open.
	if _, err := attacker.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil {
		t.Fatalf("wamp.session.count: %v", err)
	}
}

// rssKiB reads a process's resident set from /proc.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Against the built router, over real sockets from 127.0.0.1: 16 WAMP-CRA
// logins whose HELLO names a 1 MiB authid (of '<', which the challenge's
// JSON escapes to 6 bytes) wait for their AUTHENTICATE. Nothing is
// authenticated, no secret is known, one address, well within
// max_open_challenges (1,024). Before HELLO's authid was bounded (1 KiB),
// the router's RSS went from 21 MiB to 474 MiB (+28 MiB a login, each
// challenge text 6 MiB); now each HELLO is refused (ABORT
// wamp.error.protocol_violation) and nothing is held.
func TestUnauthenticatedAuthIDHeld(t *testing.T) {
	const logins = 16
	path := writeFile(t, "authid.yaml", `listeners: [{address: "127.0.0.1:0"}]
limits: {hello_timeout: 60s}
realms:
  - name: realm1
    users:
      - {authid: bob, role: user, secret: bob-secret}
`)
	r := startRouter(t, "-config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	time.Sleep(500 * time.Millisecond)
	before := rssKiB(t, r.cmd.Process.Pid)

	authid := strings.Repeat("<", 1<<20)
	// answered: each login challenged (it then waits for release) or
	// refused at HELLO.
	var answered sync.WaitGroup
	answered.Add(logins)
	release := make(chan struct{})
	var done sync.WaitGroup
	chLen := make(chan int, logins)
	errs := make(chan error, logins)
	for range logins {
		done.Add(1)
		go func() {
			defer done.Done()
			var once sync.Once
			s, err := client.Dial(ctx, client.Config{
				URL: "rs://" + r.addr, Realm: "realm1", AuthID: authid, AuthMethods: []string{"wampcra"},
				DialTimeout: 50 * time.Second,
				OnChallenge: func(_ string, extra map[string]any) (string, map[string]any, error) {
					ch, _ := extra["challenge"].(string)
					chLen <- len(ch)
					once.Do(answered.Done)
					<-release
					return "", nil, context.Canceled // ABORT: no failure counted
				},
			})
			if s != nil {
				s.Close()
			}
			if err != nil {
				errs <- err
			}
			once.Do(answered.Done)
		}()
	}
	start := time.Now()
	answered.Wait()
	t.Logf("answered in %v", time.Since(start))
	time.Sleep(3 * time.Second) // past the loops' one-second release of their large-message buffers
	after := rssKiB(t, r.cmd.Process.Pid)
	close(release)
	done.Wait()
	grew := after - before
	challenged := len(chLen)
	var chKiB int
	if challenged > 0 {
		chKiB = <-chLen >> 10
	}
	var refused error
	if len(errs) > 0 {
		refused = <-errs
	}
	t.Logf("%d WAMP-CRA logins, each HELLO with a %d KiB authid: router RSS %d → %d MiB (+%d MiB, %d KiB a login); %d challenged (challenge text %d KiB); refused: %v",
		logins, len(authid)>>10, before>>10, after>>10, grew>>10, grew/logins, challenged, chKiB, refused)
	if grew > 32<<10 {
		t.Fatalf("%d unauthenticated logins grew the router's RSS by %d MiB (%d KiB each, for a %d KiB HELLO)",
			logins, grew>>10, grew/logins, len(authid)>>10+1)
	}
	if challenged > 0 || refused == nil || !strings.Contains(refused.Error(), proto.URIProtocolViolation) {
		t.Fatalf("%d of %d HELLOs with a %d KiB authid were challenged; refusal: %v, want ABORT %s", challenged, logins, len(authid)>>10, refused, proto.URIProtocolViolation)
	}
}

// TestAuthIDsAndRolesNotWAMPTextRefused: an authid or role starting with
// NUL (YAML "\0") names a principal the router cannot give JSON peers
// (WAMP's JSON reads a string starting with NUL as binary). check-config
// said ok, and the OAuth2 server issued such a user a token (password
// grant, sub "\u0000bob") and a client with such a role its
// client_credentials tokens, which the gateway then took: a disclosing
// JSON callee's calls failed "cannot be converted". check-config and run
// refuse each such key, naming it.
func TestAuthIDsAndRolesNotWAMPTextRefused(t *testing.T) {
	head := "listeners: [{address: \"127.0.0.1:1\"}]\nrealms:\n  - name: r\n"
	cases := []struct{ name, body, want string }{
		{"user authid", head + "    users:\n      - {authid: \"\\0bob\", role: x, secret: s}\n", `line 5: realms[0].users[0]: authid "\x00bob" starts with NUL`},
		{"user role", head + "    users:\n      - {authid: bob, roles: [x, \"\\0y\"], secret: s}\n", `line 5: user "bob": role "\x00y" starts with NUL`},
		{"role name", head + "    security: true\n    anonymous: true\n    roles:\n      - name: anonymous\n      - name: \"\\0x\"\n", `line 8: realms[0].roles[1]: role name "\x00x" starts with NUL`},
		{"anonymous role", head + "    anonymous_role: \"\\0anon\"\n", `line 4: realms[0].anonymous_role "\x00anon" starts with NUL`},
		{"oauth client role", head + "    oauth:\n      clients:\n        - {id: backend, secret: \"" + mustHash(t, "backend-secret") + "\", roles: [\"\\0svc\"], grants: [client_credentials]}\n",
			`line 6: oauth client "backend": role "\x00svc" starts with NUL`},
		// The identities the gateway's own configuration names, as which
		// its sessions act (left open by the last note: not checked).
		{"api key authid", head + "gateway:\n  api_keys:\n    - {name: k, key: 0123456789abcdef0123, realm: r, authid: \"\\0svc\", role: x}\n",
			`line 6: gateway.api_keys[0].authid "\x00svc" starts with NUL`},
		{"signing key role", head + "gateway:\n  signing_keys:\n    - {key: k, secret: 0123456789abcdef0123, realm: r, authid: svc, role: \"\\0x\"}\n",
			`line 6: gateway.signing_keys[0].role "\x00x" starts with NUL`},
		{"route authid", head + "gateway:\n  routes:\n    - {name: st, method: GET, path: /st, realm: r, call: com.st, auth: {type: none}, authid: \"\\0web\"}\n",
			`line 6: gateway.routes[0].authid "\x00web" starts with NUL`},
		{"callee role", head + "gateway:\n  callees:\n    - {name: c, realm: r, procedure: com.c, url: \"http://127.0.0.1:9/\", role: \"\\0cal\"}\n",
			`line 6: gateway.callees[0].role "\x00cal" starts with NUL`},
		{"webhook authid", head + "gateway:\n  webhooks:\n    - {name: w, realm: r, topic: com.w, url: \"http://127.0.0.1:9/\", authid: \"\\0hook\"}\n",
			`line 6: gateway.webhooks[0].authid "\x00hook" starts with NUL`},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			path := writeFile(t, "c.yaml", k.body)
			if _, e, code := runCLI("check-config", path); code != 1 || !strings.Contains(e, k.want) || !strings.Contains(e, "JSON peers") {
				t.Fatalf("check-config: exit %d: %s\nwant 1 and %q", code, e, k.want)
			}
		})
	}
	// run validates as check-config does (and reload: the same validate).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "run", "-config", writeFile(t, "run.yaml", cases[0].body), "-listen", "127.0.0.1:0", "-gateway-listen", "off").CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(out), cases[0].want) {
		t.Fatalf("run: %v\n%s", err, out)
	}
	// Escaped elsewhere than at the start, NUL is text JSON can carry.
	if _, e, code := runCLI("check-config", writeFile(t, "ok.yaml", head+"    users:\n      - {authid: \"b\\0b\", role: x, secret: s}\n")); code != 0 {
		t.Fatalf("an authid with a NUL not at its start: exit %d: %s", code, e)
	}
}
