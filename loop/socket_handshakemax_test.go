package loop

import (
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/route"
)

// MaxHandshake has a maximum, MaxHandshakeMax: a request header is
// scanned for its end again at each read until it is whole, so a large
// bound let one client's header cost its loop the square of its size
// (1.4 s of CPU for 16 MiB under a 16 MiB bound). A bound past the
// maximum is refused by New; at the maximum a header just under it is
// served and one at it gets 431.
func TestMaxHandshakeBounded(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, mh := range []int{MaxHandshakeMax + 1, 16 << 20} {
		if _, err := New(r, Options{Listeners: []Listener{{Addr: "127.0.0.1:0"}}, MaxHandshake: mh}); err == nil ||
			!strings.Contains(err.Error(), "MaxHandshake") {
			t.Errorf("MaxHandshake %d: New returned %v, want an error naming MaxHandshake", mh, err)
		}
	}
	s := startServer(t, func(o *Options, _ *route.Config) { o.MaxHandshake = MaxHandshakeMax })
	head := "GET /healthz HTTP/1.1\r\nHost: x\r\nX: "
	under := head + strings.Repeat("y", MaxHandshakeMax-len(head)-4) + "\r\n\r\n"
	if r := httpExchange(t, s.url, []byte(under), false); r.status != 200 {
		t.Fatalf("a header of exactly MaxHandshakeMax: %d %q", r.status, r.body)
	}
	over := head + strings.Repeat("y", MaxHandshakeMax)
	if r := httpExchange(t, s.url, []byte(over), false); r.status != 431 {
		t.Fatalf("a header past MaxHandshakeMax: %d %q", r.status, r.body)
	}
}
