package otelfr

import (
	"context"
	rt "runtime/trace"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"

	"github.com/otelfr/otel-flightrecorder/internal/correlation"
)

// TracerProvider wraps a trace.TracerProvider so that, while the Go
// execution tracer runs (a flight recorder counts), each recording span
// writes its trace and span IDs into its runtime/trace task: right after
// Start and again right before End, under [LogCategory]. A snapshot then
// tells which goroutines served which span, even when the span began before
// the snapshot's window.
//
// The OpenTelemetry Go SDK already starts one task per recording span
// while tracing is enabled; the wrapper logs into that task and creates
// none of its own. For a provider that is not the SDK, it starts and ends a
// task named after the span.
//
// A span name longer than 1 KiB names its task by its first 1 KiB, which
// is all the trace would keep of it: the runtime kills the process on a
// task name of 64 KiB or more. Such a span is started under that prefix and
// renamed at once, so its sampler sees the prefix, and the exported span
// keeps its whole name.
//
// When the execution tracer is off, Start costs one atomic load on top of
// the wrapped provider's, and spans are returned unwrapped.
type TracerProvider struct {
	embedded.TracerProvider
	tp         trace.TracerProvider
	redactTask bool
}

var _ trace.TracerProvider = (*TracerProvider)(nil)

// WrapTracerProvider returns tp wrapped for span-to-runtime correlation.
// Register the result globally (otel.SetTracerProvider) or pass it to
// instrumentation; shut down tp itself.
func WrapTracerProvider(tp trace.TracerProvider, opts ...WrapOption) *TracerProvider {
	p := &TracerProvider{tp: tp}
	for _, o := range opts {
		o.applyWrap(p)
	}
	correlation.AddWrapper()
	return p
}

// WrapOption configures [WrapTracerProvider].
type WrapOption interface {
	applyWrap(*TracerProvider)
}

type wrapOptionFunc func(*TracerProvider)

func (f wrapOptionFunc) applyWrap(p *TracerProvider) { f(p) }

// RedactedTaskName is the runtime/trace task name used for every span
// under [WithRedactedTaskNames].
const RedactedTaskName = "otelfr.span"

// WithRedactedTaskNames keeps span names out of the execution trace, and so
// out of snapshots: spans are started under the name [RedactedTaskName],
// which the SDK gives their runtime/trace task, and renamed at once. The
// exported span keeps its real name, and the snapshot still ties each task
// to its span by ID. The cost: a sampler, and a span processor's OnStart,
// see the placeholder name, so do not combine this with name-based
// sampling. It applies only while the execution tracer runs.
func WithRedactedTaskNames() WrapOption {
	return wrapOptionFunc(func(p *TracerProvider) { p.redactTask = true })
}

// Unwrap returns the wrapped TracerProvider.
func (p *TracerProvider) Unwrap() trace.TracerProvider { return p.tp }

// Tracer returns a Tracer of the wrapped provider whose spans log their
// identity into the execution trace.
func (p *TracerProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return &tracer{t: p.tp.Tracer(name, opts...), p: p}
}

type tracer struct {
	embedded.Tracer
	t trace.Tracer
	p *TracerProvider
}

func (t *tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !rt.IsEnabled() {
		return t.t.Start(ctx, name, opts...)
	}
	// The span starts under its task's name, which the SDK gives its task,
	// and is renamed at once.
	taskName := RedactedTaskName
	if !t.p.redactTask {
		taskName, _ = correlation.TaskName(name)
	}
	ctx, s := t.t.Start(ctx, taskName, opts...)
	if taskName != name {
		s.SetName(name)
	}
	if !s.IsRecording() {
		return ctx, s
	}
	w := &span{Span: s, p: t.p}
	if _, sdk := s.(sdktrace.ReadWriteSpan); !sdk {
		// Only the SDK's recording spans come with a task.
		ctx, w.task = rt.NewTask(ctx, taskName)
		w.start = time.Now()
	}
	correlation.Log(ctx, correlation.Start, s.SpanContext())
	return trace.ContextWithSpan(ctx, w), w
}

// longSpan is how long a span must last for its end to be logged too.
// Every span's start is logged into its task, and the task's end event
// (the SDK's task, or ours) marks the span's end; but a window that begins
// after a span started holds only that end, which does not say which span
// it was. Logging every span's end was half of the per-span cost with the
// recorder on (issue 15); for a span of 10 ms the message costs a
// fifty-thousandth of its time, and a window shorter than that holds
// nothing worth reading.
const longSpan = 10 * time.Millisecond

// span logs its identity once more when it ends, if it lasted longSpan or
// more.
type span struct {
	trace.Span
	p     *TracerProvider
	task  *rt.Task  // ours to end, when the provider made none
	start time.Time // when task is set: the SDK's spans know theirs
}

// End ends the span, then its task, and then logs the end of a long span
// on the goroutine, outside the task that has just ended: the analysis
// ties the message to the task the goroutine ended last. Logging after
// the end lets the SDK's own times tell the span's length, where reading
// the clock twice per span cost as much as the rest of the wrapper.
func (s *span) End(opts ...trace.SpanEndOption) {
	logEnd := rt.IsEnabled() && s.Span.IsRecording()
	s.Span.End(opts...)
	if s.task != nil {
		s.task.End()
	}
	if logEnd && s.lasted() >= longSpan {
		correlation.Log(context.Background(), correlation.End, s.Span.SpanContext())
	}
}

// lasted returns how long the ended span lasted.
func (s *span) lasted() time.Duration {
	if ro, ok := s.Span.(sdktrace.ReadOnlySpan); ok && s.task == nil {
		return ro.EndTime().Sub(ro.StartTime())
	}
	return time.Since(s.start)
}

// TracerProvider returns the wrapper, so that tracers obtained from a span
// keep logging.
func (s *span) TracerProvider() trace.TracerProvider { return s.p }
