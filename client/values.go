package client

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"unsafe"

	"github.com/edgewamp/edgewamp/proto"
)

// This file converts between the generic Go values of the client API and
// proto's raw encoded values. The client is not on the router's hot path, so
// it uses proto's generic value codec (proto.EncodeValue / DecodeValue).

// encodePayload encodes Arguments and ArgumentsKw. Both are absent when nil;
// when only kwargs is set, proto writes an empty Arguments list before it.
func encodePayload(ser proto.Serializer, args []any, kwargs map[string]any) (a, k proto.Raw, err error) {
	if args != nil {
		if a, err = proto.EncodeValue(ser, args); err != nil {
			return a, k, fmt.Errorf("client: encoding Arguments: %w", err)
		}
	}
	if kwargs != nil {
		if k, err = proto.EncodeValue(ser, kwargs); err != nil {
			return a, k, fmt.Errorf("client: encoding ArgumentsKw: %w", err)
		}
	}
	return a, k, nil
}

// What the structs holding a received message's values take, counted
// with them in the byte bounds (Config.MaxBacklog, MaxInvocationBytes):
// uncounted, tiny events behind a slow handler, or tiny chunks held for
// Next, held 1.2 to 1.4 times the bound (the structs 88 to 128 bytes on
// 64-bit platforms, a small message's values about 120 to 420).
const (
	heldEvent      = int(unsafe.Sizeof(Event{}))
	heldInvocation = int(unsafe.Sizeof(Invocation{}))
	heldResult     = int(unsafe.Sizeof(Result{}))
)

// decodeBudgetBase is the part of a received message's decode budget that
// does not grow with its size (see Config.DecodeRatio).
const decodeBudgetBase = 64 << 10

// decodeBudget returns the decode budget of a received message of n bytes
// (see Config.DecodeRatio), or nil when the bound is lifted.
func (s *Session) decodeBudget(n int) *int {
	if s.cfg.DecodeRatio < 0 {
		return nil
	}
	b := s.cfg.DecodeRatio*n + decodeBudgetBase
	return &b
}

// decodeValue decodes r, charging budget unless it is nil (see
// proto.DecodeValueBudget).
func decodeValue(r proto.Raw, budget *int) (any, error) {
	if budget == nil {
		return proto.DecodeValue(r)
	}
	v, err := proto.DecodeValueBudget(r, budget)
	if errors.Is(err, proto.ErrDecodedTooLarge) {
		return nil, ErrDecodeBudget
	}
	return v, err
}

// decodePayload decodes a message's Arguments and ArgumentsKw, charging
// budget (nil: no bound). A transparent (binary) payload is returned as a
// one-element Arguments list holding the []byte.
func decodePayload(m *proto.Message, budget *int) (args []any, kwargs map[string]any, err error) {
	if m.Args.Present() {
		v, err := decodeValue(m.Args, budget)
		if err != nil {
			return nil, nil, err
		}
		switch x := v.(type) {
		case []any:
			args = x
		default:
			args = []any{x}
		}
	}
	if m.Kwargs.Present() {
		kwargs, err = decodeDict(m.Kwargs, budget)
	}
	return args, kwargs, err
}

// payloadOf is decodePayload for the message the reader handles: one
// whose payload holds a dictionary key "__proto__" (inProtoPayload) is
// refused with ErrProtoKey, undecoded, as one that does not decode is.
func (s *Session) payloadOf(m *proto.Message, budget *int) (args []any, kwargs map[string]any, err error) {
	if s.inProtoPayload {
		return nil, nil, ErrProtoKey
	}
	return decodePayload(m, budget)
}

// decodeDict decodes a dictionary, charging budget (nil: no bound); nil
// when absent.
func decodeDict(r proto.Raw, budget *int) (map[string]any, error) {
	if !r.Present() {
		return nil, nil
	}
	v, err := decodeValue(r, budget)
	if err != nil {
		return nil, err
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("client: expected a dictionary, got %T", v)
	}
	return d, nil
}

// dictOf is decodeDict for values proto has already validated as
// dictionaries (a message's Details, a CHALLENGE's Extra), within the
// decode budget of their own size (Config.DecodeRatio), as a payload's:
// a router's Details of 2^20 empty dictionaries, 1 MiB, took 67 MiB
// decoded. A dictionary over it, or that does not decode, yields nil.
func (s *Session) dictOf(r proto.Raw) map[string]any {
	d, _ := s.dictOfCost(r)
	return d
}

// dictOfCost is dictOf, also returning what the dictionary takes decoded
// (the decode budget's estimate; 0 when left out).
func (s *Session) dictOfCost(r proto.Raw) (map[string]any, int) {
	return s.dictWithin(r, s.decodeBudget(len(r.B)))
}

// maxControlDetails bounds what the Details of a WELCOME, ABORT or
// GOODBYE take decoded (unless Config.DecodeRatio lifts every bound):
// the session keeps them for its life (Session.Details, Err), a Client
// its last join error until the next. Within the budget of their own
// size, a router's 16 MiB WELCOME of small MsgPack integers was kept as
// 256 MiB of Go values; a router's WELCOME takes a few KiB.
const maxControlDetails = 1 << 20

