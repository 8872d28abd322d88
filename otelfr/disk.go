package otelfr

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
)

// The files of a disk ring, in its directory.
const (
	lockFile     = "lock"      // flock'ed by the process writing the ring
	cleanFile    = "clean"     // written by Stop: the ring was left cleanly
	crashOutFile = "crash.txt" // runtime/debug.SetCrashOutput's file
	crashDir     = "crash"     // a ring left by a crash, until written out
	crashNewDir  = "crash.new" // a crash being set aside, renamed crashDir once whole
	segSuffix    = ".trace"    // a whole segment: a trace on its own
	partSuffix   = ".part"     // the segment being written
)

// ringBufferSize is how much of the trace the ring gathers before a write:
// the runtime hands its batches over one at a time, up to 64 KiB each and
// often much smaller at the end of a generation.
const ringBufferSize = 1 << 20

// ringBuffers is how many buffers of the trace may wait for the disk: 16
// MiB, several generations at the rates seen here. They are made as the
// disk falls behind, not up front: a ring that keeps up uses one or two.
// Past them the ring drops the generation in progress rather than wait:
// the runtime's trace reader, which hands the ring its data, must never
// block on a slow disk, or the flight recorder's snapshots (which wait for
// that reader) would hang with it.
const ringBuffers = 16

// ringCloseWait bounds how long Stop waits for the ring's last writes.
const ringCloseWait = 5 * time.Second

// ring writes the execution trace, as runtime/trace.Start streams it, into
// segment files in dir: each holds the trace header and one generation, so
// that any run of consecutive segments, with one header, is a valid trace.
// The segment being written is dir/N.part, renamed to dir/N.trace once its
// end-of-generation marker is in: a crash leaves at most the unfinished
// generation in a .part file, which a trace reader cannot use (its string
// and stack tables come last).
//
// Write, called by runtime/trace's reader goroutine only, cuts the trace
// at generation ends and gathers it into buffers, which a goroutine of
// the ring's own writes to disk; the segment list is shared with
// snapshots under mu.
type ring struct {
	dir      string
	maxAge   time.Duration
	maxBytes int64
	started  time.Time

	// The reader's side (Write).
	split     tracefmt.Splitter
	in        int64 // bytes received
	hdr       []byte
	seq       uint64 // the segment being gathered
	gathering bool   // seq has data gathered or sent
	buf       []byte // being filled; nil when the reader holds none
	eogs      []int64
	dropping  bool // the writer is behind: seq's data is dropped
	drops     int  // generations dropped so far
	made      int  // buffers made, at most ringBuffers

	work chan ringOp
	free chan []byte
	done chan struct{} // the writer has returned

	// The writer's side (write).
	cur    *os.File
	curSeq uint64
	curWin windowWriter // cur's window, scanned as it is written
	failed bool         // a write failed: the ring stops, reported once

	// beforeWrite, if set, runs before each write to disk (tests).
	beforeWrite func()

	mu      sync.Mutex
	segs    []segment // whole segments, oldest first
	total   int64     // their bytes
	ended   uint64    // segments completed (generations ended)
	changed chan struct{}
	broken  error    // the writer's failure, for snapshots to return
	readers int      // snapshots reading segments: removals wait
	doomed  []string // segments to remove once no snapshot reads
}

// ringOp is the writer's work: data of segment seq, or its end; or, with
// synced set, a mark to close once everything queued before it is done.
type ringOp struct {
	seq    uint64
	buf    []byte // returned to the free list once written
	end    bool   // seq's generation is whole: complete the segment
	synced chan struct{}
}

// segment is one whole generation on disk.
type segment struct {
	path       string
	size       int64
	start, end time.Time // start is the previous segment's end

	// The interval its trace covers, read from its events as the ring
	// wrote it; not ok for a segment the ring did not write, or one whose
	// window could not be read.
	win ringWindow
}

// ringWindow is the interval that segments of the ring cover, known
// before their bytes are read if ok.
type ringWindow struct {
	start, end time.Time
	ok         bool
}

func newRing(dir string, maxAge time.Duration, maxBytes int64) *ring {
	r := &ring{
		dir: dir, maxAge: maxAge, maxBytes: maxBytes, started: time.Now(),
		changed: make(chan struct{}),
		// Every buffer may be queued, with the end of each segment.
		work: make(chan ringOp, 2*ringBuffers),
		free: make(chan []byte, ringBuffers),
		done: make(chan struct{}),
	}
	r.split.Header = func(h [tracefmt.HeaderLen]byte) error {
		r.hdr = append([]byte(nil), h[:]...)
		return nil
	}
	r.split.EndOfGeneration = func(off int64) error {
		r.eogs = append(r.eogs, off)
		return nil
	}
	go r.write()
	return r
}

