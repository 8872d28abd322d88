// Package selftrace marks the contexts of otelfr's own work, such as the
// bucket calls that store snapshots, so that otelfr's samplers leave the
// spans that libraries record for that work unrecorded, and they never
// come back as anomalies to snapshot.
package selftrace

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

type key struct{}

// Mark returns ctx marked as otelfr's own work.
func Mark(ctx context.Context) context.Context { return context.WithValue(ctx, key{}, true) }

// Marked reports whether ctx, or a context it derives from, was marked.
func Marked(ctx context.Context) bool {
	v, _ := ctx.Value(key{}).(bool)
	return v
}

// Untraced returns ctx marked, under a remote parent span that is not
// sampled, for the calls otelfr makes on behalf of the process it serves
// (storing, uploading and reading back snapshots). Libraries such as
// gocloud.dev/blob record a span for every call with the global
// TracerProvider; in a process that otelfr observes, a slow upload is
// then a slow span, which the span processor may find anomalous and
// snapshot, and the snapshot's upload is a slow span again. A ParentBased
// sampler, the SDK's default, drops the children of a parent that is not
// sampled; otelfr's own samplers drop what Marked reports.
//
// The IDs are random, valid only so that the SDK takes the span context
// as a parent, and new for each call, so that a sampler that ignores the
// parent does not gather every call of the process into one trace.
func Untraced(ctx context.Context) context.Context {
	var cfg trace.SpanContextConfig
	for !cfg.TraceID.IsValid() || !cfg.SpanID.IsValid() {
		binary.LittleEndian.PutUint64(cfg.TraceID[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(cfg.TraceID[8:], rand.Uint64())
		binary.LittleEndian.PutUint64(cfg.SpanID[:], rand.Uint64())
	}
	return Mark(trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg)))
}
