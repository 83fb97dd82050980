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

// reloadStuckLine is route's warning when a reload's wait for the event
// loops' re-check of the sessions ends (reloadWait, 5 s): the end of a
// reload that loops which do not answer held.
const reloadStuckLine = "reload: the event loops have not re-checked"

// longReload starts the test-hook router with a session, wedges its event
// loops (SIGUSR2) and sends SIGHUP: the reload waits for the loops'
// re-check of the sessions, 5 s (route's reloadWait), as a reload does
// against loops that do not answer, or behind a slow gateway or OAuth2
// step. It returns once the reload runs.
func longReload(t *testing.T) *router {
	t.Helper()
	cfg := writeFile(t, "longreload.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1}]\nshutdown:\n  drain_timeout: 2s\n")
	r := launch(t, exec.Command(hookBinary(t), "run", "-config", cfg))
	r.waitLog("test hook: SIGUSR2 wedges the event loops", 1)
	s := r.dial("rs://"+r.addr, proto.MsgPack)
	t.Cleanup(func() { s.Close() })
	if err := r.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	r.waitLog("test hook: event loops wedged", 1)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the reload waits for the loops (5 s)
	return r
}

// TestStopDuringLongReloadNotHeldByIt: a SIGTERM that comes while a
// reload takes long (here the event loops' re-check of the sessions, held
// 5 s by loops that do not answer) is logged at once, and the stop goes
// on before the reload ends. Before, the signal loop ran the reload
// itself: the SIGTERM was neither logged nor acted on until the reload
// ended, and an operator's second SIGTERM, sent as the first seemed
// ignored, then ended the router at once, without a drain.
func TestStopDuringLongReloadNotHeldByIt(t *testing.T) {
	r := longReload(t)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.waitLog("shutting down", 1)
	logs := r.logs()
	at := func(s string) int {
		if i := strings.Index(logs, s); i >= 0 {
			return i
		}
		return len(logs)
	}
	if at(reloadStuckLine) < at("shutting down") {
		t.Errorf("the stop began only once the reload had ended:\n%s", lastLines(logs, 8))
	}
	if at("stop signal during a reload") > at("shutting down") {
		t.Errorf("no line naming the stop signal the reload held, before the stop:\n%s", lastLines(logs, 8))
	}
	// The loops released: the stop ends as a stop does.
	if err := r.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, lastLines(r.logs(), 12))
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM\n%s", lastLines(r.logs(), 12))
	}
}

// TestSecondStopDuringLongReloadExitsAtOnce: the documented second
// SIGTERM ("exits at once, status 1") holds while a stop waits for a
// reload.
func TestSecondStopDuringLongReloadExitsAtOnce(t *testing.T) {
	r := longReload(t)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r.waitLog("stop signal during a reload", 1)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err == nil {
			t.Fatalf("exit status 0 after a second SIGTERM, want 1\n%s", lastLines(r.logs(), 8))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after a second SIGTERM\n%s", lastLines(r.logs(), 8))
	}
	if !strings.Contains(r.logs(), "second stop signal") {
		t.Fatalf("no line for the second signal:\n%s", lastLines(r.logs(), 8))
	}
}

// TestStopDuringReloadGatewayDrainFromSignal: README ("Commands"): a stop
// that comes during a reload waits for it a second at most, out of the
// drain, so that a stop stays within the drain (5 s at least with the
// gateway on) plus 15 s of its signal. The calls' drain counted from the
// signal, but the gateway's drain deadline (the gateway's requests in
// progress, 5 s at least) counted from after that wait: here, with
// drain_timeout 2s, a gateway request whose body never comes and a reload
// held by event loops that do not answer (the test hook), the gateway's
// drain ended 6 s after the signal, and the stop, whose sessions' window
// counts from it, 16 s after (timed by the router's own lines).
func TestStopDuringReloadGatewayDrainFromSignal(t *testing.T) {
	cfg := writeFile(t, "gwreloadstop.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1}]\nshutdown:\n  drain_timeout: 2s\n"+
		"gateway:\n  listen: 127.0.0.1:0\n  event_loop: false\n  limits: {body_timeout: 30s}\n")
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
	// A request whose body never comes: its head is read (the
	// connection is active, not one the drain closes as idle), and the
	// gateway's drain waits for it to its deadline.
	if _, err := hc.Write([]byte("GET /healthz HTTP/1.1\r\nHost: " + gw + "\r\nContent-Length: 100\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	r.waitLog("test hook: event loops wedged", 1)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the reload waits for the loops (5 s)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("still running 40 s after SIGTERM\n%s", r.logs())
	}
	logs := r.logs()
	if !strings.Contains(logs, `msg="gateway shutdown"`) || !strings.Contains(logs, "has not ended") {
		t.Fatalf("the gateway's drain did not reach its deadline, or the stop did not wait for the reload:\n%s", lastLines(logs, 14))
	}
	begin, gwEnd, end := logTime(t, logs, "stop signal during a reload"), logTime(t, logs, `msg="gateway shutdown"`), logTime(t, logs, `msg="edgewamp stopped"`)
	t.Logf("from the signal: the gateway's drain %v, the stop %v", gwEnd.Sub(begin), end.Sub(begin))
	// 5 s and 15 s, with half a second for a loaded machine.
	if d := gwEnd.Sub(begin); d > 5500*time.Millisecond {
		t.Errorf("the gateway's drain ended %v after the stop signal, want 5 s (its minimum, counted from the signal as the drain is)\n%s", d, lastLines(logs, 14))
	}
	if d := end.Sub(begin); d > 15500*time.Millisecond {
		t.Errorf("the stop took %v from its signal, want 15 s at most (the gateway's 5 s plus the sessions' 10 s)\n%s", d, lastLines(logs, 14))
	}
}
