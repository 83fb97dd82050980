package gateway

import (
	"errors"
	"fmt"
	"testing"
)

// TestRunnerHeadersChecked: a callee's or webhook's header that net/http's
// client refuses (a name that is not a token, a value with a newline, as
// a YAML block scalar leaves) is refused by the configuration's check,
// naming it. Before, it was taken, and every request of the runner failed
// at the transport ("invalid header field value"): every call of the
// callee wamp.error.network_failure, every event of the webhook dropped
// after its retries, with only a debug line.
func TestRunnerHeadersChecked(t *testing.T) {
	r, err := newTestRouter()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ok := map[string]string{"Authorization": "Bearer abc\tdef", "X-Tenant": "t1"}
	_, err = New(Options{Addr: "127.0.0.1:0", Router: r,
		Callees: []Callee{
			{Realm: "realm1", Procedure: "com.h.a", URL: "http://127.0.0.1:1/", Headers: ok},
			{Realm: "realm1", Procedure: "com.h.b", URL: "http://127.0.0.1:1/", Headers: map[string]string{"Authorization": "Bearer abc\n"}},
			{Realm: "realm1", Procedure: "com.h.c", URL: "http://127.0.0.1:1/", Headers: map[string]string{"X Tenant": "t1"}},
		},
		Webhooks: []Webhook{
			{Realm: "realm1", Topic: "com.h.a", URL: "http://127.0.0.1:1/", Headers: ok},
			{Realm: "realm1", Topic: "com.h.b", URL: "http://127.0.0.1:1/", Headers: map[string]string{"X-Sig": "a\r\nX-Injected: 1"}},
			{Realm: "realm1", Topic: "com.h.c", URL: "http://127.0.0.1:1/", Headers: map[string]string{"": "1", "X:Y": "2"}},
		}})
	if err == nil {
		t.Fatal("New took headers net/http refuses to send")
	}
	got := map[string]bool{}
	for _, e := range unwrapAll(err) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a FieldError: %v", e)
		}
		got[fmt.Sprint(fe.Path)] = true
	}
	want := []string{"[callees 1 headers Authorization]", "[callees 2 headers X Tenant]", "[webhooks 1 headers X-Sig]", "[webhooks 2 headers ]", "[webhooks 2 headers X:Y]"}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no error at %s; got %v", w, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d errors, want %d: %v", len(got), len(want), err)
	}
}

// TestRunnerHostHeaderChecked: a callee's or webhook's Host header is the
// request's Host (cd7057c), and net/http's client sends a Host that is
// not a host[:port] (a space, a path, user info) as an empty one, or, to
// a proxy (HTTP_PROXY), fails every request with "invalid Host header":
// the configuration's check took it, and the upstream saw no host name
// at all. Now it is refused there, naming it.
func TestRunnerHostHeaderChecked(t *testing.T) {
	r, err := newTestRouter()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = New(Options{Addr: "127.0.0.1:0", Router: r,
		Callees: []Callee{
			{Realm: "realm1", Procedure: "com.h.a", URL: "http://127.0.0.1:1/", Headers: map[string]string{"Host": "api.internal:8443"}},
			{Realm: "realm1", Procedure: "com.h.b", URL: "http://127.0.0.1:1/", Headers: map[string]string{"Host": "api internal"}},
			{Realm: "realm1", Procedure: "com.h.c", URL: "http://127.0.0.1:1/", Headers: map[string]string{"host": "[::1]:80"}},
		},
		Webhooks: []Webhook{
			{Realm: "realm1", Topic: "com.h.a", URL: "http://127.0.0.1:1/", Headers: map[string]string{"HOST": "hooks.internal/x"}},
			{Realm: "realm1", Topic: "com.h.b", URL: "http://127.0.0.1:1/", Headers: map[string]string{"Host": "user@hooks.internal"}},
		}})
	if err == nil {
		t.Fatal("New took Host headers net/http does not send")
	}
	got := map[string]bool{}
	for _, e := range unwrapAll(err) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a FieldError: %v", e)
		}
		got[fmt.Sprint(fe.Path)] = true
	}
	want := []string{"[callees 1 headers Host]", "[webhooks 0 headers HOST]", "[webhooks 1 headers Host]"}
	for _, w := range want {
		if !got[w] {
			t.Errorf("no error at %s; got %v", w, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d errors, want %d: %v", len(got), len(want), err)
	}
}
