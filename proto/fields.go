package proto

import "math/bits"

// Key names an Options/Details key that edgewamp reads or writes. Keys of a
// decoded dictionary that are not listed here stay in [Message.Dict] and pass
// through untouched when the message is re-encoded.
type Key uint8

// The keys, grouped by value type. The order is the order in which a built
// dictionary is encoded.
const (
	// Bool keys.
	KeyAcknowledge     Key = iota // PUBLISH.Options
	KeyExcludeMe                  // PUBLISH.Options (default true)
	KeyDiscloseMe                 // PUBLISH/CALL.Options
	KeyRetain                     // PUBLISH.Options
	KeyGetRetained                // SUBSCRIBE.Options
	KeyReceiveProgress            // CALL.Options, INVOCATION.Details
	KeyProgress                   // CALL/YIELD.Options, RESULT/INVOCATION.Details
	KeyDiscloseCaller             // REGISTER.Options
	KeyForwardTimeout             // REGISTER.Options
	KeyForceReregister            // REGISTER.Options (Crossbar.io's)
	KeyRetained                   // EVENT.Details
	KeyAckDelivery                // EVENT.Details x_acknowledged_delivery

	// Id keys: integers in [0, 2^53].
	KeyCaller    // INVOCATION.Details
	KeyPublisher // EVENT.Details

	// Non-negative integer keys.
	KeyTimeout    // CALL.Options, INVOCATION.Details (ms)
	KeyTrustLevel // INVOCATION/EVENT.Details

	// Enumerated string keys, validated on decode.
	KeyMatch         // SUBSCRIBE/REGISTER.Options: exact, prefix, wildcard
	KeyInvoke        // REGISTER.Options: single, roundrobin, random, first, last
	KeyMode          // CANCEL/INTERRUPT.Options: skip, kill, killnowait
	KeyEncAlgo       // E2EE: cryptobox, mqtt, xbr, x_*
	KeyEncSerializer // E2EE: json, msgpack, cbor, ubjson, flatbuffers, x_*

	// String keys.
	KeyProcedure         // INVOCATION.Details (pattern registrations)
	KeyTopic             // EVENT.Details (pattern subscriptions)
	KeyCallerAuthID      // INVOCATION.Details
	KeyCallerAuthRole    // INVOCATION.Details
	KeyPublisherAuthID   // EVENT.Details
	KeyPublisherAuthRole // EVENT.Details
	KeyRealm             // WELCOME.Details
	KeyAuthID            // HELLO/WELCOME.Details
	KeyAuthRole          // HELLO/WELCOME.Details
	KeyAuthMethod        // WELCOME.Details
	KeyAuthProvider      // WELCOME.Details
	KeyAgent             // HELLO/WELCOME.Details
	KeyMessage           // ABORT/GOODBYE/ERROR.Details
	KeyReason            // INTERRUPT.Options
	KeyTransactionHash   // PUBLISH.Options, EVENT.Details
	KeyPPTScheme         // Payload Passthru Mode keys, forwarded untouched
	KeyPPTSerializer
	KeyPPTCipher
	KeyPPTKeyID
	KeyRKey    // CALL/PUBLISH.Options (sharded registration/subscription)
	KeyRunmode // CALL.Options
	KeyNKey    // SUBSCRIBE.Options

	// List keys (kept raw, validated on decode).
	KeyExclude          // PUBLISH.Options: [id]
	KeyExcludeAuthID    // PUBLISH.Options: [string]
	KeyExcludeAuthRole  // PUBLISH.Options: [string]
	KeyEligible         // PUBLISH.Options: [id]
	KeyEligibleAuthID   // PUBLISH.Options: [string]
	KeyEligibleAuthRole // PUBLISH.Options: [string]
	KeyAuthMethods      // HELLO.Details: [string]
	KeyForwardFor       // router-to-router links: [dict]

	// Dict keys (kept raw).
	KeyRoles     // HELLO/WELCOME.Details
	KeyAuthExtra // HELLO/WELCOME.Details
	KeyExtra     // CHALLENGE/AUTHENTICATE-style free dicts inside Details

	numKeys
)

