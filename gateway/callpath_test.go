package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestBridgeCallRecycledRecords: call records (and the result buffers
// they keep) are recycled between requests. Many clients calling at once
// with results of different sizes — small, past net/http's chunking
// threshold (the gateway sets Content-Length), past what a record keeps —
// each get exactly their own result, whole.
func TestBridgeCallRecycledRecords(t *testing.T) {
	e := newEnv(t, nil)
	callee := e.dial("realm1", proto.MsgPack)
	e.register(callee, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args, Kwargs: inv.Kwargs}, nil
	})
	sizes := []int{0, 1, 100, chunkingSize, maxKeptResult + 1, 64}
	const workers, calls = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				n := sizes[(w+i)%len(sizes)]
				tag := strconv.Itoa(w) + "/" + strconv.Itoa(i)
				in := fmt.Sprintf(`{"args":[%q,%q],"kwargs":{"tag":%q}}`, tag, strings.Repeat(string(rune('a'+w)), n), tag)
				resp, body := e.do("POST", "/wamp/realm1/call/com.echo", in)
				var got, want any
				if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != 200 {
					errs <- fmt.Errorf("call %s (%d B): status %d, %v: %.200s", tag, n, resp.StatusCode, err, body)
					return
				}
				json.Unmarshal([]byte(in), &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					errs <- fmt.Errorf("call %s (%d B): got %.200s", tag, n, body)
					return
				}
				if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) || resp.TransferEncoding != nil {
					errs <- fmt.Errorf("call %s: Content-Length %q for %d bytes, transfer encoding %v", tag, cl, len(body), resp.TransferEncoding)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestBridgeAPIKeyHeaderName: a configured API key header is matched
// whatever case the configuration and the client write it in.
func TestBridgeAPIKeyHeaderName(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.APIKeyHeader = "x-device-KEY"
		o.APIKeys = []APIKey{{Name: "dev", Key: "device-key-0123456789", Realm: "secure", AuthID: "dev1", Role: "user"}}
	})
	svc := e.dial("secure", proto.JSON)
	e.register(svc, "com.ok.who", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{inv.CallerAuthID}}, nil
	})
	e.register(svc, "com.ok.who2", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: []any{inv.CallerAuthID}}, nil
	})
	for _, h := range []string{"X-Device-Key", "x-device-key", "X-DEVICE-KEY"} {
		r, body := e.do("POST", "/wamp/secure/call/com.ok.who", `{"options":{"disclose_me":true}}`, h, "device-key-0123456789")
		if r.StatusCode != 200 || !strings.Contains(string(body), `"dev1"`) {
			t.Fatalf("header %s: %d %s", h, r.StatusCode, body)
		}
	}
	r, body := e.do("POST", "/wamp/secure/call/com.ok.who2", `{}`, "X-Device-Key", "wrong-key-0123456789")
	expectProblem(t, r, body, 401, proto.URIAuthenticationRequired)
	if !strings.Contains(r.Header.Get("WWW-Authenticate"), `ApiKey header="x-device-KEY"`) {
		t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
}
