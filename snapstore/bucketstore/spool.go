package bucketstore

import (
	"context"
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

	"github.com/otelfr/otel-flightrecorder/snapstore"
)

const (
	spoolTmpGlob  = ".tmp-*"
	spoolDoneGlob = ".done-*"

	// keepUploaded is how many uploaded traces the spool keeps before it
	// removes them, oldest first. Writing a snapshot right after removing
	// a file as large took 27-42 ms instead of 4 on the VMs measured here
	// (bench/cmd/spoolwrite): the kernel hands out the pages it just freed
	// slowly. A few files later, it does not.
	keepUploaded = 4
)

// spool is the local queue of snapshots not yet uploaded: per snapshot,
// ID.trace and ID.json (its snapstore.Info) in one directory, written under
// temporary names and renamed, the trace first, so that a crash leaves at
// most a temporary file or a trace without its metadata, both removed when
// the spool is next opened. Its index is in memory, under mu.
type spool struct {
	dir      string
	maxBytes int64
	lock     *os.File // held while the spool is open; nil where locks are missing

	mu      sync.Mutex
	entries map[string]*entry
	total   int64 // bytes of the spooled traces

	// counters, under mu
	dropped, uploaded, uploadErrors int64

	// done are the uploaded traces not yet removed, oldest first, under
	// names that no snapshot has (see keepUploaded); doneBytes their size.
	done      []doneFile
	doneBytes int64
}

// doneFile is an uploaded trace left in the spool for a while.
type doneFile struct {
	path string
	size int64
}

// entry is a spooled snapshot.
type entry struct {
	meta snapstore.Info
	key  string // its metadata key in the bucket
	size int64
	// gen counts the changes to meta, so that an upload that read an older
	// one is followed by another.
	gen uint64
	// traceUp is set once this process has put the trace in the bucket:
	// then only the metadata is left to write.
	traceUp bool
	// cancel cancels the entry's upload; nil when none is in flight.
	cancel context.CancelFunc
}

// job is what the uploader reads of an entry, under the spool's lock.
type job struct {
	e       *entry
	meta    snapstore.Info
	gen     uint64
	traceUp bool
	path    string // of the trace file
}

// openSpool opens the spool in dir, creating dir if needed, locks it
// (ErrSpoolBusy if another owner holds it), and indexes what a previous
// process left there. It removes temporary files and orphans, and drops
// the oldest snapshots if they exceed maxBytes.
func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("otelfr/bucketstore: creating the spool: %w", err)
	}
	// The lock first: what follows removes files that another owner may
	// be writing.
	lock, err := lockSpool(dir)
	if err != nil {
		return nil, err
	}
	sp, err := indexSpool(dir, maxBytes)
	if err != nil {
		if lock != nil {
			_ = lock.Close()
		}
		return nil, err
	}
	sp.lock = lock
	return sp, nil
}

// indexSpool indexes the spool in dir, which this process has locked.
func indexSpool(dir string, maxBytes int64) (*spool, error) {
	stale, _ := filepath.Glob(filepath.Join(dir, spoolTmpGlob))
	done, _ := filepath.Glob(filepath.Join(dir, spoolDoneGlob))
	for _, p := range append(stale, done...) {
		_ = os.Remove(p)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("otelfr/bucketstore: reading the spool: %w", err)
	}
	sp := &spool{dir: dir, maxBytes: maxBytes, entries: map[string]*entry{}}
	traces := map[string]int64{}
	var metas []string
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		if id, ok := strings.CutSuffix(de.Name(), traceExt); ok && snapstore.ValidID(id) {
			if fi, err := de.Info(); err == nil {
				traces[id] = fi.Size()
			}
		} else if id, ok := strings.CutSuffix(de.Name(), metaExt); ok && snapstore.ValidID(id) {
			metas = append(metas, id)
		}
	}
	for _, id := range metas {
		size, ok := traces[id]
		m, err := sp.readMeta(id)
		if !ok || err != nil {
			// A metadata file without its trace, or unreadable: not a
			// snapshot this spool can upload.
			_ = os.Remove(sp.path(id, metaExt))
			continue
		}
		delete(traces, id)
		m.Size = size
		sp.entries[id] = &entry{meta: m, key: metaKey(id, m.TakenAt), size: size}
		sp.total += size
	}
	for id := range traces { // traces without their metadata
		_ = os.Remove(sp.path(id, traceExt))
	}
	sp.mu.Lock()
	sp.makeRoom(0)
	sp.mu.Unlock()
	return sp, nil
}

// close removes the uploaded traces kept a while and releases the spool's
// directory to the next owner.
func (sp *spool) close() {
	sp.mu.Lock()
	for len(sp.done) > 0 {
		sp.forgetOldestDone()
	}
	sp.mu.Unlock()
	if sp.lock != nil {
		_ = sp.lock.Close()
	}
}

