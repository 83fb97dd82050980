package loop

import (
	"bufio"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// [RFC6455 §4.2.1]: An |Upgrade| header field containing the value
// "websocket", treated as an ASCII case-insensitive value; a |Connection|
// header field that includes the token "Upgrade". Both are lists (RFC 9110
// §7.8, §7.6.1), and a field sent on several lines is one list (RFC 9110
// §5.3). gobwas/ws takes an Upgrade value of "websocket" alone and looks
// at each line of a field apart: a client offering "websocket, foo" got
// 400 where it should upgrade, and so did one sending its Connection
// tokens on two lines.
func TestUpgradeHeaderTokenLists(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	for _, tt := range []struct {
		upgrade, connection string
		status              int
	}{
		{"Upgrade: websocket", "Connection: Upgrade", 101},
		{"Upgrade: websocket, foo", "Connection: Upgrade", 101},
		{"Upgrade: foo/2, WebSocket", "Connection: Upgrade", 101},
		{"Upgrade: h2c\r\nUpgrade: websocket", "Connection: Upgrade", 101},
		{"Upgrade: websocket", "Connection: keep-alive, Upgrade", 101},
		{"Upgrade: websocket", "Connection: keep-alive\r\nConnection: upgrade", 101},
		{"Upgrade: websocket,foo", "Connection: keep-alive,Upgrade", 101},
		{"Upgrade: websocketx", "Connection: Upgrade", 426},
		{"Upgrade: h2c", "Connection: Upgrade", 426},
		{"Upgrade: websocket", "Connection: keep-alive", 400},
		{"Upgrade: websocket", "Connection: upgrades", 400},
		{"Upgrade: websocket", "X-None: x", 400},
	} {
		req := "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n" + tt.upgrade + "\r\n" + tt.connection + "\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n"
		c := dialTCP(t, s.url, 0)
		w := &wsClient{t: t, c: c, br: bufio.NewReaderSize(c, 64<<10), ser: proto.JSON, autoPong: true}
		w.write([]byte(req))
		r := readHTTPResponse(t, w.br, c)
		if r.status != tt.status {
			t.Errorf("%q %q: status %d, want %d: %q %q", tt.upgrade, tt.connection, r.status, tt.status, r.header, r.body)
			c.Close()
			continue
		}
		if r.status == 101 {
			if !strings.Contains(r.header, "Sec-WebSocket-Protocol: wamp.2.json") {
				t.Errorf("%q %q: %q", tt.upgrade, tt.connection, r.header)
			}
			newWAMP(t, w, proto.JSON).join()
		}
		c.Close()
	}
}
