package proto

import (
	"encoding/base64"
	"encoding/json"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// jsonSkip is the payload fast path; skipTokens is the general token walk.
// They must accept the same values, end at the same place and refuse with
// the same error.
func checkJSONSkip(t *testing.T, b []byte) {
	t.Helper()
	fast := rd{b: b, ser: JSON}
	slow := rd{b: b, ser: JSON}
	ef, es := fast.jsonSkip(1), slow.skipTokens(1)
	if ef != es {
		t.Fatalf("%q: jsonSkip error %v, token walk error %v", b, ef, es)
	}
	if ef == nil && fast.i != slow.i {
		t.Fatalf("%q: jsonSkip ends at %d, token walk at %d", b, fast.i, slow.i)
	}
	if len(b) > 0 && b[0] == '"' {
		end, esc, err := jsonScanString(b, 0)
		rend, resc, rerr := refScanString(b)
		if err != rerr || (err == nil && (end != rend || esc != resc)) {
			t.Fatalf("%q: jsonScanString = %d, %v, %v; byte by byte = %d, %v, %v", b, end, esc, err, rend, resc, rerr)
		}
	}
}

// refScanString is jsonScanString written the obvious way, a byte at a time.
func refScanString(b []byte) (end int, esc bool, err error) {
	high := false
	i := 1
	for {
		if i >= len(b) {
			return 0, false, ErrTruncated
		}
		c := b[i]
		switch {
		case c == '"':
			if high && !utf8.Valid(b[1:i]) {
				return 0, false, ErrBadUTF8
			}
			return i, esc, nil
		case c < 0x20:
			return 0, false, ErrBadSyntax
		case c >= 0x80:
			high = true
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				return 0, false, ErrTruncated
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+6 > len(b) {
					return 0, false, ErrTruncated
				}
				for _, h := range b[i+2 : i+6] {
					if !strings.ContainsRune("0123456789abcdefABCDEF", rune(h)) {
						return 0, false, ErrBadEscape
					}
				}
				i += 5
			default:
				return 0, false, ErrBadEscape
			}
		}
		i++
	}
}

