package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	gnetqueue "github.com/panjf2000/gnet/v2/pkg/queue"
	"golang.org/x/sys/unix"
)

// Parking: an idle loop waits in Go's netpoller instead of in epoll_wait.
//
// A gnet loop waits for its next events in epoll_wait(2), a system call
// that keeps the loop's processor (its P) for as long as it blocks. Other
// goroutines that become runnable meanwhile — the mesh's NATS connection,
// its sender, the embedded NATS server's routes, the HTTP gateway — find
// no processor free where GOMAXPROCS is as small as the CPUs the router
// runs on (one per loop), and wait until sysmon takes the processor back
// from the blocked loop: 20 µs at least, on each hand-off, and sysmon
// itself then wakes every 20 µs while that goes on. On a mesh node that
// was a quarter of its CPU and most of a cross-node call's latency
// (bench/history.md, "Node A on a CPU of its own").
//
// A parked loop instead ends each round in a task (park) that waits on
// gnet's epoll descriptor through Go's netpoller: the descriptor is
// readable when gnet has events to return (a socket's data, or a task
// queued through Execute, which writes gnet's eventfd). Waiting there
// parks the loop's goroutine and frees its processor at once: the
// goroutines the round woke run, and when nothing runs the thread blocks
// in Go's own epoll_wait, which returns for gnet's events too. Nothing is
// lost: before waiting, park asks gnet's epoll descriptor itself
// (epoll_wait, timeout 0) and returns at once if gnet has events; an event
// after that is an edge that Go's netpoller keeps for the wait.
//
// When park runs. Every entry point of ours on the loop parks it as it
// ends. A task (loopState.Execute, the round's flush, the health probe)
// rests at once, in the task (rest): gnet runs tasks after the events of
// its batch, so the round is over, and a task queued meanwhile is seen in
// gnet's queues. An OnTraffic callback queues the parking task instead
// (leave, unless it is queued): gnet may have more events of its batch to
// hand to callbacks, and resting in each would cost an epoll_wait per
// callback; the task runs after the tasks queued before it, last in
// gnet's round. It does not queue itself again, since gnet would run it
// again in the same round (gnet runs the tasks queued while it runs
// tasks), and park would wait before the events that woke it were
// handled; the entry points those events start park anew. gnet's own
// rounds (OnOpen, OnClose) queue it too (parkAfter), and park writes what
// gnet buffers for slow readers itself (drain).
//
// The price is up to two system calls a round (that epoll_wait, and the
// eventfd write of queueing the task, which resting in a task saves),
// which a loop serving only its own sockets does not need: Options.Park
// chooses.
//
// Waking a parked loop. gnet's Execute writes its eventfd (which makes the
// epoll descriptor readable) only when the poller's wakeupCall flag goes
// from 0 to 1; gnet clears the flag after it has run the round's tasks,
// and park runs among them. So park clears it first, the way gnet does
// after the tasks: then it checks gnet's two task queues and does not
// wait if either holds a task (queued while the flag was still set, so
// without a write); a task queued after that check sets the flag and
// writes the eventfd, which wakes the wait. The eventfd's edge (it is
// edge-triggered, and gnet never drains it) would otherwise keep the
// descriptor readable after the task it announced has run, in this very
// round: park's epoll_wait consumes it, and checks the queues again. gnet
// needs no edge for tasks queued meanwhile: after its round's tasks it
// checks its queues and writes the eventfd itself. Sockets are
// level-triggered in gnet's epoll, so gnet's next wait reports again what
// park's reported.
//
// gnet exposes none of this. park reaches gnet's poller (eventloop.poller)
// by reflection: its epoll descriptor (fd, checked to be an epoll instance
// and put in Go's netpoller through a duplicate), its eventfd (efd), its
// wakeupCall flag and its two task queues (of gnet's public
// queue.AsyncTaskQueue type), each checked for its type. If any of that
// fails, the loop waits in epoll_wait as before, and the engine logs why
// once. The gnet version is pinned in go.mod, and TestParkWakes fails if
// an upgrade breaks this.

