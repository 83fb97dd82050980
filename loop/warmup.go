package loop

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Every router shard must have its executor (its event loop) before Start
// returns: in-process peers (the HTTP gateway, the mesh bridge) reach a
// shard only through route.Shard.Do, which fails on a shard that has none.
// gnet tells a handler nothing about a loop until the loop handles a
// connection, and a shard is started when its loop sees its first one
// (loopOf). So Start enrolls one end of a socketpair per loop, held open
// until each has landed (least-connections balancing spreads them over the
// loops), and closes them: their OnOpen starts the shard and serves
// nothing.

// Start returns once the loops have closed the warm-up connections too
// (within warmupCloseWait), so that a started engine holds no descriptor
// but its listeners': tests and operators counting descriptors see the
// connections' only.

// warmupCloseWait bounds how long Start waits for the loops to close the
// warm-up connections (they see end of input as soon as the held ends are
// closed).
const warmupCloseWait = 2 * time.Second

// warmupConn marks an enrolled warm-up connection in OnOpen.
type warmupConn struct{}

// startShards enrolls warm-up connections until every shard has its loop.
func (e *Engine) startShards() error {
	want := e.router.Shards()
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
		for end := time.Now().Add(warmupCloseWait); e.warm.Load() > 0 && time.Now().Before(end); {
			time.Sleep(time.Millisecond)
		}
	}()
	for tries := 0; e.loopCount() < want; tries++ {
		if tries >= 8*want {
			return fmt.Errorf("loop: %d of %d event loops started", e.loopCount(), want)
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("loop: warm-up socketpair: %w", err)
		}
		loopSide, err := fdConn(fds[0])
		if err != nil {
			unix.Close(fds[1])
			return err
		}
		ourSide, err := fdConn(fds[1])
		if err != nil {
			loopSide.Close()
			return err
		}
		held = append(held, ourSide)
		ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), warmupConn{}), loopSide)
		res, err := e.eng.Register(ctx)
		if err == nil {
			err = (<-res).Err
		}
		loopSide.Close() // gnet holds a dup of it now
		if err != nil {
			return fmt.Errorf("loop: warm-up: %w", err)
		}
	}
	return nil
}

func (e *Engine) loopCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nloops
}

// fdConn wraps a socket file descriptor as a *net.UnixConn; the descriptor
// is the returned conn's (net.FileConn dups it, and the original is closed).
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	return net.FileConn(f)
}
