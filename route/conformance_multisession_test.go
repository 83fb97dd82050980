package route

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
)

// The multi-session vectors of the WAMP specification's test suite
// (wamp-proto/testsuite, multisession/): message sequences between client
// sessions and a router, run here against the router itself. They are
// CC-BY-SA, so they are read from the shared checkout next to the
// repository (as proto's conformance test reads the single-message ones)
// and the test skips when it is absent.
const multisessionDir = "../../shared/wamp-testsuite/multisession"

type msVector struct {
	Description string `json:"description"`
	Sessions    []struct {
		ID    string   `json:"session_id"`
		Roles []string `json:"roles"`
		Realm string   `json:"realm"`
	} `json:"sessions"`
	Sequence []struct {
		Step    int            `json:"step"`
		From    string         `json:"from"`
		To      string         `json:"to"`
		Message map[string]any `json:"message"`
	} `json:"sequence"`
	Outcome struct {
		EventCount      *int     `json:"event_count"`
		EventRecipients []string `json:"event_recipients"`
	} `json:"expected_outcome"`
}

// loadMultisession reads every multisession vector, by path under the
// folder; errNoMultisession when the suite is not checked out.
func loadMultisession() (map[string]msVector, error) {
	if _, err := os.Stat(multisessionDir); err != nil {
		return nil, errNoMultisession
	}
	paths, err := filepath.Glob(filepath.Join(multisessionDir, "*", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no vector files under %s", multisessionDir)
	}
	out := map[string]msVector{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v msVector
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(multisessionDir, p)
		out[filepath.ToSlash(rel)] = v
	}
	return out, nil
}

var errNoMultisession = errors.New("WAMP test suite not found at " + multisessionDir)

// TestConformanceMultisession runs each multi-session vector against the
// router in each serializer: the sessions join with the roles the vector
// gives them (and every feature of those roles the harness announces),
// the client steps are sent as written, and each router step must be the
// next message its session receives, with the same type, the same
// request id, Details/Options, Arguments and ArgumentsKw equal to the
// vector's, and ids the router assigns (subscription, registration,
// publication, invocation) used consistently: the vector's placeholder
// value stands for whatever id the router gave in its first appearance.
// After the sequence no session may have anything more, and the EVENTs
// seen must be the outcome's event_count, to its event_recipients.
func TestConformanceMultisession(t *testing.T) {
	vectors, err := loadMultisession()
	if errors.Is(err, errNoMultisession) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(vectors))
	for n := range vectors {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, ser := range sers {
			t.Run(name+"/"+ser.String(), func(t *testing.T) {
				runMultisession(t, vectors[name], ser)
			})
		}
	}
}

func runMultisession(t *testing.T, v msVector, ser proto.Serializer) {
	e := newEnv(t, 2, nil)
	peers := map[string]*tc{}
	for _, s := range v.Sessions {
		roles := map[string]any{}
		for _, r := range s.Roles {
			f, ok := allFeatures[r]
			if !ok {
				t.Fatalf("session %s: unknown role %q", s.ID, r)
			}
			roles[r] = f
		}
		c := e.connect(ser)
		c.hello(s.Realm, roles, nil)
		c.id = c.expect(proto.CodeWelcome).ID
		peers[s.ID] = c
	}
	ids := map[string]uint64{} // a vector's placeholder id → the router's
	events := map[string]int{}
	nevents := 0
	for _, st := range v.Sequence {
		where := fmt.Sprintf("step %d (%s → %s)", st.Step, st.From, st.To)
		if st.From != "router" {
			c := peers[st.From]
			if c == nil || st.To != "router" {
				t.Fatalf("%s: unknown session", where)
			}
			c.send(msClientMessage(t, where, c, st.Message, ids))
			continue
		}
		c := peers[st.To]
		if c == nil {
			t.Fatalf("%s: unknown session", where)
		}
		got := c.recv()
		msCheckRouterMessage(t, where, got, st.Message, ids)
		if got.Type == proto.CodeEvent {
			events[st.To]++
			nevents++
		}
	}
	for id, c := range peers {
		c.e.sync()
		select {
		case m := <-c.peer.in:
			t.Fatalf("session %s: unexpected %v %s after the sequence", id, m.Type, describe(m))
		default:
		}
	}
	if n := v.Outcome.EventCount; n != nil && nevents != *n {
		t.Errorf("%d EVENTs in the sequence, the outcome says %d", nevents, *n)
	}
	if want := v.Outcome.EventRecipients; want != nil {
		var got []string
		for id := range events {
			got = append(got, id)
		}
		sort.Strings(got)
		want = append([]string(nil), want...)
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("EVENT recipients %v, the outcome says %v", got, want)
		}
	}
}

