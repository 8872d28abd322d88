package analysis_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/analysis"
	"github.com/otelfr/otel-flightrecorder/otelfr"
)

func Example() {
	rec, err := otelfr.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	// The wrapper logs each span's identity into the execution trace.
	tracer := otelfr.WrapTracerProvider(sdk).Tracer("example")

	start := time.Now()
	_, span := tracer.Start(context.Background(), "slow")
	time.Sleep(100 * time.Millisecond)
	span.End()
	end := time.Now()

	snap, err := rec.Snapshot(context.Background(), "manual")
	if err != nil {
		fmt.Println(err)
		return
	}
	sc := span.SpanContext()
	d, err := analysis.Analyze(snap.Data, analysis.Span{
		TraceID: sc.TraceID(),
		SpanID:  sc.SpanID(),
		// The span's times are optional; they bound the search.
		Start: start,
		End:   end,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	state, _ := d.Goroutines[0].Buckets.Dominant()
	fmt.Println(d.Status, d.Span.Name, state)

	// Another span is not in the snapshot.
	_, err = analysis.Analyze(snap.Data, analysis.Span{SpanID: [8]byte{1}})
	fmt.Println(errors.Is(err, analysis.ErrSpanNotFound))

	// Output:
	// complete slow blocked.sleep
	// true
}
