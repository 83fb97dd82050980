package loop

import (
	"encoding/binary"
	"log/slog"
	"strings"
	"testing"

	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

// cborHalfPublish is a CBOR PUBLISH to topic, acknowledged, whose one
// argument is a list of n half floats 3 * 2^-24 (3 bytes each in CBOR,
// "1.7881393432617188e-07" in JSON: 23 bytes with its comma).
func cborHalfPublish(req byte, topic string, n int) []byte {
	b := []byte{0x85, 0x10, req, 0xa1, 0x6b}
	b = append(b, "acknowledge"...)
	b = append(b, 0xf5, 0x60+byte(len(topic)))
	b = append(b, topic...)
	b = append(b, 0x81, 0x9a)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for range n {
		b = append(b, 0xf9, 0x00, 0x03)
	}
	return b
}

// An event that only grows past a RawSocket JSON subscriber's maximum
// when converted for it (the largest a RawSocket client may announce,
// 2^24 - 1 bytes, is passed by 2.4 MB of CBOR half floats, about 18 MB of
// JSON; here a subscriber announcing 2^18 bytes and 60 KB of CBOR, 460 KB
// of JSON, which converts ~40 times faster under -race) is dropped for that subscriber, counted too_big, and
// logged once per publishing session with its topic and publisher, as an
// event whose payload its serializer cannot carry is (the publisher's
// acknowledged PUBLISH still gets PUBLISHED, as there). Before, it was
// counted only: the subscriber silently missed it, and nothing said whose.
func TestSocketEventGrownPastSubscriberMaxLogged(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	s := startServer(t, func(_ *Options, rc *route.Config) {
		rc.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	const topic = "com.halves"
	sub := newWAMP(t, dialRS(t, s.url, proto.JSON, 9), proto.JSON)
	sub.join()
	sub.subscribe(topic)
	pub := s.joinRS(t, proto.CBOR)
	before := s.r.Stats().EventsDroppedTooBig
	for i := byte(1); i <= 2; i++ {
		pub.c.send(cborHalfPublish(i, topic, 20_000))
		if m := pub.expect(proto.CodePublished); m.Request != uint64(i) {
			t.Fatalf("PUBLISHED for %d, want %d", m.Request, i)
		}
		eventually(t, ioTimeout, "the drop counted too_big", func() bool {
			return s.r.Stats().EventsDroppedTooBig == before+uint64(i)
		})
	}
	var lines []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "topic="+topic) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "too_big") ||
		!strings.Contains(lines[0], "serializer=json") || !strings.Contains(lines[0], "publisher=") {
		t.Fatalf("want one WARN line naming the topic, the serializer, the publisher and too_big, got %d:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	// The subscriber is still served.
	pub.c.send(encodeMsg(t, proto.CBOR, &proto.Message{Type: proto.CodePublish, Request: 3,
		Dict: emptyDict(t, proto.CBOR), URI: []byte(topic), Args: rawValue(t, proto.CBOR, []any{"small"})}))
	if m := sub.expect(proto.CodeEvent); args(t, m)[0] != "small" {
		t.Fatalf("event %v", args(t, m))
	}
}
