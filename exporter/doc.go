// Package exporter stores flight-recorder snapshots, serves them over HTTP,
// and exports the attachment spans that link each snapshot to the spans it
// explains.
//
// A [Store] keeps snapshots; [DirStore] keeps them as files in a directory,
// with atomic writes and retention by count and total size. [NewHandler]
// serves a Store: a JSON list, and each snapshot as a raw trace that
// `go tool trace` opens. An [Exporter] saves snapshots in a Store and, for
// each anomalous span a snapshot covers, exports a span named
// "otelfr.snapshot" through any [go.opentelemetry.io/otel/sdk/trace.SpanExporter]:
// a child of the anomalous span in the same trace, linked to it, carrying
// the snapshot's ID, URL, size, SHA-256 and window.
//
// # Usage
//
//	store, err := exporter.NewDirStore(dir, exporter.WithMaxCount(20))
//	if err != nil {
//		return err
//	}
//	exp := exporter.New(store, otlpExporter,
//		exporter.WithBaseURL("https://snapshots.internal.example.com/snapshots/"))
//
//	mux.Handle("/snapshots/", http.StripPrefix("/snapshots", exporter.NewHandler(store)))
//
// # Security
//
// A snapshot contains stack traces, the names of runtime/trace tasks (span
// names) and every runtime/trace.Log message of its window. Without options
// the handler asks for no credentials: bind it to loopback, or protect every
// route with [WithBearerToken] or [WithBasicAuth] (or a proxy that
// authenticates). IDs are validated before they reach the store, and the
// list routes return at most [WithMaxList] snapshots.
package exporter
