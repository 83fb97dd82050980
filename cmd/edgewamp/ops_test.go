package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// A realm with anonymous: false that lists anonymous among its
// authmethods is a contradiction; it must be refused, not resolved in
// favour of anonymous sessions (which, without security, may do anything).
func TestAnonymousFalseWithAnonymousAuthmethodRefused(t *testing.T) {
	t.Setenv("REV_PW", "pbkdf2-sha256$100000$32$62oIXqvnMWsvFm7cYXQIkg$QA0E/D5/1UekLzrj9ZnxWce4kGSB/Buokd1cVWIO0Y8=")
	_, err := parseConfig([]byte(`
realms:
  - name: realm1
    anonymous: false
    authmethods: [anonymous, ticket]
    users: [{authid: alice, role: user, password_env: REV_PW}]
`), nil)
	if err == nil {
		c, _ := parseConfig([]byte("realms:\n  - name: realm1\n    anonymous: false\n    authmethods: [anonymous, ticket]\n    users: [{authid: alice, role: user, password_env: REV_PW}]\n"), nil)
		rcs, _ := c.realmConfigs()
		t.Fatalf("accepted; the router's realm allows anonymous sessions: %v", rcs[0].Anonymous)
	}
	if !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "anonymous") {
		t.Fatalf("error does not name the key and line: %v", err)
	}
}

// A bad value given by a command-line flag is reported as the flag's, not
// as a line of the file (or of the embedded default) that it replaced.
func TestBadFlagValueNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"-log-level", "verbose"}, "-log-level"},
		{[]string{"-log-format", "xml"}, "-log-format"},
		{[]string{"-listen", "foo"}, "-listen"},
		{[]string{"-gateway-listen", "bad"}, "-gateway-listen"},
		{[]string{"-listen", "127.0.0.1:9311", "-gateway-listen", "127.0.0.1:9311"}, "-gateway-listen"},
		{[]string{"-listen", "127.0.0.1:9312", "-cluster-listen", "0.0.0.0:9312"}, "-cluster-listen"},
	} {
		for _, withFile := range []bool{false, true} {
			args := []string{"run"}
			if withFile {
				args = append(args, "-config", writeFile(t, "c.yaml", "log:\n  level: info\n  format: text\nlisteners:\n  - address: 127.0.0.1:0\ngateway:\n  listen: 127.0.0.1:0\nrealms: [{name: realm1}]\n"))
			}
			out, err := exec.Command(binPath, append(args, tc.args...)...).CombinedOutput()
			if err == nil {
				t.Fatalf("%v: started", tc.args)
			}
			msg := string(out)
			if !strings.Contains(msg, "flag "+tc.flag+":") || strings.Contains(msg, "line ") {
				t.Errorf("%v (file %v): the error does not name the flag, or blames a line:\n%s", tc.args, withFile, msg)
			}
		}
	}
}

// SIGHUP re-reads the file, but the command-line flags still apply: a
// mesh node joined with -cluster-listen keeps its heap floor (auto: 16 MiB
// with the mesh) after a reload.
func TestReloadKeepsCommandLineFlags(t *testing.T) {
	cfgPath := writeFile(t, "c.yaml", "realms: [{name: realm1}]\n")
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath, "-listen", "127.0.0.1:0", "-node", "rev",
		"-cluster-listen", "127.0.0.1:0"))
	r.waitLog("heap_floor=16MiB", 1)
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 1)
	for _, l := range strings.Split(r.logs(), "\n") {
		if strings.Contains(l, "SIGHUP: configuration reloaded") && !strings.Contains(l, "heap_floor=16MiB") {
			t.Fatalf("the reload dropped the mesh's heap floor (-cluster-listen ignored):\n%s", l)
		}
	}
}

