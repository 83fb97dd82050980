package proto

import (
	"encoding/binary"
	"math"
	"strconv"
	"time"
)

// Dates. JavaScript clients send a Date in a payload as MsgPack's timestamp
// extension (msgpackr: wampy's MsgPack serializer) or as CBOR's epoch-based
// date/time, tag 1 on a number of seconds (cbor-x: wampy's CBOR
// serializer); msgpack-python and cbor2 (autobahn-python) decode both.
// A MsgPack timestamp (kTime) reaches each serializer as its clients read a
// date: a MsgPack timestamp, CBOR tag 1, or the RFC 3339 text in UTC that
// JSON.stringify writes for a Date (within the years that each can carry:
// see wr.time). A CBOR tag 1 number in a payload becomes a MsgPack
// timestamp (see rd.dates); for JSON it stays the number it was, as all
// other CBOR tags are read through (their content checked: cbor_tags.go).

// RFC 3339 has four-digit years: JSON can carry instants from
// 0000-01-01T00:00:00Z up to, not including, 10000-01-01T00:00:00Z. cbor2
// (autobahn-python) decodes tag 1 as a datetime, whose years start at 1.
const (
	minRFC3339  = -62167219200
	minDatetime = -62135596800
	endRFC3339  = 253402300800
)

// cborTagEpoch is the head of CBOR's tag 1 (an epoch-based date).
const cborTagEpoch = 0xc1

// time writes the instant sec seconds and nsec (< 1e9) nanoseconds after
// the Unix epoch as a date of w's serializer. JSON has no form for an
// instant outside years 0 to 9999.
func (w *wr) time(sec int64, nsec uint32) error {
	switch w.ser {
	case JSON:
		if sec < minRFC3339 || sec >= endRFC3339 {
			return ErrNotJSONable
		}
		w.b = append(w.b, '"')
		w.b = time.Unix(sec, int64(nsec)).UTC().AppendFormat(w.b, time.RFC3339Nano)
		w.b = append(w.b, '"')
	case MsgPack:
		// The smallest of the three formats that holds the instant, as
		// the spec's reference encoder and msgpack-python choose.
		switch {
		case nsec == 0 && sec>>32 == 0:
			w.b = append(w.b, 0xd6, extTimestamp)
			w.b = binary.BigEndian.AppendUint32(w.b, uint32(sec))
		case sec>>34 == 0:
			w.b = append(w.b, 0xd7, extTimestamp)
			w.b = binary.BigEndian.AppendUint64(w.b, uint64(nsec)<<34|uint64(sec))
		default:
			w.b = append(w.b, 0xc7, 12, extTimestamp)
			w.b = binary.BigEndian.AppendUint32(w.b, nsec)
			w.b = binary.BigEndian.AppendUint64(w.b, uint64(sec))
		}
	case CBOR:
		// Tag 1: an integer of seconds, or a float when there is a
		// fraction (RFC 8949 §3.4.2), as cbor-x writes a Date. cbor2
		// refuses a tag 1 outside datetime's years 1 to 9999 (ValueError:
		// autobahn-python drops the connection); such an instant is the
		// bare number (a tag 1 outside those years is refused where CBOR
		// is read: cbor_tags.go).
		if nsec == 0 {
			if sec >= minDatetime && sec < endRFC3339 {
				w.b = append(w.b, cborTagEpoch)
			}
			w.int(sec)
			return nil
		}
		// The float may round up to the year 10000.
		f := epochSeconds(sec, nsec)
		if f >= minDatetime && f < endRFC3339 {
			w.b = append(w.b, cborTagEpoch)
		}
		return w.float(f)
	}
	return nil
}

// epochSeconds returns the float64 nearest to sec + nsec/1e9: the sum of
// the two as floats would round twice. The decimal is read as a JavaScript
// or Python float literal would be.
func epochSeconds(sec int64, nsec uint32) float64 {
	var buf [32]byte
	b := buf[:0]
	if sec < 0 {
		// sec + nsec/1e9 = -((-sec-1) + (1e9-nsec)/1e9); -sec-1 fits.
		b = append(b, '-')
		b = strconv.AppendUint(b, uint64(-(sec + 1)), 10)
		nsec = 1e9 - nsec
	} else {
		b = strconv.AppendUint(b, uint64(sec), 10)
	}
	b = append(b, '.')
	b = appendNanos(b, nsec)
	f, _ := strconv.ParseFloat(string(b), 64)
	return f
}

// appendNanos appends n (< 1e9) as nine decimal digits.
func appendNanos(b []byte, n uint32) []byte {
	var d [9]byte
	for i := len(d) - 1; i >= 0; i-- {
		d[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[:]...)
}

// epochOfFloat converts a CBOR tag 1 float to a timestamp, rounded to the
// nanosecond. The seconds' fraction is taken from the shortest decimal that
// reads back as f, which is what the sender wrote: cbor-x writes the Date
// 19:58:56.123 as the float nearest to ….123, which lies a little below
// it, and a decoder that truncates to milliseconds (msgpackr) would read
// the exact binary value back as .122. ok is false for NaN, infinities and
// instants beyond the timestamp's int64 seconds.
func epochOfFloat(f float64) (sec int64, nsec uint32, ok bool) {
	if !(f >= -0x1p63 && f < 0x1p63) {
		return 0, 0, false
	}
	a := math.Abs(f)
	whole := uint64(a) // at most 2^63: f below -2^63 was refused
	// Below 1e-10 the shortest decimal has no nanoseconds, and it would be
	// long (5e-324 has 324 digits after the point).
	if a != math.Trunc(a) && a >= 1e-10 {
		var buf [40]byte // 17 significant digits, at most 9 zeros before them
		n, carry := nanosOfFraction(strconv.AppendFloat(buf[:0], a, 'f', -1, 64))
		nsec, whole = n, whole+carry
	}
	switch {
	case f >= 0:
		return int64(whole), nsec, true
	case nsec != 0:
		// -(whole + nsec/1e9) = -whole-1 + (1e9-nsec)/1e9; a float with
		// a fraction is below 2^52 in magnitude, so -whole-1 fits.
		return -int64(whole) - 1, 1e9 - nsec, true
	case whole == 1<<63:
		return math.MinInt64, 0, true
	}
	return -int64(whole), 0, true
}

// nanosOfFraction reads the digits after the point of a decimal d as
// nanoseconds, rounded half up; carry is 1 when they round up to a whole
// second.
func nanosOfFraction(d []byte) (nsec uint32, carry uint64) {
	i := 0
	for i < len(d) && d[i] != '.' {
		i++
	}
	frac := d[min(i+1, len(d)):]
	for j := 0; j < 9; j++ {
		nsec *= 10
		if j < len(frac) {
			nsec += uint32(frac[j] - '0')
		}
	}
	if len(frac) > 9 && frac[9] >= '5' {
		nsec++
	}
	if nsec == 1e9 {
		return 0, 1
	}
	return nsec, 0
}

// epochOfInt converts a CBOR tag 1 integer token to timestamp seconds; ok
// is false beyond int64.
func epochOfInt(t *tok) (int64, bool) {
	if t.u > math.MaxInt64 {
		return 0, false
	}
	if t.neg {
		return ^int64(t.u), true
	}
	return int64(t.u), true
}
