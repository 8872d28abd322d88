package otlptest_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/otelfr/otel-flightrecorder/internal/otlptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests so a broken receiver fails the
// test instead of hanging it.
const waitTimeout = 10 * time.Second

// noRetry disables the exporter's own retries so fault-injection tests are
// deterministic.
var noRetry = otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false})

// newExporter returns an insecure otlptracegrpc exporter aimed at r. It is
// shut down when the test ends (after any TracerProvider using it, and before
// the receiver).
func newExporter(t *testing.T, r *otlptest.Receiver, opts ...otlptracegrpc.Option) *otlptrace.Exporter {
	t.Helper()
	opts = append([]otlptracegrpc.Option{
		otlptracegrpc.WithEndpoint(r.Endpoint()),
		otlptracegrpc.WithInsecure(),
	}, opts...)
	exp, err := otlptracegrpc.New(t.Context(), opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		// A TracerProvider may already have shut the exporter down.
		_ = exp.Shutdown(ctx)
	})
	return exp
}

// newProvider returns a TracerProvider that is shut down when the test ends.
func newProvider(t *testing.T, opts ...sdktrace.TracerProviderOption) *sdktrace.TracerProvider {
	t.Helper()
	tp := sdktrace.NewTracerProvider(opts...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = tp.Shutdown(ctx)
	})
	return tp
}

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

func atLeast(n int) func([]otlptest.Span) bool {
	return func(s []otlptest.Span) bool { return len(s) >= n }
}

func byName(t *testing.T, spans []otlptest.Span, name string) otlptest.Span {
	t.Helper()
	for _, s := range spans {
		if s.Name == name {
			return s
		}
	}
	require.Failf(t, "span not found", "no span named %q in %d spans", name, len(spans))
	return otlptest.Span{}
}

func TestEndpointIsLoopback(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t)

	host, port, err := net.SplitHostPort(r.Endpoint())
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", host)
	require.NotEqual(t, "0", port)
	require.Zero(t, r.Requests())
	require.Empty(t, r.Spans())
}

