// Package otlptest provides a real, in-process OTLP/gRPC trace receiver for
// tests.
//
// [NewReceiver] starts a gRPC server implementing the OTLP
// TraceService on 127.0.0.1 with a kernel-chosen port and stops it when the
// test ends, so no goroutine outlives the test. Point any OTLP/gRPC trace
// exporter at [Receiver.Endpoint] (for example with
// otlptracegrpc.WithEndpoint and otlptracegrpc.WithInsecure, or by setting
// OTEL_EXPORTER_OTLP_ENDPOINT to "http://" + Endpoint()), emit spans through
// the real SDK, and assert on what actually crossed the wire.
//
// Received spans are flattened into [Span] values: IDs are lower-case hex,
// timestamps are [time.Time], and attributes are plain Go maps, so tests can
// compare them with ordinary equality assertions. [Receiver.WaitForSpans]
// blocks until a predicate over everything received so far holds, woken by
// each Export call rather than by polling.
//
// For reliability tests the receiver can misbehave on purpose:
// [WithExportError] makes every Export fail with a chosen gRPC status code,
// and [WithHang] makes every Export block until the caller gives up or the
// receiver is closed.
//
// [NewHTTPReceiver] starts the same receiver for OTLP/HTTP (protobuf, plain
// or gzip, POSTed to [TracesPath]), for otlptracehttp.WithEndpoint with
// otlptracehttp.WithInsecure or OTEL_EXPORTER_OTLP_ENDPOINT="http://" +
// Endpoint() with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf. Its faults
// answer with the HTTP statuses an OTLP/HTTP exporter treats as it treats
// the gRPC codes.
package otlptest