// controlDictOf is dictOf for the Details of a WELCOME, ABORT or GOODBYE,
// within maxControlDetails too.
func (s *Session) controlDictOf(r proto.Raw) map[string]any {
	budget := s.decodeBudget(len(r.B))
	if budget != nil {
		*budget = min(*budget, maxControlDetails)
	}
	d, _ := s.dictWithin(r, budget)
	return d
}

// dictWithin decodes the dictionary r, the Details (or Extra) of the
// message the reader handles, within budget (nil: no bound), returning it
// and what it takes decoded: over the budget it is left out (nil, 0) and
// logged (at most one line per 10 s). Its dictionary keys "__proto__"
// are dropped, at its top level as below it (see inProtoDict), with a
// WARN line (at most one per 10 s): proto refuses the key below a
// dictionary's top level (JavaScript peers cannot take it), and a
// third-party router may pass it on (an authenticator's authextra).
func (s *Session) dictWithin(r proto.Raw, budget *int) (map[string]any, int) {
	budget = measuredBudget(budget)
	start := *budget
	d, err := decodeDict(r, budget)
	if err != nil {
		if !errors.Is(err, ErrDecodeBudget) {
			return nil, 0
		}
		if ok, held := s.detailsLog.allow(nanos(s.cfg.now)); ok {
			s.log.Warn("client: dropping Details over the decode budget (at most one line per 10 s)", "size", len(r.B), "dropped_since_last_line", held)
		}
		return nil, 0
	}
	n := 0
	if s.inProtoDict {
		n = dropProtoKeys(d)
	} else if _, ok := d[protoKey]; ok {
		delete(d, protoKey)
		n = 1
	}
	if n > 0 {
		if ok, held := s.protoLog.allow(nanos(s.cfg.now)); ok {
			s.log.Warn(`client: taking the router's Details without their dictionary keys "__proto__" (at most one line per 10 s)`, "dropped", n, "messages_since_last_line", held)
		}
	}
	return d, start - *budget
}

// protoKey is the dictionary key JavaScript peers cannot take, which
// proto refuses below a dictionary's top level (see
// proto.Decoder.TakeProtoKey).
const protoKey = "__proto__"

// dropProtoKeys deletes the dictionary keys "__proto__" from v, a decoded
// generic value (nested at most proto.MaxDepth deep), returning how many.
func dropProtoKeys(v any) int {
	n := 0
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x[protoKey]; ok {
			delete(x, protoKey)
			n++
		}
		for _, e := range x {
			n += dropProtoKeys(e)
		}
	case []any:
		for _, e := range x {
			n += dropProtoKeys(e)
		}
	}
	return n
}

// measuredBudget returns budget, or an unbounded one for nil (no bound:
// Config.DecodeRatio negative), so that what a decode takes can be read
// from what it spent.
func measuredBudget(budget *int) *int {
	if budget == nil {
		unbounded := math.MaxInt
		return &unbounded
	}
	return budget
}

// toUint returns a decoded id-like value as a uint64.
func toUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case int64:
		if x >= 0 {
			return uint64(x), true
		}
	case uint64:
		return x, true
	case float64:
		if x >= 0 && x == float64(uint64(x)) {
			return uint64(x), true
		}
	}
	return 0, false
}

// options builds an Options or Details dictionary. The typed keys go into a
// proto.Fields. proto writes either Message.Dict or Message.Opt, never a
// merge of both, so when raw extra keys are present the whole dictionary is
// encoded from a map instead: the typed keys are remembered by name for that
// case. Extra keys override typed ones, so tests can send any value.
type options struct {
	ser   proto.Serializer
	f     proto.Fields
	named []namedValue
	extra map[string]any
	err   error
}

type namedValue struct {
	k proto.Key
	v any
}

func newOptions(ser proto.Serializer, extra map[string]any) *options {
	return &options{ser: ser, extra: extra}
}

func (o *options) setBool(k proto.Key, v bool) {
	o.f.SetBool(k, v)
	o.named = append(o.named, namedValue{k, v})
}

func (o *options) setUint(k proto.Key, v uint64) {
	o.f.SetUint(k, v)
	o.named = append(o.named, namedValue{k, v})
}

func (o *options) setString(k proto.Key, v string) {
	o.f.SetString(k, v)
	o.named = append(o.named, namedValue{k, v})
}

// setValue sets a list or dictionary key (proto keeps those raw).
func (o *options) setValue(k proto.Key, v any) {
	r, err := proto.EncodeValue(o.ser, v)
	if err != nil {
		if o.err == nil {
			o.err = fmt.Errorf("client: encoding option %q: %w", k.Name(), err)
		}
		return
	}
	o.f.SetRaw(k, r)
	o.named = append(o.named, namedValue{k, v})
}

// clone returns a copy of o that can be set without changing o.
func (o *options) clone() *options {
	c := *o
	c.named = slices.Clip(o.named) // an append to c's reallocates
	return &c
}

// apply stores the dictionary in m.
func (o *options) apply(m *proto.Message) error {
	if o.err != nil {
		return o.err
	}
	if len(o.extra) == 0 {
		m.Opt = o.f
		return nil
	}
	d := make(map[string]any, len(o.named)+len(o.extra))
	for _, nv := range o.named {
		d[nv.k.Name()] = nv.v
	}
	for k, v := range o.extra {
		d[k] = v
	}
	r, err := proto.EncodeValue(o.ser, d)
	if err != nil {
		return fmt.Errorf("client: encoding options: %w", err)
	}
	m.Dict = r
	return nil
}
