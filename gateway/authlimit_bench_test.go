package gateway

import "testing"

// BenchmarkFailLimiter: what the failed-authentication limiter costs a
// request with a credential (begin before the check, end after). good:
// an address with no record (a good credential leaves none); failing: an
// address with failures on record, below the limit (its failure is
// counted, a record kept).
func BenchmarkFailLimiter(b *testing.B) {
	b.Run("good", func(b *testing.B) {
		l := newFailLimiter(1 << 30)
		b.ReportAllocs()
		for b.Loop() {
			v, _ := l.begin("192.0.2.1", true)
			l.end("192.0.2.1", v == failReserved, false)
		}
	})
	b.Run("failing", func(b *testing.B) {
		l := newFailLimiter(1 << 30)
		b.ReportAllocs()
		for b.Loop() {
			v, _ := l.begin("192.0.2.1", true)
			l.end("192.0.2.1", v == failReserved, true)
		}
	})
}
