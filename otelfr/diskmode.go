package otelfr

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/trace"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
)

// ringWait bounds how long a snapshot waits for the generation it ended to
// reach the disk: normally well under a millisecond.
const ringWait = 5 * time.Second

// disk is a Recorder's disk mode: the ring, the directory's lock and the
// crash left there by an earlier process.
type disk struct {
	dir     string
	lock    *os.File
	ring    *ring
	readBuf []byte // the snapshot in flight's, reading segments

	crashMu sync.Mutex
	crash   bool // dir/crash holds a crash's ring, not yet written out
}

// openDisk takes the ring directory, sets aside a ring left by a process
// that did not stop cleanly, and starts streaming the trace into a new
// ring.
func openDisk(cfg config) (*disk, error) {
	dir := cfg.diskDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("otelfr: disk mode: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("otelfr: disk mode: %s: %w", dir, err)
	}
	d := &disk{dir: dir, lock: lock, readBuf: make([]byte, streamBufferSize)}
	if err := d.recover(); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("otelfr: disk mode: %w", err)
	}
	out, err := os.OpenFile(filepath.Join(dir, crashOutFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		// The runtime writes to a duplicate of out's descriptor.
		err = debug.SetCrashOutput(out, debug.CrashOptions{})
		_ = out.Close()
	}
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("otelfr: disk mode: crash output: %w", err)
	}
	d.ring = newRing(dir, cfg.diskMaxAge, cfg.diskMaxBytes)
	if err := trace.Start(d.ring); err != nil {
		_ = debug.SetCrashOutput(nil, debug.CrashOptions{})
		_ = lock.Close()
		// runtime/trace's errors are unexported strings.
		return nil, fmt.Errorf("%w: the execution tracer: %v", ErrAlreadyActive, err)
	}
	return d, nil
}

// recover looks at what the previous process left in the directory: a
// ring without the clean marker is a crash's, moved to dir/crash (which
// replaces one not yet written out); any other is removed. A crash is set
// aside in dir/crash.new first, then renamed: a start that died between
// the two left its crash there, which recover finishes setting aside,
// with the rest of its ring if the move was cut short.
func (d *disk) recover() error {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	var ringFiles []string
	clean := false
	for _, e := range ents {
		switch name := e.Name(); {
		case name == cleanFile:
			clean = true
		case isRingFile(name):
			ringFiles = append(ringFiles, name)
		}
	}
	tmp := filepath.Join(d.dir, crashNewDir)
	setAside, err := ringOf(tmp)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	crashed := !clean && ringID(ringFiles) != ""
	if crashed && setAside != ringID(ringFiles) {
		// Not the rest of this crash's ring: set aside before it.
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
		setAside = ""
	}
	if crashed || setAside != "" {
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			return err
		}
		for _, name := range ringFiles {
			if !crashed {
				// Only the crash output can be the crash's: the move
				// goes in name order, and it comes after the segments.
				if name != crashOutFile {
					continue
				}
				if _, err := os.Stat(filepath.Join(tmp, name)); err == nil {
					continue
				}
			}
			if err := os.Rename(filepath.Join(d.dir, name), filepath.Join(tmp, name)); err != nil {
				return err
			}
		}
		if err := os.RemoveAll(filepath.Join(d.dir, crashDir)); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(d.dir, crashDir)); err != nil {
			return err
		}
	}
	var errs []error
	if err := os.RemoveAll(tmp); err != nil { // holding nothing of a crash
		errs = append(errs, err)
	}
	for _, name := range append(ringFiles, cleanFile) {
		if err := os.Remove(filepath.Join(d.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(filepath.Join(d.dir, crashDir)); err == nil {
		d.crash = true
	}
	return errors.Join(errs...)
}

// ringOf returns the ring ID (ringID) of the segments in dir, "" if it
// holds none.
func ringOf(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return ringID(names), nil
}

// ringID returns what the names of a ring's segments (whole or cut short)
// begin with, the time the ring started (ring.segName), from the first
// segment among names; "" if there is none.
func ringID(names []string) string {
	for _, n := range names {
		if !strings.HasSuffix(n, segSuffix) && !strings.HasSuffix(n, partSuffix) {
			continue
		}
		if id, _, ok := strings.Cut(n, "-"); ok {
			return id
		}
	}
	return ""
}

// snapshotFiles ends the generation in progress, waits for the ring to
// have it on disk, and opens the newest segments that reach minAge back,
// within maxBytes, with their window. The caller releases them.
func (d *disk) snapshotFiles(fr *trace.FlightRecorder, minAge time.Duration, maxBytes int64) ([]*os.File, ringWindow, error) {
	// The flight recorder's WriteTo ends the current generation for every
	// consumer of the trace, the ring too, and returns once the ring's
	// Write has it; it holds one generation only, so it writes little.
	if _, err := fr.WriteTo(io.Discard); err != nil {
		return nil, ringWindow{}, fmt.Errorf("ending the trace generation: %w", err)
	}
	if err := d.ring.sync(ringWait); err != nil {
		return nil, ringWindow{}, err
	}
	return d.ring.open(time.Now(), minAge, maxBytes)
}

// close stops the trace, which ends its last generation on disk, marks the
// ring as left cleanly and gives the directory up.
func (d *disk) close() {
	trace.Stop()
	d.ring.close()
	var errs []error
	if err := os.WriteFile(filepath.Join(d.dir, cleanFile), nil, 0o600); err != nil {
		errs = append(errs, err)
	}
	if err := debug.SetCrashOutput(nil, debug.CrashOptions{}); err != nil {
		errs = append(errs, err)
	}
	out := filepath.Join(d.dir, crashOutFile)
	if st, err := os.Stat(out); err == nil && st.Size() == 0 {
		_ = os.Remove(out)
	}
	if err := d.lock.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		otel.Handle(fmt.Errorf("otelfr: disk mode: stopping: %w", err))
	}
}
