package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWriteGateEndIsFinal: once a response's writes are ended (the SSE
// total's reaper cutting a stuck stream or call), a later deadline does
// not undo it: neither the next 64 KiB piece of a large write through
// statusWriter nor an SSE frame's own deadline. Before, the reaper set the
// write deadline to now and the next piece set it to Limits.WriteTimeout
// again, so a write still progressing when it was cut (a client socket
// taking megabytes before it blocks) went on, and blocked until the
// timeout with its frame held past the total's bound: CI failed
// TestStreamedCallLargeResultBoundedByTotal so at af9779c. Here the client
// reads everything, so only the ended deadline can stop the writes.
func TestWriteGateEndIsFinal(t *testing.T) {
	const size = 1 << 20
	type result struct {
		n   int
		err error
	}
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter, b []byte) (int, error)
	}{
		{"statusWriter", func(w http.ResponseWriter, b []byte) (int, error) { return w.Write(b) }},
		{"sseWriter", func(w http.ResponseWriter, b []byte) (int, error) {
			sw := &sseWriter{w: w, rc: http.NewResponseController(w), gate: gateOf(w), d: time.Minute, since: new(atomic.Int64), nanos: func() int64 { return time.Now().UnixNano() }}
			if err := sw.write(b); err != nil {
				return 0, err
			}
			return len(b), nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan result, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sw := &statusWriter{ResponseWriter: w, wt: time.Minute}
				var bw http.ResponseWriter = unwrapper{sw} // the gate found through Unwrap
				if _, err := bw.Write([]byte("first\n")); err != nil {
					done <- result{err: err}
					return
				}
				http.NewResponseController(bw).Flush()
				gateOf(bw).end()
				n, err := tc.write(bw, []byte(strings.Repeat("x", size)))
				done <- result{n, err}
			}))
			defer srv.Close()
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the handler's write did not return in 10 s")
			}
			if r.err == nil || r.n == size || got >= size {
				t.Fatalf("a %d KiB write after the response's writes were ended: wrote %d bytes, err %v; the client read %d bytes", size>>10, r.n, r.err, got)
			}
		})
	}
}

// unwrapper wraps a ResponseWriter as the gateway's middleware does.
type unwrapper struct{ http.ResponseWriter }

func (u unwrapper) Unwrap() http.ResponseWriter { return u.ResponseWriter }
