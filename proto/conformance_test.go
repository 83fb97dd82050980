package proto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Conformance against the WAMP specification's test vectors
// (wamp-proto/testsuite). They are CC-BY-SA, so they are read from the shared
// checkout next to the repository rather than copied into testdata/.
const testsuiteDir = "../../shared/wamp-testsuite"

type suiteFile struct {
	Description string        `json:"description"`
	MessageType string        `json:"wamp_message_type"`
	MessageCode int           `json:"wamp_message_code"`
	Samples     []suiteSample `json:"samples"`
}

type suiteSample struct {
	Description string                    `json:"description"`
	Serializers map[string][]suiteVariant `json:"serializers"`
	Expected    map[string]any            `json:"expected_attributes"`
	Wmsg        json.RawMessage           `json:"wmsg"`
	Error       *struct {
		Type     string `json:"type"`
		Contains string `json:"contains"`
	} `json:"expected_error"`
}

type suiteVariant struct {
	Bytes    *string `json:"bytes"`
	BytesHex string  `json:"bytes_hex"`
	Note     string  `json:"note"`
}

// loadSuite reads every singlemessage vector file, skipping the test when
// the test suite is not checked out.
func loadSuite(t *testing.T) map[string]suiteFile {
	t.Helper()
	files, err := loadSuiteOptional()
	if errors.Is(err, errNoSuite) {
		t.Skipf("%v", err)
	}
	requireNoError(t, err, "load the test suite")
	return files
}

var errNoSuite = errors.New("WAMP test suite not found at " + testsuiteDir)

// loadSuiteOptional reads the vector files, or returns errNoSuite.
func loadSuiteOptional() (map[string]suiteFile, error) {
	root := filepath.Join(testsuiteDir, "singlemessage")
	if _, err := os.Stat(root); err != nil {
		return nil, errNoSuite
	}
	paths, err := filepath.Glob(filepath.Join(root, "*", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no vector files under %s", root)
	}
	files := map[string]suiteFile{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var f suiteFile
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = f
	}
	return files, nil
}

var suiteSerializers = map[string]Serializer{"json": JSON, "msgpack": MsgPack, "cbor": CBOR}

// TestConformance decodes every JSON, MsgPack and CBOR sample of the WAMP
// test suite, checks its expected attributes, re-encodes it in the same
// serializer (byte-identical to one of the canonical variants) and in the
// other two, and decodes those again. ubjson and flatbuffers variants are
// not supported by edgewamp and are skipped.
func TestConformance(t *testing.T) {
	files := loadSuite(t)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)

	passed := map[string]int{}
	total := map[string]int{}
	for _, name := range names {
		f := files[name]
		for i, s := range f.Samples {
			if s.Serializers == nil {
				continue
			}
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				if s.Expected == nil {
					t.Fatalf("sample %q has serializers but no expected_attributes", s.Description)
				}
				for _, sname := range []string{"json", "msgpack", "cbor"} {
					ser := suiteSerializers[sname]
					variants := s.Serializers[sname]
					if len(variants) == 0 {
						continue
					}
					var canon [][]byte
					for _, v := range variants {
						canon = append(canon, variantBytes(t, v))
					}
					matched := false
					for j, b := range canon {
						total[sname]++
						ok := t.Run(fmt.Sprintf("%s/%d", sname, j), func(t *testing.T) {
							if conformSample(t, ser, b, s.Expected, canon) {
								matched = true
							}
						})
						if ok {
							passed[sname]++
						}
					}
					if !matched {
						t.Errorf("%s: no variant re-encodes byte-identical to a canonical %s variant", s.Description, sname)
					}
				}
			})
		}
	}
	for _, sname := range []string{"json", "msgpack", "cbor"} {
		t.Logf("conformance %-7s %d/%d serialized samples passed", sname, passed[sname], total[sname])
		if total[sname] == 0 {
			t.Errorf("no %s samples found", sname)
		}
	}
}

func variantBytes(t *testing.T, v suiteVariant) []byte {
	t.Helper()
	b := mustHex(t, v.BytesHex)
	if v.Bytes != nil && *v.Bytes != string(b) {
		t.Fatalf("variant bytes %q disagree with bytes_hex %q", *v.Bytes, b)
	}
	return b
}

