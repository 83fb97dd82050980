package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
)

// The end-to-end tests build the real binary once and run it as a child
// process on a loopback port.

var binPath string

func TestMain(m *testing.M) {
	if cmdline := os.Getenv("EDGEWAMP_SECCOMP_EXEC"); cmdline != "" {
		seccompExec(cmdline) // iouring_test.go
	}
	dir, err := os.MkdirTemp("", "edgewamp-test-")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "edgewamp")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		panic("building edgewamp: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// router is a running edgewamp process.
type router struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	gw   string // the HTTP gateway's address, when it runs
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
	// exited is set once cmd.Wait returned (before its error is sent on
	// done): the cleanup then neither kills nor waits.
	exited atomic.Bool
}

var listenRE = regexp.MustCompile(`msg=listening address=(\S+)|"msg":"listening","address":"([^"]+)"`)

var gatewayRE = regexp.MustCompile(`msg="gateway listening" address=(\S+)|"msg":"gateway listening","address":"([^"]+)"`)

// startRouter runs `edgewamp run` with extra arguments and waits for its
// listening line.
func startRouter(t *testing.T, args ...string) *router {
	t.Helper()
	return launch(t, routerCmd(args...))
}

// routerCmd is startRouter's command, for a test that sets more (its
// environment) before launch.
func routerCmd(args ...string) *exec.Cmd {
	args = append([]string{"run", "-listen", "127.0.0.1:0", "-gateway-listen", "127.0.0.1:0"}, args...)
	return exec.Command(binPath, args...)
}

// launch starts cmd, an edgewamp run, and waits for its listening line.
func launch(t *testing.T, cmd *exec.Cmd) *router {
	t.Helper()
	// Every configuration file takes the embedded default's gateway
	// (127.0.0.1:8081): a test that does not choose runs without it, so that
	// parallel routers do not contend for that port and tests written
	// before the gateway see the router they were written for.
	if len(cmd.Args) > 1 && cmd.Args[1] == "run" && !slices.Contains(cmd.Args, "-gateway-listen") {
		cmd.Args = append(cmd.Args, "-gateway-listen", "off")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &router{t: t, cmd: cmd, done: make(chan error, 1)}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.log.WriteString(line + "\n")
			r.mu.Unlock()
			if m := gatewayRE.FindStringSubmatch(line); m != nil {
				r.mu.Lock()
				r.gw = m[1] + m[2]
				r.mu.Unlock()
			}
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addrCh <- m[1] + m[2]:
				default:
				}
			}
		}
		err := cmd.Wait()
		r.exited.Store(true)
		r.done <- err
	}()
	t.Cleanup(func() {
		if !r.exited.Load() {
			cmd.Process.Kill()
			<-r.done
		}
	})
	select {
	case r.addr = <-addrCh:
	case err := <-r.done:
		t.Fatalf("edgewamp exited early: %v\n%s", err, r.logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("edgewamp did not start\n%s", r.logs())
	}
	return r
}

func (r *router) logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

func (r *router) dial(url string, ser proto.Serializer) *client.Session {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: url, Realm: "realm1", Serializer: ser})
	if err != nil {
		r.t.Fatalf("dial %s: %v\n%s", url, err, r.logs())
	}
	return s
}

