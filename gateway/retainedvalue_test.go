package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// TestRetainedValueChecked: an event stream's ?retained= takes true or
// false, written so; any other value is refused 400 naming the
// parameter, on HEAD as on GET. Before, only "true" replayed the
// retained events and every other value was taken for false:
// ?retained=True, =1 or =yes opened a stream without the replay the
// client asked for, and it could not tell.
func TestRetainedValueChecked(t *testing.T) {
	e := newEnv(t, nil)
	open := func(method, query string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, e.base+"/wamp/realm1/events/com.retval"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusBadRequest && method == "GET" {
			b, _ := io.ReadAll(resp.Body)
			if p := expectProblem(t, resp, b, 400, proto.URIInvalidArgument); !strings.Contains(p.Detail, "retained") {
				t.Fatalf("%s %s: detail %q does not name retained", method, query, p.Detail)
			}
		}
		return resp.StatusCode
	}
	for _, q := range []string{"?retained=True", "?retained=1", "?retained=yes", "?retained=", "?retained", "?retained=TRUE"} {
		for _, m := range []string{"GET", "HEAD"} {
			if s := open(m, q); s != http.StatusBadRequest {
				t.Errorf("%s %s: status %d, want 400 (the value was taken for false)", m, q, s)
			}
		}
	}
	for _, q := range []string{"", "?retained=true", "?retained=false"} {
		if s := open("GET", q); s != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", q, s)
		}
	}
}
