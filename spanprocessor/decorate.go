package spanprocessor

import (
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// decorated is a finished span with extra attributes. The SDK hands OnEnd a
// read-only span; forwarding a wrapper that overrides Attributes is how a
// processor adds to it without mutating what other processors see.
//
// An anomalous span that the head sampler only recorded is marked sampled
// (and otelfr.sampled=false), so that the exporting processor, which drops
// unsampled spans, exports it anyway: tail capture of the rare event.
type decorated struct {
	sdktrace.ReadOnlySpan
	sc    trace.SpanContext
	attrs []attribute.KeyValue
}

func decorate(s sdktrace.ReadOnlySpan, extra ...attribute.KeyValue) sdktrace.ReadOnlySpan {
	base := s.Attributes()
	sc := s.SpanContext()
	attrs := make([]attribute.KeyValue, 0, len(base)+len(extra)+1)
	attrs = append(attrs, base...)
	attrs = append(attrs, extra...)
	if !sc.IsSampled() {
		sc = sc.WithTraceFlags(sc.TraceFlags().WithSampled(true))
		attrs = append(attrs, otelfr.SampledKey.Bool(false))
	}
	return decorated{ReadOnlySpan: s, sc: sc, attrs: attrs}
}

// Attributes returns the span's attributes followed by the added ones.
func (d decorated) Attributes() []attribute.KeyValue { return d.attrs }

// SpanContext returns the span's context, marked sampled.
func (d decorated) SpanContext() trace.SpanContext { return d.sc }