func TestRunServesRPCAndPubSub(t *testing.T) {
	r := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	callee := r.dial("rs://"+r.addr, proto.CBOR)
	defer callee.Close()
	if _, err := callee.Register(ctx, "com.add", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{inv.Args[0].(int64) + inv.Args[1].(int64)}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := r.dial("ws://"+r.addr+"/ws", proto.JSON)
	defer caller.Close()
	res, err := caller.Call(ctx, "com.add", []any{2, 3}, nil, nil)
	if err != nil || res.Args[0] != int64(5) {
		t.Fatalf("call: %v %v", res, err)
	}
	got := make(chan *client.Event, 1)
	if _, err := callee.Subscribe(ctx, "com.t", func(e *client.Event) { got <- e }, nil); err != nil {
		t.Fatal(err)
	}
	if err := caller.Publish(ctx, "com.t", []any{"x"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-got:
		if e.Args[0] != "x" {
			t.Fatalf("event %v", e.Args)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
}

// SIGTERM: every session gets GOODBYE wamp.close.system_shutdown, then the
// process exits 0.
func TestSIGTERMSaysGoodbyeAndExitsZero(t *testing.T) {
	r := startRouter(t)
	sessions := []*client.Session{
		r.dial("ws://"+r.addr+"/ws", proto.JSON),
		r.dial("rs://"+r.addr, proto.MsgPack),
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("session not closed by shutdown")
		}
		var we *client.Error
		if !errors.As(s.Err(), &we) || we.URI != proto.CloseSystemShutdown {
			t.Fatalf("session ended with %v, want GOODBYE %s", s.Err(), proto.CloseSystemShutdown)
		}
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, r.logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("edgewamp did not exit")
	}
	if !strings.Contains(r.logs(), "edgewamp stopped") {
		t.Fatalf("no stop line in logs:\n%s", r.logs())
	}
}

// TestSIGTERMAfterSIGHUPs: a SIGTERM that arrives while SIGHUPs wait
// behind a reload in progress (`systemctl reload` a few times, from a
// certificate hook or a configuration management run, then `systemctl
// stop`) still stops the router, with GOODBYE, and the queued SIGHUPs
// make one reload more at most, not one each. Before, SIGINT, SIGTERM and
// SIGHUP shared one channel of capacity 2, which os/signal does not wait
// for: with two SIGHUPs queued the SIGTERM was dropped, and the router
// ran on (15 s here, until systemd's SIGKILL in production). The realm's
// users make a reload take some milliseconds.
func TestSIGTERMAfterSIGHUPs(t *testing.T) {
	var b strings.Builder
	b.WriteString("realms:\n  - name: realm1\n    anonymous: true\n    users:\n")
	for i := range 3000 {
		fmt.Fprintf(&b, "      - {authid: dev%d, role: device, cryptosign_keys: [\"%064x\"]}\n", i, i+1)
	}
	cfgPath := writeFile(t, "c.yaml", b.String())
	r := launch(t, exec.Command(binPath, "run", "-config", cfgPath, "-listen", "127.0.0.1:0"))
	s := r.dial("ws://"+r.addr+"/ws", proto.JSON)
	defer s.Close()
	// SIGHUPs a millisecond apart, so that the runtime does not merge
	// them, then a stop.
	const hups = 40
	for range hups {
		r.cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(time.Millisecond)
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, r.logs())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("SIGTERM after %d SIGHUPs: the router still runs 15 s later (%d reloads logged, shutting down logged: %v)",
			hups, strings.Count(r.logs(), "SIGHUP: configuration reloaded"), strings.Contains(r.logs(), "shutting down"))
	}
	var we *client.Error
	if !errors.As(s.Err(), &we) || we.URI != proto.CloseSystemShutdown {
		t.Fatalf("session ended with %v, want GOODBYE %s", s.Err(), proto.CloseSystemShutdown)
	}
	if n := strings.Count(r.logs(), "SIGHUP: configuration reloaded"); n >= hups {
		t.Errorf("%d SIGHUPs made %d reloads: those that arrive during a reload should make one more", hups, n)
	}
}

func TestJSONLogFormatAndLevel(t *testing.T) {
	r := startRouter(t, "-log-format", "json", "-log-level", "debug")
	s := r.dial("ws://"+r.addr+"/ws", proto.JSON)
	s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(r.logs(), `"msg":"connection closed"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.logs()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Fatalf("not a JSON log line: %q", line)
		}
	}
	if !strings.Contains(r.logs(), `"level":"DEBUG","msg":"connection closed"`) {
		t.Fatalf("no debug line for the closed connection:\n%s", r.logs())
	}
}

func runCLI(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return o.String(), e.String(), code
}

// exitCode is the exit status of a command that ran (err from Run,
// Output or Wait): 0 for nil, -1 when it did not exit by itself (killed,
// not started).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	}
	return -1
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, body string
		code       int
		want       []string
	}{
		{"ok", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a.b}]\n", 0, []string{": ok"}},
		{"unknown key", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a.b}]\nrelams: []\n", 1, []string{"line 3: key relams is not a known configuration key"}},
		{"unknown nested key", "listeners:\n  - address: 127.0.0.1:9000\n    tsl: {}\nrealms: [{name: a.b}]\n", 1, []string{"line 3: key tsl is not a known configuration key"}},
		{"bad duration", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a.b}]\nrpc:\n  call_timeout: soon\n", 1, []string{`line 4: rpc.call_timeout: "soon" is not a duration`}},
		// Durations are bounded (10 years): the router and the token store
		// add them to the clock in unix nanoseconds (review cmd2).
		{"huge duration", "limits: {hello_timeout: 2500000h}\n", 1, []string{`line 1: limits.hello_timeout: "2500000h" is too long: a duration is at most 87600h (10 years)`}},
		{"huge call timeout", "rpc:\n  max_call_timeout: 87601h\n", 1, []string{`line 2: rpc.max_call_timeout: "87601h" is too long`}},
		{"huge token lifetime", "oauth: {}\nrealms: [{name: r1, oauth: {refresh_token_lifetime: 2500000h, clients: [{id: c1, public: true}]}}]\n", 1, []string{`line 2: realms[0].oauth.refresh_token_lifetime: "2500000h" is too long`}},
		{"ten years", "rpc: {max_call_timeout: 87600h}\nlimits: {hello_timeout: 87600h}\n", 0, []string{": ok"}},
		{"bad size", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a.b}]\nlimits: {max_message: lots}\n", 1, []string{`line 3: limits.max_message: "lots" is not a size`}},
		{"wrong type", "loops: many\nlisteners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a.b}]\n", 1, []string{"line 1:", "many"}},
		{"wrong type names the key", "loops: many\n", 1, []string{"line 1: loops takes a whole number, not `many`"}},
		{"long value", "limits: {calls_in_flight: unlimited-please}\n", 1, []string{"line 1: limits.calls_in_flight takes a whole number, not `unlimit...`"}},
		{"negative mesh cap", "mesh: {cluster: {listen: \"127.0.0.1:0\"}, calls_in_flight: -1}\n", 1, []string{"line 1: mesh.calls_in_flight must not be negative"}},
		// Lower bounds on the mesh's timings and inbound budget (a 1 µs
		// heartbeat or ping was taken, and a budget smaller than a
		// directory sync's part never received it).
		{"mesh heartbeat too short", "mesh: {cluster: {listen: \"127.0.0.1:0\"}, heartbeat: 1ms}\n", 1, []string{"heartbeat 1ms is below the minimum 50ms"}},
		{"mesh ping too short", "mesh: {cluster: {listen: \"127.0.0.1:0\"}, ping_interval: 1us}\n", 1, []string{"ping_interval 1µs is below the minimum 100ms"}},
		{"mesh inbound too small", "mesh: {cluster: {listen: \"127.0.0.1:0\"}, max_inbound: 64KiB}\n", 1, []string{"max_inbound 65536 is below the minimum 1048576"}},
		{"mesh outbound too small", "mesh: {cluster: {listen: \"127.0.0.1:0\"}, max_outbound: 1KiB}\n", 1, []string{"max_outbound 1024 is below the minimum 1048576"}},
		{"list for a mapping", "listeners:\n  - address: 127.0.0.1:9000\n    tls: [a]\n", 1, []string{"line 3: listeners[0].tls takes a mapping of keys, not a list"}},
		{"wrong bool", "realms:\n  - name: r\n    anonymous: yes-please\n", 1, []string{"line 3: realms[0].anonymous takes true or false, not `yes-please`"}},
		{"scalar for a list", "websocket: {allowed_origins: \"*\"}\n", 1, []string{"line 1: websocket.allowed_origins takes a list, not `*`"}},
		{"bad realm", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms:\n  - name: ok.realm\n  - name: \"bad realm\"\n", 1, []string{`line 4: realms[1].name "bad realm" is not a valid URI`}},
		{"duplicate realm", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms:\n  - name: r\n  - name: r\n", 1, []string{`line 4: realm "r" is configured twice`}},
		{"no realms", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: []\n", 1, []string{"at least one realm is required"}},
		{"limits", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a}]\nlimits: {high_water: 1MiB, hard_limit: 1KiB, max_message: 32MiB}\n", 1, []string{"hard_limit must not be below", "max_message is at most 16MiB"}},
		{"no listeners key", "realms: [{name: a.b}]\n", 0, []string{": ok"}},
		{"no realms key", "listeners: [{address: \"127.0.0.1:9000\"}]\n", 0, []string{": ok"}},
		{"no listeners", "listeners: []\n", 1, []string{"line 1: at least one listener is required"}},
		{"auth_failures", "limits:\n  auth_failures:\n    block_after: -1\n    exempt: [10.0.0.0/8, \"::1\", nonsense]\n", 1,
			[]string{"line 3: limits.auth_failures.block_after must not be negative", `line 4: limits.auth_failures.exempt[2]: "nonsense" is not a network`}},
		{"auth_failures unknown key", "limits:\n  auth_failures: {block_afer: 3}\n", 1, []string{"line 2: key block_afer is not a known configuration key"}},
		{"address_block_after below block_after", "limits:\n  auth_failures:\n    block_after: 20\n    address_block_after: 15\n", 1,
			[]string{"line 4: limits.auth_failures.address_block_after must be at least block_after"}},
		{"address_block_after below the default block_after", "limits:\n  auth_failures: {address_block_after: 5}\n", 1,
			[]string{"limits.auth_failures.address_block_after must be at least block_after"}},
		// A configuration that raised block_after past 100 before
		// address_block_after existed stays valid: the embedded default
		// leaves address_block_after to follow block_after.
		{"block_after above 100", "limits:\n  auth_failures: {block_after: 200}\n", 0, []string{": ok"}},
		{"wildcard limits", "limits:\n  wildcard_registrations: 8\n  realm_wildcard_subscriptions: -1\n", 1, []string{"line 3: limits.realm_wildcard_subscriptions must not be negative"}},
		{"tls handshakes per address", "limits:\n  max_tls_handshakes_per_address: -1\n", 1, []string{"line 2: limits.max_tls_handshakes_per_address must not be negative"}},
		{"no tls handshakes per address bound", "limits:\n  max_tls_handshakes_per_address: 0\n", 0, []string{": ok"}},
		{"retained events per publisher negative", "limits:\n  retained_events_per_publisher: -1\n", 1, []string{"line 2: limits.retained_events_per_publisher must not be negative"}},
		{"retained events per publisher above the realm's", "limits:\n  retained_events_per_publisher: 65537\n", 1,
			[]string{"line 2: limits.retained_events_per_publisher is at most 65536, the retained topics of a realm"}},
		{"retained bytes per publisher above the realm's", "limits:\n  retained_bytes: 1MiB\n  retained_bytes_per_publisher: 2MiB\n", 1,
			[]string{"line 3: limits.retained_bytes_per_publisher 2MiB is above limits.retained_bytes, 1MiB"}},
		{"retained bytes per publisher above the default retained_bytes", "limits:\n  retained_bytes: 0\n  retained_bytes_per_publisher: 65MiB\n", 1,
			[]string{"line 3: limits.retained_bytes_per_publisher 65MiB is above limits.retained_bytes, 64MiB"}},
		{"no retained share", "limits:\n  retained_events_per_publisher: 65536\n  retained_bytes_per_publisher: 64MiB\n", 0, []string{": ok"}},
		{"testament bytes too small", "limits:\n  testament_bytes: 512KiB\n", 1,
			[]string{"line 2: limits.testament_bytes 512KiB is below 1MiB"}},
		{"testament bytes", "limits:\n  testament_bytes: 8MiB\n", 0, []string{": ok"}},
		{"subscription bytes too small", "limits:\n  subscription_bytes: 64KiB\n", 1,
			[]string{"line 2: limits.subscription_bytes 64KiB is below 1MiB"}},
		{"subscription bytes", "limits:\n  subscription_bytes: 256MiB\n", 0, []string{": ok"}},
		{"registration bytes too small", "limits:\n  registration_bytes: 64KiB\n", 1,
			[]string{"line 2: limits.registration_bytes 64KiB is below 1MiB"}},
		{"registration bytes", "limits:\n  registration_bytes: 256MiB\n", 0, []string{": ok"}},
		{"calls in flight total too small", "limits:\n  calls_in_flight_total: 3\n", 1,
			[]string{"line 2: limits.calls_in_flight_total 3 is below 4"}},
		{"calls in flight total negative", "limits:\n  calls_in_flight_total: -1\n", 1,
			[]string{"limits.calls_in_flight_total must not be negative"}},
		{"connections per address", "limits:\n  max_connections_per_address: -1\n", 1, []string{"line 2: limits.max_connections_per_address must not be negative"}},
		// 1 KiB was taken, and refused every message longer than a read.
		{"inbound total too small", "limits:\n  max_inbound_total: 1KiB\n", 1,
			[]string{"line 2: limits.max_inbound_total 1KiB is below the minimum, 1MiB"}},
		{"outbound total too small", "limits:\n  max_outbound_total: 1023KiB\n", 1,
			[]string{"line 2: limits.max_outbound_total 1023KiB is below the minimum, 1MiB"}},
		{"memory totals", "limits:\n  max_inbound_total: 1MiB\n  max_outbound_total: 1MiB\n", 0, []string{": ok"}},
		{"trusted proxies", "listeners:\n  - address: \"127.0.0.1:9000\"\n    trusted_proxies: [127.0.0.1, \"::1\", 10.0.0.0/8, proxy.example]\n", 1,
			[]string{`line 3: listeners[0].trusted_proxies[3]: "proxy.example" is not an address or a network`}},
		{"trusted proxies ok", "listeners:\n  - address: \"127.0.0.1:9000\"\n    trusted_proxies: [127.0.0.1, \"::1\", 10.0.0.0/8, \"::ffff:192.0.2.0/120\"]\n", 0, []string{": ok"}},
		{"gateway trusted proxies", "gateway:\n  listen: 127.0.0.1:9001\n  trusted_proxies: [\"::1\", 10.0.0.0/33]\n", 1,
			[]string{`line 3: gateway.trusted_proxies[1]: "10.0.0.0/33" is not an address or a network`}},
		{"no connections per address bound", "limits:\n  max_connections_per_address: 0\n", 0, []string{": ok"}},
		{"io_uring", "tuning:\n  io_uring: maybe\n", 1, []string{`line 2: tuning.io_uring must be auto, on or off, not "maybe"`}},
		{"rawsocket_pings", "keepalive:\n  rawsocket_pings: sometimes\n", 1, []string{`line 2: keepalive.rawsocket_pings must be proven or always, not "sometimes"`}},
		{"park", "tuning:\n  park: always\n", 1, []string{`line 2: tuning.park must be auto, on or off, not "always"`}},
		{"steady_sysmon", "tuning:\n  steady_sysmon: yes\n", 1, []string{`line 2: tuning.steady_sysmon must be auto, on or off, not "yes"`}},
		{"one port twice", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a}]\ngateway: {listen: \"0.0.0.0:9000\"}\n", 1,
			[]string{"line 3: gateway.listen 0.0.0.0:9000 uses the port of listeners[0].address 127.0.0.1:9000"}},
		{"mesh on a listener's port", "listeners:\n  - address: \"127.0.0.1:9000\"\n  - address: \"127.0.0.1:9001\"\nrealms: [{name: a}]\nmesh:\n  cluster: {listen: \"localhost:9001\"}\n", 1,
			[]string{"line 6: mesh.cluster.listen 127.0.0.1:9001 uses the port of listeners[1].address 127.0.0.1:9001"}},
		{"one port, two hosts", "listeners:\n  - address: \"127.0.0.1:9000\"\n  - address: \"127.0.0.2:9000\"\nrealms: [{name: a}]\ngateway: {listen: \"127.0.0.1:0\"}\n", 1,
			[]string{"line 3: listeners[1].address 127.0.0.2:9000 uses the port of listeners[0].address 127.0.0.1:9000 (the event loops take one listener per port, whatever its host)"}},
		{"gateway off the loops, one port, two hosts", "listeners: [{address: \"127.0.0.1:9000\"}]\nrealms: [{name: a}]\ngateway: {listen: \"127.0.0.2:9000\", event_loop: false}\n", 0, []string{": ok"}},
		{"empty", "", 1, []string{"empty"}},
		{"syntax", "realms: [\n", 1, []string{"line"}},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := write(strings.ReplaceAll(k.name, " ", "_")+".yaml", k.body)
			out, errOut, code := runCLI("check-config", p)
			if code != k.code {
				t.Fatalf("exit %d, want %d: %s%s", code, k.code, out, errOut)
			}
			for _, w := range k.want {
				if !strings.Contains(out+errOut, w) {
					t.Fatalf("output %q lacks %q", out+errOut, w)
				}
			}
			if strings.Contains(errOut, "main.") || strings.Contains(errOut, "unmarshal") {
				t.Fatalf("output %q speaks Go, not configuration", errOut)
			}
		})
	}
	if _, e, code := runCLI("check-config", filepath.Join(dir, "missing.yaml")); code != 1 || !strings.Contains(e, "no such file") {
		t.Fatalf("missing file: %d %s", code, e)
	}
}

// TestConfigFileReadBounded (found by the review of the command line and
// configuration): the configuration was read whole, with no bound, and
// parsed into YAML nodes twice. check-config of /dev/zero (a typo for a
// path, or a config management tool's empty device) under a 1 GiB
// address-space limit died with Go's "fatal error: out of memory" and a
// goroutine dump (exit 2), unlimited it took what RAM there was; a 32 MiB
// file took 6.5 to 9.7 s and 625 MiB of RSS and was "ok", which a SIGHUP
// repeated in the running router. A device or a directory is refused, a
// file larger than maxConfigFile before it is read, a pipe after
// maxConfigFile bytes; a reload refuses them too.
func TestConfigFileReadBounded(t *testing.T) {
	dir := t.TempDir()
	// Each in its own process under a 256 MiB data limit (ulimit -d: the
	// heap's writable mappings, not the address space Go reserves, which
	// a 1 GiB ulimit -v nearly fills at start): an unbounded read dies
	// there rather than take the machine's memory.
	for _, c := range []struct{ sh, want string }{
		{"exec BIN check-config /dev/zero", "/dev/zero is a device, not a configuration file"},
		{"yes | exec BIN check-config /dev/stdin", "/dev/stdin is larger than 16MiB, the most a configuration file may be"},
	} {
		cmd := exec.Command("sh", "-c", "ulimit -d 262144; "+strings.ReplaceAll(c.sh, "BIN", binPath))
		out, err := cmdOutputWithin(cmd, 20*time.Second)
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: exit %d, %q (want exit 1 and %q)", c.sh, code, firstLine(string(out)), c.want)
		}
	}
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(maxConfigFile + 1) // sparse: a file just over the bound
	f.Close()
	for _, c := range []struct{ path, want string }{
		{big, "big.yaml is larger than 16MiB"},
		{dir, "is a directory, not a configuration file"},
	} {
		if _, e, code := runCLI("check-config", c.path); code != 1 || !strings.Contains(e, c.want) {
			t.Errorf("check-config %s: exit %d, %q (want exit 1 and %q)", c.path, code, firstLine(e), c.want)
		}
	}
	// At the bound: read (not parsed here: a 16 MiB file takes seconds).
	atBound := filepath.Join(dir, "at-bound.yaml")
	if err := os.WriteFile(atBound, make([]byte, maxConfigFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := readConfigFile(atBound, false); err != nil || len(b) != maxConfigFile {
		t.Errorf("a file of exactly %d bytes: %d bytes read, %v", maxConfigFile, len(b), err)
	}
	// A reload refuses a file past the bound and keeps the running
	// configuration.
	path := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"off\"}\n")
	r := launch(t, exec.Command(binPath, "run", "-config", path))
	if err := os.Truncate(path, maxConfigFile+1); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	r.waitLog("SIGHUP: configuration", 1)
	if l := grepLines(r.logs(), "SIGHUP: configuration"); !strings.Contains(l, "configuration refused") || !strings.Contains(l, "is larger than 16MiB") {
		t.Fatalf("a reload of a file past the bound: %s", l)
	}
}

// firstLine returns the first line of s, cut to 200 bytes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// TestCheckConfigAgreesWithRun: check-config is the unit's
// ExecStartPre and README's upgrade check ("check the configuration with
// the new binary"): what it passes, run starts with, and what run refuses
// at start it refuses. Before, it passed three configurations that run
// refused, found only when the service started: two listeners on one
// port of two different addresses (the event loops refuse any two
// listeners on one port, whatever their hosts: "loop: two listeners on
// port N"); a listener and the gateway on the loops' HTTP lane (itself a
// loop listener) likewise; limits.high_water above 4 MiB with hard_limit
// 0 (its default, 4 MiB, is then below the high-water mark), and the
// converse, a hard_limit below high_water's default. The gateway on its
// own listener (event_loop: false) may share a port on another host.
func TestCheckConfigAgreesWithRun(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"listeners", "listeners:\n  - address: 127.0.0.1:PORT\n  - address: 127.0.0.2:PORT\ngateway: {listen: \"off\"}\n"},
		{"gateway-lane", "listeners:\n  - address: 127.0.0.1:PORT\ngateway: {listen: \"127.0.0.2:PORT\"}\n"},
		{"gateway-own-listener", "listeners:\n  - address: 127.0.0.1:PORT\ngateway: {listen: \"127.0.0.2:PORT\", event_loop: false}\n"},
		{"high-water", "listeners:\n  - address: 127.0.0.1:0\ngateway: {listen: \"off\"}\nlimits: {high_water: 8MiB, hard_limit: 0}\n"},
		{"hard-limit", "listeners:\n  - address: 127.0.0.1:0\ngateway: {listen: \"off\"}\nlimits: {high_water: 0, hard_limit: 100KiB}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "c.yaml", strings.ReplaceAll(tc.yaml, "PORT", freePort(t)))
			_, stderr, code := runCLI("check-config", path)
			started, log := runStarts(t, path)
			if (code == 0) != started {
				t.Fatalf("check-config exit %d (%s), but run started=%v:\n%s", code, strings.TrimSpace(stderr), started, lastLines(log, 2))
			}
		})
	}
}

// TestCheckConfigAgreesWithRunAtStart (found by the review of the command
// line and configuration): check-config is the unit's ExecStartPre and
// README's upgrade check, and 473d8b3 made it refuse what run refuses at
// start. These configurations passed it ("ok", exit 0) while run refused
// them a moment later (exit 1): the gateway's JWKS file was only stat'ed
// (not read: garbage, a directory, a private key set), the OAuth2 issuer
// only had its scheme prefix checked (run's oauth.New wants a host, no
// user info, no query), the OAuth2 key files were loaded one by one (the
// same key twice is refused by run), a route under the OAuth2 server's
// mount /oauth/ was refused only by gateway.New with the mount, and
// data_dir was never looked at (a regular file: run failed on mkdir).
// Each is now refused by the validation check-config, run and a reload
// share, with its key named; run exits at once.
func TestCheckConfigAgreesWithRunAtStart(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.json")
	os.WriteFile(garbage, []byte("garbage\n"), 0o600)
	jwksDir := filepath.Join(dir, "jwksdir")
	os.Mkdir(jwksDir, 0o700)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawURLEncoding.EncodeToString
	private := filepath.Join(dir, "private.json")
	os.WriteFile(private, []byte(fmt.Sprintf(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":%q,"d":%q}]}`, b64(pub), b64(priv.Seed()))), 0o600)
	keyPEM := filepath.Join(dir, "key.pem")
	if out, _, code := runCLI("oauth", "keygen"); code != 0 {
		t.Fatal("oauth keygen failed")
	} else {
		os.WriteFile(keyPEM, []byte(out), 0o600)
	}
	aFile := filepath.Join(dir, "a-file")
	os.WriteFile(aFile, []byte("x"), 0o600)

	const base = "listeners: [{address: \"127.0.0.1:0\"}]\ngateway:\n  listen: \"127.0.0.1:0\"\n"
	const oauthRealm = "realms: [{name: r1, oauth: {clients: [{id: c1, public: true}]}}]\n"
	cases := []struct{ name, yaml, want string }{
		{"jwks-garbage", base + "  bearer: {jwks_file: " + garbage + "}\n", "line 4: gateway.bearer.jwks_file: " + garbage + ": not a JSON Web Key Set"},
		{"jwks-directory", base + "  bearer: {jwks_file: " + jwksDir + "}\n", "line 4: gateway.bearer.jwks_file: " + jwksDir + " is a directory, not a regular file"},
		{"jwks-private-key", base + "  bearer: {jwks_file: " + private + "}\n", "holds a private key"},
		{"oauth-issuer-no-host", base + "oauth: {issuer: \"http://\"}\n" + oauthRealm, `line 4: oauth.issuer: issuer "http://" must be an http(s) URL with a host`},
		{"oauth-issuer-userinfo", base + "oauth: {issuer: \"https://u:pw@auth.example.com\"}\n" + oauthRealm, "must not have a query, fragment or user info"},
		{"oauth-key-twice", base + "oauth: {key_files: [" + keyPEM + ", " + keyPEM + "]}\n" + oauthRealm, "oauth.key_files[1] is the key of oauth.key_files[0]"},
		{"route-under-oauth-mount", base + "  routes:\n    - {name: tok, method: POST, path: /oauth/token, realm: r1, call: com.x, auth: {type: none}}\n" + oauthRealm, "path /oauth/token is at or below the mount /oauth/"},
		{"data-dir-is-a-file", base + "data_dir: " + aFile + "\n", "line 4: data_dir \"" + aFile + "\" is not a directory"},
	}
	var bad []string
	for _, tc := range cases {
		path := writeFile(t, tc.name+".yaml", tc.yaml)
		_, stderr, code := runCLI("check-config", path)
		started, log := runStarts(t, path)
		if (code == 0) != started {
			bad = append(bad, fmt.Sprintf("%s: check-config exit %d %s, run started=%v: %s", tc.name, code, strings.TrimSpace(stderr), started, lastLines(log, 1)))
		} else if code == 0 || !strings.Contains(stderr, tc.want) || !strings.Contains(log, tc.want) {
			bad = append(bad, fmt.Sprintf("%s: check-config exit %d %s, run: %s; want %q from both", tc.name, code, strings.TrimSpace(stderr), lastLines(log, 1), tc.want))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d configurations: check-config and run disagree:\n%s", len(bad), len(cases), strings.Join(bad, "\n"))
	}
}

// TestReloadRefusesWhatRunRefuses (found by the review of the command
// line and configuration): a SIGHUP with a file whose OAuth2 issuer run
// refuses at start ("http://", no host) said "configuration reloaded"
// (with a restart-needed warning for oauth), so the operator's next
// restart was the first to hear of it, and the service stayed down.
func TestReloadRefusesWhatRunRefuses(t *testing.T) {
	const good = "listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"127.0.0.1:0\"}\noauth: {issuer: \"http://127.0.0.1:8081\"}\nrealms: [{name: realm1, anonymous: true, oauth: {clients: [{id: c1, public: true}]}}]\n"
	path := writeFile(t, "c.yaml", good)
	r := launch(t, exec.Command(binPath, "run", "-config", path, "-gateway-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	bad := strings.Replace(good, "http://127.0.0.1:8081", "http://", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	r.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(r.logs(), "SIGHUP: configuration") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if !strings.Contains(r.logs(), "SIGHUP: configuration refused") {
		t.Fatalf("a reload took a file that run refuses (issuer http://):\n%s", lastLines(r.logs(), 3))
	}
}

// freePort returns a TCP port free on 127.0.0.1 just now, drawn as
// edgetest.FreeAddr draws them: below the ephemeral range (where other
// tests' port 0 binds and connections could take it before the router
// binds it), never the same twice in this process.
func freePort(t *testing.T) string {
	t.Helper()
	_, p, _ := net.SplitHostPort(edgetest.FreeAddr(t))
	return p
}

// runStarts runs `edgewamp run -config path` and reports whether it gets
// to serving (true) or exits first (false), with its log.
func runStarts(t *testing.T, path string) (bool, string) {
	t.Helper()
	cmd := exec.Command(binPath, "run", "-config", path)
	log := &lockedBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-done:
			return false, log.String()
		case <-deadline:
			cmd.Process.Kill()
			<-done
			return false, "did not start in 10 s\n" + log.String()
		case <-time.After(20 * time.Millisecond):
		}
		if strings.Contains(log.String(), "edgewamp started") {
			cmd.Process.Signal(syscall.SIGTERM)
			<-done
			return true, log.String()
		}
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// grepLines returns the lines of s that hold sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// cmdOutputWithin runs cmd, its output and error output together, and
// kills it if it is still running after d.
func cmdOutputWithin(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return []byte(out.String()), err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return []byte(out.String()), fmt.Errorf("still running after %v", d)
	}
}

// TestConfigOneYAMLDocument: the configuration is one YAML document. A
// second one (after a `---` line) is refused, naming its line: before,
// only the first was read and everything after the `---` was ignored,
// unknown keys and broken values included, so a file whose realms follow
// a `---` (two snippets joined, a template) ran with the embedded
// default's realm1, open to anonymous clients without RBAC, and
// check-config said ok. A file of only `---` lines (or null) is refused as
// empty, as README says of a file with no key: it passed. Empty documents
// around the one are allowed, and its errors name their lines.
func TestConfigOneYAMLDocument(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"realms after a separator", "gateway: {listen: \"off\"}\n---\nrealms:\n  - name: plant1\n    security: true\n" +
			"    users: [{authid: a, role: x, password: \"not a hash\"}]\nno_such_key: 1\n", 1, "line 3: a second YAML document (after a `---` line)"},
		{"only separators", "---\n---\n", 1, "the configuration is empty"},
		{"null", "null\n", 1, "the configuration is empty"},
		{"separator first", "---\nrealms: [{name: a.b}]\n", 0, ": ok"},
		{"separator last", "realms: [{name: a.b}]\n---\n", 0, ": ok"},
		{"empty documents first", "---\n---\nrealms: [{name: a.b}]\nno_such_key: 1\n", 1, "line 4: key no_such_key is not a known configuration key"},
		{"line after empty documents", "---\n---\nrealms:\n  - name: \"bad realm\"\n", 1, `line 4: realms[0].name "bad realm" is not a valid URI`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI("check-config", writeFile(t, "c.yaml", tc.body))
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("check-config: exit %d %q, want %d and %q, for:\n%s", code, out+errOut, tc.code, tc.want, tc.body)
			}
		})
	}
	c, err := parseConfig([]byte("---\nrealms: [{name: plant1}]\n---\n"), nil)
	if err != nil || len(c.Realms) != 1 || c.Realms[0].Name != "plant1" {
		t.Fatalf("a document between separators: %v %+v", err, c)
	}
}

