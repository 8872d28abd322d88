package spanprocessor

import "go.opentelemetry.io/otel/attribute"

// SnapshotSkippedKey says why an anomalous span has no snapshot; its values
// are the Skip* constants. The processor sets it on the span in place of
// otelfr.SnapshotIDKey and the other snapshot attributes.
const SnapshotSkippedKey = attribute.Key("otelfr.snapshot.skipped")

// Values of SnapshotSkippedKey.
const (
	// SkipRateLimited: the minimum interval between snapshots had not passed.
	SkipRateLimited = "rate_limited"
	// SkipByteBudget: the byte budget of the current period was used up.
	SkipByteBudget = "byte_budget"
	// SkipQueueFull: the anomaly queue was full; the span was forwarded at once.
	SkipQueueFull = "queue_full"
	// SkipOutsideWindow: the snapshot's window does not reach the span:
	// it ended before the window began. A span that only began before
	// the window is linked, its tail diagnosed (Outcome.Partial).
	SkipOutsideWindow = "outside_window"
	// SkipStopped: the recorder or the processor was shut down.
	SkipStopped = "stopped"
	// SkipError: taking or storing the snapshot failed (see otel.Handle).
	SkipError = "error"
	// SkipCooldown: the same trigger for the same span name got a snapshot
	// less than the processor's cooldown ago.
	SkipCooldown = "cooldown"
)
