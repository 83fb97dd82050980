package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Interoperability tests: real third-party WAMP clients against the built
// router binary, one fresh router per test.
//
//   - Autobahn|JS 22.11.1 and wampy 8.0.2 (Node, testdata/interop/node_modules
//     from `npm ci` there)
//   - Autobahn|Python 22.7.1 (Debian's python3-autobahn, asyncio, run by
//     /usr/bin/python3 or $EDGEWAMP_INTEROP_PYTHON)
//
// Each script prints one JSON object per line (see testdata/interop/
// harness.js): {"check","ok","detail"} per result, {"ready":true} when a
// peer is set up, {"done":true,...} last. A test fails on every failed
// check, a missing "done" line or a non-zero exit. A missing client skips
// the test, unless EDGEWAMP_REQUIRE_INTEROP is set (CI sets it), which makes
// it fail instead. .ci/setup installs the clients.

const interopDir = "testdata/interop"

// interopTimeout bounds one test (all its processes).
const interopTimeout = 60 * time.Second

type interopProc struct {
	label string   // shown in failures, e.g. "wampy ws/cbor"
	argv  []string // command line, run in interopDir
	// peer processes start first, one after the other, each waiting for its
	// {"ready":true} line; they run until the test publishes interop.stop.
	// The others (drivers) then run concurrently to completion.
	peer bool
	env  []string // added to the test's environment
}

type interopCase struct {
	name  string
	needs []string // "node", "python"
	procs func(addr string) []interopProc
	// sigterm ends the peers by stopping the router with SIGTERM instead of
	// publishing interop.stop, and requires the router to exit 0.
	sigterm bool
}

func pythonBin() string {
	if p := os.Getenv("EDGEWAMP_INTEROP_PYTHON"); p != "" {
		return p
	}
	// Debian's interpreter: python3-autobahn, -msgpack and -cbor2 are
	// installed for it, not for whatever python3 comes first on PATH.
	return "/usr/bin/python3"
}

func ajs(addr, transport, ser, mode string, extra ...string) interopProc {
	argv := []string{"node", "autobahn_js.js"}
	if transport == "rs" {
		argv = append(argv, "--rawsocket", addr)
	} else {
		argv = append(argv, "--url", "ws://"+addr+"/ws", "--serializer", ser)
	}
	argv = append(argv, "--mode", mode)
	return interopProc{label: fmt.Sprintf("autobahn-js %s/%s %s", transport, ser, mode), argv: append(argv, extra...)}
}

func wampy(addr, ser, mode string, extra ...string) interopProc {
	argv := []string{"node", "wampy_js.mjs", "--url", "ws://" + addr + "/ws", "--serializer", ser, "--mode", mode}
	return interopProc{label: fmt.Sprintf("wampy ws/%s %s", ser, mode), argv: append(argv, extra...)}
}

func abpy(addr, transport, ser, mode string, extra ...string) interopProc {
	url := "ws://" + addr + "/ws"
	if transport == "rs" {
		url = "rs://" + addr
	}
	argv := []string{pythonBin(), "autobahn_py.py", "--url", url, "--serializer", ser, "--mode", mode}
	return interopProc{label: fmt.Sprintf("autobahn-py %s/%s %s", transport, ser, mode), argv: append(argv, extra...)}
}

func peer(p interopProc) interopProc { p.peer = true; return p }

