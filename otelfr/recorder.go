package otelfr

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/otelfr/otel-flightrecorder/internal/yield"
)

// active is set while a Recorder owns or has adopted a flight recorder. The
// runtime allows one flight recorder per process, and an adopted one must
// not be driven by two Recorders either.
var active atomic.Bool

// Recorder owns the process's flight recorder and takes snapshots of it.
// It is safe for concurrent use.
type Recorder struct {
	fr        *trace.FlightRecorder
	owned     bool // Stop stops fr only if Start started it
	startedAt time.Time
	minAge    time.Duration
	maxBytes  uint64
	disk      *disk // nil for the memory ring

	mu       sync.Mutex
	lim      limiter
	inflight *call
	stopped  bool
	running  sync.WaitGroup // snapshots being written
	staging  []byte         // WriteSnapshot's buffer, used by the one in flight

	stopOnce sync.Once
	stopErr  error
}

// call is one snapshot in progress, shared by every caller that asks for a
// snapshot while it runs.
type call struct {
	done     chan struct{}
	snap     *Snapshot
	err      error
	streamed bool // written to a caller's io.Writer: its Data is nil
}

// Start starts a flight recorder, or adopts the one given with
// [WithFlightRecorder], and returns the Recorder that owns it.
//
// At most one Recorder may be active per process. Start returns an error
// matching [ErrAlreadyActive] if one is, or if the runtime refuses a second
// flight recorder because one was started outside this package. Starting a
// flight recorder while [runtime/trace.Start] is active is allowed, but
// not in disk mode ([WithDisk]), which needs runtime/trace.Start itself.
func Start(opts ...Option) (*Recorder, error) {
	cfg := newConfig(opts)
	if !active.CompareAndSwap(false, true) {
		return nil, ErrAlreadyActive
	}
	r := &Recorder{
		startedAt: time.Now(),
		lim: limiter{
			minInterval: cfg.minInterval,
			budget:      cfg.byteBudget,
			period:      cfg.budgetPeriod,
		},
	}
	if cfg.adopt != nil && cfg.diskDir != "" {
		otel.Handle(fmt.Errorf("otelfr: disk mode (%s) ignored: an adopted flight recorder keeps its window in memory", cfg.diskDir))
	}
	if cfg.adopt != nil {
		if !cfg.adopt.Enabled() {
			active.Store(false)
			return nil, fmt.Errorf("otelfr: adopting a flight recorder: %w", ErrStopped)
		}
		r.fr = cfg.adopt
		return r, nil
	}
	frCfg := trace.FlightRecorderConfig{
		MinAge:   cfg.minAge,
		MaxBytes: cfg.maxBytes,
	}
	var d *disk
	if cfg.diskDir != "" {
		var err error
		d, err = openDisk(cfg)
		switch {
		case err == nil:
		case cfg.diskFromEnv:
			// A bad environment value is reported, and the default kept.
			otel.Handle(fmt.Errorf("otelfr: %s=%q: %w; using the memory ring", EnvDiskDir, cfg.diskDir, err))
		default:
			active.Store(false)
			return nil, err
		}
	}
	if r.disk = d; d != nil {
		// In disk mode the flight recorder is there to end generations
		// on demand; it keeps one, the least it can.
		frCfg = trace.FlightRecorderConfig{MinAge: time.Nanosecond, MaxBytes: 1}
	}
	r.fr = trace.NewFlightRecorder(frCfg)
	if err := r.fr.Start(); err != nil {
		if r.disk != nil {
			r.disk.close()
		}
		active.Store(false)
		// The runtime's only reasons to refuse are an enabled flight
		// recorder; its errors are unexported strings.
		return nil, fmt.Errorf("%w: %v", ErrAlreadyActive, err)
	}
	r.owned = true
	r.minAge, r.maxBytes = cfg.minAge, cfg.maxBytes
	return r, nil
}

// Snapshot writes the flight recorder's current window out as a Snapshot
// labelled with reason, its trace in Data.
//
// Snapshots are single-flight: a call made while another snapshot is being
// written waits for it and returns the same Snapshot (with the reason of
// the call that started it) and error. A call that finds a
// [Recorder.WriteSnapshot] in flight, whose trace went elsewhere, waits
// for it and then takes a snapshot of its own, subject to the rate
// limits. ctx bounds only that wait and the check before starting; the
// write itself, typically a few milliseconds, is not interruptible.
//
// A call that would start a new snapshot too soon after the previous one,
// or beyond the byte budget, returns an error matching [ErrRateLimited]
// without touching the flight recorder. After [Recorder.Stop], or when the
// flight recorder has been stopped by someone else, it returns [ErrStopped].
func (r *Recorder) Snapshot(ctx context.Context, reason string) (*Snapshot, error) {
	return r.take(ctx, reason, nil)
}

