package proto

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// decodeIn decodes a message given as JSON text in ser: JSON as is, MsgPack
// and CBOR transcoded from it (so that one table covers all three).
func decodeIn(t testing.TB, ser Serializer, jsonText string) (*Message, error) {
	t.Helper()
	b := []byte(jsonText)
	if ser != JSON {
		var err error
		b, err = Transcode(nil, ser, Raw{Ser: JSON, B: b})
		requireNoError(t, err, "transcode "+jsonText)
	}
	return Decode(ser, b)
}

// keyCase is a value for one key, and whether the decoder accepts it.
type keyCase struct {
	json string
	ok   bool
	want any // the typed value when ok: bool, uint64, string, or the decoded raw value
}

// kindCases lists accepted and refused values per key kind.
var kindCases = map[keyKind][]keyCase{
	kindBool: {
		{`true`, true, true}, {`false`, true, false},
		{`"true"`, false, nil}, {`1`, false, nil}, {`null`, false, nil}, {`[]`, false, nil}, {`{}`, false, nil},
	},
	kindID: {
		{`0`, true, uint64(0)}, {`1`, true, uint64(1)}, {`9007199254740992`, true, uint64(MaxID)},
		{`7.0`, true, uint64(7)},
		{`9007199254740993`, false, nil}, {`-1`, false, nil}, {`1.5`, false, nil}, {`"1"`, false, nil},
		{`true`, false, nil}, {`null`, false, nil}, {`18446744073709551616`, false, nil},
	},
	kindUint: {
		{`0`, true, uint64(0)}, {`1000`, true, uint64(1000)}, {`18446744073709551615`, true, uint64(1<<64 - 1)},
		{`1000.0`, true, uint64(1000)},
		{`-1`, false, nil}, {`1.5`, false, nil}, {`-0.5`, false, nil}, {`"5"`, false, nil}, {`[]`, false, nil},
		{`18446744073709551616`, false, nil}, {`1e300`, false, nil},
	},
	kindStr: {
		{`"x"`, true, "x"}, {`""`, true, ""}, {`"\u00e9\ud83d\ude00"`, true, "é\U0001F600"},
		{`1`, false, nil}, {`null`, false, nil}, {`["x"]`, false, nil}, {`"\u0000AA=="`, false, nil},
	},
	kindIDList: {
		{`[]`, true, []any{}}, {`[1,9007199254740992]`, true, []any{int64(1), int64(MaxID)}},
		{`"x"`, false, nil}, {`["a"]`, false, nil}, {`[-1]`, false, nil}, {`[9007199254740993]`, false, nil},
		{`[1,null]`, false, nil}, {`{}`, false, nil}, {`[[1]]`, false, nil},
	},
	kindStrList: {
		{`[]`, true, []any{}}, {`["a","b"]`, true, []any{"a", "b"}},
		{`"a"`, false, nil}, {`[1]`, false, nil}, {`["a",null]`, false, nil}, {`[["a"]]`, false, nil},
	},
	kindDictList: {
		{`[]`, true, []any{}}, {`[{"session":1,"authid":"r"}]`, true, []any{map[string]any{"session": int64(1), "authid": "r"}}},
		{`"x"`, false, nil}, {`[1]`, false, nil}, {`[[]]`, false, nil}, {`{}`, false, nil},
	},
	kindDict: {
		{`{}`, true, map[string]any{}}, {`{"a":{"b":[1]}}`, true, map[string]any{"a": map[string]any{"b": []any{int64(1)}}}},
		{`[]`, false, nil}, {`"x"`, false, nil}, {`null`, false, nil}, {`1`, false, nil},
	},
}

// timeoutCases are the timeout key's: a number of milliseconds, a fraction
// rounded (JavaScript's 1.005*1000 is 1004.9999999999999), a positive one
// to 1 at least.
var timeoutCases = []keyCase{
	{`0`, true, uint64(0)}, {`1000`, true, uint64(1000)}, {`18446744073709551615`, true, uint64(1<<64 - 1)},
	{`1000.0`, true, uint64(1000)}, {`1004.9999999999999`, true, uint64(1005)}, {`300.00000000000006`, true, uint64(300)}, {`1.5`, true, uint64(2)},
	{`2999.4`, true, uint64(2999)}, {`0.2`, true, uint64(1)}, {`0.0`, true, uint64(0)},
	{`9223372036854774784.0`, true, uint64(9223372036854774784)},
	{`-1`, false, nil}, {`-0.5`, false, nil}, {`"5"`, false, nil}, {`[]`, false, nil}, {`null`, false, nil},
	{`18446744073709551616`, false, nil}, {`1e300`, false, nil}, {`9223372036854775808.0`, false, nil},
}

