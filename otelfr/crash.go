package otelfr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
)

// ReasonCrash is the reason of the snapshot that [Recorder.WriteCrashSnapshot]
// makes of a crashed process's ring.
const ReasonCrash = "crash"

// MaxCrashOutput bounds [Snapshot.CrashOutput]: a panic's message and the
// stack of the goroutine that panicked come first, and fit well within it.
const MaxCrashOutput = 64 << 10

// WriteCrashSnapshot writes to w the snapshot of the ring that Start found
// in the disk directory ([WithDisk]) left by a process that did not stop
// cleanly: killed, out of memory, panicking or dying on a fatal error. Its
// reason is [ReasonCrash]; its window is the ring's newest whole
// generations, reaching MinAge back from the last one within MaxBytes, as
// a snapshot's would; [Snapshot.CrashOutput] holds what the runtime wrote
// about the crash, if anything. The generation that was being written at
// the crash is not in it: its string and stack tables, which come last,
// never reached the disk. That is up to about a second of the trace, the
// runtime's default generation period.
//
// The crash's ring stays until [Recorder.RemoveCrash] removes it, which
// the caller does once the snapshot is safe, stored: until then each call
// writes it again, and a process that never gets that far (its store
// failed, it crashed too) leaves it for the next start. When there is no
// crash, or the Recorder is not in disk mode, it returns an error matching
// [ErrNoCrash]. A crash that left no whole generation (the process died
// within its first second, or its ring failed early) is dropped with an
// error that quotes the start of its crash output. Segments that are not
// whole (the machine died before they reached the disk) are left out,
// with an error to otel.Handle. It is not rate limited. After
// [Recorder.Stop] it returns [ErrStopped].
func (r *Recorder) WriteCrashSnapshot(ctx context.Context, w io.Writer) (*Snapshot, error) {
	if w == nil {
		return nil, errors.New("otelfr: WriteCrashSnapshot: nil io.Writer")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil, ErrStopped
	}
	r.running.Add(1)
	r.mu.Unlock()
	defer r.running.Done()
	if r.disk == nil {
		return nil, ErrNoCrash
	}
	s, err := r.disk.writeCrash(w, r.minAge, int64(r.maxBytes))
	if err != nil {
		return nil, err
	}
	s.MinAge, s.MaxBytes = r.minAge, r.maxBytes
	return s, nil
}

// HasCrash reports whether [Recorder.WriteCrashSnapshot] has a crash to
// write, so that a caller can tell before preparing where to write it.
func (r *Recorder) HasCrash() bool {
	r.mu.Lock()
	stopped := r.stopped
	r.mu.Unlock()
	if r.disk == nil || stopped {
		return false
	}
	r.disk.crashMu.Lock()
	defer r.disk.crashMu.Unlock()
	return r.disk.crash
}

// RemoveCrash removes the crash's ring that [Recorder.WriteCrashSnapshot]
// writes, once its snapshot is stored; from then on WriteCrashSnapshot
// returns [ErrNoCrash]. It is a no-op when there is none. After
// [Recorder.Stop] it returns [ErrStopped] and removes nothing: the
// directory may be another Recorder's by then.
func (r *Recorder) RemoveCrash() error {
	if r.disk == nil {
		return nil
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return ErrStopped
	}
	r.running.Add(1)
	r.mu.Unlock()
	defer r.running.Done()
	d := r.disk
	d.crashMu.Lock()
	defer d.crashMu.Unlock()
	if !d.crash {
		return nil
	}
	if err := os.RemoveAll(filepath.Join(d.dir, crashDir)); err != nil {
		return fmt.Errorf("otelfr: removing the crash's ring: %w", err)
	}
	d.crash = false
	return nil
}

