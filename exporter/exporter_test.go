package exporter_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/internal/snaptest"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

func anomalousSpan() sdktrace.ReadOnlySpan {
	return tracetest.SpanStub{
		Name: "GET /slow",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID:    trace.TraceID{1, 2, 3},
			SpanID:     trace.SpanID{4, 5, 6},
			TraceFlags: trace.FlagsSampled,
		}),
		StartTime: snaptest.Epoch.Add(-200 * time.Millisecond),
		EndTime:   snaptest.Epoch,
		Resource:  resource.NewSchemaless(attribute.String("service.name", "shop")),
	}.Snapshot()
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := make(map[attribute.Key]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func TestAttach(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	mem := tracetest.NewInMemoryExporter()
	e := exporter.New(st, mem, exporter.WithBaseURL("http://viewer.local:8081/snapshots"))

	snap := snaptest.Snapshot(3, 64)
	snap.WriteDuration = 5 * time.Millisecond
	info, err := e.Save(t.Context(), snap)
	require.NoError(t, err)
	assert.Equal(t, "http://viewer.local:8081/snapshots/SNAP03", e.URL(info.ID))

	parent := anomalousSpan()
	require.NoError(t, e.Attach(t.Context(), info, []exporter.Anomaly{{Span: parent, Reason: "latency"}}))

	got := mem.GetSpans()
	require.Len(t, got, 1)
	a := got[0]
	assert.Equal(t, otelfr.AttachmentSpanName, a.Name)
	assert.Equal(t, parent.SpanContext().TraceID(), a.SpanContext.TraceID(), "same trace")
	assert.NotEqual(t, parent.SpanContext().SpanID(), a.SpanContext.SpanID())
	assert.True(t, a.SpanContext.IsValid())
	assert.Equal(t, parent.SpanContext(), a.Parent, "child of the anomalous span")
	require.Len(t, a.Links, 1)
	assert.Equal(t, parent.SpanContext(), a.Links[0].SpanContext, "linked to the anomalous span")
	assert.Equal(t, parent.Resource(), a.Resource, "same service")
	assert.Equal(t, exporter.ScopeName, a.InstrumentationScope.Name)
	assert.True(t, a.EndTime.Equal(parent.EndTime().Add(-time.Microsecond)), "just before the slow span's end")
	assert.Equal(t, time.Microsecond, a.EndTime.Sub(a.StartTime), "never zero-length")

	attrs := attrMap(a.Attributes)
	assert.Equal(t, "SNAP03", attrs[otelfr.SnapshotIDKey].AsString())
	assert.Equal(t, "http://viewer.local:8081/snapshots/SNAP03?span="+parent.SpanContext().SpanID().String(), attrs[otelfr.SnapshotURLKey].AsString())
	assert.Equal(t, parent.SpanContext().SpanID().String(), attrs[otelfr.SnapshotSpanIDKey].AsString())
	assert.Equal(t, "latency", attrs[otelfr.SnapshotReasonKey].AsString())
	assert.Equal(t, int64(64), attrs[otelfr.SnapshotSizeKey].AsInt64())
	assert.Equal(t, "2026-11-26T12:00:03Z", attrs[otelfr.SnapshotTakenAtKey].AsString())
	assert.Equal(t, info.SHA256, attrs[otelfr.SnapshotSHA256Key].AsString())
	assert.Equal(t, "2026-11-26T11:59:53Z", attrs[otelfr.SnapshotWindowStartKey].AsString())
	assert.Equal(t, "2026-11-26T12:00:03Z", attrs[otelfr.SnapshotWindowEndKey].AsString())
}

// TestAttachmentsStretchTheirTraces pins "attachments stretch their
// traces": an attachment lasted the snapshot's write, which begins after
// the slow span has ended (by the coalesce window and more), so a 200 ms
// request showed as a trace of over a second, and Jaeger warned of clock
// skew for a child that outlived its parent. The attachment must lie
// within the slow span, and the snapshot's time move to an attribute.
func TestAttachmentsStretchTheirTraces(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	mem := tracetest.NewInMemoryExporter()
	e := exporter.New(st, mem)
	snap := snaptest.Snapshot(1, 64) // taken a second after the slow span ended
	snap.WriteDuration = 30 * time.Millisecond
	info, err := e.Save(t.Context(), snap)
	require.NoError(t, err)
	slow := anomalousSpan()
	require.True(t, info.TakenAt.After(slow.EndTime()))

	require.NoError(t, e.Attach(t.Context(), info, []exporter.Anomaly{{Span: slow, Reason: "latency"}}))
	got := mem.GetSpans()
	require.Len(t, got, 1)
	a := got[0]
	assert.False(t, a.StartTime.Before(slow.StartTime()), "starts within its parent: %v < %v", a.StartTime, slow.StartTime())
	assert.False(t, a.EndTime.After(slow.EndTime()), "ends within its parent: %v > %v", a.EndTime, slow.EndTime())
	assert.True(t, a.EndTime.After(a.StartTime), "not zero-length: Jaeger would push its end past its parent's")
	assert.Equal(t, snap.TakenAt.UTC().Format(time.RFC3339Nano), attrMap(a.Attributes)[otelfr.SnapshotTakenAtKey].AsString(),
		"the snapshot's own time")
}

func TestBaseURL(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	assert.Equal(t, exporter.DefaultBaseURL+"X", exporter.New(st, nil).URL("X"))

	t.Setenv(exporter.EnvBaseURL, "https://fr.example.com/s")
	assert.Equal(t, "https://fr.example.com/s/X", exporter.New(st, nil).URL("X"))
	assert.Equal(t, "http://o/X", exporter.New(st, nil, exporter.WithBaseURL("http://o/")).URL("X"), "option beats env")
	assert.Equal(t, "https://fr.example.com/s/X", exporter.New(st, nil, exporter.WithBaseURL("not a url")).URL("X"), "a bad option is ignored")
	errs := handled.Take()
	require.Len(t, errs, 1)
	assert.ErrorContains(t, errs[0], `base URL "not a url"`, "and reported")
}

// failingExporter fails every export.
type failingExporter struct{ err error }

func (f failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return f.err }
func (f failingExporter) Shutdown(context.Context) error                             { return nil }

// hangingExporter blocks until ctx ends. If entered is not nil, it is
// closed when the first export starts.
type hangingExporter struct{ entered chan struct{} }

func (h hangingExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	if h.entered != nil {
		close(h.entered)
	}
	<-ctx.Done()
	return ctx.Err()
}
func (hangingExporter) Shutdown(context.Context) error { return nil }

func TestAttachFailures(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	anomalies := []exporter.Anomaly{{Span: anomalousSpan(), Reason: "error"}}
	info := snapstore.Info{ID: "X", TakenAt: snaptest.Epoch}

	boom := errors.New("boom")
	err = exporter.New(st, failingExporter{boom}).Attach(t.Context(), info, anomalies)
	require.ErrorIs(t, err, boom)

	e := exporter.New(st, hangingExporter{}, exporter.WithTimeout(50*time.Millisecond))
	start := time.Now()
	err = e.Attach(t.Context(), info, anomalies)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second, "the timeout bounds the wait")

	require.NoError(t, exporter.New(st, nil).Attach(t.Context(), info, anomalies), "no span exporter: nothing to do")
}

