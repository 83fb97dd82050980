package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Route expressions.
//
// A route's args and kwargs are templates: any YAML value, in which a
// string of the form
//
//	$<JSON Pointer>[|<conversion>][?]
//
// is replaced by the value the pointer (RFC 6901) designates in the
// request's context:
//
//	{"path":    {"id": "17"},                     path parameters ({id} in the pattern)
//	 "query":   {"verbose": "1"},                 query parameters (one given twice is refused)
//	 "headers": {"x-trace": "..."},               request headers, lower-case names (a pointer's name is lowered too; a list's lines joined, another given twice refused)
//	 "body":    <the JSON body>,
//	 "auth":    {"authid": "...", "authrole": "...", "method": "jwt"},
//	 "claims":  {<the bearer token's claims>}}
//
// Conversions: int, float, bool, string, json (parse a string as JSON).
// Path, query and header values are strings; "$/path/id|int" makes one a
// number. A trailing "?" makes the value optional: when the request lacks
// it, an object member is left out and an array element is null (without
// "?" the request gets 400 naming the missing value). A literal string
// that starts with "$" is written "$$…".
//
// Examples: args: ["$/path/id|int", "$/body/state"]; kwargs:
// {verbose: "$/query/verbose|bool?", by: "$/auth/authid"}; args:
// "$/body/args" (the whole list from the body).
//
// A route's response body is "$" (the whole result, {"args":[...],
// "kwargs":{...}}) or a pointer into it: "$/args/0", "$/kwargs/state".

// tmpl is a compiled template.
type tmpl struct {
	lit  []byte // literal JSON (kind lit)
	ptr  *pointer
	arr  []*tmpl
	keys []string // object keys, sorted
	vals []*tmpl
	kind tmplKind
}

type tmplKind uint8

const (
	tLit tmplKind = iota
	tPtr
	tArr
	tObj
)

// pointer is "$/a/b|conv?".
type pointer struct {
	src      string // as written
	tokens   []string
	conv     string
	optional bool
}

var conversions = map[string]bool{"": true, "int": true, "float": true, "bool": true, "string": true, "json": true}

// parsePointer parses an expression string (starting with "$").
func parsePointer(s string) (*pointer, error) {
	p := &pointer{src: s}
	body := s[1:]
	if strings.HasSuffix(body, "?") {
		p.optional = true
		body = body[:len(body)-1]
	}
	if i := strings.LastIndexByte(body, '|'); i >= 0 {
		p.conv = body[i+1:]
		body = body[:i]
	}
	if !conversions[p.conv] {
		return nil, fmt.Errorf("%q: unknown conversion %q (int, float, bool, string, json)", s, p.conv)
	}
	if body == "" {
		return p, nil
	}
	if body[0] != '/' {
		return nil, fmt.Errorf("%q: a pointer after $ starts with / (write $$ for a literal $)", s)
	}
	for _, t := range strings.Split(body[1:], "/") {
		t = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
		p.tokens = append(p.tokens, t)
	}
	return p, nil
}

// compileTmpl compiles a template value (as decoded from YAML or JSON).
// check validates each pointer (e.g. that a path parameter exists).
func compileTmpl(v any, check func(*pointer) error) (*tmpl, error) {
	switch x := v.(type) {
	case string:
		if strings.HasPrefix(x, "$$") {
			b, _ := json.Marshal(x[1:])
			return &tmpl{kind: tLit, lit: b}, nil
		}
		if strings.HasPrefix(x, "$") {
			p, err := parsePointer(x)
			if err != nil {
				return nil, err
			}
			if err := check(p); err != nil {
				return nil, err
			}
			return &tmpl{kind: tPtr, ptr: p}, nil
		}
		b, _ := json.Marshal(x)
		return &tmpl{kind: tLit, lit: b}, nil
	case []any:
		t := &tmpl{kind: tArr}
		for _, e := range x {
			c, err := compileTmpl(e, check)
			if err != nil {
				return nil, err
			}
			t.arr = append(t.arr, c)
		}
		return t, nil
	case map[string]any:
		t := &tmpl{kind: tObj}
		for k := range x {
			t.keys = append(t.keys, k)
		}
		sort.Strings(t.keys)
		for _, k := range t.keys {
			c, err := compileTmpl(x[k], check)
			if err != nil {
				return nil, err
			}
			t.vals = append(t.vals, c)
		}
		return t, nil
	case map[any]any:
		m := map[string]any{}
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("object keys must be strings, not %v", k)
			}
			m[ks] = e
		}
		return compileTmpl(m, check)
	case nil, bool, int, int64, uint64, float64, json.Number:
		if f, ok := x.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			return nil, fmt.Errorf("%v has no JSON form", f)
		}
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		return &tmpl{kind: tLit, lit: b}, nil
	}
	return nil, fmt.Errorf("unsupported value %v (%T)", v, v)
}

