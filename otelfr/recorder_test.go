package otelfr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"runtime/trace"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
)

// Tests in this package run one at a time: the runtime allows one flight
// recorder per process.

func startRecorder(t *testing.T, opts ...Option) *Recorder {
	t.Helper()
	r, err := Start(opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

// busy produces some scheduler activity for the trace.
func busy(d time.Duration) {
	var wg sync.WaitGroup
	ch := make(chan int)
	deadline := time.Now().Add(d)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				select {
				case ch <- i:
				case <-time.After(time.Millisecond):
				}
			}
		}()
	}
	go func() {
		for range ch {
		}
	}()
	wg.Wait()
	close(ch)
}

// parseTrace reads every event of a trace and reports the first error.
func parseTrace(t *testing.T, data []byte) int {
	t.Helper()
	return len(testutil.ReadTrace(t, data))
}

func TestStartSecondRecorderIsRefused(t *testing.T) {
	r := startRecorder(t)
	_, err := Start()
	require.ErrorIs(t, err, ErrAlreadyActive)

	require.NoError(t, r.Stop(t.Context()))
	r2, err := Start()
	require.NoError(t, err, "Stop must release the slot")
	require.NoError(t, r2.Stop(t.Context()))
}

func TestStartWhileForeignFlightRecorderRuns(t *testing.T) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{})
	require.NoError(t, fr.Start())
	defer fr.Stop()

	_, err := Start()
	require.ErrorIs(t, err, ErrAlreadyActive)

	// The failed Start must not hold the slot.
	fr.Stop()
	r := startRecorder(t)
	require.NoError(t, r.Stop(t.Context()))
}

func TestStartWhileTraceStartIsActive(t *testing.T) {
	require.NoError(t, trace.Start(io.Discard))
	defer trace.Stop()
	r := startRecorder(t, WithMinInterval(0))
	busy(50 * time.Millisecond)
	s, err := r.Snapshot(t.Context(), "manual")
	require.NoError(t, err)
	parseTrace(t, s.Data)
}

func TestAdoptRunningFlightRecorder(t *testing.T) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: time.Second})
	require.NoError(t, fr.Start())
	defer fr.Stop()

	r := startRecorder(t, WithFlightRecorder(fr))
	busy(50 * time.Millisecond)
	s, err := r.Snapshot(t.Context(), "manual")
	require.NoError(t, err)
	assert.Positive(t, parseTrace(t, s.Data))
	assert.Zero(t, s.MinAge, "an adopted recorder's settings are unknown")

	require.NoError(t, r.Stop(t.Context()))
	assert.True(t, fr.Enabled(), "Stop must leave an adopted recorder running")
}

func TestAdoptedRecorderStoppedUnderUs(t *testing.T) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{})
	require.NoError(t, fr.Start())
	r := startRecorder(t, WithFlightRecorder(fr))
	fr.Stop()
	_, err := r.Snapshot(t.Context(), "manual")
	require.ErrorIs(t, err, ErrStopped)
}

func TestAdoptStoppedRecorder(t *testing.T) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{})
	_, err := Start(WithFlightRecorder(fr))
	require.ErrorIs(t, err, ErrStopped)
	r := startRecorder(t) // the slot was released
	require.NoError(t, r.Stop(t.Context()))
}

func TestSnapshot(t *testing.T) {
	before := time.Now()
	r := startRecorder(t, WithMinAge(2*time.Second), WithMaxBytes(8<<20))
	busy(300 * time.Millisecond)
	taken := time.Now()
	s, err := r.Snapshot(t.Context(), "latency")
	require.NoError(t, err)
	after := time.Now()

	assert.Regexp(t, regexp.MustCompile(`^[A-Z2-7]{26}$`), s.ID)
	assert.Equal(t, "latency", s.Reason)
	assert.Equal(t, int64(len(s.Data)), s.Size())
	assert.Equal(t, 2*time.Second, s.MinAge)
	assert.Equal(t, uint64(8<<20), s.MaxBytes)
	assert.Positive(t, parseTrace(t, s.Data))

	// The window lies within the recorder's lifetime and reaches the
	// moment of the snapshot.
	const slack = 5 * time.Millisecond
	assert.False(t, s.Start.Before(before.Add(-slack)), "start %v before recorder start %v", s.Start, before)
	assert.True(t, s.Start.Before(taken), "start %v", s.Start)
	assert.False(t, s.End.Before(taken.Add(-slack)), "end %v before snapshot %v", s.End, taken)
	assert.False(t, s.End.After(after.Add(slack)), "end %v after snapshot returned %v", s.End, after)
	assert.True(t, s.Covers(before.Add(10*time.Millisecond), taken.Add(-10*time.Millisecond)))
	assert.False(t, s.Covers(before.Add(-time.Hour), taken))
}

