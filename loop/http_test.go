package loop

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/edgewamp/edgewamp/proto"
)

const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// upgradeReq builds a WebSocket upgrade request for path offering the
// given Sec-WebSocket-Protocol value ("" for none), plus extra header lines.
func upgradeReq(path, protocols string, extra ...string) string {
	var b strings.Builder
	b.WriteString("GET " + path + " HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Key: " + testKey + "\r\nSec-WebSocket-Version: 13\r\n")
	if protocols != "" {
		b.WriteString("Sec-WebSocket-Protocol: " + protocols + "\r\n")
	}
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// runHTTP feeds req whole into a fresh inBuf and runs handleHTTP once.
func runHTTP(t *testing.T, o *httpOptions, req string) (httpResult, int) {
	t.Helper()
	in := newInBuf(64 << 10)
	in.write([]byte(req))
	res, n, err := handleHTTP(in, o)
	if err != nil {
		t.Fatalf("handleHTTP: %v", err)
	}
	if in.InboundBuffered() != len(req) {
		t.Fatal("handleHTTP consumed input")
	}
	return res, n
}

// parseResp parses a response with net/http and checks the framing rules
// every answer follows: HTTP/1.1, Content-Length equal to the body, and
// Connection: close (all but the 101).
func parseResp(t *testing.T, res httpResult, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.resp)), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("response does not parse: %v\n%s", err, res.resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	if resp.StatusCode != res.status || resp.Proto != "HTTP/1.1" {
		t.Fatalf("status line %q %d, result says %d", resp.Proto, resp.StatusCode, res.status)
	}
	if res.status != http.StatusSwitchingProtocols {
		if !resp.Close || !bytes.Contains(res.resp, []byte("\r\nConnection: close")) {
			t.Errorf("no Connection: close:\n%s", res.resp)
		}
		cl := resp.Header.Get("Content-Length")
		if method != http.MethodHead && cl != strconv.Itoa(len(body)) {
			t.Errorf("Content-Length %q for a %d-byte body", cl, len(body))
		}
	}
	return resp, string(body)
}