// enumCases lists the values of each enum key beyond the allowed ones.
var enumCases = map[Key][]keyCase{
	KeyMatch:         {{`"x_custom"`, false, nil}, {`"Exact"`, false, nil}},
	KeyInvoke:        {{`"x_custom"`, false, nil}, {`"roundRobin"`, false, nil}},
	KeyMode:          {{`"x_custom"`, false, nil}, {`""`, false, nil}},
	KeyEncAlgo:       {{`"x_custom"`, true, "x_custom"}, {`"x"`, false, nil}, {`"y_custom"`, false, nil}},
	KeyEncSerializer: {{`"x_ubj2"`, true, "x_ubj2"}, {`"bson"`, false, nil}},
}

// TestKeyDecoding decodes every typed key with accepted and refused values
// of its kind, in all three serializers. Refusals must name the message,
// the dictionary and the key.
func TestKeyDecoding(t *testing.T) {
	for k := Key(0); k < numKeys; k++ {
		info := keys[k]
		cases := kindCases[info.kind]
		if k == KeyTimeout {
			cases = timeoutCases
		}
		if info.kind == kindEnum {
			cases = nil
			for _, v := range info.enum {
				if v != "x_" {
					cases = append(cases, keyCase{fmt.Sprintf("%q", v), true, v})
				}
			}
			cases = append(cases, enumCases[k]...)
			cases = append(cases, keyCase{`1`, false, nil}, keyCase{`null`, false, nil})
		}
		if len(cases) == 0 {
			t.Fatalf("no cases for key %s", info.name)
		}
		for _, ser := range serializers {
			for _, c := range cases {
				t.Run(fmt.Sprintf("%s/%s/%s", info.name, ser, c.json), func(t *testing.T) {
					in := fmt.Sprintf(`[48,1,{"%s":%s},"p"]`, info.name, c.json)
					m, err := decodeIn(t, ser, in)
					if !c.ok {
						if k == KeyTimeout && c.json[0] != '"' && c.json[0] != '[' {
							// A number out of range, or null (JSON's NaN):
							// the rest decoded, the key absent (the router
							// answers an ERROR).
							b := []byte(in)
							if ser != JSON {
								b, err = Transcode(nil, ser, Raw{Ser: JSON, B: b})
								requireNoError(t, err, "transcode "+in)
							}
							var d Decoder
							var m Message
							err := d.Decode(ser, b, &m)
							if err != ErrBadTimeout || m.Opt.Has(k) || string(m.URI) != "p" || m.Request != 1 {
								t.Fatalf("%s: err %v, timeout kept %v, URI %q; want ErrBadTimeout, the rest decoded", in, err, m.Opt.Has(k), m.URI)
							}
							return
						}
						requireErrorContains(t, err, "CALL.Options."+info.name+" ", in)
						return
					}
					requireNoError(t, err, in)
					if !m.Opt.Has(k) || m.Opt.Len() != 1 {
						t.Fatalf("Has(%s)=%v Len=%d, want the one key", info.name, m.Opt.Has(k), m.Opt.Len())
					}
					requireValue(t, c.want, fieldsDump(t, &m.Opt)[info.name], "typed value")
					// The dict as received is kept too.
					requireValue(t, map[string]any{info.name: mustValue(t, Raw{Ser: JSON, B: []byte(c.json)})}, mustValue(t, m.Dict), "Dict")
				})
			}
		}
	}
}

