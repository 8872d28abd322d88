package bucketstore

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/internal/selftrace"
)

// untraced returns ctx under a remote parent span that is not sampled, for
// the bucket calls the store makes on behalf of the process it serves
// (Save, AddSpans and the uploader's). gocloud.dev/blob records a span for
// every bucket call with the global TracerProvider; in a process that
// otelfr observes, a slow upload is then a slow span, which the span
// processor may find anomalous and snapshot, and the snapshot's upload is
// a slow span again. A ParentBased sampler, the SDK's default, drops the
// children of a parent that is not sampled.
//
// The IDs are random, valid only so that the SDK takes the span context
// as a parent, and new for each call, so that a sampler that ignores the
// parent does not gather every call of the process into one trace.
func untraced(ctx context.Context) context.Context {
	var cfg trace.SpanContextConfig
	for !cfg.TraceID.IsValid() || !cfg.SpanID.IsValid() {
		binary.LittleEndian.PutUint64(cfg.TraceID[:8], rand.Uint64())
		binary.LittleEndian.PutUint64(cfg.TraceID[8:], rand.Uint64())
		binary.LittleEndian.PutUint64(cfg.SpanID[:], rand.Uint64())
	}
	return selftrace.Mark(trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(cfg)))
}
