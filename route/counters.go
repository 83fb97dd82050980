package route

import (
	"context"
	"sort"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// Traffic counters for metrics. Each shard counts its own messages in
// plain fields that only its goroutine touches (no atomic, no lock, no
// allocation on the call and publish paths); Router.Traffic reads them on
// each shard's goroutine through Shard.Do, at scrape time.

// numCodeSlots indexes message types by code: every WAMP code is below 71
// except EVENT_RECEIVED, which shares the last slot with unknown codes.
const numCodeSlots = 72

func codeSlot(c proto.Code) int {
	if c < numCodeSlots-1 {
		return int(c)
	}
	return numCodeSlots - 1
}

// trafficCounters are one shard's counters. Owned by shard.
type trafficCounters struct {
	in, out           [numCodeSlots]uint64
	bytesIn, bytesOut uint64
	callsInFlight     int64 // calls between CALL and their final answer, as callers of this shard

	// Call latency, CALL to the final RESULT or ERROR from the callee, for
	// one call in callSampleEvery: reading the clock twice per sampled
	// call keeps time.Now off the call path almost always.
	callSeq    uint32
	latBuckets [len(CallLatencyBounds) + 1]uint64 // the last one: above every bound
	latCount   uint64
	latSumNS   uint64
}

// callSampleEvery is the call latency sampling interval (a power of two).
const callSampleEvery = 64

// CallLatencyBounds are the upper bounds of the call latency histogram.
var CallLatencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// sampleCall returns the CALL's start time when this call is sampled,
// else 0. Owned by shard.
func (s *Shard) sampleCall() int64 {
	s.traffic.callSeq++
	if s.traffic.callSeq%callSampleEvery != 0 {
		return 0
	}
	return s.r.now()
}

// observeCall records a sampled call's latency. Owned by shard.
func (s *Shard) observeCall(start int64) {
	d := s.r.now() - start
	if d < 0 {
		d = 0
	}
	t := &s.traffic
	i := 0
	for i < len(CallLatencyBounds) && time.Duration(d) > CallLatencyBounds[i] {
		i++
	}
	t.latBuckets[i]++
	t.latCount++
	t.latSumNS += uint64(d)
}

// countIn counts a message received from a session.
func (s *Shard) countIn(c proto.Code, n int) {
	s.traffic.in[codeSlot(c)]++
	s.traffic.bytesIn += uint64(n)
}

// countOut counts a message handed to a session's peer.
func (s *Shard) countOut(c proto.Code, n int) {
	s.traffic.out[codeSlot(c)]++
	s.traffic.bytesOut += uint64(n)
}

// Traffic is a router-wide snapshot of the traffic counters.
type Traffic struct {
	// In and Out count messages received from and sent to sessions, by
	// message type (indexed by TrafficCodes).
	In, Out map[proto.Code]uint64
	// BytesIn and BytesOut count the encoded WAMP messages' bytes (not
	// transport framing). In-process sessions hand over decoded messages
	// and add no inbound bytes.
	BytesIn, BytesOut uint64
	// CallsInFlight is the number of calls routed and not yet answered.
	CallsInFlight int64
	// CallLatency counts sampled calls (one in 64) by latency, CALL to the
	// callee's final answer: CallLatency[i] calls took at most
	// CallLatencyBounds[i] and more than the bound before (the last entry:
	// above every bound). CallLatencySum is their total.
	CallLatency    [len(CallLatencyBounds) + 1]uint64
	CallLatencySum time.Duration
}

// Traffic reads every shard's counters on the shard's goroutine and sums
// them. It blocks until every shard answered or ctx is done (then it
// returns ctx's error and no figures). Safe for concurrent use; it
// allocates (cold path: a metrics scrape).
func (r *Router) Traffic(ctx context.Context) (Traffic, error) {
	res := make(chan trafficCounters, len(r.shards))
	asked := 0
	for _, s := range r.shards {
		sh := s
		if sh.Do(func() { res <- sh.traffic }) == nil {
			asked++
		}
	}
	t := Traffic{In: map[proto.Code]uint64{}, Out: map[proto.Code]uint64{}}
	for ; asked > 0; asked-- {
		select {
		case c := <-res:
			for i := range c.in {
				if c.in[i] > 0 {
					t.In[slotCode(i)] += c.in[i]
				}
				if c.out[i] > 0 {
					t.Out[slotCode(i)] += c.out[i]
				}
			}
			t.BytesIn += c.bytesIn
			t.BytesOut += c.bytesOut
			t.CallsInFlight += c.callsInFlight
			for i, n := range c.latBuckets {
				t.CallLatency[i] += n
			}
			t.CallLatencySum += time.Duration(c.latSumNS)
		case <-ctx.Done():
			return Traffic{}, ctx.Err()
		}
	}
	return t, nil
}

// slotCode is codeSlot's inverse; the last slot reads as 0 (other).
func slotCode(i int) proto.Code {
	if i == numCodeSlots-1 {
		return 0
	}
	return proto.Code(i)
}

// RealmSessions counts one realm's established sessions by transport type.
type RealmSessions struct {
	Realm       string
	ByTransport map[string]int // TransportInfo.Type → sessions
}

// SessionsByRealm counts the established sessions of every realm by
// transport type, sorted by realm. It takes each realm's lock for reading
// while it walks the members (cold path: a metrics scrape). Safe for
// concurrent use.
func (r *Router) SessionsByRealm() []RealmSessions {
	realms := *r.realms.Load()
	out := make([]RealmSessions, 0, len(realms))
	for name, rm := range realms {
		rs := RealmSessions{Realm: name, ByTransport: map[string]int{}}
		rm.mu.RLock()
		for _, ss := range rm.members {
			rs.ByTransport[ss.transport.Type]++ // static after WELCOME
		}
		rm.mu.RUnlock()
		out = append(out, rs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Realm < out[j].Realm })
	return out
}
