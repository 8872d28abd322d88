package analysis

import (
	"context"
	"errors"
	"io"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
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
// the verdict, [Diagnosis.Attributes] and [Diagnosis.Events]. A failed
// span's verdict leads with its [ErrorSummary] (see [Diagnosis.Verdict]).
// When the snapshot does not hold the span, it returns the error (wrapping
// ErrSpanNotFound) with DiagnosisStatusKey set to "not_found", so
// that the attachment span still says so; for a failed span, also the
// verdict "error: " + its summary, as DiagnosisVerdictKey too. It
// returns ctx.Err() without analyzing if ctx is already done.
func (d *Diagnoser) Diagnose(ctx context.Context, trace []byte, span sdktrace.ReadOnlySpan) (verdict string, attrs []attribute.KeyValue, events []sdktrace.Event, err error) {
	return d.diagnose(ctx, span, func(sp Span) (*Diagnosis, error) { return Analyze(trace, sp, d.opts...) })
}

// DiagnoseReader is Diagnose for a snapshot read from r, such as a stored
// one: it reads only the generations the span needs ([AnalyzeReader]).
// The span processor calls it instead of Diagnose, so that a stored
// snapshot is never loaded whole.
func (d *Diagnoser) DiagnoseReader(ctx context.Context, r io.ReadSeeker, span sdktrace.ReadOnlySpan) (verdict string, attrs []attribute.KeyValue, events []sdktrace.Event, err error) {
	return d.diagnose(ctx, span, func(sp Span) (*Diagnosis, error) { return AnalyzeReader(r, sp, d.opts...) })
}

func (d *Diagnoser) diagnose(ctx context.Context, span sdktrace.ReadOnlySpan, analyze func(Span) (*Diagnosis, error)) (verdict string, attrs []attribute.KeyValue, events []sdktrace.Event, err error) {
	if err := ctx.Err(); err != nil {
		return "", nil, nil, err
	}
	sc := span.SpanContext()
	sp := Span{
		TraceID: sc.TraceID(),
		SpanID:  sc.SpanID(),
		Name:    span.Name(),
		Start:   span.StartTime(),
		End:     span.EndTime(),
		Error:   ErrorSummary(span),
	}
	diag, err := analyze(sp)
	if errors.Is(err, ErrSpanNotFound) {
		attrs = []attribute.KeyValue{DiagnosisStatusKey.String(string(StatusNotFound))}
		if verdict = failedVerdict(sp.Error, ""); verdict != "" {
			attrs = append(attrs, DiagnosisVerdictKey.String(verdict))
		}
		return verdict, attrs, nil, err
	}
	if err != nil {
		return "", nil, nil, err
	}
	return diag.Verdict, diag.Attributes(), diag.Events(), nil
}

// DiagnoseCrash lists the spans open in a crash snapshot read from r
// ([OpenSpans]): CrashOpenSpansKey counts them and one OpenSpanEventName
// event, at the span's start, names each of the first
// MaxOpenSpanEvents. The span processor calls it for the attachment span
// of the crash snapshot it stores at its start. It returns ctx.Err()
// without reading if ctx is already done.
func (d *Diagnoser) DiagnoseCrash(ctx context.Context, r io.ReadSeeker) (attrs []attribute.KeyValue, events []sdktrace.Event, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, err
	}
	open, err := OpenSpans(data)
	if err != nil {
		return nil, nil, err
	}
	for i, s := range open {
		if i == MaxOpenSpanEvents {
			break
		}
		ev := sdktrace.Event{Name: OpenSpanEventName, Time: s.Start, Attributes: []attribute.KeyValue{
			OpenSpanNameKey.String(s.Name),
			OpenSpanStartKey.String(s.Start.UTC().Format(time.RFC3339Nano)),
		}}
		if s.SpanID.IsValid() {
			ev.Attributes = append(ev.Attributes, OpenSpanTraceIDKey.String(s.TraceID.String()), OpenSpanSpanIDKey.String(s.SpanID.String()))
		}
		events = append(events, ev)
	}
	return []attribute.KeyValue{CrashOpenSpansKey.Int(len(open))}, events, nil
}
