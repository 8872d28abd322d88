// Package spanbench holds the per-span benchmarks. Two test packages run
// them, each in its own process: bench/spans, where no TracerProvider
// wrapper ever exists, so that the span processor logs span identities
// itself while the recorder runs; and bench/wrapped, where
// otelfr.WrapTracerProvider has been called, so that it does not (see
// otelfr.LogCategory). The wrapper's presence is process-wide and
// permanent, which is why the two cannot share a process.
package spanbench

import (
	"context"
	"testing"
	"time"

	otelpyroscope "github.com/grafana/otel-profiling-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// Window is the flight recorder's window in the per-span benchmarks.
const Window = 16 << 20

// Case is one tracer configuration measured per span.
type Case struct {
	Name string
	// New builds the tracer; rec is running or stopped (recorder off), as
	// the sub-benchmark requires. stop shuts the tracer provider down.
	New func(tb testing.TB, rec *otelfr.Recorder) (tr trace.Tracer, stop func())
}

// Options that change the pipeline of a Case.
type pipeline struct {
	wrap      bool
	proc      bool
	adaptive  bool
	never     bool // base sampler drops every span
	unsampled bool // RecordUnsampled around the base sampler
	pyroscope bool
}

// Cases returns the configurations for a process where a TracerProvider
// wrapper exists (wrapped) or not.
//
// The exporting processor is sdktrace.WithSyncer over a no-op exporter, a
// SimpleSpanProcessor: every span's whole life runs on the benchmark's
// goroutine. A BatchSpanProcessor would move part of the cost to its
// worker goroutine, which competes for the same cores, and would drop spans
// when its queue is full, making them cheaper than a real export.
func Cases(wrapped bool) []Case {
	c := []Case{
		{"sdk", build(pipeline{})},
		{"proc", build(pipeline{proc: true})},
		{"proc-adaptive", build(pipeline{proc: true, adaptive: true})},
		{"never-sample+proc", build(pipeline{proc: true, never: true})},
		{"record-unsampled+proc", build(pipeline{proc: true, never: true, unsampled: true})},
		{"pyroscope", build(pipeline{pyroscope: true})},
	}
	if !wrapped {
		return c
	}
	return append(c,
		Case{"noop", noopCase(false)},
		Case{"wrap-noop", noopCase(true)},
		Case{"wrap", build(pipeline{wrap: true})},
		Case{"wrap+proc", build(pipeline{wrap: true, proc: true})},
		Case{"wrap+proc-adaptive", build(pipeline{wrap: true, proc: true, adaptive: true})},
		Case{"never-sample+wrap+proc", build(pipeline{wrap: true, proc: true, never: true})},
		Case{"record-unsampled+wrap+proc", build(pipeline{wrap: true, proc: true, never: true, unsampled: true})},
	)
}

func build(p pipeline) func(testing.TB, *otelfr.Recorder) (trace.Tracer, func()) {
	return func(tb testing.TB, rec *otelfr.Recorder) (trace.Tracer, func()) {
		var sp sdktrace.SpanProcessor = sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter())
		if p.proc {
			sp = NewProcessor(tb, sp, rec, p.adaptive)
		}
		var sampler sdktrace.Sampler = sdktrace.AlwaysSample()
		if p.never {
			sampler = sdktrace.NeverSample()
		}
		if p.unsampled {
			sampler = spanprocessor.RecordUnsampled(sampler)
		}
		sdk := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sp), sdktrace.WithSampler(sampler))
		var tp trace.TracerProvider = sdk
		if p.wrap {
			tp = otelfr.WrapTracerProvider(sdk)
		}
		if p.pyroscope {
			tp = otelpyroscope.NewTracerProvider(sdk)
		}
		return tp.Tracer("bench"), func() { _ = sdk.Shutdown(context.Background()) }
	}
}

// noopCase is the no-op TracerProvider, wrapped or not: with the recorder
// off, the difference between the two is the wrapper's own cost, without
// the SDK's ~0.6 µs around it to hide it in noise.
func noopCase(wrap bool) func(testing.TB, *otelfr.Recorder) (trace.Tracer, func()) {
	return func(testing.TB, *otelfr.Recorder) (trace.Tracer, func()) {
		var tp trace.TracerProvider = noop.NewTracerProvider()
		if wrap {
			tp = otelfr.WrapTracerProvider(tp)
		}
		return tp.Tracer("bench"), func() {}
	}
}

// NewProcessor returns the anomaly processor around next with the
// defaults a service would use (500ms latency threshold, error triggers),
// or the adaptive trigger instead of the fixed threshold.
func NewProcessor(tb testing.TB, next sdktrace.SpanProcessor, rec *otelfr.Recorder, adaptive bool) *spanprocessor.Processor {
	store, err := snapstore.NewDirStore(tb.TempDir(), snapstore.WithMaxCount(2))
	if err != nil {
		tb.Fatal(err)
	}
	var opts []spanprocessor.Option
	if adaptive {
		opts = append(opts, spanprocessor.WithAdaptiveLatency())
	}
	return spanprocessor.New(next, rec, exporter.New(store, tracetest.NewNoopExporter()), opts...)
}

