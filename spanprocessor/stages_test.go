package spanprocessor_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// stagesRig starts a recorder without rate limits and a DirStore, and
// returns what goleak should ignore: the goroutines before the processor
// under test starts.
func stagesRig(t *testing.T) (*otelfr.Recorder, *snapstore.DirStore, goleak.Option) {
	t.Helper()
	rec, err := otelfr.Start(otelfr.WithMinInterval(0), otelfr.WithMinAge(time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rec.Stop(context.Background()) })
	before := goleak.IgnoreCurrent()
	store, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	return rec, store, before
}

// forwardedLinked waits until next has received the span named name, and
// returns the ID of the snapshot it is linked to.
func forwardedLinked(t *testing.T, next *recordingProcessor, name string) string {
	t.Helper()
	var id string
	require.Eventually(t, func() bool {
		s := next.spans()[name]
		if s == nil {
			return false
		}
		var ok bool
		id, ok = attr(s, otelfr.SnapshotIDKey)
		require.True(t, ok, "%s forwarded linked", name)
		return true
	}, 10*time.Second, time.Millisecond, "%s forwarded while a later stage is stuck", name)
	return id
}

// stuckDiagnoser blocks its first call until released, ignoring its ctx,
// as a diagnosis stuck in a long parse would.
type stuckDiagnoser struct {
	entered chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func (d *stuckDiagnoser) Diagnose(context.Context, []byte, sdktrace.ReadOnlySpan) (string, []attribute.KeyValue, []sdktrace.Event, error) {
	if d.calls.Add(1) == 1 {
		close(d.entered)
		<-d.release
	}
	return "diagnosed", nil, nil, nil
}

// Regression: the worker diagnosed, stored and exported each batch before
// taking the next snapshot, so one stuck diagnosis held every later
// anomaly: no snapshot, and no span forwarded, until it returned.
func TestStuckDiagnoserDelaysNothing(t *testing.T) {
	rec, store, before := stagesRig(t)
	d := &stuckDiagnoser{entered: make(chan struct{}), release: make(chan struct{})}
	outcomes := make(chan spanprocessor.Outcome, 8)
	next := newRecordingProcessor()
	proc := spanprocessor.New(next, rec, exporter.New(store, tracetest.NewNoopExporter()),
		spanprocessor.WithCoalesceWindow(0),
		spanprocessor.WithDiagnoser(d),
		spanprocessor.WithDiagnosisTimeout(50*time.Millisecond),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) { outcomes <- o }))

	proc.OnEnd(errorSpan("first"))
	first := forwardedLinked(t, next, "first")
	<-d.entered
	proc.OnEnd(errorSpan("second"))
	second := forwardedLinked(t, next, "second")
	assert.NotEqual(t, first, second, "the second anomaly got a snapshot of its own")

	// The stuck diagnosis is abandoned after its timeout; the second
	// span's is dropped while it still runs. Both are reported,
	// undiagnosed.
	for range 2 {
		o := <-outcomes
		assert.Empty(t, o.Verdict, "%s undiagnosed", o.Span.Name())
		assert.NotEmpty(t, o.SnapshotID)
	}
	s := proc.Stats()
	assert.Equal(t, int64(2), s.Snapshots)
	assert.Equal(t, int64(2), s.Dropped["diagnosis_timeout"], "%+v", s)
	assert.Equal(t, s.Anomalies, s.Linked+total(s.Skipped)+s.Abandoned, "%+v", s)

	close(d.release)
	require.NoError(t, proc.Shutdown(t.Context()))
	goleak.VerifyNone(t, before)
}

// stuckStore is a DirStore whose AddSpans, or Commit, waits until
// released or its ctx ends, as a store on an unreachable network would.
type stuckStore struct {
	*snapstore.DirStore
	commit  bool // Commit is stuck, not AddSpans
	entered chan struct{}
	began   atomic.Bool
	release chan struct{}
}

func (s *stuckStore) wait(ctx context.Context) error {
	if !s.began.CompareAndSwap(false, true) {
		return nil
	}
	close(s.entered)
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *stuckStore) AddSpans(ctx context.Context, id string, spans []snapstore.SpanRef) error {
	if !s.commit {
		if err := s.wait(ctx); err != nil {
			return err
		}
	}
	return s.DirStore.AddSpans(ctx, id, spans)
}

