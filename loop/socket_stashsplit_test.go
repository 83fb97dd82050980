package loop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The read path's stash (stash.go) against real sockets: one session's
// whole input — its WebSocket upgrade or RawSocket handshake, HELLO, a
// SUBSCRIBE and publications of every size (a few bytes, a few KiB, just
// under largeMin, which wait in the stash, and over it, which are gathered
// in chunks), with pings and a fragmented message among them — is written
// in pieces cut at random, many of them inside a frame's header, mask key
// or RawSocket length prefix, each piece written apart so that the router
// reads it in a callback of its own (mostly: loopback may join two).
// Whatever the cuts, every publication comes back as its EVENT, byte for
// byte and in order, with its PUBLISHED, and once the session is done,
// and once a connection closed while its stash held a partial frame, the
// engine's inbound total is 0 again. Over TLS the ciphertext is cut at
// random too (records split anywhere).
func TestSocketStashRandomSplits(t *testing.T) {
	t.Parallel()
	cert := newTestCert(t)
	s := tlsServer(t, cert, true, nil)
	tlsAddr, plainAddr := s.e.Addrs()[0].String(), s.e.Addrs()[1].String()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for i, tc := range []struct {
		name string
		ws   bool
		tls  bool
	}{{"ws", true, false}, {"rawsocket", false, false}, {"ws-tls", true, true}, {"rawsocket-tls", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			addr := plainAddr
			if tc.tls {
				addr = tlsAddr
			}
			stashRun(t, s, rng, addr, tc.ws, tc.tls, cert.client)
		})
	}
	eventually(t, ioTimeout, "the inbound total back to 0 after the connections closed", func() bool {
		return s.e.Stats().Inbound == 0
	})
}

// splitConn writes every Write in pieces cut at random, pausing between
// them so that the router reads them apart.
type splitConn struct {
	net.Conn
	rng *rand.Rand
}

func (c *splitConn) Write(b []byte) (int, error) {
	n := 0
	for _, p := range randomPieces(c.rng, b, nil) {
		k, err := c.Conn.Write(p)
		n += k
		if err != nil {
			return n, err
		}
		time.Sleep(200 * time.Microsecond)
	}
	return n, nil
}

// randomPieces cuts b at random, and near each of starts (a frame's first
// byte) with probability 1/2 within its first 16 bytes.
func randomPieces(rng *rand.Rand, b []byte, starts []int) [][]byte {
	cuts := map[int]bool{}
	for _, s := range starts {
		if rng.IntN(2) == 0 {
			cuts[s+rng.IntN(16)] = true
		}
	}
	for i := 0; i < len(b); {
		switch rng.IntN(3) {
		case 0:
			i += 1 + rng.IntN(8)
		case 1:
			i += 1 + rng.IntN(2000)
		default:
			i += 1 + rng.IntN(100000)
		}
		cuts[i] = true
	}
	var out [][]byte
	last := 0
	for i := 1; i < len(b); i++ {
		if cuts[i] {
			out = append(out, b[last:i])
			last = i
		}
	}
	return append(out, b[last:])
}

