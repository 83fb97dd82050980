package main

import (
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestGoodbyeWindowAfterGatewayDrain: README ("Commands"): at a stop the
// gateway's requests in progress may finish within 5 s whatever
// shutdown.drain_timeout, and then every session gets GOODBYE and the
// router waits up to 10 s for them (the last second the event loops' own
// stop). With a drain under 5 s the GOODBYEs waited for the gateway, and
// their window still counted from the drain's end: here, drain_timeout
// 1s and a gateway request whose head never ends (read_header_timeout
// 30s) held the gateway 5 s, and the sessions, on event loops that do
// not answer (the test hook), were given 6 s of their 10 (timed by the
// router's own lines: the gateway's drain deadline, then "edgewamp
// stopped").
func TestGoodbyeWindowAfterGatewayDrain(t *testing.T) {
	cfg := writeFile(t, "gwwindow.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1}]\nshutdown:\n  drain_timeout: 1s\n"+
		"gateway:\n  listen: 127.0.0.1:0\n  event_loop: false\n  limits: {read_header_timeout: 30s}\n")
	r := launch(t, exec.Command(hookBinary(t), "run", "-config", cfg, "-gateway-listen", "127.0.0.1:0"))
	r.waitLog("test hook: SIGUSR2 wedges the event loops", 1)
	s := r.dial("rs://"+r.addr, proto.MsgPack) // a session the GOODBYEs wait for
	defer s.Close()
	r.mu.Lock()
	gw := r.gw
	r.mu.Unlock()
	hc, err := net.DialTimeout("tcp", gw, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	if _, err := hc.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil { // and no more
		t.Fatal(err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	r.waitLog("test hook: event loops wedged", 1)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("still running 40 s after SIGTERM\n%s", r.logs())
	}
	logs := r.logs()
	if !strings.Contains(logs, `msg="gateway shutdown"`) {
		t.Fatalf("the gateway's drain did not reach its deadline (the test's request did not hold it):\n%s", lastLines(logs, 12))
	}
	begin, gwEnd, end := logTime(t, logs, `msg="shutting down"`), logTime(t, logs, `msg="gateway shutdown"`), logTime(t, logs, `msg="edgewamp stopped"`)
	t.Logf("the gateway's drain took %v, the sessions' window after it %v, the stop %v", gwEnd.Sub(begin), end.Sub(gwEnd), end.Sub(begin))
	if w := end.Sub(gwEnd); w < 9*time.Second {
		t.Fatalf("the sessions were given %v after the gateway's drain, want their 10 s window (9 s and the loops' second)\n%s", w, lastLines(logs, 12))
	}
}
