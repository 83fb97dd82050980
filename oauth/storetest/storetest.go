// Package storetest is the conformance test of oauth.Store: every
// implementation (the in-memory and on-disk stores of package oauth, and an
// adapter over a shared store such as JetStream KV) runs Run against a
// fresh instance and must pass it. It checks exactly the semantics that
// oauth.Store's documentation lists, no more.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgewamp/edgewamp/oauth"
)

// Run checks the Store contract. newStore returns an empty store for one
// subtest (the subtests may run in parallel with t.Parallel; each gets its
// own store); it should register its own cleanup with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) oauth.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s oauth.Store)
	}{
		{"GetAbsent", testGetAbsent},
		{"CreateGet", testCreateGet},
		{"CreateExisting", testCreateExisting},
		{"UpdateCAS", testUpdateCAS},
		{"UpdateAbsent", testUpdateAbsent},
		{"DeleteCAS", testDeleteCAS},
		{"DeleteUnconditional", testDeleteUnconditional},
		{"RecreateAfterDelete", testRecreateAfterDelete},
		{"List", testList},
		{"KeyAlphabet", testKeyAlphabet},
		{"ValuesCopied", testValuesCopied},
		{"BinaryAndLargeValues", testValues},
		{"TTLNotEarly", testTTLNotEarly},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentUpdate", testConcurrentUpdate},
		{"ConcurrentCounter", testConcurrentCounter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// RunShared checks the Store contract for a store shared by several nodes
// (a mesh): newStores returns handles on one empty shared store, one per
// node, and every subtest of Run sends each operation to the next handle in
// turn, so that a Get on one node must see the Create or Update another
// node has just returned from (linearizability per key), and
// compare-and-set must hold across nodes.
func RunShared(t *testing.T, newStores func(t *testing.T) []oauth.Store) {
	Run(t, func(t *testing.T) oauth.Store {
		hs := newStores(t)
		if len(hs) < 2 {
			t.Fatalf("RunShared needs at least two handles, got %d", len(hs))
		}
		return &roundRobin{hs: hs}
	})
}

// roundRobin sends each call to the next handle.
type roundRobin struct {
	hs []oauth.Store
	n  atomic.Uint64
}

func (r *roundRobin) next() oauth.Store { return r.hs[(r.n.Add(1)-1)%uint64(len(r.hs))] }

func (r *roundRobin) Get(ctx context.Context, key string) (oauth.Entry, error) {
	return r.next().Get(ctx, key)
}
func (r *roundRobin) Create(ctx context.Context, key string, v []byte, ttl time.Duration) (uint64, error) {
	return r.next().Create(ctx, key, v, ttl)
}
func (r *roundRobin) Update(ctx context.Context, key string, v []byte, rev uint64, ttl time.Duration) (uint64, error) {
	return r.next().Update(ctx, key, v, rev, ttl)
}
func (r *roundRobin) Delete(ctx context.Context, key string, rev uint64) error {
	return r.next().Delete(ctx, key, rev)
}
func (r *roundRobin) List(ctx context.Context, prefix string) ([]oauth.Entry, error) {
	return r.next().List(ctx, prefix)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustCreate(t *testing.T, s oauth.Store, key string, v []byte, ttl time.Duration) uint64 {
	t.Helper()
	rev, err := s.Create(ctx(t), key, v, ttl)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	if rev == 0 {
		t.Fatalf("Create(%q) returned revision 0", key)
	}
	return rev
}

func mustGet(t *testing.T, s oauth.Store, key string) oauth.Entry {
	t.Helper()
	e, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return e
}

func wantErr(t *testing.T, what string, err error, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Fatalf("%s: got error %v, want one of %v", what, err, targets)
}

func testGetAbsent(t *testing.T, s oauth.Store) {
	_, err := s.Get(ctx(t), "rt.absent")
	wantErr(t, "Get of an absent key", err, oauth.ErrNotFound)
}

func testCreateGet(t *testing.T, s oauth.Store) {
	rev := mustCreate(t, s, "rt.a1", []byte(`{"x":1}`), 0)
	e := mustGet(t, s, "rt.a1")
	if e.Key != "rt.a1" || string(e.Value) != `{"x":1}` || e.Revision != rev {
		t.Fatalf("Get = %q %q rev %d, want rt.a1 {\"x\":1} rev %d", e.Key, e.Value, e.Revision, rev)
	}
}

func testCreateExisting(t *testing.T, s oauth.Store) {
	rev := mustCreate(t, s, "dc.k", []byte("one"), time.Hour)
	_, err := s.Create(ctx(t), "dc.k", []byte("two"), time.Hour)
	wantErr(t, "second Create", err, oauth.ErrExists)
	if e := mustGet(t, s, "dc.k"); string(e.Value) != "one" || e.Revision != rev {
		t.Fatalf("a failed Create changed the entry: %q rev %d", e.Value, e.Revision)
	}
}

func testUpdateCAS(t *testing.T, s oauth.Store) {
	r1 := mustCreate(t, s, "rt.u", []byte("v1"), 0)
	r2, err := s.Update(ctx(t), "rt.u", []byte("v2"), r1, 0)
	if err != nil {
		t.Fatalf("Update with the current revision: %v", err)
	}
	if r2 == 0 || r2 == r1 {
		t.Fatalf("Update returned revision %d after %d: want a new non-zero one", r2, r1)
	}
	_, err = s.Update(ctx(t), "rt.u", []byte("v3"), r1, 0)
	wantErr(t, "Update with a stale revision", err, oauth.ErrRevision)
	if e := mustGet(t, s, "rt.u"); string(e.Value) != "v2" || e.Revision != r2 {
		t.Fatalf("after a failed Update: %q rev %d, want v2 rev %d", e.Value, e.Revision, r2)
	}
	r3, err := s.Update(ctx(t), "rt.u", []byte("v3"), r2, time.Hour)
	if err != nil || r3 == r2 || r3 == r1 || r3 == 0 {
		t.Fatalf("Update again: rev %d err %v", r3, err)
	}
}

func testUpdateAbsent(t *testing.T, s oauth.Store) {
	_, err := s.Update(ctx(t), "rt.none", []byte("v"), 1, 0)
	wantErr(t, "Update of an absent key", err, oauth.ErrNotFound, oauth.ErrRevision)
	if _, err := s.Get(ctx(t), "rt.none"); !errors.Is(err, oauth.ErrNotFound) {
		t.Fatalf("a failed Update created the key (Get: %v)", err)
	}
}

func testDeleteCAS(t *testing.T, s oauth.Store) {
	r1 := mustCreate(t, s, "ac.d", []byte("v1"), 0)
	r2, err := s.Update(ctx(t), "ac.d", []byte("v2"), r1, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Delete with a stale revision", s.Delete(ctx(t), "ac.d", r1), oauth.ErrRevision)
	mustGet(t, s, "ac.d")
	if err := s.Delete(ctx(t), "ac.d", r2); err != nil {
		t.Fatalf("Delete with the current revision: %v", err)
	}
	_, err = s.Get(ctx(t), "ac.d")
	wantErr(t, "Get after Delete", err, oauth.ErrNotFound)
	wantErr(t, "Delete of an absent key with a revision", s.Delete(ctx(t), "ac.d", r2), oauth.ErrNotFound, oauth.ErrRevision)
}

func testDeleteUnconditional(t *testing.T, s oauth.Store) {
	mustCreate(t, s, "uc.ABCD-EFGH", []byte("v"), 0)
	if err := s.Delete(ctx(t), "uc.ABCD-EFGH", 0); err != nil {
		t.Fatalf("Delete(rev 0): %v", err)
	}
	if err := s.Delete(ctx(t), "uc.ABCD-EFGH", 0); err != nil {
		t.Fatalf("Delete(rev 0) of an absent key: %v, want nil", err)
	}
	if err := s.Delete(ctx(t), "uc.never", 0); err != nil {
		t.Fatalf("Delete(rev 0) of a never-written key: %v, want nil", err)
	}
}

func testRecreateAfterDelete(t *testing.T, s oauth.Store) {
	seen := map[uint64]bool{}
	for i := 0; i < 3; i++ {
		rev := mustCreate(t, s, "rv.again", []byte(strconv.Itoa(i)), time.Minute)
		if seen[rev] {
			t.Fatalf("Create after Delete reused revision %d", rev)
		}
		seen[rev] = true
		rev2, err := s.Update(ctx(t), "rv.again", []byte("u"), rev, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if seen[rev2] {
			t.Fatalf("Update reused revision %d", rev2)
		}
		seen[rev2] = true
		if err := s.Delete(ctx(t), "rv.again", rev2); err != nil {
			t.Fatal(err)
		}
	}
}

func testList(t *testing.T, s oauth.Store) {
	want := map[string]string{"rv.a": "1", "rv.b": "2", "rv.c.d": "3"}
	for k, v := range want {
		mustCreate(t, s, k, []byte(v), time.Hour)
	}
	mustCreate(t, s, "rvx.a", []byte("no"), 0)
	mustCreate(t, s, "rt.a", []byte("no"), 0)
	mustCreate(t, s, "rv.gone", []byte("no"), 0)
	if err := s.Delete(ctx(t), "rv.gone", 0); err != nil {
		t.Fatal(err)
	}
	es, err := s.List(ctx(t), "rv.")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	got := map[string]string{}
	for _, e := range es {
		if e.Revision == 0 {
			t.Errorf("List entry %q has revision 0", e.Key)
		}
		if ge := mustGet(t, s, e.Key); ge.Revision != e.Revision {
			t.Errorf("List entry %q: revision %d, Get says %d", e.Key, e.Revision, ge.Revision)
		}
		got[e.Key] = string(e.Value)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List(rv.) = %v, want %v", got, want)
	}
	es, err = s.List(ctx(t), "none.")
	if err != nil || len(es) != 0 {
		t.Fatalf("List of an empty prefix = %v, %v", es, err)
	}
}

func testKeyAlphabet(t *testing.T, s oauth.Store) {
	keys := []string{
		"rt.0123456789abcdef0123456789abcdef",
		"rv.AbC-dEf_GhI=",
		"uc.BCDF-GHJK",
		"keys.ring",
		"ru." + string(bytes.Repeat([]byte("f"), 64)),
	}
	for _, k := range keys {
		if !oauth.ValidKey(k) {
			t.Fatalf("ValidKey(%q) = false", k)
		}
		mustCreate(t, s, k, []byte(k), 0)
	}
	for _, k := range keys {
		if e := mustGet(t, s, k); string(e.Value) != k {
			t.Fatalf("Get(%q) = %q", k, e.Value)
		}
	}
}

func testValuesCopied(t *testing.T, s oauth.Store) {
	v := []byte("original")
	rev := mustCreate(t, s, "rt.copy", v, 0)
	copy(v, "XXXXXXXX")
	e := mustGet(t, s, "rt.copy")
	if string(e.Value) != "original" {
		t.Fatalf("the store kept the caller's slice: %q", e.Value)
	}
	copy(e.Value, "YYYYYYYY")
	if e := mustGet(t, s, "rt.copy"); string(e.Value) != "original" {
		t.Fatalf("Get returned the store's own slice: %q", e.Value)
	}
	u := []byte("updated!")
	if _, err := s.Update(ctx(t), "rt.copy", u, rev, 0); err != nil {
		t.Fatal(err)
	}
	copy(u, "ZZZZZZZZ")
	if e := mustGet(t, s, "rt.copy"); string(e.Value) != "updated!" {
		t.Fatalf("the store kept the caller's Update slice: %q", e.Value)
	}
}

func testValues(t *testing.T, s oauth.Store) {
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	mustCreate(t, s, "rt.bin", bin, 0)
	mustCreate(t, s, "rt.big", big, 0)
	mustCreate(t, s, "rt.empty", []byte{}, 0)
	if e := mustGet(t, s, "rt.bin"); !bytes.Equal(e.Value, bin) {
		t.Fatalf("binary value changed: %x", e.Value)
	}
	if e := mustGet(t, s, "rt.big"); !bytes.Equal(e.Value, big) {
		t.Fatalf("64 KiB value changed (len %d)", len(e.Value))
	}
	if e := mustGet(t, s, "rt.empty"); len(e.Value) != 0 {
		t.Fatalf("empty value came back as %q", e.Value)
	}
}

func testTTLNotEarly(t *testing.T, s oauth.Store) {
	rev := mustCreate(t, s, "dc.ttl", []byte("v"), time.Hour)
	if _, err := s.Update(ctx(t), "dc.ttl", []byte("w"), rev, 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if e := mustGet(t, s, "dc.ttl"); string(e.Value) != "w" {
		t.Fatalf("Get = %q", e.Value)
	}
	es, err := s.List(ctx(t), "dc.")
	if err != nil || len(es) != 1 {
		t.Fatalf("List(dc.) = %v, %v: want the entry with a TTL", es, err)
	}
}

const workers = 8

func testConcurrentCreate(t *testing.T, s oauth.Store) {
	var wins, exists atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Create(context.Background(), "keys.ring", []byte(strconv.Itoa(i)), 0)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, oauth.ErrExists):
				exists.Add(1)
			default:
				t.Errorf("Create: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || exists.Load() != workers-1 {
		t.Fatalf("%d concurrent Creates: %d won, %d saw ErrExists; want 1 and %d", workers, wins.Load(), exists.Load(), workers-1)
	}
}

func testConcurrentUpdate(t *testing.T, s oauth.Store) {
	rev := mustCreate(t, s, "rt.race", []byte("0"), 0)
	var wins atomic.Int32
	var winner atomic.Value
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := strconv.Itoa(i + 1)
			_, err := s.Update(context.Background(), "rt.race", []byte(v), rev, 0)
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(v)
			case errors.Is(err, oauth.ErrRevision):
			default:
				t.Errorf("Update: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d Updates from one revision: %d succeeded, want exactly 1", workers, wins.Load())
	}
	if e := mustGet(t, s, "rt.race"); string(e.Value) != winner.Load().(string) {
		t.Fatalf("value %q is not the winner's %q", e.Value, winner.Load())
	}
}

func testConcurrentCounter(t *testing.T, s oauth.Store) {
	mustCreate(t, s, "ru.counter", []byte("0"), 0)
	const each = 25
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < each; {
				e, err := s.Get(context.Background(), "ru.counter")
				if err != nil {
					t.Errorf("Get: %v", err)
					return
				}
				c, _ := strconv.Atoi(string(e.Value))
				_, err = s.Update(context.Background(), "ru.counter", []byte(strconv.Itoa(c+1)), e.Revision, 0)
				if errors.Is(err, oauth.ErrRevision) {
					continue
				}
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
				n++
			}
		}()
	}
	wg.Wait()
	e := mustGet(t, s, "ru.counter")
	if string(e.Value) != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s after %d CAS increments, want %d (a lost update)", e.Value, workers*each, workers*each)
	}
	es, _ := s.List(ctx(t), "ru.")
	if !slices.ContainsFunc(es, func(e oauth.Entry) bool { return e.Key == "ru.counter" }) {
		t.Fatal("List(ru.) misses ru.counter")
	}
}