func acceptFor(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func TestHTTPUpgrade(t *testing.T) {
	tests := []struct {
		offer   string
		proto   string
		ser     proto.Serializer
		batched bool
	}{
		{"wamp.2.json", "wamp.2.json", proto.JSON, false},
		{"wamp.2.msgpack", "wamp.2.msgpack", proto.MsgPack, false},
		{"wamp.2.cbor.batched", "wamp.2.cbor.batched", proto.CBOR, true},
		// The client's order decides: the first one we know wins.
		{"foo, wamp.2.msgpack.batched, wamp.2.json", "wamp.2.msgpack.batched", proto.MsgPack, true},
		{"wamp.2.json.batched,wamp.2.cbor", "wamp.2.json.batched", proto.JSON, true},
	}
	for _, tt := range tests {
		t.Run(tt.offer, func(t *testing.T) {
			req := upgradeReq("/ws", tt.offer)
			res, n := runHTTP(t, &httpOptions{}, req)
			if res.kind != httpUpgrade || n != len(req) {
				t.Fatalf("kind %d n %d (want %d): %s", res.kind, n, len(req), res.resp)
			}
			resp, _ := parseResp(t, res, http.MethodGet)
			if res.status != 101 || resp.Header.Get("Sec-WebSocket-Protocol") != tt.proto ||
				resp.Header.Get("Sec-WebSocket-Accept") != acceptFor(testKey) {
				t.Fatalf("response:\n%s", res.resp)
			}
			if res.ser != tt.ser || res.batched != tt.batched {
				t.Fatalf("ser %v batched %v", res.ser, res.batched)
			}
		})
	}
}

func TestHTTPAnswers(t *testing.T) {
	o := &httpOptions{}
	tests := []struct {
		name   string
		opts   *httpOptions
		method string
		req    string
		status int
		reason error
		body   string // substring of the body
	}{
		{"health", o, "GET", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, nil, "ok"},
		{"health with query", o, "GET", "GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, nil, "ok"},
		{"health HTTP/1.0", o, "GET", "GET /healthz HTTP/1.0\r\n\r\n", 200, nil, "ok"},
		{"custom health path", &httpOptions{healthPath: "/alive"}, "GET", "GET /alive HTTP/1.1\r\nHost: x\r\n\r\n", 200, nil, "ok"},
		{"not found", o, "GET", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, errHTTPNotFound, "not found"},
		{"default health path moved", &httpOptions{healthPath: "/alive"}, "GET", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 404, errHTTPNotFound, ""},
		{"POST ws", o, "POST", "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, errHTTPMethod, "GET and HEAD"},
		{"HEAD health", o, "HEAD", "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, nil, ""},
		{"POST health", o, "POST", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, errHTTPMethod, "GET and HEAD"},
		{"no upgrade", o, "GET", "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n", 426, errHTTPNotUpgrade, "wamp.2.json"},
		{"no subprotocol", o, "GET", upgradeReq("/ws", ""), 400, errHTTPNoSubprotocol,
			"wamp.2.json, wamp.2.msgpack, wamp.2.cbor, wamp.2.json.batched, wamp.2.msgpack.batched, wamp.2.cbor.batched"},
		{"unknown subprotocols", o, "GET", upgradeReq("/ws", "mqtt, wamp.1.json"), 400, errHTTPNoSubprotocol, "wamp.2.cbor.batched"},
		{"wrong ws path", o, "GET", upgradeReq("/wamp", "wamp.2.json"), 404, errHTTPNotFound, ""},
		{"custom ws path", &httpOptions{wsPath: "/wamp"}, "GET", upgradeReq("/wamp", "wamp.2.json"), 101, nil, ""},
		{"absolute form", o, "GET", upgradeReq("http://example.com/ws?x=1", "wamp.2.json"), 101, nil, ""},
		{"over limit", &httpOptions{overLimit: true}, "GET", upgradeReq("/ws", "wamp.2.json"), 503, errHTTPOverLimit, "max connection count reached"},
		{"over limit health", &httpOptions{overLimit: true}, "GET", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, nil, "ok"},
		{"over limit not found", &httpOptions{overLimit: true}, "GET", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 503, errHTTPOverLimit, ""},
		{"origin refused", &httpOptions{checkOrigin: func(o []byte) bool { return string(o) == "https://good" }},
			"GET", upgradeReq("/ws", "wamp.2.json", "Origin: https://evil"), 403, errHTTPOrigin, ""},
		{"origin accepted", &httpOptions{checkOrigin: func(o []byte) bool { return string(o) == "https://good" }},
			"GET", upgradeReq("/ws", "wamp.2.json", "Origin: https://good"), 101, nil, ""},
		{"two origins", &httpOptions{checkOrigin: func(o []byte) bool { return true }},
			"GET", upgradeReq("/ws", "wamp.2.json", "Origin: https://a", "Origin: https://b"), 400, errHTTPBadRequest, ""},
		{"missing key", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), "Sec-WebSocket-Key", "X-Key", 1),
			400, ws.ErrHandshakeBadSecKey, "Sec-WebSocket-Key"},
		{"bad version", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), "Version: 13", "Version: 8", 1),
			426, ws.ErrHandshakeUpgradeRequired, ""},
		{"HTTP/1.0 upgrade", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), "HTTP/1.1", "HTTP/1.0", 1),
			400, errHTTPUpgrade10, "proxy_http_version 1.1"},
		{"HTTP/1.0 GET ws", o, "GET", "GET /ws HTTP/1.0\r\n\r\n", 400, errHTTPUpgrade10, "HTTP/1.1"},
		{"HTTP/1.0 HEAD ws", o, "HEAD", "HEAD /ws HTTP/1.0\r\n\r\n", 426, errHTTPNotUpgrade, ""},
		{"lower-case GET ws", o, "get", strings.Replace(upgradeReq("/ws", "wamp.2.json"), "GET", "get", 1), 405, errHTTPMethod, "case-sensitive"},
		{"lower-case head health", o, "head", "head /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405, errHTTPMethod, "case-sensitive"},
		{"lower-case elsewhere", o, "get", "get /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, errHTTPNotFound, ""},
		{"missing host", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), "Host:", "X-Host:", 1),
			400, errHTTPBadHost, "Host"},
		{"two hosts", o, "GET", upgradeReq("/ws", "wamp.2.json", "Host: evil.example"), 400, errHTTPBadHost, "Host"},
		{"health without host", o, "GET", "GET /healthz HTTP/1.1\r\n\r\n", 400, errHTTPBadHost, "Host"},
		{"HEAD without host", o, "HEAD", "HEAD /healthz HTTP/1.1\r\n\r\n", 400, errHTTPBadHost, ""},
		{"host not a host", o, "GET", "GET /healthz HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, errHTTPBadHost, "Host"},
		{"upgrade to h2c", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), "Upgrade: websocket", "Upgrade: h2c", 1),
			426, errHTTPNotUpgrade, ""},
		{"bare LF", o, "GET", "GET /healthz HTTP/1.1\nHost: x\r\n\r\n", 400, errHTTPBareLF, ""},
		// Lines ended by LF alone never show CRLFCRLF: refused at once, not
		// held to the handshake timeout.
		{"bare LF only", o, "GET", "GET /healthz HTTP/1.1\nHost: x\n\n", 400, errHTTPBareLF, "CRLF"},
		{"bare CR", o, "GET", "GET /healthz HTTP/1.1\rHost: x\r", 400, errHTTPBareLF, "CRLF"},
		{"HTTP/2.0", o, "GET", "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, errHTTPVersion, "HTTP/1.1"},
		{"h2 preface", o, "PRI", "PRI * HTTP/2.0\r\n\r\n", 505, errHTTPVersion, "HTTP/1.1"},
		{"HTTP/0.9", o, "GET", "GET /healthz HTTP/0.9\r\n\r\n", 505, errHTTPVersion, ""},
		{"HTTP/3.0 upgrade", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), "HTTP/1.1", "HTTP/3.0", 1),
			505, errHTTPVersion, ""},
		{"HEAD ws", o, "HEAD", "HEAD /ws HTTP/1.1\r\nHost: x\r\n\r\n", 426, errHTTPNotUpgrade, ""},
		{"HEAD ws upgrade", o, "HEAD", strings.Replace(upgradeReq("/ws", "wamp.2.json"), "GET", "HEAD", 1), 426, errHTTPNotUpgrade, ""},
		{"upgrade with a body", o, "GET", upgradeReq("/ws", "wamp.2.json", "Content-Length: 5"), 400, errHTTPUpgradeBody, "no body"},
		{"upgrade chunked", o, "GET", upgradeReq("/ws", "wamp.2.json", "Transfer-Encoding: chunked"), 400, errHTTPUpgradeBody, ""},
		{"upgrade with Content-Length 0", o, "GET", upgradeReq("/ws", "wamp.2.json", "Content-Length: 0"), 101, nil, ""},
		{"bare LF in field", o, "GET", "GET /healthz HTTP/1.1\r\nHost: x\ny: z\r\n\r\n", 400, errHTTPBareLF, ""},
		{"obs-fold", o, "GET", "GET /healthz HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, errHTTPBadRequest, ""},
		{"space before colon", o, "GET", "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n", 400, errHTTPBadRequest, ""},
		{"NUL in value", o, "GET", "GET /healthz HTTP/1.1\r\nHost: x\x00y\r\n\r\n", 400, errHTTPBadRequest, ""},
		{"no version", o, "GET", "GET /healthz\r\n\r\n", 400, errHTTPBadRequest, ""},
		{"bad HTTP version", o, "GET", "GET /healthz HTTP/x\r\n\r\n", 400, errHTTPBadRequest, ""},
		{"double space", o, "GET", "GET  /healthz HTTP/1.1\r\n\r\n", 400, errHTTPBadRequest, ""},
		{"key not base64", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), testKey, "dGhlIHNhbXBsZSBub25jZQ!!", 1),
			400, errHTTPBadKey, "Sec-WebSocket-Key"},
		{"key of 15 bytes", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), testKey, "dGhlIHNhbXBsZSBub25j", 1),
			400, errHTTPBadKey, ""},
		{"key of 17 bytes", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), testKey, "dGhlIHNhbXBsZSBub25jZQA=", 1),
			400, errHTTPBadKey, ""},
		{"key with non-zero padding bits", o, "GET", strings.Replace(upgradeReq("/ws", "wamp.2.json"), testKey, "dGhlIHNhbXBsZSBub25jZR==", 1),
			400, errHTTPBadKey, ""},
		{"two keys", o, "GET", upgradeReq("/ws", "wamp.2.json", "Sec-WebSocket-Key: "+testKey), 400, errHTTPBadKey, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, n := runHTTP(t, tt.opts, tt.req)
			if n != len(tt.req) {
				t.Fatalf("n = %d, want %d", n, len(tt.req))
			}
			wantKind := httpRespond
			if tt.status == 101 {
				wantKind = httpUpgrade
			}
			if res.kind != wantKind || res.status != tt.status || res.reason != tt.reason {
				t.Fatalf("kind %d status %d reason %v, want %d %d %v\n%s",
					res.kind, res.status, res.reason, wantKind, tt.status, tt.reason, res.resp)
			}
			resp, body := parseResp(t, res, tt.method)
			if !strings.Contains(body, tt.body) {
				t.Errorf("body %q does not mention %q", body, tt.body)
			}
			if tt.status == 200 && tt.method != http.MethodHead && body != "ok" {
				t.Errorf("health body %q", body)
			}
			if tt.method == http.MethodHead && body != "" {
				t.Errorf("HEAD answered with a body")
			}
			if tt.status == 426 && (resp.Header.Get("Upgrade") != "websocket" ||
				resp.Header.Get("Sec-WebSocket-Version") != "13") {
				t.Errorf("426 without Upgrade/Sec-WebSocket-Version:\n%s", res.resp)
			}
		})
	}
}