type keyKind uint8

const (
	kindBool keyKind = iota
	kindID
	kindUint
	kindEnum
	kindStr
	kindIDList
	kindStrList
	kindDictList
	kindDict
)

type keyInfo struct {
	name string
	kind keyKind
	slot uint8
	enum []string // allowed values of an enum key; "x_" allows any x_ prefix
}

// Slot counts per storage class.
const (
	numNum = int(KeyTrustLevel-KeyCaller) + 1
	numStr = int(KeyNKey-KeyMatch) + 1
	numRaw = int(KeyExtra-KeyExclude) + 1
)

var keys = func() (t [numKeys]keyInfo) {
	def := func(k Key, name string, kind keyKind, enum ...string) {
		t[k] = keyInfo{name: name, kind: kind, enum: enum}
		switch {
		case k >= KeyCaller && k <= KeyTrustLevel:
			t[k].slot = uint8(k - KeyCaller)
		case k >= KeyMatch && k <= KeyNKey:
			t[k].slot = uint8(k - KeyMatch)
		case k >= KeyExclude:
			t[k].slot = uint8(k - KeyExclude)
		}
	}
	def(KeyAcknowledge, "acknowledge", kindBool)
	def(KeyExcludeMe, "exclude_me", kindBool)
	def(KeyDiscloseMe, "disclose_me", kindBool)
	def(KeyRetain, "retain", kindBool)
	def(KeyGetRetained, "get_retained", kindBool)
	def(KeyReceiveProgress, "receive_progress", kindBool)
	def(KeyProgress, "progress", kindBool)
	def(KeyDiscloseCaller, "disclose_caller", kindBool)
	def(KeyForwardTimeout, "forward_timeout", kindBool)
	def(KeyForceReregister, "force_reregister", kindBool)
	def(KeyRetained, "retained", kindBool)
	def(KeyAckDelivery, "x_acknowledged_delivery", kindBool)
	def(KeyCaller, "caller", kindID)
	def(KeyPublisher, "publisher", kindID)
	def(KeyTimeout, "timeout", kindUint)
	def(KeyTrustLevel, "trustlevel", kindUint)
	def(KeyMatch, "match", kindEnum, "exact", "prefix", "wildcard")
	def(KeyInvoke, "invoke", kindEnum, "single", "roundrobin", "random", "first", "last")
	def(KeyMode, "mode", kindEnum, "skip", "kill", "killnowait")
	def(KeyEncAlgo, "enc_algo", kindEnum, "cryptobox", "mqtt", "xbr", "x_")
	def(KeyEncSerializer, "enc_serializer", kindEnum, "json", "msgpack", "cbor", "ubjson", "flatbuffers", "x_")
	def(KeyProcedure, "procedure", kindStr)
	def(KeyTopic, "topic", kindStr)
	def(KeyCallerAuthID, "caller_authid", kindStr)
	def(KeyCallerAuthRole, "caller_authrole", kindStr)
	def(KeyPublisherAuthID, "publisher_authid", kindStr)
	def(KeyPublisherAuthRole, "publisher_authrole", kindStr)
	def(KeyRealm, "realm", kindStr)
	def(KeyAuthID, "authid", kindStr)
	def(KeyAuthRole, "authrole", kindStr)
	def(KeyAuthMethod, "authmethod", kindStr)
	def(KeyAuthProvider, "authprovider", kindStr)
	def(KeyAgent, "agent", kindStr)
	def(KeyMessage, "message", kindStr)
	def(KeyReason, "reason", kindStr)
	def(KeyTransactionHash, "transaction_hash", kindStr)
	def(KeyPPTScheme, "ppt_scheme", kindStr)
	def(KeyPPTSerializer, "ppt_serializer", kindStr)
	def(KeyPPTCipher, "ppt_cipher", kindStr)
	def(KeyPPTKeyID, "ppt_keyid", kindStr)
	def(KeyRKey, "rkey", kindStr)
	def(KeyRunmode, "runmode", kindStr)
	def(KeyNKey, "nkey", kindStr)
	def(KeyExclude, "exclude", kindIDList)
	def(KeyExcludeAuthID, "exclude_authid", kindStrList)
	def(KeyExcludeAuthRole, "exclude_authrole", kindStrList)
	def(KeyEligible, "eligible", kindIDList)
	def(KeyEligibleAuthID, "eligible_authid", kindStrList)
	def(KeyEligibleAuthRole, "eligible_authrole", kindStrList)
	def(KeyAuthMethods, "authmethods", kindStrList)
	def(KeyForwardFor, "forward_for", kindDictList)
	def(KeyRoles, "roles", kindDict)
	def(KeyAuthExtra, "authextra", kindDict)
	def(KeyExtra, "extra", kindDict)
	return t
}()