func (s *stuckStore) Create(ctx context.Context) (snapstore.SnapshotWriter, error) {
	w, err := s.DirStore.Create(ctx)
	return &stuckWriter{SnapshotWriter: w, s: s}, err
}

type stuckWriter struct {
	snapstore.SnapshotWriter
	s *stuckStore
}

func (w *stuckWriter) Commit(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	if w.s.commit {
		if err := w.s.wait(ctx); err != nil {
			w.Abort()
			return snapstore.Info{}, err
		}
	}
	return w.SnapshotWriter.Commit(ctx, snap)
}

// Regression: recording a batch's spans in a stuck store held the worker:
// no later snapshot, no span forwarded. Now the store's calls after the
// snapshot run on the export stage, and each call into the store is
// bounded by the store timeout.
func TestStuckStoreDelaysNothing(t *testing.T) {
	t.Run("AddSpans", func(t *testing.T) {
		rec, dir, before := stagesRig(t)
		store := &stuckStore{DirStore: dir, entered: make(chan struct{}), release: make(chan struct{})}
		next := newRecordingProcessor()
		proc := spanprocessor.New(next, rec, exporter.New(store, tracetest.NewNoopExporter()),
			spanprocessor.WithCoalesceWindow(0), spanprocessor.WithStoreTimeout(time.Hour))
		proc.OnEnd(errorSpan("first"))
		first := forwardedLinked(t, next, "first")
		<-store.entered
		proc.OnEnd(errorSpan("second"))
		second := forwardedLinked(t, next, "second")
		assert.NotEqual(t, first, second, "the second anomaly got a snapshot of its own")
		assert.Equal(t, int64(2), proc.Stats().Snapshots)

		close(store.release)
		require.NoError(t, proc.Shutdown(t.Context()))
		goleak.VerifyNone(t, before)
	})
	t.Run("AddSpans_timeout", func(t *testing.T) {
		rec, dir, before := stagesRig(t)
		store := &stuckStore{DirStore: dir, entered: make(chan struct{}), release: make(chan struct{})}
		next := newRecordingProcessor()
		proc := spanprocessor.New(next, rec, exporter.New(store, tracetest.NewNoopExporter()),
			spanprocessor.WithCoalesceWindow(0), spanprocessor.WithStoreTimeout(20*time.Millisecond))
		proc.OnEnd(errorSpan("first"))
		forwardedLinked(t, next, "first")
		require.NoError(t, proc.ForceFlush(t.Context()), "the stuck call ends at the store timeout")
		assert.Equal(t, int64(1), proc.Stats().Errors["store"])
		errs := handled.Take()
		require.Len(t, errs, 1)
		assert.ErrorIs(t, errs[0], context.DeadlineExceeded)
		close(store.release)
		require.NoError(t, proc.Shutdown(t.Context()))
		goleak.VerifyNone(t, before)
	})
	t.Run("Commit", func(t *testing.T) {
		// The commit is the snapshot's own: its spans wait for it, for
		// the store timeout at most, and are then forwarded skipped.
		rec, dir, before := stagesRig(t)
		store := &stuckStore{DirStore: dir, commit: true, entered: make(chan struct{}), release: make(chan struct{})}
		next := newRecordingProcessor()
		proc := spanprocessor.New(next, rec, exporter.New(store, tracetest.NewNoopExporter()),
			spanprocessor.WithCoalesceWindow(0), spanprocessor.WithStoreTimeout(20*time.Millisecond))
		proc.OnEnd(errorSpan("first"))
		require.Eventually(t, func() bool { return next.spans()["first"] != nil }, 10*time.Second, time.Millisecond)
		skipped, _ := attr(next.spans()["first"], spanprocessor.SnapshotSkippedKey)
		assert.Equal(t, spanprocessor.SkipError, skipped)
		errs := handled.Take()
		require.Len(t, errs, 1)
		assert.ErrorIs(t, errs[0], context.DeadlineExceeded)
		proc.OnEnd(errorSpan("second"))
		forwardedLinked(t, next, "second")
		s := proc.Stats()
		assert.Equal(t, int64(1), s.Errors["store"])
		assert.Equal(t, s.Anomalies, s.Linked+total(s.Skipped)+s.Abandoned, "%+v", s)
		close(store.release)
		require.NoError(t, proc.Shutdown(t.Context()))
		goleak.VerifyNone(t, before)
	})
}

