package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// Meshes of edgewamp processes on loopback: the built binary, started
// with the mesh flags, and real clients on different nodes.

// meshProc is one node of a process mesh; restart starts it again with
// the same arguments (the same name and ports).
type meshProc struct {
	*router
	name string
	args []string
}

func startMeshProc(t *testing.T, name string, args ...string) *meshProc {
	t.Helper()
	full := append([]string{"run", "-node", name}, args...)
	return &meshProc{router: launch(t, exec.Command(binPath, full...)), name: name, args: full}
}

// kill sends SIGKILL and waits for the process to go.
func (p *meshProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

func (p *meshProc) restart(t *testing.T) {
	t.Helper()
	p.router = launch(t, exec.Command(binPath, p.args...))
}

func (p *meshProc) ws() string { return "ws://" + p.addr + "/ws" }
func (p *meshProc) rs() string { return "rs://" + p.addr }

// processCluster starts names as a NATS-route cluster, each node with a
// client listener on a free port (-listen 127.0.0.1:0) and the others'
// routes, and waits until the mesh has formed.
func processCluster(t *testing.T, extra func(i int) []string, names ...string) []*meshProc {
	t.Helper()
	cl := make([]string, len(names))
	for i := range names {
		cl[i] = edgetest.FreeAddr(t)
	}
	var procs []*meshProc
	for i, name := range names {
		var routes []string
		for j, a := range cl {
			if j != i {
				routes = append(routes, "nats://"+a)
			}
		}
		args := []string{"-listen", "127.0.0.1:0", "-cluster-listen", cl[i], "-cluster-routes", strings.Join(routes, ",")}
		if extra != nil {
			args = append(args, extra(i)...)
		}
		procs = append(procs, startMeshProc(t, name, args...))
	}
	waitJoined(t, procs...)
	return procs
}

// waitJoined waits until every process has logged that it sees each of
// the others.
func waitJoined(t *testing.T, procs ...*meshProc) {
	t.Helper()
	meshEventually(t, 20*time.Second, func() error {
		for _, p := range procs {
			logs := p.logs()
			for _, q := range procs {
				if q != p && !strings.Contains(logs, `msg="mesh: node joined" node=`+p.name+` peer=`+q.name) {
					return fmt.Errorf("%s has not seen %s join", p.name, q.name)
				}
			}
		}
		return nil
	})
}

func meshEventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", d, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func wampURI(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return e.URI
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// callWhenKnown calls proc until the registration has reached the caller's
// node (no_such_procedure until then).
func callWhenKnown(t *testing.T, s *client.Session, proc string, args []any) (*client.Result, time.Duration) {
	t.Helper()
	start := time.Now()
	var res *client.Result
	meshEventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		res, err = s.Call(ctx, proc, args, nil, nil)
		if wampURI(err) == proto.URINoSuchProcedure {
			return err
		}
		if err != nil {
			t.Fatalf("call %s: %v", proc, err)
		}
		return nil
	})
	return res, time.Since(start)
}

func toI64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	case float64:
		return int64(x)
	}
	return -1
}

