package spanprocessor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// Tests that start a recorder run one at a time: the runtime allows one
// flight recorder per process.

type pipeline struct {
	next  *recordingProcessor
	mem   *tracetest.InMemoryExporter
	store *snapstore.DirStore
	rec   *otelfr.Recorder
	proc  *spanprocessor.Processor
	tp    *sdktrace.TracerProvider
}

func newPipeline(t *testing.T, recOpts []otelfr.Option, opts ...spanprocessor.Option) *pipeline {
	t.Helper()
	p := &pipeline{next: newRecordingProcessor(), mem: tracetest.NewInMemoryExporter()}
	rec, err := otelfr.Start(append([]otelfr.Option{otelfr.WithMinAge(time.Second)}, recOpts...)...)
	require.NoError(t, err)
	p.rec = rec
	t.Cleanup(func() { _ = rec.Stop(context.Background()) })
	// The test spans are back-dated by up to 100ms: let the recorder's
	// window reach that far.
	time.Sleep(100 * time.Millisecond)
	p.store, err = snapstore.NewDirStore(t.TempDir())
	require.NoError(t, err)
	p.proc = spanprocessor.New(p.next, rec, exporter.New(p.store, p.mem), opts...)
	p.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p.proc))
	t.Cleanup(func() { _ = p.tp.Shutdown(context.Background()) })
	return p
}

// span starts and ends a span that lasts d.
func (p *pipeline) span(name string, d time.Duration, opts ...func(trace.Span)) {
	end := time.Now()
	_, s := p.tp.Tracer("test").Start(context.Background(), name, trace.WithTimestamp(end.Add(-d)))
	for _, o := range opts {
		o(s)
	}
	s.End(trace.WithTimestamp(end))
}

func failed(s trace.Span) { s.SetStatus(codes.Error, "boom") }

func TestTriggers(t *testing.T) {
	tests := []struct {
		name       string
		opts       []spanprocessor.Option
		span       string
		d          time.Duration
		err        bool
		wantReason string // "" means not anomalous
	}{
		{"fast", nil, "a", time.Millisecond, false, ""},
		{"default threshold", nil, "a", spanprocessor.DefaultLatencyThreshold, false, "latency"},
		{"below default", nil, "a", spanprocessor.DefaultLatencyThreshold - time.Millisecond, false, ""},
		{"error", nil, "a", time.Millisecond, true, "error"},
		{"error wins over latency", nil, "a", time.Hour, true, "error"},
		{"error trigger off", []spanprocessor.Option{spanprocessor.WithErrorTrigger(false)}, "a", time.Millisecond, true, ""},
		{"global threshold", []spanprocessor.Option{spanprocessor.WithLatencyThreshold(10 * time.Millisecond)}, "a", 10 * time.Millisecond, false, "latency"},
		{"global off", []spanprocessor.Option{spanprocessor.WithLatencyThreshold(0)}, "a", time.Hour, false, ""},
		{"per name", []spanprocessor.Option{spanprocessor.WithSpanNameThreshold("a", 5*time.Millisecond)}, "a", 6 * time.Millisecond, false, "latency"},
		{"per name, other span", []spanprocessor.Option{spanprocessor.WithSpanNameThreshold("a", 5*time.Millisecond)}, "b", 6 * time.Millisecond, false, ""},
		{"per name exempt", []spanprocessor.Option{spanprocessor.WithSpanNameThreshold("report", 0)}, "report", time.Hour, false, ""},
		{"predicate", []spanprocessor.Option{spanprocessor.WithPredicate(func(s sdktrace.ReadOnlySpan) (string, bool) {
			return "cache_miss", s.Name() == "a"
		})}, "a", time.Millisecond, false, "cache_miss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(0)}, tt.opts...)
			var o []func(trace.Span)
			if tt.err {
				o = append(o, failed)
			}
			p.span(tt.span, tt.d, o...)
			require.NoError(t, p.proc.ForceFlush(t.Context()))
			got := p.next.spans()[tt.span]
			require.NotNil(t, got, "every span is forwarded")
			reason, ok := attr(got, otelfr.SnapshotReasonKey)
			if tt.wantReason == "" {
				assert.False(t, ok, "a normal span is not decorated")
				assert.Zero(t, p.proc.Stats().Anomalies)
				return
			}
			assert.Equal(t, tt.wantReason, reason)
			// A span that started before the recorder is linked too,
			// partly covered (issue 16).
			_, linked := attr(got, otelfr.SnapshotIDKey)
			assert.True(t, linked)
		})
	}
}

