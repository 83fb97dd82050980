package client

import (
	"context"
	"testing"
)

// The first bytes of the router's answer to the upgrade are kept to name
// an HTTP error if the dial fails (httpAnswer); a session that joined
// kept them, up to 512 bytes, for its life.
func TestUpgradeHeadReleasedOnceDialed(t *testing.T) {
	url := startRouter(t)
	cfg, ep, err := Config{URL: url, Realm: "realm1"}.normalize()
	noErr(t, "normalize", err)
	ws, err := dialWebSocket(context.Background(), ep, &cfg)
	noErr(t, "dialWebSocket", err)
	defer ws.conn.Close()
	lc, ok := ws.conn.(*upgradeConn)
	if !ok {
		t.Fatalf("the WebSocket's connection is a %T, want the dial's *upgradeConn", ws.conn)
	}
	if len(lc.head) != 0 || cap(lc.head) != 0 {
		t.Fatalf("a dialed WebSocket keeps %d bytes (%d of capacity) of the upgrade's answer", len(lc.head), cap(lc.head))
	}
}