// parker is one loop's parking state. Owned by the loop goroutine.
type parker struct {
	wakeupCall *int32                       // gnet's poller.wakeupCall
	queues     [2]*gnetqueue.AsyncTaskQueue // gnet's poller.asyncTaskQueue, urgentAsyncTaskQueue
	f          *os.File                     // a duplicate of gnet's epoll descriptor, in Go's netpoller
	rc         syscall.RawConn              // f's
	epfd       int                          // gnet's epoll descriptor
	efd        int                          // gnet's eventfd (edge-triggered in epfd)
	events     [8]unix.EpollEvent
	ready      func(uintptr) bool
	fn         gnet.Runnable
	queued     bool // fn is queued
	// out holds the connections whose output gnet buffers (conn.write),
	// by descriptor: park writes it when their sockets become writable.
	out map[int]*conn
	// Waits that parked (the descriptor had no events), and whether the
	// loop is parked now: for tests.
	parks   atomic.Uint64
	waiting atomic.Bool
}

// gnetPoller reaches into a gnet event loop's poller (see above) and sets
// pk's descriptors and pointers.
func gnetPoller(el gnet.EventLoop, pk *parker) error {
	v := reflect.ValueOf(el)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return errors.New("event loop is not a pointer")
	}
	p := v.Elem().FieldByName("poller")
	if !p.IsValid() || p.Kind() != reflect.Pointer || p.IsNil() {
		return errors.New("event loop has no poller")
	}
	p = p.Elem()
	fd, efd := p.FieldByName("fd"), p.FieldByName("efd")
	if !fd.IsValid() || fd.Kind() != reflect.Int || !efd.IsValid() || efd.Kind() != reflect.Int {
		return errors.New("poller has no descriptors")
	}
	pk.efd = int(efd.Int())
	wc := p.FieldByName("wakeupCall")
	if !wc.IsValid() || wc.Type() != reflect.TypeFor[int32]() {
		return errors.New("poller has no wakeupCall flag")
	}
	pk.wakeupCall = (*int32)(unsafe.Pointer(wc.UnsafeAddr()))
	for i, name := range []string{"asyncTaskQueue", "urgentAsyncTaskQueue"} {
		q := p.FieldByName(name)
		if !q.IsValid() || q.Type() != reflect.TypeFor[gnetqueue.AsyncTaskQueue]() {
			return fmt.Errorf("poller has no %s", name)
		}
		pk.queues[i] = (*gnetqueue.AsyncTaskQueue)(unsafe.Pointer(q.UnsafeAddr()))
		if *pk.queues[i] == nil {
			return fmt.Errorf("poller's %s is nil", name)
		}
	}
	n := int(fd.Int())
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", n))
	if err != nil {
		return err
	}
	if link != "anon_inode:[eventpoll]" {
		return fmt.Errorf("poller descriptor %d is %q, not an epoll instance", n, link)
	}
	pk.epfd = n
	return nil
}

