package oauth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DiskStore is the on-disk Store for a single node with data_dir: the
// entries live in memory and every write is appended to a log file
// (dir/oauth.log, one JSON record a line) and fsynced before the call
// returns, so that state survives a restart or a crash (a new log, and
// the directories opening made for it, are fsynced into their parent
// directories too). Concurrent writers
// share fsyncs (group commit). The log is rewritten (compacted) when it
// holds more than twice the live records; a rewrite that fails (a disk
// too full for the copy) is logged and tried again once the log has
// doubled, and does not fail the write that set it off. A second process opening the
// same directory is refused (flock). Files are created 0600 in a 0700
// directory: the key ring holds private keys.
//
// Safe for concurrent use; writes block until their record is on disk.
type DiskStore struct {
	syncMu sync.Mutex // held while fsyncing or swapping the file; lock order: syncMu, then mu
	mu     sync.Mutex
	mem    *MemStore // the entries; its own mutex nests inside mu
	f      *os.File  // guarded by mu (swapped under syncMu and mu)
	path   string    // static
	lock   *os.File  // static: holds the directory's flock
	seq    uint64    // records appended; guarded by mu
	synced uint64    // records known to be on disk; guarded by syncMu
	nrec   int       // records in the file; guarded by mu
	closed bool      // guarded by mu
	err    error     // sticky write error (an fsync's, or an append not cut back); guarded by mu
	torn   int64     // bytes of a torn last record cut off at open; static
	// compactions counts the log's rewrites, tried or done (tests);
	// guarded by mu.
	compactions int
	// retryAt: after a failed compaction, the record count from which
	// the next is tried (0: none failed); guarded by mu.
	retryAt int
}

// diskRec is one log record.
type diskRec struct {
	Op      string `json:"op"` // "put" or "del"
	Key     string `json:"k"`
	Value   []byte `json:"v,omitempty"`
	Rev     uint64 `json:"r,omitempty"`
	Expires int64  `json:"x,omitempty"` // unix nanoseconds
}

// OpenDiskStore opens (creating if needed) the store in dir. Close it when
// done.
func OpenDiskStore(dir string) (*DiskStore, error) {
	return openDiskStore(dir, time.Now)
}

func openDiskStore(dir string, now func() time.Time) (*DiskStore, error) {
	// The directories MkdirAll makes (the store's, and data_dir when it
	// is new too): their entries in their parents must reach the disk,
	// or a power loss can take the whole store with them.
	var made []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) || d == filepath.Dir(d) {
			break
		}
		made = append(made, d)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("oauth: data directory: %w", err)
	}
	for i := len(made) - 1; i >= 0; i-- {
		syncDirFn(filepath.Dir(made[i]))
	}
	lock, err := lockDir(filepath.Join(dir, "oauth.lock"))
	if err != nil {
		return nil, err
	}
	s := &DiskStore{mem: newMemStore(now), path: filepath.Join(dir, "oauth.log"), lock: lock}
	if err := s.replay(); err != nil {
		lock.Close()
		return nil, err
	}
	_, statErr := os.Stat(s.path)
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("oauth: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A new log: each write fsyncs the file, which does not make its
		// directory entry durable. Without this, a power loss after the
		// first writes (the generated key ring, the first refresh
		// tokens) could leave no oauth.log at all. Best effort, as after
		// a compaction: a file system that cannot fsync a directory
		// keeps working as before.
		syncDirFn(dir)
	}
	s.f = f
	return s, nil
}

// replay loads the log. A torn last record (a crash in the middle of an
// append) is cut off; a bad record before the end is an error.
func (s *DiskStore) replay() error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("oauth: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var good int64
	now := s.mem.now().UnixNano()
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if err == io.EOF && len(b) == 0 {
			break
		}
		var rec diskRec
		if err != nil || json.Unmarshal(b, &rec) != nil || !ValidKey(rec.Key) {
			if _, more := r.Peek(1); err == nil && more == nil {
				return fmt.Errorf("oauth: %s: record %d is corrupt", s.path, line)
			}
			// The last record is torn: drop it (TornBytes says so).
			if st, err := f.Stat(); err == nil {
				s.torn = st.Size() - good
			}
			return os.Truncate(s.path, good)
		}
		good += int64(len(b))
		s.nrec++
		s.mem.rev = max(s.mem.rev, rec.Rev)
		switch rec.Op {
		case "put":
			if rec.Expires != 0 && now >= rec.Expires {
				delete(s.mem.m, rec.Key)
				continue
			}
			s.mem.m[rec.Key] = memEntry{value: rec.Value, rev: rec.Rev, expires: rec.Expires}
		case "del":
			delete(s.mem.m, rec.Key)
		default:
			return fmt.Errorf("oauth: %s: record %d has unknown op %q", s.path, line, rec.Op)
		}
	}
	return nil
}

