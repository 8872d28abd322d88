package spanprocessor_test

import (
	"context"
	"fmt"
	"os"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
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
	store, err := exporter.NewDirStore(dir)
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