// WithRecorder runs f with a running recorder (on) or a stopped one (off):
// the processor needs a Recorder, and only one may be active per process,
// so each sub-benchmark gets its own, started and stopped around it.
func WithRecorder(tb testing.TB, on bool, f func(rec *otelfr.Recorder)) {
	rec, err := otelfr.Start(otelfr.WithMaxBytes(Window))
	if err != nil {
		tb.Fatal(err)
	}
	defer rec.Stop(context.Background())
	if !on {
		_ = rec.Stop(context.Background())
	}
	f(rec)
}

// Recorder names the two states of the flight recorder.
var Recorder = []struct {
	Name string
	On   bool
}{{"rec=off", false}, {"rec=on", true}}

// BenchmarkSpan times one root span started and ended through each Case.
func BenchmarkSpan(b *testing.B, wrapped bool) {
	for _, r := range Recorder {
		b.Run(r.Name, func(b *testing.B) {
			for _, c := range Cases(wrapped) {
				b.Run(c.Name, func(b *testing.B) {
					WithRecorder(b, r.On, func(rec *otelfr.Recorder) {
						tr, stop := c.New(b, rec)
						defer stop()
						ctx := context.Background()
						b.ReportAllocs()
						cpu := StartCPU()
						for b.Loop() {
							_, s := tr.Start(ctx, "GET /items")
							s.End()
						}
						cpu.Report(b)
					})
				})
			}
		})
	}
}

// nopProcessor is the wrapped processor in the OnEnd benchmarks: it makes
// them time the Processor's own work.
type nopProcessor struct{}

func (nopProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (nopProcessor) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (nopProcessor) Shutdown(context.Context) error                  { return nil }
func (nopProcessor) ForceFlush(context.Context) error                { return nil }

// OnEndSpans returns the normal spans of the OnEnd benchmarks, by name:
// "stub", a tracetest.SpanStub without attributes (as in
// spanprocessor/bench_test.go); "http", a span ended by the SDK with the
// attributes otelhttp gives a server span; "http+event", the same with one
// event (not an exception).
func OnEndSpans() []struct {
	Name string
	Span sdktrace.ReadOnlySpan
} {
	end := time.Now()
	stub := tracetest.SpanStub{
		Name:        "GET /items",
		SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled}),
		SpanKind:    trace.SpanKindServer,
		StartTime:   end.Add(-time.Millisecond),
		EndTime:     end,
	}.Snapshot()
	return []struct {
		Name string
		Span sdktrace.ReadOnlySpan
	}{
		{"stub", stub},
		{"http", sdkSpan(false)},
		{"http+event", sdkSpan(true)},
	}
}

// capture keeps the last span that ended.
type capture struct {
	nopProcessor
	last sdktrace.ReadOnlySpan
}

func (c *capture) OnEnd(s sdktrace.ReadOnlySpan) { c.last = s }

// sdkSpan returns a server span ended by the SDK, 1ms long, with the
// attributes of an otelhttp server span and status 200.
func sdkSpan(event bool) sdktrace.ReadOnlySpan {
	c := &capture{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(c))
	start := time.Now().Add(-time.Millisecond)
	_, s := tp.Tracer("bench").Start(context.Background(), "GET /items",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(
			attribute.String("http.request.method", "GET"),
			attribute.String("url.scheme", "http"),
			attribute.String("server.address", "127.0.0.1"),
			attribute.Int("server.port", 8080),
			attribute.String("network.peer.address", "127.0.0.1"),
			attribute.Int("network.peer.port", 54321),
			attribute.String("user_agent.original", "bench/1"),
			attribute.String("client.address", "127.0.0.1"),
			attribute.String("url.path", "/items"),
			attribute.String("network.protocol.version", "1.1"),
			attribute.String("http.route", "/items"),
		))
	s.SetAttributes(attribute.Int("http.response.status_code", 200), attribute.Int("http.response.body.size", 187))
	if event {
		s.AddEvent("cache.miss")
	}
	s.End(trace.WithTimestamp(start.Add(time.Millisecond)))
	return c.last
}

// BenchmarkOnEnd times Processor.OnEnd alone on normal spans (1ms long, no
// error), with the fixed and the adaptive latency trigger.
func BenchmarkOnEnd(b *testing.B) {
	for _, r := range Recorder {
		b.Run(r.Name, func(b *testing.B) {
			for _, adaptive := range []bool{false, true} {
				trigger := "fixed"
				if adaptive {
					trigger = "adaptive"
				}
				for _, s := range OnEndSpans() {
					b.Run(trigger+"/"+s.Name, func(b *testing.B) {
						WithRecorder(b, r.On, func(rec *otelfr.Recorder) {
							p := NewProcessor(b, nopProcessor{}, rec, adaptive)
							defer p.Shutdown(context.Background())
							b.ReportAllocs()
							cpu := StartCPU()
							for b.Loop() {
								p.OnEnd(s.Span)
							}
							cpu.Report(b)
						})
					})
				}
			}
		})
	}
}
