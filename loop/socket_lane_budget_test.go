package loop

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// laterLane answers "/later" after a while, on the loop (as the gateway
// answers a call), and every other request at once.
type laterLane struct{}

func (laterLane) Serve(r *http.Request, body []byte, w LaneWriter) bool {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	resp = append(resp, body...)
	if r.URL.Path != "/later" {
		w.Respond(resp, false)
		return true
	}
	time.AfterFunc(50*time.Millisecond, func() {
		_ = w.cn.ls.Execute(func() { w.Respond(resp, false) })
	})
	return true
}

func (laterLane) HandOff(c net.Conn) { c.Close() }

// An HTTP lane request pipelined behind one answered later is counted in
// max_inbound_total while it waits in gnet's buffer (the read callback's
// account); once the answer lets the lane parse and serve it, in a task,
// its bytes are gone and must leave the count too. Before the fix they
// stayed counted (account ran only after a read callback) for as long as
// the keep-alive connection stayed idle: bytes the router no longer held
// took the budget from every other connection's partial messages.
func TestLanePipelinedRequestLeavesInboundBudget(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: laterLane{}}
	})
	c := dialTCP(t, s.url, 0)
	const bodyLen = 200 << 10
	req := []byte("POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nA")
	req = append(req, "POST /now HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(bodyLen)+"\r\n\r\n"...)
	req = append(req, bytes.Repeat([]byte("b"), bodyLen)...)
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	br := bufio.NewReader(c)
	for i, want := range []int{1, bodyLen} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		var n int64
		if n, err = bufio.NewReader(resp.Body).WriteTo(&bytes.Buffer{}); err != nil || n != int64(want) {
			t.Fatalf("response %d: %d bytes, %v", i, n, err)
		}
		resp.Body.Close()
	}
	// Both answered; the connection stays open, idle, holding nothing.
	time.Sleep(100 * time.Millisecond)
	if st, ok := s.e.statOf(t, c); !ok || st.inbound != 0 {
		t.Fatalf("connection open %v, %d bytes buffered", ok, st.inbound)
	}
	if held, _, _ := s.e.Inbound(); held != 0 {
		t.Fatalf("max_inbound_total counts %d bytes for an idle lane connection that holds none", held)
	}
}

// The lane reads a request head of at most max_handshake (Options.
// MaxHandshake, the WebSocket upgrade's limit); a longer one goes to
// net/http with its connection, and the unread input it allows is max_body
// + max_handshake + 64 KiB (README: "over-8-KiB head" said only the
// default). This pins what the README now says; the behaviour is
// unchanged.
func TestLaneHeadLimitIsMaxHandshake(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(o *Options, _ *route.Config) {
		o.MaxHandshake = 1024
		o.Listeners = []Listener{{Addr: "127.0.0.1:0", Transport: HTTPLane}}
		o.Lane = LaneConfig{Lane: laterLane{}}
	})
	c := dialTCP(t, s.url, 0)
	req := "GET /now HTTP/1.1\r\nHost: x\r\nX-Pad: " + string(bytes.Repeat([]byte("p"), 2000)) + "\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, c, ioTimeout) // laterLane's HandOff closes it
	eventually(t, ioTimeout, "the hand-off of the connection whose head is over max_handshake", func() bool {
		return s.e.Stats().LaneCloses[CloseHandOff] == 1
	})
}