// TestKeyErrorNamesDict checks that errors name the dictionary of each
// message type (Options, Details or Extra).
func TestKeyErrorNamesDict(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`[1,"realm1",{"authmethods":"ticket"}]`, "HELLO.Details.authmethods must be a list"},
		{`[2,1,{"roles":[]}]`, "WELCOME.Details.roles must be a dictionary"},
		{`[4,"ticket",{"extra":1}]`, "CHALLENGE.Extra.extra must be a dictionary"},
		{`[16,1,{"acknowledge":"yes"},"t"]`, "PUBLISH.Options.acknowledge must be a bool"},
		{`[36,1,2,{"publisher":"x"}]`, "EVENT.Details.publisher must be an id"},
		{`[49,1,{"mode":"nuke"}]`, "CANCEL.Options.mode has a value that is not allowed"},
		{`[68,1,2,{"timeout":"5"}]`, "INVOCATION.Details.timeout must be a non-negative number of milliseconds below 2^63"},
		{`[8,48,1,{"message":7},"e"]`, "ERROR.Details.message must be a string"},
		{`[64,1,[],"p"]`, "REGISTER.Options must be a dictionary"},
		{`[70,1,"x"]`, "YIELD.Options must be a dictionary"},
	}
	for _, tc := range tests {
		for _, ser := range serializers {
			_, err := decodeIn(t, ser, tc.in)
			requireErrorContains(t, err, tc.want, ser.String()+" "+tc.in)
		}
	}
}

// TestFieldsSetters covers the Fields API a router uses to build Options
// and Details, and how a built Fields is encoded.
func TestFieldsSetters(t *testing.T) {
	var f Fields
	if f.Len() != 0 || f.Has(KeyTimeout) || f.Bool(KeyExcludeMe, true) != true || f.Uint(KeyTimeout) != 0 ||
		f.Str(KeyTopic) != nil || f.String(KeyTopic) != "" || f.Raw(KeyRoles).Present() {
		t.Fatalf("zero Fields is not empty")
	}
	f.SetBool(KeyExcludeMe, false)
	f.SetBool(KeyAcknowledge, true)
	f.SetBool(KeyAcknowledge, false)
	f.SetBool(KeyAcknowledge, true)
	f.SetUint(KeyTimeout, 30000)
	f.SetUint(KeyCaller, MaxID)
	f.SetString(KeyProcedure, "com.example.add")
	f.SetStr(KeyTopic, []byte("com.example.topic"))
	f.SetRaw(KeyExclude, mustEncodeValue(t, MsgPack, []uint64{3, 4}))
	f.SetRaw(KeyAuthExtra, mustEncodeValue(t, CBOR, map[string]any{"b": []byte{9}}))

	if f.Len() != 8 {
		t.Fatalf("Len: got %d, want 8", f.Len())
	}
	if f.Bool(KeyExcludeMe, true) != false || f.Bool(KeyAcknowledge, false) != true {
		t.Fatalf("bools: exclude_me %v acknowledge %v", f.Bool(KeyExcludeMe, true), f.Bool(KeyAcknowledge, false))
	}
	if f.Uint(KeyTimeout) != 30000 || f.Uint(KeyCaller) != MaxID {
		t.Fatalf("uints: %d %d", f.Uint(KeyTimeout), f.Uint(KeyCaller))
	}
	if f.Str(KeyProcedure) != nil || f.String(KeyProcedure) != "com.example.add" {
		t.Fatalf("SetString: Str %q String %q", f.Str(KeyProcedure), f.String(KeyProcedure))
	}
	if string(f.Str(KeyTopic)) != "com.example.topic" || f.String(KeyTopic) != "com.example.topic" {
		t.Fatalf("SetStr: Str %q String %q", f.Str(KeyTopic), f.String(KeyTopic))
	}
	if got := f.IDs(KeyExclude, nil); len(got) != 2 || got[0] != 3 || got[1] != 4 {
		t.Fatalf("IDs: got %v", got)
	}

	// Keys are written in Key order, whatever the order they were set in.
	wantJSON := `{"acknowledge":true,"exclude_me":false,"caller":9007199254740992,"timeout":30000,` +
		`"procedure":"com.example.add","topic":"com.example.topic","exclude":[3,4],"authextra":{"b":"\u0000CQ=="}}`
	w := wr{ser: JSON}
	requireNoError(t, w.writeFields(&f, new([]byte)), "writeFields")
	if string(w.b) != wantJSON {
		t.Fatalf("JSON:\n got %s\nwant %s", w.b, wantJSON)
	}
	for _, ser := range serializers {
		m := mustDecode(t, ser, mustAppend(t, ser, &Message{Type: CodeInvocation, Request: 1, ID: 2, Opt: f}))
		requireValue(t, fieldsDump(t, &f), fieldsDump(t, &m.Opt), ser.String())
	}

	f.Del(KeyTimeout)
	f.Del(KeyTimeout)
	f.Del(KeyAuthExtra)
	if f.Has(KeyTimeout) || f.Uint(KeyTimeout) != 0 || f.Raw(KeyAuthExtra).Present() || f.Len() != 6 {
		t.Fatalf("Del: Has %v Uint %d Len %d", f.Has(KeyTimeout), f.Uint(KeyTimeout), f.Len())
	}
	f.Reset()
	if f.Len() != 0 {
		t.Fatalf("Reset: Len %d", f.Len())
	}
	// A string value set by the router must still be valid JSON text.
	f.SetString(KeyAgent, "bad \xff")
	if _, err := Append(nil, JSON, &Message{Type: CodeWelcome, ID: 1, Opt: f}); err == nil {
		t.Fatalf("invalid UTF-8 agent written as JSON")
	}
}