func TestSpansRoundTrip(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t)
	exp := newExporter(t, r)
	tp := newProvider(t,
		sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(
			attribute.String("service.name", "otlptest-svc"),
			attribute.Int("res.int", 7),
		)),
	)
	tracer := tp.Tracer("otlptest/scope")

	// Start waiting before anything is emitted: WaitForSpans must be woken
	// by the exports rather than find the spans already there.
	type result struct {
		spans []otlptest.Span
		err   error
	}
	done := make(chan result, 1)
	go func() {
		spans, err := r.WaitForSpans(waitCtx(t), atLeast(3))
		done <- result{spans, err}
	}()

	start := time.Unix(1_700_000_000, 123_456_789)
	end := start.Add(1500 * time.Millisecond)
	eventTime := start.Add(250 * time.Millisecond)

	_, linked := tracer.Start(t.Context(), "linked")
	linked.End()
	linkedSC := linked.SpanContext()

	ctx, parent := tracer.Start(t.Context(), "parent",
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithTimestamp(start),
		trace.WithAttributes(
			attribute.String("str", "v"),
			attribute.Int64("int", 42),
			attribute.Float64("float", 2.5),
			attribute.Bool("bool", true),
			attribute.StringSlice("strs", []string{"a", "b"}),
			attribute.Int64Slice("ints", []int64{1, 2}),
			attribute.Float64Slice("floats", []float64{0.5}),
			attribute.BoolSlice("bools", []bool{true, false}),
		),
		trace.WithLinks(trace.Link{
			SpanContext: linkedSC,
			Attributes:  []attribute.KeyValue{attribute.String("link.attr", "l")},
		}),
	)
	parent.AddEvent("something happened",
		trace.WithTimestamp(eventTime),
		trace.WithAttributes(attribute.Int("event.attr", 3)),
	)
	parent.SetStatus(otelcodes.Error, "boom")

	_, child := tracer.Start(ctx, "child", trace.WithSpanKind(trace.SpanKindClient))
	child.End()
	parent.End(trace.WithTimestamp(end))

	res := <-done
	require.NoError(t, res.err)
	require.Len(t, res.spans, 3)
	require.Equal(t, res.spans, r.Spans())
	require.Equal(t, 3, r.Requests(), "the syncer exports each span on its own")

	p := byName(t, res.spans, "parent")
	psc := parent.SpanContext()
	require.Equal(t, psc.TraceID().String(), p.TraceID)
	require.Equal(t, psc.SpanID().String(), p.SpanID)
	require.Empty(t, p.ParentSpanID, "root span")
	require.Equal(t, tracepb.Span_SPAN_KIND_SERVER, p.Kind)
	require.True(t, start.Equal(p.StartTime), "start %v != %v", p.StartTime, start)
	require.True(t, end.Equal(p.EndTime), "end %v != %v", p.EndTime, end)
	require.Equal(t, map[string]any{
		"str":    "v",
		"int":    int64(42),
		"float":  2.5,
		"bool":   true,
		"strs":   []any{"a", "b"},
		"ints":   []any{int64(1), int64(2)},
		"floats": []any{0.5},
		"bools":  []any{true, false},
	}, p.Attributes)
	require.Equal(t, []otlptest.Link{{
		TraceID:    linkedSC.TraceID().String(),
		SpanID:     linkedSC.SpanID().String(),
		Attributes: map[string]any{"link.attr": "l"},
	}}, p.Links)
	require.Len(t, p.Events, 1)
	require.Equal(t, "something happened", p.Events[0].Name)
	require.True(t, eventTime.Equal(p.Events[0].Time), "event time %v != %v", p.Events[0].Time, eventTime)
	require.Equal(t, map[string]any{"event.attr": int64(3)}, p.Events[0].Attributes)
	require.Equal(t, tracepb.Status_STATUS_CODE_ERROR, p.StatusCode)
	require.Equal(t, "boom", p.StatusMessage)
	require.Equal(t, "otlptest-svc", p.Resource["service.name"])
	require.Equal(t, int64(7), p.Resource["res.int"])
	require.Equal(t, "otlptest/scope", p.ScopeName)

	c := byName(t, res.spans, "child")
	require.Equal(t, p.TraceID, c.TraceID)
	require.Equal(t, p.SpanID, c.ParentSpanID)
	require.Equal(t, tracepb.Span_SPAN_KIND_CLIENT, c.Kind)
	require.Equal(t, tracepb.Status_STATUS_CODE_UNSET, c.StatusCode)
	require.Nil(t, c.Attributes)
	require.Nil(t, c.Links)
	require.Nil(t, c.Events)
	require.False(t, c.StartTime.IsZero())
	require.False(t, c.EndTime.Before(c.StartTime))

	l := byName(t, res.spans, "linked")
	require.Equal(t, linkedSC.TraceID().String(), l.TraceID)
	require.NotEqual(t, p.TraceID, l.TraceID)
}

func TestSpansReturnsCopies(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t)
	tp := newProvider(t, sdktrace.WithSyncer(newExporter(t, r)))

	_, span := tp.Tracer("copy").Start(t.Context(), "s", trace.WithAttributes(attribute.String("k", "v")))
	span.End()

	first, err := r.WaitForSpans(waitCtx(t), atLeast(1))
	require.NoError(t, err)
	first[0].Name = "mutated"
	first[0].Attributes["k"] = "mutated"
	first[0].Resource["service.name"] = "mutated"

	again := r.Spans()
	require.Equal(t, "s", again[0].Name)
	require.Equal(t, "v", again[0].Attributes["k"])
	require.NotEqual(t, "mutated", again[0].Resource["service.name"])
}

func TestBatcherForceFlush(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t)
	tp := newProvider(t, sdktrace.WithBatcher(newExporter(t, r), sdktrace.WithBatchTimeout(time.Hour)))
	tracer := tp.Tracer("batch")

	const n = 25
	for range n {
		_, s := tracer.Start(t.Context(), "batched")
		s.End()
	}
	require.NoError(t, tp.ForceFlush(waitCtx(t)))

	spans := r.Spans()
	require.Len(t, spans, n)
	require.Equal(t, 1, r.Requests(), "one batch")
	seen := map[string]bool{}
	for _, s := range spans {
		require.Equal(t, "batched", s.Name)
		require.Equal(t, "batch", s.ScopeName)
		require.Len(t, s.SpanID, 16)
		require.Len(t, s.TraceID, 32)
		seen[s.SpanID] = true
	}
	require.Len(t, seen, n, "span IDs are distinct")
}

