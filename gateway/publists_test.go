package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestPublishListsCostTheirBytes: an authenticated bridge publication's
// exclude/eligible lists (up to max_body) were decoded into Go slices and
// encoded again: a list of empty strings cost a 16-byte string header
// for every 3 bytes, and the slice's growth, about 20 times the body for
// each request, as many at once as the address had requests in flight.
// The lists are now checked where they lie and passed on as their bytes:
// a publication allocates a few times its body, and the lists still
// filter (whitespace, escapes and all) and are still refused when they
// hold the wrong kind of element.
func TestPublishListsCostTheirBytes(t *testing.T) {
	laneFree(t)
	e := newEnv(t, nil)
	body := `{"options":{"exclude_authid":[` + strings.Repeat(`"",`, 170000) + `""]}}`
	e.do("POST", "/wamp/realm1/publish/com.lists.x", `{}`) // connections, buffers, the pooled session
	var resp *http.Response
	var b []byte
	n := allocatedBy(func() { resp, b = e.do("POST", "/wamp/realm1/publish/com.lists.x", body) })
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("publication: %d %s", resp.StatusCode, b)
	}
	t.Logf("a %d-byte publication's lists: %d bytes allocated", len(body), n)
	if n > uint64(6*len(body)) {
		t.Errorf("a publication with a %d-byte list allocated %.1f MB, want under 6 times the body", len(body), float64(n)/1e6)
	}

	var got atomic.Int64
	s := e.dial("realm1", proto.JSON)
	if _, err := s.Subscribe(context.Background(), "com.lists.y", func(ev *client.Event) { got.Add(1) }, nil); err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatUint(s.ID(), 10)
	for _, c := range []struct {
		opts string
		want int64
	}{
		{`{"exclude": [ 1 , ` + id + ` ]}`, 0},
		{`{"eligible":[` + id + `], "exclude_authrole": ["\u0061dmin", "x"]}`, 1},
		{`{"eligible_authrole": [ "anonymous" ]}`, 1},
		{`{"exclude_authrole":["anonymou\u0073"]}`, 0},
		{`{"exclude": []}`, 1},
	} {
		before := got.Load()
		if r, b := e.do("POST", "/wamp/realm1/publish/com.lists.y", `{"args":[1],"options":`+c.opts+`}`); r.StatusCode != http.StatusAccepted {
			t.Fatalf("options %s: %d %s", c.opts, r.StatusCode, b)
		}
		// A marker publication everyone gets orders the check.
		e.do("POST", "/wamp/realm1/publish/com.lists.y", `{"args":[0]}`)
		deadline := time.Now().Add(5 * time.Second)
		for got.Load() < before+c.want+1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		if d := got.Load() - before - 1; d != c.want {
			t.Errorf("options %s: %d events, want %d", c.opts, d, c.want)
		}
	}
	for _, opts := range []string{`{"exclude":["1"]}`, `{"exclude":[-1]}`, `{"exclude":[1.5]}`, `{"eligible":[1e3]}`, `{"exclude":[18446744073709551616]}`, `{"eligible": null, "exclude": []}`,
		`{"exclude_authid":[1]}`, `{"eligible_authrole":[["x"]]}`, `{"exclude_authid":"x"}`, `{"eligible_authid":{}}`} {
		r, b := e.do("POST", "/wamp/realm1/publish/com.lists.y", `{"options":`+opts+`}`)
		expectProblem(t, r, b, http.StatusBadRequest, proto.URIInvalidArgument)
	}
}