// TestFieldsEnums checks the typed accessors of the enum keys.
func TestFieldsEnums(t *testing.T) {
	var f Fields
	if f.Match() != MatchExact || f.Invoke() != InvokeSingle || f.CancelMode(CancelKill) != CancelKill {
		t.Fatalf("defaults: %v %v %v", f.Match(), f.Invoke(), f.CancelMode(CancelKill))
	}
	for _, m := range []Match{MatchExact, MatchPrefix, MatchWildcard} {
		f.SetString(KeyMatch, m.String())
		if f.Match() != m {
			t.Errorf("Match %s: got %s", m, f.Match())
		}
		f.SetStr(KeyMatch, []byte(m.String()))
		if f.Match() != m {
			t.Errorf("Match bytes %s: got %s", m, f.Match())
		}
	}
	for _, p := range []Invoke{InvokeSingle, InvokeRoundRobin, InvokeRandom, InvokeFirst, InvokeLast} {
		f.SetString(KeyInvoke, p.String())
		if f.Invoke() != p {
			t.Errorf("Invoke %s: got %s", p, f.Invoke())
		}
	}
	for _, c := range []CancelMode{CancelSkip, CancelKill, CancelKillNoWait} {
		f.SetStr(KeyMode, []byte(c.String()))
		if f.CancelMode(CancelKill) != c {
			t.Errorf("CancelMode %s: got %s", c, f.CancelMode(CancelKill))
		}
	}
	m := mustDecode(t, MsgPack, mustTranscode(t, MsgPack, `[64,1,{"match":"prefix","invoke":"last"},"a."]`))
	if m.Opt.Match() != MatchPrefix || m.Opt.Invoke() != InvokeLast {
		t.Fatalf("decoded: %s %s", m.Opt.Match(), m.Opt.Invoke())
	}
}

func mustTranscode(t testing.TB, to Serializer, jsonText string) []byte {
	t.Helper()
	b, err := Transcode(nil, to, Raw{Ser: JSON, B: []byte(jsonText)})
	requireNoError(t, err, "Transcode")
	return b
}

// TestCopyPPT checks that Payload Passthru Mode keys travel from a CALL's
// Options to an INVOCATION's Details, and nothing else does.
func TestCopyPPT(t *testing.T) {
	for _, ser := range serializers {
		call := mustDecode(t, ser, mustTranscode(t, ser, `[48,1,{"ppt_scheme":"mqtt","ppt_serializer":"native","ppt_cipher":"xsalsa20poly1305",`+
			`"ppt_keyid":"k1","enc_algo":"cryptobox","enc_serializer":"cbor","timeout":5,"receive_progress":true},"p","\u0000AAE="]`))
		var inv Fields
		inv.CopyPPT(&call.Opt)
		got := fieldsDump(t, &inv)
		want := map[string]any{"ppt_scheme": "mqtt", "ppt_serializer": "native", "ppt_cipher": "xsalsa20poly1305",
			"ppt_keyid": "k1", "enc_algo": "cryptobox", "enc_serializer": "cbor"}
		requireValue(t, want, got, ser.String())
	}
}

