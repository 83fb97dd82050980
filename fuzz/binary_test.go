package fuzz

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// Helpers for the hostile-peer tests that drive the built router binary:
// a process boundary, so that a crash is seen as a crash and the router's
// memory as its own.

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// routerBinary builds cmd/edgewamp once per test process.
func routerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edgewamp-hostile-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "edgewamp")
		out, err := exec.Command("go", "build", "-o", builtBin, "github.com/edgewamp/edgewamp/cmd/edgewamp").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// hostileConfig is the router's configuration in these tests: small limits,
// so that hostile peers reach them within seconds.
const hostileConfig = `
log: {level: info, format: text}
loops: 2
listeners:
  - address: 127.0.0.1:0
limits:
  max_message: 1MiB
  max_inbound_total: 64MiB
  handshake_timeout: 3s
  hello_timeout: 3s
  high_water: 64KiB
  hard_limit: 512KiB
  max_outbound_total: 32MiB
keepalive: {interval: 2s, timeout: 2s}
realms:
  - name: realm1
    anonymous: true
`

// routerProc is a running router process.
type routerProc struct {
	t     testing.TB
	cmd   *exec.Cmd
	addr  string // host:port of the listener
	pprof string // host:port of -pprof
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan struct{}
	err   error // set when done is closed
}

var (
	listenLine = regexp.MustCompile(`msg=listening address=(\S+)`)
	pprofLine  = regexp.MustCompile(`msg="pprof listening" address=(\S+)`)
)

// startRouterProc writes config into a file and runs `edgewamp run` on it,
// with -pprof on a free port (for forcing a collection before measuring).
func startRouterProc(t testing.TB, config string) *routerProc {
	t.Helper()
	bin := routerBinary(t)
	cfg := filepath.Join(t.TempDir(), "edgewamp.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "-config", cfg, "-pprof", "127.0.0.1:0", "-gateway-listen", "off")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &routerProc{t: t, cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.log.WriteString(line + "\n")
			if m := listenLine.FindStringSubmatch(line); m != nil && r.addr == "" {
				r.addr = m[1]
			}
			if m := pprofLine.FindStringSubmatch(line); m != nil {
				r.pprof = m[1]
			}
			if !signalled && r.addr != "" && r.pprof != "" {
				signalled = true
				close(ready)
			}
			r.mu.Unlock()
		}
		r.err = cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			cmd.Process.Kill()
			<-r.done
		}
	})
	select {
	case <-ready:
	case <-r.done:
		t.Fatalf("edgewamp exited at start: %v\n%s", r.err, r.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("edgewamp did not start\n%s", r.logs())
	}
	return r
}

func (r *routerProc) logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.log.String()
	if len(s) > 20000 {
		s = "...\n" + s[len(s)-20000:]
	}
	return s
}

// alive fails the test if the router process has exited.
func (r *routerProc) alive() {
	r.t.Helper()
	select {
	case <-r.done:
		r.t.Fatalf("the router process died: %v\n%s", r.err, r.logs())
	default:
	}
}

// waitAlive fails the test if the router process exits within a moment:
// for when a connection to it failed.
func (r *routerProc) waitAlive() {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(500 * time.Millisecond):
	}
	r.alive()
}