// Name returns the key's wire name.
func (k Key) Name() string { return keys[k].name }

// lookupKey maps a wire key to a Key. The switch on string(b) does not
// allocate.
func lookupKey(b []byte) (Key, bool) {
	switch string(b) {
	case "acknowledge":
		return KeyAcknowledge, true
	case "exclude_me":
		return KeyExcludeMe, true
	case "disclose_me":
		return KeyDiscloseMe, true
	case "retain":
		return KeyRetain, true
	case "get_retained":
		return KeyGetRetained, true
	case "receive_progress":
		return KeyReceiveProgress, true
	case "progress":
		return KeyProgress, true
	case "disclose_caller":
		return KeyDiscloseCaller, true
	case "forward_timeout":
		return KeyForwardTimeout, true
	case "force_reregister":
		return KeyForceReregister, true
	case "retained":
		return KeyRetained, true
	case "x_acknowledged_delivery":
		return KeyAckDelivery, true
	case "caller":
		return KeyCaller, true
	case "publisher":
		return KeyPublisher, true
	case "timeout":
		return KeyTimeout, true
	case "trustlevel":
		return KeyTrustLevel, true
	case "match":
		return KeyMatch, true
	case "invoke":
		return KeyInvoke, true
	case "mode":
		return KeyMode, true
	case "enc_algo":
		return KeyEncAlgo, true
	case "enc_serializer":
		return KeyEncSerializer, true
	case "procedure":
		return KeyProcedure, true
	case "topic":
		return KeyTopic, true
	case "caller_authid":
		return KeyCallerAuthID, true
	case "caller_authrole":
		return KeyCallerAuthRole, true
	case "publisher_authid":
		return KeyPublisherAuthID, true
	case "publisher_authrole":
		return KeyPublisherAuthRole, true
	case "realm":
		return KeyRealm, true
	case "authid":
		return KeyAuthID, true
	case "authrole":
		return KeyAuthRole, true
	case "authmethod":
		return KeyAuthMethod, true
	case "authprovider":
		return KeyAuthProvider, true
	case "agent":
		return KeyAgent, true
	case "message":
		return KeyMessage, true
	case "reason":
		return KeyReason, true
	case "transaction_hash":
		return KeyTransactionHash, true
	case "ppt_scheme":
		return KeyPPTScheme, true
	case "ppt_serializer":
		return KeyPPTSerializer, true
	case "ppt_cipher":
		return KeyPPTCipher, true
	case "ppt_keyid":
		return KeyPPTKeyID, true
	case "rkey":
		return KeyRKey, true
	case "runmode":
		return KeyRunmode, true
	case "nkey":
		return KeyNKey, true
	case "exclude":
		return KeyExclude, true
	case "exclude_authid":
		return KeyExcludeAuthID, true
	case "exclude_authrole":
		return KeyExcludeAuthRole, true
	case "eligible":
		return KeyEligible, true
	case "eligible_authid":
		return KeyEligibleAuthID, true
	case "eligible_authrole":
		return KeyEligibleAuthRole, true
	case "authmethods":
		return KeyAuthMethods, true
	case "forward_for":
		return KeyForwardFor, true
	case "roles":
		return KeyRoles, true
	case "authextra":
		return KeyAuthExtra, true
	case "extra":
		return KeyExtra, true
	}
	return 0, false
}

