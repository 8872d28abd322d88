package analysis

import "go.opentelemetry.io/otel/attribute"

// Diagnosis attributes, on the attachment span when an analyzer is wired
// in (by [Diagnoser]).
const (
	// DiagnosisVerdictKey is a one-line explanation of where the span's
	// time went; for a failed span it leads with the error.
	DiagnosisVerdictKey = attribute.Key("otelfr.diagnosis.verdict")
	// DiagnosisCauseKey is the verdict's grouping key, [Diagnosis.Cause]:
	// the same for every span slowed by one problem. The span processor
	// stores it with the span (snapstore.SpanRef.Cause) and counts it in
	// its metrics.
	DiagnosisCauseKey = attribute.Key("otelfr.diagnosis.cause")
	// DiagnosisStatusKey is "complete" when the snapshot holds the whole
	// span, "partial" when the window cuts it, "not_found" when the span's
	// task or goroutine is not in the snapshot.
	DiagnosisStatusKey = attribute.Key("otelfr.diagnosis.status")
	// DiagnosisGoroutinesKey is the number of goroutines that worked for
	// the span.
	DiagnosisGoroutinesKey = attribute.Key("otelfr.diagnosis.goroutines")
	// DiagnosisBucketKeyPrefix prefixes the per-state time attributes, in
	// milliseconds (float): for example "otelfr.diagnosis.ms.running" or
	// "otelfr.diagnosis.ms.blocked.mutex".
	DiagnosisBucketKeyPrefix = "otelfr.diagnosis.ms."
)

// EpisodeEventName names the span events of the attachment span that
// describe the top blocking episodes; their attributes use the Episode*Key
// keys.
const EpisodeEventName = "otelfr.episode"

// Attributes of an EpisodeEventName event.
const (
	EpisodeStateKey      = attribute.Key("otelfr.episode.state")
	EpisodeDurationKey   = attribute.Key("otelfr.episode.duration_ms")
	EpisodeGoroutineKey  = attribute.Key("otelfr.episode.goroutine")
	EpisodeStackKey      = attribute.Key("otelfr.episode.stack")
	EpisodeWakerKey      = attribute.Key("otelfr.episode.waker.goroutine")
	EpisodeWakerStackKey = attribute.Key("otelfr.episode.waker.stack")
)

// Attributes of the attachment span of a crash snapshot
// (otelfr.ReasonCrash), from [Diagnoser.DiagnoseCrash].
const (
	// CrashOpenSpansKey is the number of spans open at the crash: started
	// in the window, never ended ([OpenSpans]).
	CrashOpenSpansKey = attribute.Key("otelfr.crash.open_spans")
)

// OpenSpanEventName names the events of a crash's attachment span that
// list the spans open at the crash, one each, up to [MaxOpenSpanEvents],
// with the OpenSpan*Key attributes.
const OpenSpanEventName = "otelfr.crash.open_span"

// MaxOpenSpanEvents bounds the OpenSpanEventName events of one attachment
// span; CrashOpenSpansKey counts them all.
const MaxOpenSpanEvents = 64

// Attributes of an OpenSpanEventName event.
const (
	OpenSpanTraceIDKey = attribute.Key("otelfr.crash.open_span.trace_id")
	OpenSpanSpanIDKey  = attribute.Key("otelfr.crash.open_span.span_id")
	OpenSpanNameKey    = attribute.Key("otelfr.crash.open_span.name")
	OpenSpanStartKey   = attribute.Key("otelfr.crash.open_span.start")
)
