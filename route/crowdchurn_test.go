package route

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// pipeline hands the loop n messages built by mk back to back, as a
// peer's pipelined input is read in one round, draining the answers. It
// returns the CPU time the loop's thread spent on them (RUSAGE_THREAD,
// the goroutine locked to its thread meanwhile), which the other work on
// a shared test machine does not blur as it blurs wall time.
func pipeline(att *tc, n int, mk func(i int) *proto.Message) time.Duration {
	bs := make([][]byte, n)
	for i := range n {
		b, err := att.enc.Append(nil, att.peer.ser, mk(i))
		if err != nil {
			att.t.Fatal(err)
		}
		bs[i] = b
	}
	done, drained := make(chan struct{}), make(chan struct{})
	go func() { // the answers, so that the test peer's inbox does not fill
		defer close(drained)
		for {
			select {
			case <-att.peer.in:
			case <-done:
				return
			}
		}
	}()
	var cpu time.Duration
	const batch = 1000 // a loop round's worth at a time (the executor's do waits 5 s at most)
	for i := 0; i < n; i += batch {
		part := bs[i:min(i+batch, n)]
		att.exec.do(func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			t0 := threadCPU()
			for _, b := range part {
				att.sh.Receive(att.sess, b)
			}
			cpu += threadCPU() - t0
		})
	}
	close(done)
	<-drained
	for {
		select {
		case <-att.peer.in:
		default:
			return cpu
		}
	}
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// A REGISTER and an UNREGISTER on a shared registration of 10,000 callees
// cost about what they cost on one of a single other callee: the loop's
// CPU time and the bytes allocated a pair, for 2,000 pairs pipelined.
// The callee list is read lock-free by every CALL on every loop, so a
// change cannot be made where a reader looks; it was a flat slice, copied
// whole by each REGISTER (addCallee, after a walk of it for a duplicate,
// hasCallee) and each UNREGISTER (detachCallee), under the realm's lock:
// 502 KB and 0.4-0.6 ms of the loop a pair against 11 KB and 2-5 us,
// for a request of a few bytes charged to no budget (list_callees, which
// walks the same list, is charged to the walk budget:
// TestListCalleesWalkBudget). Now a REGISTER appends to the list's tail in
// place and a removal copies a chunk (calleeList): 12 KB a pair, the CPU
// time within the noise of the lone registration's. (A repeated SUBSCRIBE
// to a crowded topic walks the loop's subscribers of it too, subSet.has,
// but measured only ~4 us more per 10,000: no defect.)
func TestReregisterCrowdWalk(t *testing.T) {
	e := newEnv(t, 1, nil)
	const crowd = 10000
	rr := map[string]any{"invoke": "roundrobin"}
	for range crowd {
		e.join(proto.MsgPack).register("com.crowd", rr)
	}
	e.join(proto.MsgPack).register("com.lone", rr)
	att := e.join(proto.MsgPack)
	const n = 2000 // REGISTER, UNREGISTER pairs
	run := func(topic string) (time.Duration, uint64) {
		id := att.register(topic, rr)
		att.send(&proto.Message{Type: proto.CodeUnregister, Request: att.nextReq(), ID: id})
		att.expect(proto.CodeUnregistered)
		o := att.opts(rr)
		var m0, m1 runtime.MemStats
		runtime.GC() // the joins' garbage is not collected on the loop's time
		runtime.ReadMemStats(&m0)
		d := pipeline(att, 2*n, func(i int) *proto.Message {
			if i%2 == 0 {
				return &proto.Message{Type: proto.CodeRegister, Request: uint64(1000 + i), Dict: o, URI: []byte(topic)}
			}
			return &proto.Message{Type: proto.CodeUnregister, Request: uint64(1000 + i), ID: id}
		})
		runtime.ReadMemStats(&m1)
		return d, (m1.TotalAlloc - m0.TotalAlloc) / n
	}
	lone, loneB := run("com.lone")
	crowded, crowdB := run("com.crowd")
	t.Logf("%d pipelined REGISTER/UNREGISTER pairs, the loop's CPU time and the bytes allocated a pair: on a registration of one other callee %v, %d B; of %d callees %v, %d B",
		n, lone, loneB, crowd, crowded, crowdB)
	if crowdB > 10*loneB+64<<10 || crowded > 3*lone+100*time.Millisecond {
		t.Fatalf("a REGISTER/UNREGISTER pair (about 40 bytes of input) on a shared registration of %d callees allocated %d bytes (%d on one of a single callee), and %d pairs took the loop %v of CPU (%v): each copies the whole callee list, uncharged to any budget",
			crowd, crowdB, loneB, n, crowded, lone)
	}
}

// 10,000 callees registering to one shared registration, then leaving
// one by one (a fleet dropped by a network blip, and coming back),
// allocate a few KB each: their messages, the callee list's tail appended
// to, or the chunk of it a removal copies and the list of chunks. Each
// REGISTER and each leave copied the whole callee list, under the
// realm's lock: 129 KB a REGISTER, 1,229 MB and 2.0 s for the 10,000;
// 124 KB a leave, 1,184 MB and 1.0-2.2 s; quadratic. Now 4.9 KB a
// REGISTER (46 MB, 0.16 s) and 5.6 KB a leave (53 MB, 0.06-0.1 s).
func TestCrowdLeavesSharedRegistration(t *testing.T) {
	e := newEnv(t, 1, nil)
	const crowd = 10000
	rr := map[string]any{"invoke": "roundrobin"}
	cs := make([]*tc, crowd)
	for i := range cs {
		cs[i] = e.join(proto.MsgPack)
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	t0 := time.Now()
	for _, c := range cs {
		c.register("com.crowd", rr)
	}
	d := time.Since(t0)
	runtime.ReadMemStats(&m1)
	per := (m1.TotalAlloc - m0.TotalAlloc) / crowd
	t.Logf("%d callees registered in %v, allocating %d bytes each (%d MB in all)", crowd, d, per, (m1.TotalAlloc-m0.TotalAlloc)>>20)
	if per > 64<<10 {
		t.Fatalf("each of %d callees registering to a shared registration allocated %d bytes (%d MB in all, %v): a REGISTER copies the whole callee list, so a crowd's coming back is quadratic",
			crowd, per, (m1.TotalAlloc-m0.TotalAlloc)>>20, d)
	}
	runtime.GC()
	runtime.ReadMemStats(&m0)
	t0 = time.Now()
	for _, c := range cs {
		c.drop()
	}
	e.sync()
	d = time.Since(t0)
	runtime.ReadMemStats(&m1)
	per = (m1.TotalAlloc - m0.TotalAlloc) / crowd
	t.Logf("%d callees of one shared registration left in %v, allocating %d bytes each (%d MB in all)", crowd, d, per, (m1.TotalAlloc-m0.TotalAlloc)>>20)
	if per > 64<<10 {
		t.Fatalf("each of %d callees leaving a shared registration allocated %d bytes (%d MB in all, %v): a leave copies the whole remaining callee list, so a crowd's departure is quadratic",
			crowd, per, (m1.TotalAlloc-m0.TotalAlloc)>>20, d)
	}
}
