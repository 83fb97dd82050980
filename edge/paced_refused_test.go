package edge

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/route"
)

// An answer's notice goes before its first part (b8dbfdc); when the
// outbound queue then refuses that part (its bulk class full: room for
// the small notice, not for 30 KiB), the answer is dropped, and the asker,
// told it was coming, waited for it pacedWait (longer while the node's
// other answers' parts kept coming, up to 60 s) where, with no notice,
// its gather ended at gather_timeout. The asker is now told the answer
// is not coming (a part of total 0, read as the answer lost by every
// release that reads parts), as far as the queue takes it, and does not
// count it as its own gather_full.
func TestPacedAnswerRefusedByQueueTold(t *testing.T) {
	t.Parallel()
	r, err := route.New(route.Config{Realms: []route.RealmConfig{{Name: "realm1"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	n, err := New(Options{Router: r, Name: "h", NatsURL: "nats://127.0.0.1:1", MaxOutbound: 4 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n.peers.byName["a"] = &peer{name: "a", readsParts: true, partsAgain: true}
	inbox := nodeInbox("a")
	// The asking node, its gather waiting for h's answer.
	asker, err := New(Options{Router: r, Name: "a", NatsURL: "nats://127.0.0.1:1", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan []string, 1)
	g := &gather{got: map[string]bool{}, began: time.Now(), done: func(_ [][]byte, missing []string) { ended <- missing }}
	g.expect([]string{"h"})
	g.timer = time.AfterFunc(time.Hour, func() {})
	asker.gathers[1] = g
	tail := "1.1.500." + strconv.FormatUint(asker.boot, 16)
	// The queue (never sent: the node is not started) full to 4 KiB
	// under its bulk bound.
	n.out.mu.Lock()
	n.out.bytes = n.out.limit(classBulk) - 4<<10
	n.out.mu.Unlock()
	n.answerQuery("a", inbox, true, inbox+".a."+tail, make([]byte, 30<<10))
	var pieces []string
	var data [][]byte
	n.out.mu.Lock()
	for _, it := range n.out.cur.items {
		if !strings.HasPrefix(it.subj, inbox+".p.") {
			continue
		}
		b := n.out.cur.arena[it.off : it.off+it.n]
		total, k := binary.Uvarint(b)
		off, k2 := binary.Uvarint(b[k:])
		data = append(data, append([]byte(nil), b...))
		pieces = append(pieces, strings.Join([]string{strconv.Itoa(int(total)), strconv.Itoa(int(off)), strconv.Itoa(len(b) - k - k2)}, "/"))
	}
	n.out.mu.Unlock()
	t.Logf("pieces queued to the asker (total/offset/bytes): %v; held %d, dropped %d", pieces, n.pacedBytes, n.stats.PacedDropped.Load())
	if n.stats.PacedDropped.Load() != 1 || n.pacedBytes != 0 {
		t.Fatalf("the refused answer: dropped %d, %d bytes held", n.stats.PacedDropped.Load(), n.pacedBytes)
	}
	for _, d := range data {
		asker.partAnswered("h", tail, d)
	}
	select {
	case missing := <-ended:
		t.Logf("the asker's gather ended at once, missing %v", missing)
	default:
		t.Errorf("the asker's gather still waits for the dropped answer (%d under way)", len(g.paced))
	}
	// The refusal is the answering node's (paced_answer_dropped there):
	// the asker's gathers held 30 KiB of a 64 MiB max_inbound, and its
	// gather_full (answers past max_inbound) stays 0; nor does it ask the
	// answerer to drop an answer it dropped already.
	asker.out.mu.Lock()
	acks := len(asker.out.cur.items)
	asker.out.mu.Unlock()
	if d := asker.stats.GatherAnswersDropped.Load(); d != 0 || acks != 0 {
		t.Errorf("the asker counted the refused answer %d time(s) as gather_full (past max_inbound) and queued %d message(s) back to the answerer: want 0 and 0", d, acks)
	}
	if len(pieces) != 2 || pieces[0] != strconv.Itoa(30<<10)+"/0/0" || pieces[1] != "0/0/0" {
		t.Fatalf("pieces to the asker %v: want its notice then a refusal (0/0/0), or it waits %v for an answer dropped", pieces, n.pacedWait())
	}
}