// A reload whose file adds mesh: neither starts a mesh node nor acts as
// if one ran: the heap floor (auto: 16 MiB with a mesh) stays off, and the
// log says that the mesh needs a restart.
func TestReloadAddingMeshNeedsRestart(t *testing.T) {
	cfgPath := writeFile(t, "c.yaml", "realms: [{name: realm1}]\ngateway: {listen: \"off\"}\n")
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath, "-listen", "127.0.0.1:0"))
	r.waitLog("heap_floor=off", 1)
	if err := os.WriteFile(cfgPath, []byte("realms: [{name: realm1}]\ngateway: {listen: \"off\"}\nmesh:\n  node: n1\n  cluster: {listen: \"127.0.0.1:0\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 1)
	logs := r.logs()
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "SIGHUP: configuration reloaded") && !strings.Contains(l, "heap_floor=off") {
			t.Fatalf("a reload adding mesh: set the heap floor of a mesh that does not run:\n%s", l)
		}
	}
	if !strings.Contains(logs, "mesh: is added or removed; that needs a restart") {
		t.Fatalf("the reload does not say that mesh: needs a restart:\n%s", logs)
	}
}

// TestSignalDuringStart: a signal that arrives while the router starts
// (a certificate hook's `kill -HUP`, `podman kill -s HUP`, a reload or a
// stop racing a restart) neither kills it nor is lost: a SIGHUP is applied
// once the router serves (one reload), a SIGTERM ends the start, exit
// status 0. Before, the handler was installed only once the OAuth2
// server, the router, the event loops, the mesh node and the gateway were
// built; until then Go's default action for SIGHUP and SIGTERM ended the
// process ("signal: hangup"), on a mesh node for about 80 ms after the
// "go runtime" line.
func TestSignalDuringStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{{"SIGHUP", syscall.SIGHUP}, {"SIGTERM", syscall.SIGTERM}} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "c.yaml", "realms: [{name: realm1}]\ngateway: {listen: \"off\"}\nmesh:\n  node: n1\n  cluster: {listen: \"127.0.0.1:0\"}\n")
			cmd := exec.Command(binPath, "run", "-config", path, "-listen", "127.0.0.1:0")
			log := &lockedBuffer{}
			cmd.Stderr = log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			exited := false
			defer func() {
				if !exited {
					cmd.Process.Kill()
					<-done
				}
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(log.String(), `msg="go runtime"`) {
				if time.Now().After(deadline) {
					t.Fatalf("no go runtime line:\n%s", log.String())
				}
				time.Sleep(time.Millisecond)
			}
			cmd.Process.Signal(tc.sig)
			want := "SIGHUP: configuration reloaded"
			if tc.sig == syscall.SIGTERM {
				select {
				case err := <-done:
					exited = true
					if err != nil {
						t.Fatalf("a SIGTERM during start: %v, want exit status 0\n%s", err, log.String())
					}
				case <-time.After(15 * time.Second):
					t.Fatalf("a SIGTERM during start: still running 15 s later\n%s", log.String())
				}
				want = "signal=terminated"
			}
			deadline = time.Now().Add(10 * time.Second)
			for !strings.Contains(log.String(), want) {
				select {
				case err := <-done:
					exited = true
					t.Fatalf("a %s during start ended the router: %v\n%s", tc.name, err, log.String())
				case <-time.After(20 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("no %q line:\n%s", want, log.String())
				}
			}
		})
	}
}

