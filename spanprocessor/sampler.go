package spanprocessor

import (
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/internal/selftrace"
)

// RecordUnsampled wraps a head sampler so that the spans it drops are
// recorded but not sampled (RecordOnly) instead. They then reach span
// processors, so a [Processor] sees every span: when a span the sampler
// dropped turns out anomalous, the Processor exports it and its attachment
// anyway, marked otelfr.sampled=false; the others are dropped by the
// exporting processor as before. The spans of otelfr's own work, such as
// the bucket calls of package bucketstore, stay dropped, so that they
// never become anomalies to snapshot.
//
// Recording every span costs the SDK's span bookkeeping for the spans that
// would otherwise be dropped; BENCHMARKS.md has the numbers.
//
//	sdktrace.WithSampler(spanprocessor.RecordUnsampled(
//		sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0.01))))
func RecordUnsampled(base sdktrace.Sampler) sdktrace.Sampler {
	return recordUnsampled{base: base}
}

type recordUnsampled struct {
	base sdktrace.Sampler
}

func (r recordUnsampled) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	res := r.base.ShouldSample(p)
	if res.Decision == sdktrace.Drop && (p.ParentContext == nil || !selftrace.Marked(p.ParentContext)) {
		res.Decision = sdktrace.RecordOnly
	}
	return res
}

func (r recordUnsampled) Description() string {
	return "RecordUnsampled{" + r.base.Description() + "}"
}