// strVal holds a string key's value: bytes when decoded (aliasing the
// input), a string when set by the router (no conversion needed).
type strVal struct {
	b []byte
	s string
}

// Fields is the typed view of an Options or Details dictionary: the keys in
// [Key] that are present and their values. The zero Fields is empty and ready
// to use. Decoded byte slices alias the input (see the package doc).
type Fields struct {
	has   uint64 // bit k: key k is present
	bools uint64 // bit k: value of bool key k
	num   [numNum]uint64
	str   [numStr]strVal
	raw   [numRaw]Raw
}

// Reset empties f.
//
// Only the slots of present keys are cleared (a Fields is about 1.5 KiB;
// zeroing it whole on every decode cost a fifth of the routing time, write
// barriers included). Absent keys' slots are never read.
func (f *Fields) Reset() {
	for h := f.has; h != 0; h &= h - 1 {
		k := Key(bits.TrailingZeros64(h))
		switch info := &keys[k]; info.kind {
		case kindID, kindUint:
			f.num[info.slot] = 0
		case kindStr, kindEnum:
			f.str[info.slot] = strVal{}
		case kindIDList, kindStrList, kindDictList, kindDict:
			f.raw[info.slot] = Raw{}
		}
	}
	f.has, f.bools = 0, 0
}

// Len returns the number of keys present.
func (f *Fields) Len() int { return bits.OnesCount64(f.has) }

// Has reports whether key k is present.
func (f *Fields) Has(k Key) bool { return f.has&(1<<k) != 0 }

// Del removes key k.
func (f *Fields) Del(k Key) { f.has &^= 1 << k }

// Bool returns a bool key's value, or def when it is absent.
func (f *Fields) Bool(k Key, def bool) bool {
	if !f.Has(k) {
		return def
	}
	return f.bools&(1<<k) != 0
}

// SetBool sets a bool key.
func (f *Fields) SetBool(k Key, v bool) {
	f.has |= 1 << k
	if v {
		f.bools |= 1 << k
	} else {
		f.bools &^= 1 << k
	}
}

// Uint returns an id or integer key's value (0 when absent).
func (f *Fields) Uint(k Key) uint64 {
	if !f.Has(k) {
		return 0
	}
	return f.num[keys[k].slot]
}

// SetUint sets an id or integer key.
func (f *Fields) SetUint(k Key, v uint64) {
	f.has |= 1 << k
	f.num[keys[k].slot] = v
}

// Str returns a decoded string key's value (nil when absent or when the
// value was set with SetString).
func (f *Fields) Str(k Key) []byte {
	if !f.Has(k) {
		return nil
	}
	return f.str[keys[k].slot].b
}

// String returns a string key's value whichever way it was set. It
// allocates when the value was decoded; hot paths use Str.
func (f *Fields) String(k Key) string {
	if !f.Has(k) {
		return ""
	}
	v := &f.str[keys[k].slot]
	if v.b != nil {
		return string(v.b)
	}
	return v.s
}

// SetStr sets a string key from bytes, which must stay valid while f is used.
func (f *Fields) SetStr(k Key, b []byte) {
	f.has |= 1 << k
	f.str[keys[k].slot] = strVal{b: b}
}

// SetString sets a string key.
func (f *Fields) SetString(k Key, s string) {
	f.has |= 1 << k
	f.str[keys[k].slot] = strVal{s: s}
}

// Raw returns a list or dict key's raw value (zero when absent).
func (f *Fields) Raw(k Key) Raw {
	if !f.Has(k) {
		return Raw{}
	}
	return f.raw[keys[k].slot]
}