// TestListenAddressesChecked: check-config refuses, naming the key and
// its line, the listen addresses that run cannot bind (it passed them,
// and run failed at start: a port past 65535, a service name, no port, a
// malformed IP address), of every key that takes one; run refuses them
// in its flags before it starts, naming the flag and the key (-pprof,
// which no key sets, by itself).
func TestListenAddressesChecked(t *testing.T) {
	bad := []struct{ addr, want string }{
		{"127.0.0.1:99999", `has a bad port "99999" (want a number from 0 to 65535)`},
		{"127.0.0.1:http", `has a bad port "http"`},
		{"127.0.0.1:", `has a bad port ""`},
		{"127.0.0.1:-1", `has a bad port "-1"`},
		{"999.0.0.1:8080", `has a bad host "999.0.0.1" (want an IP address, a host name, or none for every interface)`},
		{"10.1.2:8080", `has a bad host "10.1.2"`},
		{"edge..example:8080", `has a bad host "edge..example"`},
		{"-edge:8080", `has a bad host "-edge"`},
		{"nowhere", "is not host:port"},
	}
	keys := []struct{ key, yaml string }{
		{"listeners[0].address", "listeners: [{address: %q}]\n"},
		{"gateway.listen", "gateway: {listen: %q}\n"},
		{"mesh.cluster.listen", "mesh: {cluster: {listen: %q}}\n"},
		{"mesh.leaf.listen", "mesh: {leaf: {listen: %q}}\n"},
	}
	for _, k := range keys {
		for _, b := range bad {
			p := writeConfig(t, fmt.Sprintf(k.yaml, b.addr))
			_, e, code := runCLI("check-config", p)
			if want := fmt.Sprintf("line 1: %s %q %s", k.key, b.addr, b.want); code != 1 || !strings.Contains(e, want) {
				t.Errorf("check-config with %s %q: exit %d: %s\nwant 1 and %q", k.key, b.addr, code, e, want)
			}
		}
	}
	for _, good := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0", ":0", "0.0.0.0:0", "[fe80::1%eth0]:0", "edge-1.example.com:0", "edge-1.example.com.:0", "my_box:0"} {
		p := writeConfig(t, fmt.Sprintf("listeners: [{address: %q}]\ngateway: {listen: %q}\n", good, good))
		// Well formed; check-config also resolves a name
		// (TestCheckConfigListenHostMustResolve), which these need not.
		if _, err := loadConfig(p, nil); err != nil {
			t.Errorf("loading %q: %v", good, err)
		}
	}
	// The flags, on the binary: refused before anything starts.
	for _, f := range []struct{ flag, want string }{
		{"-listen", `flag -listen: listeners[0].address "127.0.0.1:99999" has a bad port "99999"`},
		{"-gateway-listen", `flag -gateway-listen: gateway.listen "127.0.0.1:99999" has a bad port "99999"`},
		{"-cluster-listen", `flag -cluster-listen: mesh.cluster.listen "127.0.0.1:99999" has a bad port "99999"`},
		{"-leaf-listen", `flag -leaf-listen: mesh.leaf.listen "127.0.0.1:99999" has a bad port "99999"`},
		{"-pprof", `flag -pprof: "127.0.0.1:99999" has a bad port "99999"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off", f.flag, "127.0.0.1:99999").CombinedOutput()
		cancel()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), f.want) {
			t.Errorf("run %s 127.0.0.1:99999: exit %d (%v): %s\nwant 2 and %q", f.flag, code, err, out, f.want)
		}
	}
}

func TestEmbeddedDefaultIsValid(t *testing.T) {
	c, err := loadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Realms[0].Name != "realm1" || c.Listeners[0].Address != "127.0.0.1:8080" {
		t.Fatalf("default %+v", c)
	}
}

// Every key a file leaves out takes the embedded default's value, lists
// (listeners, realms) included. (A file without listeners: or realms: was
// refused: "at least one listener is required", "at least one realm is
// required".)
func TestConfigKeysLeftOutTakeDefaults(t *testing.T) {
	def, err := loadConfig("", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		name, body string
		check      func(c *config) bool
	}{
		{"realms only", "realms: [{name: a.b}]\n", func(c *config) bool {
			return len(c.Listeners) == 1 && reflect.DeepEqual(c.Listeners[0], def.Listeners[0]) && c.Realms[0].Name == "a.b" && len(c.Realms) == 1
		}},
		{"listeners only", "listeners: [{address: \"127.0.0.1:9000\"}]\n", func(c *config) bool {
			return c.Listeners[0].Address == "127.0.0.1:9000" && len(c.Realms) == 1 && c.Realms[0].Name == "realm1" && c.Realms[0].anonymous()
		}},
		{"one limit", "limits: {max_message: 1MiB}\nkeepalive: {interval: 5s}\n", func(c *config) bool {
			return c.Limits.MaxMessage == 1<<20 && c.Limits.HighWater == def.Limits.HighWater && c.Limits.HardLimit == def.Limits.HardLimit &&
				c.Limits.AuthFailures.BlockAfter == 10 && c.Keepalive.Interval == duration(5*time.Second) && c.Keepalive.Timeout == def.Keepalive.Timeout &&
				c.WebSocket.Path == "/ws" && c.Realms[0].Name == "realm1"
		}},
		{"one auth_failures key", "limits: {auth_failures: {lockout: 1h, exempt: [192.0.2.0/24]}}\n", func(c *config) bool {
			l := c.authLimits()
			return l.Lockout == time.Hour && l.BlockAfter == 10 && l.DelayAfter == 3 && l.Window == time.Minute && l.MaxOpenChallenges == 1024 &&
				len(l.Exempt) == 1 && l.Exempt[0].String() == "192.0.2.0/24"
		}},
	} {
		t.Run(k.name, func(t *testing.T) {
			c, err := parseConfig([]byte(k.body), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !k.check(c) {
				t.Fatalf("config %+v", c)
			}
		})
	}
	// -listen supplies the listener of a file that has none.
	c, err := parseConfig([]byte("listeners: []\n"), func(c *config) {
		c.Listeners = []listenerConfig{{Address: "127.0.0.1:7000"}}
	})
	if err != nil || c.Listeners[0].Address != "127.0.0.1:7000" {
		t.Fatalf("listeners: [] with -listen: %v %+v", err, c)
	}
	// A value from a flag has no line in the file.
	_, err = parseConfig([]byte("realms: [{name: a}]\n"), func(c *config) { c.Listeners[0].Address = "nonsense" })
	if err == nil || strings.Contains(err.Error(), "line ") || !strings.Contains(err.Error(), "is not host:port") {
		t.Fatalf("bad -listen: %v", err)
	}
}

// The built router runs a file without listeners: (its address from
// -listen) or without realms: (the default realm1).
func TestRunConfigWithoutListenersOrRealms(t *testing.T) {
	noListeners := writeFile(t, "realms.yaml", "realms: [{name: realm1, anonymous: true}]\n")
	r := startRouter(t, "-config", noListeners)
	r.dial("ws://"+r.addr+"/ws", proto.JSON).Close()

	noRealms := writeFile(t, "listeners.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\n")
	r = launch(t, exec.Command(binPath, "run", "-config", noRealms))
	r.dial("rs://"+r.addr, proto.MsgPack).Close()
}

func TestCLIUsage(t *testing.T) {
	if _, e, code := runCLI(); code != 2 || !strings.Contains(e, "Usage") {
		t.Fatalf("no args: %d %s", code, e)
	}
	if _, e, code := runCLI("frobnicate"); code != 2 || !strings.Contains(e, `unknown command "frobnicate"`) {
		t.Fatalf("unknown: %d %s", code, e)
	}
	if o, _, code := runCLI("version"); code != 0 || !strings.HasPrefix(o, "edgewamp ") {
		t.Fatalf("version: %d %s", code, o)
	}
	if _, e, code := runCLI("run", "-log-level", "loud"); code != 2 || !strings.Contains(e, "log.level must be") {
		t.Fatalf("bad flag value: %d %s", code, e)
	}
	if _, _, code := runCLI("run", "-nope"); code != 2 {
		t.Fatalf("unknown flag: %d", code)
	}
}

// TestCLIHelp: -h, -help and --help print a command's usage on stdout and
// exit 0, as `edgewamp -h` does, for every command (run and passwd exited
// 2 with the usage on stderr; keygen ignored them and printed a key pair;
// check-config looked for a file named -h); a command that takes no
// arguments refuses them.
func TestCLIHelp(t *testing.T) {
	for _, k := range []struct {
		cmd  []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"run"}, "usage: edgewamp run"},
		{[]string{"check-config"}, "usage: edgewamp check-config FILE"},
		{[]string{"passwd"}, "usage: edgewamp passwd"},
		{[]string{"keygen"}, "usage: edgewamp keygen"},
		{[]string{"oauth"}, "usage: edgewamp oauth secret"},
		{[]string{"oauth", "secret"}, "usage: edgewamp oauth secret"},
		{[]string{"oauth", "keygen"}, "usage: edgewamp oauth keygen"},
		{[]string{"version"}, "usage: edgewamp version"},
	} {
		for _, h := range []string{"-h", "-help", "--help"} {
			args := append(slices.Clone(k.cmd), h)
			o, e, code := runCLI(args...)
			if code != 0 || !strings.Contains(o, k.want) || e != "" || strings.Contains(o, "private_key") {
				t.Errorf("edgewamp %s: exit %d, stdout %q, stderr %q; want 0 and %q on stdout alone", strings.Join(args, " "), code, o, e, k.want)
			}
		}
	}
	if o, e, code := runCLI("run", "-h"); !strings.Contains(o, "-gateway-listen") {
		t.Errorf("run -h does not list the flags: %d %q %q", code, o, e)
	}
	for _, args := range [][]string{{"keygen", "now"}, {"passwd", "secret"}, {"oauth", "keygen", "ES256"}, {"oauth", "secret", "x"}, {"version", "x"}, {"run", "x"}} {
		o, e, code := runCLI(args...)
		if want := "unexpected argument"; code != 2 || o != "" || !strings.Contains(e, want) {
			t.Errorf("edgewamp %s: exit %d, stdout %q, stderr %q; want 2 and %q", strings.Join(args, " "), code, o, e, want)
		}
	}
	if o, e, code := runCLI("keygen", "-x"); code != 2 || o != "" || !strings.Contains(e, "usage: edgewamp keygen") {
		t.Errorf("keygen -x: exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, o, e)
	}
	// The binary's exit status.
	for _, args := range [][]string{{"run", "-h"}, {"keygen", "-h"}, {"passwd", "--help"}} {
		out, err := exec.Command(binPath, args...).Output()
		if code := exitCode(err); code != 0 || !strings.Contains(string(out), "usage: edgewamp "+args[0]) {
			t.Errorf("%s %s: exit %d (%v): %s", binPath, strings.Join(args, " "), code, err, out)
		}
	}
}

// limits.max_tls_handshakes_per_address reaches the transports: the
// embedded default's 16, a file's value, and 0 (no bound), which
// loop.Options spells negative (its zero is the default).
func TestConfigTLSHandshakesPerAddress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, k := range []struct {
		body string
		want int
	}{
		{"realms: [{name: a}]\n", 16},
		{"limits: {max_tls_handshakes_per_address: 4}\n", 4},
		{"limits: {max_tls_handshakes_per_address: 0}\n", -1},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		o, _, err := c.loopOptions(log)
		if err != nil {
			t.Fatal(err)
		}
		if o.MaxTLSHandshakesPerAddress != k.want {
			t.Errorf("%q: Options.MaxTLSHandshakesPerAddress %d, want %d", k.body, o.MaxTLSHandshakesPerAddress, k.want)
		}
	}
}

// limits.max_connections_per_address reaches the transports: the
// embedded default's 1024 (loop's default too), a file's value, and 0 (no
// bound), which loop.Options spells negative.
func TestConfigConnectionsPerAddress(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, k := range []struct {
		body string
		want int
	}{
		{"realms: [{name: a}]\n", loop.DefaultMaxConnsPerAddress},
		{"limits: {max_connections_per_address: 4}\n", 4},
		{"limits: {max_connections_per_address: 0}\n", -1},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		o, _, err := c.loopOptions(log)
		if err != nil {
			t.Fatal(err)
		}
		if o.MaxConnsPerAddress != k.want {
			t.Errorf("%q: Options.MaxConnsPerAddress %d, want %d", k.body, o.MaxConnsPerAddress, k.want)
		}
	}
}

// The mesh's bounds on calls reach the router: the embedded default's
// (65,536 from other nodes, 4,096 per session to other nodes) and the
// file's.
func TestMeshCallLimitsConfigApplied(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, k := range []struct {
		body             string
		invs, perSession int
	}{
		{"realms: [{name: a}]\n", 65536, 4096},
		{"mesh: {max_invocations: 100, calls_in_flight: 7}\n", 100, 7},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.routeConfig(log, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rc.MaxMeshInvocations != k.invs || rc.MaxMeshCalls != k.perSession {
			t.Errorf("%q: MaxMeshInvocations %d, MaxMeshCalls %d; want %d, %d", k.body, rc.MaxMeshInvocations, rc.MaxMeshCalls, k.invs, k.perSession)
		}
	}
}

// A publisher's share of a realm's retained events reaches the router:
// the embedded default's 0 (route's default, a quarter of the realm's)
// and the file's.
func TestRetainedShareConfigApplied(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, k := range []struct {
		body   string
		events int
		bytes  int64
	}{
		{"realms: [{name: a}]\n", 0, 0},
		{"limits: {retained_events_per_publisher: 100, retained_bytes_per_publisher: 1MiB}\n", 100, 1 << 20},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.routeConfig(log, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rc.MaxRetainedPerPublisher != k.events || rc.MaxRetainedBytesPerPublisher != k.bytes {
			t.Errorf("%q: MaxRetainedPerPublisher %d, MaxRetainedBytesPerPublisher %d; want %d, %d", k.body, rc.MaxRetainedPerPublisher, rc.MaxRetainedBytesPerPublisher, k.events, k.bytes)
		}
	}
}

// limits.calls_in_flight_total reaches the router; 0 (the embedded
// default's) leaves route's default.
func TestCallsTotalConfigApplied(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, k := range []struct {
		body string
		want int64
	}{
		{"realms: [{name: a}]\n", 0},
		{"limits: {calls_in_flight_total: 4096}\n", 4096},
	} {
		c, err := parseConfig([]byte(k.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.routeConfig(log, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rc.MaxCallsTotal != k.want {
			t.Errorf("%q: MaxCallsTotal %d, want %d", k.body, rc.MaxCallsTotal, k.want)
		}
	}
}

// The limits on wildcard patterns reach the router: the file's, and the
// embedded default's for the keys it leaves out (1,024 wildcard
// subscriptions per session).
func TestWildcardLimitsConfigApplied(t *testing.T) {
	path := writeFile(t, "wildcard.yaml", `limits:
  wildcard_subscriptions: 2
  realm_wildcard_registrations: 1
realms: [{name: realm1, anonymous: true}]
`)
	r := startRouter(t, "-config", path)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(r *router) *client.Session {
		s, err := client.Dial(ctx, client.Config{URL: "ws://" + r.addr + "/ws", Realm: "realm1"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	unavailable := func(err error, what string) {
		t.Helper()
		var we *client.Error
		if !errors.As(err, &we) || we.URI != proto.URIUnavailable || !strings.Contains(err.Error(), "too many wildcard") {
			t.Fatalf("%s: %v, want %s (too many wildcard ...)", what, err, proto.URIUnavailable)
		}
	}
	wild := &client.SubscribeOptions{Match: "wildcard"}
	a := dial(r)
	for _, topic := range []string{"a..x", "b..x"} {
		if _, err := a.Subscribe(ctx, topic, func(*client.Event) {}, wild); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Subscribe(ctx, "c..x", func(*client.Event) {}, wild)
	unavailable(err, "a third wildcard subscription of limit 2")
	if _, err := a.Subscribe(ctx, "c.x", func(*client.Event) {}, nil); err != nil {
		t.Fatalf("an exact subscription: %v", err)
	}
	noop := func(context.Context, *client.Invocation) (*client.Result, error) { return nil, nil }
	if _, err := a.Register(ctx, "r..x", noop, &client.RegisterOptions{Match: "wildcard"}); err != nil {
		t.Fatal(err)
	}
	_, err = dial(r).Register(ctx, "q..x", noop, &client.RegisterOptions{Match: "wildcard"})
	unavailable(err, "a second wildcard registration in a realm of limit 1")

	def := startRouter(t, "-config", writeFile(t, "default.yaml", "realms: [{name: realm1, anonymous: true}]\n"))
	d := dial(def)
	for i := 0; i < 1024; i++ {
		if _, err := d.Subscribe(ctx, "w.p"+strconv.Itoa(i)+"..x", func(*client.Event) {}, wild); err != nil {
			t.Fatalf("wildcard subscription %d: %v", i+1, err)
		}
	}
	_, err = d.Subscribe(ctx, "w.more..x", func(*client.Event) {}, wild)
	unavailable(err, "wildcard subscription 1,025 with the default limit")
}

// The secret WAMP-CRA's decoy salts come from is made once under data_dir,
// with a secret's permissions, and read back at the next start, so that a
// restart does not change the salts of authids that are not users (which
// would tell them from the users, whose salts stay). Without data_dir the
// router makes its own.
func TestDecoySecretKeptInDataDir(t *testing.T) {
	if s, err := decoySecret(""); s != nil || err != nil {
		t.Fatalf("without data_dir: %x, %v; want nil, nil", s, err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	first, err := decoySecret(dir)
	if err != nil || len(first) != decoySize {
		t.Fatalf("%x, %v", first, err)
	}
	fi, err := os.Stat(filepath.Join(dir, decoyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", decoyFile, fi.Mode().Perm())
	}
	again, err := decoySecret(dir)
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("second start: %x, %v; want %x", again, err, first)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("data_dir holds %d files, want only %s", len(ents), decoyFile)
	}
	os.WriteFile(filepath.Join(dir, decoyFile), []byte("short"), 0o600)
	if _, err := decoySecret(dir); err == nil {
		t.Fatal("a truncated secret was taken")
	}
}

// TestHandshakeLimitFloor: limits.max_handshake is bytes when written
// without a unit, and had no minimum: max_handshake: 8 (meant as 8 KiB)
// passed check-config, and the router then answered every WebSocket
// upgrade 431 (an upgrade request takes about 190 bytes at the least).
// Below 512 bytes it is refused, naming its line, by check-config, run
// and a reload alike; 0 is the default (8 KiB), and a router at the
// minimum serves WebSocket clients.
func TestHandshakeLimitFloor(t *testing.T) {
	for _, k := range []struct {
		body string
		code int
		want string
	}{
		{"limits:\n  max_handshake: 8\n", 1, "line 2: limits.max_handshake 8 bytes is below the minimum, 512 bytes"},
		{"limits: {max_handshake: 511}\n", 1, "line 1: limits.max_handshake 511 bytes is below the minimum, 512 bytes"},
		{"limits: {max_handshake: 0}\n", 0, ": ok"},
		{"limits: {max_handshake: 512}\n", 0, ": ok"},
		{"limits: {max_handshake: 64KiB}\n", 0, ": ok"},
		{"limits:\n  max_handshake: 65537\n", 1, "line 2: limits.max_handshake 65537 bytes is above the maximum, 65536 bytes"},
		{"limits: {max_handshake: 16MiB}\n", 1, "line 1: limits.max_handshake 16777216 bytes is above the maximum, 65536 bytes"},
	} {
		out, errOut, code := runCLI("check-config", writeConfig(t, k.body))
		if code != k.code || !strings.Contains(out+errOut, k.want) {
			t.Errorf("check-config %q: exit %d %s%s; want %d and %q", k.body, code, out, strings.TrimSpace(errOut), k.code, k.want)
		}
	}
	r := startRouter(t, "-config", writeConfig(t, "realms: [{name: realm1}]\nlimits: {max_handshake: 512}\n"))
	s := r.dial("ws://"+r.addr+"/ws", proto.JSON)
	s.Close()
}

// TestConfigFractionRefused: yaml takes a float for an integer key and
// drops its fraction, so `max_connections_per_address: 0.5` turned the
// per-address bound off (0), `block_after: 0.9` took the default and
// `loops: 1.5` ran one loop, and check-config said ok. A fraction is now
// refused, naming the key; a whole float (1e3) is the integer it names.
func TestConfigFractionRefused(t *testing.T) {
	cases := []struct{ body, want string }{
		{"limits:\n  max_connections_per_address: 0.5\n", "line 2: limits.max_connections_per_address takes a whole number, not `0.5`"},
		{"limits:\n  auth_failures: {block_after: 0.9}\n", "line 2: limits.auth_failures.block_after takes a whole number, not `0.9`"},
		{"listeners: [{address: \"127.0.0.1:0\", max_connections: -0.5}]\n", "line 1: listeners[0].max_connections takes a whole number, not `-0.5`"},
		{"gateway:\n  limits: {max_in_flight_per_address: 2.5e-1}\n", "line 2: gateway.limits.max_in_flight_per_address takes a whole number, not `2.5e-1`"},
		{"loops: 1.5\n", "line 1: loops takes a whole number, not `1.5`"},
		{"loops: 1e0\nlimits: {calls_in_flight: 2.0}\n", ""},
	}
	for _, k := range cases {
		_, e, code := runCLI("check-config", writeFile(t, "c.yaml", k.body))
		if k.want == "" && code != 0 || k.want != "" && (code != 1 || !strings.Contains(e, k.want)) {
			t.Errorf("%q: exit %d, %q; want %q", k.body, code, e, k.want)
		}
	}
}

// TestReloadOfPipeNeverBlocks: a configuration read from a named pipe
// (README: "a regular file ... or a pipe") cannot be read again, and a
// SIGHUP opened it again on the serving goroutine: with no writer, open
// waited for one for ever, no line was logged, and the SIGTERM after it
// was never handled (systemd's SIGKILL ended the router). The reload now
// says so and reloads nothing (the certificates still), and a stop works.
func TestReloadOfPipeNeverBlocks(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "edgewamp.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.WriteString("realms: [{name: realm1}]\n")
		f.Close()
	}()
	r := launch(t, exec.Command(binPath, "run", "-config", fifo, "-listen", "127.0.0.1:0"))
	r.waitLog("edgewamp started", 1)
	r.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, r.logs())
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("SIGTERM after a SIGHUP of a router reading its configuration from a pipe: still running 3 s later\n%s", r.logs())
	}
	if !strings.Contains(r.logs(), "is a pipe, which cannot be read again") {
		t.Fatalf("the reload did not say why it reloaded nothing:\n%s", r.logs())
	}
}

// TestRunRefusesSmallMemoryTotals: the event loops' memory budgets below
// 1 MiB are refused at start, as check-config refuses them (1 KiB was
// taken: every message longer than one read was closed 1009).
func TestRunRefusesSmallMemoryTotals(t *testing.T) {
	for _, key := range []string{"max_inbound_total", "max_outbound_total"} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		body := "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: a}]\nlimits:\n  " + key + ": 1KiB\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		// A process: a router that starts is stopped by the deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, binPath, "run", "-config", p, "-gateway-listen", "off").CombinedOutput()
		cancel()
		if want := "line 4: limits." + key + " 1KiB is below the minimum, 1MiB"; exitCode(err) != 1 || !strings.Contains(string(out), want) {
			t.Fatalf("run with %s: 1KiB: %v, %s; want exit 1 and %q", key, err, out, want)
		}
	}
}