// Regression: an OTLP exporter that never answered held the worker for
// the exporter's timeout per batch: no later snapshot, no span forwarded.
// Now exports run on their own stage; the batches that find its queue
// full lose their attachments, counted.
func TestHangingExporterDelaysNothing(t *testing.T) {
	rec, store, before := stagesRig(t)
	hang := &enteringExporter{entered: make(chan struct{}), release: make(chan struct{})}
	next := newRecordingProcessor()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	proc := spanprocessor.New(next, rec, exporter.New(store, hang, exporter.WithTimeout(time.Hour)),
		spanprocessor.WithCoalesceWindow(0), spanprocessor.WithMeterProvider(mp))
	proc.OnEnd(errorSpan("first"))
	first := forwardedLinked(t, next, "first")
	<-hang.entered
	ids := map[string]bool{first: true}
	const more = 24 // more batches than the stages hold
	for i := range more {
		name := fmt.Sprint("more", i)
		proc.OnEnd(errorSpan(name))
		ids[forwardedLinked(t, next, name)] = true
	}
	assert.Len(t, ids, more+1, "each anomaly got a snapshot of its own")
	s := proc.Stats()
	assert.Positive(t, s.Dropped["export_queue_full"], "%+v", s)
	assert.LessOrEqual(t, s.Dropped["export_queue_full"], s.Linked)
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	dropped := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "otelfr.spans.dropped" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				r, _ := dp.Attributes.Value("reason")
				dropped[r.AsString()] = dp.Value
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"after_shutdown": 0, "abandoned": 0,
		"diagnosis_queue_full": 0, "diagnosis_timeout": 0, "export_queue_full": s.Dropped["export_queue_full"],
	}, dropped, "otelfr.spans.dropped by reason")
	assert.Equal(t, s.Anomalies, s.Linked+total(s.Skipped)+s.Abandoned, "%+v", s)

	close(hang.release)
	require.NoError(t, proc.ForceFlush(t.Context()))
	require.NoError(t, proc.Shutdown(t.Context()))
	goleak.VerifyNone(t, before)
}

// enteringExporter blocks every export until released or its ctx ends,
// and says when the first began.
type enteringExporter struct {
	entered chan struct{}
	began   atomic.Bool
	release chan struct{}
}

func (e *enteringExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	if e.began.CompareAndSwap(false, true) {
		close(e.entered)
	}
	select {
	case <-e.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (*enteringExporter) Shutdown(context.Context) error { return nil }

// The snapshot is stored without waiting for its SHA-256; the export
// stage hashes the stored trace, records the sum in the store, and puts it
// on the attachment span.
func TestChecksumAfterStore(t *testing.T) {
	rec, store, before := stagesRig(t)
	mem := tracetest.NewInMemoryExporter()
	next := newRecordingProcessor()
	proc := spanprocessor.New(next, rec, exporter.New(store, mem), spanprocessor.WithCoalesceWindow(0))
	proc.OnEnd(errorSpan("slow"))
	require.NoError(t, proc.ForceFlush(t.Context()))

	id, _ := attr(next.spans()["slow"], otelfr.SnapshotIDKey)
	r, info, err := store.Open(t.Context(), id)
	require.NoError(t, err)
	h := sha256.New()
	_, err = io.Copy(h, r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	sum := hex.EncodeToString(h.Sum(nil))
	assert.Equal(t, sum, info.SHA256, "recorded in the store")
	att := mem.GetSpans()
	require.Len(t, att, 1)
	assert.Equal(t, sum, attrMapOf(att[0].Attributes)[otelfr.SnapshotSHA256Key], "on the attachment span")

	require.NoError(t, proc.Shutdown(t.Context()))
	goleak.VerifyNone(t, before)
}
