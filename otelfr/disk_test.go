package otelfr

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/internal/tracefmt"
)

// segments lists the whole segments of the ring in dir.
func segments(t *testing.T, dir string) []segment {
	t.Helper()
	segs, err := leftSegments(dir)
	require.NoError(t, err)
	return segs
}

// traceSize is the size of the one trace that segs make, each one's header
// but the first's left out.
func traceSize(segs []segment) int64 {
	var n int64
	for i, sg := range segs {
		n += sg.size
		if i > 0 {
			n -= tracefmt.HeaderLen
		}
	}
	return n
}

// trickle keeps the scheduler lightly busy for d: a few KB of trace a
// second, where busy makes tens of MB.
func trickle(d time.Duration) {
	var wg sync.WaitGroup
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		wg.Go(func() { time.Sleep(time.Millisecond) })
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
}

func TestDiskSnapshot(t *testing.T) {
	dir := t.TempDir()
	r := startRecorder(t, WithDisk(dir), WithMinAge(2*time.Second), WithMinInterval(0))
	require.NotNil(t, r.disk)
	trickle(3500 * time.Millisecond)

	before := time.Now()
	var buf bytes.Buffer
	s, err := r.WriteSnapshot(t.Context(), &buf, "latency")
	require.NoError(t, err)
	assert.Equal(t, int64(buf.Len()), s.Size())
	assert.Empty(t, s.SHA256, "streamed: the store's caller hashes what it stored")
	parseTrace(t, buf.Bytes())
	// The generation in progress when the snapshot began is in it.
	assert.False(t, s.End.Before(before.Add(-10*time.Millisecond)), "end %v, asked at %v", s.End, before)
	assert.True(t, s.Start.Before(before.Add(-2*time.Second)), "window %v..%v reaches MinAge back", s.Start, s.End)
	assert.True(t, s.Start.After(r.startedAt.Add(-time.Second)))
	start, end, err := traceWindow(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, start, s.Start)
	assert.Equal(t, end, s.End)

	// Snapshot, into Data, reads the same ring.
	s2, err := r.Snapshot(t.Context(), "error")
	require.NoError(t, err)
	parseTrace(t, s2.Data)
	assert.False(t, s2.Start.After(s.Start.Add(time.Second)))
	start, end, err = traceWindow(s2.Data)
	require.NoError(t, err)
	assert.Equal(t, start, s2.Start)
	assert.Equal(t, end, s2.End)

	// Every segment on disk is a trace on its own.
	segs := segments(t, dir)
	require.NotEmpty(t, segs)
	for _, sg := range segs {
		b, err := os.ReadFile(sg.path)
		require.NoError(t, err)
		parseTrace(t, b)
	}
	require.NoError(t, r.Stop(t.Context()))
	_, err = os.Stat(filepath.Join(dir, cleanFile))
	require.NoError(t, err, "Stop marks the ring clean")
	_, err = os.Stat(filepath.Join(dir, crashOutFile))
	assert.ErrorIs(t, err, os.ErrNotExist, "an empty crash output is removed")
}

// The first Snapshot of a disk ring sizes its Data for the segments it
// copies, not for MaxBytes as the memory ring's first does.
func TestDiskSnapshotSizedForTheSegments(t *testing.T) {
	r := startRecorder(t, WithDisk(t.TempDir()), WithMinInterval(0))
	trickle(1500 * time.Millisecond)
	s, err := r.Snapshot(t.Context(), "manual")
	require.NoError(t, err)
	parseTrace(t, s.Data)
	assert.Less(t, cap(s.Data), 2*len(s.Data), "Data sized for %d bytes of segments (MaxBytes %d)", len(s.Data), r.maxBytes)
	require.NoError(t, r.Stop(t.Context()))
}

