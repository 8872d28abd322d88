package otlptest

import (
	"bytes"
	"encoding/hex"
	"math"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Span is one received span, flattened for easy assertions.
//
// Attribute maps hold string, int64, float64, bool and []any values (plus
// []byte and nested map[string]any for the OTLP bytes and key-value-list
// value types); they are nil when there are no attributes. IDs that are
// absent or all zero are reported as "".
type Span struct {
	// TraceID is the trace ID as 32 lower-case hex digits.
	TraceID string
	// SpanID is the span ID as 16 lower-case hex digits.
	SpanID string
	// ParentSpanID is the parent's span ID in hex, or "" for a root span.
	ParentSpanID string
	// Name is the span name.
	Name string
	// Kind is the span kind. Note that its numbering matches
	// go.opentelemetry.io/otel/trace.SpanKind.
	Kind tracepb.Span_SpanKind
	// StartTime is the span's start time; zero if not set.
	StartTime time.Time
	// EndTime is the span's end time; zero if not set.
	EndTime time.Time
	// Attributes are the span's attributes.
	Attributes map[string]any
	// Links are the span's links, in order.
	Links []Link
	// Events are the span's events, in order.
	Events []Event
	// StatusCode is the span status code. Note that its numbering differs
	// from go.opentelemetry.io/otel/codes.Code (OTLP: Unset=0, Ok=1,
	// Error=2).
	StatusCode tracepb.Status_StatusCode
	// StatusMessage is the span status description.
	StatusMessage string
	// Resource holds the attributes of the resource that produced the span.
	Resource map[string]any
	// ScopeName is the name of the instrumentation scope (the tracer name).
	ScopeName string
}

// Link is a flattened span link.
type Link struct {
	// TraceID is the linked trace ID in hex.
	TraceID string
	// SpanID is the linked span ID in hex.
	SpanID string
	// Attributes are the link's attributes.
	Attributes map[string]any
}

// Event is a flattened span event.
type Event struct {
	// Name is the event name.
	Name string
	// Time is the event timestamp; zero if not set.
	Time time.Time
	// Attributes are the event's attributes.
	Attributes map[string]any
}

// flatten converts received OTLP data into freshly allocated Spans.
func flatten(rss []*tracepb.ResourceSpans) []Span {
	n := 0
	for _, rs := range rss {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	out := make([]Span, 0, n)
	for _, rs := range rss {
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				out = append(out, Span{
					TraceID:       hexID(sp.GetTraceId()),
					SpanID:        hexID(sp.GetSpanId()),
					ParentSpanID:  hexID(sp.GetParentSpanId()),
					Name:          sp.GetName(),
					Kind:          sp.GetKind(),
					StartTime:     unixNano(sp.GetStartTimeUnixNano()),
					EndTime:       unixNano(sp.GetEndTimeUnixNano()),
					Attributes:    attrs(sp.GetAttributes()),
					Links:         links(sp.GetLinks()),
					Events:        events(sp.GetEvents()),
					StatusCode:    sp.GetStatus().GetCode(),
					StatusMessage: sp.GetStatus().GetMessage(),
					Resource:      attrs(rs.GetResource().GetAttributes()),
					ScopeName:     ss.GetScope().GetName(),
				})
			}
		}
	}
	return out
}

func links(ls []*tracepb.Span_Link) []Link {
	if len(ls) == 0 {
		return nil
	}
	out := make([]Link, 0, len(ls))
	for _, l := range ls {
		out = append(out, Link{
			TraceID:    hexID(l.GetTraceId()),
			SpanID:     hexID(l.GetSpanId()),
			Attributes: attrs(l.GetAttributes()),
		})
	}
	return out
}

func events(es []*tracepb.Span_Event) []Event {
	if len(es) == 0 {
		return nil
	}
	out := make([]Event, 0, len(es))
	for _, e := range es {
		out = append(out, Event{
			Name:       e.GetName(),
			Time:       unixNano(e.GetTimeUnixNano()),
			Attributes: attrs(e.GetAttributes()),
		})
	}
	return out
}

// hexID encodes an ID, mapping an absent or all-zero ID to "".
func hexID(id []byte) string {
	if len(id) == 0 || bytes.Count(id, []byte{0}) == len(id) {
		return ""
	}
	return hex.EncodeToString(id)
}

// unixNano converts an OTLP timestamp, mapping 0 (unset) to the zero Time.
func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(min(ns, math.MaxInt64)))
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	if len(kvs) == 0 {
		return nil
	}
	out := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		out[kv.GetKey()] = value(kv.GetValue())
	}
	return out
}

// value converts an OTLP AnyValue into a plain Go value. Empty values and the
// profiling-only string-table reference become nil.
func value(v *commonpb.AnyValue) any {
	switch v := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return v.StringValue
	case *commonpb.AnyValue_BoolValue:
		return v.BoolValue
	case *commonpb.AnyValue_IntValue:
		return v.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return v.DoubleValue
	case *commonpb.AnyValue_ArrayValue:
		vals := v.ArrayValue.GetValues()
		out := make([]any, 0, len(vals))
		for _, e := range vals {
			out = append(out, value(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := attrs(v.KvlistValue.GetValues())
		if out == nil {
			out = map[string]any{}
		}
		return out
	case *commonpb.AnyValue_BytesValue:
		return bytes.Clone(v.BytesValue)
	default:
		return nil
	}
}
