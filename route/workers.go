package route

import (
	"runtime"
	"sync"
)

// workers is a bounded pool that runs CPU-heavy or blocking work
// (authentication) off the event loops. Results go back to the owning shard
// as tasks.
type workers struct {
	jobs chan func()
	wg   sync.WaitGroup
	once sync.Once
}

func newWorkers(n, queue int) *workers {
	w := &workers{jobs: make(chan func(), queue)}
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for f := range w.jobs {
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

// submit queues f; it returns false, without blocking, when the queue is
// full or the pool stopped.
func (w *workers) submit(f func()) (ok bool) {
	defer func() {
		if recover() != nil { // send on closed channel after stop
			ok = false
		}
	}()
	select {
	case w.jobs <- f:
		return true
	default:
		return false
	}
}

func (w *workers) stop() {
	w.once.Do(func() { close(w.jobs) })
	w.wg.Wait()
}