func TestDiskRingBounds(t *testing.T) {
	t.Run("Age", func(t *testing.T) {
		dir := t.TempDir()
		r := startRecorder(t, WithDisk(dir), WithDiskBounds(2*time.Second, 1<<30))
		trickle(4500 * time.Millisecond)
		segs := segments(t, dir)
		require.NotEmpty(t, segs)
		// Segments are removed once they ended maxAge ago, at the end of a
		// generation: the oldest left ended at most maxAge plus a
		// generation (about 1s) ago.
		oldest := segs[0].end
		assert.Less(t, time.Since(oldest), 3500*time.Millisecond, "oldest segment %v old", time.Since(oldest))
		assert.Less(t, len(segs), 5)
		require.NoError(t, r.Stop(t.Context()))
	})
	t.Run("Bytes", func(t *testing.T) {
		dir := t.TempDir()
		const maxBytes = 64 << 10
		r := startRecorder(t, WithDisk(dir), WithDiskBounds(time.Hour, maxBytes))
		for range 5 {
			trickle(300 * time.Millisecond)
			_, err := r.fr.WriteTo(discard{}) // end a generation
			require.NoError(t, err)
		}
		time.Sleep(50 * time.Millisecond)
		segs := segments(t, dir)
		require.NotEmpty(t, segs)
		var total int64
		for _, s := range segs {
			total += s.size
		}
		// Whole segments only, the newest kept whatever its size.
		if len(segs) > 1 {
			assert.LessOrEqual(t, total, int64(maxBytes))
		}
		r.disk.ring.mu.Lock()
		assert.Equal(t, total, r.disk.ring.total)
		r.disk.ring.mu.Unlock()
		require.NoError(t, r.Stop(t.Context()))
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestDiskCleanStopLeavesNoCrash(t *testing.T) {
	dir := t.TempDir()
	r := startRecorder(t, WithDisk(dir))
	trickle(1500 * time.Millisecond)
	require.NoError(t, r.Stop(t.Context()))
	require.NotEmpty(t, segments(t, dir), "the ring stays for analysis")

	restart := time.Now()
	r = startRecorder(t, WithDisk(dir))
	_, err := r.WriteCrashSnapshot(t.Context(), &bytes.Buffer{})
	require.ErrorIs(t, err, ErrNoCrash)
	for _, s := range segments(t, dir) {
		assert.False(t, s.end.Before(restart), "a clean ring is cleared by the next start: %s ended %v before", s.path, restart.Sub(s.end))
	}
	require.NoError(t, r.Stop(t.Context()))
}

func TestDiskLeftRingIsACrash(t *testing.T) {
	dir := t.TempDir()
	r := startRecorder(t, WithDisk(dir))
	trickle(2500 * time.Millisecond)
	require.NoError(t, r.Stop(t.Context()))
	// What a crash leaves: no clean marker, the crash output written, a
	// generation cut short.
	require.NoError(t, os.Remove(filepath.Join(dir, cleanFile)))
	require.NoError(t, os.WriteFile(filepath.Join(dir, crashOutFile), []byte("panic: boom\n\ngoroutine 1 [running]:\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00000000000000000001-00000000000000000999"+partSuffix), []byte("go 1.26 trace\x00\x00\x00\x01"), 0o600))
	left := segments(t, dir)

	r = startRecorder(t, WithDisk(dir), WithMinAge(time.Hour), WithMaxBytes(1<<30))
	var buf bytes.Buffer
	s, err := r.WriteCrashSnapshot(t.Context(), &buf)
	require.NoError(t, err)
	assert.Equal(t, ReasonCrash, s.Reason)
	assert.Equal(t, "panic: boom\n\ngoroutine 1 [running]:\n", s.CrashOutput)
	parseTrace(t, buf.Bytes())
	assert.Equal(t, traceSize(left), s.Size(), "every whole segment, the .part left out")
	assert.True(t, s.Start.Before(s.End))

	// Until removed, the crash stays, for this process or the next.
	var again bytes.Buffer
	s2, err := r.WriteCrashSnapshot(t.Context(), &again)
	require.NoError(t, err)
	assert.Equal(t, buf.Bytes(), again.Bytes())
	assert.Equal(t, s.SHA256, s2.SHA256)
	require.NoError(t, r.Stop(t.Context()))
	r = startRecorder(t, WithDisk(dir))
	_, err = r.WriteCrashSnapshot(t.Context(), &again)
	require.NoError(t, err, "a crash not removed is the next start's")

	require.NoError(t, r.RemoveCrash())
	_, err = r.WriteCrashSnapshot(t.Context(), &buf)
	require.ErrorIs(t, err, ErrNoCrash)
	_, err = os.Stat(filepath.Join(dir, crashDir))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.NoError(t, r.RemoveCrash(), "a no-op when there is none")
	require.NoError(t, r.Stop(t.Context()))
}

func TestDiskDirInUse(t *testing.T) {
	dir := t.TempDir()
	f, err := lockDir(filepath.Join(dir, lockFile))
	require.NoError(t, err)
	defer f.Close()
	_, err = Start(WithDisk(dir))
	require.ErrorIs(t, err, ErrDiskInUse)
	assert.False(t, active.Load())
}

func TestDiskEnv(t *testing.T) {
	t.Setenv(EnvDiskDir, " /some/dir ")
	assert.Equal(t, "/some/dir", newConfig(nil).diskDir)
	assert.Equal(t, "", newConfig([]Option{WithDisk("")}).diskDir, "the option overrides the environment")
}

func TestDiskWithAdoptedFlightRecorderIsIgnored(t *testing.T) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{})
	require.NoError(t, fr.Start())
	defer fr.Stop()
	r := startRecorder(t, WithFlightRecorder(fr), WithDisk(t.TempDir()))
	assert.Nil(t, r.disk)
	errs := handled.Take()
	require.Len(t, errs, 1)
	assert.True(t, strings.Contains(errs[0].Error(), "disk mode"), errs[0].Error())
}

// realTrace is a trace of several generations, from a memory recorder.
func realTrace(t *testing.T) []byte {
	t.Helper()
	r := startRecorder(t, WithMinAge(5*time.Second))
	for range 3 {
		trickle(150 * time.Millisecond)
		_, err := r.fr.WriteTo(discard{}) // end a generation
		require.NoError(t, err)
	}
	s, err := r.Snapshot(t.Context(), "manual")
	require.NoError(t, err)
	require.NoError(t, r.Stop(t.Context()))
	return s.Data
}

// TestRingCutsAtGenerations feeds a real trace to the ring in chunks of
// every size: one segment per generation, each a trace on its own, and
// every suffix of the ring, under one header, the trace's own suffix.
func TestRingCutsAtGenerations(t *testing.T) {
	data := realTrace(t)
	gens := 0
	var split tracefmt.Splitter
	split.EndOfGeneration = func(int64) error { gens++; return nil }
	_, err := split.Write(data)
	require.NoError(t, err)
	require.GreaterOrEqual(t, gens, 3)

	for _, chunk := range []int{1, 7, 16, 17, 4096, 64 << 10, len(data)} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			dir := t.TempDir()
			r := newRing(dir, time.Hour, 1<<30)
			for p := 0; p < len(data); p += chunk {
				n, err := r.Write(data[p:min(p+chunk, len(data))])
				require.NoError(t, err)
				require.Equal(t, min(chunk, len(data)-p), n)
			}
			r.close()
			segs := segments(t, dir)
			require.Len(t, segs, gens)
			ended, _, err := r.pending()
			require.NoError(t, err)
			assert.Equal(t, uint64(gens), ended)
			var whole []byte
			for i, s := range segs {
				b, err := os.ReadFile(s.path)
				require.NoError(t, err)
				parseTrace(t, b)
				if i > 0 {
					b = b[tracefmt.HeaderLen:]
				}
				whole = append(whole, b...)
			}
			assert.Equal(t, data, whole, "the segments are the trace, cut")
			for i := range segs {
				var buf bytes.Buffer
				st := snapshotStream{dst: &buf, hash: sha256.New()}
				files, win, err := r.open(time.Now(), time.Hour, 1<<40)
				require.NoError(t, err)
				require.NoError(t, copySegments(&st, files[len(files)-1-i:], make([]byte, 1000)))
				r.release(files)
				parseTrace(t, buf.Bytes())

				// The window the ring read as it wrote the segments is
				// the one a scan of their trace reads.
				start, end, err := traceWindow(buf.Bytes())
				require.NoError(t, err)
				r.mu.Lock()
				suffix := segmentsWindow(r.segs[len(r.segs)-1-i:])
				r.mu.Unlock()
				require.True(t, suffix.ok)
				assert.Equal(t, start, suffix.start, "start of the last %d segments", i+1)
				assert.Equal(t, end, suffix.end, "end of the last %d segments", i+1)
				if i == len(segs)-1 {
					assert.Equal(t, suffix, win, "open's window is all the segments'")
				}
			}
		})
	}
}

