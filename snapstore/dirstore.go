package snapstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"go.opentelemetry.io/otel"

	"github.com/otelfr/otel-flightrecorder/internal/yield"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// Defaults of a [DirStore]'s retention.
const (
	DefaultMaxCount      = 50
	DefaultMaxTotalBytes = 1 << 30
)

const (
	traceExt = ".trace"
	metaExt  = ".json"
	tmpGlob  = ".tmp-*"
)

// ErrReadOnly is returned by Save and AddSpans of a [DirStore] opened with
// [WithReadOnly].
var ErrReadOnly = errors.New("otelfr/snapstore: read-only store")

// DirStore is a [Store] that keeps each snapshot in a directory as two
// files: ID.trace, the raw execution trace, and ID.json, its [Info].
//
// Writes are atomic: each file is written under a temporary name and
// renamed into place, the trace before its description, and only snapshots
// with both files are listed or served. A crash mid-write leaves at most a
// temporary file or a trace without its description, both removed by the
// next [NewDirStore]. Files are not synced to disk, so a power loss may lose
// the latest snapshots, never expose a partial one.
//
// Before each Save writes, it makes room: keeping the newest snapshots for
// as long as they and the new one number at most MaxCount and total at most
// MaxTotalBytes, it removes every older one, so the store stays within its
// limits even while writing. The new snapshot is always written, even when
// it alone exceeds MaxTotalBytes. A snapshot's size is its trace's;
// descriptions are not counted. Saving an ID the store holds replaces that
// snapshot. Room is made first, so a Save that fails may still have removed
// older snapshots.
//
// When a write fails because the volume is full ([syscall.ENOSPC]), Save
// removes the oldest snapshots left, at least one and at least as many bytes
// as the write lacked, and tries again, until the write fits or no other
// snapshot is left; then it returns the error. A full volume thus costs the
// oldest snapshots, and the store recovers as soon as removing them frees
// enough space.
//
// A trace without its description, or a description without its trace, is
// an orphan: a crash between Save's two renames or between a removal's two
// steps, or a removal that failed, leaves one. Orphans are never listed or
// served; NewDirStore and every Save remove them, and one that cannot be
// removed counts toward MaxTotalBytes until it is.
//
// A directory belongs to one DirStore at a time. Two stores sharing one, in
// one process or several, are not supported: neither counts the other's
// snapshots in progress, and each may take the other's half-written save
// for an orphan and remove it, losing that snapshot (never exposing a
// partial one).
//
// The exception is a read-only DirStore ([WithReadOnly]), which writes and
// removes nothing: any number of them may read a directory beside the one
// store that writes it, as a viewer (`otelfr serve`) reads the directory of
// a live process. A reader sees a snapshot once both its files are in
// place, and loses it when the writer's retention removes it: List may then
// still name a snapshot that Open no longer finds ([ErrNotFound]), and a
// trace already opened stays readable on the systems that keep a removed
// file's data for its open descriptors (Unix).
type DirStore struct {
	dir      string
	maxCount int
	maxBytes int64
	readOnly bool

	mu sync.Mutex // serializes retention with saves
	// unsummed is set while a snapshot committed without its SHA-256 is
	// not yet counted by retention: the next commit counts it, if
	// SetSHA256 has not. Guarded by mu.
	unsummed bool

	// write writes a temporary file's contents; a test seam for a full
	// volume. Nil means (*os.File).Write.
	write func(f *os.File, p []byte) (int, error)
}

var (
	_ Store   = (*DirStore)(nil)
	_ Creator = (*DirStore)(nil)
)

// Option configures a [DirStore].
type Option interface {
	apply(storeConfig) storeConfig
}

type storeConfig struct {
	maxCount int
	maxBytes int64
	readOnly bool
}

type optionFunc func(storeConfig) storeConfig

func (f optionFunc) apply(c storeConfig) storeConfig { return f(c) }

// WithMaxCount sets how many snapshots a DirStore keeps. The default is
// 50; n <= 0 keeps the default.
func WithMaxCount(n int) Option {
	return optionFunc(func(c storeConfig) storeConfig {
		if n > 0 {
			c.maxCount = n
		}
		return c
	})
}

// WithMaxTotalBytes sets the total size of the snapshots a DirStore keeps.
// The default is 1 GiB; n <= 0 keeps the default.
func WithMaxTotalBytes(n int64) Option {
	return optionFunc(func(c storeConfig) storeConfig {
		if n > 0 {
			c.maxBytes = n
		}
		return c
	})
}

