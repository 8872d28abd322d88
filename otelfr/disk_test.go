package otelfr

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// segments lists the whole segments of the ring in dir.
func segments(t *testing.T, dir string) []segment {
	t.Helper()
	segs, err := leftSegments(dir)
	require.NoError(t, err)
	return segs
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
	sum := sha256.Sum256(buf.Bytes())
	assert.Equal(t, hex.EncodeToString(sum[:]), s.SHA256)
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
	require.NoError(t, os.WriteFile(filepath.Join(dir, segName(999)+partSuffix), []byte("go 1.26 trace\x00\x00\x00\x01"), 0o600))
	left := segments(t, dir)

	r = startRecorder(t, WithDisk(dir), WithMinAge(time.Hour), WithMaxBytes(1<<30))
	var buf bytes.Buffer
	s, err := r.WriteCrashSnapshot(t.Context(), &buf)
	require.NoError(t, err)
	assert.Equal(t, ReasonCrash, s.Reason)
	assert.Equal(t, "panic: boom\n\ngoroutine 1 [running]:\n", s.CrashOutput)
	parseTrace(t, buf.Bytes())
	var want int64
	for i, sg := range left {
		want += sg.size
		if i > 0 {
			want -= 16
		}
	}
	assert.Equal(t, want, s.Size(), "every whole segment, the .part left out")
	assert.True(t, s.Start.Before(s.End))

	_, err = r.WriteCrashSnapshot(t.Context(), &buf)
	require.ErrorIs(t, err, ErrNoCrash, "written once")
	_, err = os.Stat(filepath.Join(dir, crashDir))
	require.ErrorIs(t, err, os.ErrNotExist)
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