// TestRingWriteFailure: a ring whose directory goes away stops there,
// says so once to otel.Handle, and snapshots get the error instead of
// waiting; the trace itself is never failed.
func TestRingWriteFailure(t *testing.T) {
	data := realTrace(t)
	dir := t.TempDir()
	r := newRing(dir, time.Hour, 1<<30)
	half := len(data) / 2
	_, err := r.Write(data[:half])
	require.NoError(t, err)
	// Written first: RemoveAll fails on a directory the writer is adding
	// a file to.
	require.NoError(t, r.sync(10*time.Second))
	require.NoError(t, os.RemoveAll(dir))
	n, err := r.Write(data[half:])
	require.NoError(t, err, "never fails the tracer")
	assert.Equal(t, len(data)-half, n)
	// The ring's writer finds out, on its own goroutine.
	require.Eventually(t, func() bool {
		_, _, err := r.pending()
		return err != nil
	}, 10*time.Second, time.Millisecond)
	_, err = r.Write(data[:10])
	require.NoError(t, err)
	errs := handled.Take()
	require.Len(t, errs, 1, "reported once")
	assert.Contains(t, errs[0].Error(), "the ring stops here")
	assert.ErrorContains(t, r.sync(time.Minute), dir, "no wait for a generation that will not come")
	r.close()
}

