package spanprocessor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"
	grpccodes "google.golang.org/grpc/codes"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// countingProcessor counts what reaches it, and how it is decorated,
// without keeping the spans.
type countingProcessor struct {
	total, linked, skipped, bare atomic.Int64
	wrapped                      sdktrace.SpanProcessor // optional
}

func (c *countingProcessor) OnStart(ctx context.Context, s sdktrace.ReadWriteSpan) {
	if c.wrapped != nil {
		c.wrapped.OnStart(ctx, s)
	}
}

func (c *countingProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	c.total.Add(1)
	_, id := attr(s, otelfr.SnapshotIDKey)
	_, skip := attr(s, spanprocessor.SnapshotSkippedKey)
	switch {
	case id:
		c.linked.Add(1)
	case skip:
		c.skipped.Add(1)
	default:
		c.bare.Add(1)
	}
	if c.wrapped != nil {
		c.wrapped.OnEnd(s)
	}
}

func (c *countingProcessor) ForceFlush(ctx context.Context) error {
	if c.wrapped != nil {
		return c.wrapped.ForceFlush(ctx)
	}
	return nil
}

func (c *countingProcessor) Shutdown(ctx context.Context) error {
	if c.wrapped != nil {
		return c.wrapped.Shutdown(ctx)
	}
	return nil
}

func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestAnomalyStorm makes every span anomalous, from many goroutines, as
// fast as they go for a few seconds. OnEnd must never block, snapshots
// must respect the rate limit, the heap must stay flat, and every span
// must reach the wrapped processor decorated.
func TestAnomalyStorm(t *testing.T) {
	const (
		duration    = 3 * time.Second
		minInterval = 250 * time.Millisecond
		workers     = 16
		window      = 4 << 20
		// Two windows: spent after a few snapshots, well before the
		// interval alone would stop them, so that both limits come into
		// play however fast this machine writes the trace.
		budget = 2 * window
	)
	next := &countingProcessor{}
	rec, err := otelfr.Start(otelfr.WithMinInterval(minInterval), otelfr.WithMaxBytes(window),
		otelfr.WithByteBudget(budget, time.Hour))
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	store, err := snapstore.NewDirStore(t.TempDir(), snapstore.WithMaxCount(5))
	require.NoError(t, err)
	proc := spanprocessor.New(next, rec, exporter.New(store, tracetest.NewNoopExporter()), spanprocessor.WithQueueSize(64))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	tracer := tp.Tracer("storm")

	var produced atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Paced at up to 16 × 2,500 = 40,000 spans/s: "tens of thousands per
	// second". Unpaced, the execution trace itself grows by ~100 MB/s and
	// the flight recorder's ring (at least one generation) dwarfs what
	// this test measures.
	for range workers {
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				for range 25 {
					_, s := tracer.Start(context.Background(), "storm")
					s.SetStatus(codes.Error, "boom")
					s.End()
					produced.Add(1)
				}
			}
		})
	}
	time.Sleep(duration / 3)
	runtime.GC()
	early := liveHeap()
	time.Sleep(2 * duration / 3)
	runtime.GC()
	late := liveHeap()
	close(stop)
	wg.Wait()
	require.NoError(t, tp.Shutdown(t.Context()))

	st := proc.Stats()
	n := produced.Load()
	t.Logf("%d anomalous spans (%.0f/s), %d snapshots, stats %+v, live heap %d → %d KiB",
		n, float64(n)/duration.Seconds(), st.Snapshots, st, early>>10, late>>10)
	assert.Greater(t, n, int64(10_000), "a storm")
	assert.Equal(t, n, next.total.Load(), "every span reaches the wrapped processor")
	assert.Zero(t, next.bare.Load(), "every anomalous span is decorated")
	assert.Equal(t, n, next.linked.Load()+next.skipped.Load())
	assert.LessOrEqual(t, st.Snapshots, int64(duration/minInterval)+1, "snapshots within the rate limit")
	// The budget admits a snapshot on the previous one's size, so the
	// period can overshoot by one snapshot's growth: at most a window and
	// the generation that straddles its edge.
	assert.LessOrEqual(t, st.SnapshotBytes, int64(budget+2*window), "snapshots within the byte budget")
	assert.Positive(t, st.Skipped[spanprocessor.SkipRateLimited], "the interval refused some")
	assert.Positive(t, st.Skipped[spanprocessor.SkipByteBudget], "the budget refused some")
	assert.Positive(t, st.Skipped[spanprocessor.SkipQueueFull], "a full queue drops and counts")
	assert.Less(t, late, early+16<<20, "the heap stays flat")
}