// WriteSnapshot writes the flight recorder's current window to w, labelled
// with reason, and returns the Snapshot that describes it, with Data nil:
// its size and window are read from the trace on its way to w, in one
// pass, holding at most 1 MiB of it, which goes to w in writes of 1 MiB.
// It is not hashed on the way (SHA256 is empty): the caller hashes what it
// stored, as the span processor does (snapstore.Checksummer). It is how
// the span processor streams a snapshot into a store (snapstore.Creator).
//
// WriteSnapshot is not shared: a call made while another snapshot is
// being written waits for it, then takes its own, subject to the rate
// limits as [Recorder.Snapshot] is. An error from w stops the write and
// is returned wrapped; w then holds part of a trace, for the caller to
// discard.
func (r *Recorder) WriteSnapshot(ctx context.Context, w io.Writer, reason string) (*Snapshot, error) {
	if w == nil {
		return nil, errors.New("otelfr: WriteSnapshot: nil io.Writer")
	}
	return r.take(ctx, reason, w)
}

// take takes a snapshot, into w or, if w is nil, into the Snapshot's Data.
func (r *Recorder) take(ctx context.Context, reason string, w io.Writer) (*Snapshot, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return nil, ErrStopped
		}
		if c := r.inflight; c != nil {
			r.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if w == nil && !c.streamed {
				return c.snap, c.err
			}
			continue // its trace went elsewhere: take one of our own
		}
		now := time.Now()
		if err := r.lim.allow(now); err != nil {
			r.mu.Unlock()
			return nil, err
		}
		c := &call{done: make(chan struct{}), streamed: w != nil}
		r.inflight = c
		r.running.Add(1)
		hint := r.lim.lastSize
		r.mu.Unlock()

		c.snap, c.err = r.write(now, reason, hint, w)

		r.mu.Lock()
		if c.err == nil {
			r.lim.charge(now, c.snap.Size())
		}
		r.inflight = nil
		r.mu.Unlock()
		close(c.done)
		r.running.Done()
		return c.snap, c.err
	}
}

// write copies the flight recorder's window, or in disk mode the ring's,
// to w, or into a new Snapshot's Data if w is nil, and returns the
// Snapshot. sizeHint is the previous snapshot's size, used to allocate Data
// once. The caller is the one snapshot in flight.
func (r *Recorder) write(now time.Time, reason string, sizeHint int64, w io.Writer) (*Snapshot, error) {
	if !r.fr.Enabled() {
		return nil, ErrStopped
	}
	src := func(st *snapshotStream) error {
		_, err := r.fr.WriteTo(st)
		return err
	}
	if r.disk != nil {
		files, win, err := r.disk.snapshotFiles(r.fr, r.minAge, int64(r.maxBytes))
		if err != nil {
			if !r.fr.Enabled() {
				return nil, ErrStopped
			}
			return nil, err
		}
		defer r.disk.ring.release(files)
		src = func(st *snapshotStream) error {
			if win.ok {
				st.win.known(win.start, win.end) // the ring read it as it wrote them
			}
			return copySegments(st, files, r.disk.readBuf)
		}
		if w == nil {
			sizeHint = segmentsSize(files) // not the memory ring's last size
		}
	}
	if w == nil && sizeHint == 0 {
		// The first snapshot: the window is about MaxBytes, a little more
		// when a trace generation straddles its edge.
		sizeHint = int64(r.maxBytes)
	}
	if w != nil && r.staging == nil {
		r.staging = make([]byte, 0, streamBufferSize)
	}
	s, err := stream(now, reason, sizeHint, w, r.staging, src)
	if err != nil {
		if !r.fr.Enabled() {
			return nil, ErrStopped
		}
		return nil, fmt.Errorf("otelfr: writing the flight recorder: %w", err)
	}
	s.MinAge, s.MaxBytes = r.minAge, r.maxBytes
	if s.Start.IsZero() {
		s.Start, s.End = r.startedAt, now.Add(s.WriteDuration)
		if r.minAge > 0 && now.Add(-r.minAge).After(s.Start) {
			s.Start = now.Add(-r.minAge)
		}
	}
	return s, nil
}