// leaveCrash runs a disk-mode Recorder on dir for d and leaves its ring as
// a crash does: no clean marker.
func leaveCrash(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	r := startRecorder(t, WithDisk(dir))
	trickle(d)
	require.NoError(t, r.Stop(t.Context()))
	require.NoError(t, os.Remove(filepath.Join(dir, cleanFile)))
}

// A start dies while it sets a crash aside (in dir/crash.new, then
// renamed dir/crash): the next start finishes that, with what was still
// in the directory, its crash output among it, and until then ReadDisk
// reads the crash from both places. The crash had been left in crash.new
// for good.
func TestDiskCrashSetAsideCutShort(t *testing.T) {
	for _, moved := range []string{"all", "some", "stale"} {
		t.Run(moved, func(t *testing.T) {
			dir := t.TempDir()
			tmp := filepath.Join(dir, crashNewDir)
			leaveCrash(t, dir, 2500*time.Millisecond)
			if moved == "stale" {
				// An older crash's, left by a start before this fix.
				old := t.TempDir()
				leaveCrash(t, old, 1500*time.Millisecond)
				require.NoError(t, os.Remove(filepath.Join(old, lockFile)))
				require.NoError(t, os.Rename(old, tmp))
			} else {
				require.NoError(t, os.Mkdir(tmp, 0o700))
			}
			const panicText = "panic: cut short\n"
			require.NoError(t, os.WriteFile(filepath.Join(dir, crashOutFile), []byte(panicText), 0o600))
			segs := segments(t, dir)
			require.GreaterOrEqual(t, len(segs), 2)
			n := len(segs)
			if moved == "some" {
				n = len(segs) / 2
			}
			if moved != "stale" {
				for _, sg := range segs[:n] {
					require.NoError(t, os.Rename(sg.path, filepath.Join(tmp, filepath.Base(sg.path))))
				}
			}

			// Before a start finishes the move, ReadDisk (otelfr analyze
			// DIR) reads the crash from both places; it read only what
			// was left in the directory, or nothing.
			var buf bytes.Buffer
			s, err := ReadDisk(dir, &buf)
			require.NoError(t, err)
			assert.Equal(t, ReasonCrash, s.Reason)
			parseTrace(t, buf.Bytes())
			assert.Equal(t, traceSize(segs), s.Size(), "ReadDisk: the whole of the crash's ring, and only it")
			assert.Equal(t, panicText, s.CrashOutput, "ReadDisk: the crash output")

			r := startRecorder(t, WithDisk(dir), WithMinAge(time.Hour), WithMaxBytes(1<<30))
			buf.Reset()
			s, err = r.WriteCrashSnapshot(t.Context(), &buf)
			require.NoError(t, err)
			assert.Equal(t, ReasonCrash, s.Reason)
			parseTrace(t, buf.Bytes())
			assert.Equal(t, traceSize(segs), s.Size(), "the whole of the crash's ring, and only it")
			assert.Equal(t, panicText, s.CrashOutput, "the crash output, left behind by the move")
			_, err = os.Stat(tmp)
			assert.ErrorIs(t, err, os.ErrNotExist)
			require.NoError(t, r.Stop(t.Context()))
		})
	}
}