func TestEnvThreshold(t *testing.T) {
	t.Setenv(spanprocessor.EnvLatencyThreshold, "20ms")
	p := newPipeline(t, nil)
	p.span("slow", 25*time.Millisecond)
	p.span("fast", 15*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	assert.Equal(t, int64(1), p.proc.Stats().Anomalies)
}

func TestDecoration(t *testing.T) {
	var outcomes []spanprocessor.Outcome
	var mu sync.Mutex
	p := newPipeline(t, nil,
		spanprocessor.WithLatencyThreshold(50*time.Millisecond),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			mu.Lock()
			outcomes = append(outcomes, o)
			mu.Unlock()
		}))
	p.span("slow", 60*time.Millisecond, func(s trace.Span) { s.SetAttributes(attribute.String("http.route", "/slow")) })
	p.span("fast", time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	spans := p.next.spans()
	slow := spans["slow"]
	id, ok := attr(slow, otelfr.SnapshotIDKey)
	require.True(t, ok)
	url, _ := attr(slow, otelfr.SnapshotURLKey)
	assert.Equal(t, exporter.DefaultBaseURL+id+"?span="+slow.SpanContext().SpanID().String(), url, "the span page")
	route, _ := attr(slow, "http.route")
	assert.Equal(t, "/slow", route, "the span's own attributes are kept")
	assert.Len(t, spans["fast"].Attributes(), 0)

	// The snapshot is stored and covers the span.
	_, info, err := p.store.Open(t.Context(), id)
	require.NoError(t, err)
	assert.False(t, slow.StartTime().Before(info.WindowStart))
	assert.False(t, slow.EndTime().After(info.WindowEnd))

	// Its attachment went to the span exporter.
	att := p.mem.GetSpans()
	require.Len(t, att, 1)
	assert.Equal(t, slow.SpanContext(), att[0].Parent)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, outcomes, 1)
	assert.Equal(t, id, outcomes[0].SnapshotID)
	assert.Equal(t, url, outcomes[0].SnapshotURL)
	assert.Equal(t, "latency", outcomes[0].Reason)
	assert.Empty(t, outcomes[0].Skipped)

	st := p.proc.Stats()
	assert.Equal(t, int64(1), st.Anomalies)
	assert.Equal(t, int64(1), st.Snapshots)
	assert.Equal(t, info.Size, st.SnapshotBytes)
	assert.Equal(t, int64(1), st.Linked)
	assert.Empty(t, st.Skipped)
	assert.Empty(t, st.Errors)
}

func TestCoalescing(t *testing.T) {
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(time.Hour)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCoalesceWindow(200*time.Millisecond))
	for i := range 5 {
		p.span(fmt.Sprint("slow", i), 20*time.Millisecond)
	}
	p.next.waitFor(5)
	require.NoError(t, p.proc.ForceFlush(t.Context())) // let the attachments finish

	ids := map[string]bool{}
	for name, s := range p.next.spans() {
		id, ok := attr(s, otelfr.SnapshotIDKey)
		require.True(t, ok, name)
		ids[id] = true
	}
	assert.Len(t, ids, 1, "anomalies that arrive together share one snapshot")
	assert.Len(t, p.mem.GetSpans(), 5, "one attachment per anomalous span")
	assert.Equal(t, int64(1), p.proc.Stats().Snapshots)
}