// missingError is a required value the request lacks.
type missingError struct{ ptr *pointer }

func (e *missingError) Error() string {
	return "the request lacks /" + strings.Join(e.ptr.tokens, "/")
}

// eval renders t against ctx as JSON; ok is false for an optional value
// that is absent.
func (t *tmpl) eval(b []byte, ctx any) (_ []byte, ok bool, err error) {
	switch t.kind {
	case tLit:
		return append(b, t.lit...), true, nil
	case tPtr:
		v, found, twice := lookupIn(ctx, t.ptr.tokens, true)
		if twice > 0 {
			return b, false, &twiceError{t.ptr.tokens[:twice]}
		}
		if !found {
			if t.ptr.optional {
				return b, false, nil
			}
			return b, false, &missingError{t.ptr}
		}
		if s, ok := v.(string); ok && !utf8.ValidString(s) {
			// A path segment or query value with a %FF, a header with an
			// obs-text byte: JSON has no form for it, and json.Marshal
			// wrote U+FFFD in its place (the callee got another value,
			// and /files/%FF was /files/%FE). Refused, as the bridge
			// refuses a body that is not UTF-8.
			return b, false, &textError{t.ptr}
		}
		v, err := convert(v, t.ptr)
		if err != nil {
			return b, false, err
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return b, false, err
		}
		return append(b, enc...), true, nil
	case tArr:
		b = append(b, '[')
		for i, e := range t.arr {
			if i > 0 {
				b = append(b, ',')
			}
			var ok bool
			b, ok, err = e.eval(b, ctx)
			if err != nil {
				return b, false, err
			}
			if !ok {
				b = append(b, "null"...)
			}
		}
		return append(b, ']'), true, nil
	case tObj:
		b = append(b, '{')
		first := true
		for i, k := range t.keys {
			mark := len(b)
			if !first {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			var ok bool
			b, ok, err = t.vals[i].eval(b, ctx)
			if err != nil {
				return b, false, err
			}
			if !ok {
				b = b[:mark]
				continue
			}
			first = false
		}
		return append(b, '}'), true, nil
	}
	return b, false, nil
}

// lookup follows tokens into a decoded JSON value, or into a rawJSON one
// (a request's body, a call's result) without decoding it; of a member
// an object gives twice, the last (as encoding/json decodes it).
func lookup(v any, tokens []string) (any, bool) {
	v, found, _ := lookupIn(v, tokens, false)
	return v, found
}

// lookupIn is lookup; with once (a request's values, which a route's
// arguments are built from), a member a rawJSON object gives twice is
// not taken: twice is then the number of tokens up to it (found false),
// else 0. Before, the last value was taken ({"id":1,"id":2} called with
// 2), where a filter in front of the gateway reading the first saw 1;
// the bridge refuses a body naming its members twice (splitBody).
func lookupIn(v any, tokens []string, once bool) (_ any, found bool, twice int) {
	for n, t := range tokens {
		switch x := v.(type) {
		case rawJSON:
			m, ok, again := rawMember(x, t, once)
			if again {
				return nil, false, n + 1
			}
			if !ok {
				return nil, false, 0
			}
			v = rawJSON(m)
		case map[string]any:
			var ok bool
			if v, ok = x[t]; !ok {
				return nil, false, 0
			}
			if _, again := v.(repeatedValue); again && once {
				return nil, false, n + 1
			}
		case []any:
			i, err := strconv.Atoi(t)
			if err != nil || i < 0 || i >= len(x) || (len(t) > 1 && t[0] == '0') {
				return nil, false, 0
			}
			v = x[i]
		default:
			return nil, false, 0
		}
	}
	return v, true, 0
}

// repeatedValue stands for a query parameter or header the request
// gives more than once (compiledRoute.build): no value is taken of it.
type repeatedValue struct{}

// twiceError is a member of the request's body, named by a route's
// pointer, that the body gives twice, or a query parameter or header the
// request gives more than once (repeatedValue).
type twiceError struct{ tokens []string }

func (e *twiceError) Error() string {
	return "/" + strings.Join(e.tokens, "/") + " is given twice"
}

// textError is a string of the request that is not UTF-8 text.
type textError struct{ ptr *pointer }

func (e *textError) Error() string {
	return "/" + strings.Join(e.ptr.tokens, "/") + " is not UTF-8 text"
}

// rawJSON is a JSON value as its bytes: valid JSON with no white space
// around it. A request's body and a call's result are looked into as
// they are (lookup, rawMember), and a value taken without a conversion
// goes on as its bytes (MarshalJSON); only a scalar that a conversion
// needs is decoded. Decoded whole into Go values first, a body of
// max_body (1 MiB) of empty objects made about 47 MB of allocations and
// 34 MB of live values (a map for every 3 bytes), for a member of a few
// bytes.
type rawJSON []byte

// MarshalJSON implements json.Marshaler: the value's bytes (which
// encoding/json compacts, as it writes a decoded value).
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// rawMember returns the value of member t of the object raw (the last of
// that name, as encoding/json decodes an object whose names repeat; with
// once, none, and twice set, when the name repeats), or element t of the
// array raw (a decimal index without leading zeros, as lookup takes it),
// without decoding anything else. raw must be valid JSON without
// surrounding white space; so is the value returned.
func rawMember(raw []byte, t string, once bool) (_ []byte, _ bool, twice bool) {
	switch raw[0] {
	case '{':
		var found []byte
		ok := false
		for i := skipWS(raw, 1); raw[i] != '}'; {
			kEnd := skipValue(raw, i) // the name: a string
			name := raw[i+1 : kEnd-1]
			match := string(name) == t
			if bytes.IndexByte(name, '\\') >= 0 {
				match = nameIs(name, t)
			}
			i = skipWS(raw, kEnd)
			i = skipWS(raw, i+1) // ':'
			vEnd := skipValue(raw, i)
			if match {
				if ok && once {
					return nil, false, true
				}
				found, ok = raw[i:vEnd], true
			}
			if i = skipWS(raw, vEnd); raw[i] == ',' {
				i = skipWS(raw, i+1)
			}
		}
		return found, ok, false
	case '[':
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || (len(t) > 1 && t[0] == '0') {
			return nil, false, false
		}
		for i, k := skipWS(raw, 1), 0; raw[i] != ']'; k++ {
			vEnd := skipValue(raw, i)
			if k == n {
				return raw[i:vEnd], true, false
			}
			if i = skipWS(raw, vEnd); raw[i] == ',' {
				i = skipWS(raw, i+1)
			}
		}
	}
	return nil, false, false
}

// nameIs reports whether the contents of a JSON string (between its
// quotes; valid JSON) decode to t, as encoding/json decodes them (a
// surrogate pair as its rune, a lone surrogate and a byte that is not
// UTF-8 as U+FFFD), without allocating. Each name written with escapes
// was decoded into a string of its own, for every pointer into the body:
// a body of max_body (1 MiB) of names such as "\u0062" cost a route with
// three pointers 855,000 allocations and 51 MB, where the same body with
// plain names cost 250 and 2 MB (a 16 MiB body_limit about 800 MB).
func nameIs(s []byte, t string) bool {
	j := 0 // into t
	var enc [utf8.UTFMax]byte
	for r := 0; r < len(s); {
		c := s[r]
		var rr rune
		switch {
		case c == '\\' && r+1 < len(s) && s[r+1] == 'u':
			if rr = hex4(s[r:]); rr < 0 {
				return false
			}
			r += 6
			if utf16.IsSurrogate(rr) {
				if dec := utf16.DecodeRune(rr, hex4(s[r:])); dec != unicode.ReplacementChar {
					rr = dec
					r += 6
				} else {
					rr = unicode.ReplacementChar
				}
			}
		case c == '\\':
			if r+1 >= len(s) {
				return false
			}
			switch c = s[r+1]; c {
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			}
			r += 2
			rr = rune(c)
		case c < utf8.RuneSelf:
			r++
			rr = rune(c)
		default:
			var size int
			rr, size = utf8.DecodeRune(s[r:])
			r += size
		}
		n := utf8.EncodeRune(enc[:], rr)
		if len(t)-j < n || t[j:j+n] != string(enc[:n]) {
			return false
		}
		j += n
	}
	return j == len(t)
}

// hex4 returns the rune of the escape \uXXXX at the start of s, or -1.
func hex4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// asRawJSON checks that b is one JSON value and returns it as a rawJSON
// (white space around it trimmed), or the reason it is not, found without
// decoding it into Go values.
func asRawJSON(b []byte) (rawJSON, error) {
	if !json.Valid(b) {
		var r json.RawMessage
		err := json.Unmarshal(b, &r) // the syntax error, found by the scanner alone
		if err == nil {
			err = errors.New("not one JSON value")
		}
		return nil, err
	}
	return rawJSON(bytes.TrimSpace(b)), nil
}

// convError is a value that cannot be converted.
type convError struct {
	ptr *pointer
	v   any
}

func (e *convError) Error() string {
	what := map[string]string{"int": "an integer", "float": "a number", "bool": "a boolean (true/false, 1/0, yes/no)",
		"string": "a string, number or boolean", "json": "a string holding a JSON document"}[e.ptr.conv]
	return fmt.Sprintf("%s must be %s, not %s", "/"+strings.Join(e.ptr.tokens, "/"), what, shortJSON(e.v))
}

func shortJSON(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 64 {
		b = append(b[:61], "..."...)
	}
	return string(b)
}

// maxExactFloat is 2^53: past it a float64 is not the integer a token's
// issuer wrote, only the nearest one it can hold.
const maxExactFloat = 1 << 53

// exactInt reports whether f is an integer a float64 holds exactly (within
// ±2^53, 2^53 itself being also 2^53+1 rounded), and returns it.
func exactInt(f float64) (int64, bool) {
	if f != math.Trunc(f) || math.Abs(f) >= maxExactFloat {
		return 0, false
	}
	return int64(f), true
}

// convert applies p's conversion to v: a value of the request (strings,
// and the body's numbers as json.Number) or of a bearer token's claims,
// whose numbers its verifier decoded as float64 (or Go integers): before,
// "|int", "|float" and "|string" refused every numeric claim ("must be an
// integer, not 42").
func convert(v any, p *pointer) (any, error) {
	if r, ok := v.(rawJSON); ok {
		switch {
		case p.conv == "":
			return r, nil // as it is
		case r[0] == '{' || r[0] == '[':
			return nil, &convError{p, r} // no conversion takes one
		}
		d, err := decodeJSON(r) // a scalar
		if err != nil {
			return nil, err
		}
		v = d
	}
	switch x := v.(type) {
	case int:
		v = json.Number(strconv.Itoa(x))
	case int64:
		v = json.Number(strconv.FormatInt(x, 10))
	case float64:
		if i, ok := exactInt(x); ok {
			v = json.Number(strconv.FormatInt(i, 10))
		} else if x == math.Trunc(x) && p.conv != "float" && p.conv != "" {
			return nil, &convError{p, v} // an integer past 2^53: not exact
		} else if !math.IsNaN(x) && !math.IsInf(x, 0) && p.conv != "" {
			v = json.Number(strconv.FormatFloat(x, 'g', -1, 64))
		}
	}
	switch p.conv {
	case "":
		return v, nil
	case "int":
		switch x := v.(type) {
		case json.Number:
			if i, err := x.Int64(); err == nil {
				return i, nil
			}
			// An integral number written as a float (3.0, -2e0: what
			// Python's json.dumps(3.0) sends), held exactly.
			if f, err := x.Float64(); err == nil {
				if i, ok := exactInt(f); ok {
					return i, nil
				}
			}
		case string:
			if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
				return i, nil
			}
		}
	case "float":
		var text string
		switch x := v.(type) {
		case json.Number:
			text = string(x)
		case string:
			text = strings.TrimSpace(x)
		default:
			return nil, &convError{p, v}
		}
		if f, err := strconv.ParseFloat(text, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
			return floatJSON(f), nil
		}
	case "bool":
		switch x := v.(type) {
		case bool:
			return x, nil
		case json.Number: // 1 and 0, as the strings "1" and "0"
			switch f, err := x.Float64(); {
			case err == nil && f == 1:
				return true, nil
			case err == nil && f == 0:
				return false, nil
			}
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true", "1", "yes", "on":
				return true, nil
			case "false", "0", "no", "off", "":
				return false, nil
			}
		}
	case "string":
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number:
			return x.String(), nil
		case bool:
			return strconv.FormatBool(x), nil
		}
	case "json":
		// Checked and passed on as its bytes (rawJSON), not decoded into
		// Go values and written again: 48 times a string of empty
		// objects, before the request was admitted.
		if s, ok := v.(string); ok {
			if r, err := asRawJSON([]byte(s)); err == nil {
				return r, nil
			}
		}
	}
	return nil, &convError{p, v}
}

// floatJSON is f as a JSON number the router reads as a float: with a
// decimal point or an exponent. Before, "|float" of 2 wrote "2", which
// reached every callee as an integer.
func floatJSON(f float64) json.Number {
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return json.Number(s)
}

// decodeJSON decodes a JSON document keeping numbers exact.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if !atEnd(d) {
		return nil, fmt.Errorf("data after the JSON value")
	}
	return v, nil
}

// atEnd reports whether d, having decoded a value, has only white space
// left. Not Decoder.More, which says false before a closing bracket: with
// it `{"a":1}]` and `{"a":1}}` were taken for `{"a":1}`.
func atEnd(d *json.Decoder) bool {
	_, err := d.Token()
	return err == io.EOF
}

// newJSONEncoder returns an encoder that leaves <, > and & alone.
func newJSONEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}
