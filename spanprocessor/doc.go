// Package spanprocessor provides an OpenTelemetry span processor that
// snapshots the Go flight recorder when a span is anomalous, and links the
// snapshot to the span.
//
// A [Processor] wraps the processor that exports spans (usually a
// BatchSpanProcessor). For each finishing span it runs the triggers:
//
//   - error: the span's status is Error (on by default; [WithErrorTrigger]);
//   - latency: the span lasted at least the threshold, 500ms by default
//     ([WithLatencyThreshold], the OTELFR_LATENCY_THRESHOLD environment
//     variable, and [WithSpanNameThreshold] per span name);
//   - a user [Predicate] ([WithPredicate]).
//
// A normal span is forwarded at once; the check costs a few nanoseconds and
// no allocation. An anomalous span is handed to a background worker, which
// snapshots the flight recorder through an [otelfr.Recorder], stores the
// snapshot through an [exporter.Exporter], and forwards the span decorated
// with the snapshot's ID, URL and reason (or, when rate limits or the
// window prevent a snapshot, with otelfr.snapshot.skipped saying why).
// Later stages of the worker, with bounded queues between them, then
// diagnose the span ([WithDiagnoser]), hash the stored snapshot and export
// the span's attachment: a slow diagnosis, store or exporter never delays
// the next snapshot, each is bounded by its timeout
// ([WithDiagnosisTimeout], [WithStoreTimeout], exporter.WithTimeout), and
// work a full stage cannot take is dropped and counted ([Stats].Dropped).
//
// # Usage
//
//	rec, _ := otelfr.Start()
//	store, _ := snapstore.NewDirStore("/var/lib/myservice/snapshots")
//	otlp, _ := otlptracegrpc.New(ctx)
//	proc := spanprocessor.New(
//		sdktrace.NewBatchSpanProcessor(otlp),
//		rec,
//		exporter.New(store, otlp),
//		spanprocessor.WithLatencyThreshold(200*time.Millisecond),
//	)
//	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
//
// Register the Processor instead of the processor it wraps, not beside it,
// or every span is exported twice.
package spanprocessor
