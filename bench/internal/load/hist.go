package load

import (
	"math/bits"
	"sync/atomic"
)

// Hist is a log-linear latency histogram in the manner of HDR histograms:
// values below 128 ns are exact, larger ones fall in one of 64 buckets per
// power of two (relative error under 1.6 %). Record is lock-free and
// allocation-free; the zero Hist is ready.
type Hist struct {
	b     [histBuckets]atomic.Uint64
	n     atomic.Uint64
	max   atomic.Int64
	total atomic.Int64
}

const (
	histExact   = 128
	histSub     = 64
	histShifts  = 57 // up to 2^63
	histBuckets = histExact + histShifts*histSub
)

func histIndex(v int64) int {
	if v < histExact {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	s := bits.Len64(uint64(v)) - 7 // v>>s in [64, 128)
	return histExact + (s-1)*histSub + int(uint64(v)>>s) - histSub
}

// histValue returns a representative value (the bucket's midpoint).
func histValue(i int) int64 {
	if i < histExact {
		return int64(i)
	}
	i -= histExact
	s := i/histSub + 1
	m := int64(i%histSub + histSub)
	return m<<s + (int64(1)<<s)/2
}

// Record adds one value in nanoseconds.
func (h *Hist) Record(ns int64) {
	h.b[histIndex(ns)].Add(1)
	h.n.Add(1)
	h.total.Add(ns)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			return
		}
	}
}

// Count returns the number of values.
func (h *Hist) Count() uint64 { return h.n.Load() }

// Max returns the largest value.
func (h *Hist) Max() int64 { return h.max.Load() }

// Mean returns the mean value.
func (h *Hist) Mean() int64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return h.total.Load() / int64(n)
}

// Quantile returns the value at quantile q in [0, 1] (0 when empty).
func (h *Hist) Quantile(q float64) int64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	want := uint64(q*float64(n) + 0.5)
	if want < 1 {
		want = 1
	}
	if want > n {
		want = n
	}
	var c uint64
	for i := range h.b {
		c += h.b[i].Load()
		if c >= want {
			v := histValue(i)
			if m := h.max.Load(); v > m {
				v = m
			}
			return v
		}
	}
	return h.max.Load()
}

// Reset clears h. Not safe while values are being recorded.
func (h *Hist) Reset() {
	for i := range h.b {
		h.b[i].Store(0)
	}
	h.n.Store(0)
	h.max.Store(0)
	h.total.Store(0)
}
