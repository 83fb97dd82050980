package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/proto"
)

// runnersYAML is a configuration with realm1 and the gateway's callees
// and webhooks (YAML flow mappings, one a line).
func runnersYAML(callees, webhooks []string) string {
	yml := `listeners: [{address: "127.0.0.1:0"}]
realms:
  - name: realm1
gateway:
  listen: 127.0.0.1:0
  callees:
`
	for _, c := range callees {
		yml += "    - " + c + "\n"
	}
	yml += "  webhooks:\n"
	for _, w := range webhooks {
		yml += "    - " + w + "\n"
	}
	return yml
}

// TestGatewayCalleesWebhooksReloadedOnSIGHUP: the binary and SIGHUP. The
// gateway's HTTP callees and webhooks changed only with a restart, which
// dropped every client. Now a reload applies the file's: a callee added
// serves, a removed one is unregistered, an unchanged one keeps its
// registration (the same session); a webhook whose URL changed posts to
// the new one only, an added one posts; the log line counts and names
// them. A file with a bad callee is refused, naming the field, and the
// callees in use stay.
func TestGatewayCalleesWebhooksReloadedOnSIGHUP(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`"` + r.Header.Get("X-Edgewamp-Procedure") + `"`))
	}))
	t.Cleanup(upstream.Close)
	hits := make(chan string, 64) // "<target> <topic> <first argument>"
	target := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var doc struct {
				Topic string `json:"topic"`
				Args  []any  `json:"args"`
			}
			body, _ := io.ReadAll(r.Body)
			json.Unmarshal(body, &doc)
			hits <- fmt.Sprint(name, " ", doc.Topic, " ", doc.Args)
		}))
		t.Cleanup(s.Close)
		return s
	}
	t1, t2, t3 := target("t1"), target("t2"), target("t3")
	keep := `{realm: realm1, procedure: com.example.keep, url: "` + upstream.URL + `"}`
	old := `{name: old, realm: realm1, procedure: com.example.old, url: "` + upstream.URL + `"}`
	added := `{realm: realm1, procedure: com.example.new, url: "` + upstream.URL + `"}`
	alerts := func(url string) string {
		return `{name: alerts, realm: realm1, topic: com.example.alert, url: "` + url + `"}`
	}
	news := `{name: news, realm: realm1, topic: com.example.news, url: "` + t3.URL + `"}`
	g := startReloadedGateway(t, runnersYAML([]string{keep, old}, []string{alerts(t1.URL)}))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: "ws://" + g.addr + "/ws", Realm: "realm1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	call := func(proc string) (string, error) {
		res, err := c.Call(ctx, proc, nil, nil, nil)
		if err != nil {
			return "", err
		}
		s, _ := res.Args[0].(string)
		return s, nil
	}
	waitServed := func(proc string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := call(proc)
			if err == nil && got == proc {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q %v\n%s", proc, got, err, g.logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// member returns the sessions registered for proc or subscribed to
	// topic.
	member := func(kind, uri string) string {
		t.Helper()
		res, err := c.Call(ctx, "wamp."+kind+".match", []any{uri}, nil, nil)
		if err != nil || len(res.Args) == 0 || res.Args[0] == nil {
			return ""
		}
		id := res.Args[0]
		if l, ok := id.([]any); ok {
			id = l[0]
		}
		list := "wamp.registration.list_callees"
		if kind == "subscription" {
			list = "wamp.subscription.list_subscribers"
		}
		res, err = c.Call(ctx, list, []any{id}, nil, nil)
		if err != nil || len(res.Args) == 0 {
			return ""
		}
		return fmt.Sprint(res.Args[0])
	}
	// publishUntil publishes to topic until want is POSTed. A POST seen
	// before (a publication repeated while the webhook subscribed, one
	// cut short by the reload) may come late; any other fails.
	seen := map[string]bool{}
	publishUntil := func(topic, want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if err := c.Publish(ctx, topic, []any{"x"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
			select {
			case hit := <-hits:
				switch {
				case hit == want:
					seen[want] = true
					return
				case !seen[hit]:
					t.Fatalf("webhook POST %q, want %q", hit, want)
				}
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no webhook POST %q\n%s", want, g.logs())
			}
		}
	}

	waitServed("com.example.keep")
	waitServed("com.example.old")
	publishUntil("com.example.alert", "t1 com.example.alert [x]")
	keepSess := member("registration", "com.example.keep")

	// old removed, new added, keep unchanged; alerts to t2, news added.
	g.reload(runnersYAML([]string{keep, added}, []string{alerts(t2.URL), news}))
	g.waitLog(`callees=2 callees_added="1: com.example.new" callees_removed="1: old" callees_changed=0 webhooks=2 webhooks_added="1: news" webhooks_removed=0 webhooks_changed="1: alerts"`, 1)
	var we *client.Error
	if _, err := call("com.example.old"); !errors.As(err, &we) || we.URI != proto.URINoSuchProcedure {
		t.Fatalf("the removed callee: %v", err)
	}
	waitServed("com.example.new")
	if got := member("registration", "com.example.keep"); got != keepSess {
		t.Fatalf("the unchanged callee registered again: %s, then %s", keepSess, got)
	}
	publishUntil("com.example.alert", "t2 com.example.alert [x]")
	publishUntil("com.example.news", "t3 com.example.news [x]")

	// A bad callee: refused whole (loadConfig's check), naming the field;
	// what runs stays.
	bad := `{realm: realm1, procedure: com.example.bad, url: "ftp://example.com/"}`
	g.reloadRefused(runnersYAML([]string{keep, added, bad}, []string{alerts(t2.URL), news}))
	g.waitLog("gateway.callees[2].url: url must be an http(s) URL", 1)
	waitServed("com.example.new")
	waitServed("com.example.keep")
	if got := member("registration", "com.example.bad"); got != "" {
		t.Fatalf("the refused file's callee registered: %s", got)
	}
	publishUntil("com.example.alert", "t2 com.example.alert [x]")
	if l := g.logs(); !strings.Contains(l, "routes, callees and webhooks") {
		t.Fatalf("the reload's log line does not say that callees and webhooks apply:\n%s", l)
	}
}

// gatewayMesh starts names as a cluster of processes: the first n run the
// configuration file (none when "") with a gateway on a free port, the
// others the default configuration with the gateway off.
func gatewayMesh(t *testing.T, file string, n int, names ...string) []*meshProc {
	t.Helper()
	return processCluster(t, func(i int) []string {
		if i >= n {
			return []string{"-gateway-listen", "off"}
		}
		if file == "" {
			return []string{"-gateway-listen", "127.0.0.1:0"}
		}
		return []string{"-config", file, "-gateway-listen", "127.0.0.1:0"}
	}, names...)
}

// dialNode joins realm1 on p with ser (0: the client's default, JSON),
// anonymously.
func dialNode(t *testing.T, p *meshProc, ser proto.Serializer) *client.Session {
	t.Helper()
	c, err := client.Dial(t.Context(), client.Config{URL: p.ws(), Realm: "realm1", Serializer: ser})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestMeshGatewaySingleCalleeReloaded: on a mesh, a gateway callee's
// `single` registration is exclusive mesh-wide (a session on another node
// cannot register the procedure), and a SIGHUP that changes the callee
// (its URL) hands the registration to its replacement without a refusal:
// the old runner's release and the new one's claim go through the node's
// one claim worker in that order, and a claim this node holds is its own.
// Callers on the other node see the new URL's answers within a few
// seconds; in between a call gets a result or no_such_procedure, nothing
// else.
func TestMeshGatewaySingleCalleeReloaded(t *testing.T) {
	t.Parallel()
	upstream := func(answer string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`"` + answer + `"`))
		}))
		t.Cleanup(s.Close)
		return s
	}
	u1, u2 := upstream("u1"), upstream("u2")
	yml := func(url string) string {
		return "realms: [{name: realm1}]\ngateway:\n  listen: 127.0.0.1:0\n  callees:\n" +
			`    - {name: only, realm: realm1, procedure: com.example.only, invoke: single, url: "` + url + "\"}\n"
	}
	file := writeFile(t, "mesh-callee.yaml", yml(u1.URL))
	procs := gatewayMesh(t, file, 1, "ga", "gb")
	a, b := procs[0], procs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := dialNode(t, b, 0)
	answer := func() (string, error) {
		res, err := c.Call(ctx, "com.example.only", nil, nil, nil)
		if err != nil {
			return "", err
		}
		s, _ := res.Args[0].(string)
		return s, nil
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ga:\n%s", a.logs())
		}
	})
	if res, _ := callWhenKnown(t, c, "com.example.only", nil); fmt.Sprint(res.Args) != "[u1]" {
		t.Fatalf("the callee on ga answered %v, want [u1]", res.Args)
	}
	mustBeRefused := func(when string) {
		t.Helper()
		reg, err := c.Register(ctx, "com.example.only", func(context.Context, *client.Invocation) (*client.Result, error) {
			return &client.Result{Args: []any{"gb"}}, nil
		}, nil)
		if wampURI(err) != proto.URIProcedureAlreadyExists {
			if err == nil {
				c.Unregister(ctx, reg)
			}
			t.Fatalf("%s: a session on gb registered the procedure ga's gateway holds as single: %v", when, err)
		}
	}
	mustBeRefused("before the reload")

	if err := os.WriteFile(file, []byte(yml(u2.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	a.waitLog(`callees_changed="1: only"`, 1)
	start := time.Now()
	var others []string
	for {
		got, err := answer()
		switch {
		case err == nil && got == "u2":
		case err == nil && got == "u1", wampURI(err) == proto.URINoSuchProcedure:
			if time.Since(start) > 10*time.Second {
				t.Fatalf("no answer from the new URL 10 s after the reload (last: %q %v)\n%s", got, err, a.logs())
			}
			time.Sleep(10 * time.Millisecond)
			continue
		default:
			others = append(others, fmt.Sprintf("%q %v", got, err))
			if len(others) > 5 {
				t.Fatalf("calls during the reload failed otherwise than no_such_procedure: %v", others)
			}
			continue
		}
		break
	}
	t.Logf("the new URL answered %v after the reload's log line", time.Since(start).Round(time.Millisecond))
	if len(others) > 0 {
		t.Fatalf("calls during the reload failed otherwise than no_such_procedure: %v", others)
	}
	if l := a.logs(); strings.Contains(l, "HTTP callee cannot register") {
		t.Fatalf("the changed callee was refused on its own node:\n%s", l)
	}
	mustBeRefused("after the reload")
}

// TestMeshGatewayRetainedReplay: an event stream with retained=true on one
// node's gateway replays the event retained by a publication on another
// node. On a mesh the router sends a get_retained SUBSCRIBE's retained
// events after SUBSCRIBED, once the other nodes have answered, and the
// gateway dropped every retained event that came after the SUBSCRIBE: the
// stream got no replay at all, even of an event published on its own node.
func TestMeshGatewayRetainedReplay(t *testing.T) {
	t.Parallel()
	procs := gatewayMesh(t, "", 1, "ra", "rb")
	a, b := procs[0], procs[1]
	ga := meshGateway(t, a)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pubB, pubA := dialNode(t, b, 0), dialNode(t, a, 0)
	retain := &client.PublishOptions{Retain: true, Acknowledge: true}
	if err := pubB.Publish(ctx, "com.example.state.b", []any{"from rb"}, nil, retain); err != nil {
		t.Fatal(err)
	}
	if err := pubA.Publish(ctx, "com.example.state.a", []any{"from ra"}, nil, retain); err != nil {
		t.Fatal(err)
	}
	open := func(path string) *bufio.Reader {
		req, err := http.NewRequestWithContext(ctx, "GET", ga.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return openSSE(t, req, false)
	}
	// The exact topic published on rb.
	br := open("/wamp/realm1/events/com.example.state.b?retained=true")
	if got := sseUntil(t, br, "data:", "the stream of com.example.state.b"); !strings.Contains(got, `"from rb"`) || !strings.Contains(got, `"retained":true`) {
		t.Fatalf("the stream of com.example.state.b began with %q, want the event retained on rb", got)
	}
	// A prefix: both nodes' retained events, once each.
	br = open("/wamp/realm1/events/com.example.state.?match=prefix&retained=true")
	got := sseUntil(t, br, "data:", "the prefix stream") + sseUntil(t, br, "data:", "the prefix stream")
	if !strings.Contains(got, `"from rb"`) || !strings.Contains(got, `"from ra"`) {
		t.Fatalf("the prefix stream began with %q, want the events retained on ra and rb", got)
	}
	// Then live events only.
	if err := pubB.Publish(ctx, "com.example.state.b", []any{"live"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
		t.Fatal(err)
	}
	if got := sseUntil(t, br, "data:", "the prefix stream"); !strings.Contains(got, `"live"`) {
		t.Fatalf("the prefix stream's next event is %q, want the live one", got)
	}
}

// TestMeshGatewayCalleeFailover: the same HTTP callee (invoke single) in
// the configuration of two nodes of a three-node mesh is active on one and
// stands by on the other; when the active node is SIGKILLed, the standby
// takes the procedure over once the mesh has dropped the dead node (and
// the claim store has a leader again, or its claim is accepted
// provisionally), and calls from the third node reach the upstream again
// within seconds.
func TestMeshGatewayCalleeFailover(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`"up"`))
	}))
	t.Cleanup(up.Close)
	file := writeFile(t, "failover.yaml", "realms: [{name: realm1}]\ngateway:\n  listen: 127.0.0.1:0\n  callees:\n"+
		`    - {realm: realm1, procedure: com.example.ha, url: "`+up.URL+"\"}\n")
	procs := gatewayMesh(t, file, 2, "fa", "fb", "fc")
	c := dialNode(t, procs[2], 0)
	if res, _ := callWhenKnown(t, c, "com.example.ha", nil); fmt.Sprint(res.Args) != "[up]" {
		t.Fatalf("com.example.ha answered %v", res.Args)
	}
	// One of fa and fb holds it; the other stands by.
	var active, standby *meshProc
	meshEventually(t, 10*time.Second, func() error {
		for i, p := range procs[:2] {
			if strings.Contains(p.logs(), "HTTP callee standing by") {
				standby, active = p, procs[1-i]
				return nil
			}
		}
		return errors.New("neither node's callee stands by")
	})
	if strings.Contains(active.logs(), "HTTP callee standing by") {
		t.Fatalf("both nodes' callees stand by")
	}
	killed := time.Now()
	active.kill(t)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		res, err := c.Call(ctx, "com.example.ha", nil, nil, nil)
		cancel()
		if err == nil && fmt.Sprint(res.Args) == "[up]" {
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("com.example.ha not served 15 s after %s was killed: %v\n%s", active.name, err, standby.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("%s took com.example.ha over %v after %s was killed", standby.name, took.Round(time.Millisecond), active.name)
	if !strings.Contains(standby.logs(), "HTTP callee took over the procedure's registration after standing by") {
		t.Fatalf("%s served the procedure without taking it over:\n%s", standby.name, standby.logs())
	}
	// The mesh drops a dead node in about 2 s; when the dead node led the
	// claim store's stream, the claim waits for a new leader or is
	// accepted provisionally after 3 s more (2.1 to 6.6 s in 14 runs).
	if took > 10*time.Second {
		t.Fatalf("the standby took %v to take over, want within 10 s", took)
	}
}

// TestMeshGatewayBridge: the HTTP bridge of one node reaches the peers of
// another: a call to a callee on rb (plain, progressive as SSE, timed out,
// and abandoned by its HTTP client, which interrupts the callee), a
// publication from HTTP to a subscriber on rb, and an event stream on
// ra's gateway of events published on rb.
func TestMeshGatewayBridge(t *testing.T) {
	t.Parallel()
	procs := gatewayMesh(t, "", 1, "ba", "bb")
	ga := meshGateway(t, procs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	peer := dialNode(t, procs[1], proto.CBOR)
	interrupted := make(chan struct{}, 4)
	if _, err := peer.Register(ctx, "com.example.add", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{toI64(inv.Args[0]) + toI64(inv.Args[1])}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Register(ctx, "com.example.count", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		for i := range 3 {
			if err := inv.SendProgress([]any{i}, nil); err != nil {
				return nil, err
			}
		}
		return &client.Result{Args: []any{"done"}}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Register(ctx, "com.example.slow", func(ctx context.Context, inv *client.Invocation) (*client.Result, error) {
		<-ctx.Done()
		if context.Cause(ctx) == client.ErrInterrupted {
			interrupted <- struct{}{}
		}
		return nil, ctx.Err()
	}, nil); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 16)
	if _, err := peer.Subscribe(ctx, "com.example.in", func(ev *client.Event) { got <- fmt.Sprint(ev.Args) }, nil); err != nil {
		t.Fatal(err)
	}
	// The registrations reach ra.
	meshEventually(t, 10*time.Second, func() error {
		if resp, body := ga.do(t, "POST", "/wamp/realm1/call/com.example.add", `{"args":[2,3]}`); resp.StatusCode != 200 {
			return fmt.Errorf("call: %d %s", resp.StatusCode, body)
		}
		return nil
	})
	if resp, body := ga.do(t, "POST", "/wamp/realm1/call/com.example.add", `{"args":[40,2]}`); resp.StatusCode != 200 || !strings.Contains(string(body), "42") {
		t.Fatalf("call across nodes: %d %s", resp.StatusCode, body)
	}
	// Progressive results as SSE.
	req, _ := http.NewRequestWithContext(ctx, "POST", ga.base+"/wamp/realm1/call/com.example.count", strings.NewReader(`{}`))
	br := openSSE(t, req, true)
	rest := sseUntil(t, br, "", "the streamed call")
	if strings.Count(rest, "event: progress") != 2 || !strings.Contains(rest, `"done"`) {
		t.Fatalf("the streamed call's rest: %q, want two more progress events and the result", rest)
	}
	// A timeout: 504 at the HTTP client, the callee interrupted.
	resp, body := ga.do(t, "POST", "/wamp/realm1/call/com.example.slow", `{"options":{"timeout":300}}`)
	if resp.StatusCode != 504 {
		t.Fatalf("a call past its timeout: %d %s", resp.StatusCode, body)
	}
	select {
	case <-interrupted:
	case <-time.After(5 * time.Second):
		t.Fatal("the callee on bb was not interrupted when the call timed out")
	}
	// An HTTP client that goes away: the call is canceled at the callee.
	hctx, hcancel := context.WithCancel(ctx)
	req, _ = http.NewRequestWithContext(hctx, "POST", ga.base+"/wamp/realm1/call/com.example.slow", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	go func() {
		time.Sleep(300 * time.Millisecond)
		hcancel()
	}()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the abandoned call answered %s", resp.Status)
	}
	select {
	case <-interrupted:
	case <-time.After(5 * time.Second):
		t.Fatal("the callee on bb was not interrupted when the HTTP client went away")
	}
	// A publication from HTTP reaches the subscriber on bb, in its CBOR.
	if resp, body := ga.do(t, "POST", "/wamp/realm1/publish/com.example.in", `{"args":["hello",{"n":1}],"options":{"acknowledge":true}}`); resp.StatusCode != 200 {
		t.Fatalf("publish: %d %s", resp.StatusCode, body)
	}
	select {
	case ev := <-got:
		if ev != "[hello map[n:1]]" {
			t.Fatalf("the subscriber on bb got %s", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the publication from ra's gateway did not reach bb")
	}
	// An event stream on ra of events published on bb.
	req, _ = http.NewRequestWithContext(ctx, "GET", ga.base+"/wamp/realm1/events/com.example.out", nil)
	br = openSSE(t, req, false)
	// Published until one arrives: bb learns of ra's interest shortly
	// after the stream opens.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			peer.Publish(ctx, "com.example.out", []any{"from bb"}, nil, nil)
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	if ev := sseUntil(t, br, "data:", "the event stream"); !strings.Contains(ev, `"from bb"`) {
		t.Fatalf("the event stream got %q", ev)
	}
}

// TestMeshWebhookOnEveryNode: a webhook in the configuration of two nodes
// is delivered by each (README: each node's gateway runs its own
// webhooks), with the same X-Edgewamp-Delivery, the publication id, which
// is the same on every node: a receiver deduplicates on it.
func TestMeshWebhookOnEveryNode(t *testing.T) {
	t.Parallel()
	type hit struct{ delivery, body string }
	hits := make(chan hit, 16)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits <- hit{r.Header.Get("X-Edgewamp-Delivery"), string(b)}
	}))
	t.Cleanup(target.Close)
	file := writeFile(t, "webhook.yaml", "realms: [{name: realm1}]\ngateway:\n  listen: 127.0.0.1:0\n  webhooks:\n"+
		`    - {realm: realm1, topic: com.example.alert, url: "`+target.URL+"\"}\n")
	procs := gatewayMesh(t, file, 2, "wa", "wb", "wc")
	pub := dialNode(t, procs[2], 0)
	// Published until both nodes' webhooks deliver one publication (wc
	// learns of their interest shortly after they subscribe).
	seen := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := pub.Publish(t.Context(), "com.example.alert", []any{"fire"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
		wait := time.After(300 * time.Millisecond)
	drain:
		for {
			select {
			case h := <-hits:
				if !strings.Contains(h.body, `"fire"`) || h.delivery == "" {
					t.Fatalf("webhook POST %q with delivery %q", h.body, h.delivery)
				}
				if seen[h.delivery]++; seen[h.delivery] > 2 {
					t.Fatalf("publication %s delivered %d times by two nodes", h.delivery, seen[h.delivery])
				}
			case <-wait:
				break drain
			}
		}
		for _, n := range seen {
			if n == 2 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publication delivered by both nodes' webhooks with one delivery id: %v", seen)
		}
	}
}

// TestMeshWebhookDeliverOne: the same webhook with deliver: one on two
// nodes of a three-node mesh is delivered by one of them, each event once;
// when that node is SIGKILLed, the other takes over and delivers the
// events published after, still once each.
func TestMeshWebhookDeliverOne(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]int{} // delivery id → POSTs
	got := make(chan string, 256)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		id := r.Header.Get("X-Edgewamp-Delivery")
		mu.Lock()
		seen[id]++
		mu.Unlock()
		got <- id
	}))
	t.Cleanup(target.Close)
	file := writeFile(t, "webhook-one.yaml", "realms: [{name: realm1}]\ngateway:\n  listen: 127.0.0.1:0\n  webhooks:\n"+
		`    - {name: alerts, realm: realm1, topic: com.example.alert, deliver: one, url: "`+target.URL+"\"}\n")
	procs := gatewayMesh(t, file, 2, "da", "db", "dc")
	pub := dialNode(t, procs[2], 0)
	// No client can take the lock and hold the webhook off: the gateway's
	// procedures are reserved (route.Config.InProcessURIs).
	if _, err := pub.Register(t.Context(), gateway.WebhookLockURI("alerts"), func(context.Context, *client.Invocation) (*client.Result, error) {
		return &client.Result{}, nil
	}, nil); wampURI(err) != proto.URINotAuthorized {
		t.Fatalf("a client's REGISTER of the webhook's lock: %v, want not_authorized", err)
	}
	// deliveredWithin publishes every 100 ms until a POST arrives, for at
	// most d; it returns how long that took.
	deliveredWithin := func(d time.Duration, what string) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			if err := pub.Publish(t.Context(), "com.example.alert", []any{"fire"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
				return time.Since(start)
			case <-time.After(100 * time.Millisecond):
			}
			if time.Since(start) > d {
				t.Fatalf("%s: nothing delivered within %v", what, d)
			}
		}
	}
	deliveredWithin(20*time.Second, "at start")
	var active, standby *meshProc
	meshEventually(t, 10*time.Second, func() error {
		for i, p := range procs[:2] {
			if strings.Contains(p.logs(), "webhook standing by") {
				standby, active = p, procs[1-i]
				return nil
			}
		}
		return errors.New("neither node's webhook stands by")
	})
	for range 20 {
		if err := pub.Publish(t.Context(), "com.example.alert", []any{"fire"}, nil, &client.PublishOptions{Acknowledge: true}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // the deliveries of those 20, and any duplicate
	for len(got) > 0 {
		<-got
	}
	active.kill(t)
	took := deliveredWithin(15*time.Second, "after the active node was killed")
	t.Logf("%s took the webhook over; the first event after the kill was delivered %v after it", standby.name, took.Round(time.Millisecond))
	if !strings.Contains(standby.logs(), "webhook took over the delivery") {
		t.Fatalf("%s delivers without having taken over:\n%s", standby.name, standby.logs())
	}
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	for id, n := range seen {
		if n > 1 {
			t.Fatalf("publication %s delivered %d times", id, n)
		}
	}
	if len(seen) < 22 {
		t.Fatalf("%d publications delivered, want at least 22", len(seen))
	}
}
