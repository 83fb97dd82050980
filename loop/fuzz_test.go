package loop

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"

	"github.com/gobwas/ws"

	"github.com/edgewamp/edgewamp/proto"
)

// Fuzz targets for every parser of the package. Each feeds its input whole
// and in random chunks (the chunk sizes come from the seed argument) and
// requires the same outcome: the parsers must not depend on how bytes are
// split across reads. Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzWSReader$' -fuzztime 30s ./loop

// randomChunks splits data into chunks of 1 to maxChunk bytes chosen by seed.
func randomChunks(data []byte, seed uint64, maxChunk int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out [][]byte
	for len(data) > 0 {
		n := min(1+rng.IntN(maxChunk), len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

// FuzzWSReader's message limit comes from the input (1 to 400 octets), so
// that short inputs reach the limit paths: minimizing a long input costs the
// fuzzer quadratic time, which would eat most of a 30 s run.
func FuzzWSReader(f *testing.F) {
	// A masked text frame.
	f.Add(cframe(true, ws.OpText, "hello"), uint64(1), uint16(100))
	// A text message in 3 fragments with a ping between them.
	f.Add(cat(cframe(false, ws.OpText, "Hel"), cframe(true, ws.OpPing, "p"),
		cframe(false, ws.OpContinuation, "lo"), cframe(true, ws.OpContinuation, "!")), uint64(2), uint16(100))
	// A code point split across fragments.
	f.Add(cat(cframe(false, ws.OpText, "\xc3"), cframe(true, ws.OpContinuation, "\xa9")), uint64(3), uint16(100))
	// Binary with a 16-bit length, then a close with status and reason.
	f.Add(cat(cframe(true, ws.OpBinary, string(make([]byte, 126))), cframe(true, ws.OpClose, closeBody(1000, "bye"))), uint64(4), uint16(200))
	// Over the limit: 8 octets against a limit of 7; 2^63 octets.
	f.Add(cframe(true, ws.OpBinary, "12345678"), uint64(5), uint16(6))
	f.Add([]byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, uint64(6), uint16(100))
	// Fragments whose total passes the limit (10 octets).
	f.Add(cat(cframe(false, ws.OpBinary, "123456"), cframe(true, ws.OpContinuation, "789ab")), uint64(7), uint16(9))
	// Protocol errors: unmasked, RSV1, reserved opcode, long ping, bad close
	// code, invalid UTF-8.
	f.Add(wsFrame(0x81, false, []byte("hi")), uint64(8), uint16(100))
	f.Add(wsFrame(0xc1, true, []byte("hi")), uint64(9), uint16(100))
	f.Add(wsFrame(0x8f, true, nil), uint64(10), uint16(100))
	f.Add([]byte{0x89, 0xfe, 0, 126, 1, 2, 3, 4}, uint64(11), uint16(300))
	f.Add(cframe(true, ws.OpClose, "\x03\xed"), uint64(12), uint16(100))
	f.Add(cframe(true, ws.OpText, "\xff"), uint64(13), uint16(100))

	f.Fuzz(func(t *testing.T, data []byte, seed uint64, limit uint16) {
		maxMessage := 1 + int(limit)%400
		whole, wholeErr := feedWS(t, maxMessage, data)
		chunked, chunkedErr := feedWS(t, maxMessage, randomChunks(data, seed, 64)...)
		if wholeErr != chunkedErr || !equalRecs(whole, chunked) {
			t.Fatalf("chunking changed the outcome:\nwhole   %+v %v\nchunked %+v %v", whole, wholeErr, chunked, chunkedErr)
		}
		if wholeErr != nil {
			var ce *wsCloseErr
			if !errors.As(wholeErr, &ce) || !wsValidCloseCode(ce.code) {
				t.Fatalf("error %v is not a close error with a valid code", wholeErr)
			}
			// The close frame we would send parses.
			if _, err := readFrameRef(appendWSClose(nil, ce.code, ce.reason)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzRawSocket(f *testing.F) {
	hs := []byte{0x7f, 0xf1, 0, 0} // JSON, client receives up to 16 MiB
	// Handshake, a message, a ping and a pong.
	f.Add(cat(hs, appendRawFrame(nil, rawMessage, []byte(`[1,"r",{}]`)),
		appendRawFrame(nil, rawPing, []byte("p")), appendRawFrame(nil, rawPong, nil)), uint64(1))
	// A MsgPack handshake with a 512-byte limit, then a frame over it.
	f.Add(cat([]byte{0x7f, 0x02, 0, 0}, appendRawHeader(nil, rawMessage, 513)), uint64(2))
	// Bad handshakes: serializer 0, reserved octets, not RawSocket.
	f.Add([]byte{0x7f, 0x10, 0, 0}, uint64(3))
	f.Add([]byte{0x7f, 0x11, 0, 1}, uint64(4))
	f.Add([]byte("GET / HTTP/1.1\r\n"), uint64(5))
	// Reserved type, reserved bits, X bit with length bits.
	f.Add(cat(hs, []byte{0x05, 0, 0, 0}), uint64(6))
	f.Add(cat(hs, []byte{0x80, 0, 0, 0}), uint64(7))
	f.Add(cat(hs, []byte{0x08, 0, 0, 1}), uint64(8))

	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		in := newInBuf(16)
		in.write(data[:min(4, len(data))])
		h, n, err := readRawHandshake(in)
		if n == 0 {
			if err != nil || len(data) >= 4 {
				t.Fatalf("need-more with %d bytes, err %v", len(data), err)
			}
			return
		}
		if err != nil {
			var he rawHSError
			switch {
			case errors.As(err, &he):
				reply := he.reply()
				if reply[0] != rawMagic || reply[1]&0x0f != 0 || reply[1]>>4 == 0 || reply[2] != 0 || reply[3] != 0 {
					t.Fatalf("error reply % x", reply)
				}
			case err != errRawMagic:
				t.Fatalf("handshake error %v", err)
			}
			return
		}
		if !h.ser.Valid() || h.maxRecv < 512 || h.maxRecv > rawMaxLength {
			t.Fatalf("handshake %+v", h)
		}
		frames := data[4:]
		limit := min(h.maxRecv, 1<<16)
		whole, wholeErr := feedRaw(t, limit, frames)
		chunked, chunkedErr := feedRaw(t, limit, randomChunks(frames, seed, 64)...)
		if wholeErr != chunkedErr || len(whole) != len(chunked) {
			t.Fatalf("chunking changed the outcome: %d %v vs %d %v", len(whole), wholeErr, len(chunked), chunkedErr)
		}
		// Frames have one encoding: re-encoding the events gives back the
		// bytes they were parsed from.
		var again []byte
		for i, ev := range whole {
			if ev != chunked[i] || ev.typ > rawPong || len(ev.payload) > limit {
				t.Fatalf("event %d: %+v vs %+v", i, ev, chunked[i])
			}
			again = appendRawFrame(again, ev.typ, []byte(ev.payload))
		}
		if !bytes.HasPrefix(frames, again) {
			t.Fatal("re-encoded frames differ from the input")
		}
		if wholeErr == nil && len(again) != len(frames) {
			// The rest must be an incomplete frame.
			rest := frames[len(again):]
			if len(rest) >= 4 {
				if _, length, err := (&rawReader{maxLen: limit}).prefix(rest); err != nil || len(rest) >= 4+length {
					t.Fatalf("stopped before a complete frame: % x", rest[:4])
				}
			}
		}
	})
}

func FuzzHTTPUpgrade(f *testing.F) {
	// A valid upgrade, with a frame pipelined after it.
	f.Add([]byte(upgradeReq("/ws", "wamp.2.json")+"\x81\x80\x01\x02\x03\x04"), uint16(10))
	f.Add([]byte(upgradeReq("/ws", "x, wamp.2.cbor.batched", "Origin: ab")), uint16(100))
	// No subprotocol, no upgrade, health, wrong method, wrong path.
	f.Add([]byte(upgradeReq("/ws", "")), uint16(1))
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"), uint16(2))
	f.Add([]byte("GET /healthz HTTP/1.1\r\n\r\n"), uint16(3))
	f.Add([]byte("PUT /ws HTTP/1.1\r\n\r\n"), uint16(4))
	f.Add([]byte("GET /x?y HTTP/1.1\r\n\r\n"), uint16(5))
	// Malformed: bare LF, obs-fold, garbage.
	f.Add([]byte("GET / HTTP/1.1\nHost: x\r\n\r\n"), uint16(6))
	f.Add([]byte("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), uint16(7))
	f.Add([]byte("\x00\x01\x02\r\n\r\n"), uint16(8))

	const limit = 2048
	o := &httpOptions{maxHeader: limit, checkOrigin: func(o []byte) bool { return len(o)%2 == 0 }}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		in := newInBuf(1 << 16)
		in.write(data)
		res, n, err := handleHTTP(in, o)
		if err != nil {
			t.Fatal(err)
		}
		checkHTTPResult(t, data, limit, res, n)

		// The same bytes in two parts: the same answer once complete,
		// the second part's scan resumed where the first one's stopped.
		k := int(split) % (len(data) + 1)
		in = newInBuf(1 << 16)
		in.write(data[:k])
		from := 0
		res2, n2, _ := handleHTTPFrom(in, o, &from)
		if res2.kind == httpNeedMore {
			in.write(data[k:])
			res2, n2, _ = handleHTTPFrom(in, o, &from)
		}
		if res2.kind != res.kind || res2.status != res.status || !bytes.Equal(res2.resp, res.resp) ||
			(res.status != http.StatusRequestHeaderFieldsTooLarge && res.reason != errHTTPBareLF && res.reason != errHTTPBadRequest && n2 != n) {
			t.Fatalf("split at %d changed the answer: %d/%d vs %d/%d", k, res2.status, n2, res.status, n)
		}
	})
}

// checkHTTPResult checks the invariants of one handleHTTP result.
func checkHTTPResult(t *testing.T, data []byte, limit int, res httpResult, n int) {
	t.Helper()
	end := bytes.Index(data[:min(len(data), limit)], crlfcrlf)
	switch res.kind {
	case httpNeedMore:
		if n != 0 || end >= 0 || len(data) >= limit {
			t.Fatalf("need-more with n %d, header end %d, %d bytes", n, end, len(data))
		}
		return
	case httpUpgrade:
		if !res.ser.Valid() || res.status != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade with %v, status %d", res.ser, res.status)
		}
	case httpRespond:
		if res.status != http.StatusOK && res.reason == nil {
			t.Fatalf("refusal %d without a reason", res.status)
		}
	case httpDrop:
		// A method in lower case is dropped once its line is whole and not
		// a request line (firstLineRefusal).
		if n != 0 || res.resp != nil || res.reason != errHTTPNotHTTP && res.reason != errHTTPTLSHello ||
			methodPrefixOK(data[:min(len(data), limit)]) && upperMethod(data[:max(bytes.IndexByte(data, ' '), 0)]) {
			t.Fatalf("drop with n %d, reason %v, %q", n, res.reason, data[:min(len(data), 32)])
		}
		return
	}
	if res.status == http.StatusRequestHeaderFieldsTooLarge {
		if n != len(data) || end >= 0 {
			t.Fatalf("431 with n %d of %d", n, len(data))
		}
	} else if (res.reason == errHTTPBareLF || res.reason == errHTTPBadRequest) && end < 0 {
		// Refused at the first bare LF or CR, or at a first line that is
		// not a request line, before the header's end: everything
		// buffered, as for 431.
		if n != len(data) {
			t.Fatalf("bare LF refused with n %d of %d", n, len(data))
		}
	} else if n != end+4 {
		t.Fatalf("n %d, header ends at %d", n, end+4)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(res.resp)), nil)
	if err != nil {
		t.Fatalf("response does not parse: %v\n%q", err, res.resp)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != res.status {
		t.Fatalf("status %d, result says %d", resp.StatusCode, res.status)
	}
	if res.kind == httpRespond && (!resp.Close || resp.Header.Get("Content-Length") != strconv.Itoa(len(body))) {
		t.Fatalf("refusal framing:\n%q", res.resp)
	}
}

func FuzzBatchSplit(f *testing.F) {
	// JSON: two messages; unterminated; empty message.
	f.Add([]byte("[1]\x1e[2,3]\x1e"), false)
	f.Add([]byte("[1]\x1e[2"), false)
	f.Add([]byte("\x1e"), false)
	// Autobahn|Python's separator, 0x18: two messages; the two mixed (the
	// first batch's last octet decides: 0x18, and the 0x1e is inside a
	// message); a lone one.
	f.Add([]byte("[1]\x18[2,3]\x18"), false)
	f.Add([]byte("[1]\x1e[2]\x18"), false)
	f.Add([]byte("\x18"), false)
	// Binary: two messages; a length past the end; a zero length; a cut prefix.
	f.Add(cat(lp("\x91\x01"), lp("\x92\x02\x03")), true)
	f.Add([]byte{0, 0, 0, 9, 1, 2}, true)
	f.Add([]byte{0, 0, 0, 0}, true)
	f.Add([]byte{0, 0}, true)

	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		ser := proto.JSON
		if binary {
			ser = proto.MsgPack
		}
		// The separator a connection takes from a first batch like this
		// one (deliverBatch): 0x18 when it ends with one, else 0x1e.
		sep := batchSepOf(data)
		var msgs [][]byte
		err := splitBatch(data, ser, sep, func(m []byte) error {
			msgs = append(msgs, m)
			return nil
		})
		// The iterator agrees with splitBatch: same messages, then the
		// same error.
		br := newBatchReader(data, ser, sep)
		var iterErr error
		for i := 0; ; i++ {
			m, e := br.next()
			if e != nil || m == nil {
				iterErr = e
				break
			}
			if err == nil && !bytes.Equal(m, msgs[i]) {
				t.Fatalf("iterator message %d differs", i)
			}
		}
		if iterErr != err {
			t.Fatalf("iterator error %v, splitBatch error %v", iterErr, err)
		}
		if err != nil {
			if len(msgs) != 0 {
				t.Fatal("a malformed batch dispatched messages")
			}
			switch err {
			case errBatchEmpty, errBatchEmptyMessage, errBatchUnterminated, errBatchTruncated:
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(msgs) == 0 {
			t.Fatal("a well-formed batch with no message")
		}
		var again []byte
		for _, m := range msgs {
			if len(m) == 0 || !binary && bytes.IndexByte(m, sep) >= 0 {
				t.Fatalf("bad message %q", m)
			}
			again = appendBatched(again, ser, sep, m)
		}
		if !bytes.Equal(again, data) {
			t.Fatal("re-framed batch differs from the input")
		}
	})
}