// TestExporterDown points the pipeline at an OTLP endpoint that refuses
// every export, and at one that never answers: spans keep flowing,
// attachments are dropped (after the timeout) and counted, and Shutdown
// returns by its deadline.
func TestExporterDown(t *testing.T) {
	t.Run("refusing", func(t *testing.T) { testExporterDown(t, otlptest.WithExportError(grpccodes.Unavailable)) })
	t.Run("hanging", func(t *testing.T) { testExporterDown(t, otlptest.WithHang()) })
}

func testExporterDown(t *testing.T, fault otlptest.Option) {
	recv := otlptest.NewReceiver(t, fault)
	rec, err := otelfr.Start(otelfr.WithMinInterval(0))
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	before := goleak.IgnoreCurrent()
	time.Sleep(50 * time.Millisecond)
	store, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	// The exporter's own timeout bounds how long its batch processor's
	// goroutine outlives Shutdown; that goroutine is the SDK's, not ours.
	otlp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(recv.Endpoint()), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithTimeout(time.Second), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	require.NoError(t, err)
	next := &countingProcessor{wrapped: sdktrace.NewBatchSpanProcessor(otlp)}
	proc := spanprocessor.New(next, rec, exporter.New(store, otlp, exporter.WithTimeout(100*time.Millisecond)),
		spanprocessor.WithLatencyThreshold(10*time.Millisecond), spanprocessor.WithCoalesceWindow(0))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	tracer := tp.Tracer("hang")

	for i := range 50 {
		_, s := tracer.Start(context.Background(), fmt.Sprint("span", i))
		if i%10 == 0 {
			s.SetStatus(codes.Error, "boom")
		}
		s.End()
	}
	waitStats(t, proc, func(s spanprocessor.Stats) bool { return s.Errors["export"] > 0 })
	require.Eventually(t, func() bool { return next.total.Load() == 50 }, 10*time.Second, time.Millisecond,
		"spans keep flowing to the wrapped processor")

	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = tp.Shutdown(ctx)
	elapsed := time.Since(start)
	assert.Less(t, elapsed, 2*time.Second, "Shutdown returns by its deadline (plus scheduling slack)")
	if err != nil {
		assert.ErrorIs(t, err, context.DeadlineExceeded, "the only error Shutdown may return is its deadline's")
	}
	recv.Close() // releases the exporter's hung call before goleak looks
	require.NoError(t, otlp.Shutdown(context.Background()))
	for _, err := range handled.Take() {
		assert.ErrorContains(t, err, "export", "the only errors are failed exports")
	}
	// Nothing the pipeline started outlives its shutdown: checked here, not
	// only at the end of the package.
	goleak.VerifyNone(t, before)
}

// failingStore fails every Save until healed.
type failingStore struct {
	snapstore.Store
	healed atomic.Bool
}

var errDiskFull = errors.New("disk full")

func (f *failingStore) Save(ctx context.Context, s *otelfr.Snapshot) (snapstore.Info, error) {
	if !f.healed.Load() {
		return snapstore.Info{}, errDiskFull
	}
	return f.Store.Save(ctx, s)
}