// rss returns the router's resident set size.
func (r *routerProc) rss() int64 {
	r.t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(r.cmd.Process.Pid) + "/status")
	if err != nil {
		r.t.Fatalf("reading the router's status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	r.t.Fatal("no VmRSS")
	return 0
}

// collect has the router run a garbage collection (through -pprof's heap
// profile with gc=1), so that what its heap freed can go back to the OS.
func (r *routerProc) collect() {
	r.t.Helper()
	resp, err := http.Get("http://" + r.pprof + "/debug/pprof/heap?gc=1")
	if err != nil {
		r.waitAlive()
		r.t.Fatalf("forcing a collection: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// dial opens a session with the client package.
func (r *routerProc) dial(t testing.TB, scheme string, ser proto.Serializer) *client.Session {
	t.Helper()
	url := scheme + "://" + r.addr
	if scheme == "ws" {
		url += "/ws"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: url, Realm: "realm1", Serializer: ser})
	if err != nil {
		t.Fatalf("dial %s: %v\n%s", url, err, r.logs())
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// ---- raw peers ----

// rawConn is a raw connection speaking WebSocket or RawSocket by hand.
type rawConn struct {
	c   net.Conn
	ws  bool
	ser proto.Serializer
}

// dialRawConn connects and completes the transport handshake (no HELLO).
// It reports nothing to a testing.TB: hostile clients run on goroutines
// and their failures are expected.
func dialRawConn(addr string, ws bool, ser proto.Serializer, rcvBuf int) (*rawConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if rcvBuf > 0 {
		c.(*net.TCPConn).SetReadBuffer(rcvBuf)
	}
	rc := &rawConn{c: c, ws: ws, ser: ser}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if !ws {
		if _, err := c.Write([]byte{0x7f, 0xf0 | byte(ser), 0, 0}); err != nil {
			c.Close()
			return nil, err
		}
		var b [4]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[1]&0x0f != byte(ser) {
			c.Close()
			return nil, fmt.Errorf("rawsocket handshake: % x %v", b, err)
		}
		return rc, nil
	}
	req := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Protocol: " + ser.Subprotocol(false) + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	var hdr []byte
	var b [1]byte
	for !bytes.HasSuffix(hdr, []byte("\r\n\r\n")) { // byte by byte: frames may follow
		if _, err := c.Read(b[:]); err != nil || len(hdr) > 4096 {
			c.Close()
			return nil, fmt.Errorf("upgrade: %v", err)
		}
		hdr = append(hdr, b[0])
	}
	if !bytes.HasPrefix(hdr, []byte("HTTP/1.1 101")) {
		c.Close()
		return nil, fmt.Errorf("upgrade: %q", hdr)
	}
	return rc, nil
}

// msg frames one WAMP message.
func (rc *rawConn) msg(m *proto.Message) []byte {
	b, _ := proto.Append(nil, rc.ser, m)
	if !rc.ws {
		return rsFrame(0, b)
	}
	op := byte(0x2)
	if rc.ser == proto.JSON {
		op = 0x1
	}
	return wsFrame(0x80|op, b)
}

// ping frames a transport-level ping.
func (rc *rawConn) ping(p []byte) []byte {
	if rc.ws {
		return wsFrame(0x89, p[:min(len(p), 125)])
	}
	return rsFrame(1, p)
}

// hello is a HELLO for realm1 with every role.
func (rc *rawConn) hello() []byte {
	return rc.msg(&proto.Message{Type: proto.CodeHello, URI: []byte("realm1"), Dict: rc.value(map[string]any{
		"roles": map[string]any{"caller": map[string]any{}, "callee": map[string]any{},
			"publisher": map[string]any{}, "subscriber": map[string]any{}}})})
}

func (rc *rawConn) value(v any) proto.Raw {
	r, _ := proto.EncodeValue(rc.ser, v)
	return r
}

// reset closes with an RST.
func (rc *rawConn) reset() {
	rc.c.(*net.TCPConn).SetLinger(0)
	rc.c.Close()
}

// drain reads and discards until the router closes or d passes.
func (rc *rawConn) drain(d time.Duration) {
	rc.c.SetReadDeadline(time.Now().Add(d))
	io.Copy(io.Discard, rc.c)
}

func rsFrame(typ byte, p []byte) []byte {
	n := len(p)
	return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, p...)
}

// wsFrame builds a masked client frame with first octet b0.
func wsFrame(b0 byte, p []byte) []byte {
	out := []byte{b0}
	switch n := len(p); {
	case n <= 125:
		out = append(out, 0x80|byte(n))
	case n <= 0xffff:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	var key [4]byte
	rand.Read(key[:])
	out = append(out, key[:]...)
	start := len(out)
	out = append(out, p...)
	for i := range p {
		out[start+i] ^= key[i%4]
	}
	return out
}
