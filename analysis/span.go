package analysis

import (
	"bytes"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Span identifies the span to diagnose.
//
// SpanID is required. A zero TraceID matches the span ID in any trace.
// Start and End, the span's own start and end times, are optional: when
// both are set, the diagnosis covers exactly [Start, End] (the part of it
// inside the snapshot's window) and Analyze finds the generations to parse
// from them; otherwise it takes the interval from the span's log markers in
// the trace. The diagnosis fills in a zero TraceID from the trace. Name is
// informational; the diagnosis fills it in from the
// span's runtime/trace task when it is empty and the task's start is in
// the window.
//
// Error says how the span failed, "" when it did not: the execution trace
// does not tell, so the caller does, typically with [ErrorSummary]. When it
// is set, the verdict leads with it (see [Diagnosis.Verdict]); the
// diagnosis keeps it on one line and within 400 bytes, as ErrorSummary
// does.
type Span struct {
	TraceID trace.TraceID `json:"trace_id,omitzero"`
	SpanID  trace.SpanID  `json:"span_id"`
	Name    string        `json:"name,omitempty"`
	Start   time.Time     `json:"start,omitzero"`
	End     time.Time     `json:"end,omitzero"`
	Error   string        `json:"error,omitempty"`
}

// Status says how much of a span a snapshot holds.
type Status string

const (
	// StatusComplete: the snapshot's window holds the whole span.
	StatusComplete Status = "complete"
	// StatusPartial: the window cuts the span: it began before the window
	// (a long span) or had not ended when the snapshot was taken. A
	// diagnosis then covers the part inside the window.
	StatusPartial Status = "partial"
	// StatusNotFound: the span is not in the snapshot. Analyze reports it
	// as ErrSpanNotFound; the value exists for DiagnosisStatusKey.
	StatusNotFound Status = "not_found"
)

// SpanInfo describes a span, or a runtime/trace task, that a snapshot
// shows. Spans lists them.
type SpanInfo struct {
	// TraceID and SpanID come from the span's otelfr.LogCategory log
	// messages; both are zero for a task that logged none (a task started
	// by the OpenTelemetry SDK without otelfr's TracerProvider wrapper, or
	// by the application itself).
	TraceID trace.TraceID `json:"trace_id,omitzero"`
	SpanID  trace.SpanID  `json:"span_id,omitzero"`
	// Name is the task's name (the OpenTelemetry SDK names a span's task
	// after the span); empty when the span's identity was logged outside
	// any task or the task's name is not in the window.
	Name string `json:"name,omitempty"`
	// Task is the runtime/trace task ID; 0 when the span's identity was
	// logged outside any task (the span processor used alone).
	Task uint64 `json:"task,omitempty"`
	// Goroutine started the span or, when its start is not in the window,
	// ended it.
	Goroutine int64 `json:"goroutine"`
	// Start and End are the span's start and end as far as the window
	// shows them; each is zero when it lies outside the window.
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Status is StatusComplete when both the start and the end are in the
	// window, StatusPartial otherwise.
	Status Status `json:"status"`
}

// Duration returns End-Start, or 0 when either is unknown.
func (s *SpanInfo) Duration() time.Duration {
	if s.Start.IsZero() || s.End.IsZero() {
		return 0
	}
	return s.End.Sub(s.Start)
}

// Spans lists the spans and tasks that data, a Go execution trace, shows:
// every span whose identity otelfr logged under otelfr.LogCategory, and
// every other runtime/trace task. They are ordered by start (the end for
// those whose start is outside the window).
//
// Spans parses the whole trace: about a second for 32 MiB. Errors are those
// of [Analyze] but ErrSpanNotFound.
func Spans(data []byte) ([]SpanInfo, error) {
	if _, err := generations(data); err != nil {
		return nil, err
	}
	l := newLister()
	if err := l.read(bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return l.list(), nil
}

// OpenSpans lists the spans and tasks of [Spans] whose start is in the
// trace and whose end is not: in a crash snapshot (otelfr.ReasonCrash),
// those open at the end of its window, which is the end of the last
// generation that reached the disk, up to about a second before the
// death: a span that ended in that last second is listed, and one that
// started in it is not. In any other snapshot, those still running when
// it was taken.
func OpenSpans(data []byte) ([]SpanInfo, error) {
	spans, err := Spans(data)
	if err != nil {
		return nil, err
	}
	open := spans[:0]
	for _, s := range spans {
		if !s.Start.IsZero() && s.End.IsZero() {
			open = append(open, s)
		}
	}
	return open, nil
}