// TestReloadNamesRestartOnlyChanges: a reload whose file changes settings
// a reload does not apply (rpc:, keepalive:, limits:, ...) warns naming
// them, and the reload's log line lists them among those that need a
// restart; a reload that changes none does not warn (the gateway on,
// whose GOMAXPROCS sizing must not read as a change of loops). Before, a
// reload that added rpc.max_call_timeout: 1s logged "configuration
// reloaded" and nothing else, and the router kept no cap (a 3 s call
// took 3 s): routeConfig is read once, at start, and neither the log line
// nor README named rpc:.
func TestReloadNamesRestartOnlyChanges(t *testing.T) {
	const base = "realms: [{name: realm1}]\ngateway: {hosts: [example.com], routes: [{method: GET, path: /a, realm: realm1, call: com.a}]}\n"
	cfgPath := writeFile(t, "c.yaml", base)
	r := startRouter(t, "-config", cfgPath)
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 1)
	const warning = "SIGHUP: settings a reload does not apply were changed"
	if strings.Contains(r.logs(), warning) {
		t.Fatalf("a reload of the same file warns:\n%s", r.logs())
	}
	// The gateway's routes apply: no warning for them.
	if err := os.WriteFile(cfgPath, []byte(base+"rpc: {max_call_timeout: 1s}\nkeepalive: {interval: 20s}\nlimits: {calls_in_flight: 100}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 2)
	var warn, note string
	for _, l := range strings.Split(r.logs(), "\n") {
		if strings.Contains(l, warning) {
			warn = l
		}
		if strings.Contains(l, "SIGHUP: configuration reloaded") {
			note = l
		}
	}
	if !strings.Contains(warn, `changed="limits, keepalive, rpc"`) {
		t.Fatalf("the reload changing rpc, keepalive and limits does not name them: %q\n%s", warn, r.logs())
	}
	if !strings.Contains(note, "rpc") || !strings.Contains(note, "keepalive") {
		t.Fatalf("the reload's note does not list rpc and keepalive: %s", note)
	}
}

// SIGHUP rotates the HTTP gateway's certificate (gateway.tls) as it does
// the WAMP listeners'.
func TestGatewayTLSCertificateRotationOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair(t, certPath, keyPath, 1)
	cfgPath := writeFile(t, "gwtls.yaml", "gateway:\n  listen: 127.0.0.1:0\n  tls: {cert: "+certPath+", key: "+keyPath+"}\nrealms: [{name: realm1}]\n")
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath, "-listen", "127.0.0.1:0", "-gateway-listen", "127.0.0.1:0"))
	r.waitLog("gateway listening", 1)
	r.mu.Lock()
	gw := r.gw
	r.mu.Unlock()
	if got := servedSerial(t, gw); got != 1 {
		t.Fatalf("serial %d at start", got)
	}
	writePair(t, certPath, keyPath, 2)
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration reloaded", 1)
	if got := servedSerial(t, gw); got != 2 {
		t.Fatalf("gateway serves serial %d after the rotation and SIGHUP, want 2\n%s", got, r.logs())
	}
}

// The password of a nats_url (nats://user:password@host) is a secret: the
// log names the URL without it.
func TestNatsURLPasswordNotLogged(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, Username: "edge", Password: "s3cretpw", NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	url := "nats://edge:s3cretpw@" + ns.Addr().String()
	cfgPath := writeFile(t, "c.yaml", "mesh:\n  nats_url: "+url+"\nrealms: [{name: realm1}]\n")
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath, "-listen", "127.0.0.1:0", "-node", "rev"))
	r.waitLog("mesh: node started", 1)
	if strings.Contains(r.logs(), "s3cretpw") {
		t.Fatalf("the nats_url password is in the log:\n%s", r.logs())
	}
}

// websocket.health_path must be a path (else the health check is never
// found: 404) and not the WebSocket path (the health check answers there
// first, and no client can upgrade: loop/http.go's answer).
func TestWebSocketPathsValidated(t *testing.T) {
	for _, body := range []string{
		"websocket:\n  health_path: healthz\n",
		"websocket:\n  path: /healthz\n",
		"websocket:\n  path: /\n  health_path: /\n",
	} {
		_, err := parseConfig([]byte(body), nil)
		if err == nil || !strings.Contains(err.Error(), "line ") || !strings.Contains(err.Error(), "websocket.") {
			t.Errorf("%q: accepted or the error does not name key and line: %v", body, err)
		}
	}
}

// -node without a cluster, leaf or nats_url joins no mesh: the log says
// so, rather than a user taking the router for a mesh node.
func TestNodeAloneWarns(t *testing.T) {
	r := launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off", "-node", "n1"))
	r.waitLog("edgewamp started", 1)
	if !strings.Contains(r.logs(), "a node name is set, but no cluster, leaf or nats_url: the router runs alone") {
		t.Fatalf("no warning for -node alone:\n%s", r.logs())
	}
}

