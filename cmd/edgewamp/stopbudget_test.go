package main

import (
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestStopWithinDrainAndGoodbyeWindow: README ("Commands") promises a stop
// the drain (shutdown.drain_timeout), then up to 10 s for the sessions'
// GOODBYEs, then a mesh node's leave (5 s): the drain plus 15 s, which
// TimeoutStopSec=30s covers. Past the drain's deadline the router spent up
// to a second counting the calls left for its log line before the
// GOODBYEs' 10 s began, the engine's Shutdown gave gnet's stop of the
// loops 10 s of its own after those, and the OAuth2 server's close took up
// to a second after them: with its event loops wedged (the test hook) and
// a session open, a router without a mesh took the drain plus 21 s where
// README allows it 10 (a mesh node 26 s, past TimeoutStopSec at the
// default drain). Timed by the router's own log lines, from "shutting
// down" to "edgewamp stopped".
func TestStopWithinDrainAndGoodbyeWindow(t *testing.T) {
	cfg := writeFile(t, "stopbudget.yaml", "listeners: [{address: \"127.0.0.1:0\"}]\nrealms: [{name: realm1}]\nshutdown:\n  drain_timeout: 1s\n")
	r := launch(t, exec.Command(hookBinary(t), "run", "-config", cfg))
	r.waitLog("test hook: SIGUSR2 wedges the event loops", 1)
	s := r.dial("rs://"+r.addr, proto.MsgPack) // a session the GOODBYEs wait for
	defer s.Close()
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
	begin, end := logTime(t, r.logs(), `msg="shutting down"`), logTime(t, r.logs(), `msg="edgewamp stopped"`)
	// The drain (1 s) and the GOODBYEs' window (10 s), with half a second
	// for the process to be scheduled once the window's deadline passed.
	took := end.Sub(begin)
	t.Logf("the stop took %v", took)
	if took > 11*time.Second+500*time.Millisecond {
		t.Fatalf("the stop took %v with the loops wedged and no mesh, want the drain (1s) plus 10s at most\n%s", took, r.logs())
	}
}

var logTimeRE = regexp.MustCompile(`^time=(\S+)`)

// logTime returns the time of the first log line holding msg.
func logTime(t *testing.T, logs, msg string) time.Time {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		if m := logTimeRE.FindStringSubmatch(line); m != nil {
			at, err := time.Parse(time.RFC3339Nano, m[1])
			if err == nil {
				return at
			}
		}
	}
	t.Fatalf("no timed log line with %s\n%s", msg, logs)
	return time.Time{}
}
