package edge

import (
	"bytes"
	"testing"
)

// FuzzFrame feeds unpackFrame what a hostile peer node can put in a NATS
// message (the frame is read from the mesh, not only from our own nodes),
// and round-trips envelopes cut from the input through packRun and
// appendFrame. It checks what the receiver relies on: no panic; at most
// maxFrameItems envelopes and no more bytes than the frame holds; nothing
// delivered from a frame over maxFrame; envelopes that own their memory;
// and a frame we pack unpacks to the same envelopes, in order.
func FuzzFrame(f *testing.F) {
	f.Add([]byte{frameMark, 1, 'a', 2, 'b', 'c'})
	f.Add([]byte{frameMark, 5, 'a', 'b'})
	f.Add([]byte{frameMark, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{frameMark, 0, 0, 0, 1, 'x'})
	f.Add(append([]byte{frameMark}, bytes.Repeat([]byte{0}, maxFrameItems+1)...))
	f.Add(append([]byte{frameMark}, bytes.Repeat([]byte{1, 'e'}, maxFrameItems+1)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		// As received.
		if isFrame(data) {
			orig := bytes.Clone(data)
			var n, total int
			err := unpackFrame(data, func(env []byte) {
				if len(env) == 0 {
					t.Fatal("an empty envelope was delivered")
				}
				n++
				total += len(env)
				env[0] ^= 0xff // must not write into data
			})
			if !bytes.Equal(data, orig) {
				t.Fatal("a delivered envelope aliases the frame")
			}
			if n > maxFrameItems {
				t.Fatalf("%d envelopes delivered from one frame (max %d)", n, maxFrameItems)
			}
			if total > len(data) {
				t.Fatalf("%d bytes delivered from a frame of %d", total, len(data))
			}
			if len(data) > maxFrame && (n > 0 || err == nil) {
				t.Fatalf("a frame of %d bytes (max %d): %d envelopes, err %v", len(data), maxFrame, n, err)
			}
		}

		// As sent: envelopes cut from data (each a length byte, then up
		// to that many bytes), packed as the sender does.
		b := &outBatch{}
		var envs [][]byte
		for rest := data; len(rest) > 0; {
			k := int(rest[0])%64 + 1
			rest = rest[1:]
			if k > len(rest) {
				k = len(rest)
			}
			if k == 0 {
				break
			}
			b.items = append(b.items, outItem{op: opPublish, pack: true, subj: "s", reply: "r", off: len(b.arena), n: k})
			b.arena = append(b.arena, rest[:k]...)
			envs = append(envs, rest[:k])
			rest = rest[k:]
		}
		for i := 0; i < len(b.items); {
			k := packRun(b.items[i:], maxFrame)
			if k < 1 || k > maxFrameItems {
				t.Fatalf("packRun gave %d", k)
			}
			if k == 1 {
				i++
				continue
			}
			frame := appendFrame(nil, b.arena, b.items[i:i+k])
			if len(frame) > maxFrame {
				t.Fatalf("packed a frame of %d bytes (max %d)", len(frame), maxFrame)
			}
			j := i
			if err := unpackFrame(frame, func(env []byte) {
				if j >= i+k || !bytes.Equal(env, envs[j]) {
					t.Fatalf("envelope %d: got %q", j, env)
				}
				j++
			}); err != nil || j != i+k {
				t.Fatalf("a packed frame of %d envelopes unpacked to %d: %v", k, j-i, err)
			}
			i += k
		}
	})
}
