package oauth

import (
	"context"
	"math"
	"strings"
	"sync"
	"time"
)

// MemStore is the in-memory Store: the default for a single node without
// data_dir. State is lost when the process exits. Safe for concurrent use;
// no method blocks beyond a mutex.
type MemStore struct {
	mu      sync.Mutex
	m       map[string]memEntry // guarded by mu
	rev     uint64              // last revision handed out; guarded by mu
	sweepAt int                 // size at which a write sweeps expired entries; guarded by mu
	now     func() time.Time    // static after construction
}

type memEntry struct {
	value   []byte
	rev     uint64
	expires int64 // unix nanoseconds; 0: never
}

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore { return newMemStore(time.Now) }

func newMemStore(now func() time.Time) *MemStore {
	return &MemStore{m: map[string]memEntry{}, sweepAt: 1024, now: now}
}

// live returns key's entry if present and not expired. Caller holds mu.
func (s *MemStore) live(key string, now int64) (memEntry, bool) {
	e, ok := s.m[key]
	if !ok {
		return e, false
	}
	if e.expires != 0 && now >= e.expires {
		delete(s.m, key)
		return e, false
	}
	return e, true
}

// put writes an entry. Caller holds mu.
func (s *MemStore) put(key string, value []byte, ttl time.Duration, now int64) uint64 {
	if len(s.m) >= s.sweepAt {
		for k, e := range s.m {
			if e.expires != 0 && now >= e.expires {
				delete(s.m, k)
			}
		}
		s.sweepAt = max(2*len(s.m), 1024) // amortized: next sweep once the map has doubled
	}
	s.rev++
	e := memEntry{value: append([]byte(nil), value...), rev: s.rev}
	if ttl > 0 {
		// Saturating: a ttl of a few million hours (a lifetime meant as
		// "never", 2500000h) wrapped past the year 2262 into an expiry
		// already gone.
		e.expires = now + int64(ttl)
		if now > math.MaxInt64-int64(ttl) {
			e.expires = math.MaxInt64
		}
	}
	s.m[key] = e
	return s.rev
}

func checkWrite(key string, value []byte) error {
	if !ValidKey(key) {
		return errBadKey
	}
	if len(value) > maxValue {
		return errTooLarge
	}
	return nil
}

// Get implements Store.
func (s *MemStore) Get(_ context.Context, key string) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(key, s.now().UnixNano())
	if !ok {
		return Entry{}, ErrNotFound
	}
	return Entry{Key: key, Value: append([]byte(nil), e.value...), Revision: e.rev}, nil
}

// Create implements Store.
func (s *MemStore) Create(_ context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	if err := checkWrite(key, value); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	if _, ok := s.live(key, now); ok {
		return 0, ErrExists
	}
	return s.put(key, value, ttl, now), nil
}

// Update implements Store.
func (s *MemStore) Update(_ context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	if err := checkWrite(key, value); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	e, ok := s.live(key, now)
	if !ok {
		return 0, ErrNotFound
	}
	if e.rev != rev {
		return 0, ErrRevision
	}
	return s.put(key, value, ttl, now), nil
}

// Delete implements Store.
func (s *MemStore) Delete(_ context.Context, key string, rev uint64) error {
	if !ValidKey(key) {
		return errBadKey
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.live(key, s.now().UnixNano())
	switch {
	case !ok && rev == 0:
		return nil
	case !ok:
		return ErrNotFound
	case rev != 0 && e.rev != rev:
		return ErrRevision
	}
	delete(s.m, key)
	return nil
}

// List implements Store.
func (s *MemStore) List(_ context.Context, prefix string) ([]Entry, error) {
	if !validPrefix(prefix) {
		return nil, errBadKey
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	var out []Entry
	for k := range s.m {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if e, ok := s.live(k, now); ok {
			out = append(out, Entry{Key: k, Value: append([]byte(nil), e.value...), Revision: e.rev})
		}
	}
	return out, nil
}