// segName names a ring's segment seq: after the ring's start, then seq,
// so that names sort in the order written and a new ring in the directory
// never reuses the name of a segment an old one may still remove.
func (r *ring) segName(seq uint64) string {
	return fmt.Sprintf("%020d-%020d", r.started.UnixNano(), seq)
}

// isSegName reports whether name, without its suffix, is a segment's.
func isSegName(name string) bool {
	a, b, ok := strings.Cut(name, "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(a, 10, 64)
	_, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil
}

// Write implements io.Writer for runtime/trace.Start. It never fails and
// never waits for the disk: a failure to write the ring is reported to
// otel.Handle once, and the ring stops there (the segments written stay
// valid), rather than stopping the tracer that the flight recorder shares;
// a generation that finds no free buffer is dropped whole.
func (r *ring) Write(p []byte) (int, error) {
	n := len(p)
	r.eogs = r.eogs[:0]
	if _, err := r.split.Write(p); err != nil {
		r.mu.Lock()
		broken := r.broken != nil
		r.mu.Unlock()
		if !broken {
			r.fail(fmt.Errorf("reading the execution trace: %w", err))
		}
		return n, nil
	}
	if r.in < tracefmt.HeaderLen {
		// The header, which the Splitter keeps for every segment.
		k := min(len(p), tracefmt.HeaderLen-int(r.in))
		p = p[k:]
		r.in += int64(k)
	}
	for _, off := range r.eogs {
		cut := int(off - r.in + 1)
		r.gather(p[:cut])
		p = p[cut:]
		r.in += int64(cut)
		r.endGeneration()
	}
	r.gather(p)
	r.in += int64(len(p))
	return n, nil
}

// gather adds p to the segment being gathered, handing full buffers to
// the writer.
func (r *ring) gather(p []byte) {
	if len(p) == 0 || r.dropping {
		return
	}
	if !r.gathering {
		r.seq++
		r.gathering = true
		if !r.take() {
			return
		}
		r.buf = append(r.buf, r.hdr...)
	}
	for len(p) > 0 {
		if r.buf == nil && !r.take() {
			return
		}
		k := min(len(p), cap(r.buf)-len(r.buf))
		r.buf = append(r.buf, p[:k]...)
		p = p[k:]
		if len(r.buf) == cap(r.buf) && !r.send(ringOp{seq: r.seq, buf: r.buf}) {
			return
		}
	}
}

// take gets a free buffer, or starts dropping the generation.
func (r *ring) take() bool {
	select {
	case b := <-r.free:
		r.buf = b[:0]
		return true
	default:
		if r.made < ringBuffers {
			r.made++
			r.buf = make([]byte, 0, ringBufferSize)
			return true
		}
		r.drop()
		return false
	}
}

// send queues op for the writer, or starts dropping the generation. A
// buffer sent is the writer's.
func (r *ring) send(op ringOp) bool {
	select {
	case r.work <- op:
		if op.buf != nil {
			r.buf = nil
		}
		return true
	default:
		r.drop()
		return false
	}
}

// drop drops the rest of the generation being gathered: the writer
// removes what it has of it when the next one comes, since it never gets
// its end.
func (r *ring) drop() {
	r.dropping = true
	if r.buf != nil {
		r.free <- r.buf[:0]
		r.buf = nil
	}
	r.drops++
	if r.drops == 1 {
		otel.Handle(fmt.Errorf("otelfr: disk ring %s: the disk is behind by %d MiB; generations are dropped until it catches up", r.dir, ringBuffers*ringBufferSize>>20))
	}
}

// endGeneration ends the segment being gathered with its generation.
func (r *ring) endGeneration() {
	if r.gathering && !r.dropping {
		if r.buf == nil || r.send(ringOp{seq: r.seq, buf: r.buf}) {
			r.send(ringOp{seq: r.seq, end: true})
		}
	}
	r.gathering, r.dropping = false, false
}

func (r *ring) fail(err error) {
	err = fmt.Errorf("otelfr: disk ring %s: %w", r.dir, err)
	otel.Handle(fmt.Errorf("%w; the ring stops here", err))
	r.mu.Lock()
	r.broken = err
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// write is the ring's writer goroutine: it writes what Write gathers to
// the segment files, until close.
func (r *ring) write() {
	defer close(r.done)
	for op := range r.work {
		if op.synced != nil {
			close(op.synced)
			continue
		}
		if !r.failed {
			if err := r.do(op); err != nil {
				r.failed = true
				r.fail(err)
			}
		}
		if op.buf != nil {
			r.free <- op.buf[:0]
		}
	}
	r.discard()
}

func (r *ring) do(op ringOp) error {
	if r.cur != nil && r.curSeq != op.seq {
		// The segment being written lost its end: its generation was
		// dropped.
		r.discard()
	}
	if op.buf != nil {
		if r.cur == nil {
			f, err := os.OpenFile(filepath.Join(r.dir, r.segName(op.seq)+partSuffix), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			r.cur, r.curSeq = f, op.seq
			r.curWin.reset()
		}
		if r.beforeWrite != nil {
			r.beforeWrite()
		}
		// Scanned here, a buffer at a time, so that a snapshot of the
		// ring need not read its segments' events to know their window.
		_, _ = r.curWin.Write(op.buf) // never fails: its error waits for window
		_, err := r.cur.Write(op.buf)
		r.curWin.settle() // before the buffer goes back to the reader
		if err != nil {
			return err
		}
	}
	if op.end && r.cur != nil {
		return r.endSegment()
	}
	return nil
}

// discard removes the segment being written, cut short.
func (r *ring) discard() {
	if r.cur == nil {
		return
	}
	name := r.cur.Name()
	_ = r.cur.Close()
	r.cur = nil
	_ = os.Remove(name)
}

// endSegment completes the current segment at the end of its generation,
// then drops the oldest segments beyond the ring's bounds.
func (r *ring) endSegment() error {
	st, err := r.cur.Stat()
	if cerr := r.cur.Close(); err == nil {
		err = cerr
	}
	part := r.cur.Name()
	r.cur = nil
	var win ringWindow
	var winErr error
	win.start, win.end, winErr = r.curWin.window()
	win.ok = winErr == nil
	if err != nil {
		return err
	}
	path := strings.TrimSuffix(part, partSuffix) + segSuffix
	if err := os.Rename(part, path); err != nil {
		return err
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	start := r.started
	if len(r.segs) > 0 {
		start = r.segs[len(r.segs)-1].end
	}
	r.segs = append(r.segs, segment{path: path, size: st.Size(), start: start, end: now, win: win})
	r.total += st.Size()
	r.ended++
	close(r.changed)
	r.changed = make(chan struct{})
	// Whole segments only, the newest always kept.
	for len(r.segs) > 1 && (r.total > r.maxBytes || now.Sub(r.segs[0].end) > r.maxAge) {
		r.total -= r.segs[0].size
		r.doomed = append(r.doomed, r.segs[0].path)
		r.segs = r.segs[1:]
	}
	return r.removeDoomed()
}

// removeDoomed removes the segments dropped from the ring, unless a
// snapshot is reading. The caller holds mu.
func (r *ring) removeDoomed() error {
	if r.readers > 0 {
		return nil
	}
	var errs []error
	for _, p := range r.doomed {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	r.doomed = r.doomed[:0]
	return errors.Join(errs...)
}

// close ends the ring after runtime/trace.Stop, which ends the last
// generation: it waits, at most ringCloseWait, for the writer to write
// what is queued; a .part left (a generation cut short) is removed.
func (r *ring) close() {
	close(r.work)
	select {
	case <-r.done:
	case <-time.After(ringCloseWait):
		otel.Handle(fmt.Errorf("otelfr: disk ring %s: the disk did not take the ring's last %v of writes; left to finish", r.dir, ringCloseWait))
	}
	if r.drops > 1 {
		otel.Handle(fmt.Errorf("otelfr: disk ring %s: %d generations dropped in all, the disk being behind", r.dir, r.drops))
	}
}

// pending returns the number of generations ended, and a channel closed
// when the next one ends or the ring fails, with the ring's failure.
func (r *ring) pending() (uint64, <-chan struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended, r.changed, r.broken
}

// sync waits, at most d, until the writer has done all that Write queued
// before it was called: a generation the runtime has ended is then on disk
// (or dropped). It returns the ring's failure, if any.
func (r *ring) sync(d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	ch := make(chan struct{})
	select {
	case r.work <- ringOp{synced: ch}:
	case <-t.C:
		return fmt.Errorf("otelfr: disk ring %s: the disk is %v behind", r.dir, d)
	}
	_, changed, err := r.pending()
	for err == nil {
		select {
		case <-ch:
			_, _, err = r.pending()
			return err
		case <-changed:
			_, changed, err = r.pending()
		case <-t.C:
			return fmt.Errorf("otelfr: disk ring %s: the trace's generation did not reach the disk within %v", r.dir, d)
		}
	}
	return err
}

// open opens the newest segments that reach minAge back from now, at most
// maxBytes of them (always the newest one), and returns the window of the
// trace they make. The caller reads them, then calls release. No segment
// is removed meanwhile.
func (r *ring) open(now time.Time, minAge time.Duration, maxBytes int64) ([]*os.File, ringWindow, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	segs := pick(r.segs, now, minAge, maxBytes)
	if len(segs) == 0 {
		return nil, ringWindow{}, fmt.Errorf("otelfr: disk ring %s: no whole generation yet", r.dir)
	}
	files := make([]*os.File, 0, len(segs))
	for _, s := range segs {
		f, err := os.Open(s.path)
		if err != nil {
			closeAll(files)
			return nil, ringWindow{}, err
		}
		files = append(files, f)
	}
	r.readers++
	return files, segmentsWindow(segs), nil
}

// segmentsWindow returns the window of the trace that segs make, which is
// known only if every segment's is: from the earliest start to the latest
// end, as the scan of the whole trace finds it.
func segmentsWindow(segs []segment) ringWindow {
	var w ringWindow
	for i, s := range segs {
		if !s.win.ok {
			return ringWindow{}
		}
		if i == 0 || s.win.start.Before(w.start) {
			w.start = s.win.start
		}
		if i == 0 || s.win.end.After(w.end) {
			w.end = s.win.end
		}
	}
	w.ok = len(segs) > 0
	return w
}

func (r *ring) release(files []*os.File) {
	closeAll(files)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.readers--
	if err := r.removeDoomed(); err != nil {
		otel.Handle(fmt.Errorf("otelfr: disk ring %s: %w", r.dir, err))
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// pick returns the newest of segs (oldest first) that reach minAge back
// from now, within maxBytes, the newest always.
func pick(segs []segment, now time.Time, minAge time.Duration, maxBytes int64) []segment {
	if len(segs) == 0 {
		return nil
	}
	i := len(segs) - 1
	size := segs[i].size
	for i > 0 && now.Sub(segs[i].start) < minAge && size+segs[i-1].size <= maxBytes {
		i--
		size += segs[i].size
	}
	return segs[i:]
}

// segmentsSize returns the size of the trace that copySegments makes of
// files, or 0 if a file's size is unknown.
func segmentsSize(files []*os.File) int64 {
	var n int64
	for i, f := range files {
		st, err := f.Stat()
		if err != nil {
			return 0
		}
		n += st.Size()
		if i > 0 {
			n -= tracefmt.HeaderLen
		}
	}
	return n
}

// copySegments writes files, segments of one trace, to st as one trace:
// the header of the first, then each one's generation. buf is the read
// buffer of an unbuffered stream.
func copySegments(st *snapshotStream, files []*os.File, buf []byte) error {
	for i, f := range files {
		if i > 0 {
			if _, err := f.Seek(tracefmt.HeaderLen, io.SeekStart); err != nil {
				return err
			}
		}
		if err := st.readFrom(f, buf); err != nil {
			return err
		}
	}
	return nil
}

// leftSegments lists the whole segments in dirs, oldest first by name
// whichever directory holds them, with the end of each as its modification
// time (the rename that completed it).
func leftSegments(dirs ...string) ([]segment, error) {
	var segs []segment
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			name := e.Name()
			if !strings.HasSuffix(name, segSuffix) {
				continue
			}
			if !isSegName(strings.TrimSuffix(name, segSuffix)) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, err
			}
			segs = append(segs, segment{path: filepath.Join(dir, name), size: info.Size(), end: info.ModTime()})
		}
	}
	slices.SortFunc(segs, func(a, b segment) int { return strings.Compare(filepath.Base(a.path), filepath.Base(b.path)) })
	for i := range segs {
		if i > 0 {
			segs[i].start = segs[i-1].end
		} else {
			segs[i].start = segs[i].end.Add(-time.Second) // about one generation
		}
	}
	return segs, nil
}

// isRingFile reports whether name is one of the files a ring writes in
// its directory, which a new ring clears.
func isRingFile(name string) bool {
	return strings.HasSuffix(name, segSuffix) || strings.HasSuffix(name, partSuffix) || name == crashOutFile || name == cleanFile
}

// wholeSegment reports whether the segment file at path is a whole
// generation: the trace header, batches, and the end-of-generation marker
// as its last byte. A rename can reach the disk before the data it names
// when the machine, not the process, dies: the segment is then short.
func wholeSegment(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var (
		sp   tracefmt.Splitter
		last int64 = -1
	)
	sp.EndOfGeneration = func(off int64) error {
		last = off
		return nil
	}
	n, err := io.Copy(&sp, f)
	return err == nil && sp.Close() == nil && last >= 0 && last == n-1
}
