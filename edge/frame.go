package edge

import (
	"encoding/binary"
	"errors"
)

// Frames: several route envelopes in one NATS message.
//
// A frame is frameMark followed by the envelopes, each as a uvarint
// length and its bytes. A route envelope starts with its kind, an ASCII
// letter (route/meshwire.go), never with frameMark, so a receiver tells a
// frame from a lone envelope by its first byte; lone envelopes go as
// they are (no framing cost for a message that travels alone).
//
// The sender frames a run of consecutive queued envelopes with the same
// subject and reply (same destination, same sender), at most maxFrame
// bytes (or the NATS server's max_payload when smaller: a frame must not
// fail where its envelopes alone would pass) and maxFrameItems
// envelopes; an envelope larger than that goes alone. A frame is lost or delivered as a whole (NATS is at-most-once
// per message), and its envelopes are handed to the router in the order
// they were queued.

const (
	frameMark     = 0
	maxFrame      = 64 << 10
	maxFrameItems = 256
)

var errBadFrame = errors.New("edge: malformed frame")

// packRun returns how many items, from items[0], go into one frame: the
// run of envelopes that may be packed, for items[0]'s subject and reply,
// within the frame's bounds (limit bytes: maxFrame, or less when the NATS
// server takes smaller messages). 1 means items[0] goes alone.
func packRun(items []outItem, limit int) int {
	first := &items[0]
	size := 1 + binary.MaxVarintLen32 + first.n
	if size > limit {
		return 1
	}
	k := 1
	for k < len(items) && k < maxFrameItems {
		it := &items[k]
		if it.op != opPublish || !it.pack || it.subj != first.subj || it.reply != first.reply {
			break
		}
		if size += binary.MaxVarintLen32 + it.n; size > limit {
			break
		}
		k++
	}
	return k
}

// appendFrame appends the frame of items (payloads in arena) to dst.
func appendFrame(dst, arena []byte, items []outItem) []byte {
	dst = append(dst, frameMark)
	for i := range items {
		it := &items[i]
		dst = binary.AppendUvarint(dst, uint64(it.n))
		dst = append(dst, arena[it.off:it.off+it.n]...)
	}
	return dst
}

// isFrame reports whether a NATS message's data is a frame.
func isFrame(data []byte) bool { return len(data) > 0 && data[0] == frameMark }

// unpackFrame calls each with every envelope of frame data, in order,
// each in a buffer of its own (the router keeps envelopes, and one kept
// envelope must not pin the whole frame). It stops at the first
// malformed length and returns errBadFrame; the envelopes before it were
// delivered. Empty envelopes are skipped. A frame larger than maxFrame,
// or of more than maxFrameItems envelopes, which no node packs (packRun),
// is refused whole (errBadFrame, nothing delivered): the envelopes of one
// NATS message, counted once in max_inbound, become tasks of the router
// that it no longer counts, each interrupt one per shard, and a frame of
// 200,000 tiny ones (1 MB) made the node allocate 139 MiB.
func unpackFrame(data []byte, each func(env []byte)) error {
	if len(data) > maxFrame {
		return errBadFrame
	}
	items := 0
	for rest := data[1:]; len(rest) > 0; items++ {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			break // delivered up to there, below
		}
		if items >= maxFrameItems {
			return errBadFrame
		}
		rest = rest[k+int(n):]
	}
	rest := data[1:]
	for len(rest) > 0 {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return errBadFrame
		}
		rest = rest[k:]
		if n > 0 {
			env := make([]byte, n)
			copy(env, rest[:n])
			each(env)
		}
		rest = rest[n:]
	}
	return nil
}
