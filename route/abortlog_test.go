package route_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// TestClientAbortLoggedAtInfo (interopatk's "Real clients"): a session the
// router ends for what its client sent (a protocol violation, an unknown
// realm) was logged at debug only ("protocol violation"; the transport's
// close line is "session_closed", debug too), so an operator at the
// default level saw nothing of a real client whose session kept ending.
// The ABORT is logged at info now, with its reason and message.
func TestClientAbortLoggedAtInfo(t *testing.T) {
	addr, log := startLoggedLoops(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "realm1", Serializer: proto.JSON})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Call(ctx, "com.x", nil, nil, &client.CallOptions{Options: map[string]any{"disclose_me": "yes"}})
	var we *client.Error
	if !errors.As(err, &we) || we.URI != proto.URIProtocolViolation {
		t.Fatalf("call with disclose_me \"yes\": %v, want ABORT %s", err, proto.URIProtocolViolation)
	}
	_, err = client.Dial(ctx, client.Config{URL: "ws://" + addr + "/ws", Realm: "no.such.realm", Serializer: proto.JSON})
	if !errors.As(err, &we) || we.URI != proto.URINoSuchRealm {
		t.Fatalf("HELLO to an unknown realm: %v, want ABORT %s", err, proto.URINoSuchRealm)
	}
	want := [][]string{
		{"level=INFO", "reason=" + proto.URIProtocolViolation, "CALL.Options.disclose_me must be a bool", "session=" + strconv.FormatUint(s.ID(), 10)},
		{"level=INFO", "reason=" + proto.URINoSuchRealm, `no realm \"no.such.realm\"`},
	}
	found := func(l string) bool {
	next:
		for _, w := range want {
			for _, line := range strings.Split(l, "\n") {
				ok := true
				for _, part := range w {
					ok = ok && strings.Contains(line, part)
				}
				if ok {
					continue next
				}
			}
			return false
		}
		return true
	}
	deadline := time.Now().Add(5 * time.Second)
	for !found(log.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no info line for each ABORT with its reason and message (want lines holding %q); the log:\n%s", want, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