func interopCases() []interopCase {
	var cs []interopCase
	// Single-client suites: every feature, all sessions of one client,
	// transport and serializer.
	for _, ser := range []string{"json", "msgpack", "cbor"} {
		ser := ser
		cs = append(cs, interopCase{name: "autobahn-js/ws/" + ser, needs: []string{"node"}, procs: func(a string) []interopProc {
			return []interopProc{ajs(a, "ws", ser, "suite")}
		}})
	}
	// Autobahn|JS speaks RawSocket with JSON only.
	cs = append(cs, interopCase{name: "autobahn-js/rs/json", needs: []string{"node"}, procs: func(a string) []interopProc {
		return []interopProc{ajs(a, "rs", "json", "suite")}
	}})
	for _, ser := range []string{"json", "msgpack", "cbor"} {
		ser := ser
		cs = append(cs, interopCase{name: "wampy/ws/" + ser, needs: []string{"node"}, procs: func(a string) []interopProc {
			return []interopProc{wampy(a, ser, "suite")}
		}})
	}
	for _, tr := range []string{"ws", "rs"} {
		for _, ser := range []string{"json", "msgpack", "cbor"} {
			tr, ser := tr, ser
			cs = append(cs, interopCase{name: "autobahn-py/" + tr + "/" + ser, needs: []string{"python"}, procs: func(a string) []interopProc {
				return []interopProc{abpy(a, tr, ser, "suite")}
			}})
		}
	}
	// Autobahn|Python's batched WebSocket subprotocols (offered first by its
	// WampWebSocketClientFactory and ApplicationRunner when no serializer
	// is given: cbor.batched, then msgpack, ubjson and json, batched
	// before plain). Its JSON batches end each message with 0x18, not the
	// spec's 0x1e (loop/batch.go).
	for _, ser := range []string{"json", "cbor"} {
		ser := ser
		cs = append(cs, interopCase{name: "autobahn-py/ws/" + ser + ".batched", needs: []string{"python"}, procs: func(a string) []interopProc {
			p := abpy(a, "ws", ser, "suite", "--batched")
			p.label += " batched"
			return []interopProc{p}
		}})
	}

	// What the suites do not reach (x-extras): testaments, retained events
	// replayed to pattern subscriptions, the registration and subscription
	// meta events' arguments, the first/last/random policies, the meta
	// list/match/get procedures (Autobahn|Python); a subscription revoked by
	// remove_subscriber, a testament with positional publish options, a
	// RawSocket session announcing 512 bytes (Autobahn|JS).
	for _, c := range [][3]string{{"py", "ws", "json"}, {"py", "rs", "msgpack"}, {"py", "ws", "cbor"}, {"js", "ws", "msgpack"}, {"js", "rs", "json"}} {
		c := c
		if c[0] == "py" {
			cs = append(cs, interopCase{name: "extras/autobahn-py/" + c[1] + "/" + c[2], needs: []string{"python"}, procs: func(a string) []interopProc {
				return []interopProc{abpy(a, c[1], c[2], "x-extras")}
			}})
			continue
		}
		cs = append(cs, interopCase{name: "extras/autobahn-js/" + c[1] + "/" + c[2], needs: []string{"node"}, procs: func(a string) []interopProc {
			return []interopProc{ajs(a, c[1], c[2], "x-extras")}
		}})
	}

	// Cross-client scenarios.
	cs = append(cs,
		// Byte strings between a JSON session ("\0"+base64 on the wire) and
		// MsgPack and CBOR sessions (native binary), in both directions,
		// for events and call arguments and results.
		interopCase{name: "cross/binary-json-msgpack-cbor", needs: []string{"node", "python"}, procs: func(a string) []interopProc {
			return []interopProc{
				peer(abpy(a, "ws", "json", "x-binary-peer", "--expect-from", "autobahn-js-msgpack,wampy-cbor")),
				ajs(a, "ws", "msgpack", "x-binary"),
				wampy(a, "cbor", "x-binary"),
			}
		}},
		// JSON caller (wampy) -> MsgPack callee (Python, RawSocket) which
		// publishes the arguments -> CBOR subscriber (Autobahn|JS).
		interopCase{name: "cross/mixed-json-caller-msgpack-callee-cbor-subscriber", needs: []string{"node", "python"}, procs: func(a string) []interopProc {
			return []interopProc{
				peer(ajs(a, "ws", "cbor", "x-mixed-sub")),
				peer(abpy(a, "rs", "msgpack", "x-mixed-callee")),
				wampy(a, "json", "x-mixed-caller"),
			}
		}},
		// Python callee (RawSocket/CBOR, supports call canceling) with
		// Autobahn|JS and wampy callers: args/kwargs, errors both ways,
		// progressive results, every cancel mode, timeouts; a wampy
		// subscriber of the callee's events.
		interopCase{name: "cross/rpc-python-callee-js-callers", needs: []string{"node", "python"}, procs: func(a string) []interopProc {
			return []interopProc{
				peer(abpy(a, "rs", "cbor", "x-rpc-callee")),
				peer(wampy(a, "json", "x-rpc-sub", "--expect-from", "autobahn-js-json,wampy-msgpack")),
				ajs(a, "ws", "json", "x-rpc"),
				wampy(a, "msgpack", "x-rpc"),
			}
		}},
		// One roundrobin registration shared by a Python and a wampy callee,
		// called over Autobahn|JS RawSocket; meta API over both callees; a
		// retained event from Python read by wampy and Autobahn|JS.
		interopCase{name: "cross/shared-registration-retained-meta", needs: []string{"node", "python"}, procs: func(a string) []interopProc {
			return []interopProc{
				peer(abpy(a, "ws", "msgpack", "x-shared-peer")),
				peer(wampy(a, "cbor", "x-shared-peer")),
				ajs(a, "rs", "json", "x-shared"),
			}
		}},
		// SIGTERM: every client, on every transport, is told GOODBYE
		// wamp.close.system_shutdown, answers it, and the router exits 0.
		interopCase{name: "cross/sigterm-goodbye", needs: []string{"node", "python"}, sigterm: true, procs: func(a string) []interopProc {
			return []interopProc{
				peer(ajs(a, "ws", "cbor", "x-shutdown")),
				peer(ajs(a, "rs", "json", "x-shutdown")),
				peer(wampy(a, "msgpack", "x-shutdown")),
				peer(abpy(a, "ws", "json", "x-shutdown")),
				peer(abpy(a, "rs", "cbor", "x-shutdown")),
			}
		}},
		// Call timeouts run from the CALL, to the millisecond scale: the
		// router once took them from a coarse clock up to a second stale and
		// checked them only when its ticker next woke, so a call timed out
		// anywhere from at once to a second late.
		interopCase{name: "regression/call-timeout-accuracy", needs: []string{"node"}, procs: func(a string) []interopProc {
			return []interopProc{ajs(a, "ws", "json", "timeout-accuracy")}
		}},
	)
	return cs
}