func (d *disk) writeCrash(w io.Writer, minAge time.Duration, maxBytes int64) (*Snapshot, error) {
	d.crashMu.Lock()
	defer d.crashMu.Unlock()
	if !d.crash {
		return nil, ErrNoCrash
	}
	dir := filepath.Join(d.dir, crashDir)
	s, err := readRing(w, ReasonCrash, minAge, maxBytes, dir)
	if errors.Is(err, errNoGeneration) {
		// Nothing to make a trace of, and never will be: the process
		// died within its first generation, or its ring failed early. Its
		// crash output goes with the error, not lost with the ring.
		out, _ := readCrashOutput(filepath.Join(dir, crashOutFile))
		d.crash = false
		if out != "" {
			err = fmt.Errorf("%w; its crash output: %q", err, truncateString(out, maxCrashOutputInError))
		}
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return s, err
}

// maxCrashOutputInError bounds the crash output quoted in the error of a
// crash that left no trace.
const maxCrashOutputInError = 2 << 10

// truncateString cuts s to at most n bytes, at a rune boundary.
func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ReasonDisk is the reason [ReadDisk] gives the trace of a ring that no
// crash left.
const ReasonDisk = "disk"

// ReadDisk writes to w, as one trace, the whole of the disk ring in dir
// ([WithDisk]), and returns the Snapshot that describes it. The ring read
// is the crash's that a Recorder's Start set aside there (or was setting
// aside when it died), if [Recorder.RemoveCrash] has not removed it yet;
// otherwise the ring in dir itself: the one a running process is writing,
// or the one a process left when it stopped or died. A ring left by a process that did
// not stop cleanly has the reason [ReasonCrash] and its CrashOutput; any
// other, [ReasonDisk]. ReadDisk writes nothing in dir (it may be read
// only) and never takes the directory from a process that uses it. It is
// what `otelfr analyze DIR` reads.
func ReadDisk(dir string, w io.Writer) (*Snapshot, error) {
	const all = 1<<63 - 1
	if _, err := os.Stat(filepath.Join(dir, crashDir)); err == nil {
		return readRing(w, ReasonCrash, all, all, filepath.Join(dir, crashDir))
	}
	reason := ReasonDisk
	if _, err := os.Stat(filepath.Join(dir, cleanFile)); errors.Is(err, os.ErrNotExist) {
		inUse, err := dirInUse(filepath.Join(dir, lockFile))
		switch {
		case err != nil:
			return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
		case !inUse:
			reason = ReasonCrash // nobody runs on it, nobody stopped it
		}
	}
	// A start that died setting a crash aside left it in crash.new, and
	// in dir what it had not moved yet (the newest segments, then the
	// crash output); the next start finishes the move (disk.recover).
	tmp := filepath.Join(dir, crashNewDir)
	aside, err := ringOf(tmp)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
	}
	if aside != "" {
		left, err := ringOf(dir)
		if err != nil {
			return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
		}
		if left == "" || (left == aside && reason == ReasonCrash) {
			return readRing(w, ReasonCrash, all, all, tmp, dir)
		}
	}
	return readRing(w, reason, all, all, dir)
}

var errNoGeneration = errors.New("otelfr: the disk ring holds no whole generation")

// pickWhole picks, as pick does from the newest, the segments of a ring
// left in a directory, leaving out those that are not whole generations
// (wholeSegment): a short newest one is dropped and the pick made again
// from the one before; a short one further back ends the run there, since
// the segments of one trace must follow each other. It returns how many
// it left out.
func pickWhole(segs []segment, minAge time.Duration, maxBytes int64) ([]segment, int) {
	short := 0
	for len(segs) > 0 {
		picked := pick(segs, segs[len(segs)-1].end, minAge, maxBytes)
		bad := -1
		for i := len(picked) - 1; i >= 0 && bad < 0; i-- {
			if !wholeSegment(picked[i].path) {
				bad = i
			}
		}
		switch {
		case bad < 0:
			return picked, short
		case bad == len(picked)-1:
			short++
			segs = segs[:len(segs)-1]
		default:
			return picked[bad+1:], short + 1
		}
	}
	return nil, short
}

// readRing writes the snapshot of the ring in dirs to w: its newest
// segments reaching minAge back from the last within maxBytes. A ring
// whose move to another directory was cut short lies in two: its
// segments are read from both, and its crash output from the first that
// holds one.
func readRing(w io.Writer, reason string, minAge time.Duration, maxBytes int64, dirs ...string) (*Snapshot, error) {
	segs, err := leftSegments(dirs...)
	if err != nil {
		return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
	}
	dir := strings.Join(dirs, " and ")
	if len(segs) == 0 {
		return nil, errNoGeneration
	}
	segs, short := pickWhole(segs, minAge, maxBytes)
	if short > 0 {
		otel.Handle(fmt.Errorf("otelfr: disk ring %s: %d segments cut short (the machine died before they reached the disk?) left out of the snapshot", dir, short))
	}
	if len(segs) == 0 {
		return nil, errNoGeneration
	}
	files := make([]*os.File, 0, len(segs))
	defer func() { closeAll(files) }()
	for _, s := range segs {
		f, err := os.Open(s.path)
		if errors.Is(err, os.ErrNotExist) && len(files) == 0 {
			continue // the ring's writer dropped it meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, errNoGeneration
	}
	buf := make([]byte, streamBufferSize)
	staging := make([]byte, 0, streamBufferSize)
	s, err := stream(time.Now(), reason, 0, w, staging, func(st *snapshotStream) error {
		return copySegments(st, files, buf)
	})
	if err != nil {
		return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
	}
	if s.Start.IsZero() {
		s.Start, s.End = segs[0].start, segs[len(segs)-1].end
	}
	for _, d := range dirs {
		if reason != ReasonCrash || s.CrashOutput != "" {
			break
		}
		if s.CrashOutput, err = readCrashOutput(filepath.Join(d, crashOutFile)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// readCrashOutput reads the first MaxCrashOutput bytes of the crash output
// file at path, if there is one.
func readCrashOutput(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("otelfr: reading the crash output: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCrashOutput))
	if err != nil {
		return "", fmt.Errorf("otelfr: reading the crash output: %w", err)
	}
	return string(b), nil
}
