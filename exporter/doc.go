// Package exporter exports the attachment spans that link each
// flight-recorder snapshot to the spans it explains.
//
// An [Exporter] saves snapshots in a snapstore.Store and, for each
// anomalous span a snapshot covers, exports a span named "otelfr.snapshot"
// through any [go.opentelemetry.io/otel/sdk/trace.SpanExporter]: a child of
// the anomalous span in the same trace, linked to it, carrying the
// snapshot's ID, URL, size, SHA-256 and window. The URL is the snapshot's
// page in the viewer at [WithBaseURL] (or [EnvBaseURL]): for a fleet, the
// central `otelfr serve`, not the process itself.
//
// Package snapstore keeps the snapshots (on local disk; package
// snapstore/bucketstore in object storage), and package viewer serves them.
//
// # Usage
//
//	store, err := snapstore.NewDirStore(dir, snapstore.WithMaxCount(20))
//	if err != nil {
//		return err
//	}
//	exp := exporter.New(store, otlpExporter,
//		exporter.WithBaseURL("https://snapshots.internal.example.com/snapshots/"))
//	proc := spanprocessor.New(batcher, rec, exp)
package exporter