func TestReuseOfCoveringSnapshot(t *testing.T) {
	// A span that ended before the latest snapshot was taken is linked to
	// it, even though it reached the worker later and the rate limit
	// forbids a new snapshot.
	release := make(chan struct{})
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(time.Hour)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCoalesceWindow(0))
	blocking := true
	p.next.block = func(s sdktrace.ReadOnlySpan) <-chan struct{} {
		if s.Name() == "first" && blocking {
			blocking = false
			return release
		}
		return nil
	}
	p.span("first", 20*time.Millisecond)
	// The worker now holds "first" in the blocked OnEnd, its snapshot
	// taken. A span ended before that snapshot...
	end := time.Now().Add(-time.Millisecond)
	waitStats(t, p.proc, func(s spanprocessor.Stats) bool { return s.Snapshots == 1 })
	_, s := p.tp.Tracer("test").Start(context.Background(), "second", trace.WithTimestamp(end.Add(-20*time.Millisecond)))
	s.End(trace.WithTimestamp(end))
	// ...and one after it.
	p.span("third", 20*time.Millisecond)
	close(release)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	spans := p.next.spans()
	first, _ := attr(spans["first"], otelfr.SnapshotIDKey)
	second, _ := attr(spans["second"], otelfr.SnapshotIDKey)
	assert.Equal(t, first, second)
	skipped, _ := attr(spans["third"], spanprocessor.SnapshotSkippedKey)
	assert.Equal(t, spanprocessor.SkipRateLimited, skipped)
	reason, _ := attr(spans["third"], otelfr.SnapshotReasonKey)
	assert.Equal(t, "latency", reason)
}

func waitStats(t *testing.T, p *spanprocessor.Processor, cond func(spanprocessor.Stats) bool) {
	t.Helper()
	require.Eventually(t, func() bool { return cond(p.Stats()) }, 10*time.Second, time.Millisecond)
}

func TestRateLimitedSpansAreMarkedSkipped(t *testing.T) {
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(time.Hour)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond))
	p.span("a", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	time.Sleep(5 * time.Millisecond) // end after the first snapshot's window
	p.span("b", 20*time.Millisecond)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	spans := p.next.spans()
	_, ok := attr(spans["a"], otelfr.SnapshotIDKey)
	assert.True(t, ok)
	skipped, _ := attr(spans["b"], spanprocessor.SnapshotSkippedKey)
	assert.Equal(t, spanprocessor.SkipRateLimited, skipped)
	_, ok = attr(spans["b"], otelfr.SnapshotIDKey)
	assert.False(t, ok)
	assert.Len(t, p.mem.GetSpans(), 1, "no attachment for a skipped span")
}

func TestSpanOutsideWindow(t *testing.T) {
	p := newPipeline(t, nil, spanprocessor.WithLatencyThreshold(10*time.Millisecond))
	// Started and ended long before the recorder: the window does not
	// reach it.
	end := time.Now().Add(-time.Hour)
	_, s := p.tp.Tracer("test").Start(context.Background(), "old", trace.WithTimestamp(end.Add(-time.Minute)))
	s.End(trace.WithTimestamp(end))
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	skipped, _ := attr(p.next.spans()["old"], spanprocessor.SnapshotSkippedKey)
	assert.Equal(t, spanprocessor.SkipOutsideWindow, skipped)
	assert.Empty(t, p.mem.GetSpans())
}