// TestMeshProcesses: three edgewamp processes meshed from the command
// line; a callee, a caller, a publisher and subscribers on different
// nodes, transports and serializers.
func TestMeshProcesses(t *testing.T) {
	t.Parallel()
	ps := processCluster(t, nil, "a", "b", "c")
	a, b, c := ps[0], ps[1], ps[2]
	for _, p := range ps { // tuning.park and tuning.steady_sysmon: auto is on for a mesh node
		if !strings.Contains(p.logs(), "idle loops wait in Go's netpoller (park)") {
			t.Fatalf("node %s does not park its loops:\n%s", p.name, p.logs())
		}
		if line := grepLine(p.logs(), `msg="go runtime"`); !strings.Contains(line, "steady_sysmon=on") {
			t.Fatalf("node %s runs without a steady sysmon: %q", p.name, line)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	callee := b.dial(b.rs(), proto.CBOR)
	defer callee.Close()
	if _, err := callee.Register(ctx, "com.add", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		for i := 0; i < 3; i++ {
			inv.SendProgress([]any{i}, nil)
		}
		return &client.Result{Args: []any{toI64(inv.Args[0]) + toI64(inv.Args[1])}, Kwargs: map[string]any{"caller": inv.Caller}}, nil
	}, &client.RegisterOptions{DiscloseCaller: true}); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	defer caller.Close()
	if res, d := callWhenKnown(t, caller, "com.add", []any{2, 3}); toI64(res.Args[0]) != 5 || toI64(res.Kwargs["caller"]) != int64(caller.ID()) {
		t.Fatalf("call across processes: %v %v", res.Args, res.Kwargs)
	} else {
		t.Logf("registration callable from another process %v after REGISTERED", d.Round(time.Millisecond))
	}
	var prog int
	if _, err := caller.Call(ctx, "com.add", []any{1, 1}, nil, &client.CallOptions{OnProgress: func(*client.Result) { prog++ }}); err != nil || prog != 3 {
		t.Fatalf("progressive results across processes: %d, %v", prog, err)
	}
	// Events: 500 from A to subscribers on B (RawSocket/JSON) and C
	// (WebSocket/MsgPack), exactly once each, in order.
	const n = 500
	type rx struct {
		mu  sync.Mutex
		got []int64
	}
	var subs []*rx
	for _, x := range []struct {
		p   *meshProc
		url string
		ser proto.Serializer
	}{{b, b.rs(), proto.JSON}, {c, c.ws(), proto.MsgPack}} {
		s := x.p.dial(x.url, x.ser)
		defer s.Close()
		r := &rx{}
		if _, err := s.Subscribe(ctx, "com.seq", func(e *client.Event) {
			r.mu.Lock()
			r.got = append(r.got, toI64(e.Args[0]))
			r.mu.Unlock()
		}, nil); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, r)
	}
	pub := a.dial(a.ws(), proto.MsgPack)
	defer pub.Close()
	meshEventually(t, 10*time.Second, func() error {
		pub.Publish(ctx, "com.seq", []any{-1}, nil, &client.PublishOptions{Acknowledge: true})
		for i, r := range subs {
			r.mu.Lock()
			k := len(r.got)
			r.mu.Unlock()
			if k == 0 {
				return fmt.Errorf("subscriber %d has no event yet", i)
			}
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	for _, r := range subs {
		r.mu.Lock()
		r.got = nil
		r.mu.Unlock()
	}
	for i := 0; i < n; i++ {
		if err := pub.Publish(ctx, "com.seq", []any{i}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	meshEventually(t, 10*time.Second, func() error {
		for i, r := range subs {
			r.mu.Lock()
			k := len(r.got)
			r.mu.Unlock()
			if k < n {
				return fmt.Errorf("subscriber %d has %d of %d events", i, k, n)
			}
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	for i, r := range subs {
		r.mu.Lock()
		if len(r.got) != n {
			t.Errorf("subscriber %d: %d events, want exactly %d", i, len(r.got), n)
		}
		for k, v := range r.got {
			if v != int64(k) {
				t.Errorf("subscriber %d: event %d is %d (lost, duplicated or reordered)", i, k, v)
				break
			}
		}
		r.mu.Unlock()
	}
	// The meta API sees every node's sessions. It gathers the other
	// processes' answers for gather_timeout (500 ms): one held up longer on
	// a loaded machine leaves its sessions out of the count, so ask again.
	meshEventually(t, 10*time.Second, func() error {
		if res, err := caller.Call(ctx, "wamp.session.count", nil, nil, nil); err != nil || toI64(res.Args[0]) != 5 {
			return fmt.Errorf("session.count across processes: %v %v, want 5", res, err)
		}
		return nil
	})
	for _, p := range ps {
		if l := p.logs(); strings.Contains(l, "level=ERROR") || strings.Contains(l, "panic") {
			t.Errorf("%s logged errors:\n%s", p.name, tail(l, 30))
		}
	}
}

// writeConfig writes a configuration file for a test and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "edgewamp.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCheckConfigRefusesWhatRunRefuses: check-config (which the systemd
// unit runs as ExecStartPre, and which deploy/mesh/README.md tells users
// to run) refuses the mesh and TLS settings that run refuses at start,
// instead of passing them.
func TestCheckConfigRefusesWhatRunRefuses(t *testing.T) {
	const base = "listeners: [{address: \"127.0.0.1:1\"}]\ngateway: {listen: \"off\"}\n"
	cases := []struct{ name, body, want string }{
		{"node name", base + "mesh: {node: \"bad name\", cluster: {listen: \"127.0.0.1:7\"}}\n", `mesh.node "bad name" must be`},
		{"route url", base + "mesh: {node: a, cluster: {listen: \"127.0.0.1:7\", routes: [\"node2:7222\"]}}\n", `"node2:7222": want nats://host:port`},
		{"nats_url and cluster", base + "mesh: {node: a, nats_url: \"nats://127.0.0.1:4222\", cluster: {listen: \"127.0.0.1:7\"}}\n", "excludes mesh.cluster and mesh.leaf"},
		{"routes without listen", base + "mesh: {node: a, cluster: {routes: [\"nats://127.0.0.1:2\"]}}\n", "mesh.cluster.routes needs mesh.cluster.listen"},
		{"cluster name with a space", base + "mesh: {node: a, cluster: {listen: \"127.0.0.1:7\", name: \"my site\"}}\n", `cluster.name "my site" must not contain spaces`},
		{"reserved cluster name", base + "mesh: {node: a, cluster: {listen: \"127.0.0.1:7\", name: \"_\"}}\n", `cluster.name "_" is reserved by NATS`},
		{"empty token_env", base + "mesh: {node: a, cluster: {listen: \"127.0.0.1:7\"}, credentials: {token_env: EDGEWAMP_TEST_UNSET_TOKEN}}\n", "$EDGEWAMP_TEST_UNSET_TOKEN is empty"},
		{"listener tls", "listeners: [{address: \"127.0.0.1:1\", tls: {cert: /nonexistent/cert.pem, key: /nonexistent/key.pem}}]\n", "/nonexistent/cert.pem"},
		{"gateway tls", base[:strings.Index(base, "gateway")] + "gateway: {listen: \"127.0.0.1:2\", tls: {cert: /nonexistent/gw.pem, key: /nonexistent/gwkey.pem}}\n", "gateway: "},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			p := writeConfig(t, k.body)
			_, e, code := runCLI("check-config", p)
			if code != 1 || !strings.Contains(e, k.want) || !strings.Contains(e, p) {
				t.Fatalf("exit %d: %s\nwant %q, naming the file", code, e, k.want)
			}
		})
	}
	t.Setenv("EDGEWAMP_TEST_MESH_TOKEN", "s3cret")
	ok := writeConfig(t, base+"mesh: {node: a, cluster: {listen: \"127.0.0.1:7\", routes: [\"nats://127.0.0.1:2\"]}, credentials: {token_env: EDGEWAMP_TEST_MESH_TOKEN}}\n")
	if o, e, code := runCLI("check-config", ok); code != 0 {
		t.Fatalf("a good mesh configuration: exit %d: %s%s", code, o, e)
	}
}

// TestGatewayListenerInUse: when the gateway's port is taken, the error
// says it is the gateway's (gateway.listen, -gateway-listen), not one of
// the WAMP listeners.
func TestGatewayListenerInUse(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", l.Addr().String()).CombinedOutput()
	if err == nil {
		t.Fatalf("started with the gateway's port taken:\n%s", out)
	}
	if want := "HTTP gateway listener " + l.Addr().String(); !strings.Contains(string(out), want) {
		t.Fatalf("the error does not say %q:\n%s", want, out)
	}
}

// TestMeshURLErrorHidesPassword (found by the review of the command line
// and configuration): the password of a mesh URL is a secret
// (TestNatsURLPasswordNotLogged: the node's log line redacts nats_url),
// but a URL refused for its form (no port) was quoted whole, password
// and token included, by check-config and in run's error line (the
// journal). edge's TestCheckNatsURLRedacts checks the cases one by one.
func TestMeshURLErrorHidesPassword(t *testing.T) {
	const secret = "S3CRETPW"
	var leaks []string
	for _, c := range []string{
		"mesh: {cluster: {listen: \"127.0.0.1:0\", routes: [\"nats://edge:" + secret + "@127.0.0.1\"]}}\n",
		"mesh: {leaf: {remotes: [\"nats://edge:" + secret + "@hub\"]}}\n",
		"mesh: {nats_url: \"nats://" + secret + "@127.0.0.1\"}\n",
	} {
		path := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"off\"}\n"+c)
		out, errOut, code := runCLI("check-config", path)
		if code == 0 {
			t.Fatalf("check-config took %s", c)
		}
		if strings.Contains(out+errOut, secret) || !strings.Contains(errOut, "xxxxx@") {
			leaks = append(leaks, "check-config: "+strings.TrimSpace(errOut))
		}
	}
	cmd := exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off",
		"-cluster-listen", "127.0.0.1:0", "-cluster-routes", "nats://edge:"+secret+"@127.0.0.1")
	b, err := cmdOutputWithin(cmd, 10*time.Second)
	if exitCode(err) != 2 {
		t.Errorf("run -cluster-routes with no port: %v, want exit 2", err)
	}
	if strings.Contains(string(b), secret) {
		leaks = append(leaks, "run: "+lastLines(grepLines(string(b), secret), 1))
	}
	if len(leaks) > 0 {
		t.Fatalf("the mesh password is printed (%d):\n%s", len(leaks), strings.Join(leaks, "\n"))
	}
}

// TestMeshURLPortChecked (found by the review of the command line and
// configuration): listen addresses have their port checked (bc87850: a
// number from 0 to 65535), but the mesh's URLs were only split at the
// colon: nats://host: (no port) and nats://host:99999 in cluster.routes,
// leaf.remotes or -cluster-routes, and a cluster.advertise of
// 127.0.0.1:99999, passed check-config and run started, its route
// retrying "dial tcp 127.0.0.1:0: connect: connection refused" or
// "address 99999: invalid port" at INFO for ever, the node alone. edge's
// TestCheckNatsURLPort checks the cases one by one.
func TestMeshURLPortChecked(t *testing.T) {
	cases := []string{
		"mesh: {cluster: {listen: \"127.0.0.1:0\", routes: [\"nats://127.0.0.1:\"]}}\n",
		"mesh: {cluster: {listen: \"127.0.0.1:0\", routes: [\"nats://127.0.0.1:99999\"]}}\n",
		"mesh: {leaf: {remotes: [\"nats://127.0.0.1:\"]}}\n",
		"mesh: {cluster: {listen: \"127.0.0.1:0\", advertise: \"127.0.0.1:99999\"}}\n",
	}
	var bad []string
	for _, c := range cases {
		path := writeFile(t, "c.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\ngateway: {listen: \"off\"}\n"+c)
		if _, e, code := runCLI("check-config", path); code == 0 {
			bad = append(bad, strings.TrimSpace(c))
		} else if !strings.Contains(e, "port") {
			bad = append(bad, strings.TrimSpace(c)+": "+strings.TrimSpace(e))
		}
	}
	// The flag, through run.
	cmd := exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-gateway-listen", "off",
		"-cluster-listen", "127.0.0.1:0", "-cluster-routes", "nats://127.0.0.1:")
	out := &lockedBuffer{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		bad = append(bad, "run -cluster-routes nats://127.0.0.1: ran: "+lastLines(grepLines(out.String(), "route"), 1))
	}
	if len(bad) > 0 {
		t.Fatalf("mesh URLs with no port or a port past 65535 taken (%d):\n%s", len(bad), strings.Join(bad, "\n"))
	}
}
