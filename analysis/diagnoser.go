package analysis

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/otelfr/otel-flightrecorder/otelfr"
)

// Diagnoser explains anomalous spans for otelfr's span processor: pass it
// to spanprocessor.WithDiagnoser, and each attachment span carries its
// span's diagnosis as attributes and episode events.
type Diagnoser struct {
	opts []Option
}

// NewDiagnoser returns a Diagnoser that calls Analyze with opts.
func NewDiagnoser(opts ...Option) *Diagnoser {
	return &Diagnoser{opts: opts}
}

// Diagnose analyzes span in trace, a snapshot that covers it, and returns
// the verdict, [Diagnosis.Attributes] and [Diagnosis.Events]. When the
// snapshot does not hold the span, it returns the error (wrapping
// ErrSpanNotFound) with a single attribute, otelfr.DiagnosisStatusKey set to
// "not_found", so that the attachment span still says so. It returns
// ctx.Err() without analyzing if ctx is already done.
func (d *Diagnoser) Diagnose(ctx context.Context, trace []byte, span sdktrace.ReadOnlySpan) (verdict string, attrs []attribute.KeyValue, events []sdktrace.Event, err error) {
	if err := ctx.Err(); err != nil {
		return "", nil, nil, err
	}
	sc := span.SpanContext()
	diag, err := Analyze(trace, Span{
		TraceID: sc.TraceID(),
		SpanID:  sc.SpanID(),
		Name:    span.Name(),
		Start:   span.StartTime(),
		End:     span.EndTime(),
	}, d.opts...)
	if errors.Is(err, ErrSpanNotFound) {
		return "", []attribute.KeyValue{otelfr.DiagnosisStatusKey.String(string(StatusNotFound))}, nil, err
	}
	if err != nil {
		return "", nil, nil, err
	}
	return diag.Verdict, diag.Attributes(), diag.Events(), nil
}
