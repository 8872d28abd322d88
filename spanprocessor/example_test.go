package spanprocessor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

func Example() {
	rec, err := otelfr.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())

	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}

	// In a real program this is otlptracegrpc.New(ctx).
	spans := tracetest.NewInMemoryExporter()
	proc := spanprocessor.New(
		sdktrace.NewSimpleSpanProcessor(spans),
		rec,
		exporter.New(store, spans),
		spanprocessor.WithLatencyThreshold(100*time.Millisecond),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			fmt.Printf("%s was anomalous (%s), snapshot linked: %t\n", o.Span.Name(), o.Reason, o.SnapshotID != "")
		}),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	defer tp.Shutdown(context.Background())

	tracer := tp.Tracer("example")
	_, fast := tracer.Start(context.Background(), "fast")
	fast.End()

	time.Sleep(150 * time.Millisecond) // let the recorder's window fill
	_, slow := tracer.Start(context.Background(), "slow",
		trace.WithTimestamp(time.Now().Add(-120*time.Millisecond)))
	slow.End()

	_ = tp.ForceFlush(context.Background())
	for _, s := range spans.GetSpans() {
		fmt.Println("exported:", s.Name)
	}
	// Output:
	// slow was anomalous (latency), snapshot linked: true
	// exported: fast
	// exported: slow
	// exported: otelfr.snapshot
}

// The adaptive trigger needs no threshold: a span is anomalous when it is
// unusually slow for its name.
func ExampleWithAdaptiveLatency() {
	rec, err := otelfr.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())
	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, _ := snapstore.NewDirStore(dir)

	proc := spanprocessor.New(
		sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter()),
		rec,
		exporter.New(store, nil),
		spanprocessor.WithAdaptiveLatency(spanprocessor.AdaptiveMinSamples(20)),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			fmt.Printf("%s: %s\n", o.Span.Name(), o.Reason)
		}),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	defer tp.Shutdown(context.Background())
	time.Sleep(100 * time.Millisecond) // let the recorder's window fill

	// GET /items usually takes about 5ms; one request takes 60ms.
	tracer := tp.Tracer("example")
	span := func(d time.Duration) {
		end := time.Now()
		_, s := tracer.Start(context.Background(), "GET /items", trace.WithTimestamp(end.Add(-d)))
		s.End(trace.WithTimestamp(end))
	}
	for i := range 40 {
		span(time.Duration(4000+i*50) * time.Microsecond)
	}
	span(60 * time.Millisecond)
	_ = tp.ForceFlush(context.Background())
	// Output:
	// GET /items: latency.adaptive
}

// With a ratio sampler most spans never reach span processors;
// RecordUnsampled records them instead, so that an anomalous one is
// exported anyway, marked otelfr.sampled=false, and the others are dropped
// as before.
func ExampleRecordUnsampled() {
	rec, err := otelfr.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())
	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, _ := snapstore.NewDirStore(dir)

	spans := tracetest.NewInMemoryExporter()
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(spans), rec, exporter.New(store, spans))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(spanprocessor.RecordUnsampled(sdktrace.NeverSample())),
		sdktrace.WithSpanProcessor(proc))
	defer tp.Shutdown(context.Background())

	tracer := tp.Tracer("example")
	_, ok := tracer.Start(context.Background(), "ok")
	ok.End()
	_, failed := tracer.Start(context.Background(), "failed")
	failed.SetStatus(codes.Error, "boom")
	failed.End()

	_ = tp.ForceFlush(context.Background())
	for _, s := range spans.GetSpans() {
		fmt.Print("exported: ", s.Name)
		for _, kv := range s.Attributes {
			if kv.Key == otelfr.SampledKey {
				fmt.Printf(" (%s=%s)", kv.Key, kv.Value.String())
			}
		}
		fmt.Println()
	}
	// Output:
	// exported: failed (otelfr.sampled=false)
	// exported: otelfr.snapshot
}

// A snapshot on request, for example after a deploy, exported as an
// attachment span of its own.
func ExampleProcessor_Snapshot() {
	rec, err := otelfr.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())
	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, _ := snapstore.NewDirStore(dir)

	spans := tracetest.NewInMemoryExporter()
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(spans), rec, exporter.New(store, spans))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	defer tp.Shutdown(context.Background())

	info, err := proc.Snapshot(context.Background(), "deploy verification")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.Reason, info.Size > 0)
	_, err = proc.Snapshot(context.Background(), "again")
	fmt.Println(errors.Is(err, otelfr.ErrRateLimited))
	for _, s := range spans.GetSpans() {
		fmt.Println("exported:", s.Name)
	}
	// Output:
	// deploy verification true
	// true
	// exported: otelfr.snapshot
}

// slowDiagnoser takes as long as its ctx allows.
type slowDiagnoser struct{}

func (slowDiagnoser) Diagnose(ctx context.Context, _ []byte, _ sdktrace.ReadOnlySpan) (string, []attribute.KeyValue, []sdktrace.Event, error) {
	<-ctx.Done()
	return "", nil, nil, nil
}

// A diagnosis is bounded by WithDiagnosisTimeout, each call into the
// store by WithStoreTimeout. A diagnosis that runs out of time is
// abandoned: the span, forwarded linked already, is reported
// undiagnosed, and counted in Stats.Dropped.
func ExampleWithDiagnosisTimeout() {
	rec, err := otelfr.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())
	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, _ := snapstore.NewDirStore(dir)

	spans := tracetest.NewInMemoryExporter()
	proc := spanprocessor.New(sdktrace.NewSimpleSpanProcessor(spans), rec, exporter.New(store, nil),
		spanprocessor.WithDiagnoser(slowDiagnoser{}),
		spanprocessor.WithDiagnosisTimeout(10*time.Millisecond),
		spanprocessor.WithStoreTimeout(5*time.Second),
		spanprocessor.WithOnAnomaly(func(o spanprocessor.Outcome) {
			fmt.Printf("%s: linked %v, verdict %q\n", o.Span.Name(), o.SnapshotID != "", o.Verdict)
		}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
	defer tp.Shutdown(context.Background())

	_, span := tp.Tracer("example").Start(context.Background(), "GET /report")
	span.SetStatus(codes.Error, "failed")
	span.End()
	if err := proc.ForceFlush(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(proc.Stats().Dropped)
	// Output:
	// GET /report: linked true, verdict ""
	// map[diagnosis_timeout:1]
}
