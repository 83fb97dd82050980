package edge

import (
	"context"
	"strconv"
	"testing"
	"time"

	"fmt"
	"github.com/edgewamp/edgewamp/proto"
)

// An answer to a gather of an earlier life of this node (the node was
// restarted: its gather ids start again at 1, and another node answers
// the queries of the old life it still had, late) is not an answer to the
// gather of this life that has the same id. The reply subject of a query
// names the asker's life (its boot, clock.go), but the answer was matched
// to a gather by the id alone: the stale answer took the place of the
// answering node's own (the node counts as answered once), and the caller
// got the answer to another query. The test stands in for the late
// answer: while a client's wamp.session.count gathers, B's answer to the
// same gather id of another life of A reaches A first, naming 777
// sessions.
func TestGatherAnswerOfAnotherLifeIgnored(t *testing.T) {
	nodes := cluster(t, "a", "b")
	a, b := nodes[0], nodes[1]
	nc, err := clientPort(a.n)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	stale, err := proto.EncodeValue(proto.MsgPack, []any{true, []any{int64(777)}})
	if err != nil {
		t.Fatal(err)
	}
	hook := func() {
		a.n.gmu.Lock()
		id := a.n.gseq
		a.n.gmu.Unlock()
		// The query's reply subject as the other life sent it: the same
		// id, another boot.
		subj := a.n.inbox + ".a." + strconv.FormatUint(id, 10) + "." + strconv.FormatInt(clockNow(), 10) + ".500." + strconv.FormatUint(a.n.boot^0xf0, 16)
		if err := nc.PublishRequest(subj, nodeInbox(b.name), stale.B); err != nil {
			t.Error(err)
		}
		if err := nc.Flush(); err != nil {
			t.Error(err)
		}
	}
	cs := a.dial(a.ws(), proto.JSON)
	b.dial(b.ws(), proto.JSON)
	eventually(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := cs.Call(ctx, "wamp.session.count", nil, nil, nil)
		if err != nil {
			return err
		}
		if n, _ := res.Args[0].(int64); n != 2 {
			return fmt.Errorf("wamp.session.count %v, want 2", res.Args)
		}
		return nil
	})
	a.n.testHookGather.Store(&hook)
	defer a.n.testHookGather.Store(nil)
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, err := cs.Call(ctx, "wamp.session.count", nil, nil, nil)
		cancel()
		if err != nil {
			t.Fatalf("count %d: %v", i, err)
		}
		if n, _ := res.Args[0].(int64); n != 2 || len(res.Details) != 0 {
			t.Fatalf("count %d: wamp.session.count %v (details %v) with an answer of another life of node a to the same gather id on its way; want [2], complete", i, res.Args, res.Details)
		}
	}
}