// TestSpanLongerThanWindow pins issue 16, item 6: a span that began before
// the window but ended in it is linked, marked partial, and its tail
// diagnosed, where it used to be skipped as outside_window.
func TestSpanLongerThanWindow(t *testing.T) {
	var outcomes []spanprocessor.Outcome
	p := newPipeline(t, nil, spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithDiagnoser(analysis.NewDiagnoser()),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) { outcomes = append(outcomes, o) }))
	// Started an hour before the recorder; the window holds its last
	// 100 ms, asleep.
	_, s := p.tp.Tracer("test").Start(context.Background(), "long", trace.WithTimestamp(time.Now().Add(-time.Hour)))
	time.Sleep(50 * time.Millisecond)
	s.End()
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	got := p.next.spans()["long"]
	_, linked := attr(got, otelfr.SnapshotIDKey)
	assert.True(t, linked, "linked to the snapshot")
	_, skipped := attr(got, spanprocessor.SnapshotSkippedKey)
	assert.False(t, skipped)
	require.Len(t, outcomes, 1)
	assert.True(t, outcomes[0].Partial)
	att := p.mem.GetSpans()
	require.Len(t, att, 1)
	status, _ := attrMapOf(att[0].Attributes)[analysis.DiagnosisStatusKey]
	assert.Equal(t, string(analysis.StatusPartial), status, "the diagnosis covers the tail")
	assert.Contains(t, outcomes[0].Verdict, "partial")
}

func TestQueueFull(t *testing.T) {
	release := make(chan struct{})
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(0)},
		spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithQueueSize(2),
		spanprocessor.WithCoalesceWindow(0))
	p.next.block = func(s sdktrace.ReadOnlySpan) <-chan struct{} {
		if s.Name() == "blocker" {
			return release
		}
		return nil
	}
	p.span("blocker", 20*time.Millisecond)
	waitStats(t, p.proc, func(s spanprocessor.Stats) bool { return s.Snapshots == 1 })
	// The worker is stuck forwarding "blocker"; the queue holds two.
	for i := range 5 {
		p.span(fmt.Sprint("s", i), 20*time.Millisecond)
	}
	assert.Equal(t, int64(3), p.proc.Stats().Skipped[spanprocessor.SkipQueueFull])
	close(release)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	full := 0
	for name, s := range p.next.spans() {
		if v, _ := attr(s, spanprocessor.SnapshotSkippedKey); v == spanprocessor.SkipQueueFull {
			full++
			continue
		}
		_, linked := attr(s, otelfr.SnapshotIDKey)
		assert.True(t, linked, name)
	}
	assert.Equal(t, 3, full)
	assert.Equal(t, 6, p.next.count(), "every span is forwarded once")
}

func TestShutdown(t *testing.T) {
	p := newPipeline(t, nil, spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCoalesceWindow(time.Hour))
	p.span("slow", 20*time.Millisecond)
	// The anomaly waits for the (long) coalesce window; Shutdown must
	// handle it rather than lose it.
	require.NoError(t, p.proc.Shutdown(t.Context()))
	_, ok := attr(p.next.spans()["slow"], otelfr.SnapshotIDKey)
	assert.True(t, ok)
	assert.Len(t, p.mem.GetSpans(), 1)
	assert.Equal(t, 1, p.next.shutdowns)

	require.NoError(t, p.proc.Shutdown(t.Context()), "idempotent")
	assert.Equal(t, 1, p.next.shutdowns, "the wrapped processor is shut down once")
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	// After Shutdown, spans are ignored.
	p.proc.OnEnd(p.next.spans()["slow"])
	assert.Equal(t, 1, p.next.count())
}

func TestShutdownAfterRecorderStopped(t *testing.T) {
	p := newPipeline(t, nil, spanprocessor.WithLatencyThreshold(10*time.Millisecond),
		spanprocessor.WithCoalesceWindow(time.Hour))
	p.span("slow", 20*time.Millisecond)
	require.NoError(t, p.rec.Stop(t.Context()))
	require.NoError(t, p.proc.Shutdown(t.Context()))
	skipped, _ := attr(p.next.spans()["slow"], spanprocessor.SnapshotSkippedKey)
	assert.Equal(t, spanprocessor.SkipStopped, skipped)
}