func (sp *spool) path(id, ext string) string { return filepath.Join(sp.dir, id+ext) }

func (sp *spool) readMeta(id string) (snapstore.Info, error) {
	b, err := os.ReadFile(sp.path(id, metaExt))
	if err != nil {
		return snapstore.Info{}, err
	}
	var m snapstore.Info
	if err := json.Unmarshal(b, &m); err != nil {
		return snapstore.Info{}, err
	}
	if m.ID != id {
		return snapstore.Info{}, fmt.Errorf("%w: spooled %s names %q", errBadMeta, id, m.ID)
	}
	return m, nil
}

// put spools a snapshot, dropping the oldest ones first to keep within
// maxBytes. A snapshot larger than maxBytes is spooled alone.
func (sp *spool) put(m snapstore.Info, data []byte) error {
	meta, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if _, ok := sp.entries[m.ID]; ok {
		return ErrExists
	}
	sp.makeRoom(int64(len(data)))
	tp := sp.path(m.ID, traceExt)
	if err := sp.writeAtomic(tp, data); err != nil {
		return err
	}
	if err := sp.writeAtomic(sp.path(m.ID, metaExt), meta); err != nil {
		_ = os.Remove(tp)
		return err
	}
	sp.entries[m.ID] = &entry{meta: m, key: metaKey(m.ID, m.TakenAt), size: int64(len(data))}
	sp.total += int64(len(data))
	return nil
}

// commit spools a snapshot whose trace was written to the file tmp in the
// spool's directory, as put does.
func (sp *spool) commit(m snapstore.Info, tmp string) error {
	meta, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if _, ok := sp.entries[m.ID]; ok {
		return ErrExists
	}
	sp.makeRoom(m.Size)
	tp := sp.path(m.ID, traceExt)
	if err := os.Rename(tmp, tp); err != nil {
		return fmt.Errorf("otelfr/bucketstore: spooling: %w", err)
	}
	if err := sp.writeAtomic(sp.path(m.ID, metaExt), meta); err != nil {
		_ = os.Remove(tp)
		return err
	}
	sp.entries[m.ID] = &entry{meta: m, key: metaKey(m.ID, m.TakenAt), size: m.Size}
	sp.total += m.Size
	return nil
}

// makeRoom drops the oldest snapshots until size more bytes fit, or none
// is left. A snapshot being uploaded is dropped too: its upload is
// cancelled. The caller holds mu.
func (sp *spool) makeRoom(size int64) {
	for len(sp.done) > 0 && sp.total+sp.doneBytes+size > sp.maxBytes {
		sp.forgetOldestDone()
	}
	for len(sp.entries) > 0 && sp.total+size > sp.maxBytes {
		sp.remove(sp.oldest())
		sp.dropped++
	}
}

// oldest returns the oldest entry: the one with the greatest metadata
// key, as keys sort newest first. The caller holds mu.
func (sp *spool) oldest() *entry {
	var o *entry
	for _, e := range sp.entries {
		if o == nil || e.key > o.key {
			o = e
		}
	}
	return o
}

// remove removes e from the spool, its metadata first, and cancels its
// upload. The caller holds mu.
func (sp *spool) remove(e *entry) {
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
	_ = os.Remove(sp.path(e.meta.ID, metaExt))
	_ = os.Remove(sp.path(e.meta.ID, traceExt))
	delete(sp.entries, e.meta.ID)
	sp.total -= e.size
}

// retire removes the uploaded e from the spool, keeping its trace file a
// while under another name (see keepUploaded). The caller holds mu.
func (sp *spool) retire(e *entry) {
	done := filepath.Join(sp.dir, ".done-"+e.meta.ID)
	if os.Rename(sp.path(e.meta.ID, traceExt), done) == nil {
		sp.done = append(sp.done, doneFile{done, e.size})
		sp.doneBytes += e.size
	}
	sp.remove(e) // the trace is gone already: only its metadata is left
	for len(sp.done) > keepUploaded {
		sp.forgetOldestDone()
	}
}

// forgetOldestDone removes the oldest uploaded trace. The caller holds mu.
func (sp *spool) forgetOldestDone() {
	d := sp.done[0]
	_ = os.Remove(d.path)
	sp.done = slices.Delete(sp.done, 0, 1)
	sp.doneBytes -= d.size
}

func (sp *spool) writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(sp.dir, spoolTmpGlob)
	if err != nil {
		return fmt.Errorf("otelfr/bucketstore: spooling: %w", err)
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
		return fmt.Errorf("otelfr/bucketstore: spooling: %w", err)
	}
	return nil
}

// next returns the oldest entry as a job, its upload's context derived
// from ctx, or false if the spool is empty.
func (sp *spool) next(ctx context.Context) (job, context.Context, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.oldest()
	if e == nil {
		return job{}, nil, false
	}
	ctx, e.cancel = context.WithCancel(ctx)
	return job{e: e, meta: clone(e.meta), gen: e.gen, traceUp: e.traceUp, path: sp.path(e.meta.ID, traceExt)}, ctx, true
}

