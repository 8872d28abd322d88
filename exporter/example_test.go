package exporter_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/exporter"
	"github.com/otelfr/otel-flightrecorder/otelfr"
	"github.com/otelfr/otel-flightrecorder/snapstore"
)

// An Exporter saves a snapshot, then exports an attachment span for a
// snapshot taken on request while a span was current: a child of that
// span, whose URL names the snapshot's page in the viewer.
func ExampleExporter_Attach() {
	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	spans := tracetest.NewInMemoryExporter() // stands in for an OTLP exporter
	exp := exporter.New(store, spans, exporter.WithBaseURL("https://otelfr.example.com/snapshots/"))
	defer exp.Shutdown(context.Background())

	now := time.Now()
	info, err := exp.Save(context.Background(), &otelfr.Snapshot{
		ID: "EXAMPLE", Reason: "latency", Data: []byte("trace bytes"),
		Start: now.Add(-10 * time.Second), End: now, TakenAt: now,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	slow := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	if err := exp.Attach(context.Background(), info, []exporter.Anomaly{{Parent: slow, Reason: "latency"}}); err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range spans.GetSpans() {
		for _, kv := range s.Attributes {
			switch kv.Key {
			case otelfr.SnapshotURLKey, otelfr.SnapshotSpanIDKey:
				fmt.Println(kv.Key, kv.Value.AsString())
			}
		}
	}
	// Output:
	// otelfr.snapshot.url https://otelfr.example.com/snapshots/EXAMPLE
	// otelfr.snapshot.span_id 00f067aa0ba902b7
}

// A snapshot streamed into a store without its SHA-256, as the span
// processor stores them, gets it afterwards: Checksum hashes the stored
// trace and records the sum in the store.
func ExampleExporter_Checksum() {
	dir, _ := os.MkdirTemp("", "otelfr-example")
	defer os.RemoveAll(dir)
	store, err := snapstore.NewDirStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	exp := exporter.New(store, nil)
	defer exp.Shutdown(context.Background())

	ctx := context.Background()
	w, err := exp.Create(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := w.Write([]byte("trace bytes")); err != nil {
		w.Abort()
		fmt.Println(err)
		return
	}
	info, err := w.Commit(ctx, &otelfr.Snapshot{ID: "EXAMPLE", Reason: "latency", TakenAt: time.Now()})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("stored %q\n", info.SHA256)
	info, err = exp.Checksum(ctx, info)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(info.SHA256)
	// Output:
	// stored ""
	// 83927f72a4a8366beba093e79cc55d7c68344f0f80753946bf4cfed60ba9ca2c
}