// A segment renamed .trace whose data never reached the disk (the machine
// died, not the process) made the crash snapshot an unreadable trace,
// returned without an error.
func TestDiskCrashWithATruncatedSegmentIsUnreadable(t *testing.T) {
	for _, which := range []string{"newest", "middle"} {
		t.Run(which, func(t *testing.T) {
			dir := t.TempDir()
			leaveCrash(t, dir, 3500*time.Millisecond)
			left := segments(t, dir)
			require.GreaterOrEqual(t, len(left), 3)
			cut := left[len(left)-1]
			if which == "middle" {
				cut = left[len(left)-2]
			}
			require.NoError(t, os.Truncate(cut.path, cut.size/2))

			r := startRecorder(t, WithDisk(dir), WithMinAge(time.Hour), WithMaxBytes(1<<30))
			var buf bytes.Buffer
			s, err := r.WriteCrashSnapshot(t.Context(), &buf)
			require.NoError(t, err)
			parseTrace(t, buf.Bytes())
			errs := handled.Take()
			require.Len(t, errs, 1)
			assert.Contains(t, errs[0].Error(), "1 segments cut short")
			var want int64
			keep := left[:len(left)-1]
			if which == "middle" {
				keep = left[len(left)-1:]
			}
			for i, sg := range keep {
				want += sg.size
				if i > 0 {
					want -= tracefmt.HeaderLen
				}
			}
			assert.Equal(t, want, s.Size(), "the whole segments around the short one, consecutive")
			require.NoError(t, r.Stop(t.Context()))
		})
	}
}

// A directory in OTELFR_DISK_DIR that cannot be used made Start fail, and
// the process ran with no recorder at all; a bad environment value is
// reported and the default kept.
func TestDiskEnvUnusableDirFailsStart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	t.Setenv(EnvDiskDir, filepath.Join(file, "ring"))
	r := startRecorder(t)
	assert.Nil(t, r.disk, "the memory ring")
	errs := handled.Take()
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), EnvDiskDir)
	assert.Contains(t, errs[0].Error(), "using the memory ring")
	_, err := r.Snapshot(t.Context(), "test")
	require.NoError(t, err)
	require.NoError(t, r.Stop(t.Context()))

	_, err = Start(WithDisk(filepath.Join(file, "ring")))
	require.Error(t, err, "an explicit WithDisk that cannot be used fails Start")
	assert.False(t, active.Load())
}

// RemoveCrash after Stop could delete the crash a new Recorder on the
// directory had just set aside.
func TestDiskRemoveCrashAfterStop(t *testing.T) {
	dir := t.TempDir()
	leaveCrash(t, dir, 1500*time.Millisecond)
	old := startRecorder(t, WithDisk(dir))
	require.True(t, old.HasCrash())
	require.NoError(t, old.Stop(t.Context()))
	assert.False(t, old.HasCrash())
	require.ErrorIs(t, old.RemoveCrash(), ErrStopped)
	_, err := os.Stat(filepath.Join(dir, crashDir))
	require.NoError(t, err, "the crash is still there for the next Recorder")
}

// ReadDisk (otelfr analyze DIR) created the lock file and took the lock:
// it failed on a read-only ring and could make a starting Recorder fail.
func TestReadDiskWritesNothing(t *testing.T) {
	dir := t.TempDir()
	leaveCrash(t, dir, 1500*time.Millisecond)
	require.NoError(t, os.Remove(filepath.Join(dir, lockFile)))
	before, err := os.ReadDir(dir)
	require.NoError(t, err)
	s, err := ReadDisk(dir, discard{})
	require.NoError(t, err)
	assert.Equal(t, ReasonCrash, s.Reason, "nobody holds it, nobody stopped it")
	after, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Equal(t, len(before), len(after), "no lock file made")

	// While a Recorder holds the directory, its ring is read as it is.
	r := startRecorder(t, WithDisk(dir))
	trickle(1500 * time.Millisecond)
	s, err = ReadDisk(dir, discard{})
	require.NoError(t, err)
	assert.Equal(t, ReasonCrash, s.Reason, "the crash set aside comes first")
	require.NoError(t, r.RemoveCrash())
	s, err = ReadDisk(dir, discard{})
	require.NoError(t, err)
	assert.Equal(t, ReasonDisk, s.Reason, "in use: not a crash")
	require.NoError(t, r.Stop(t.Context()))
}