// outcome is what became of an upload.
type outcome int

const (
	uploaded outcome = iota // the snapshot is in the bucket and left the spool
	again                   // uploaded, but its spans changed meanwhile
	gone                    // dropped while it was uploading
	failed                  // to be retried
)

// settle records the result of j's upload: traceUp tells whether the
// trace is in the bucket, err whether the whole upload failed.
func (sp *spool) settle(j job, traceUp bool, err error) outcome {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := j.e
	if sp.entries[e.meta.ID] != e {
		return gone
	}
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
	e.traceUp = e.traceUp || traceUp
	switch {
	case errors.Is(err, errConflict):
		sp.remove(e)
		sp.dropped++
		sp.uploadErrors++
		return gone
	case err != nil:
		sp.uploadErrors++
		return failed
	case e.gen != j.gen:
		return again
	}
	sp.retire(e)
	sp.uploaded++
	return uploaded
}

// abandon leaves j's entry in the spool, its upload stopped by Shutdown.
func (sp *spool) abandon(j job, traceUp bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if e := j.e; sp.entries[e.meta.ID] == e && e.cancel != nil {
		e.cancel()
		e.cancel = nil
		e.traceUp = e.traceUp || traceUp
	}
}

// get returns the metadata of spooled snapshot id.
func (sp *spool) get(id string) (snapstore.Info, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e, ok := sp.entries[id]
	if !ok {
		return snapstore.Info{}, false
	}
	m := clone(e.meta)
	m.Pending = true
	return m, true
}

// open opens spooled snapshot id's trace. It returns false if the
// snapshot is not spooled, or left the spool meanwhile.
func (sp *spool) open(id string) (*os.File, snapstore.Info, bool, error) {
	m, ok := sp.get(id)
	if !ok {
		return nil, snapstore.Info{}, false, nil
	}
	f, err := os.Open(sp.path(id, traceExt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, snapstore.Info{}, false, nil // uploaded or dropped since
	}
	if err != nil {
		return nil, snapstore.Info{}, true, fmt.Errorf("otelfr/bucketstore: opening spooled %s: %w", id, err)
	}
	return f, m, true, nil
}

// addSpans appends spans to spooled snapshot id, reporting false if it is
// not spooled.
func (sp *spool) addSpans(id string, spans []snapstore.SpanRef) (bool, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e, ok := sp.entries[id]
	if !ok {
		return false, nil
	}
	if len(spans) == 0 {
		return true, nil
	}
	m := clone(e.meta)
	m.Spans = append(m.Spans, spans...)
	b, err := json.Marshal(m)
	if err == nil {
		err = sp.writeAtomic(sp.path(id, metaExt), b)
	}
	if err != nil {
		return true, fmt.Errorf("otelfr/bucketstore: adding spans to %s: %w", id, err)
	}
	e.meta = m
	e.gen++
	return true, nil
}

// setSHA256 records the SHA-256 of a spooled snapshot, as addSpans adds
// spans. It reports whether the spool holds the snapshot.
func (sp *spool) setSHA256(id, sum string) (bool, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e, ok := sp.entries[id]
	if !ok {
		return false, nil
	}
	switch e.meta.SHA256 {
	case sum:
		return true, nil
	case "":
	default:
		return true, fmt.Errorf("otelfr/bucketstore: %s: %w", id, snapstore.ErrChecksumMismatch)
	}
	m := clone(e.meta)
	m.SHA256 = sum
	b, err := json.Marshal(m)
	if err == nil {
		err = sp.writeAtomic(sp.path(id, metaExt), b)
	}
	if err != nil {
		return true, fmt.Errorf("otelfr/bucketstore: recording the SHA-256 of %s: %w", id, err)
	}
	e.meta = m
	e.gen++
	return true, nil
}

// list returns the spooled snapshots' metadata and keys, newest first.
func (sp *spool) list() []keyed {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	out := make([]keyed, 0, len(sp.entries))
	for _, e := range sp.entries {
		m := clone(e.meta)
		m.Pending = true
		out = append(out, keyed{key: e.key, meta: m})
	}
	slices.SortFunc(out, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	return out
}

// keyed is a snapshot's metadata with its metadata key.
type keyed struct {
	key  string
	meta snapstore.Info
}

// stats returns the counters and what the spool holds.
func (sp *spool) stats() Stats {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return Stats{
		Spooled: len(sp.entries), SpooledBytes: sp.total,
		Uploaded: sp.uploaded, Dropped: sp.dropped, UploadErrors: sp.uploadErrors,
	}
}

// copyTrace streams the trace file at path to w.
func copyTrace(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
