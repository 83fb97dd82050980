package edge

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/client"
	"github.com/edgewamp/edgewamp/proto"
)

// queued builds an outBatch the way outq.pushEnv does.
func queued(items ...outItem) (*outBatch, [][]byte) {
	b := &outBatch{}
	var envs [][]byte
	for i, it := range items {
		env := bytes.Repeat([]byte{byte('A' + i%26)}, it.n)
		it.off = len(b.arena)
		b.arena = append(b.arena, env...)
		b.items = append(b.items, it)
		envs = append(envs, env)
	}
	return b, envs
}

func TestFramePacking(t *testing.T) {
	env := func(subj, reply string, n int) outItem {
		return outItem{op: opPublish, pack: true, subj: subj, reply: reply, n: n}
	}
	// A run stops at another subject, another reply, an item that may not
	// be packed and a subscription change; order is the queue's.
	b, envs := queued(env("s1", "r", 10), env("s1", "r", 20), env("s1", "r", 5), env("s2", "r", 7),
		env("s2", "x", 7), outItem{op: opPublish, subj: "s2", reply: "x", n: 3}, env("s2", "x", 1),
		outItem{op: opSubscribe, subj: "s2"}, env("s2", "x", 2), env("s2", "x", 2))
	var runs []int
	for i := 0; i < len(b.items); {
		k := 1
		if b.items[i].op == opPublish && b.items[i].pack {
			k = packRun(b.items[i:], maxFrame)
		}
		runs = append(runs, k)
		i += k
	}
	if fmt.Sprint(runs) != "[3 1 1 1 1 1 2]" {
		t.Fatalf("runs %v, want [3 1 1 1 1 1 2]", runs)
	}
	frame := appendFrame(nil, b.arena, b.items[:3])
	if !isFrame(frame) {
		t.Fatal("a frame does not start with the mark")
	}
	var got [][]byte
	if err := unpackFrame(frame, func(e []byte) { got = append(got, e) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !bytes.Equal(got[0], envs[0]) || !bytes.Equal(got[1], envs[1]) || !bytes.Equal(got[2], envs[2]) {
		t.Fatalf("unpacked %q", got)
	}
	// Unpacked envelopes do not share the frame's memory.
	got[0][0] = 'z'
	if frame[2] == 'z' {
		t.Fatal("an unpacked envelope aliases the frame")
	}

	// Bounds: bytes and envelopes per frame; an envelope larger than a
	// frame goes alone.
	var many []outItem
	for i := 0; i < maxFrameItems+10; i++ {
		many = append(many, env("s", "r", 1))
	}
	if k := packRun(many, maxFrame); k != maxFrameItems {
		t.Fatalf("%d envelopes in a frame, want %d", k, maxFrameItems)
	}
	big := []outItem{env("s", "r", 40<<10), env("s", "r", 40<<10), env("s", "r", 1)}
	if k := packRun(big, maxFrame); k != 1 {
		t.Fatalf("two 40 KiB envelopes packed in one frame (max %d)", maxFrame)
	}
	huge := []outItem{env("s", "r", maxFrame+1), env("s", "r", 1)}
	if k := packRun(huge, maxFrame); k != 1 {
		t.Fatalf("an envelope larger than a frame was packed")
	}
	// A server that takes smaller messages bounds the frames too.
	small := []outItem{env("s", "r", 300), env("s", "r", 300), env("s", "r", 300), env("s", "r", 300)}
	if k := packRun(small, 1024); k != 3 {
		t.Fatalf("%d envelopes of 300 B in a frame of 1 KiB, want 3", k)
	}
}

func TestFrameMalformed(t *testing.T) {
	cases := [][]byte{
		{frameMark, 5, 'a', 'b'}, // length past the end
		{frameMark, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, // uvarint overflow
		{frameMark, 1, 'a', 0x80}, // truncated uvarint after a good envelope
	}
	for i, c := range cases {
		n := 0
		if err := unpackFrame(c, func([]byte) { n++ }); err == nil {
			t.Errorf("case %d: no error", i)
		}
		if i == 2 && n != 1 {
			t.Errorf("case %d: %d envelopes delivered before the fault, want 1", i, n)
		}
	}
	n := 0
	if err := unpackFrame([]byte{frameMark}, func([]byte) { n++ }); err != nil || n != 0 {
		t.Errorf("empty frame: %v, %d envelopes", err, n)
	}
}

// Many calls and events in flight across nodes travel framed (several
// envelopes per NATS message), arrive complete, and events keep their
// publisher's order.
func TestFramesAcrossNodes(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 60*time.Second)

	callee := b.dial(b.ws(), proto.MsgPack)
	if _, err := callee.Register(ctx, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	const seqs = 3000
	var mu sync.Mutex
	var got []int64
	var warm atomic.Bool
	done := make(chan struct{})
	sub := b.dial(b.ws(), proto.MsgPack)
	if _, err := sub.Subscribe(ctx, "com.seq", func(ev *client.Event) {
		if len(ev.Args) != 1 {
			return
		}
		if v := toInt(ev.Args[0]); v < 0 {
			warm.Store(true)
		} else {
			mu.Lock()
			defer mu.Unlock()
			if got = append(got, v); len(got) == seqs {
				close(done)
			}
		}
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.MsgPack)
	callUntil(t, caller, "com.echo", []any{"warm"})
	pub := a.dial(a.ws(), proto.MsgPack)
	eventually(t, 5*time.Second, func() error { // the subscription's interest has reached A
		pub.Publish(ctx, "com.seq", []any{-1}, nil, &client.PublishOptions{Acknowledge: true})
		if !warm.Load() {
			return fmt.Errorf("no event yet")
		}
		return nil
	})

	// 32 callers with one call each in flight, and a publisher, at once.
	var wg sync.WaitGroup
	var calls, bad atomic.Int64
	for i := 0; i < 32; i++ {
		s := caller
		if i%2 == 1 {
			s = a.dial(a.rs(), proto.JSON)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				want := fmt.Sprintf("%d/%d", i, j)
				res, err := s.Call(ctx, "com.echo", []any{want}, nil, nil)
				if err != nil || len(res.Args) != 1 || res.Args[0] != want {
					bad.Add(1)
					continue
				}
				calls.Add(1)
			}
		}(i)
	}
	for i := 0; i < seqs; i++ {
		if err := pub.Publish(ctx, "com.seq", []any{i}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		mu.Lock()
		t.Fatalf("%d of %d events arrived", len(got), seqs)
	}
	mu.Lock()
	for i, v := range got {
		if v != int64(i) {
			mu.Unlock()
			t.Fatalf("event %d carries %d: order or completeness broken", i, v)
		}
	}
	mu.Unlock()
	if bad.Load() != 0 || calls.Load() != 3200 {
		t.Fatalf("calls: %d good, %d bad", calls.Load(), bad.Load())
	}
	st := a.n.Stats()
	t.Logf("node a sent %d frames holding %d envelopes; node b %d frames holding %d", st.Frames.Load(), st.FramedEnvelopes.Load(),
		b.n.Stats().Frames.Load(), b.n.Stats().FramedEnvelopes.Load())
	if st.Frames.Load() == 0 {
		t.Fatal("node a framed nothing: every envelope went in a NATS message of its own")
	}
	if a.n.Stats().BadFrames.Load()+b.n.Stats().BadFrames.Load() != 0 {
		t.Fatal("bad frames counted")
	}
}

// A malformed frame from the NATS side is counted and dropped; the node
// keeps routing.
func TestMalformedFrameFromNATS(t *testing.T) {
	t.Parallel()
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	ctx := ctxT(t, 20*time.Second)
	callee := b.dial(b.ws(), proto.JSON)
	if _, err := callee.Register(ctx, "com.echo", func(_ context.Context, inv *client.Invocation) (*client.Result, error) {
		return &client.Result{Args: inv.Args}, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	caller := a.dial(a.ws(), proto.JSON)
	callUntil(t, caller, "com.echo", []any{"warm"})
	sub := b.dial(b.ws(), proto.JSON)
	if _, err := sub.Subscribe(ctx, "com.x", func(*client.Event) {}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // b's NATS subscription for com.x is in place

	nc, err := clientPort(b.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// As node a would send it: to b's node subject, a's inbox as Reply.
	for _, data := range [][]byte{{frameMark, 9, 'C'}, {frameMark, 0xff}} {
		if err := nc.PublishRequest(nodeSubject("b", "m"), nodeInbox("a"), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish(string(eventSubject(nil, b.n.evRoot, "realm1", []byte("com.x"))), []byte{frameMark, 3, 'E'}); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	eventually(t, 5*time.Second, func() error {
		if n := b.n.Stats().BadFrames.Load(); n < 3 {
			return fmt.Errorf("%d bad frames counted", n)
		}
		return nil
	})
	if _, err := caller.Call(ctx, "com.echo", []any{"after"}, nil, nil); err != nil {
		t.Fatalf("call after the bad frames: %v", err)
	}
}