// conformSample runs the checks on one variant and reports whether its
// same-serializer re-encoding is byte-identical to one of canon.
func conformSample(t *testing.T, ser Serializer, b []byte, want map[string]any, canon [][]byte) bool {
	m := mustDecode(t, ser, b)
	checkAttributes(t, m, want, ser.String())

	// Same serializer: the raw parts pass through untouched.
	out := mustAppend(t, ser, m)
	m2 := mustDecode(t, ser, out)
	requireSameMessage(t, m, m2, eqOpts{}, "re-encode "+ser.String())
	for _, p := range [][2]Raw{{m.Dict, m2.Dict}, {m.Args, m2.Args}, {m.Kwargs, m2.Kwargs}} {
		if !bytes.Equal(p[0].B, p[1].B) {
			t.Fatalf("same-serializer re-encode changed raw bytes: %s -> %s", show(ser, p[0].B), show(ser, p[1].B))
		}
	}
	matched := false
	for _, c := range canon {
		matched = matched || bytes.Equal(c, out)
	}

	// Other serializers: transcode, check, and come back.
	for _, o := range serializers {
		if o == ser {
			continue
		}
		ob := mustAppend(t, o, m)
		mo := mustDecode(t, o, ob)
		checkAttributes(t, mo, want, ser.String()+"->"+o.String())
		back := mustDecode(t, ser, mustAppend(t, ser, mo))
		requireSameMessage(t, m, back, eqOpts{}, ser.String()+"->"+o.String()+"->"+ser.String())
	}
	return matched
}

// checkAttributes checks a decoded message against the test suite's
// expected_attributes. Every attribute must be known to the test: a new one
// in the suite fails here rather than going unchecked.
func checkAttributes(t *testing.T, m *Message, want map[string]any, where string) {
	t.Helper()
	wantUint := func(name string, got uint64) {
		t.Helper()
		if d := valueDiff(want[name], got, eqOpts{jsonKind: true}); d != "" {
			t.Errorf("%s: %s: %s", where, name, d)
		}
	}
	_, hasPayload := want["payload"]
	payload := want["payload"]
	for name, w := range want {
		switch name {
		case "message_type":
			wantUint(name, uint64(m.Type))
		case "request_id":
			wantUint(name, m.Request)
		case "request_type":
			wantUint(name, uint64(m.ReqType))
		case "session_id", "subscription_id", "subscription", "registration_id":
			wantUint(name, m.ID)
		case "publication_id", "publication":
			switch m.Type {
			case CodeEvent, CodeEventReceived:
				wantUint(name, m.ID2)
			case CodePublished:
				wantUint(name, m.ID)
			default:
				t.Errorf("%s: %s on %s", where, name, m.Type)
			}
		case "options", "details", "extra":
			if !m.Dict.Present() {
				t.Errorf("%s: %s: dictionary absent", where, name)
				continue
			}
			if d := valueDiff(w, mustValue(t, m.Dict), eqOpts{jsonKind: true}); d != "" {
				t.Errorf("%s: %s: %s", where, name, d)
			}
		case "realm", "topic", "procedure", "error", "reason", "method", "signature":
			if ws, _ := w.(string); ws != string(m.URI) {
				t.Errorf("%s: %s: got %q, want %q", where, name, m.URI, w)
			}
		case "args":
			switch {
			case w == nil && hasPayload && payload != nil:
				// The payload attribute checks Args.
			case w == nil:
				if m.Args.Present() {
					t.Errorf("%s: args: got %s, want absent", where, show(m.Args.Ser, m.Args.B))
				}
			case m.Transparent:
				t.Errorf("%s: args: got a transparent payload, want %v", where, w)
			default:
				if d := valueDiff(w, mustValue(t, m.Args), eqOpts{jsonKind: true}); d != "" {
					t.Errorf("%s: args: %s", where, d)
				}
			}
		case "kwargs":
			if w == nil {
				if m.Kwargs.Present() {
					t.Errorf("%s: kwargs: got %s, want absent", where, show(m.Kwargs.Ser, m.Kwargs.B))
				}
				continue
			}
			if d := valueDiff(w, mustValue(t, m.Kwargs), eqOpts{jsonKind: true}); d != "" {
				t.Errorf("%s: kwargs: %s", where, d)
			}
		case "payload":
			if w == nil {
				if m.Transparent {
					t.Errorf("%s: payload: got a transparent payload, want none", where)
				}
				continue
			}
			if !m.Transparent {
				t.Errorf("%s: payload: message is not transparent", where)
				continue
			}
			ws, _ := w.(string)
			if d := valueDiff(mustHex(t, ws), mustValue(t, m.Args), eqOpts{}); d != "" {
				t.Errorf("%s: payload: %s", where, d)
			}
		case "roles":
			if d := valueDiff(w, mustValue(t, m.Opt.Raw(KeyRoles)), eqOpts{jsonKind: true}); d != "" {
				t.Errorf("%s: roles (typed): %s", where, d)
			}
			dict, _ := mustValue(t, m.Dict).(map[string]any)
			if d := valueDiff(w, dict["roles"], eqOpts{jsonKind: true}); d != "" {
				t.Errorf("%s: roles (dict): %s", where, d)
			}
		default:
			t.Errorf("%s: expected attribute %q is not known to this test", where, name)
		}
	}
}

