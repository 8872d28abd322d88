package otelfr

import "go.opentelemetry.io/otel/attribute"

// Attribute keys emitted by otelfr, all in the "otelfr." namespace.
//
// On an anomalous span (added by package spanprocessor):
//   - SnapshotIDKey, SnapshotURLKey, SnapshotSpanIDKey and SnapshotReasonKey
//     when a snapshot covers the span;
//   - spanprocessor.SnapshotSkippedKey when none does.
//
// On the attachment span named [AttachmentSpanName] (added by package
// exporter): SnapshotIDKey, SnapshotURLKey, SnapshotSpanIDKey,
// SnapshotReasonKey, SnapshotSizeKey, SnapshotSHA256Key, SnapshotTakenAtKey,
// SnapshotWindowStartKey and SnapshotWindowEndKey.
const (
	// SnapshotIDKey is the snapshot's ID, a string.
	SnapshotIDKey = attribute.Key("otelfr.snapshot.id")
	// SnapshotURLKey is where the snapshot is served, a string.
	SnapshotURLKey = attribute.Key("otelfr.snapshot.url")
	// SnapshotSpanIDKey names the span whose page in the snapshot's viewer
	// a link opens: 16 lowercase hex digits. On an anomalous span it is the
	// span's own ID, on its attachment the anomalous span's (the
	// attachment's parent), on the attachment of a snapshot taken on
	// request the span that was current, and the empty string when there
	// was none. It exists for link templates that can read a span's
	// attributes but not its ID, such as the Jaeger UI's link patterns;
	// the empty value keeps such a link resolvable.
	SnapshotSpanIDKey = attribute.Key("otelfr.snapshot.span_id")
	// SnapshotReasonKey says why the span was anomalous: "latency", "error"
	// or a predicate's reason.
	SnapshotReasonKey = attribute.Key("otelfr.snapshot.reason")
	// SnapshotSizeKey is the snapshot's size in bytes, an int.
	SnapshotSizeKey = attribute.Key("otelfr.snapshot.size")
	// SnapshotSHA256Key is the hex SHA-256 of the snapshot's bytes.
	SnapshotSHA256Key = attribute.Key("otelfr.snapshot.sha256")
	// SnapshotTakenAtKey is when the snapshot's write out of the flight
	// recorder began, an RFC 3339 string with nanoseconds. An attachment
	// of a finished span is timed within that span, not at the snapshot,
	// so that it never lengthens its trace; this is the snapshot's own
	// time.
	SnapshotTakenAtKey = attribute.Key("otelfr.snapshot.taken_at")
	// SnapshotWindowStartKey and SnapshotWindowEndKey are the wall-clock
	// window the snapshot covers, RFC 3339 strings with nanoseconds.
	SnapshotWindowStartKey = attribute.Key("otelfr.snapshot.window.start")
	SnapshotWindowEndKey   = attribute.Key("otelfr.snapshot.window.end")
	// SnapshotCrashOutputKey is, on the attachment span of a crash
	// snapshot ([ReasonCrash]), the start of [Snapshot.CrashOutput]: up
	// to [MaxCrashOutputAttribute] bytes of the panic or fatal error the
	// crashed process's runtime reported. The store keeps the whole of it.
	SnapshotCrashOutputKey = attribute.Key("otelfr.snapshot.crash_output")
	// SampledKey is false on an anomalous span that the head sampler did
	// not sample (it was recorded only) and that is exported anyway.
	SampledKey = attribute.Key("otelfr.sampled")
)

// MaxCrashOutputAttribute bounds [SnapshotCrashOutputKey]'s value, in
// bytes: enough for a panic's message and the stack of the goroutine
// that panicked, short enough for tracing backends' attribute limits.
const MaxCrashOutputAttribute = 4 << 10

// AttachmentSpanName is the name of the span that carries a snapshot,
// a child of the anomalous span with a link to it.
const AttachmentSpanName = "otelfr.snapshot"
