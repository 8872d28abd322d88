package spanprocessor

import (
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// decorated is a finished span with extra attributes. The SDK hands OnEnd a
// read-only span; forwarding a wrapper that overrides Attributes is how a
// processor adds to it without mutating what other processors see.
type decorated struct {
	sdktrace.ReadOnlySpan
	attrs []attribute.KeyValue
}

func decorate(s sdktrace.ReadOnlySpan, extra ...attribute.KeyValue) sdktrace.ReadOnlySpan {
	base := s.Attributes()
	attrs := make([]attribute.KeyValue, 0, len(base)+len(extra))
	attrs = append(attrs, base...)
	attrs = append(attrs, extra...)
	return decorated{ReadOnlySpan: s, attrs: attrs}
}

// Attributes returns the span's attributes followed by the added ones.
func (d decorated) Attributes() []attribute.KeyValue { return d.attrs }
