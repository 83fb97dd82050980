package proto

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"

	"github.com/fxamacker/cbor/v2"
	gojson "github.com/goccy/go-json"
	"github.com/vmihailenco/msgpack/v5"
)

// Independent reference codecs, used only by tests: goccy/go-json,
// vmihailenco/msgpack and fxamacker/cbor. Their generic values are brought
// into DecodeValue's form by refNormalize so that valueDiff compares them.

var refCBOR = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DefaultMapType:  reflect.TypeOf(map[string]any(nil)),
		BigIntDec:       cbor.BigIntDecodePointer,
		IntDec:          cbor.IntDecConvertNone,
		MaxNestedLevels: 4 * MaxDepth,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// refDecode decodes one whole value with the reference decoder of ser.
func refDecode(ser Serializer, b []byte) (any, error) {
	var v any
	switch ser {
	case JSON:
		d := gojson.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		if d.More() {
			return nil, fmt.Errorf("goccy/go-json: trailing data")
		}
	case MsgPack:
		d := msgpack.NewDecoder(bytes.NewReader(b))
		var err error
		if v, err = d.DecodeInterface(); err != nil {
			return nil, err
		}
		if _, err := d.PeekCode(); err == nil {
			return nil, fmt.Errorf("vmihailenco/msgpack: trailing data")
		}
	case CBOR:
		if err := refCBOR.Unmarshal(b, &v); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("no reference decoder for %v", ser)
	}
	return refNormalize(ser, v)
}

// refNormalize converts a reference decoder's value: JSON strings that start
// with NUL become the bytes their base64 carries (WAMP's binary convention),
// and maps with interface keys become map[string]any.
func refNormalize(ser Serializer, v any) (any, error) {
	switch x := v.(type) {
	case string:
		if ser == JSON && strings.HasPrefix(x, "\x00") {
			// Standard padded base64 only (encoding/base64 would skip
			// line breaks).
			s := x[1:]
			if strings.ContainsAny(s, "\r\n") {
				return nil, fmt.Errorf("line break in base64")
			}
			return base64.StdEncoding.DecodeString(s)
		}
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			n, err := refNormalize(ser, e)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			n, err := refNormalize(ser, e)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("non-string map key %T", k)
			}
			n, err := refNormalize(ser, e)
			if err != nil {
				return nil, err
			}
			out[ks] = n
		}
		return out, nil
	}
	return v, nil
}

// refEncode encodes a generic value with the reference encoder of ser. For
// JSON, []byte values become "\u0000"+base64 strings first.
func refEncode(ser Serializer, v any) ([]byte, error) {
	switch ser {
	case JSON:
		return gojson.Marshal(jsonBinaryStrings(v))
	case MsgPack:
		return msgpack.Marshal(v)
	case CBOR:
		return cbor.Marshal(v)
	}
	return nil, fmt.Errorf("no reference encoder for %v", ser)
}

// jsonBinaryStrings replaces every []byte in v by its WAMP JSON form, a
// string of NUL followed by base64.
func jsonBinaryStrings(v any) any {
	switch x := v.(type) {
	case []byte:
		return "\x00" + base64.StdEncoding.EncodeToString(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonBinaryStrings(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonBinaryStrings(e)
		}
		return out
	}
	return v
}