var jsonSkipCases = []string{
	`"plain ascii string that is longer than eight bytes"`, `""`, `"a"`, `"1234567"`, `"12345678"`,
	`"\u0000AQID"`, `"quote \" inside"`, `"tail\\"`, `"x\u00e9y"`, `"bad \u00zz"`, `"bad \q"`,
	"\"ctrl \x01 inside\"", "\"ctrl\x1f\"", "\"tab\tin a long string\"", "\"\x7f is fine\"",
	"\"h\xc3\xa9llo w\xc3\xb6rld, long enough for words\"", "\"bad utf8 \xc3\x28 here\"",
	"\"\xff\"", "\"unterminated long string", `"\`, `"\u12`, `"\u1234"`, `"\ud83d\ude00"`,
	`1`, `-0`, `-`, `-x`, `01`, `1.`, `1.5`, `1e`, `1e+`, `1E-7`, `1e400`, `-1e400`, `1e-400`,
	`123456789012345678901234567890`, `1.` + strings.Repeat("9", 400), strings.Repeat("9", 301) + ".5",
	strings.Repeat("9", 309) + ".0", `true`, `tru`, `false`, `null`, `nul`, `x`, ``, ` `, `]`,
	`[]`, `[ ]`, `[1,2 , 3 ]`, `[1,]`, `[,1]`, `[1 2]`, `[`, `[1`, `{}`, `{ }`, `{"a":1}`,
	`{"a" : [1,{"b":null}] , "c":"d"}`, `{"a":1,}`, `{1:2}`, `{"a"}`, `{"a":}`, `{"a" 1}`,
	`{[]:1}`, `{x:1}`, `{"a":1 "b":2}`, `{`, `{"`, `{"a":1`,
	`{"\u0000AQID":1}`, `{"\u0000":1}`, `{"a\u0000":1}`, `{"\\u0000":1}`, `[{"k":{"\u0000AQ==":null}}]`,
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	strings.Repeat(`{"k":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth),
}

func TestJSONSkipMatchesTokenWalk(t *testing.T) {
	for _, c := range jsonSkipCases {
		checkJSONSkip(t, []byte(c))
		checkJSONSkip(t, []byte(c+" trailing"))
	}
	// Random texts over JSON's alphabet, biased towards strings so that
	// the 8-byte scan meets quotes, escapes, controls and UTF-8 in every
	// lane.
	const alphabet = "\"\"\"\\\\abcdefgh  u0019eE+-.,:[]{}tn\x01\x1f\x7f\x80\xc3\xa9\xe2\x82\xac\xff"
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 0, 64)
	for range 200000 {
		buf = buf[:0]
		switch rng.IntN(3) {
		case 0:
			buf = append(buf, '"')
		case 1:
			buf = append(buf, '[', '"')
		}
		for n := rng.IntN(40); n > 0; n-- {
			buf = append(buf, alphabet[rng.IntN(len(alphabet))])
		}
		checkJSONSkip(t, buf)
	}
}

// TestJSONBinaryBase64 checks binary strings ("\u0000" + base64): the
// scan (jsonScanBinary's one pass, else jsonScanString and jsonBase64OK)
// accepts exactly those whose base64, escapes resolved, is standard and
// padded, as encoding/json and encoding/base64 read them, with jsonSkip
// and the token walk agreeing. Unpadded and malformed base64 passed the
// scan before, to reach JSON peers as it came.
func TestJSONBinaryBase64(t *testing.T) {
	ref := func(b []byte) bool {
		var s string
		if json.Unmarshal(b, &s) != nil || len(s) == 0 || s[0] != 0 {
			return false
		}
		s = s[1:]
		if len(s)%4 != 0 || strings.ContainsAny(s, "\r\n") {
			return false
		}
		_, err := base64.StdEncoding.DecodeString(s)
		return err == nil
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	const odd = "====\"\\/-_!. \x01\x80\xc3\xa9n"
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300000 {
		buf := []byte(`"\u0000`)
		for n := rng.IntN(30); n > 0; n-- {
			if rng.IntN(12) == 0 {
				buf = append(buf, odd[rng.IntN(len(odd))])
			} else {
				buf = append(buf, alphabet[rng.IntN(len(alphabet))])
			}
		}
		switch rng.IntN(4) {
		case 0:
			buf = append(buf, '=')
		case 1:
			buf = append(buf, '=', '=')
		}
		if rng.IntN(8) > 0 {
			buf = append(buf, '"')
		}
		r := rd{b: buf, ser: JSON}
		err := r.jsonSkip(1)
		if want := ref(buf); (err == nil && r.i == len(buf)) != want {
			t.Fatalf("%q: jsonSkip %v (at %d of %d), want accepted %v", buf, err, r.i, len(buf), want)
		}
		checkJSONSkip(t, buf)
		if end, ok := jsonScanBinary(buf, 0); ok {
			if e2, _, err := jsonScanString(buf, 0); err != nil || e2 != end || !jsonBase64OK(buf[7:end]) {
				t.Fatalf("%q: jsonScanBinary ends at %d; jsonScanString %d, %v", buf, end, e2, err)
			}
		}
	}
}

func FuzzJSONSkip(f *testing.F) {
	for _, c := range jsonSkipCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkJSONSkip)
}

