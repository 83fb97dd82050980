package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgewamp/edgewamp/proto"
)

// Bridge request bodies: {"args": [...], "kwargs": {...}, "options":
// {...}}. They are split without decoding args and kwargs (which go to
// the router as they are): one validation pass (encoding/json's Valid:
// syntax and nesting, no allocation) and a walk over the top-level
// members. Only the small options object is decoded. Unknown members are
// refused, so that a typo ("kwarg") is an error and not a silent empty
// call.

// bridgeBody is a split bridge body; the slices alias the body.
type bridgeBody struct {
	args, kwargs, options []byte
}

// splitBody splits and checks a bridge body; nil is an empty body.
func splitBody(body []byte) (bridgeBody, *problem) {
	var b bridgeBody
	if body == nil {
		return b, nil
	}
	if !json.Valid(body) {
		// Valid says only yes or no; the decoder says where and why.
		var v any
		p := decodeStrict(body, &v)
		if p == nil {
			p = newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "malformed JSON body")
		}
		return b, p
	}
	i := skipWS(body, 0)
	if body[i] != '{' {
		return b, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "the body must be a JSON object")
	}
	i = skipWS(body, i+1)
	var seen [3]bool // args, kwargs, options: given (null too)
	for body[i] != '}' {
		kEnd := skipValue(body, i) // the key: a string
		key := memberName(body[i:kEnd])
		i = skipWS(body, kEnd)
		i = skipWS(body, i+1) // ':'
		vEnd := skipValue(body, i)
		val := body[i:vEnd]
		var dst *[]byte
		var n int
		switch string(key) {
		case "args":
			dst, n = &b.args, 0
		case "kwargs":
			dst, n = &b.kwargs, 1
		case "options":
			dst, n = &b.options, 2
		default:
			return b, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "unknown member "+nameText(key)+" (want args, kwargs, options)")
		}
		if seen[n] {
			// Also when the first was null: before, {"args":null,
			// "args":[1]} called with [1], which a reader taking the
			// first value (a filter in front of the gateway) read as
			// no arguments.
			return b, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "member "+strconv.Quote(string(key))+" given twice")
		}
		seen[n] = true
		if string(val) != "null" {
			*dst = val
		}
		i = skipWS(body, vEnd)
		if body[i] == ',' {
			i = skipWS(body, i+1)
		}
	}
	if b.args != nil && b.args[0] != '[' {
		return b, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "args must be a JSON array")
	}
	if b.kwargs != nil && b.kwargs[0] != '{' {
		return b, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "kwargs must be a JSON object")
	}
	if b.options != nil && b.options[0] != '{' {
		return b, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options must be a JSON object")
	}
	if jsonDepth(b.args) > proto.MaxDepth || jsonDepth(b.kwargs) > proto.MaxDepth {
		return b, newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "args or kwargs nest deeper than "+strconv.Itoa(proto.MaxDepth)+" levels")
	}
	// Their WAMP check (wampJSON) is the caller's: callReq.checkWAMP,
	// pubReq.checkWAMP.
	return b, nil
}

// memberName returns the name of an object member, q its JSON string
// (quotes included; valid JSON): the bytes between the quotes, or, when
// written with escapes ("\u0061rgs" is "args" to any JSON parser), the
// name decoded. Before, an escaped name was refused as an unknown member.
func memberName(q []byte) []byte {
	key := q[1 : len(q)-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		var k string
		if json.Unmarshal(q, &k) == nil {
			key = []byte(k)
		}
	}
	return key
}

// nameText quotes a member name the gateway does not know for a
// problem's detail: its first 64 bytes (to a rune's start), then "...".
// The whole name was quoted: a body of max_body (1 MiB) naming one
// member with 340,000 U+2028 (a character strconv.Quote escapes) was
// answered 400 with 2.4 MB, about 48 MB allocated on the way.
func nameText(name []byte) string {
	const most = 64
	if len(name) <= most {
		return strconv.Quote(string(name))
	}
	n := most
	for n > 0 && !utf8.RuneStart(name[n]) {
		n--
	}
	return strconv.Quote(string(name[:n])) + "..."
}

// callOptionNames and publishOptionNames are the names a bridge call's
// and a publication's options take, as written: their structs' json
// names.
var (
	callOptionNames    = jsonNames(callOptions{})
	publishOptionNames = jsonNames(publishOptions{})
)

