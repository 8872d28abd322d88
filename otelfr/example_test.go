package otelfr_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/trace"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

func Example() {
	rec, err := otelfr.Start(
		otelfr.WithMinAge(5*time.Second),
		otelfr.WithMinInterval(time.Minute),
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer rec.Stop(context.Background())

	snap, err := rec.Snapshot(context.Background(), "manual")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(snap.Reason, snap.Size() > 0, !snap.End.Before(snap.Start))

	// A second snapshot within the minimum interval is refused.
	_, err = rec.Snapshot(context.Background(), "again")
	fmt.Println(errors.Is(err, otelfr.ErrRateLimited))

	// Output:
	// manual true true
	// true
}

// Wrap the SDK's provider and register the wrapper: while a flight
// recorder runs, every span's trace and span IDs go into the runtime/trace
// task the SDK makes for it, so that a snapshot knows which goroutines
// served which span. WithRedactedTaskNames keeps span names out of the
// execution trace; exported spans keep them.
func ExampleWrapTracerProvider() {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	defer tp.Shutdown(context.Background()) // shut down the provider itself
	otel.SetTracerProvider(otelfr.WrapTracerProvider(tp, otelfr.WithRedactedTaskNames()))

	_, span := otel.Tracer("example").Start(context.Background(), "GET /checkout")
	span.End()
	fmt.Println(spans.GetSpans()[0].Name)
	// Output:
	// GET /checkout
}

// A program that already runs a flight recorder shares it: otelfr adopts
// it, and leaves it running when it stops.
func ExampleWithFlightRecorder() {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MinAge: 5 * time.Second})
	if err := fr.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer fr.Stop()

	rec, err := otelfr.Start(otelfr.WithFlightRecorder(fr))
	if err != nil {
		fmt.Println(err)
		return
	}
	snap, err := rec.Snapshot(context.Background(), "adopted")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(snap.Reason, snap.Size() > 0)
	_ = rec.Stop(context.Background())
	fmt.Println("still running:", fr.Enabled())
	// Output:
	// adopted true
	// still running: true
}

// In disk mode the trace goes to a ring of files in a directory, where the
// next start finds it if the process dies: a program writes out the crash
// snapshot first (the span processor does it on its own), then carries on.
func ExampleWithDisk() {
	dir, err := os.MkdirTemp("", "otelfr-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	rec, err := otelfr.Start(otelfr.WithDisk(dir))
	if err != nil {
		fmt.Println(err)
		return
	}
	// A ring left by a crash becomes a snapshot with reason "crash".
	var crash bytes.Buffer
	if snap, err := rec.WriteCrashSnapshot(context.Background(), &crash); err == nil {
		fmt.Println(snap.Reason, snap.CrashOutput)
	} else if errors.Is(err, otelfr.ErrNoCrash) {
		fmt.Println("no crash")
	}
	snap, err := rec.WriteSnapshot(context.Background(), io.Discard, "manual")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(snap.Reason, snap.Size() > 0)
	if err := rec.Stop(context.Background()); err != nil {
		fmt.Println(err)
	}

	// The ring stays, for `otelfr analyze DIR`; a clean stop leaves no crash.
	ring, err := otelfr.ReadDisk(dir, io.Discard)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ring.Reason)
	// Output:
	// no crash
	// manual true
	// disk
}
