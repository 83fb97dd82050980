package loop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"
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

	// The inbox (see "The inbox" below): tasks posted from other
	// goroutines, the loop's state for them, and wake-ups by deadline
	// (for tests). Shared, unlike the rest.
	inMu     sync.Mutex
	inbox    []func()
	inClosed bool // the loop takes no more: post fails
	// inboxReady: idle returned because the inbox holds a task (the
	// loop's; see rest).
	inboxReady bool
	// lowQueued: lowFn, which runs the inbox, is in gnet's low-priority
	// queue (queueLow).
	lowQueued bool
	lowFn     gnetqueue.Func
	state     atomic.Int32
	wakes     atomic.Uint64
	spare     []func()      // the loop's: the last inbox it ran, for reuse
	drainFn   gnet.Runnable // the task that runs the inbox from gnet's queue
}

// The loop's states for post (see "The inbox").
const (
	inOut    = iota // in gnet's round: post queues drainFn in gnet's queue
	inPark          // in rest, which runs the inbox before it waits or leaves
	inParked        // waiting in the netpoller: post wakes it by deadline
	inWoken         // woken by a post (its deadline may still be on its way)
)

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
func newParker(el gnet.EventLoop, park, drain func(context.Context) error) (*parker, error) {
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
	pk.drainFn = gnet.RunnableFunc(drain)
	pk.lowFn = func(any) error {
		pk.lowQueued = false
		return drain(context.Background())
	}
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
			if pk.pending() {
				// Posted to the inbox, with gnet idle: rest runs it.
				// Checked after gnet's descriptor, so that an inbox
				// never empty (a flood of posts from another CPU)
				// cannot keep the loop from its sockets.
				pk.inboxReady = true
				return true
			}
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
// had none, and having run the tasks posted to its inbox meanwhile.
// Nested in an entry point, it does nothing: the outermost parks. Resting
// in the task itself, rather than queueing the parking task, saves the
// eventfd write of queueing it whenever park has cleared gnet's wakeupCall
// flag earlier in the same round.
func (ls *loopState) rest() {
	pk := ls.parker
	if pk == nil || ls.depth != 0 {
		return
	}
	pk.state.Store(inPark)
	for {
		ls.runInbox()
		pk.state.Store(inParked)
		pk.inboxReady = false
		err := pk.rc.Read(pk.ready)
		pk.waiting.Store(false)
		switch {
		case err == nil && pk.inboxReady:
			// Posted since, and gnet has nothing: run it. A post that
			// saw inParked has set inWoken, and its deadline will end a
			// later wait at once (a spurious wake-up, handled below).
			pk.state.Store(inPark)
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			// A post's wake-up (or a late one's, after a wait that
			// ended for gnet's events): run the inbox, and wait again.
			_ = pk.f.SetReadDeadline(time.Time{})
			pk.state.Store(inPark)
			continue
		}
		// gnet has events, or the descriptor closed (the engine stops):
		// back to gnet's round. What is posted from now on goes through
		// gnet's queue (drainFn). What was posted before and waits in
		// the inbox runs in the park that ends gnet's round, or in a task
		// in gnet's low-priority queue (queueLow), whichever comes first;
		// and a non-empty inbox makes posts queue nothing. Not now: a
		// task run now could post again (one that posts, or a flood of
		// posts from another CPU) with the loop in gnet's round, which
		// queues drainFn, and gnet runs the tasks queued while it runs
		// tasks before it polls again: the loop would never get back to
		// its sockets. Of its low-priority tasks gnet runs at most 256,
		// then polls.
		pk.state.Store(inOut)
		if pk.pending() {
			pk.queueLow()
		}
		return
	}
}

// The inbox. A task for a parking loop from another goroutine (Execute:
// the mesh's deliveries to the router's shard, the acceptors, the
// gateway's lane) would go in gnet's queue, whose eventfd write wakes the
// loop through Go's netpoller: a system call by the sender, and two
// epoll_waits by the loop (gnet's, which finds the eventfd, and park's).
// On a mesh node every call across nodes pays that twice (the invocation
// on the callee's node, the result on the caller's), and on a VM each
// system call is dear. Instead post appends the task to the loop's inbox,
// and when the loop is parked (waiting in the netpoller in rest) it wakes
// the wait by setting the descriptor's read deadline in the past: Go's
// runtime then makes the loop's goroutine runnable at once, with no
// system call. rest runs the inbox before each wait and after each
// wake-up; what waits in it when rest returns to gnet runs after gnet's
// round (see rest), so that sockets are never starved by tasks.
//
// The first post to an empty inbox sees to the wake-up, by the loop's
// state, which the loop sets before it checks the inbox (sequentially
// consistent atomics: either the loop sees the task or the post sees the
// state): inParked, the post wakes the wait (the first such post, by
// compare-and-swap to inWoken); inPark or inWoken, the loop is in rest and
// runs the inbox before it waits or leaves; inOut, the loop is in gnet's
// round, which may end anywhere (a round of gnet's own that queued no
// park ends in epoll_wait), so the post queues drainFn in gnet's queue, as
// Execute did. A deadline that lands after its wait ended for another
// reason ends the next wait at once: one spurious round, never a lost
// one. Posts keep their order (one inbox, run in order).

// post queues f in the loop's inbox (see above).
func (ls *loopState) post(f func()) error {
	pk := ls.parker
	pk.inMu.Lock()
	if pk.inClosed {
		pk.inMu.Unlock()
		return errLoopStopped
	}
	pk.inbox = append(pk.inbox, f)
	first := len(pk.inbox) == 1
	pk.inMu.Unlock()
	if !first {
		return nil // the first post to the inbox saw to the wake-up
	}
	for {
		switch pk.state.Load() {
		case inParked:
			if !pk.state.CompareAndSwap(inParked, inWoken) {
				continue // the loop moved: look again
			}
			pk.wakes.Add(1)
			_ = pk.f.SetReadDeadline(time.Unix(1, 0)) // fails only once the descriptor is closed: the loops stopped
			return nil
		case inOut:
			if err := ls.el.Execute(context.Background(), pk.drainFn); err != nil {
				// The engine stops: nothing will run the inbox.
				pk.inMu.Lock()
				pk.inClosed = true
				pk.inbox = nil
				pk.inMu.Unlock()
				return err
			}
			return nil
		default:
			return nil
		}
	}
}

// pending reports whether the inbox holds a task.
func (pk *parker) pending() bool {
	pk.inMu.Lock()
	n := len(pk.inbox)
	pk.inMu.Unlock()
	return n > 0
}

// runInbox runs the tasks posted to the inbox, in order, then flushes
// their output once.
func (ls *loopState) runInbox() {
	pk := ls.parker
	pk.inMu.Lock()
	tasks := pk.inbox
	if len(tasks) == 0 {
		pk.inMu.Unlock()
		return
	}
	pk.inbox = pk.spare
	pk.inMu.Unlock()
	ls.enter()
	for i, f := range tasks {
		tasks[i] = nil
		f()
	}
	ls.flush()
	ls.exit()
	if cap(tasks) > maxSpare {
		tasks = nil // a burst's slice is not kept
	}
	pk.spare = tasks[:0]
}

// maxSpare is the largest inbox slice a loop keeps for reuse.
const maxSpare = 1024

// queueLow queues, unless it is queued, a task that runs the inbox in
// gnet's low-priority queue (the poller's asyncTaskQueue, of which gnet
// runs at most 256 tasks a round, then polls), on the loop goroutine,
// inside a task of gnet's (rest's callers are tasks), so no eventfd
// write is needed: gnet checks its queues after its tasks.
func (pk *parker) queueLow() {
	if pk.lowQueued {
		return
	}
	pk.lowQueued = true
	t := gnetqueue.GetTask()
	t.Exec = pk.lowFn
	(*pk.queues[0]).Enqueue(t)
}

// drainTask is drainFn: the inbox's task in gnet's queue, for posts made
// while the loop was in gnet's round.
func (ls *loopState) drainTask(context.Context) error {
	ls.rest()
	return nil
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
	ls.batchesAfterCallback() // batch.go: before the park, which then does not wait
	if ls.depth == 0 {
		ls.queuePark()
	}
}

// startPark starts parking on a new loop (on its goroutine), or logs why
// it cannot.
func (ls *loopState) startPark() {
	pk, err := newParker(ls.el, ls.park, ls.drainTask)
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

// errLoopStopped is what a post to a stopped loop's inbox returns.
var errLoopStopped = errors.New("loop: the event loop has stopped")

// closeParkers releases the duplicates once the loops have stopped, and
// drops what their inboxes still hold: posts fail from now on.
func (e *Engine) closeParkers() {
	for _, ls := range e.allLoops() {
		if pk := ls.parker; pk != nil {
			pk.inMu.Lock()
			pk.inClosed = true
			pk.inbox = nil
			pk.inMu.Unlock()
			pk.f.Close()
		}
	}
}