// stream makes a Snapshot of the trace that src writes, in one pass: to
// w through the staging buffer, unhashed (the store's caller hashes what
// it stored: snapstore.Checksummer), or if w is nil into Data, sized for
// sizeHint bytes, and hashed. If the trace's window cannot be read, the
// error goes to otel.Handle and Start and End are left zero for the caller
// to estimate.
func stream(now time.Time, reason string, sizeHint int64, w io.Writer, staging []byte, src func(*snapshotStream) error) (*Snapshot, error) {
	st := snapshotStream{dst: w}
	var buf *snapshotBuffer
	if w == nil {
		st.hash = sha256.New()
		buf = &snapshotBuffer{b: make([]byte, 0, sizeHint+sizeHint/8)}
		st.dst = buf
	} else {
		st.buf = staging[:0]
		st.win.lend = true // settled at each flush
	}
	err := src(&st)
	if cerr := st.close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	done := time.Now()
	s := &Snapshot{
		ID:            rand.Text(),
		Reason:        reason,
		TakenAt:       now,
		WriteDuration: done.Sub(now),
		size:          st.n,
	}
	if buf != nil {
		s.Data = buf.b
		s.SHA256 = hex.EncodeToString(st.hash.Sum(nil))
	}
	start, end, err := st.win.window()
	if err != nil {
		otel.Handle(fmt.Errorf("otelfr: reading the window of snapshot %s: %w", s.ID, err))
		return s, nil
	}
	s.Start, s.End = start, end
	return s, nil
}

// snapshotBuffer collects a snapshot. Unlike bytes.Buffer it never copies
// more than copyChunk bytes in one go when it grows: a memmove cannot be
// preempted, and one of many megabytes holds up every stop-the-world pause
// (each GC cycle has two) and so every goroutine of the process, for as long
// as it takes. Allocating is safe: the runtime clears a large buffer in
// preemptible chunks.
type snapshotBuffer struct {
	b          []byte
	sinceYield int
}

const (
	copyChunk  = 256 << 10
	yieldEvery = 1 << 20
)

func (w *snapshotBuffer) Write(p []byte) (int, error) {
	written := len(p)
	if len(w.b)+len(p) > cap(w.b) {
		nb := make([]byte, len(w.b), max(2*cap(w.b), len(w.b)+len(p), 1<<20))
		for off := 0; off < len(w.b); off += copyChunk {
			copy(nb[off:], w.b[off:min(off+copyChunk, len(w.b))])
		}
		w.b = nb
	}
	for len(p) > 0 { // WriteTo hands over batches of at most 64 KiB; be safe anyway
		n := min(len(p), copyChunk)
		w.b = append(w.b, p[:n]...)
		p = p[n:]
		w.sinceYield += n
		if w.sinceYield >= yieldEvery {
			// Let the goroutines and threads waiting behind this one
			// run: the snapshot is background work, requests are not.
			yield.Background()
			w.sinceYield = 0
		}
	}
	return written, nil
}

// Stop stops taking snapshots, waits for a snapshot being written to finish,
// and stops the flight recorder if Start started it (an adopted one is left
// running). It releases the process's single flight-recorder slot, so that
// Start may be called again.
//
// Stop is idempotent: calls after the first return the first call's result.
// If ctx ends before the in-flight snapshot finishes, Stop returns ctx's
// error at once, and the flight recorder (and the disk ring) stop when
// that snapshot is done: until then the process's slot stays taken, and
// Start returns ErrAlreadyActive.
func (r *Recorder) Stop(ctx context.Context) error {
	r.stopOnce.Do(func() {
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()

		done := make(chan struct{})
		go func() {
			r.running.Wait()
			close(done)
		}()
		teardown := func() {
			if r.owned {
				r.fr.Stop()
			}
			if r.disk != nil {
				r.disk.close()
			}
			active.Store(false)
		}
		select {
		case <-done:
			teardown()
		case <-ctx.Done():
			// A snapshot is still reading the flight recorder or the
			// ring: both go once it is done, not under it.
			r.stopErr = ctx.Err()
			go func() {
				<-done
				teardown()
			}()
		}
	})
	return r.stopErr
}