func TestExporterShutdown(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	mem := tracetest.NewInMemoryExporter()
	e := exporter.New(st, mem)
	require.NoError(t, e.Shutdown(t.Context()))
	require.NoError(t, e.Shutdown(t.Context()), "idempotent")

	_, err = e.Save(t.Context(), snaptest.Snapshot(1, 1))
	require.ErrorIs(t, err, exporter.ErrShutdown)
	err = e.Attach(t.Context(), snapstore.Info{ID: "X"}, []exporter.Anomaly{{Span: anomalousSpan()}})
	require.ErrorIs(t, err, exporter.ErrShutdown)
	assert.Empty(t, mem.GetSpans())
}

func TestExporterShutdownHonoursContext(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	entered := make(chan struct{})
	e := exporter.New(st, hangingExporter{entered}, exporter.WithTimeout(time.Hour))
	exportCtx, cancelExport := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		done <- e.Attach(exportCtx, snapstore.Info{ID: "X"}, []exporter.Anomaly{{Span: anomalousSpan()}})
	}()
	<-entered

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, e.Shutdown(ctx), context.DeadlineExceeded)
	defer cancelExport()
	require.ErrorIs(t, <-done, context.Canceled, "Shutdown cancels the export it gave up on")
}

// lateExporter counts the exports that begin after its Shutdown flag is
// set.
type lateExporter struct {
	shutdownReturned atomic.Bool
	late, exports    atomic.Int64
}

func (l *lateExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	l.exports.Add(1)
	if l.shutdownReturned.Load() {
		l.late.Add(1)
	}
	return nil
}
func (*lateExporter) Shutdown(context.Context) error { return nil }

// An Attach that passed its shutdown check just before Shutdown began then
// exported after Shutdown had returned nil, "having waited for the export
// in progress".
func TestAttachRacingShutdownExportsAfterIt(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	anomalies := []exporter.Anomaly{{Span: anomalousSpan(), Reason: "error"}}
	var late, exports int64
	for range 3000 {
		l := &lateExporter{}
		e := exporter.New(st, l)
		attached := make(chan error, 1)
		go func() { attached <- e.Attach(t.Context(), snapstore.Info{ID: "X"}, anomalies) }()
		runtime.Gosched()
		require.NoError(t, e.Shutdown(t.Context()))
		l.shutdownReturned.Store(true)
		if err := <-attached; err != nil {
			require.ErrorIs(t, err, exporter.ErrShutdown)
		}
		late += l.late.Load()
		exports += l.exports.Load()
	}
	t.Logf("%d of 3000 attachments exported before Shutdown returned", exports-late)
	assert.Zero(t, late, "exports begun after Shutdown returned")
}

