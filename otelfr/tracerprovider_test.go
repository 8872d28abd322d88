package otelfr_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
	xtrace "golang.org/x/exp/trace"

	"github.com/otelfr/otel-flightrecorder/internal/testutil"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// spanLogs returns, per task name, the otelfr.span messages logged in
// tasks of that name, and how many such tasks began.
func spanLogs(t *testing.T, data []byte) (logs map[string][]string, tasks map[string]int) {
	t.Helper()
	names := map[xtrace.TaskID]string{}
	logs, tasks = map[string][]string{}, map[string]int{}
	for _, ev := range testutil.ReadTrace(t, data) {
		switch ev.Kind() {
		case xtrace.EventTaskBegin:
			names[ev.Task().ID] = ev.Task().Type
			tasks[ev.Task().Type]++
		case xtrace.EventLog:
			l := ev.Log()
			if l.Category == otelfr.LogCategory {
				name := names[l.Task]
				if l.Task == xtrace.BackgroundTask {
					name = "<no task>"
				}
				logs[name] = append(logs[name], l.Message)
			}
		}
	}
	return logs, tasks
}

func TestWrapTracerProviderLogsIntoSDKTask(t *testing.T) {
	rec, err := otelfr.Start()
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	tp := otelfr.WrapTracerProvider(sdk)
	assert.Same(t, sdk, tp.Unwrap())

	ctx, s := tp.Tracer("test").Start(context.Background(), "checkout")
	assert.Same(t, s, trace.SpanFromContext(ctx), "the context carries the wrapper")
	assert.Same(t, tp, s.TracerProvider(), "tracers from the span keep logging")
	_, child := s.TracerProvider().Tracer("test").Start(ctx, "checkout.child")
	child.End()
	s.End()
	sc := s.SpanContext()

	snap, err := rec.Snapshot(t.Context(), "test")
	require.NoError(t, err)
	logs, tasks := spanLogs(t, snap.Data)
	assert.Equal(t, 1, tasks["checkout"], "no second task per span")
	assert.Equal(t, []string{
		"start " + sc.TraceID().String() + " " + sc.SpanID().String(),
	}, logs["checkout"], "a short span's end is its task's end")
	assert.Len(t, logs["checkout.child"], 1)
}

// A window that begins inside a long span holds only its end: the wrapper
// logs the span's identity there too, for spans of 10 ms or more, on the
// goroutine right after the span's task ended.
func TestWrapTracerProviderLogsTheEndOfLongSpans(t *testing.T) {
	rec, err := otelfr.Start()
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	tp := otelfr.WrapTracerProvider(sdk)

	_, long := tp.Tracer("test").Start(context.Background(), "long")
	time.Sleep(10 * time.Millisecond)
	long.End()
	_, short := tp.Tracer("test").Start(context.Background(), "short")
	short.End()
	snap, err := rec.Snapshot(t.Context(), "test")
	require.NoError(t, err)
	logs, _ := spanLogs(t, snap.Data)
	ids := func(s trace.Span) string {
		return s.SpanContext().TraceID().String() + " " + s.SpanContext().SpanID().String()
	}
	assert.Equal(t, []string{"start " + ids(long)}, logs["long"])
	assert.Equal(t, []string{"start " + ids(short)}, logs["short"])
	assert.Equal(t, []string{"end " + ids(long)}, logs["<no task>"])
}

// recordingSpan is a recording span from a provider that is not the SDK.
type recordingSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (recordingSpan) IsRecording() bool                { return true }
func (s recordingSpan) SpanContext() trace.SpanContext { return s.sc }

type otherProvider struct{ embedded.TracerProvider }

func (otherProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return otherTracer{} }

type otherTracer struct{ embedded.Tracer }

func (otherTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	s := recordingSpan{sc: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}})}
	return trace.ContextWithSpan(ctx, s), s
}

func TestWrapTracerProviderMakesTaskForOtherProviders(t *testing.T) {
	rec, err := otelfr.Start()
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	tp := otelfr.WrapTracerProvider(otherProvider{})
	_, s := tp.Tracer("test").Start(context.Background(), "foreign")
	s.End()

	snap, err := rec.Snapshot(t.Context(), "test")
	require.NoError(t, err)
	logs, tasks := spanLogs(t, snap.Data)
	assert.Equal(t, 1, tasks["foreign"])
	assert.Equal(t, []string{
		"start 09000000000000000000000000000000 0800000000000000",
	}, logs["foreign"])
}