// SetRaw sets a list or dict key to an encoded value, which is transcoded on
// output when its serializer differs from the target's.
func (f *Fields) SetRaw(k Key, r Raw) {
	f.has |= 1 << k
	f.raw[keys[k].slot] = r
}

// CopyPPT copies the Payload Passthru Mode and E2EE keys (ppt_*, enc_*) of
// src into f, for forwarding a CALL's or PUBLISH's keys to the INVOCATION
// or EVENT untouched.
func (f *Fields) CopyPPT(src *Fields) {
	for _, k := range [...]Key{KeyPPTScheme, KeyPPTSerializer, KeyPPTCipher, KeyPPTKeyID, KeyEncAlgo, KeyEncSerializer} {
		if src.Has(k) {
			f.has |= 1 << k
			f.str[keys[k].slot] = src.str[keys[k].slot]
		}
	}
}

func (f *Fields) clone() Fields {
	c := *f
	for i := range c.str {
		c.str[i].b = cloneBytes(c.str[i].b)
	}
	for i := range c.raw {
		c.raw[i] = c.raw[i].Clone()
	}
	return c
}

// Match is a subscription's or registration's match policy.
type Match uint8

// Match policies (WAMP §Pattern-based Subscription/Registration).
const (
	MatchExact Match = iota
	MatchPrefix
	MatchWildcard
)

func (m Match) String() string {
	switch m {
	case MatchPrefix:
		return "prefix"
	case MatchWildcard:
		return "wildcard"
	}
	return "exact"
}

// Match returns the match option (exact when absent).
func (f *Fields) Match() Match {
	switch {
	case f.is(KeyMatch, "prefix"):
		return MatchPrefix
	case f.is(KeyMatch, "wildcard"):
		return MatchWildcard
	}
	return MatchExact
}

// is reports whether string key k is present with value v.
func (f *Fields) is(k Key, v string) bool {
	if !f.Has(k) {
		return false
	}
	sv := &f.str[keys[k].slot]
	if sv.b != nil {
		return string(sv.b) == v
	}
	return sv.s == v
}

// Invoke is a shared registration's invocation policy.
type Invoke uint8

// Invocation policies (WAMP §Shared Registration).
const (
	InvokeSingle Invoke = iota
	InvokeRoundRobin
	InvokeRandom
	InvokeFirst
	InvokeLast
)

func (p Invoke) String() string {
	switch p {
	case InvokeRoundRobin:
		return "roundrobin"
	case InvokeRandom:
		return "random"
	case InvokeFirst:
		return "first"
	case InvokeLast:
		return "last"
	}
	return "single"
}

// Invoke returns the invoke option (single when absent).
func (f *Fields) Invoke() Invoke {
	switch {
	case f.is(KeyInvoke, "roundrobin"):
		return InvokeRoundRobin
	case f.is(KeyInvoke, "random"):
		return InvokeRandom
	case f.is(KeyInvoke, "first"):
		return InvokeFirst
	case f.is(KeyInvoke, "last"):
		return InvokeLast
	}
	return InvokeSingle
}

// CancelMode is a CANCEL's or INTERRUPT's mode.
type CancelMode uint8

// Cancel modes (WAMP §Call Canceling).
const (
	CancelSkip CancelMode = iota
	CancelKill
	CancelKillNoWait
)

func (m CancelMode) String() string {
	switch m {
	case CancelKill:
		return "kill"
	case CancelKillNoWait:
		return "killnowait"
	}
	return "skip"
}

// CancelMode returns the mode option; def when absent.
func (f *Fields) CancelMode(def CancelMode) CancelMode {
	switch {
	case f.is(KeyMode, "kill"):
		return CancelKill
	case f.is(KeyMode, "killnowait"):
		return CancelKillNoWait
	case f.is(KeyMode, "skip"):
		return CancelSkip
	}
	return def
}