// TornBytes returns the bytes of an incomplete last record that opening
// the store cut off (a crash or power loss in the middle of a write), 0
// when there was none: the change that record held is lost, which the
// caller should say (edgewamp logs it).
func (s *DiskStore) TornBytes() int64 { return s.torn }

// usable returns why the store takes no writes (closed, or its log
// failed), or nil. Caller holds mu.
func (s *DiskStore) usable() error {
	if s.closed {
		return errStoreClosed
	}
	return s.err
}

// appendRec writes one record. Caller holds mu.
func (s *DiskStore) appendRec(rec diskRec) (uint64, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	b, _ := json.Marshal(rec)
	b = append(b, '\n')
	if n, err := s.f.Write(b); err != nil {
		werr := fmt.Errorf("oauth: store write: %w", err)
		if !s.cutBack(n) {
			s.err = werr
		}
		return 0, werr
	}
	s.seq++
	s.nrec++
	return s.seq, nil
}

// cutBack removes the n bytes of a record whose append failed (a full
// disk, a quota: the write stops short), so that the log ends where it
// did and a later write, once there is room, appends a whole record
// after it. It reports whether it could; if not, the log's end is
// unknown and the caller makes the error sticky (every later write
// refused). Before, any failed append was sticky: a disk full for a
// moment (a log that filled /var) made every token request, refresh and
// revocation fail until the router restarted, room or not. Caller holds
// mu.
func (s *DiskStore) cutBack(n int) bool {
	fi, err := s.f.Stat()
	if err != nil || int64(n) > fi.Size() {
		return false
	}
	return s.f.Truncate(fi.Size()-int64(n)) == nil
}

// syncTo returns once record seq is on disk. Concurrent callers share one
// fsync: whoever gets syncMu syncs everything appended so far.
func (s *DiskStore) syncTo(seq uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if s.synced >= seq {
		return nil
	}
	s.mu.Lock()
	f, upTo, closed := s.f, s.seq, s.closed
	s.mu.Unlock()
	if closed {
		return errStoreClosed
	}
	if err := f.Sync(); err != nil {
		s.mu.Lock()
		s.err = fmt.Errorf("oauth: store fsync: %w", err)
		s.mu.Unlock()
		return err
	}
	s.synced = upTo
	return nil
}

// write runs op (a MemStore method call that succeeded or not) and logs
// rec on success, then waits for the disk.
//
// A write that cannot be appended changes nothing: a store whose log
// failed (or that is closed) refuses it before op runs, and a failed
// append puts key's entry back (its revision is not reused: a Get may
// have seen it). Left in memory, the change of a write reported failed
// was served from then on: a refresh answered 503 had rotated its token,
// and the client's retry with the token it held was taken for reuse.
func (s *DiskStore) write(key string, op func() (diskRec, error)) (uint64, error) {
	s.mu.Lock()
	if err := s.usable(); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	s.mem.mu.Lock()
	prev, had := s.mem.m[key]
	s.mem.mu.Unlock()
	rec, err := op()
	var seq uint64
	if err == nil {
		if seq, err = s.appendRec(rec); err != nil {
			s.mem.mu.Lock()
			if had {
				s.mem.m[key] = prev
			} else {
				delete(s.mem.m, key)
			}
			s.mem.mu.Unlock()
		}
	}
	compact := s.needsCompaction()
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := s.syncTo(seq); err != nil {
		return 0, err
	}
	if compact {
		// The write is on disk, whatever the compaction does: reported
		// failed, a refresh answered 503 had rotated its token already,
		// and the client's retry with the old one was taken for reuse.
		if err := s.compact(); err != nil {
			slog.Default().Warn("oauth: compacting the state log failed; it is tried again once the log has grown as much again", "path", s.path, "err", err)
		}
	}
	return rec.Rev, nil
}

// needsCompaction reports whether the log holds more than twice the
// entries in memory, and more than 1,024 records. Caller holds mu.
func (s *DiskStore) needsCompaction() bool {
	if s.nrec <= 1024 || s.nrec < s.retryAt {
		return false
	}
	s.mem.mu.Lock()
	n := len(s.mem.m)
	s.mem.mu.Unlock()
	return s.nrec > 2*n
}

