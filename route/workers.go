package route

import (
	"runtime"
	"sync"
)

// workers is a bounded pool that runs CPU-heavy or blocking work
// (authentication) off the event loops. Results go back to the owning shard
// as tasks.
//
// Jobs queue by key (the limiter's address key of the login) and the
// workers serve the keys in turn, one job each, so that one address's
// burst (the limiter lets it have AddressBlockAfter checks in flight, each
// a PBKDF2 derivation) costs mostly that address: another address's login
// waits for at most one job of each busy address, not for the whole burst.
//
// The queue's bound is shared: when it is full, the newest job of the key
// with the most queued gives way (its drop runs instead) to a job of a key
// with at least two fewer, so that addresses that fill it (41 each with
// the 100 checks the limiter lets an address have in flight, at the
// default 4,096) cannot keep the others' logins out; a job is refused only
// when no key has more queued than its own plus one.
type workers struct {
	mu      sync.Mutex
	cond    sync.Cond
	queues  map[string]*workQueue // guarded by mu: keys with jobs queued
	turn    []*workQueue          // guarded by mu: those keys, in serving order
	free    []*workQueue          // guarded by mu: emptied queues, for reuse
	n, max  int                   // guarded by mu: jobs queued, and their bound
	stopped bool                  // guarded by mu
	wg      sync.WaitGroup
}

// workQueue is one key's jobs, oldest first.
type workQueue struct {
	key  string
	jobs []job
	head int
}

// job is a unit of work; drop, if set, runs instead of run when the job
// gives way to another key's in a full queue (outside the pool's lock).
type job struct {
	run, drop func()
}

// queued returns the number of q's jobs waiting.
func (q *workQueue) queued() int { return len(q.jobs) - q.head }

// maxFreeQueues bounds the emptied queues kept for reuse.
const maxFreeQueues = 64

func newWorkers(n, queue int) *workers {
	w := &workers{queues: map[string]*workQueue{}, max: queue}
	w.cond.L = &w.mu
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for {
				f := w.next()
				if f == nil {
					return
				}
				f()
				// Yield between jobs: with GOMAXPROCS=1 (a router pinned
				// to one CPU) a worker draining a storm of
				// authentications would otherwise keep the event loop's
				// goroutine off the CPU for a whole scheduler slice.
				runtime.Gosched()
			}
		}()
	}
	return w
}

// next waits for a job and returns the oldest of the next key in turn;
// nil once the pool is stopped and drained.
func (w *workers) next() func() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.n == 0 {
		if w.stopped {
			return nil
		}
		w.cond.Wait()
	}
	q := w.turn[0]
	w.turn[0] = nil
	w.turn = w.turn[1:]
	f := q.jobs[q.head].run
	q.jobs[q.head] = job{}
	q.head++
	w.n--
	if q.head < len(q.jobs) {
		w.turn = append(w.turn, q) // its next job waits for the other keys' turn
		return f
	}
	delete(w.queues, q.key)
	if len(w.free) < maxFreeQueues && cap(q.jobs) <= 64 {
		q.key, q.jobs, q.head = "", q.jobs[:0], 0
		w.free = append(w.free, q)
	}
	return f
}

// submit queues f under key; it returns false, without blocking, when the
// pool stopped, or when the queue is full and no key has more than one
// job more than key queued. Otherwise, in a full queue, the newest job of
// the key with the most queued is taken out and its drop run (before
// submit returns, outside the lock) to make room.
func (w *workers) submit(key string, f, drop func()) bool {
	w.mu.Lock()
	var gave func()
	if w.stopped {
		w.mu.Unlock()
		return false
	}
	if w.n >= w.max {
		big, own := w.longest(), 0
		if q := w.queues[key]; q != nil {
			own = q.queued()
		}
		if big == nil || big.queued() <= own+1 {
			w.mu.Unlock()
			return false
		}
		// It keeps a job at least, and so its place in turn.
		last := len(big.jobs) - 1
		gave = big.jobs[last].drop
		big.jobs[last] = job{}
		big.jobs = big.jobs[:last]
		w.n--
	}
	w.push(key, f, drop)
	w.mu.Unlock()
	if gave != nil {
		gave()
	}
	return true
}

// closed reports whether the pool has been stopped.
func (w *workers) closed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopped
}

// longest returns the queue with the most jobs waiting (nil when none).
// Called with mu held, only when the queue is full: at most one scan of
// the keys that have jobs queued.
func (w *workers) longest() *workQueue {
	var big *workQueue
	for _, q := range w.turn {
		if big == nil || q.queued() > big.queued() {
			big = q
		}
	}
	return big
}

// push queues f under key. Called with mu held, the queue not full.
func (w *workers) push(key string, f, drop func()) {
	q := w.queues[key]
	if q == nil {
		if k := len(w.free); k > 0 {
			q = w.free[k-1]
			w.free[k-1] = nil
			w.free = w.free[:k-1]
		} else {
			q = &workQueue{}
		}
		q.key = key
		w.queues[key] = q
		w.turn = append(w.turn, q)
	}
	if q.head > 0 && len(q.jobs) == cap(q.jobs) {
		// Full with its served jobs in front: move the rest down rather
		// than grow, for a key that never runs dry.
		k := copy(q.jobs, q.jobs[q.head:])
		clear(q.jobs[k:])
		q.jobs, q.head = q.jobs[:k], 0
	}
	q.jobs = append(q.jobs, job{run: f, drop: drop})
	w.n++
	w.cond.Signal()
}

// stop refuses further jobs, drops the queued ones and waits for those
// running. The router stops it when it closes, and its sessions end with
// it: a queued login's answer would reach nobody. It used to run them all
// first: a storm's queue of password checks (hundreds of PBKDF2
// derivations) then held up the router's close by seconds.
func (w *workers) stop() {
	w.mu.Lock()
	w.stopped = true
	for _, q := range w.turn {
		clear(q.jobs)
	}
	clear(w.queues)
	w.turn, w.free, w.n = nil, nil, 0
	w.cond.Broadcast()
	w.mu.Unlock()
	w.wg.Wait()
}