// TestJSONNumber covers jsonNumber's one-pass integer path and its general
// path against strconv.
func TestJSONNumber(t *testing.T) {
	for _, c := range []string{
		"0", "7", "48", "7814135", "1000,", "1000]", "1000}", "1000 ", "9007199254740992",
		"1234567890123456789", "12345678901234567890", "18446744073709551615",
		"18446744073709551616", "99999999999999999999", "123456789012345678901234567890",
		"-1", "-0", "-9223372036854775808", "1.5", "10.25", "1e3", "1E3", "12e-2", "7.", "7e",
	} {
		r := rd{b: []byte(c), ser: JSON}
		var tk tok
		err := r.jsonNumber(&tk)
		num := strings.TrimRight(c, ",]} ")
		switch {
		case strings.HasSuffix(num, ".") || strings.HasSuffix(num, "e"):
			if err != ErrBadNumber {
				t.Errorf("%q: err %v, want ErrBadNumber", c, err)
			}
			continue
		case err != nil:
			t.Errorf("%q: %v", c, err)
			continue
		case r.i != len(num):
			t.Errorf("%q: ends at %d, want %d", c, r.i, len(num))
		}
		if strings.ContainsAny(num, ".eE") {
			f, _ := strconv.ParseFloat(num, 64)
			if tk.k != kFloat || tk.f != f {
				t.Errorf("%q: kind %d value %v, want float %v", c, tk.k, tk.f, f)
			}
			continue
		}
		if num[0] == '-' {
			v, _ := strconv.ParseInt(num, 10, 64)
			if got := -1 - int64(tk.u); tk.k != kInt || (v != 0 && (!tk.neg || got != v)) || (v == 0 && (tk.neg || tk.u != 0)) {
				t.Errorf("%q: kind %d neg %v u %d, want %d", c, tk.k, tk.neg, tk.u, v)
			}
			continue
		}
		u, perr := strconv.ParseUint(num, 10, 64)
		if perr != nil {
			if tk.k != kBig || string(tk.s) != num {
				t.Errorf("%q: kind %d s %q, want a big integer", c, tk.k, tk.s)
			}
		} else if tk.k != kInt || tk.neg || tk.u != u {
			t.Errorf("%q: kind %d u %d, want %d", c, tk.k, tk.u, u)
		}
	}
}

// A JSON integer's magnitude is bounded at 8192 bits and a float's text at
// 4 KiB wherever JSON is read: the payload's scan (Decode, ValidArgs:
// jsonSkip), the token reader (Transcode, options) and so the conversion.
// Before, only the conversion bounded integers, so a larger one passed to
// JSON peers as it came (Python's json.loads refuses more than 4,300
// digits) and to no other.
func TestJSONNumberBounds(t *testing.T) {
	max := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 8192), big.NewInt(1)).String()
	over := new(big.Int).Lsh(big.NewInt(1), 8192).String() // as many digits
	float := "0." + strings.Repeat("1", maxFloatText-2)
	for _, tc := range []struct {
		name, num string
		ok        bool
	}{
		{"2^8192 - 1", max, true},
		{"-(2^8192 - 1)", "-" + max, true},
		{"2^8192", over, false},
		{"-2^8192", "-" + over, false},
		{"2,468 digits", "1" + strings.Repeat("0", 2467), false},
		{"5,000 digits", strings.Repeat("1", 5000), false},
		{"a float of 4 KiB", float, true},
		{"a float of 4 KiB + 1", float + "1", false},
		{"a float with 5,000 integer digits", strings.Repeat("1", 5000) + ".5", false},
	} {
		args := "[" + tc.num + "]"
		_, derr := Decode(JSON, []byte(`[16,1,{},"com.t",`+args+`]`))
		valid := ValidArgs(Raw{Ser: JSON, B: []byte(args)}, false)
		_, terr := Transcode(nil, CBOR, Raw{Ser: JSON, B: []byte(args)})
		_, oerr := Decode(JSON, []byte(`[16,1,{"x":`+tc.num+`},"com.t"]`))
		if (derr == nil) != tc.ok || valid != tc.ok || (terr == nil) != tc.ok || (oerr == nil) != tc.ok {
			t.Errorf("%s: Decode err %v, ValidArgs %v, Transcode err %v, in options err %v; want accepted: %v", tc.name, derr, valid, terr, oerr, tc.ok)
		}
	}
}