// Bytes that cannot start an HTTP request are dropped at once (no answer,
// nothing consumed), however few of them have arrived; a request that
// starts well waits for its header.
func TestHTTPNotHTTP(t *testing.T) {
	for _, tt := range []struct {
		in   string
		drop bool
	}{
		{"\x16", true}, // TLS ClientHello
		{"\x16\x03\x01\x02\x00\x01\r\n\r\n", true},
		{"\r\nGET /healthz HTTP/1.1\r\n\r\n", true}, // leading CRLF
		{"\x00", true},
		{"get /ws HTTP/1.1\r\n", false}, // answered (405) once complete
		{"get1 /ws", true},
		{" GET", true},
		{"SSH-2.0-OpenSSH_9.6\r\n", true},
		{"AAAAAAAAAAAAAAAAAAAAA", true}, // no space within 20 characters
		{"G", false},
		{"GET", false},
		{"UPDATEREDIRECTREF /x", false},
		{"M-SEARCH * HTTP/1.1\r\n", false},
		{"PRI * HTTP/2.0\r\n", false}, // answered (505) once complete
	} {
		in := newInBuf(1 << 16)
		in.write([]byte(tt.in))
		res, n, err := handleHTTP(in, &httpOptions{})
		if err != nil || n != 0 {
			t.Fatalf("%q: n %d err %v", tt.in, n, err)
		}
		want := errHTTPNotHTTP
		if tt.in[0] == recordTypeHandshake {
			want = errHTTPTLSHello
		}
		if got := res.kind == httpDrop; got != tt.drop || (got && res.reason != want) {
			t.Fatalf("%q: kind %d reason %v, want drop %v", tt.in, res.kind, res.reason, tt.drop)
		}
	}
}

