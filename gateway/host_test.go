package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// rawRequest sends one request naming host over a fresh connection to the
// gateway's port and returns the status and body.
func (e *env) rawRequest(method, path, host, body string) (int, string) {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(e.base, "http://"), 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n"
	if body != "" {
		req += "Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"+body); err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		e.t.Fatalf("%s %s (Host %s): %v", method, path, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A web page whose name its attacker pointed at 127.0.0.1 (DNS
// rebinding) reads the gateway's answers as its own origin's: its
// same-origin GETs carry no Origin header, only the attacker's host name.
// A gateway on loopback answers only requests that name an IP address,
// localhost, or a host it was told about.
func TestRebindingHostRefused(t *testing.T) {
	e := newEnv(t, nil)
	port := e.gw.Addr().(*net.TCPAddr).Port
	p := strconv.Itoa(port)
	s := e.dial("realm1", proto.JSON)
	e.register(s, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})

	for _, host := range []string{"attacker.example:" + p, "attacker.example", "ATTACKER.example.:" + p, "127.0.0.1.nip.io:" + p} {
		for _, rq := range []struct{ method, path, body string }{
			{"GET", "/openapi.json", ""},
			{"GET", "/healthz", ""},
			{"GET", "/wamp/realm1/events/com.topic", ""},
			{"POST", "/wamp/realm1/call/com.echo", `{"args":[1]}`}, // the event loop's lane hands it over
			{"GET", "/metrics", ""},
		} {
			st, body := e.rawRequest(rq.method, rq.path, host, rq.body)
			if st != http.StatusForbidden || !strings.Contains(body, "gateway.hosts") || !strings.Contains(body, proto.URINotAuthorized) {
				t.Errorf("%s %s, Host %s: %d %s, want 403 naming gateway.hosts", rq.method, rq.path, host, st, body)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:" + p, "localhost:" + p, "LocalHost", "app.localhost:" + p, "[::1]:" + p, "127.0.0.2", ""} {
		if st, body := e.rawRequest("GET", "/healthz", host, ""); st != http.StatusOK {
			t.Errorf("GET /healthz, Host %q: %d %s, want 200", host, st, body)
		}
		if st, body := e.rawRequest("POST", "/wamp/realm1/call/com.echo", host, `{"args":[7]}`); st != http.StatusOK || !strings.Contains(body, `"args":[7]`) {
			t.Errorf("POST call, Host %q: %d %s, want 200 with the echo", host, st, body)
		}
	}
}

// Names the operator lists (a reverse proxy on the same host that passes
// its clients' Host on), and the OAuth2 issuer's (KnownHosts), are served.
func TestHostsListed(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Hosts = []string{"edge.example.com", "*.site.example"}
		o.KnownHosts = []string{"auth.example.org"}
	})
	for host, want := range map[string]int{
		"edge.example.com":      200,
		"Edge.Example.Com:443":  200,
		"a.site.example":        200,
		"b.a.site.example":      200,
		"auth.example.org":      200,
		"site.example":          403,
		"evilsite.example":      403,
		"edge.example.com.evil": 403,
		"192.0.2.7:8080":        200,
	} {
		if st, body := e.rawRequest("GET", "/healthz", host, ""); st != want {
			t.Errorf("Host %q: %d %s, want %d", host, st, body, want)
		}
	}

	all := newEnv(t, func(o *Options) { o.Hosts = []string{"*"} })
	if st, body := all.rawRequest("GET", "/healthz", "anything.example", ""); st != 200 {
		t.Errorf("hosts [*]: %d %s, want 200", st, body)
	}
	known := newEnv(t, func(o *Options) { o.KnownHosts = []string{"auth.example.org"} })
	if st, body := known.rawRequest("GET", "/healthz", "auth.example.org", ""); st != 200 {
		t.Errorf("the issuer's host: %d %s, want 200", st, body)
	}
	if st, body := known.rawRequest("GET", "/healthz", "other.example.org", ""); st != 403 {
		t.Errorf("another host: %d %s, want 403", st, body)
	}
}

// Which requests are checked: with Hosts empty, only those arriving on a
// loopback address (a LAN gateway reached by its own name works
// unconfigured); with Hosts set, all.
func TestHostCheckScope(t *testing.T) {
	def, errs := newHostPolicy(nil, []string{"auth.example.org"})
	set, _ := newHostPolicy([]string{"edge.example.com"}, nil)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	lan := &net.TCPAddr{IP: net.IPv4(192, 168, 1, 10), Port: 8080}
	lo6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 8080}
	if def.checks(lan) || !def.checks(lo6) || !def.checks(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}) {
		t.Error("default policy: LAN addresses must be unchecked, loopback checked")
	}
	if !set.checks(lan) || !set.checks(lo6) {
		t.Error("with hosts set, every address is checked")
	}
}

func TestHostsConfigErrors(t *testing.T) {
	r, err := newTestRouter()
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Addr: "127.0.0.1:0", Router: r, Logger: testLogger(), Hosts: []string{"ok.example", "edge.example:8080", "a b"}})
	if err == nil || !strings.Contains(err.Error(), "gateway.hosts[1]") || !strings.Contains(err.Error(), "gateway.hosts[2]") || strings.Contains(err.Error(), "hosts[0]") {
		t.Fatalf("err = %v, want gateway.hosts[1] and [2] named", err)
	}
}
