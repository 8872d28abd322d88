package exporter

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
	"runtime"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/otel"

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

// DirStore is a [Store] that keeps each snapshot in a directory as two
// files: ID.trace, the raw execution trace, and ID.json, its [Info].
//
// Writes are atomic: each file is written under a temporary name and
// renamed into place, the trace before its description, and only snapshots
// with a description are listed or served. A crash mid-write leaves at most
// a temporary file, removed by the next [NewDirStore]. Files are not synced
// to disk, so a power loss may lose the latest snapshots, never expose a
// partial one.
//
// After each Save the oldest snapshots are removed until at most MaxCount
// remain and their total size is at most MaxTotalBytes; the snapshot just
// saved is always kept.
type DirStore struct {
	dir      string
	maxCount int
	maxBytes int64

	mu sync.Mutex // serializes retention with saves
}

var _ Store = (*DirStore)(nil)

// StoreOption configures a [DirStore].
type StoreOption interface {
	applyStore(storeConfig) storeConfig
}

type storeConfig struct {
	maxCount int
	maxBytes int64
}

type storeOptionFunc func(storeConfig) storeConfig

func (f storeOptionFunc) applyStore(c storeConfig) storeConfig { return f(c) }

// WithMaxCount sets how many snapshots a DirStore keeps. The default is
// 50; n <= 0 keeps the default.
func WithMaxCount(n int) StoreOption {
	return storeOptionFunc(func(c storeConfig) storeConfig {
		if n > 0 {
			c.maxCount = n
		}
		return c
	})
}

// WithMaxTotalBytes sets the total size of the snapshots a DirStore keeps.
// The default is 1 GiB; n <= 0 keeps the default.
func WithMaxTotalBytes(n int64) StoreOption {
	return storeOptionFunc(func(c storeConfig) storeConfig {
		if n > 0 {
			c.maxBytes = n
		}
		return c
	})
}

// NewDirStore returns a DirStore keeping snapshots in dir, which it creates
// (mode 0700) if needed. It removes temporary files left by an interrupted
// write.
func NewDirStore(dir string, opts ...StoreOption) (*DirStore, error) {
	c := storeConfig{maxCount: DefaultMaxCount, maxBytes: DefaultMaxTotalBytes}
	for _, o := range opts {
		c = o.applyStore(c)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("otelfr/exporter: creating store directory: %w", err)
	}
	stale, _ := filepath.Glob(filepath.Join(dir, tmpGlob))
	for _, p := range stale {
		_ = os.Remove(p)
	}
	return &DirStore{dir: dir, maxCount: c.maxCount, maxBytes: c.maxBytes}, nil
}

// Dir returns the directory the store writes to.
func (d *DirStore) Dir() string { return d.dir }

// Path returns the path of the snapshot's trace file, for opening it with
// `go tool trace`. It does not check that the snapshot exists.
func (d *DirStore) Path(id string) (string, error) {
	if !ValidID(id) {
		return "", ErrInvalidID
	}
	return filepath.Join(d.dir, id+traceExt), nil
}

// Save implements [Store].
func (d *DirStore) Save(ctx context.Context, s *otelfr.Snapshot) (Info, error) {
	if !ValidID(s.ID) {
		return Info{}, ErrInvalidID
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	// Hash in pieces: one call over the whole snapshot cannot be preempted,
	// and would hold up every stop-the-world pause while it runs.
	h := sha256.New()
	for d := s.Data; len(d) > 0; {
		n := min(len(d), 256<<10)
		h.Write(d[:n])
		d = d[n:]
		runtime.Gosched() // background work: let queued requests run
	}
	sum := [sha256.Size]byte(h.Sum(nil))
	info := Info{
		ID:            s.ID,
		Reason:        s.Reason,
		Size:          s.Size(),
		SHA256:        hex.EncodeToString(sum[:]),
		WindowStart:   s.Start,
		WindowEnd:     s.End,
		TakenAt:       s.TakenAt,
		WriteDuration: s.WriteDuration,
		MinAge:        s.MinAge,
		MaxBytes:      s.MaxBytes,
	}
	meta, err := json.Marshal(info)
	if err != nil {
		return Info{}, err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	tracePath := filepath.Join(d.dir, s.ID+traceExt)
	if err := d.writeAtomic(tracePath, s.Data); err != nil {
		return Info{}, err
	}
	if err := d.writeAtomic(filepath.Join(d.dir, s.ID+metaExt), meta); err != nil {
		_ = os.Remove(tracePath)
		return Info{}, err
	}
	if err := d.prune(s.ID); err != nil {
		otel.Handle(fmt.Errorf("otelfr/exporter: retention: %w", err))
	}
	info.Path = tracePath
	return info, nil
}

func (d *DirStore) writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(d.dir, tmpGlob)
	if err != nil {
		return fmt.Errorf("otelfr/exporter: saving snapshot: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("otelfr/exporter: saving snapshot: %w", err)
	}
	return nil
}

// prune removes the oldest snapshots beyond the retention limits, keeping
// keep. The caller holds d.mu.
func (d *DirStore) prune(keep string) error {
	infos, err := d.list()
	if err != nil {
		return err
	}
	var errs []error
	var total int64
	count := 0
	for _, in := range infos { // newest first
		total += in.Size
		count++
		if in.ID == keep || (count <= d.maxCount && total <= d.maxBytes) {
			continue
		}
		// Remove the description first: from then on the snapshot is not
		// listed or served.
		if err := os.Remove(filepath.Join(d.dir, in.ID+metaExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(filepath.Join(d.dir, in.ID+traceExt)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		total -= in.Size
		count--
	}
	return errors.Join(errs...)
}

// AddSpans implements [Store]. The description is rewritten atomically.
func (d *DirStore) AddSpans(ctx context.Context, id string, spans []SpanRef) error {
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
	in.Spans = append(in.Spans, spans...)
	meta, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return d.writeAtomic(filepath.Join(d.dir, id+metaExt), meta)
}

// List implements [Store].
func (d *DirStore) List(ctx context.Context) ([]Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return d.list()
}

func (d *DirStore) list() ([]Info, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("otelfr/exporter: listing snapshots: %w", err)
	}
	infos := make([]Info, 0, len(entries)/2)
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), metaExt)
		if !ok || !e.Type().IsRegular() || !ValidID(id) {
			continue
		}
		in, err := d.readInfo(id)
		if err != nil {
			continue // removed meanwhile, or not one of ours
		}
		infos = append(infos, in)
	}
	slices.SortFunc(infos, func(a, b Info) int {
		if c := b.TakenAt.Compare(a.TakenAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return infos, nil
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
		return Info{}, fmt.Errorf("otelfr/exporter: snapshot %s: %w", id, err)
	}
	if in.ID != id {
		return Info{}, fmt.Errorf("otelfr/exporter: snapshot %s: description names %q", id, in.ID)
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