func stashRun(t *testing.T, s *testServer, rng *rand.Rand, addr string, isWS, useTLS bool, ccfg *tls.Config) {
	const ser = proto.MsgPack
	frame := func(b []byte) []byte {
		if isWS {
			return cliFrame(true, opBinary, b)
		}
		return rsFrame(0, b)
	}
	var stream []byte
	var starts []int
	add := func(b []byte) { starts = append(starts, len(stream)); stream = append(stream, b...) }
	if isWS {
		add(wsUpgradeRequest("/ws", ser.Subprotocol(false)))
	} else {
		add(rsHandshake(ser, 15))
	}
	add(frame(helloMsg(t, ser)))
	add(frame(encodeMsg(t, ser, &proto.Message{Type: proto.CodeSubscribe, Request: 1, Dict: emptyDict(t, ser), URI: []byte("com.split")})))
	opts := rawValue(t, ser, map[string]any{"acknowledge": true, "exclude_me": false})
	const n = 40
	payloads := make([][]byte, n)
	for i := range payloads {
		var size int
		switch r := rng.IntN(10); {
		case r < 4:
			size = rng.IntN(100)
		case r < 7:
			size = 100 + rng.IntN(5000)
		case r < 9:
			size = 50000 + rng.IntN(15000) // under largeMin: waits in the stash
		default:
			size = largeMin + rng.IntN(100000) // gathered in chunks
		}
		pl := make([]byte, size)
		for j := range pl {
			pl[j] = byte(i*31 + j*7)
		}
		payloads[i] = pl
		msg := encodeMsg(t, ser, &proto.Message{Type: proto.CodePublish, Request: uint64(2 + i), Dict: opts,
			URI: []byte("com.split"), Args: rawValue(t, ser, []any{pl})})
		if isWS && rng.IntN(8) == 0 && len(msg) > 2 {
			// A fragmented message, a ping between its fragments.
			k := 1 + rng.IntN(len(msg)-1)
			add(cliFrame(false, opBinary, msg[:k]))
			add(cliFrame(true, opPing, []byte("mid")))
			add(cliFrame(true, opCont, msg[k:]))
		} else {
			add(frame(msg))
		}
		if rng.IntN(5) == 0 {
			if isWS {
				add(cliFrame(true, opPing, []byte(fmt.Sprint(i))))
			} else {
				add(rsFrame(1, []byte(fmt.Sprint(i))))
			}
		}
	}
	raw := dialTCP(t, addr, 0)
	var c net.Conn = raw
	if useTLS {
		cfg := ccfg.Clone()
		cfg.ServerName = "127.0.0.1"
		tc := tls.Client(&splitConn{Conn: raw, rng: rand.New(rand.NewPCG(rng.Uint64(), 1))}, cfg)
		tc.SetDeadline(time.Now().Add(ioTimeout))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		tc.SetDeadline(time.Time{})
		c = tc
	}
	br := bufio.NewReaderSize(c, 64<<10)
	msgs := make(chan []byte, 2*n+8)
	rerr := make(chan error, 1)
	go func() {
		var read func(time.Duration) ([]byte, error)
		if isWS {
			hdr, err := readHeaderRaw(br, c)
			if err != nil || !strings.HasPrefix(hdr, "HTTP/1.1 101") {
				rerr <- fmt.Errorf("upgrade: %q, %v", hdr, err)
				return
			}
			w := &wsClient{t: t, c: c, br: br, ser: ser}
			read = w.readMsg
		} else {
			var b [4]byte
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			if _, err := io.ReadFull(br, b[:]); err != nil || b[0] != 0x7f {
				rerr <- fmt.Errorf("handshake reply % x: %v", b, err)
				return
			}
			r := &rsClient{t: t, c: c, br: br, ser: ser}
			read = r.readMsg
		}
		for range 2 + 2*n {
			b, err := read(ioTimeout)
			if err != nil {
				rerr <- err
				return
			}
			msgs <- b
		}
		rerr <- nil
	}()
	pieces := randomPieces(rng, stream, starts)
	for _, pc := range pieces {
		c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Write(pc); err != nil {
			t.Fatalf("write: %v", err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	if err := <-rerr; err != nil {
		t.Fatalf("reading the answers (%d pieces of %d bytes): %v", len(pieces), len(stream), err)
	}
	close(msgs)
	var events [][]byte
	var acks []uint64
	for b := range msgs {
		m, err := proto.Decode(ser, b)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case proto.CodeWelcome, proto.CodeSubscribed:
		case proto.CodePublished:
			acks = append(acks, m.Request)
		case proto.CodeEvent:
			a := args(t, m)
			pl, _ := a[0].([]byte)
			events = append(events, pl)
		default:
			t.Fatalf("unexpected %v", m.Type)
		}
	}
	if len(events) != n || len(acks) != n {
		t.Fatalf("%d events and %d acks of %d publications", len(events), len(acks), n)
	}
	for i := range n {
		if !bytes.Equal(events[i], payloads[i]) {
			t.Fatalf("event %d: %d bytes, want %d (the input's bytes reordered or lost; %d pieces)", i, len(events[i]), len(payloads[i]), len(pieces))
		}
		if acks[i] != uint64(2+i) {
			t.Fatalf("ack %d for request %d", i, acks[i])
		}
	}
	if st, ok := s.e.statOf(t, raw); !ok || st.phase == phDead {
		t.Fatalf("connection gone after the run (%v)", ok)
	}
	if in := s.e.Stats().Inbound; in != 0 && !useTLS && len(s.e.connStats(t)) == 1 {
		t.Fatalf("inbound total %d with only whole frames received", in)
	}
	// A partial frame in the stash when the connection closes: its count
	// goes with it.
	part := frame(encodeMsg(t, ser, &proto.Message{Type: proto.CodePublish, Request: 999, Dict: opts,
		URI: []byte("com.split"), Args: rawValue(t, ser, []any{make([]byte, 30000)})}))
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(part[:len(part)/2]); err != nil {
		t.Fatal(err)
	}
	eventually(t, ioTimeout, "the partial frame held", func() bool { return s.e.Stats().Inbound > 0 })
	c.Close()
	eventually(t, ioTimeout, "the connection closed", func() bool {
		_, ok := s.e.statOf(t, raw)
		return !ok
	})
}

// readHeaderRaw reads an HTTP response header (to the blank line).
func readHeaderRaw(br *bufio.Reader, c net.Conn) (string, error) {
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	var sb strings.Builder
	for {
		line, err := br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}
