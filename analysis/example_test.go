package analysis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

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

func ExampleErrorSummary() {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	_, span := tp.Tracer("example").Start(context.Background(), "inventory.Inventory/Reserve",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("rpc.system", "grpc"),
			attribute.String("rpc.service", "inventory.Inventory"),
			attribute.String("rpc.method", "Reserve"),
			attribute.String("server.address", "inventory"),
			attribute.Int("server.port", 50051),
			attribute.Int("rpc.grpc.status_code", 14),
		))
	span.SetStatus(codes.Error, "connection refused")
	span.End()

	// Diagnoser does this for every span it diagnoses; the verdict of a
	// failed span then starts with "error: " and the summary.
	fmt.Println(analysis.ErrorSummary(span.(sdktrace.ReadOnlySpan)))

	// Output:
	// Unavailable from inventory.Inventory/Reserve (server.address inventory:50051): connection refused
}

func ExampleWriteProfile() {
	rec, err := otelfr.Start()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())
	sdk := sdktrace.NewTracerProvider()
	defer sdk.Shutdown(context.Background())
	tracer := otelfr.WrapTracerProvider(sdk).Tracer("example")

	// A span that waits for a mutex another goroutine holds.
	var mu sync.Mutex
	mu.Lock()
	go func() {
		time.Sleep(50 * time.Millisecond)
		mu.Unlock()
	}()
	_, span := tracer.Start(context.Background(), "slow")
	mu.Lock()
	span.End()

	snap, err := rec.Snapshot(context.Background(), "manual")
	if err != nil {
		fmt.Println(err)
		return
	}
	var buf bytes.Buffer
	// go tool pprof reads what WriteProfile writes.
	err = analysis.WriteProfile(&buf, snap.Data, analysis.Span{SpanID: span.SpanContext().SpanID()}, analysis.ProfileBlock)
	fmt.Println(err, buf.Len() > 0)

	_, err = analysis.ParseProfileKind("heap")
	fmt.Println(errors.Is(err, analysis.ErrProfileKind))

	// Output:
	// <nil> true
	// true
}