// The ring wrote to disk on the runtime's trace reader goroutine: a slow
// or hung disk held that reader, and with it every snapshot (the flight
// recorder's WriteTo waits for the reader) and Stop.
func TestRingSlowDiskHoldsTheTracer(t *testing.T) {
	data := realTrace(t)
	dir := t.TempDir()
	r := newRing(dir, time.Hour, 1<<30)
	hold := make(chan struct{})
	r.beforeWrite = func() { <-hold }

	// More than the ring's buffers can hold: the disk is stuck.
	done := make(chan struct{})
	rounds := 2 * ringBuffers * ringBufferSize / len(data)
	go func() {
		defer close(done)
		if _, err := r.Write(data); err != nil {
			t.Error(err)
		}
		for range rounds {
			// Each round a trace of its own, header left out.
			if _, err := r.Write(data[tracefmt.HeaderLen:]); err != nil {
				t.Error(err)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Write waited for the disk")
	}
	errs := handled.Take()
	require.Len(t, errs, 1, "the first drop is reported")
	assert.Contains(t, errs[0].Error(), "generations are dropped")

	close(hold)
	r.close()
	errs = handled.Take()
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "generations dropped in all")
	segs := segments(t, dir)
	require.NotEmpty(t, segs, "what the buffers held reached the disk")
	for _, sg := range segs {
		assert.True(t, wholeSegment(sg.path), "%s: every segment kept is a whole generation", sg.path)
	}
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range left {
		assert.False(t, strings.HasSuffix(e.Name(), partSuffix), "no cut-short segment left: %s", e.Name())
	}
}

// A ring whose disk keeps up holds one or two buffers, not the 16 MiB
// it may hold for a disk that falls behind: it made them all up front,
// more memory than the memory ring's window.
func TestRingMakesBuffersAsNeeded(t *testing.T) {
	data := realTrace(t)
	r := newRing(t.TempDir(), time.Hour, 1<<30)
	_, err := r.Write(data)
	require.NoError(t, err)
	written := len(data)
	for written < ringBuffers*ringBufferSize {
		require.NoError(t, r.sync(ringWait))
		_, err := r.Write(data[tracefmt.HeaderLen:])
		require.NoError(t, err)
		written += len(data) - tracefmt.HeaderLen
	}
	r.close()
	// Each generation of a round in flight at once, and one more: the
	// runtime hands over one generation a second or so.
	var sp tracefmt.Splitter
	perRound := 1
	sp.EndOfGeneration = func(int64) error { perRound++; return nil }
	_, err = sp.Write(data)
	require.NoError(t, err)
	assert.LessOrEqual(t, r.made, perRound, "buffers made for %d MiB written, %d KiB at a time, by a disk that kept up", written>>20, len(data)>>10)
	assert.Positive(t, r.made)
}

// A snapshot waited for one more generation to reach the disk than it
// had counted before ending its own; with the ring's writer behind, that
// was an older one, and the snapshot missed the generation it had ended
// (TestAnalyzeDiskRing failed so in CI).
func TestRingSyncWaitsForWhatWasWritten(t *testing.T) {
	data := realTrace(t)
	var gens int
	var sp tracefmt.Splitter
	sp.EndOfGeneration = func(int64) error { gens++; return nil }
	_, err := sp.Write(data)
	require.NoError(t, err)
	require.Greater(t, gens, 1)

	dir := t.TempDir()
	r := newRing(dir, time.Hour, 1<<30)
	r.beforeWrite = func() { time.Sleep(20 * time.Millisecond) } // a slow disk
	_, err = r.Write(data)
	require.NoError(t, err)
	require.NoError(t, r.sync(time.Minute))
	assert.Len(t, segments(t, dir), gens, "every generation written before sync is on disk")
	r.close()
}