// TestEndpointFromEnv uses t.Setenv, so it cannot run in parallel.
func TestEndpointFromEnv(t *testing.T) {
	r := otlptest.NewReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+r.Endpoint())

	exp, err := otlptracegrpc.New(t.Context())
	require.NoError(t, err)
	tp := newProvider(t, sdktrace.WithSyncer(exp))

	_, s := tp.Tracer("env").Start(t.Context(), "via-env")
	s.End()

	spans, err := r.WaitForSpans(waitCtx(t), atLeast(1))
	require.NoError(t, err)
	require.Equal(t, "via-env", spans[0].Name)
}

// TestRawRequestValueTypes sends a hand-built request to cover the OTLP
// value types the Go SDK never produces.
func TestRawRequestValueTypes(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t)

	conn, err := grpc.NewClient(r.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	str := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "r", Value: str("rv")}}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "raw"},
			Spans: []*tracepb.Span{{
				TraceId:      []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10},
				SpanId:       []byte{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11},
				ParentSpanId: make([]byte, 8), // all zero: no parent
				Name:         "raw-span",
				Attributes: []*commonpb.KeyValue{
					{Key: "bytes", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte("hi")}}},
					{Key: "kv", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
						Values: []*commonpb.KeyValue{{Key: "inner", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{
							ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{str("x"), {Value: &commonpb.AnyValue_IntValue{IntValue: 9}}}},
						}}}},
					}}}},
					{Key: "empty", Value: &commonpb.AnyValue{}},
					{Key: "nil"},
				},
			}},
		}},
	}}}

	_, err = coltracepb.NewTraceServiceClient(conn).Export(waitCtx(t), req)
	require.NoError(t, err)

	require.Equal(t, []otlptest.Span{{
		TraceID: "0102030405060708090a0b0c0d0e0f10",
		SpanID:  "aabbccddeeff0011",
		Name:    "raw-span",
		Kind:    tracepb.Span_SPAN_KIND_UNSPECIFIED,
		Attributes: map[string]any{
			"bytes": []byte("hi"),
			"kv":    map[string]any{"inner": []any{"x", int64(9)}},
			"empty": nil,
			"nil":   nil,
		},
		Resource:  map[string]any{"r": "rv"},
		ScopeName: "raw",
	}}, r.Spans())
}

func TestWaitForSpansHonoursContext(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	spans, err := r.WaitForSpans(ctx, atLeast(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Empty(t, spans)
}

func TestWaitForSpansReturnsOnClose(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t)

	errc := make(chan error, 1)
	go func() {
		_, err := r.WaitForSpans(waitCtx(t), atLeast(1))
		errc <- err
	}()
	r.Close()
	err := <-errc
	require.Error(t, err)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
	require.Contains(t, err.Error(), "closed")
}

func TestWithExportErrorFailsForceFlush(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t, otlptest.WithExportError(codes.PermissionDenied))
	tp := newProvider(t, sdktrace.WithBatcher(newExporter(t, r), sdktrace.WithBatchTimeout(time.Hour)))

	_, s := tp.Tracer("err").Start(t.Context(), "rejected")
	s.End()

	err := tp.ForceFlush(waitCtx(t))
	require.Error(t, err)
	require.Equal(t, codes.PermissionDenied, status.Code(err), "error: %v", err)
	require.Equal(t, 1, r.Requests(), "PermissionDenied is not retried")
	require.Empty(t, r.Spans(), "rejected spans are not recorded")
}

func TestWithExportErrorFailsExportSpans(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t, otlptest.WithExportError(codes.InvalidArgument))
	exp := newExporter(t, r)

	err := exp.ExportSpans(waitCtx(t), tracetest.SpanStubs{{Name: "direct"}}.Snapshots())
	require.Error(t, err)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "error: %v", err)
	require.Equal(t, 1, r.Requests())
}

