package route

import (
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// A REGISTER with force_reregister whose session leaves while the
// removal it posted waits for the callees' busy loop: what the removal
// counted in that loop's bound of waiting removals (4d58cf6) is given
// back once the loop runs it, and the registration is not taken over.
func TestForceReregisterLeaverGivesBackRemoval(t *testing.T) {
	e := newEnv(t, 2, nil)
	callee := e.joinAs(proto.JSON, "svc") // shard 0
	rereg := e.joinAs(proto.JSON, "svc")  // shard 1
	if callee.sh != e.r.Shard(0) || rereg.sh != e.r.Shard(1) {
		t.Fatal("sessions not on the expected shards")
	}
	callee.register("com.p", nil)
	block := make(chan struct{})
	if e.execs[0].Execute(func() { <-block }) != nil {
		t.Fatal("cannot stall shard 0")
	}
	rereg.send(&proto.Message{Type: proto.CodeRegister, Request: 99, Dict: rereg.opts(map[string]any{"force_reregister": true}), URI: []byte("com.p")})
	sh0 := e.r.Shard(0)
	deadline := time.Now().Add(5 * time.Second)
	for sh0.removeBacklog.Load() != removeOverhead {
		if time.Now().After(deadline) {
			close(block)
			t.Fatalf("shard 0's removal backlog is %d, want %d", sh0.removeBacklog.Load(), removeOverhead)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.execs[1].do(func() { rereg.sh.Detach(rereg.sess) })
	close(block)
	e.sync()
	if b := sh0.removeBacklog.Load(); b != 0 {
		t.Fatalf("shard 0's removal backlog is %d after the removal ran, want 0", b)
	}
	e.sync()
	rereg.sh.r.Realm("trusted").mu.RLock()
	reg, ok := rereg.sh.r.Realm("trusted").regs.get(proto.MatchExact, "com.p")
	n := 0
	if ok {
		n = reg.list().len()
	}
	rereg.sh.r.Realm("trusted").mu.RUnlock()
	if n != 0 {
		t.Fatalf("com.p has %d callees, want none (the old one removed, the leaver not added)", n)
	}
}