// TestListHelpers covers Fields.IDs and Fields.Strings on decoded lists in
// each serializer, including escaped JSON strings and chunked CBOR strings
// (which are copied) and buffers that already hold elements.
func TestListHelpers(t *testing.T) {
	for _, ser := range serializers {
		m, err := decodeIn(t, ser, `[16,1,{"exclude":[1,2,9007199254740992,4.0],"eligible":[],"exclude_authid":["a","b\"c","\u00e9"],"authmethods":[]},"t"]`)
		requireNoError(t, err, ser.String())
		ids := m.Opt.IDs(KeyExclude, []uint64{99})
		if want := []uint64{99, 1, 2, MaxID, 4}; fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("%s IDs: got %v, want %v", ser, ids, want)
		}
		if got := m.Opt.IDs(KeyEligible, nil); len(got) != 0 {
			t.Errorf("%s IDs of an empty list: got %v", ser, got)
		}
		if got := m.Opt.IDs(KeyEligibleAuthID, []uint64{5}); len(got) != 1 {
			t.Errorf("%s IDs of an absent key: got %v", ser, got)
		}
		strs := m.Opt.Strings(KeyExcludeAuthID, [][]byte{[]byte("x")})
		if got, want := fmt.Sprintf("%q", strs), `["x" "a" "b\"c" "é"]`; got != want {
			t.Errorf("%s Strings: got %s, want %s", ser, got, want)
		}
		if got := m.Opt.Strings(KeyAuthMethods, nil); len(got) != 0 {
			t.Errorf("%s Strings of an empty list: got %q", ser, got)
		}
	}
	// CBOR chunked strings are joined.
	var f Fields
	f.SetRaw(KeyExcludeAuthRole, Raw{Ser: CBOR, B: mustHex(t, "827f6261626163ff6178")})
	if got := fmt.Sprintf("%q", f.Strings(KeyExcludeAuthRole, nil)); got != `["abc" "x"]` {
		t.Errorf("chunked: got %s", got)
	}
}

// TestUnknownKeysPreserved checks that keys edgewamp does not know pass
// through a decode and re-encode untouched: byte-identical in the same
// serializer, equal in value in the others.
func TestUnknownKeysPreserved(t *testing.T) {
	in := `[48,1,{"x_custom":[1,{"a":2.5}],"timeout":5,"weird":null,"nested":{"deep":[[[]]]},"bin":"\u0000AQID"},"p",[]]`
	for _, ser := range serializers {
		m, err := decodeIn(t, ser, in)
		requireNoError(t, err, ser.String())
		if m.Opt.Len() != 1 || m.Opt.Uint(KeyTimeout) != 5 {
			t.Fatalf("%s: typed keys: %v", ser, fieldsDump(t, &m.Opt))
		}
		want := map[string]any{"x_custom": []any{int64(1), map[string]any{"a": 2.5}}, "timeout": int64(5),
			"weird": nil, "nested": map[string]any{"deep": []any{[]any{[]any{}}}}, "bin": []byte{1, 2, 3}}
		for _, to := range serializers {
			out := mustDecode(t, to, mustAppend(t, to, m))
			requireValue(t, want, mustValue(t, out.Dict), ser.String()+"->"+to.String())
			if to == ser && !bytes.Equal(out.Dict.B, m.Dict.B) {
				t.Fatalf("%s: Dict bytes changed: %s -> %s", ser, show(ser, m.Dict.B), show(ser, out.Dict.B))
			}
		}
		// While Dict is present, Opt changes are not written: the router
		// builds a new message (Dict zero) to change keys.
		m.Opt.SetUint(KeyTimeout, 6)
		out := mustDecode(t, ser, mustAppend(t, ser, m))
		if out.Opt.Uint(KeyTimeout) != 5 {
			t.Fatalf("%s: Opt written although Dict is present", ser)
		}
		m.Dict = Raw{}
		out = mustDecode(t, ser, mustAppend(t, ser, m))
		if out.Opt.Uint(KeyTimeout) != 6 || strings.Contains(string(mustAppend(t, JSON, m)), "x_custom") {
			t.Fatalf("%s: Opt not written once Dict is cleared", ser)
		}
	}
}

// TestDuplicateKeys pins what happens to a key given twice: the last value
// wins, in the typed view and in DecodeValue.
func TestDuplicateKeys(t *testing.T) {
	for _, ser := range serializers {
		m, err := decodeIn(t, ser, `[48,1,{"timeout":1,"timeout":2},"p"]`)
		requireNoError(t, err, ser.String())
		if m.Opt.Uint(KeyTimeout) != 2 {
			t.Errorf("%s: timeout %d, want 2", ser, m.Opt.Uint(KeyTimeout))
		}
		requireValue(t, map[string]any{"timeout": int64(2)}, mustValue(t, m.Dict), ser.String())
	}
}
