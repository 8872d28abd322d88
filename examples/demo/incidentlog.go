package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/otelfr/otel-flightrecorder/spanprocessor"
)

// envIncidentLog names the incident log's file when -incident-log does
// not.
const envIncidentLog = "DEMO_INCIDENT_LOG"

// How a span was attributed to an incident in the incident log.
const (
	// byRequest: the incident's own mechanism struck the span's request:
	// it took the armed incident (GC pressure, CPU saturation, the slow
	// read, the failure), waited on the price lock while the catalog
	// refresh held it, or queued behind the reconciliation burst.
	byRequest = "request"
	// byWindow: nothing struck the request, but it ran while a
	// process-wide incident (CPU saturation, GC pressure) was in
	// progress, which slows every goroutine of the process.
	byWindow = "window"
)

// incidentRecord is an incident log line: an incident's kind and how long
// it lasted. An incident that strikes several requests (the failures) has
// one line per strike, with the same ID.
type incidentRecord struct {
	Type  string    `json:"type"` // "incident"
	ID    int64     `json:"id"`
	Kind  string    `json:"kind"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// spanRecord is an incident log line for each anomalous span linked to a
// snapshot: the span, and the incident that caused it as the demo knows
// it, from which request each incident struck (By), not from the
// diagnosis. Kind is empty for a span that no incident caused.
type spanRecord struct {
	Type     string    `json:"type"` // "span"
	TraceID  string    `json:"trace_id"`
	SpanID   string    `json:"span_id"`
	Service  string    `json:"service"`
	Name     string    `json:"name"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Reason   string    `json:"reason"`
	Snapshot string    `json:"snapshot"`
	Kind     string    `json:"kind,omitempty"`
	Incident int64     `json:"incident,omitempty"`
	By       string    `json:"by,omitempty"`
}

// incidentLog writes the incident log: JSON lines, one per incident and
// one per linked anomalous span. A nil *incidentLog writes nothing.
type incidentLog struct {
	mu  sync.Mutex
	f   *os.File
	enc *json.Encoder
	err error // the first write error, reported by close
}

// openIncidentLog creates (or truncates) the log at path; "" disables it.
func openIncidentLog(path string) (*incidentLog, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("incident log: %w", err)
	}
	return &incidentLog{f: f, enc: json.NewEncoder(f)}, nil
}

func (l *incidentLog) write(v any) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.enc.Encode(v); err != nil && l.err == nil {
		l.err = err
	}
}

// close closes the file, and returns the first error writing it had.
func (l *incidentLog) close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.f.Close()
	if l.err != nil {
		err = l.err
	}
	if err != nil {
		return fmt.Errorf("incident log: %w", err)
	}
	return nil
}

// logSpan writes the line of a linked anomalous span, with the incident
// that caused it.
func (inc *incidents) logSpan(o spanprocessor.Outcome) {
	if inc.log == nil || o.SnapshotID == "" {
		return
	}
	s := o.Span
	service, _ := s.Resource().Set().Value("service.name")
	sc := s.SpanContext()
	r := spanRecord{
		Type: "span", TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(),
		Service: service.AsString(), Name: s.Name(), Start: s.StartTime(), End: s.EndTime(),
		Reason: o.Reason, Snapshot: o.SnapshotID,
	}
	if k, id, by, ok := inc.cause(sc.TraceID(), s.StartTime(), s.EndTime()); ok {
		r.Kind, r.Incident, r.By = k.String(), id, by
	}
	inc.log.write(r)
}

// cause returns the incident that caused a span of the trace that ran
// from start to end: the first that struck its request while the span was
// in progress, else a process-wide one in progress meanwhile.
func (inc *incidents) cause(id trace.TraceID, start, end time.Time) (k kind, incident int64, by string, ok bool) {
	inc.mu.Lock()
	defer inc.mu.Unlock()
	for _, h := range inc.hits[id] {
		if !h.at.Before(start) && !h.at.After(end) {
			return h.kind, h.id, byRequest, true
		}
	}
	for _, w := range inc.recent {
		if w.id == 0 || (w.kind != cpuSaturation && w.kind != gcPressure) {
			continue
		}
		if !w.start.After(end) && (w.end.IsZero() || !w.end.Before(start)) {
			return w.kind, w.id, byWindow, true
		}
	}
	return 0, 0, "", false
}
