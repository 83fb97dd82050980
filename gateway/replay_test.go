package gateway

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// The MAC covers key, timestamp, seq and nonce concatenated without
// separators (Crossbar's format): moving digits between seq and nonce
// leaves the signature valid. A captured request re-split that way is a
// replay and must be refused, although its nonce string differs.
func TestRouteSignedReplayResplit(t *testing.T) {
	laneFree(t)
	e, _, _ := routesEnv(t)
	body := `{"temp":20}`
	q := crossbarSign("device-1", "s3cret-s3cret-s3cret", []byte(body), time.Now(), 12, 345)
	r, out := e.do("POST", "/ingest?"+q.Encode(), body)
	if r.StatusCode != 200 {
		t.Fatalf("signed: %d %s", r.StatusCode, out)
	}
	// The attacker's copy: seq 123, nonce 45 (same bytes "12345").
	q.Set("seq", "123")
	q.Set("nonce", "45")
	r, out = e.do("POST", "/ingest?"+q.Encode(), body)
	expectProblem(t, r, out, 401, proto.URIAuthenticationRequired)
	// Leading zeros make yet another nonce string for the same bytes.
	q.Set("seq", "1")
	q.Set("nonce", "2345")
	r, out = e.do("POST", "/ingest?"+q.Encode(), body)
	expectProblem(t, r, out, 401, proto.URIAuthenticationRequired)
}
