package edge

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/edge/edgetest"
	"github.com/edgewamp/edgewamp/proto"
)

// slowLink is a TCP proxy that forwards each direction at most rate bytes
// a second (a slow uplink: an edge box on a cellular or satellite link).
type slowLink struct {
	ln     net.Listener
	target string
	rate   int
	mu     sync.Mutex
	conns  []net.Conn
	bytes  atomic.Int64 // forwarded, both ways
}

func newSlowLink(t *testing.T, target string, rate int) *slowLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &slowLink{ln: ln, target: target, rate: rate}
	go l.accept()
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		for _, c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
	})
	return l
}

func (l *slowLink) addr() string { return l.ln.Addr().String() }

func (l *slowLink) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		l.mu.Lock()
		l.conns = append(l.conns, c, u)
		l.mu.Unlock()
		go l.pipe(c, u)
		go l.pipe(u, c)
	}
}

func (l *slowLink) pipe(dst, src net.Conn) {
	const chunk = 4 << 10
	buf := make([]byte, chunk)
	start := time.Now()
	var sent int64
	for {
		k, err := src.Read(buf)
		if k > 0 {
			sent += int64(k)
			l.bytes.Add(int64(k))
			if d := time.Duration(sent*int64(time.Second)/int64(l.rate)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// A hub's directory larger than an edge's slow uplink carries in a couple
// of seconds reaches the edge: it is sent a part at a time, each asked for
// once the one before is in (sendPart), so the heartbeats and NATS's PONGs
// behind it wait for one part at most. Sent whole at once, it held them
// behind itself: the edge took the hub for dead and NATS cut the leaf link
// as stale, the edge asked again, the hub sent it again, without end (the
// hub resetting its side at each return, its calls there canceled).
func TestSlowUplinkDirectorySyncConverges(t *testing.T) {
	// A stall of this process past peer_timeout (2 s) less a heartbeat
	// takes each node for dead by the other, whatever the link carries.
	triedUnstalled(t, defaultPeerTimeout-defaultHeartbeat, func() error { return slowUplinkDirectorySync(t) })
}

func slowUplinkDirectorySync(t *testing.T) error {
	leafAddr := edgetest.FreeAddr(t)
	link := newSlowLink(t, leafAddr, 192<<10)
	hub := startNode(t, "hub", func(o *Options) { o.Leaf.Listen = leafAddr; o.Leaf.Advertise = link.addr() })
	ctx := ctxT(t, 60*time.Second)
	// About 1 MiB of directory: 5.5 s over the link.
	callee := hub.dial(hub.ws(), proto.MsgPack)
	// Random names: NATS compresses a leaf link's traffic (s2).
	const regs = 4500
	names := make([]string, regs)
	for i := range names {
		names[i] = "hub.p" + randomHex(100)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := 0; i < regs; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := callee.Register(ctx, names[i], func(context.Context, *client.Invocation) (*client.Result, error) {
				return &client.Result{Args: []any{"hub"}}, nil
			}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var asks atomic.Int64
	hook := func(ms []*nats.Msg) {
		for _, m := range ms {
			if m.Subject == nodeSubject("hub", "s") {
				asks.Add(1)
			}
		}
	}
	hub.n.testHookControl.Store(&hook)
	start := time.Now()
	edge := startNode(t, "edge1", func(o *Options) { o.Leaf.Remotes = []string{"nats://" + link.addr()} })
	synced := within(25*time.Second, func() error {
		for i := 0; i < regs; i++ {
			if len(edge.r.MeshCallees("realm1", names[i])) == 0 {
				return fmt.Errorf("%d of %d registrations known on the edge", i, regs)
			}
		}
		return nil
	})
	lostE, lostH := edge.n.Stats().PeersLost.Load(), hub.n.Stats().PeersLost.Load()
	t.Logf("%d bytes crossed; edge synced %v after %v: %d sync requests, peers lost: edge %d, hub %d", link.bytes.Load(), synced, time.Since(start).Round(time.Millisecond), asks.Load(), lostE, lostH)
	if !synced || lostE != 0 || lostH != 0 {
		return fmt.Errorf("the hub's directory did not cross the slow uplink whole (synced %v; the edge took the hub for dead %d times, the hub the edge %d)", synced, lostE, lostH)
	}
	return nil
}

// triedUnstalled runs try, a slow-uplink scenario whose nodes share this
// process, up to 3 times. A failed try fails the test unless this process
// stalled for stall or longer meanwhile (its goroutines ran that late: a
// loaded machine, not the link): then it is tried again, and when every
// try stalled the test is skipped, saying so. Two idle nodes of a process
// stopped 3 s (SIGSTOP) took each other for dead (peers lost: edge 1, hub
// 1, 3 of 3 runs), CI's signature at 6e5f833 (load 18-26); stopped 1 s as
// TestSlowUplinkConcurrentGetRetainedDelivered's gathers started, 2 of
// them ended incomplete ([300 300 0 0], no peer lost), as CI's [0 0 0 300].
func triedUnstalled(t *testing.T, stall time.Duration, try func() error) {
	t.Helper()
	for i := 1; ; i++ {
		var worst atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // how late a 20 ms sleep wakes, at worst
			defer close(done)
			const tick = 20 * time.Millisecond
			for last := time.Now(); ; {
				select {
				case <-stop:
					return
				case <-time.After(tick):
				}
				now := time.Now()
				if late := int64(now.Sub(last) - tick); late > worst.Load() {
					worst.Store(late)
				}
				last = now
			}
		}()
		err := try()
		close(stop)
		<-done
		late := time.Duration(worst.Load()).Round(time.Millisecond)
		switch {
		case err == nil:
			return
		case late < stall:
			t.Fatalf("%v (this process stalled at most %v meanwhile)", err, late)
		case i == 3:
			t.Skipf("every try failed with this process stalled past %v (last: %v; %v): the machine is too loaded to tell", stall, late, err)
		}
		t.Logf("try %d: %v; this process stalled %v meanwhile, past %v: tried again", i, err, late, stall)
	}
}

// A paced sync request gets one part at a time, each saying whether more
// follow to be asked for; the previous release's request (its boot alone)
// still gets the whole directory at once, in the parts it reads.
func TestDirectorySyncPacedAndWhole(t *testing.T) {
	t.Parallel()
	a := startNode(t, "a", func(o *Options) { o.Leaf.Listen = edgetest.FreeAddr(t) })
	ctx := ctxT(t, 30*time.Second)
	callee := a.dial(a.ws(), proto.MsgPack)
	const regs = 400 // about 90 KiB of directory: two paced parts
	for i := 0; i < regs; i++ {
		if _, err := callee.Register(ctx, "com.p"+randomHex(100), func(context.Context, *client.Invocation) (*client.Result, error) {
			return nil, nil
		}, &client.RegisterOptions{Invoke: "roundrobin"}); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := clientPort(a.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(nodeSubject("old", "S"))
	if err != nil {
		t.Fatal(err)
	}
	// read returns a part's version, index, entry count and more byte.
	read := func() (ver, part, cnt uint64, more byte) {
		t.Helper()
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r := rd{b: m.Data}
		r.fixed64()
		ver, cnt = r.uv(), r.uv()
		for range cnt {
			r.entry()
		}
		part = r.uv()
		if r.err != nil || len(r.b) < 1 {
			t.Fatalf("malformed part: %v", r.err)
		}
		more = r.b[0]
		return
	}
	ask := func(data []byte) {
		if err := nc.PublishMsg(&nats.Msg{Subject: nodeSubject("a", "s"), Reply: nodeInbox("old"), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	boot := bootBytes(12345)
	ask(boot)
	if _, part, cnt, more := read(); part != 0 || more != syncLast || cnt < regs {
		t.Fatalf("whole answer: part %d, more %d, %d entries", part, more, cnt)
	}
	var got, ver, next uint64
	for {
		w := wr(append([]byte(nil), boot...))
		w.uv(ver)
		w.uv(next)
		ask(w)
		v, part, cnt, more := read()
		if part != next || next > 0 && v != ver {
			t.Fatalf("asked for part %d of version %d, got %d of %d", next, ver, part, v)
		}
		if _, err := sub.NextMsg(100 * time.Millisecond); err == nil {
			t.Fatal("more than the part asked for came")
		}
		ver, got = v, got+cnt
		if more == syncLast {
			break
		}
		if more != syncPaced {
			t.Fatalf("part %d: more %d", part, more)
		}
		next++
	}
	if next == 0 || got < regs {
		t.Fatalf("paced: %d parts, %d entries", next+1, got)
	}
}
