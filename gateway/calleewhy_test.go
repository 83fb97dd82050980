package gateway

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// TestCalleeUpstreamFailureLogged: an HTTP callee whose upstream cannot
// be reached (here a TLS upstream whose certificate is not trusted) fails
// its calls with wamp.error.network_failure and "the HTTP upstream
// failed", which rightly names neither the URL nor the error to the
// caller; the operator gets them in a warning, at most one line per
// rejectLogEvery per callee, the next counting those not logged. Before,
// the line was at debug level only: at the default level a callee that
// failed every call logged nothing.
func TestCalleeUpstreamFailureLogged(t *testing.T) {
	untrusted := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0) // its handshakes fail
	untrusted.StartTLS()
	defer untrusted.Close()
	var logs lockedBuf
	e := newEnv(t, func(o *Options) {
		o.Logger = logs.logger() // info and above, as the binary's default
		o.Callees = []Callee{{Name: "inventory", Realm: "realm1", Procedure: "com.inventory", URL: untrusted.URL + "/rpc?token=s3cret"}}
	})
	admin := e.dial("realm1", proto.JSON)
	waitRegistered(t, admin, "com.inventory")
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "callee=inventory ") && strings.Contains(l, "upstream") {
				out = append(out, l)
			}
		}
		return out
	}
	for i := 0; i < 3; i++ {
		resp, body := e.do("POST", "/wamp/realm1/call/com.inventory", `{}`)
		p := expectProblem(t, resp, body, resp.StatusCode, proto.URINetworkFailure)
		if strings.Contains(p.Detail, "certificate") || strings.Contains(string(body), "s3cret") {
			t.Fatalf("the caller was told the upstream's error or URL: %s", body)
		}
	}
	got := lines()
	if len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "certificate") || strings.Contains(got[0], "s3cret") {
		t.Fatalf("want one warning naming the certificate error (and not the URL's query), got %d:\n%s", len(got), strings.Join(got, "\n"))
	}
	c := e.gw.runners.Load().callees[0]
	c.failLogAt.Add(-int64(rejectLogEvery))
	e.do("POST", "/wamp/realm1/call/com.inventory", `{}`)
	if got := lines(); len(got) != 2 || !strings.Contains(got[1], "unlogged=2") {
		t.Fatalf("the next line does not count the 2 failures not logged:\n%s", strings.Join(got, "\n"))
	}
}
