package bucketstore_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/snapstore/bucketstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// globalTracer makes tp the global TracerProvider until the test ends.
// gocloud.dev/blob takes its tracer from the global provider when a bucket
// is opened: open the buckets after. No test of the package runs in
// parallel, so no other test's bucket calls reach tp.
func globalTracer(t *testing.T, tp *sdktrace.TracerProvider) {
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		assert.NoError(t, tp.Shutdown(context.Background()))
	})
}

func spanNamesOf(spans tracetest.SpanStubs) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}

// The bug: gocloud.dev/blob records a span for every bucket call with the
// global TracerProvider, so in a process otelfr observes, the uploads of
// snapshots (a 16 MiB PUT easily lasts over a latency threshold; every
// upload fails while the bucket is down) were spans the span processor
// found anomalous and snapshotted, and those snapshots' uploads were
// anomalous spans again. The calls made for the process (Save, AddSpans,
// the uploader's) must record no span under the SDK's default sampler.
func TestUploadsBecomeAnomalies(t *testing.T) {
	t.Run("no spans", func(t *testing.T) {
		spans := tracetest.NewInMemoryExporter()
		globalTracer(t, sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))) // default sampler: ParentBased(AlwaysSample)
		// One bucket for two stores: a file:// one, as mem:// opens a new
		// bucket each time.
		url := fileURL(t.TempDir())
		direct, err := bucketstore.Open(t.Context(), url)
		require.NoError(t, err)
		defer func() { assert.NoError(t, direct.Close()) }()
		_, err = direct.Save(t.Context(), snapshot("DIRECT", t0))
		require.NoError(t, err)
		require.NoError(t, direct.AddSpans(t.Context(), "DIRECT", []snapstore.SpanRef{span("a")}))

		spooled, err := bucketstore.Open(t.Context(), url, bucketstore.WithSpool(t.TempDir(), 0))
		require.NoError(t, err)
		_, err = spooled.Save(t.Context(), snapshot("SPOOLED", t0.Add(time.Minute)))
		require.NoError(t, err)
		require.NoError(t, spooled.AddSpans(t.Context(), "SPOOLED", []snapstore.SpanRef{span("b")}))
		require.NoError(t, spooled.Shutdown(t.Context()), "the upload went through")
		assert.Equal(t, int64(1), spooled.Stats().Uploaded)
		require.NoError(t, direct.AddSpans(t.Context(), "SPOOLED", []snapstore.SpanRef{span("c")}), "AddSpans on an uploaded snapshot")

		assert.Empty(t, spanNamesOf(spans.GetSpans()), "no span from Save, AddSpans or the uploader")

		// The reads a viewer makes are traced: the provider does see this
		// bucket's calls.
		list, err := direct.List(t.Context())
		require.NoError(t, err)
		assert.Equal(t, []string{"SPOOLED", "DIRECT"}, ids(list))
		assert.Contains(t, spanNamesOf(spans.GetSpans()), "gocloud.dev/blob.ListPage")
	})

	// With spanprocessor.RecordUnsampled, which records what its sampler
	// drops so that a span processor sees every span, the store's calls
	// stay unrecorded: they used to reach the processor as RecordOnly
	// spans, and the loop was back.
	t.Run("record unsampled", func(t *testing.T) {
		ended := &endedSpans{}
		globalTracer(t, sdktrace.NewTracerProvider(
			sdktrace.WithSampler(spanprocessor.RecordUnsampled(sdktrace.ParentBased(sdktrace.NeverSample()))),
			sdktrace.WithSpanProcessor(ended)))
		url := fileURL(t.TempDir())
		spooled, err := bucketstore.Open(t.Context(), url, bucketstore.WithSpool(t.TempDir(), 0))
		require.NoError(t, err)
		_, err = spooled.Save(t.Context(), snapshot("SPOOLED", t0))
		require.NoError(t, err)
		require.NoError(t, spooled.AddSpans(t.Context(), "SPOOLED", []snapstore.SpanRef{span("b")}))
		require.NoError(t, spooled.Shutdown(t.Context()), "the upload went through")
		assert.Equal(t, int64(1), spooled.Stats().Uploaded)
		assert.Empty(t, ended.names(), "no span from Save, AddSpans or the uploader reached a processor")

		// A read is recorded: the sampler does record what it drops.
		direct, err := bucketstore.Open(t.Context(), url)
		require.NoError(t, err)
		defer func() { assert.NoError(t, direct.Close()) }()
		_, err = direct.List(t.Context())
		require.NoError(t, err)
		assert.Contains(t, ended.names(), "gocloud.dev/blob.ListPage")
	})

	// The loop itself: a processor whose latency trigger fires on every
	// span sees one anomaly, the span the test ends, and none from the
	// upload of its snapshot.
	t.Run("no loop", func(t *testing.T) {
		rec, err := otelfr.Start(otelfr.WithMaxBytes(1 << 20))
		require.NoError(t, err)
		defer func() { assert.NoError(t, rec.Stop(context.Background())) }()
		tp := sdktrace.NewTracerProvider()
		globalTracer(t, tp)
		store, err := bucketstore.Open(t.Context(), "mem://", bucketstore.WithSpool(t.TempDir(), 0))
		require.NoError(t, err)
		spans := tracetest.NewInMemoryExporter()
		proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(spans), rec,
			exporter.New(store, spans, exporter.WithBaseURL("https://snapshots.example.com/")),
			spanprocessor.WithLatencyThreshold(time.Nanosecond), spanprocessor.WithCoalesceWindow(0))
		tp.RegisterSpanProcessor(proc)

		_, sp := tp.Tracer("test").Start(t.Context(), "request")
		sp.SetStatus(codes.Error, "failed")
		sp.End()
		require.NoError(t, proc.ForceFlush(t.Context()))
		require.NoError(t, store.Shutdown(t.Context()), "the snapshot was uploaded")
		require.NoError(t, proc.ForceFlush(t.Context()))
		assert.Equal(t, int64(1), store.Stats().Uploaded)
		st := proc.Stats()
		assert.Equal(t, int64(1), st.Anomalies, "the upload was no anomaly")
		assert.Equal(t, int64(1), st.Snapshots)
		assert.Equal(t, []string{"otelfr.snapshot", "request"}, spanNamesOf(spans.GetSpans()))
		require.NoError(t, tp.Shutdown(t.Context()))
	})
}

// endedSpans is a span processor that keeps the names of the spans that
// end, recorded or sampled.
type endedSpans struct {
	mu    sync.Mutex
	ended []string
}

func (e *endedSpans) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e *endedSpans) OnEnd(s sdktrace.ReadOnlySpan) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ended = append(e.ended, s.Name())
}
func (e *endedSpans) Shutdown(context.Context) error   { return nil }
func (e *endedSpans) ForceFlush(context.Context) error { return nil }

func (e *endedSpans) names() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ended)
}