// Get implements Store.
func (s *DiskStore) Get(ctx context.Context, key string) (Entry, error) {
	return s.mem.Get(ctx, key)
}

// List implements Store.
func (s *DiskStore) List(ctx context.Context, prefix string) ([]Entry, error) {
	return s.mem.List(ctx, prefix)
}

// Create implements Store.
func (s *DiskStore) Create(ctx context.Context, key string, value []byte, ttl time.Duration) (uint64, error) {
	return s.write(key, func() (diskRec, error) {
		rev, err := s.mem.Create(ctx, key, value, ttl)
		return s.putRec(key, rev), err
	})
}

// Update implements Store.
func (s *DiskStore) Update(ctx context.Context, key string, value []byte, rev uint64, ttl time.Duration) (uint64, error) {
	return s.write(key, func() (diskRec, error) {
		nrev, err := s.mem.Update(ctx, key, value, rev, ttl)
		return s.putRec(key, nrev), err
	})
}

// putRec is the record of the entry just written. Caller holds mu.
func (s *DiskStore) putRec(key string, rev uint64) diskRec {
	s.mem.mu.Lock()
	e := s.mem.m[key]
	s.mem.mu.Unlock()
	return diskRec{Op: "put", Key: key, Value: e.value, Rev: rev, Expires: e.expires}
}

// Delete implements Store.
func (s *DiskStore) Delete(ctx context.Context, key string, rev uint64) error {
	_, err := s.write(key, func() (diskRec, error) {
		s.mem.mu.Lock()
		_, present := s.mem.live(key, s.mem.now().UnixNano())
		s.mem.mu.Unlock()
		err := s.mem.Delete(ctx, key, rev)
		if err == nil && !present {
			err = errNothingToLog
		}
		return diskRec{Op: "del", Key: key}, err
	})
	if errors.Is(err, errNothingToLog) {
		return nil
	}
	return err
}

var errNothingToLog = errors.New("nothing to log")

// compact rewrites the log with only the live entries.
func (s *DiskStore) compact() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.err != nil {
		return s.err
	}
	if !s.needsCompaction() {
		// Another writer that saw the log grow past the bound
		// compacted it while this one waited: each of the writers
		// sharing an fsync saw it, and each rewrote the whole log
		// again, holding every write up meanwhile.
		return nil
	}
	s.compactions++
	s.mem.mu.Lock()
	var buf bytes.Buffer
	now := s.mem.now().UnixNano()
	n := 0
	for k, e := range s.mem.m {
		if e.expires != 0 && now >= e.expires {
			continue
		}
		b, _ := json.Marshal(diskRec{Op: "put", Key: k, Value: e.value, Rev: e.rev, Expires: e.expires})
		buf.Write(b)
		buf.WriteByte('\n')
		n++
	}
	// A record that keeps the highest revision, so that revisions never
	// repeat after a restart even when the newest key was deleted.
	b, _ := json.Marshal(diskRec{Op: "del", Key: "store.rev", Rev: s.mem.rev})
	buf.Write(b)
	buf.WriteByte('\n')
	s.mem.mu.Unlock()
	tmp := s.path + ".tmp"
	if err := writeFileSync(tmp, buf.Bytes()); err != nil {
		s.retryAt = 2 * s.nrec
		return fmt.Errorf("oauth: store compaction: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		os.Remove(tmp)
		s.retryAt = 2 * s.nrec
		return fmt.Errorf("oauth: store compaction: %w", err)
	}
	s.retryAt = 0
	syncDirFn(filepath.Dir(s.path))
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.err = fmt.Errorf("oauth: store compaction: %w", err)
		return s.err
	}
	s.f.Close()
	s.f = f
	s.nrec = n + 1
	s.synced = s.seq
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // a partial copy: its space back (a full disk)
	}
	return err
}

// syncDir fsyncs a directory, making the entries created or renamed in it
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDirFn is syncDir; a test seam.
var syncDirFn = syncDir

// Close flushes and closes the log and releases the directory. Later
// writes fail; reads keep answering from memory.
func (s *DiskStore) Close() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.lock.Close()
	return err
}

var (
	errStoreClosed = errors.New("oauth: store is closed")
	errTooLarge    = errors.New("oauth: store: value too large")
)