func TestSnapshotIsSingleFlight(t *testing.T) {
	// With a long minimum interval, every successful call in a burst must
	// have shared the one snapshot; the others are rate limited. Without
	// single-flight, the runtime would fail concurrent WriteTo calls.
	r := startRecorder(t, WithMinInterval(time.Hour))
	busy(20 * time.Millisecond)

	const n = 16
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		snaps = make([]*Snapshot, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			snaps[i], errs[i] = r.Snapshot(t.Context(), "burst")
		})
	}
	close(start)
	wg.Wait()

	var first *Snapshot
	for i := range n {
		if errs[i] != nil {
			require.ErrorIs(t, errs[i], ErrRateLimited)
			continue
		}
		if first == nil {
			first = snaps[i]
		}
		assert.Same(t, first, snaps[i])
	}
	require.NotNil(t, first)
}

func TestSnapshotRateLimits(t *testing.T) {
	r := startRecorder(t, WithMinInterval(time.Hour))
	_, err := r.Snapshot(t.Context(), "a")
	require.NoError(t, err)
	_, err = r.Snapshot(t.Context(), "b")
	require.ErrorIs(t, err, ErrRateLimited)
	require.NotErrorIs(t, err, ErrByteBudget)
}

func TestSnapshotByteBudget(t *testing.T) {
	r := startRecorder(t, WithMinInterval(0), WithByteBudget(1, time.Hour))
	_, err := r.Snapshot(t.Context(), "a")
	require.NoError(t, err, "the first snapshot of a period is always admitted")
	_, err = r.Snapshot(t.Context(), "b")
	require.ErrorIs(t, err, ErrByteBudget)
	require.ErrorIs(t, err, ErrRateLimited)
}