func TestAttachWithoutFinishedSpan(t *testing.T) {
	st, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	mem := tracetest.NewInMemoryExporter()
	res := resource.NewSchemaless(attribute.String("service.name", "manual"))
	e := exporter.New(st, mem, exporter.WithResource(res))
	info := snapstore.Info{ID: "M1", TakenAt: snaptest.Epoch, WriteDuration: 7 * time.Millisecond}
	current := anomalousSpan().SpanContext()

	require.NoError(t, e.Attach(t.Context(), info, []exporter.Anomaly{
		{Reason: "signal"},
		{Parent: current, Reason: "manual",
			Attributes: []attribute.KeyValue{analysis.DiagnosisVerdictKey.String("all good")},
			Events:     []sdktrace.Event{{Name: analysis.EpisodeEventName, Time: snaptest.Epoch}}},
	}))
	got := mem.GetSpans()
	require.Len(t, got, 2)

	own := got[0]
	assert.True(t, own.SpanContext.IsValid(), "a trace of its own")
	assert.True(t, own.SpanContext.IsSampled())
	assert.False(t, own.Parent.IsValid(), "a root span")
	assert.Empty(t, own.Links)
	assert.Equal(t, res, own.Resource)
	assert.Equal(t, "signal", attrMap(own.Attributes)[otelfr.SnapshotReasonKey].AsString())
	sid, ok := attrMap(own.Attributes)[otelfr.SnapshotSpanIDKey]
	assert.True(t, ok && sid.AsString() == "", "no span: empty, so that a link template still resolves; got %v", sid)
	for _, a := range got {
		assert.True(t, a.StartTime.Equal(snaptest.Epoch), "%s: from the snapshot's write", a.Name)
		assert.Equal(t, 7*time.Millisecond, a.EndTime.Sub(a.StartTime), "for its duration")
	}

	child := got[1]
	assert.Equal(t, current.TraceID(), child.SpanContext.TraceID())
	assert.Equal(t, current, child.Parent)
	require.Len(t, child.Links, 1)
	assert.Equal(t, "all good", attrMap(child.Attributes)[analysis.DiagnosisVerdictKey].AsString())
	assert.Equal(t, current.SpanID().String(), attrMap(child.Attributes)[otelfr.SnapshotSpanIDKey].AsString(), "the current span's page")
	require.Len(t, child.Events, 1)
	assert.Equal(t, analysis.EpisodeEventName, child.Events[0].Name)
}

// saveOnly is a store that is not a snapstore.Creator: it takes whole
// snapshots.
type saveOnly struct {
	snapstore.Store
	saved []*otelfr.Snapshot
}

func (s *saveOnly) Save(ctx context.Context, snap *otelfr.Snapshot) (snapstore.Info, error) {
	s.saved = append(s.saved, snap)
	return s.Store.Save(ctx, snap)
}

func TestCreate(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB: several blocks
	sum := sha256.Sum256(data)
	snap := &otelfr.Snapshot{ID: "SNAP1", SHA256: hex.EncodeToString(sum[:]), TakenAt: time.Now()}
	dir, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	for _, tt := range []struct {
		name  string
		store snapstore.Store
	}{
		{"Creator", dir},
		{"SaveOnly", &saveOnly{Store: dir}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := exporter.New(tt.store, nil)
			w, err := e.Create(t.Context())
			require.NoError(t, err)
			for p := 0; p < len(data); p += 100_000 {
				_, err := w.Write(data[p:min(p+100_000, len(data))])
				require.NoError(t, err)
			}
			info, err := w.Commit(t.Context(), snap)
			require.NoError(t, err)
			assert.Equal(t, int64(len(data)), info.Size)
			assert.Equal(t, snap.SHA256, info.SHA256)
			r, err := e.Open(t.Context(), "SNAP1")
			require.NoError(t, err)
			got, err := io.ReadAll(r)
			require.NoError(t, err)
			require.NoError(t, r.Close())
			assert.Equal(t, data, got)
			if so, ok := tt.store.(*saveOnly); ok {
				require.Len(t, so.saved, 1)
				assert.Equal(t, data, so.saved[0].Data, "a store without Create gets the whole trace in Save")
			}

			// Shutdown overtakes a snapshot being written.
			w, err = e.Create(t.Context())
			require.NoError(t, err)
			require.NoError(t, e.Shutdown(t.Context()))
			_, err = w.Commit(t.Context(), snap)
			require.ErrorIs(t, err, exporter.ErrShutdown)
			_, err = e.Create(t.Context())
			require.ErrorIs(t, err, exporter.ErrShutdown)
		})
	}
}