func TestForceFlushHonoursContext(t *testing.T) {
	p := newPipeline(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, p.proc.ForceFlush(ctx), context.Canceled)
	require.NoError(t, p.proc.ForceFlush(t.Context()))
	assert.Equal(t, 1, p.next.flushes)
}

func TestOnEndNormalSpanDoesNotAllocate(t *testing.T) {
	p := newPipeline(t, nil,
		spanprocessor.WithSpanNameThreshold("other", time.Second),
		spanprocessor.WithPredicate(func(sdktrace.ReadOnlySpan) (string, bool) { return "", false }))
	_, s := p.tp.Tracer("test").Start(context.Background(), "fast")
	s.End()
	ro := p.next.spans()["fast"]
	require.NotNil(t, ro)
	allocs := testing.AllocsPerRun(1000, func() { p.proc.OnEnd(ro) })
	// The recording processor appends; count only what OnEnd adds.
	base := testing.AllocsPerRun(1000, func() { p.next.OnEnd(ro) })
	assert.Equal(t, base, allocs)
}

func TestProcessorLogsSpanIdentityOnGoroutine(t *testing.T) {
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(0)})
	_, s := p.tp.Tracer("test").Start(context.Background(), "served")
	s.End()
	sc := s.SpanContext()
	snap, err := p.rec.Snapshot(t.Context(), "test")
	require.NoError(t, err)

	var got []string
	for _, ev := range testutil.ReadTrace(t, snap.Data) {
		if ev.Kind() == xtrace.EventLog && ev.Log().Category == otelfr.LogCategory {
			assert.Equal(t, xtrace.BackgroundTask, ev.Log().Task, "logged outside any task")
			got = append(got, ev.Log().Message)
		}
	}
	ids := sc.TraceID().String() + " " + sc.SpanID().String()
	assert.Equal(t, []string{"start " + ids, "end " + ids}, got)
}

func TestErrorConditions(t *testing.T) {
	server := trace.WithSpanKind(trace.SpanKindServer)
	client := trace.WithSpanKind(trace.SpanKindClient)
	tests := []struct {
		name       string
		opts       []spanprocessor.Option
		kind       trace.SpanStartOption
		set        func(trace.Span)
		wantReason string
	}{
		{"exception event", nil, server, func(s trace.Span) { s.RecordError(errors.New("boom")) }, spanprocessor.ReasonException},
		{"http 503 on a server span", nil, server, func(s trace.Span) { s.SetAttributes(attribute.Int("http.response.status_code", 503)) }, spanprocessor.ReasonHTTPServerError},
		{"old http.status_code", nil, server, func(s trace.Span) { s.SetAttributes(attribute.Int("http.status_code", 500)) }, spanprocessor.ReasonHTTPServerError},
		{"http 404", nil, server, func(s trace.Span) { s.SetAttributes(attribute.Int("http.response.status_code", 404)) }, ""},
		{"http 503 on a client span", nil, client, func(s trace.Span) { s.SetAttributes(attribute.Int("http.response.status_code", 503)) }, ""},
		{"grpc unavailable", nil, server, func(s trace.Span) { s.SetAttributes(attribute.Int("rpc.grpc.status_code", 14)) }, spanprocessor.ReasonGRPCError},
		{"grpc not found", nil, server, func(s trace.Span) { s.SetAttributes(attribute.Int("rpc.grpc.status_code", 5)) }, ""},
		{"grpc custom codes", []spanprocessor.Option{spanprocessor.WithGRPCErrorCodes(5)}, server,
			func(s trace.Span) { s.SetAttributes(attribute.Int("rpc.grpc.status_code", 5)) }, spanprocessor.ReasonGRPCError},
		// The trigger read only rpc.grpc.status_code, which otelgrpc no
		// longer sets: v0.72 puts the code's name in rpc.response.status_code,
		// and a failing gRPC call went unnoticed unless its status was Error.
		{"otelgrpc's rpc.response.status_code was ignored", nil, client,
			func(s trace.Span) { s.SetAttributes(attribute.String("rpc.response.status_code", "UNAVAILABLE")) }, spanprocessor.ReasonGRPCError},
		{"rpc.response.status_code NOT_FOUND", nil, server,
			func(s trace.Span) { s.SetAttributes(attribute.String("rpc.response.status_code", "NOT_FOUND")) }, ""},
		{"rpc.response.status_code custom codes", []spanprocessor.Option{spanprocessor.WithGRPCErrorCodes(5)}, server,
			func(s trace.Span) { s.SetAttributes(attribute.String("rpc.response.status_code", "NOT_FOUND")) }, spanprocessor.ReasonGRPCError},
		{"rpc.response.status_code of another RPC system", nil, server,
			func(s trace.Span) { s.SetAttributes(attribute.String("rpc.response.status_code", "-32603")) }, ""},
		{"rpc.response.status_code with the condition off", []spanprocessor.Option{spanprocessor.WithErrorConditions(spanprocessor.ExceptionEvent)}, server,
			func(s trace.Span) { s.SetAttributes(attribute.String("rpc.response.status_code", "INTERNAL")) }, ""},
		{"conditions restricted", []spanprocessor.Option{spanprocessor.WithErrorConditions(spanprocessor.ErrorStatus)}, server,
			func(s trace.Span) { s.RecordError(errors.New("boom")) }, ""},
		{"status still counts", []spanprocessor.Option{spanprocessor.WithErrorConditions(spanprocessor.ErrorStatus)}, server,
			failed, spanprocessor.ReasonError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(0)}, tt.opts...)
			_, s := p.tp.Tracer("test").Start(context.Background(), "op", tt.kind)
			tt.set(s)
			s.End()
			require.NoError(t, p.proc.ForceFlush(t.Context()))
			reason, _ := attr(p.next.spans()["op"], otelfr.SnapshotReasonKey)
			assert.Equal(t, tt.wantReason, reason)
		})
	}
}