// jsonNames returns the json names of the fields of struct v.
func jsonNames(v any) []string {
	t := reflect.TypeOf(v)
	names := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// optionNames checks the member names of an options object (valid JSON,
// checked before decodeStrict decodes it): each one of known, written
// exactly (escapes decoded), and none twice. Any other name is refused
// as unknown, as it always was (a typo, "timout", is not a call with
// the default timeout), where the decoder's refusal had called a
// well-formed body "malformed JSON body: json: unknown field". The
// decoder matches a name regardless of case, Unicode's folding included ("DISCLOSE_ME", "Retain", a long s in
// "di\u017fclo\u017fe_me" were taken), and takes the last value of a
// name given twice: a filter in front of the gateway (a WAF, an audit of
// the options) reading the names as written, or the first value, saw
// another call or publication than the one made
// ({"acknowledge":true,"acknowledge":false} was published unacknowledged).
// The members of the body itself are matched exactly too (splitBody).
func optionNames(obj []byte, known []string) *problem {
	var seen uint64 // by index in known
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	for i = skipWS(obj, i+1); obj[i] != '}'; {
		kEnd := skipValue(obj, i)
		name := memberName(obj[i:kEnd])
		k := slices.Index(known, string(name))
		switch {
		case k < 0:
			return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options: unknown member "+nameText(name)+" (want "+strings.Join(known, ", ")+", written so)")
		case seen&(1<<k) != 0:
			return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options: member "+strconv.Quote(string(name))+" given twice")
		}
		seen |= 1 << k
		i = skipWS(obj, kEnd)
		i = skipWS(obj, i+1) // ':'
		vEnd := skipValue(obj, i)
		if p := optionType(string(name), obj[i:vEnd]); p != nil {
			return p
		}
		if i = skipWS(obj, vEnd); obj[i] == ',' {
			i = skipWS(obj, i+1)
		}
	}
	return nil
}

// optionType checks the value val (valid JSON) of the option name, one
// of the names optionNames knows, to be of the type it takes (null: as
// if absent): an integer for timeout, true or false for acknowledge,
// retain and disclose_me; the lists are checked by lists. The decoder's
// refusal read "malformed JSON body: json: cannot unmarshal string into
// Go struct field callOptions.timeout of type int64", for a well-formed
// body, in a Go struct's words.
func optionType(name string, val []byte) *problem {
	if string(val) == "null" {
		return nil
	}
	switch name {
	case "timeout":
		if val[0] != '-' && (val[0] < '0' || val[0] > '9') || bytes.ContainsAny(val, ".eE") {
			return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options: timeout must be an integer (milliseconds), not "+jsonKind(val))
		}
		if val[0] == '-' && string(val) != "-0" {
			return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options.timeout must not be negative")
		}
		// Within int64 (callOptions.Timeout), compared as text: no
		// allocation.
		if d := len(val); d > 19 || d == 19 && string(val) > "9223372036854775807" {
			return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options: timeout must be an integer (milliseconds) up to 9223372036854775807")
		}
	case "acknowledge", "retain", "disclose_me":
		if string(val) != "true" && string(val) != "false" {
			return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "options: "+name+" must be true or false, not "+jsonKind(val))
		}
	}
	return nil
}

// jsonKind names the kind of the JSON value val for a problem's detail:
// a number or a literal as written (up to 32 bytes), else its kind.
func jsonKind(val []byte) string {
	switch val[0] {
	case '"':
		return "a string"
	case '[':
		return "a list"
	case '{':
		return "an object"
	}
	if len(val) > 32 {
		return "a number of " + strconv.Itoa(len(val)) + " digits"
	}
	return string(val)
}

// wampJSON reports whether args and kwargs (nil: absent) are WAMP values
// in JSON as the router checks a WebSocket peer's payload
// (proto.ValidArgs, ValidKwargs): valid JSON is not enough, a binary
// string ("\u0000" + base64) must hold standard padded base64 and be no
// dictionary key, and no dictionary key may be "__proto__" (Autobahn|JS's
// MsgPack throws on it, and the peer's process exits). JSON peers get
// these bytes as they are, and Autobahn|Python drops its connection on
// such a string; so does this repository's client.
func wampJSON(args, kwargs []byte) bool {
	return (args == nil || proto.ValidArgs(proto.Raw{Ser: proto.JSON, B: args}, false)) &&
		(kwargs == nil || proto.ValidKwargs(proto.Raw{Ser: proto.JSON, B: kwargs}))
}

// notWAMPValues names what the router refuses in JSON that is well
// formed (proto.CheckArgs): the 400's detail, and an HTTP callee's
// answer's error.
const notWAMPValues = `a binary string ("\u0000" + base64) with malformed base64, or as a dictionary key, a dictionary key "__proto__", an integer beyond 8192 bits, a number beyond float64's range (1e400), or a float written in more than 4 KiB`

func problemNotWAMP() *problem {
	return newProblem(http.StatusBadRequest, proto.URIInvalidArgument, "args or kwargs are not WAMP values: "+notWAMPValues)
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the JSON value starting at b[i]. b must
// be valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipValue(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}