// An access token of the bearer issuer that names no realm is accepted on
// every realm the bridge serves unless gateway.bearer.audience is set: with
// more than one bridged realm and no audience, the log says so at start.
func TestBearerWithoutAudienceWarns(t *testing.T) {
	keys := newJWKS(t)
	const warning = "gateway.bearer: without an audience"
	for _, c := range []struct {
		audience string
		want     bool
	}{{"", true}, {"edgewamp", false}} {
		aud := ""
		if c.audience != "" {
			aud = ", audience: " + c.audience
		}
		cfg := writeFile(t, "edgewamp.yaml", `listeners: [{address: "127.0.0.1:0"}]
realms: [{name: realm1}, {name: realm2}]
gateway:
  listen: 127.0.0.1:0
  bearer: {jwks_file: `+keys.file+aud+`}
`)
		r := launch(t, exec.Command(binPath, "run", "-config", cfg, "-gateway-listen", "127.0.0.1:0"))
		r.waitLog("edgewamp started", 1)
		if got := strings.Contains(r.logs(), warning); got != c.want {
			t.Errorf("audience %q: warning logged %v, want %v\n%s", c.audience, got, c.want, r.logs())
		}
	}
}

// README (Reload): the sections a reload does not apply "need a restart
// ... The reload's log line says so, and a warning names the sections of
// the file that differ from what the router started with" (so does a
// mesh: added or removed); the rest of the file applies. Adding an
// oauth: block to a realm of a router started without OAuth2 refused the
// whole reload (oauthServer.reload: "turning OAuth2 on needs a
// restart"), which README did not say: a user removed in the same edit
// (a leaked password being withdrawn) stayed logged in and able to log
// in until a restart. Now the rest applies and a warning names the
// oauth: block.
func TestReloadAddingOAuthStillAppliesTheRest(t *testing.T) {
	key := oauthKeyFile(t)
	yml := func(bob, withOAuth bool) string {
		s := `listeners: [{address: "127.0.0.1:0"}]
`
		if withOAuth {
			s += "oauth:\n  issuer: http://gateway.test\n  key_files: [" + key + "]\n"
		}
		s += `realms:
  - name: realm1
    users:
      - {authid: alice, role: user, password: "` + mustHash(t, oaAlicePW) + `"}
`
		if bob {
			s += `      - {authid: bob, role: user, password: "` + mustHash(t, oaBobPW) + `"}
`
		}
		if withOAuth {
			s += `    oauth:
      clients:
        - {id: frontend, secret: "` + mustHash(t, "frontend-client-secret") + `", roles: [user], grants: [password]}
`
		}
		return s + "gateway:\n  listen: 127.0.0.1:0\n"
	}
	g := startReloadedGateway(t, yml(true, false))
	bob, err := passwordLoginAt(g.addr, "bob", oaBobPW)
	if err != nil {
		t.Fatalf("bob: %v\n%s", err, g.logs())
	}
	defer bob.Close()
	// bob removed, and OAuth2 turned on for the realm, in one edit.
	g.hup(yml(false, true))
	select {
	case <-bob.Done():
		t.Logf("bob ended: %v", bob.Err())
	case <-time.After(5 * time.Second):
		t.Fatalf("5 s after a reload that removed bob (and added an oauth: block), bob's session is still up; the router logged:\n%s",
			tail(g.logs(), 3))
	}
	// The oauth: block waits for a restart, and the warning says so.
	g.waitLog("SIGHUP: configuration reloaded", 1)
	logs := g.logs()
	if !strings.Contains(logs, "oauth: is added") || !strings.Contains(logs, "realms=realm1") {
		t.Fatalf("no warning naming the realm's oauth: block as needing a restart:\n%s", tail(logs, 4))
	}
	alice, err := passwordLoginAt(g.addr, "alice", oaAlicePW)
	if err != nil {
		t.Fatalf("alice after the reload: %v", err)
	}
	alice.Close()
}

func passwordLoginAt(addr, authid, pw string) (*client.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1", Serializer: proto.JSON,
		AuthID: authid, AuthMethods: []string{"ticket"},
		OnChallenge: func(string, map[string]any) (string, map[string]any, error) { return pw, nil, nil }})
}