func TestWithExportErrorRetryable(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t, otlptest.WithExportError(codes.Unavailable))
	exp := newExporter(t, r, otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{
		Enabled:         true,
		InitialInterval: 5 * time.Millisecond,
		MaxInterval:     10 * time.Millisecond,
		MaxElapsedTime:  300 * time.Millisecond,
	}))

	err := exp.ExportSpans(waitCtx(t), tracetest.SpanStubs{{Name: "retried"}}.Snapshots())
	require.Error(t, err)
	require.Equal(t, codes.Unavailable, status.Code(err), "error: %v", err)
	require.Greater(t, r.Requests(), 1, "Unavailable is retried by the exporter")
	require.Empty(t, r.Spans())
}

// TestWithExportErrorOnShutdown replaces the global otel error handler, so it
// cannot run in parallel.
func TestWithExportErrorOnShutdown(t *testing.T) {
	handled := make(chan error, 16)
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		select {
		case handled <- err:
		default:
		}
	}))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })

	r := otlptest.NewReceiver(t, otlptest.WithExportError(codes.PermissionDenied))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(
		newExporter(t, r, noRetry), sdktrace.WithBatchTimeout(time.Hour)))

	_, s := tp.Tracer("shutdown").Start(t.Context(), "pending")
	s.End()

	// The batch processor exports the pending batch during Shutdown but
	// routes that export's error to otel.Handle rather than returning it.
	require.NoError(t, tp.Shutdown(waitCtx(t)))
	require.Equal(t, 1, r.Requests())
	select {
	case err := <-handled:
		require.Equal(t, codes.PermissionDenied, status.Code(err), "error: %v", err)
	default:
		require.Fail(t, "Shutdown's export error did not reach otel.Handle")
	}
}

func TestWithHangHonoursForceFlushDeadline(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t, otlptest.WithHang())
	tp := newProvider(t, sdktrace.WithBatcher(newExporter(t, r, noRetry), sdktrace.WithBatchTimeout(time.Hour)))

	_, s := tp.Tracer("hang").Start(t.Context(), "stuck")
	s.End()

	ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := tp.ForceFlush(ctx)
	// Depending on which notices the deadline first, ForceFlush returns
	// either its own ctx.Err() or the export's DeadlineExceeded status.
	require.True(t, errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded,
		"error: %v", err)
	require.Less(t, time.Since(began), 5*time.Second)

	// The request did reach the receiver and was held there.
	_, err = r.WaitForSpans(waitCtx(t), func([]otlptest.Span) bool { return r.Requests() == 1 })
	require.NoError(t, err)
	require.Empty(t, r.Spans())
}

func TestWithHangHonoursExporterTimeout(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t, otlptest.WithHang())
	exp := newExporter(t, r, noRetry, otlptracegrpc.WithTimeout(200*time.Millisecond))

	began := time.Now()
	err := exp.ExportSpans(t.Context(), tracetest.SpanStubs{{Name: "stuck"}}.Snapshots())
	require.Error(t, err)
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "error: %v", err)
	require.Less(t, time.Since(began), 5*time.Second)
	require.Equal(t, 1, r.Requests())
}

func TestCloseReleasesHungExport(t *testing.T) {
	t.Parallel()
	r := otlptest.NewReceiver(t, otlptest.WithHang())
	exp := newExporter(t, r, noRetry)

	errc := make(chan error, 1)
	go func() {
		// No deadline: only Close can end this export.
		errc <- exp.ExportSpans(context.WithoutCancel(t.Context()), tracetest.SpanStubs{{Name: "stuck"}}.Snapshots())
	}()
	_, err := r.WaitForSpans(waitCtx(t), func([]otlptest.Span) bool { return r.Requests() == 1 })
	require.NoError(t, err)

	r.Close()
	r.Close() // idempotent; the test cleanup calls it a third time

	select {
	case err := <-errc:
		require.Error(t, err)
		require.Equal(t, codes.Unavailable, status.Code(err), "error: %v", err)
	case <-time.After(waitTimeout):
		require.Fail(t, "export still hung after Close")
	}
	require.Equal(t, 1, r.Requests())

	// A closed receiver refuses new exports.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err = exp.ExportSpans(ctx, tracetest.SpanStubs{{Name: "late"}}.Snapshots())
	require.Error(t, err)
	require.Equal(t, 1, r.Requests())
}