// WithReadOnly opens a DirStore that only lists and opens snapshots: it
// neither creates nor cleans its directory, enforces no retention, and its
// Save and AddSpans return [ErrReadOnly]. Such a store may read the
// directory of a store that writes, in this process or another (see
// [DirStore]). The retention options have no effect on it.
func WithReadOnly() Option {
	return optionFunc(func(c storeConfig) storeConfig {
		c.readOnly = true
		return c
	})
}

// NewDirStore returns a DirStore keeping snapshots in dir, which it creates
// (mode 0700) if needed. It removes the temporary files and orphans left by
// an interrupted write or removal: as dir belongs to one store, any found
// now were left by a previous one. Those it fails to remove, every Save
// tries again.
//
// With [WithReadOnly], dir must be an existing directory, and NewDirStore
// neither creates nor changes anything in it.
func NewDirStore(dir string, opts ...Option) (*DirStore, error) {
	c := storeConfig{maxCount: DefaultMaxCount, maxBytes: DefaultMaxTotalBytes}
	for _, o := range opts {
		c = o.apply(c)
	}
	if c.readOnly {
		fi, err := os.Stat(dir)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", dir)
		}
		if err != nil {
			return nil, fmt.Errorf("otelfr/snapstore: opening store directory: %w", err)
		}
		return &DirStore{dir: dir, maxCount: c.maxCount, maxBytes: c.maxBytes, readOnly: true}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("otelfr/snapstore: creating store directory: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(dir, tmpGlob))
	for _, p := range stale {
		_ = os.Remove(p)
	}
	d := &DirStore{dir: dir, maxCount: c.maxCount, maxBytes: c.maxBytes}
	if inv, err := d.scan(); err == nil {
		_, _ = d.removeOrphans(inv.orphans)
	}
	return d, nil
}

// Dir returns the directory the store keeps its snapshots in.
func (d *DirStore) Dir() string { return d.dir }

// Path returns the path of the snapshot's trace file, for opening it with
// `go tool trace`. It does not check that the snapshot exists.
func (d *DirStore) Path(id string) (string, error) {
	if !ValidID(id) {
		return "", ErrInvalidID
	}
	return filepath.Join(d.dir, id+traceExt), nil
}

// Save implements [Store]. A read-only store returns [ErrReadOnly].
func (d *DirStore) Save(ctx context.Context, s *otelfr.Snapshot) (Info, error) {
	if d.readOnly {
		return Info{}, ErrReadOnly
	}
	if !ValidID(s.ID) {
		return Info{}, ErrInvalidID
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	sum := s.SHA256
	if sum == "" {
		sum = hashData(s.Data)
	}
	info := NewInfo(s, s.Size(), sum)
	meta, err := json.Marshal(info)
	if err != nil {
		return Info{}, err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	kept, err := d.makeRoom(s.ID, info.Size)
	if err != nil {
		return Info{}, err
	}
	tracePath := filepath.Join(d.dir, s.ID+traceExt)
	if err := d.writeFreeing(ctx, tracePath, s.Data, &kept); err != nil {
		return Info{}, err
	}
	if err := d.writeFreeing(ctx, filepath.Join(d.dir, s.ID+metaExt), meta, &kept); err != nil {
		_ = os.Remove(tracePath)
		return Info{}, err
	}
	info.Path = tracePath
	return info, nil
}

// hashData returns the hex SHA-256 of data. It hashes in pieces: one call
// over the whole snapshot cannot be preempted, and would hold up every
// stop-the-world pause while it runs.
func hashData(data []byte) string {
	h := sha256.New()
	for len(data) > 0 {
		n := min(len(data), 256<<10)
		h.Write(data[:n])
		data = data[n:]
		yield.Background() // background work: let queued requests run
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Create implements [Creator]: the trace goes to a temporary file in the
// store's directory, which Commit renames into place and describes, as
// Save does. Retention counts the new snapshot when it is committed with
// its SHA-256, and one committed without it when [DirStore.SetSHA256]
// records it: the caller that hashes the trace after storing it (the span
// processor's export stage) then also bears retention's work, reading the
// descriptions and removing the oldest traces, off the snapshot path. If
// no sum comes before the next commit, that commit counts it. Until then,
// and while it is written, the store may exceed its limits by that
// snapshot. A write that finds the volume full ([syscall.ENOSPC]) removes
// the oldest snapshots, at least one and at least as many bytes as it
// lacked, and goes on, until no other snapshot is left. A read-only store
// returns [ErrReadOnly].
func (d *DirStore) Create(ctx context.Context) (SnapshotWriter, error) {
	if d.readOnly {
		return nil, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(d.dir, tmpGlob)
	if err != nil {
		return nil, fmt.Errorf("otelfr/snapstore: saving snapshot: %w", err)
	}
	return &dirWriter{d: d, f: f}, nil
}

// dirWriter is a snapshot being written into a DirStore.
type dirWriter struct {
	d    *DirStore
	f    *os.File // nil once committed or aborted
	n    int64
	werr error // the first write error: Commit fails with it
}

func (w *dirWriter) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, os.ErrClosed
	}
	if w.werr != nil {
		return 0, w.werr
	}
	write := w.d.write
	if write == nil {
		write = (*os.File).Write
	}
	written := 0
	for {
		n, err := write(w.f, p)
		written += n
		w.n += int64(n)
		p = p[n:]
		if err == nil {
			return written, nil
		}
		if !errors.Is(err, syscall.ENOSPC) || !w.d.freeOldest(int64(len(p))) {
			w.werr = fmt.Errorf("otelfr/snapstore: saving snapshot: %w", err)
			return written, w.werr
		}
	}
}

// freeOldest removes the oldest snapshots, at least one and at least
// lacked bytes, and reports whether it removed any.
func (d *DirStore) freeOldest(lacked int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	inv, err := d.scan()
	if err != nil {
		return false
	}
	var freed int64
	removed := false
	for i := len(inv.snapshots) - 1; i >= 0 && (!removed || freed < lacked); i-- {
		oldest := inv.snapshots[i]
		if err := d.remove(oldest.ID); err != nil {
			otel.Handle(fmt.Errorf("otelfr/snapstore: retention: %w", err))
			continue
		}
		removed = true
		freed += oldest.Size
	}
	return removed
}

// Commit implements [SnapshotWriter].
func (w *dirWriter) Commit(ctx context.Context, s *otelfr.Snapshot) (Info, error) {
	if w.f == nil {
		return Info{}, os.ErrClosed
	}
	f := w.f
	w.f = nil
	err := f.Close()
	switch {
	case w.werr != nil:
		err = w.werr
	case err != nil:
		err = fmt.Errorf("otelfr/snapstore: saving snapshot: %w", err)
	case !ValidID(s.ID):
		err = ErrInvalidID
	default:
		err = ctx.Err()
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return Info{}, err
	}
	info, err := w.d.commit(ctx, f.Name(), NewInfo(s, w.n, s.SHA256))
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return info, err
}

// commit renames the trace written at tmp into place and writes its
// description. A snapshot with its SHA-256 makes room first; one without
// is counted by SetSHA256 (see [DirStore.Create]), or by the next commit
// if no sum came between.
func (d *DirStore) commit(ctx context.Context, tmp string, info Info) (Info, error) {
	meta, err := json.Marshal(info)
	if err != nil {
		return Info{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var kept *[]Info // nil: listed if the volume is full (writeFreeing)
	if info.SHA256 != "" || d.unsummed {
		k, err := d.makeRoom(info.ID, info.Size)
		if err != nil {
			return Info{}, err
		}
		kept = &k
	}
	d.unsummed = info.SHA256 == ""
	tracePath := filepath.Join(d.dir, info.ID+traceExt)
	if err := os.Rename(tmp, tracePath); err != nil {
		return Info{}, fmt.Errorf("otelfr/snapstore: saving snapshot: %w", err)
	}
	if err := d.writeFreeing(ctx, filepath.Join(d.dir, info.ID+metaExt), meta, kept); err != nil {
		_ = os.Remove(tracePath)
		return Info{}, err
	}
	info.Path = tracePath
	return info, nil
}

// Abort implements [SnapshotWriter].
func (w *dirWriter) Abort() {
	if w.f == nil {
		return
	}
	_ = w.f.Close()
	_ = os.Remove(w.f.Name())
	w.f = nil
}

// writeFreeing writes data to path, and while that fails for want of space,
// removes the oldest of the snapshots in kept (newest first), at least one
// and at least as many bytes as the write lacked, and tries again. It stops
// when kept is empty, so it tries at most len(kept)+1 times. A nil kept
// stands for the snapshots listed when the volume is first found full
// (a trace renamed into place without its description is not one). The
// caller holds d.mu.
func (d *DirStore) writeFreeing(ctx context.Context, path string, data []byte, kept *[]Info) error {
	for {
		n, err := d.writeAtomic(path, data)
		if err == nil || !errors.Is(err, syscall.ENOSPC) {
			return err
		}
		if kept == nil {
			listed, lerr := d.list()
			if lerr != nil {
				return errors.Join(err, lerr)
			}
			kept = &listed
		}
		if len(*kept) == 0 {
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return errors.Join(err, cerr)
		}
		lacked := int64(len(data) - n)
		var freed int64
		for removed := false; len(*kept) > 0 && (!removed || freed < lacked); {
			oldest := (*kept)[len(*kept)-1]
			*kept = (*kept)[:len(*kept)-1]
			if err := d.remove(oldest.ID); err != nil {
				otel.Handle(fmt.Errorf("otelfr/snapstore: retention: %w", err))
				continue
			}
			removed = true
			freed += oldest.Size
		}
	}
}

// writeAtomic writes data to a temporary file renamed to path. It returns
// how many bytes of data were written before an error.
func (d *DirStore) writeAtomic(path string, data []byte) (int, error) {
	f, err := os.CreateTemp(d.dir, tmpGlob)
	if err != nil {
		return 0, fmt.Errorf("otelfr/snapstore: saving snapshot: %w", err)
	}
	write := d.write
	if write == nil {
		write = (*os.File).Write
	}
	n, err := write(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return n, fmt.Errorf("otelfr/snapstore: saving snapshot: %w", err)
	}
	return n, nil
}

// makeRoom removes the orphans, then every snapshot older than the newest
// that fit beside a new snapshot id of size bytes, and returns the
// snapshots kept, newest first, without id. Failures to remove are handled
// with otel.Handle and what was not removed counts toward the limits. The
// caller holds d.mu, so no Save is between its renames.
func (d *DirStore) makeRoom(id string, size int64) ([]Info, error) {
	inv, err := d.scan()
	if err != nil {
		return nil, err
	}
	total, err := d.removeOrphans(inv.orphans)
	if err != nil {
		otel.Handle(fmt.Errorf("otelfr/snapstore: retention: %w", err))
	}
	total += size
	count := 1
	kept := make([]Info, 0, len(inv.snapshots))
	var errs []error
	full := false
	for _, in := range inv.snapshots { // newest first
		if in.ID == id {
			continue // replaced
		}
		full = full || count+1 > d.maxCount || total+in.Size > d.maxBytes
		if full {
			err := d.remove(in.ID)
			if err == nil {
				continue
			}
			errs = append(errs, err)
		}
		kept = append(kept, in)
		total += in.Size
		count++
	}
	if err := errors.Join(errs...); err != nil {
		otel.Handle(fmt.Errorf("otelfr/snapstore: retention: %w", err))
	}
	return kept, nil
}

// remove removes a snapshot, its description first: from then on it is not
// listed or served.
func (d *DirStore) remove(id string) error {
	if err := os.Remove(filepath.Join(d.dir, id+metaExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(filepath.Join(d.dir, id+traceExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// removeOrphans removes the orphans, and returns the total size of the
// traces it failed to remove.
func (d *DirStore) removeOrphans(orphans []orphan) (int64, error) {
	var errs []error
	var held int64
	for _, o := range orphans {
		if err := os.Remove(filepath.Join(d.dir, o.name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			held += o.size
		}
	}
	return held, errors.Join(errs...)
}

// AddSpans implements [Store]. The description is rewritten atomically. A
// read-only store returns [ErrReadOnly].
func (d *DirStore) AddSpans(ctx context.Context, id string, spans []SpanRef) error {
	return d.update(ctx, id, func(in *Info) (bool, error) {
		in.Spans = append(in.Spans, spans...)
		return true, nil
	}, nil)
}

// SetSHA256 implements [Checksummer]: Commit takes a snapshot without its
// SHA-256, which is then recorded here, and retention then counts the
// snapshot (see [DirStore.Create]). A read-only store returns
// [ErrReadOnly].
func (d *DirStore) SetSHA256(ctx context.Context, id, sum string) error {
	return d.update(ctx, id, func(in *Info) (bool, error) {
		switch in.SHA256 {
		case sum:
			return false, nil
		case "":
		default:
			return false, fmt.Errorf("%w: %s", ErrChecksumMismatch, id)
		}
		in.SHA256 = sum
		return true, nil
	}, func(in Info) {
		// Not SetSHA256's error: the sum is recorded. makeRoom
		// reports what it could not remove itself.
		if _, err := d.makeRoom(in.ID, in.Size); err != nil {
			otel.Handle(fmt.Errorf("otelfr/snapstore: retention: %w", err))
			return
		}
		d.unsummed = false // every snapshot listed is counted now
	})
}

// update rewrites the description of snapshot id atomically with what f
// makes of it, unless f reports no change or fails; then, if set, calls
// then with the description written, still holding d.mu.
func (d *DirStore) update(ctx context.Context, id string, f func(*Info) (bool, error), then func(Info)) error {
	if d.readOnly {
		return ErrReadOnly
	}
	if !ValidID(id) {
		return ErrInvalidID
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	in, err := d.readInfo(id)
	if err != nil {
		return err
	}
	if changed, err := f(&in); err != nil || !changed {
		return err
	}
	meta, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if _, err = d.writeAtomic(filepath.Join(d.dir, id+metaExt), meta); err == nil && then != nil {
		then(in)
	}
	return err
}

// List implements [Store].
func (d *DirStore) List(ctx context.Context) ([]Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d.list()
}

func (d *DirStore) list() ([]Info, error) {
	inv, err := d.scan()
	return inv.snapshots, err
}

// inventory is what a store's directory holds.
type inventory struct {
	snapshots []Info // with both files, newest first
	orphans   []orphan
}

// orphan is a trace without its description or a description without its
// trace.
type orphan struct {
	name string
	size int64 // of a trace; descriptions are not counted
}

// scan reads the directory. Files not named by a valid ID, and snapshots
// whose description cannot be read, are not the store's and are left out.
func (d *DirStore) scan() (inventory, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return inventory{}, fmt.Errorf("otelfr/snapstore: listing snapshots: %w", err)
	}
	traces := make(map[string]fs.DirEntry, len(entries)/2)
	metas := make(map[string]bool, len(entries)/2)
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if id, ok := strings.CutSuffix(e.Name(), traceExt); ok && ValidID(id) {
			traces[id] = e
		} else if id, ok := strings.CutSuffix(e.Name(), metaExt); ok && ValidID(id) {
			metas[id] = true
		}
	}
	var inv inventory
	for id, e := range traces {
		if metas[id] {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		inv.orphans = append(inv.orphans, orphan{name: e.Name(), size: fi.Size()})
	}
	inv.snapshots = make([]Info, 0, len(metas))
	for id := range metas {
		if _, ok := traces[id]; !ok {
			inv.orphans = append(inv.orphans, orphan{name: id + metaExt})
			continue
		}
		in, err := d.readInfo(id)
		if err != nil {
			continue // removed meanwhile, or not one of ours
		}
		inv.snapshots = append(inv.snapshots, in)
	}
	slices.SortFunc(inv.snapshots, func(a, b Info) int {
		if c := b.TakenAt.Compare(a.TakenAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return inv, nil
}

func (d *DirStore) readInfo(id string) (Info, error) {
	b, err := os.ReadFile(filepath.Join(d.dir, id+metaExt))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	var in Info
	if err := json.Unmarshal(b, &in); err != nil {
		return Info{}, fmt.Errorf("otelfr/snapstore: snapshot %s: %w", id, err)
	}
	if in.ID != id {
		return Info{}, fmt.Errorf("otelfr/snapstore: snapshot %s: description names %q", id, in.ID)
	}
	in.Path = filepath.Join(d.dir, id+traceExt)
	return in, nil
}

// Open implements [Store].
func (d *DirStore) Open(ctx context.Context, id string) (io.ReadSeekCloser, Info, error) {
	if !ValidID(id) {
		return nil, Info{}, ErrInvalidID
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, err
	}
	in, err := d.readInfo(id)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(filepath.Join(d.dir, id+traceExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, ErrNotFound
	}
	if err != nil {
		return nil, Info{}, err
	}
	return f, in, nil
}