func TestStoreFailure(t *testing.T) {
	dir, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	store := &failingStore{Store: dir}
	next := newRecordingProcessor()
	rec, err := otelfr.Start(otelfr.WithMinInterval(0))
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	time.Sleep(50 * time.Millisecond)
	proc := spanprocessor.New(next, rec, exporter.New(store, nil),
		spanprocessor.WithLatencyThreshold(10*time.Millisecond))
	defer proc.Shutdown(context.Background())

	end := time.Now()
	span := func(name string) sdktrace.ReadOnlySpan {
		return tracetest.SpanStub{Name: name, StartTime: end.Add(-20 * time.Millisecond), EndTime: end}.Snapshot()
	}
	proc.OnEnd(span("while failing"))
	require.NoError(t, proc.ForceFlush(t.Context()))
	skipped, _ := attr(next.spans()["while failing"], spanprocessor.SnapshotSkippedKey)
	assert.Equal(t, spanprocessor.SkipError, skipped)
	assert.Equal(t, int64(1), proc.Stats().Errors["store"])
	errs := handled.Take()
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], errDiskFull, "reported to otel.Handle")

	store.healed.Store(true)
	end = time.Now()
	proc.OnEnd(span("after recovery"))
	require.NoError(t, proc.ForceFlush(t.Context()))
	_, linked := attr(next.spans()["after recovery"], otelfr.SnapshotIDKey)
	assert.True(t, linked, "the recorder kept running")
}

// TestShutdownOrder shuts the processor, the exporter and the recorder
// down in every order, with an anomaly pending: nothing deadlocks, and the
// span still reaches the wrapped processor, linked or marked skipped.
func TestShutdownOrder(t *testing.T) {
	orders := [][]string{
		{"processor", "exporter", "recorder"},
		{"processor", "recorder", "exporter"},
		{"exporter", "processor", "recorder"},
		{"exporter", "recorder", "processor"},
		{"recorder", "processor", "exporter"},
		{"recorder", "exporter", "processor"},
	}
	for _, order := range orders {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			next := newRecordingProcessor()
			rec, err := otelfr.Start()
			require.NoError(t, err)
			defer rec.Stop(context.Background())
			time.Sleep(50 * time.Millisecond)
			store, err := snapstore.NewDirStore(t.TempDir())
			require.NoError(t, err)
			mem := tracetest.NewInMemoryExporter()
			exp := exporter.New(store, mem)
			proc := spanprocessor.New(next, rec, exp,
				spanprocessor.WithLatencyThreshold(10*time.Millisecond),
				spanprocessor.WithCoalesceWindow(time.Hour))
			end := time.Now()
			proc.OnEnd(tracetest.SpanStub{Name: "pending", StartTime: end.Add(-20 * time.Millisecond), EndTime: end}.Snapshot())

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			for _, c := range order {
				switch c {
				case "processor":
					require.NoError(t, proc.Shutdown(ctx))
				case "exporter":
					require.NoError(t, exp.Shutdown(ctx))
				case "recorder":
					require.NoError(t, rec.Stop(ctx))
				}
			}
			s := next.spans()["pending"]
			require.NotNil(t, s, "the pending span was forwarded")
			if _, linked := attr(s, otelfr.SnapshotIDKey); linked {
				assert.Len(t, mem.GetSpans(), 1, "linked, so its attachment was exported")
				return
			}
			skipped, _ := attr(s, spanprocessor.SnapshotSkippedKey)
			assert.Equal(t, spanprocessor.SkipStopped, skipped)
		})
	}
}

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(time.Hour)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithMeterProvider(mp))
	p.span("a", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	time.Sleep(5 * time.Millisecond)
	p.span("b", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(t.Context(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, spanprocessor.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				key := m.Name
				for _, kv := range dp.Attributes.ToSlice() {
					key += "{" + kv.Value.String() + "}"
				}
				got[key] = dp.Value
			}
		}
	}
	assert.Equal(t, int64(2), got["otelfr.anomalies"])
	assert.Equal(t, int64(1), got["otelfr.snapshots"])
	assert.Equal(t, int64(1), got["otelfr.spans.linked"])
	assert.Equal(t, int64(1), got["otelfr.spans.skipped{rate_limited}"])
	assert.Equal(t, int64(0), got["otelfr.errors{export}"])
	assert.Positive(t, got["otelfr.snapshot.size"])
	for k := range got {
		assert.NotContains(t, k, "otelfr.causes", "no diagnoser, no causes")
	}

	// Shutdown unregisters the callback.
	require.NoError(t, p.tp.Shutdown(t.Context()))
	rm = metricdata.ResourceMetrics{}
	require.NoError(t, reader.Collect(t.Context(), &rm))
	assert.Empty(t, rm.ScopeMetrics)
}
