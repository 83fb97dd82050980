package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// openFDs counts the descriptors process pid holds.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestPprofConnectionsBounded: the -pprof server took every connection
// and kept one that sent nothing for ever (http.Serve: no timeout, no
// bound), each a descriptor and a goroutine of the router's, outside the
// connections' budget, in the 64 descriptors the open-file limit keeps for
// the rest of the process (the gateway, NATS, JetStream's and the OAuth2
// state's files). Now it holds at most pprofMaxConns connections, and
// closes one whose request has not come within pprofHeaderTimeout.
func TestPprofConnectionsBounded(t *testing.T) {
	r := launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-pprof", "127.0.0.1:0"))
	m := regexp.MustCompile(`msg="pprof listening" address=(\S+)`).FindStringSubmatch(r.logs())
	if m == nil {
		t.Fatalf("no pprof address in the log:\n%s", r.logs())
	}
	pid := r.cmd.Process.Pid
	before := openFDs(t, pid)
	var conns []net.Conn
	for range 64 {
		c, err := net.Dial("tcp", m[1])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	time.Sleep(300 * time.Millisecond) // for the router to accept them
	if held := openFDs(t, pid) - before; held > pprofMaxConns+2 {
		t.Fatalf("64 idle connections to -pprof hold %d descriptors of the router, want at most %d", held, pprofMaxConns)
	}
	conns[0].SetReadDeadline(time.Now().Add(pprofHeaderTimeout + 2*time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("an idle connection to -pprof: %v, want it closed (EOF) after %v", err, pprofHeaderTimeout)
	}
	for _, c := range conns {
		c.Close()
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + m[1] + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /debug/pprof/: %s", resp.Status)
	}
}

// TestPprofNotLoopbackWarned: -pprof on an address that is not loopback
// (every interface counts) serves the profiles, which take no credential,
// to whoever reaches it: run says so. Before, it said nothing.
func TestPprofNotLoopbackWarned(t *testing.T) {
	const warning = "pprof: listening on an address that is not loopback"
	r := launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-pprof", "0.0.0.0:0"))
	r.waitLog("edgewamp started", 1)
	if !regexp.MustCompile(`level=WARN msg="` + warning + `.*address=0\.0\.0\.0:0`).MatchString(r.logs()) {
		t.Fatalf("-pprof 0.0.0.0:0 was not warned of:\n%s", r.logs())
	}
	r = launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-pprof", "localhost:0"))
	r.waitLog("edgewamp started", 1)
	if regexp.MustCompile(warning).MatchString(r.logs()) {
		t.Fatalf("-pprof localhost:0 was warned of:\n%s", r.logs())
	}
}

// TestPprofRefusesWebPages: the -pprof server on loopback answered any
// request, so a web page in a browser on the router's host (or on an
// operator's machine with the SSH tunnel README suggests) could use it:
// with a name its DNS then points at 127.0.0.1 (DNS rebinding) it read
// the answers as its own origin's (the command line, with any credential
// in mesh URLs; goroutine dumps), and any page could start a CPU profile
// or a trace of any length with an <img> (no answer to read needed).
// Now a request that names a host other than an IP address or localhost,
// or that a browser marks as coming from another site (an Origin header,
// Sec-Fetch-Site cross-site or same-site), is refused 403; go tool pprof,
// curl and a browser's own navigation are served as before.
func TestPprofRefusesWebPages(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		t.Run(addr, func(t *testing.T) { pprofRefusesWebPages(t, addr) })
	}
}

// pprofRefusesWebPages is TestPprofRefusesWebPages with -pprof addr,
// reached on 127.0.0.1 (every interface, warned of, is reached on
// loopback too).
func pprofRefusesWebPages(t *testing.T, addr string) {
	r := launch(t, exec.Command(binPath, "run", "-listen", "127.0.0.1:0", "-pprof", addr))
	m := regexp.MustCompile(`msg="pprof listening" address=(\S+)`).FindStringSubmatch(r.logs())
	if m == nil {
		t.Fatalf("no pprof address in the log:\n%s", r.logs())
	}
	_, port, _ := net.SplitHostPort(m[1])
	m[1] = "127.0.0.1:" + port
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(host string, hdr ...string) int {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+m[1]+"/debug/pprof/cmdline", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		name string
		host string
		hdr  []string
		want int
	}{
		{"go tool pprof by address", m[1], nil, 200},
		{"by localhost", "localhost:" + port, nil, 200},
		{"by [::1]", "[::1]:" + port, nil, 200},
		{"a browser's own navigation", m[1], []string{"Sec-Fetch-Site", "none"}, 200},
		{"same origin", m[1], []string{"Sec-Fetch-Site", "same-origin"}, 200},
		{"DNS rebinding", "rebind.attacker.example:" + port, nil, 403},
		{"DNS rebinding, no port", "rebind.attacker.example", nil, 403},
		{"a page's <img>", m[1], []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"a sibling site's page", m[1], []string{"Sec-Fetch-Site", "same-site"}, 403},
		{"a page's fetch", m[1], []string{"Origin", "http://attacker.example"}, 403},
	} {
		if got := get(c.host, c.hdr...); got != c.want {
			t.Errorf("%s (Host %s, %v): %d, want %d", c.name, c.host, c.hdr, got, c.want)
		}
	}
}
