package proto

// Error is a decoding, encoding or validation error. Its text says what is
// wrong in terms a peer's developer understands, e.g.
// "proto: CALL.Options.timeout must be a non-negative integer". The router
// sends it as the message of an ABORT or ERROR with
// wamp.error.protocol_violation (or invalid_argument while transcoding).
type Error struct {
	msg string
}

// Error implements error.
func (e *Error) Error() string { return "proto: " + e.msg }

// Msg returns the text without the "proto: " prefix.
func (e *Error) Msg() string { return e.msg }

func errf(msg string) *Error { return &Error{msg: msg} }

// Sentinel errors for the common low-level faults. They are values so that
// the hot path returns them without allocating.
var (
	ErrTruncated = errf("truncated input")
	ErrTrailing  = errf("trailing bytes after the message")
	ErrTooDeep   = errf("nesting deeper than the limit")
	// ErrTooLarge: a payload converted to another serializer grew past
	// Encoder.MaxConverted.
	ErrTooLarge      = errf("converted payload longer than the limit")
	ErrNotArray      = errf("a WAMP message must be an array")
	ErrEmpty         = errf("empty message array")
	ErrBadType       = errf("message type must be an integer")
	ErrUnknownType   = errf("unknown message type")
	ErrBadSyntax     = errf("malformed input")
	ErrBadUTF8       = errf("invalid UTF-8 in a string")
	ErrBadEscape     = errf("invalid escape in a JSON string")
	ErrBadNumber     = errf("malformed number")
	ErrBadBase64     = errf("invalid base64 in a JSON binary string")
	ErrKeyNotString  = errf(`dictionary key must be a string, and not "__proto__"`)
	ErrLength        = errf("declared length exceeds the input")
	ErrUnsupported   = errf("value kind not supported")
	ErrNotJSONable   = errf("value has no JSON form (NaN, infinity, a text string starting with NUL, which JSON reads as binary, a date outside the years 0 to 9999, or a non-string map key)")
	ErrBadSerializer = errf("unknown serializer")
)

// JSON that is well formed but that the router refuses, each with a text
// of its own: the grammar allows it, so "malformed number" or "must be a
// string" sent a client's author looking for a syntax error that is not
// there.
var (
	// ErrNumberRange: a JSON number beyond float64's range (1e400, -1e400;
	// RFC 8259 §6 leaves the range to implementations: no WAMP peer reads
	// it as a number, and JSON.parse makes it Infinity).
	ErrNumberRange = errf("number beyond float64's range")
	// ErrNumberText: a JSON float whose text is longer than 4 KiB (every
	// float64's exact decimal expansion is shorter).
	ErrNumberText = errf("number text longer than 4 KiB")
	// ErrKeyBinary: a JSON dictionary key that is a binary string, a
	// "\u0000" prefix (WAMP's JSON binary convention, whatever follows):
	// MsgPack and CBOR peers could be given no text key for it.
	ErrKeyBinary = errf(`dictionary key is a JSON binary string ("\u0000" prefix): a key must be text`)
)

// ErrBadURIText: a URI element (a realm, topic, procedure, error or
// reason) is not UTF-8 text: invalid UTF-8 (MsgPack, CBOR) or a JSON \u
// escape of a lone surrogate (which would become U+FFFD, so that
// "com.x\ud800" and "com.x\udc00" would be one URI). Decoder.Decode
// returns it only once the rest of the message has decoded, with the URI
// nil: the router answers as for any invalid URI.
var ErrBadURIText = errf("a URI must be UTF-8 text (no invalid byte, no lone surrogate escape)")

// ErrBadTimeout: the message's timeout option (CALL.Options,
// INVOCATION.Details) is a number, but negative, NaN, an infinity or 2^63
// or more, or null (JSON.stringify's NaN and infinities). Decoder.Decode returns it only once the rest of the message
// has decoded, with the key absent: the router answers such a CALL with
// ERROR wamp.error.invalid_argument, the session going on (a timeout that
// is not a number at all is refused as any option of the wrong type).
var ErrBadTimeout = errf("the timeout option must be a non-negative number of milliseconds below 2^63")
