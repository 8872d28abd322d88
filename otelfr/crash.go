package otelfr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
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
// [ErrNoCrash]. It is not rate limited. After [Recorder.Stop] it returns
// [ErrStopped].
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
	if r.disk == nil {
		return false
	}
	r.disk.crashMu.Lock()
	defer r.disk.crashMu.Unlock()
	return r.disk.crash
}

// RemoveCrash removes the crash's ring that [Recorder.WriteCrashSnapshot]
// writes, once its snapshot is stored; from then on WriteCrashSnapshot
// returns [ErrNoCrash]. It is a no-op when there is none.
func (r *Recorder) RemoveCrash() error {
	if r.disk == nil {
		return nil
	}
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
	s, err := readRing(dir, w, ReasonCrash, minAge, maxBytes)
	if errors.Is(err, errNoGeneration) {
		// Nothing to make a trace of, and never will be: the process
		// died within its first generation.
		d.crash = false
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return s, err
}

// ReasonDisk is the reason [ReadDisk] gives the trace of a ring that no
// crash left.
const ReasonDisk = "disk"

// ReadDisk writes to w, as one trace, the whole of the disk ring in dir
// ([WithDisk]), and returns the Snapshot that describes it. The ring read
// is the crash's that a Recorder's Start set aside there, if
// [Recorder.WriteCrashSnapshot] has not written it yet; otherwise the ring
// in dir itself: the one a running process is writing, or the one a
// process left when it stopped or died. A ring left by a process that did
// not stop cleanly has the reason [ReasonCrash] and its CrashOutput; any
// other, [ReasonDisk]. ReadDisk removes nothing and never takes the
// directory from a process that uses it. It is what `otelfr analyze DIR`
// reads.
func ReadDisk(dir string, w io.Writer) (*Snapshot, error) {
	const all = 1<<63 - 1
	if _, err := os.Stat(filepath.Join(dir, crashDir)); err == nil {
		return readRing(filepath.Join(dir, crashDir), w, ReasonCrash, all, all)
	}
	reason := ReasonDisk
	if _, err := os.Stat(filepath.Join(dir, cleanFile)); errors.Is(err, os.ErrNotExist) {
		lock, err := lockDir(filepath.Join(dir, lockFile))
		switch {
		case err == nil:
			_ = lock.Close()
			reason = ReasonCrash // nobody runs on it, nobody stopped it
		case !errors.Is(err, ErrDiskInUse):
			return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
		}
	}
	return readRing(dir, w, reason, all, all)
}

var errNoGeneration = errors.New("otelfr: the disk ring holds no whole generation")

// readRing writes the snapshot of the ring in dir to w: its newest
// segments reaching minAge back from the last within maxBytes.
func readRing(dir string, w io.Writer, reason string, minAge time.Duration, maxBytes int64) (*Snapshot, error) {
	segs, err := leftSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
	}
	if len(segs) == 0 {
		return nil, errNoGeneration
	}
	segs = pick(segs, segs[len(segs)-1].end, minAge, maxBytes)
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
	staging := [][]byte{make([]byte, 0, streamBufferSize), make([]byte, 0, streamBufferSize)}
	s, err := stream(time.Now(), reason, 0, w, staging, func(st *snapshotStream) error {
		return copySegments(st, files, buf)
	})
	if err != nil {
		return nil, fmt.Errorf("otelfr: reading the disk ring: %w", err)
	}
	if s.Start.IsZero() {
		s.Start, s.End = segs[0].start, segs[len(segs)-1].end
	}
	if reason == ReasonCrash {
		if s.CrashOutput, err = readCrashOutput(filepath.Join(dir, crashOutFile)); err != nil {
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
