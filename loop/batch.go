package loop

import (
	"bytes"
	"encoding/binary"
	"errors"

	"github.com/edgewamp/edgewamp/proto"
)

// Batched WebSocket subprotocols (WAMP Advanced Profile, "Message
// Batching"): wamp.2.json.batched, wamp.2.msgpack.batched and
// wamp.2.cbor.batched carry one or more WAMP messages per WebSocket message.
//
// [WAMP Batching]: Batching with JSON works by serializing each WAMP message
// to JSON as normally, appending the single ASCII control character \30
// (record separator) octet 0x1e to each serialized messages, and packing a
// sequence of such serialized messages into a single WebSocket message.
//
// [WAMP Batching]: Batching with MessagePack works by serializing each WAMP
// message to MessagePack as normally, prepending a 32 bit unsigned integer
// (4 octets in big-endian byte order) with the length of the serialized
// MessagePack message (excluding the 4 octets for the length prefix).
//
// CBOR is framed like MessagePack (it is binary), as other routers do.
//
// A JSON text cannot contain a raw 0x1e (JSON strings escape every control
// character), so splitting at each 0x1e never cuts a message.

// jsonRecordSep is the octet that ends each message of a JSON batch.
const jsonRecordSep = 0x1e

// batchPrefixLen is the size of a binary batch's length prefix.
const batchPrefixLen = 4

// Batch errors; each means: fail the transport.
var (
	// errBatchEmpty: a WebSocket message holding no WAMP message.
	// [WAMP Batching]: Sending a batch of length 0 (no WAMP message) is
	// illegal and a Peer MUST fail the transport upon receiving such a
	// transport message.
	errBatchEmpty = errors.New("loop: batch: empty batch")
	// errBatchEmptyMessage: a zero-length message inside a batch.
	errBatchEmptyMessage = errors.New("loop: batch: empty message in batch")
	// errBatchUnterminated: JSON bytes after the last record separator.
	errBatchUnterminated = errors.New("loop: batch: JSON message not terminated by 0x1E")
	// errBatchTruncated: a length prefix that is cut short or declares more
	// bytes than remain in the batch.
	errBatchTruncated = errors.New("loop: batch: length prefix exceeds the remaining bytes")
)

// batchReader splits one batched WebSocket message into WAMP messages
// without copying or allocating. It is a small value meant to live on the
// caller's stack:
//
//	br := newBatchReader(payload, ser)
//	for {
//		msg, err := br.next()
//		if err != nil { fail the transport }
//		if msg == nil { break }
//		handle(msg)
//	}
//
// Messages alias the batch and are valid as long as it is.
type batchReader struct {
	rest   []byte // bytes not yet split
	binary bool   // length-prefixed (MsgPack, CBOR) rather than 0x1e-terminated (JSON)
	count  int    // messages returned so far
}

// newBatchReader returns a reader over batch, a whole WebSocket message of
// the batched subprotocol of ser.
func newBatchReader(batch []byte, ser proto.Serializer) batchReader {
	return batchReader{rest: batch, binary: ser.Binary()}
}

// next returns the next message, or nil and a nil error after the last one.
// The first call on an empty batch returns errBatchEmpty. After an error the
// reader is exhausted. It never allocates.
func (b *batchReader) next() ([]byte, error) {
	if len(b.rest) == 0 {
		if b.count == 0 {
			b.count = -1 // report the empty batch once
			return nil, errBatchEmpty
		}
		return nil, nil
	}
	var msg []byte
	var err error
	if b.binary {
		msg, err = b.nextBinary()
	} else {
		msg, err = b.nextJSON()
	}
	if err != nil {
		b.rest, b.count = nil, -1
		return nil, err
	}
	b.count++
	return msg, nil
}

// nextJSON splits off the message up to the next record separator.
func (b *batchReader) nextJSON() ([]byte, error) {
	i := bytes.IndexByte(b.rest, jsonRecordSep)
	if i < 0 {
		return nil, errBatchUnterminated
	}
	if i == 0 {
		return nil, errBatchEmptyMessage
	}
	msg := b.rest[:i:i]
	b.rest = b.rest[i+1:]
	return msg, nil
}

// nextBinary splits off one length-prefixed message, checking the declared
// length against the bytes that remain.
func (b *batchReader) nextBinary() ([]byte, error) {
	if len(b.rest) < batchPrefixLen {
		return nil, errBatchTruncated
	}
	n := binary.BigEndian.Uint32(b.rest)
	rest := b.rest[batchPrefixLen:]
	if uint64(n) > uint64(len(rest)) {
		return nil, errBatchTruncated
	}
	if n == 0 {
		return nil, errBatchEmptyMessage
	}
	msg := rest[:n:n]
	b.rest = rest[n:]
	return msg, nil
}

// splitBatch checks that batch, a whole WebSocket message of the batched
// subprotocol of ser, is well formed, and only then calls fn for each of its
// messages in order, so a malformed batch dispatches nothing. It stops at
// and returns the first error of fn. msg aliases batch. Two cheap passes;
// splitBatch itself does not allocate (fn does not escape, so a closure
// literal passed as fn stays on the caller's stack).
func splitBatch(batch []byte, ser proto.Serializer, fn func(msg []byte) error) error {
	check := newBatchReader(batch, ser)
	for {
		msg, err := check.next()
		if err != nil {
			return err
		}
		if msg == nil {
			break
		}
	}
	br := newBatchReader(batch, ser)
	for {
		msg, _ := br.next()
		if msg == nil {
			return nil
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

// batchedLen returns the size of an n-octet message in batched form.
func batchedLen(ser proto.Serializer, n int) int {
	if ser.Binary() {
		return batchPrefixLen + n
	}
	return n + 1
}

// appendBatched appends msg, one encoded WAMP message, to dst in the
// batched form of ser: with a 0x1e after it for JSON, after a 4-octet
// big-endian length for MsgPack and CBOR. Appending several builds a batch
// of several messages; a WebSocket message must hold at least one. It
// allocates only if dst must grow. msg must be shorter than 4 GiB.
func appendBatched(dst []byte, ser proto.Serializer, msg []byte) []byte {
	if ser.Binary() {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
		return append(dst, msg...)
	}
	dst = append(dst, msg...)
	return append(dst, jsonRecordSep)
}