func TestHTTPOriginHookSeesValue(t *testing.T) {
	var seen []string
	o := &httpOptions{checkOrigin: func(o []byte) bool {
		seen = append(seen, string(o))
		return true
	}}
	runHTTP(t, o, upgradeReq("/ws", "wamp.2.json", "Origin:  https://app.example  "))
	runHTTP(t, o, upgradeReq("/ws", "wamp.2.json"))
	runHTTP(t, o, "GET /healthz HTTP/1.1\r\nOrigin: x\r\n\r\n") // not an upgrade: not asked
	if len(seen) != 2 || seen[0] != "https://app.example" || seen[1] != "" {
		t.Fatalf("hook saw %q", seen)
	}
}

// TestHTTPPipelinedFrame: a WebSocket frame sent in the same segment as the
// upgrade request is left in the buffer, not swallowed by the handshake.
func TestHTTPPipelinedFrame(t *testing.T) {
	req := upgradeReq("/ws", "wamp.2.json")
	hello := `[1,"realm1",{"roles":{"caller":{}}}]`
	data := append([]byte(req), cframe(true, ws.OpText, hello)...)
	for _, chunks := range [][][]byte{{data}, byteChunks(data)} {
		in := newInBuf(1 << 16)
		var res httpResult
		n, i := 0, 0
		for n == 0 && i < len(chunks) {
			in.write(chunks[i])
			i++
			var err error
			if res, n, err = handleHTTP(in, &httpOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if res.kind != httpUpgrade || n != len(req) {
			t.Fatalf("kind %d n %d", res.kind, n)
		}
		in.Discard(n)
		for _, c := range chunks[i:] {
			in.write(c)
		}
		evs, err := drainWS(t, &wsReader{}, in)
		if err != nil || len(evs) != 1 || evs[0].payload != hello {
			t.Fatalf("%d chunks: events %+v err %v", len(chunks), evs, err)
		}
	}
}

// TestHTTPSplits: the request fed split at every offset and one byte at a
// time needs more bytes until the header is complete, then gives the same
// answer as when fed whole.
func TestHTTPSplits(t *testing.T) {
	for _, req := range []string{
		upgradeReq("/ws", "wamp.2.msgpack"),
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /elsewhere HTTP/1.1\r\n\r\n",
	} {
		whole, _ := runHTTP(t, &httpOptions{}, req)
		for i := 1; i < len(req); i++ {
			in := newInBuf(1 << 16)
			in.write([]byte(req[:i]))
			res, n, err := handleHTTP(in, &httpOptions{})
			if err != nil || n != 0 || res.kind != httpNeedMore {
				t.Fatalf("split %d: partial header gave kind %d n %d err %v", i, res.kind, n, err)
			}
			in.write([]byte(req[i:]))
			res, n, err = handleHTTP(in, &httpOptions{})
			if err != nil || n != len(req) || res.kind != whole.kind || !bytes.Equal(res.resp, whole.resp) {
				t.Fatalf("split %d: kind %d n %d err %v\n%s", i, res.kind, n, err, res.resp)
			}
		}
	}
}

// TestHTTPResumedScanAnswersAsWhole: a header fed a byte at a time to
// handleHTTPFrom, which resumes its scan where the last call stopped, gets
// at each byte the answer a whole scan of the same bytes gives: the end
// and bare line ends found across the reads' boundaries, 431 at the limit.
func TestHTTPResumedScanAnswersAsWhole(t *testing.T) {
	for _, req := range []string{
		upgradeReq("/ws", "wamp.2.json"),
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\rX: y\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\r\n",
		"GET /healthz HTTP/1.1\r\nX: " + strings.Repeat("y", 200),
	} {
		o := &httpOptions{maxHeader: 128}
		in := newInBuf(1 << 16)
		from := 0
		for i := range len(req) {
			in.write([]byte{req[i]})
			res, n, err := handleHTTPFrom(in, o, &from)
			whole := newInBuf(1 << 16)
			whole.write([]byte(req[:i+1]))
			want, wn, werr := handleHTTP(whole, o)
			if err != nil || werr != nil || res.kind != want.kind || res.status != want.status || n != wn || res.reason != want.reason {
				t.Fatalf("%q at %d: resumed kind %d status %d n %d (%v, %v); whole kind %d status %d n %d (%v, %v)",
					req, i, res.kind, res.status, n, res.reason, err, want.kind, want.status, wn, want.reason, werr)
			}
			if res.kind != httpNeedMore {
				break
			}
		}
	}
}

// TestHTTPSlowloris: a header dribbled one byte at a time that never ends
// gets 431 exactly when the limit is reached, not before; a header of
// exactly the limit is still accepted.
func TestHTTPSlowloris(t *testing.T) {
	const limit = 1024
	o := &httpOptions{maxHeader: limit}
	in := newInBuf(1 << 16)
	in.write([]byte("GET /ws HTTP/1.1\r\n"))
	for {
		in.write([]byte("X"))
		res, n, err := handleHTTP(in, o)
		if err != nil {
			t.Fatal(err)
		}
		if in.InboundBuffered() < limit {
			if res.kind != httpNeedMore || n != 0 {
				t.Fatalf("answered %d at %d bytes", res.status, in.InboundBuffered())
			}
			continue
		}
		if res.kind != httpRespond || res.status != 431 || res.reason != errHTTPHeaderTooLarge || n != limit {
			t.Fatalf("at the limit: kind %d status %d n %d", res.kind, res.status, n)
		}
		parseResp(t, res, "GET")
		break
	}

	head := "GET /healthz HTTP/1.1\r\nHost: x\r\nX: "
	exact := head + strings.Repeat("y", limit-len(head)-4) + "\r\n\r\n"
	if res, n := runHTTP(t, o, exact); res.status != 200 || n != limit {
		t.Fatalf("header of exactly the limit: status %d n %d", res.status, n)
	}
	over := head + strings.Repeat("y", limit-len(head)-3) + "\r\n\r\n"
	if res, _ := runHTTP(t, o, over); res.status != 431 {
		t.Fatalf("header one byte over the limit: status %d", res.status)
	}
}

// TestHTTPDefaultLimit: the zero httpOptions bounds headers at 8 KiB and
// never peeks more than that, however much is buffered.
func TestHTTPDefaultLimit(t *testing.T) {
	in := &peekSpy{inBuf: newInBuf(1 << 20)}
	in.write([]byte("GET /"))
	in.write(bytes.Repeat([]byte("a"), 100<<10))
	res, _, _ := handleHTTP(in, &httpOptions{})
	if res.status != 431 || in.maxPeek > defaultHTTPMaxHeader {
		t.Fatalf("status %d, largest peek %d", res.status, in.maxPeek)
	}
}

// peekSpy records the largest Peek.
type peekSpy struct {
	*inBuf
	maxPeek int
}

func (p *peekSpy) Peek(n int) ([]byte, error) {
	if n <= 0 {
		panic("Peek(n <= 0) on the frame path")
	}
	p.maxPeek = max(p.maxPeek, n)
	return p.inBuf.Peek(n)
}

// [RFC9110 §15.5.6]: The origin server MUST generate an Allow header field
// in a 405 (Method Not Allowed) response containing a list of the target
// resource's currently supported methods. The WebSocket path answers GET
// only, the health check GET and HEAD. (Before the fix their 405 had no
// Allow.)
func TestHTTPMethodNotAllowedSaysAllow(t *testing.T) {
	for _, tt := range []struct{ req, allow string }{
		{"POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "GET, HEAD"},
		{"OPTIONS /ws HTTP/1.1\r\nHost: x\r\n\r\n", "GET, HEAD"},
		{"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "GET, HEAD"},
	} {
		req := tt.req
		res, _ := runHTTP(t, &httpOptions{}, req)
		method := req[:strings.IndexByte(req, ' ')]
		resp, _ := parseResp(t, res, method)
		if res.status != http.StatusMethodNotAllowed || resp.Header.Values("Allow") == nil {
			t.Errorf("%s: status %d, Allow %q:\n%s", strings.SplitN(req, "\r\n", 2)[0], res.status, resp.Header.Values("Allow"), res.resp)
		} else if got := resp.Header.Get("Allow"); got != tt.allow {
			t.Errorf("%s: Allow %q, want %q", req[:strings.IndexByte(req, '\r')], got, tt.allow)
		}
	}
}
