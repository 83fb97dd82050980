// Package proto is edgewamp's WAMP v2 message model and its JSON, MsgPack and
// CBOR codecs.
//
// Every byte the router routes passes through this package, so it is built for
// three things at once:
//
//   - Complete: all 24 WAMP message types (plus the non-RFC EVENT_RECEIVED 337
//     of the specification's test suite), and typed access to the Options and
//     Details keys the router acts on (see [Key]). Every other key of a decoded
//     dictionary stays in [Message.Dict] and passes through untouched.
//   - Exact: byte-compatible with Autobahn|JS, autobahn-python and wampy. The
//     JSON binary convention (a string "\u0000" + base64) maps to MsgPack bin
//     and CBOR byte strings; integers up to 2^64 stay exact wherever the two
//     serializers can carry them (JSON and CBOR carry larger ones too).
//   - Cheap: [Decoder.Decode] parses only a message's head. Arguments and
//     ArgumentsKw stay raw encoded bytes ([Raw]) that alias the input, and are
//     transcoded by [Append] only when the target serializer differs from the
//     one they arrived in. Decoding a CALL or PUBLISH head and encoding the
//     matching INVOCATION or EVENT in the same serializer allocate nothing.
//
// # JavaScript undefined
//
// JavaScript encoders write undefined members of an object too: msgpackr as
// MsgPack fixext 1 of type 0 (d4 00 00), cbor-x as CBOR simple value 23 (f7);
// wampy 8 sends them for every option the application did not give. In
// Options and Details an undefined value means the key is absent. In payloads
// it passes untouched to peers of the same serializer and is transcoded as
// JSON.stringify writes it: a list element becomes null, a dictionary member
// is left out.
//
// # Dates
//
// MsgPack's timestamp extension (type -1, in its three formats) is how
// msgpackr (wampy) writes a JavaScript Date and msgpack-python a Timestamp.
// It passes untouched to peers of the same serializer, and is transcoded to
// CBOR's epoch-based date/time (tag 1 on an integer or float of seconds,
// what cbor-x writes for a Date) and to the RFC 3339 text in UTC that
// JSON.stringify makes of a Date. Tag 1 on a number in a CBOR payload
// becomes a MsgPack timestamp; for JSON it is the number, as every CBOR tag
// but the bignums is read through. [DecodeValue] returns a timestamp as a
// time.Time, which [AppendValue] writes as a date. Other MsgPack extension
// types are refused.
//
// # Validity of decoded data
//
// A decoded [Message] holds sub-slices of the input buffer and of its
// Decoder's scratch buffer. They stay valid until the input is reused or the
// Decoder decodes again. Use [Message.Clone] to keep a message longer.
//
// # Bad input
//
// Decoding never panics and never allocates by a length the input declares:
// each declared length is checked against the bytes that remain. Errors are
// values of type [*Error]; their text names what is wrong, e.g.
// "proto: PUBLISH.Options.acknowledge must be a bool". Nesting deeper than
// [MaxDepth] is refused.
//
// # Concurrency
//
// A Decoder is not safe for concurrent use; keep one per event loop. The
// package-level functions are safe for concurrent use.
package proto
