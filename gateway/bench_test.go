package gateway

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// The call path end to end, in one process: lean keep-alive HTTP/1.1
// clients (pre-built request bytes, as bench/cmd/wampbench -scenario
// httpcall sends them) POST /wamp/realm1/call/com.bench.echo to the
// gateway on loopback, through the real router on real event loops, to a
// real WAMP callee (client, MsgPack over WebSocket) that echoes the
// arguments. allocs/op counts the whole process: the gateway, the router,
// net/http, and the callee's and clients' share.
//
//	go test -run '^$' -bench BridgeCall -benchmem -count 10 ./gateway/ | tee new.txt
//	benchstat old.txt new.txt

// benchConn is one keep-alive HTTP/1.1 connection with a fixed request.
type benchConn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
}

// roundTrip sends the request and reads the response; it returns the
// status and the body.
func (h *benchConn) roundTrip() (int, []byte, error) {
	if _, err := h.c.Write(h.req); err != nil {
		return 0, nil, err
	}
	line, err := h.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 {
		return 0, nil, strconv.ErrSyntax
	}
	status, _ := strconv.Atoi(string(line[9:12]))
	n := -1
	for {
		line, err = h.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > 16 && bytes.EqualFold(line[:15], []byte("Content-Length:")) {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(line[15:])))
		}
	}
	if n < 0 {
		return status, nil, strconv.ErrSyntax
	}
	body, err := h.br.Peek(n)
	if err != nil {
		return 0, nil, err
	}
	h.br.Discard(n)
	return status, body, nil
}

func benchBridgeCall(b *testing.B, clients int, ser proto.Serializer) {
	e := newEnv(b, nil)
	callee := e.dial("realm1", ser)
	e.register(callee, "com.bench.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	})
	host := strings.TrimPrefix(e.base, "http://")
	body := `{"args":["` + strings.Repeat("x", 64) + `"]}`
	req := []byte("POST /wamp/realm1/call/com.bench.echo HTTP/1.1\r\nHost: " + host +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	want := `{"args":["` + strings.Repeat("x", 64) + `"],"kwargs":{}}`
	conns := make([]*benchConn, clients)
	for i := range conns {
		c, err := net.Dial("tcp", host)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		conns[i] = &benchConn{c: c, br: bufio.NewReaderSize(c, 16<<10), req: req}
		st, got, err := conns[i].roundTrip()
		if err != nil || st != 200 || string(got) != want {
			b.Fatalf("first call: status %d, %v: %s", st, err, got)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	var next sync.Mutex
	left := b.N
	for _, hc := range conns {
		wg.Add(1)
		go func(hc *benchConn) {
			defer wg.Done()
			for {
				next.Lock()
				if left == 0 {
					next.Unlock()
					return
				}
				left--
				next.Unlock()
				if st, _, err := hc.roundTrip(); err != nil || st != 200 {
					b.Errorf("status %d, %v", st, err)
					return
				}
			}
		}(hc)
	}
	wg.Wait()
}

// BenchmarkBridgeCall is POST /call through the gateway and the router to
// a MsgPack callee, as the end-to-end budget measures it.
func BenchmarkBridgeCall(b *testing.B) {
	b.Run("clients=1", func(b *testing.B) { benchBridgeCall(b, 1, proto.MsgPack) })
	b.Run("clients=16", func(b *testing.B) { benchBridgeCall(b, 16, proto.MsgPack) })
	b.Run("clients=16/json", func(b *testing.B) { benchBridgeCall(b, 16, proto.JSON) })
}
