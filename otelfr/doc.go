// Package otelfr joins Go's runtime flight recorder to OpenTelemetry tracing.
//
// A [Recorder] owns a [runtime/trace.FlightRecorder]: an always-on,
// in-memory ring holding the last few seconds of the Go execution trace
// (goroutine scheduling, blocking, syscalls, garbage collection). When
// something goes wrong, [Recorder.Snapshot] writes that window out as a
// [Snapshot], which `go tool trace` opens.
//
// [Recorder.WriteSnapshot] writes the window to an io.Writer instead, such
// as a store's file, in one pass that also hashes the trace and reads its
// window, without holding the trace in memory: the span processor stores
// snapshots that way.
//
// Snapshots are single-flight (concurrent callers share the one in progress)
// and rate limited, by a minimum interval and by a byte budget per period, so
// that an incident cannot turn the recorder into a source of load.
//
// The recorder is usually driven by the anomaly span processor in package
// spanprocessor, which snapshots the moment a span is slow or fails, and by
// package exporter, which stores each snapshot and links it to the span as an
// attachment exported over OTLP. The attribute keys those packages emit are
// declared in this package, in one place.
//
// # Usage
//
//	rec, err := otelfr.Start(otelfr.WithMinAge(10 * time.Second))
//	if err != nil {
//		return err
//	}
//	defer rec.Stop(context.Background())
//
//	snap, err := rec.Snapshot(ctx, "manual")
//	if errors.Is(err, otelfr.ErrRateLimited) {
//		// Too soon after the previous snapshot.
//	}
//
// # Disk mode
//
// With [WithDisk] the window is kept on local disk instead of in memory: the
// execution trace streams into a ring of segment files, one generation
// (about a second) each, bounded by age and bytes ([WithDiskBounds]), and
// snapshots are read from it. A process that dies without [Recorder.Stop]
// (killed, out of memory, panicking) leaves its ring; the next Start over
// the same directory sets it aside, and [Recorder.WriteCrashSnapshot]
// makes a snapshot of it, reason [ReasonCrash], carrying the runtime's
// crash output (the span processor does that, and stores it, at its
// start). All but the generation being written at the death survives.
// [ReadDisk] reads a ring directly.
//
// # Configuration
//
// Options take precedence over environment variables, which take precedence
// over the defaults. A malformed environment value is reported through
// [go.opentelemetry.io/otel.Handle] and the default is kept.
//
//	| Option           | Environment variable    | Default      |
//	|------------------|-------------------------|--------------|
//	| WithMinAge       | OTELFR_MIN_AGE          | 10s          |
//	| WithMaxBytes     | OTELFR_MAX_BYTES        | 16 MiB       |
//	| WithMinInterval  | OTELFR_MIN_INTERVAL     | 10s          |
//	| WithByteBudget   | OTELFR_BYTE_BUDGET      | 256 MiB      |
//	|                  | OTELFR_BUDGET_PERIOD    | 1h           |
//	| WithDisk         | OTELFR_DISK_DIR         | (memory)     |
//	| WithDiskBounds   |                         | 10m, 512 MiB |
//
// Durations use [time.ParseDuration] syntax; byte sizes are integers with an
// optional KiB, MiB or GiB suffix.
//
// # What a snapshot contains
//
// An execution trace holds the stack traces of goroutines, the names of
// runtime/trace tasks and regions (the OpenTelemetry SDK names a task after
// each span) and every message logged with runtime/trace.Log. Treat snapshots
// as sensitive: serve them only to people allowed to read the program's
// source and logs.
package otelfr