func TestInterop(t *testing.T) {
	for _, c := range interopCases() {
		c := c
		t.Run(c.name, func(t *testing.T) {
			interopNeeds(t, c.needs...)
			t.Parallel()
			runInterop(t, c)
		})
	}
}

// ---------------------------------------------------------------- prerequisites

var interopAvail struct {
	once sync.Once
	node error
	py   error
}

func interopProbe() {
	interopAvail.once.Do(func() {
		interopAvail.node = func() error {
			if _, err := exec.LookPath("node"); err != nil {
				return fmt.Errorf("node is not on PATH")
			}
			for _, m := range []string{"autobahn", "wampy", "ws", "msgpack5", "cbor", "msgpackr", "cbor-x"} {
				if _, err := os.Stat(filepath.Join(interopDir, "node_modules", m, "package.json")); err != nil {
					return fmt.Errorf("%s/node_modules/%s is missing (run `npm ci` in %s, or .ci/setup)", interopDir, m, interopDir)
				}
			}
			return nil
		}()
		interopAvail.py = func() error {
			py := pythonBin()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, py, "-c", "import autobahn, txaio, msgpack, cbor2; print(autobahn.__version__)").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s cannot import autobahn, txaio, msgpack and cbor2 (apt-get install python3-autobahn python3-msgpack python3-cbor2, or .ci/setup): %v: %s", py, err, bytes.TrimSpace(out))
			}
			return nil
		}()
	})
}

func interopNeeds(t *testing.T, needs ...string) {
	t.Helper()
	interopProbe()
	for _, n := range needs {
		var err error
		switch n {
		case "node":
			err = interopAvail.node
		case "python":
			err = interopAvail.py
		}
		if err == nil {
			continue
		}
		if os.Getenv("EDGEWAMP_REQUIRE_INTEROP") != "" {
			t.Fatalf("interop client not installed and EDGEWAMP_REQUIRE_INTEROP is set: %v", err)
		}
		t.Skipf("interop client not installed (set EDGEWAMP_REQUIRE_INTEROP=1 to fail instead): %v", err)
	}
}

// ---------------------------------------------------------------- running

type interopCheck struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// interopRun is one process of a test.
type interopRun struct {
	p      interopProc
	cmd    *exec.Cmd
	ready  chan struct{}
	exited chan struct{}
	err    error // of Wait, valid once exited is closed

	mu     sync.Mutex
	checks []interopCheck
	done   bool
	other  []string // stdout lines that are not protocol lines
	stderr bytes.Buffer
}