func TestSnapshotCancelledContext(t *testing.T) {
	r := startRecorder(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := r.Snapshot(ctx, "a")
	require.ErrorIs(t, err, context.Canceled)
	_, err = r.Snapshot(t.Context(), "b")
	require.NoError(t, err, "a refused call must not use up the interval")
}

func TestStop(t *testing.T) {
	r, err := Start(WithMinInterval(0))
	require.NoError(t, err)

	// A snapshot racing with Stop either completes or reports ErrStopped.
	var wg sync.WaitGroup
	wg.Go(func() {
		s, err := r.Snapshot(context.Background(), "racing")
		if err != nil {
			assert.ErrorIs(t, err, ErrStopped)
			return
		}
		parseTrace(t, s.Data)
	})
	require.NoError(t, r.Stop(t.Context()))
	wg.Wait()
	require.NoError(t, r.Stop(t.Context()), "Stop is idempotent")

	_, err = r.Snapshot(t.Context(), "late")
	require.ErrorIs(t, err, ErrStopped)
	assert.False(t, errors.Is(err, ErrRateLimited))
}

// TestSnapshotBufferGrowsInPieces pins the chunked growth that replaced
// bytes.Buffer: a buffer too small for the window must still end up with
// every byte, in order, when it grows by more than one copy chunk at a time.
func TestSnapshotBufferGrowsInPieces(t *testing.T) {
	for _, initial := range []int{0, 1, copyChunk - 1, 3 * copyChunk} {
		t.Run(fmt.Sprint(initial), func(t *testing.T) {
			var want []byte
			w := snapshotBuffer{b: make([]byte, 0, initial)}
			for i, n := range []int{16, 64 << 10, copyChunk + 3, 5 * copyChunk, 1, yieldEvery + 7} {
				p := bytes.Repeat([]byte{byte(i + 1)}, n)
				got, err := w.Write(p)
				require.NoError(t, err)
				require.Equal(t, n, got)
				want = append(want, p...)
			}
			assert.True(t, bytes.Equal(want, w.b), "the buffer must hold every write, in order")
		})
	}
}

// writeCounter records the sizes of the writes it gets.
type writeCounter struct {
	bytes.Buffer
	writes []int
	fail   error // returned from the third write on
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	if w.fail != nil && len(w.writes) >= 3 {
		return 0, w.fail
	}
	return w.Buffer.Write(p)
}

func TestWriteSnapshot(t *testing.T) {
	r := startRecorder(t, WithMinInterval(0), WithMaxBytes(8<<20))
	busy(300 * time.Millisecond)
	var w writeCounter
	s, err := r.WriteSnapshot(t.Context(), &w, "latency")
	require.NoError(t, err)
	data := w.Bytes()

	assert.Nil(t, s.Data)
	assert.Equal(t, "latency", s.Reason)
	assert.Equal(t, int64(len(data)), s.Size())
	assert.Empty(t, s.SHA256, "not hashed on the way: the caller hashes the trace where it went")
	assert.Positive(t, parseTrace(t, data))
	start, end, err := traceWindow(data)
	require.NoError(t, err)
	assert.True(t, s.Start.Equal(start) && s.End.Equal(end), "window read in-stream %v..%v, from the bytes %v..%v", s.Start, s.End, start, end)

	// Large writes: all but the last one of streamBufferSize.
	require.NotEmpty(t, w.writes)
	for _, n := range w.writes[:len(w.writes)-1] {
		assert.Equal(t, streamBufferSize, n)
	}
	t.Logf("%d bytes in %d writes", len(data), len(w.writes))

	// Snapshot hashes its Data on the way too.
	s2, err := r.Snapshot(t.Context(), "manual")
	require.NoError(t, err)
	sum := sha256.Sum256(s2.Data)
	assert.Equal(t, hex.EncodeToString(sum[:]), s2.SHA256)
}

func TestWriteSnapshotWriterFails(t *testing.T) {
	r := startRecorder(t, WithMinInterval(0), WithMaxBytes(8<<20))
	busy(300 * time.Millisecond)
	full := errors.New("disk full")
	w := writeCounter{fail: full}
	_, err := r.WriteSnapshot(t.Context(), &w, "x")
	if len(w.writes) < 3 {
		t.Skipf("a window of %d writes is too small to fail in", len(w.writes))
	}
	require.ErrorIs(t, err, full)
	require.Len(t, w.writes, 3, "the write stops at the writer's error")

	// The recorder is not stuck: the next snapshot goes ahead.
	_, err = r.WriteSnapshot(t.Context(), io.Discard, "y")
	require.NoError(t, err)
	_, err = r.WriteSnapshot(t.Context(), nil, "z")
	require.Error(t, err)
}

// A Snapshot call that finds a WriteSnapshot in flight cannot share its
// trace, which went elsewhere: it takes its own.
func TestSnapshotAfterStreamedOne(t *testing.T) {
	r := startRecorder(t, WithMinInterval(0), WithMaxBytes(8<<20))
	busy(100 * time.Millisecond)
	release := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := r.WriteSnapshot(context.Background(), writerFunc(func(p []byte) (int, error) {
			select {
			case <-started:
			default:
				close(started)
				<-release
			}
			return len(p), nil
		}), "streamed")
		assert.NoError(t, err)
	})
	<-started
	got := make(chan *Snapshot)
	go func() {
		s, err := r.Snapshot(context.Background(), "own")
		assert.NoError(t, err)
		got <- s
	}()
	close(release)
	s := <-got
	wg.Wait()
	require.NotNil(t, s)
	assert.Equal(t, "own", s.Reason)
	assert.NotEmpty(t, s.Data)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