// msTypes maps the vectors' message type names to codes.
var msTypes = map[string]proto.Code{
	"SUBSCRIBE": proto.CodeSubscribe, "SUBSCRIBED": proto.CodeSubscribed,
	"UNSUBSCRIBE": proto.CodeUnsubscribe, "UNSUBSCRIBED": proto.CodeUnsubscribed,
	"PUBLISH": proto.CodePublish, "PUBLISHED": proto.CodePublished, "EVENT": proto.CodeEvent,
	"REGISTER": proto.CodeRegister, "REGISTERED": proto.CodeRegistered,
	"UNREGISTER": proto.CodeUnregister, "UNREGISTERED": proto.CodeUnregistered,
	"CALL": proto.CodeCall, "INVOCATION": proto.CodeInvocation, "YIELD": proto.CodeYield,
	"RESULT": proto.CodeResult, "CANCEL": proto.CodeCancel, "INTERRUPT": proto.CodeInterrupt,
	"ERROR": proto.CodeError, "GOODBYE": proto.CodeGoodbye,
}

// msIDKeys are the ids a router assigns: a vector's value for them is a
// placeholder.
var msIDKeys = map[string]bool{"subscription_id": true, "registration_id": true, "publication_id": true}

func msType(t *testing.T, where string, msg map[string]any) proto.Code {
	t.Helper()
	name, _ := msg["type"].(string)
	code, ok := msTypes[name]
	if !ok {
		t.Fatalf("%s: message type %q not supported by this runner", where, name)
	}
	return code
}

// msClientMessage builds a client step's message.
func msClientMessage(t *testing.T, where string, c *tc, msg map[string]any, ids map[string]uint64) *proto.Message {
	t.Helper()
	m := &proto.Message{Type: msType(t, where, msg), Dict: c.opts(nil)}
	for k, val := range msg {
		switch k {
		case "type":
		case "request_id":
			m.Request = msUint(t, where, k, val)
		case "options", "details":
			d, _ := val.(map[string]any)
			m.Dict = c.opts(d)
		case "topic", "procedure", "reason", "error":
			s, _ := val.(string)
			m.URI = []byte(s)
		case "args":
			m.Args = raw(t, c.peer.ser, msPlain(t, val))
		case "kwargs":
			m.Kwargs = raw(t, c.peer.ser, msPlain(t, val))
		case "subscription_id", "registration_id":
			id, ok := ids[k+"="+msString(val)]
			if !ok {
				t.Fatalf("%s: %s %v before the router gave it", where, k, val)
			}
			m.ID = id
		default:
			t.Fatalf("%s: key %q not supported by this runner", where, k)
		}
	}
	return m
}

// msCheckRouterMessage checks a router step's message against got.
func msCheckRouterMessage(t *testing.T, where string, got *proto.Message, want map[string]any, ids map[string]uint64) {
	t.Helper()
	if code := msType(t, where, want); got.Type != code {
		t.Fatalf("%s: got %v %s, want %v", where, got.Type, describe(got), code)
	}
	for k, val := range want {
		switch {
		case k == "type":
		case k == "request_id" && got.Type != proto.CodeInvocation:
			if r := msUint(t, where, k, val); got.Request != r {
				t.Errorf("%s: request id %d, want %d", where, got.Request, r)
			}
		case msIDKeys[k] || k == "request_id":
			have := got.ID
			switch {
			case k == "request_id":
				have = got.Request
			case k == "publication_id" && got.Type == proto.CodeEvent:
				have = got.ID2
			}
			key := k + "=" + msString(val)
			if k == "request_id" {
				key = "invocation=" + msString(val)
			}
			if prev, ok := ids[key]; ok && prev != have {
				t.Errorf("%s: %s %d, but the router gave %d for %v before", where, k, have, prev, val)
			} else if !ok {
				if have == 0 || have > proto.MaxID {
					t.Errorf("%s: %s %d not in [1, 2^53]", where, k, have)
				}
				ids[key] = have
			}
		case k == "details" || k == "options":
			msEqual(t, where, k, got.Dict, val)
		case k == "args":
			msEqual(t, where, k, got.Args, val)
		case k == "kwargs":
			msEqual(t, where, k, got.Kwargs, val)
		case k == "topic" || k == "procedure" || k == "reason" || k == "error":
			if s, _ := val.(string); string(got.URI) != s {
				t.Errorf("%s: %s %q, want %q", where, k, got.URI, s)
			}
		default:
			t.Fatalf("%s: key %q not supported by this runner", where, k)
		}
	}
}

// msEqual compares a raw value the router sent with a vector's, both
// brought to the same Go values through JSON.
func msEqual(t *testing.T, where, k string, r proto.Raw, want any) {
	t.Helper()
	var have any
	if r.Present() {
		v, err := proto.DecodeValue(r)
		if err != nil {
			t.Fatalf("%s: %s: %v", where, k, err)
		}
		have = v
	}
	if !reflect.DeepEqual(msPlain(t, have), msPlain(t, want)) {
		t.Errorf("%s: %s %v, want %v", where, k, have, want)
	}
}

// msPlain brings v to JSON's Go values, numbers as float64.
func msPlain(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func msUint(t *testing.T, where, k string, v any) uint64 {
	t.Helper()
	var n uint64
	if _, err := fmt.Sscan(msString(v), &n); err != nil {
		t.Fatalf("%s: %s %v is not an id", where, k, v)
	}
	return n
}

func msString(v any) string { return fmt.Sprint(v) }