func (r *interopRun) start(ctx context.Context) error {
	r.ready = make(chan struct{})
	r.exited = make(chan struct{})
	r.cmd = exec.CommandContext(ctx, r.p.argv[0], r.p.argv[1:]...)
	r.cmd.Dir = interopDir
	if len(r.p.env) > 0 {
		r.cmd.Env = append(os.Environ(), r.p.env...)
	}
	r.cmd.Stderr = &lockedWriter{mu: &r.mu, w: &r.stderr}
	r.cmd.WaitDelay = 5 * time.Second
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := r.cmd.Start(); err != nil {
		return err
	}
	go func() {
		var readyOnce sync.Once
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			var m map[string]json.RawMessage
			if json.Unmarshal([]byte(line), &m) != nil {
				r.mu.Lock()
				r.other = append(r.other, line)
				r.mu.Unlock()
				continue
			}
			switch {
			case m["check"] != nil:
				var c interopCheck
				if err := json.Unmarshal([]byte(line), &c); err != nil {
					c = interopCheck{Check: "unparsable check line", Detail: line}
				}
				r.mu.Lock()
				r.checks = append(r.checks, c)
				r.mu.Unlock()
			case m["ready"] != nil:
				readyOnce.Do(func() { close(r.ready) })
			case m["done"] != nil:
				r.mu.Lock()
				r.done = true
				r.mu.Unlock()
			default:
				r.mu.Lock()
				r.other = append(r.other, line)
				r.mu.Unlock()
			}
		}
		io.Copy(io.Discard, stdout)
		r.err = r.cmd.Wait()
		close(r.exited)
	}()
	return nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func runInterop(t *testing.T, c interopCase) {
	rt := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), interopTimeout)
	defer cancel()

	var runs []*interopRun
	var peers, drivers []*interopRun
	for _, p := range c.procs(rt.addr) {
		r := &interopRun{p: p}
		runs = append(runs, r)
		if p.peer {
			peers = append(peers, r)
		} else {
			drivers = append(drivers, r)
		}
	}

	report := func() {
		for _, r := range runs {
			reportInterop(t, r)
		}
		if logs := rt.logs(); strings.Contains(logs, "panic") || strings.Contains(logs, "DATA RACE") {
			t.Errorf("router log shows a panic:\n%s", logs)
		}
		if t.Failed() {
			t.Logf("router log (tail):\n%s", tail(rt.logs(), 40))
		}
	}

	// Peers, one after the other: each must be set up before the next.
	for _, r := range peers {
		if err := r.start(ctx); err != nil {
			t.Fatalf("%s: %v", r.p.label, err)
		}
		select {
		case <-r.ready:
		case <-r.exited:
			report()
			t.Fatalf("%s exited before it was ready", r.p.label)
		case <-ctx.Done():
			report()
			t.Fatalf("%s was not ready within %v", r.p.label, interopTimeout)
		}
	}
	for _, r := range drivers {
		if err := r.start(ctx); err != nil {
			t.Fatalf("%s: %v", r.p.label, err)
		}
	}
	for _, r := range drivers {
		<-r.exited
	}
	if c.sigterm {
		if err := rt.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for _, r := range peers {
			<-r.exited
		}
		select {
		case err := <-rt.done:
			if err != nil {
				t.Errorf("router exit after SIGTERM: %v", err)
			}
		case <-ctx.Done():
			t.Errorf("router did not exit after SIGTERM")
		}
	} else if len(peers) > 0 {
		s := rt.dial("ws://"+rt.addr+"/ws", proto.JSON)
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.Publish(pctx, "interop.stop", nil, nil, &client.PublishOptions{Acknowledge: true})
		pcancel()
		if err != nil {
			t.Errorf("publishing interop.stop: %v", err)
		}
		for _, r := range peers {
			<-r.exited
		}
		s.Close()
	}
	report()
}