// newParker sets up parking for a loop.
func newParker(el gnet.EventLoop, park func(context.Context) error) (*parker, error) {
	pk := &parker{out: make(map[int]*conn)}
	if err := gnetPoller(el, pk); err != nil {
		return nil, err
	}
	dup, err := unix.FcntlInt(uintptr(pk.epfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup: %w", err)
	}
	// O_NONBLOCK is shared with gnet's descriptor; epoll_wait ignores it
	// (its timeout says whether it blocks). os.NewFile puts only
	// non-blocking descriptors in the netpoller.
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "gnet-epoll")
	if err := f.SetReadDeadline(time.Time{}); err != nil { // fails where f is not in the netpoller
		f.Close()
		return nil, fmt.Errorf("netpoller: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	pk.f, pk.rc = f, rc
	pk.ready = pk.idle // once: a method value taken per park would allocate
	pk.fn = gnet.RunnableFunc(park)
	return pk, nil
}

// idle reports whether gnet has nothing to do (see above), on the loop
// goroutine: no task queued, and no event but gnet's eventfd, whose edge it
// consumes (gnet, which runs park among its tasks, checks its queues again
// after them, and needs no edge for what they hold). It is RawConn.Read's
// callback: false parks the loop until the epoll descriptor is readable,
// and then idle runs again.
func (pk *parker) idle(uintptr) bool {
	for {
		atomic.StoreInt32(pk.wakeupCall, 0) // from here, Execute writes the eventfd
		if !(*pk.queues[0]).IsEmpty() || !(*pk.queues[1]).IsEmpty() {
			return true // gnet runs them in this round, or flags the next
		}
		n, err := unix.EpollWait(pk.epfd, pk.events[:], 0)
		switch {
		case err != nil || n < 0:
			return true // EINTR: back to gnet, which waits
		case n == 0:
			pk.parks.Add(1)
			pk.waiting.Store(true)
			return false
		}
		for _, ev := range pk.events[:n] {
			fd := int(ev.Fd)
			if fd == pk.efd {
				continue
			}
			cn := pk.out[fd]
			if cn == nil || ev.Events&^unix.EPOLLOUT != 0 {
				return true // a socket's events, which gnet's next wait reports again (level-triggered)
			}
			pk.drain(fd, cn)
		}
		// Only the eventfd's edge (a task may have been queued since the
		// flag was cleared), or sockets park wrote to: check again.
	}
}

// drain writes what gnet buffers for cn, whose socket became writable, as
// gnet's own round would: gnet calls none of our callbacks for that, so
// the loop would not park after it, and would wait in epoll_wait holding
// its processor until the next entry point. On a write error gnet closes
// the connection (OnClose).
func (pk *parker) drain(fd int, cn *conn) {
	_ = cn.c.Flush()
	if cn.phase == phGone || cn.c.OutboundBuffered() == 0 {
		delete(pk.out, fd)
	}
}

// park is the loop's parking task (see above): it returns once gnet has
// events, having waited in Go's netpoller if it had none.
func (ls *loopState) park(context.Context) error {
	ls.parker.queued = false
	ls.rest()
	return nil
}

// rest parks the loop at the end of a task of ours (its last statement):
// it returns once gnet has events, having waited in Go's netpoller if it
// had none. Nested in an entry point, it does nothing: the outermost
// parks. Resting in the task itself, rather than queueing the parking
// task, saves the eventfd write of queueing it whenever park has cleared
// gnet's wakeupCall flag earlier in the same round.
func (ls *loopState) rest() {
	pk := ls.parker
	if pk == nil || ls.depth != 0 {
		return
	}
	_ = pk.rc.Read(pk.ready) // an error: the descriptor closed, the engine stops
	pk.waiting.Store(false)
}

// queuePark queues the parking task unless it is queued (see above).
func (ls *loopState) queuePark() {
	if pk := ls.parker; pk != nil && !pk.queued {
		if ls.el.Execute(context.Background(), pk.fn) == nil {
			pk.queued = true
		}
	}
}

// parkAfter queues the parking task at the end of an OnTraffic callback
// (leave), or of a gnet callback that is not an entry point of ours
// (OnOpen, OnClose: gnet's own rounds), unless it runs inside an entry
// point, whose own end parks the loop. A round of gnet's own alone would
// otherwise end in epoll_wait, holding the loop's processor until the
// next entry point (or until sysmon takes it back: up to 10-20 ms with a
// steady sysmon, cmd/edgewamp/sysmon.go).
func (ls *loopState) parkAfter() {
	if ls.depth == 0 {
		ls.queuePark()
	}
}

// startPark starts parking on a new loop (on its goroutine), or logs why
// it cannot.
func (ls *loopState) startPark() {
	pk, err := newParker(ls.el, ls.park)
	if err != nil {
		ls.e.parkFailed(err)
		return
	}
	ls.parker = pk
}

// testPark, when set (by the package's tests: TestMain reads
// EDGEWAMP_TEST_PARK=on), parks every engine's loops.
var testPark bool

// parkFailed logs, once, that loops wait in epoll_wait after all.
func (e *Engine) parkFailed(err error) {
	if e.parkWarned.CompareAndSwap(false, true) {
		e.log.Warn("loops wait in epoll_wait: parking unavailable", "reason", err.Error())
	}
}

// closeParkers releases the duplicates once the loops have stopped.
func (e *Engine) closeParkers() {
	for _, ls := range e.allLoops() {
		if ls.parker != nil {
			ls.parker.f.Close()
		}
	}
}