// With the Processor alone, without the otelfr.TracerProvider wrapper, the
// SDK named each span's runtime/trace task after the span, and a name of
// 64 KiB or more made the runtime throw "traceRegion: alloc too large". The
// test runs in a child process, since a throw kills it.
func TestLongSpanNameKillsTheProcess(t *testing.T) {
	if !testutil.InSubprocess(t) {
		return
	}
	p := newPipeline(t, []otelfr.Option{otelfr.WithMinInterval(0)},
		spanprocessor.WithSpanNameThreshold(strings.Repeat("x", 100_000), 10*time.Millisecond))
	name := strings.Repeat("x", 100_000)
	p.span(name, 20*time.Millisecond) // slow for its name's threshold
	p.span("short", 0)
	require.NoError(t, p.proc.ForceFlush(t.Context()))

	got := p.next.spans()
	require.Contains(t, got, name, "the wrapped processor gets the span under its whole name")
	_, linked := attr(got[name], otelfr.SnapshotIDKey)
	assert.True(t, linked, "and its per-name threshold applied")
	require.Contains(t, got, "short")

	snap, err := p.rec.Snapshot(t.Context(), "test")
	require.NoError(t, err)
	for _, ev := range testutil.ReadTrace(t, snap.Data) {
		if ev.Kind() == xtrace.EventTaskBegin {
			assert.LessOrEqual(t, len(ev.Task().Type), 1024, "task names are bounded")
		}
	}
}

// DefaultGRPCErrorCodes was an exported slice: any package could change
// what every Processor treats as a gRPC error.
func TestDefaultGRPCErrorCodesIsMutable(t *testing.T) {
	codes := spanprocessor.DefaultGRPCErrorCodes()
	assert.Equal(t, []uint32{2, 4, 12, 13, 14, 15}, codes)
	codes[0] = 0
	assert.Equal(t, []uint32{2, 4, 12, 13, 14, 15}, spanprocessor.DefaultGRPCErrorCodes(), "the caller's copy")
}
