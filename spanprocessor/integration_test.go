package spanprocessor_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
	"github.com/otelfr/otel-flightrecorder/viewer"
)

// TestOTLPIntegration runs the whole pipeline against a real OTLP/gRPC
// receiver: a span slowed by real mutex contention goes in; out come the
// decorated span and its attachment span, and the snapshot behind the
// URL parses as a Go execution trace.
func TestOTLPIntegration(t *testing.T) {
	recv := otlptest.NewReceiver(t)
	rec, err := otelfr.Start()
	require.NoError(t, err)
	defer rec.Stop(context.Background())

	store, err := snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", viewer.NewHandler(store)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	otlp, err := otlptracegrpc.New(t.Context(), otlptracegrpc.WithEndpoint(recv.Endpoint()), otlptracegrpc.WithInsecure())
	require.NoError(t, err)
	proc := spanprocessor.New(
		sdktrace.NewBatchSpanProcessor(otlp, sdktrace.WithBatchTimeout(50*time.Millisecond)),
		rec,
		exporter.New(store, otlp, exporter.WithBaseURL(srv.URL+"/snapshots/")),
		spanprocessor.WithLatencyThreshold(50*time.Millisecond),
	)
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(proc),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "integration"))),
	)
	tracer := tp.Tracer("integration")

	_, fast := tracer.Start(t.Context(), "fast")
	fast.End()

	var mu sync.Mutex
	held := make(chan struct{})
	go func() {
		mu.Lock()
		close(held)
		time.Sleep(80 * time.Millisecond)
		mu.Unlock()
	}()
	<-held
	_, slow := tracer.Start(t.Context(), "slow")
	mu.Lock() // waits for the holder
	//lint:ignore SA2001 waiting for the lock is the point
	mu.Unlock()
	slow.End()

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	require.NoError(t, tp.Shutdown(ctx))
	got := map[string]otlptest.Span{}
	for _, s := range recv.Spans() {
		got[s.Name] = s
	}
	require.Contains(t, got, "slow")
	require.Contains(t, got, "fast")
	require.Contains(t, got, otelfr.AttachmentSpanName)

	s, att := got["slow"], got[otelfr.AttachmentSpanName]
	id := s.Attributes[string(otelfr.SnapshotIDKey)]
	require.NotNil(t, id)
	url := s.Attributes[string(otelfr.SnapshotURLKey)].(string)
	assert.Equal(t, srv.URL+"/snapshots/"+id.(string)+"?span="+s.SpanID, url)
	assert.NotContains(t, got["fast"].Attributes, string(otelfr.SnapshotIDKey))

	assert.Equal(t, s.TraceID, att.TraceID)
	assert.Equal(t, s.SpanID, att.ParentSpanID)
	require.Len(t, att.Links, 1)
	assert.Equal(t, s.SpanID, att.Links[0].SpanID)
	assert.Equal(t, "integration", att.Resource["service.name"])
	for _, k := range []attribute.Key{otelfr.SnapshotIDKey, otelfr.SnapshotURLKey, otelfr.SnapshotReasonKey,
		otelfr.SnapshotSizeKey, otelfr.SnapshotSHA256Key, otelfr.SnapshotWindowStartKey, otelfr.SnapshotWindowEndKey} {
		assert.Contains(t, att.Attributes, string(k))
	}

	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, att.Attributes[string(otelfr.SnapshotSizeKey)], int64(len(data)))
	var sawSpanTask bool
	for _, ev := range testutil.ReadTrace(t, data) {
		if ev.Kind() == xtrace.EventTaskBegin && ev.Task().Type == "slow" {
			sawSpanTask = true
		}
	}
	assert.True(t, sawSpanTask, "the SDK's task for the slow span is in the snapshot")
}