func reportInterop(t *testing.T, r *interopRun) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	passed, failed := 0, 0
	for _, c := range r.checks {
		if c.OK {
			passed++
			continue
		}
		failed++
		t.Errorf("%s: check %q failed: %s", r.p.label, c.Check, c.Detail)
	}
	switch {
	case r.err != nil && failed == 0:
		t.Errorf("%s: exited with %v and no failed check (%d passed)\nstdout:\n%s\nstderr (tail):\n%s",
			r.p.label, r.err, passed, strings.Join(r.other, "\n"), tail(r.stderr.String(), 30))
	case !r.done:
		t.Errorf("%s: no final \"done\" line (killed or crashed: %v)\nstderr (tail):\n%s", r.p.label, r.err, tail(r.stderr.String(), 30))
	case passed == 0 && failed == 0:
		t.Errorf("%s: reported no checks", r.p.label)
	case failed > 0:
		t.Logf("%s: %d checks passed, %d failed; stderr (tail):\n%s", r.p.label, passed, failed, tail(r.stderr.String(), 10))
	default:
		t.Logf("%s: %d checks passed", r.p.label, passed)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestInteropMalformedJSONBinary: an Autobahn|Python JSON publisher
// publishes the text "\x00AQI" (sent as the JSON binary string
// "\u0000AQI": unpadded base64) or "\x00A" (no base64 at all), then
// another publisher a valid event. The router passed the first as it came
// to the Autobahn|Python JSON subscriber, whose serializer raised
// binascii.Error and dropped its connection (left
// wamp.close.transport_lost): the valid event was lost, and so was every
// such subscriber of the topic. Now the router refuses the malformed
// PUBLISH (ABORT wamp.error.protocol_violation to its publisher, which
// Autobahn|Python 22.7 takes, after its session is joined, as an
// unexpected message: it reports wamp.close.transport_lost), the
// subscriber stays and gets the valid event.
func TestInteropMalformedJSONBinary(t *testing.T) {
	interopNeeds(t, "python")
	for _, payload := range []string{`\x00AQI`, `\x00A`} {
		rt := startRouter(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, pythonBin(), "json_binary.py", "--url", "ws://"+rt.addr+"/ws", "--payload", payload)
		cmd.Dir = interopDir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatalf("python: %v\n%s\n%s", err, out, stderr.String())
		}
		var res struct {
			Got     []string `json:"got"`
			Left    *string  `json:"left"`
			PubLeft *string  `json:"publisher_left"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("python output %q: %v", out, err)
		}
		if res.Left != nil || len(res.Got) != 1 || res.Got[0] != "('ok',)" {
			left := "<joined>"
			if res.Left != nil {
				left = *res.Left
			}
			t.Errorf("payload %s: the subscriber got %v and its session: %s; want only the valid event ('ok',) and the session kept", payload, res.Got, left)
		}
		if res.PubLeft == nil {
			t.Errorf("payload %s: the publisher's session goes on; want it ended (ABORT wamp.error.protocol_violation)", payload)
		}
	}
}

// TestInteropPayloadPythonCannotDecode: publishers' payloads that the
// router passed as they came to peers of their own serializer and that
// Autobahn|Python could not decode, so that its subscriber lost its
// connection (left wamp.close.transport_lost) and every later event (found by
// review):
//   - JSON: an integer of 5,000 digits (Python 3.11's int() refuses more
//     than 4,300; the router bounded integers, at 8192 bits, only when
//     converting them); one of 2,400 digits (under 8192 bits) is
//     delivered;
//   - CBOR: tag 1 (epoch date) on a text string, or beyond the year 9999
//     (cbor2 raises; the router read every tag but 2 and 3 through).
//
// Each bad PUBLISH is now refused (ABORT wamp.error.protocol_violation, as
// for invalid UTF-8); after each, another session publishes the case's
// name, and last "done": the Autobahn|Python subscriber of each
// serializer must get every name and keep its session. One router and one
// subscriber per serializer, the cases in turn.
func TestInteropPayloadPythonCannotDecode(t *testing.T) {
	interopNeeds(t, "python")
	huge, _ := new(big.Int).SetString(strings.Repeat("1", 5000), 10)
	fine, _ := new(big.Int).SetString(strings.Repeat("1", 2400), 10)
	cases := []struct {
		name string
		ser  proto.Serializer
		arg  any
		ok   bool // delivered, not refused
	}{
		{"json 2400-digit integer", proto.JSON, fine, true},
		{"json 5000-digit integer", proto.JSON, huge, false},
		{"cbor tag 1 on text", proto.CBOR, proto.Raw{Ser: proto.CBOR, B: []byte{0xc1, 0x61, 'x'}}, false},
		{"cbor tag 1 beyond year 9999", proto.CBOR, proto.Raw{Ser: proto.CBOR, B: []byte{0xc1, 0x1b, 0x40, 0, 0, 0, 0, 0, 0, 0}}, false},
	}
	rt := startRouter(t)
	for _, ser := range []proto.Serializer{proto.JSON, proto.CBOR} {
		serName := map[proto.Serializer]string{proto.JSON: "json", proto.CBOR: "cbor"}[ser]
		var want []string
		delivered := 0 // events of cases not refused
		for _, tc := range cases {
			if tc.ser == ser {
				want = append(want, tc.name)
				if tc.ok {
					delivered++
				}
			}
		}
		if len(want) == 0 {
			continue
		}
		t.Run(serName, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, pythonBin(), "bad_payload_sub.py", "--url", "ws://"+rt.addr+"/ws", "--serializer", serName)
			cmd.Dir = interopDir
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			sc := bufio.NewScanner(out)
			if !sc.Scan() || !strings.Contains(sc.Text(), "ready") {
				t.Fatalf("python subscriber not ready: %q\n%s", sc.Text(), stderr.String())
			}
			dial := func() *client.Session {
				s, err := client.Dial(ctx, client.Config{URL: "ws://" + rt.addr + "/ws", Realm: "realm1", Serializer: ser})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			good := dial()
			defer good.Close()
			ack := &client.PublishOptions{Acknowledge: true}
			for _, tc := range cases {
				if tc.ser != ser {
					continue
				}
				s := dial()
				err := s.Publish(ctx, "com.bad", []any{tc.arg}, nil, ack)
				s.Close()
				if (err == nil) != tc.ok {
					t.Errorf("%s: the publish: err %v; want refused: %v", tc.name, err, !tc.ok)
				}
				if err := good.Publish(ctx, "com.bad", []any{tc.name}, nil, ack); err != nil {
					t.Fatalf("%s: the valid publish after it: %v", tc.name, err)
				}
			}
			if err := good.Publish(ctx, "com.bad", []any{"done"}, nil, ack); err != nil {
				t.Fatalf("the last valid publish: %v", err)
			}
			if !sc.Scan() {
				t.Fatalf("no result line from python\n%s", stderr.String())
			}
			var res struct {
				Got  []string `json:"got"`
				Left *string  `json:"left"`
			}
			if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
				t.Fatalf("python output %q: %v", sc.Text(), err)
			}
			var names []string
			for _, g := range res.Got {
				if strings.HasPrefix(g, "('") && !strings.HasPrefix(g, "('done'") {
					names = append(names, strings.TrimSuffix(strings.TrimPrefix(g, "('"), "',)"))
				}
			}
			if res.Left != nil || strings.Join(names, "|") != strings.Join(want, "|") || len(res.Got) != len(want)+delivered+1 {
				left := "<joined>"
				if res.Left != nil {
					left = *res.Left
				}
				t.Errorf("the Autobahn|Python %s subscriber got %q and its session: %s; want the names %q (and %d events of cases delivered), then done, its session kept", serName, res.Got, left, want, delivered)
			}
		})
	}
}

// TestInteropNULTextErrorNamesIt: a MsgPack text string starting with NUL
// has no JSON form (WAMP's JSON reads such a string as binary), so the
// router refuses to pass one to a JSON peer: an Autobahn|Python JSON caller
// of a MsgPack callee's result or progressive result holding "\x00x", and a
// MsgPack caller passing it to a JSON callee, get ERROR
// wamp.error.invalid_argument (the stream's callee INTERRUPT). The error's
// text named NaN, infinity, dates and map keys, but not the text starting
// with NUL that the payload held, so neither side could tell what to fix.
func TestInteropNULTextErrorNamesIt(t *testing.T) {
	interopNeeds(t, "python")
	rt := startRouter(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonBin(), "nul_text.py", "--url", "ws://"+rt.addr+"/ws")
	cmd.Dir = interopDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s\n%s", err, out, tail(stderr.String(), 20))
	}
	type outcome struct {
		Error, Message, Value, Exception string
	}
	var res struct {
		Result, Progress, Argument outcome
		ProgressSeen               []string `json:"progress_seen"`
		Interrupted                bool
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	for _, c := range []struct {
		name string
		o    outcome
	}{{"result", res.Result}, {"progressive result", res.Progress}, {"call argument", res.Argument}} {
		if c.o.Error != "wamp.error.invalid_argument" || !strings.Contains(c.o.Message, "starting with NUL") {
			t.Errorf("%s holding \"\\x00x\": %+v; want ERROR wamp.error.invalid_argument whose text names the text starting with NUL", c.name, c.o)
		}
	}
	if !slices.Equal(res.ProgressSeen, []string{"1"}) || !res.Interrupted {
		t.Errorf("the stream: progress %q, callee interrupted %v; want [1] and interrupted", res.ProgressSeen, res.Interrupted)
	}
}
