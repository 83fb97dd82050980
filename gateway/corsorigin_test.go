package gateway

import (
	"errors"
	"fmt"
	"testing"
)

// TestCORSOriginNeverMatchingRefused: an allowed origin that no browser's
// Origin header can equal is refused at New (check-config, a reload), as
// websocket.allowed_origins' are (README: "as websocket.allowed_origins
// are"): a wildcard host, user info, a fragment, a query mark alone.
// Before, the gateway's check took them, and every request of the page
// the operator meant was refused 403 (a route's, the bridge's), with
// nothing saying why.
func TestCORSOriginNeverMatchingRefused(t *testing.T) {
	r, err := newTestRouter()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bad := []string{"https://*.example.com", "https://user@app.example", "https://app.example#top", "https://app.example?", "https:app.example"}
	var routes []Route
	for i, o := range bad {
		routes = append(routes, Route{Method: "GET", Path: fmt.Sprintf("/c%d", i), Realm: "realm1", Call: "com.c", CORS: &CORS{AllowedOrigins: []string{"https://ok.example", o}}})
	}
	_, err = New(Options{Addr: "127.0.0.1:0", Router: r, Routes: routes, CORS: CORS{AllowedOrigins: []string{"http://*.example.com:8080"}}})
	if err == nil {
		t.Fatal("New took allowed origins no browser sends")
	}
	got := map[string]bool{}
	for _, e := range unwrapAll(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			got[fmt.Sprint(fe.Path)] = true
		}
	}
	want := []string{"[cors allowed_origins 0]"}
	for i := range bad {
		want = append(want, fmt.Sprintf("[routes %d cors allowed_origins 1]", i))
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no error at %s; got %v", w, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d errors, want %d: %v", len(got), len(want), err)
	}
}