func TestWrapTracerProviderWithoutRecorder(t *testing.T) {
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	tp := otelfr.WrapTracerProvider(sdk)
	_, s := tp.Tracer("test").Start(context.Background(), "idle")
	defer s.End()
	_, sdkSpan := s.(sdktrace.ReadWriteSpan)
	assert.True(t, sdkSpan, "with tracing off, spans are returned unwrapped")
}

// BenchmarkWrapTracerProvider times a span started and ended through the
// SDK and through the wrapper, with the recorder off and on, from 1, 2, 4
// and 8 goroutines at once (ns/op is wall time per span over all of
// them): the wrapper's messages go into the runtime's string table under
// its lock, so a cost that grew with the goroutines would be contention.
//
//	go test -run '^$' -bench BenchmarkWrapTracerProvider -count 6 ./otelfr
func BenchmarkWrapTracerProvider(b *testing.B) {
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	run := func(b *testing.B, tp trace.TracerProvider) {
		tr := tp.Tracer("bench")
		ctx := context.Background()
		for _, g := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
				b.ReportAllocs()
				if g == 1 {
					for b.Loop() {
						_, s := tr.Start(ctx, "span")
						s.End()
					}
					return
				}
				b.SetParallelism(max(1, g/runtime.GOMAXPROCS(0)))
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						_, s := tr.Start(ctx, "span")
						s.End()
					}
				})
			})
		}
	}
	for _, recorder := range []bool{false, true} {
		name := "recorder=off"
		if recorder {
			name = "recorder=on"
		}
		b.Run(name, func(b *testing.B) {
			if recorder {
				rec, err := otelfr.Start()
				require.NoError(b, err)
				defer rec.Stop(context.Background())
			}
			b.Run("sdk", func(b *testing.B) { run(b, sdk) })
			b.Run("wrapped", func(b *testing.B) { run(b, otelfr.WrapTracerProvider(sdk)) })
		})
	}
}

func TestWithRedactedTaskNames(t *testing.T) {
	rec, err := otelfr.Start()
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	mem := tracetest.NewInMemoryExporter()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem))
	defer sdk.Shutdown(context.Background())
	tp := otelfr.WrapTracerProvider(sdk, otelfr.WithRedactedTaskNames())

	_, s := tp.Tracer("test").Start(context.Background(), "GET /users/alice@example.com")
	s.End()
	sc := s.SpanContext()
	snap, err := rec.Snapshot(t.Context(), "test")
	require.NoError(t, err)

	require.Len(t, mem.GetSpans(), 1)
	assert.Equal(t, "GET /users/alice@example.com", mem.GetSpans()[0].Name, "the exported span keeps its name")
	assert.NotContains(t, string(snap.Data), "alice@example.com", "the snapshot does not")
	logs, _ := spanLogs(t, snap.Data)
	assert.Contains(t, logs[otelfr.RedactedTaskName], "start "+sc.TraceID().String()+" "+sc.SpanID().String(),
		"the task is still tied to the span by ID")
}

// A span name of 64 KiB or more reaching runtime/trace.NewTask makes the
// runtime throw "traceRegion: alloc too large"; span names can come from
// outside. The test runs in a child process, since a throw kills it.
func TestLongSpanNameKillsTheProcess(t *testing.T) {
	if !testutil.InSubprocess(t) {
		return
	}
	rec, err := otelfr.Start()
	require.NoError(t, err)
	defer rec.Stop(context.Background())
	mem := tracetest.NewInMemoryExporter()
	sdk := sdktrace.NewTracerProvider(sdktrace.WithSyncer(mem))
	defer sdk.Shutdown(context.Background())
	name := "GET /" + strings.Repeat("é", 50_000) // 100,005 bytes, cut inside no rune

	_, s := otelfr.WrapTracerProvider(sdk).Tracer("test").Start(context.Background(), name)
	s.End()
	_, foreign := otelfr.WrapTracerProvider(otherProvider{}).Tracer("test").Start(context.Background(), name)
	foreign.End()

	require.Len(t, mem.GetSpans(), 1)
	assert.Equal(t, name, mem.GetSpans()[0].Name, "the exported span keeps its name")
	snap, err := rec.Snapshot(t.Context(), "test")
	require.NoError(t, err)
	_, tasks := spanLogs(t, snap.Data)
	for task, n := range tasks {
		if strings.HasPrefix(task, "GET /") {
			assert.LessOrEqual(t, len(task), 1024, "the task name is bounded")
			assert.True(t, utf8.ValidString(task), "and cut at a rune boundary")
			assert.Equal(t, 2, n, "both spans have their task")
		}
	}
}
