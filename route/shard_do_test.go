package route

import (
	"errors"
	"testing"
	"time"
)

// TestShardDo: Do runs the function on the shard's executor goroutine, and
// reports ErrClosed once the executor has stopped (the function never runs).
func TestShardDo(t *testing.T) {
	e := newEnv(t, 2, nil)
	ran := make(chan int, 1)
	if err := e.r.Shard(1).Do(func() { ran <- 1 }); err != nil {
		t.Fatalf("Do: %v", err)
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("Do's function did not run")
	}
	e.execs[1].stop()
	e.execs = e.execs[:1] // stopped; the cleanup must not stop it again
	err := e.r.Shard(1).Do(func() { ran <- 2 })
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after the executor stopped: %v, want ErrClosed", err)
	}
	unstarted := newShard(e.r, 9)
	if err := unstarted.Do(func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do on a shard without an executor: %v, want ErrClosed", err)
	}
}