// TestConformanceValidation runs the test suite's validation samples: a
// wire message ("wmsg") that is either valid or must be rejected with an
// error naming the offending key. The wmsg array is encoded as JSON text and
// then transcoded to MsgPack and CBOR, so every rule is checked in all three
// serializers. A transparent payload is written in the vectors as a hex
// string in the Arguments position; it is sent as a binary value (JSON
// "\u0000"+base64), which is what a client in Payload Passthru Mode sends.
func TestConformanceValidation(t *testing.T) {
	files := loadSuite(t)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	passed := map[Serializer]int{}
	total := 0
	for _, name := range names {
		for i, s := range files[name].Samples {
			if s.Serializers != nil {
				continue
			}
			if s.Wmsg == nil {
				t.Fatalf("%s/%d: sample has neither serializers nor wmsg", name, i)
			}
			total++
			t.Run(fmt.Sprintf("%s/%d", name, i), func(t *testing.T) {
				jb := wmsgJSON(t, s.Wmsg)
				generic := mustValue(t, Raw{Ser: JSON, B: jb})
				for _, ser := range serializers {
					b := jb
					if ser != JSON {
						b = mustEncodeValue(t, ser, generic).B
					}
					_, err := Decode(ser, b)
					if s.Error != nil {
						requireErrorContains(t, err, s.Error.Contains, fmt.Sprintf("%s %s (%s)", ser, jb, s.Description))
						var pe *Error
						if !errors.As(err, &pe) {
							t.Fatalf("%s: error %v is a %T, want *proto.Error", ser, err, err)
						}
					} else {
						requireNoError(t, err, fmt.Sprintf("%s %s (%s)", ser, jb, s.Description))
					}
					passed[ser]++
				}
			})
		}
	}
	for _, ser := range serializers {
		t.Logf("validation %-7s %d/%d wmsg samples passed", ser, passed[ser], total)
	}
	if total == 0 {
		t.Errorf("no validation samples found")
	}
}

// wmsgJSON encodes a vector's wmsg as compact JSON text, turning a string in
// the Arguments position (the hex of a transparent payload) into a JSON
// binary string.
func wmsgJSON(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var elems []json.RawMessage
	requireNoError(t, json.Unmarshal(raw, &elems), "wmsg")
	var code Code
	requireNoError(t, json.Unmarshal(elems[0], &code), "wmsg code")
	if lay := layoutOf(code); lay != nil {
		for i, el := range lay.el {
			if el != elArgs || i+1 >= len(elems) {
				continue
			}
			var hexPayload string
			if json.Unmarshal(elems[i+1], &hexPayload) == nil && !strings.HasPrefix(hexPayload, "\x00") {
				p := mustHex(t, hexPayload)
				elems[i+1] = json.RawMessage(`"\u0000` + base64.StdEncoding.EncodeToString(p) + `"`)
			}
		}
	}
	out, err := json.Marshal(elems)
	requireNoError(t, err, "marshal wmsg")
	return out
}
